//! `wid webhook`: the mutating admission webhook process around this crate's decisions, a drop-in
//! for azure-workload-identity's `manager` (same flags and environment where upstream has them, same
//! endpoints and metric). Built with the `server` feature.
//!
//! - `POST /mutate-v1-pod` over TLS on `--listen` (default `:9443`); the certificate is `tls.crt` and
//!   `tls.key` in `--webhook-cert-dir`, re-read when they change (cert-manager, Secret updates);
//! - `/healthz` and `/readyz` on `--health-addr` (`:9440`); `/metrics` on `--metrics-addr` (`:8095`);
//! - the pod's ServiceAccount comes from a LIST+WATCH cache, then a live GET, retried briefly for a
//!   ServiceAccount created together with its pod; the decision itself is this crate's.
//!
//! Logs are JSON on stderr. SIGTERM or SIGINT stops accepting and lets requests in flight finish.

mod metrics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::{Config, Denial, Review};
use anyhow::{Context, bail};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Args;
use wid_http::ReloadingCert;
use wid_kube::{Client, KubeConfig, ServiceAccountCache};

pub use metrics::Metrics;

/// Flags of `wid webhook`. Upstream's flags keep their names and defaults.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// HTTPS address of the admission endpoint POST /mutate-v1-pod (Go-style ":9443" listens on all
    /// interfaces)
    #[arg(long, value_name = "ADDR:PORT", default_value = ":9443")]
    pub listen: String,
    /// Directory holding the webhook's TLS certificate (tls.crt) and key (tls.key); re-read when they change
    #[arg(long, value_name = "DIR", default_value = "/certs")]
    pub webhook_cert_dir: PathBuf,
    /// kubeconfig of the Kubernetes API (default: $KUBECONFIG, then the in-cluster ServiceAccount, then ~/.kube/config)
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use instead of its current-context
    #[arg(long, value_name = "NAME", requires = "kubeconfig")]
    pub context: Option<String>,
    /// Audience of the projected service-account token (default api://AzureADTokenExchange)
    #[arg(long, value_name = "AUD", default_value = "", hide_default_value = true)]
    pub audience: String,
    /// AZURE_AUTHORITY_HOST injected into pods: your wid server's URL (e.g. https://wid.example:8443).
    /// Default: the authority of AZURE_ENVIRONMENT. Env: WID_AUTHORITY_HOST
    #[arg(long, value_name = "URL")]
    pub authority_host: Option<String>,
    /// Tenant injected when a ServiceAccount has no tenant-id annotation. Env: AZURE_TENANT_ID (required)
    #[arg(long, value_name = "ID")]
    pub tenant_id: Option<String>,
    /// Mount this ConfigMap's CA bundle (key --ca-bundle-key) into pods and point SSL_CERT_FILE,
    /// REQUESTS_CA_BUNDLE and NODE_EXTRA_CA_CERTS at it (for a wid server with a private CA; the
    /// ConfigMap must exist in each pod's namespace and should hold the public roots too if the
    /// workload talks to other HTTPS servers). Env: WID_CA_BUNDLE_CONFIGMAP
    #[arg(long, value_name = "NAME")]
    pub ca_bundle_configmap: Option<String>,
    /// Key of the CA bundle in --ca-bundle-configmap
    #[arg(long, value_name = "KEY", default_value = "ca.crt")]
    pub ca_bundle_key: String,
    /// Token path layout: v1.6 (/var/run/secrets/azure/wi/token/azure-identity-token) or v1.5
    /// (/var/run/secrets/azure/tokens/azure-identity-token, as AKS and azure-workload-identity ≤ 1.5)
    #[arg(long, value_name = "v1.6|v1.5", default_value = "v1.6")]
    pub token_layout: String,
    /// Minimum TLS version: 1.2 or 1.3 (1.0 and 1.1 are accepted as 1.2, the lowest rustls speaks)
    #[arg(long, value_name = "VERSION", default_value = "1.3")]
    pub tls_min_version: String,
    /// Address of /healthz and /readyz (plain HTTP); 0 turns them off
    #[arg(long, value_name = "ADDR:PORT", default_value = ":9440")]
    pub health_addr: String,
    /// Address of the Prometheus /metrics endpoint (plain HTTP); 0 turns it off
    #[arg(long, value_name = "ADDR:PORT", default_value = ":8095")]
    pub metrics_addr: String,
    /// Metrics backend: prometheus (the only one, as upstream)
    #[arg(long, value_name = "NAME", default_value = "prometheus")]
    pub metrics_backend: String,
    /// Log level: "" (info), info, debug, trace or all. Logs are JSON on stderr
    #[arg(long, value_name = "LEVEL", default_value = "", hide_default_value = true)]
    pub log_level: String,
    /// Accepted for compatibility: wid never generates certificates, supply them (e.g. cert-manager)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_cert_rotation: Option<bool>,
    /// Suffix of the custom token endpoint opt-in annotation azure.workload.identity/use-<suffix>
    #[arg(long, value_name = "SUFFIX", default_value = "", hide_default_value = true)]
    pub custom_token_endpoint_annotation_suffix: String,
    /// Token audience for pods using the custom token endpoint
    #[arg(long, value_name = "AUD", default_value = "", hide_default_value = true)]
    pub custom_token_endpoint_audience: String,
    /// How often the certificate files are checked for changes
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub cert_reload_interval: String,
    /// Print version information (JSON) and exit
    #[arg(long)]
    pub version: bool,
}

