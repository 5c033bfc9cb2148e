//! Which `Host` names the proxy answers to. A web page the operator opens can reach a loopback
//! server under a name it controls (DNS rebinding): the browser then sends that name as `Host`.
//! An address (`127.0.0.1:8080`, `[::1]`) or `localhost` can never be such a name, so they are
//! always accepted; any other name must be one the operator listed (`--allowed-host`). On a
//! non-loopback address without a list, the proxy cannot know the names it is published under
//! and accepts any (the token is then what protects it).

use std::net::IpAddr;

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
    NotAllowed,
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

/// `host` of `host[:port]`, `[v6]` of `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority.find(']').map_or(authority, |end| &authority[..=end]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
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
        for bad in ["evil.example", "127.evil.example", "localhost.evil.example", "evil.example:8080", "[::1", "1.2.3"] {
            assert_eq!(hosts.check(Some(bad)), Err(HostError::NotAllowed), "{bad}");
        }
        assert_eq!(hosts.check(None), Err(HostError::Missing));
        assert_eq!(hosts.check(Some("")), Err(HostError::Missing));
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
