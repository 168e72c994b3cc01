//! External OIDC issuers reached by discovery over real HTTPS: keys fetched only for issuers a
//! credential names, cached, re-fetched on an unknown kid at a bounded rate, kept working from cache
//! while the issuer is down (up to the stated limit), and every failure reported as AADSTS90061.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use wid_core::FixedClock;
use wid_crypto::{Alg, LocalCa, SigningKey, encode_compact};
use wid_testkit::TestServer;

const AUD: &str = "api://AzureADTokenExchange";
const SUB: &str = "system:serviceaccount:prod:api";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Down,
    Huge,
    Redirect,
    /// Accepts the request and never answers.
    Stall,
}

#[derive(Clone)]
struct Issuer {
    url: Arc<Mutex<String>>,
    keys: Arc<Mutex<Vec<Value>>>,
    mode: Arc<Mutex<Mode>>,
    fetches: Arc<AtomicUsize>,
}

async fn discovery(State(i): State<Issuer>) -> Response {
    i.fetches.fetch_add(1, Ordering::SeqCst);
    let url = i.url.lock().unwrap().clone();
    let mode = *i.mode.lock().unwrap();
    match mode {
        Mode::Stall => std::future::pending().await,
        Mode::Down => (axum::http::StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        Mode::Redirect => (axum::http::StatusCode::FOUND, [("location", "https://169.254.169.254/latest")]).into_response(),
        Mode::Normal | Mode::Huge => {
            axum::Json(json!({"issuer": url, "jwks_uri": format!("{url}openid/v1/jwks"), "response_types_supported": ["id_token"]})).into_response()
        }
    }
}

async fn jwks(State(i): State<Issuer>) -> Response {
    i.fetches.fetch_add(1, Ordering::SeqCst);
    if *i.mode.lock().unwrap() == Mode::Huge {
        return "x".repeat(300 * 1024).into_response();
    }
    axum::Json(json!({"keys": *i.keys.lock().unwrap()})).into_response()
}

/// Starts a real HTTPS OIDC issuer on 127.0.0.1 with its own CA; returns it and the CA PEM.
async fn start_issuer(key: &SigningKey) -> (Issuer, String) {
    let ca = LocalCa::generate("test issuer CA").unwrap();
    let (cert, cert_key) = ca.issue_server_cert(&["localhost".into()], &["127.0.0.1".parse().unwrap()], 1).unwrap();
    let tls = wid_http::tls::rustls_config(cert.as_bytes(), cert_key.as_bytes()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let issuer = Issuer {
        url: Arc::new(Mutex::new(format!("https://127.0.0.1:{port}/"))),
        keys: Arc::new(Mutex::new(vec![serde_json::to_value(key.public_jwk()).unwrap()])),
        mode: Arc::new(Mutex::new(Mode::Normal)),
        fetches: Arc::new(AtomicUsize::new(0)),
    };
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/openid/v1/jwks", get(jwks))
        .with_state(issuer.clone());
    let (_tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _keep = _tx;
        wid_http::serve(listener, tls, app, rx, std::time::Duration::from_secs(1)).await;
    });
    (issuer, ca.cert_pem().to_string())
}

struct World {
    s: TestServer,
    clock: Arc<FixedClock>,
    issuer: Issuer,
    client_id: String,
}

async fn world(key: &SigningKey) -> World {
    let (issuer, ca_pem) = start_issuer(key).await;
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca_pem).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let clock = Arc::new(FixedClock::new(now));
    let ca_path = ca_file.path().to_path_buf();
    let s = TestServer::start_with(move |c| c.issuer_ca_file = Some(ca_path), clock.clone()).await;
    drop(ca_file);
    let admin = s.admin_token().await;
    s.arm(&admin, "PUT", "/subscriptions/{sub}/resourcegroups/rg", Some(json!({"location": "eastus"}))).await;
    let (_, id) = s
        .arm(
            &admin,
            "PUT",
            "/subscriptions/{sub}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app",
            Some(json!({})),
        )
        .await;
    let url = issuer.url.lock().unwrap().clone();
    let fic = json!({"properties": {"issuer": url, "subject": SUB, "audiences": [AUD]}});
    let (st, body) = s
        .arm(&admin, "PUT", "/subscriptions/{sub}/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app/federatedIdentityCredentials/ext", Some(fic))
        .await;
    assert_eq!(st, 201, "{body}");
    World { client_id: id["properties"]["clientId"].as_str().unwrap().into(), s, clock, issuer }
}

impl World {
    fn assertion(&self, key: &SigningKey) -> String {
        use wid_core::Clock;
        let t = self.clock.now();
        let iss = self.issuer.url.lock().unwrap().clone();
        encode_compact(
            &json!({}),
            &json!({"iss": iss, "sub": SUB, "aud": [AUD], "iat": t, "exp": t + 3600}),
            key,
            Alg::Rs256,
        )
        .unwrap()
    }

