//! The tier's scripts and failure handling against a real `redis-server`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::test_support::redis::RedisServer;

type Seen = Arc<Mutex<Vec<(Transition, String)>>>;

/// A caller with plenty of time for Redis.
const T: Duration = Duration::from_secs(5);

fn tier_at(url: &str, timeout_ms: u64) -> (Arc<SharedTier>, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let observer = Box::new(move |t: &Transition, _place: &str, reason: &str| record.lock().unwrap().push((t.clone(), reason.to_owned())));
    let config = TierConfig { url: url.to_owned(), key_prefix: "test".into(), timeout: Duration::from_millis(timeout_ms) };
    (SharedTier::new(config, &tokio::runtime::Handle::current(), observer).unwrap(), seen)
}

fn stored(lat: f64, lon: f64, fetched_at: i64) -> Stored {
    Stored { celsius: 12.5, condition: "Rain".into(), fetched_at, location: LatLon::new(lat, lon), provider: "openweather".into(), held_until: 0, validator: None }
}

fn request<'a>(at: LatLon, member: &'a str, token: &'a str, now_ms: i64) -> LeaseRequest<'a> {
    LeaseRequest {
        at,
        search_km: 5.0,
        radius_km: 5.0,
        points: &[],
        candidates: &[],
        member,
        token,
        lease: Duration::from_secs(10),
        now_ms,
        fresh_ms: 600_000,
        must_lease: false,
    }
}

#[tokio::test]
async fn find_or_lease_then_store_then_fresh() {
    let Some(server) = RedisServer::start(None) else { return };
    let (a, _) = tier_at(&server.url(), 1_000);
    let (b, _) = tier_at(&server.url(), 1_000);
    let here = LatLon::new(48.86, 2.35);
    let near = LatLon::new(48.87, 2.37); // 1.8 km away, across a cell border or not
    let now = 1_700_000_000_000;
    let first = a.find_or_lease(&request(here, &member(here), "token-a", now), T).await.unwrap();
    assert_eq!((first.status, first.entries.len()), (LeaseStatus::Acquired { candidate: None }, 0));
    // B, 1.8 km away, sees A's lease: it waits instead of fetching.
    let second = b.find_or_lease(&request(near, &member(near), "token-b", now), T).await.unwrap();
    assert!(matches!(second.status, LeaseStatus::Held { remaining } if remaining > Duration::from_secs(9)));
    a.store(&stored(here.lat, here.lon, now), Duration::from_secs(7_200), Some("token-a")).await.unwrap();
    let third = b.find_or_lease(&request(near, &member(near), "token-b", now + 1_000), T).await.unwrap();
    assert_eq!(third.status, LeaseStatus::Fresh);
    assert_eq!(third.entries, vec![stored(here.lat, here.lon, now)]);
    // Stale by the reader's clock: returned, but the reader takes the lease to refresh.
    let later = b.find_or_lease(&request(near, &member(near), "token-b", now + 600_000), T).await.unwrap();
    assert_eq!((later.status, later.entries.len()), (LeaseStatus::Acquired { candidate: None }, 1));
    // Fresh, but not answering all of a caller's waiters: with must_lease it goes on to leases
    // (here it finds B's, 2 km away).
    let third_member = member(LatLon::new(48.88, 2.35));
    let must = LeaseRequest { must_lease: true, ..request(LatLon::new(48.88, 2.35), &third_member, "token-c", now + 1_000) };
    let fourth = a.find_or_lease(&must, T).await.unwrap();
    assert!(matches!(fourth.status, LeaseStatus::Held { .. }), "{:?}", fourth.status);
    assert_eq!(fourth.entries.len(), 1);
    // Far away: nothing.
    let far = LatLon::new(40.0, -3.0);
    let elsewhere = a.find_or_lease(&request(far, &member(far), "token-a", now), T).await.unwrap();
    assert_eq!((elsewhere.status, elsewhere.entries.len()), (LeaseStatus::Acquired { candidate: None }, 0));
}

