//! Who a request comes from. Directly connected clients are their peer address. Behind a load
//! balancer every peer is the balancer: `--trust-proxy CIDR[,CIDR]` names those peers, and only
//! from them is `X-Forwarded-For` believed. The list is read from the right (the entry the
//! nearest proxy appended) past every trusted address: the first one that is not trusted is the
//! client, as anything left of it could have been written by that client.

use std::net::IpAddr;

use hyper::header::HeaderMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// `10.0.0.0/8`, `2001:db8::/32`, or an address alone (all its bits).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| format!("\"{text}\" is not an address or CIDR block"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(|| format!("\"{text}\": the prefix must be 0 to {bits}"))?,
        };
        Ok(Cidr { network: canonical(network), prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => masked(u128::from(u32::from(net)), self.prefix, 32) == masked(u128::from(u32::from(ip)), self.prefix, 32),
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(net), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u32) -> u128 {
    if prefix == 0 {
        return 0;
    }
    bits >> (width - u32::from(prefix))
}

/// IPv4 peers of a dual-stack listener show as `::ffff:a.b.c.d`: the IPv4 address they are.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(cidrs: Vec<Cidr>) -> TrustedProxies {
        TrustedProxies(cidrs)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client's address: the peer, or (from a trusted peer) the rightmost untrusted entry
    /// of `X-Forwarded-For` (every line of it, in order). An entry that is not an address ends
    /// the walk at the last trusted hop: nothing left of it can be believed.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            let Some(ip) = parse_entry(entry) else { break };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = entry.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse::<IpAddr>().ok()).map(canonical);
    }
    entry.rsplit_once(':').and_then(|(ip, _)| ip.parse::<std::net::Ipv4Addr>().ok()).map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn cidr_blocks() {
        let block = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(block.contains(ip("::ffff:10.1.0.9")), "a mapped IPv4 peer");
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("2001:db8::/32").unwrap().contains(ip("2001:db8:1::5")));
        assert!(!Cidr::parse("2001:db8::/32").unwrap().contains(ip("10.0.0.1")));
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.2")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0/8", "::/129", "1.2.3.4/x"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted = TrustedProxies::new(vec![Cidr::parse("10.0.0.0/8").unwrap()]);
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "6.6.6.6, 1.2.3.4".parse().unwrap());
        headers.append("x-forwarded-for", "10.0.0.7".parse().unwrap());
        // The balancer (10.0.0.2) and an inner proxy (10.0.0.7) are trusted: 1.2.3.4 is the client;
        // 6.6.6.6 is whatever the client wrote.
        assert_eq!(trusted.client(ip("10.0.0.2"), &headers), ip("1.2.3.4"));
        assert_eq!(trusted.client(ip("5.5.5.5"), &headers), ip("5.5.5.5"), "an untrusted peer's header is ignored");
        assert_eq!(trusted.client(ip("10.0.0.2"), &HeaderMap::new()), ip("10.0.0.2"), "no header: the peer");
        let mut odd = HeaderMap::new();
        odd.append("x-forwarded-for", "1.2.3.4, garbage, [2001:db8::1]:443".parse().unwrap());
        assert_eq!(trusted.client(ip("10.0.0.2"), &odd), ip("2001:db8::1"));
        let mut garbage = HeaderMap::new();
        garbage.append("x-forwarded-for", "1.2.3.4, garbage".parse().unwrap());
        assert_eq!(trusted.client(ip("10.0.0.2"), &garbage), ip("10.0.0.2"), "the walk stops at what cannot be read");
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.2"), &headers), ip("10.0.0.2"));
    }
}