    async fn exchange(&self, assertion: &str) -> (u16, u64, Value) {
        let scope = format!("{}/.default", self.s.profile.key_vault_resource.as_deref().unwrap());
        let (st, body) = self
            .s
            .token(
                &self.s.tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_assertion", assertion),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("scope", &scope),
                ],
            )
            .await;
        (st, body["error_codes"][0].as_u64().unwrap_or(0), body)
    }

    fn fetches(&self) -> usize {
        self.issuer.fetches.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn discovery_cache_refetch_and_outage() {
    let key = SigningKey::generate_rsa(2048).unwrap();
    let w = world(&key).await;
    assert_eq!(w.fetches(), 0, "nothing is fetched before a token names the issuer");

    let (st, _, body) = w.exchange(&w.assertion(&key)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(w.fetches(), 2, "discovery + JWKS");
    assert_eq!(w.exchange(&w.assertion(&key)).await.0, 200);
    assert_eq!(w.fetches(), 2, "served from the cache");

    // The issuer rotates its key: an unknown kid triggers one re-fetch, but not more often than
    // every 30 s.
    let rotated = SigningKey::generate_rsa(2048).unwrap();
    w.issuer.keys.lock().unwrap().push(serde_json::to_value(rotated.public_jwk()).unwrap());
    let (st, code, _) = w.exchange(&w.assertion(&rotated)).await;
    assert_eq!((st, code), (401, 7000272), "within the re-fetch interval the kid stays unknown");
    assert_eq!(w.fetches(), 2);
    w.clock.advance(31);
    let (st, _, body) = w.exchange(&w.assertion(&rotated)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(w.fetches(), 4);

    // The issuer goes down: cached keys keep working past the TTL, up to 24 h after the last fetch.
    *w.issuer.mode.lock().unwrap() = Mode::Down;
    w.clock.advance(2 * 3600);
    let (st, _, body) = w.exchange(&w.assertion(&key)).await;
    assert_eq!(st, 200, "stale keys are used while the issuer is down: {body}");
    assert_eq!(w.fetches(), 5, "one failed refresh attempt");
    w.clock.advance(23 * 3600);
    let (st, code, body) = w.exchange(&w.assertion(&key)).await;
    assert_eq!((st, code), (400, 90061), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("503"), "{body}");

    // Back up: works again.
    *w.issuer.mode.lock().unwrap() = Mode::Normal;
    w.clock.advance(31);
    assert_eq!(w.exchange(&w.assertion(&key)).await.0, 200);
}

#[tokio::test]
async fn hostile_issuer_documents_are_refused() {
    let key = SigningKey::generate_rsa(2048).unwrap();
    let w = world(&key).await;
    for (mode, needle) in [(Mode::Huge, "larger than"), (Mode::Redirect, "302")] {
        *w.issuer.mode.lock().unwrap() = mode;
        w.clock.advance(31);
        let (st, code, body) = w.exchange(&w.assertion(&key)).await;
        assert_eq!((st, code), (400, 90061), "{body}");
        assert!(body["error_description"].as_str().unwrap().contains(needle), "{body}");
    }

    // An issuer no credential names is never fetched.
    let before = w.fetches();
    *w.issuer.url.lock().unwrap() = "https://127.0.0.1:9/".into();
    let (st, code, _) = w.exchange(&w.assertion(&key)).await;
    assert_eq!((st, code), (401, 700211));
    assert_eq!(w.fetches(), before);
}

#[tokio::test]
async fn a_stalled_issuer_costs_one_bounded_wait_and_blocks_nobody_else() {
    let key = SigningKey::generate_rsa(2048).unwrap();
    let w = world(&key).await;
    *w.issuer.mode.lock().unwrap() = Mode::Stall;
    let started = std::time::Instant::now();
    let assertion = w.assertion(&key);
    let stalled = async { (w.exchange(&assertion).await, started.elapsed()) };
    // While that exchange waits on the issuer, the server answers everyone else.
    let others = async {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let t = std::time::Instant::now();
        let admin = w.s.admin_token().await;
        let (st, _) = w.s.arm(&admin, "GET", "/subscriptions/{sub}/resourcegroups", None).await;
        (st, t.elapsed(), started.elapsed())
    };
    let (((st, code, body), waited), (other_status, other_wait, other_done)) = tokio::join!(stalled, others);
    assert_eq!((st, code), (400, 90061), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("timed out"), "{body}");
    // The fetch limit is 10 s (connect and whole response); the exchange ends with it.
    assert!(waited < std::time::Duration::from_secs(20), "the stalled fetch was not cut off: {waited:?}");
    assert_eq!(other_status, 200);
    assert!(other_done < waited, "the other client was served only after the stalled exchange ended");
    eprintln!("stalled issuer: exchange refused after {waited:?}; another client served in {other_wait:?} meanwhile");
}
