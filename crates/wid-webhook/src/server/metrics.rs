//! Prometheus metrics of `wid webhook`, in the text exposition format.
//!
//! Upstream's one custom metric, `azwi_mutation_request` (seconds; labels `namespace` and
//! `service_name="webhook"`; its buckets), is reproduced exactly, plus the controller-runtime series
//! its docs point to and a few of wid's own (ServiceAccount lookups, cache state).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use wid_http::ReloadingCert;
use wid_http::prometheus::{Exposition, Histogram};
use wid_kube::ServiceAccountCache;

/// Upstream's bucket bounds (`pkg/metrics/exporters/prometheus/prometheus.go`).
pub const BUCKETS: [f64; 32] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08,
    0.09, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.5, 2.0, 2.5, 3.0,
];

const WEBHOOK_PATH: &str = "/mutate-v1-pod";

#[derive(Default)]
struct Counts {
    lookups: BTreeMap<&'static str, u64>,
    http: BTreeMap<u16, u64>,
}

/// The webhook's metrics. An admission takes one lock (its namespace's histogram) and a few atomic
/// adds; lookups and HTTP codes share another lock off that path.
pub struct Metrics {
    /// Per request namespace.
    mutation: Mutex<BTreeMap<String, Histogram>>,
    latency: Histogram,
    allowed: AtomicU64,
    denied: AtomicU64,
    counts: Mutex<Counts>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            mutation: Mutex::default(),
            latency: Histogram::new(&BUCKETS),
            allowed: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            counts: Mutex::default(),
        }
    }
}

impl Metrics {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One admission request answered (allowed or denied), as upstream observes every request.
    pub fn admission(&self, namespace: &str, elapsed: Duration, allowed: bool) {
        {
            let mut by_namespace = self.mutation.lock().unwrap_or_else(|p| p.into_inner());
            // The namespace is known after its first admission: look it up without allocating.
            match by_namespace.get(namespace) {
                Some(h) => h.observe(elapsed),
                None => by_namespace
                    .entry(namespace.to_string())
                    .or_insert_with(|| Histogram::new(&BUCKETS))
                    .observe(elapsed),
            }
        }
        self.latency.observe(elapsed);
        if allowed { &self.allowed } else { &self.denied }.fetch_add(1, Ordering::Relaxed);
    }

    /// Where a ServiceAccount came from (`cache`, `api`, `api_retry`) or why not (`not_found`,
    /// `error`, `timeout`).
    pub fn lookup(&self, outcome: &'static str) {
        *self.counts().lookups.entry(outcome).or_default() += 1;
    }

    /// An HTTP answer of the admission endpoint.
    pub fn http_request(&self, code: u16) {
        *self.counts().http.entry(code).or_default() += 1;
    }

    /// The exposition text.
    pub fn render(&self, cache: &ServiceAccountCache, certs: &ReloadingCert) -> String {
        let mut e = Exposition::new();
        e.family(
            "azwi_mutation_request",
            "histogram",
            Some("Distribution of how long it took for the azure-workload-identity mutation request"),
        );
        for (ns, h) in self.mutation.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            e.histogram("azwi_mutation_request", &[("namespace", ns), ("service_name", "webhook")], h);
        }
        let counts = self.counts();
        e.family(
            "controller_runtime_webhook_requests_total",
            "counter",
            Some("Total number of admission requests by HTTP status code."),
        );
        for (code, n) in &counts.http {
            let code = code.to_string();
            e.sample(
                "controller_runtime_webhook_requests_total",
                &[("code", code.as_str()), ("webhook", WEBHOOK_PATH)],
                n,
            );
        }
        e.family(
            "controller_runtime_webhook_latency_seconds",
            "histogram",
            Some("Histogram of the latency of processing admission requests"),
        )
        .histogram("controller_runtime_webhook_latency_seconds", &[("webhook", WEBHOOK_PATH)], &self.latency);
        e.family("wid_webhook_admissions_total", "counter", Some("Admission decisions."));
        for (result, n) in [("allowed", &self.allowed), ("denied", &self.denied)] {
            let n = n.load(Ordering::Relaxed);
            if n > 0 {
                e.sample("wid_webhook_admissions_total", &[("result", result)], n);
            }
        }
        e.family(
            "wid_webhook_serviceaccount_lookups_total",
            "counter",
            Some("ServiceAccount lookups by source or failure."),
        );
        for (outcome, n) in &counts.lookups {
            e.sample("wid_webhook_serviceaccount_lookups_total", &[("outcome", outcome)], n);
        }
        drop(counts);
        let (lists, events) = cache.counters();
        let (loads, errors) = certs.counters();
        for (name, kind, value) in [
            ("wid_webhook_serviceaccount_cache_size", "gauge", u64::try_from(cache.len()).unwrap_or(u64::MAX)),
            ("wid_webhook_serviceaccount_cache_synced", "gauge", u64::from(cache.is_synced())),
            ("wid_webhook_serviceaccount_lists_total", "counter", lists),
            ("wid_webhook_serviceaccount_events_total", "counter", events),
            ("certwatcher_read_certificate_total", "counter", loads + errors),
            ("certwatcher_read_certificate_errors_total", "counter", errors),
        ] {
            e.family(name, kind, None).sample(name, &[], value);
        }
        e.finish()
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
