//! The bad-input battery against a real in-process server over HTTPS, for the cases the protocol
//! suites (crates/wid-server/tests) do not already cover: algorithm and key confusion at the token
//! endpoint (another issuer's `kid`, key-pointing headers that must never be fetched, duplicate
//! claims), lifetime and audience boundaries, tokens of another tenant or for another resource,
//! role assignments at sibling scopes (name prefixes, another vault, another secret), unicode and
//! percent-encoding tricks and traversal in raw request paths, and floods of form fields. Every
//! refusal has its documented status and code, and the store is byte-for-byte the same record set
//! before and after (no trace). Plus slow clients (slowloris) and plain HTTP on the TLS port.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use wid_core::SystemClock;
use wid_crypto::{Alg, SigningKey, encode_compact};
use wid_store::{Record, SqliteStore, Store};
use wid_testkit::TestServer;

mod support;
use support::{assign, put};
use wid_core::rbac::roles::{KEY_VAULT_SECRETS_OFFICER, KEY_VAULT_SECRETS_USER, READER};

const AUD: &str = "api://AzureADTokenExchange";
const ISSUER_A: &str = "https://issuer-a.example/cluster/";
const ISSUER_B: &str = "https://issuer-b.example/cluster/";
const SUB: &str = "system:serviceaccount:ns:app";
const RG: &str = "/subscriptions/{sub}/resourceGroups/app";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS over exactly these header and payload bytes (duplicate members survive).
fn sign_raw(header: &str, payload: &str, key: &SigningKey, alg: Alg) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let sig = key.sign(alg, input.as_bytes()).unwrap();
    format!("{input}.{}", b64(&sig))
}