#[tokio::test]
async fn a_lease_is_waited_on_only_by_points_it_covers() {
    let Some(server) = RedisServer::start(None) else { return };
    let (tier, _) = tier_at(&server.url(), 1_000);
    let x = LatLon::new(10.0, 10.0);
    let y = LatLon::new(10.0, 10.0183); // 2 km east of X
    let near_x = LatLon::new(10.0, 10.0091); // 1 km east of X
    let far = LatLon::new(10.0, 10.064); // 7 km east of X, 5 km east of Y
    assert_eq!(tier.find_or_lease(&request(x, &member(x), "a", 0), T).await.unwrap().status, LeaseStatus::Acquired { candidate: None });
    // B's waiters: one that A's fetch will cover, one it will not. B must fetch: it leases.
    let (y_member, z_member) = (member(y), member(LatLon::new(10.0, 10.03)));
    let b = LeaseRequest { points: &[near_x, far], ..request(y, &y_member, "b", 0) };
    assert_eq!(tier.find_or_lease(&b, T).await.unwrap().status, LeaseStatus::Acquired { candidate: None });
    // C's waiters are each within 5 km of A's or B's lease: C waits.
    let z = LatLon::new(10.0, 10.03);
    let c = LeaseRequest { points: &[near_x, LatLon::new(10.0, 10.05)], ..request(z, &z_member, "c", 0) };
    assert!(matches!(tier.find_or_lease(&c, T).await.unwrap().status, LeaseStatus::Held { .. }));
    // D's flight location is covered by A's lease, and so is one of its waiters; the other is
    // not: D leases at that waiter's spot (a candidate), not at its own location.
    let (open, covered) = (LatLon::new(10.0, 9.93), LatLon::new(10.0, 9.995));
    let candidates = vec![(open, member(open)), (covered, member(covered))];
    let d_member = member(LatLon::new(10.0, 9.98));
    let d = LeaseRequest { points: &[open, covered], candidates: &candidates, ..request(LatLon::new(10.0, 9.98), &d_member, "d", 0) };
    assert_eq!(tier.find_or_lease(&d, T).await.unwrap().status, LeaseStatus::Acquired { candidate: Some(0) });
}

#[tokio::test]
async fn a_released_lease_is_announced_and_free() {
    let Some(server) = RedisServer::start(None) else { return };
    let (a, _) = tier_at(&server.url(), 1_000);
    let (b, _) = tier_at(&server.url(), 1_000);
    let mut heard = b.announcements();
    let here = LatLon::new(10.0, 10.0);
    let m = member(here);
    assert_eq!(a.find_or_lease(&request(here, &m, "a", 0), T).await.unwrap().status, LeaseStatus::Acquired { candidate: None });
    // Give B's subscription a moment to be in place (it is made in the background).
    tokio::time::sleep(Duration::from_millis(200)).await;
    a.release(&m, "not-the-owner").await.unwrap();
    assert!(matches!(b.find_or_lease(&request(here, &m, "b", 0), T).await.unwrap().status, LeaseStatus::Held { .. }));
    a.release(&m, "a").await.unwrap();
    let announcement = tokio::time::timeout(Duration::from_secs(2), heard.recv()).await.unwrap().unwrap();
    assert_eq!(announcement.at, here);
    assert_eq!(b.find_or_lease(&request(here, &m, "b", 0), T).await.unwrap().status, LeaseStatus::Acquired { candidate: None });
}

