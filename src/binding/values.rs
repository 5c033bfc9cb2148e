//! What callers receive. `#[napi(object)]` makes these the generated TypeScript interfaces.

use napi::bindgen_prelude::*;
use napi::sys;
use napi_derive::napi;

use weather_cache_core::cache::Entry;
use weather_cache_core::engine::Served;

#[napi(object)]
pub struct WeatherSummary {
    /// Short condition from the provider (`"Clouds"`, `"Rain"`…), `"Unknown"` when absent.
    pub condition: String,
    /// Rounded Celsius.
    pub temp_c: f64,
    /// Rounded Fahrenheit, derived from the unrounded Celsius.
    pub temp_f: f64,
}

impl WeatherSummary {
    pub fn of(entry: &Entry) -> WeatherSummary {
        let s = &entry.summary;
        WeatherSummary { condition: s.condition.as_str().to_owned(), temp_c: s.temp_c, temp_f: s.temp_f }
    }
}

#[napi(object)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

#[napi(object)]
pub struct ForecastMeta {
    #[napi(ts_type = "WeatherSource")]
    pub source: String,
    /// When the upstream answered (epoch ms, service clock).
    pub fetched_at: f64,
    pub age_ms: f64,
    /// The rounded location the upstream was asked about.
    pub location: GeoPoint,
    pub bucket_key: String,
    /// Which provider answered (`"openweather"`, `"open-meteo"`, `"met-norway"`, `"nws"`, or a custom
    /// fetcher's name).
    pub provider: String,
}

#[napi(object, object_from_js = false)]
pub struct ForecastResult {
    /// The entry's shared, frozen summary (the same object `getWeather` returns).
    #[napi(ts_type = "Readonly<WeatherSummary>")]
    pub summary: JsValueOf,
    pub meta: ForecastMeta,
    /// With `include: ['details']`: the current conditions beyond the summary; `null` when the
    /// provider gives none (a custom provider).
    #[napi(ts_type = "Readonly<ForecastDetails> | null")]
    pub details: Option<JsValueOf>,
    /// With `include: ['hourly']`: from the current hour on (One Call: 48 hours).
    #[napi(ts_type = "ReadonlyArray<Readonly<ForecastHour>>")]
    pub hourly: Option<JsValueOf>,
    /// With `include: ['daily']`: from the place's local today on (One Call: 8 days).
    #[napi(ts_type = "ReadonlyArray<Readonly<ForecastDay>>")]
    pub daily: Option<JsValueOf>,
    /// With `include: ['alerts']`: `[]` when none.
    #[napi(ts_type = "ReadonlyArray<Readonly<WeatherAlert>>")]
    pub alerts: Option<JsValueOf>,
    /// With `include: ['nextHour']`: precipitation by minute (One Call) or quarter hour
    /// (Open-Meteo) from now; `null` where the provider has none (MET Norway, NWS).
    #[napi(ts_type = "ReadonlyArray<Readonly<NextHourPoint>> | null")]
    pub next_hour: Option<JsValueOf>,
}

impl ForecastResult {
    pub fn of(served: &Served, summary: JsValueOf, bucket_key: String, now: i64) -> ForecastResult {
        let entry = &served.entry;
        ForecastResult {
            summary,
            meta: ForecastMeta {
                source: served.source.as_str().to_owned(),
                fetched_at: entry.fetched_at as f64,
                age_ms: entry.age(now) as f64,
                location: GeoPoint { lat: entry.location.lat, lon: entry.location.lon },
                bucket_key,
                provider: entry.provider.to_owned(),
            },
            details: None,
            hourly: None,
            daily: None,
            alerts: None,
            next_hour: None,
        }
    }
}

