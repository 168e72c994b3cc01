//! A bounded load soak of a real `wid serve` on loopback, with mixed traffic from several clients:
//! workload token exchanges (assertions from an external OIDC issuer — a second `wid serve` whose
//! hosted issuer is reached by discovery over HTTPS), client-secret tokens, secret writes, reads,
//! lists and version lists, management reads and identity churn, and refused requests of every
//! kind. Mid-run the external issuer is killed: exchanges keep working from the cached keys (the
//! cache's limits — 1 h TTL, 24 h stale while down, then AADSTS90061 — are proven with a fixed
//! clock in crates/wid-server/tests/external_issuer.rs). Passes when there is no 5xx, no
//! unexpected status, RSS grows by less than the stated bound and no descriptor leaks.
//!
//! Then secrets hygiene over everything the run produced: no secret value, client secret, master
//! key, CA key, assertion or access token in the server log (at debug level), the audit log or any
//! error body; the data dir 0700 and every key file, the database, the audit log and the CLI
//! profile 0600.
//!
//! `WID_SOAK_SECS` (default 5) sets the duration; `scripts/soak.sh` runs 10 minutes and records the
//! figures (`WID_FIGURES_FILE`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use support::{RG, Serve, assign, env_num, put};
use wid_core::rbac::roles::KEY_VAULT_SECRETS_OFFICER;

const VAULT: &str = "kvs";
const WORKERS: usize = 8;
/// The stated bound: RSS after the run minus RSS after warm-up.
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;
/// Descriptors the server may hold above its idle count once the clients are gone (log and
/// database files, the listener, a socket closing).
const FD_SLACK: usize = 8;

#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    by_kind: Mutex<BTreeMap<&'static str, u64>>,
    five_xx: AtomicU64,
    unexpected: Mutex<Vec<String>>,
    /// Every error body the clients received (checked for secrets at the end).
    error_bodies: Mutex<Vec<String>>,
    /// Every secret value written.
    values: Mutex<Vec<String>>,
    /// Access tokens received (a sample).
    tokens: Mutex<Vec<String>>,
}

impl Tally {
    async fn check(&self, kind: &'static str, req: reqwest::RequestBuilder, want: &[u16]) -> Option<Value> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        *self.by_kind.lock().unwrap().entry(kind).or_default() += 1;
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                self.unexpected.lock().unwrap().push(format!("{kind}: {e}"));
                return None;
            }
        };
        let st = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if st >= 500 {
            self.five_xx.fetch_add(1, Ordering::Relaxed);
        }
        if !want.contains(&st) {
            self.unexpected.lock().unwrap().push(format!("{kind}: HTTP {st}: {body}"));
        }
        if st >= 400 {
            let mut bodies = self.error_bodies.lock().unwrap();
            if bodies.len() < 10_000 {
                bodies.push(body.clone());
            }
        }
        Some(serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}

struct Ctx {
    a: Serve,
    admin: String,
    kv_admin: String,
    client_id: String,
    assertions: Vec<String>,
    tally: Tally,
    issuer_down: AtomicBool,
}

