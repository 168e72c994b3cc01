//! wid HTTP server: data-dir bootstrap, the router (token service, management API, Key Vault data
//! plane, hosted cluster issuers, health and metrics), protocol error mapping, TLS and graceful
//! shutdown.
//!
//! `start(config)` binds, initialises or opens the data dir, writes the CLI profile and serves HTTPS
//! until the returned handle is shut down; the daemon and the tests use the same path. `assemble`
//! does all of it but the socket, for router tests that need none.

pub mod bootstrap;
pub mod config;
pub mod http;
pub mod metrics;
pub mod replica;
pub mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, RwLock};

use wid_arm::{ArmConfig, Management};
use wid_core::directory::Directory;
use wid_core::{Clock, SystemClock};
use wid_sts::issuer::FetchConfig;
use wid_sts::{StsConfig, TokenService};
use wid_vault::{VaultConfig, VaultService};

pub use config::ServerConfig;
pub use http::{AppState, router};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Store(#[from] wid_store::StoreError),
    #[error("keys: {0}")]
    Crypto(String),
    #[error("configuration: {0}")]
    Config(String),
}

/// How often soft-deleted secrets and vaults past their retention are purged.
const PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// A running server.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// `https://HOST[:PORT]`.
    pub public_url: String,
    pub tenant_id: uuid::Uuid,
    pub subscription_id: uuid::Uuid,
    /// The CA certificate clients should trust.
    pub ca_pem: PathBuf,
    /// The admin profile the server wrote (or would write).
    pub profile: wid_core::profile::Profile,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stops accepting, lets in-flight requests finish (bounded by the grace period) and waits.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }

    /// Waits until the server stops by itself (it does not, unless its listener fails).
    pub async fn wait(self) {
        let _ = self.task.await;
    }

    /// A sender that triggers shutdown (e.g. from a signal handler).
    pub fn shutdown_trigger(&self) -> tokio::sync::watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Binds, opens the data dir and starts serving.
pub async fn start(cfg: ServerConfig) -> Result<RunningServer, ServeError> {
    start_with_clock(cfg, Arc::new(SystemClock)).await
}

/// As [`start`], with a chosen clock (tests).
pub async fn start_with_clock(cfg: ServerConfig, clock: Arc<dyn Clock>) -> Result<RunningServer, ServeError> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ServeError::Io { path: PathBuf::from(cfg.listen.to_string()), source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ServeError::Io { path: PathBuf::from(cfg.listen.to_string()), source })?;
    assemble(cfg, clock, addr.port()).await?.serve(listener, addr)
}

/// A server assembled but not yet serving: the data dir is open, the services are built and the
/// profile is written. [`Assembled::router`] answers requests without a socket (tests call it with
/// `tower::ServiceExt::oneshot`); [`Assembled::serve`] starts HTTPS and the background tasks.
pub struct Assembled {
    /// `https://HOST[:PORT]`.
    pub public_url: String,
    pub tenant_id: uuid::Uuid,
    pub subscription_id: uuid::Uuid,
    /// The CA certificate clients should trust.
    pub ca_pem: PathBuf,
    /// The admin profile the server wrote (or would write).
    pub profile: wid_core::profile::Profile,
    router: axum::Router,
    tls: Arc<rustls::ServerConfig>,
    ready: Arc<AtomicBool>,
    vault: Arc<VaultService>,
    /// Set when replicas share the store: what follows the others' writes.
    follower: Option<(replica::Follower, i64)>,
    shutdown_grace: std::time::Duration,
}

/// The resources answered for under Azure's names (`--azure-hostnames`): Key Vault, Resource
/// Manager and Microsoft Graph.
fn azure_resources() -> impl Iterator<Item = String> {
    [wid_vault::AZURE_RESOURCE, http::AZURE_GRAPH_RESOURCE]
        .into_iter()
        .chain(http::AZURE_MANAGEMENT_AUDIENCES)
        .map(String::from)
}

