//! The Key Vault data plane over HTTP. Requests whose host is `{vault}.{vault dns suffix}` are taken
//! here before the normal router sees them (same listener, same TLS). Fixed order per request:
//! authenticate (401 + challenge, before anything about the request is looked at), check
//! `api-version`, route, read the body, then call [`wid_vault::VaultService`] off the executor.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;
use wid_core::Caller;
use wid_core::audit::{self, AuditEvent};
use wid_vault::request::valid_api_version;
use wid_vault::route::{Op, route};
use wid_vault::{AuthFailure, Ctx, Paging, VaultError, VaultHost, VaultService};

use super::{AppState, json};

/// Largest request body of the data plane (a set body is at most ~25 KiB of value plus metadata; a
/// restore carries a backup blob).
pub const MAX_VAULT_BODY: usize = 256 * 1024;

/// Sent as `x-ms-keyvault-service-version`.
const SERVICE_VERSION: &str = concat!("wid/", env!("CARGO_PKG_VERSION"));

/// Middleware in front of the router: Key Vault hosts go to [`handle`], everything else on.
pub async fn by_host(State(st): State<AppState>, req: Request, next: Next) -> Response {
    match super::request_authority(req.uri(), req.headers()).and_then(|a| st.vault.vault_host(&a)) {
        Some(host) => handle(st, host, req).await,
        None => next.run(req).await,
    }
}

/// The caller of a bearer token for the host's Key Vault resource.
fn authenticate(st: &AppState, host: &VaultHost, headers: &HeaderMap) -> Result<Caller, AuthFailure> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(AuthFailure::Missing)?;
    let token = match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
        _ => return Err(AuthFailure::Missing),
    };
    st.sts.verify_access_token(token, st.vault.resource(host.azure)).map_err(AuthFailure::Invalid)
}

/// `WWW-Authenticate: Bearer authorization="https://H/{tenant}", resource="https://vault.H"`; for
/// `{vault}.vault.azure.net`, Azure's sign-in host and Key Vault resource.
fn challenge(st: &AppState, azure: bool) -> String {
    let login = if azure { format!("https://{}", super::AZURE_LOGIN_HOST) } else { st.public_url.clone() };
    format!("Bearer authorization=\"{login}/{}\", resource=\"{}\"", st.tenant_id, st.vault.resource(azure))
}

struct Reply {
    /// The host is under Azure's name (its challenge is Azure's).
    azure: bool,
    request_id: String,
    client_request_id: Option<HeaderValue>,
}

impl Reply {
    fn finish(&self, st: &AppState, mut resp: Response) -> Response {
        let h = resp.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.request_id) {
            h.insert("x-ms-request-id", v);
        }
        if let Some(v) = &self.client_request_id {
            h.insert("x-ms-client-request-id", v.clone());
        }
        h.insert("x-ms-keyvault-service-version", HeaderValue::from_static(SERVICE_VERSION));
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        st.metrics.request("vault", resp.status().as_u16());
        resp
    }

    fn error(&self, st: &AppState, e: &VaultError) -> Response {
        let w = e.to_wire();
        if let VaultError::Internal(cause) = e {
            tracing::error!(request_id = %self.request_id, cause, "key vault request failed");
        }
        let mut resp = json(w.status, &w.body());
        let h = resp.headers_mut();
        if w.status == 401
            && let Ok(v) = HeaderValue::from_str(&challenge(st, self.azure))
        {
            h.insert(header::WWW_AUTHENTICATE, v);
        }
        if let Some(secs) = w.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        self.finish(st, resp)
    }
}

fn query_params(query: Option<&str>) -> Result<Vec<(String, String)>, VaultError> {
    serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|_| VaultError::BadParameter("The query string is not valid URL encoding.".into()))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Serves one data-plane request for `host`.
