//! Prometheus metrics, rendered in the text exposition format. A handful of counters and one
//! latency histogram, kept in atomics and a small map: no registry crate needed.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 12] = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// A latency histogram.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn render(&self, name: &str, out: &mut String) {
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, c) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", c.load(Ordering::Relaxed));
        }
        let n = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {n}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {n}");
    }
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    tokens: Mutex<BTreeMap<String, u64>>,
    /// Time to answer a token request.
    pub token_latency: Histogram,
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
        let mut out = String::new();
        out.push_str("# TYPE wid_http_requests_total counter\n");
        for ((class, status), n) in self.requests.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "wid_http_requests_total{{route=\"{class}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# TYPE wid_token_requests_total counter\n");
        for (outcome, n) in self.tokens.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "wid_token_requests_total{{outcome=\"{outcome}\"}} {n}");
        }
        self.token_latency.render("wid_token_request_duration_seconds", &mut out);
        out
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