/// Everything the store holds (the server must be stopped: one process per database file).
fn snapshot(data_dir: &std::path::Path) -> Vec<Record> {
    let store = SqliteStore::open(&data_dir.join("wid.db")).unwrap();
    let mut out = Vec::new();
    store
        .export(&mut |r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
    out
}

/// One raw HTTP/1.1 exchange over TLS with exactly `request` on the wire (no client-side path
/// normalisation); returns the status and body.
fn raw_https(addr: SocketAddr, ca_pem: &[u8], server_name: &str, request: &[u8]) -> (u16, String) {
    let stream = tls_connect(addr, ca_pem, server_name);
    let mut stream = stream;
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn tls_connect(
    addr: SocketAddr,
    ca_pem: &[u8],
    server_name: &str,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

struct World {
    s: TestServer,
    admin: String,
    key_a: SigningKey,
    key_b: SigningKey,
    client_id: String,
    principal_id: String,
}

/// Two resource groups whose names share a prefix (`app`, `app2`), two vaults likewise (`kva`,
/// `kvab`), two private issuers with uploaded JWKS, and one identity federated with issuer A that
/// holds Reader on `app`, Secrets User on vault `kva` and on the secret `on` of `kvab`.
async fn world() -> World {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let me = s.profile.principal_id.clone().unwrap();
    for rg in ["app", "app2"] {
        put(&s, &admin, &format!("/subscriptions/{{sub}}/resourceGroups/{rg}"), json!({"location": "local"})).await;
    }
    let (key_a, key_b) =
        (SigningKey::generate_rsa(2048).unwrap(), SigningKey::generate_ec(wid_crypto::EcCurve::P256).unwrap());
    for (name, issuer, key) in [("a", ISSUER_A, &key_a), ("b", ISSUER_B, &key_b)] {
        let body =
            json!({"properties": {"oidcIssuerProfile": {"issuerURL": issuer, "jwks": {"keys": [key.public_jwk()]}}}});
        put(&s, &admin, &format!("{RG}/providers/Microsoft.ContainerService/managedClusters/{name}"), body).await;
    }
    let id_path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-id");
    let id = put(&s, &admin, &id_path, json!({})).await;
    let fic = json!({"properties": {"issuer": ISSUER_A, "subject": SUB, "audiences": [AUD]}});
    put(&s, &admin, &format!("{id_path}/federatedIdentityCredentials/fic-a"), fic).await;
    let principal_id = id["properties"]["principalId"].as_str().unwrap().to_string();
    let mut vaults = Vec::new();
    for name in ["kva", "kvab"] {
        let body = json!({"location": "local", "properties": {"tenantId": s.tenant, "sku": {"family": "A", "name": "standard"}, "enableRbacAuthorization": true}});
        let v = put(&s, &admin, &format!("{RG}/providers/Microsoft.KeyVault/vaults/{name}"), body).await;
        let vid = v["id"].as_str().unwrap().to_string();
        assign(&s, &admin, &vid, KEY_VAULT_SECRETS_OFFICER, &me).await;
        vaults.push(vid);
    }
    assign(&s, &admin, &vaults[0], KEY_VAULT_SECRETS_USER, &principal_id).await;
    assign(&s, &admin, &format!("{}/secrets/on", vaults[1]), KEY_VAULT_SECRETS_USER, &principal_id).await;
    assign(&s, &admin, "/subscriptions/{sub}/resourceGroups/app", READER, &principal_id).await;
    let w = World {
        client_id: id["properties"]["clientId"].as_str().unwrap().to_string(),
        principal_id,
        s,
        admin,
        key_a,
        key_b,
    };
    let kv = w.kv_admin().await;
    for (vault, name) in [("kva", "one"), ("kvab", "one"), ("kvab", "on")] {
        let (st, body) = w.kv(&kv, "PUT", vault, &format!("/secrets/{name}"), Some(json!({"value": "v"}))).await;
        assert_eq!(st, 200, "{body}");
    }
    w
}

impl World {
    fn port(&self) -> u16 {
        self.s.url.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    fn vault_resource(&self) -> String {
        self.s.profile.key_vault_resource.clone().unwrap()
    }

    fn vault_http(&self) -> reqwest::Client {
        let pem = std::fs::read(self.s.ca_pem()).unwrap();
        let mut b = reqwest::Client::builder().tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap());
        for v in ["kva", "kvab"] {
            b = b.resolve(&format!("{v}.vault.localhost"), SocketAddr::from(([127, 0, 0, 1], self.port())));
        }
        b.build().unwrap()
    }

    async fn kv(&self, token: &str, method: &str, vault: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = format!("https://{vault}.vault.localhost:{}{path}?api-version=7.5", self.port());
        let mut req = self.vault_http().request(method.parse().unwrap(), url).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let st = resp.status().as_u16();
        (st, serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap_or(Value::Null))
    }

    async fn kv_admin(&self) -> String {
        let secret = self.s.profile.client_secret.clone().unwrap();
        let scope = format!("{}/.default", self.vault_resource());
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.s.profile.client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", scope.as_str()),
        ];
        let (st, body) = self.s.token(&self.s.tenant, &form).await;
        assert_eq!(st, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    fn claims(&self) -> Value {
        let t = now();
        json!({"iss": ISSUER_A, "sub": SUB, "aud": [AUD], "iat": t, "nbf": t, "exp": t + 3600})
    }

    async fn exchange(&self, assertion: &str, resource: &str) -> (u16, u64, Value) {
        let (st, body) = self.s.exchange(&self.client_id, assertion, &format!("{resource}/.default")).await;
        (st, body["error_codes"][0].as_u64().unwrap_or(0), body)
    }
}

/// A TCP listener that counts connections: a key URL in a token header must never be fetched.
fn canary() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}/keys", listener.local_addr().unwrap().port());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for c in listener.incoming() {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(c);
        }
    });
    (url, hits)
}

/// The store as it was before a battery: taken with the server down (one process per database
/// file) and compared, again with the server down, once the battery is over.
struct NoTrace(Vec<Record>);

impl NoTrace {
    async fn take(w: &mut World) -> NoTrace {
        let mut before = Vec::new();
        w.s.restart(|cfg| before = snapshot(&cfg.data_dir), Arc::new(SystemClock)).await;
        NoTrace(before)
    }

    async fn check(self, w: &mut World, tried: usize, battery: &str) {
        w.s.stop().await;
        let after = snapshot(&w.s.dir.path().join("data"));
        assert_eq!(self.0.len(), after.len(), "records added or removed by refused requests");
        assert!(self.0 == after, "a refused request changed the store");
        eprintln!("{battery}: {tried} bad inputs tried, each refused with its documented error, store unchanged");
    }
}