/// Where the Kubernetes API configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KubeSource {
    Kubeconfig { path: PathBuf, context: Option<String> },
    InCluster,
}

/// The validated settings of one webhook process.
#[derive(Debug)]
pub struct Settings {
    /// What the decisions inject (native sidecars are decided later from the server version).
    pub decision: Config,
    pub listen: String,
    pub health_addr: Option<String>,
    pub metrics_addr: Option<String>,
    pub cert_dir: PathBuf,
    pub tls_versions: Vec<&'static rustls::SupportedProtocolVersion>,
    pub log_filter: String,
    pub kube: KubeSource,
    pub cert_reload_interval: Duration,
    /// Said once logging is up.
    pub warnings: Vec<String>,
}

/// Upstream reads its environment through envconfig with the prefix `config`: `CONFIG_<NAME>` wins
/// over `<NAME>`.
fn upstream_env<'a>(env: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    env.get(&format!("CONFIG_{name}")).or_else(|| env.get(name)).map(String::as_str)
}

fn addr_or_off(s: &str) -> Option<String> {
    match s.trim() {
        "0" | "" => None,
        a => Some(a.to_string()),
    }
}

/// TLS versions from `--tls-min-version` (upstream accepts 1.0–1.3).
pub fn tls_versions(
    v: &str,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    Ok(match v {
        "1.3" => vec![&rustls::version::TLS13],
        "1.2" => vec![&rustls::version::TLS13, &rustls::version::TLS12],
        "1.0" | "1.1" => {
            warnings.push(format!(
                "--tls-min-version {v}: TLS 1.0 and 1.1 are not offered (rustls speaks 1.2 and 1.3); using 1.2"
            ));
            vec![&rustls::version::TLS13, &rustls::version::TLS12]
        }
        _ => bail!("invalid TLS version. Must be one of: 1.0, 1.1, 1.2, 1.3 (--tls-min-version '{v}')"),
    })
}

/// (tracing filter, the level the proxy sidecar is told) from `--log-level`. `debug` and `trace` are
/// wid's own crates only; `all` includes the libraries (TLS, HTTP). The proxy is told the level as
/// given, unset included (`--log-level=`, which its logger reads as its default), as upstream does.
fn log_levels(level: &str) -> anyhow::Result<(&'static str, &'static str)> {
    Ok(match level {
        "" => ("info", ""),
        "info" => ("info", "info"),
        "debug" => ("info,wid=debug,wid_webhook=debug,wid_kube=debug,wid_http=debug", "debug"),
        "trace" => ("info,wid=trace,wid_webhook=trace,wid_kube=trace,wid_http=trace", "trace"),
        "all" => ("trace", "all"),
        other => bail!("invalid --log-level set: '{other}' is not one of \"\" (unset), info, debug, trace or all"),
    })
}

