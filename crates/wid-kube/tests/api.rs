//! The client and the reflector against a small HTTPS server that answers the Kubernetes API calls
//! wid makes (a fixture of the API surface: version, get, paged list, watch streams with bookmarks and
//! 410 Gone), with bearer-token authentication and a private CA as a real cluster has.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use wid_kube::{Client, KubeConfig, ReflectorOptions, ServiceAccountCache};

const TOKEN: &str = "fixture-token";

#[derive(Default)]
struct Api {
    sas: Mutex<BTreeMap<(String, String), Value>>,
    lists: Mutex<VecDeque<Value>>,
    watches: Mutex<VecDeque<(u16, String)>>,
    log: Mutex<Vec<String>>,
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn sa_json(ns: &str, name: &str, rv: &str, client_id: Option<&str>) -> Value {
    let mut ann = serde_json::Map::new();
    if let Some(c) = client_id {
        ann.insert("azure.workload.identity/client-id".into(), json!(c));
    }
    ann.insert("kubectl.kubernetes.io/last-applied-configuration".into(), json!("{...}"));
    json!({"kind": "ServiceAccount", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": rv, "annotations": ann, "uid": "u"},
        "secrets": [{"name": format!("{name}-token")}]})
}

async fn start(api: Arc<Api>) -> (String, Vec<u8>, tokio::sync::watch::Sender<bool>) {
    let ca = wid_crypto::LocalCa::generate("fixture kube CA").unwrap();
    let (cert, key) = ca.issue_server_cert(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 1).unwrap();
    let tls = wid_http::tls::rustls_config(cert.as_bytes(), key.as_bytes()).unwrap();
    let app = axum::Router::new()
        .route(
            "/version",
            get(|h: HeaderMap| async move {
                if !authorized(&h) {
                    return status(401, "Unauthorized", "Unauthorized");
                }
                axum::Json(json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2"})).into_response()
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/serviceaccounts/{name}",
            get(
                |State(api): State<Arc<Api>>, UrlPath((ns, name)): UrlPath<(String, String)>, h: HeaderMap| async move {
                    api.log.lock().unwrap().push(format!("get {ns}/{name}"));
                    if !authorized(&h) {
                        return status(401, "Unauthorized", "Unauthorized");
                    }
                    match api.sas.lock().unwrap().get(&(ns.clone(), name.clone())) {
                        Some(sa) => axum::Json(sa.clone()).into_response(),
                        None => status(404, "NotFound", &format!("serviceaccounts \"{name}\" not found")),
                    }
                },
            ),
        )
        .route(
            "/api/v1/serviceaccounts",
            get(|State(api): State<Arc<Api>>, Query(q): Query<HashMap<String, String>>, h: HeaderMap| async move {
                if !authorized(&h) {
                    return status(401, "Unauthorized", "Unauthorized");
                }
                if q.get("watch").map(String::as_str) == Some("true") {
                    assert_eq!(q.get("allowWatchBookmarks").map(String::as_str), Some("true"));
                    let rv = q.get("resourceVersion").cloned().unwrap_or_default();
                    api.log.lock().unwrap().push(format!("watch {rv}"));
                    let next = api.watches.lock().unwrap().pop_front();
                    return match next {
                        Some((200, body)) => (StatusCode::OK, body).into_response(),
                        Some((code, msg)) => status(code, "Gone", &msg),
                        None => status(503, "ServiceUnavailable", "script over"),
                    };
                }
                api.log
                    .lock()
                    .unwrap()
                    .push(format!("list continue={}", q.get("continue").cloned().unwrap_or_default()));
                match api.lists.lock().unwrap().pop_front() {
                    Some(page) => axum::Json(page).into_response(),
                    None => status(503, "ServiceUnavailable", "script over"),
                }
            }),
        )
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(wid_http::serve(listener, tls, app, rx, Duration::from_millis(100)));
    (format!("https://127.0.0.1:{port}"), ca.cert_pem().as_bytes().to_vec(), tx)
}

fn kubeconfig(dir: &Path, server: &str, ca: &[u8], token: &str) -> std::path::PathBuf {
    use base64::Engine;
    let ca64 = base64::engine::general_purpose::STANDARD.encode(ca);
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    \
         certificate-authority-data: {ca64}\ncontexts:\n- name: t\n  context:\n    cluster: c\n    user: u\nusers:\n- \
         name: u\n  user:\n    token: {token}\n"
    );
    let path = dir.join("kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn get_version_and_service_accounts_with_a_token_over_tls() {
    let api = Arc::new(Api::default());
    api.sas.lock().unwrap().insert(("ns1".into(), "sa".into()), sa_json("ns1", "sa", "5", Some("cid")));
    let (server, ca, _stop) = start(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = KubeConfig::from_kubeconfig(&kubeconfig(dir.path(), &server, &ca, TOKEN), None).unwrap();
    let client = Client::new(&cfg, "wid-test").unwrap();

    let v = client.server_version().await.unwrap();
    assert_eq!(v.git_version, "v1.20.2");
    assert!(!v.at_least(1, 32).unwrap());

    let sa = client.get_service_account("ns1", "sa").await.unwrap();
    assert_eq!((sa.namespace.as_str(), sa.name.as_str()), ("ns1", "sa"));
    assert_eq!(sa.annotations["azure.workload.identity/client-id"], "cid");

    let missing = client.get_service_account("ns1", "nope").await.unwrap_err();
    assert!(missing.is_not_found());
    assert_eq!(missing.to_string(), "serviceaccounts \"nope\" not found");

    let traversal = client.get_service_account("../..", "x").await.unwrap_err();
    assert!(matches!(traversal, wid_kube::KubeError::InvalidName(_)));

    let bad = KubeConfig::from_kubeconfig(&kubeconfig(dir.path(), &server, &ca, "wrong"), None).unwrap();
    let err = Client::new(&bad, "wid-test").unwrap().get_service_account("ns1", "sa").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
}

#[tokio::test]
async fn an_untrusted_server_certificate_is_refused() {
    let api = Arc::new(Api::default());
    let (server, _ca, _stop) = start(api).await;
    let other = wid_crypto::LocalCa::generate("other").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = KubeConfig::from_kubeconfig(&kubeconfig(dir.path(), &server, other.cert_pem().as_bytes(), TOKEN), None)
        .unwrap();
    let err = Client::new(&cfg, "wid-test").unwrap().server_version().await.unwrap_err();
    assert!(matches!(err, wid_kube::KubeError::Transport(_)), "{err}");
}

#[tokio::test]
async fn in_cluster_token_file_is_used() {
    let api = Arc::new(Api::default());
    api.sas.lock().unwrap().insert(("ns1".into(), "sa".into()), sa_json("ns1", "sa", "5", None));
    let (server, ca, _stop) = start(api).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.path().join("ca.crt"), &ca).unwrap();
    let port = server.rsplit(':').next().unwrap().to_string();
    let env: HashMap<String, String> = [
        ("KUBERNETES_SERVICE_HOST".to_string(), "127.0.0.1".to_string()),
        ("KUBERNETES_SERVICE_PORT".to_string(), port),
    ]
    .into();
    let cfg = KubeConfig::in_cluster(&env, dir.path()).unwrap();
    let client = Client::new(&cfg, "wid-test").unwrap();
    assert_eq!(client.get_service_account("ns1", "sa").await.unwrap().name, "sa");
}

#[tokio::test]
async fn reflector_lists_in_pages_watches_follows_bookmarks_and_relists_on_410() {
    let api = Arc::new(Api::default());
    {
        let mut lists = api.lists.lock().unwrap();
        lists.push_back(
            json!({"kind": "ServiceAccountList", "metadata": {"resourceVersion": "10", "continue": "page 2"},
            "items": [sa_json("a", "x", "3", Some("1"))]}),
        );
        lists.push_back(json!({"kind": "ServiceAccountList", "metadata": {"resourceVersion": "10"},
            "items": [sa_json("b", "y", "4", None)]}));
        lists.push_back(json!({"kind": "ServiceAccountList", "metadata": {"resourceVersion": "20"},
            "items": [sa_json("a", "x", "19", Some("3"))]}));
        let ev = |t: &str, o: Value| format!("{}\n", json!({"type": t, "object": o}));
        let mut watches = api.watches.lock().unwrap();
        watches.push_back((
            200,
            [
                ev("ADDED", sa_json("c", "z", "11", Some("9"))),
                ev("MODIFIED", sa_json("a", "x", "12", Some("2"))),
                ev("DELETED", sa_json("b", "y", "13", None)),
                ev("BOOKMARK", json!({"kind": "ServiceAccount", "metadata": {"resourceVersion": "15"}})),
            ]
            .concat(),
        ));
        watches.push_back((
            200,
            ev("ERROR", json!({"kind": "Status", "code": 410, "message": "too old resource version: 15 (18)"})),
        ));
    }
    let (server, ca, _stop) = start(api.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = KubeConfig::from_kubeconfig(&kubeconfig(dir.path(), &server, &ca, TOKEN), None).unwrap();
    let client = Client::new(&cfg, "wid-test").unwrap();
    let cache = ServiceAccountCache::new(Some("azure.workload.identity/"));
    let (tx, rx) = tokio::sync::watch::channel(false);
    let opts = ReflectorOptions {
        page_size: 1,
        min_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(50),
    };
    let task = tokio::spawn(cache.clone().run(client, opts, rx));

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if api.log.lock().unwrap().iter().any(|l| l == "watch 20") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "log: {:?}", api.log.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();

    let log = api.log.lock().unwrap().clone();
    assert_eq!(
        &log[..6],
        ["list continue=", "list continue=page 2", "watch 10", "watch 15", "list continue=", "watch 20"]
    );
    assert!(cache.is_synced());
    // After the re-list only a/x remains, with the re-listed annotation; c/z came and went with the old state.
    assert_eq!(cache.len(), 1);
    let x = cache.get("a", "x").unwrap();
    assert_eq!(x.annotations.get("azure.workload.identity/client-id").map(String::as_str), Some("3"));
    assert!(!x.annotations.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert_eq!(cache.counters().0, 2);
}
