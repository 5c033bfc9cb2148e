//! The proxy's own numbers, appended to the engine's in `/metrics`: requests, connections
//! refused, TLS handshakes failed, reloads, and per client (a bounded `client` label: names from
//! the tokens file, `-` for requests without one) its requests, refusals by limit and the
//! upstream calls it caused.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::admission::Refusal;
use super::clients::ClientCounters;
use weather_cache_core::engine::Counter;

#[derive(Default)]
pub struct Counters {
    pub requests: Counter,
    pub not_modified: Counter,
    pub refused_full: Counter,
    pub refused_per_address: Counter,
    pub misdirected: Counter,
    pub cross_site: Counter,
    pub tls_failures: Counter,
    pub reloads: Counter,
    pub reload_failures: Counter,
    pub open: AtomicI64,
}

impl Counters {
    pub fn refused(&self, refusal: Refusal) -> &Counter {
        match refusal {
            Refusal::Full => &self.refused_full,
            Refusal::PerAddress => &self.refused_per_address,
        }
    }

    pub fn to_prometheus(&self, access_log_dropped: u64, clients: &[(Arc<str>, Arc<ClientCounters>)]) -> String {
        let mut out = String::new();
        let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
            let _ = writeln!(out, "# HELP weather_cache_{name} {help}\n# TYPE weather_cache_{name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "weather_cache_{name}{labels} {value}");
            }
        };
        let one = |value: u64| [(String::new(), value as f64)];
        family(
            "proxy_requests_total",
            "counter",
            "HTTP requests the proxy received (hyper's own answers aside: 400 to a malformed head, 431 to one past its buffer).",
            &one(self.requests.get()),
        );
        family("proxy_not_modified_total", "counter", "Answers 304 Not Modified (If-None-Match).", &one(self.not_modified.get()));
        family(
            "proxy_refused_connections_total",
            "counter",
            "Connections refused: at --max-connections (limit), or at --max-connections-per-ip (per-address).",
            &[
                ("{reason=\"limit\"}".to_owned(), self.refused_full.get() as f64),
                ("{reason=\"per-address\"}".to_owned(), self.refused_per_address.get() as f64),
            ],
        );
        family("proxy_open_connections", "gauge", "Connections open now.", &[(String::new(), self.open.load(Ordering::Relaxed) as f64)]);
        family(
            "proxy_misdirected_requests_total",
            "counter",
            "Requests refused (421) for a Host name the proxy does not serve (DNS rebinding, a wrong name).",
            &one(self.misdirected.get()),
        );
        family(
            "proxy_cross_site_requests_total",
            "counter",
            "Requests refused (403) that another web site made a browser send (Sec-Fetch-Site, Origin).",
            &one(self.cross_site.get()),
        );
        family("proxy_tls_handshake_failures_total", "counter", "TLS handshakes that failed or timed out.", &one(self.tls_failures.get()));
        family("proxy_reloads_total", "counter", "Reloads (SIGHUP): tokens file, certificate, access log.", &one(self.reloads.get()));
        family(
            "proxy_reload_failures_total",
            "counter",
            "Reloads where something failed to load (the previous one stayed).",
            &one(self.reload_failures.get()),
        );
        family(
            "proxy_access_log_dropped_total",
            "counter",
            "Access log lines dropped: the writer fell behind, or the target refused them.",
            &one(access_log_dropped),
        );
        let per_client = |get: &dyn Fn(&ClientCounters) -> u64| -> Vec<(String, f64)> {
            clients.iter().map(|(name, c)| (format!("{{client=\"{name}\"}}"), get(c) as f64)).collect()
        };
        family("proxy_client_requests_total", "counter", "Requests per client (its name; - without tokens).", &per_client(&|c| c.requests.get()));
        family(
            "proxy_client_upstream_calls_total",
            "counter",
            "Misses a client caused that started an upstream fetch.",
            &per_client(&|c| c.upstream_calls.get()),
        );
        let limited: Vec<(String, f64)> = clients
            .iter()
            .flat_map(|(name, c)| {
                [
                    (format!("{{client=\"{name}\",limit=\"rate\"}}"), c.limited_rate.get() as f64),
                    (format!("{{client=\"{name}\",limit=\"upstream\"}}"), c.limited_upstream.get() as f64),
                ]
            })
            .collect();
        family(
            "proxy_client_limited_total",
            "counter",
            "Requests answered 429: past --client-rate-limit (rate) or --client-upstream-limit (upstream).",
            &limited,
        );
        out
    }
}
