//! `wid-bench`: wid beside its peers on one machine. `wid serve` (and OpenBao, when measured) run
//! pinned to core 0; this process — the load generator and the in-process micro-benchmarks — is
//! meant to run pinned to core 1 (`taskset -c 1 wid-bench …`, as `scripts/bench.sh` does).
//!
//! ```text
//! wid-bench --wid target/release/wid [--bao PATH] [--kube-env FILE] [--upstream-webhook PATH] [--quick]
//!           [--work DIR] [--json FILE] [--results FILE]
//! ```
//! Prints a markdown table, writes the JSON of every figure, and with `--results` the full report.
//! `--kube-env` names the `env` file of `scripts/kube.sh up`: with a real kube-apiserver, `wid
//! webhook` is measured over HTTPS (and beside it, with `--upstream-webhook`, azure-workload-identity's
//! own webhook server) and OpenBao's Kubernetes-auth login with TokenRequest tokens.

mod bao;
mod client;
mod cluster;
mod kube;
mod load;
mod procs;
mod report;
mod scale;
mod webhook;
mod wid;
mod workloads;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;

use crate::client::{Proto, Req, Target};
use crate::cluster::Cluster;
use crate::load::{Spec, Stats};
use crate::procs::{RssSampler, free_port, fresh_dir};
use crate::report::{Report, Row, ScaleRun};
use crate::wid::{Identities, KV_API, SECRET, Wid};
use crate::workloads::{once_each, round_robin};

/// Bench identities (the ones requests come from) at either scale.
const IDENTITIES: usize = 10;

/// The system name of azure-workload-identity's webhook in rows and reports.
pub const UPSTREAM: &str = "azure-workload-identity v1.6.0";

struct Opts {
    quick: bool,
    wid: PathBuf,
    bao: Option<PathBuf>,
    kube_env: Option<PathBuf>,
    /// tests/webhook-oracle's binary, whose `serve` runs upstream's webhook server.
    upstream_webhook: Option<PathBuf>,
    work: PathBuf,
    json: Option<PathBuf>,
    results: Option<PathBuf>,
    large: usize,
    /// Measured window per workload (overrides the mode's).
    seconds: Option<f64>,
    /// Run one in-process micro-benchmark and print its JSON (the parent pins this to core 0).
    only: Option<String>,
    command: String,
}

