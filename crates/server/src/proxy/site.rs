//! Requests another web site makes a browser send. A page the operator opens can point images,
//! scripts and forms at the proxy: at `127.0.0.1:8080` by address (which the `Host` check in
//! `host.rs` cannot refuse) or at a public name. Without a token that spends the API key's
//! budget; with one, a form can still post a token of the attacker's choosing to `/login` and
//! log the operator's browser in (login CSRF). Drones and scripts send no `Sec-Fetch-Site`;
//! browsers do (Fetch Metadata): the proxy answers a browser's request only when it comes from
//! its own pages, or when it is the top-level page itself (a link followed, a URL typed).
//!
//! Browsers without Fetch Metadata send an `Origin` on a POST: it must then name the host asked
//! (`null`, which the login form itself sends under `Referrer-Policy: no-referrer`, passes).

use hyper::header::{self, HeaderMap};
use hyper::Method;

/// Whether the request is one another site made a browser send (answered 403).
pub fn is_cross_site(method: &Method, headers: &HeaderMap, authority: Option<&str>) -> bool {
    let reading = matches!(*method, Method::GET | Method::HEAD);
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => false,
            // A link from elsewhere to a page: the page opens (a read, at top level only:
            // `frame-ancestors` and `X-Frame-Options` keep it out of frames anyway).
            _ => !(reading && header_is(headers, "sec-fetch-mode", b"navigate") && header_is(headers, "sec-fetch-dest", b"document")),
        };
    }
    if reading {
        return false;
    }
    match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
        None | Some("null") => false,
        Some(origin) => !same_host(origin, authority),
    }
}

fn header_is(headers: &HeaderMap, name: &str, value: &[u8]) -> bool {
    headers.get(name).is_some_and(|v| v.as_bytes() == value)
}

/// Whether `origin` (`scheme://host[:port]`) names the host and port of `authority`
/// (`host[:port]`), a missing port being the origin's scheme's default.
fn same_host(origin: &str, authority: Option<&str>) -> bool {
    let (Some((scheme, origin)), Some(authority)) = (origin.split_once("://"), authority) else { return false };
    let default = if scheme.eq_ignore_ascii_case("https") { "443" } else { "80" };
    let split = |a: &str| -> (String, String) {
        let port_at = if a.starts_with('[') { a.find("]:").map(|i| i + 1) } else { a.rfind(':') };
        match port_at {
            Some(i) => (a[..i].to_ascii_lowercase(), a[i + 1..].to_owned()),
            None => (a.to_ascii_lowercase(), default.to_owned()),
        }
    };
    split(origin) == split(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn fetch_metadata_lets_in_the_proxys_own_pages_and_top_level_links() {
        let at = Some("127.0.0.1:8080");
        let get = |pairs: &[(&'static str, &str)]| is_cross_site(&Method::GET, &headers(pairs), at);
        let post = |pairs: &[(&'static str, &str)]| is_cross_site(&Method::POST, &headers(pairs), at);
        assert!(!get(&[]), "a drone sends no Fetch Metadata");
        assert!(!get(&[("sec-fetch-site", "same-origin"), ("sec-fetch-mode", "cors"), ("sec-fetch-dest", "empty")]), "the page's own fetch");
        assert!(!get(&[("sec-fetch-site", "none"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")]), "a typed URL");
        assert!(!get(&[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")]), "a link followed");
        assert!(get(&[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "image")]), "an <img>");
        assert!(get(&[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "script")]), "another port of the host");
        assert!(get(&[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")]), "a frame");
        assert!(!post(&[("sec-fetch-site", "same-origin"), ("origin", "null")]), "the login form (no-referrer: Origin null)");
        assert!(post(&[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")]), "a form on another site");
        assert!(post(&[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")]));
    }

    #[test]
    fn without_fetch_metadata_a_posts_origin_must_name_the_host() {
        let post = |origin: &str, at: &str| is_cross_site(&Method::POST, &headers(&[("origin", origin)]), Some(at));
        assert!(!post("http://127.0.0.1:8080", "127.0.0.1:8080"));
        assert!(!post("https://Weather.Example", "weather.example"));
        assert!(!post("https://weather.example", "weather.example:443"));
        assert!(!post("http://[::1]:8080", "[::1]:8080"));
        assert!(!post("null", "127.0.0.1:8080"));
        assert!(post("http://evil.example", "127.0.0.1:8080"));
        assert!(post("http://127.0.0.1:9090", "127.0.0.1:8080"), "another port is another origin");
        assert!(post("https://weather.example", "weather.example:8443"));
        assert!(is_cross_site(&Method::POST, &headers(&[("origin", "http://evil.example")]), None));
        assert!(!is_cross_site(&Method::GET, &headers(&[("origin", "http://evil.example")]), Some("127.0.0.1")), "a GET is judged by Fetch Metadata only");
    }
}
