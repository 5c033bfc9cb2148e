//! Where Redis is: one server, a Sentinel-managed primary, or a Cluster, from the URL.
//!
//! - `redis://[user:pass@]host:port[/db]` (`rediss://` for TLS): one server. A name is resolved
//!   again at every connection, so a managed service that fails over by DNS is followed.
//! - `redis+sentinel://[user:pass@]host:port[,host:port...]/service[/db]`: the sentinels, and the
//!   service (master name) they watch; the credentials are the data nodes'. Sentinels with a
//!   password of their own: `?sentinelUsername=..&sentinelPassword=..`.
//! - `redis+cluster://[user:pass@]host:port[,host:port...]`: seed nodes of a Redis (or Valkey)
//!   Cluster.
//!
//! `rediss+sentinel://` and `rediss+cluster://` use TLS to every node.
//!
//! Messages never repeat the URL (it may hold a password); the secrets found are returned so
//! that every message can be redacted of them.

use redis::io::tcp::TcpSettings;
use redis::sentinel::SentinelNodeConnectionInfo;
use redis::{ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo, TlsMode};

pub enum Target {
    Node(ConnectionInfo),
    Sentinel { sentinels: Vec<ConnectionInfo>, service: String, node: SentinelNodeConnectionInfo },
    Cluster { nodes: Vec<ConnectionInfo>, tls: bool, username: Option<String>, password: Option<String> },
}

pub struct Address {
    pub target: Target,
    /// How messages name it: `host:port/db`, `sentinel host:port,.../service/db`,
    /// `cluster host:port,...`.
    pub place: String,
    /// Passwords in the URL, for redaction.
    pub secrets: Vec<String>,
}

const USAGE: &str = "must be a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL";

pub fn parse(url: &str, tcp: &TcpSettings) -> Result<Address, String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| USAGE.to_owned())?;
    let (tls, kind) = match scheme.to_ascii_lowercase().as_str() {
        "redis" => (false, "node"),
        "rediss" => (true, "node"),
        "redis+sentinel" => (false, "sentinel"),
        "rediss+sentinel" => (true, "sentinel"),
        "redis+cluster" => (false, "cluster"),
        "rediss+cluster" => (true, "cluster"),
        _ => return Err(USAGE.to_owned()),
    };
    if kind == "node" {
        return node(url, tcp);
    }
    let (rest, query) = match rest.split_once('?') {
        Some((rest, query)) => (rest, Some(query)),
        None => (rest, None),
    };
    let (userinfo, rest) = match rest.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (hosts, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash + 1..]),
        None => (rest, ""),
    };
    let (username, password) = credentials(userinfo)?;
    let default_port = if kind == "sentinel" { 26379 } else { 6379 };
    let hosts = hosts.split(',').map(|h| host_port(h, default_port)).collect::<Result<Vec<_>, _>>()?;
    let mut secrets: Vec<String> = password.iter().cloned().collect();
    let listed = hosts.iter().map(|(h, p)| format!("{h}:{p}")).collect::<Vec<_>>().join(",");
    let scheme = if tls { "rediss" } else { "redis" };
    let info = |(host, port): &(String, u16)| -> Result<ConnectionInfo, String> {
        let info = format!("{scheme}://{host}:{port}")
            .into_connection_info()
            .map_err(|_| "has a host that is not valid".to_owned())?;
        Ok(info.set_tcp_settings(tcp.clone()))
    };
    let resp3 = |db: i64| {
        let mut settings = RedisConnectionInfo::default().set_protocol(ProtocolVersion::RESP3).set_db(db);
        if let Some(username) = &username {
            settings = settings.set_username(username);
        }
        if let Some(password) = &password {
            settings = settings.set_password(password);
        }
        settings
    };
    let mut sentinel_user = None;
    let mut sentinel_password = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = decode(value)?;
        match (kind, name) {
            ("sentinel", "sentinelUsername") => sentinel_user = Some(value),
            ("sentinel", "sentinelPassword") => {
                secrets.push(value.clone());
                sentinel_password = Some(value);
            }
            _ => return Err("has a query parameter it does not know (sentinelUsername and sentinelPassword are known, for redis+sentinel://)".to_owned()),
        }
    }
    if kind == "cluster" {
        if !path.trim_matches('/').is_empty() && path.trim_matches('/') != "0" {
            return Err("has a database index: a Redis Cluster has database 0 only".to_owned());
        }
        let nodes = hosts.iter().map(info).collect::<Result<Vec<_>, _>>()?;
        let place = format!("cluster {listed}");
        return Ok(Address { target: Target::Cluster { nodes, tls, username, password }, place, secrets });
    }
    let mut parts = path.split('/').filter(|p| !p.is_empty());
    let service = parts
        .next()
        .map(decode)
        .transpose()?
        .ok_or_else(|| "needs the service (master) name: redis+sentinel://host:port/<service>[/db]".to_owned())?;
    let db = match parts.next() {
        Some(db) => db
            .parse::<u16>()
            .map_err(|_| "has an invalid database index (after the service: /<service>/<number>)".to_owned())?,
        None => 0,
    };
    if parts.next().is_some() {
        return Err("has a path it does not know (redis+sentinel://host:port/<service>[/db])".to_owned());
    }
    let sentinels = hosts
        .iter()
        .map(|h| {
            let info = info(h)?;
            let mut settings = RedisConnectionInfo::default();
            if let Some(user) = &sentinel_user {
                settings = settings.set_username(user);
            }
            if let Some(password) = &sentinel_password {
                settings = settings.set_password(password);
            }
            Ok(info.set_redis_settings(settings))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut node = SentinelNodeConnectionInfo::default()
        .set_redis_connection_info(resp3(i64::from(db)))
        .set_tcp_settings(tcp.clone());
    if tls {
        node = node.set_tls_mode(TlsMode::Secure);
    }
    let place = format!("sentinel {listed}/{service}/{db}");
    Ok(Address { target: Target::Sentinel { sentinels, service, node }, place, secrets })
}

/// One server: redis-rs parses the URL, after our own checks (so that no message of its
/// parser can echo the URL or its password).
fn node(url: &str, tcp: &TcpSettings) -> Result<Address, String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| USAGE.to_owned())?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{USAGE} with a host"));
    }
    let path = parsed.path().trim_matches('/');
    if !path.is_empty() && path.parse::<u16>().is_err() {
        return Err("has an invalid database index (the path must be /<number>)".to_owned());
    }
    let info = url.into_connection_info().map_err(|e| format!("is not a valid Redis URL ({})", e.category()))?;
    let secrets = info.redis_settings().password().map(str::to_owned).into_iter().collect();
    let place = format!("{}/{}", info.addr(), info.redis_settings().db());
    let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings).set_tcp_settings(tcp.clone());
    Ok(Address { target: Target::Node(info), place, secrets })
}

