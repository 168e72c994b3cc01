//! `wid serve` on PostgreSQL. Two processes on one database, as replicas behind one Service: a write on
//! either is in effect on the other within the follower's bound (1 s), tokens issued by one are
//! accepted by the other, concurrent writers behave as Azure's (one identity, 409 for concurrent
//! credential writes, every secret version kept), and a replica killed mid-write loses nothing it
//! acknowledged. And the move of a SQLite data dir to PostgreSQL with `wid export` / `wid import`.
//!
//! The replicas listen on the same port of two loopback addresses (127.0.0.2 and 127.0.0.3) with the
//! same public name, so they serve the same URLs — the token issuer and audiences — as pods behind a
//! Service do; each test client resolves `localhost` to one of them. They share the master key file
//! and the local CA (copied), as replicas share a Secret.
//!
//! Needs `WID_TEST_DATABASE_URL` (a superuser URL; `scripts/postgres.sh` starts a throwaway server
//! and `scripts/test` exports it). Each test creates its own database with `psql`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{RG, Serve, assign, put, wid};
use wid_core::rbac::roles::KEY_VAULT_SECRETS_USER;
use wid_store::Store;

const VAULT: &str = "kvr";
/// The staleness bound the follower documents is 1 s; tests allow for a loaded machine.
const BOUND: Duration = Duration::from_secs(5);

/// A database of its own for one test, dropped afterwards.
struct Db {
    admin_url: String,
    name: String,
    url: String,
}

