//! Bearer tokens: who may spend the API key's budget through the proxy.

/// Whether an `Authorization` header value carries `token` (`Bearer <token>`, the scheme
/// case-insensitive). The comparison takes the same time wherever the first difference is, so
/// that timing reveals nothing about the token but its length.
pub fn authorized(header: Option<&[u8]>, token: &str) -> bool {
    let Some(value) = header else { return false };
    let Some(presented) = value.get(..7).filter(|s| s.eq_ignore_ascii_case(b"bearer ")).map(|_| &value[7..]) else {
        return false;
    };
    same(presented, token.as_bytes())
}

/// Whether a `Cookie` header carries `token` as `weather_cache_token` (percent-encoded, as the
/// status page's login form sets it). Only the status page accepts it: a browser cannot send a
/// bearer header when it loads a page.
pub fn cookie_authorized(header: Option<&[u8]>, token: &str) -> bool {
    let Some(cookies) = header.and_then(|h| std::str::from_utf8(h).ok()) else { return false };
    cookies
        .split(';')
        .filter_map(|pair| pair.trim().strip_prefix("weather_cache_token="))
        .filter_map(percent_decoded)
        .any(|presented| same(presented.as_bytes(), token.as_bytes()))
}

fn same(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len() && presented.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

fn percent_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_page_cookies() {
        assert!(cookie_authorized(Some(b"a=1; weather_cache_token=s%3Bcret%20x"), "s;cret x"));
        assert!(!cookie_authorized(Some(b"weather_cache_token=s3cre"), "s3cret"));
        assert!(!cookie_authorized(Some(b"other_token=s3cret"), "s3cret"));
        assert!(!cookie_authorized(Some(b"weather_cache_token=%zz"), "s3cret"));
        assert!(!cookie_authorized(None, "s3cret"));
    }

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
