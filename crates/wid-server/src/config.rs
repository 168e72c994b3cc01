//! Settings of `wid serve`, validated once at start.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Everything `wid serve` needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Holds the database, the master key, the CA and the admin profile copy.
    pub data_dir: PathBuf,
    /// Address to listen on (port 0 picks a free port; the public URL follows it).
    pub listen: SocketAddr,
    /// Public host name: URLs are `https://HOST[:PORT]`, vaults `https://{vault}.vault.HOST[:PORT]`.
    pub host: String,
    /// Serve this certificate chain and key instead of one from the local CA.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Lifetime of managed-identity access tokens.
    pub token_lifetime: Duration,
    /// Federated credentials per identity; 0: no limit.
    pub max_credentials_per_identity: usize,
    /// Access tokens kept for warm exchanges (same client, assertion and resource); 0: off.
    pub token_cache_entries: usize,
    /// Extra CA bundle (PEM) trusted when fetching external issuers' keys.
    pub issuer_ca_file: Option<PathBuf>,
    /// Where to write the CLI profile (`None`: do not write one).
    pub profile_path: Option<PathBuf>,
    /// How long to wait for in-flight requests at shutdown.
    pub shutdown_grace: Duration,
    /// The access-token signing key is replaced at start when it is older than this.
    pub signing_key_max_age: Duration,
    /// Replace the access-token signing key at this start, whatever its age.
    pub rotate_signing_key: bool,
    /// Key Vault requests per 10 s per vault before 429 `Throttled`; `None` (the default): no limit.
    pub vault_throttle_per_10s: Option<u32>,
    /// Where the state lives.
    pub database: Database,
    /// The master key (32 bytes) sealing keys and secrets; `None`: `DATA_DIR/master.key`, created on
    /// first start. Replicas sharing a database must share it.
    pub master_key_file: Option<PathBuf>,
    /// Apply pending schema migrations at start; `false` refuses a database that needs them.
    pub migrate: bool,
    /// Also answer under Azure's host names: the sign-in host (login.microsoftonline.com), for
    /// clients that ask it for instance discovery and pods with AKS's default
    /// `AZURE_AUTHORITY_HOST`, and Key Vault's `{vault}.vault.azure.net`. Off by default: it asks
    /// clients to trust this server's CA for Microsoft names (SECURITY.md).
    pub azure_hostnames: bool,
}

/// Where the state lives.
#[derive(Debug, Clone, Default)]
pub enum Database {
    /// SQLite in `DATA_DIR/wid.db`, for one process.
    #[default]
    Sqlite,
    /// PostgreSQL, shared by any number of replicas.
    Postgres(wid_store::PostgresConfig),
}

impl ServerConfig {
    /// Defaults for a data dir (listen on 127.0.0.1:8443, host `localhost`).
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            host: "localhost".into(),
            tls_cert: None,
            tls_key: None,
            token_lifetime: Duration::from_secs(24 * 3600),
            max_credentials_per_identity: wid_core::fic::DEFAULT_MAX_PER_IDENTITY,
            token_cache_entries: 4096,
            issuer_ca_file: None,
            profile_path: None,
            shutdown_grace: Duration::from_secs(10),
            signing_key_max_age: Duration::from_secs(90 * 86400),
            rotate_signing_key: false,
            vault_throttle_per_10s: None,
            database: Database::Sqlite,
            master_key_file: None,
            migrate: true,
            azure_hostnames: false,
        }
    }
}

/// `HOST` or `HOST:PORT` (the port is left out when it is 443), with IPv6 hosts bracketed.
pub fn authority(host: &str, port: u16) -> String {
    let host = if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() };
    if port == 443 { host } else { format!("{host}:{port}") }
}
