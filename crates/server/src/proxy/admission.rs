//! Which connections are taken: at most `--max-connections` at once, and at most
//! `--max-connections-per-ip` from one address (an IPv4 address or an IPv6 /64), so that a
//! handful of addresses cannot hold every slot. Peers named by `--trust-proxy` (a load balancer
//! carries many clients on its connections) are held to the global limit only.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::limits::IpKey;

/// Connections open per address (entries at 0 are removed).
type OpenPerAddress = Arc<Mutex<HashMap<IpKey, usize>>>;

pub struct Admission {
    all: Arc<Semaphore>,
    per_address: usize,
    open: OpenPerAddress,
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Full,
    PerAddress,
}

/// A slot, given back when dropped (when the connection ends).
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    address: Option<(IpKey, OpenPerAddress)>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((key, open)) = &self.address {
            let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = open.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    open.remove(key);
                }
            }
        }
    }
}

impl Admission {
    pub fn new(max_connections: usize, per_address: usize) -> Admission {
        Admission { all: Arc::new(Semaphore::new(max_connections.max(1))), per_address: per_address.max(1), open: Arc::default() }
    }

    /// A slot for a connection from `peer`; `exempt` peers (trusted proxies) count against the
    /// global limit only.
    pub fn admit(&self, peer: IpAddr, exempt: bool) -> Result<Slot, Refusal> {
        let permit = self.all.clone().try_acquire_owned().map_err(|_| Refusal::Full)?;
        if exempt {
            return Ok(Slot { _permit: permit, address: None });
        }
        let key = IpKey::of(peer);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(key).or_insert(0);
        if *n >= self.per_address {
            return Err(Refusal::PerAddress);
        }
        *n += 1;
        drop(open);
        Ok(Slot { _permit: permit, address: Some((key, self.open.clone())) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_and_global_limits() {
        let admission = Admission::new(4, 2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let first = admission.admit(a, false).unwrap();
        let _second = admission.admit(a, false).unwrap();
        assert_eq!(admission.admit(a, false).err(), Some(Refusal::PerAddress));
        let _third = admission.admit(b, false).unwrap();
        let _balancer = admission.admit(b, true).unwrap();
        assert_eq!(admission.admit("192.0.2.3".parse().unwrap(), false).err(), Some(Refusal::Full));
        drop(first);
        assert!(admission.admit(a, false).is_ok(), "a slot given back");
        assert!(admission.open.lock().unwrap().len() <= 2);
    }
}
