//! The server's certificate: the one given (`--tls-cert`, `--tls-key`) or one the local CA issues
//! for the host name, `localhost` and the vault host names. Serving it is [`wid_http`]'s.

use std::net::IpAddr;
use std::sync::Arc;

use wid_crypto::pki::LocalCa;

use crate::{ServeError, ServerConfig};

/// The names a server certificate from the local CA covers (with `azure_hostnames`, Azure's sign-in
/// and Key Vault host names too).
pub fn server_names(host: &str, azure_hostnames: bool) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_string(), "vault.localhost".into(), "*.vault.localhost".into()];
    if azure_hostnames {
        let vault = wid_vault::AZURE_DNS_SUFFIX;
        let (login, management) = (crate::http::AZURE_LOGIN_HOST, crate::http::AZURE_MANAGEMENT_HOST);
        let graph = crate::http::AZURE_GRAPH_RESOURCE.trim_start_matches("https://");
        dns.extend([login.into(), management.into(), graph.into(), vault.into(), format!("*.{vault}")]);
    }
    let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1]), IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1])];
    match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) if !ips.contains(&ip) => ips.push(ip),
        Ok(_) => {}
        Err(_) if host != "localhost" => {
            dns.extend([host.to_string(), format!("vault.{host}"), format!("*.vault.{host}")]);
        }
        Err(_) => {}
    }
    (dns, ips)
}

/// Builds the TLS configuration: the supplied certificate, or one issued by the local CA.
pub fn server_config(cfg: &ServerConfig, ca: &LocalCa) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let read = |p: &std::path::PathBuf| std::fs::read(p).map_err(|source| ServeError::Io { path: p.clone(), source });
    let (chain, key) = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(c), Some(k)) => (read(c)?, zeroize::Zeroizing::new(read(k)?)),
        (None, None) => {
            let (dns, ips) = server_names(&cfg.host, cfg.azure_hostnames);
            let (cert, key) = ca.issue_server_cert(&dns, &ips, 397).map_err(|e| ServeError::Crypto(e.to_string()))?;
            (cert.into_bytes(), zeroize::Zeroizing::new(key.as_bytes().to_vec()))
        }
        _ => return Err(ServeError::Config("--tls-cert and --tls-key must be given together".into())),
    };
    Ok(wid_http::tls::rustls_config(&chain, &key)?)
}

impl From<wid_http::TlsError> for ServeError {
    fn from(e: wid_http::TlsError) -> Self {
        match e {
            wid_http::TlsError::Io { path, source } => ServeError::Io { path, source },
            wid_http::TlsError::Config(m) => ServeError::Config(m),
        }
    }
}
