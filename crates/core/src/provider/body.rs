//! Reading a response without trusting it: bounded size, and transport errors described
//! without the request URL.

use std::error::Error as _;

use super::{ProviderError, Redactor};

/// Reads the whole body, refusing (without reading it whole) one larger than `max_bytes`.
pub async fn read_bounded(
    mut response: reqwest::Response,
    max_bytes: u64,
    redactor: &Redactor,
) -> Result<Vec<u8>, ProviderError> {
    let too_large = || ProviderError::InvalidResponse { message: format!("response body exceeds {max_bytes} bytes") };
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(e, redactor))? {
        if body.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Maps a reqwest failure to a timeout or a network error whose message is the cause chain
/// (for example `error sending request: client error (Connect): tcp connect error: Connection
/// refused (os error 111)`), with the URL stripped and the key redacted.
pub fn transport_error(err: reqwest::Error, redactor: &Redactor) -> ProviderError {
    if err.is_timeout() {
        return ProviderError::Timeout;
    }
    let err = err.without_url();
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    ProviderError::Network { message: redactor.redact(&message) }
}
