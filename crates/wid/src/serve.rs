//! `wid serve`: flags, logging and the life of the control-plane process.
//!
//! Settings come from flags, then `WID_*` environment variables, then defaults. SIGTERM or SIGINT
//! stops accepting connections and lets in-flight requests finish.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use wid_core::duration;

/// Flags of `wid serve`.
#[derive(Debug, Args, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: crate::data::DatabaseArgs,
    /// Do not apply pending database schema migrations at start (run `wid migrate` first); refuse
    /// to start if some are pending
    #[arg(long)]
    pub no_migrate: bool,
    /// Address to listen on. Env: WID_LISTEN. Default: 127.0.0.1:8443
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Public host name: URLs are https://HOST:PORT, vaults https://NAME.vault.HOST:PORT. Env: WID_HOST. Default: localhost
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Serve this certificate chain (PEM) instead of one from the local CA
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Lifetime of managed-identity access tokens (e.g. 24h, 90m, 3600s). Default: 24h
    #[arg(long, value_name = "DURATION")]
    pub token_lifetime: Option<String>,
    /// Federated credentials allowed per identity; 0 for no limit. Default: 20 (as Entra)
    #[arg(long, value_name = "N")]
    pub max_federated_credentials: Option<usize>,
    /// Access tokens kept for warm exchanges (the same client presenting the same assertion for the
    /// same resource gets its token again while it keeps 90% of its lifetime); 0 turns it off. Default: 4096
    #[arg(long, value_name = "N")]
    pub token_cache_entries: Option<usize>,
    /// Extra CA bundle (PEM) trusted when fetching external issuers' OIDC documents. Env: WID_ISSUER_CA_FILE
    #[arg(long, value_name = "FILE")]
    pub issuer_ca_file: Option<PathBuf>,
    /// Do not write the CLI profile (WID_CONFIG or ~/.wid/profile.json)
    #[arg(long)]
    pub no_profile: bool,
    /// Replace the access-token signing key now; the old one stays published until its tokens expire
    #[arg(long)]
    pub rotate_signing_key: bool,
    /// Throttle each vault's data plane above this many requests per 10 s (429 + Retry-After, as Key
    /// Vault's 4000). Env: WID_VAULT_THROTTLE. Default: off
    #[arg(long, value_name = "N")]
    pub vault_throttle: Option<u32>,
    /// Also append the audit trail (one JSON object per access decision) to this file. Env: WID_AUDIT_LOG
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Replace the access-token signing key at start when it is older than this. Default: 90d
    #[arg(long, value_name = "DURATION")]
    pub signing_key_max_age: Option<String>,
    /// Also answer under Azure's host names: the sign-in host login.microsoftonline.com (Go, Java,
    /// Node and .NET MSAL ask it for instance discovery; AKS pods are given it as authority) and
    /// Key Vault's NAME.vault.azure.net (resource https://vault.azure.net). The local CA's
    /// certificate covers them; DNS must send them here, port 443. Clients must trust this server's
    /// CA for Microsoft names: see SECURITY.md
    #[arg(long)]
    pub azure_hostnames: bool,
}

/// Builds the server configuration from flags, environment and defaults.
pub fn config(args: &ServeArgs, env: &HashMap<String, String>) -> anyhow::Result<wid_server::ServerConfig> {
    let mut cfg = wid_server::ServerConfig::new(args.db.data_dir(env));
    cfg.database = args.db.database(env)?;
    cfg.master_key_file = args.db.master_key_file(env);
    cfg.migrate = !args.no_migrate;
    if let Some(listen) = args.listen.as_deref().or(env.get("WID_LISTEN").map(String::as_str)) {
        cfg.listen = listen
            .parse::<SocketAddr>()
            .with_context(|| format!("--listen '{listen}' is not ADDR:PORT (e.g. 127.0.0.1:8443 or [::1]:8443)"))?;
    }
    if let Some(host) = args.host.clone().or_else(|| env.get("WID_HOST").cloned()) {
        if host.is_empty() || host.contains(['/', ' ', '@', '?', '#']) {
            bail!("--host '{host}' is not a host name");
        }
        cfg.host = host;
    }
    cfg.tls_cert = args.tls_cert.clone();
    cfg.tls_key = args.tls_key.clone();
    if let Some(l) = &args.token_lifetime {
        let d = Duration::from_secs(duration::whole_seconds(l, "--token-lifetime", true).map_err(anyhow::Error::msg)?);
        if !(300..=7 * 86400).contains(&d.as_secs()) {
            bail!("--token-lifetime must be between 5m and 7d");
        }
        cfg.token_lifetime = d;
    }
    if let Some(n) = args.max_federated_credentials {
        cfg.max_credentials_per_identity = n;
    }
    if let Some(n) = args.token_cache_entries {
        cfg.token_cache_entries = n;
    }
    cfg.rotate_signing_key = args.rotate_signing_key;
    cfg.azure_hostnames = args.azure_hostnames;
    cfg.vault_throttle_per_10s = match args.vault_throttle {
        Some(n) => Some(n),
        None => env
            .get("WID_VAULT_THROTTLE")
            .map(|v| v.parse::<u32>().with_context(|| format!("WID_VAULT_THROTTLE '{v}' is not a number")))
            .transpose()?,
    }
    .filter(|n| *n > 0);
    if let Some(age) = &args.signing_key_max_age {
        cfg.signing_key_max_age = Duration::from_secs(
            duration::whole_seconds(age, "--signing-key-max-age", true).map_err(anyhow::Error::msg)?,
        );
    }
    cfg.issuer_ca_file = args.issuer_ca_file.clone().or_else(|| env.get("WID_ISSUER_CA_FILE").map(PathBuf::from));
    cfg.profile_path = match args.no_profile {
        true => None,
        false => Some(wid_core::profile::default_path(env)?),
    };
    Ok(cfg)
}

