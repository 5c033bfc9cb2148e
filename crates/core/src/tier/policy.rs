//! Which `maxmemory-policy` keeps the tier working. Entries and leases always carry a TTL;
//! budget counters and cooldowns never do (see `scripts.rs`). So:
//! - `volatile-*` (lru, lfu, ttl, random) evicts only keys with a TTL: entries go, counters
//!   stay. Safe.
//! - `allkeys-*` may evict a budget counter or a cooldown: the budget starts again from zero,
//!   and N instances may spend it twice. Unsafe.
//! - `noeviction` refuses writes once memory is full: leases, landings and admissions fail,
//!   and the tier keeps falling back to local. Unsafe when `maxmemory` is set.
//!
//! Without `maxmemory` (0) nothing is evicted and no write is refused for memory: safe.
//! Checked at every connection where `CONFIG GET` is allowed (managed services often refuse it).

/// A warning for the operator, or `None` when the policy is safe.
pub fn verdict(policy: &str, maxmemory: u64) -> Option<String> {
    let policy = policy.to_ascii_lowercase();
    if maxmemory == 0 || policy.starts_with("volatile-") {
        return None;
    }
    let why = if policy.starts_with("allkeys-") {
        "may evict the shared budget counters and cooldowns (a budget would start again from zero)"
    } else if policy == "noeviction" {
        "makes Redis refuse the tier's writes (leases, budgets) once memory is full"
    } else {
        "is not one the tier knows to be safe"
    };
    Some(format!("maxmemory-policy {policy} {why}: use volatile-lru (or another volatile-* policy)"))
}

#[cfg(test)]
mod tests {
    use super::verdict;

    #[test]
    fn only_volatile_policies_or_no_limit_are_safe() {
        for safe in ["volatile-lru", "volatile-lfu", "volatile-ttl", "volatile-random"] {
            assert_eq!(verdict(safe, 1 << 30), None, "{safe}");
        }
        assert_eq!(verdict("noeviction", 0), None, "no maxmemory: nothing is ever evicted or refused");
        assert!(verdict("allkeys-lru", 1 << 30).unwrap().contains("budget counters"));
        assert!(verdict("noeviction", 1 << 30).unwrap().contains("refuse"));
        assert!(verdict("allkeys-lfu", 1 << 30).unwrap().contains("volatile-lru"));
    }
}
