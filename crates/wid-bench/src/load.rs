//! The closed-loop load generator: a fixed number of workers, each sending its next operation as soon
//! as the previous one completed, over keep-alive HTTP/1.1 connections (one per worker) or HTTP/2
//! connections (workers share them as streams). A warm-up whose results are dropped, then a fixed
//! measured window; latencies in an HDR histogram (1 µs .. 60 s, 3 significant digits).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::{Conn, Proto, Req, Target};

/// Builds operation number `seq` (one or more requests sent in sequence and timed together);
/// `None` ends the run (a pool of one-use inputs is exhausted).
pub type MakeOp = Arc<dyn Fn(u64) -> Option<Vec<Req>> + Send + Sync>;

/// How to drive one workload.
#[derive(Debug, Clone)]
pub struct Spec {
    pub proto: Proto,
    /// Operations in flight.
    pub concurrency: usize,
    /// HTTP/2 connections the workers share (HTTP/1.1: one per worker).
    pub h2_connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// The status every request of an operation must answer with.
    pub expect: &'static [u16],
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, serde::Deserialize, Default)]
pub struct Stats {
    pub ops: u64,
    pub errors: u64,
    /// Seconds measured (shorter than asked if the input pool ran out).
    pub seconds: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// The input pool ran out before the end of the window.
    pub exhausted: bool,
    /// The first unexpected answer, for the report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

struct Shared {
    seq: AtomicU64,
    exhausted_at: std::sync::Mutex<Option<Instant>>,
    stop: AtomicBool,
}

/// Runs `make` against `target` as `spec` says.
pub async fn run(target: &Target, spec: &Spec, make: MakeOp) -> anyhow::Result<Stats> {
    let h2_conns = match spec.proto {
        Proto::H2 => {
            let mut v = Vec::new();
            for _ in 0..spec.h2_connections.max(1) {
                v.push(target.connect(Proto::H2).await?);
            }
            v
        }
        Proto::H1 => Vec::new(),
    };
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let end = measure_from + spec.duration;
    let shared =
        Arc::new(Shared { seq: AtomicU64::new(0), exhausted_at: std::sync::Mutex::new(None), stop: false.into() });
    let mut tasks = Vec::with_capacity(spec.concurrency);
    for w in 0..spec.concurrency {
        let conn = match spec.proto {
            Proto::H1 => target.connect(Proto::H1).await?,
            Proto::H2 => {
                h2_conns.get(w % h2_conns.len().max(1)).and_then(Conn::share).context("no HTTP/2 connection")?
            }
        };
        let (make, shared, target, expect, proto) =
            (make.clone(), shared.clone(), target.clone(), spec.expect, spec.proto);
        let hist = new_hist()?;
        tasks.push(tokio::spawn(async move {
            worker(conn, hist, target, proto, make, shared, (measure_from, end), expect).await
        }));
    }
    let mut hist = new_hist()?;
    let (mut ops, mut errors, mut first_error) = (0u64, 0u64, None);
    for t in tasks {
        let r = t.await.context("worker panicked")?;
        hist.add(&r.hist).context("merging histograms")?;
        ops += r.ops;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let exhausted_at = *shared.exhausted_at.lock().unwrap_or_else(|p| p.into_inner());
    let window_end = exhausted_at.map_or(end, |t| t.min(end)).max(measure_from);
    let seconds = window_end.duration_since(measure_from).as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Stats {
        ops,
        errors,
        seconds,
        throughput: if seconds > 0.0 { ops as f64 / seconds } else { 0.0 },
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
        mean_ms: hist.mean() / 1000.0,
        exhausted: exhausted_at.is_some_and(|t| t < end),
        first_error,
    })
}

pub fn new_hist() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")
}

struct WorkerResult {
    hist: Histogram<u64>,
    ops: u64,
    errors: u64,
    first_error: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn worker(
    mut conn: Conn,
    hist: Histogram<u64>,
    target: Target,
    proto: Proto,
    make: MakeOp,
    shared: Arc<Shared>,
    (measure_from, end): (Instant, Instant),
    expect: &'static [u16],
) -> WorkerResult {
    let mut r = WorkerResult { hist, ops: 0, errors: 0, first_error: None };
    loop {
        let t0 = Instant::now();
        if t0 >= end || shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let seq = shared.seq.fetch_add(1, Ordering::Relaxed);
        let Some(op) = make(seq) else {
            shared.stop.store(true, Ordering::Relaxed);
            let mut at = shared.exhausted_at.lock().unwrap_or_else(|p| p.into_inner());
            at.get_or_insert(t0);
            break;
        };
        let mut failure = None;
        for req in &op {
            match conn.send(req).await {
                Ok((status, _)) if expect.contains(&status) => {}
                Ok((status, body)) => {
                    failure =
                        Some(format!("{} {} → {status}: {}", req.method, req.path, String::from_utf8_lossy(&body)));
                    break;
                }
                Err(e) => {
                    failure = Some(format!("{} {}: {e:#}", req.method, req.path));
                    // The connection may be gone: open a new one (HTTP/1.1) and go on.
                    if proto == Proto::H1
                        && let Ok(c) = target.connect(proto).await
                    {
                        conn = c;
                    }
                    break;
                }
            }
        }
        let done = Instant::now();
        if t0 < measure_from || done > end {
            continue;
        }
        match failure {
            None => {
                let us = u64::try_from(done.duration_since(t0).as_micros()).unwrap_or(u64::MAX).max(1);
                let _ = r.hist.record(us.min(60_000_000));
                r.ops += 1;
            }
            Some(f) => {
                r.errors += 1;
                r.first_error.get_or_insert(f);
            }
        }
    }
    r
}

/// Runs `op` in a loop on the current thread for a warm-up and a window; latencies per call.
pub fn run_inline(warmup: Duration, duration: Duration, mut op: impl FnMut() -> bool) -> anyhow::Result<Stats> {
    // Nanoseconds: in-process operations take microseconds.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("histogram")?;
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + duration);
    let (mut ops, mut errors) = (0u64, 0u64);
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let ok = op();
        let done = Instant::now();
        if t0 < measure_from {
            continue;
        }
        if ok {
            let ns = u64::try_from(done.duration_since(t0).as_nanos()).unwrap_or(u64::MAX);
            let _ = hist.record(ns.clamp(1, 60_000_000_000));
            ops += 1;
        } else {
            errors += 1;
        }
    }
    let seconds = duration.as_secs_f64();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1e6;
    Ok(Stats {
        ops,
        errors,
        seconds,
        throughput: ops as f64 / seconds,
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1e6,
        mean_ms: hist.mean() / 1e6,
        exhausted: false,
        first_error: None,
    })
}