/// Builds and validates the settings from flags and environment (no IO besides reading the Azure
/// Stack environment file when `AZURE_ENVIRONMENT=AzureStackCloud`).
pub fn settings(args: &WebhookArgs, env: &HashMap<String, String>) -> anyhow::Result<Settings> {
    let mut warnings = Vec::new();
    let tenant_id = match args.tenant_id.as_deref().or_else(|| upstream_env(env, "AZURE_TENANT_ID")) {
        Some(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => bail!(
            "AZURE_TENANT_ID is required: set it (or --tenant-id) to the tenant pods should use when their \
             ServiceAccount has no azure.workload.identity/tenant-id annotation (for a wid server: wid account show \
             --query tenantId -o tsv)"
        ),
    };
    let authority_host = match args.authority_host.as_deref().or(env.get("WID_AUTHORITY_HOST").map(String::as_str)) {
        Some(url) => crate::validate_authority_host(url)?,
        None => {
            let name = upstream_env(env, "AZURE_ENVIRONMENT").unwrap_or("AzurePublicCloud");
            crate::authority_host_for_environment(name, || {
                let path = env.get("AZURE_ENVIRONMENT_FILEPATH").cloned().unwrap_or_default();
                std::fs::read(&path).map_err(|e| format!("reading AZURE_ENVIRONMENT_FILEPATH '{path}': {e}"))
            })
            .context("failed to get AAD endpoint")?
        }
    };
    let (log_filter, proxy_level) = log_levels(&args.log_level)?;
    if !args.metrics_backend.eq_ignore_ascii_case("prometheus") {
        bail!("unsupported metrics backend: {} (only prometheus is)", args.metrics_backend);
    }
    let custom = crate::CustomTokenEndpointSettings {
        annotation_suffix: args.custom_token_endpoint_annotation_suffix.clone(),
        audience: args.custom_token_endpoint_audience.clone(),
        token_proxy: upstream_env(env, "AZURE_KUBERNETES_TOKEN_PROXY").unwrap_or_default().into(),
        sni_name: upstream_env(env, "AZURE_KUBERNETES_SNI_NAME").unwrap_or_default().into(),
        ca_data: upstream_env(env, "AZURE_KUBERNETES_CA_DATA").unwrap_or_default().into(),
        ca_configmap_name: upstream_env(env, "AZURE_KUBERNETES_CA_CONFIGMAP_NAME").unwrap_or_default().into(),
        ctb_signer_name: upstream_env(env, "AZURE_KUBERNETES_CA_CTB_SIGNER_NAME").unwrap_or_default().into(),
        ctb_label_selector: upstream_env(env, "AZURE_KUBERNETES_CA_CTB_LABEL_SELECTOR").unwrap_or_default().into(),
    }
    .build()?;
    let ca_bundle = match args.ca_bundle_configmap.as_deref().or(env.get("WID_CA_BUNDLE_CONFIGMAP").map(String::as_str))
    {
        Some(name) if !name.is_empty() => Some(crate::CaBundle::new(name, &args.ca_bundle_key)?),
        _ => None,
    };
    let nonempty = |name: &str| upstream_env(env, name).filter(|v| !v.is_empty()).map(str::to_string);
    let decision = Config {
        tenant_id,
        authority_host,
        audience: match args.audience.as_str() {
            "" => crate::consts::DEFAULT_AUDIENCE.to_string(),
            a => a.to_string(),
        },
        layout: crate::TokenLayout::parse(&args.token_layout)?,
        ca_bundle,
        proxy: crate::ProxyConfig {
            image: nonempty("PROXY_IMAGE").unwrap_or_else(|| crate::consts::DEFAULT_PROXY_IMAGE.into()),
            init_image: nonempty("PROXY_INIT_IMAGE").unwrap_or_else(|| crate::consts::DEFAULT_PROXY_INIT_IMAGE.into()),
            native_sidecar: false,
            log_level: proxy_level.to_string(),
        },
        custom_endpoint: custom,
    };
    let kube = match (&args.kubeconfig, env.get("KUBECONFIG").filter(|k| !k.is_empty())) {
        (Some(p), _) => KubeSource::Kubeconfig { path: p.clone(), context: args.context.clone() },
        (None, Some(list)) => KubeSource::Kubeconfig {
            path: PathBuf::from(list.split(':').find(|p| !p.is_empty()).unwrap_or(list)),
            context: None,
        },
        (None, None) if env.contains_key("KUBERNETES_SERVICE_HOST") => KubeSource::InCluster,
        (None, None) => match env.get("HOME") {
            Some(home) => KubeSource::Kubeconfig { path: PathBuf::from(home).join(".kube/config"), context: None },
            None => bail!("no Kubernetes API configuration: pass --kubeconfig FILE or run in a pod"),
        },
    };
    if args.disable_cert_rotation != Some(true) {
        warnings.push(
            "wid webhook does not generate or rotate its certificate (--disable-cert-rotation is implied): it serves \
             tls.crt/tls.key from --webhook-cert-dir and reloads them when they change"
                .into(),
        );
    }
    let tls_versions = tls_versions(&args.tls_min_version, &mut warnings)?;
    let cert_reload_interval = reload_interval(&args.cert_reload_interval)?;
    let log_filter = env.get("WID_LOG").cloned().unwrap_or_else(|| log_filter.to_string());
    Ok(Settings {
        decision,
        listen: args.listen.clone(),
        health_addr: addr_or_off(&args.health_addr),
        metrics_addr: addr_or_off(&args.metrics_addr),
        cert_dir: args.webhook_cert_dir.clone(),
        tls_versions,
        log_filter,
        kube,
        cert_reload_interval,
        warnings,
    })
}

/// `--cert-reload-interval`: at least 100 ms.
fn reload_interval(s: &str) -> anyhow::Result<Duration> {
    let d = wid_core::duration::parse(s, "--cert-reload-interval", true).map_err(anyhow::Error::msg)?;
    Ok(d.max(Duration::from_millis(100)))
}

/// `--version`: upstream's JSON version object.
pub fn version_json() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    serde_json::json!({
        "buildVersion": env!("CARGO_PKG_VERSION"),
        "gitCommit": option_env!("WID_GIT_COMMIT").unwrap_or("unknown"),
        "buildDate": option_env!("WID_BUILD_DATE").unwrap_or("unknown"),
        "goVersion": "n/a (rust)",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    })
    .to_string()
}

