//! Provider names as `&'static str`, so that errors, events and metrics can carry them for
//! free. Built-in providers have literal names; names that arrive at run time (a custom
//! fetcher's, or one read from the shared tier) are interned here, each distinct name once.
//! Bounded: a shared tier full of garbage must not grow this without end.

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

/// Longest name kept, in bytes; longer ones (and any beyond `MAX_NAMES`) read as `"other"`.
const MAX_NAME_BYTES: usize = 64;
const MAX_NAMES: usize = 256;

static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);

pub fn intern(name: &str) -> &'static str {
    intern_within(name, MAX_NAMES)
}

/// A configured provider's name (already checked to be short and printable): interned beyond
/// `MAX_NAMES` too, since only names read from the shared tier can be junk, and a configured
/// name must never read as another's.
pub fn intern_configured(name: &str) -> &'static str {
    intern_within(name, usize::MAX)
}

fn intern_within(name: &str, max_names: usize) -> &'static str {
    for known in ["openweather", "open-meteo", "met-norway", "nws"] {
        if name == known {
            return known;
        }
    }
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return "other";
    }
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    if names.len() >= max_names {
        return "other";
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_each_name_once_and_refuses_junk() {
        assert_eq!(intern("openweather"), "openweather");
        let a = intern("my-station");
        assert!(std::ptr::eq(a, intern("my-station")));
        assert_eq!(intern(&"x".repeat(65)), "other");
        assert_eq!(intern("bad\nname"), "other");
        assert_eq!(intern(""), "other");
    }
}
