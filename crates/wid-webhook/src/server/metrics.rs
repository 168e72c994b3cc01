//! Prometheus metrics of `wid webhook`, in the text exposition format.
//!
//! Upstream's one custom metric, `azwi_mutation_request` (seconds; labels `namespace` and
//! `service_name="webhook"`; its buckets), is reproduced exactly, plus the controller-runtime series
//! its docs point to and a few of wid's own (ServiceAccount lookups, cache state).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

use wid_http::ReloadingCert;
use wid_kube::ServiceAccountCache;

/// Upstream's bucket bounds (`pkg/metrics/exporters/prometheus/prometheus.go`).
pub const BUCKETS: [f64; 32] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08,
    0.09, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0, 2.5, 3.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (bound, c) in BUCKETS.iter().zip(self.counts.iter_mut()) {
            if secs <= *bound {
                *c += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    fn render(&self, name: &str, labels: &str, out: &mut String) {
        for (bound, c) in BUCKETS.iter().zip(self.counts.iter()) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {c}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Default)]
struct Inner {
    /// Per request namespace.
    mutation: BTreeMap<String, Histogram>,
    latency: Histogram,
    admissions: BTreeMap<&'static str, u64>,
    lookups: BTreeMap<&'static str, u64>,
    http: BTreeMap<u16, u64>,
}

/// The webhook's metrics.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// One admission request answered (allowed or denied), as upstream observes every request.
    pub fn admission(&self, namespace: &str, elapsed: Duration, allowed: bool) {
        let secs = elapsed.as_secs_f64();
        self.with(|m| {
            m.mutation.entry(namespace.to_string()).or_default().observe(secs);
            m.latency.observe(secs);
            *m.admissions.entry(if allowed { "allowed" } else { "denied" }).or_default() += 1;
        });
    }

    /// Where a ServiceAccount came from (`cache`, `api`, `api_retry`) or why not (`not_found`,
    /// `error`, `timeout`).
    pub fn lookup(&self, outcome: &'static str) {
        self.with(|m| *m.lookups.entry(outcome).or_default() += 1);
    }

    /// An HTTP answer of the admission endpoint.
    pub fn http_request(&self, code: u16) {
        self.with(|m| *m.http.entry(code).or_default() += 1);
    }

    /// The exposition text.
    pub fn render(&self, cache: &ServiceAccountCache, certs: &ReloadingCert) -> String {
        let mut out = String::new();
        self.with(|m| {
            out.push_str("# HELP azwi_mutation_request Distribution of how long it took for the azure-workload-identity mutation request\n");
            out.push_str("# TYPE azwi_mutation_request histogram\n");
            for (ns, h) in &m.mutation {
                h.render("azwi_mutation_request", &format!("namespace=\"{}\",service_name=\"webhook\"", label(ns)), &mut out);
            }
            out.push_str("# HELP controller_runtime_webhook_requests_total Total number of admission requests by HTTP status code.\n");
            out.push_str("# TYPE controller_runtime_webhook_requests_total counter\n");
            for (code, n) in &m.http {
                let _ = writeln!(out, "controller_runtime_webhook_requests_total{{code=\"{code}\",webhook=\"/mutate-v1-pod\"}} {n}");
            }
            out.push_str("# HELP controller_runtime_webhook_latency_seconds Histogram of the latency of processing admission requests\n");
            out.push_str("# TYPE controller_runtime_webhook_latency_seconds histogram\n");
            m.latency.render("controller_runtime_webhook_latency_seconds", "webhook=\"/mutate-v1-pod\"", &mut out);
            out.push_str("# HELP wid_webhook_admissions_total Admission decisions.\n");
            out.push_str("# TYPE wid_webhook_admissions_total counter\n");
            for (result, n) in &m.admissions {
                let _ = writeln!(out, "wid_webhook_admissions_total{{result=\"{result}\"}} {n}");
            }
            out.push_str("# HELP wid_webhook_serviceaccount_lookups_total ServiceAccount lookups by source or failure.\n");
            out.push_str("# TYPE wid_webhook_serviceaccount_lookups_total counter\n");
            for (outcome, n) in &m.lookups {
                let _ = writeln!(out, "wid_webhook_serviceaccount_lookups_total{{outcome=\"{outcome}\"}} {n}");
            }
        });
        let (lists, events) = cache.counters();
        let _ = writeln!(
            out,
            "# TYPE wid_webhook_serviceaccount_cache_size gauge\nwid_webhook_serviceaccount_cache_size {}",
            cache.len()
        );
        let _ = writeln!(
            out,
            "# TYPE wid_webhook_serviceaccount_cache_synced gauge\nwid_webhook_serviceaccount_cache_synced {}",
            u8::from(cache.is_synced())
        );
        let _ = writeln!(
            out,
            "# TYPE wid_webhook_serviceaccount_lists_total counter\nwid_webhook_serviceaccount_lists_total {lists}"
        );
        let _ = writeln!(
            out,
            "# TYPE wid_webhook_serviceaccount_events_total counter\nwid_webhook_serviceaccount_events_total {events}"
        );
        let (loads, errors) = certs.counters();
        let _ = writeln!(
            out,
            "# TYPE certwatcher_read_certificate_total counter\ncertwatcher_read_certificate_total {}",
            loads + errors
        );
        let _ = writeln!(
            out,
            "# TYPE certwatcher_read_certificate_errors_total counter\ncertwatcher_read_certificate_errors_total {errors}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_histogram_has_upstreams_name_labels_and_buckets() {
        let m = Metrics::default();
        m.admission("default", Duration::from_millis(105), true);
        m.admission("default", Duration::from_millis(2), false);
        m.lookup("cache");
        m.http_request(200);
        let cache = ServiceAccountCache::new(None);
        let text = m.render(&cache, &ReloadingCert::new("a", "b"));
        assert!(
            text.contains(
                "azwi_mutation_request_bucket{namespace=\"default\",service_name=\"webhook\",le=\"0.001\"} 0\n"
            )
        );
        assert!(
            text.contains(
                "azwi_mutation_request_bucket{namespace=\"default\",service_name=\"webhook\",le=\"0.002\"} 1\n"
            )
        );
        assert!(
            text.contains(
                "azwi_mutation_request_bucket{namespace=\"default\",service_name=\"webhook\",le=\"0.2\"} 2\n"
            )
        );
        assert!(
            text.contains(
                "azwi_mutation_request_bucket{namespace=\"default\",service_name=\"webhook\",le=\"1.5\"} 2\n"
            )
        );
        assert!(
            text.contains(
                "azwi_mutation_request_bucket{namespace=\"default\",service_name=\"webhook\",le=\"+Inf\"} 2\n"
            )
        );
        assert!(text.contains("azwi_mutation_request_count{namespace=\"default\",service_name=\"webhook\"} 2\n"));
        assert!(text.contains("wid_webhook_admissions_total{result=\"denied\"} 1\n"));
        assert!(
            text.contains("controller_runtime_webhook_requests_total{code=\"200\",webhook=\"/mutate-v1-pod\"} 1\n")
        );
        assert!(text.contains("wid_webhook_serviceaccount_cache_synced 0\n"));
        assert_eq!(text.matches("azwi_mutation_request_bucket").count(), BUCKETS.len() + 1);
    }
}
