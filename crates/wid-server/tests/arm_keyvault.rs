//! Key vaults on the management plane over HTTPS: the create/update shape `az keyvault create`
//! expects, name rules, settings wid refuses with a reason, purge protection, soft delete with the
//! name kept reserved, `deletedVaults` and purge, the generic `…/resources` listing, and RBAC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use serde_json::{Value, json};
use wid_core::{FixedClock, SystemClock};
use wid_testkit::TestServer;

const RG: &str = "/subscriptions/{sub}/resourceGroups/rg";

fn vault_path(name: &str) -> String {
    format!("{RG}/providers/Microsoft.KeyVault/vaults/{name}")
}

fn err(body: &Value) -> (&str, &str) {
    (body["error"]["code"].as_str().unwrap_or(""), body["error"]["message"].as_str().unwrap_or(""))
}

/// The body `az keyvault create -g rg -n NAME --enable-rbac-authorization --enable-purge-protection`
/// sends (azure-cli 2.91 `create_vault`).
fn az_create_body(tenant: &str, purge_protection: Option<bool>) -> Value {
    let mut props = json!({
        "tenantId": tenant,
        "sku": {"family": "A", "name": "standard"},
        "accessPolicies": [],
        "enableSoftDelete": true,
        "softDeleteRetentionInDays": 90,
        "enableRbacAuthorization": true,
        "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow"},
    });
    if let Some(p) = purge_protection {
        props["enablePurgeProtection"] = json!(p);
    }
    json!({"location": "eastus", "properties": props})
}

async fn server_with_group(clock: Arc<dyn wid_core::Clock>) -> (TestServer, String) {
    let s = TestServer::start_with(|_| {}, clock).await;
    let admin = s.admin_token().await;
    let (st, body) = s.arm(&admin, "PUT", RG, Some(json!({"location": "eastus"}))).await;
    assert_eq!(st, 201, "{body}");
    (s, admin)
}

