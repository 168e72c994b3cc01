//! The few calls the webhook makes: `GET /version`, `GET`, `LIST` and `WATCH` of ServiceAccounts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::config::{Credentials, KubeConfig};
use crate::error::{ConfigError, KubeError};

/// How long a single GET may take (the apiserver gives the whole admission 10 s).
pub const GET_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one LIST page may take.
const LIST_TIMEOUT: Duration = Duration::from_secs(30);
/// Server-side length of a watch; the client allows a margin on top.
pub const WATCH_SECONDS: u64 = 290;
/// Largest error body read, and largest watch event line accepted.
const MAX_ERROR_BODY: usize = 64 * 1024;
const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;
/// The in-cluster token is re-read this often (kubelet rotates it).
const TOKEN_REFRESH: Duration = Duration::from_secs(60);

/// A ServiceAccount as far as wid needs it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
    pub annotations: BTreeMap<String, String>,
    pub resource_version: String,
}

#[derive(Deserialize)]
struct RawObject {
    #[serde(default)]
    metadata: RawMeta,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawMeta {
    name: String,
    namespace: String,
    annotations: BTreeMap<String, String>,
    #[serde(rename = "resourceVersion")]
    resource_version: String,
    #[serde(rename = "continue")]
    continue_token: String,
}

impl ServiceAccount {
    fn from_value(v: Value) -> Result<Self, KubeError> {
        let raw: RawObject =
            serde_json::from_value(v).map_err(|e| KubeError::Decode(format!("a ServiceAccount: {e}")))?;
        Ok(ServiceAccount {
            namespace: raw.metadata.namespace,
            name: raw.metadata.name,
            annotations: raw.metadata.annotations,
            resource_version: raw.metadata.resource_version,
        })
    }
}

/// One page of a LIST.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<ServiceAccount>,
    pub resource_version: String,
    /// Non-empty when there are more pages.
    pub continue_token: String,
}

/// A watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Added(ServiceAccount),
    Modified(ServiceAccount),
    Deleted(ServiceAccount),
    /// Progress: nothing changed up to this resourceVersion.
    Bookmark(String),
    /// The server ended the watch with a Status (410 Gone: list again).
    Error {
        code: u16,
        message: String,
    },
}

/// `GET /version`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ServerVersion {
    #[serde(rename = "gitVersion", default)]
    pub git_version: String,
}

impl ServerVersion {
    /// Whether the server is at least `major.minor` (semantic comparison of `gitVersion`, a
    /// pre-release of `major.minor.0` counting as older, as upstream's `utilversion.AtLeast`).
    pub fn at_least(&self, major: u64, minor: u64) -> Result<bool, String> {
        let v = self.git_version.trim_start_matches('v');
        let (core, pre) = match v.find(['-', '+']) {
            Some(i) => (v.get(..i).unwrap_or(v), v.get(i..).is_some_and(|r| r.starts_with('-'))),
            None => (v, false),
        };
        let mut parts = core.split('.').map(|p| p.parse::<u64>());
        let (Some(Ok(ma)), Some(Ok(mi)), Some(Ok(pa)), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!("could not parse \"{}\" as version", self.git_version));
        };
        Ok((ma, mi) > (major, minor) || ((ma, mi) == (major, minor) && (pa > 0 || !pre)))
    }
}

enum Auth {
    None,
    Token(Zeroizing<String>),
    TokenFile { path: PathBuf, cached: Mutex<Option<(Instant, Zeroizing<String>)>> },
}

struct Inner {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

/// A Kubernetes API client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("server", &self.inner.base).finish_non_exhaustive()
    }
}

/// Checks a path segment is a Kubernetes object name before it goes into a URL: the namespace comes
/// from the AdmissionReview, which anyone who can reach the webhook can send.
fn check_name(kind: &str, s: &str) -> Result<(), KubeError> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    match ok {
        true => Ok(()),
        false => Err(KubeError::InvalidName(format!("{kind} \"{s}\" is not a valid Kubernetes name"))),
    }
}