/// Assertions signed with the wrong key, announcing keys in their headers, or with duplicate claims:
/// each gets its AADSTS code, no key URL is fetched, and nothing is stored.
#[tokio::test]
async fn token_endpoint_refuses_algorithm_and_key_confusion() {
    let mut w = world().await;
    let vault_res = w.vault_resource();
    let trace = NoTrace::take(&mut w).await;
    let mut tried = 0usize;

    // ---- token endpoint: algorithm and key confusion -------------------------------------------
    let t = now();
    let (canary_url, canary_hits) = canary();
    let attacker = SigningKey::generate_rsa(2048).unwrap();
    let claims = w.claims().to_string();
    let token_cases: Vec<(&str, String, u16, u64)> = vec![
        // B's key, B's kid, A's issuer: keys are looked up per issuer, never across issuers.
        ("kid of another issuer's key", sign_raw(&json!({"alg": "ES256", "kid": w.key_b.kid()}).to_string(), &claims, &w.key_b, Alg::Es256), 401, 7000272),
        // An attacker key, announced through every key-pointing header: none is followed.
        (
            "jku/x5u/jwk/x5c headers",
            sign_raw(
                &json!({"alg": "RS256", "kid": attacker.kid(), "jku": canary_url, "x5u": canary_url, "jwk": attacker.public_jwk(), "x5c": ["MIIB"]}).to_string(),
                &claims,
                &attacker,
                Alg::Rs256,
            ),
            401,
            7000272,
        ),
        (
            "A's kid, attacker's signature, attacker's jwk embedded",
            sign_raw(&json!({"alg": "RS256", "kid": w.key_a.kid(), "jwk": attacker.public_jwk()}).to_string(), &claims, &attacker, Alg::Rs256),
            401,
            700027,
        ),
        // An RSA key used with an EC algorithm name, and A's key with B's algorithm.
        ("alg ES256 over an RSA key", format!("{}.{}.{}", b64(json!({"alg": "ES256", "kid": w.key_a.kid()}).to_string().as_bytes()), b64(claims.as_bytes()), b64(&[0u8; 64])), 401, 700027),
        ("alg none, empty signature", format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(claims.as_bytes())), 401, 700027),
        ("alg HS256 with A's kid", format!("{}.{}.{}", b64(json!({"alg": "HS256", "kid": w.key_a.kid()}).to_string().as_bytes()), b64(claims.as_bytes()), b64(&[7u8; 32])), 401, 700027),
        // Duplicate claims: which one wins is parser-dependent, so neither does.
        (
            "duplicate iss",
            sign_raw(r#"{"alg":"RS256"}"#, &format!(r#"{{"iss":"{ISSUER_A}","iss":"{ISSUER_B}","sub":"{SUB}","aud":"{AUD}","iat":{t},"exp":{}}}"#, t + 600), &w.key_a, Alg::Rs256),
            400,
            50027,
        ),
        (
            "duplicate sub",
            sign_raw(r#"{"alg":"RS256"}"#, &format!(r#"{{"iss":"{ISSUER_A}","sub":"other","sub":"{SUB}","aud":"{AUD}","iat":{t},"exp":{}}}"#, t + 600), &w.key_a, Alg::Rs256),
            400,
            50027,
        ),
        ("duplicate alg in the header", sign_raw(r#"{"alg":"none","alg":"RS256"}"#, &claims, &w.key_a, Alg::Rs256), 400, 50027),
        ("crit header", sign_raw(r#"{"alg":"RS256","crit":["exp"]}"#, &claims, &w.key_a, Alg::Rs256), 400, 50027),
        ("payload not an object", sign_raw(r#"{"alg":"RS256"}"#, "[1,2]", &w.key_a, Alg::Rs256), 400, 50027),
        ("four segments", format!("{}.x", encode_compact(&json!({}), &w.claims(), &w.key_a, Alg::Rs256).unwrap()), 400, 50027),
    ];
    for (what, assertion, status, code) in &token_cases {
        let (st, got, body) = w.exchange(assertion, &vault_res).await;
        assert_eq!((st, got), (*status, *code), "{what}: {body}");
        tried += 1;
    }
    assert_eq!(canary_hits.load(std::sync::atomic::Ordering::SeqCst), 0, "a key URL from a token header was fetched");

    trace.check(&mut w, tried, "token endpoint refuses algorithm and key confusion").await;
}

/// Lifetime, clock skew, audience, subject and issuer at and just past their limits.
#[tokio::test]
async fn assertion_lifetime_and_audience_boundaries_are_exact() {
    let mut w = world().await;
    let vault_res = w.vault_resource();
    let trace = NoTrace::take(&mut w).await;
    let mut tried = 0usize;

    // ---- lifetime and audience boundaries (clock skew 5 min, lifetime ≤ 25 h) ------------------
    let with = |patch: Value| {
        let mut c = w.claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        encode_compact(&json!({}), &c, &w.key_a, Alg::Rs256).unwrap()
    };
    let t = now();
    let boundary: Vec<(&str, Value, u16, u64)> = vec![
        ("lifetime exactly 25 h", json!({"iat": t, "exp": t + 25 * 3600}), 200, 0),
        ("lifetime 25 h + 1 s", json!({"iat": t, "exp": t + 25 * 3600 + 1}), 400, 70023),
        ("expired beyond the skew", json!({"iat": t - 3600, "nbf": t - 3600, "exp": t - 310}), 401, 700024),
        ("nbf beyond the skew", json!({"nbf": t + 310}), 401, 700024),
        ("iat in the future beyond the skew", json!({"iat": t + 3600, "nbf": null, "exp": t + 7200}), 401, 700024),
        ("exp as a string", json!({"exp": (t + 600).to_string()}), 400, 50027),
        ("exp as a float", json!({"exp": (t + 600) as f64 + 0.5}), 400, 50027),
        ("exp far beyond i64", json!({"exp": 1e300}), 400, 50027),
        ("aud array with the audience among others", json!({"aud": ["https://kubernetes.default.svc", AUD]}), 200, 0),
        ("aud array without the audience", json!({"aud": ["https://kubernetes.default.svc"]}), 401, 700212),
        ("aud empty array", json!({"aud": []}), 400, 50027),
        ("aud differing in case", json!({"aud": [AUD.to_uppercase()]}), 401, 700212),
        ("aud not a string", json!({"aud": [5]}), 400, 50027),
        ("sub differing in case", json!({"sub": SUB.to_uppercase()}), 401, 7002138),
        ("sub with a trailing space", json!({"sub": format!("{SUB} ")}), 401, 700213),
        ("iss without its trailing slash", json!({"iss": ISSUER_A.trim_end_matches('/')}), 401, 700211),
        ("iss of the other issuer, signed by A", json!({"iss": ISSUER_B}), 401, 700211),
        ("no sub", json!({"sub": null}), 400, 50027),
    ];
    let mut wrong = Vec::new();
    for (what, patch, status, code) in boundary {
        let (st, got, body) = w.exchange(&with(patch), &vault_res).await;
        if (st, got) != (status, code) {
            wrong.push(format!("{what}: got {st} {got}, want {status} {code}: {}", body["error_description"]));
        }
        tried += 1;
    }
    assert!(wrong.is_empty(), "{wrong:#?}");

    trace.check(&mut w, tried, "assertion lifetime and audience boundaries are exact").await;
}

/// Scopes naming other resources, and another tenant's tokens and credentials.
#[tokio::test]
async fn tokens_for_other_resources_and_tenants_are_refused() {
    let mut w = world().await;
    let vault_res = w.vault_resource();
    let mgmt = w.s.url.clone();
    // Another tenant: a second server with its own keys and tenant id.
    let other = TestServer::start().await;
    let other_admin = other.admin_token().await;
    let trace = NoTrace::take(&mut w).await;
    let mut tried = 0usize;

    // ---- resources: another vault's URL, another tenant ----------------------------------------
    let port = w.port();
    for (what, scope, status, code) in [
        ("a token for one vault's own URL", format!("https://kva.vault.localhost:{port}"), 400, 500011),
        ("a resource on another port", format!("https://vault.localhost:{}", port + 1), 400, 500011),
        ("a resource with a path", format!("{vault_res}/secrets"), 400, 500011),
    ] {
        let assertion = encode_compact(&json!({}), &w.claims(), &w.key_a, Alg::Rs256).unwrap();
        let (st, got, body) = w.exchange(&assertion, &scope).await;
        assert_eq!((st, got), (status, code), "{what}: {body}");
        tried += 1;
    }
    // The other tenant's tokens: its management token here, and its admin client id here.
    let (st, body) = w.s.arm(&other_admin, "GET", "/subscriptions/{sub}/resourceGroups/app", None).await;
    assert_eq!(st, 401, "another tenant's token: {body}");
    let (st, body) = w.kv(&other_admin, "GET", "kva", "/secrets/one", None).await;
    assert_eq!(st, 401, "another tenant's token at the vault: {body}");
    let other_secret = other.profile.client_secret.clone().unwrap();
    let scope = format!("{mgmt}/.default");
    let (st, body) =
        w.s.token(
            &w.s.tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &other.profile.client_id),
                ("client_secret", &other_secret),
                ("scope", &scope),
            ],
        )
        .await;
    assert_eq!((st, body["error_codes"][0].as_u64()), (400, Some(700016)), "{body}");
    let (st, body) = w.s.token(&other.tenant, &[("grant_type", "client_credentials")]).await;
    assert_eq!((st, body["error_codes"][0].as_u64()), (400, Some(90002)), "{body}");
    tried += 4;

    trace.check(&mut w, tried, "tokens for other resources and tenants are refused").await;
}

/// A grant on `app`, `kva` or the secret `on` says nothing about `app2`, `kvab` or `one`.
#[tokio::test]
async fn sibling_scopes_never_grant() {
    let mut w = world().await;
    let vault_res = w.vault_resource();
    let mgmt = w.s.url.clone();
    let (st, _, body) =
        w.exchange(&encode_compact(&json!({}), &w.claims(), &w.key_a, Alg::Rs256).unwrap(), &vault_res).await;
    assert_eq!(st, 200, "{body}");
    let kv_app = body["access_token"].as_str().unwrap().to_string();
    let (_, _, body) = w.exchange(&encode_compact(&json!({}), &w.claims(), &w.key_a, Alg::Rs256).unwrap(), &mgmt).await;
    let arm_app = body["access_token"].as_str().unwrap().to_string();
    let trace = NoTrace::take(&mut w).await;
    let mut tried = 0usize;

    // ---- sibling scopes: name prefixes never grant -----------------------------------------------
    for (what, vault, name, want) in [
        ("the vault granted", "kva", "one", 200),
        ("a vault whose name extends it", "kvab", "one", 403),
        ("the secret granted", "kvab", "on", 200),
        ("a secret whose name extends it", "kvab", "one", 403),
        ("a secret whose name extends it, other case", "kvab", "ONE", 403),
    ] {
        let (st, body) = w.kv(&kv_app, "GET", vault, &format!("/secrets/{name}"), None).await;
        assert_eq!(st, want, "{what}: {body}");
        if want == 403 {
            assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac", "{body}");
        }
        tried += 1;
    }
    for (what, path, want) in [
        ("the group granted", "/subscriptions/{sub}/resourceGroups/app", 200),
        ("the group granted, other case", "/subscriptions/{sub}/resourceGroups/APP", 200),
        ("a group whose name extends it", "/subscriptions/{sub}/resourceGroups/app2", 403),
        ("a group with a Cyrillic a", "/subscriptions/{sub}/resourceGroups/%D0%B0pp", 403),
        ("the subscription above it", "/subscriptions/{sub}/resourceGroups", 200),
    ] {
        let (st, body) = w.s.arm(&arm_app, "GET", path, None).await;
        assert_eq!(st, want, "{what}: {body}");
        if path.ends_with("resourceGroups") {
            let names: Vec<&str> =
                body["value"].as_array().unwrap().iter().map(|g| g["name"].as_str().unwrap()).collect();
            assert_eq!(names, ["app"], "a list shows only what the caller may read");
        }
        tried += 1;
    }
    // The identity cannot grant itself more (Reader has no roleAssignments/write).
    let (st, body) = w
        .s
        .arm(
            &arm_app,
            "PUT",
            &format!("/subscriptions/{{sub}}/resourceGroups/app2/providers/Microsoft.Authorization/roleAssignments/{}", uuid::Uuid::new_v4()),
            Some(json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"), "principalId": w.principal_id}})),
        )
        .await;
    assert_eq!((st, body["error"]["code"].as_str()), (403, Some("AuthorizationFailed")), "{body}");
    tried += 1;

    trace.check(&mut w, tried, "sibling scopes never grant").await;
}

/// Traversal, encodings and lookalike characters in management paths, as exact bytes on the wire:
/// each is 400 InvalidResourceName.
#[tokio::test]
async fn raw_arm_paths_are_refused_as_invalid_resource_names() {
    let mut w = world().await;
    let trace = NoTrace::take(&mut w).await;
    let mut tried = 0usize;

    let ca = std::fs::read(w.s.ca_pem()).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], w.port()));
    let port = w.port();
    let sub = w.s.subscription.clone();
    let arm_raw = |method: &str, path: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            w.admin,
            body.len()
        )
    };
    let ra_body = json!({"properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"), "principalId": w.principal_id}}).to_string();
    let ra = uuid::Uuid::new_v4();
    let arm_cases: Vec<(&str, String, &str, u16)> = vec![
        (
            "traversal to a sibling group",
            format!(
                "/subscriptions/{sub}/resourceGroups/app/../app2/providers/Microsoft.Authorization/roleAssignments/{ra}?api-version=2022-04-01"
            ),
            &ra_body,
            400,
        ),
        (
            "encoded traversal",
            format!(
                "/subscriptions/{sub}/resourceGroups/app/%2e%2e/app2/providers/Microsoft.Authorization/roleAssignments/{ra}?api-version=2022-04-01"
            ),
            &ra_body,
            400,
        ),
        (
            "encoded slash in a group name",
            format!(
                "/subscriptions/{sub}/resourceGroups/app%2F..%2Fapp2/providers/Microsoft.Authorization/roleAssignments/{ra}?api-version=2022-04-01"
            ),
            &ra_body,
            400,
        ),
        (
            "dot segment as a group",
            format!(
                "/subscriptions/{sub}/resourceGroups/./providers/Microsoft.ManagedIdentity/userAssignedIdentities/x?api-version=2023-01-31"
            ),
            "{}",
            400,
        ),
        (
            "NUL in a name",
            format!(
                "/subscriptions/{sub}/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/x%00y?api-version=2023-01-31"
            ),
            "{}",
            400,
        ),
        (
            "right-to-left override in a name",
            format!(
                "/subscriptions/{sub}/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ab%E2%80%AEc?api-version=2023-01-31"
            ),
            "{}",
            400,
        ),
        (
            "zero-width space in a name",
            format!(
                "/subscriptions/{sub}/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/abc%E2%80%8B?api-version=2023-01-31"
            ),
            "{}",
            400,
        ),
        (
            "fullwidth letters in an identity name",
            format!(
                "/subscriptions/{sub}/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/%EF%BD%81bc?api-version=2023-01-31"
            ),
            "{}",
            400,
        ),
        (
            "invalid UTF-8 in a name",
            format!(
                "/subscriptions/{sub}/resourceGroups/app/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ab%FF?api-version=2023-01-31"
            ),
            "{}",
            400,
        ),
        (
            "a role assignment name that is not a GUID",
            format!(
                "/subscriptions/{sub}/resourceGroups/app/providers/Microsoft.Authorization/roleAssignments/..%2F..?api-version=2022-04-01"
            ),
            &ra_body,
            400,
        ),
        (
            "double slashes",
            format!("/subscriptions/{sub}//resourceGroups//app2?api-version=2021-04-01"),
            r#"{"location":"x"}"#,
            400,
        ),
    ];
    for (what, path, body, want) in arm_cases {
        let req = arm_raw("PUT", &path, body);
        let (st, resp) = tokio::task::spawn_blocking({
            let ca = ca.clone();
            move || raw_https(addr, &ca, "localhost", req.as_bytes())
        })
        .await
        .unwrap();
        let err: Value = serde_json::from_str(&resp).unwrap_or(Value::Null);
        assert_eq!((st, err["error"]["code"].as_str()), (want, Some("InvalidResourceName")), "{what}: {resp}");
        tried += 1;
    }

    trace.check(&mut w, tried, "raw arm paths are refused as invalid resource names").await;
}

