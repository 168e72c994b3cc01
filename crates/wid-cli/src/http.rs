//! HTTPS to `wid serve`: the token endpoint (client credentials), the ARM-shaped management API and
//! the Key Vault data plane (`https://{vault}.vault.HOST/`).
//!
//! One `reqwest` client per server host: trusts the profile's CA file in addition to the OS roots,
//! 30 s timeout, no redirects (a bearer token must never follow a redirect). Every request carries
//! a fresh `x-ms-client-request-id`. `--debug` logs requests and responses without the
//! `Authorization` header, client secrets, assertions or tokens.
//!
//! Name resolution: a host under `localhost` (`kv1.vault.localhost`) is sent to the loopback
//! address without asking the system resolver (RFC 6761 §6.3; not every resolver does it), and
//! `WID_RESOLVE` pins other names — a test and diagnostic knob like curl's `--resolve`:
//! `WID_RESOLVE="kv1.vault.example.test:10.0.0.5,other.example.test:[fd00::1]"` (the port always
//! comes from the URL).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};

use super::error::CliError;
use crate::output::value::{DumpOptions, Val, py_json_dumps, py_str};

/// The advice az prints for TLS failures, adapted to wid.
const TLS_ADVICE: &str = "Certificate verification failed. If the server uses wid's local CA, point \
'caCertFile' in the profile at DATA_DIR/ca.pem (or run 'wid login --ca-file DATA_DIR/ca.pem').";

/// A request body.
pub enum Body {
    None,
    Json(serde_json::Value),
    /// A form; its values are never logged (they carry credentials).
    SecretForm(Vec<(String, String)>),
}

/// A response with its body read.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Response {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as an ordered JSON value (`null` when empty).
    pub fn json(&self) -> Result<Val, CliError> {
        if self.body.trim().is_empty() {
            return Ok(Val::Null);
        }
        Val::parse(&self.body)
            .map_err(|e| CliError::failed(format!("The server returned invalid JSON ({e}): {}", truncate(&self.body))))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn truncate(s: &str) -> String {
    let mut t: String = s.chars().take(500).collect();
    if t.len() < s.len() {
        t.push_str("...");
    }
    t
}

/// HTTP client bound to one server.
pub struct Http {
    client: reqwest::Client,
    base: Url,
    debug: bool,
    log: Vec<String>,
}

/// The `WID_RESOLVE` variable: `HOST:ADDR[,HOST:ADDR...]`, ADDR an IPv4 address or a bracketed
/// IPv6 address.
pub const RESOLVE_ENV: &str = "WID_RESOLVE";

/// Parses `WID_RESOLVE` (host names lower-cased).
pub fn parse_resolve(spec: &str) -> Result<HashMap<String, IpAddr>, CliError> {
    let mut out = HashMap::new();
    for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let bad = || {
            CliError::failed(format!(
                "Invalid {RESOLVE_ENV} entry '{entry}': expected HOST:ADDR, e.g. kv1.vault.example.test:127.0.0.1 or host:[::1]"
            ))
        };
        let (host, addr) = entry.split_once(':').ok_or_else(bad)?;
        let addr = addr.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = addr.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        out.insert(host.to_ascii_lowercase(), ip);
    }
    Ok(out)
}

/// The addresses a host is pinned to: `WID_RESOLVE`, else loopback for `localhost` names,
/// else none (the system resolver decides).
pub fn pinned_addrs(host: &str, overrides: &HashMap<String, IpAddr>) -> Vec<SocketAddr> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(ip) = overrides.get(&host) {
        return vec![SocketAddr::new(*ip, 0)];
    }
    if host.ends_with(".localhost") {
        return vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 0),
        ];
    }
    Vec::new()
}

impl Http {
    /// A client for `server` trusting `ca_file` (PEM, may hold several certificates) in addition
    /// to the OS roots.
    pub fn new(server: &str, ca_file: Option<&Path>, debug: bool) -> Result<Self, CliError> {
        Self::with_resolve(server, ca_file, debug, &HashMap::new())
    }

