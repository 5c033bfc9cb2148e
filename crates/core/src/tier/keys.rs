//! Where the tier keeps things in Redis.
//!
//! Two kinds of slot (see `tiles.rs`):
//! - **Area data** (entries, leases) under one hash tag per tile, `{prefix:<tile>}`, so that a
//!   Redis Cluster spreads a fleet over its shards while each tile's Lua scripts touch keys of
//!   one slot. Names carry the layout's version (`v2`): an instance of another layout neither
//!   reads nor overwrites them.
//! - **Control** (budget counters, cooldowns) under `{prefix}`, a slot of its own: every upstream
//!   call of every instance is admitted there, whatever the area. These names are the ones of
//!   the first layout, so that a rolling upgrade keeps counting one budget.
//!
//! Scripts are given every key they touch (`KEYS`): nothing is built inside a script.

use super::tiles::Tile;
use crate::geo::LatLon;

/// The layout of area data (key names and stored values).
pub const LAYOUT: &str = "v2";

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    /// `{prefix}`: the control slot's tag.
    control: String,
    /// Pub/sub channel: `landed <member>` and `released <member>` (channels have no slot).
    pub channel: String,
}

/// One tile's keys.
#[derive(Clone, Debug, PartialEq)]
pub struct TileKeys {
    /// GEO set of live entries, by rounded location (member: `lat,lon`).
    pub entries: String,
    /// Hash member -> `<written ms>:<expires ms>:<payload>` (server time).
    pub payloads: String,
    /// Sorted set of members by expiry (server ms): bounded trimming.
    pub expiries: String,
    /// GEO set of leases (fetches in progress), by location.
    pub leases: String,
    /// Hash member -> `<token> <expires ms>` (server time).
    pub owners: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        let control = format!("{{{prefix}}}");
        Keys { prefix: prefix.to_owned(), channel: format!("{control}:landed"), control }
    }

    pub fn tile(&self, tile: Tile) -> TileKeys {
        let tag = format!("{{{}:{tile}}}:{LAYOUT}", self.prefix);
        TileKeys {
            entries: format!("{tag}:entries"),
            payloads: format!("{tag}:payloads"),
            expiries: format!("{tag}:expiries"),
            leases: format!("{tag}:leases"),
            owners: format!("{tag}:owners"),
        }
    }

    /// The provider's rate-limit cooldown: until when (server ms), without a TTL.
    pub fn cooldown(&self, provider: &str) -> String {
        format!("{}:cooldown:{provider}", self.control)
    }

    /// The provider's calls in the current minute / UTC day (`"<window>:<count>"`), without a TTL.
    pub fn budget(&self, provider: &str, window: &str) -> String {
        format!("{}:budget:{provider}:{window}", self.control)
    }

    /// GEO set of the provider's failing areas (error cooldowns shared by every instance).
    pub fn failing(&self, provider: &str) -> String {
        format!("{}:failing:{provider}", self.control)
    }

    /// Hash member -> `<until ms> <failures in a row> <error>` of the failing areas.
    pub fn failures(&self, provider: &str) -> String {
        format!("{}:failures:{provider}", self.control)
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

    /// What `CLUSTER KEYSLOT` hashes: the first `{...}` with something in it.
    fn hash_tag(key: &str) -> &str {
        let open = key.find('{').unwrap();
        let close = open + key[open..].find('}').unwrap();
        &key[open + 1..close]
    }

    #[test]
    fn a_tiles_keys_share_its_tag_and_control_keys_another() {
        let keys = Keys::new("weather-cache");
        let paris = keys.tile(Tile::of(LatLon::new(48.86, 2.35)));
        for key in [&paris.entries, &paris.payloads, &paris.expiries, &paris.leases, &paris.owners] {
            assert_eq!(hash_tag(key), "weather-cache:48,2", "{key}");
            assert!(key.starts_with("{weather-cache:") && key.contains(":v2:"), "{key}");
        }
        let sydney = keys.tile(Tile::of(LatLon::new(-33.87, 151.21)));
        assert_eq!(hash_tag(&sydney.entries), "weather-cache:-34,150");
        for key in
            [keys.cooldown("openweather"), keys.budget("openweather", "day"), keys.failing("x"), keys.failures("x")]
        {
            assert_eq!(hash_tag(&key), "weather-cache", "{key}");
            assert!(key.starts_with("{weather-cache}:"), "{key}");
        }
        assert_eq!(
            keys.budget("openweather", "minute"),
            "{weather-cache}:budget:openweather:minute",
            "the first layout's name"
        );
        assert_eq!(keys.channel, "{weather-cache}:landed");
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