/// Initialises logging from `WID_LOG` (a filter such as `info` or `wid=debug`) and `WID_LOG_FORMAT`
/// (`text`, the default, or `json`), and the audit trail file if one is named: every event of the
/// `wid::audit` target as a JSON line, whatever the log filter says.
pub fn init_logging(env: &HashMap<String, String>, audit_log: Option<&std::path::Path>) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let filter = tracing_subscriber::EnvFilter::try_new(env.get("WID_LOG").map(String::as_str).unwrap_or("info"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let stderr = if env.get("WID_LOG_FORMAT").is_some_and(|f| f == "json") {
        stderr.json().flatten_event(true).with_filter(filter).boxed()
    } else {
        stderr.with_filter(filter).boxed()
    };
    let audit = match audit_log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("opening the audit log {}", path.display()))?;
            let targets =
                tracing_subscriber::filter::Targets::new().with_target(wid_core::audit::TARGET, tracing::Level::INFO);
            let layer = tracing_subscriber::fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_span_list(false)
                .with_writer(std::sync::Mutex::new(file))
                .with_filter(targets);
            Some(layer)
        }
        None => None,
    };
    // A second initialisation (tests running several servers in one process) keeps the first.
    let _ = tracing_subscriber::registry().with(stderr).with(audit).try_init();
    Ok(())
}

/// Runs the server until SIGTERM/SIGINT.
pub async fn run(args: ServeArgs, env: &HashMap<String, String>) -> anyhow::Result<()> {
    let audit_log = args.audit_log.clone().or_else(|| env.get("WID_AUDIT_LOG").map(PathBuf::from));
    init_logging(env, audit_log.as_deref())?;
    let cfg = config(&args, env)?;
    let data_dir = cfg.data_dir.clone();
    let tls_cert = cfg.tls_cert.clone();
    let server = wid_server::start(cfg)
        .await
        .with_context(|| format!("starting wid serve with data dir {}", data_dir.display()))?;
    eprintln!("wid serve: listening on {} (tenant {})", server.public_url, server.tenant_id);
    match &tls_cert {
        Some(cert) => {
            eprintln!("wid serve: serving the certificate {}; the CLI is ready (try: wid account show)", cert.display())
        }
        None => {
            eprintln!("wid serve: clients trust {}; the CLI is ready (try: wid account show)", server.ca_pem.display())
        }
    }
    let trigger = server.shutdown_trigger();
    tokio::spawn(async move {
        wid_http::shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = trigger.send(true);
    });
    server.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_env_beat_defaults() {
        let env: HashMap<String, String> = [
            ("HOME".to_string(), "/home/u".to_string()),
            ("WID_LISTEN".to_string(), "127.0.0.1:9000".to_string()),
            ("WID_HOST".to_string(), "wid.internal".to_string()),
        ]
        .into();
        let cfg = config(&ServeArgs::default(), &env).unwrap();
        assert_eq!(cfg.listen.port(), 9000);
        assert_eq!(cfg.host, "wid.internal");
        assert_eq!(cfg.data_dir, PathBuf::from("/home/u/.wid/data"));
        assert_eq!(cfg.profile_path, Some(PathBuf::from("/home/u/.wid/profile.json")));
        let args = ServeArgs { listen: Some("[::1]:8443".into()), ..Default::default() };
        assert_eq!(config(&args, &env).unwrap().listen.port(), 8443);
        let bad = ServeArgs { host: Some("a/b".into()), ..Default::default() };
        assert!(config(&bad, &env).is_err());
    }
}