/// Traversal, encodings and bad parameters on the Key Vault data plane, as exact bytes on the wire.
#[tokio::test]
async fn raw_key_vault_paths_get_their_key_vault_errors() {
    let mut w = world().await;
    let kv_admin = w.kv_admin().await;
    let trace = NoTrace::take(&mut w).await;
    let mut tried = 0usize;

    let ca = std::fs::read(w.s.ca_pem()).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], w.port()));
    let port = w.port();
    let kv_raw = |method: &str, path: &str, body: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: kva.vault.localhost:{port}\r\nAuthorization: Bearer {kv_admin}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let set = r#"{"value":"planted"}"#;
    let long_name = format!("/secrets/{}?api-version=7.5", "a".repeat(128));
    // One status and Key Vault error code each: a bad name or parameter is 400 BadParameter; a path
    // whose dots leave /secrets names no operation (404 NotFound, or 405 where `..` stays a name
    // segment of a secret's version path); a version that is no version is a version not found.
    let kv_cases: Vec<(&str, &str, &str, &str, u16, &str)> = vec![
        ("traversal out of /secrets", "PUT", "/secrets/../deletedsecrets/one?api-version=7.5", set, 404, "NotFound"),
        ("encoded traversal", "PUT", "/secrets/%2e%2e/one?api-version=7.5", set, 405, "MethodNotAllowed"),
        ("encoded slash in a name", "PUT", "/secrets/one%2F..%2Fother?api-version=7.5", set, 400, "BadParameter"),
        ("unicode letter in a name", "PUT", "/secrets/caf%C3%A9?api-version=7.5", set, 400, "BadParameter"),
        ("zero-width space in a name", "PUT", "/secrets/one%E2%80%8B?api-version=7.5", set, 400, "BadParameter"),
        ("fullwidth hyphen in a name", "PUT", "/secrets/a%EF%BC%8Db?api-version=7.5", set, 400, "BadParameter"),
        ("NUL in a name", "PUT", "/secrets/a%00b?api-version=7.5", set, 400, "BadParameter"),
        ("invalid UTF-8 in a name", "PUT", "/secrets/a%FFb?api-version=7.5", set, 400, "BadParameter"),
        ("a 128-character name", "PUT", &long_name, set, 400, "BadParameter"),
        (
            "a version that is not 32 hex digits",
            "GET",
            "/secrets/one/..%2F..?api-version=7.5",
            "",
            404,
            "SecretNotFound",
        ),
        ("a malformed api-version", "PUT", "/secrets/x?api-version=7.5.1", set, 400, "BadParameter"),
        ("an api-version with a script", "PUT", "/secrets/x?api-version=%3Cscript%3E", set, 400, "BadParameter"),
        ("a forged $skiptoken", "GET", "/secrets?api-version=7.5&$skiptoken=..%2F..%2Fetc", "", 400, "BadParameter"),
        ("maxresults out of range", "GET", "/secrets?api-version=7.5&maxresults=100000", "", 400, "BadParameter"),
        ("a JSON body that is not an object", "PUT", "/secrets/x?api-version=7.5", "[]", 400, "BadParameter"),
        (
            "a value that is not a string",
            "PUT",
            "/secrets/x?api-version=7.5",
            r#"{"value":{"a":1}}"#,
            400,
            "BadParameter",
        ),
        ("truncated JSON", "PUT", "/secrets/x?api-version=7.5", r#"{"value":"#, 400, "BadParameter"),
    ];
    for (what, method, path, body, want, code) in kv_cases {
        let req = kv_raw(method, path, body);
        let (st, resp) = tokio::task::spawn_blocking({
            let ca = ca.clone();
            move || raw_https(addr, &ca, "kva.vault.localhost", req.as_bytes())
        })
        .await
        .unwrap();
        let err: Value = serde_json::from_str(&resp).unwrap_or(Value::Null);
        assert_eq!((st, err["error"]["code"].as_str()), (want, Some(code)), "{what}: {resp}");
        tried += 1;
    }

    trace.check(&mut w, tried, "raw key vault paths get their key vault errors").await;
}