impl Client {
    /// Builds the HTTPS client for `cfg`; `user_agent` names the caller in the API server's logs.
    pub fn new(cfg: &KubeConfig, user_agent: &str) -> Result<Self, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .user_agent(user_agent)
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .https_only(true);
        let tls = |e: reqwest::Error| ConfigError::Tls(crate::error::KubeError::transport(&e).to_string());
        if let Some(ca) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(ca).map_err(tls)?;
            if certs.is_empty() {
                return Err(ConfigError::Tls("the certificate authority holds no PEM certificate".into()));
            }
            builder = builder.tls_certs_only(certs);
        }
        if cfg.insecure_skip_tls_verify {
            tracing::warn!(server = %cfg.server, "insecure-skip-tls-verify: the API server's certificate is not checked");
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        if let Some(cc) = &cfg.client_cert {
            let mut pem = Zeroizing::new(cc.cert_pem.clone());
            pem.push(b'\n');
            pem.extend_from_slice(&cc.key_pem);
            builder = builder.identity(reqwest::Identity::from_pem(&pem).map_err(tls)?);
        }
        let url = reqwest::Url::parse(&cfg.server)
            .map_err(|e| ConfigError::Tls(format!("server \"{}\" is not a URL: {e}", cfg.server)))?;
        if url.scheme() != "https" {
            return Err(ConfigError::Unsupported(format!(
                "server \"{}\" is not https://; wid talks to the Kubernetes API over TLS only",
                cfg.server
            )));
        }
        let mut base = cfg.server.trim_end_matches('/').to_string();
        if let Some(sni) = &cfg.tls_server_name {
            // Connect to the configured address but name (and verify) the server as tls-server-name.
            let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<std::net::SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                .map_err(|e| ConfigError::Tls(format!("resolving {host}: {e}")))?
                .collect();
            builder = builder.resolve_to_addrs(sni, &addrs);
            base = format!("https://{sni}:{port}{}", url.path().trim_end_matches('/'));
        }
        let http = builder.build().map_err(tls)?;
        let auth = match &cfg.credentials {
            Credentials::None => Auth::None,
            Credentials::Token(t) => Auth::Token(t.clone()),
            Credentials::TokenFile(p) => Auth::TokenFile { path: p.clone(), cached: Mutex::new(None) },
        };
        Ok(Client { inner: Arc::new(Inner { http, base, auth }) })
    }

    /// The server URL requests go to.
    pub fn server(&self) -> &str {
        &self.inner.base
    }

    fn token(&self) -> Result<Option<Zeroizing<String>>, KubeError> {
        match &self.inner.auth {
            Auth::None => Ok(None),
            Auth::Token(t) => Ok(Some(t.clone())),
            Auth::TokenFile { path, cached } => {
                let mut guard = cached.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((at, tok)) = guard.as_ref()
                    && at.elapsed() < TOKEN_REFRESH
                {
                    return Ok(Some(tok.clone()));
                }
                let read =
                    std::fs::read_to_string(path).map_err(|source| KubeError::Token { path: path.clone(), source })?;
                let tok = Zeroizing::new(read.trim().to_string());
                *guard = Some((Instant::now(), tok.clone()));
                Ok(Some(tok))
            }
        }
    }

    async fn get(&self, path_and_query: &str, timeout: Option<Duration>) -> Result<reqwest::Response, KubeError> {
        let url = format!("{}{path_and_query}", self.inner.base);
        let mut req = self.inner.http.get(&url).header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = self.token()? {
            req = req.bearer_auth(t.as_str());
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let resp = req.send().await.map_err(|e| KubeError::transport(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(api_error(resp).await)
    }

    async fn get_json(&self, path_and_query: &str, timeout: Duration) -> Result<Value, KubeError> {
        let resp = self.get(path_and_query, Some(timeout)).await?;
        let bytes = resp.bytes().await.map_err(|e| KubeError::transport(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| KubeError::Decode(format!("not JSON: {e}")))
    }

    /// `GET /version`.
    pub async fn server_version(&self) -> Result<ServerVersion, KubeError> {
        let v = self.get_json("/version", GET_TIMEOUT).await?;
        serde_json::from_value(v).map_err(|e| KubeError::Decode(format!("/version: {e}")))
    }

    /// `GET /api/v1/namespaces/{namespace}/serviceaccounts/{name}`.
    pub async fn get_service_account(&self, namespace: &str, name: &str) -> Result<ServiceAccount, KubeError> {
        check_name("namespace", namespace)?;
        check_name("serviceaccount", name)?;
        let v = self.get_json(&format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}"), GET_TIMEOUT).await?;
        ServiceAccount::from_value(v)
    }

    /// One page of `LIST /api/v1/serviceaccounts` (all namespaces).
    pub async fn list_service_accounts(&self, limit: u32, continue_token: &str) -> Result<ListPage, KubeError> {
        let mut q = format!("/api/v1/serviceaccounts?limit={limit}");
        if !continue_token.is_empty() {
            q.push_str("&continue=");
            q.push_str(&percent_encode(continue_token));
        }
        let v = self.get_json(&q, LIST_TIMEOUT).await?;
        let meta: RawMeta = v
            .get("metadata")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| KubeError::Decode(format!("a ServiceAccountList: {e}")))?
            .unwrap_or_default();
        let items = match v.get("items") {
            Some(Value::Array(items)) => {
                items.iter().cloned().map(ServiceAccount::from_value).collect::<Result<Vec<_>, _>>()?
            }
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(KubeError::Decode("ServiceAccountList.items is not an array".into())),
        };
        Ok(ListPage { items, resource_version: meta.resource_version, continue_token: meta.continue_token })
    }

    /// `WATCH /api/v1/serviceaccounts` from `resource_version`, with bookmarks.
    pub async fn watch_service_accounts(&self, resource_version: &str) -> Result<WatchStream, KubeError> {
        let q = format!(
            "/api/v1/serviceaccounts?watch=true&allowWatchBookmarks=true&timeoutSeconds={WATCH_SECONDS}&resourceVersion={}",
            percent_encode(resource_version)
        );
        let resp = self.get(&q, Some(Duration::from_secs(WATCH_SECONDS + 30))).await?;
        Ok(WatchStream { resp, buf: Vec::new() })
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads an error answer: a `Status` object's message when there is one.
async fn api_error(mut resp: reqwest::Response) -> KubeError {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ERROR_BODY {
            break;
        }
    }
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let field =
        |k: &str| parsed.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).unwrap_or_default().to_string();
    let message = match field("message") {
        m if !m.is_empty() => m,
        _ => {
            let text = String::from_utf8_lossy(body.get(..body.len().min(512)).unwrap_or_default()).trim().to_string();
            format!(
                "the Kubernetes API answered HTTP {status}{}",
                if text.is_empty() { String::new() } else { format!(": {text}") }
            )
        }
    };
    KubeError::Api { status, reason: field("reason"), message }
}

/// The events of one watch request, newline-delimited JSON.
pub struct WatchStream {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl WatchStream {
    /// The next event; `None` when the server ended the watch (normal after `timeoutSeconds`).
    pub async fn next(&mut self) -> Result<Option<WatchEvent>, KubeError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = line.get(..pos).unwrap_or_default();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return parse_event(line).map(Some);
            }
            if self.buf.len() > MAX_EVENT_BYTES {
                return Err(KubeError::Decode(format!("a watch event longer than {MAX_EVENT_BYTES} bytes")));
            }
            match self.resp.chunk().await.map_err(|e| KubeError::transport(&e))? {
                Some(chunk) => self.buf.extend_from_slice(&chunk),
                None if self.buf.iter().all(u8::is_ascii_whitespace) => return Ok(None),
                None => {
                    let rest = std::mem::take(&mut self.buf);
                    return parse_event(&rest).map(Some);
                }
            }
        }
    }
}

