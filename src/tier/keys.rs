//! Where the tier keeps things in Redis. Every key of one namespace sits under one hash tag,
//! `{prefix}`, so that a Redis Cluster keeps them in one slot: the Lua scripts touch several
//! keys at once (an entry, its GEO member, a lease), which Cluster allows only within a slot.

use crate::geo::LatLon;

#[derive(Clone, Debug)]
pub struct Keys {
    /// GEO set of live entries, by rounded location.
    pub entries: String,
    /// Sorted set of the same members by expiry (server time, ms): bounded trimming.
    pub expiries: String,
    /// `entry_prefix + member` holds an entry's payload (expires with its stale window).
    pub entry_prefix: String,
    /// GEO set of leases (fetches in progress somewhere), by location.
    pub leases: String,
    /// `lease_prefix + member` holds the lease owner's token (expires with the lease).
    pub lease_prefix: String,
    /// Pub/sub channel: `landed <member>` and `released <member>`.
    pub channel: String,
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let tag = format!("{{{prefix}}}");
        Keys {
            entries: format!("{tag}:entries"),
            expiries: format!("{tag}:expiries"),
            entry_prefix: format!("{tag}:e:"),
            leases: format!("{tag}:leases"),
            lease_prefix: format!("{tag}:l:"),
            channel: format!("{tag}:landed"),
            prefix: tag,
        }
    }

    pub fn entry(&self, member: &str) -> String {
        format!("{}{member}", self.entry_prefix)
    }

    pub fn lease(&self, member: &str) -> String {
        format!("{}{member}", self.lease_prefix)
    }

    /// The provider's rate-limit cooldown (its PTTL is the time left).
    pub fn cooldown(&self, provider: &str) -> String {
        format!("{}:cooldown:{provider}", self.prefix)
    }

    /// The provider's calls in the current minute / UTC day (`"<window>:<count>"`).
    pub fn budget(&self, provider: &str, window: &str) -> String {
        format!("{}:budget:{provider}:{window}", self.prefix)
    }
}

/// An area's name in Redis: its rounded location. Fetches for one rounded location share it
/// (entry, lease), whichever instance makes them.
pub fn member(at: LatLon) -> String {
    // Shortest round-trip formatting: equal doubles give equal members on every instance.
    format!("{},{}", at.lat + 0.0, at.lon + 0.0)
}

/// The location a member names, if it is one of ours.
pub fn parse_member(member: &str) -> Option<LatLon> {
    let (lat, lon) = member.split_once(',')?;
    Some(LatLon::new(lat.parse().ok()?, lon.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_one_hash_tag() {
        let keys = Keys::new("weather-cache");
        for key in [
            keys.entries.clone(),
            keys.expiries.clone(),
            keys.entry("1,2"),
            keys.leases.clone(),
            keys.lease("1,2"),
            keys.cooldown("openweather"),
            keys.budget("openweather", "day"),
        ] {
            assert!(key.starts_with("{weather-cache}:"), "{key}");
        }
    }

    #[test]
    fn members_round_trip() {
        for at in [LatLon::new(48.86, 2.35), LatLon::new(-0.0, -180.0), LatLon::new(85.05, 179.99)] {
            let parsed = parse_member(&member(at)).unwrap();
            assert_eq!((parsed.lat, parsed.lon), (at.lat + 0.0, at.lon));
        }
        assert_eq!(member(LatLon::new(-0.0, 2.5)), "0,2.5");
        assert!(parse_member("garbage").is_none());
    }
}
