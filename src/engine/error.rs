//! Why a request got no weather. Each kind has a stable Node-style code.

use super::backoff::MAX_RETRY_AFTER_MS;
use crate::provider::ProviderError;

#[derive(Clone, Debug, PartialEq)]
pub enum RequestError {
    NoApiKey,
    RateLimited { retry_after_ms: i64 },
    Status { status: u16 },
    Timeout,
    Network { message: String },
    InvalidResponse { message: String },
    Closed,
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::NoApiKey => "ERR_NO_API_KEY",
            RequestError::RateLimited { .. } => "ERR_RATE_LIMITED",
            RequestError::Status { .. } => "ERR_UPSTREAM_STATUS",
            RequestError::Timeout => "ERR_UPSTREAM_TIMEOUT",
            RequestError::Network { .. } => "ERR_UPSTREAM_NETWORK",
            RequestError::InvalidResponse { .. } => "ERR_UPSTREAM_INVALID_RESPONSE",
            RequestError::Closed => "ERR_SERVICE_CLOSED",
        }
    }

    /// The message shown to callers; never contains a URL or the API key.
    pub fn message(&self, provider: &str) -> String {
        match self {
            RequestError::NoApiKey => {
                "No API key: pass options.apiKey or set OPEN_WEATHER_API_KEY before creating the service".to_owned()
            }
            RequestError::RateLimited { retry_after_ms } => {
                format!("Upstream {provider} is rate limiting requests; retry in {retry_after_ms} ms")
            }
            RequestError::Status { status } => format!("Upstream {provider} answered HTTP {status}"),
            RequestError::Timeout => format!("Upstream {provider} did not answer in time"),
            RequestError::Network { message } => format!("Could not reach upstream {provider}: {message}"),
            RequestError::InvalidResponse { message } => {
                format!("Upstream {provider} sent an invalid response: {message}")
            }
            RequestError::Closed => "The WeatherService is closed".to_owned(),
        }
    }

    /// Errors that say something about one area (and so put it in cooldown), as opposed to a
    /// missing key, a provider-wide rate limit, or shutdown.
    pub fn is_area_failure(&self) -> bool {
        matches!(
            self,
            RequestError::Status { .. }
                | RequestError::Timeout
                | RequestError::Network { .. }
                | RequestError::InvalidResponse { .. }
        )
    }

    /// Converts a provider failure other than a rate limit (which needs the engine's clock).
    pub fn from_provider(err: ProviderError) -> RequestError {
        match err {
            ProviderError::NoApiKey => RequestError::NoApiKey,
            ProviderError::RateLimited { retry_after } => RequestError::RateLimited {
                retry_after_ms: retry_after.map_or(0, |d| d.as_millis().min(MAX_RETRY_AFTER_MS as u128) as i64),
            },
            ProviderError::Status { status } => RequestError::Status { status },
            ProviderError::Timeout => RequestError::Timeout,
            ProviderError::Network { message } => RequestError::Network { message },
            ProviderError::InvalidResponse { message } => RequestError::InvalidResponse { message },
        }
    }
}