fn credentials(userinfo: Option<&str>) -> Result<(Option<String>, Option<String>), String> {
    let Some(userinfo) = userinfo else { return Ok((None, None)) };
    let (user, password) = match userinfo.split_once(':') {
        Some((user, password)) => (decode(user)?, Some(decode(password)?)),
        None => (decode(userinfo)?, None),
    };
    Ok(((!user.is_empty()).then_some(user), password.filter(|p| !p.is_empty())))
}

fn host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let text = text.trim();
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| "has a host that is not valid".to_owned())?;
        (format!("[{host}]"), after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (text.to_owned(), None),
        }
    };
    let valid = !host.is_empty() && host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
    if !valid {
        return Err(format!("{USAGE} with hosts (host:port, separated by commas)"));
    }
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| "has a port that is not a number from 1 to 65535".to_owned())?,
        None => default_port,
    };
    if port == 0 {
        return Err("has a port that is not a number from 1 to 65535".to_owned());
    }
    Ok((host, port))
}

/// Percent-decoding (`%40` is `@`), without repeating the input in an error.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| "has a % not followed by two hex digits".to_owned())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "has percent-encoded bytes that are not UTF-8".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(url: &str) -> String {
        parse(url, &TcpSettings::default()).map(|a| a.place).unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn the_three_kinds() {
        assert_eq!(place("redis://:pw@127.0.0.1:6380/2"), "127.0.0.1:6380/2");
        assert_eq!(
            place("redis+sentinel://u:p%40ss@10.0.0.1:26379,10.0.0.2/mymaster/3"),
            "sentinel 10.0.0.1:26379,10.0.0.2:26379/mymaster/3"
        );
        assert_eq!(
            place("rediss+cluster://user:pw@a.example:7000,b.example:7001"),
            "cluster a.example:7000,b.example:7001"
        );
        assert_eq!(place("redis+cluster://[::1]:7000"), "cluster [::1]:7000");
        let sentinel =
            parse("redis+sentinel://u:p%40ss@h:1/svc?sentinelPassword=s3nt", &TcpSettings::default()).unwrap();
        assert_eq!(sentinel.secrets, vec!["p@ss".to_owned(), "s3nt".to_owned()]);
        let Target::Sentinel { service, .. } = sentinel.target else { panic!() };
        assert_eq!(service, "svc");
    }

    #[test]
    fn mistakes_are_named_and_the_url_never_repeated() {
        for bad in [
            "http://x",
            "redis://",
            "redis://h/not-a-db",
            "rediss://:pw@/0",
            "redis+sentinel://:Secret-pw@h:1",
            "redis+sentinel://:Secret-pw@h:1/svc/x",
            "redis+cluster://:Secret-pw@h:99999",
            "redis+cluster://:Secret-pw@h:1/3",
            "redis+cluster://:Secret-pw@h:1?password=x",
            "redis+sentinel://:Secret%zz@h:1/s",
            "redis+cluster://:Secret-pw@h b:1",
        ] {
            let message = place(bad);
            assert!(message.starts_with("error: "), "{bad}: {message}");
            assert!(!message.contains("Secret") && !message.contains("pw"), "{message}");
        }
    }
}
