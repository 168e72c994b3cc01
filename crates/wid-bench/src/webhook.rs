//! `wid webhook` under test: the admission endpoint over HTTPS, pinned to core 0, its ServiceAccount
//! cache fed by the real kube-apiserver's watch, a serving certificate from the cluster's test CA.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http::Method;

use crate::client::{Proto, Req, Target};
use crate::kube::Kube;
use crate::procs::{Server, free_port, fresh_dir};
use crate::workloads::admission_review;

pub const PATH: &str = "/mutate-v1-pod";

pub struct Webhook {
    pub server: Server,
    pub target: Target,
}

/// `POST /mutate-v1-pod` with review `n` (a labelled pod of the annotated ServiceAccount).
pub fn review_req(n: u64) -> Req {
    Req::with_body(Method::POST, PATH, "application/json", admission_review(n))
}

impl Webhook {
    /// Starts `wid webhook` and waits until it mutates a pod (its cache has the ServiceAccount).
    pub async fn start(bin: &Path, kube: &Kube, work: &Path, tenant: &str) -> anyhow::Result<Self> {
        let certs = fresh_dir(work, "webhook-certs")?;
        let status = std::process::Command::new(&kube.certgen)
            .arg("server")
            .arg("-ca-cert")
            .arg(&kube.ca_cert)
            .arg("-ca-key")
            .arg(&kube.ca_key)
            .arg("-out")
            .arg(&certs)
            .args(["-ip", "127.0.0.1", "-dns", "localhost"])
            .status()
            .context("certgen")?;
        if !status.success() {
            bail!("certgen could not issue the webhook's certificate");
        }
        let port = free_port()?;
        let args: Vec<String> = vec![
            "webhook".into(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--webhook-cert-dir".into(),
            certs.display().to_string(),
            "--kubeconfig".into(),
            kube.kubeconfig.display().to_string(),
            "--tenant-id".into(),
            tenant.into(),
            "--health-addr".into(),
            "0".into(),
            "--metrics-addr".into(),
            "0".into(),
            "--log-level".into(),
            "info".into(),
        ];
        let server = Server::spawn("0", bin, &args, &[], &work.join("webhook.log"))?;
        let target = Target::new(SocketAddr::from(([127, 0, 0, 1], port)), "localhost", kube.ca_pem.as_bytes())?;
        let started = Instant::now();
        loop {
            if let Ok(mut c) = target.connect(Proto::H1).await
                && let Ok((200, body)) = c.send(&review_req(0)).await
                && body.windows(5).any(|w| w == b"patch")
            {
                return Ok(Self { server, target });
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("wid webhook did not mutate a pod within 60 s (see {}/webhook.log)", work.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
