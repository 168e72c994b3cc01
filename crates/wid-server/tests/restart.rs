//! Later starts reuse the data dir: same tenant, identities, keys and admin; key rotation keeps the
//! old key published so tokens it signed still verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use serde_json::{Value, json};
use wid_core::SystemClock;
use wid_testkit::TestServer;

fn kid_of(jwt: &str) -> String {
    use base64::Engine;
    let h = jwt.split('.').next().unwrap();
    let h: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap();
    h["kid"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn restart_reuses_everything_and_rotation_keeps_old_tokens_valid() {
    let mut s = TestServer::start().await;
    let data = s.dir.path().join("data");
    for (f, mode) in [("master.key", 0o600), ("ca.key", 0o600), ("wid.db", 0o600)] {
        let m = std::fs::metadata(data.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{f}");
    }
    assert_eq!(std::fs::metadata(s.dir.path().join("profile.json")).unwrap().permissions().mode() & 0o777, 0o600);
    let ca_before = std::fs::read(s.ca_pem()).unwrap();
    let admin = s.admin_token().await;
    let (st, id) =
        s.arm(&admin, "PUT", "/subscriptions/{sub}/resourcegroups/rg", Some(json!({"location": "westeurope"}))).await;
    assert_eq!(st, 201, "{id}");
    let (tenant, sub, client) = (s.tenant.clone(), s.subscription.clone(), s.profile.client_id.clone());

    s.restart(|_| {}, Arc::new(SystemClock)).await;
    assert_eq!((s.tenant.clone(), s.subscription.clone(), s.profile.client_id.clone()), (tenant, sub, client));
    assert_eq!(std::fs::read(s.ca_pem()).unwrap(), ca_before);
    let (st, rg) = s.arm(&admin, "GET", "/subscriptions/{sub}/resourcegroups/RG", None).await;
    assert_eq!((st, rg["location"].as_str()), (200, Some("westeurope")), "the old token and the group survive");

    s.restart(|c| c.rotate_signing_key = true, Arc::new(SystemClock)).await;
    let keys: Value =
        s.http.get(format!("{}/{}/discovery/v2.0/keys", s.url, s.tenant)).send().await.unwrap().json().await.unwrap();
    assert_eq!(keys["keys"].as_array().unwrap().len(), 2, "old and new key published: {keys}");
    let fresh = s.admin_token().await;
    assert_ne!(kid_of(&fresh), kid_of(&admin));
    assert_eq!(
        s.arm(&admin, "GET", "/subscriptions/{sub}/resourcegroups/rg", None).await.0,
        200,
        "token of the old key"
    );
    assert_eq!(s.arm(&fresh, "GET", "/subscriptions/{sub}/resourcegroups/rg", None).await.0, 200);
}
