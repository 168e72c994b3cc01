//! Azure RBAC on the management plane over HTTPS: role definitions (the `$filter` az sends),
//! role assignments at any scope with ARM's errors and list filters, immediate effect of a
//! create or delete, and who may manage assignments.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use serde_json::{Value, json};
use wid_testkit::TestServer;

const RG: &str = "/subscriptions/{sub}/resourceGroups/rg";
const VAULT: &str = "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv-roles";
const SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
const KV_DATA_ACCESS_ADMIN: &str = "8b54135c-b56d-4d72-a534-26097cfdc8d8";
const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";

fn err(body: &Value) -> (&str, &str) {
    (body["error"]["code"].as_str().unwrap_or(""), body["error"]["message"].as_str().unwrap_or(""))
}

fn assignments(scope: &str) -> String {
    format!("{scope}/providers/Microsoft.Authorization/roleAssignments")
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The body az sends (`RoleAssignmentCreateParameters`).
fn ra_body(s: &TestServer, role: &str, principal: &str) -> Value {
    json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", s.subscription),
        "principalId": principal,
        "principalType": "ServicePrincipal",
    }})
}

async fn setup() -> (TestServer, String) {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    assert_eq!(s.arm(&admin, "PUT", RG, Some(json!({"location": "eastus"}))).await.0, 201);
    let (st, body) = s.arm(&admin, "PUT", VAULT, Some(json!({}))).await;
    assert_eq!(st, 201, "{body}");
    (s, admin)
}

/// A new identity and a management token for it (it holds no role yet).
async fn identity(s: &TestServer, admin: &str, name: &str) -> (String, String) {
    let w = s.workload_identity(admin, "rg", name, &s.url).await;
    (w.principal_id, w.token)
}

#[tokio::test]
async fn role_definitions_as_az_reads_them() {
    let (s, admin) = setup().await;
    // Step 1 of `az role assignment create --role NAME --scope VAULT`.
    let path = format!(
        "{VAULT}/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName%20eq%20'Key%20Vault%20Secrets%20User'"
    );
    let (st, list) = s.arm(&admin, "GET", &path, None).await;
    assert_eq!(st, 200, "{list}");
    let defs = list["value"].as_array().unwrap();
    assert_eq!(defs.len(), 1);
    let d = &defs[0];
    assert_eq!(
        d["id"],
        format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER}", s.subscription)
    );
    assert_eq!(
        (d["name"].as_str(), d["type"].as_str()),
        (Some(SECRETS_USER), Some("Microsoft.Authorization/roleDefinitions"))
    );
    let p = &d["properties"];
    assert_eq!(p["roleName"], "Key Vault Secrets User");
    assert_eq!(p["type"], "BuiltInRole");
    assert_eq!(p["assignableScopes"], json!(["/"]));
    assert!(p["description"].as_str().unwrap().starts_with("Read secret contents."));
    assert_eq!(
        p["permissions"],
        json!([{"actions": [], "notActions": [], "dataActions": [
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
        ], "notDataActions": []}])
    );
    assert!(p["createdOn"].is_string() && p["updatedOn"].is_string());

    // Case-insensitive name, the BuiltInRole type filter tolerated, `/` gives `/providers/…` ids.
    let (st, list) = s
        .arm(
            &admin,
            "GET",
            "/providers/Microsoft.Authorization/roleDefinitions?$filter=roleName%20eq%20'reader'%20and%20type%20eq%20'BuiltInRole'",
            None,
        )
        .await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["value"][0]["id"], format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"));
    assert_eq!(list["value"].as_array().unwrap().len(), 1);
    let (_, all) =
        s.arm(&admin, "GET", "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions", None).await;
    assert!(all["value"].as_array().unwrap().len() >= 10);
    let (_, custom) = s
        .arm(
            &admin,
            "GET",
            "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions?$filter=type%20eq%20'CustomRole'",
            None,
        )
        .await;
    assert_eq!(custom["value"], json!([]));
    let (st, one) =
        s.arm(&admin, "GET", &format!("{RG}/providers/Microsoft.Authorization/roleDefinitions/{READER}"), None).await;
    assert_eq!((st, one["properties"]["roleName"].as_str()), (200, Some("Reader")));
    let (st, body) = s
        .arm(&admin, "GET", "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-000000000001", None)
        .await;
    assert_eq!((st, err(&body).0), (404, "RoleDefinitionDoesNotExist"), "{body}");
    let (st, body) = s
        .arm(
            &admin,
            "GET",
            "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions?$filter=description%20eq%20'x'",
            None,
        )
        .await;
    assert_eq!(st, 400, "{body}");
}

