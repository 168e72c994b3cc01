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
    // Public, and under any number of leading slashes (`az cloud register` with a URL ending in `/`).
    for path in ["/metadata/endpoints", "//metadata/endpoints", "///METADATA/Endpoints/"] {
        let (st, _, body) = send(&s, get("localhost:8443", &format!("{path}?api-version=2022-09-01"))).await;
        assert_eq!(st, StatusCode::OK, "{path}: {body}");
        let meta: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(meta["resourceManager"], "https://localhost:8443/");
        assert_eq!(meta["suffixes"]["keyVaultDns"], "vault.localhost:8443");
    }
    let path = format!("/{}/v2.0/.well-known/openid-configuration", s.tenant_id);
    let (st, _, body) = send(&s, get("localhost:8443", &path)).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let oidc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(oidc["token_endpoint"], format!("https://localhost:8443/{}/oauth2/v2.0/token", s.tenant_id));
}

/// Instance discovery as Go and Java MSAL send it (to Azure's sign-in host, naming their authority).
fn instance_discovery(host: &str, authority: &str, tenant: &str) -> Request<Body> {
    let endpoint = format!("https://{authority}/{tenant}/oauth2/v2.0/authorize");
    let query = serde_urlencoded::to_string([("api-version", "1.1"), ("authorization_endpoint", &endpoint)]).unwrap();
    get(host, &format!("/common/discovery/instance?{query}"))
}

#[tokio::test]
async fn instance_discovery_answers_for_this_server_and_refuses_other_authorities() {
    let dir = tempfile::tempdir().unwrap();
    let s = assembled(&dir).await;
    let (st, _, body) = send(
        &s,
        instance_discovery("login.microsoftonline.com", "LOCALHOST:8443", "00000000-0000-0000-0000-000000000001"),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let meta: Value = serde_json::from_str(&body).unwrap();
    // The tenant is the one asked about: an unknown one is refused when its metadata is fetched.
    let tenant_discovery =
        "https://localhost:8443/00000000-0000-0000-0000-000000000001/v2.0/.well-known/openid-configuration";
    assert_eq!(meta["tenant_discovery_endpoint"], tenant_discovery);
    assert_eq!(meta["metadata"][0]["preferred_network"], "localhost:8443");

    // Without the mode, Azure's Key Vault names are not vaults here.
    let (st, _, body) = send(&s, get("kv-a.vault.azure.net", "/secrets/x?api-version=7.5")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{body}");

    // Azure's own host is someone else's unless --azure-hostnames says otherwise: Entra's refusal.
    for authority in ["login.microsoftonline.com", "wid.example:8443", "localhost:9443"] {
        let (st, _, body) = send(&s, instance_discovery("localhost:8443", authority, "common")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body}");
        let err: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(err["error"], "invalid_instance");
        assert_eq!(err["error_codes"][0], 50049);
        let description = err["error_description"].as_str().unwrap();
        assert!(description.starts_with("AADSTS50049: "), "{description}");
        assert!(description.contains(&format!("'{authority}'")), "{description}");
        assert!(description.contains("https://localhost:8443/"), "{description}");
    }
}

#[tokio::test]
async fn with_azure_hostnames_the_sign_in_host_describes_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::new(dir.path().join("data"));
    cfg.azure_hostnames = true;
    let s = wid_server::assemble(cfg, Arc::new(SystemClock), PORT).await.unwrap();
    let tid = s.tenant_id;

    let (st, _, body) =
        send(&s, instance_discovery("login.microsoftonline.com", "login.microsoftonline.com", &tid.to_string())).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let meta: Value = serde_json::from_str(&body).unwrap();
    let want = format!("https://login.microsoftonline.com/{tid}/v2.0/.well-known/openid-configuration");
    assert_eq!(meta["tenant_discovery_endpoint"], want.as_str());

    // Vaults answer under Azure's Key Vault name too, challenging for Azure's resource and sign-in host.
    let (st, headers, body) = send(&s, get("kv-a.vault.azure.net", "/secrets/x?api-version=7.5")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{body}");
    let want = format!(
        "Bearer authorization=\"https://login.microsoftonline.com/{tid}\", resource=\"https://vault.azure.net\""
    );
    assert_eq!(headers[header::WWW_AUTHENTICATE], want.as_str());
    let (_, headers, _) = send(&s, get("kv-a.vault.localhost:8443", "/secrets/x?api-version=7.5")).await;
    let want =
        format!("Bearer authorization=\"https://localhost:8443/{tid}\", resource=\"https://vault.localhost:8443\"");
    assert_eq!(headers[header::WWW_AUTHENTICATE], want.as_str());

    // MSAL accepts an issuer only on the authority's host (or a trusted one): each host names itself.
    let path = format!("/{tid}/v2.0/.well-known/openid-configuration");
    for (host, base) in [
        ("login.microsoftonline.com", "https://login.microsoftonline.com"),
        ("login.microsoftonline.com:443", "https://login.microsoftonline.com"),
        ("localhost:8443", "https://localhost:8443"),
        ("elsewhere.example", "https://localhost:8443"),
    ] {
        let (st, _, body) = send(&s, get(host, &path)).await;
        assert_eq!(st, StatusCode::OK, "{body}");
        let oidc: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(oidc["issuer"], format!("{base}/{tid}/v2.0"), "{host}");
        assert_eq!(oidc["token_endpoint"], format!("{base}/{tid}/oauth2/v2.0/token"), "{host}");
    }
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
