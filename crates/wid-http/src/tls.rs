//! TLS server configurations (rustls on aws-lc-rs, HTTP/2 and HTTP/1.1 by ALPN) from PEM files,
//! and certificates re-read when their files change.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why a certificate or key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

/// A rustls server configuration (HTTP/2 and HTTP/1.1, TLS 1.3 and 1.2) from a PEM certificate
/// chain and key.
pub fn rustls_config(chain: &[u8], key: &[u8]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let resolver = rustls::sign::SingleCertAndKey::from(certified_key(chain, key)?);
    rustls_config_with_resolver(Arc::new(resolver), rustls::DEFAULT_VERSIONS)
}

/// A certificate and key read from two PEM files and re-read when they change (a Kubernetes Secret
/// volume, cert-manager), served to every handshake through [`rustls::server::ResolvesServerCert`].
/// Until a first good pair is loaded, handshakes are refused; a bad update keeps the last good pair.
pub struct ReloadingCert {
    cert_path: std::path::PathBuf,
    key_path: std::path::PathBuf,
    current: std::sync::RwLock<Option<Arc<rustls::sign::CertifiedKey>>>,
    /// SHA-256 of the last files read (certificate, then key), to skip unchanged files.
    last: std::sync::Mutex<Option<[u8; 32]>>,
    loads: std::sync::atomic::AtomicU64,
    errors: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert").field("cert_path", &self.cert_path).finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Watches `cert_path` and `key_path`; nothing is read until [`ReloadingCert::reload`].
    pub fn new(cert_path: impl Into<std::path::PathBuf>, key_path: impl Into<std::path::PathBuf>) -> Arc<Self> {
        Arc::new(ReloadingCert {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            current: std::sync::RwLock::new(None),
            last: std::sync::Mutex::new(None),
            loads: Default::default(),
            errors: Default::default(),
        })
    }

    /// Whether a certificate is being served.
    pub fn is_loaded(&self) -> bool {
        self.current.read().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// Successful loads and failed reads so far (for metrics).
    pub fn counters(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.loads.load(Relaxed), self.errors.load(Relaxed))
    }

    /// Reads both files; when they changed, checks that they parse and match and swaps them in.
    /// `Ok(true)`: a new pair is served; `Ok(false)`: unchanged.
    pub fn reload(&self) -> Result<bool, TlsError> {
        use std::sync::atomic::Ordering::Relaxed;
        let result = self.try_reload();
        if result.is_err() {
            self.errors.fetch_add(1, Relaxed);
        }
        result
    }

    fn try_reload(&self) -> Result<bool, TlsError> {
        let read = |p: &std::path::Path| std::fs::read(p).map_err(|source| TlsError::Io { path: p.into(), source });
        let chain = read(&self.cert_path)?;
        let key = zeroize::Zeroizing::new(read(&self.key_path)?);
        let mut both = zeroize::Zeroizing::new(chain.clone());
        both.extend_from_slice(&key);
        let digest = wid_crypto::secret::sha256(&both);
        if *self.last.lock().unwrap_or_else(|p| p.into_inner()) == Some(digest) {
            return Ok(false);
        }
        let certified = certified_key(&chain, &key)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(certified));
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some(digest);
        self.loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    /// Re-reads the files every `interval` until `shutdown` flips; failures are logged and the last
    /// good pair stays in use.
    pub async fn watch(self: Arc<Self>, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
            match self.reload() {
                Ok(true) => tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "TLS certificate not reloaded; the previous one stays in use"),
            }
        }
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The one reader of a PEM certificate chain and private key.
fn read_pem_pair(chain: &[u8], key: &[u8]) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Config(format!("TLS certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::Config("the TLS certificate file holds no certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| TlsError::Config(format!("TLS key: {e}")))?;
    Ok((certs, key))
}

/// A certificate chain and its private key (PEM), checked to belong together.
pub fn certified_key(chain: &[u8], key: &[u8]) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let (certs, key) = read_pem_pair(chain, key)?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    rustls::sign::CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| TlsError::Config(format!("TLS certificate and key: {e}")))
}

/// A rustls server configuration (HTTP/2 and HTTP/1.1) whose certificate comes from `resolver`,
/// limited to `versions` (e.g. only TLS 1.3).
pub fn rustls_config_with_resolver(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wid_crypto::pki::LocalCa;

    fn pair(ca: &LocalCa) -> (String, String) {
        let (cert, key) = ca.issue_server_cert(&["localhost".into()], &[], 1).unwrap();
        (cert, key.to_string())
    }

    #[test]
    fn reloading_cert_swaps_on_change_and_keeps_the_last_good_pair() {
        let ca = LocalCa::generate("test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let r = ReloadingCert::new(&crt, &key);
        assert!(!r.is_loaded());
        assert!(r.reload().is_err(), "no files yet");

        let (c1, k1) = pair(&ca);
        std::fs::write(&crt, &c1).unwrap();
        std::fs::write(&key, &k1).unwrap();
        assert!(r.reload().unwrap());
        assert!(!r.reload().unwrap(), "unchanged files are not re-parsed");
        let first = r.current.read().unwrap().clone().unwrap();

        // A key that does not match the certificate is refused; the first pair stays.
        let (_, k2) = pair(&ca);
        std::fs::write(&key, &k2).unwrap();
        assert!(r.reload().is_err());
        assert!(Arc::ptr_eq(&first, &r.current.read().unwrap().clone().unwrap()));

        let (c2, _) = pair(&ca);
        let (c3, k3) = pair(&ca);
        assert_ne!(c2, c3);
        std::fs::write(&crt, &c3).unwrap();
        std::fs::write(&key, &k3).unwrap();
        assert!(r.reload().unwrap());
        assert!(!Arc::ptr_eq(&first, &r.current.read().unwrap().clone().unwrap()));
        assert_eq!(r.counters(), (2, 2));
    }

    #[test]
    fn resolver_config_limits_protocol_versions() {
        let r = ReloadingCert::new("a", "b");
        let cfg = rustls_config_with_resolver(r, &[&rustls::version::TLS13]).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    }
}
