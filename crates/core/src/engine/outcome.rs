//! How a flight ended: what the flight (`flight.rs`) and its dealings with the shared tier
//! (`tiered.rs`) both produce, and the flight then interprets.

use std::sync::Arc;

use super::error::RequestError;
use crate::cache::{Entry, Observation, Products};
use crate::geo::LatLon;

/// How a flight ended, before the engine interprets it.
pub(super) enum Outcome {
    /// Provider `provider` (an index into the upstreams) answered, about `at`.
    Observed { fetched: Fetched, provider: usize, at: LatLon },
    /// Entries at hand covered every waiter (each took the best for its point, see
    /// `Pending::wait`): the shared tier's, and `fetched` if the flight also fetched at a
    /// waiter's spot. `answer` is the first waiter's, `served` every entry chosen.
    Tier { answer: Arc<Entry>, served: Vec<Arc<Entry>>, fetched: bool },
    /// No provider answered: the most telling reason, and whether any call was made.
    Failed { error: RequestError, called: bool },
    /// The service closed (or the runtime is shutting down) first.
    Cancelled,
}

/// A provider's reading, and what the provider asked of it.
pub(super) struct Fetched {
    pub observation: Observation,
    /// How long not to ask the provider again about the place (see `Terms::held_until`).
    pub hold_ms: i64,
    pub validator: Option<Box<str>>,
    /// The answer's forecast products, if it carried any.
    pub products: Option<Arc<Products>>,
}
