//! The real kube-apiserver of `scripts/kube.sh up` (its `env` file names the server, CA and admin
//! token): namespaces and ServiceAccounts for the runs, and service-account tokens from its
//! TokenRequest API — real tokens, signed by kube-apiserver, for OpenBao's Kubernetes auth.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use http::Method;
use serde_json::{Value, json};

use crate::client::{Conn, Proto, Req, Target};
use crate::cluster::{AUDIENCE, NAMESPACE};
use crate::workloads::{POD_NAMESPACE, POD_SERVICE_ACCOUNT};

/// The ServiceAccount whose token OpenBao uses to call TokenReview.
pub const REVIEWER: &str = "openbao-reviewer";

#[derive(Clone)]
pub struct Kube {
    pub target: Target,
    pub server: String,
    pub ca_pem: String,
    /// The admin kubeconfig (for `wid webhook`).
    pub kubeconfig: PathBuf,
    /// `scripts/kube.sh`'s certificate tool and the test CA (for the webhook's serving certificate).
    pub certgen: PathBuf,
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    token: String,
}

/// Reads the `KEY=VALUE` lines `scripts/kube.sh up` writes (values quoted by `printf %q`; the ones
/// used here are plain paths, URLs and hex).
fn read_env(path: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect())
}

impl Kube {
    pub fn from_env_file(path: &Path) -> anyhow::Result<Self> {
        let env = read_env(path)?;
        let get = |k: &str| {
            env.get(k).filter(|v| !v.is_empty()).cloned().with_context(|| format!("{} names no {k}", path.display()))
        };
        let server = get("KUBE_SERVER")?;
        let port: u16 = get("KUBE_PORT")?.parse().context("KUBE_PORT")?;
        let ca_cert = PathBuf::from(get("KUBE_CA")?);
        let ca_pem = std::fs::read_to_string(&ca_cert).with_context(|| format!("reading {}", ca_cert.display()))?;
        let target = Target::new(SocketAddr::from(([127, 0, 0, 1], port)), "127.0.0.1", ca_pem.as_bytes())?;
        Ok(Self {
            target,
            server,
            ca_pem,
            kubeconfig: PathBuf::from(get("KUBECONFIG")?),
            certgen: PathBuf::from(get("CERTGEN")?),
            ca_cert,
            ca_key: PathBuf::from(get("KUBE_CA_KEY")?),
            token: get("KUBE_TOKEN")?,
        })
    }

    fn req(&self, method: Method, path: &str, body: &Value) -> Req {
        Req::json(method, path, body).bearer(&self.token)
    }

    /// Creates `path`'s object; one that exists already is fine (a re-run on the same cluster).
    async fn create(&self, c: &mut Conn, path: &str, body: Value) -> anyhow::Result<()> {
        c.json(&self.req(Method::POST, path, &body), &[200, 201, 409]).await.with_context(|| format!("POST {path}"))?;
        Ok(())
    }

    /// The bench namespace with ServiceAccounts `sa-0…` (one per bench identity), OpenBao's token
    /// reviewer bound to `system:auth-delegator`, and the admission reviews' ServiceAccount annotated
    /// with `client_id` for the webhook.
    pub async fn setup(&self, identities: usize, client_id: &str) -> anyhow::Result<()> {
        let mut c = self.target.connect(Proto::H1).await?;
        for ns in [NAMESPACE, POD_NAMESPACE] {
            self.create(&mut c, "/api/v1/namespaces", json!({"metadata": {"name": ns}})).await?;
        }
        let sa_path = |ns: &str| format!("/api/v1/namespaces/{ns}/serviceaccounts");
        for i in 0..identities {
            self.create(&mut c, &sa_path(NAMESPACE), json!({"metadata": {"name": format!("sa-{i}")}})).await?;
        }
        self.create(&mut c, &sa_path(NAMESPACE), json!({"metadata": {"name": REVIEWER}})).await?;
        let binding = json!({
            "metadata": {"name": "wid-bench-openbao-reviewer"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
            "subjects": [{"kind": "ServiceAccount", "name": REVIEWER, "namespace": NAMESPACE}],
        });
        self.create(&mut c, "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", binding).await?;
        let sa = json!({"metadata": {
            "name": POD_SERVICE_ACCOUNT,
            "annotations": {"azure.workload.identity/client-id": client_id},
        }});
        self.create(&mut c, &sa_path(POD_NAMESPACE), sa).await?;
        Ok(())
    }

    /// A TokenRequest for `namespace/service_account` with `audiences`, valid `seconds`.
    async fn token_request(
        &self,
        c: &mut Conn,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
        seconds: u64,
    ) -> anyhow::Result<String> {
        let path = format!("/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token");
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                          "spec": {"audiences": audiences, "expirationSeconds": seconds}});
        let v = c.json(&self.req(Method::POST, &path, &body), &[200, 201]).await.context("TokenRequest")?;
        match v.pointer("/status/token").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Ok(t.to_string()),
            _ => bail!("TokenRequest for {namespace}/{service_account} returned no token"),
        }
    }

    /// The token OpenBao's Kubernetes auth reviews tokens with (24 h, the API server's audience).
    pub async fn reviewer_token(&self) -> anyhow::Result<String> {
        let mut c = self.target.connect(Proto::H1).await?;
        self.token_request(&mut c, NAMESPACE, REVIEWER, &["https://kubernetes.default.svc"], 86_400).await
    }

    /// `count` fresh service-account tokens (audience `api://AzureADTokenExchange`, 1 h) for the
    /// bench identities' ServiceAccounts round robin, from `workers` concurrent HTTP/2 streams.
    pub async fn token_pool(&self, identities: usize, count: usize) -> anyhow::Result<Vec<(usize, String)>> {
        let workers = 16;
        let first = self.target.connect(Proto::H2).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..workers {
            let mut c = first.share().context("an HTTP/2 connection")?;
            let me = self.clone();
            tasks.spawn(async move {
                let mut out = Vec::new();
                for n in (w..count).step_by(workers) {
                    let i = n % identities.max(1);
                    let t = me.token_request(&mut c, NAMESPACE, &format!("sa-{i}"), &[AUDIENCE], 3600).await?;
                    out.push((n, i, t));
                }
                anyhow::Ok(out)
            });
        }
        let mut all = Vec::with_capacity(count);
        while let Some(part) = tasks.join_next().await {
            all.extend(part.context("a TokenRequest worker")??);
        }
        all.sort_by_key(|(n, _, _)| *n);
        Ok(all.into_iter().map(|(_, i, t)| (i, t)).collect())
    }
}
