//! Entra-shaped endpoints: the token endpoint, OIDC metadata, the JWKS and instance discovery.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::Response;
use serde_json::json;
use uuid::Uuid;
use wid_core::audit::{self, AuditEvent};
use wid_sts::{StsError, TokenRequest};

use super::{AppState, json};

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    issue(st, &tenant, query.as_deref(), &headers, &body, false).await
}

/// `POST /identitybinding/{tenant}/oauth2/v2.0/token`: the token proxy of identity bindings
/// (`AZURE_KUBERNETES_TOKEN_PROXY` = `https://HOST/identitybinding`), the same request and
/// answers as the token endpoint.
pub async fn bound_token(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    issue(st, &tenant, query.as_deref(), &headers, &body, true).await
}

async fn issue(
    st: AppState,
    tenant: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    bound: bool,
) -> Response {
    let started = Instant::now();
    let correlation = correlation_id(headers, query);
    let (client, scope, outcome) = match TokenRequest::parse(body) {
        Ok(req) => {
            let (client, scope) = (req.client_id.clone().unwrap_or_default(), req.scope.clone().unwrap_or_default());
            let outcome =
                if bound { st.sts.exchange_bound(tenant, req).await } else { st.sts.exchange(tenant, req).await };
            (client, scope, outcome)
        }
        Err(e) => (String::new(), String::new(), Err(e)),
    };
    let resp = match outcome {
        Ok(t) => {
            audit::record(&AuditEvent {
                request_id: &correlation,
                principal: &t.principal_id.to_string(),
                action: "token.issue",
                resource: &t.resource,
                allowed: true,
                reason: &t.admitted_by,
            });
            st.metrics.token("issued".into());
            let mut resp = json(
                200,
                &json!({
                    "token_type": "Bearer",
                    "expires_in": t.expires_in,
                    "ext_expires_in": t.expires_in,
                    "refresh_in": t.expires_in / 2,
                    "access_token": t.access_token,
                }),
            );
            let h = resp.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            resp
        }
        Err(e) => {
            let resp = aad_error(&st, &e, &correlation);
            // The client id and scope as presented (they may be anything): bounded, printable.
            let bounded = |s: &str| s.chars().filter(|c| c.is_ascii_graphic()).take(128).collect::<String>();
            let code = format!("AADSTS{}", e.to_wire(&st.tenant_id.to_string()).code);
            audit::record(&AuditEvent {
                request_id: &correlation,
                principal: &bounded(&client),
                action: "token.issue",
                resource: &bounded(&scope),
                allowed: false,
                reason: &code,
            });
            resp
        }
    };
    st.metrics.token_latency.observe(started.elapsed());
    st.metrics.request("token", resp.status().as_u16());
    resp
}

fn correlation_id(headers: &HeaderMap, query: Option<&str>) -> String {
    let valid = |s: &str| Uuid::parse_str(s).ok().map(|u| u.to_string());
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(valid)
        .or_else(|| {
            query.and_then(|q| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                    .ok()?
                    .into_iter()
                    .find(|(k, _)| k == "client-request-id")
                    .and_then(|(_, v)| valid(&v))
            })
        })
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

/// Renders a refusal in Entra's JSON shape.
fn aad_error(st: &AppState, e: &StsError, correlation: &str) -> Response {
    let tenant = st.tenant_id.to_string();
    let wire = e.to_wire(&tenant);
    let trace = Uuid::new_v4().to_string();
    let now = st.clock.now();
    let ts = time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z")).ok()
        })
        .unwrap_or_default();
    if let StsError::Internal(cause) = e {
        tracing::error!(trace_id = %trace, cause, "token request failed");
    }
    st.metrics.token(wire.code.to_string());
    json(
        wire.status,
        &json!({
            "error": wire.error,
            "error_description": format!("{} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {ts}", wire.description),
            "error_codes": [wire.code],
            "timestamp": ts,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": format!("{}/error?code={}", st.public_url, wire.code),
        }),
    )
}

