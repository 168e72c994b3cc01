//! wid test kit: a real `wid serve` in-process on 127.0.0.1 port 0 over HTTPS, with a temp data dir
//! and an HTTP client that trusts its CA, plus helpers for the management API and token endpoint.
//!
//! Test-only code: failing loudly (unwrap/expect/indexing) is the point here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;
use wid_core::{Clock, SystemClock};
use wid_server::{RunningServer, ServerConfig};

/// A server for one test.
pub struct TestServer {
    server: Option<RunningServer>,
    /// The data dir (removed on drop).
    pub dir: tempfile::TempDir,
    /// A client trusting the server's CA.
    pub http: reqwest::Client,
    pub url: String,
    pub tenant: String,
    pub subscription: String,
    pub profile: wid_server::profile::Profile,
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
        let http = client_trusting(&server.ca_pem);
        Self {
            url: server.public_url.clone(),
            tenant: server.tenant_id.to_string(),
            subscription: server.subscription_id.to_string(),
            profile: server.profile.clone(),
            server: Some(server),
            dir,
            http,
        }
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
        self.url = server.public_url.clone();
        self.profile = server.profile.clone();
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
        let scope = format!("{}/.default", self.url);
        let secret = self.profile.client_secret.clone().unwrap_or_default();
        let (status, body) = self
            .token(
                &self.tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.profile.client_id),
                    ("client_secret", &secret),
                    ("scope", &scope),
                ],
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().expect("access_token").to_string()
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

/// An HTTPS client that trusts exactly the CA in `ca_pem` (plus the system roots).
pub fn client_trusting(ca_pem: &std::path::Path) -> reqwest::Client {
    let pem = std::fs::read(ca_pem).expect("read ca.pem");
    let certs = reqwest::Certificate::from_pem_bundle(&pem).expect("ca.pem parses");
    reqwest::Client::builder().tls_certs_merge(certs).build().expect("client")
}