fn parse_args() -> anyhow::Result<Opts> {
    let mut o = Opts {
        quick: false,
        wid: PathBuf::from("target/release/wid"),
        bao: None,
        kube_env: None,
        upstream_webhook: None,
        work: PathBuf::from("target/bench-work"),
        json: None,
        results: None,
        large: 0,
        seconds: None,
        only: None,
        command: std::env::var("WID_BENCH_COMMAND").unwrap_or_default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--quick" => o.quick = true,
            "--wid" => o.wid = PathBuf::from(val()?),
            "--bao" => o.bao = Some(PathBuf::from(val()?)),
            "--kube-env" => o.kube_env = Some(PathBuf::from(val()?)),
            "--upstream-webhook" => o.upstream_webhook = Some(PathBuf::from(val()?)),
            "--work" => o.work = PathBuf::from(val()?),
            "--json" => o.json = Some(PathBuf::from(val()?)),
            "--results" => o.results = Some(PathBuf::from(val()?)),
            "--identities" => o.large = val()?.parse().context("--identities N")?,
            "--seconds" => o.seconds = Some(val()?.parse().context("--seconds S")?),
            "--only" => o.only = Some(val()?),
            "-h" | "--help" => {
                println!(
                    "wid-bench --wid BIN [--bao BIN] [--kube-env FILE] [--upstream-webhook BIN] [--quick] [--work DIR] [--json FILE] [--results FILE] [--identities N] [--seconds S]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if o.large == 0 {
        o.large = if o.quick { 2_000 } else { 100_000 };
    }
    Ok(o)
}

fn main() -> anyhow::Result<()> {
    let opts = parse_args()?;
    if let Some(what) = &opts.only {
        let secs = Duration::from_secs_f64(opts.seconds.unwrap_or(2.0));
        let json = match what.as_str() {
            "crypto" => serde_json::to_string(&workloads::crypto(secs)?)?,
            "admission" => serde_json::to_string(&workloads::admission(secs / 4, secs)?)?,
            other => bail!("--only {other}: crypto or admission"),
        };
        println!("{json}");
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(run(opts))
}

struct Phase {
    warmup: Duration,
    duration: Duration,
    /// Windows of the cold exchange and of OpenBao's JWT login, each half as long; the median one is
    /// reported. Both are judged against targets, and one window can fall ~10 % below the others when
    /// the machine's host is busy.
    cold_windows: usize,
}

impl Phase {
    fn spec(&self, proto: Proto, concurrency: usize, expect: &'static [u16]) -> Spec {
        Spec { proto, concurrency, h2_connections: 2, warmup: self.warmup, duration: self.duration, expect }
    }

    /// One window of the cold exchange.
    fn cold_window(&self, concurrency: usize) -> Spec {
        let split = if self.cold_windows > 1 { 2 } else { 1 };
        Spec {
            warmup: self.warmup / split,
            duration: self.duration / split,
            ..self.spec(Proto::H1, concurrency, &[200])
        }
    }

    /// One-use tokens enough for the cold windows at up to 5,000/s.
    fn pool_size(&self) -> usize {
        let window = self.cold_window(1);
        (5_000.0 * self.cold_windows as f64 * (window.warmup + window.duration).as_secs_f64()).ceil() as usize
    }
}

async fn run(o: Opts) -> anyhow::Result<()> {
    let all = Instant::now();
    std::fs::create_dir_all(&o.work)?;
    let mut phase = if o.quick {
        Phase { warmup: Duration::from_millis(300), duration: Duration::from_secs(1), cold_windows: 1 }
    } else {
        Phase { warmup: Duration::from_secs(2), duration: Duration::from_secs(10), cold_windows: 3 }
    };
    if let Some(s) = o.seconds {
        phase.duration = Duration::from_secs_f64(s);
    }
    let mut rep = Report::new(o.quick, &o.command);
    let load_start = report::loadavg();
    let c = 16;

    // The in-process figures are taken on core 0, where the servers run, in a child process.
    let micro_secs = if o.quick { 0.5 } else { 3.0 };
    eprintln!("wid-bench: crypto micro-benchmark (core 0)");
    rep.crypto = serde_json::from_slice(&on_core0("crypto", micro_secs)?).context("crypto figures")?;

    eprintln!("wid-bench: admission decision in process (core 0)");
    let adm: Stats = serde_json::from_slice(&on_core0("admission", phase.duration.as_secs_f64())?)?;
    rep.push(Row::new("admission review (mutate path, in process)", "wid", None, 1, adm));

    let kube = match &o.kube_env {
        Some(p) => {
            eprintln!("wid-bench: kube-apiserver of {}: namespaces and ServiceAccounts", p.display());
            let k = kube::Kube::from_env_file(p)?;
            k.setup(IDENTITIES, &uuid::Uuid::new_v4().to_string()).await?;
            Some(k)
        }
        None => None,
    };

    let cluster = Arc::new(Cluster::new()?);
    let pool_size = phase.pool_size();
    eprintln!("wid-bench: signing {pool_size} one-use service-account tokens");
    let pool = cluster.token_pool(IDENTITIES, pool_size, cluster::unix_now())?;

    // ---- wid, 10 identities ------------------------------------------------------------------------
    let data = fresh_dir(&o.work, "wid-data")?;
    // wid serve keeps a profile that names another server: a previous run's must go.
    let _ = std::fs::remove_file(data.with_extension("profile.json"));
    let port = free_port()?;
    eprintln!("wid-bench: wid serve, first start (initialises {})", data.display());
    let w = Wid::start(&o.wid, &data, port, &[]).await?;
    rep.memory.first_start_ms = ms(w.cold_start);
    let ids = w.setup(&cluster, IDENTITIES, cluster::unix_now()).await?;
    w.server.stop()?;
    let w = Wid::start(&o.wid, &data, port, &[]).await?;
    rep.memory.cold_start_ms = ms(w.cold_start);
    tokio::time::sleep(Duration::from_millis(300)).await;
    rep.memory.wid_idle_mb = w.server.rss_mb();
    let small = wid_runs(&w, &ids, &pool, &phase, c, &mut rep, "").await?;
    rep.memory.wid_load_mb = small.peak_mb;
    let (subscription, tenant, vault_id) = (w.subscription.clone(), w.tenant.clone(), w.vault_id());
    w.server.stop()?;

    // ---- wid, the large data set -------------------------------------------------------------------
    eprintln!(
        "wid-bench: writing {} identities and {} role assignments into the stopped server's database",
        o.large, o.large
    );
    let t = Instant::now();
    let added = scale::grow(
        &data,
        uuid::Uuid::parse_str(&subscription)?,
        uuid::Uuid::parse_str(&tenant)?,
        wid::RG,
        &vault_id,
        o.large,
        o.large,
    )?;
    eprintln!("wid-bench: loaded in {:.1} s", t.elapsed().as_secs_f64());
    let w = Wid::start(&o.wid, &data, port, &[]).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let large_idle = w.server.rss_mb();
    let large = wid_runs(&w, &ids, &pool, &phase, c, &mut rep, " [large]").await?;
    // Management writes last, on the large data set (they add identities of their own).
    eprintln!("wid-bench: management writes [large]");
    let admin = {
        let mut conn = w.target.connect(Proto::H1).await?;
        w.admin_token(&mut conn, &w.mgmt_resource()).await?
    };
    let st = load::run(&w.target, &phase.spec(Proto::H1, 4, &[200, 201]), mgmt_op(&w, &admin)).await?;
    rep.push(Row::new("management: create identity + federated credential [large]", "wid", Some(Proto::H1), 4, st));
    let mut added = added;
    rep.scale = Some(ScaleRun {
        added,
        cold_start_ms: ms(w.cold_start),
        idle_mb: large_idle,
        load_mb: large.peak_mb,
        small: small.figures,
        large: large.figures,
        crowd_idle_mb: None,
    });
    w.server.stop()?;

    // ---- wid, two crowded identities on top of the large data set -------------------------------
    eprintln!("wid-bench: crowding two bench identities' credentials in the stopped server's database");
    scale::crowd_db(&data, uuid::Uuid::parse_str(&subscription)?, wid::RG, &mut added)?;
    // No cap: bench identity 0 has more than 100,000 credentials and takes more.
    let w = Wid::start(&o.wid, &data, port, &["--max-federated-credentials", "0"]).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    if let Some(s) = rep.scale.as_mut() {
        s.added = added;
        s.crowd_idle_mb = Some(w.server.rss_mb());
    }
    let admin = {
        let mut conn = w.target.connect(Proto::H1).await?;
        w.admin_token(&mut conn, &w.mgmt_resource()).await?
    };
    // The crowded identities alone, warm (the match runs on every exchange; only the signature is
    // saved), beside an uncrowded one.
    let crowds = [
        (2, format!("an identity with {} credentials", wid::CREDS_PER_IDENTITY)),
        (
            0,
            format!(
                "an identity with {} credentials",
                report::n((scale::CROWD_EXACT + wid::CREDS_PER_IDENTITY) as f64)
            ),
        ),
        (
            1,
            format!("admitted by an expression after {} others on its issuer", report::n(scale::CROWD_PATTERNS as f64)),
        ),
    ];
    for (i, what) in crowds {
        let (Some(client), Some(assertion)) = (ids.client_ids.get(i), ids.warm_assertions.get(i)) else { continue };
        eprintln!("wid-bench: token exchange, warm, {what} [large]");
        let reqs = vec![w.exchange_req(client, assertion)];
        let st = load::run(&w.target, &phase.spec(Proto::H1, c, &[200]), round_robin(reqs)).await?;
        rep.push(Row::new(&format!("token exchange, warm, {what} [large]"), "wid", Some(Proto::H1), c, st));
    }
    // One writer: Entra (and wid) refuse concurrent credential writes on one identity.
    let crowded = format!("{} credentials", report::n((scale::CROWD_EXACT + wid::CREDS_PER_IDENTITY) as f64));
    let st = load::run(&w.target, &phase.spec(Proto::H1, 1, &[201]), crowded_fic_op(&w, &admin)).await?;
    rep.push(Row::new(
        &format!("management: federated credential on an identity with {crowded} [large]"),
        "wid",
        Some(Proto::H1),
        1,
        st,
    ));
    w.server.stop()?;

    // ---- wid webhook over HTTPS, then upstream's --------------------------------------------------
    match &kube {
        Some(k) => {
            let reviews: Vec<Req> = (0..64).map(webhook::review_req).collect();
            let mut servers = vec![(webhook::Flavor::Wid, o.wid.as_path(), "wid")];
            match &o.upstream_webhook {
                Some(bin) => servers.push((webhook::Flavor::Upstream, bin.as_path(), UPSTREAM)),
                None => eprintln!("wid-bench: no --upstream-webhook given: the upstream webhook not measured"),
            }
            for (flavor, bin, system) in servers {
                eprintln!("wid-bench: {system} webhook over HTTPS (its ServiceAccount cache fed by kube-apiserver)");
                let wh = webhook::Webhook::start(bin, flavor, k, &o.work, &tenant).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                let idle = wh.server.rss_mb();
                let sampler = RssSampler::start(wh.server.pid());
                for proto in [Proto::H1, Proto::H2] {
                    let st = load::run(&wh.target, &phase.spec(proto, c, &[200]), round_robin(reviews.clone())).await?;
                    rep.push(Row::new(
                        &format!("admission review (HTTPS, {system} webhook)"),
                        system,
                        Some(proto),
                        c,
                        st,
                    ));
                }
                let peak = Some(sampler.peak_mb());
                drop(sampler);
                wh.server.stop()?;
                match flavor {
                    webhook::Flavor::Wid => {
                        (rep.memory.webhook_idle_mb, rep.memory.webhook_load_mb) = (Some(idle), peak)
                    }
                    webhook::Flavor::Upstream => {
                        (rep.memory.upstream_webhook_idle_mb, rep.memory.upstream_webhook_load_mb) = (Some(idle), peak)
                    }
                }
            }
        }
        None => eprintln!("wid-bench: no --kube-env given: the webhooks over HTTPS not measured"),
    }

    // ---- OpenBao -----------------------------------------------------------------------------------
    match &o.bao {
        Some(bin) => {
            eprintln!("wid-bench: OpenBao");
            let b = bao::Bao::start(bin, &o.work).await?;
            rep.bao_version = b.version.clone();
            rep.memory.bao_cold_start_ms = Some(ms(b.cold_start));
            let tokens = b.setup(&cluster, IDENTITIES).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            rep.memory.bao_idle_mb = Some(b.server.rss_mb());
            let sampler = RssSampler::start(b.server.pid());
            for proto in [Proto::H1, Proto::H2] {
                let reads: Vec<Req> = tokens.iter().map(|t| bao::read_req(t)).collect();
                let st = load::run(&b.target, &phase.spec(proto, c, &[200]), round_robin(reads)).await?;
                rep.push(Row::new("KV v2 read", "OpenBao", Some(proto), c, st));
            }
            // The root token skips the ACL check (not for workloads; shown to place published figures).
            let st = load::run(&b.target, &phase.spec(Proto::H1, c, &[200]), round_robin(vec![bao::read_req("root")]))
                .await?;
            rep.push(Row::new("root-token KV v2 read (no ACL check)", "OpenBao", Some(Proto::H1), c, st));
            let tokens = Arc::new(tokens);
            let writes: load::MakeOp = Arc::new(move |seq| {
                let t = tokens.get(usize::try_from(seq).unwrap_or(0) % tokens.len().max(1))?;
                Some(vec![bao::write_req(t, &format!("set-{}", seq % 8), &format!("value-{seq}"))])
            });
            let st = load::run(&b.target, &phase.spec(Proto::H1, c, &[200]), writes).await?;
            rep.push(Row::new("KV v2 write", "OpenBao", Some(Proto::H1), c, st));
            // Logins last: each one leaves a token and a lease behind, which would slow the KV runs.
            let logins: Vec<Req> = pool.iter().map(|(i, t)| bao::login_req(*i, t)).collect();
            let (st, label) = cold_windows(&b.target, &phase, c, &logins).await?;
            rep.push(Row::new(&format!("JWT auth login ({label})"), "OpenBao", Some(Proto::H1), c, st));
            if let Some(k) = &kube {
                b.setup_kubernetes(k, IDENTITIES).await?;
                // Enough fresh tokens for ~2,000 logins/s (the API server signs each one).
                let count = (2_000.0 * (phase.warmup + phase.duration).as_secs_f64()).ceil() as usize;
                eprintln!("wid-bench: {count} service-account tokens from kube-apiserver's TokenRequest");
                let t = Instant::now();
                let real = k.token_pool(IDENTITIES, count).await?;
                eprintln!("wid-bench: got them in {:.1} s", t.elapsed().as_secs_f64());
                let logins: Vec<Req> = real.iter().map(|(i, t)| bao::kube_login_req(*i, t)).collect();
                let st = load::run(&b.target, &phase.spec(Proto::H1, c, &[200]), once_each(logins)).await?;
                rep.push(Row::new(
                    "Kubernetes auth login (TokenReview, fresh SA token each)",
                    "OpenBao",
                    Some(Proto::H1),
                    c,
                    st,
                ));
            }
            rep.memory.bao_load_mb = Some(sampler.peak_mb());
            drop(sampler);
            b.server.stop()?;
        }
        None => eprintln!("wid-bench: no --bao given: OpenBao not measured"),
    }

    rep.binary_mb = std::fs::metadata(&o.wid).map(|m| m.len() as f64 / 1_048_576.0).unwrap_or(0.0);
    rep.seconds = all.elapsed().as_secs_f64();
    rep.machine = report::Machine { load_start, ..report::machine() };
    println!("{}", rep.markdown_summary());
    if let Some(p) = &o.json {
        std::fs::write(p, serde_json::to_vec_pretty(&rep)?).with_context(|| format!("write {}", p.display()))?;
        eprintln!("wid-bench: wrote {}", p.display());
    }
    if let Some(p) = &o.results {
        std::fs::write(p, rep.results_md()).with_context(|| format!("write {}", p.display()))?;
        eprintln!("wid-bench: wrote {}", p.display());
    }
    let errors: u64 = rep.rows.iter().map(|r| r.stats.errors).sum();
    if errors > 0 {
        bail!("{errors} requests failed (see the table)");
    }
    Ok(())
}

/// Runs `wid-bench --only WHAT` pinned to core 0 and returns its stdout.
fn on_core0(what: &str, secs: f64) -> anyhow::Result<Vec<u8>> {
    let me = std::env::current_exe()?;
    let out = std::process::Command::new("taskset")
        .args(["-c", "0"])
        .arg(me)
        .args(["--only", what, "--seconds", &secs.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("taskset -c 0 wid-bench --only")?;
    if !out.status.success() {
        bail!("wid-bench --only {what} failed");
    }
    Ok(out.stdout)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs one-use requests (fresh SA tokens) in `phase.cold_windows` windows, a share of `reqs` each;
/// returns the median window and a label naming every window's rate.
async fn cold_windows(target: &Target, phase: &Phase, c: usize, reqs: &[Req]) -> anyhow::Result<(Stats, String)> {
    let per_window = (reqs.len() / phase.cold_windows.max(1)).max(1);
    let mut windows = Vec::new();
    for part in reqs.chunks(per_window).take(phase.cold_windows) {
        windows.push(load::run(target, &phase.cold_window(c), once_each(part.to_vec())).await?);
    }
    windows.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
    let median = windows.get(windows.len() / 2).cloned().context("no window ran")?;
    let each: Vec<String> = windows.iter().map(|s| format!("{:.0}", s.throughput)).collect();
    let label = match windows.len() {
        1 => "fresh SA token each".to_string(),
        n => format!("fresh SA token each; median of {n} windows: {}/s", each.join(", ")),
    };
    Ok((median, label))
}

/// What one scale's runs gave (for the 10 vs large comparison).
struct ScaleFigures {
    figures: Vec<(String, Stats)>,
    peak_mb: f64,
}

async fn wid_runs(
    w: &Wid,
    ids: &Identities,
    pool: &[(usize, String)],
    phase: &Phase,
    c: usize,
    rep: &mut Report,
    tag: &str,
) -> anyhow::Result<ScaleFigures> {
    let sampler = RssSampler::start(w.server.pid());
    let mut figures = Vec::new();
    let client = |i: usize| ids.client_ids.get(i).map_or("", String::as_str);

    eprintln!("wid-bench: token exchange, cold{tag}");
    let cold: Vec<Req> = pool.iter().map(|(i, t)| w.exchange_req(client(*i), t)).collect();
    let (st, label) = cold_windows(&w.target, phase, c, &cold).await?;
    figures.push(("exchange cold".to_string(), st.clone()));
    rep.push(Row::new(&format!("token exchange, cold ({label}){tag}"), "wid", Some(Proto::H1), c, st));

    let warm: Vec<Req> = ids.warm_assertions.iter().enumerate().map(|(i, a)| w.exchange_req(client(i), a)).collect();
    let gets: Vec<Req> = ids
        .vault_tokens
        .iter()
        .map(|t| Req::get(format!("/secrets/{SECRET}?api-version={KV_API}")).bearer(t))
        .collect();
    // The large run repeats HTTP/1.1 only: the scale comparison needs one protocol.
    let protos: &[Proto] = if tag.is_empty() { &[Proto::H1, Proto::H2] } else { &[Proto::H1] };
    for (figure, label, target, reqs) in [
        ("exchange warm", "token exchange, warm (same SA token again)", &w.target, warm),
        ("secret GET", "secret GET (bearer + RBAC)", &w.vault, gets),
    ] {
        for &proto in protos {
            eprintln!("wid-bench: {label}, {proto:?}{tag}");
            let st = load::run(target, &phase.spec(proto, c, &[200]), round_robin(reqs.clone())).await?;
            if proto == Proto::H1 {
                figures.push((figure.to_string(), st.clone()));
            }
            rep.push(Row::new(&format!("{label}{tag}"), "wid", Some(proto), c, st));
        }
    }

    if tag.is_empty() {
        eprintln!("wid-bench: secret SET");
        let tokens = Arc::new(ids.vault_tokens.clone());
        let sets: load::MakeOp = Arc::new(move |seq| {
            let t = tokens.get(usize::try_from(seq).unwrap_or(0) % tokens.len().max(1))?;
            let body = serde_json::json!({"value": format!("value-{seq}")});
            Some(vec![
                Req::json(Method::PUT, format!("/secrets/set-{}?api-version={KV_API}", seq % 8), &body).bearer(t),
            ])
        });
        let st = load::run(&w.vault, &phase.spec(Proto::H1, c, &[200]), sets).await?;
        rep.push(Row::new("secret SET (durable)", "wid", Some(Proto::H1), c, st));
    }
    Ok(ScaleFigures { figures, peak_mb: sampler.peak_mb() })
}

/// Create an identity, then a federated credential on it (two durable writes), as one operation.
/// A new federated credential on bench identity 0, whose credentials the large run crowded.
fn crowded_fic_op(w: &Wid, admin: &str) -> load::MakeOp {
    let (admin, sub) = (admin.to_string(), w.subscription.clone());
    Arc::new(move |seq| {
        let path = format!(
            "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-0/federatedIdentityCredentials/added-{seq}?api-version={}",
            wid::RG,
            wid::ARM_API
        );
        let body = serde_json::json!({"properties": {"issuer": cluster::ISSUER, "subject": format!("system:serviceaccount:added:sa-{seq}"), "audiences": [cluster::AUDIENCE]}});
        Some(vec![Req::json(Method::PUT, path, &body).bearer(&admin)])
    })
}

fn mgmt_op(w: &Wid, admin: &str) -> load::MakeOp {
    let (admin, sub) = (admin.to_string(), w.subscription.clone());
    Arc::new(move |seq| {
        let base = format!(
            "/subscriptions/{sub}/resourceGroups/{}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/m-{seq}",
            wid::RG
        );
        let id = Req::json(
            Method::PUT,
            format!("{base}?api-version={}", wid::ARM_API),
            &serde_json::json!({"location": "eastus"}),
        )
        .bearer(&admin);
        let fic = Req::json(
            Method::PUT,
            format!("{base}/federatedIdentityCredentials/fic?api-version={}", wid::ARM_API),
            &serde_json::json!({"properties": wid::credential(usize::try_from(seq).unwrap_or(0), 19)}),
        )
        .bearer(&admin);
        Some(vec![id, fic])
    })
}
