//! How the tier rides out the failures production Redis has: a connection black-holed by a
//! partition, a failover that demotes the primary, ACLs, data of the wrong type, eviction. Real
//! `redis-server`s, with a TCP relay in between where the network has to misbehave.

use std::time::{Duration, Instant};

use super::tests::{request, tier_at, Seen};
use super::*;
use crate::testing::redis::RedisServer;
use crate::testing::relay::Relay;

const T: Duration = Duration::from_secs(5);

/// Asks until the tier answers (a lookup at a new spot each time: each takes a lease, a
/// write), for at most `within`; returns how long it took.
async fn until_answered(tier: &SharedTier, within: Duration) -> Option<Duration> {
    static SPOTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let started = Instant::now();
    while started.elapsed() < within {
        let i = SPOTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let here = LatLon::new(1.0 + f64::from(i) * 0.1, 1.0);
        if let Ok(found) = tier.find_or_lease(&request(here, &member(here), "token", 0)).await {
            assert_eq!(found.status, LeaseStatus::Acquired { candidate: None }, "a new spot: a lease taken");
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_black_holed_connection_is_replaced_while_new_ones_work() {
    let server = RedisServer::start(None);
    let relay = Relay::start(server.addr()).await;
    let (tier, seen) = tier_at(&relay.redis_url(), 100);
    assert!(until_answered(&tier, T).await.is_some());
    let before = relay.accepted();
    // A partition, or a failover behind a NAT: the open connection passes nothing and is
    // never reset. New connections work.
    relay.black_hole_open_connections();
    let here = LatLon::new(5.0, 5.0);
    assert!(matches!(tier.find_or_lease(&request(here, &member(here), "token", 0)).await, Err(TierError::Failed(_))));
    assert!(!tier.is_up());
    let back = until_answered(&tier, Duration::from_secs(15)).await;
    assert!(back.is_some_and(|t| t < Duration::from_secs(5)), "the tier is still down ({back:?})");
    assert!(tier.is_up());
    assert!(relay.accepted() > before, "on a new connection");
    assert!(matches!(super::tests::last_after_settling(&seen).await, Some(Notice::Restored { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_failover_that_demotes_the_primary_reconnects_to_the_new_one() {
    let old = RedisServer::start(None);
    let new = RedisServer::start(None);
    // The name the tier connects to (the relay) points at the primary.
    let relay = Relay::start(old.addr()).await;
    let (tier, seen) = tier_at(&relay.redis_url(), 200);
    assert!(until_answered(&tier, T).await.is_some());
    // Failover: the old primary becomes a replica of the new one (it answers writes with
    // READONLY), and the name now leads to the new primary.
    let mut admin = old.admin().await;
    let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(new.port).query_async(&mut admin).await.unwrap();
    relay.switch_to(new.addr());
    let back = until_answered(&tier, Duration::from_secs(15)).await;
    assert!(
        back.is_some_and(|t| t < Duration::from_secs(5)),
        "never reconnected ({back:?}): {:?}",
        seen.lock().unwrap()
    );
    // What it wrote since is on the new primary.
    let mut admin = new.admin().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut admin).await.unwrap();
    assert!(!keys.is_empty(), "the new primary holds the tier's writes");
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn an_acl_user_with_exactly_the_documented_rules_works() {
    let server = RedisServer::start(None);
    let mut admin = server.admin().await;
    let mut setuser = redis::cmd("ACL");
    setuser.arg("SETUSER").arg("weather").arg("on").arg(">Acl-Pa55word").arg("resetkeys").arg("resetchannels");
    // The grant docs/scaling.md shows, for key prefix `test`.
    setuser.arg("~{test}:*").arg("~{test:*").arg("&{test}:landed");
    assert!(
        include_str!("../../../../docs/scaling.md")
            .contains(&format!("`~{{keyPrefix}}:* ~{{keyPrefix:* &{{keyPrefix}}:landed {ACL_RULES}`")),
        "docs/scaling.md shows the grant"
    );
    for rule in ACL_RULES.split_whitespace() {
        setuser.arg(rule);
    }
    let _: () = setuser.query_async(&mut admin).await.unwrap();
    let url = format!("redis://weather:Acl-Pa55word@127.0.0.1:{}/0", server.port);
    let (tier, seen) = tier_at(&url, 1_000);
    let here = LatLon::new(10.0, 10.0);
    let found = tier.find_or_lease(&request(here, &member(here), "token", 0)).await;
    assert!(found.is_ok(), "{found:?}");
    let stored = Stored {
        celsius: 1.0,
        condition: "Rain".into(),
        fetched_at: 1,
        location: here,
        provider: "openweather".into(),
        held_until: 0,
        validator: None,
        products: None,
    };
    tier.store(&stored, Duration::from_secs(60), Some("token")).await.unwrap();
    assert_eq!(
        tier.admit("openweather", Limits { per_minute: 5, per_day: 5 }, Some((here, 5.0))).await,
        Ok(Admission::Admitted)
    );
    tier.cool_down("openweather", Duration::from_secs(1)).await.unwrap();
    tier.release(here, &member(here), "token").await.unwrap();
    // Announcements too (the subscription was allowed).
    tier.listening().await;
    let mut heard = tier.announcements();
    tier.release(here, &member(here), "token").await.unwrap();
    assert!(tokio::time::timeout(T, heard.recv()).await.is_ok());
    assert_eq!(tier.errors(), 0, "{:?}", seen.lock().unwrap());
    assert!(seen.lock().unwrap().iter().all(|n| !matches!(n, Notice::Warning { .. })), "{:?}", seen.lock().unwrap());
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_refused_command_says_why() {
    let server = RedisServer::start(None);
    let mut admin = server.admin().await;
    // Everything but TIME.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "weather", "on", ">Acl-Pa55word", "resetkeys", "~*", "&*", "+@all", "-time"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://weather:Acl-Pa55word@127.0.0.1:{}/0", server.port);
    let (tier, seen) = tier_at(&url, 1_000);
    let error = tier.admit("openweather", Limits::default(), None).await.unwrap_err();
    let TierError::Failed(reason) = error else { panic!("{error:?}") };
    // Redis 7.0 reports it as an ERR inside a script, without the command: the script names it.
    assert!(
        (reason.contains("NOPERM") || reason.contains("can't run this command")) && reason.contains("(TIME)"),
        "{reason}"
    );
    assert!(!reason.contains("Pa55word"), "{reason}");
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .any(|n| matches!(n, Notice::Degraded { cause: Cause::Refused, reason, .. } if reason.contains("(TIME)"))));
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn a_key_of_the_wrong_type_is_that_areas_miss_not_an_outage() {
    let server = RedisServer::start(None);
    let (tier, seen) = tier_at(&server.url(), 1_000);
    let (x, y) = (LatLon::new(10.0, 10.0), LatLon::new(-30.0, 100.0));
    let stored = |at: LatLon| Stored {
        celsius: 1.0,
        condition: "Rain".into(),
        fetched_at: 1,
        location: at,
        provider: "openweather".into(),
        held_until: 0,
        validator: None,
        products: None,
    };
    tier.store(&stored(x), Duration::from_secs(600), None).await.unwrap();
    tier.store(&stored(y), Duration::from_secs(600), None).await.unwrap();
    // Another program (or a bug) turns X's entry into a list.
    let mut admin = server.admin().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*10,10*").query_async(&mut admin).await.unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        let _: () = redis::cmd("DEL").arg(&key).query_async(&mut admin).await.unwrap();
        let _: () = redis::cmd("RPUSH").arg(&key).arg("junk").query_async(&mut admin).await.unwrap();
    }
    let _ = tier.find_or_lease(&request(x, &member(x), "token", 0)).await;
    // Y is unaffected, and so is the tier.
    let found = tier.find_or_lease(&request(y, &member(y), "token", 0)).await;
    assert!(found.is_ok_and(|f| f.entries.len() == 1), "{:?}", seen.lock().unwrap());
    assert!(tier.is_up());
    // X is repaired: a landing there is stored and found again.
    tier.store(&stored(x), Duration::from_secs(600), None).await.unwrap();
    let again = tier.find_or_lease(&request(x, &member(x), "token", 0)).await.unwrap();
    assert_eq!(again.entries.len(), 1);
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn budget_and_cooldown_keys_carry_no_ttl_for_eviction_to_pick() {
    let server = RedisServer::start(None);
    let (tier, _) = tier_at(&server.url(), 1_000);
    tier.admit("openweather", Limits { per_minute: 10, per_day: 100 }, None).await.unwrap();
    tier.cool_down("open-meteo", Duration::from_secs(30)).await.unwrap();
    let mut admin = server.admin().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut admin).await.unwrap();
    let counters: Vec<&String> = keys.iter().filter(|k| k.contains("budget") || k.contains("cooldown")).collect();
    assert_eq!(counters.len(), 3, "{keys:?}");
    for key in counters {
        let ttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut admin).await.unwrap();
        assert_eq!(ttl, -1, "{key} expires: volatile-* eviction could pick it");
    }
    // And the cooldown still works without one.
    assert!(matches!(tier.admit("open-meteo", Limits::default(), None).await, Ok(Admission::Cooling { .. })));
}

#[tokio::test]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn an_eviction_policy_that_can_evict_counters_is_warned_about_once() {
    let warnings = |seen: &Seen| {
        seen.lock().unwrap().iter().filter(|n| matches!(n, Notice::Warning { .. })).cloned().collect::<Vec<_>>()
    };
    let unsafe_server = RedisServer::start_with(None, &["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let (tier, seen) = tier_at(&unsafe_server.url(), 1_000);
    assert!(until_answered(&tier, T).await.is_some());
    let Some(Notice::Warning { message }) = warnings(&seen).pop() else {
        panic!("no warning: {:?}", seen.lock().unwrap())
    };
    assert!(message.contains("allkeys-lru") && message.contains("volatile-lru"), "{message}");
    // A new connection checks again, and says nothing new.
    let mut admin = unsafe_server.admin().await;
    let _: Value = redis::cmd("CLIENT").arg("KILL").arg("SKIPME").arg("yes").query_async(&mut admin).await.unwrap();
    assert!(until_answered(&tier, T).await.is_some());
    assert_eq!(warnings(&seen).len(), 1, "once");
    // A safe policy: no warning (checked before the connection serves anything: once a
    // lookup was answered, the check has been made).
    let safe_server = RedisServer::start_with(None, &["--maxmemory", "64mb", "--maxmemory-policy", "volatile-lru"]);
    let (tier, seen) = tier_at(&safe_server.url(), 1_000);
    assert!(until_answered(&tier, T).await.is_some());
    assert!(warnings(&seen).is_empty(), "{:?}", seen.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(redis_server_missing, ignore = "redis-server is not installed")]
async fn lost_replies_open_the_circuit_once_and_the_numbers_say_why() {
    let server = RedisServer::start(None);
    let relay = Relay::start(server.addr()).await;
    let (tier, seen) = tier_at(&relay.redis_url(), 150);
    // Round trips 30 ms late: measured as such.
    relay.set_latency(Duration::from_millis(30));
    for _ in 0..3 {
        assert!(until_answered(&tier, T).await.is_some());
    }
    let numbers = tier.metrics().snapshot();
    let within =
        |ms: f64| LATENCY_BUCKETS.iter().position(|le| *le >= ms / 1000.0).map(|i| numbers.latency_buckets[i]).unwrap();
    assert_eq!(within(25.0), 0, "none faster than the relay lets them be");
    assert_eq!(within(100.0), numbers.latency_count(), "{numbers:?}");
    assert!(numbers.latency_seconds >= 0.09);
    // Replies lost (the requests still reach Redis): one opening, by timeout.
    relay.drop_replies(true);
    let here = LatLon::new(-5.0, -5.0);
    assert!(matches!(tier.find_or_lease(&request(here, &member(here), "token", 0)).await, Err(TierError::Failed(_))));
    relay.drop_replies(false);
    relay.set_latency(Duration::ZERO);
    assert!(until_answered(&tier, T).await.is_some());
    assert!(matches!(super::tests::last_after_settling(&seen).await, Some(Notice::Restored { .. })));
    let numbers = tier.metrics().snapshot();
    assert_eq!(
        numbers.circuit_openings.iter().map(|(_, n)| n).sum::<u64>(),
        1,
        "{numbers:?} {:?}",
        seen.lock().unwrap()
    );
    assert_eq!(numbers.circuit_openings[0], ("timeout", 1));
    let seen = seen.lock().unwrap();
    assert!(matches!(seen.first(), Some(Notice::Degraded { cause: Cause::Timeout, .. })), "{seen:?}");
}
