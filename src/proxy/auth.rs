//! Bearer tokens: who may spend the API key's budget through the proxy.

/// Whether an `Authorization` header value carries `token` (`Bearer <token>`, the scheme
/// case-insensitive). The comparison takes the same time wherever the first difference is, so
/// that timing reveals nothing about the token but its length.
pub fn authorized(header: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = header else { return false };
    let Some(presented) = value.get(..7).filter(|s| s.eq_ignore_ascii_case(b"bearer ")).map(|_| &value[7..]) else {
        return false;
    };
    let expected = token.as_bytes();
    if presented.len() != expected.len() {
        return false;
    }
    presented.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert!(authorized(Some(b"Bearer s3cret"), "s3cret"));
        assert!(authorized(Some(b"bearer s3cret"), "s3cret"));
        for wrong in [&b"Bearer s3cre"[..], b"Bearer s3cret ", b"Basic s3cret", b"s3cret", b"Bearer", b""] {
            assert!(!authorized(Some(wrong), "s3cret"), "{}", String::from_utf8_lossy(wrong));
        }
        assert!(!authorized(None, "s3cret"));
    }
}
