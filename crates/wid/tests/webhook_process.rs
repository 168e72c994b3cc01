//! The real `wid webhook` process over HTTPS: AdmissionReviews in, patches and denials out, health and
//! readiness, Prometheus metrics, TLS version floor, certificate reload, SIGTERM.
//!
//! The ServiceAccounts come from a small HTTPS server started here that answers the Kubernetes API
//! calls the webhook makes (`/version`, `GET` of a ServiceAccount; its LIST is refused with 403, as
//! for a webhook whose RBAC lacks `list`, so every lookup takes the live GET path). It is a fixture of
//! the API surface, not a stand-in for the code under test; tests/e2e runs against a real apiserver.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use base64::Engine;
use serde_json::{Value, json};

#[derive(Default)]
struct Api {
    /// GETs per ServiceAccount name.
    gets: Mutex<HashMap<String, u32>>,
}

async fn fixture_api() -> (String, String, tokio::sync::watch::Sender<bool>, Arc<Api>) {
    let ca = wid_crypto::LocalCa::generate("fixture kube CA").unwrap();
    let (cert, key) = ca.issue_server_cert(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 1).unwrap();
    let tls = wid_http::tls::rustls_config(cert.as_bytes(), key.as_bytes()).unwrap();
    let api = Arc::new(Api::default());
    let status = |code: u16, reason: &str, message: String| {
        let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code});
        (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
    };
    let app = axum::Router::new()
        .route("/version", get(|| async { axum::Json(json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2"})) }))
        .route(
            "/api/v1/serviceaccounts",
            get(move || async move {
                status(
                    403,
                    "Forbidden",
                    "serviceaccounts is forbidden: User \"webhook\" cannot list resource \"serviceaccounts\"".into(),
                )
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
            get(move |State(api): State<Arc<Api>>, UrlPath((ns, name)): UrlPath<(String, String)>| async move {
                let n = {
                    let mut gets = api.gets.lock().unwrap();
                    let n = gets.entry(name.clone()).or_default();
                    *n += 1;
                    *n
                };
                let sa = |ann: Value| {
                    axum::Json(json!({"kind": "ServiceAccount", "apiVersion": "v1",
                        "metadata": {"name": name, "namespace": ns, "resourceVersion": "1", "annotations": ann}}))
                    .into_response()
                };
                match name.as_str() {
                    "sa" => sa(json!({"azure.workload.identity/client-id": "11111111-2222-3333-4444-555555555555",
                        "azure.workload.identity/service-account-token-expiration": "7200"})),
                    // Created together with its pod: the first GET misses it.
                    "late" if n >= 2 => sa(json!({"azure.workload.identity/client-id": "late-client"})),
                    _ => status(404, "NotFound", format!("serviceaccounts \"{name}\" not found")),
                }
            }),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(wid_http::serve(listener, tls, app, rx, Duration::from_millis(100)));
    (server, ca.cert_pem().to_string(), tx, api)
}

fn write_kubeconfig(dir: &Path, server: &str, ca_pem: &str) -> std::path::PathBuf {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fixture\nclusters:\n- name: fixture\n  cluster:\n    \
             server: {server}\n    certificate-authority-data: {ca}\ncontexts:\n- name: fixture\n  context:\n    \
             cluster: fixture\n    user: webhook\nusers:\n- name: webhook\n  user:\n    token: fixture-token\n"
        ),
    )
    .unwrap();
    path
}

/// A webhook serving certificate from a fresh CA; returns the CA PEM.
fn write_certs(dir: &Path) -> String {
    let ca = wid_crypto::LocalCa::generate("webhook CA").unwrap();
    let (cert, key) = ca.issue_server_cert(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 1).unwrap();
    // Write the key first: the reloader must never pair a new certificate with an old key for long.
    std::fs::write(dir.join("tls.key.tmp"), key.as_bytes()).unwrap();
    std::fs::write(dir.join("tls.crt.tmp"), cert).unwrap();
    std::fs::rename(dir.join("tls.key.tmp"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join("tls.crt.tmp"), dir.join("tls.crt")).unwrap();
    ca.cert_pem().to_string()
}

fn trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap()
}

fn review(uid: &str, sa: &str, pod_name: &str) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "ns1",
            "operation": "CREATE",
            "object": {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "labels": {"azure.workload.identity/use": "true"}},
                "spec": {"serviceAccountName": sa, "containers": [{"name": "app", "image": "busybox", "resources": {}}]}
            }
        }
    })
}

