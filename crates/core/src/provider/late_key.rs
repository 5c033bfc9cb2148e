//! An API key that may arrive, or change, after the service started. The default
//! `weatherService` is built on first use; an application that sets `OPEN_WEATHER_API_KEY`
//! later (after loading a secret, say) must not need a restart for it, and neither must an
//! operator who replaces a key the provider refused (the error says to check
//! `OPEN_WEATHER_API_KEY`: the fix must work). A key is kept until another one replaces it: a
//! running service does not lose its key because a variable was removed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::Redactor;

/// Empty until `set`; clones share the key.
#[derive(Clone, Default)]
pub struct LateKey(Arc<Shared>);

#[derive(Default)]
struct Shared {
    held: RwLock<Option<Arc<Held>>>,
    /// Bumped by each new key: a refusal of an earlier key says nothing of this one.
    generation: AtomicU64,
    /// The provider refused the current key: a new one is worth looking for.
    rejected: AtomicBool,
}

/// The current key, and a redactor that hides it and every key held before it (a request
/// sent with an earlier key may still fail after the change, quoting it).
pub struct Held {
    key: String,
    redactor: Redactor,
    generation: u64,
}

impl Held {
    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Which key this is (see `LateKey::generation`).
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

impl LateKey {
    pub fn new() -> LateKey {
        LateKey::default()
    }

    /// Sets the key; `false` when nothing changed (an empty key, or the one held already).
    pub fn set(&self, key: String) -> bool {
        if key.is_empty() {
            return false;
        }
        let mut held = self.0.held.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if held.as_ref().is_some_and(|h| h.key == key) {
            return false;
        }
        let redactor = match held.as_ref() {
            Some(before) => before.redactor.and(&key),
            None => Redactor::new(Some(&key)),
        };
        let generation = self.0.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *held = Some(Arc::new(Held { key, redactor, generation }));
        self.0.rejected.store(false, Ordering::Release);
        true
    }

    /// The key, if there is one.
    pub fn current(&self) -> Option<Arc<Held>> {
        self.0.held.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    pub fn is_set(&self) -> bool {
        self.generation() > 0
    }

    /// 0 before the first key, then one more for each new key.
    pub fn generation(&self) -> u64 {
        self.0.generation.load(Ordering::Acquire)
    }

    /// The provider refused the key of `generation` (ignored if it was replaced since).
    pub fn reject(&self, generation: u64) {
        if self.generation() == generation {
            self.0.rejected.store(true, Ordering::Release);
        }
    }

    /// Whether the provider refused the current key.
    pub fn is_rejected(&self) -> bool {
        self.0.rejected.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for LateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_set() { "LateKey([redacted])" } else { "LateKey(unset)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_by_clones_replaced_by_a_new_key_and_never_shown() {
        let key = LateKey::new();
        let clone = key.clone();
        assert!(key.current().is_none());
        assert!(!key.set(String::new()), "an empty key is no key");
        assert!(clone.set("s3cr3t-k3y".into()));
        assert!(!key.set("s3cr3t-k3y".into()), "the same key changes nothing");
        let first = key.current().unwrap();
        assert_eq!((first.key(), first.generation()), ("s3cr3t-k3y", 1));
        assert_eq!(format!("{key:?}"), "LateKey([redacted])");
        assert_eq!(first.redactor().redact("appid=s3cr3t-k3y"), "appid=[redacted]");

        key.reject(1);
        assert!(clone.is_rejected());
        assert!(key.set("n3w-k3y".into()), "a new key replaces a refused one");
        assert!(!key.is_rejected(), "the new key is not refused");
        key.reject(1);
        assert!(!key.is_rejected(), "a late refusal of the old key says nothing of the new one");
        let second = key.current().unwrap();
        assert_eq!((second.key(), second.generation()), ("n3w-k3y", 2));
        assert_eq!(second.redactor().redact("s3cr3t-k3y n3w-k3y"), "[redacted] [redacted]", "both stay hidden");
    }
}
