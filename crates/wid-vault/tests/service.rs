//! The data plane against a real SQLite store (in memory or in a temp file), a fixed clock and an
//! in-memory directory: shapes, RBAC at the level of data actions, soft delete, backup/restore,
//! paging, throttling and encryption at rest.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::{Arc, RwLock};

use serde_json::{Value, json};
use uuid::Uuid;
use wid_core::Caller;
use wid_core::FixedClock;
use wid_core::directory::Directory;
use wid_core::model::{PrincipalType, ResourceGroup, RoleAssignment, Tags, Vault};
use wid_core::rbac::roles;
use wid_crypto::MasterKey;
use wid_crypto::data_key as keys;
use wid_store::{SqliteStore, Store};
use wid_vault::{Ctx, Paging, VaultConfig, VaultError, VaultHost, VaultService};

const SUFFIX: &str = "vault.localhost:8443";
const T0: i64 = 1_700_000_000;

struct Env {
    svc: VaultService,
    store: Arc<dyn Store>,
    dir: Arc<RwLock<Directory>>,
    clock: Arc<FixedClock>,
    master: Arc<MasterKey>,
    sub: Uuid,
    tenant: Uuid,
    _tmp: Option<tempfile::TempDir>,
}

struct Who {
    caller: Caller,
}

fn caller() -> Who {
    Who {
        caller: Caller {
            principal_id: Uuid::new_v4(),
            client_id: Uuid::new_v4(),
            issuer: "https://localhost:8443/t/".into(),
        },
    }
}

fn env_with(store: Arc<dyn Store>, tmp: Option<tempfile::TempDir>, throttle: Option<u32>) -> Env {
    let master = Arc::new(MasterKey::generate().unwrap());
    let dir = Arc::new(RwLock::new(Directory::default()));
    let clock = Arc::new(FixedClock::new(T0));
    let tenant = Uuid::new_v4();
    let sub = Uuid::new_v4();
    store
        .put_resource_group(&ResourceGroup {
            subscription: sub,
            name: "RG".into(),
            location: "eastus".into(),
            tags: Tags::new(),
            created: T0,
        })
        .unwrap();
    let cfg = VaultConfig {
        tenant_id: tenant,
        dns_suffix: SUFFIX.into(),
        resource: format!("https://{SUFFIX}"),
        throttle_per_10s: throttle,
        azure_hostnames: false,
    };
    let svc = VaultService::new(cfg, store.clone(), master.clone(), dir.clone(), clock.clone());
    Env { svc, store, dir, clock, master, sub, tenant, _tmp: tmp }
}

fn env() -> Env {
    env_with(Arc::new(SqliteStore::open_in_memory().unwrap()), None, None)
}

impl Env {
    fn vault(&self, name: &str, rbac: bool, purge_protection: bool, days: i64) -> Vault {
        let vault_id = Uuid::new_v4();
        let v = Vault {
            subscription: self.sub,
            resource_group: "RG".into(),
            name: name.into(),
            location: "eastus".into(),
            tags: Tags::new(),
            vault_id,
            tenant_id: self.tenant,
            sku: "standard".into(),
            enable_rbac_authorization: rbac,
            enable_purge_protection: purge_protection,
            soft_delete_retention_days: days,
            public_network_access: "Enabled".into(),
            sealed_data_key: keys::new_sealed_data_key(&self.master, &vault_id).unwrap(),
            created: T0,
            updated: T0,
            deleted: None,
        };
        self.store.put_vault(&v).unwrap();
        v
    }

    fn assign(&self, who: &Who, scope: &str, role: &str) -> RoleAssignment {
        let ra = RoleAssignment {
            id: Uuid::new_v4(),
            scope: scope.into(),
            role_definition_id: Uuid::parse_str(role).unwrap(),
            principal_id: who.caller.principal_id,
            principal_type: PrincipalType::ServicePrincipal,
            description: None,
            created: T0,
            updated: T0,
            created_by: None,
        };
        self.store.insert_role_assignment(&ra).unwrap();
        self.dir.write().unwrap().put_role_assignment(&ra);
        ra
    }

    fn revoke(&self, ra: &RoleAssignment) {
        self.store.delete_role_assignment(ra.id).unwrap();
        self.dir.write().unwrap().remove_role_assignment(ra);
    }
}

