//! The Key Vault data plane's HTTP protocol: host routing on the shared listener, the 401 challenge
//! before anything else, token checks, api-version, unknown paths and methods, headers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod vault_support;

use serde_json::json;
use vault_support::{API, Kv};

fn challenge(kv: &Kv) -> String {
    format!("Bearer authorization=\"{}/{}\", resource=\"https://vault.localhost:{}\"", kv.s.url, kv.s.tenant, kv.port)
}

#[tokio::test]
async fn challenge_precedes_everything() {
    let kv = Kv::start().await;
    let expected = challenge(&kv);
    assert_eq!(
        expected,
        format!(
            "Bearer authorization=\"https://localhost:{0}/{1}\", resource=\"https://vault.localhost:{0}\"",
            kv.port, kv.s.tenant
        )
    );
    let body =
        json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}});
    for client in [&kv.http, &kv.http1] {
        // The SDKs' first request: no token, no body, even for a PUT; unknown vaults, paths and
        // missing api-versions do not change the answer.
        for (method, vault, path) in [
            ("GET", "kv1", format!("/secrets/db/?api-version={API}")),
            ("PUT", "kv1", format!("/secrets/db?api-version={API}")),
            ("PUT", "nope", "/secrets/bad_name".to_string()),
            ("POST", "kv1", format!("/secrets/restore?api-version={API}")),
            ("GET", "kv1", "/no/such/path".to_string()),
            ("GET", "kv1", "/healthz".to_string()),
        ] {
            let url = format!("{}{path}", kv.vault_url(vault));
            let r = kv.send(client, None, method, &url, None).await;
            assert_eq!(r.status, 401, "{method} {url}: {}", r.body);
            assert_eq!(r.headers["www-authenticate"].to_str().unwrap(), expected);
            assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
            assert!(r.headers.contains_key("x-ms-request-id"));
            assert!(r.headers.contains_key("x-ms-keyvault-service-version"));
            assert_eq!(r.body, body);
        }
    }
    // A PUT carrying Content-Length: 0 explicitly, as Python sends it.
    let r = kv
        .http1
        .put(format!("{}/secrets/x?api-version={API}", kv.vault_url("kv1")))
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Vault hosts are case-insensitive.
    let r = kv.send(&kv.http, None, "GET", &format!("{}/secrets", kv.vault_url("KV1")), None).await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn every_token_refusal_repeats_the_challenge() {
    let kv = Kv::start().await;
    let expected = challenge(&kv);
    // A management-API token (wrong audience), garbage, another scheme.
    let cases = [
        (Some(kv.admin.as_str()), "AKV10022: Invalid audience."),
        (Some("not-a-jwt"), "AKV10001:"),
        (Some("eyJhbGciOiJSUzI1NiJ9.eyJ4IjoxfQ.c2ln"), "AKV1000"),
    ];
    for (token, prefix) in cases {
        let r = kv.call(token, "GET", "kv1", "/secrets", None).await;
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.headers["www-authenticate"].to_str().unwrap(), expected);
        assert_eq!(r.code().0, "Unauthorized");
        assert!(r.message().starts_with(prefix), "{}", r.message());
    }
    let r = kv
        .http
        .get(format!("{}/secrets?api-version={API}", kv.vault_url("kv1")))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"].to_str().unwrap(), expected);
}

#[tokio::test]
async fn after_authentication_api_version_then_route_then_vault() {
    let kv = Kv::start().await;
    let t = kv.admin_kv_token().await;
    let url = |p: &str| format!("{}{p}", kv.vault_url("nope"));

    let r = kv.send(&kv.http, Some(&t), "GET", &url("/secrets"), None).await;
    assert_eq!((r.status, r.code().0), (400, "BadParameter"), "{}", r.body);
    assert!(r.message().contains("api-version"));
    let r = kv.send(&kv.http, Some(&t), "GET", &url("/secrets?api-version=latest"), None).await;
    assert_eq!((r.status, r.code().0), (400, "BadParameter"));
    for v in ["7.0", "7.6-preview.2", "2016-10-01", "2025-07-01", "2026-03-01-preview"] {
        let r = kv.send(&kv.http, Some(&t), "GET", &url(&format!("/secrets?api-version={v}")), None).await;
        assert_eq!((r.status, r.code().0), (404, "VaultNotFound"), "{v}: {}", r.body);
    }
    let r = kv.call(Some(&t), "GET", "nope", "/keys/k1", None).await;
    assert_eq!((r.status, r.code().0), (404, "NotFound"));
    let r = kv.call(Some(&t), "POST", "nope", "/secrets", None).await;
    assert_eq!((r.status, r.code().0), (405, "MethodNotAllowed"));
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
    // A body over the limit.
    let big = json!({"value": "x".repeat(300 * 1024)});
    let r = kv.call(Some(&t), "PUT", "nope", "/secrets/big", Some(big)).await;
    assert_eq!(r.status, 413);
    // Soft-deleted or never created: the same 404.
    let r = kv.call(Some(&t), "GET", "nope", "/secrets/x", None).await;
    assert_eq!((r.status, r.code().0), (404, "VaultNotFound"));
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
}

#[tokio::test]
async fn other_hosts_reach_the_normal_router() {
    let kv = Kv::start().await;
    let r = kv.s.http.get(format!("{}/healthz", kv.s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = kv.s.http.get(format!("{}/secrets/x", kv.s.url)).send().await.unwrap();
    assert_eq!(r.status(), 404, "the management host has no secrets");
    // The Key Vault resource is one the token service issues for.
    let t = kv.admin_kv_token().await;
    assert!(!t.is_empty());
}
