//! The snapshot file: one header line, then the body (JSON).
//!
//! ```text
//! weather-cache-snapshot 1 <body bytes> <FNV-1a 64 of the body, 16 hex digits>\n
//! {"savedAt":...,"engine":{"entries":[...],"providers":[...]}}
//! ```
//!
//! The length catches a truncated file, the checksum a damaged one, the version a file written
//! by a release whose format this one does not read. Nothing in a rejected file is used.

use serde::{Deserialize, Serialize};

use crate::engine::EngineState;

const MAGIC: &str = "weather-cache-snapshot";
/// Bumped whenever a change to the body would be misread by an older or newer release.
pub const VERSION: u32 = 1;

/// The body as written: the engine's state, borrowed.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Written<'a> {
    /// When it was written (wall clock, epoch ms): for people reading the file.
    saved_at: i64,
    engine: &'a EngineState,
}

/// The body as read.
#[derive(Deserialize)]
struct Read {
    engine: EngineState,
}

/// Why a file was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Not a snapshot of ours at all.
    Foreign,
    /// Another format version.
    Version(String),
    /// Shorter than its header says.
    Truncated,
    /// The checksum does not match: damaged.
    Checksum,
    /// Well framed, but not a body this release reads.
    Invalid(String),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Foreign => write!(f, "not a weather-cache snapshot"),
            Rejected::Version(v) => write!(f, "format version {v}, this release reads {VERSION}"),
            Rejected::Truncated => write!(f, "truncated"),
            Rejected::Checksum => write!(f, "checksum mismatch (damaged)"),
            Rejected::Invalid(why) => write!(f, "unreadable body ({why})"),
        }
    }
}

pub fn encode(state: &EngineState, saved_at: i64) -> Vec<u8> {
    let body = serde_json::to_vec(&Written { saved_at, engine: state }).unwrap_or_default();
    let mut out = format!("{MAGIC} {VERSION} {} {:016x}\n", body.len(), fnv1a(&body)).into_bytes();
    out.extend_from_slice(&body);
    out
}

pub fn decode(bytes: &[u8]) -> Result<EngineState, Rejected> {
    let newline = bytes.iter().take(200).position(|&b| b == b'\n');
    let Some(newline) = newline else {
        // Nothing, or a header cut short: what a crash mid-write leaves (without a rename).
        let ours = bytes.starts_with(MAGIC.as_bytes()) || MAGIC.as_bytes().starts_with(bytes);
        return Err(if ours { Rejected::Truncated } else { Rejected::Foreign });
    };
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| Rejected::Foreign)?;
    let mut fields = header.split(' ');
    if fields.next() != Some(MAGIC) {
        return Err(Rejected::Foreign);
    }
    let version = fields.next().unwrap_or("");
    if version != VERSION.to_string() {
        return Err(Rejected::Version(version.chars().take(16).collect()));
    }
    let length: usize = fields.next().and_then(|n| n.parse().ok()).ok_or(Rejected::Foreign)?;
    let checksum = fields.next().and_then(|c| u64::from_str_radix(c, 16).ok()).ok_or(Rejected::Foreign)?;
    let body = &bytes[newline + 1..];
    if body.len() < length {
        return Err(Rejected::Truncated);
    }
    if body.len() > length || fnv1a(body) != checksum {
        return Err(Rejected::Checksum);
    }
    let body: Read = serde_json::from_slice(body).map_err(|e| Rejected::Invalid(e.to_string()))?;
    Ok(body.engine)
}

/// FNV-1a, 64 bits: catches damage, which is all a local file needs (no adversary writes it
/// that could not also write a matching checksum).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::SavedEntry;

    fn state() -> EngineState {
        EngineState {
            entries: vec![SavedEntry {
                lat: 48.85,
                lon: 2.35,
                celsius: 20.6,
                condition: "Clouds".into(),
                provider: "openweather".into(),
                fetched_at: 1_000,
                held_until: 0,
                validator: None,
                products: None,
            }],
            providers: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_every_kind_of_bad_file() {
        let bytes = encode(&state(), 5);
        assert_eq!(decode(&bytes), Ok(state()));
        assert_eq!(decode(&bytes[..bytes.len() - 3]), Err(Rejected::Truncated));
        assert_eq!(decode(&bytes[..10]), Err(Rejected::Truncated));
        let mut damaged = bytes.clone();
        let last = damaged.len() - 5;
        damaged[last] ^= 0x20;
        assert_eq!(decode(&damaged), Err(Rejected::Checksum));
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"\n\n");
        assert_eq!(decode(&longer), Err(Rejected::Checksum));
        let other = String::from_utf8(bytes.clone()).unwrap().replacen(" 1 ", " 2 ", 1);
        assert_eq!(decode(other.as_bytes()), Err(Rejected::Version("2".into())));
        assert_eq!(decode(b"{\"entries\":[]}\n"), Err(Rejected::Foreign));
        assert_eq!(decode(b""), Err(Rejected::Truncated));
        let body = b"{\"savedAt\":1}";
        let framed = [format!("{MAGIC} 1 {} {:016x}\n", body.len(), fnv1a(body)).as_bytes(), body].concat();
        assert!(matches!(decode(&framed), Err(Rejected::Invalid(_))));
    }
}
