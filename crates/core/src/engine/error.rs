//! Why a request got no weather. Each kind has a stable Node-style code; those that come from a
//! provider name it (with failover, the error a caller gets may come from any of them).

use super::backoff::MAX_RETRY_AFTER_MS;
use crate::provider::ProviderError;

/// How long a provider that refused the API key is left alone: 10 minutes. A wrong, revoked or
/// unsubscribed key does not fix itself, and every call with it is a wasted round trip (and,
/// for some providers, counted against the account); one call per window tells the operator,
/// through the error event, until the key is fixed (a restart with the new key; the default
/// `weatherService` takes a new `OPEN_WEATHER_API_KEY` at once, see `Provider::key_generation`).
pub const KEY_REJECTED_COOLDOWN_MS: i64 = 600_000;

/// A provider's name, as events, messages and metrics show it.
pub type ProviderName = &'static str;

#[derive(Clone, Debug, PartialEq)]
pub enum RequestError {
    NoApiKey { provider: ProviderName },
    /// The provider refused the API key (HTTP 401/403): it is not asked again until
    /// `retry_after_ms` has passed (see `KEY_REJECTED_COOLDOWN_MS`).
    KeyRejected { provider: ProviderName, status: u16, retry_after_ms: i64 },
    RateLimited { provider: ProviderName, retry_after_ms: i64 },
    /// The call budget refused the call (per minute or per day, this instance or all of them).
    BudgetExhausted { provider: ProviderName, retry_after_ms: i64 },
    Status { provider: ProviderName, status: u16, reason: Option<String> },
    Timeout { provider: ProviderName },
    Network { provider: ProviderName, message: String },
    InvalidResponse { provider: ProviderName, message: String },
    Closed,
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::NoApiKey { .. } => "ERR_NO_API_KEY",
            RequestError::KeyRejected { .. } => "ERR_UPSTREAM_AUTH",
            RequestError::RateLimited { .. } => "ERR_RATE_LIMITED",
            RequestError::BudgetExhausted { .. } => "ERR_BUDGET_EXHAUSTED",
            RequestError::Status { .. } => "ERR_UPSTREAM_STATUS",
            RequestError::Timeout { .. } => "ERR_UPSTREAM_TIMEOUT",
            RequestError::Network { .. } => "ERR_UPSTREAM_NETWORK",
            RequestError::InvalidResponse { .. } => "ERR_UPSTREAM_INVALID_RESPONSE",
            RequestError::Closed => "ERR_SERVICE_CLOSED",
        }
    }

    /// The provider the error came from, if any.
    pub fn provider(&self) -> Option<ProviderName> {
        match self {
            RequestError::NoApiKey { provider }
            | RequestError::KeyRejected { provider, .. }
            | RequestError::RateLimited { provider, .. }
            | RequestError::BudgetExhausted { provider, .. }
            | RequestError::Status { provider, .. }
            | RequestError::Timeout { provider }
            | RequestError::Network { provider, .. }
            | RequestError::InvalidResponse { provider, .. } => Some(provider),
            RequestError::Closed => None,
        }
    }

    /// How long to wait before asking again, for the errors that know it.
    pub fn retry_after_ms(&self) -> Option<i64> {
        match self {
            RequestError::RateLimited { retry_after_ms, .. }
            | RequestError::BudgetExhausted { retry_after_ms, .. }
            | RequestError::KeyRejected { retry_after_ms, .. } => Some(*retry_after_ms),
            _ => None,
        }
    }

    /// The message shown to callers; never contains a URL or the API key.
    pub fn message(&self) -> String {
        match self {
            RequestError::KeyRejected { provider, status, retry_after_ms } => {
                let key = if *provider == "openweather" { "options.apiKey or OPEN_WEATHER_API_KEY" } else { "its apiKey" };
                format!(
                    "Upstream {provider} rejected the API key (HTTP {status}); check {key}. {provider} is not asked again for {} s",
                    (retry_after_ms + 999) / 1_000
                )
            }
            RequestError::NoApiKey { provider } if *provider == "openweather" => {
                "No API key: set OPEN_WEATHER_API_KEY (weatherService reads it until it has one; new WeatherService() when created) or pass options.apiKey".to_owned()
            }
            RequestError::NoApiKey { provider } => format!("No API key configured for {provider}"),
            RequestError::RateLimited { provider, retry_after_ms } => {
                format!("Upstream {provider} is rate limiting requests; retry in {retry_after_ms} ms")
            }
            RequestError::BudgetExhausted { provider, retry_after_ms } => {
                format!("The call budget for {provider} is spent; retry in {retry_after_ms} ms")
            }
            RequestError::Status { provider, status, reason: None } => format!("Upstream {provider} answered HTTP {status}"),
            RequestError::Status { provider, status, reason: Some(reason) } => {
                format!("Upstream {provider} answered HTTP {status}: {reason}")
            }
            RequestError::Timeout { provider } => format!("Upstream {provider} did not answer in time"),
            RequestError::Network { provider, message } => format!("Could not reach upstream {provider}: {message}"),
            RequestError::InvalidResponse { provider, message } => {
                format!("Upstream {provider} sent an invalid response: {message}")
            }
            RequestError::Closed => "The WeatherService is closed".to_owned(),
        }
    }

    /// Errors that say something about one area (and so put it in cooldown), as opposed to a
    /// missing key, a provider-wide rate limit, a budget, or shutdown.
    pub fn is_area_failure(&self) -> bool {
        matches!(
            self,
            RequestError::Status { .. }
                | RequestError::Timeout { .. }
                | RequestError::Network { .. }
                | RequestError::InvalidResponse { .. }
        )
    }

    /// When every provider refused, the caller gets the most telling reason: a rejected key (the
    /// operator must act) or a rate limit say more (and when to come back) than a spent budget, which says more than an upstream's
    /// answer, then a bad body, a timeout, a network error, and last a missing key (which may
    /// just mean that provider is not set up). Lower is more telling.
    pub fn rank(&self) -> u8 {
        match self {
            RequestError::KeyRejected { .. } | RequestError::RateLimited { .. } => 0,
            RequestError::BudgetExhausted { .. } => 1,
            RequestError::Status { .. } => 2,
            RequestError::InvalidResponse { .. } => 3,
            RequestError::Timeout { .. } => 4,
            RequestError::Network { .. } => 5,
            RequestError::NoApiKey { .. } => 6,
            RequestError::Closed => 7,
        }
    }

    /// Converts a provider failure other than a rate limit (which needs the engine's clock).
    pub fn from_provider(err: ProviderError, provider: ProviderName) -> RequestError {
        match err {
            ProviderError::NoApiKey => RequestError::NoApiKey { provider },
            ProviderError::KeyRejected { status } => {
                RequestError::KeyRejected { provider, status, retry_after_ms: KEY_REJECTED_COOLDOWN_MS }
            }
            ProviderError::RateLimited { retry_after } => RequestError::RateLimited {
                provider,
                retry_after_ms: retry_after.map_or(0, |d| d.as_millis().min(MAX_RETRY_AFTER_MS as u128) as i64),
            },
            ProviderError::Status { status, reason } => RequestError::Status { provider, status, reason },
            ProviderError::Timeout => RequestError::Timeout { provider },
            ProviderError::Network { message } => RequestError::Network { provider, message },
            ProviderError::InvalidResponse { message } => RequestError::InvalidResponse { provider, message },
            ProviderError::OutsideCoverage => {
                RequestError::Status { provider, status: 404, reason: Some("the place is outside its coverage".into()) }
            }
        }
    }
}

/// Keeps the more telling of two errors (the first on a tie).
pub fn most_telling(kept: Option<RequestError>, candidate: RequestError) -> Option<RequestError> {
    match kept {
        Some(kept) if kept.rank() <= candidate.rank() => Some(kept),
        _ => Some(candidate),
    }
}