#[tokio::test]
async fn create_update_show_list_shapes() {
    let (s, admin) = server_with_group(Arc::new(SystemClock)).await;
    // What `az keyvault create` does first: GET (404 swallowed), then PUT.
    let (st, body) = s.arm(&admin, "GET", &vault_path("KeyVault-WI-1"), None).await;
    assert_eq!((st, err(&body).0), (404, "ResourceNotFound"), "{body}");
    let (st, v) = s.arm(&admin, "PUT", &vault_path("KeyVault-WI-1"), Some(az_create_body(&s.tenant, Some(true)))).await;
    assert_eq!(st, 201, "{v}");
    let host = s.url.trim_start_matches("https://");
    assert_eq!(
        v["id"],
        format!(
            "/subscriptions/{}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/KeyVault-WI-1",
            s.subscription
        )
    );
    assert_eq!(v["name"], "KeyVault-WI-1");
    assert_eq!(v["type"], "Microsoft.KeyVault/vaults");
    assert_eq!(v["location"], "eastus");
    assert_eq!(v["tags"], json!({}));
    let p = &v["properties"];
    assert_eq!(p["vaultUri"], format!("https://keyvault-wi-1.vault.{host}/"));
    assert_eq!(p["tenantId"], s.tenant.as_str());
    assert_eq!(p["sku"], json!({"family": "A", "name": "standard"}));
    assert_eq!(p["accessPolicies"], json!([]));
    assert_eq!(p["enableSoftDelete"], true);
    assert_eq!(p["softDeleteRetentionInDays"], 90);
    assert_eq!(p["enableRbacAuthorization"], true);
    assert_eq!(p["enablePurgeProtection"], true);
    assert_eq!(p["provisioningState"], "Succeeded");
    assert_eq!(p["publicNetworkAccess"], "Enabled");

    // Update: tags change, everything else (including purge protection, omitted here) stays.
    let (st, u) = s
        .arm(&admin, "PUT", &vault_path("keyvault-wi-1"), Some(json!({"location": "eastus", "tags": {"team": "a"}})))
        .await;
    assert_eq!(st, 200, "{u}");
    assert_eq!(u["name"], "KeyVault-WI-1", "the name keeps its casing");
    assert_eq!(u["tags"], json!({"team": "a"}));
    assert_eq!(u["properties"]["enablePurgeProtection"], true);
    assert_eq!(u["properties"]["vaultUri"], p["vaultUri"]);

    // Defaults: RBAC on, 90 days, no purge protection (then Azure omits the property).
    let (st, d) = s.arm(&admin, "PUT", &vault_path("kv-defaults"), Some(json!({"properties": {}}))).await;
    assert_eq!(st, 201, "{d}");
    assert_eq!(d["location"], "eastus", "the group's location");
    assert_eq!(d["properties"]["softDeleteRetentionInDays"], 90);
    assert_eq!(d["properties"]["enableRbacAuthorization"], true);
    assert!(d["properties"].get("enablePurgeProtection").is_none(), "{d}");
    // Purge protection off on a vault that never had it is a no-op (Azure refuses even that).
    let (st, d) = s
        .arm(&admin, "PATCH", &vault_path("kv-defaults"), Some(json!({"properties": {"enablePurgeProtection": false}})))
        .await;
    assert_eq!(st, 200, "{d}");

    let (st, got) = s.arm(&admin, "GET", &vault_path("KEYVAULT-wi-1"), None).await;
    assert_eq!((st, &got), (200, &u));
    let (st, list) = s.arm(&admin, "GET", &format!("{RG}/providers/Microsoft.KeyVault/vaults"), None).await;
    assert_eq!(st, 200);
    let names: Vec<&str> = list["value"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["KeyVault-WI-1", "kv-defaults"], "ordered by name, any casing");
    let (st, list) = s.arm(&admin, "GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults", None).await;
    assert_eq!((st, list["value"].as_array().unwrap().len()), (200, 2));
    // `az keyvault list` (and `show` without -g) use ARM's generic listing.
    let (st, res) = s
        .arm(
            &admin,
            "GET",
            "/subscriptions/{sub}/resources?$filter=resourceType%20eq%20'Microsoft.KeyVault/vaults'%20and%20name%20eq%20'keyvault-wi-1'",
            None,
        )
        .await;
    assert_eq!(st, 200, "{res}");
    assert_eq!(
        res["value"],
        json!([{"id": v["id"], "name": "KeyVault-WI-1", "type": "Microsoft.KeyVault/vaults", "location": "eastus", "tags": {"team": "a"}}])
    );
    let (st, res) = s.arm(&admin, "GET", "/subscriptions/{sub}/resources", None).await;
    assert_eq!((st, res["value"].as_array().unwrap().len()), (200, 2));
    // `az keyvault list` and `list-deleted` also ask for managed HSMs; wid has none.
    for path in [
        "/subscriptions/{sub}/providers/Microsoft.KeyVault/managedHSMs",
        "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedManagedHSMs",
    ] {
        let (st, body) = s.arm(&admin, "GET", path, None).await;
        assert_eq!((st, body), (200, json!({"value": []})), "{path}");
    }
}

