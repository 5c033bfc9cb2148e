//! `ETag` and `If-None-Match` (RFC 9110 §8.8.3, §13.1.2): a weak validator per cache entry and
//! units, compared weakly against every entity tag of every `If-None-Match` line.

use hyper::header::{HeaderMap, IF_NONE_MATCH};

/// Whether any `If-None-Match` line lists `ours` (weak comparison) or is `*`. A malformed line
/// matches nothing.
pub fn none_match(headers: &HeaderMap, ours: &str) -> bool {
    let ours = opaque(ours).unwrap_or(ours);
    headers.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).any(|line| {
        if line.trim() == "*" {
            return true;
        }
        tags(line).is_some_and(|tags| tags.contains(&ours))
    })
}

/// The opaque parts (quotes included) of `#entity-tag`, `None` when malformed.
fn tags(line: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = line.trim_start_matches([' ', '\t', ',']);
    while !rest.is_empty() {
        let start = rest.strip_prefix("W/").unwrap_or(rest);
        let body = start.strip_prefix('"')?;
        let end = body.find('"')?;
        let tag = &start[..end + 2];
        // etagc: %x21 / %x23-7E / obs-text (no spaces, no quotes, no controls).
        if !tag[1..tag.len() - 1].bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80) {
            return None;
        }
        out.push(tag);
        rest = start[end + 2..].trim_start_matches([' ', '\t']);
        match rest.strip_prefix(',') {
            Some(after) => rest = after.trim_start_matches([' ', '\t', ',']),
            None if rest.is_empty() => {}
            None => return None,
        }
    }
    Some(out)
}

/// `"x"` of `W/"x"` or `"x"`.
fn opaque(tag: &str) -> Option<&str> {
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    (tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"')).then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(IF_NONE_MATCH, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn weak_comparison_over_every_line() {
        let ours = "W/\"a1-b2-m\"";
        for matching in [&["W/\"a1-b2-m\""][..], &["\"a1-b2-m\""], &["\"x\", W/\"a1-b2-m\""], &["\"x\"", "W/\"a1-b2-m\""], &["*"], &[" , \"x\" ,W/\"a1-b2-m\" "]] {
            assert!(none_match(&lines(matching), ours), "{matching:?}");
        }
        for other in [&["W/W/\"a1-b2-m\""][..], &["\"a1-b2-m\"x"], &["a1-b2-m"], &["\"a1-b2-m"], &["W/\"a1-b2\""], &["\"x\" \"a1-b2-m\""], &[]] {
            assert!(!none_match(&lines(other), ours), "{other:?}");
        }
        assert!(!none_match(&lines(&["\"a b\", W/\"a1-b2-m\""]), ours), "a malformed line matches nothing");
    }
}
