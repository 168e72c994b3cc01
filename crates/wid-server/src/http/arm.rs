//! The management API (ARM-shaped). Paths are routed case-insensitively by `wid_arm::route`, the
//! caller is authenticated (all but the public `GET /metadata/endpoints`), and the (synchronous,
//! storage-bound) call runs off the executor.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::Method;
use axum::response::Response;
use serde_json::json;
use wid_arm::route::{ArmRoute, RouteError};
use wid_arm::{Actor, ArmError, Management, Reply};

use super::{AppState, Authenticated, MAX_BODY, json};

fn arm_error(st: &AppState, e: &ArmError) -> Response {
    let w = e.to_wire();
    if let ArmError::Internal(cause) = e {
        tracing::error!(cause, "management request failed");
    }
    st.metrics.request("arm", w.status);
    json(w.status, &json!({"error": {"code": w.code, "message": w.message}}))
}

/// Every path not routed elsewhere.
pub async fn handle(State(st): State<AppState>, req: Request) -> Response {
    let route = match wid_arm::route::parse(req.uri().path()) {
        Ok(r) => r,
        Err(RouteError::NotArm) => {
            st.metrics.request("other", 404);
            return json(
                404,
                &json!({"error": {"code": "NotFound", "message": format!("No endpoint at '{}'.", req.uri().path())}}),
            );
        }
        Err(RouteError::BadSegment(s)) => {
            return arm_error(
                &st,
                &ArmError::InvalidResourceName(format!(
                    "The path segment '{}' is not a valid resource name.",
                    s.escape_debug()
                )),
            );
        }
    };
    // The cloud's metadata is public, as Azure's: `az cloud register` reads it before any sign-in, and
    // asks `//metadata/endpoints` when the URL it is given ends with a slash.
    if route == ArmRoute::MetadataEndpoints && req.method() == Method::GET {
        st.metrics.request("arm", 200);
        return json(200, &st.arm.metadata_endpoints());
    }
    let azure_names = st.under_azure_management(req.uri(), req.headers());
    let (mut parts, body) = req.into_parts();
    let caller = match Authenticated::from_request_parts(&mut parts, &st).await {
        Ok(Authenticated(c)) => c,
        Err(rejection) => return rejection,
    };
    let request_id = uuid::Uuid::new_v4().to_string();
    let caller = Actor { caller, request_id: request_id.clone(), azure_names };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return arm_error(
                &st,
                &ArmError::RequestBodyTooLarge(format!("The request body is larger than {MAX_BODY} bytes.")),
            );
        }
    };
    let method = parts.method.clone();
    let query = Query::parse(parts.uri.query());
    let arm = st.arm.clone();
    let outcome = tokio::task::spawn_blocking(move || dispatch(&arm, &caller, &method, route, &query, &body)).await;
    let mut resp = match outcome {
        Ok(Ok(reply)) => {
            let status = reply.status();
            st.metrics.request("arm", status);
            match reply.body() {
                Some(b) => json(status, b),
                None => {
                    let mut r = Response::new(axum::body::Body::empty());
                    *r.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
                    r
                }
            }
        }
        Ok(Err(e)) => arm_error(&st, &e),
        Err(join) => arm_error(&st, &ArmError::Internal(join.to_string())),
    };
    if let Ok(v) = axum::http::HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-ms-request-id", v);
    }
    resp
}

/// The OData query options the management API reads (`$filter`, `$top`); others (`api-version`
/// included) are ignored. A malformed query string reads as empty.
#[derive(Debug, Default)]
struct Query {
    filter: Option<String>,
    top: Option<String>,
    /// `format` of `listClusterUserCredential` (`exec` or `azure`).
    format: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let pairs: Vec<(String, String)> = query.and_then(|q| serde_urlencoded::from_str(q).ok()).unwrap_or_default();
        let get = |name: &str| pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
        Query { filter: get("$filter"), top: get("$top"), format: get("format") }
    }
}

fn method_not_allowed(method: &Method) -> ArmError {
    ArmError::MethodNotAllowed(format!("The method '{method}' is not supported for this resource."))
}

