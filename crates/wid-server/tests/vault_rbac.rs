//! RBAC on the Key Vault data plane, at the level of data actions, with workload identities that
//! got their tokens by the federated exchange: the built-in Key Vault roles, a role on a single
//! secret, no role, revocation on the next request, and vaults without the RBAC model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod vault_support;

use serde_json::json;
use vault_support::{Kv, Principal, roles};

struct Matrix {
    kv: Kv,
    admin: String,
}

async fn setup() -> Matrix {
    let kv = Kv::start().await;
    kv.create_vault("kv1", true, false, 90).await;
    kv.assign(&kv.vault_id("kv1"), roles::SECRETS_OFFICER, &kv.admin_oid()).await;
    let admin = kv.admin_kv_token().await;
    for name in ["one", "two"] {
        let r = kv.call(Some(&admin), "PUT", "kv1", &format!("/secrets/{name}"), Some(json!({"value": name}))).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    Matrix { kv, admin }
}

/// Runs each data-plane operation once as `p` and returns the statuses, in this order: get, list,
/// versions, set, update, backup, delete+recover (the recover half only when delete passed).
async fn statuses(m: &Matrix, p: &Principal) -> Vec<u16> {
    let kv = &m.kv;
    let t = Some(p.token.as_str());
    let mut out = vec![
        kv.call(t, "GET", "kv1", "/secrets/one/", None).await.status,
        kv.call(t, "GET", "kv1", "/secrets", None).await.status,
        kv.call(t, "GET", "kv1", "/secrets/one/versions", None).await.status,
        kv.call(t, "PUT", "kv1", "/secrets/one", Some(json!({"value": "changed"}))).await.status,
        kv.call(t, "PATCH", "kv1", "/secrets/one/", Some(json!({"tags": {"k": "v"}}))).await.status,
        kv.call(t, "POST", "kv1", "/secrets/one/backup", None).await.status,
    ];
    let del = kv.call(t, "DELETE", "kv1", "/secrets/one", None).await.status;
    out.push(del);
    if del == 200 {
        let r = kv.call(t, "POST", "kv1", "/deletedsecrets/one/recover", None).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    out
}

#[tokio::test]
async fn built_in_roles_by_data_action() {
    let m = setup().await;
    let kv = &m.kv;
    let vault = kv.vault_id("kv1");
    let (user, officer, reader, admin_role) = (
        kv.identity("user").await,
        kv.identity("officer").await,
        kv.identity("reader").await,
        kv.identity("kvadmin").await,
    );
    kv.assign(&vault, roles::SECRETS_USER, &user.principal_id).await;
    kv.assign(&vault, roles::SECRETS_OFFICER, &officer.principal_id).await;
    // Inherited from the resource group.
    kv.assign(&format!("/subscriptions/{}/resourceGroups/rg", kv.s.subscription), roles::READER, &reader.principal_id)
        .await;
    kv.assign(&vault, roles::ADMINISTRATOR, &admin_role.principal_id).await;

    assert_eq!(statuses(&m, &user).await, [200, 200, 200, 403, 403, 403, 403], "Key Vault Secrets User");
    assert_eq!(statuses(&m, &officer).await, [200, 200, 200, 200, 200, 200, 200], "Key Vault Secrets Officer");
    assert_eq!(statuses(&m, &reader).await, [403, 200, 200, 403, 403, 403, 403], "Key Vault Reader");
    assert_eq!(statuses(&m, &admin_role).await, [200, 200, 200, 200, 200, 200, 200], "Key Vault Administrator");

    // The reader sees metadata but never a value.
    let r = kv.call(Some(&reader.token), "GET", "kv1", "/secrets", None).await;
    assert!(r.body["value"].as_array().unwrap().iter().all(|i| i.get("value").is_none()));
}

#[tokio::test]
async fn no_role_is_forbidden_by_rbac_with_azures_message() {
    let m = setup().await;
    let kv = &m.kv;
    let nobody = kv.identity("nobody").await;
    // Owner of the whole subscription is a control-plane role: no data actions.
    kv.assign(
        &format!("/subscriptions/{}", kv.s.subscription),
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        &nobody.principal_id,
    )
    .await;
    assert_eq!(statuses(&m, &nobody).await, [403; 7]);
    let r = kv.call(Some(&nobody.token), "GET", "kv1", "/secrets/One", None).await;
    assert_eq!((r.status, r.code()), (403, ("Forbidden", "ForbiddenByRbac")));
    let expected = format!(
        "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss={}/{}/\r\nAction: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'\r\nResource: '/subscriptions/{}/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv1/secrets/one'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: kv1;location=eastus\r\n",
        nobody.client_id, nobody.principal_id, kv.s.url, kv.s.tenant, kv.s.subscription
    );
    assert_eq!(r.message(), expected);
    // A refusal at the collection names the vault and the metadata action.
    let r = kv.call(Some(&nobody.token), "GET", "kv1", "/secrets", None).await;
    assert!(r.message().contains("Action: 'Microsoft.KeyVault/vaults/secrets/readMetadata/action'\r\n"));
    assert!(r.message().contains(&format!(
        "Resource: '/subscriptions/{}/resourcegroups/rg/providers/microsoft.keyvault/vaults/kv1'\r\n",
        kv.s.subscription
    )));
    // The vault's creator (Owner at /) has no data access either until assigned a data role.
    let creator = kv.admin_kv_token().await;
    let r = kv.call(Some(&creator), "GET", "kv1", "/secrets/one", None).await;
    assert_eq!(r.status, 200, "assigned Secrets Officer in setup");
    let _ = m.admin;
}

#[tokio::test]
async fn a_role_on_one_secret_covers_only_that_secret_and_revocation_is_immediate() {
    let m = setup().await;
    let kv = &m.kv;
    let app = kv.identity("app").await;
    let t = Some(app.token.as_str());
    let id = kv.assign(&format!("{}/secrets/one", kv.vault_id("kv1")), roles::SECRETS_USER, &app.principal_id).await;
    assert_eq!(kv.call(t, "GET", "kv1", "/secrets/one/", None).await.status, 200);
    assert_eq!(kv.call(t, "GET", "kv1", "/secrets/ONE", None).await.status, 200, "names are case-insensitive");
    assert_eq!(kv.call(t, "GET", "kv1", "/secrets/one/versions", None).await.status, 200);
    let r = kv.call(t, "GET", "kv1", "/secrets/two/", None).await;
    assert_eq!((r.status, r.code().1), (403, "ForbiddenByRbac"));
    assert_eq!(kv.call(t, "GET", "kv1", "/secrets", None).await.status, 403, "listing is a vault-level action");

    kv.unassign(&id).await;
    let r = kv.call(t, "GET", "kv1", "/secrets/one/", None).await;
    assert_eq!((r.status, r.code().1), (403, "ForbiddenByRbac"), "revoked on the next request");

    // And granting is immediate too.
    kv.assign(&kv.vault_id("kv1"), roles::SECRETS_USER, &app.principal_id).await;
    assert_eq!(kv.call(t, "GET", "kv1", "/secrets/two", None).await.status, 200);
}

#[tokio::test]
async fn vaults_without_the_rbac_model_are_refused() {
    let m = setup().await;
    let kv = &m.kv;
    // The management API refuses to create one; should such a vault exist anyway (an older data
    // dir, a store written by another tool), the data plane refuses it too (unit-tested in
    // wid-vault with a vault written to the store directly).
    let body = json!({"location": "eastus", "properties": {
        "tenantId": kv.s.tenant, "sku": {"family": "A", "name": "standard"}, "enableRbacAuthorization": false}});
    let path = "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/legacy";
    let (st, created) = kv.s.arm(&kv.admin, "PUT", path, Some(body)).await;
    if st == 400 {
        assert!(created["error"]["message"].as_str().unwrap().contains("RBAC"), "{created}");
        let r = kv.call(Some(&m.admin), "GET", "legacy", "/secrets", None).await;
        assert_eq!((r.status, r.code().0), (404, "VaultNotFound"));
        return;
    }
    assert!(st == 200 || st == 201, "{created}");
    kv.assign(&kv.vault_id("legacy"), roles::ADMINISTRATOR, &kv.admin_oid()).await;
    let r = kv.call(Some(&m.admin), "GET", "legacy", "/secrets", None).await;
    assert_eq!((r.status, r.code().0), (403, "Forbidden"), "{}", r.body);
    assert!(r.message().contains("wid supports only the Azure RBAC permission model"), "{}", r.message());
}
