//! HTTPS only: rustls (aws-lc-rs) in front of hyper, HTTP/1.1 and HTTP/2, bounded handshakes and
//! header reads (slow clients cannot hold connections open), graceful shutdown.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use wid_crypto::pki::LocalCa;

use crate::{ServeError, ServerConfig};

/// Time allowed for a TLS handshake and for reading a request's headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The names a server certificate from the local CA covers.
pub fn server_names(host: &str) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_string(), "vault.localhost".into(), "*.vault.localhost".into()];
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
            let (dns, ips) = server_names(&cfg.host);
            let (cert, key) = ca.issue_server_cert(&dns, &ips, 397).map_err(|e| ServeError::Crypto(e.to_string()))?;
            (cert.into_bytes(), zeroize::Zeroizing::new(key.as_bytes().to_vec()))
        }
        _ => return Err(ServeError::Config("--tls-cert and --tls-key must be given together".into())),
    };
    rustls_config(&chain, &key)
}

/// A rustls server configuration (HTTP/2 and HTTP/1.1) from a PEM certificate chain and key.
pub fn rustls_config(chain: &[u8], key: &[u8]) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<_, _>>()
        .map_err(|e| ServeError::Config(format!("TLS certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ServeError::Config("the TLS certificate file holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| ServeError::Config(format!("TLS key: {e}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Config(format!("TLS certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections until `shutdown` flips, then drains them for at most `grace`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(HANDSHAKE_TIMEOUT).max_buf_size(MAX_HEADER_BYTES);
    builder.http2().timer(TokioTimer::new()).max_header_list_size(MAX_HEADER_BYTES as u32);
    let builder = Arc::new(builder);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, _peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and similar: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, app, builder, watcher) = (acceptor.clone(), app.clone(), builder.clone(), graceful.watcher());
                tokio::spawn(async move {
                    let Ok(Ok(stream)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await else { return };
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    let _ = watcher.watch(conn.into_owned()).await;
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace period over; closing remaining connections"),
    }
}