#[tokio::test]
async fn role_assignment_create_rules_and_shape() {
    let (s, admin) = setup().await;
    let (principal, _) = identity(&s, &admin, "app").await;
    let name = guid();
    let (st, ra) = s
        .arm(&admin, "PUT", &format!("{}/{name}", assignments(VAULT)), Some(ra_body(&s, SECRETS_USER, &principal)))
        .await;
    assert_eq!(st, 201, "{ra}");
    let vault = VAULT.replace("{sub}", &s.subscription);
    assert_eq!(ra["id"], format!("{vault}/providers/Microsoft.Authorization/roleAssignments/{name}"));
    assert_eq!(
        (ra["name"].as_str(), ra["type"].as_str()),
        (Some(name.as_str()), Some("Microsoft.Authorization/roleAssignments"))
    );
    let p = &ra["properties"];
    assert_eq!(
        p["roleDefinitionId"],
        format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER}", s.subscription)
    );
    assert_eq!(p["principalId"], principal.as_str());
    assert_eq!(p["principalType"], "ServicePrincipal");
    assert_eq!(p["scope"], vault.as_str());
    assert_eq!(p["createdBy"], s.profile.principal_id.clone().unwrap().as_str());
    for null in ["condition", "conditionVersion", "description", "delegatedManagedIdentityResourceId"] {
        assert!(p[null].is_null(), "{null}");
    }
    assert!(p["createdOn"].is_string() && p["updatedOn"].is_string());

    // The same principal, role and scope under a new GUID: 409 RoleAssignmentExists (az lists instead).
    let (st, body) = s
        .arm(&admin, "PUT", &format!("{}/{}", assignments(VAULT), guid()), Some(ra_body(&s, SECRETS_USER, &principal)))
        .await;
    assert_eq!((st, err(&body).0), (409, "RoleAssignmentExists"), "{body}");
    assert!(err(&body).1.starts_with("The role assignment already exists."), "{body}");
    // The same PUT again is idempotent.
    let (st, again) = s
        .arm(&admin, "PUT", &format!("{}/{name}", assignments(VAULT)), Some(ra_body(&s, SECRETS_USER, &principal)))
        .await;
    assert_eq!((st, &again), (200, &ra));
    let (st, body) =
        s.arm(&admin, "PUT", &format!("{}/{name}", assignments(VAULT)), Some(ra_body(&s, READER, &principal))).await;
    assert_eq!((st, err(&body).0), (400, "RoleAssignmentUpdateNotPermitted"), "{body}");
    let (st, got) = s.arm(&admin, "GET", &format!("{}/{name}", assignments(VAULT)), None).await;
    assert_eq!((st, &got), (200, &ra));
    let (st, body) = s.arm(&admin, "GET", &format!("{}/{name}", assignments(RG)), None).await;
    assert_eq!((st, err(&body).0), (404, "RoleAssignmentNotFound"), "an assignment is read at its own scope");

    // A bare role GUID and a secret-level scope work too.
    let secret = format!("{VAULT}/secrets/db-password");
    let body = json!({"properties": {"roleDefinitionId": READER, "principalId": principal}});
    let (st, r) = s.arm(&admin, "PUT", &format!("{}/{}", assignments(&secret), guid()), Some(body)).await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["properties"]["principalType"], "ServicePrincipal", "filled in when omitted");
    assert_eq!(r["properties"]["scope"], secret.replace("{sub}", &s.subscription));

    let cases: Vec<(String, Value, u16, &str)> = vec![
        (format!("{}/not-a-guid", assignments(VAULT)), ra_body(&s, READER, &principal), 400, "InvalidRoleAssignmentId"),
        (
            format!("{}/{}", assignments(VAULT), guid()),
            ra_body(&s, "00000000-0000-0000-0000-00000000abcd", &principal),
            400,
            "RoleDefinitionDoesNotExist",
        ),
        (
            format!("{}/{}", assignments(VAULT), guid()),
            json!({"properties": {"roleDefinitionId": "Reader", "principalId": principal}}),
            400,
            "InvalidRoleDefinitionId",
        ),
        (
            format!("{}/{}", assignments(VAULT), guid()),
            ra_body(&s, READER, "11111111-2222-3333-4444-555555555555"),
            400,
            "PrincipalNotFound",
        ),
        (format!("{}/{}", assignments(VAULT), guid()), ra_body(&s, READER, "nope"), 400, "InvalidPrincipalId"),
        (
            format!("{}/{}", assignments(VAULT), guid()),
            json!({"properties": {"roleDefinitionId": READER, "principalId": principal, "principalType": "User"}}),
            400,
            "UnmatchedPrincipalType",
        ),
        (
            format!("{}/{}", assignments(VAULT), guid()),
            json!({"properties": {"roleDefinitionId": READER, "principalId": principal, "condition": "true"}}),
            400,
            "InvalidRoleAssignmentRequest",
        ),
        (format!("{}/{}", assignments(VAULT), guid()), json!({}), 400, "InvalidRequestContent"),
        (
            format!("{}/{}", assignments("/subscriptions/00000000-0000-0000-0000-000000000000"), guid()),
            ra_body(&s, READER, &principal),
            404,
            "SubscriptionNotFound",
        ),
        (
            format!("{}/{}", assignments("/subscriptions/{sub}/resourceGroups/missing"), guid()),
            ra_body(&s, READER, &principal),
            404,
            "ResourceGroupNotFound",
        ),
        (
            format!("{}/{}", assignments("/subscriptions/{sub}/foo/bar"), guid()),
            ra_body(&s, READER, &principal),
            400,
            "InvalidScope",
        ),
    ];
    for (path, body, status, code) in cases {
        let (st, got) = s.arm(&admin, "PUT", &path, Some(body)).await;
        assert_eq!((st, err(&got).0), (status, code), "{path}: {got}");
    }
    let (st, got) = s
        .arm(
            &admin,
            "PUT",
            &format!("{}/{}", assignments(VAULT), guid()),
            Some(ra_body(&s, READER, "11111111-2222-3333-4444-555555555555")),
        )
        .await;
    assert!(
        err(&got).1.starts_with("Principal 11111111222233334444555555555555 does not exist in the directory"),
        "{st} {got}"
    );
}