/// Large forms, duplicate fields, deep and oversized JSON within the body limits.
#[tokio::test]
async fn floods_within_the_size_limits_are_refused() {
    let mut w = world().await;
    let trace = NoTrace::take(&mut w).await;
    let mut tried = 0usize;

    // ---- floods within the size limits ----------------------------------------------------------
    let http = &w.s.http;
    let token_url = format!("{}/{}/oauth2/v2.0/token", w.s.url, w.s.tenant);
    let many_fields = "a=b&".repeat(250_000);
    let started = Instant::now();
    let resp = http
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(many_fields)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(started.elapsed() < Duration::from_secs(5), "a 1 MB form of 250k fields took {:?}", started.elapsed());
    let resp = http
        .post(&token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("client_id={}&client_id={}", w.client_id, w.client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "duplicate form fields are refused");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (st, body) = w.s.arm(&w.admin, "PUT", "/subscriptions/{sub}/resourceGroups/deep", Some(Value::Null)).await;
    assert_eq!(st, 400, "a JSON null body: {body}");
    let resp = http
        .put(format!("{}/subscriptions/{}/resourceGroups/deep?api-version=2021-04-01", w.s.url, w.s.subscription))
        .bearer_auth(&w.admin)
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "deeply nested JSON is a 400");
    let big = format!(r#"{{"location":"x","tags":{{"t":"{}"}}}}"#, "x".repeat(2 * 1024 * 1024));
    let resp = http
        .put(format!("{}/subscriptions/{}/resourceGroups/big?api-version=2021-04-01", w.s.url, w.s.subscription))
        .bearer_auth(&w.admin)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "an ARM body over 1 MiB");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RequestBodyTooLarge", "{body}");
    tried += 5;

    trace.check(&mut w, tried, "floods within the size limits are refused").await;
}