async fn handle(st: AppState, host: VaultHost, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let reply = Reply {
        azure: host.azure,
        request_id: Uuid::new_v4().to_string(),
        client_request_id: parts
            .headers
            .get("x-ms-client-request-id")
            .filter(|v| v.len() <= 128 && v.to_str().is_ok_and(|s| s.bytes().all(|b| b.is_ascii_graphic())))
            .cloned(),
    };
    // (a) Authentication first: the SDKs' first request is bodiless and unauthenticated.
    let caller = match authenticate(&st, &host, &parts.headers) {
        Ok(c) => c,
        Err(failure) => {
            let reason = match &failure {
                AuthFailure::Missing => "no bearer token".to_string(),
                AuthFailure::Invalid(e) => e.to_string(),
            };
            audit::record(&AuditEvent {
                request_id: &reply.request_id,
                principal: "anonymous",
                action: "keyvault.authenticate",
                resource: &host.vault,
                allowed: false,
                reason: &reason,
            });
            return reply.error(&st, &VaultError::Unauthorized(failure));
        }
    };
    // (b) api-version, (c) route, then the body.
    let params = match query_params(parts.uri.query()) {
        Ok(p) => p,
        Err(e) => return reply.error(&st, &e),
    };
    let api_version = match param(&params, "api-version") {
        Some(v) if valid_api_version(v) => v.to_string(),
        Some(v) => {
            let v: String = v.chars().take(64).collect();
            return reply.error(
                &st,
                &VaultError::BadParameter(format!(
                    "The api-version '{v}' is invalid; use one such as 7.5 or 2025-07-01."
                )),
            );
        }
        None => {
            return reply.error(
                &st,
                &VaultError::BadParameter(
                    "The 'api-version' query parameter is required (e.g. api-version=7.5).".into(),
                ),
            );
        }
    };
    let op = match route(parts.method.as_str(), parts.uri.path()) {
        Ok(op) => op,
        Err(e) => return reply.error(&st, &e),
    };
    let inline = st.inline_secret_reads && matches!(op, Op::Get(..));
    let body = match axum::body::to_bytes(body, MAX_VAULT_BODY).await {
        Ok(b) => b,
        Err(_) => return reply.error(&st, &VaultError::BodyTooLarge(MAX_VAULT_BODY)),
    };
    let maxresults = param(&params, "maxresults").map(str::to_string);
    let skiptoken = param(&params, "$skiptoken").map(str::to_string);
    let svc = st.vault.clone();
    let request_id = reply.request_id.clone();
    let call = move || {
        let ctx = Ctx { host: &host, caller: &caller, request_id: &request_id, api_version: &api_version };
        let paging = Paging { maxresults: maxresults.as_deref(), skiptoken: skiptoken.as_deref() };
        dispatch(&svc, &ctx, op, paging, &body)
    };
    // On SQLite a secret read is two lookups in the store's read cache, or on a miss two indexed
    // queries on a pooled reader connection (WAL: never behind a writer's fsync), microseconds: it runs
    // in place, saving two thread hand-offs per read.
    // Everything that writes, lists or pages, and every call to a networked database, goes to the
    // blocking pool.
    let outcome = if inline {
        call()
    } else {
        tokio::task::spawn_blocking(call)
            .await
            .unwrap_or_else(|join| Err(VaultError::Internal(format!("task: {join}"))))
    };
    match outcome {
        Ok(Some(value)) => reply.finish(&st, json(200, &value)),
        Ok(None) => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            reply.finish(&st, resp)
        }
        Err(e) => reply.error(&st, &e),
    }
}

/// Calls the service; `None` is an empty 204 reply (purge).
fn dispatch(
    svc: &VaultService,
    ctx: &Ctx<'_>,
    op: Op,
    paging: Paging<'_>,
    body: &Bytes,
) -> Result<Option<serde_json::Value>, VaultError> {
    fn to_json<T: serde::Serialize>(v: Result<T, VaultError>) -> Result<Option<serde_json::Value>, VaultError> {
        let v = v?;
        serde_json::to_value(&v).map(Some).map_err(|e| VaultError::Internal(format!("serialising a reply: {e}")))
    }
    match op {
        Op::Set(name) => to_json(svc.set_secret(ctx, &name, body)),
        Op::Get(name, version) => to_json(svc.get_secret(ctx, &name, version.as_deref())),
        Op::Update(name, version) => to_json(svc.update_secret(ctx, &name, version.as_deref(), body)),
        Op::List => to_json(svc.list_secrets(ctx, paging)),
        Op::Versions(name) => to_json(svc.list_versions(ctx, &name, paging)),
        Op::Delete(name) => to_json(svc.delete_secret(ctx, &name)),
        Op::GetDeleted(name) => to_json(svc.get_deleted(ctx, &name)),
        Op::ListDeleted => to_json(svc.list_deleted(ctx, paging)),
        Op::Recover(name) => to_json(svc.recover(ctx, &name)),
        Op::Purge(name) => svc.purge(ctx, &name).map(|()| None),
        Op::Backup(name) => to_json(svc.backup(ctx, &name)),
        Op::Restore => to_json(svc.restore(ctx, body)),
    }
}

/// Purges expired soft-deleted secrets and vaults now and every `every` until `shutdown` flips.
pub async fn purge_expired_periodically(
    vault: std::sync::Arc<VaultService>,
    every: std::time::Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let v = vault.clone();
                match tokio::task::spawn_blocking(move || v.purge_expired()).await {
                    Ok(Ok((0, 0))) => {}
                    Ok(Ok((secrets, vaults))) => tracing::info!(secrets, vaults, "purged soft-deleted objects past their retention"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "purging expired soft-deleted objects failed; will retry"),
                    Err(e) => tracing::warn!(error = %e, "the purge task failed"),
                }
            }
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}
