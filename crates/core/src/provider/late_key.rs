//! An API key that may arrive after the service started. The default `weatherService` is
//! built on first use; an application that sets `OPEN_WEATHER_API_KEY` later (after loading a
//! secret, say) must not need a restart for it. The key is set once and then fixed: a running
//! service does not lose its key because a variable was removed.

use std::sync::{Arc, OnceLock};

use super::Redactor;

/// Empty until `set`; clones share the key.
#[derive(Clone, Default)]
pub struct LateKey(Arc<OnceLock<(String, Redactor)>>);

impl LateKey {
    pub fn new() -> LateKey {
        LateKey::default()
    }

    /// Sets the key (an empty one is ignored); `false` if it was set already.
    pub fn set(&self, key: String) -> bool {
        if key.is_empty() {
            return false;
        }
        let redactor = Redactor::new(Some(&key));
        self.0.set((key, redactor)).is_ok()
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(|(key, _)| key.as_str())
    }

    pub fn is_set(&self) -> bool {
        self.0.get().is_some()
    }

    /// Redacts the key from messages, once there is one.
    pub fn redactor(&self) -> Option<&Redactor> {
        self.0.get().map(|(_, redactor)| redactor)
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
    fn set_once_shared_by_clones_and_never_shown() {
        let key = LateKey::new();
        let clone = key.clone();
        assert_eq!(key.get(), None);
        assert!(!key.set(String::new()), "an empty key is no key");
        assert!(clone.set("s3cr3t-k3y".into()));
        assert!(!key.set("another".into()), "fixed once set");
        assert_eq!(key.get(), Some("s3cr3t-k3y"));
        assert_eq!(format!("{key:?}"), "LateKey([redacted])");
        assert_eq!(key.redactor().unwrap().redact("appid=s3cr3t-k3y"), "appid=[redacted]");
    }
}
