//! What a request is answered with: an entry, and where it came from. Below the lookup, the
//! flights and the shared tier's dealings, which all hand one out.

use std::sync::Arc;

use crate::cache::Entry;

/// Where an answer came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    StaleCache,
    Network,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Cache => "cache",
            Source::StaleCache => "stale-cache",
            Source::Network => "network",
        }
    }
}

/// An answer: the entry, and where it came from.
#[derive(Clone, Debug)]
pub struct Served {
    pub entry: Arc<Entry>,
    pub source: Source,
}