#[tokio::test]
async fn names_and_settings_are_checked() {
    let (s, admin) = server_with_group(Arc::new(SystemClock)).await;
    for bad in ["ab", "1vault", "-vault", "vault-", "my--vault", "my_vault", "abcdefghijklmnopqrstuvwxy"] {
        let (st, body) = s.arm(&admin, "PUT", &vault_path(bad), Some(az_create_body(&s.tenant, None))).await;
        assert_eq!((st, err(&body).0), (400, "VaultNameNotValid"), "{bad}: {body}");
    }
    let cases = [
        (json!({"softDeleteRetentionInDays": 6}), "softDeleteRetentionInDays"),
        (json!({"softDeleteRetentionInDays": 91}), "softDeleteRetentionInDays"),
        (json!({"enableRbacAuthorization": false}), "RBAC only"),
        (json!({"accessPolicies": [{"objectId": "x"}]}), "access policies"),
        (json!({"enableSoftDelete": false}), "enableSoftDelete"),
        (json!({"publicNetworkAccess": "Disabled"}), "network"),
        (json!({"networkAcls": {"defaultAction": "Deny"}}), "network"),
        (json!({"enabledForDeployment": true}), "enabledForDeployment"),
        (json!({"tenantId": "00000000-0000-0000-0000-000000000001"}), "tenant"),
        (json!({"sku": {"family": "A", "name": "gold"}}), "SKU"),
        (json!({"createMode": "clone"}), "createMode"),
    ];
    for (props, hint) in cases {
        let (st, body) = s.arm(&admin, "PUT", &vault_path("kv-settings"), Some(json!({"properties": props}))).await;
        assert_eq!(st, 400, "{props}: {body}");
        assert!(err(&body).1.contains(hint), "{props}: {body}");
    }
    // Retention is fixed at creation; purge protection cannot be turned off.
    let body = json!({"properties": {"softDeleteRetentionInDays": 7, "enablePurgeProtection": true}});
    assert_eq!(s.arm(&admin, "PUT", &vault_path("kv-settings"), Some(body)).await.0, 201);
    let (st, body) = s
        .arm(&admin, "PUT", &vault_path("kv-settings"), Some(json!({"properties": {"softDeleteRetentionInDays": 30}})))
        .await;
    assert_eq!(st, 400);
    assert!(err(&body).1.contains("can't be modified"), "{body}");
    let (st, body) = s
        .arm(&admin, "PUT", &vault_path("kv-settings"), Some(json!({"properties": {"enablePurgeProtection": false}})))
        .await;
    assert_eq!(st, 400);
    assert!(err(&body).1.starts_with("The property \"enablePurgeProtection\" cannot be set to false."), "{body}");
    let (st, body) = s.arm(&admin, "PUT", &vault_path("kv-settings"), Some(json!({"location": "westus"}))).await;
    assert_eq!((st, err(&body).0), (400, "InvalidResourceLocation"), "{body}");

    // The group must exist; the name is unique on the server.
    let (st, body) = s
        .arm(
            &admin,
            "PUT",
            "/subscriptions/{sub}/resourceGroups/nope/providers/Microsoft.KeyVault/vaults/kv-x",
            Some(json!({})),
        )
        .await;
    assert_eq!((st, err(&body).0), (404, "ResourceGroupNotFound"), "{body}");
    assert_eq!(
        s.arm(&admin, "PUT", "/subscriptions/{sub}/resourcegroups/rg2", Some(json!({"location": "eastus"}))).await.0,
        201
    );
    let (st, body) = s
        .arm(
            &admin,
            "PUT",
            "/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.KeyVault/vaults/KV-SETTINGS",
            Some(json!({})),
        )
        .await;
    assert_eq!((st, err(&body).0), (409, "VaultAlreadyExists"), "{body}");
    // Bad JSON and other subscriptions get ARM errors.
    let (st, body) = s.arm(&admin, "PUT", &vault_path("kv-json"), Some(json!({"properties": {"sku": 5}}))).await;
    assert_eq!((st, err(&body).0), (400, "InvalidRequestContent"), "{body}");
    let (st, body) = s
        .arm(
            &admin,
            "GET",
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
            None,
        )
        .await;
    assert_eq!((st, err(&body).0), (404, "SubscriptionNotFound"));
}

