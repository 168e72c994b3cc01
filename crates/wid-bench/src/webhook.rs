//! The admission servers under test — `wid webhook` and, as its peer, azure-workload-identity's own —
//! over HTTPS, pinned to core 0, their ServiceAccount caches fed by the real kube-apiserver's watch,
//! serving certificates from the cluster's test CA.

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

/// The admission server under test.
#[derive(Clone, Copy)]
pub enum Flavor {
    /// `wid webhook`.
    Wid,
    /// azure-workload-identity's own webhook server and pod mutator, built from its Go module by
    /// tests/webhook-oracle (`webhook-oracle serve`).
    Upstream,
}

impl Webhook {
    /// Starts the webhook on core 0 with a serving certificate from the cluster's test CA, and waits
    /// until it mutates a pod (its cache has the ServiceAccount).
    pub async fn start(bin: &Path, flavor: Flavor, kube: &Kube, work: &Path, tenant: &str) -> anyhow::Result<Self> {
        let name = match flavor {
            Flavor::Wid => "wid webhook",
            Flavor::Upstream => "upstream webhook",
        };
        let certs = fresh_dir(work, &format!("{}-certs", name.replace(' ', "-")))?;
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
        let listen = format!("127.0.0.1:{port}");
        let log = work.join(format!("{}.log", name.replace(' ', "-")));
        let server = match flavor {
            Flavor::Wid => {
                let args: Vec<String> = [
                    "webhook",
                    "--listen",
                    &listen,
                    "--webhook-cert-dir",
                    &certs.display().to_string(),
                    "--kubeconfig",
                    &kube.kubeconfig.display().to_string(),
                    "--tenant-id",
                    tenant,
                    "--health-addr",
                    "0",
                    "--metrics-addr",
                    "0",
                    "--log-level",
                    "info",
                ]
                .map(String::from)
                .to_vec();
                Server::spawn("0", bin, &args, &[], &log)?
            }
            Flavor::Upstream => {
                let args: Vec<String> = ["serve", "--listen", &listen, "--cert-dir", &certs.display().to_string()]
                    .map(String::from)
                    .to_vec();
                let env =
                    [("KUBECONFIG", kube.kubeconfig.display().to_string()), ("AZURE_TENANT_ID", tenant.to_string())];
                Server::spawn("0", bin, &args, &env, &log)?
            }
        };
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
                bail!("{name} did not mutate a pod within 60 s (see {})", log.display());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
