//! The tier's scripts and failure handling against a real `redis-server`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::testing::redis::RedisServer;

/// What a tier reported to its observer. These helpers are shared by the tier's other test
/// files (`fault_tests`, `topology_tests`).
pub(super) type Seen = Arc<Mutex<Vec<Notice>>>;

pub(super) fn tier_at(url: &str, timeout_ms: u64) -> (Arc<SharedTier>, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let observer = Box::new(move |notice: &Notice, _place: &str| record.lock().unwrap().push(notice.clone()));
    let config =
        TierConfig { url: url.to_owned(), key_prefix: "test".into(), timeout: Duration::from_millis(timeout_ms) };
    (SharedTier::new(config, &tokio::runtime::Handle::current(), observer).unwrap(), seen)
}

fn stored(lat: f64, lon: f64, fetched_at: i64) -> Stored {
    Stored {
        celsius: 12.5,
        condition: "Rain".into(),
        fetched_at,
        location: LatLon::new(lat, lon),
        provider: "openweather".into(),
        held_until: 0,
        validator: None,
        products: None,
    }
}

pub(super) fn request<'a>(at: LatLon, member: &'a str, token: &'a str, now_ms: i64) -> LeaseRequest<'a> {
    LeaseRequest {
        at,
        search_km: 5.0,
        radius_km: 5.0,
        maybe_km: 5.0,
        covers: None,
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

/// The last notice, once the outage is told over: a circuit that closed is restored after it
/// stayed closed for `circuit::SETTLE` (see `circuit.rs`).
pub(super) async fn last_after_settling(seen: &Mutex<Vec<Notice>>) -> Option<Notice> {
    let deadline = std::time::Instant::now() + circuit::SETTLE + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        if matches!(seen.lock().unwrap().last(), Some(Notice::Restored { .. })) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen.lock().unwrap().last().cloned()
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn find_or_lease_then_store_then_fresh() {
    let server = RedisServer::start(None);
    let (a, _) = tier_at(&server.url(), 1_000);
    let (b, _) = tier_at(&server.url(), 1_000);
    let here = LatLon::new(48.86, 2.35);
    let near = LatLon::new(48.87, 2.37); // 1.8 km away, across a cell border or not
    let now = 1_700_000_000_000;
    let first = a.find_or_lease(&request(here, &member(here), "token-a", now)).await.unwrap();
    assert_eq!((first.status, first.entries.len()), (LeaseStatus::Acquired { candidate: None }, 0));
    // B, 1.8 km away, sees A's lease: it waits instead of fetching.
    let second = b.find_or_lease(&request(near, &member(near), "token-b", now)).await.unwrap();
    assert!(matches!(second.status, LeaseStatus::Held { remaining } if remaining > Duration::from_secs(9)));
    a.store(&stored(here.lat, here.lon, now), Duration::from_secs(7_200), Some("token-a")).await.unwrap();
    let third = b.find_or_lease(&request(near, &member(near), "token-b", now + 1_000)).await.unwrap();
    assert_eq!(third.status, LeaseStatus::Fresh);
    assert_eq!(third.entries, vec![stored(here.lat, here.lon, now)]);
    // Stale by the reader's clock: returned, but the reader takes the lease to refresh.
    let later = b.find_or_lease(&request(near, &member(near), "token-b", now + 600_000)).await.unwrap();
    assert_eq!((later.status, later.entries.len()), (LeaseStatus::Acquired { candidate: None }, 1));
    // Fresh, but not answering all of a caller's waiters: with must_lease it goes on to leases
    // (here it finds B's, 2 km away).
    let third_member = member(LatLon::new(48.88, 2.35));
    let must =
        LeaseRequest { must_lease: true, ..request(LatLon::new(48.88, 2.35), &third_member, "token-c", now + 1_000) };
    let fourth = a.find_or_lease(&must).await.unwrap();
    assert!(matches!(fourth.status, LeaseStatus::Held { .. }), "{:?}", fourth.status);
    assert_eq!(fourth.entries.len(), 1);
    // Far away: nothing.
    let far = LatLon::new(40.0, -3.0);
    let elsewhere = a.find_or_lease(&request(far, &member(far), "token-a", now)).await.unwrap();
    assert_eq!((elsewhere.status, elsewhere.entries.len()), (LeaseStatus::Acquired { candidate: None }, 0));
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_lease_is_waited_on_only_by_points_it_covers() {
    let server = RedisServer::start(None);
    let (tier, _) = tier_at(&server.url(), 1_000);
    let x = LatLon::new(10.0, 10.0);
    let y = LatLon::new(10.0, 10.0183); // 2 km east of X
    let near_x = LatLon::new(10.0, 10.0091); // 1 km east of X
    let far = LatLon::new(10.0, 10.064); // 7 km east of X, 5 km east of Y
    assert_eq!(
        tier.find_or_lease(&request(x, &member(x), "a", 0)).await.unwrap().status,
        LeaseStatus::Acquired { candidate: None }
    );
    // B's waiters: one that A's fetch will cover, one it will not. B must fetch: it leases.
    let (y_member, z_member) = (member(y), member(LatLon::new(10.0, 10.03)));
    let b = LeaseRequest { points: &[near_x, far], ..request(y, &y_member, "b", 0) };
    assert_eq!(tier.find_or_lease(&b).await.unwrap().status, LeaseStatus::Acquired { candidate: None });
    // C's waiters are each within 5 km of A's or B's lease: C waits.
    let z = LatLon::new(10.0, 10.03);
    let c = LeaseRequest { points: &[near_x, LatLon::new(10.0, 10.05)], ..request(z, &z_member, "c", 0) };
    assert!(matches!(tier.find_or_lease(&c).await.unwrap().status, LeaseStatus::Held { .. }));
    // D's flight location is covered by A's lease, and so is one of its waiters; the other is
    // not: D leases at that waiter's spot (a candidate), not at its own location.
    let (open, covered) = (LatLon::new(10.0, 9.93), LatLon::new(10.0, 9.995));
    let candidates = vec![(open, member(open)), (covered, member(covered))];
    let d_member = member(LatLon::new(10.0, 9.98));
    let d = LeaseRequest {
        points: &[open, covered],
        candidates: &candidates,
        ..request(LatLon::new(10.0, 9.98), &d_member, "d", 0)
    };
    assert_eq!(tier.find_or_lease(&d).await.unwrap().status, LeaseStatus::Acquired { candidate: Some(0) });
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_released_lease_is_announced_and_free() {
    let server = RedisServer::start(None);
    let (a, _) = tier_at(&server.url(), 1_000);
    let (b, _) = tier_at(&server.url(), 1_000);
    let mut heard = b.announcements();
    let here = LatLon::new(10.0, 10.0);
    let m = member(here);
    assert_eq!(
        a.find_or_lease(&request(here, &m, "a", 0)).await.unwrap().status,
        LeaseStatus::Acquired { candidate: None }
    );
    // B's subscription is made in the background: wait for the server's confirmation.
    b.listening().await;
    a.release(here, &m, "not-the-owner").await.unwrap();
    assert!(matches!(b.find_or_lease(&request(here, &m, "b", 0)).await.unwrap().status, LeaseStatus::Held { .. }));
    a.release(here, &m, "a").await.unwrap();
    let announcement = tokio::time::timeout(Duration::from_secs(2), heard.recv()).await.unwrap().unwrap();
    assert_eq!(announcement.at, here);
    assert_eq!(
        b.find_or_lease(&request(here, &m, "b", 0)).await.unwrap().status,
        LeaseStatus::Acquired { candidate: None }
    );
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn admission_counts_the_budget_and_honours_cooldowns() {
    let server = RedisServer::start(None);
    let (a, _) = tier_at(&server.url(), 1_000);
    let (b, _) = tier_at(&server.url(), 1_000);
    let limits = Limits { per_minute: 3, per_day: 0 };
    let mut admitted = 0;
    for tier in [&a, &b, &a, &b, &a] {
        match tier.admit("openweather", limits, None).await.unwrap() {
            Admission::Admitted => admitted += 1,
            Admission::OverBudget { retry_after } => assert!(retry_after <= Duration::from_secs(60)),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(admitted, 3, "the budget is shared by both instances");
    assert_eq!(a.admit("open-meteo", limits, None).await.unwrap(), Admission::Admitted, "budgets are per provider");
    b.cool_down("open-meteo", Duration::from_secs(30)).await.unwrap();
    b.cool_down("open-meteo", Duration::from_secs(1)).await.unwrap(); // never shortens
    match a.admit("open-meteo", limits, None).await.unwrap() {
        Admission::Cooling { remaining } => assert!(remaining > Duration::from_secs(28)),
        other => panic!("{other:?}"),
    }
    // The status page's shared counters: the three admitted calls, whichever instance asks
    // (five asked, two were refused). A minute may have turned between; the day has not.
    let calls = b.calls(&["openweather"]).await.unwrap()[0];
    assert_eq!(calls.today, 3, "{calls:?}");
    assert!(calls.this_minute == 3 || calls.this_minute == 0, "{calls:?}");
    assert!(calls.minute_left <= Duration::from_secs(60));
    let both = a.calls(&["met-norway", "openweather"]).await.unwrap();
    assert_eq!([both[0].today, both[1].today], [0, 3], "{both:?}");
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_dead_server_opens_the_circuit_and_a_restart_closes_it() {
    let mut server = RedisServer::start(None);
    let (tier, seen) = tier_at(&server.url(), 200);
    let here = LatLon::new(1.0, 1.0);
    tier.find_or_lease(&request(here, &member(here), "t", 0)).await.unwrap();
    server.kill();
    let started = std::time::Instant::now();
    assert!(matches!(tier.find_or_lease(&request(here, &member(here), "t", 0)).await, Err(TierError::Failed(_))));
    assert!(started.elapsed() < Duration::from_millis(500), "within the deadline");
    // While the circuit is open nothing is attempted at all.
    assert_eq!(tier.find_or_lease(&request(here, &member(here), "t", 0)).await.unwrap_err(), TierError::Skipped);
    // The operation, and the new connection the dropped one asked for (refused).
    assert!((1..=2).contains(&tier.errors()), "{}", tier.errors());
    assert!(!tier.is_up());
    server.restart();
    tokio::time::sleep(circuit::FIRST_BACKOFF).await;
    // The probe makes a new connection (the old one died with the server).
    let mut back = false;
    for _ in 0..20 {
        if tier.find_or_lease(&request(here, &member(here), "t", 0)).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back && tier.is_up(), "recovered by itself");
    assert!(matches!(last_after_settling(&seen).await, Some(Notice::Restored { .. })));
    let seen = seen.lock().unwrap();
    assert!(matches!(seen.first(), Some(Notice::Degraded { cause: Cause::Connection, .. })), "{seen:?}");
    assert_eq!(seen.iter().filter(|n| matches!(n, Notice::Degraded { .. })).count(), 1, "one event per transition");
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn the_password_appears_in_no_message() {
    let server = RedisServer::start(Some("s3cret-Pa55word"));
    let wrong = format!("redis://:wrong-Pa55word@127.0.0.1:{}/0", server.port);
    let (tier, seen) = tier_at(&wrong, 500);
    let here = LatLon::new(1.0, 1.0);
    let error = tier.find_or_lease(&request(here, &member(here), "t", 0)).await.unwrap_err();
    let text = format!("{error:?} {:?} {}", seen.lock().unwrap(), tier.place());
    assert!(!text.contains("Pa55word"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{}", server.port)), "{text}");
    // And the right one works.
    let (tier, _) = tier_at(&server.url(), 500);
    assert!(tier.find_or_lease(&request(here, &member(here), "t", 0)).await.is_ok());
    for bad in ["http://x", "redis://", "redis://h/not-a-db", "rediss://:pw@/0"] {
        let config = TierConfig { url: bad.into(), key_prefix: "p".into(), timeout: Duration::from_millis(100) };
        let message = SharedTier::new(config, &tokio::runtime::Handle::current(), Box::new(|_: &Notice, _: &str| {}))
            .err()
            .unwrap();
        assert!(!message.contains("pw"), "{message}");
    }
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_landing_trims_dead_entries_and_dead_leases() {
    let server = RedisServer::start(None);
    let (tier, _) = tier_at(&server.url(), 1_000);
    let mut raw = server.admin().await;
    let reader = raw.clone();
    let members = |key: &'static str| {
        let mut raw = reader.clone();
        async move { redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).query_async::<Vec<String>>(&mut raw).await.unwrap() }
    };
    // Tile 48,2 (Paris). A holder that died mid-fetch: its owner record is gone, its GEO
    // member stayed.
    let _: () = redis::cmd("GEOADD")
        .arg("{test:48,2}:v2:leases")
        .arg(2.35)
        .arg(48.86)
        .arg("48.86,2.35")
        .query_async(&mut raw)
        .await
        .unwrap();
    // An entry whose payload expired.
    tier.store(&stored(48.5, 2.5, 1), Duration::from_millis(1), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(members("{test:48,2}:v2:entries").await, vec!["48.5,2.5".to_owned()]);
    tier.store(&stored(49.0, 3.0, 1), Duration::from_secs(60), None).await.unwrap();
    assert_eq!(members("{test:48,2}:v2:entries").await, vec!["49,3".to_owned()], "the dead entry's member is gone");
    assert_eq!(members("{test:48,2}:v2:leases").await, Vec::<String>::new(), "the dead lease's member is gone");
    // A live lease stays.
    let here = LatLon::new(48.2, 2.2);
    let taken = tier.find_or_lease(&request(here, &member(here), "token", 1)).await.unwrap();
    assert_eq!(taken.status, LeaseStatus::Acquired { candidate: None });
    tier.store(&stored(48.1, 2.1, 1), Duration::from_secs(60), None).await.unwrap();
    assert_eq!(members("{test:48,2}:v2:leases").await, vec!["48.2,2.2".to_owned()]);
    // Every key of a tile carries a TTL (a volatile-* policy may evict entries), none longer
    // than what it holds needs.
    for key in [
        "{test:48,2}:v2:entries",
        "{test:48,2}:v2:payloads",
        "{test:48,2}:v2:expiries",
        "{test:48,2}:v2:leases",
        "{test:48,2}:v2:owners",
    ] {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut raw).await.unwrap();
        assert!(ttl > 0 && ttl <= 120_000, "{key}: {ttl}");
    }
}

pub(super) fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_payload_dated_in_the_future_ages_from_when_redis_got_it() {
    let server = RedisServer::start(None);
    let (writer, _) = tier_at(&server.url(), 1_000);
    let (reader, _) = tier_at(&server.url(), 1_000);
    let here = LatLon::new(20.0, 20.0);
    let now = wall_clock_ms();
    // A writer whose clock is a year ahead (or a payload forged so).
    let year = 365 * 86_400_000;
    writer.store(&stored(here.lat, here.lon, now + year), Duration::from_secs(7_200), None).await.unwrap();
    let found = reader.find_or_lease(&request(here, &member(here), "r", now)).await.unwrap();
    assert_eq!(found.entries.len(), 1);
    assert!(
        found.entries[0].fetched_at <= now,
        "fetchedAt bounded by when Redis got it: {} ms ahead",
        found.entries[0].fetched_at - now
    );
    // The same payload, received by Redis eleven minutes ago (its server time): stale now, like
    // any entry that old.
    let mut admin = server.admin().await;
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut admin).await.unwrap();
    let server_now = secs * 1000 + micros / 1000;
    let value = format!(
        "{}:{}:{}",
        server_now - 660_000,
        server_now + 3_600_000,
        stored(here.lat, here.lon, now + year).encode()
    );
    let _: () = redis::cmd("HSET")
        .arg("{test:20,20}:v2:payloads")
        .arg(member(here))
        .arg(value)
        .query_async(&mut admin)
        .await
        .unwrap();
    let later = reader.find_or_lease(&request(here, &member(here), "r", wall_clock_ms())).await.unwrap();
    assert_eq!(later.status, LeaseStatus::Acquired { candidate: None }, "served as fresh for ever");
    assert!(later.entries[0].fetched_at <= wall_clock_ms() - 600_000);
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn an_older_entry_never_overwrites_a_newer_one() {
    let server = RedisServer::start(None);
    let (tier, _) = tier_at(&server.url(), 1_000);
    let here = LatLon::new(21.0, 21.0);
    let now = wall_clock_ms();
    tier.store(&stored(here.lat, here.lon, now), Duration::from_secs(7_200), None).await.unwrap();
    // A slow writer lands an hour-old reading afterwards.
    tier.store(&stored(here.lat, here.lon, now - 3_600_000), Duration::from_secs(7_200), None).await.unwrap();
    let found = tier.find_or_lease(&request(here, &member(here), "r", now)).await.unwrap();
    assert_eq!(found.status, LeaseStatus::Fresh);
    assert_eq!(found.entries.len(), 1);
    // (Read a moment after it was stored, by a clock that did not move: that moment earlier.)
    assert!((now - 1_000..=now).contains(&found.entries[0].fetched_at), "{}", now - found.entries[0].fetched_at);
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_lease_near_the_edge_of_its_area_is_judged_with_the_exact_point() {
    let server = RedisServer::start(None);
    let (a, _) = tier_at(&server.url(), 1_000);
    let (b, _) = tier_at(&server.url(), 1_000);
    let x = LatLon::new(10.0, 10.0);
    assert_eq!(a.find_or_lease(&request(x, &member(x), "a", 0)).await.unwrap().status, LeaseStatus::Acquired { candidate: None });
    // B's waiters reach Redis rounded to 0.01 degree (up to 0.79 km off): 4.2 km certainly
    // lies within A's 5 km, 5.8 km certainly not; in between, B judges with the exact point.
    let rounding = crate::geo::max_rounding_error_km(2);
    for (exact, rounded, waits) in [(LatLon::new(10.0, 10.044), LatLon::new(10.0, 10.04), true), (LatLon::new(10.0, 10.052), LatLon::new(10.0, 10.05), false)] {
        let covers = |_: usize, center: LatLon| crate::geo::distance_km(exact, center) <= 4.99;
        let points = [rounded];
        let m = member(rounded);
        let asked = LeaseRequest {
            points: &points,
            radius_km: 5.0 - rounding,
            maybe_km: 5.0 + rounding,
            covers: Some(&covers),
            ..request(rounded, &m, "b", 0)
        };
        let status = b.find_or_lease(&asked).await.unwrap().status;
        assert_eq!(matches!(status, LeaseStatus::Held { .. }), waits, "{exact:?}: {status:?}");
    }
}
