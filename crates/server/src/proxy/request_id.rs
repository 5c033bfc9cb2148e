//! `X-Request-Id`: the client's own (echoed, so that its logs and ours meet), or one made here:
//! a random prefix per process and a counter, unique across instances without coordination.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::{HeaderMap, HeaderValue};

pub const HEADER: &str = "x-request-id";
/// Longest id echoed; longer ones (or ones with other characters) are replaced.
const MAX_LEN: usize = 128;

pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> RequestIds {
        let mut bytes = [0u8; 4];
        // A fixed prefix if the system has no randomness: ids stay unique within the process.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
        RequestIds { prefix: u32::from_be_bytes(bytes), next: AtomicU64::new(1) }
    }

    /// The request's id: its own if it sent a sane one, else a new one.
    pub fn of(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(value) = headers.get(HEADER).filter(|v| sane(v.as_bytes())) {
            return value.clone();
        }
        let id = format!("{:08x}{:012x}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed));
        HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
    }
}

/// Letters, digits and `-_.:/+=@`, at most 128: safe in a log line and a header.
fn sane(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_LEN && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_sane_ids_and_makes_unique_ones() {
        let ids = RequestIds::new();
        let mut headers = HeaderMap::new();
        headers.insert(HEADER, HeaderValue::from_static("client-7:abc/1"));
        assert_eq!(ids.of(&headers), "client-7:abc/1");
        for odd in ["has space", "quote\"", ""] {
            headers.insert(HEADER, HeaderValue::from_str(odd).unwrap());
            assert_ne!(ids.of(&headers), odd);
        }
        headers.insert(HEADER, HeaderValue::from_str(&"x".repeat(129)).unwrap());
        assert_eq!(ids.of(&headers).len(), 20);
        let (a, b) = (ids.of(&HeaderMap::new()), ids.of(&HeaderMap::new()));
        assert_ne!(a, b);
        assert_eq!(a.len(), 20);
    }
}