#[tokio::test]
async fn list_filters_follow_arm() {
    let (s, admin) = setup().await;
    let (p, _) = identity(&s, &admin, "lister").await;
    let (other, _) = identity(&s, &admin, "other").await;
    let secret = format!("{VAULT}/secrets/s1");
    for (scope, role, who) in [
        ("/subscriptions/{sub}".to_string(), READER, &p),
        (RG.to_string(), CONTRIBUTOR, &p),
        (VAULT.to_string(), SECRETS_USER, &p),
        (secret.clone(), READER, &p),
        (VAULT.to_string(), READER, &other),
    ] {
        let (st, body) =
            s.arm(&admin, "PUT", &format!("{}/{}", assignments(&scope), guid()), Some(ra_body(&s, role, who))).await;
        assert_eq!(st, 201, "{scope}: {body}");
    }
    let scopes = |v: &Value| -> Vec<String> {
        let sub = s.subscription.clone();
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["properties"]["scope"].as_str().unwrap().replace(&sub, "{sub}"))
            .collect()
    };
    // atScope(): at or above the scope (the admin's Owner at `/` included), never below.
    let (st, at) = s.arm(&admin, "GET", &format!("{}?$filter=atScope()", assignments(VAULT)), None).await;
    assert_eq!(st, 200, "{at}");
    let at_scopes = scopes(&at);
    assert!(at_scopes.contains(&"/".to_string()), "{at_scopes:?}");
    assert!(at_scopes.contains(&"/subscriptions/{sub}".to_string()));
    assert!(at_scopes.contains(&RG.to_string()));
    assert_eq!(at_scopes.iter().filter(|x| *x == VAULT).count(), 2);
    assert!(!at_scopes.contains(&secret));
    // No filter: at, above and below.
    let (_, all) = s.arm(&admin, "GET", &assignments(VAULT), None).await;
    assert!(scopes(&all).contains(&secret));
    // One principal, either spelling; below the subscription when listing at the subscription.
    let (_, mine) = s
        .arm(&admin, "GET", &format!("{}?$filter=principalId%20eq%20'{p}'", assignments("/subscriptions/{sub}")), None)
        .await;
    assert_eq!(scopes(&mine).len(), 4, "{mine}");
    let (_, mine_at) = s
        .arm(&admin, "GET", &format!("{}?$filter=atScope()%20and%20assignedTo('{other}')", assignments(VAULT)), None)
        .await;
    assert_eq!(scopes(&mine_at), vec![VAULT.to_string()]);
    let (st, body) = s.arm(&admin, "GET", &format!("{}?$filter=roleName%20eq%20'x'", assignments(VAULT)), None).await;
    assert_eq!(st, 400, "{body}");
}

