//! wid test kit: a real `wid serve` in-process on 127.0.0.1 port 0 over HTTPS, with a temp data dir
//! and an HTTP client that trusts its CA, plus helpers for the management API and token endpoint.
//!
//! Test-only code: failing loudly (unwrap/expect/indexing) is the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use wid_core::{Clock, SystemClock};
use wid_server::{RunningServer, ServerConfig};

/// A server for one test. Derefs to the [`Client`] that talks to it.
pub struct TestServer {
    server: Option<RunningServer>,
    /// The data dir (removed on drop).
    pub dir: tempfile::TempDir,
    client: Client,
}

impl std::ops::Deref for TestServer {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

/// Talks to one wid server as its bootstrap admin (from the profile the server wrote).
pub struct Client {
    /// Trusts the server's CA.
    pub http: reqwest::Client,
    pub url: String,
    pub tenant: String,
    pub subscription: String,
    pub profile: wid_core::profile::Profile,
}

impl Client {
    /// A client for the server a CLI profile names, trusting the CA file it names.
    pub fn from_profile(profile: wid_core::profile::Profile) -> Self {
        let ca = profile.ca_cert_file.clone().expect("the profile names a CA file");
        Self {
            http: client_trusting(&ca),
            url: profile.server.clone(),
            tenant: profile.tenant_id.clone(),
            subscription: profile.subscription_id.clone(),
            profile,
        }
    }
}

impl TestServer {
    /// Starts a server with default settings and the system clock.
    pub async fn start() -> Self {
        Self::start_with(|_| {}, Arc::new(SystemClock)).await
    }

    /// Starts a server after `tweak` adjusted its configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig), clock: Arc<dyn Clock>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = ServerConfig::new(dir.path().join("data"));
        cfg.listen = "127.0.0.1:0".parse().expect("addr");
        cfg.profile_path = Some(dir.path().join("profile.json"));
        tweak(&mut cfg);
        let server = wid_server::start_with_clock(cfg, clock).await.expect("server starts");
        let client = Client {
            http: client_trusting(&server.ca_pem),
            url: server.public_url.clone(),
            tenant: server.tenant_id.to_string(),
            subscription: server.subscription_id.to_string(),
            profile: server.profile.clone(),
        };
        Self { server: Some(server), dir, client }
    }

    /// Stops the server and starts it again on the same data dir and port.
    pub async fn restart(&mut self, tweak: impl FnOnce(&mut ServerConfig), clock: Arc<dyn Clock>) {
        let addr = self.server.as_ref().expect("running").addr;
        self.stop().await;
        let mut cfg = ServerConfig::new(self.dir.path().join("data"));
        cfg.listen = addr;
        cfg.profile_path = Some(self.dir.path().join("profile.json"));
        tweak(&mut cfg);
        let server = wid_server::start_with_clock(cfg, clock).await.expect("server restarts");
        self.client.url = server.public_url.clone();
        self.client.profile = server.profile.clone();
        self.server = Some(server);
    }

    /// The CA certificate path.
    pub fn ca_pem(&self) -> std::path::PathBuf {
        self.dir.path().join("data").join("ca.pem")
    }

    /// Stops the server (the data dir stays until drop).
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

impl Client {
    /// `POST /{tenant}/oauth2/v2.0/token` with a form; returns status and JSON.
    pub async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.url))
            .form(form)
            .send()
            .await
            .expect("token request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("token response is JSON"))
    }

    /// A management-API token for the admin principal.
    pub async fn admin_token(&self) -> String {
        let (status, body) = self.admin_token_for(&self.url).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().expect("access_token").to_string()
    }

    /// The token endpoint's answer to the admin principal (client secret) asking for `resource`.
    pub async fn admin_token_for(&self, resource: &str) -> (u16, Value) {
        let scope = format!("{resource}/.default");
        let secret = self.profile.client_secret.clone().unwrap_or_default();
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.profile.client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", scope.as_str()),
        ];
        self.token(&self.tenant, &form).await
    }

    /// A management call with a bearer token; `path` is relative to the server
    /// (`{sub}` is replaced by the subscription id). Returns status and JSON (Null if empty).
    pub async fn arm(&self, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let path = path.replace("{sub}", &self.subscription);
        let method = Method::from_bytes(method.as_bytes()).expect("method");
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut req =
            self.http.request(method, format!("{}{path}{sep}api-version=2024-11-30", self.url)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("arm request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        let json =
            if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("ARM body is JSON") };
        (status, json)
    }
}

