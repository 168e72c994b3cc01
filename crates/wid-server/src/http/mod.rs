//! The HTTP surface: one router for the token service, the management API, hosted cluster issuers
//! and operations endpoints, behind a host check that sends `{vault}.vault.H` requests to the Key
//! Vault data plane. `router(state)` is shared by the daemon and the tests.

mod arm;
mod auth;
mod entra;
mod graph;
mod oidc;
pub(crate) mod vault;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use uuid::Uuid;
use wid_arm::Management;
use wid_core::Clock;
use wid_core::directory::Directory;
use wid_sts::TokenService;
use wid_vault::VaultService;

pub use auth::Authenticated;
pub use graph::AZURE_GRAPH_RESOURCE;

use crate::metrics::Metrics;

/// Largest request body accepted anywhere (ARM bodies, token forms, uploaded JWKS).
pub const MAX_BODY: usize = 1024 * 1024;

/// Longest a request may take from its headers to its response, body upload included: a client
/// trickling a declared body cannot hold a connection (and its memory) open for longer. Three times
/// the longest wait inside a request (a store lock, or an issuer's discovery + JWKS fetches).
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub sts: Arc<TokenService>,
    pub arm: Arc<Management>,
    pub vault: Arc<VaultService>,
    pub directory: Arc<RwLock<Directory>>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
    /// `https://HOST[:PORT]`.
    pub public_url: String,
    pub tenant_id: Uuid,
    /// Secret reads may run on the async worker: the store is local (SQLite), a read takes
    /// microseconds. Off for a networked database, whose round trips would block the worker.
    pub inline_secret_reads: bool,
    /// Answer under Azure's sign-in host name too (`--azure-hostnames`).
    pub azure_hostnames: bool,
}

/// Azure's sign-in host, answered under its own name with `--azure-hostnames`.
pub const AZURE_LOGIN_HOST: &str = "login.microsoftonline.com";

/// Azure Resource Manager's host, answered under its own name with `--azure-hostnames`.
pub const AZURE_MANAGEMENT_HOST: &str = "management.azure.com";

/// The audiences Azure Resource Manager accepts (az asks for the second, the SDKs for the first),
/// accepted with `--azure-hostnames` beside this server's own.
pub const AZURE_MANAGEMENT_AUDIENCES: [&str; 2] =
    ["https://management.azure.com", "https://management.core.windows.net"];

impl AppState {
    /// The audience of management-API tokens (with `--azure-hostnames`, Azure's are accepted too).
    pub fn management_audience(&self) -> &str {
        &self.public_url
    }

    /// Whether a request came under Azure Resource Manager's own name (answered with `--azure-hostnames`).
    pub fn under_azure_management(&self, uri: &Uri, headers: &HeaderMap) -> bool {
        self.azure_hostnames && request_authority(uri, headers).is_some_and(|a| same_host(&a, AZURE_MANAGEMENT_HOST))
    }

    /// Every audience a management-API token may carry.
    pub fn management_audiences(&self) -> impl Iterator<Item = &str> + Clone {
        let azure = if self.azure_hostnames { &AZURE_MANAGEMENT_AUDIENCES[..] } else { &[] };
        std::iter::once(self.management_audience()).chain(azure.iter().copied())
    }

    /// The base URL of the sign-in endpoints for an authority (`HOST[:PORT]`) a client named:
    /// this server's URL, or Azure's sign-in host when that was named and is answered for; `None`
    /// for any other host.
    pub fn login_base(&self, authority: &str) -> Option<String> {
        if same_host(authority, self.public_url.trim_start_matches("https://")) {
            Some(self.public_url.clone())
        } else if self.azure_hostnames && same_host(authority, AZURE_LOGIN_HOST) {
            Some(format!("https://{AZURE_LOGIN_HOST}"))
        } else {
            None
        }
    }

    /// The base URL of the sign-in endpoints for a request: the host it was sent to when that is
    /// one answered for, else this server's URL.
    pub fn login_base_of(&self, uri: &Uri, headers: &HeaderMap) -> String {
        request_authority(uri, headers).and_then(|a| self.login_base(&a)).unwrap_or_else(|| self.public_url.clone())
    }
}

/// Whether two authorities (`HOST[:PORT]`) name the same host (case-insensitive; `:443` is implied).
fn same_host(a: &str, b: &str) -> bool {
    let trim = |s: &str| s.strip_suffix(":443").unwrap_or(s).to_ascii_lowercase();
    trim(a) == trim(b)
}

/// The host a request was sent to: HTTP/2 carries it in the URI (`:authority`), HTTP/1.1 in `Host`.
pub(crate) fn request_authority(uri: &Uri, headers: &HeaderMap) -> Option<String> {
    uri.authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string))
}

/// The router. Key Vault hosts are recognised before routing, so no route or fallback of the
/// main router ever sees a data-plane request.
pub fn router(state: AppState) -> Router {
    let main = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/common/discovery/instance", get(entra::instance_discovery))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(entra::openid_configuration))
        .route("/{tenant}/.well-known/openid-configuration", get(entra::openid_configuration_v1))
        .route("/{tenant}/discovery/v2.0/keys", get(entra::keys))
        .route("/{tenant}/discovery/keys", get(entra::keys))
        .route("/{tenant}/oauth2/v2.0/token", post(entra::token))
        .route("/identitybinding/{tenant}/oauth2/v2.0/token", post(entra::bound_token))
        .route("/{tenant}/oauth2/token", post(entra::token))
        .route("/oidc/{tenant}/{cluster}/.well-known/openid-configuration", get(oidc::discovery))
        .route("/oidc/{tenant}/{cluster}/openid/v1/jwks", get(oidc::jwks))
        .route("/v1.0/me", get(graph::me))
        .route("/v1.0/servicePrincipals", get(graph::service_principals))
        .route("/v1.0/servicePrincipals/{id}", get(graph::service_principal_by_id))
        .route("/v1.0/directoryObjects/getByIds", post(graph::get_by_ids))
        .fallback(arm::handle)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state.clone());
    Router::new()
        .fallback_service(main)
        .layer(axum::middleware::from_fn_with_state(state, vault::by_host))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT))
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.ready.load(Ordering::Acquire) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response()
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    (headers, st.metrics.render()).into_response()
}

/// A JSON response with `application/json; charset=utf-8`.
pub(crate) fn json(status: u16, body: &serde_json::Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    resp
}