#[tokio::test]
async fn soft_delete_keeps_the_name_until_purged() {
    let (s, admin) = server_with_group(Arc::new(SystemClock)).await;
    let (st, v) = s.arm(&admin, "PUT", &vault_path("kv-soft"), Some(az_create_body(&s.tenant, None))).await;
    assert_eq!(st, 201, "{v}");
    let (st, body) = s.arm(&admin, "DELETE", &vault_path("kv-soft"), None).await;
    assert_eq!((st, body), (200, Value::Null));
    assert_eq!(s.arm(&admin, "GET", &vault_path("kv-soft"), None).await.0, 404);
    assert_eq!(s.arm(&admin, "DELETE", &vault_path("kv-soft"), None).await.0, 204, "already gone: 204 as ARM");
    let (_, list) = s.arm(&admin, "GET", &format!("{RG}/providers/Microsoft.KeyVault/vaults"), None).await;
    assert_eq!(list["value"], json!([]));

    let (st, deleted) =
        s.arm(&admin, "GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults", None).await;
    assert_eq!(st, 200, "{deleted}");
    let d = &deleted["value"][0];
    assert_eq!(
        d["id"],
        format!(
            "/subscriptions/{}/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/kv-soft",
            s.subscription
        )
    );
    assert_eq!(d["type"], "Microsoft.KeyVault/deletedVaults");
    assert_eq!(d["properties"]["vaultId"], v["id"]);
    assert_eq!(d["properties"]["location"], "eastus");
    assert_eq!(d["properties"]["purgeProtectionEnabled"], false);
    let day = |t: &Value| {
        time::OffsetDateTime::parse(t.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
    };
    let days = (day(&d["properties"]["scheduledPurgeDate"]) - day(&d["properties"]["deletionDate"])).whole_days();
    assert_eq!(days, 90);
    let one = "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/kv-soft";
    let (st, got) = s.arm(&admin, "GET", one, None).await;
    assert_eq!((st, &got), (200, d));
    let (st, body) = s.arm(&admin, "GET", &one.replace("eastus", "westus"), None).await;
    assert_eq!((st, err(&body).0), (404, "DeletedVaultNotFound"));

    // The name stays reserved, in this group and any other.
    let (st, body) = s.arm(&admin, "PUT", &vault_path("kv-soft"), Some(az_create_body(&s.tenant, None))).await;
    assert_eq!((st, err(&body).0), (409, "ConflictError"), "{body}");
    assert!(err(&body).1.starts_with("A vault with the same name already exists in deleted state."), "{body}");

    // Recover it, delete it again, then purge: the name is free.
    let recover = json!({"location": "eastus", "properties": {"createMode": "recover"}});
    let (st, r) = s.arm(&admin, "PUT", &vault_path("kv-soft"), Some(recover)).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["properties"]["vaultUri"], v["properties"]["vaultUri"]);
    assert_eq!(s.arm(&admin, "GET", &vault_path("kv-soft"), None).await.0, 200);
    // A role assignment on the vault survives the soft delete (recover restores access) but not
    // the purge: a vault re-created under the name starts with no grants.
    let owner = s.profile.principal_id.clone().unwrap();
    let ra_path = format!(
        "{}/providers/Microsoft.Authorization/roleAssignments/5f8b0c2e-2f6a-4c1b-9a8e-0c3d7f1e2a4b",
        vault_path("kv-soft")
    );
    let ra = json!({"properties": {"roleDefinitionId": "4633458b-17de-408a-b874-0445c86b69e6", "principalId": owner}});
    assert_eq!(s.arm(&admin, "PUT", &ra_path, Some(ra)).await.0, 201);
    assert_eq!(s.arm(&admin, "DELETE", &vault_path("kv-soft"), None).await.0, 200);
    assert_eq!(s.arm(&admin, "GET", &ra_path, None).await.0, 200);
    let (st, body) = s.arm(&admin, "POST", &format!("{one}/purge"), None).await;
    assert_eq!((st, body), (200, Value::Null));
    let (_, deleted) =
        s.arm(&admin, "GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults", None).await;
    assert_eq!(deleted["value"], json!([]));
    assert_eq!(s.arm(&admin, "POST", &format!("{one}/purge"), None).await.0, 404);
    let (st, body) = s.arm(&admin, "PUT", &vault_path("kv-soft"), Some(az_create_body(&s.tenant, None))).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(s.arm(&admin, "GET", &ra_path, None).await.0, 404, "purged with the vault");

    // Deleting the group soft-deletes its vaults.
    assert_eq!(s.arm(&admin, "DELETE", RG, None).await.0, 200);
    let (_, deleted) =
        s.arm(&admin, "GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults", None).await;
    let names: Vec<&str> = deleted["value"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["kv-soft"]);
}