async fn worker(c: &Ctx, w: usize, until: Instant) {
    let a = &c.a;
    let http = &a.client.http;
    let vault_res = a.vault_resource();
    let token_url = format!("{}/{}/oauth2/v2.0/token", a.client.url, a.client.tenant);
    let arm =
        |p: &str| format!("{}{}?api-version=2023-01-31", a.client.url, p.replace("{sub}", &a.client.subscription));
    let mut workload = String::new();
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        let t = &c.tally;
        match i % 12 {
            0 | 6 => {
                let assertion = &c.assertions[(i as usize + w) % c.assertions.len()];
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", c.client_id.as_str()),
                    ("client_assertion", assertion.as_str()),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("scope", &format!("{vault_res}/.default")),
                ];
                let kind = if c.issuer_down.load(Ordering::Relaxed) { "exchange (issuer down)" } else { "exchange" };
                if let Some(b) = t.check(kind, http.post(&token_url).form(&form), &[200]).await
                    && let Some(tok) = b["access_token"].as_str()
                {
                    workload = tok.to_string();
                    let mut tokens = t.tokens.lock().unwrap();
                    if tokens.len() < 100 {
                        tokens.push(workload.clone());
                    }
                }
            }
            1 | 7 if !workload.is_empty() => {
                let value = format!("soak-value-{}", uuid::Uuid::new_v4().simple());
                t.values.lock().unwrap().push(value.clone());
                let url = a.vault_url(VAULT, &format!("/secrets/s{}", i % 16));
                t.check(
                    "secret set",
                    a.vault_http.put(url).bearer_auth(&workload).json(&json!({"value": value})),
                    &[200],
                )
                .await;
            }
            2 | 8 if !workload.is_empty() => {
                let url = a.vault_url(VAULT, &format!("/secrets/s{}", i % 4));
                t.check("secret get", a.vault_http.get(url).bearer_auth(&workload), &[200, 404]).await;
            }
            3 => {
                let url = a.vault_url(VAULT, if i % 24 == 3 { "/secrets/s1/versions" } else { "/secrets" });
                t.check("secret list", a.vault_http.get(url).bearer_auth(&c.kv_admin), &[200]).await;
            }
            4 => {
                let p = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/churn-{w}-{}", i % 5);
                if i % 10 == 4 {
                    t.check("identity delete", http.delete(arm(&p)).bearer_auth(&c.admin), &[200, 204]).await;
                } else {
                    t.check(
                        "identity put",
                        http.put(arm(&p)).bearer_auth(&c.admin).json(&json!({"location": "local"})),
                        &[200, 201],
                    )
                    .await;
                }
            }
            5 => {
                let p = "/subscriptions/{sub}/resourceGroups";
                t.check("arm list", http.get(arm(p)).bearer_auth(&c.admin), &[200]).await;
            }
            9 => {
                // Refusals: a bad name, a wrong secret, a garbage token, an unknown client.
                let kind_req = match i % 48 {
                    9 => (
                        "refused: bad name",
                        a.vault_http.get(a.vault_url(VAULT, "/secrets/bad_name")).bearer_auth(&c.kv_admin),
                        vec![400],
                    ),
                    21 => (
                        "refused: garbage token",
                        a.vault_http.get(a.vault_url(VAULT, "/secrets/s1")).bearer_auth("garbage"),
                        vec![401],
                    ),
                    33 => (
                        "refused: wrong client secret",
                        http.post(&token_url).form(&[
                            ("grant_type", "client_credentials"),
                            ("client_id", a.client.profile.client_id.as_str()),
                            ("client_secret", "soak-wrong-secret-value"),
                            ("scope", &format!("{vault_res}/.default")),
                        ]),
                        vec![401],
                    ),
                    _ => (
                        "refused: no role",
                        http.get(arm("/subscriptions/{sub}/resourceGroups/rg")).bearer_auth(&workload),
                        vec![401, 403],
                    ),
                };
                t.check(kind_req.0, kind_req.1, &kind_req.2).await;
            }
            10 => {
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", a.client.profile.client_id.as_str()),
                    ("client_secret", a.client.profile.client_secret.as_deref().unwrap()),
                    ("scope", &format!("{}/.default", a.client.url)),
                ];
                t.check("client-secret token", http.post(&token_url).form(&form), &[200]).await;
            }
            _ => {
                let path = if i % 24 == 11 { "/metrics" } else { "/readyz" };
                t.check("health/metrics", http.get(format!("{}{path}", a.client.url)), &[200]).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_mixed_traffic_issuer_outage_and_secrets_hygiene() {
    let secs: u64 = env_num("WID_SOAK_SECS", 5);
    let tmp = tempfile::tempdir().unwrap();

    // The external issuer: another wid serve hosting a cluster's OIDC issuer.
    let mut b = Serve::spawn(&tmp.path().join("issuer"), 0, &[], &[]).await;
    let b_admin = b.client.admin_token().await;
    put(&b.client, &b_admin, RG, json!({"location": "local"})).await;
    let cluster_path = format!("{RG}/providers/Microsoft.ContainerService/managedClusters/ext");
    let cluster = put(&b.client, &b_admin, &cluster_path, json!({})).await;
    let issuer = cluster["properties"]["oidcIssuerProfile"]["issuerURL"].as_str().unwrap().to_string();
    let mut assertions = Vec::new();
    for _ in 0..4 {
        let body = json!({"namespace": "soak", "serviceAccountName": "app", "expirationSeconds": 24 * 3600});
        let (st, sa) = b.client.arm(&b_admin, "POST", &format!("{cluster_path}/serviceAccountToken"), Some(body)).await;
        assert_eq!(st, 200, "{sa}");
        assertions.push(sa["token"].as_str().unwrap().to_string());
    }

    // The server under test trusts B's CA for issuer fetches only.
    let b_ca = tmp.path().join("issuer").join("data").join("ca.pem");
    let a_dir = tmp.path().join("serve");
    let audit = a_dir.join("audit.jsonl");
    let args = ["--issuer-ca-file", b_ca.to_str().unwrap(), "--audit-log", audit.to_str().unwrap()];
    let a = Serve::spawn(&a_dir, 0, &args, &[VAULT]).await;
    let admin = a.client.admin_token().await;
    let vault_id = a.vault_with_officer(&admin, VAULT).await;
    let id_path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/soak");
    let id = put(&a.client, &admin, &id_path, json!({"location": "local"})).await;
    let fic = json!({"properties": {"issuer": issuer, "subject": "system:serviceaccount:soak:app", "audiences": ["api://AzureADTokenExchange"]}});
    put(&a.client, &admin, &format!("{id_path}/federatedIdentityCredentials/ext"), fic).await;
    assign(&a.client, &admin, &vault_id, KEY_VAULT_SECRETS_OFFICER, id["properties"]["principalId"].as_str().unwrap())
        .await;
    let kv_admin = a.admin_token_for(&a.vault_resource()).await;
    let client_id = id["properties"]["clientId"].as_str().unwrap().to_string();
    let idle_fds = a.fds();

    let ctx = Arc::new(Ctx {
        a,
        admin,
        kv_admin,
        client_id,
        assertions,
        tally: Tally::default(),
        issuer_down: AtomicBool::new(false),
    });
    // Warm-up (caches, pools, the issuer's keys), then the measured run.
    let warm = Instant::now() + Duration::from_secs(2);
    futures_join(&ctx, warm).await;
    let rss_start = ctx.a.rss_kib();
    let fds_start = ctx.a.fds();
    let started = Instant::now();
    let until = started + Duration::from_secs(secs);
    let sampler = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut peak = 0u64;
            while Instant::now() < until {
                peak = peak.max(ctx.a.rss_kib());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            peak
        })
    };
    let outage = {
        let ctx = ctx.clone();
        let half = started + Duration::from_secs(secs) / 2;
        let pid = b.pid();
        tokio::spawn(async move {
            tokio::time::sleep_until(half.into()).await;
            support::kill(pid);
            ctx.issuer_down.store(true, Ordering::Relaxed);
        })
    };
    futures_join(&ctx, until).await;
    outage.await.unwrap();
    b.child.wait().unwrap();
    let rss_peak = sampler.await.unwrap();
    let elapsed = started.elapsed();
    let rss_end = ctx.a.rss_kib();
    let fds_end_busy = ctx.a.fds();

    let t = &ctx.tally;
    let unexpected = t.unexpected.lock().unwrap().clone();
    let by_kind = t.by_kind.lock().unwrap().clone();
    let requests = t.requests.load(Ordering::Relaxed);
    let five_xx = t.five_xx.load(Ordering::Relaxed);
    let figures = format!(
        "soak: {elapsed:.0?} of mixed traffic, {WORKERS} clients, {requests} requests ({:.0}/s), {five_xx} 5xx, {} unexpected; RSS {rss_start} KiB after warm-up, {rss_end} KiB at the end (peak {rss_peak} KiB); fds {fds_start} at start, {fds_end_busy} at the end; external issuer killed at half time, {} exchanges after; by kind {by_kind:?}",
        requests as f64 / elapsed.as_secs_f64(),
        unexpected.len(),
        by_kind.get("exchange (issuer down)").copied().unwrap_or(0),
    );
    eprintln!("{figures}");
    assert_eq!(five_xx, 0, "5xx during the soak: {unexpected:?}");
    assert!(unexpected.is_empty(), "unexpected answers: {:?}", &unexpected[..unexpected.len().min(20)]);
    assert!(
        by_kind.get("exchange (issuer down)").copied().unwrap_or(0) > 0,
        "no exchange ran while the issuer was down"
    );
    assert!(rss_end.saturating_sub(rss_start) < RSS_GROWTH_BOUND_KIB, "RSS grew from {rss_start} to {rss_end} KiB");

    // No descriptor leak: the clients' connections closed, the server is back to its idle count.
    let mut ctx = Arc::try_unwrap(ctx).ok().unwrap();
    ctx.a.renew_clients();
    let deadline = Instant::now() + Duration::from_secs(10);
    let fds_end = loop {
        let n = ctx.a.fds();
        if n <= idle_fds + FD_SLACK || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(fds_end <= idle_fds + FD_SLACK, "descriptors: {idle_fds} idle before, {fds_end} after the clients left");
    eprintln!("soak: fds {idle_fds} idle before the run, {fds_end} after the clients left");

    // ---- secrets hygiene over everything the run produced --------------------------------------
    ctx.a.stop().await;
    let data = a_dir.join("data");
    let mut needles: Vec<(String, String)> = Vec::new();
    let profile = &ctx.a.client.profile;
    needles.push(("the admin client secret".into(), profile.client_secret.clone().unwrap()));
    for v in ctx.tally.values.lock().unwrap().iter() {
        needles.push(("a secret value".into(), v.clone()));
    }
    for tok in ctx.tally.tokens.lock().unwrap().iter().chain([&ctx.admin, &ctx.kv_admin]) {
        // A token's signature is what makes it usable; its header alone is not secret.
        needles.push(("an access token".into(), tok.rsplit('.').next().unwrap().to_string()));
    }
    for a in &ctx.assertions {
        needles.push(("an assertion".into(), a.rsplit('.').next().unwrap().to_string()));
    }
    needles.push(("a presented wrong secret".into(), "soak-wrong-secret-value".into()));
    let master = std::fs::read(data.join("master.key")).unwrap();
    let hex: String = master.iter().map(|b| format!("{b:02x}")).collect();
    needles.push(("the master key (hex)".into(), hex));
    for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE_NO_PAD] {
        needles.push(("the master key (base64)".into(), engine.encode(&master)[..40].to_string()));
    }
    let ca_key = std::fs::read_to_string(data.join("ca.key")).unwrap();
    let ca_key_line = ca_key.lines().nth(1).unwrap().to_string();
    needles.push(("the CA key".into(), ca_key_line));
    let log = ctx.a.log();
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    let errors = ctx.tally.error_bodies.lock().unwrap().join("\n");
    let issuer_log = b.log();
    assert!(audit_text.lines().count() > 100, "the audit log recorded the run");
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    for (what, text) in [
        ("the server log", &log),
        ("the audit log", &audit_text),
        ("error bodies", &errors),
        ("the issuer's log", &issuer_log),
    ] {
        // Needles made of `[A-Za-z0-9_-]` only (values, signatures, hex) are looked up as whole words
        // of the text (split at every other character: quotes, `=`, spaces, dots), so a long run
        // stays linear; the others (base64 with `+`/`/`, PEM lines) are searched as substrings.
        let words: std::collections::HashSet<&str> = text.split(|c: char| !word(c)).collect();
        for (secret, needle) in &needles {
            let found =
                if needle.chars().all(word) { words.contains(needle.as_str()) } else { text.contains(needle.as_str()) };
            assert!(!found, "{secret} appears in {what}");
        }
        assert!(!text.contains("panicked"), "a panic in {what}");
    }
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "the data dir");
    for f in ["master.key", "ca.key", "wid.db"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&audit), 0o600, "the audit log");
    assert_eq!(mode(&a_dir.join("profile.json")), 0o600, "the CLI profile");
    let hygiene = format!(
        "secrets hygiene: {} secrets (values, client secret, master key, CA key, token and assertion signatures) searched in {} log lines, {} audit records and {} error bodies: none found",
        needles.len(),
        log.lines().count() + issuer_log.lines().count(),
        audit_text.lines().count(),
        ctx.tally.error_bodies.lock().unwrap().len()
    );
    eprintln!("{hygiene}");
    if let Ok(path) = std::env::var("WID_FIGURES_FILE") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        writeln!(f, "{figures}; fds {idle_fds} idle before, {fds_end} after the clients left\n{hygiene}").unwrap();
    }
}

/// Runs the workers until `until`.
async fn futures_join(ctx: &Arc<Ctx>, until: Instant) {
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move { worker(&ctx, w, until).await }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
