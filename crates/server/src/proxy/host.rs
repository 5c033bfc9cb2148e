//! Which `Host` names the proxy answers to. A web page the operator opens can reach a loopback
//! server under a name it controls (DNS rebinding): the browser then sends that name as `Host`.
//! An address (`127.0.0.1:8080`, `[::1]`) or `localhost` can never be such a name, so they are
//! always accepted; any other name must be one the operator listed (`--allowed-host`). On a
//! non-loopback address without a list, the proxy cannot know the names it is published under
//! and accepts any (the token is then what protects it).
//!
//! The name is the request target's authority (absolute form, HTTP/2's `:authority`), else
//! `Host`. Two `Host` lines, or an HTTP/2 `Host` naming another authority than `:authority`,
//! are refused (400): a proxy in front could check one name while this one serves the other.

use std::net::IpAddr;

use hyper::header::{self, HeaderMap};
use hyper::{Request, Version};

#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    /// Lower-case, without a trailing dot or a port.
    names: Vec<String>,
    /// Whether names outside the list are refused.
    enforced: bool,
}

/// What is wrong with a request's `Host`.
#[derive(Debug, PartialEq, Eq)]
pub enum HostError {
    /// No `Host` (nor an authority in the request target).
    Missing,
    /// More than one `Host`, or one that contradicts `:authority` (RFC 9112 §3.2, RFC 9113 §8.3.1).
    Ambiguous,
    NotAllowed,
}

/// The authority a request names (see the module's comment): `Ok(None)` when it names none.
pub fn authority<B>(request: &Request<B>) -> Result<Option<&str>, HostError> {
    let hosts = host_lines(request.headers())?;
    let Some(target) = request.uri().authority().map(|a| a.as_str()) else { return Ok(hosts) };
    // HTTP/1.1's absolute form overrides Host (RFC 9112 §3.2.2); HTTP/2 must agree with it.
    match hosts {
        Some(host) if request.version() == Version::HTTP_2 && !host.eq_ignore_ascii_case(target) => Err(HostError::Ambiguous),
        _ => Ok(Some(target)),
    }
}

/// The one `Host` line's value, if any (not text: none).
fn host_lines(headers: &HeaderMap) -> Result<Option<&str>, HostError> {
    let mut lines = headers.get_all(header::HOST).iter();
    let first = lines.next();
    if lines.next().is_some() {
        return Err(HostError::Ambiguous);
    }
    Ok(first.and_then(|v| v.to_str().ok()))
}

impl AllowedHosts {
    /// `bind`: the address the proxy listens on; `names`: `--allowed-host` values.
    pub fn new(bind: &str, names: &[String]) -> AllowedHosts {
        let names: Vec<String> = names.iter().map(|n| normalized(n).to_owned()).filter(|n| !n.is_empty()).collect();
        let enforced = !names.is_empty() || is_loopback_bind(bind);
        AllowedHosts { names, enforced }
    }

    /// Checks a request's authority (`host[:port]`, from the target or the `Host` header).
    pub fn check(&self, authority: Option<&str>) -> Result<(), HostError> {
        let authority = authority.filter(|a| !a.is_empty()).ok_or(HostError::Missing)?;
        if !self.enforced {
            return Ok(());
        }
        let host = host_of(authority);
        let host = normalized(host);
        if host.eq_ignore_ascii_case("localhost") || is_address(host) || self.names.iter().any(|n| n.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(HostError::NotAllowed)
        }
    }
}

/// Checks an `--allowed-host` value: a host name (or an address), without a scheme, a port or
/// a path, which would never match a request's name (every request would get 421).
pub fn parse_name(name: &str) -> Result<String, String> {
    let bare = normalized(name.trim());
    let address = is_address(bare) || bare.parse::<std::net::Ipv6Addr>().is_ok();
    let label = |l: &str| !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if address || (bare.len() <= 253 && bare.split('.').all(label)) {
        Ok(bare.to_owned())
    } else {
        Err(format!("\"{name}\" is not a host name (give the name alone: no scheme, port or path)"))
    }
}

