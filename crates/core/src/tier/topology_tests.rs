//! The tier on production topologies, started by the tests from Debian's packages: Sentinel
//! (a primary, a replica, a sentinel; the primary dies) and a three-master Redis Cluster (a
//! continent spread over the masters, lookups across tile edges, slots moved under it).

use std::time::{Duration, Instant};

use super::tests::{request, tier_at, wall_clock_ms};
use super::*;
use crate::testing::redis_topology::{Cluster, SentinelSetup};

fn stored(at: LatLon) -> Stored {
    Stored { celsius: 3.0, condition: "Snow".into(), fetched_at: wall_clock_ms(), location: at, provider: "openweather".into(), held_until: 0, validator: None, products: None }
}

/// Retries `operation` until it succeeds (at most `within`), checking that no attempt takes
/// longer than `each`: nothing hangs while Redis is away. Returns how long it took.
async fn until_ok<T>(mut operation: impl AsyncFnMut() -> Result<T, TierError>, within: Duration, each: Duration) -> Option<(T, Duration)> {
    let started = Instant::now();
    while started.elapsed() < within {
        let attempt = Instant::now();
        let result = operation().await;
        assert!(attempt.elapsed() <= each, "an operation took {:?}", attempt.elapsed());
        if let Ok(value) = result {
            return Some((value, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(any(redis_server_missing, redis_sentinel_missing), ignore = "redis-server or redis-sentinel is not installed")]
async fn sentinel_the_tier_comes_back_on_the_promoted_replica_by_itself() {
    let mut setup = SentinelSetup::start().await;
    let (tier, seen) = tier_at(&setup.url(), 200);
    let here = LatLon::new(59.91, 10.75);
    let each = Duration::from_millis(600);
    assert!(until_ok(async || tier.store(&stored(here), Duration::from_secs(3_600), None).await, Duration::from_secs(5), each).await.is_some());
    // Replicated before the primary dies.
    let mut replica = setup.replica.admin().await;
    let replicated = until_ok(
        async || match redis::cmd("HLEN").arg("{test:58,10}:v2:payloads").query_async::<u64>(&mut replica).await {
            Ok(1) => Ok(()),
            _ => Err(TierError::Skipped),
        },
        Duration::from_secs(5),
        each,
    );
    assert!(replicated.await.is_some(), "never replicated");
    setup.primary.kill();
    // The tier asks the sentinel for the primary at every new connection: once the replica is
    // promoted, it is back, by itself, within 20 s; no operation meanwhile takes longer than its
    // deadline (plus scheduling).
    let other = LatLon::new(60.39, 5.32);
    let back = until_ok(async || tier.store(&stored(other), Duration::from_secs(3_600), None).await, Duration::from_secs(20), each).await;
    let (_, took) = back.expect("the tier never came back");
    assert!(tier.is_up());
    // Nothing lost: what was written before the failover is there.
    let member_here = member(here);
    let found = tier.find_or_lease(&request(here, &member_here, "t", wall_clock_ms())).await.unwrap();
    assert_eq!((found.status, found.entries.len()), (LeaseStatus::Fresh, 1));
    let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut setup.replica.admin().await).await.unwrap();
    assert_eq!(role.first(), Some(&redis::Value::BulkString(b"master".to_vec())), "the replica was promoted");
    let last = super::tests::last_after_settling(&seen).await;
    assert!(matches!(last, Some(Notice::Restored { .. })), "{:?}", seen.lock().unwrap());
    eprintln!("sentinel failover: back after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(any(redis_server_missing, redis_cli_missing), ignore = "redis-server or redis-cli is not installed")]
async fn a_cluster_spreads_a_continent_over_every_master_and_follows_its_slots() {
    let cluster = Cluster::start().await;
    let (a, _) = tier_at(&cluster.url(), 500);
    let (b, _) = tier_at(&cluster.url(), 500);
    let each = Duration::from_secs(2);
    // Europe, one spot every 2.5 degrees.
    let spots: Vec<LatLon> =
        (0..12).flat_map(|i| (0..16).map(move |j| LatLon::new(36.0 + 2.5 * f64::from(i), -10.0 + 2.5 * f64::from(j)))).collect();
    for spot in &spots {
        assert!(until_ok(async || a.store(&stored(*spot), Duration::from_secs(3_600), None).await, Duration::from_secs(10), each).await.is_some());
    }
    let counts = cluster.key_counts().await;
    assert!(counts.iter().all(|n| *n > 20), "every master holds a share: {counts:?}");
    // Another instance finds them, one slot per tile.
    for spot in spots.iter().step_by(7) {
        let m = member(*spot);
        let found = b.find_or_lease(&request(*spot, &m, "b", wall_clock_ms())).await.unwrap();
        assert_eq!((found.status, found.entries.len()), (LeaseStatus::Fresh, 1), "{spot:?}");
    }
    // Near a tile's edge both tiles are asked: an entry 1.1 km north of the 48th parallel
    // answers a lookup 1.1 km south of it (two slots, two round trips).
    let (north, south) = (LatLon::new(48.01, 2.5), LatLon::new(47.99, 2.5));
    assert!(until_ok(async || a.store(&stored(north), Duration::from_secs(3_600), None).await, Duration::from_secs(5), each).await.is_some());
    let m = member(south);
    let found = b.find_or_lease(&request(south, &m, "b", wall_clock_ms())).await.unwrap();
    assert_eq!(found.status, LeaseStatus::Fresh);
    assert!(found.entries.iter().any(|e| e.location == north));
    // And a lease across the edge is waited on: A fetches at 49.995 (tile 48), B's request at
    // 50.005 (tile 50) waits for it.
    let (below, above) = (LatLon::new(49.995, 20.0), LatLon::new(50.005, 20.0));
    let (mb, ma) = (member(below), member(above));
    assert_eq!(a.find_or_lease(&request(below, &mb, "a", wall_clock_ms())).await.unwrap().status, LeaseStatus::Acquired { candidate: None });
    assert!(matches!(b.find_or_lease(&request(above, &ma, "b", wall_clock_ms())).await.unwrap().status, LeaseStatus::Held { .. }));
    // Budgets live in a slot of their own, shared by both.
    let limits = Limits { per_minute: 3, per_day: 0 };
    let mut admitted = 0;
    for tier in [&a, &b, &a, &b] {
        if tier.admit("openweather", limits, Some((north, 5.0))).await.unwrap() == Admission::Admitted {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
    // A topology change: every slot of the first master moves to the second, keys and all.
    // The tier follows the redirections.
    cluster.move_all_slots(0, 1).await;
    assert_eq!(cluster.key_counts().await[0], 0);
    for spot in spots.iter().step_by(5) {
        let m = member(*spot);
        let found = until_ok(async || b.find_or_lease(&request(*spot, &m, "b", wall_clock_ms())).await, Duration::from_secs(10), each).await;
        let (found, _) = found.expect("lost after the slots moved");
        assert_eq!((found.status, found.entries.len()), (LeaseStatus::Fresh, 1), "{spot:?}");
    }
}
