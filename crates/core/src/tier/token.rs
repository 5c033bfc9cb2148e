//! Lease tokens: 128 bits from the operating system's randomness. A token must be one no other
//! holder can produce: it is what compare-and-delete compares. Clocks, process ids (1 in every
//! container) and addresses are guessable and collide.

/// 32 hex digits.
pub fn token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::getrandom(&mut bytes).is_err() {
        // Never seen on the platforms built for; std's hash seeds come from the OS's
        // randomness too (once per thread), which is still no guessable clock.
        use std::hash::{BuildHasher, Hasher};
        for half in bytes.chunks_mut(8) {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(0);
            half.copy_from_slice(&hasher.finish().to_le_bytes());
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::token;

    #[test]
    fn tokens_share_nothing() {
        let tokens: Vec<String> = (0..64).map(|_| token()).collect();
        for (i, a) in tokens.iter().enumerate() {
            assert_eq!(a.len(), 32);
            assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
            for b in &tokens[i + 1..] {
                // A shared 8-digit prefix among 2,016 pairs of random tokens: about once in two
                // million runs. Tokens made of a clock and a process id share far more.
                assert_ne!(a[..8], b[..8], "{a} {b}");
            }
        }
    }
}
