//! Every Key Vault secrets operation over HTTPS with its status and JSON shape, soft delete,
//! backup/restore, paging by nextLink, throttling, and encryption at rest (vaults and role
//! assignments through the management API).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod vault_support;

use std::sync::Arc;

use serde_json::{Value, json};
use vault_support::{Kv, roles};
use wid_core::SystemClock;

/// A server with vault `kv1` (and the admin holding Secrets Officer on it), and the admin's Key
/// Vault token.
async fn with_vault() -> (Kv, String) {
    let kv = Kv::start().await;
    kv.create_vault("kv1", true, false, 90).await;
    kv.assign(&kv.vault_id("kv1"), roles::SECRETS_OFFICER, &kv.admin_oid()).await;
    let t = kv.admin_kv_token().await;
    (kv, t)
}

fn version_of(id: &Value) -> String {
    id.as_str().unwrap().rsplit('/').next().unwrap().to_string()
}

#[tokio::test]
async fn every_operation_status_and_shape() {
    let (kv, t) = with_vault().await;
    let t = Some(t.as_str());
    let base = kv.vault_url("kv1");

    // set → 200 SecretBundle with the value and a versioned id on the host the client used.
    let r = kv
        .call(
            t,
            "PUT",
            "kv1",
            "/secrets/Db-Pass",
            Some(json!({"value": "s3cret", "contentType": "text/plain", "tags": {"env": "dev"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["content-type"], "application/json; charset=utf-8");
    assert!(r.headers.contains_key("x-ms-request-id") && r.headers.contains_key("x-ms-keyvault-service-version"));
    let b = &r.body;
    let v1 = version_of(&b["id"]);
    assert_eq!(b["id"], format!("{base}/secrets/Db-Pass/{v1}"));
    assert!(v1.len() == 32 && v1.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
    assert_eq!(b["value"], "s3cret");
    assert_eq!((b["contentType"].as_str(), b["tags"]["env"].as_str()), (Some("text/plain"), Some("dev")));
    let a = &b["attributes"];
    assert!(a["created"].is_i64() && a["updated"].is_i64());
    assert_eq!((a["enabled"].as_bool(), a["recoverableDays"].as_i64()), (Some(true), Some(90)));
    assert_eq!(a["recoveryLevel"], "Recoverable+Purgeable");
    assert!(a.get("exp").is_none() && a.get("nbf").is_none() && b.get("kid").is_none());

    let r = kv.call(t, "PUT", "kv1", "/secrets/db-pass", Some(json!({"value": "two"}))).await;
    assert_eq!(r.status, 200);
    let v2 = version_of(&r.body["id"]);
    assert!(r.body["id"].as_str().unwrap().contains("/secrets/Db-Pass/"), "first casing kept");

    // get latest (trailing slash, as the SDKs send it, or none), a version, case-insensitively.
    for path in ["/secrets/db-pass/", "/secrets/DB-PASS", "/secrets/Db-Pass/"] {
        let r = kv.call(t, "GET", "kv1", path, None).await;
        assert_eq!((r.status, r.body["value"].as_str()), (200, Some("two")), "{path}");
    }
    let r = kv.call(t, "GET", "kv1", &format!("/secrets/db-pass/{v1}"), None).await;
    assert_eq!((r.status, r.body["value"].as_str()), (200, Some("s3cret")));
    let r = kv.call(t, "GET", "kv1", &format!("/secrets/db-pass/{}", "0".repeat(32)), None).await;
    assert_eq!((r.status, r.code().0), (404, "SecretNotFound"));
    assert!(r.message().starts_with("A secret with (name/id) db-pass/"), "{}", r.message());
    let r = kv.call(t, "GET", "kv1", "/secrets/missing", None).await;
    assert_eq!((r.status, r.code().0), (404, "SecretNotFound"));
    let r = kv.call(t, "GET", "kv1", "/secrets/bad_name", None).await;
    assert_eq!((r.status, r.code().0), (400, "BadParameter"));
    assert_eq!(r.message(), "The request URI contains an invalid name: bad_name");

    // update (a version, or the latest through the trailing slash) → no value.
    let r = kv
        .call(
            t,
            "PATCH",
            "kv1",
            &format!("/secrets/db-pass/{v1}"),
            Some(json!({"tags": {"a": "b"}, "attributes": {"enabled": false}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("value").is_none());
    assert_eq!((&r.body["tags"], &r.body["attributes"]["enabled"]), (&json!({"a": "b"}), &json!(false)));
    let r = kv.call(t, "PATCH", "kv1", "/secrets/db-pass/", Some(json!({"contentType": "application/x"}))).await;
    assert_eq!((r.status, version_of(&r.body["id"])), (200, v2.clone()));
    // get of a disabled version → 403 SecretDisabled.
    let r = kv.call(t, "GET", "kv1", &format!("/secrets/db-pass/{v1}"), None).await;
    assert_eq!((r.status, r.code()), (403, ("Forbidden", "SecretDisabled")));

    // list: one item per secret (latest), ids without version, disabled included; versions.
    kv.call(t, "PUT", "kv1", "/secrets/other", Some(json!({"value": "o"}))).await;
    let r = kv.call(t, "GET", "kv1", "/secrets", None).await;
    assert_eq!(r.status, 200);
    let ids: Vec<&str> = r.body["value"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [format!("{base}/secrets/Db-Pass"), format!("{base}/secrets/other")]);
    assert!(r.body["value"][0].get("value").is_none());
    assert_eq!(r.body["value"][0]["contentType"], "application/x");
    assert!(r.body["nextLink"].is_null());
    let r = kv.call(t, "GET", "kv1", "/secrets/DB-PASS/versions", None).await;
    assert_eq!(r.status, 200);
    let ids: Vec<&str> = r.body["value"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [format!("{base}/secrets/Db-Pass/{v1}"), format!("{base}/secrets/Db-Pass/{v2}")]);

    // backup → {"value": blob}.
    let r = kv.call(t, "POST", "kv1", "/secrets/db-pass/backup", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let blob = r.body["value"].as_str().unwrap().to_string();
    assert_eq!(r.body.as_object().unwrap().len(), 1);

    // delete → 200 DeletedSecretBundle, scheduled purge = deleted + retention.
    let r = kv.call(t, "DELETE", "kv1", "/secrets/db-pass", None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["recoveryId"], format!("{base}/deletedsecrets/Db-Pass"));
    let deleted = r.body["deletedDate"].as_i64().unwrap();
    assert_eq!(r.body["scheduledPurgeDate"].as_i64().unwrap(), deleted + 90 * 86400);
    assert_eq!(version_of(&r.body["id"]), v2);
    assert!(r.body.get("value").is_none());

    // The name is reserved; the deleted secret is visible under /deletedsecrets.
    let r = kv.call(t, "PUT", "kv1", "/secrets/db-pass", Some(json!({"value": "x"}))).await;
    assert_eq!((r.status, r.code()), (409, ("Conflict", "ObjectIsDeletedButRecoverable")));
    let r = kv.call(t, "GET", "kv1", "/secrets/db-pass/", None).await;
    assert_eq!(r.status, 404);
    let r = kv.call(t, "GET", "kv1", "/deletedsecrets/db-pass", None).await;
    assert_eq!(
        (r.status, r.body["recoveryId"].as_str()),
        (200, Some(format!("{base}/deletedsecrets/Db-Pass").as_str()))
    );
    let r = kv.call(t, "GET", "kv1", "/deletedsecrets", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["value"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["value"][0]["id"], format!("{base}/secrets/Db-Pass"));
    assert!(r.body["value"][0]["scheduledPurgeDate"].is_i64());

    // recover → 200 latest (no value); every version is back.
    let r = kv.call(t, "POST", "kv1", "/deletedsecrets/db-pass/recover", None).await;
    assert_eq!((r.status, version_of(&r.body["id"])), (200, v2.clone()), "{}", r.body);
    assert!(r.body.get("value").is_none());
    let r = kv.call(t, "GET", "kv1", "/secrets/db-pass/versions", None).await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 2);

    // purge → 204 with an empty body; then restore the backup → 200 without value.
    assert_eq!(kv.call(t, "DELETE", "kv1", "/secrets/db-pass", None).await.status, 200);
    let r = kv.call(t, "DELETE", "kv1", "/deletedsecrets/db-pass", None).await;
    assert_eq!((r.status, &r.body), (204, &Value::Null));
    let r = kv.call(t, "DELETE", "kv1", "/deletedsecrets/db-pass", None).await;
    assert_eq!((r.status, r.code().0), (404, "SecretNotFound"));
    let r = kv.call(t, "POST", "kv1", "/secrets/restore", Some(json!({"value": blob}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("value").is_none());
    assert_eq!(version_of(&r.body["id"]), v2);
    let r = kv.call(t, "GET", "kv1", "/secrets/db-pass", None).await;
    assert_eq!(r.body["value"], "two");
    // Restoring over an existing name conflicts.
    let r = kv.call(t, "POST", "kv1", "/secrets/restore", Some(json!({"value": blob}))).await;
    assert_eq!((r.status, r.code().0), (409, "Conflict"));

    // Bad bodies after authentication: 400 BadParameter.
    for body in [
        json!({}),
        json!({"value": 1}),
        json!({"value": "x".repeat(25 * 1024 + 1)}),
        json!({"value": "v", "contentType": "c".repeat(256)}),
    ] {
        let r = kv.call(t, "PUT", "kv1", "/secrets/new", Some(body)).await;
        assert_eq!((r.status, r.code().0), (400, "BadParameter"), "{}", r.body);
    }
    let r = kv.call(t, "PUT", "kv1", &format!("/secrets/{}", "n".repeat(128)), Some(json!({"value": "v"}))).await;
    assert_eq!(r.status, 400);
    let r = kv.call(t, "GET", "kv1", "/secrets?api-version=7.5&maxresults=26", None).await;
    assert_eq!((r.status, r.code().0), (400, "BadParameter"));
}

#[tokio::test]
async fn paging_follows_absolute_next_links() {
    let (kv, t) = with_vault().await;
    for i in 0..60 {
        let r = kv.call(Some(&t), "PUT", "kv1", &format!("/secrets/s{i:02}"), Some(json!({"value": "v"}))).await;
        assert_eq!(r.status, 200);
    }
    let mut url = format!("{}/secrets?api-version=2025-07-01&maxresults=25", kv.vault_url("kv1"));
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        // As Go and JS do: the nextLink is used as-is.
        let r = kv.send(&kv.http1, Some(&t), "GET", &url, None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        pages += 1;
        let items = r.body["value"].as_array().unwrap();
        assert!(items.len() <= 25);
        names.extend(items.iter().map(|i| i["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string()));
        match r.body["nextLink"].as_str() {
            Some(next) => {
                assert!(next.starts_with(&format!("{}/secrets?", kv.vault_url("kv1"))), "{next}");
                assert!(
                    next.contains("api-version=2025-07-01")
                        && next.contains("$skiptoken=")
                        && next.contains("maxresults=25")
                );
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..60).map(|i| format!("s{i:02}")).collect::<Vec<_>>());
}

#[tokio::test]
async fn purge_protection_and_cross_vault_restore() {
    let (kv, t) = with_vault().await;
    let t = Some(t.as_str());
    kv.create_vault("protected", true, true, 90).await;
    kv.create_vault("kv2", true, false, 7).await;
    for v in ["protected", "kv2"] {
        kv.assign(&kv.vault_id(v), roles::SECRETS_OFFICER, &kv.admin_oid()).await;
    }
    let r = kv.call(t, "PUT", "protected", "/secrets/p", Some(json!({"value": "v"}))).await;
    assert_eq!(r.body["attributes"]["recoveryLevel"], "Recoverable");
    kv.call(t, "DELETE", "protected", "/secrets/p", None).await;
    let r = kv.call(t, "DELETE", "protected", "/deletedsecrets/p", None).await;
    assert_eq!((r.status, r.code().0), (403, "Forbidden"), "{}", r.body);
    assert!(r.message().contains("purge protection"));
    assert_eq!(kv.call(t, "GET", "protected", "/deletedsecrets/p", None).await.status, 200);

    // A backup from kv1 restores into kv2 (same tenant) with its ids on kv2's host.
    kv.call(t, "PUT", "kv1", "/secrets/shared", Some(json!({"value": "one"}))).await;
    kv.call(t, "PUT", "kv1", "/secrets/shared", Some(json!({"value": "two"}))).await;
    let blob = kv.call(t, "POST", "kv1", "/secrets/shared/backup", None).await.body["value"].clone();
    let r = kv.call(t, "POST", "kv2", "/secrets/restore", Some(json!({"value": blob}))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body["id"].as_str().unwrap().starts_with(&format!("{}/secrets/shared/", kv.vault_url("kv2"))));
    assert_eq!(r.body["attributes"]["recoveryLevel"], "CustomizedRecoverable+Purgeable");
    assert_eq!(r.body["attributes"]["recoverableDays"], 7);
    assert_eq!(kv.call(t, "GET", "kv2", "/secrets/shared", None).await.body["value"], "two");
    assert_eq!(
        kv.call(t, "GET", "kv2", "/secrets/shared/versions", None).await.body["value"].as_array().unwrap().len(),
        2
    );

    // A blob from another server is refused.
    let (other, ot) = with_vault().await;
    other.call(Some(&ot), "PUT", "kv1", "/secrets/foreign", Some(json!({"value": "x"}))).await;
    let foreign = other.call(Some(&ot), "POST", "kv1", "/secrets/foreign/backup", None).await.body["value"].clone();
    let r = kv.call(t, "POST", "kv2", "/secrets/restore", Some(json!({"value": foreign}))).await;
    assert_eq!(
        (r.status, r.code().0, r.message()),
        (400, "BadParameter", "backup blob is invalid or from another tenant")
    );
    let r = kv.call(t, "POST", "kv2", "/secrets/restore", Some(json!({"value": "garbage"}))).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn no_plaintext_value_in_the_database_files() {
    let (kv, t) = with_vault().await;
    let t = Some(t.as_str());
    let marker = "VALUE-MARKER-5b8e0c1d";
    kv.call(t, "PUT", "kv1", "/secrets/db", Some(json!({"value": marker}))).await;
    kv.call(t, "PUT", "kv1", "/secrets/db", Some(json!({"value": format!("{marker}-v2")}))).await;
    kv.call(t, "PATCH", "kv1", "/secrets/db/", Some(json!({"tags": {"k": "v"}}))).await;
    kv.call(t, "GET", "kv1", "/secrets", None).await;
    kv.call(t, "GET", "kv1", "/secrets/db/versions", None).await;
    let blob = kv.call(t, "POST", "kv1", "/secrets/db/backup", None).await.body["value"].clone();
    kv.call(t, "PUT", "kv1", "/secrets/copy", Some(json!({"value": marker}))).await;
    kv.call(t, "DELETE", "kv1", "/secrets/db", None).await;
    kv.call(t, "DELETE", "kv1", "/deletedsecrets/db", None).await;
    let r = kv.call(t, "POST", "kv1", "/secrets/restore", Some(json!({"value": blob}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(kv.call(t, "GET", "kv1", "/secrets/db", None).await.body["value"], format!("{marker}-v2"));
    let data = kv.s.dir.path().join("data");
    let mut checked = 0;
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with("wid.db") {
            let bytes = std::fs::read(&path).unwrap();
            assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "plaintext in {name}");
            checked += 1;
        }
    }
    assert!(checked >= 2, "the database and its WAL were checked");
}

#[tokio::test]
async fn throttling_when_enabled() {
    let kv = Kv::start_with(|c| c.vault_throttle_per_10s = Some(5), Arc::new(SystemClock)).await;
    kv.create_vault("thr", true, false, 90).await;
    kv.assign(&kv.vault_id("thr"), roles::SECRETS_OFFICER, &kv.admin_oid()).await;
    let t = kv.admin_kv_token().await;
    let mut throttled = 0;
    for _ in 0..12 {
        let r = kv.call(Some(&t), "GET", "thr", "/secrets", None).await;
        match r.status {
            200 => {}
            429 => {
                throttled += 1;
                assert_eq!(r.code().0, "Throttled");
                let secs: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
                assert!((1..=10).contains(&secs));
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    // 12 requests within at most two 10-second windows: at most 10 pass.
    assert!(throttled >= 2, "{throttled}");
    // Off by default.
    let (kv, t) = with_vault().await;
    for _ in 0..20 {
        assert_eq!(kv.call(Some(&t), "GET", "kv1", "/secrets", None).await.status, 200);
    }
}

#[tokio::test]
async fn the_server_purges_expired_deleted_secrets() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let clock = Arc::new(wid_core::FixedClock::new(now));
    let mut kv = Kv::start_with(|_| {}, clock.clone()).await;
    kv.create_vault("kv1", true, false, 7).await;
    kv.assign(&kv.vault_id("kv1"), roles::SECRETS_OFFICER, &kv.admin_oid()).await;
    let t = kv.admin_kv_token().await;
    kv.call(Some(&t), "PUT", "kv1", "/secrets/old", Some(json!({"value": "v"}))).await;
    kv.call(Some(&t), "PUT", "kv1", "/secrets/recent", Some(json!({"value": "v"}))).await;
    let r = kv.call(Some(&t), "DELETE", "kv1", "/secrets/old", None).await;
    assert_eq!(r.body["scheduledPurgeDate"].as_i64(), Some(now + 7 * 86400));
    clock.advance(6 * 86400);
    let t = kv.admin_kv_token().await;
    kv.call(Some(&t), "DELETE", "kv1", "/secrets/recent", None).await;

    // A week later the purge (run at start and every minute) has removed the first one only.
    clock.advance(86400 + 1);
    kv.s.restart(|_| {}, clock.clone()).await;
    let t = kv.admin_kv_token().await;
    let mut names = Vec::new();
    for _ in 0..50 {
        let r = kv.call(Some(&t), "GET", "kv1", "/deletedsecrets", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        names =
            r.body["value"].as_array().unwrap().iter().map(|i| i["recoveryId"].as_str().unwrap().to_string()).collect();
        if names.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(names, [format!("{}/deletedsecrets/recent", kv.vault_url("kv1"))]);
    let r = kv.call(Some(&t), "PUT", "kv1", "/secrets/old", Some(json!({"value": "reused"}))).await;
    assert_eq!(r.status, 200, "the purged name is free: {}", r.body);
}
