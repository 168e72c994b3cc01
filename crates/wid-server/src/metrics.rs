//! Prometheus metrics of `wid serve`: requests by route class and status, token outcomes, and the
//! token endpoint's latency, written with [`wid_http::prometheus`].

use std::collections::BTreeMap;
use std::sync::Mutex;

use wid_http::prometheus::{Exposition, Histogram};

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// The server's metrics.
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    tokens: Mutex<BTreeMap<String, u64>>,
    /// Time to answer a token request.
    pub token_latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { requests: Mutex::default(), tokens: Mutex::default(), token_latency: Histogram::new(&BUCKETS) }
    }
}

impl Metrics {
    /// Counts a request of a route class with its status.
    pub fn request(&self, class: &'static str, status: u16) {
        *self.requests.lock().unwrap_or_else(|p| p.into_inner()).entry((class, status)).or_default() += 1;
    }

    /// Counts a token request outcome (`issued` or the AADSTS code).
    pub fn token(&self, outcome: String) {
        *self.tokens.lock().unwrap_or_else(|p| p.into_inner()).entry(outcome).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut e = Exposition::new();
        e.family("wid_http_requests_total", "counter", None);
        for ((class, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let status = status.to_string();
            e.sample("wid_http_requests_total", &[("route", class), ("status", status.as_str())], n);
        }
        e.family("wid_token_requests_total", "counter", None);
        for (outcome, n) in self.tokens.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            e.sample("wid_token_requests_total", &[("outcome", outcome)], n);
        }
        e.family("wid_token_request_duration_seconds", "histogram", None).histogram(
            "wid_token_request_duration_seconds",
            &[],
            &self.token_latency,
        );
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders() {
        let m = super::Metrics::default();
        m.request("token", 200);
        m.token("issued".into());
        m.token_latency.observe(std::time::Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("wid_http_requests_total{route=\"token\",status=\"200\"} 1"));
        assert!(text.contains("wid_token_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("wid_token_request_duration_seconds_count 1"));
    }
}
