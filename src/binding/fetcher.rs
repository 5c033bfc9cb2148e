//! A custom provider written in JS (`providers: [{ name, fetch }]`), called from the engine's
//! threads through a threadsafe function.
//!
//! lib/fetcher.js wraps the user's `fetch(lat, lon, signal)` before it gets here: the wrapper
//! makes the `AbortSignal` (aborted at `requestTimeoutMs` and by `close()`), never throws, and
//! always resolves, to the reading or to why there is none. So nothing a user's function does
//! can reach N-API as an exception (which, thrown inside a threadsafe call, ends the process).
//! The function is weak: a configured fetcher never keeps Node alive.

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;

use weather_cache_core::geo::LatLon;
use weather_cache_core::provider::{observation, Answer, FetchFuture, Provider, ProviderError};

/// What lib/fetcher.js resolves to (read by hand: an internal shape, not in index.d.ts).
pub struct FetcherOutcome {
    celsius: Option<f64>,
    condition: Option<String>,
    /// Why there is no reading (the function threw, rejected, or resolved to something else).
    error: Option<String>,
    /// The call reached `requestTimeoutMs` (its signal is aborted).
    timed_out: Option<bool>,
}

impl FromNapiValue for FetcherOutcome {
    unsafe fn from_napi_value(env: napi::sys::napi_env, value: napi::sys::napi_value) -> Result<Self> {
        // SAFETY: forwarded from napi-rs, which calls this with a live value of `env`.
        let object = unsafe { Object::from_napi_value(env, value)? };
        Ok(FetcherOutcome {
            celsius: object.get("celsius")?,
            condition: object.get("condition")?,
            error: object.get("error")?,
            timed_out: object.get("timedOut")?,
        })
    }
}

/// How long past its timeout a call may take before the addon gives up on the JS thread.
const BUSY_GRACE: Duration = Duration::from_secs(1);

type Args = FnArgs<(f64, f64, f64)>;
/// lib/fetcher.js's wrapper around the user's function.
pub type FetchFunction<'e> = Function<'e, Args, Promise<FetcherOutcome>>;
type Call = ThreadsafeFunction<Args, Promise<FetcherOutcome>, Args, Status, false, true>;

pub struct JsFetcher {
    name: &'static str,
    call: Arc<Call>,
    timeout: Duration,
}

impl JsFetcher {
    /// `wrapped`, callable from any thread (on the JS thread).
    pub fn callable(wrapped: &FetchFunction) -> Result<Arc<Call>> {
        Ok(Arc::new(wrapped.build_threadsafe_function::<Args>().callee_handled::<false>().weak::<true>().build()?))
    }

    pub fn new(name: &'static str, call: Arc<Call>, timeout: Duration) -> JsFetcher {
        JsFetcher { name, call, timeout }
    }

    async fn current(&self, at: LatLon) -> std::result::Result<Answer, ProviderError> {
        let timeout_ms = self.timeout.as_millis() as f64;
        let asked = async {
            let promise = self.call.call_async_catch((at.lat, at.lon, timeout_ms).into()).await.map_err(gone)?;
            promise.await.map_err(gone)
        };
        // The wrapper ends the call at the timeout; this is for a JS thread too busy to notice.
        let outcome = tokio::time::timeout(self.timeout + BUSY_GRACE, asked).await.map_err(|_| ProviderError::Timeout)??;
        if outcome.timed_out == Some(true) {
            return Err(ProviderError::Timeout);
        }
        if let Some(error) = outcome.error {
            return Err(ProviderError::InvalidResponse { message: error });
        }
        let celsius = outcome.celsius.ok_or_else(|| invalid("fetch resolved without a numeric celsius"))?;
        let condition = outcome.condition.ok_or_else(|| invalid("fetch resolved without a condition"))?;
        observation(celsius, Some(&condition)).map(Answer::observed)
    }
}

fn invalid(message: &str) -> ProviderError {
    ProviderError::InvalidResponse { message: message.to_owned() }
}

/// The JS side could not be reached (the environment is shutting down).
fn gone(_: Error) -> ProviderError {
    ProviderError::Network { message: "the fetch function could not be called".to_owned() }
}

impl Provider for JsFetcher {
    fn name(&self) -> &'static str {
        self.name
    }

    fn ready(&self) -> std::result::Result<(), ProviderError> {
        Ok(())
    }

    fn fetch<'a>(&'a self, at: LatLon, _: Option<&'a str>) -> FetchFuture<'a> {
        Box::pin(self.current(at))
    }
}