/// Monotonic counters (since construction) and gauges (now). Identities that always hold:
/// `requests == userHits + sharedHits + staleHits + misses + coalesced + rejected` and
/// `misses + backgroundRefreshes == fetches + tierHits + budgetRejected + inflight`.
#[napi(object)]
pub struct WeatherStats {
    /// Calls accepted (valid arguments, open service); bad calls are not counted.
    pub requests: f64,
    pub user_hits: f64,
    pub shared_hits: f64,
    /// Answered from a stale entry (stale-while-revalidate, or cache served during a cooldown).
    pub stale_hits: f64,
    /// Started a fetch (a flight: the shared tier, then the providers).
    pub misses: f64,
    /// Waited for a fetch started by another request.
    pub coalesced: f64,
    /// Refused without a fetch: no API key, rate-limit cooldown, budget spent, or the area
    /// cooling down.
    pub rejected: f64,
    /// Failed fetches answered from a stale entry instead.
    pub stale_if_error: f64,
    /// Calls sent to providers, all of them (a fetch may fail over to several).
    pub upstream_requests: f64,
    /// Upstream failures other than 429.
    pub upstream_errors: f64,
    /// HTTP 429 answers.
    pub rate_limited: f64,
    pub background_refreshes: f64,
    /// Fetches that went to the providers (including ones `close()` cancelled).
    pub fetches: f64,
    /// Fetches the shared tier answered instead: upstream calls saved.
    pub tier_hits: f64,
    /// Failed shared-tier (Redis) operations and connection attempts.
    pub tier_errors: f64,
    /// Fetches a call budget refused.
    pub budget_rejected: f64,
    pub shared_entries: f64,
    pub users: f64,
    /// Fetches in progress.
    pub inflight: f64,
    /// Until when every provider is rate limited (epoch ms, service clock), 0 when one is not.
    pub backoff_until: f64,
    /// With a shared tier: whether Redis answered the last operation.
    pub tier_up: Option<bool>,
    /// With a shared tier: its round trips, circuit openings, lease waits, outage accounting.
    pub tier: Option<TierStats>,
    /// Per provider, in order of preference.
    pub providers: Vec<ProviderStats>,
}

/// The shared tier's numbers.
#[napi(object)]
pub struct TierStats {
    /// Round trips Redis answered (with a value or an error of its own), and their total time.
    pub round_trips: f64,
    pub round_trip_ms: f64,
    /// How many round trips took at most `leMs` (cumulative; the last bound is `Infinity`).
    pub round_trip_histogram: Vec<LatencyBucket>,
    /// Times the circuit opened (the instance went local), by cause.
    pub circuit_openings: CircuitOpenings,
    /// Waits on another instance's lease, by how they ended, and their total time.
    pub lease_waits: LeaseWaits,
    pub lease_wait_ms: f64,
    /// Keys found holding the wrong type (repaired; no outage).
    pub data_errors: f64,
    /// Upstream calls counted by this instance alone while Redis could not be asked, and of
    /// those, calls added to the shared day counter when it came back.
    pub unshared_calls: f64,
    pub reconciled_calls: f64,
}

#[napi(object)]
pub struct LatencyBucket {
    pub le_ms: f64,
    pub count: f64,
}

#[napi(object)]
pub struct CircuitOpenings {
    /// No answer within `timeoutMs` (the connection is then replaced).
    pub timeout: f64,
    /// The connection failed or could not be made.
    pub connection: f64,
    /// A failover's answer: `READONLY`, `LOADING`, `MASTERDOWN` (the connection is replaced).
    pub failover: f64,
    /// An ACL or the password refused a command.
    pub refused: f64,
    /// Redis's memory is full (`OOM`).
    pub full: f64,
    /// Anything else.
    pub error: f64,
}

#[napi(object)]
pub struct LeaseWaits {
    /// The other fetch landed and answered the waiters.
    pub answered: f64,
    /// The lease was given back or expired: this instance fetched.
    pub took_over: f64,
    /// Waited as long as a lease lasts: fetched without one.
    pub gave_up: f64,
    /// Redis failed during the wait: fetched alone.
    pub tier_failed: f64,
}