/// Opens the data dir and builds the services for a server that will listen on `port` (its public
/// URL and vault host names carry the port).
pub async fn assemble(cfg: ServerConfig, clock: Arc<dyn Clock>, port: u16) -> Result<Assembled, ServeError> {
    let authority = config::authority(&cfg.host, port);
    let public_url = format!("https://{authority}");
    let vault_suffix = format!("vault.{authority}");

    let boot_cfg = cfg.clone();
    let boot_clock = clock.clone();
    // The directory is built on the thread that read the snapshot: the allocator then reuses the
    // memory of the snapshot parts freed along the way (at 100k identities, tens of MB) instead of
    // keeping it in another thread's arena.
    let (data, directory, change_head) = tokio::task::spawn_blocking(move || {
        let mut data = bootstrap::open(&boot_cfg, boot_clock.as_ref())?;
        let snapshot = std::mem::take(&mut data.snapshot);
        let change_head = snapshot.change_head;
        let directory = Directory::build(
            snapshot.identities,
            snapshot.credentials,
            snapshot.clusters,
            snapshot.apps,
            snapshot.role_assignments,
        );
        Ok::<_, ServeError>((data, directory, change_head))
    })
    .await
    .map_err(|e| ServeError::Config(e.to_string()))??;
    let directory = Arc::new(RwLock::new(directory));
    let keys = data.keys.clone();
    let extra_ca_pem = match &cfg.issuer_ca_file {
        Some(p) => Some(std::fs::read(p).map_err(|source| ServeError::Io { path: p.clone(), source })?),
        None => None,
    };
    let sts_cfg = StsConfig {
        tenant_id: data.tenant_id,
        public_url: public_url.clone(),
        // The AKS server app too: the kubeconfigs of listClusterUserCredential ask tokens for it.
        resources: [public_url.clone(), format!("https://{vault_suffix}"), wid_arm::clusters::AKS_SERVER_APP_ID.into()]
            .into_iter()
            .chain(cfg.azure_hostnames.then(azure_resources).into_iter().flatten())
            .collect(),
        token_lifetime_secs: i64::try_from(cfg.token_lifetime.as_secs()).unwrap_or(86400),
        app_token_lifetime_secs: 3600,
        clock_skew_secs: 300,
        max_assertion_bytes: 32 * 1024,
        token_cache_entries: cfg.token_cache_entries,
        fetch: FetchConfig { extra_ca_pem, ..FetchConfig::default() },
    };
    let sts = Arc::new(
        TokenService::new(sts_cfg, directory.clone(), keys.clone(), clock.clone()).map_err(ServeError::Config)?,
    );
    let arm_cfg = ArmConfig {
        tenant_id: data.tenant_id,
        subscription_id: data.subscription_id,
        subscription_name: "wid".into(),
        public_url: public_url.clone(),
        vault_dns_suffix: vault_suffix.clone(),
        max_credentials_per_identity: cfg.max_credentials_per_identity,
    };
    let arm = Arc::new(Management::new(
        arm_cfg,
        data.store.clone(),
        directory.clone(),
        sts.clone(),
        clock.clone(),
        data.master.clone(),
    ));
    let vault_cfg = VaultConfig {
        tenant_id: data.tenant_id,
        dns_suffix: vault_suffix.clone(),
        resource: format!("https://{vault_suffix}"),
        throttle_per_10s: cfg.vault_throttle_per_10s,
        azure_hostnames: cfg.azure_hostnames,
    };
    let vault = Arc::new(VaultService::new(
        vault_cfg,
        data.store.clone(),
        data.master.clone(),
        directory.clone(),
        clock.clone(),
    ));

    let profile = wid_core::profile::Profile {
        server: public_url.clone(),
        tenant_id: data.tenant_id.to_string(),
        subscription_id: data.subscription_id.to_string(),
        subscription_name: "wid".into(),
        client_id: data.admin.client_id.to_string(),
        client_secret: Some(data.admin.secret.to_string()),
        client_assertion: None,
        principal_id: Some(data.admin.principal_id.to_string()),
        ca_cert_file: Some(data.ca_pem_path()),
        management_resource: Some(public_url.clone()),
        key_vault_resource: Some(format!("https://{vault_suffix}")),
        key_vault_dns_suffix: Some(vault_suffix.clone()),
        display_name: Some("wid-admin".into()),
    };
    if let Some(path) = &cfg.profile_path {
        write_profile(path, &profile);
    }

    let tls = tls::server_config(&cfg, &data.ca)?;
    let ready = Arc::new(AtomicBool::new(false));
    let state = AppState {
        sts,
        arm,
        vault: vault.clone(),
        directory: directory.clone(),
        clock: clock.clone(),
        metrics: Arc::default(),
        ready: ready.clone(),
        public_url: public_url.clone(),
        tenant_id: data.tenant_id,
        inline_secret_reads: !data.shared,
        azure_hostnames: cfg.azure_hostnames,
    };
    let follower = data
        .shared
        .then(|| (replica::Follower { store: data.store.clone(), directory, keys, clock: clock.clone() }, change_head));
    Ok(Assembled {
        public_url,
        tenant_id: data.tenant_id,
        subscription_id: data.subscription_id,
        ca_pem: data.ca_pem_path(),
        profile,
        router: router(state),
        tls,
        ready,
        vault,
        follower,
        shutdown_grace: cfg.shutdown_grace,
    })
}

impl Assembled {
    /// The router (`/readyz` answers 503 until [`Assembled::serve`]).
    pub fn router(&self) -> axum::Router {
        self.router.clone()
    }

    /// Serves HTTPS on `listener` (bound to `addr`) and starts the replica follower and the purge task.
    pub fn serve(self, listener: tokio::net::TcpListener, addr: SocketAddr) -> Result<RunningServer, ServeError> {
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        if let Some((follower, change_head)) = self.follower {
            let stop = Arc::new(AtomicBool::new(false));
            follower
                .spawn(change_head, stop.clone())
                .map_err(|source| ServeError::Io { path: PathBuf::from("wid-replica thread"), source })?;
            let mut rx = rx.clone();
            tokio::spawn(async move {
                let _ = rx.changed().await;
                stop.store(true, std::sync::atomic::Ordering::Release);
            });
        }
        tokio::spawn(http::vault::purge_expired_periodically(self.vault, PURGE_INTERVAL, rx.clone()));
        let task = tokio::spawn(wid_http::serve(listener, self.tls, self.router, rx, self.shutdown_grace));
        self.ready.store(true, std::sync::atomic::Ordering::Release);
        tracing::info!(%addr, url = %self.public_url, tenant = %self.tenant_id, "wid serve is ready");
        Ok(RunningServer {
            addr,
            public_url: self.public_url,
            tenant_id: self.tenant_id,
            subscription_id: self.subscription_id,
            ca_pem: self.ca_pem,
            profile: self.profile,
            shutdown,
            task,
        })
    }
}

/// Writes the profile unless it belongs to another server (a different tenant or client).
fn write_profile(path: &std::path::Path, profile: &wid_core::profile::Profile) {
    if let Ok(existing) = wid_core::profile::Profile::load(path)
        && (existing.tenant_id != profile.tenant_id || existing.client_id != profile.client_id)
    {
        tracing::info!(path = %path.display(), "the CLI profile belongs to another server; leaving it alone");
        return;
    }
    match profile.save(path) {
        Ok(()) => tracing::info!(path = %path.display(), "wrote the CLI profile"),
        Err(e) => tracing::warn!(path = %path.display(), error = %e, "could not write the CLI profile"),
    }
}