impl Db {
    fn create() -> Option<Db> {
        let Ok(admin_url) = std::env::var("WID_TEST_DATABASE_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "WID_TEST_DATABASE_URL is not set: run the tests through `bash scripts/test`, which starts PostgreSQL"
            );
            eprintln!("skipped: WID_TEST_DATABASE_URL is not set (bash scripts/postgres.sh start DIR sets it)");
            return None;
        };
        let name = format!("wid_r_{}", uuid::Uuid::new_v4().simple());
        psql(&admin_url, &format!("CREATE DATABASE {name}"));
        let (base, query) = admin_url.split_once('?').unwrap_or((&admin_url, ""));
        let base = base.rsplit_once('/').unwrap().0;
        let url = if query.is_empty() { format!("{base}/{name}") } else { format!("{base}/{name}?{query}") };
        Some(Db { admin_url, name, url })
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        psql(&self.admin_url, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql").arg(url).args(["-v", "ON_ERROR_STOP=1", "-qc", sql]).output().expect("psql runs");
    assert!(out.status.success(), "psql {sql}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Starts a replica in `dir` on `ip:port` (port 0: any) on the test's database, with the shared
/// master key; waits until it is ready.
async fn replica(db: &Db, master_key: &Path, dir: &Path, ip: [u8; 4], port: u16, extra: &[&str]) -> Serve {
    let mut args = vec!["--database-url", db.url.as_str(), "--master-key-file", master_key.to_str().unwrap()];
    args.extend_from_slice(extra);
    Serve::spawn_at(dir, ip, port, &args, &[VAULT]).await
}

/// Two replicas on a fresh database: A bootstraps it, B starts with A's master key and CA. Fields
/// drop in order: the replicas stop before their files and database go.
struct Pair {
    a: Serve,
    b: Serve,
    key: PathBuf,
    _tmp: tempfile::TempDir,
    db: Db,
}

async fn pair() -> Option<Pair> {
    let db = Db::create()?;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("master.key");
    std::fs::write(&key, rand_bytes()).unwrap();
    let a = replica(&db, &key, &tmp.path().join("a"), [127, 0, 0, 2], 0, &[]).await;
    let b_data = tmp.path().join("b").join("data");
    std::fs::create_dir_all(&b_data).unwrap();
    for f in ["ca.pem", "ca.key"] {
        std::fs::copy(tmp.path().join("a").join("data").join(f), b_data.join(f)).unwrap();
    }
    let b = replica(&db, &key, &tmp.path().join("b"), [127, 0, 0, 3], a.port, &[]).await;
    Some(Pair { a, b, key, _tmp: tmp, db })
}

fn rand_bytes() -> Vec<u8> {
    let mut v = uuid::Uuid::new_v4().as_bytes().to_vec();
    v.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    v
}

/// Retries `probe` until it returns `Some`, at most [`BOUND`]; returns the value and the wait.
async fn within_bound<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut probe: impl FnMut() -> F,
) -> (T, Duration) {
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return (v, started.elapsed());
        }
        assert!(started.elapsed() < BOUND, "{what}: not seen on the other replica within {BOUND:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn writes_on_one_replica_are_in_effect_on_the_other() {
    let Some(p) = pair().await else { return };
    let (a, b) = (&p.a, &p.b);
    assert_eq!(a.client.profile.client_id, b.client.profile.client_id, "one bootstrap admin");
    assert_eq!(a.client.url, b.client.url, "the same public URL");
    let admin = a.client.admin_token().await;
    // A token issued by A is accepted by B (shared signing keys).
    let (st, _) = b.client.arm(&admin, "GET", "/subscriptions/{sub}/resourcegroups", None).await;
    assert_eq!(st, 200);

    let vault_id = a.vault_with_officer(&admin, VAULT).await;
    let admin_kv = a.admin_token_for(&a.vault_resource()).await;
    let (st, body) = a.kv(VAULT, &admin_kv, "PUT", "/secrets/db", Some(json!({"value": "s3cret"}))).await;
    assert_eq!(st, 200, "{body}");

    // A workload identity created on A; the pod's exchange happens on B.
    let cluster_path = format!("{RG}/providers/Microsoft.ContainerService/managedClusters/aks");
    let cluster = put(&a.client, &admin, &cluster_path, json!({})).await;
    let issuer = cluster["properties"]["oidcIssuerProfile"]["issuerURL"].as_str().unwrap().to_string();
    let id_path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/web");
    let identity = put(&a.client, &admin, &id_path, json!({})).await;
    let client_id = identity["properties"]["clientId"].as_str().unwrap().to_string();
    let principal = identity["properties"]["principalId"].as_str().unwrap().to_string();
    let fic = json!({"properties": {"issuer": issuer, "subject": "system:serviceaccount:apps:web", "audiences": ["api://AzureADTokenExchange"]}});
    put(&a.client, &admin, &format!("{id_path}/federatedIdentityCredentials/fic"), fic).await;
    let (st, sa) = a
        .client
        .arm(
            &admin,
            "POST",
            &format!("{cluster_path}/serviceAccountToken"),
            Some(json!({"namespace": "apps", "serviceAccountName": "web"})),
        )
        .await;
    assert_eq!(st, 200, "{sa}");
    let sa_token = sa["token"].as_str().unwrap().to_string();
    let scope = format!("{}/.default", b.vault_resource());
    let (token, exchange_wait) = within_bound("identity, credential and cluster key", || async {
        let (st, body) = b.client.exchange(&client_id, &sa_token, &scope).await;
        (st == 200).then(|| body["access_token"].as_str().unwrap().to_string())
    })
    .await;

    // A grant made on A lets the pod read on B.
    let ra = assign(&a.client, &admin, &vault_id, KEY_VAULT_SECRETS_USER, &principal).await;
    let (value, grant_wait) = within_bound("role assignment", || async {
        let (st, body) = b.kv(VAULT, &token, "GET", "/secrets/db", None).await;
        (st == 200).then(|| body["value"].as_str().unwrap().to_string())
    })
    .await;
    assert_eq!(value, "s3cret");
    // Revoked on B, denied on A.
    let (st, body) = b.client.arm(&admin, "DELETE", &ra, None).await;
    assert_eq!(st, 200, "{body}");
    let (code, revoke_wait) = within_bound("revocation", || async {
        let (st, body) = a.kv(VAULT, &token, "GET", "/secrets/db", None).await;
        (st == 403).then(|| body["error"]["innererror"]["code"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert_eq!(code, "ForbiddenByRbac");
    eprintln!(
        "cross-replica staleness: exchange after create {exchange_wait:?}, read after grant {grant_wait:?}, denial after revoke {revoke_wait:?}"
    );
}

#[tokio::test]
async fn concurrent_writers_on_two_replicas_behave_as_azure() {
    let Some(p) = pair().await else { return };
    let (a, b) = (&p.a, &p.b);
    let admin = a.client.admin_token().await;
    put(&a.client, &admin, RG, json!({"location": "local"})).await;

    // The same identity created on both at once: one identity, both answers name it.
    for n in 0..5 {
        let path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/raced-{n}");
        let (x, y) = tokio::join!(put(&a.client, &admin, &path, json!({})), put(&b.client, &admin, &path, json!({})));
        assert_eq!(x["properties"]["clientId"], y["properties"]["clientId"], "no lost update: {x} {y}");
        let (_, stored) = a.client.arm(&admin, "GET", &path, None).await;
        assert_eq!(stored["properties"]["clientId"], x["properties"]["clientId"]);
    }

    // Federated credentials of one identity are written one at a time across replicas: while a
    // writer (here: this test, through the database's lock) holds the identity, B answers 409.
    let id_path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/raced-0");
    let fic = json!({"properties": {"issuer": "https://issuer.example/", "subject": "s", "audiences": ["api://AzureADTokenExchange"]}});
    let store = wid_store::PostgresStore::connect(&wid_store::PostgresConfig::new(p.db.url.clone()), false).unwrap();
    let lock = store.lock(&format!("credentials/{}/rg/raced-0", a.client.subscription), Duration::ZERO).unwrap();
    let (st, body) =
        b.client.arm(&admin, "PUT", &format!("{id_path}/federatedIdentityCredentials/fic1"), Some(fic.clone())).await;
    assert_eq!(st, 409, "{body}");
    assert_eq!(body["error"]["code"], "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity");
    drop(lock);
    let (st, body) =
        b.client.arm(&admin, "PUT", &format!("{id_path}/federatedIdentityCredentials/fic1"), Some(fic)).await;
    assert_eq!(st, 201, "{body}");

    // Secret versions written on both at once all land.
    a.vault_with_officer(&admin, VAULT).await;
    let kv = a.admin_token_for(&a.vault_resource()).await;
    within_bound("the grant", || async {
        (b.kv(VAULT, &kv, "GET", "/secrets/shared", None).await.0 != 403).then_some(())
    })
    .await;
    let (va, vb) = tokio::join!(write_versions(a, &kv, 20), write_versions(b, &kv, 20));
    let listed = all_versions(b, &kv).await;
    for v in va.iter().chain(&vb) {
        assert!(listed.contains(v), "version {v} written concurrently is kept");
    }
    assert_eq!(listed.len(), 40);
}

/// Writes `n` versions of the secret `shared`; returns their ids.
async fn write_versions(r: &Serve, token: &str, n: usize) -> Vec<String> {
    let mut versions = Vec::new();
    for i in 0..n {
        let (st, body) = r.kv(VAULT, token, "PUT", "/secrets/shared", Some(json!({"value": format!("v{i}")}))).await;
        assert_eq!(st, 200, "{body}");
        versions.push(body["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string());
    }
    versions
}

/// Every version id of the secret `shared`, following `nextLink`.
async fn all_versions(r: &Serve, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (st, mut page) = r.kv(VAULT, token, "GET", "/secrets/shared/versions", None).await;
    assert_eq!(st, 200, "{page}");
    loop {
        for item in page["value"].as_array().unwrap() {
            out.push(item["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string());
        }
        let Some(next) = page["nextLink"].as_str().map(str::to_string) else { return out };
        let resp = r.vault_http.get(next).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        page = resp.json().await.unwrap();
    }
}

#[tokio::test]
async fn a_replica_killed_mid_write_loses_nothing_it_acknowledged() {
    let Some(mut p) = pair().await else { return };
    let admin = p.a.client.admin_token().await;
    p.a.vault_with_officer(&admin, VAULT).await;

    let mut rng = wid_testkit::TestRng::from_env("a_replica_killed_mid_write_loses_nothing_it_acknowledged");
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut identities: Vec<String> = Vec::new();
    for round in 0..3u64 {
        let kv = p.a.admin_token_for(&p.a.vault_resource()).await;
        let admin = p.a.client.admin_token().await;
        // Writers on A, killed at a point that differs per round.
        // The kill lands once both writers have had some writes acknowledged (more each round),
        // plus a few milliseconds, so it hits requests in flight.
        let (secret_acks, identity_acks) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let want = 5 + 20 * round as usize;
        let started = Instant::now();
        let a = &p.a;
        let secret_writer = async {
            let mut acks = Vec::new();
            for i in 0.. {
                let value = format!("r{round}-{i}");
                let url = format!("https://{VAULT}.vault.localhost:{}/secrets/shared?api-version=7.5", a.port);
                match a.vault_http.put(url).bearer_auth(&kv).json(&json!({"value": value})).send().await {
                    Ok(r) if r.status() == 200 => {
                        let body: Value = r.json().await.unwrap();
                        acks.push((body["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string(), value));
                        secret_acks.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return acks,
                }
            }
            acks
        };
        let identity_writer = async {
            let mut acks = Vec::new();
            for i in 0.. {
                let path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/r{round}-{i}");
                let url =
                    format!("{}{}?api-version=2023-01-31", a.client.url, path.replace("{sub}", &a.client.subscription));
                match a.client.http.put(url).bearer_auth(&admin).json(&json!({})).send().await {
                    Ok(r) if r.status() == 201 => {
                        acks.push(path);
                        identity_acks.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => return acks,
                }
            }
            acks
        };
        let jitter = Duration::from_millis(rng.below(20));
        let killer = async {
            let deadline = Instant::now() + Duration::from_secs(120);
            while secret_acks.load(Ordering::Relaxed) < want || identity_acks.load(Ordering::Relaxed) < want / 2 {
                assert!(Instant::now() < deadline, "round {round}: writes stalled");
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tokio::time::sleep(jitter).await;
            let pid = a.child.id();
            // SIGKILL: no shutdown, no flush beyond what was committed.
            support::kill(pid);
        };
        let (secrets, ids, ()) = tokio::join!(secret_writer, identity_writer, killer);
        assert!(!secrets.is_empty() && !ids.is_empty(), "round {round}: writes were acknowledged before the kill");
        eprintln!(
            "round {round}: killed after {:?}, {} secret and {} identity writes acknowledged",
            started.elapsed(),
            secrets.len(),
            ids.len()
        );
        acknowledged.extend(secrets);
        identities.extend(ids);
        p.a.child.wait().unwrap();

        // B has every acknowledged write, at once.
        let kv_b = p.b.admin_token_for(&p.b.vault_resource()).await;
        let listed = all_versions(&p.b, &kv_b).await;
        for (version, value) in &acknowledged {
            assert!(listed.contains(version), "acknowledged version {version} is lost");
            let (st, body) = p.b.kv(VAULT, &kv_b, "GET", &format!("/secrets/shared/{version}"), None).await;
            assert_eq!((st, body["value"].as_str()), (200, Some(value.as_str())));
        }
        for path in &identities {
            let (st, body) = p.b.client.arm(&admin, "GET", path, None).await;
            assert_eq!(st, 200, "acknowledged identity {path} is lost: {body}");
        }

        // A comes back on the same address, ready, rotating its signing key on the way; B accepts
        // tokens signed with the new key.
        let (dir, ip, port) = (p.a.dir.clone(), p.a.ip, p.a.port);
        p.a = replica(&p.db, &p.key, &dir, ip, port, &["--rotate-signing-key"]).await;
        let fresh = p.a.client.admin_token().await;
        within_bound("the rotated signing key", || async {
            (p.b.client.arm(&fresh, "GET", "/subscriptions/{sub}/resourcegroups", None).await.0 == 200).then_some(())
        })
        .await;
    }
    p.b.sigkill();
}

#[tokio::test]
async fn a_sqlite_data_dir_moves_to_postgresql_with_its_secrets_sealed() {
    let Some(db) = Db::create() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    let old_data = old.join("data");
    let dump = tmp.path().join("wid.jsonl");

    // A SQLite server with an identity, a hosted cluster, a vault and a secret.
    let mut sqlite = Serve::spawn_at(&old, [127, 0, 0, 2], 0, &[], &[VAULT]).await;
    let c = &sqlite.client;
    let admin = c.admin_token().await;
    sqlite.vault_with_officer(&admin, VAULT).await;
    let kv = sqlite.admin_token_for(&sqlite.vault_resource()).await;
    let (st, body) = sqlite.kv(VAULT, &kv, "PUT", "/secrets/moved", Some(json!({"value": "it moved"}))).await;
    assert_eq!(st, 200, "{body}");
    let cluster_path = format!("{RG}/providers/Microsoft.ContainerService/managedClusters/aks");
    put(c, &admin, &cluster_path, json!({})).await;
    let (port, client_id) = (sqlite.port, c.profile.client_id.clone());

    // The export needs the database to itself.
    let (code, _, err) = wid(&["export", "--data-dir", old_data.to_str().unwrap(), "-f", dump.to_str().unwrap()]);
    assert_eq!(code, 1, "exporting a database in use is refused: {err}");
    assert!(err.contains("in use"), "{err}");
    sqlite.sigkill();
    let (code, _, err) = wid(&["export", "--data-dir", old_data.to_str().unwrap(), "-f", dump.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("secret versions"), "{err}");
    let text = std::fs::read_to_string(&dump).unwrap();
    assert!(!text.contains("it moved"), "secret values stay sealed in the export");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&dump).unwrap().permissions().mode() & 0o777, 0o600);

    // Another master key cannot open the data: refused, nothing written.
    let other_key = tmp.path().join("other.key");
    std::fs::write(&other_key, rand_bytes()).unwrap();
    let import = |key: &Path| {
        wid(&[
            "import",
            "--database-url",
            &db.url,
            "--master-key-file",
            key.to_str().unwrap(),
            "-f",
            dump.to_str().unwrap(),
        ])
    };
    let (code, _, err) = import(&other_key);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("master key"), "{err}");
    let (code, _, err) = import(&old_data.join("master.key"));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("imported"), "{err}");
    let (code, _, err) = import(&old_data.join("master.key"));
    assert_eq!(code, 1, "a second import into a database in use is refused: {err}");
    let (code, out, err) = wid(&["migrate", "--database-url", &db.url]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("up to date"), "{out}");

    // wid serve on PostgreSQL with the old master key: the same admin, the secret, the cluster's key.
    let new = tmp.path().join("new");
    std::fs::create_dir_all(new.join("data")).unwrap();
    for f in ["ca.pem", "ca.key"] {
        std::fs::copy(old_data.join(f), new.join("data").join(f)).unwrap();
    }
    let pg = replica(&db, &old_data.join("master.key"), &new, [127, 0, 0, 3], port, &[]).await;
    assert_eq!(pg.client.profile.client_id, client_id);
    let kv = pg.admin_token_for(&pg.vault_resource()).await;
    let (st, body) = pg.kv(VAULT, &kv, "GET", "/secrets/moved", None).await;
    assert_eq!((st, body["value"].as_str()), (200, Some("it moved")), "{body}");
    let admin = pg.client.admin_token().await;
    let (st, sa) = pg
        .client
        .arm(
            &admin,
            "POST",
            &format!("{cluster_path}/serviceAccountToken"),
            Some(json!({"namespace": "a", "serviceAccountName": "b"})),
        )
        .await;
    assert_eq!(st, 200, "the hosted cluster's signing key moved too: {sa}");
}