fn host(vault: &str) -> VaultHost {
    VaultHost::parse(&format!("{vault}.{SUFFIX}"), SUFFIX).unwrap()
}

fn ctx<'a>(h: &'a VaultHost, who: &'a Who) -> Ctx<'a> {
    Ctx { host: h, caller: &who.caller, request_id: "req-1", api_version: "7.5" }
}

fn js<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

fn code(e: &VaultError) -> (u16, &'static str, Option<&'static str>) {
    let w = e.to_wire();
    (w.status, w.code, w.inner)
}

fn set(value: &str) -> Vec<u8> {
    json!({ "value": value }).to_string().into_bytes()
}

#[test]
fn set_get_update_list_shapes() {
    let e = env();
    let v = e.vault("kv1", true, false, 90);
    let who = caller();
    e.assign(&who, &v.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    let h = host("kv1");
    let c = ctx(&h, &who);

    let body =
        json!({"value": "s3cret", "contentType": "text/plain", "tags": {"env": "dev"}, "attributes": {"exp": T0 + 99}});
    let b1 = js(&e.svc.set_secret(&c, "Db-Password", body.to_string().as_bytes()).unwrap());
    let id1 = b1["id"].as_str().unwrap().to_string();
    let ver1 = id1.rsplit('/').next().unwrap().to_string();
    assert!(id1.starts_with("https://kv1.vault.localhost:8443/secrets/Db-Password/"), "{id1}");
    assert!(ver1.len() == 32 && ver1.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        b1,
        json!({"value": "s3cret", "id": id1, "contentType": "text/plain", "tags": {"env": "dev"},
               "attributes": {"enabled": true, "exp": T0 + 99, "created": T0, "updated": T0,
                              "recoverableDays": 90, "recoveryLevel": "Recoverable+Purgeable"}})
    );

    e.clock.advance(10);
    // A second version, under another casing: the name keeps its first casing.
    let b2 = js(&e.svc.set_secret(&c, "db-password", &set("two")).unwrap());
    assert!(b2["id"].as_str().unwrap().contains("/secrets/Db-Password/"), "{b2}");
    assert!(b2.get("tags").is_none() && b2.get("contentType").is_none());

    // Latest, a given version, case-insensitive names and versions.
    assert_eq!(js(&e.svc.get_secret(&c, "DB-PASSWORD", None).unwrap())["value"], "two");
    let old = js(&e.svc.get_secret(&c, "db-password", Some(&ver1.to_uppercase())).unwrap());
    assert_eq!((old["value"].as_str(), old["id"].as_str()), (Some("s3cret"), Some(id1.as_str())));
    let missing = e.svc.get_secret(&c, "db-password", Some(&"0".repeat(32))).unwrap_err();
    assert_eq!(code(&missing), (404, "SecretNotFound", None));
    assert_eq!(code(&e.svc.get_secret(&c, "db-password", Some("nope")).unwrap_err()).0, 404);
    assert_eq!(code(&e.svc.get_secret(&c, "other", None).unwrap_err()), (404, "SecretNotFound", None));

    // Update: given fields replace, others stay; no value in the reply.
    e.clock.advance(5);
    let u = js(&e
        .svc
        .update_secret(&c, "db-password", Some(&ver1), br#"{"tags":{"a":"b"},"attributes":{"enabled":false}}"#)
        .unwrap());
    assert!(u.get("value").is_none());
    assert_eq!(u["tags"], json!({"a": "b"}));
    assert_eq!(u["contentType"], "text/plain");
    assert_eq!(
        (u["attributes"]["enabled"].as_bool(), u["attributes"]["updated"].as_i64()),
        (Some(false), Some(T0 + 15))
    );
    assert_eq!(u["attributes"]["created"], T0);
    // Disabled version: get refused, listing still shows it.
    let err = e.svc.get_secret(&c, "db-password", Some(&ver1)).unwrap_err();
    assert_eq!(code(&err), (403, "Forbidden", Some("SecretDisabled")));
    assert_eq!(err.to_wire().message, "Operation get is not allowed on a disabled secret.");
    // Update of the latest with an empty version (PATCH /secrets/{name}/).
    let u = js(&e.svc.update_secret(&c, "db-password", None, br#"{"contentType":"x"}"#).unwrap());
    assert_eq!(u["id"], b2["id"]);
    let bad = e.svc.update_secret(&c, "db-password", None, b"{not json").unwrap_err();
    assert_eq!(code(&bad), (400, "BadParameter", None));

    // Lists: one item per secret (id without version); versions (ids with version), oldest first.
    e.svc.set_secret(&c, "api-key", &set("k")).unwrap();
    let list = js(&e.svc.list_secrets(&c, Paging::default()).unwrap());
    let ids: Vec<&str> = list["value"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["https://kv1.vault.localhost:8443/secrets/api-key", "https://kv1.vault.localhost:8443/secrets/Db-Password"]
    );
    assert_eq!(list["nextLink"], Value::Null);
    assert!(list["value"][1].get("value").is_none());
    assert_eq!(list["value"][1]["contentType"], "x");
    let versions = js(&e.svc.list_versions(&c, "DB-password", Paging::default()).unwrap());
    let vids: Vec<&str> = versions["value"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(vids, [id1.as_str(), b2["id"].as_str().unwrap()]);
    assert_eq!(versions["value"][0]["attributes"]["enabled"], false);
    let none = js(&e.svc.list_versions(&c, "ghost", Paging::default()).unwrap());
    assert_eq!(none["value"], json!([]));
}

#[test]
fn validation_after_authorization() {
    let e = env();
    let v = e.vault("kv1", true, false, 90);
    let (officer, nobody) = (caller(), caller());
    e.assign(&officer, &v.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    let h = host("kv1");
    let c = ctx(&h, &officer);
    for bad in ["a_b", "", &"x".repeat(128), "a.b"] {
        let err = e.svc.set_secret(&c, bad, &set("v")).unwrap_err();
        assert_eq!(code(&err), (400, "BadParameter", None), "{bad:?}");
    }
    assert_eq!(
        e.svc.set_secret(&c, "a_b", &set("v")).unwrap_err().to_wire().message,
        "The request URI contains an invalid name: a_b"
    );
    assert!(e.svc.set_secret(&c, &"x".repeat(127), &set("v")).is_ok());
    for body in [&b""[..], b"{", b"[]", br#"{"contentType":"x"}"#, br#"{"value":5}"#] {
        assert_eq!(code(&e.svc.set_secret(&c, "ok", body).unwrap_err()).1, "BadParameter");
    }
    let big = "v".repeat(25 * 1024 + 1);
    assert_eq!(code(&e.svc.set_secret(&c, "ok", &set(&big)).unwrap_err()).1, "BadParameter");
    assert!(e.svc.set_secret(&c, "ok", &set(&"v".repeat(25 * 1024))).is_ok());
    for m in ["0", "26", "x"] {
        let p = Paging { maxresults: Some(m), skiptoken: None };
        assert_eq!(code(&e.svc.list_secrets(&c, p).unwrap_err()).1, "BadParameter");
    }
    let p = Paging { maxresults: None, skiptoken: Some("%%%") };
    assert_eq!(code(&e.svc.list_secrets(&c, p).unwrap_err()).1, "BadParameter");
    // A caller without a role learns nothing from a bad body: 403 first.
    let n = ctx(&h, &nobody);
    assert_eq!(code(&e.svc.set_secret(&n, "ok", b"{").unwrap_err()).2, Some("ForbiddenByRbac"));
}

#[test]
fn vault_resolution_and_permission_model() {
    let e = env();
    let who = caller();
    let h = host("nope");
    let err = e.svc.get_secret(&ctx(&h, &who), "x", None).unwrap_err();
    assert_eq!(code(&err), (404, "VaultNotFound", None));

    let legacy = e.vault("legacy", false, false, 90);
    e.assign(&who, &legacy.arm_id(), roles::KEY_VAULT_ADMINISTRATOR);
    let h = host("legacy");
    let err = e.svc.get_secret(&ctx(&h, &who), "x", None).unwrap_err();
    assert_eq!(code(&err).0, 403);
    assert!(err.to_wire().message.contains("wid supports only the Azure RBAC permission model"), "{err:?}");

    // A soft-deleted vault is unknown to the data plane.
    let mut gone = e.vault("gone", true, false, 90);
    e.assign(&who, &gone.arm_id(), roles::KEY_VAULT_ADMINISTRATOR);
    let h = host("GONE");
    assert!(e.svc.set_secret(&ctx(&h, &who), "x", &set("v")).is_ok());
    gone.deleted = Some(T0);
    e.store.put_vault(&gone).unwrap();
    assert_eq!(code(&e.svc.get_secret(&ctx(&h, &who), "x", None).unwrap_err()).1, "VaultNotFound");
}

#[test]
fn rbac_matrix() {
    let e = env();
    let v = e.vault("kv1", true, false, 90);
    let h = host("kv1");
    let (admin, user, officer, reader, nobody, single) = (caller(), caller(), caller(), caller(), caller(), caller());
    e.assign(&admin, &v.arm_id(), roles::KEY_VAULT_ADMINISTRATOR);
    // Roles inherited from the resource group and the subscription count too.
    e.assign(&user, &format!("/subscriptions/{}/resourcegroups/rg", e.sub), roles::KEY_VAULT_SECRETS_USER);
    e.assign(&officer, &v.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    e.assign(&reader, &format!("/subscriptions/{}", e.sub), roles::KEY_VAULT_READER);
    let one = e.assign(&single, &format!("{}/secrets/One", v.arm_id()), roles::KEY_VAULT_SECRETS_USER);
    // Owner at the vault is a control-plane role: no data actions.
    e.assign(&nobody, &v.arm_id(), roles::OWNER);

    let a = ctx(&h, &admin);
    e.svc.set_secret(&a, "one", &set("1")).unwrap();
    e.svc.set_secret(&a, "two", &set("2")).unwrap();

    type Op = fn(&VaultService, &Ctx<'_>) -> Result<(), VaultError>;
    let ops: [(&str, Op); 6] = [
        ("get", |s, c| s.get_secret(c, "one", None).map(|_| ())),
        ("list", |s, c| s.list_secrets(c, Paging::default()).map(|_| ())),
        ("versions", |s, c| s.list_versions(c, "one", Paging::default()).map(|_| ())),
        ("set", |s, c| s.set_secret(c, "one", &set("x")).map(|_| ())),
        ("update", |s, c| s.update_secret(c, "one", None, b"{}").map(|_| ())),
        ("backup", |s, c| s.backup(c, "one").map(|_| ())),
    ];
    let expect: [(&Who, &str, [bool; 6]); 6] = [
        (&admin, "admin", [true; 6]),
        (&officer, "officer", [true; 6]),
        (&user, "user", [true, true, true, false, false, false]),
        (&reader, "reader", [false, true, true, false, false, false]),
        (&nobody, "owner (control plane only)", [false; 6]),
        (&single, "user of one secret", [true, false, true, false, false, false]),
    ];
    for (who, label, allowed) in expect {
        let c = ctx(&h, who);
        for ((op, f), want) in ops.iter().zip(allowed) {
            match f(&e.svc, &c) {
                Ok(()) => assert!(want, "{label} may not {op}"),
                Err(err) => {
                    assert!(!want, "{label} should {op}: {err:?}");
                    assert_eq!(code(&err), (403, "Forbidden", Some("ForbiddenByRbac")), "{label} {op}");
                }
            }
        }
    }
    // The single-secret role covers only that secret.
    let s = ctx(&h, &single);
    let err = e.svc.get_secret(&s, "two", None).unwrap_err();
    let msg = err.to_wire().message;
    let expected = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss=https://localhost:8443/t/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/{}/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv1/secrets/two'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: kv1;location=eastus\r\n",
        single.caller.client_id, single.caller.principal_id, e.sub
    );
    assert_eq!(msg, expected);
    // Revoking takes effect on the next request.
    assert!(e.svc.get_secret(&s, "One", None).is_ok());
    e.revoke(&one);
    assert_eq!(code(&e.svc.get_secret(&s, "one", None).unwrap_err()).2, Some("ForbiddenByRbac"));
    // Collection-level refusal names the vault.
    let err = e.svc.list_secrets(&ctx(&h, &nobody), Paging::default()).unwrap_err();
    assert!(err.to_wire().message.contains(&format!(
        "Resource: '/subscriptions/{}/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv1'\r\n",
        e.sub
    )));
    assert!(err.to_wire().message.contains("readMetadata/action"));
}

#[test]
fn soft_delete_recover_purge() {
    let e = env();
    let v = e.vault("kv1", true, false, 7);
    let who = caller();
    e.assign(&who, &v.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    let h = host("kv1");
    let c = ctx(&h, &who);
    e.svc.set_secret(&c, "Db", &set("one")).unwrap();
    e.clock.advance(1);
    let latest = js(&e.svc.set_secret(&c, "db", &set("two")).unwrap());
    e.clock.advance(1);

    let d = js(&e.svc.delete_secret(&c, "DB").unwrap());
    assert_eq!(d["recoveryId"], "https://kv1.vault.localhost:8443/deletedsecrets/Db");
    assert_eq!(d["deletedDate"], T0 + 2);
    assert_eq!(d["scheduledPurgeDate"], T0 + 2 + 7 * 86400);
    assert_eq!(d["id"], latest["id"]);
    assert_eq!(d["attributes"]["recoveryLevel"], "CustomizedRecoverable+Purgeable");
    assert_eq!(d["attributes"]["recoverableDays"], 7);
    assert!(d.get("value").is_none());
    assert_eq!(code(&e.svc.delete_secret(&c, "db").unwrap_err()).1, "SecretNotFound");

    // Gone from the active side, its name reserved.
    assert_eq!(code(&e.svc.get_secret(&c, "db", None).unwrap_err()).1, "SecretNotFound");
    let err = e.svc.set_secret(&c, "DB", &set("three")).unwrap_err();
    assert_eq!(code(&err), (409, "Conflict", Some("ObjectIsDeletedButRecoverable")));
    assert!(err.to_wire().message.starts_with("Secret DB is currently in a deleted but recoverable state"));
    assert_eq!(js(&e.svc.list_secrets(&c, Paging::default()).unwrap())["value"], json!([]));

    let gd = js(&e.svc.get_deleted(&c, "db").unwrap());
    assert_eq!(gd, d);
    let ld = js(&e.svc.list_deleted(&c, Paging::default()).unwrap());
    assert_eq!(ld["value"].as_array().unwrap().len(), 1);
    let item = &ld["value"][0];
    assert_eq!(item["id"], "https://kv1.vault.localhost:8443/secrets/Db");
    assert_eq!(item["recoveryId"], d["recoveryId"]);
    assert_eq!(item["scheduledPurgeDate"], d["scheduledPurgeDate"]);
    assert_eq!(code(&e.svc.get_deleted(&c, "other").unwrap_err()), (404, "SecretNotFound", None));

    // Recover brings back every version.
    let r = js(&e.svc.recover(&c, "db").unwrap());
    assert_eq!(r["id"], latest["id"]);
    assert!(r.get("value").is_none());
    assert_eq!(js(&e.svc.get_secret(&c, "db", None).unwrap())["value"], "two");
    assert_eq!(js(&e.svc.list_versions(&c, "db", Paging::default()).unwrap())["value"].as_array().unwrap().len(), 2);
    assert_eq!(code(&e.svc.recover(&c, "db").unwrap_err()).1, "SecretNotFound");

    // Purge removes it for good; the name is free again.
    e.svc.delete_secret(&c, "db").unwrap();
    assert_eq!(code(&e.svc.purge(&c, "ghost").unwrap_err()).1, "SecretNotFound");
    e.svc.purge(&c, "db").unwrap();
    assert_eq!(code(&e.svc.get_deleted(&c, "db").unwrap_err()).1, "SecretNotFound");
    assert_eq!(js(&e.svc.set_secret(&c, "db", &set("fresh")).unwrap())["value"], "fresh");

    // Expiry purges automatically.
    e.svc.delete_secret(&c, "db").unwrap();
    assert_eq!(e.svc.purge_expired().unwrap().0, 0);
    e.clock.advance(7 * 86400);
    assert_eq!(e.svc.purge_expired().unwrap().0, 1);
    assert_eq!(code(&e.svc.get_deleted(&c, "db").unwrap_err()).1, "SecretNotFound");
}

#[test]
fn purge_protection() {
    let e = env();
    let v = e.vault("kv1", true, true, 90);
    let who = caller();
    e.assign(&who, &v.arm_id(), roles::KEY_VAULT_ADMINISTRATOR);
    let h = host("kv1");
    let c = ctx(&h, &who);
    let b = js(&e.svc.set_secret(&c, "db", &set("v")).unwrap());
    assert_eq!(b["attributes"]["recoveryLevel"], "Recoverable");
    e.svc.delete_secret(&c, "db").unwrap();
    let err = e.svc.purge(&c, "db").unwrap_err();
    assert_eq!(code(&err), (403, "Forbidden", None));
    assert!(err.to_wire().message.contains("purge protection is enabled"));
    assert!(e.svc.get_deleted(&c, "db").is_ok());
}

#[test]
fn backup_and_restore() {
    let e = env();
    let (v1, v2) = (e.vault("kv1", true, false, 90), e.vault("kv2", true, false, 90));
    let who = caller();
    e.assign(&who, &format!("/subscriptions/{}", e.sub), roles::KEY_VAULT_SECRETS_OFFICER);
    let _ = (v1, v2);
    let (h1, h2) = (host("kv1"), host("kv2"));
    let (c1, c2) = (ctx(&h1, &who), ctx(&h2, &who));
    let first = js(&e.svc.set_secret(&c1, "Db", &set("one")).unwrap());
    let body = json!({"value": "two", "tags": {"t": "1"}, "contentType": "ct"}).to_string();
    let second = js(&e.svc.set_secret(&c1, "db", body.as_bytes()).unwrap());
    e.svc
        .update_secret(
            &c1,
            "db",
            Some(first["id"].as_str().unwrap().rsplit('/').next().unwrap()),
            br#"{"attributes":{"enabled":false}}"#,
        )
        .unwrap();

    let blob = e.svc.backup(&c1, "DB").unwrap().value;
    assert!(!blob.contains("one") && !blob.contains("two"));
    assert_eq!(code(&e.svc.backup(&c1, "ghost").unwrap_err()).1, "SecretNotFound");
    let restore = json!({ "value": blob }).to_string();

    // Into the same vault while the name exists: conflict.
    let err = e.svc.restore(&c1, restore.as_bytes()).unwrap_err();
    assert_eq!(code(&err), (409, "Conflict", None));

    // Into another vault: every version, attributes and tags kept, the latest returned.
    let r = js(&e.svc.restore(&c2, restore.as_bytes()).unwrap());
    assert!(r.get("value").is_none());
    let ver2 = second["id"].as_str().unwrap().rsplit('/').next().unwrap();
    assert_eq!(r["id"], format!("https://kv2.vault.localhost:8443/secrets/Db/{ver2}"));
    assert_eq!((r["tags"]["t"].as_str(), r["contentType"].as_str()), (Some("1"), Some("ct")));
    assert_eq!(js(&e.svc.get_secret(&c2, "db", None).unwrap())["value"], "two");
    let versions = js(&e.svc.list_versions(&c2, "db", Paging::default()).unwrap());
    assert_eq!(versions["value"].as_array().unwrap().len(), 2);
    assert_eq!(versions["value"][0]["attributes"]["enabled"], false);

    // Soft-deleted name in the target: ObjectIsDeletedButRecoverable.
    e.svc.delete_secret(&c1, "db").unwrap();
    let err = e.svc.restore(&c1, restore.as_bytes()).unwrap_err();
    assert_eq!(code(&err).2, Some("ObjectIsDeletedButRecoverable"));
    e.svc.purge(&c1, "db").unwrap();
    assert!(e.svc.restore(&c1, restore.as_bytes()).is_ok());

    // A blob from another server (another master key) or tampered with is refused.
    let other = env();
    let ov = other.vault("kv9", true, false, 90);
    let ow = caller();
    other.assign(&ow, &ov.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    let h9 = host("kv9");
    let c9 = ctx(&h9, &ow);
    other.svc.set_secret(&c9, "x", &set("v")).unwrap();
    let foreign = other.svc.backup(&c9, "x").unwrap().value;
    for bad in [foreign.as_str(), "AAAA", "!!", ""] {
        let err = e.svc.restore(&c2, json!({ "value": bad }).to_string().as_bytes()).unwrap_err();
        let w = err.to_wire();
        assert_eq!(
            (w.status, w.code, w.message.as_str()),
            (400, "BadParameter", "backup blob is invalid or from another tenant")
        );
    }
    assert_eq!(code(&e.svc.restore(&c2, b"{}").unwrap_err()).1, "BadParameter");
}

#[test]
fn paging() {
    let e = env();
    let v = e.vault("kv1", true, false, 90);
    let who = caller();
    e.assign(&who, &v.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    let h = host("kv1");
    let c = Ctx { api_version: "2025-07-01", ..ctx(&h, &who) };
    for i in 0..60 {
        e.svc.set_secret(&c, &format!("s{i:02}"), &set("v")).unwrap();
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let p = Paging { maxresults: Some("25"), skiptoken: token.as_deref() };
        let page = js(&e.svc.list_secrets(&c, p).unwrap());
        pages += 1;
        for i in page["value"].as_array().unwrap() {
            seen.push(i["id"].as_str().unwrap().rsplit('/').next().unwrap().to_string());
        }
        match page["nextLink"].as_str() {
            None => break,
            Some(link) => {
                assert!(
                    link.starts_with("https://kv1.vault.localhost:8443/secrets?api-version=2025-07-01&$skiptoken=")
                );
                assert!(link.ends_with("&maxresults=25"));
                let tok = link.split("$skiptoken=").nth(1).unwrap().split('&').next().unwrap();
                token = Some(tok.to_string());
            }
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..60).map(|i| format!("s{i:02}")).collect();
    assert_eq!(seen, want);

    // Versions page too.
    for _ in 0..4 {
        e.svc.set_secret(&c, "s00", &set("again")).unwrap();
    }
    let p = Paging { maxresults: Some("2"), skiptoken: None };
    let page = js(&e.svc.list_versions(&c, "s00", p).unwrap());
    assert_eq!(page["value"].as_array().unwrap().len(), 2);
    let link = page["nextLink"].as_str().unwrap();
    assert!(
        link.starts_with("https://kv1.vault.localhost:8443/secrets/s00/versions?api-version=2025-07-01&$skiptoken=")
    );
}

#[test]
fn throttling() {
    let e = env_with(Arc::new(SqliteStore::open_in_memory().unwrap()), None, Some(3));
    let v = e.vault("kv1", true, false, 90);
    let other = e.vault("kv2", true, false, 90);
    let who = caller();
    e.assign(&who, &v.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    e.assign(&who, &other.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    e.clock.set(T0 - T0 % 10);
    let h = host("kv1");
    let c = ctx(&h, &who);
    for _ in 0..3 {
        e.svc.list_secrets(&c, Paging::default()).unwrap();
    }
    let err = e.svc.list_secrets(&c, Paging::default()).unwrap_err();
    let w = err.to_wire();
    assert_eq!((w.status, w.code, w.retry_after), (429, "Throttled", Some(10)));
    let h2 = host("kv2");
    assert!(e.svc.list_secrets(&ctx(&h2, &who), Paging::default()).is_ok(), "per vault");
    e.clock.advance(10);
    assert!(e.svc.list_secrets(&c, Paging::default()).is_ok());
}

#[test]
fn no_plaintext_at_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("wid.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).unwrap());
    let e = env_with(store, Some(tmp), None);
    let v = e.vault("kv1", true, false, 90);
    let who = caller();
    e.assign(&who, &v.arm_id(), roles::KEY_VAULT_SECRETS_OFFICER);
    let h = host("kv1");
    let c = ctx(&h, &who);
    let marker = "PLAINTEXT-MARKER-7f3a9c";
    e.svc.set_secret(&c, "db", &set(marker)).unwrap();
    e.svc.set_secret(&c, "db", &set(&format!("{marker}-2"))).unwrap();
    e.svc.update_secret(&c, "db", None, br#"{"tags":{"x":"y"}}"#).unwrap();
    e.svc.list_secrets(&c, Paging::default()).unwrap();
    let blob = e.svc.backup(&c, "db").unwrap().value;
    e.svc.delete_secret(&c, "db").unwrap();
    e.svc.purge(&c, "db").unwrap();
    e.svc.restore(&c, json!({ "value": blob }).to_string().as_bytes()).unwrap();
    assert!(js(&e.svc.get_secret(&c, "db", None).unwrap())["value"].as_str().unwrap().starts_with(marker));
    for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(!bytes.windows(marker.len()).any(|w| w == marker.as_bytes()), "plaintext at rest");
    }
}
