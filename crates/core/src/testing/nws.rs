//! A loopback api.weather.gov: `/points` (a status of the test's choosing, or the grid's URLs
//! with the given `Cache-Control`), the station list, the hourly forecast, the latest
//! observation (its temperature switchable to `null`) and the active alerts, each with the
//! documented body of `bodies::nws`. Links point back at the fake (from the `Host` it was
//! asked with).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::bodies::nws as bodies;
use super::upstream::{json, Answer, Query, Upstream};

pub struct NwsFake {
    pub upstream: Upstream,
    /// Whether the station reports a temperature (8.3 °C) or `null`.
    pub observed: Arc<AtomicBool>,
}

impl NwsFake {
    /// A fake whose forecast starts at `t0` (epoch s, on the hour).
    pub async fn start(t0: u64, points_status: u16, max_age: &'static str) -> NwsFake {
        let observed = Arc::new(AtomicBool::new(true));
        let temperature = observed.clone();
        let upstream = Upstream::start(move |q: Query| {
            let base = format!("http://{}", q.header("host").unwrap_or(""));
            let path = q.target.split('?').next().unwrap_or("").to_owned();
            let celsius = temperature.load(Ordering::SeqCst).then_some(8.3);
            async move {
                let body = match path.as_str() {
                    p if p.starts_with("/points/") => {
                        if points_status != 200 {
                            let title = r#"{"status":404,"title":"Data Unavailable For Requested Point"}"#;
                            return json(points_status, title);
                        }
                        return Answer::Respond {
                            status: 200,
                            headers: vec![("Cache-Control".into(), max_age.into())],
                            body: bodies::points(&base).into_bytes(),
                        };
                    }
                    "/gridpoints/PHI/50,75/stations" => bodies::stations(&base),
                    "/gridpoints/PHI/50,75/forecast/hourly" => bodies::hourly(t0, 46.0),
                    "/stations/KPHL/observations/latest" => bodies::latest(celsius),
                    "/alerts/active" => bodies::alerts(t0),
                    _ => return json(404, "{}"),
                };
                json(200, &body)
            }
        })
        .await;
        NwsFake { upstream, observed }
    }
}
