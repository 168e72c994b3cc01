//! The Prometheus text exposition format (version 0.0.4), written by hand for both servers: a few
//! counters and latency histograms do not need a registry crate. [`Exposition`] writes families
//! and samples with escaped labels; [`Histogram`] counts observations into fixed buckets without a
//! lock (it sits on the token endpoint's path).

use std::fmt::{Display, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A latency histogram over fixed upper bounds (seconds), safe to observe from any thread.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram with buckets `le` each of `bounds` (ascending) and `+Inf`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, c) in self.bounds.iter().zip(self.counts.iter()) {
            if secs <= *bound {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// An exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a family: `# HELP` (when given) and `# TYPE` (`counter`, `gauge` or `histogram`).
    pub fn family(&mut self, name: &str, kind: &str, help: Option<&str>) -> &mut Self {
        if let Some(help) = help {
            let _ = writeln!(self.out, "# HELP {name} {help}");
        }
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        self
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) -> &mut Self {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
        self
    }

    /// A histogram's `_bucket`, `_sum` and `_count` samples with `labels`.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) -> &mut Self {
        let bucket = format!("{name}_bucket");
        for (bound, c) in h.bounds.iter().zip(h.counts.iter()) {
            self.out.push_str(&bucket);
            self.labels(labels, Some(&bound.to_string()));
            let _ = writeln!(self.out, " {}", c.load(Ordering::Relaxed));
        }
        let n = h.count.load(Ordering::Relaxed);
        self.out.push_str(&bucket);
        self.labels(labels, Some("+Inf"));
        let _ = writeln!(self.out, " {n}");
        let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, n)
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }

    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|v| ("le", v));
        for (i, (k, v)) in labels.iter().copied().chain(le).enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{k}=\"{}\"", escape(v));
        }
        self.out.push('}');
    }
}

/// A label value as the format wants it: backslash, double quote and newline escaped.
fn escape(v: &str) -> std::borrow::Cow<'_, str> {
    if v.contains(['\\', '"', '\n']) {
        v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n").into()
    } else {
        v.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_histograms() {
        static BOUNDS: [f64; 3] = [0.001, 0.5, 3.0];
        let h = Histogram::new(&BOUNDS);
        h.observe(Duration::from_millis(2));
        h.observe(Duration::from_millis(600));
        let mut e = Exposition::new();
        e.family("x_total", "counter", Some("Things.")).sample("x_total", &[("a", "q\"\\\n")], 3);
        e.family("g", "gauge", None).sample("g", &[], 1);
        e.family("h", "histogram", None).histogram("h", &[("ns", "d")], &h);
        assert_eq!(
            e.finish(),
            "# HELP x_total Things.\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\"} 3\n# TYPE g gauge\ng 1\n\
             # TYPE h histogram\nh_bucket{ns=\"d\",le=\"0.001\"} 0\nh_bucket{ns=\"d\",le=\"0.5\"} 1\n\
             h_bucket{ns=\"d\",le=\"3\"} 2\nh_bucket{ns=\"d\",le=\"+Inf\"} 2\nh_sum{ns=\"d\"} 0.602\nh_count{ns=\"d\"} 2\n"
        );
    }
}
