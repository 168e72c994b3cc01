//! Keys of external OIDC issuers: discovery (`{issuer}/.well-known/openid-configuration` → `jwks_uri`)
//! and the JWKS, fetched over HTTPS only, only for issuers that some federated credential names,
//! bounded in time and size, cached with a TTL and re-fetched on an unknown `kid` at a bounded rate.
//!
//! One fetch per issuer at a time (single flight); when a refresh fails, keys already fetched keep
//! working until `max_stale` has passed since the last successful fetch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wid_crypto::jose::VerifyingKey;
use wid_crypto::jwk::JwkSet;

/// Limits of outbound issuer fetches.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// How long fetched keys are used before they are re-fetched.
    pub ttl_secs: i64,
    /// Least time between two fetches of one issuer (unknown `kid`s cannot force more).
    pub min_refetch_secs: i64,
    /// How long keys keep working after the last successful fetch when refreshes fail.
    pub max_stale_secs: i64,
    /// Total time for one document fetch (connect + TLS + body).
    pub timeout: Duration,
    /// Largest discovery document or JWKS accepted.
    pub max_bytes: usize,
    /// Extra CA certificates (PEM) trusted for issuer fetches, besides the system roots.
    pub extra_ca_pem: Option<Vec<u8>>,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 3600,
            min_refetch_secs: 30,
            max_stale_secs: 24 * 3600,
            timeout: Duration::from_secs(10),
            max_bytes: 256 * 1024,
            extra_ca_pem: None,
        }
    }
}

/// A key with the ids it can be found by.
#[derive(Clone)]
pub struct IssuerKey {
    pub kid: Option<String>,
    pub x5t: Option<String>,
    pub key: Arc<VerifyingKey>,
}

/// Turns a JWKS into verifying keys, skipping keys wid cannot use (e.g. encryption keys).
pub fn keys_from_jwks(set: &JwkSet) -> Vec<IssuerKey> {
    set.signing_keys().map(|(k, v)| IssuerKey { kid: k.kid.clone(), x5t: k.x5t.clone(), key: Arc::new(v) }).collect()
}

#[derive(Default)]
struct Entry {
    keys: Vec<IssuerKey>,
    fetched: Option<i64>,
    last_attempt: Option<i64>,
    last_error: Option<String>,
}

/// Cache of external issuers' keys.
pub struct IssuerCache {
    http: reqwest::Client,
    cfg: FetchConfig,
    entries: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Entry>>>>,
}

/// Why keys could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The issuer could not be fetched and no usable cached keys exist.
    Unavailable(String),
    /// Keys were fetched, but none has this kid.
    UnknownKey,
}

impl IssuerCache {
    /// Builds the HTTPS client (no redirects, TLS via rustls, optional extra CA).
    pub fn new(cfg: FetchConfig) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .https_only(true)
            .user_agent(concat!("wid/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &cfg.extra_ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| format!("extra CA bundle: {e}"))?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self { http, cfg, entries: Mutex::new(HashMap::new()) })
    }

    /// Keys of `issuer` that match `kid` (or all keys when the token has no kid). Callers must have
    /// checked that a credential names the issuer.
    pub async fn keys(&self, issuer: &str, kid: Option<&str>, now: i64) -> Result<Vec<IssuerKey>, LookupError> {
        let entry = {
            let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(issuer.to_string()).or_default().clone()
        };
        // Single flight: concurrent exchanges for one issuer wait for one fetch.
        let mut e = entry.lock().await;
        let fresh = e.fetched.is_some_and(|f| now - f < self.cfg.ttl_secs);
        let found = select(&e.keys, kid);
        if fresh && !found.is_empty() {
            return Ok(found);
        }
        let may_fetch = e.last_attempt.is_none_or(|a| now - a >= self.cfg.min_refetch_secs);
        if may_fetch {
            e.last_attempt = Some(now);
            match self.fetch(issuer).await {
                Ok(keys) => {
                    e.keys = keys;
                    e.fetched = Some(now);
                    e.last_error = None;
                }
                Err(why) => {
                    tracing::warn!(issuer, error = %why, "issuer key fetch failed");
                    e.last_error = Some(why);
                }
            }
        }
        let usable = e.fetched.is_some_and(|f| now - f < self.cfg.max_stale_secs);
        if !usable {
            let why = e.last_error.clone().unwrap_or_else(|| "keys expired and a refresh is not yet allowed".into());
            return Err(LookupError::Unavailable(why));
        }
        let found = select(&e.keys, kid);
        if found.is_empty() { Err(LookupError::UnknownKey) } else { Ok(found) }
    }

    async fn fetch(&self, issuer: &str) -> Result<Vec<IssuerKey>, String> {
        let discovery = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
        let jwks_uri = jwks_uri_of(&self.get(&discovery).await?, issuer, &discovery)?;
        let set = JwkSet::parse(&self.get(&jwks_uri).await?, self.cfg.max_bytes)
            .map_err(|e| format!("the JWKS at {jwks_uri} is invalid: {e}"))?;
        Ok(keys_from_jwks(&set))
    }

    async fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut resp = self.http.get(url).send().await.map_err(|e| format!("GET {url}: {}", describe(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url} returned HTTP {}", resp.status().as_u16()));
        }
        if resp.content_length().is_some_and(|n| n > self.cfg.max_bytes as u64) {
            return Err(format!("GET {url}: the document is larger than {} bytes", self.cfg.max_bytes));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {url}: {}", describe(&e)))? {
            if body.len() + chunk.len() > self.cfg.max_bytes {
                return Err(format!("GET {url}: the document is larger than {} bytes", self.cfg.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The `jwks_uri` of an issuer's discovery document (fetched from `discovery_url`): the document must
/// be JSON, name `issuer` exactly, and point at an `https://` JWKS.
pub fn jwks_uri_of(doc: &[u8], issuer: &str, discovery_url: &str) -> Result<String, String> {
    let doc: serde_json::Value = serde_json::from_slice(doc)
        .map_err(|e| format!("the discovery document at {discovery_url} is not JSON: {e}"))?;
    if doc.get("issuer").and_then(|v| v.as_str()) != Some(issuer) {
        return Err(format!("the discovery document at {discovery_url} names a different issuer"));
    }
    let jwks_uri = doc
        .get("jwks_uri")
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("the discovery document at {discovery_url} has no jwks_uri"))?;
    if !jwks_uri.starts_with("https://") {
        return Err(format!("jwks_uri '{jwks_uri}' is not https"));
    }
    Ok(jwks_uri.to_string())
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// The keys a token can be verified with: by kid (then x5t); without a kid, every key.
pub fn select(keys: &[IssuerKey], kid: Option<&str>) -> Vec<IssuerKey> {
    match kid {
        Some(kid) => {
            let by_kid: Vec<IssuerKey> = keys.iter().filter(|k| k.kid.as_deref() == Some(kid)).cloned().collect();
            if by_kid.is_empty() {
                keys.iter().filter(|k| k.x5t.as_deref() == Some(kid)).cloned().collect()
            } else {
                by_kid
            }
        }
        None => keys.to_vec(),
    }
}