/// `host` of `host[:port]`, `[v6]` of `[v6]:port`; anything else is returned whole (and is no
/// address: `[::1]evil` is not `[::1]`).
fn host_of(authority: &str) -> &str {
    let (host, port) = match authority.find(']') {
        Some(end) if authority.starts_with('[') => (&authority[..=end], &authority[end + 1..]),
        _ => match authority.rsplit_once(':') {
            Some((host, _)) => (host, &authority[host.len()..]),
            None => (authority, ""),
        },
    };
    match port.strip_prefix(':') {
        None if port.is_empty() => host,
        Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

/// Without one trailing dot (`localhost.` is `localhost`).
fn normalized(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// An IP address written as one (`127.0.0.1`, `[::1]`): never a name DNS could rebind.
fn is_address(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// Whether the proxy listens on a loopback address (`127.0.0.0/8`, `::1` or `localhost`).
pub fn is_loopback_bind(bind: &str) -> bool {
    let bind = bind.trim_start_matches('[').trim_end_matches(']');
    bind.eq_ignore_ascii_case("localhost") || bind.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_addresses_by_default() {
        let hosts = AllowedHosts::new("127.0.0.1", &[]);
        for ok in ["localhost", "localhost:8080", "LocalHost.", "127.0.0.1", "127.0.0.1:80", "[::1]", "[::1]:8080", "10.0.0.1"] {
            assert_eq!(hosts.check(Some(ok)), Ok(()), "{ok}");
        }
        for bad in ["evil.example", "127.evil.example", "localhost.evil.example", "evil.example:8080", "[::1", "1.2.3", "[::1]evil", "[::1]:8o", "localhost:x"] {
            assert_eq!(hosts.check(Some(bad)), Err(HostError::NotAllowed), "{bad}");
        }
        assert_eq!(hosts.check(None), Err(HostError::Missing));
        assert_eq!(hosts.check(Some("")), Err(HostError::Missing));
    }

    fn request(version: Version, target: &str, hosts: &[&str]) -> Request<()> {
        let mut builder = Request::builder().version(version).uri(target);
        for host in hosts {
            builder = builder.header(header::HOST, *host);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn one_authority_per_request() {
        let http1 = |target, hosts: &[&str]| authority(&request(Version::HTTP_11, target, hosts)).map(|a| a.map(str::to_owned));
        assert_eq!(http1("/x", &["localhost:8080"]), Ok(Some("localhost:8080".to_owned())));
        assert_eq!(http1("/x", &[]), Ok(None));
        assert_eq!(http1("/x", &["localhost", "evil.example"]), Err(HostError::Ambiguous), "two Host lines");
        assert_eq!(http1("/x", &["localhost", "localhost"]), Err(HostError::Ambiguous), "even equal ones");
        assert_eq!(http1("http://127.0.0.1/x", &["evil.example"]), Ok(Some("127.0.0.1".to_owned())), "HTTP/1.1: the absolute form wins");
        let http2 = |target, hosts: &[&str]| authority(&request(Version::HTTP_2, target, hosts)).map(|a| a.map(str::to_owned));
        assert_eq!(http2("https://localhost/x", &[]), Ok(Some("localhost".to_owned())));
        assert_eq!(http2("https://localhost/x", &["LOCALHOST"]), Ok(Some("localhost".to_owned())));
        assert_eq!(http2("https://localhost/x", &["evil.example"]), Err(HostError::Ambiguous), "Host contradicts :authority");
        assert_eq!(http2("/x", &["localhost"]), Ok(Some("localhost".to_owned())), "no :authority: Host");
    }

    #[test]
    fn allowed_host_values_are_names() {
        for ok in ["weather.example", "Weather.Example.", "localhost", "10.0.0.5", "[2001:db8::1]", "2001:db8::1", "my_host-1"] {
            assert!(parse_name(ok).is_ok(), "{ok}");
        }
        assert_eq!(parse_name("Weather.Example.").unwrap(), "Weather.Example");
        for bad in ["weather.example:8443", "https://weather.example", "weather.example/", "a..b", "", "we ather", "user@host", "*.example"] {
            let error = parse_name(bad).unwrap_err();
            assert!(error.contains("is not a host name"), "{bad}: {error}");
        }
    }

    #[test]
    fn listed_names_and_public_binds() {
        let listed = AllowedHosts::new("0.0.0.0", &["Weather.Example.".to_owned()]);
        assert_eq!(listed.check(Some("weather.example:443")), Ok(()));
        assert_eq!(listed.check(Some("other.example")), Err(HostError::NotAllowed));
        let open = AllowedHosts::new("0.0.0.0", &[]);
        assert_eq!(open.check(Some("anything.example")), Ok(()), "a public bind without a list accepts any name");
        assert_eq!(open.check(None), Err(HostError::Missing), "but never none");
        assert!(AllowedHosts::new("::1", &[]).enforced);
        assert!(AllowedHosts::new("localhost", &[]).enforced);
        assert!(!AllowedHosts::new("::", &[]).enforced);
    }
}
