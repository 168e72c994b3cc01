//! Hosted cluster issuers: `https://HOST/oidc/{tenant}/{cluster}/` serves OIDC discovery and the
//! JWKS of the key wid signs that cluster's service-account tokens with.

use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::json;
use wid_core::model::ClusterIssuer;

use super::{AppState, json};

fn hosted_issuer(st: &AppState, tenant: &str, cluster: &str) -> Option<(String, uuid::Uuid)> {
    let issuer = format!("{}/oidc/{tenant}/{cluster}/", st.public_url);
    let dir = st.directory.read().unwrap_or_else(|p| p.into_inner());
    let c = dir.cluster_by_issuer(&issuer)?;
    matches!(c.issuer, ClusterIssuer::Hosted { .. }).then(|| (issuer, c.cluster_id))
}

fn not_found() -> Response {
    json(404, &json!({"error": {"code": "NotFound", "message": "No hosted cluster issuer at this URL."}}))
}

/// `GET /oidc/{tenant}/{cluster}/.well-known/openid-configuration`.
pub async fn discovery(State(st): State<AppState>, Path((tenant, cluster)): Path<(String, String)>) -> Response {
    let Some((issuer, _)) = hosted_issuer(&st, &tenant, &cluster) else { return not_found() };
    json(
        200,
        &json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}openid/v1/jwks"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }),
    )
}

/// `GET /oidc/{tenant}/{cluster}/openid/v1/jwks`.
pub async fn jwks(State(st): State<AppState>, Path((tenant, cluster)): Path<(String, String)>) -> Response {
    let Some((_, id)) = hosted_issuer(&st, &tenant, &cluster) else { return not_found() };
    let set = st.sts.keys().jwks(&wid_sts::keys::cluster_purpose(&id), st.clock.now());
    json(200, &serde_json::to_value(&set).unwrap_or_default())
}
