//! The router without a socket: requests go straight to the assembled server's router with
//! `tower::ServiceExt::oneshot`, for what needs no TLS, HTTP version or connection behaviour —
//! readiness, discovery documents, routing by Host to the Key Vault data plane, and the protocol
//! errors each surface answers before any token is checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;
use wid_core::SystemClock;
use wid_server::{Assembled, ServerConfig};

/// The port the server would listen on: it is part of its URL and vault host names.
const PORT: u16 = 8443;

async fn assembled(dir: &tempfile::TempDir) -> Assembled {
    wid_server::assemble(ServerConfig::new(dir.path().join("data")), Arc::new(SystemClock), PORT).await.unwrap()
}

async fn send(server: &Assembled, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = server.router().oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).unwrap())
}

fn get(host: &str, path: &str) -> Request<Body> {
    Request::get(path).header(header::HOST, host).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn not_ready_until_served_but_alive() {
    let dir = tempfile::tempdir().unwrap();
    let s = assembled(&dir).await;
    let (st, _, body) = send(&s, get("localhost:8443", "/readyz")).await;
    assert_eq!((st, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "starting"));
    let (st, _, body) = send(&s, get("localhost:8443", "/healthz")).await;
    assert_eq!((st, body.as_str()), (StatusCode::OK, "ok"));
}

#[tokio::test]
async fn discovery_documents_name_the_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let s = assembled(&dir).await;
    assert_eq!(s.public_url, "https://localhost:8443");
    let (st, _, body) = send(&s, get("localhost:8443", "/metadata/endpoints?api-version=2022-09-01")).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let meta: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(meta["resourceManager"], "https://localhost:8443/");
    assert_eq!(meta["suffixes"]["keyVaultDns"], "vault.localhost:8443");
    let path = format!("/{}/v2.0/.well-known/openid-configuration", s.tenant_id);
    let (st, _, body) = send(&s, get("localhost:8443", &path)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let oidc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(oidc["token_endpoint"], format!("https://localhost:8443/{}/oauth2/v2.0/token", s.tenant_id));
}

#[tokio::test]
async fn a_vault_host_is_routed_to_the_data_plane_and_challenged() {
    let dir = tempfile::tempdir().unwrap();
    let s = assembled(&dir).await;
    let (st, headers, body) = send(&s, get("kv1.vault.localhost:8443", "/secrets/db?api-version=7.5")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(
        headers[header::WWW_AUTHENTICATE],
        format!(
            "Bearer authorization=\"https://localhost:8443/{}\", resource=\"https://vault.localhost:8443\"",
            s.tenant_id
        )
    );
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["code"], "Unauthorized");
    // The same path on the server's own host goes to the management API, where it names nothing.
    let (st, _, body) = send(&s, get("localhost:8443", "/secrets/db?api-version=7.5")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "NotFound", "{body}");
}

#[tokio::test]
async fn the_token_endpoint_answers_in_entras_shape_for_an_unknown_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let s = assembled(&dir).await;
    let req = Request::post("/not-a-tenant/oauth2/v2.0/token")
        .header(header::HOST, "localhost:8443")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("grant_type=client_credentials"))
        .unwrap();
    let (st, _, body) = send(&s, req).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error_codes"][0], 90002, "{body}");
    assert!(err["error_description"].as_str().unwrap().starts_with("AADSTS90002:"), "{body}");
}