/// Parses one watch event line.
pub fn parse_event(line: &[u8]) -> Result<WatchEvent, KubeError> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(rename = "type")]
        kind: String,
        #[serde(default)]
        object: Value,
    }
    let raw: Raw = serde_json::from_slice(line).map_err(|e| KubeError::Decode(format!("a watch event: {e}")))?;
    Ok(match raw.kind.as_str() {
        "ADDED" => WatchEvent::Added(ServiceAccount::from_value(raw.object)?),
        "MODIFIED" => WatchEvent::Modified(ServiceAccount::from_value(raw.object)?),
        "DELETED" => WatchEvent::Deleted(ServiceAccount::from_value(raw.object)?),
        "BOOKMARK" => WatchEvent::Bookmark(ServiceAccount::from_value(raw.object)?.resource_version),
        "ERROR" => WatchEvent::Error {
            code: raw.object.get("code").and_then(Value::as_u64).and_then(|c| u16::try_from(c).ok()).unwrap_or(500),
            message: raw.object.get("message").and_then(Value::as_str).unwrap_or_default().to_string(),
        },
        other => return Err(KubeError::Decode(format!("watch event type \"{other}\""))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_upstream_server_version_gte() {
        let v = |s: &str| ServerVersion { git_version: s.into() };
        assert!(v("v1.32.0").at_least(1, 32).unwrap());
        assert!(v("v1.33.1-gke.100").at_least(1, 32).unwrap());
        assert!(v("v2.0.0").at_least(1, 25).unwrap());
        assert!(v("v1.25.0").at_least(1, 20).unwrap());
        assert!(!v("v1.18.0").at_least(1, 20).unwrap());
        assert!(!v("v0.25.0").at_least(1, 20).unwrap());
        assert!(!v("v1.32.0-alpha.1").at_least(1, 32).unwrap());
        assert!(v("v1.32.0+k3s1").at_least(1, 32).unwrap());
        assert!(!v("v1.20.2").at_least(1, 32).unwrap());
        assert!(v("garbage").at_least(1, 32).is_err());
    }

    #[test]
    fn watch_events_parse() {
        let sa = r#"{"metadata":{"name":"sa","namespace":"ns","resourceVersion":"7","annotations":{"a":"b"}}}"#;
        let ev = parse_event(format!(r#"{{"type":"ADDED","object":{sa}}}"#).as_bytes()).unwrap();
        let WatchEvent::Added(s) = ev else { panic!() };
        assert_eq!((s.namespace.as_str(), s.name.as_str(), s.resource_version.as_str()), ("ns", "sa", "7"));
        assert_eq!(s.annotations.get("a").map(String::as_str), Some("b"));
        let bm = parse_event(
            br#"{"type":"BOOKMARK","object":{"kind":"ServiceAccount","metadata":{"resourceVersion":"12"}}}"#,
        );
        assert_eq!(bm.unwrap(), WatchEvent::Bookmark("12".into()));
        let gone = parse_event(
            br#"{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version"}}"#,
        );
        assert_eq!(gone.unwrap(), WatchEvent::Error { code: 410, message: "too old resource version".into() });
        assert!(parse_event(b"{").is_err());
        assert!(parse_event(br#"{"type":"WEIRD","object":{}}"#).is_err());
        assert!(parse_event(br#"{"type":"ADDED","object":{"metadata":{"annotations":{"a":1}}}}"#).is_err());
    }

    #[test]
    fn names_are_checked_before_they_reach_a_url() {
        assert!(check_name("namespace", "kube-system").is_ok());
        assert!(check_name("serviceaccount", "my.sa").is_ok());
        for bad in ["", "..", "a/b", "A", "-a", "a?x", "%2e%2e"] {
            assert!(check_name("namespace", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn continue_tokens_are_percent_encoded() {
        assert_eq!(percent_encode("eyJ2Ijo=+/"), "eyJ2Ijo%3D%2B%2F");
    }
}