/// An identity federated with a service account of a hosted cluster, and the access token a pod
/// with that service account gets from the exchange.
pub struct WorkloadIdentity {
    pub client_id: String,
    pub principal_id: String,
    pub token: String,
}

impl Client {
    /// The jwt-bearer exchange: `assertion` for `client_id`, a token for `scope`.
    pub async fn exchange(&self, client_id: &str, assertion: &str, scope: &str) -> (u16, Value) {
        self.token(
            &self.tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_assertion", assertion),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("scope", scope),
            ],
        )
        .await
    }

    /// Creates identity `name` in resource group `rg` (which must exist), federated with service
    /// account `apps/{name}` of the hosted cluster `wl` (created if absent), and exchanges that
    /// service account's token for an access token to `resource`, as a pod would.
    pub async fn workload_identity(&self, admin: &str, rg: &str, name: &str, resource: &str) -> WorkloadIdentity {
        let group = format!("/subscriptions/{{sub}}/resourceGroups/{rg}");
        let cluster = format!("{group}/providers/Microsoft.ContainerService/managedClusters/wl");
        let (st, c) = match self.arm(admin, "GET", &cluster, None).await {
            (200, c) => (200, c),
            _ => self.arm(admin, "PUT", &cluster, Some(json!({}))).await,
        };
        assert!(st == 200 || st == 201, "{c}");
        let issuer = c["properties"]["oidcIssuerProfile"]["issuerURL"].as_str().unwrap().to_string();
        let id_path = format!("{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}");
        let (st, id) = self.arm(admin, "PUT", &id_path, Some(json!({}))).await;
        assert_eq!(st, 201, "{id}");
        let subject = format!("system:serviceaccount:apps:{name}");
        let fic =
            json!({"properties": {"issuer": issuer, "subject": subject, "audiences": ["api://AzureADTokenExchange"]}});
        let (st, body) =
            self.arm(admin, "PUT", &format!("{id_path}/federatedIdentityCredentials/fic"), Some(fic)).await;
        assert_eq!(st, 201, "{body}");
        let sa = json!({"namespace": "apps", "serviceAccountName": name});
        let (st, sa) = self.arm(admin, "POST", &format!("{cluster}/serviceAccountToken"), Some(sa)).await;
        assert_eq!(st, 200, "{sa}");
        let client_id = id["properties"]["clientId"].as_str().unwrap().to_string();
        let (st, body) =
            self.exchange(&client_id, sa["token"].as_str().unwrap(), &format!("{resource}/.default")).await;
        assert_eq!(st, 200, "{body}");
        WorkloadIdentity {
            client_id,
            principal_id: id["properties"]["principalId"].as_str().unwrap().to_string(),
            token: body["access_token"].as_str().unwrap().to_string(),
        }
    }
}

/// An HTTPS client that trusts exactly the CA in `ca_pem` (plus the system roots).
pub fn client_trusting(ca_pem: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(ca_pem).expect("read ca.pem");
    let certs = reqwest::Certificate::from_pem_bundle(&pem).expect("ca.pem parses");
    reqwest::Client::builder().tls_certs_merge(certs).build().expect("client")
}

/// The claims of a JWT, decoded without verification (to look at what a server issued).
pub fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.trim().split('.').nth(1).expect("a compact JWS");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("a JSON payload")
}

/// Sends `signal` to process `pid` (a child the test started), as `kill -SIG pid` would.
pub fn send_signal(pid: u32, signal: rustix::process::Signal) {
    let pid = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw).expect("a process id");
    rustix::process::kill_process(pid, signal).expect("the signal is delivered");
}

/// Seeded randomness for tests that pick random points (xorshift64*). The seed is printed; setting
/// `WID_TEST_SEED` to it replays the same choices.
#[derive(Debug, Clone)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator seeded from `WID_TEST_SEED`, else from the clock; says which on stderr.
    pub fn from_env(test: &str) -> Self {
        let seed = std::env::var("WID_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            u64::try_from(nanos.as_nanos() % u128::from(u64::MAX)).unwrap_or(1) ^ u64::from(std::process::id())
        });
        eprintln!("{test}: random seed {seed} (WID_TEST_SEED={seed} replays it)");
        TestRng::seeded(seed)
    }

    /// A generator with a fixed seed.
    pub fn seeded(seed: u64) -> Self {
        TestRng(seed.max(1))
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}
