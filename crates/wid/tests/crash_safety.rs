//! Crash safety of a real `wid serve` on SQLite: several clients write secrets, identities,
//! federated credentials and role assignments (creates and deletes) while the process is killed
//! with SIGKILL at random points; after every restart the server is ready, every acknowledged write
//! is there (and every acknowledged delete stays deleted), and at the end the whole database exports
//! without a corrupt row. And a data dir on a full or read-only filesystem: clear errors, no
//! corruption, and service resumes once space is back.
//!
//! `WID_CRASH_ITERATIONS` (default 20) kill rounds with about `WID_CRASH_WRITES` (default 200)
//! acknowledged writes each; `scripts/soak.sh crash` runs the long variant and records its figures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{RG, Serve, env_num, put, wid};
use wid_core::rbac::roles::KEY_VAULT_SECRETS_USER;

const VAULT: &str = "kvc";

/// What the clients saw acknowledged in one round.
#[derive(Default)]
struct Acks {
    /// (secret name, version, value)
    secrets: Vec<(String, String, String)>,
    /// ARM paths acknowledged as created (and not deleted afterwards).
    present: Vec<String>,
    /// ARM paths acknowledged as deleted.
    deleted: Vec<String>,
}

impl Acks {
    fn extend(&mut self, other: Acks) {
        self.secrets.extend(other.secrets);
        self.present.extend(other.present);
        self.deleted.extend(other.deleted);
    }
    fn writes(&self) -> usize {
        self.secrets.len() + self.present.len() + self.deleted.len()
    }
}