#[tokio::test]
async fn purge_protection_holds_until_the_retention_ends() {
    let clock = Arc::new(FixedClock::new(1_800_000_000));
    let (s, admin) = server_with_group(clock.clone()).await;
    let body = json!({"properties": {"enablePurgeProtection": true, "softDeleteRetentionInDays": 7}});
    assert_eq!(s.arm(&admin, "PUT", &vault_path("kv-guarded"), Some(body)).await.0, 201);
    assert_eq!(s.arm(&admin, "DELETE", &vault_path("kv-guarded"), None).await.0, 200);
    let purge = "/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/eastus/deletedVaults/kv-guarded/purge";
    let (st, body) = s.arm(&admin, "POST", purge, None).await;
    assert_eq!((st, err(&body).0), (409, "MethodNotAllowed"), "{body}");
    assert!(err(&body).1.contains("purge protection is enabled"), "{body}");
    assert!(err(&body).1.contains("2027-01-22T08:00:00Z"), "says when: {body}");
    clock.advance(6 * 86400);
    let admin = s.admin_token().await;
    assert_eq!(s.arm(&admin, "POST", purge, None).await.0, 409, "one day left");
    clock.advance(86400);
    let admin = s.admin_token().await;
    // The retention is over: purged now (or already, if the server's expiry sweep got there first).
    let (st, body) = s.arm(&admin, "POST", purge, None).await;
    assert!(st == 200 || (st == 404 && err(&body).0 == "DeletedVaultNotFound"), "{st} {body}");
    let (_, deleted) =
        s.arm(&admin, "GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults", None).await;
    assert_eq!(deleted["value"], json!([]));
}

/// A management token for a new identity that holds no role (a hosted cluster issues its
/// service-account token; the identity trusts it through a federated credential).
async fn unprivileged(s: &TestServer, admin: &str, name: &str) -> (String, String) {
    let w = s.workload_identity(admin, "rg", name, &s.url).await;
    (w.principal_id, w.token)
}

#[tokio::test]
async fn vault_operations_need_roles() {
    let (s, admin) = server_with_group(Arc::new(SystemClock)).await;
    assert_eq!(s.arm(&admin, "PUT", &vault_path("kv-rbac"), Some(json!({}))).await.0, 201);
    let (principal, token) = unprivileged(&s, &admin, "nobody").await;
    let (st, body) = s.arm(&token, "GET", &vault_path("kv-rbac"), None).await;
    assert_eq!((st, err(&body).0), (403, "AuthorizationFailed"));
    assert!(err(&body).1.contains("Microsoft.KeyVault/vaults/read"), "{body}");
    let (st, body) = s.arm(&token, "PUT", &vault_path("kv-other"), Some(json!({}))).await;
    assert_eq!((st, err(&body).0), (403, "AuthorizationFailed"));
    assert_eq!(s.arm(&token, "DELETE", &vault_path("kv-rbac"), None).await.0, 403);
    let (st, list) = s.arm(&token, "GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults", None).await;
    assert_eq!((st, list["value"].clone()), (200, json!([])), "lists show only what the caller may read");
    let (st, list) = s.arm(&token, "GET", "/subscriptions/{sub}/resources", None).await;
    assert_eq!((st, list["value"].clone()), (200, json!([])));
    assert_eq!(
        s.arm(&token, "GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults", None).await.0,
        403
    );

    // Reader at the group reads the vault (at once), but cannot change it.
    let reader = format!(
        "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7",
        s.subscription
    );
    let ra = json!({"properties": {"roleDefinitionId": reader, "principalId": principal, "principalType": "ServicePrincipal"}});
    let path = format!("{RG}/providers/Microsoft.Authorization/roleAssignments/0b1f6471-1bf0-4dda-aec3-cb9272f09590");
    let (st, body) = s.arm(&admin, "PUT", &path, Some(ra)).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(s.arm(&token, "GET", &vault_path("kv-rbac"), None).await.0, 200);
    let (_, list) = s.arm(&token, "GET", "/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults", None).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    assert_eq!(s.arm(&token, "PUT", &vault_path("kv-rbac"), Some(json!({}))).await.0, 403, "Reader cannot write");
}