fn user_agent() -> String {
    format!("wid-webhook/{} ({}/{})", env!("CARGO_PKG_VERSION"), std::env::consts::OS, std::env::consts::ARCH)
}

/// How a ServiceAccount missing from the cache is looked for: GETs, this far apart (the
/// ServiceAccount may be created in the same `kubectl apply` as its pod).
const SA_RETRIES: u32 = 3;
const SA_RETRY_DELAY: Duration = Duration::from_millis(100);
/// The apiserver waits 10 s by default; answer before that with a reason rather than time out.
const SA_LOOKUP_DEADLINE: Duration = Duration::from_secs(7);

/// The admission handler: ServiceAccount lookup around the pure decision, with metrics and logs.
pub struct Webhook {
    cfg: RwLock<Arc<Config>>,
    client: Client,
    cache: Arc<ServiceAccountCache>,
    pub metrics: Metrics,
    /// The API server answered recently (GET /version or a ServiceAccount GET).
    api_ok: AtomicBool,
}

impl Webhook {
    /// A handler for `cfg`, reading ServiceAccounts from `cache` and then `client`.
    pub fn new(cfg: Config, client: Client, cache: Arc<ServiceAccountCache>) -> Arc<Self> {
        Arc::new(Webhook {
            cfg: RwLock::new(Arc::new(cfg)),
            client,
            cache,
            metrics: Metrics::default(),
            api_ok: AtomicBool::new(false),
        })
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_native_sidecar(&self, native: bool) {
        let mut guard = self.cfg.write().unwrap_or_else(|p| p.into_inner());
        let mut cfg = (**guard).clone();
        cfg.proxy.native_sidecar = native;
        *guard = Arc::new(cfg);
    }

    /// Answers one AdmissionReview body.
    pub async fn handle(&self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        let started = Instant::now();
        let (response, namespace) = match Review::parse_http(content_type, body) {
            Err(resp) => {
                let reason = resp.denial().map(|d| d.message.as_str()).unwrap_or_default();
                tracing::warn!(uid = %resp.uid, reason, "malformed admission request denied");
                (resp, String::new())
            }
            Ok(review) => {
                let resp = self.decide(&review).await;
                let pod = review.pod_name();
                match resp.denial() {
                    None => tracing::info!(
                        uid = review.uid(),
                        namespace = review.namespace(),
                        pod,
                        service_account = review.service_account_name(),
                        patch_operations = resp.patch().len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "pod admitted"
                    ),
                    Some(d) => tracing::warn!(
                        uid = review.uid(), namespace = review.namespace(), pod, service_account = review.service_account_name(),
                        code = d.code, reason = %d.message, "pod denied"
                    ),
                }
                (resp, review.namespace().to_string())
            }
        };
        self.metrics.admission(&namespace, started.elapsed(), response.allowed());
        response.to_json()
    }

    async fn decide(&self, review: &Review) -> crate::Response {
        let (ns, name) = (review.namespace(), review.service_account_name());
        let sa = match tokio::time::timeout(SA_LOOKUP_DEADLINE, self.service_account(ns, name)).await {
            Ok(Ok(sa)) => sa,
            Ok(Err(denial)) => return review.deny(denial),
            Err(_) => {
                self.metrics.lookup("timeout");
                return review.deny(crate::service_account_unreadable(
                    ns,
                    name,
                    None,
                    &format!("timed out after {}s reading ServiceAccount {ns}/{name}", SA_LOOKUP_DEADLINE.as_secs()),
                ));
            }
        };
        review.admit(&sa, &self.config())
    }

    async fn service_account(&self, ns: &str, name: &str) -> Result<crate::ServiceAccount, Denial> {
        let convert = |sa: &wid_kube::ServiceAccount| crate::ServiceAccount {
            name: sa.name.clone(),
            annotations: sa.annotations.clone(),
        };
        if let Some(sa) = self.cache.get(ns, name) {
            self.metrics.lookup("cache");
            return Ok(convert(&sa));
        }
        let mut attempt = 0;
        loop {
            let err = match self.client.get_service_account(ns, name).await {
                Ok(sa) => {
                    self.api_ok.store(true, Ordering::Relaxed);
                    self.metrics.lookup(if attempt == 0 { "api" } else { "api_retry" });
                    return Ok(convert(&sa));
                }
                Err(e) => e,
            };
            let retryable = err.is_not_found() || matches!(err, wid_kube::KubeError::Transport(_));
            if !retryable || attempt >= SA_RETRIES {
                return Err(if err.is_not_found() {
                    self.metrics.lookup("not_found");
                    crate::service_account_not_found(ns, name)
                } else {
                    self.metrics.lookup("error");
                    tracing::warn!(namespace = ns, service_account = name, error = %err, "reading the ServiceAccount failed");
                    crate::service_account_unreadable(ns, name, err.status(), &err.to_string())
                });
            }
            attempt += 1;
            tokio::time::sleep(SA_RETRY_DELAY).await;
            if let Some(sa) = self.cache.get(ns, name) {
                self.metrics.lookup("cache");
                return Ok(convert(&sa));
            }
        }
    }
}

#[derive(Clone)]
struct AppState {
    webhook: Arc<Webhook>,
    certs: Arc<ReloadingCert>,
    cache: Arc<ServiceAccountCache>,
    serving: Arc<AtomicBool>,
}

impl AppState {
    /// Live: the certificate is loaded and the HTTPS listener is up (upstream's healthz).
    fn live(&self) -> Result<(), &'static str> {
        if !self.certs.is_loaded() {
            return Err("certs are not ready yet");
        }
        if !self.serving.load(Ordering::Relaxed) {
            return Err("the webhook server is not started yet");
        }
        Ok(())
    }