/// Slow clients cannot hold connections: a TCP connection that never starts TLS, one that trickles
/// its request headers, and one that trickles a declared body are all closed, while other clients
/// are served at once. And plain HTTP on the TLS port gets no HTTP answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_plain_http_is_refused() {
    let s = TestServer::start().await;
    let port: u16 = s.url.rsplit_once(':').unwrap().1.parse().unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ca = std::fs::read(s.ca_pem()).unwrap();

    // Plain HTTP: the reply (if any) is a TLS alert, never HTTP, and never a redirect.
    let mut plain = TcpStream::connect(addr).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    plain.write_all(format!("GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n").as_bytes()).unwrap();
    let mut reply = Vec::new();
    let _ = plain.read_to_end(&mut reply);
    assert!(!String::from_utf8_lossy(&reply).contains("HTTP/"), "plain HTTP got an HTTP answer: {reply:?}");

    // Each slow client runs on its own thread and reports how long the server kept it.
    let slow = |what: &'static str, f: Box<dyn FnOnce() + Send>| {
        std::thread::spawn(move || {
            let started = Instant::now();
            f();
            (what, started.elapsed())
        })
    };
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(slow(
            "no TLS handshake",
            Box::new(move || {
                let mut tcp = TcpStream::connect(addr).unwrap();
                tcp.set_read_timeout(Some(Duration::from_secs(40))).unwrap();
                let mut buf = [0u8; 16];
                let _ = tcp.read(&mut buf);
            }),
        ));
    }
    for _ in 0..5 {
        let ca = ca.clone();
        clients.push(slow(
            "headers one byte a second",
            Box::new(move || {
                let mut tls = tls_connect(addr, &ca, "localhost");
                let req =
                    format!("GET /healthz HTTP/1.1\r\nHost: localhost:{port}\r\nX-Slow: {}\r\n\r\n", "a".repeat(60));
                for b in req.bytes() {
                    if tls.write_all(&[b]).and_then(|()| tls.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }),
        ));
    }
    for _ in 0..5 {
        let ca = ca.clone();
        clients.push(slow(
            "body one byte a second",
            Box::new(move || {
                let mut tls = tls_connect(addr, &ca, "localhost");
                let head = format!("POST /t/oauth2/v2.0/token HTTP/1.1\r\nHost: localhost:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n");
                tls.write_all(head.as_bytes()).unwrap();
                for _ in 0..100 {
                    if tls.write_all(b"a").and_then(|()| tls.flush()).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }),
        ));
    }
    // Meanwhile everyone else is served at once.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for _ in 0..5 {
        let started = Instant::now();
        let r = s.http.get(format!("{}/healthz", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(started.elapsed() < Duration::from_secs(2), "served in {:?} under slow clients", started.elapsed());
    }
    let mut kept = std::collections::BTreeMap::new();
    for c in clients {
        let (what, held) = tokio::task::spawn_blocking(move || c.join().unwrap()).await.unwrap();
        let e: &mut Duration = kept.entry(what).or_default();
        *e = (*e).max(held);
    }
    eprintln!("slow clients held at most: {kept:?}");
    for (what, held) in kept {
        assert!(held < Duration::from_secs(40), "{what}: the server kept the connection {held:?}");
    }
}