fn decode_patch(resp: &Value) -> Vec<Value> {
    let b64 = resp["response"]["patch"].as_str().unwrap();
    let raw = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

struct Webhook {
    child: Child,
    stderr: std::path::PathBuf,
    webhook: String,
    health: String,
    metrics: String,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_webhook(dir: &Path, kubeconfig: &Path, certs: &Path, extra_env: &[(&str, &str)]) -> Webhook {
    let stderr = dir.join("webhook.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wid"));
    cmd.args(["webhook", "--kubeconfig"])
        .arg(kubeconfig)
        .arg("--webhook-cert-dir")
        .arg(certs)
        .args(["--listen", "127.0.0.1:0", "--health-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .args(["--authority-host", "https://localhost:8443", "--cert-reload-interval", "200ms", "--log-level", "debug"])
        .env_clear()
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let line = loop {
        let text = std::fs::read_to_string(&stderr).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with("wid webhook: ")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "the webhook did not start:\n{text}");
        assert!(child.try_wait().unwrap().is_none(), "the webhook exited:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let addr = |what: &str| {
        let part = line.split(", ").find(|p| p.contains(&format!("{what} "))).unwrap();
        part.rsplit(' ').next().unwrap().to_string()
    };
    Webhook { child, stderr, webhook: addr("webhook"), health: addr("health"), metrics: addr("metrics") }
}

async fn wait_status(client: &reqwest::Client, url: &str, want: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = client.get(url).send().await {
            let code = r.status().as_u16();
            let body = r.text().await.unwrap_or_default();
            if code == want {
                return body;
            }
            assert!(Instant::now() < deadline, "{url}: still {code} {body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn webhook_process_admits_over_https_with_health_metrics_and_cert_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (server, api_ca, _stop, api) = fixture_api().await;
    let kubeconfig = write_kubeconfig(dir.path(), &server, &api_ca);
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();

    // Started before its certificate exists (cert-manager has not issued it yet): alive process,
    // failing probes, then healthy once the files appear.
    let wh = start_webhook(dir.path(), &kubeconfig, &certs, &[("AZURE_TENANT_ID", "tenant-T")]).await;
    let plain = reqwest::Client::new();
    let body = wait_status(&plain, &format!("{}/healthz", wh.health), 500).await;
    assert_eq!(body.trim(), "certs are not ready yet");
    let ca1 = write_certs(&certs);
    wait_status(&plain, &format!("{}/healthz", wh.health), 200).await;
    assert_eq!(wait_status(&plain, &format!("{}/readyz", wh.health), 200).await, "ok");

    let https = trusting(&ca1);
    let post = |client: &reqwest::Client, body: Value| {
        client
            .post(&wh.webhook)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .send()
    };

    // A labelled pod with an annotated ServiceAccount: env, mount and volume.
    let resp: Value = post(&https, review("uid-1", "sa", "demo")).await.unwrap().json().await.unwrap();
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(resp["response"]["uid"], "uid-1");
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    let patch = decode_patch(&resp);
    assert!(patch.iter().all(|op| op["op"] == "add"), "{patch:?}");
    let env = patch.iter().find(|op| op["path"] == "/spec/containers/0/env").unwrap()["value"].clone();
    assert_eq!(
        env,
        json!([
            {"name": "AZURE_CLIENT_ID", "value": "11111111-2222-3333-4444-555555555555"},
            {"name": "AZURE_TENANT_ID", "value": "tenant-T"},
            {"name": "AZURE_FEDERATED_TOKEN_FILE", "value": "/var/run/secrets/azure/wi/token/azure-identity-token"},
            {"name": "AZURE_AUTHORITY_HOST", "value": "https://localhost:8443"}
        ])
    );
    let volumes = &patch.iter().find(|op| op["path"] == "/spec/volumes").unwrap()["value"];
    assert_eq!(volumes[0]["name"], "azure-workload-identity-reserved-2a97516c354b68848cdbd8f54a226a");
    assert_eq!(volumes[0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"], 7200);

    // Created together with its pod: found by the retry.
    let resp: Value = post(&https, review("uid-2", "late", "p2")).await.unwrap().json().await.unwrap();
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    assert_eq!(api.gets.lock().unwrap()["late"], 2);

    // Missing ServiceAccount: upstream's text, then the fix.
    let resp: Value = post(&https, review("uid-3", "missing", "p3")).await.unwrap().json().await.unwrap();
    assert_eq!(resp["response"]["allowed"], false);
    assert_eq!(resp["response"]["status"]["code"], 400);
    let msg = resp["response"]["status"]["message"].as_str().unwrap();
    assert!(msg.starts_with("serviceaccounts \"missing\" not found. To fix: create the ServiceAccount"), "{msg}");

    // v1beta1 in, v1beta1 out.
    let mut beta = review("uid-4", "sa", "p4");
    beta["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let resp: Value = post(&https, beta).await.unwrap().json().await.unwrap();
    assert_eq!(resp["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(resp["response"]["allowed"], true);

    // Not JSON: a 400 denial inside a 200 AdmissionReview, as controller-runtime.
    let r = https.post(&wh.webhook).header("content-type", "text/plain").body("x").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let resp: Value = r.json().await.unwrap();
    let msg = resp["response"]["status"]["message"].as_str().unwrap();
    assert!(msg.starts_with("contentType=text/plain, expected application/json. To fix: "), "{msg}");

    // The default minimum is TLS 1.3, as upstream.
    let tls12 = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca1.as_bytes()).unwrap())
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(post(&tls12, review("uid-5", "sa", "p5")).await.is_err());

    // Metrics: upstream's histogram for every request (denials included).
    let text = plain.get(format!("{}/metrics", wh.metrics)).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("azwi_mutation_request_count{namespace=\"ns1\",service_name=\"webhook\"} 4\n"), "{text}");
    assert!(text.contains("azwi_mutation_request_bucket{namespace=\"ns1\",service_name=\"webhook\",le=\"3\"} 4\n"));
    assert!(text.contains("wid_webhook_serviceaccount_lookups_total{outcome=\"not_found\"} 1\n"));
    assert!(text.contains("wid_webhook_serviceaccount_lookups_total{outcome=\"api_retry\"} 1\n"));
    assert!(text.contains("wid_webhook_serviceaccount_cache_synced 0\n"));

    // A renewed certificate from another CA is picked up without a restart.
    let ca2 = write_certs(&certs);
    let https2 = trusting(&ca2);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = post(&https2, review("uid-6", "sa", "p6")).await {
            assert_eq!(r.json::<Value>().await.unwrap()["response"]["allowed"], true);
            break;
        }
        assert!(Instant::now() < deadline, "new certificate not served");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new connection (the old client's pooled one predates the swap) no longer verifies with the old CA.
    assert!(post(&trusting(&ca1), review("uid-7", "sa", "p7")).await.is_err(), "the old CA no longer verifies");

    // Logs are JSON lines; the admission is logged with its pod and ServiceAccount.
    let log = std::fs::read_to_string(&wh.stderr).unwrap();
    let admitted = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "pod admitted" && v["uid"] == "uid-1")
        .unwrap_or_else(|| panic!("{log}"));
    assert_eq!(admitted["service_account"], "sa");
    assert_eq!(admitted["namespace"], "ns1");

    // SIGTERM: clean exit.
    let mut wh = wh;
    wid_testkit::send_signal(wh.child.id(), rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = wh.child.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "wid webhook did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn webhook_without_tenant_exits_1_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_wid"))
        .args(["webhook", "--kubeconfig", "/nonexistent"])
        .env_clear()
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("AZURE_TENANT_ID is required"), "{err}");
}

#[test]
fn webhook_version_prints_upstreams_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_wid")).args(["webhook", "--version"]).env_clear().output().unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["buildVersion"], env!("CARGO_PKG_VERSION"));
}