#[tokio::test]
async fn assignments_take_effect_at_once_and_delete_revokes() {
    let (s, admin) = setup().await;
    let (p, token) = identity(&s, &admin, "reader").await;
    let rg_read = |tok: String| {
        let s = &s;
        async move { s.arm(&tok, "GET", RG, None).await.0 }
    };
    assert_eq!(rg_read(token.clone()).await, 403);
    let path = format!("{}/{}", assignments(RG), guid());
    assert_eq!(s.arm(&admin, "PUT", &path, Some(ra_body(&s, READER, &p))).await.0, 201);
    assert_eq!(rg_read(token.clone()).await, 200, "same token, no propagation delay");
    // The identity can read assignments now (Reader has */read) but not change them.
    let (st, list) = s.arm(&token, "GET", &format!("{}?$filter=atScope()", assignments(RG)), None).await;
    assert_eq!(st, 200, "{list}");
    let (st, body) =
        s.arm(&token, "PUT", &format!("{}/{}", assignments(RG), guid()), Some(ra_body(&s, CONTRIBUTOR, &p))).await;
    assert_eq!((st, err(&body).0), (403, "AuthorizationFailed"), "{body}");
    assert!(err(&body).1.contains("Microsoft.Authorization/roleAssignments/write"), "{body}");
    assert_eq!(s.arm(&token, "DELETE", &path, None).await.0, 403);

    let (st, removed) = s.arm(&admin, "DELETE", &path, None).await;
    assert_eq!(st, 200, "{removed}");
    assert_eq!(removed["properties"]["principalId"], p.as_str());
    assert_eq!(rg_read(token.clone()).await, 403, "revoked at once");
    assert_eq!(s.arm(&admin, "DELETE", &path, None).await.0, 204);
    assert_eq!(s.arm(&admin, "GET", &path, None).await.0, 404);
}

#[tokio::test]
async fn key_vault_data_access_administrator_manages_key_vault_roles_only() {
    let (s, admin) = setup().await;
    let (delegate, token) = identity(&s, &admin, "delegate").await;
    let (app, _) = identity(&s, &admin, "app").await;
    assert_eq!(
        s.arm(
            &admin,
            "PUT",
            &format!("{}/{}", assignments(VAULT), guid()),
            Some(ra_body(&s, KV_DATA_ACCESS_ADMIN, &delegate))
        )
        .await
        .0,
        201
    );
    let path = format!("{}/{}", assignments(VAULT), guid());
    let (st, body) = s.arm(&token, "PUT", &path, Some(ra_body(&s, SECRETS_USER, &app))).await;
    assert_eq!(st, 201, "{body}");
    let (st, body) =
        s.arm(&token, "PUT", &format!("{}/{}", assignments(VAULT), guid()), Some(ra_body(&s, CONTRIBUTOR, &app))).await;
    assert_eq!((st, err(&body).0), (403, "AuthorizationFailed"), "{body}");
    assert!(err(&body).1.contains("Key Vault Data Access Administrator"), "{body}");
    // Not above the vault either.
    let (st, _) =
        s.arm(&token, "PUT", &format!("{}/{}", assignments(RG), guid()), Some(ra_body(&s, SECRETS_USER, &app))).await;
    assert_eq!(st, 403);
    assert_eq!(s.arm(&token, "DELETE", &path, None).await.0, 200);
}