    /// As [`Http::new`], with the server's host pinned as [`pinned_addrs`] says.
    pub fn with_resolve(
        server: &str,
        ca_file: Option<&Path>,
        debug: bool,
        overrides: &HashMap<String, IpAddr>,
    ) -> Result<Self, CliError> {
        let base = Url::parse(server).map_err(|e| CliError::failed(format!("Invalid server URL '{server}': {e}")))?;
        if base.scheme() != "https" && base.scheme() != "http" {
            return Err(CliError::failed(format!("Invalid server URL '{server}': expected https://HOST[:PORT]")));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wid-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| CliError::failed(format!("Cannot read CA file '{}': {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| CliError::failed(format!("Invalid CA file '{}': {e}", path.display())))?;
            if certs.is_empty() {
                return Err(CliError::failed(format!("Invalid CA file '{}': no certificate found", path.display())));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if let Some(host) = base.host_str() {
            let addrs = pinned_addrs(host, overrides);
            if !addrs.is_empty() {
                builder = builder.resolve_to_addrs(host, &addrs);
            }
        }
        let client =
            builder.build().map_err(|e| CliError::failed(format!("Cannot create the HTTP client: {}", chain(&e))))?;
        Ok(Http { client, base, debug, log: Vec::new() })
    }

    /// `{server}/{segments...}?{query}` with each segment percent-encoded.
    pub fn url(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Url, CliError> {
        let mut url = self.base.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| CliError::failed(format!("Invalid server URL '{}'", self.base)))?;
            path.pop_if_empty();
            for s in segments {
                path.push(s);
            }
        }
        if !query.is_empty() {
            let mut q = url.query_pairs_mut();
            for (k, v) in query {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Whether `url` points at the configured server (same scheme, host and port).
    pub fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// Debug lines collected since the last call.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Sends one request. `bearer` goes into `Authorization`; `log_response_body` is false for
    /// responses that carry credentials (token responses).
    pub async fn send(
        &mut self,
        method: Method,
        url: Url,
        bearer: Option<&str>,
        body: Body,
        log_response_body: bool,
    ) -> Result<Response, CliError> {
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut req = self
            .client
            .request(method.clone(), url.clone())
            .header("x-ms-client-request-id", &request_id)
            .header("Accept", "application/json");
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let logged_body = match &body {
            Body::None => None,
            Body::Json(v) => Some(v.to_string()),
            Body::SecretForm(pairs) => Some(
                pairs
                    .iter()
                    .map(|(k, v)| {
                        let shown = match k.as_str() {
                            "grant_type" | "client_id" | "scope" | "client_assertion_type" => v.as_str(),
                            _ => "<redacted>",
                        };
                        format!("{k}={shown}")
                    })
                    .collect::<Vec<_>>()
                    .join("&"),
            ),
        };
        req = match body {
            Body::None => req,
            Body::Json(v) => req.json(&v),
            Body::SecretForm(pairs) => req.form(&pairs),
        };
        if self.debug {
            self.log.push(format!("Request URL: '{url}'"));
            self.log.push(format!("Request method: '{method}'"));
            self.log.push("Request headers:".into());
            self.log.push(format!("    'x-ms-client-request-id': '{request_id}'"));
            if bearer.is_some() {
                self.log.push("    'Authorization': '*****'".into());
            }
            match &logged_body {
                Some(b) => {
                    self.log.push("Request body:".into());
                    self.log.push(b.clone());
                }
                None => self.log.push("No body was attached to the request".into()),
            }
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&url, &e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.map_err(|e| self.transport_error(&url, &e))?;
        if self.debug {
            self.log.push(format!("Response status: {}", status.as_u16()));
            self.log.push("Response headers:".into());
            for (k, v) in &headers {
                self.log.push(format!("    '{k}': '{}'", v.to_str().unwrap_or("<binary>")));
            }
            if log_response_body {
                self.log.push("Response content:".into());
                self.log.push(text.clone());
            } else {
                self.log.push("Response content: <redacted>".into());
            }
        }
        Ok(Response { status, headers, body: text })
    }

    fn transport_error(&self, url: &Url, e: &reqwest::Error) -> CliError {
        let detail = chain(e);
        let mut err = if e.is_timeout() {
            CliError::failed(format!("The request to {} timed out: {detail}", strip_query(url)))
        } else {
            CliError::failed(format!("Failed to connect to {}: {detail}", strip_query(url)))
        };
        let lower = detail.to_lowercase();
        if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
            err = err.recommend(TLS_ADVICE);
        }
        err
    }
}

fn strip_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.to_string()
}

/// An error and its sources, joined with ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}

/// The credential of the CLI's principal.
pub enum Credential<'a> {
    Secret(&'a str),
    /// A JWT presented as `client_assertion` (workload identity federation).
    Assertion(&'a str),
}

/// Claims read from an access token this CLI obtained (not verified: the token came over TLS from
/// the server itself and is only used to learn our own ids).
#[derive(Debug, Default, Clone)]
pub struct TokenInfo {
    pub access_token: String,
    pub object_id: Option<String>,
    pub tenant_id: Option<String>,
    pub display_name: Option<String>,
}

/// Client-credentials grant at `{server}/{tenant}/oauth2/v2.0/token` for `{resource}/.default`.
pub async fn acquire_token(
    http: &mut Http,
    tenant: &str,
    client_id: &str,
    credential: &Credential<'_>,
    resource: &str,
) -> Result<TokenInfo, CliError> {
    let url = http.url(&[tenant, "oauth2", "v2.0", "token"], &[])?;
    let scope = format!("{}/.default", resource.trim_end_matches('/'));
    let mut form = vec![
        ("grant_type".to_owned(), "client_credentials".to_owned()),
        ("client_id".to_owned(), client_id.to_owned()),
        ("scope".to_owned(), scope),
    ];
    match credential {
        Credential::Secret(s) => form.push(("client_secret".into(), (*s).to_owned())),
        Credential::Assertion(a) => {
            form.push((
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion".into(), a.trim().to_owned()));
        }
    }
    let resp = http.send(Method::POST, url, None, Body::SecretForm(form), false).await?;
    let body: Option<serde_json::Value> = serde_json::from_str(&resp.body).ok();
    if !resp.is_success() {
        let description = body
            .as_ref()
            .and_then(|b| b.get("error_description").or_else(|| b.get("error")).and_then(serde_json::Value::as_str))
            .map(str::to_owned)
            .unwrap_or_else(|| {
                format!(
                    "The token request failed with status {} {}",
                    resp.status.as_u16(),
                    resp.status.canonical_reason().unwrap_or("")
                )
            });
        return Err(CliError::failed(description));
    }
    let token = body
        .as_ref()
        .and_then(|b| b.get("access_token"))
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| CliError::failed("The token response has no access_token"))?
        .to_owned();
    let claims = jwt_claims(&token).unwrap_or_default();
    let claim = |k: &str| claims.get(k).and_then(serde_json::Value::as_str).map(str::to_owned);
    Ok(TokenInfo {
        object_id: claim("oid"),
        tenant_id: claim("tid"),
        display_name: claim("app_displayname").or_else(|| claim("name")),
        access_token: token,
    })
}

/// A string claim of a token this CLI obtained (decoded without verification).
pub fn token_claim(token: &str, name: &str) -> Option<String> {
    jwt_claims(token)?.get(name)?.as_str().map(str::to_owned)
}

/// The payload of a compact JWS, decoded without verification (a token wid just gave this CLI).
pub fn jwt_claims(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// az's message for a failed management call: azure-core's `HttpResponseError` with the
/// `ODataV4Format` of `{"error":{"code","message",...}}`, or "Operation returned an invalid status"
/// when the body is not such an error. 404 maps to exit code 3.
pub fn arm_error(resp: &Response) -> CliError {
    let message = Val::parse(&resp.body).ok().and_then(|v| odata_error(&v)).unwrap_or_else(|| {
        format!("Operation returned an invalid status '{}'", resp.status.canonical_reason().unwrap_or("Unknown"))
    });
    if resp.status == StatusCode::NOT_FOUND { CliError::not_found(message) } else { CliError::failed(message) }
}

/// azure-core `ODataV4Format.__str__`; `None` when `code` or `message` is missing.
pub fn odata_error(v: &Val) -> Option<String> {
    let err = match v.get("error") {
        Some(e) => e,
        None => v,
    };
    let code = err.get("code")?;
    let message = err.get("message")?;
    let (code, message) = (py_str(code), py_str(message));
    let mut details = format!("Code: {code}\nMessage: {message}");
    if let Some(t) = err.get("target").filter(|t| t.is_truthy()) {
        details.push_str(&format!("\nTarget: {}", py_str(t)));
    }
    if let Some(Val::List(list)) = err.get("details") {
        let rendered: Vec<String> = list.iter().filter_map(odata_error).collect();
        if !rendered.is_empty() {
            details.push_str("\nException Details:");
            for d in rendered {
                let lines: Vec<String> = d.lines().map(|l| format!("\t{l}")).collect();
                details.push_str(&lines.join("\n"));
            }
        }
    }
    if let Some(inner) = err.get("innererror").filter(|i| i.is_truthy()) {
        let json = py_json_dumps(
            inner,
            &DumpOptions { indent: Some(4), sort_keys: false, ensure_ascii: true, separators: (",", ": ") },
        );
        details.push_str(&format!("\nInner error: {json}"));
    }
    Some(format!("({code}) {message}\n{details}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response {
            status: StatusCode::from_u16(status).unwrap(),
            headers: reqwest::header::HeaderMap::new(),
            body: body.into(),
        }
    }

    #[test]
    fn arm_errors_render_like_azure_core() {
        let e = arm_error(&resp(
            404,
            r#"{"error":{"code":"ResourceNotFound","message":"The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/x' under resource group 'rg' was not found."}}"#,
        ));
        assert_eq!(e.exit_code(), 3);
        assert_eq!(
            e.message,
            "(ResourceNotFound) The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/x' under resource group 'rg' was not found.\nCode: ResourceNotFound\nMessage: The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/x' under resource group 'rg' was not found."
        );
        let e = arm_error(&resp(
            409,
            r#"{"error":{"code":"Conflict","message":"m","target":"t","details":[{"code":"D","message":"dm"}]}}"#,
        ));
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.message,
            "(Conflict) m\nCode: Conflict\nMessage: m\nTarget: t\nException Details:\t(D) dm\n\tCode: D\n\tMessage: dm"
        );
        let e = arm_error(&resp(502, "<html>bad gateway</html>"));
        assert_eq!(e.message, "Operation returned an invalid status 'Bad Gateway'");
    }

    #[test]
    fn jwt_claims_are_decoded() {
        use base64::Engine;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"oid":"o","tid":"t","app_displayname":"wid-admin"}"#);
        let claims = jwt_claims(&format!("e30.{payload}.sig")).unwrap();
        assert_eq!(claims.get("oid").unwrap(), "o");
        assert!(jwt_claims("garbage").is_none());
    }

    #[test]
    fn resolve_overrides() {
        let o = parse_resolve("KV1.vault.example.test:10.0.0.5, h2:[::1]").unwrap();
        assert_eq!(o.get("kv1.vault.example.test"), Some(&"10.0.0.5".parse::<IpAddr>().unwrap()));
        assert_eq!(o.get("h2"), Some(&"::1".parse::<IpAddr>().unwrap()));
        assert!(parse_resolve("nohost").is_err());
        assert!(parse_resolve("h:not-an-ip").is_err());
        assert!(parse_resolve(":1.2.3.4").is_err());
        assert!(parse_resolve("").unwrap().is_empty());
        assert_eq!(pinned_addrs("kv1.vault.example.test", &o), vec!["10.0.0.5:0".parse::<SocketAddr>().unwrap()]);
        assert_eq!(pinned_addrs("kv1.vault.localhost", &HashMap::new()).len(), 2);
        assert!(pinned_addrs("example.test", &o).is_empty());
        assert!(pinned_addrs("localhost", &o).is_empty(), "plain localhost is left to the system");
    }

    #[test]
    fn urls_encode_segments() {
        let http = Http::new("https://localhost:8443/", None, false).unwrap();
        let u =
            http.url(&["subscriptions", "s", "resourcegroups", "my rg/x"], &[("api-version", "2024-11-01")]).unwrap();
        assert_eq!(
            u.as_str(),
            "https://localhost:8443/subscriptions/s/resourcegroups/my%20rg%2Fx?api-version=2024-11-01"
        );
        assert!(http.same_origin(&Url::parse("https://localhost:8443/next?x=1").unwrap()));
        assert!(!http.same_origin(&Url::parse("https://evil:8443/").unwrap()));
    }
}