    /// Ready: live, and ServiceAccounts can be read (cache synced or the API answering).
    fn ready(&self) -> Result<(), &'static str> {
        self.live()?;
        if !self.cache.is_synced() && !self.webhook.api_ok.load(Ordering::Relaxed) {
            return Err("the ServiceAccount cache is not synced and the Kubernetes API is not answering");
        }
        Ok(())
    }
}

fn probe(result: Result<(), &'static str>) -> axum::response::Response {
    match result {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(reason) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{reason}\n")).into_response(),
    }
}

/// The HTTPS router: `POST /mutate-v1-pod`.
fn webhook_router(webhook: Arc<Webhook>) -> axum::Router {
    axum::Router::new()
        .route(
            "/mutate-v1-pod",
            post(|State(w): State<Arc<Webhook>>, headers: HeaderMap, body: axum::body::Bytes| async move {
                let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
                let out = w.handle(ct, &body).await;
                w.metrics.http_request(200);
                ([(header::CONTENT_TYPE, "application/json")], out)
            }),
        )
        .layer(DefaultBodyLimit::max(crate::MAX_REVIEW_BYTES))
        .with_state(webhook)
}

fn health_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|State(s): State<AppState>| async move { probe(s.live()) }))
        .route("/readyz", get(|State(s): State<AppState>| async move { probe(s.ready()) }))
        .with_state(state)
}

fn metrics_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(|State(s): State<AppState>| async move {
                let text = s.webhook.metrics.render(&s.cache, &s.certs);
                ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
            }),
        )
        .with_state(state)
}

/// Binds `addr`; Go's `:PORT` means every interface (IPv6 and IPv4 when possible).
async fn bind(addr: &str, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let result = match addr.strip_prefix(':') {
        Some(port) => {
            let port: u16 = port.parse().with_context(|| format!("{what} '{addr}' is not ADDR:PORT or :PORT"))?;
            match tokio::net::TcpListener::bind(SocketAddr::from(([0u16; 8], port))).await {
                Ok(l) => Ok(l),
                Err(_) => tokio::net::TcpListener::bind(SocketAddr::from(([0u8; 4], port))).await,
            }
        }
        None => tokio::net::TcpListener::bind(addr).await,
    };
    result.with_context(|| format!("{what}: cannot listen on {addr}"))
}

fn init_logging(filter: &str) {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).json().flatten_event(true);
    let _ = tracing_subscriber::registry().with(layer.with_filter(filter)).try_init();
}