impl From<weather_cache_core::tier::TierStats> for TierStats {
    fn from(t: weather_cache_core::tier::TierStats) -> TierStats {
        let count =
            |pairs: &[(&str, u64)], name: &str| pairs.iter().find(|(n, _)| *n == name).map_or(0.0, |(_, c)| *c as f64);
        let bounds = weather_cache_core::tier::LATENCY_BUCKETS.iter().map(|s| s * 1000.0).chain(std::iter::once(f64::INFINITY));
        TierStats {
            round_trips: t.latency_count() as f64,
            round_trip_ms: t.latency_seconds * 1000.0,
            round_trip_histogram: bounds
                .zip(&t.latency_buckets)
                .map(|(le_ms, c)| LatencyBucket { le_ms, count: *c as f64 })
                .collect(),
            circuit_openings: CircuitOpenings {
                timeout: count(&t.circuit_openings, "timeout"),
                connection: count(&t.circuit_openings, "connection"),
                failover: count(&t.circuit_openings, "failover"),
                refused: count(&t.circuit_openings, "refused"),
                full: count(&t.circuit_openings, "full"),
                error: count(&t.circuit_openings, "error"),
            },
            lease_waits: LeaseWaits {
                answered: count(&t.lease_waits, "answered"),
                took_over: count(&t.lease_waits, "took_over"),
                gave_up: count(&t.lease_waits, "gave_up"),
                tier_failed: count(&t.lease_waits, "tier_failed"),
            },
            lease_wait_ms: t.lease_wait_seconds * 1000.0,
            data_errors: t.data_errors as f64,
            unshared_calls: t.unshared_calls as f64,
            reconciled_calls: t.reconciled_calls as f64,
        }
    }
}

#[napi(object)]
pub struct ProviderStats {
    pub name: String,
    pub upstream_requests: f64,
    pub upstream_errors: f64,
    pub rate_limited: f64,
    /// End of this provider's rate-limit cooldown (epoch ms, service clock), 0 when none.
    pub backoff_until: f64,
}

impl From<weather_cache_core::engine::Stats> for WeatherStats {
    fn from(s: weather_cache_core::engine::Stats) -> WeatherStats {
        WeatherStats {
            requests: s.requests as f64,
            user_hits: s.user_hits as f64,
            shared_hits: s.shared_hits as f64,
            stale_hits: s.stale_hits as f64,
            misses: s.misses as f64,
            coalesced: s.coalesced as f64,
            rejected: s.rejected as f64,
            stale_if_error: s.stale_if_error as f64,
            upstream_requests: s.upstream_requests as f64,
            upstream_errors: s.upstream_errors as f64,
            rate_limited: s.rate_limited as f64,
            background_refreshes: s.background_refreshes as f64,
            fetches: s.fetches as f64,
            tier_hits: s.tier_hits as f64,
            tier_errors: s.tier_errors as f64,
            budget_rejected: s.budget_rejected as f64,
            shared_entries: s.shared_entries as f64,
            users: s.users as f64,
            inflight: s.inflight as f64,
            backoff_until: s.backoff_until as f64,
            tier_up: s.tier_up,
            tier: s.tier.map(Into::into),
            providers: s
                .providers
                .into_iter()
                .map(|p| ProviderStats {
                    name: p.name.to_owned(),
                    upstream_requests: p.upstream_requests as f64,
                    upstream_errors: p.upstream_errors as f64,
                    rate_limited: p.rate_limited as f64,
                    backoff_until: p.backoff_until as f64,
                })
                .collect(),
        }
    }
}

/// An already built JS value placed into a `#[napi(object)]` result as is.
pub struct JsValueOf(sys::napi_value);

impl JsValueOf {
    pub fn new(value: Unknown) -> JsValueOf {
        JsValueOf(value.raw())
    }
}

impl ToNapiValue for JsValueOf {
    unsafe fn to_napi_value(_: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        Ok(value.0)
    }
}
