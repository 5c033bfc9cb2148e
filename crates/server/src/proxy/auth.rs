//! Credentials a request carries: `Authorization: Bearer <token>` for every protected route, and
//! the status page's cookie (set by `POST /login`, see `routes.rs`) for the status routes only:
//! a browser cannot send a bearer header when it loads a page.

use std::sync::Arc;

use hyper::header::{self, HeaderMap};

use super::clients::{Client, Clients};

/// The cookie's name. `__Host-` under TLS: browsers then only accept it from a secure origin,
/// for the whole host and no subdomain.
pub fn cookie_name(tls: bool) -> &'static str {
    if tls {
        "__Host-weather_cache_status"
    } else {
        "weather_cache_status"
    }
}

/// The client named by a bearer token (`Bearer`, any case, then the token).
pub fn bearer(headers: &HeaderMap, clients: &Clients) -> Option<Arc<Client>> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let token = value.get(..7).filter(|s| s.eq_ignore_ascii_case(b"bearer ")).map(|_| &value[7..])?;
    clients.by_token(token)
}

/// The client named by the status cookie, in any `Cookie` line.
pub fn status_cookie(headers: &HeaderMap, clients: &Clients, tls: bool) -> Option<Arc<Client>> {
    let prefix = format!("{}=", cookie_name(tls));
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|line| line.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(prefix.as_str()))
        .find_map(|value| clients.by_cookie(value.as_bytes()))
}

/// `Set-Cookie` for a client that logged in with `token`: the server sets it, so it can be
/// HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure under TLS.
pub fn set_cookie(token: &str, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{}={}; Path=/; HttpOnly; SameSite=Strict{secure}", cookie_name(tls), super::clients::cookie_value(token))
}

/// The token of a login form's body (`token=...`, form-encoded).
pub fn form_token(body: &[u8]) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    body.split('&').find_map(|pair| pair.strip_prefix("token=")).and_then(form_decoded).filter(|t| !t.is_empty())
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn form_decoded(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::super::clients::Tokens;
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn bearer_tokens() {
        let clients = Clients::load(Tokens::Single("s3cret".into())).unwrap();
        for ok in ["Bearer s3cret", "bearer s3cret", "BEARER s3cret"] {
            assert!(bearer(&headers(&[("authorization", ok)]), &clients).is_some(), "{ok}");
        }
        for wrong in ["Bearer s3cre", "Bearer s3cret ", "Basic s3cret", "s3cret", "Bearer", ""] {
            assert!(bearer(&headers(&[("authorization", wrong)]), &clients).is_none(), "{wrong}");
        }
        assert!(bearer(&HeaderMap::new(), &clients).is_none());
    }

    #[test]
    fn status_cookies_and_the_login_form() {
        let clients = Clients::load(Tokens::Single("s;cret tok".into())).unwrap();
        let set = set_cookie("s;cret tok", false);
        assert!(set.ends_with("; Path=/; HttpOnly; SameSite=Strict"), "{set}");
        assert!(set_cookie("s;cret tok", true).starts_with("__Host-weather_cache_status="));
        assert!(set_cookie("s;cret tok", true).ends_with("; Secure"));
        let pair = set.split(';').next().unwrap();
        assert!(status_cookie(&headers(&[("cookie", "a=1"), ("cookie", &format!("theme=dark; {pair}"))]), &clients, false).is_some());
        assert!(status_cookie(&headers(&[("cookie", pair)]), &clients, true).is_none(), "TLS expects the __Host- name");
        assert!(status_cookie(&headers(&[("cookie", "weather_cache_status=s%3Bcret%20tok")]), &clients, false).is_none());
        assert!(status_cookie(&headers(&[("cookie", "weather_cache_token=s%3Bcret%20tok")]), &clients, false).is_none());
        assert_eq!(form_token(b"token=s%3Bcret+tok").as_deref(), Some("s;cret tok"));
        assert_eq!(form_token(b"x=1&token=abc").as_deref(), Some("abc"));
        assert_eq!(form_token(b"token="), None);
        assert_eq!(form_token(b"token=%zz"), None);
    }
}
