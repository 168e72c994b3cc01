//! Shared set-up of the Key Vault data-plane tests: a server, a client that reaches
//! `{vault}.vault.localhost:PORT` on the loopback listener, vaults and role assignments through the
//! management API, and workload identities with Key Vault tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic, dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use wid_core::{Clock, SystemClock};
use wid_server::ServerConfig;
use wid_testkit::TestServer;

pub const API: &str = "7.5";
pub const RG: &str = "/subscriptions/{sub}/resourceGroups/rg";

/// Vault names the test client can reach (reqwest resolves each explicitly to the listener).
pub const VAULTS: &[&str] = &["kv1", "kv2", "kv3", "protected", "legacy", "nope", "thr"];

pub mod roles {
    pub const ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
    pub const SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";
    pub const SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
    pub const READER: &str = "21090545-7ca7-4776-b22c-e363652d74d2";
}

/// A workload identity that can call the vault.
pub struct Principal {
    pub client_id: String,
    pub principal_id: String,
    pub token: String,
}

/// The response of a data-plane call.
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn code(&self) -> (&str, &str) {
        (
            self.body["error"]["code"].as_str().unwrap_or(""),
            self.body["error"]["innererror"]["code"].as_str().unwrap_or(""),
        )
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

pub struct Kv {
    pub s: TestServer,
    /// Management token of the bootstrap admin.
    pub admin: String,
    pub port: u16,
    /// Reaches the vault hosts (HTTP/2 when offered).
    pub http: reqwest::Client,
    /// The same over HTTP/1.1 only (the `Host` header path, as Python's requests).
    pub http1: reqwest::Client,
}

fn vault_client(s: &TestServer, port: u16, http1: bool) -> reqwest::Client {
    let pem = std::fs::read(s.ca_pem()).unwrap();
    let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap();
    let mut b = reqwest::Client::builder().tls_certs_merge(certs);
    for v in VAULTS {
        b = b.resolve(&format!("{v}.vault.localhost"), SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if http1 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

impl Kv {
    pub async fn start() -> Kv {
        Kv::start_with(|_| {}, Arc::new(SystemClock)).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig), clock: Arc<dyn Clock>) -> Kv {
        let s = TestServer::start_with(tweak, clock).await;
        let port: u16 = s.url.rsplit(':').next().unwrap().parse().unwrap();
        let admin = s.admin_token().await;
        let (st, body) = s.arm(&admin, "PUT", RG, Some(json!({"location": "eastus"}))).await;
        assert_eq!(st, 201, "{body}");
        let http = vault_client(&s, port, false);
        let http1 = vault_client(&s, port, true);
        Kv { s, admin, port, http, http1 }
    }

    /// `https://vault.localhost:PORT`.
    pub fn resource(&self) -> String {
        format!("https://vault.localhost:{}", self.port)
    }

    /// `https://{vault}.vault.localhost:PORT`.
    pub fn vault_url(&self, vault: &str) -> String {
        format!("https://{vault}.vault.localhost:{}", self.port)
    }

    /// The ARM id of a vault in the test group.
    pub fn vault_id(&self, vault: &str) -> String {
        format!("/subscriptions/{}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{vault}", self.s.subscription)
    }

    /// Creates a vault through the management API.
    pub async fn create_vault(&self, name: &str, rbac: bool, purge_protection: bool, retention_days: u32) -> Value {
        let body = json!({"location": "eastus", "properties": {
            "tenantId": self.s.tenant,
            "sku": {"family": "A", "name": "standard"},
            "enableRbacAuthorization": rbac,
            "enablePurgeProtection": purge_protection,
            "softDeleteRetentionInDays": retention_days,
        }});
        let path = format!("{RG}/providers/Microsoft.KeyVault/vaults/{name}");
        let (st, body) = self.s.arm(&self.admin, "PUT", &path, Some(body)).await;
        assert!(st == 200 || st == 201, "vault create: {st} {body}");
        body
    }

    /// Assigns a role (GUID) to a principal at a scope; returns the assignment's ARM id.
    pub async fn assign(&self, scope: &str, role: &str, principal_id: &str) -> String {
        let guid = uuid::Uuid::new_v4();
        let body = json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", self.s.subscription),
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
        }});
        let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}");
        let (st, body) = self.s.arm(&self.admin, "PUT", &path, Some(body)).await;
        assert_eq!(st, 201, "role assignment: {body}");
        body["id"].as_str().map_or(path, str::to_string)
    }

    /// Deletes a role assignment by its ARM id.
    pub async fn unassign(&self, id: &str) {
        let (st, body) = self.s.arm(&self.admin, "DELETE", id, None).await;
        assert!(st == 200 || st == 204, "role assignment delete: {st} {body}");
    }

    /// A Key Vault token for the bootstrap admin (client secret).
    pub async fn admin_kv_token(&self) -> String {
        let scope = format!("{}/.default", self.resource());
        let secret = self.s.profile.client_secret.clone().unwrap();
        let (st, body) = self
            .s
            .token(
                &self.s.tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.s.profile.client_id),
                    ("client_secret", &secret),
                    ("scope", &scope),
                ],
            )
            .await;
        assert_eq!(st, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// The admin's object id.
    pub fn admin_oid(&self) -> String {
        self.s.profile.principal_id.clone().unwrap()
    }

    /// A managed identity with a federated credential on the hosted cluster, and a Key Vault token
    /// obtained by the exchange (as a pod would).
    pub async fn identity(&self, name: &str) -> Principal {
        let w = self.s.workload_identity(&self.admin, "rg", name, &self.resource()).await;
        Principal { client_id: w.client_id, principal_id: w.principal_id, token: w.token }
    }

    /// A data-plane call: `path` relative to the vault root; `api-version` is added unless the
    /// path already has a query.
    pub async fn call(&self, token: Option<&str>, method: &str, vault: &str, path: &str, body: Option<Value>) -> Resp {
        let url = if path.contains('?') {
            format!("{}{path}", self.vault_url(vault))
        } else {
            format!("{}{path}?api-version={API}", self.vault_url(vault))
        };
        self.send(&self.http, token, method, &url, body).await
    }

    /// A call to an absolute URL.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        token: Option<&str>,
        method: &str,
        url: &str,
        body: Option<Value>,
    ) -> Resp {
        let mut req = client.request(Method::from_bytes(method.as_bytes()).unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
        };
        Resp { status, headers, body }
    }
}
