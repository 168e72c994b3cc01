//! The subset of Microsoft Graph that az and the SDK tools use to name principals: the caller
//! (`GET /v1.0/me`), service principals by filter or id, and `POST /v1.0/directoryObjects/getByIds`.
//! Graph's JSON shapes (`@odata.context`, `@odata.type`) and error format.
//!
//! Every principal of the tenant is a service principal: a managed identity
//! (`servicePrincipalType: ManagedIdentity`) or an application such as the admin. Reads need a valid
//! token of the tenant and no role, as Entra lets any member read directory objects. `/me` with an
//! application token answers the caller's service principal — an extension: Entra refuses application
//! tokens there, and az's `ad signed-in-user show` is the question "who am I".
//!
//! Tokens: for this server's own audience (its management API: a cloud registered with az names this
//! server as its Graph too) and, with `--azure-hostnames`, for `https://graph.microsoft.com`.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde_json::{Value, json};
use uuid::Uuid;
use wid_core::directory::Directory;

use super::{AppState, auth, json};

/// Graph's host and resource, answered with `--azure-hostnames`.
pub const AZURE_GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

const CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata";

/// `GET /v1.0/me`.
pub async fn me(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let caller = match authenticate(&st, &headers) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let dir = st.directory.read().unwrap_or_else(|p| p.into_inner());
    match service_principal(&dir, &caller.principal_id) {
        Some(sp) => json(200, &entity(sp)),
        None => not_found(&headers, &caller.principal_id.to_string()),
    }
}

/// `GET /v1.0/servicePrincipals/{id}` (by object id).
pub async fn service_principal_by_id(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authenticate(&st, &headers) {
        return *r;
    }
    let dir = st.directory.read().unwrap_or_else(|p| p.into_inner());
    match Uuid::parse_str(&id).ok().and_then(|id| service_principal(&dir, &id)) {
        Some(sp) => json(200, &entity(sp)),
        None => not_found(&headers, &id),
    }
}

/// `GET /v1.0/servicePrincipals?$filter=…`: the filters az sends, `appId eq 'X'` and
/// `servicePrincipalNames/any(c:c eq 'X')` (a service principal's names are its app id and, for a
/// managed identity, its resource id).
pub async fn service_principals(State(st): State<AppState>, RawQuery(query): RawQuery, headers: HeaderMap) -> Response {
    if let Err(r) = authenticate(&st, &headers) {
        return *r;
    }
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let filter = params.iter().find(|(k, _)| k == "$filter").map(|(_, v)| v.trim());
    let Some(name) = filter.and_then(filter_value) else {
        return error(
            &headers,
            400,
            "Request_UnsupportedQuery",
            "wid answers servicePrincipals filtered by appId eq '…' or servicePrincipalNames/any(c:c eq '…').",
        );
    };
    let dir = st.directory.read().unwrap_or_else(|p| p.into_inner());
    let found: Vec<Value> = by_name(&dir, &name).into_iter().collect();
    json(200, &json!({"@odata.context": format!("{CONTEXT}#servicePrincipals"), "value": found}))
}

/// `POST /v1.0/directoryObjects/getByIds` `{"ids": [...], "types": [...]}`: the objects found, in
/// the order asked, unknown ids left out (as Graph).
pub async fn get_by_ids(State(st): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = authenticate(&st, &headers) {
        return *r;
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(&headers, 400, "Request_BadRequest", "The request body is not JSON.");
    };
    let Some(ids) = req.get("ids").and_then(Value::as_array) else {
        return error(&headers, 400, "Request_BadRequest", "The request body needs an 'ids' array.");
    };
    let types: Vec<&str> =
        req.get("types").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if !types.is_empty() && !types.iter().any(|t| t.eq_ignore_ascii_case("servicePrincipal")) {
        return json(200, &json!({"@odata.context": format!("{CONTEXT}#directoryObjects"), "value": []}));
    }
    let dir = st.directory.read().unwrap_or_else(|p| p.into_inner());
    let found: Vec<Value> = ids
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|id| Uuid::parse_str(id).ok())
        .filter_map(|id| service_principal(&dir, &id))
        .collect();
    json(200, &json!({"@odata.context": format!("{CONTEXT}#directoryObjects"), "value": found}))
}

/// The caller of a Graph call: a token for this server's own audience or, with `--azure-hostnames`,
/// Graph's.
fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<wid_core::Caller, Box<Response>> {
    let azure = st.azure_hostnames.then_some(AZURE_GRAPH_RESOURCE);
    let audiences = std::iter::once(st.public_url.as_str()).chain(azure);
    auth::bearer_for(st, headers, audiences)
        .map_err(|message| Box::new(error(headers, 401, "InvalidAuthenticationToken", &message)))
}

/// `X` of `appId eq 'X'` or `servicePrincipalNames/any(c:c eq 'X')` (OData quotes doubled).
fn filter_value(filter: &str) -> Option<String> {
    let quoted = if let Some(rest) = filter.strip_prefix("appId eq ") {
        rest
    } else {
        let rest = filter.strip_prefix("servicePrincipalNames/any(")?.strip_suffix(')')?;
        let (var, cond) = rest.split_once(':')?;
        cond.strip_prefix(var)?.trim_start().strip_prefix("eq ")?
    };
    let inner = quoted.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some(inner.replace("''", "'"))
}

/// The service principal an app id or resource id names.
fn by_name(dir: &Directory, name: &str) -> Option<Value> {
    let client = Uuid::parse_str(name).ok()?;
    let principal = dir
        .identity_by_client(&client)
        .map(|e| e.identity.principal_id)
        .or_else(|| dir.app_by_client(&client).map(|a| a.principal_id))?;
    service_principal(dir, &principal)
}

/// A principal of the tenant as Graph's `servicePrincipal`.
fn service_principal(dir: &Directory, principal_id: &Uuid) -> Option<Value> {
    let client = dir.client_of_principal(principal_id)?;
    let (name, kind, names) = if let Some(e) = dir.identity_by_client(&client) {
        let arm_id = e.identity.arm_id();
        (e.identity.name.clone(), "ManagedIdentity", vec![client.to_string(), arm_id])
    } else {
        let app = dir.app_by_client(&client)?;
        (app.display_name.clone(), "Application", vec![client.to_string()])
    };
    Some(json!({
        "@odata.type": "#microsoft.graph.servicePrincipal",
        "id": principal_id,
        "appId": client,
        "displayName": name,
        "servicePrincipalType": kind,
        "servicePrincipalNames": names,
        "accountEnabled": true,
    }))
}

/// A single object, with its context.
fn entity(mut sp: Value) -> Value {
    if let Some(o) = sp.as_object_mut() {
        o.insert("@odata.context".into(), json!(format!("{CONTEXT}#servicePrincipals/$entity")));
    }
    sp
}

fn not_found(headers: &HeaderMap, id: &str) -> Response {
    let message =
        format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present.");
    error(headers, 404, "Request_ResourceNotFound", &message)
}

/// Graph's error body, with the request ids of its `innerError`.
fn error(headers: &HeaderMap, status: u16, code: &str, message: &str) -> Response {
    let client_request_id = headers.get("client-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut resp = json(
        status,
        &json!({"error": {"code": code, "message": message, "innerError": {
            "date": wid_core::clock::rfc3339(now),
            "request-id": Uuid::new_v4(),
            "client-request-id": client_request_id,
        }}}),
    );
    if status == 401 {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, axum::http::HeaderValue::from_static("Bearer"));
    }
    resp
}
