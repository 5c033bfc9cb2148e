//! What every HTTP provider shares: checking a base URL, building the client, and how an
//! answer's status maps to a provider error.

use std::sync::Once;
use std::time::Duration;

use super::{parse_retry_after, LateKey, ProviderError, Redactor};

/// What a keyed HTTP provider is configured with (OpenWeather's settings and Open-Meteo's are
/// the same).
#[derive(Clone)]
pub struct HttpProviderConfig {
    pub api_key: Option<String>,
    pub base_url: String,
    /// Decimals used when printing the (already rounded) coordinates into the query.
    pub coordinate_decimals: u32,
    pub request_timeout: Duration,
    pub max_response_bytes: u64,
}

/// A keyed provider's HTTP side: the client, its endpoint, the key (redacted from every
/// message) and the limits.
pub struct KeyedClient {
    pub client: reqwest::Client,
    pub url: reqwest::Url,
    pub api_key: Option<String>,
    pub decimals: usize,
    pub max_response_bytes: u64,
    pub redactor: Redactor,
    /// Where the key comes from when none was configured and it may arrive later.
    pub late_key: Option<LateKey>,
}

impl KeyedClient {
    /// `path` appended to the configured base URL; fails (with a message fit for users) when
    /// that is not an http(s) URL.
    pub fn new(config: HttpProviderConfig, path: &str) -> Result<KeyedClient, String> {
        let url = endpoint(&config.base_url, path)?;
        let client = client(&url, config.request_timeout, USER_AGENT)?;
        let api_key = config.api_key.filter(|k| !k.is_empty());
        Ok(KeyedClient {
            client,
            url,
            redactor: Redactor::new(api_key.as_deref()),
            api_key,
            decimals: config.coordinate_decimals as usize,
            max_response_bytes: config.max_response_bytes,
            late_key: None,
        })
    }

    /// Whether there is a key: the configured one, or a late one that arrived.
    pub fn has_key(&self) -> bool {
        self.api_key.is_some() || self.late_key.as_ref().is_some_and(LateKey::is_set)
    }

    /// `failure`, where a 401 or 403 to a request that carried the key is the key refused.
    pub fn failure(&self, response: &reqwest::Response) -> Option<ProviderError> {
        match failure(response) {
            Some(ProviderError::Status { status: status @ (401 | 403), .. }) if self.has_key() => {
                Some(ProviderError::KeyRejected { status })
            }
            other => other,
        }
    }
}

/// `base_url` with `path` appended to its own path. Fails (with a message fit for users) when
/// it is not an absolute http(s) URL, or carries a query, a fragment or credentials (a key
/// could hide there, and would then show in messages).
pub fn endpoint(base_url: &str, path: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base_url).map_err(|_| "baseUrl must be an absolute http(s) URL".to_owned())?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() || url.host().is_none() {
        return Err("baseUrl must be an absolute http(s) URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err("baseUrl must not carry a query, a fragment or credentials".to_owned());
    }
    let joined = format!("{}{path}", url.path().trim_end_matches('/'));
    url.set_path(&joined);
    Ok(url)
}

/// An HTTP client for one provider at `endpoint`.
pub fn client(endpoint: &reqwest::Url, timeout: Duration, user_agent: &str) -> Result<reqwest::Client, String> {
    install_crypto_provider();
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        // A key may be in the query string: it must never follow a redirect elsewhere. A 3xx is
        // an upstream error like any other non-2xx.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent);
    if is_loopback(endpoint) {
        // A proxy from the environment must never see loopback traffic (tests, sidecars).
        builder = builder.no_proxy();
    }
    builder.build().map_err(|e| format!("cannot create the HTTP client: {}", e.without_url()))
}

/// Our own `User-Agent`, for providers that do not need the operator's.
pub const USER_AGENT: &str = concat!("weather-cache/", env!("CARGO_PKG_VERSION"));

/// The error for a response that is not a success: a 429 (with its `Retry-After`) is a rate
/// limit, anything else outside 2xx an error status. `None` for a success.
pub fn failure(response: &reqwest::Response) -> Option<ProviderError> {
    let status = response.status().as_u16();
    if status == 429 {
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok());
        let retry_after =
            header(reqwest::header::RETRY_AFTER).and_then(|value| parse_retry_after(value, header(reqwest::header::DATE)));
        return Some(ProviderError::RateLimited { retry_after });
    }
    (!(200..300).contains(&status)).then_some(ProviderError::Status { status, reason: None })
}

/// A coordinate as the query shows it: at most `decimals` decimals, without trailing zeros
/// (`48.85`, not `48.8500`), so that equal places read equal.
pub fn coordinate(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { &text };
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// reqwest is built without a default TLS crypto provider (see Cargo.toml); install ring's once
/// per process. An error means another part of the process already installed one: fine.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_a_path_prefix() {
        let path = "/data/3.0/onecall";
        assert_eq!(endpoint("http://127.0.0.1:9/", path).unwrap().as_str(), "http://127.0.0.1:9/data/3.0/onecall");
        assert_eq!(
            endpoint("https://example.com/proxy/", path).unwrap().as_str(),
            "https://example.com/proxy/data/3.0/onecall"
        );
        for bad in ["", "127.0.0.1:80", "ftp://x", "http://u:p@x", "http://x/?a=1", "mailto:a@b"] {
            assert!(endpoint(bad, path).is_err(), "{bad}");
        }
    }

    #[test]
    fn coordinates_without_trailing_zeros() {
        assert_eq!(coordinate(48.85, 4), "48.85");
        assert_eq!(coordinate(10.0, 4), "10");
        assert_eq!(coordinate(-0.00001, 4), "0");
        assert_eq!(coordinate(59.91273, 4), "59.9127");
        assert_eq!(coordinate(-179.99, 2), "-179.99");
    }
}