/// Our tenant id if `tenant` names it; otherwise the AADSTS90002 response.
fn tenant_or_404(st: &AppState, tenant: &str) -> Result<String, Box<Response>> {
    let ours = st.tenant_id.to_string();
    if tenant.eq_ignore_ascii_case(&ours) {
        Ok(ours)
    } else {
        Err(Box::new(aad_error(st, &StsError::UnknownTenant(tenant.to_string()), &Uuid::new_v4().to_string())))
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`, naming the host it was asked on (this
/// server's, or Azure's sign-in host with `--azure-hostnames`).
pub async fn openid_configuration(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let tid = match tenant_or_404(&st, &tenant) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let u = &st.login_base_of(&uri, &headers);
    let host = u.trim_start_matches("https://");
    json(
        200,
        &json!({
            "token_endpoint": format!("{u}/{tid}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": format!("{u}/{tid}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{u}/{tid}/v2.0"),
            "request_uri_parameter_supported": false,
            "userinfo_endpoint": format!("{u}/oidc/userinfo"),
            "authorization_endpoint": format!("{u}/{tid}/oauth2/v2.0/authorize"),
            "device_authorization_endpoint": format!("{u}/{tid}/oauth2/v2.0/devicecode"),
            "http_logout_supported": true,
            "frontchannel_logout_supported": true,
            "end_session_endpoint": format!("{u}/{tid}/oauth2/v2.0/logout"),
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "name", "tid", "ver", "at_hash", "c_hash", "email"],
            "tenant_region_scope": null,
            "cloud_instance_name": host,
            "cloud_graph_host_name": host,
            "msgraph_host": host,
            "rbac_url": u,
        }),
    )
}

/// `GET /{tenant}/.well-known/openid-configuration` (v1 metadata; the access-token issuer).
pub async fn openid_configuration_v1(
    State(st): State<AppState>,
    Path(tenant): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let tid = match tenant_or_404(&st, &tenant) {
        Ok(t) => t,
        Err(r) => return *r,
    };
    let u = &st.login_base_of(&uri, &headers);
    json(
        200,
        &json!({
            "token_endpoint": format!("{u}/{tid}/oauth2/token"),
            "jwks_uri": format!("{u}/{tid}/discovery/keys"),
            "issuer": st.sts.config().access_issuer(),
            "authorization_endpoint": format!("{u}/{tid}/oauth2/authorize"),
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "token id_token", "token"],
            "subject_types_supported": ["pairwise"],
        }),
    )
}

/// `GET /{tenant}/discovery/v2.0/keys`: the keys access tokens are signed with.
pub async fn keys(State(st): State<AppState>, Path(tenant): Path<String>) -> Response {
    if let Err(r) = tenant_or_404(&st, &tenant) {
        return *r;
    }
    let set = st.sts.keys().jwks(wid_sts::keys::STS_PURPOSE, st.clock.now());
    let issuer = st.sts.config().access_issuer();
    let keys: Vec<serde_json::Value> = set
        .keys
        .iter()
        .map(|k| {
            let mut v = serde_json::to_value(k).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("issuer".into(), json!(issuer));
            }
            v
        })
        .collect();
    json(200, &json!({ "keys": keys }))
}

/// `GET /common/discovery/instance?api-version=1.1&authorization_endpoint=URL`: the metadata of the
/// authority MSAL asks about (Go and Java MSAL ask Azure's sign-in host, whatever authority they
/// use): this server, or Azure's sign-in host with `--azure-hostnames`; any other authority is
/// Entra's AADSTS50049 `invalid_instance`. Without `authorization_endpoint`, the host asked.
pub async fn instance_discovery(
    State(st): State<AppState>,
    RawQuery(query): RawQuery,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let endpoint = params.iter().find(|(k, _)| k == "authorization_endpoint").map(|(_, v)| v.as_str());
    // `https://HOST[:PORT]/TENANT/oauth2/v2.0/authorize`: Entra answers for that host and tenant.
    let (asked, tenant) = match endpoint {
        Some(e) => {
            let mut parts =
                e.split_once("://").map_or(e, |(_, rest)| rest).split(['?', '#']).next().unwrap_or("").split('/');
            (parts.next().unwrap_or("").to_string(), parts.next().filter(|t| !t.is_empty()).map(str::to_string))
        }
        None => (super::request_authority(&uri, &headers).unwrap_or_default(), None),
    };
    let Some(u) = st.login_base(&asked) else {
        let e = StsError::UnknownInstance { asked, server: st.public_url.clone() };
        return aad_error(&st, &e, &correlation_id(&headers, query.as_deref()));
    };
    let tenant = tenant.unwrap_or_else(|| st.tenant_id.to_string());
    let host = u.trim_start_matches("https://");
    json(
        200,
        &json!({
            "tenant_discovery_endpoint": format!("{u}/{tenant}/v2.0/.well-known/openid-configuration"),
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }),
    )
}