fn dispatch(
    arm: &Management,
    caller: &Actor,
    method: &Method,
    route: ArmRoute,
    query: &Query,
    body: &Bytes,
) -> Result<Reply, ArmError> {
    let m = method.as_str();
    let filter = query.filter.as_deref();
    match (m, route) {
        ("GET", ArmRoute::Subscriptions) => arm.list_subscriptions(caller),
        ("GET", ArmRoute::Tenants) => Ok(arm.list_tenants()),
        ("GET", ArmRoute::MetadataEndpoints) => Ok(Reply::Ok(arm.metadata_endpoints())),
        ("GET", ArmRoute::Subscription { sub }) => arm.get_subscription(caller, &sub),
        ("GET", ArmRoute::Groups { sub }) => arm.list_groups(caller, &sub),
        ("PUT", ArmRoute::Group { sub, rg }) => arm.put_group(caller, &sub, &rg, body),
        ("GET" | "HEAD", ArmRoute::Group { sub, rg }) => arm.get_group(caller, &sub, &rg),
        ("DELETE", ArmRoute::Group { sub, rg }) => arm.delete_group(caller, &sub, &rg),
        ("GET", ArmRoute::Identities { sub, rg }) => arm.list_identities(caller, &sub, rg.as_deref()),
        ("PUT" | "PATCH", ArmRoute::Identity { sub, rg, name }) => arm.put_identity(caller, &sub, &rg, &name, body),
        ("GET", ArmRoute::Identity { sub, rg, name }) => arm.get_identity(caller, &sub, &rg, &name),
        ("DELETE", ArmRoute::Identity { sub, rg, name }) => arm.delete_identity(caller, &sub, &rg, &name),
        ("GET", ArmRoute::Credentials { sub, rg, identity }) => arm.list_credentials(caller, &sub, &rg, &identity),
        ("PUT", ArmRoute::Credential { sub, rg, identity, name }) => {
            arm.put_credential(caller, &sub, &rg, &identity, &name, body)
        }
        ("GET", ArmRoute::Credential { sub, rg, identity, name }) => {
            arm.get_credential(caller, &sub, &rg, &identity, &name)
        }
        ("DELETE", ArmRoute::Credential { sub, rg, identity, name }) => {
            arm.delete_credential(caller, &sub, &rg, &identity, &name)
        }
        ("GET", ArmRoute::Clusters { sub, rg }) => arm.list_clusters(caller, &sub, rg.as_deref()),
        ("PUT" | "PATCH", ArmRoute::Cluster { sub, rg, name }) => arm.put_cluster(caller, &sub, &rg, &name, body),
        ("GET", ArmRoute::Cluster { sub, rg, name }) => arm.get_cluster(caller, &sub, &rg, &name),
        ("DELETE", ArmRoute::Cluster { sub, rg, name }) => arm.delete_cluster(caller, &sub, &rg, &name),
        ("POST", ArmRoute::ClusterToken { sub, rg, name }) => arm.service_account_token(caller, &sub, &rg, &name, body),
        ("GET", ArmRoute::IdentityBindings { sub, rg, cluster }) => arm.list_bindings(caller, &sub, &rg, &cluster),
        ("PUT", ArmRoute::IdentityBinding { sub, rg, cluster, name }) => {
            arm.put_binding(caller, &sub, &rg, &cluster, &name, body)
        }
        ("GET", ArmRoute::IdentityBinding { sub, rg, cluster, name }) => {
            arm.get_binding(caller, &sub, &rg, &cluster, &name)
        }
        ("DELETE", ArmRoute::IdentityBinding { sub, rg, cluster, name }) => {
            arm.delete_binding(caller, &sub, &rg, &cluster, &name)
        }
        ("POST", ArmRoute::ClusterCredential { sub, rg, name, action }) => {
            arm.cluster_credential(caller, &sub, &rg, &name, &action, query.format.as_deref())
        }
        ("GET", ArmRoute::Resources { sub, rg }) => {
            arm.list_resources(caller, &sub, rg.as_deref(), filter, query.top.as_deref())
        }
        ("GET", ArmRoute::Vaults { sub, rg }) => arm.list_vaults(caller, &sub, rg.as_deref()),
        ("PUT" | "PATCH", ArmRoute::Vault { sub, rg, name }) => arm.put_vault(caller, &sub, &rg, &name, body),
        ("GET", ArmRoute::Vault { sub, rg, name }) => arm.get_vault(caller, &sub, &rg, &name),
        ("DELETE", ArmRoute::Vault { sub, rg, name }) => arm.delete_vault(caller, &sub, &rg, &name),
        ("GET", ArmRoute::DeletedVaults { sub }) => arm.list_deleted_vaults(caller, &sub),
        ("GET", ArmRoute::ManagedHsms { sub, rg }) => arm.list_managed_hsms(&sub, rg.as_deref()),
        ("GET", ArmRoute::DeletedVault { sub, location, name }) => {
            arm.get_deleted_vault(caller, &sub, &location, &name)
        }
        ("POST", ArmRoute::PurgeDeletedVault { sub, location, name }) => {
            arm.purge_deleted_vault(caller, &sub, &location, &name)
        }
        ("GET", ArmRoute::RoleDefinitions { scope }) => arm.list_role_definitions(caller, &scope, filter),
        ("GET", ArmRoute::RoleDefinition { scope, name }) => arm.get_role_definition(caller, &scope, &name),
        ("GET", ArmRoute::RoleAssignments { scope }) => arm.list_role_assignments(caller, &scope, filter),
        ("PUT", ArmRoute::RoleAssignment { scope, name }) => arm.put_role_assignment(caller, &scope, &name, body),
        ("GET", ArmRoute::RoleAssignment { scope, name }) => arm.get_role_assignment(caller, &scope, &name),
        ("DELETE", ArmRoute::RoleAssignment { scope, name }) => arm.delete_role_assignment(caller, &scope, &name),
        (_, ArmRoute::UnknownType(t)) => Err(ArmError::InvalidResourceType(format!(
            "The resource type '{t}' could not be found; wid serves resource groups, userAssignedIdentities (with federatedIdentityCredentials), managedClusters (with serviceAccountToken; wid keeps no cluster credentials, so get a kubeconfig from the cluster itself), Microsoft.KeyVault vaults and deletedVaults, and Microsoft.Authorization roleDefinitions and roleAssignments."
        ))),
        _ => Err(method_not_allowed(method)),
    }
}