/// Sends requests until the connection fails (the kill); any HTTP answer other than the expected
/// one is a bug (a 5xx under concurrent writes, a 409 between independent writers…).
async fn expect(req: reqwest::RequestBuilder, want: &[u16], what: &str) -> Option<Value> {
    let resp = req.send().await.ok()?;
    let st = resp.status().as_u16();
    let bytes = resp.bytes().await.ok()?;
    assert!(want.contains(&st), "{what}: HTTP {st}: {}", String::from_utf8_lossy(&bytes));
    Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn secret_writer(s: &Serve, kv: &str, round: usize, w: usize, acks: &AtomicUsize) -> Acks {
    let mut out = Acks::default();
    let name = format!("w{w}");
    for i in 0.. {
        let value = format!("r{round}-w{w}-{i}-{}", uuid::Uuid::new_v4().simple());
        let req = s.vault_http.put(s.vault_url(VAULT, &format!("/secrets/{name}"))).bearer_auth(kv);
        let Some(body) = expect(req.json(&json!({"value": value})), &[200], "set secret").await else { break };
        let version = body["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        out.secrets.push((name.clone(), version, value));
        acks.fetch_add(1, Ordering::Relaxed);
    }
    out
}

fn arm_url(s: &Serve, path: &str) -> String {
    format!("{}{}?api-version=2023-01-31", s.client.url, path.replace("{sub}", &s.client.subscription))
}

/// Identities (every third with a federated credential), deleting every fifth again.
async fn identity_writer(s: &Serve, admin: &str, round: usize, acks: &AtomicUsize) -> Acks {
    let mut out = Acks::default();
    let http = &s.client.http;
    for i in 0.. {
        let path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/r{round}-{i}");
        let req = http.put(arm_url(s, &path)).bearer_auth(admin).json(&json!({"location": "local"}));
        if expect(req, &[201], "create identity").await.is_none() {
            break;
        }
        out.present.push(path.clone());
        acks.fetch_add(1, Ordering::Relaxed);
        if i % 3 == 0 {
            let fic = format!("{path}/federatedIdentityCredentials/fic");
            let body = json!({"properties": {"issuer": "https://issuer.example/", "subject": format!("system:serviceaccount:ns:r{round}-{i}"), "audiences": ["api://AzureADTokenExchange"]}});
            if expect(http.put(arm_url(s, &fic)).bearer_auth(admin).json(&body), &[201], "create credential")
                .await
                .is_none()
            {
                break;
            }
            out.present.push(fic);
            acks.fetch_add(1, Ordering::Relaxed);
        }
        if i % 5 == 4 {
            let victim = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/r{round}-{}", i - 2);
            // Once the delete is sent the identity's fate is open until it is acknowledged: a
            // delete in flight at the kill may or may not have been committed.
            out.present.retain(|p| p != &victim && !p.starts_with(&format!("{victim}/")));
            if expect(http.delete(arm_url(s, &victim)).bearer_auth(admin), &[200], "delete identity").await.is_none() {
                break;
            }
            out.deleted.push(victim);
            acks.fetch_add(1, Ordering::Relaxed);
        }
    }
    out
}

/// Role assignments on single secrets, deleting every fourth again.
async fn role_writer(s: &Serve, admin: &str, vault_id: &str, round: usize, acks: &AtomicUsize) -> Acks {
    let mut out = Acks::default();
    let http = &s.client.http;
    let principal = s.client.profile.principal_id.clone().unwrap();
    let role = format!(
        "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_SECRETS_USER}",
        s.client.subscription
    );
    for i in 0.. {
        let path = format!(
            "{vault_id}/secrets/r{round}-{i}/providers/Microsoft.Authorization/roleAssignments/{}",
            uuid::Uuid::new_v4()
        );
        let body = json!({"properties": {"roleDefinitionId": role, "principalId": principal, "principalType": "ServicePrincipal"}});
        if expect(http.put(arm_url(s, &path)).bearer_auth(admin).json(&body), &[201], "assign").await.is_none() {
            break;
        }
        out.present.push(path.clone());
        acks.fetch_add(1, Ordering::Relaxed);
        if i % 4 == 3 {
            out.present.retain(|p| p != &path);
            if expect(http.delete(arm_url(s, &path)).bearer_auth(admin), &[200], "unassign").await.is_none() {
                break;
            }
            out.deleted.push(path);
            acks.fetch_add(1, Ordering::Relaxed);
        }
    }
    out
}

/// Checks `acks` against the server: every acknowledged version with its value, every acknowledged
/// resource present, every acknowledged delete absent.
async fn verify(s: &Serve, kv: &str, admin: &str, acks: &Acks) {
    for (name, version, value) in &acks.secrets {
        let (st, body) = s.kv(VAULT, kv, "GET", &format!("/secrets/{name}/{version}"), None).await;
        assert_eq!((st, body["value"].as_str()), (200, Some(value.as_str())), "acknowledged {name}/{version}: {body}");
    }
    for path in &acks.present {
        let (st, body) = s.client.arm(admin, "GET", path, None).await;
        assert_eq!(st, 200, "acknowledged {path} is lost: {body}");
    }
    for path in &acks.deleted {
        let (st, body) = s.client.arm(admin, "GET", path, None).await;
        assert_eq!(st, 404, "acknowledged delete of {path} came back: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_sigkill_at_random_points() {
    let iterations: usize = env_num("WID_CRASH_ITERATIONS", 20);
    let writes: u64 = env_num("WID_CRASH_WRITES", 200);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("serve");
    let mut s = Serve::spawn(&dir, 0, &[], &[VAULT]).await;
    let port = s.port;
    let admin = s.client.admin_token().await;
    let vault_id = s.vault_with_officer(&admin, VAULT).await;
    let kv = s.admin_token_for(&s.vault_resource()).await;

    let mut rng = wid_testkit::TestRng::from_env("acknowledged_writes_survive_sigkill_at_random_points");
    let started = Instant::now();
    let mut all = Acks::default();
    let mut acknowledged_total = 0usize;
    let (mut worst_restart, mut total_restart) = (Duration::ZERO, Duration::ZERO);
    for round in 0..iterations {
        // Kill once between writes/2 and 3·writes/2 writes are acknowledged, plus 0–15 ms.
        let target = (writes / 2 + rng.below(writes)) as usize;
        let jitter = Duration::from_millis(rng.below(16));
        let acks = AtomicUsize::new(0);
        let killer = async {
            let deadline = Instant::now() + Duration::from_secs(120);
            while acks.load(Ordering::Relaxed) < target {
                assert!(Instant::now() < deadline, "round {round}: writes stalled at {}", acks.load(Ordering::Relaxed));
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            tokio::time::sleep(jitter).await;
            support::kill(s.pid());
        };
        let (a, b, c, d, ()) = tokio::join!(
            secret_writer(&s, &kv, round, 0, &acks),
            secret_writer(&s, &kv, round, 1, &acks),
            identity_writer(&s, &admin, round, &acks),
            role_writer(&s, &admin, &vault_id, round, &acks),
            killer,
        );
        s.child.wait().unwrap();
        let mut got = Acks::default();
        for x in [a, b, c, d] {
            got.extend(x);
        }
        acknowledged_total += acks.load(Ordering::Relaxed);

        // Back on the same port, ready; this round's acknowledged writes are all there.
        s = Serve::spawn(&dir, port, &[], &[VAULT]).await;
        worst_restart = worst_restart.max(s.startup);
        total_restart += s.startup;
        verify(&s, &kv, &admin, &got).await;
        all.extend(got);
    }

    // Everything acknowledged in every round, once more after the last restart.
    verify(&s, &kv, &admin, &all).await;
    // The database exports without a corrupt row (every row decodes), then serves again.
    s.stop().await;
    let export = tmp.path().join("export.jsonl");
    let (code, _, err) =
        wid(&["export", "--data-dir", dir.join("data").to_str().unwrap(), "-f", export.to_str().unwrap()]);
    assert_eq!(code, 0, "export after {iterations} kills: {err}");
    let records = std::fs::read_to_string(&export).unwrap().lines().count();
    let s = Serve::spawn(&dir, port, &[], &[VAULT]).await;
    let (st, _) = s.kv(VAULT, &kv, "GET", "/secrets/w0", None).await;
    assert_eq!(st, 200);
    let figures = format!(
        "crash safety: {iterations} SIGKILL rounds survived in {:?}; {acknowledged_total} acknowledged writes, checked as {} states ({} secret versions, {} resources present, {} deleted) all as acknowledged; restart to ready mean {:?}, worst {worst_restart:?}; export of {records} records clean",
        started.elapsed(),
        all.writes(),
        all.secrets.len(),
        all.present.len(),
        all.deleted.len(),
        total_restart / u32::try_from(iterations).unwrap(),
    );
    eprintln!("{figures}");
    if let Ok(path) = std::env::var("WID_FIGURES_FILE") {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        writeln!(f, "{figures}").unwrap();
    }
}

/// A tmpfs of `size` mounted at `at` (needs root, as the rest of the suite); unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &std::path::Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }

    fn remount(&self, opt: &str) {
        let st =
            std::process::Command::new("mount").args(["-o", &format!("remount,{opt}")]).arg(&self.0).status().unwrap();
        assert!(st.success(), "remount {opt}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn digest_dir(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_read_only_data_dir_fail_clearly_without_corruption() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("serve");
    let Some(fs) = Tmpfs::mount(&dir.join("data"), "24m") else {
        assert!(std::env::var_os("CI").is_none(), "mounting a tmpfs needs root; CI runs as root");
        eprintln!("skipped: cannot mount a tmpfs (not root)");
        return;
    };
    let mut s = Serve::spawn(&dir, 0, &[], &[VAULT]).await;
    let port = s.port;
    let admin = s.client.admin_token().await;
    s.vault_with_officer(&admin, VAULT).await;
    let kv = s.admin_token_for(&s.vault_resource()).await;
    let mut acked = Vec::new();
    for i in 0..20 {
        let value = format!("before-full-{i}");
        let (st, body) = s.kv(VAULT, &kv, "PUT", &format!("/secrets/s{i}"), Some(json!({"value": value}))).await;
        assert_eq!(st, 200, "{body}");
        acked.push((format!("s{i}"), value));
    }

    // Fill the filesystem to the last byte.
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(dir.join("data").join("filler")).unwrap();
        let chunk = vec![0x5au8; 64 * 1024];
        while filler.write_all(&chunk).is_ok() {}
        let mut byte = [0u8; 1];
        while filler.write_all(&byte).is_ok() {
            byte[0] = byte[0].wrapping_add(1);
        }
        let _ = filler.sync_all();
    }
    // Writes fail with an opaque 5xx (the cause is logged), nothing half-written is acknowledged;
    // reads keep working.
    let big = "x".repeat(20 * 1024);
    let mut refused = 0;
    for i in 0..10 {
        let (st, body) = s.kv(VAULT, &kv, "PUT", &format!("/secrets/full{i}"), Some(json!({"value": big}))).await;
        if st == 200 {
            acked.push((format!("full{i}"), big.clone()));
            continue;
        }
        assert!(st >= 500, "a full disk is the server's problem, not the request's: {st} {body}");
        assert!(body["error"]["code"].is_string(), "a Key Vault error body: {body}");
        assert!(!body.to_string().contains("disk"), "5xx bodies are opaque: {body}");
        refused += 1;
    }
    assert!(refused > 0, "a full disk refused no write");
    let path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/on-full-disk");
    let (st, body) = s.client.arm(&admin, "PUT", &path, Some(json!({"location": "local"}))).await;
    assert!(st >= 500 || st == 201, "{st} {body}");
    let identity_acked = st == 201;
    assert!(s.log().contains("disk is full"), "the log names the cause: {}", s.log());
    for (name, value) in &acked {
        let (st, body) = s.kv(VAULT, &kv, "GET", &format!("/secrets/{name}"), None).await;
        assert_eq!((st, body["value"].as_str()), (200, Some(value.as_str())), "{name} while full");
    }
    assert_eq!(s.client.http.get(format!("{}/healthz", s.client.url)).send().await.unwrap().status(), 200);

    // Space again: writes succeed without a restart.
    std::fs::remove_file(dir.join("data").join("filler")).unwrap();
    let (st, body) = s.kv(VAULT, &kv, "PUT", "/secrets/after", Some(json!({"value": "space again"}))).await;
    assert_eq!(st, 200, "{body}");
    acked.push(("after".into(), "space again".into()));
    let id_path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/after-full-disk");
    put(&s.client, &admin, &id_path, json!({"location": "local"})).await;

    // A read-only data dir: the server refuses to start, says why, and changes nothing.
    s.stop().await;
    fs.remount("ro");
    let before = digest_dir(&dir.join("data"));
    let out = Serve::command(&dir, [127, 0, 0, 1], port, &[]).output().unwrap();
    let log = support::log_of(&dir);
    assert!(!out.status.success(), "wid serve started on a read-only data dir");
    let last = log.lines().rev().take(5).collect::<Vec<_>>().join("\n");
    assert!(last.to_lowercase().contains("read-only") || last.contains("readonly"), "no clear error: {last}");
    assert_eq!(digest_dir(&dir.join("data")), before, "a read-only data dir is left as it was");
    fs.remount("rw");

    // Everything acknowledged is there, and the database exports cleanly.
    let s = Serve::spawn(&dir, port, &[], &[VAULT]).await;
    for (name, value) in &acked {
        let (st, body) = s.kv(VAULT, &kv, "GET", &format!("/secrets/{name}"), None).await;
        assert_eq!((st, body["value"].as_str()), (200, Some(value.as_str())), "{name} after the full disk");
    }
    assert_eq!(s.client.arm(&admin, "GET", &id_path, None).await.0, 200);
    assert_eq!(s.client.arm(&admin, "GET", &path, None).await.0, if identity_acked { 200 } else { 404 });
    let mut s = s;
    s.stop().await;
    let export = tmp.path().join("export.jsonl");
    let (code, _, err) =
        wid(&["export", "--data-dir", dir.join("data").to_str().unwrap(), "-f", export.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    eprintln!("full disk: {refused} of 10 writes refused with 5xx while full; read-only start refused: {last}");
}
