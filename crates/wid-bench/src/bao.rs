//! OpenBao, the peer: `bao server -dev -dev-tls` pinned to core 0 (in-memory storage, TLS like wid),
//! set up through its HTTP API: JWT auth verifying the bench cluster's tokens with the same public
//! key (`jwt_validation_pubkeys`) and one role per bench identity bound to its subject and audience;
//! a `bench` policy on KV v2 and one token per identity carrying it (not the root token, whose
//! requests skip the ACL check); with a kube-apiserver, Kubernetes auth with a role per bench
//! ServiceAccount.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use http::Method;
use serde_json::{Value, json};

use crate::client::{Proto, Req, Target};
use crate::cluster::{AUDIENCE, Cluster, ISSUER, NAMESPACE, subject};
use crate::kube::Kube;
use crate::procs::{Server, free_port, fresh_dir, wait_for_file, wait_ready};

pub const SECRET: &str = "bench-secret";

pub struct Bao {
    pub server: Server,
    pub target: Target,
    pub cold_start: Duration,
    pub version: String,
}

impl Bao {
    pub async fn start(bin: &Path, work: &Path) -> anyhow::Result<Self> {
        let port = free_port()?;
        let dir = fresh_dir(work, "openbao")?;
        let home = fresh_dir(work, "openbao-home")?;
        let version = std::process::Command::new(bin)
            .arg("version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let args: Vec<String> = vec![
            "server".into(),
            "-dev".into(),
            "-dev-tls".into(),
            format!("-dev-tls-cert-dir={}", dir.display()),
            format!("-dev-listen-address=127.0.0.1:{port}"),
            "-dev-root-token-id=root".into(),
            "-log-level=warn".into(),
        ];
        let started = Instant::now();
        let server =
            Server::spawn("0", bin, &args, &[("HOME", home.display().to_string())], &work.join("openbao.log"))?;
        let ca = dir.join("vault-ca.pem");
        let ca = wait_for_file(&ca, started, &work.join("openbao.log")).await?;
        let target = Target::new(SocketAddr::from(([127, 0, 0, 1], port)), "localhost", &ca)?;
        let cold_start = wait_ready(&target, "/v1/sys/health", 200, started, Duration::from_secs(60)).await?;
        Ok(Self { server, target, cold_start, version })
    }

    /// JWT auth with the cluster's key, a role per identity, the KV policy, a secret, and one token
    /// per identity with that policy (returned).
    pub async fn setup(&self, cluster: &Cluster, n: usize) -> anyhow::Result<Vec<String>> {
        let mut c = self.target.connect(Proto::H1).await?;
        let root = |m: Method, path: &str, body: Value| Req::json(m, path, &body).header("x-vault-token", "root");
        c.json(&root(Method::POST, "/v1/sys/auth/jwt", json!({"type": "jwt"})), &[200, 204]).await?;
        let cfg = json!({"jwt_validation_pubkeys": [cluster.public_pem()], "bound_issuer": ISSUER});
        c.json(&root(Method::POST, "/v1/auth/jwt/config", cfg), &[200, 204]).await?;
        let policy = r#"path "secret/data/*" { capabilities = ["create", "read", "update"] }"#;
        c.json(&root(Method::PUT, "/v1/sys/policies/acl/bench", json!({"policy": policy})), &[200, 204]).await?;
        let mut tokens = Vec::new();
        for i in 0..n {
            let role = json!({
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_subject": subject(i),
                "bound_audiences": [AUDIENCE],
                "token_policies": ["bench"],
                "token_ttl": "24h",
            });
            c.json(&root(Method::POST, &format!("/v1/auth/jwt/role/id-{i}"), role), &[200, 204]).await?;
            let t = c
                .json(
                    &root(Method::POST, "/v1/auth/token/create", json!({"policies": ["bench"], "ttl": "24h"})),
                    &[200],
                )
                .await?;
            tokens.push(t.pointer("/auth/client_token").and_then(Value::as_str).unwrap_or_default().to_string());
        }
        let body = json!({"data": {"value": "x".repeat(64)}});
        c.json(&root(Method::POST, &format!("/v1/secret/data/{SECRET}"), body), &[200]).await?;
        // Prove a login works before measuring.
        let t = cluster.token(0, crate::cluster::unix_now())?;
        c.json(&login_req(0, &t), &[200]).await.context("OpenBao JWT login")?;
        Ok(tokens)
    }
}

impl Bao {
    /// Kubernetes auth against the real kube-apiserver: OpenBao sends every login's token to the
    /// API server's TokenReview with the reviewer's token; one role per bench ServiceAccount.
    pub async fn setup_kubernetes(&self, kube: &Kube, n: usize) -> anyhow::Result<()> {
        let mut c = self.target.connect(Proto::H1).await?;
        let root = |m: Method, path: &str, body: Value| Req::json(m, path, &body).header("x-vault-token", "root");
        c.json(&root(Method::POST, "/v1/sys/auth/kubernetes", json!({"type": "kubernetes"})), &[200, 204]).await?;
        let cfg = json!({
            "kubernetes_host": kube.server,
            "kubernetes_ca_cert": kube.ca_pem,
            "token_reviewer_jwt": kube.reviewer_token().await?,
            "disable_local_ca_jwt": true,
        });
        c.json(&root(Method::POST, "/v1/auth/kubernetes/config", cfg), &[200, 204]).await?;
        for i in 0..n {
            let role = json!({
                "bound_service_account_names": [format!("sa-{i}")],
                "bound_service_account_namespaces": [NAMESPACE],
                "audience": AUDIENCE,
                "token_policies": ["bench"],
                "token_ttl": "24h",
            });
            c.json(&root(Method::POST, &format!("/v1/auth/kubernetes/role/id-{i}"), role), &[200, 204]).await?;
        }
        Ok(())
    }
}

/// `POST /v1/auth/kubernetes/login` for bench identity `i` with a token from kube-apiserver.
pub fn kube_login_req(i: usize, jwt: &str) -> Req {
    Req::json(Method::POST, "/v1/auth/kubernetes/login", &json!({"role": format!("id-{i}"), "jwt": jwt}))
}

/// `POST /v1/auth/jwt/login` for bench identity `i`.
pub fn login_req(i: usize, jwt: &str) -> Req {
    Req::json(Method::POST, "/v1/auth/jwt/login", &json!({"role": format!("id-{i}"), "jwt": jwt}))
}

/// `GET /v1/secret/data/{SECRET}` with a policy token.
pub fn read_req(token: &str) -> Req {
    Req::get(format!("/v1/secret/data/{SECRET}")).header("x-vault-token", token)
}

/// `POST /v1/secret/data/{name}` (a new version).
pub fn write_req(token: &str, name: &str, value: &str) -> Req {
    Req::json(Method::POST, format!("/v1/secret/data/{name}"), &json!({"data": {"value": value}}))
        .header("x-vault-token", token)
}