#[tokio::test]
async fn admission_counts_the_budget_and_honours_cooldowns() {
    let Some(server) = RedisServer::start(None) else { return };
    let (a, _) = tier_at(&server.url(), 1_000);
    let (b, _) = tier_at(&server.url(), 1_000);
    let limits = Limits { per_minute: 3, per_day: 0 };
    let mut admitted = 0;
    for tier in [&a, &b, &a, &b, &a] {
        match tier.admit("openweather", limits, T).await.unwrap() {
            Admission::Admitted => admitted += 1,
            Admission::OverBudget { retry_after } => assert!(retry_after <= Duration::from_secs(60)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted, 3, "the budget is shared by both instances");
    assert_eq!(a.admit("open-meteo", limits, T).await.unwrap(), Admission::Admitted, "budgets are per provider");
    b.cool_down("open-meteo", Duration::from_secs(30)).await.unwrap();
    b.cool_down("open-meteo", Duration::from_secs(1)).await.unwrap(); // never shortens
    match a.admit("open-meteo", limits, T).await.unwrap() {
        Admission::Cooling { remaining } => assert!(remaining > Duration::from_secs(28)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_dead_server_opens_the_circuit_and_a_restart_closes_it() {
    let Some(mut server) = RedisServer::start(None) else { return };
    let (tier, seen) = tier_at(&server.url(), 200);
    let here = LatLon::new(1.0, 1.0);
    tier.find_or_lease(&request(here, &member(here), "t", 0), T).await.unwrap();
    server.kill();
    let started = std::time::Instant::now();
    assert!(matches!(tier.find_or_lease(&request(here, &member(here), "t", 0), T).await, Err(TierError::Failed(_))));
    assert!(started.elapsed() < Duration::from_millis(500), "within the deadline");
    // While the circuit is open nothing is attempted at all.
    assert_eq!(tier.find_or_lease(&request(here, &member(here), "t", 0), T).await.unwrap_err(), TierError::Skipped);
    assert_eq!(tier.errors(), 1);
    assert!(!tier.is_up());
    server.restart();
    tokio::time::sleep(circuit::FIRST_BACKOFF).await;
    // The probe may meet the manager's stale connection once; then it is back.
    let mut back = false;
    for _ in 0..20 {
        if tier.find_or_lease(&request(here, &member(here), "t", 0), T).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back && tier.is_up(), "recovered by itself");
    let seen = seen.lock().unwrap();
    assert!(matches!(seen.first(), Some((Transition::Degraded { .. }, _))));
    assert!(matches!(seen.last(), Some((Transition::Restored { .. }, _))));
    assert_eq!(seen.iter().filter(|(t, _)| matches!(t, Transition::Degraded { .. })).count(), 1, "one event per transition");
}

#[tokio::test]
async fn the_password_appears_in_no_message() {
    let Some(server) = RedisServer::start(Some("s3cret-Pa55word")) else { return };
    let wrong = format!("redis://:wrong-Pa55word@127.0.0.1:{}/0", server.port);
    let (tier, seen) = tier_at(&wrong, 500);
    let here = LatLon::new(1.0, 1.0);
    let error = tier.find_or_lease(&request(here, &member(here), "t", 0), T).await.unwrap_err();
    let text = format!("{error:?} {:?} {}", seen.lock().unwrap(), tier.place());
    assert!(!text.contains("Pa55word"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{}", server.port)), "{text}");
    // And the right one works.
    let (tier, _) = tier_at(&server.url(), 500);
    assert!(tier.find_or_lease(&request(here, &member(here), "t", 0), T).await.is_ok());
    for bad in ["http://x", "redis://", "redis://h/not-a-db", "rediss://:pw@/0"] {
        let config = TierConfig { url: bad.into(), key_prefix: "p".into(), timeout: Duration::from_millis(100) };
        let message = SharedTier::new(config, &tokio::runtime::Handle::current(), Box::new(|_: &Transition, _: &str, _: &str| {})).err().unwrap();
        assert!(!message.contains("pw"), "{message}");
    }
}

#[tokio::test]
async fn a_landing_trims_dead_entries_and_dead_leases() {
    let Some(server) = RedisServer::start(None) else { return };
    let (tier, _) = tier_at(&server.url(), 1_000);
    let mut raw = redis::Client::open(server.url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let reader = raw.clone();
    let members = |key: &'static str| {
        let mut raw = reader.clone();
        async move { redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).query_async::<Vec<String>>(&mut raw).await.unwrap() }
    };
    // A holder that died mid-fetch: its lease key expired, its GEO member stayed.
    let _: () = redis::cmd("GEOADD").arg("{test}:leases").arg(2.35).arg(48.86).arg("48.86,2.35").query_async(&mut raw).await.unwrap();
    // An entry whose payload expired.
    tier.store(&stored(10.0, 10.0, 1), Duration::from_millis(1), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(members("{test}:entries").await, vec!["10,10".to_owned()]);
    tier.store(&stored(20.0, 20.0, 1), Duration::from_secs(60), None).await.unwrap();
    assert_eq!(members("{test}:entries").await, vec!["20,20".to_owned()], "the dead entry's member is gone");
    assert_eq!(members("{test}:leases").await, Vec::<String>::new(), "the dead lease's member is gone");
    // A live lease stays.
    let here = LatLon::new(30.0, 30.0);
    let taken = tier.find_or_lease(&request(here, &member(here), "token", 1), T).await.unwrap();
    assert_eq!(taken.status, LeaseStatus::Acquired { candidate: None });
    tier.store(&stored(40.0, 40.0, 1), Duration::from_secs(60), None).await.unwrap();
    assert_eq!(members("{test}:leases").await, vec!["30,30".to_owned()]);
}