/// Learns the API server's version (native sidecars from 1.32, as upstream), then keeps `api_ok`
/// current while the cache is not synced.
async fn watch_api(webhook: Arc<Webhook>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut known = false;
    loop {
        if !known || !webhook.cache.is_synced() {
            match webhook.client.server_version().await {
                Ok(v) => {
                    webhook.api_ok.store(true, Ordering::Relaxed);
                    if !known {
                        let native = v.at_least(1, 32).unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "unreadable server version; proxy sidecars stay regular containers");
                            false
                        });
                        webhook.set_native_sidecar(native);
                        tracing::info!(version = %v.git_version, native_sidecar = native, "Kubernetes API reached");
                        known = true;
                    }
                }
                Err(e) => {
                    webhook.api_ok.store(false, Ordering::Relaxed);
                    tracing::warn!(error = %e, server = webhook.client.server(), "the Kubernetes API is not answering");
                }
            }
        }
        let wait = if known { Duration::from_secs(15) } else { Duration::from_secs(3) };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Runs the webhook until SIGTERM/SIGINT.
pub async fn run(args: WebhookArgs, env: &HashMap<String, String>) -> anyhow::Result<()> {
    if args.version {
        println!("{}", version_json());
        return Ok(());
    }
    let settings = settings(&args, env)?;
    init_logging(&settings.log_filter);
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    let kube_cfg = match &settings.kube {
        KubeSource::Kubeconfig { path, context } => KubeConfig::from_kubeconfig(path, context.as_deref())
            .with_context(|| format!("loading the kubeconfig {}", path.display()))?,
        KubeSource::InCluster => KubeConfig::in_cluster(env, std::path::Path::new(wid_kube::IN_CLUSTER_DIR))
            .context("loading the in-cluster Kubernetes configuration")?,
    };
    let client = Client::new(&kube_cfg, &user_agent()).context("building the Kubernetes API client")?;
    let cache = ServiceAccountCache::new(Some("azure.workload.identity/"));
    let webhook = Webhook::new(settings.decision.clone(), client.clone(), cache.clone());
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);

    let certs = ReloadingCert::new(settings.cert_dir.join("tls.crt"), settings.cert_dir.join("tls.key"));
    match certs.reload() {
        Ok(_) => tracing::info!(dir = %settings.cert_dir.display(), "TLS certificate loaded"),
        Err(e) => tracing::warn!(error = %e, "certs are not ready yet; waiting for tls.crt and tls.key"),
    }
    let tls = wid_http::tls::rustls_config_with_resolver(certs.clone(), &settings.tls_versions)?;

    // Bind everything before reporting success, so a port clash is a start-up error.
    let listener = bind(&settings.listen, "--listen").await?;
    let webhook_addr = listener.local_addr()?;
    let health = match &settings.health_addr {
        Some(a) => Some(bind(a, "--health-addr").await?),
        None => None,
    };
    let metrics = match &settings.metrics_addr {
        Some(a) => Some(bind(a, "--metrics-addr").await?),
        None => None,
    };

    let serving = Arc::new(AtomicBool::new(false));
    let state =
        AppState { webhook: webhook.clone(), certs: certs.clone(), cache: cache.clone(), serving: serving.clone() };
    let mut tasks = vec![
        tokio::spawn(certs.clone().watch(settings.cert_reload_interval, shutdown_rx.clone())),
        tokio::spawn(cache.clone().run(client.clone(), wid_kube::ReflectorOptions::default(), shutdown_rx.clone())),
        tokio::spawn(watch_api(webhook.clone(), shutdown_rx.clone())),
        tokio::spawn(wid_http::serve(
            listener,
            tls,
            webhook_router(webhook.clone()),
            shutdown_rx.clone(),
            Duration::from_secs(10),
        )),
    ];
    serving.store(true, Ordering::Relaxed);
    let mut addrs = vec![format!("webhook https://{webhook_addr}/mutate-v1-pod")];
    for (listener, router, what) in
        [(health, health_router(state.clone()), "health"), (metrics, metrics_router(state.clone()), "metrics")]
    {
        let Some(listener) = listener else { continue };
        addrs.push(format!("{what} http://{}", listener.local_addr()?));
        let mut rx = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = rx.changed().await;
                })
                .await;
        }));
    }
    tracing::info!(
        listen = %webhook_addr, kubernetes = client.server(), authority_host = %settings.decision.authority_host,
        token_layout = ?settings.decision.layout, "wid webhook started"
    );
    eprintln!("wid webhook: {}", addrs.join(", "));

    wid_http::shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = shutdown_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(15), async {
        for t in tasks {
            let _ = t.await;
        }
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: WebhookArgs,
    }

    fn args(extra: &[&str]) -> WebhookArgs {
        let mut argv = vec!["webhook"];
        argv.extend_from_slice(extra);
        Cmd::try_parse_from(argv).unwrap().args
    }

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_are_upstreams() {
        let s = settings(&args(&["--kubeconfig", "/k"]), &env(&[("AZURE_TENANT_ID", "T")])).unwrap();
        assert_eq!(s.listen, ":9443");
        assert_eq!(s.health_addr.as_deref(), Some(":9440"));
        assert_eq!(s.metrics_addr.as_deref(), Some(":8095"));
        assert_eq!(s.cert_dir, PathBuf::from("/certs"));
        assert_eq!(s.tls_versions, vec![&rustls::version::TLS13]);
        assert_eq!(s.decision.tenant_id, "T");
        assert_eq!(s.decision.authority_host, "https://login.microsoftonline.com/");
        assert_eq!(s.decision.audience, "api://AzureADTokenExchange");
        assert_eq!(s.decision.layout, crate::TokenLayout::V1_6);
        assert_eq!(s.decision.proxy.image, "mcr.microsoft.com/oss/azure/workload-identity/proxy:v1.6.0");
        assert_eq!(s.decision.proxy.log_level, "");
        assert_eq!(s.kube, KubeSource::Kubeconfig { path: "/k".into(), context: None });
        assert!(s.warnings.iter().any(|w| w.contains("does not generate")));
    }

    #[test]
    fn the_documented_e2e_command_line_parses() {
        let a = args(&[
            "--kubeconfig",
            "K",
            "--webhook-cert-dir",
            "D",
            "--listen",
            "127.0.0.1:1",
            "--health-addr",
            "127.0.0.1:2",
            "--metrics-addr",
            "127.0.0.1:3",
            "--authority-host",
            "https://localhost:8443",
            "--disable-cert-rotation",
        ]);
        let s = settings(&a, &env(&[("AZURE_TENANT_ID", "T")])).unwrap();
        assert_eq!(s.decision.authority_host, "https://localhost:8443");
        assert_eq!(s.listen, "127.0.0.1:1");
        assert!(s.warnings.is_empty());
        // Upstream's Helm chart form.
        let a = args(&[
            "--log-level=info",
            "--metrics-addr=:8095",
            "--metrics-backend=prometheus",
            "--disable-cert-rotation=true",
        ]);
        assert!(settings(&a, &env(&[("AZURE_TENANT_ID", "T"), ("HOME", "/h")])).is_ok());
    }

    #[test]
    fn missing_tenant_is_a_clear_error_not_a_panic() {
        let err = settings(&args(&[]), &env(&[("HOME", "/h")])).unwrap_err().to_string();
        assert!(err.starts_with("AZURE_TENANT_ID is required"), "{err}");
        let err = settings(&args(&[]), &env(&[("HOME", "/h"), ("AZURE_TENANT_ID", " ")])).unwrap_err();
        assert!(err.to_string().starts_with("AZURE_TENANT_ID is required"));
        let s = settings(&args(&["--tenant-id", "F"]), &env(&[("HOME", "/h")])).unwrap();
        assert_eq!(s.decision.tenant_id, "F");
    }

    #[test]
    fn config_prefixed_environment_wins_as_envconfig() {
        let e = env(&[
            ("HOME", "/h"),
            ("AZURE_TENANT_ID", "plain"),
            ("CONFIG_AZURE_TENANT_ID", "prefixed"),
            ("AZURE_ENVIRONMENT", "AzureChinaCloud"),
            ("PROXY_IMAGE", "reg/proxy:1"),
        ]);
        let s = settings(&args(&[]), &e).unwrap();
        assert_eq!(s.decision.tenant_id, "prefixed");
        assert_eq!(s.decision.authority_host, "https://login.chinacloudapi.cn/");
        assert_eq!(s.decision.proxy.image, "reg/proxy:1");
    }

    #[test]
    fn unknown_environment_and_bad_authority_are_refused() {
        let e = env(&[("HOME", "/h"), ("AZURE_TENANT_ID", "T"), ("AZURE_ENVIRONMENT", "Mars")]);
        let err = format!("{:#}", settings(&args(&[]), &e).unwrap_err());
        assert!(err.contains("There is no cloud environment matching the name \"MARS\""), "{err}");
        // --authority-host makes AZURE_ENVIRONMENT irrelevant.
        assert!(settings(&args(&["--authority-host", "https://wid:8443"]), &e).is_ok());
        let e = env(&[("HOME", "/h"), ("AZURE_TENANT_ID", "T")]);
        assert!(settings(&args(&["--authority-host", "http://wid"]), &e).is_err());
    }

    #[test]
    fn tls_min_version_maps_to_rustls() {
        let mut w = vec![];
        assert_eq!(tls_versions("1.2", &mut w).unwrap().len(), 2);
        assert!(w.is_empty());
        assert_eq!(tls_versions("1.0", &mut w).unwrap().len(), 2);
        assert!(w[0].contains("using 1.2"));
        let err = tls_versions("1.4", &mut w).unwrap_err().to_string();
        assert!(err.starts_with("invalid TLS version. Must be one of: 1.0, 1.1, 1.2, 1.3"));
    }

    #[test]
    fn log_levels_and_metrics_backend() {
        let e = env(&[("HOME", "/h"), ("AZURE_TENANT_ID", "T")]);
        assert_eq!(settings(&args(&["--log-level", "all"]), &e).unwrap().decision.proxy.log_level, "all");
        assert!(settings(&args(&["--log-level", "debug"]), &e).unwrap().log_filter.contains("wid_kube=debug"));
        assert!(
            settings(&args(&["--log-level", "loud"]), &e).unwrap_err().to_string().starts_with("invalid --log-level")
        );
        assert!(settings(&args(&["--metrics-backend", "PROMETHEUS"]), &e).is_ok());
        assert!(settings(&args(&["--metrics-backend", "statsd"]), &e).is_err());
        let off = settings(&args(&["--metrics-addr", "0", "--health-addr", "0"]), &e).unwrap();
        assert_eq!((off.metrics_addr, off.health_addr), (None, None));
    }

    #[test]
    fn wid_extras_parse() {
        let e = env(&[("HOME", "/h"), ("AZURE_TENANT_ID", "T"), ("WID_CA_BUNDLE_CONFIGMAP", "wid-ca")]);
        let s = settings(&args(&["--token-layout", "v1.5", "--audience", "api://x"]), &e).unwrap();
        assert_eq!(s.decision.layout, crate::TokenLayout::V1_5);
        assert_eq!(s.decision.audience, "api://x");
        assert_eq!(s.decision.ca_bundle.unwrap().configmap, "wid-ca");
        assert!(settings(&args(&["--token-layout", "v9"]), &e).is_err());
        assert!(settings(&args(&["--ca-bundle-configmap", "Bad_Name"]), &e).is_err());
    }

    #[test]
    fn kube_config_source_order() {
        let e = env(&[("AZURE_TENANT_ID", "T"), ("KUBECONFIG", ":/a:/b"), ("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
        assert_eq!(settings(&args(&[]), &e).unwrap().kube, KubeSource::Kubeconfig { path: "/a".into(), context: None });
        let e = env(&[("AZURE_TENANT_ID", "T"), ("KUBERNETES_SERVICE_HOST", "10.0.0.1")]);
        assert_eq!(settings(&args(&[]), &e).unwrap().kube, KubeSource::InCluster);
        let e = env(&[("AZURE_TENANT_ID", "T"), ("HOME", "/h")]);
        assert_eq!(
            settings(&args(&[]), &e).unwrap().kube,
            KubeSource::Kubeconfig { path: "/h/.kube/config".into(), context: None }
        );
        assert!(settings(&args(&[]), &env(&[("AZURE_TENANT_ID", "T")])).is_err());
    }

    #[test]
    fn custom_endpoint_flags_and_environment() {
        let e = env(&[
            ("HOME", "/h"),
            ("AZURE_TENANT_ID", "T"),
            ("AZURE_KUBERNETES_TOKEN_PROXY", "https://kubernetes.default.svc"),
            ("AZURE_KUBERNETES_CA_CONFIGMAP_NAME", "kube-root-ca.crt"),
        ]);
        let a = args(&[
            "--custom-token-endpoint-annotation-suffix",
            "identity-binding",
            "--custom-token-endpoint-audience",
            "api://AKSIdentityBinding",
        ]);
        let c = settings(&a, &e).unwrap().decision.custom_endpoint.unwrap();
        assert_eq!(c.annotation, "azure.workload.identity/use-identity-binding");
        assert_eq!(c.ca, crate::CustomCa::ConfigMap("kube-root-ca.crt".into()));
        assert!(settings(&args(&["--custom-token-endpoint-audience", "x"]), &e).is_err());
    }

    #[test]
    fn reload_interval_accepts_milliseconds() {
        assert_eq!(reload_interval("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(reload_interval("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(reload_interval("1ms").unwrap(), Duration::from_millis(100));
        assert!(reload_interval("xms").is_err());
    }

    #[test]
    fn version_is_upstreams_json_shape() {
        let v: serde_json::Value = serde_json::from_str(&version_json()).unwrap();
        for k in ["buildVersion", "gitCommit", "buildDate", "goVersion", "platform"] {
            assert!(!v[k].as_str().unwrap().is_empty(), "{k}");
        }
    }
}
