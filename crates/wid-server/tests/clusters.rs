//! Cluster registrations as `az aks` uses them: what a create or update sent comes back on GET (so
//! az's GET-then-PUT update loses nothing), the API server a registration names becomes the
//! kubeconfig of `listClusterUserCredential`, and its tokens (AKS's server app) are minted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use base64::Engine;
use serde_json::{Value, json};
use wid_testkit::{TestServer, claims_of};

const CLUSTER: &str = "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks";

fn err(body: &Value) -> (&str, &str) {
    (body["error"]["code"].as_str().unwrap_or(""), body["error"]["message"].as_str().unwrap_or(""))
}

async fn setup() -> (TestServer, String) {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    assert_eq!(
        s.arm(&admin, "PUT", "/subscriptions/{sub}/resourceGroups/rg", Some(json!({"location": "eastus"}))).await.0,
        201
    );
    (s, admin)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The kind of body `az aks create` sends (trimmed): agent pools, identity, network profile, …
fn az_create_body() -> Value {
    json!({
        "location": "eastus",
        "identity": {"type": "SystemAssigned"},
        "sku": {"name": "Base", "tier": "Free"},
        "properties": {
            "kubernetesVersion": "",
            "dnsPrefix": "aks-rg-0a1b2c",
            "agentPoolProfiles": [{"name": "nodepool1", "count": 3, "vmSize": "Standard_DS2_v2", "mode": "System"}],
            "linuxProfile": {"adminUsername": "azureuser", "ssh": {"publicKeys": [{"keyData": "ssh-rsa AAAA"}]}},
            "networkProfile": {"networkPlugin": "azure", "loadBalancerSku": "standard"},
            "oidcIssuerProfile": {"enabled": true},
            "securityProfile": {"workloadIdentity": {"enabled": true}, "imageCleaner": {"enabled": false}},
            "provisioningState": "ignored: wid computes it",
        },
    })
}

#[tokio::test]
async fn what_a_create_sent_comes_back_and_survives_get_then_put() {
    let (s, admin) = setup().await;
    let (st, created) = s.arm(&admin, "PUT", CLUSTER, Some(az_create_body())).await;
    assert_eq!(st, 201, "{created}");
    let (_, got) = s.arm(&admin, "GET", CLUSTER, None).await;
    assert_eq!(got, created);
    let p = &got["properties"];
    assert_eq!(p["agentPoolProfiles"][0]["count"], 3);
    assert_eq!(p["networkProfile"]["networkPlugin"], "azure");
    assert_eq!(p["dnsPrefix"], "aks-rg-0a1b2c");
    assert_eq!(p["provisioningState"], "Succeeded", "computed fields are wid's");
    assert_eq!(
        p["securityProfile"],
        json!({"imageCleaner": {"enabled": false}, "workloadIdentity": {"enabled": true}})
    );
    assert!(p["oidcIssuerProfile"]["issuerURL"].as_str().unwrap().starts_with("https://"));
    assert_eq!(
        (&got["identity"], &got["sku"]),
        (&json!({"type": "SystemAssigned"}), &json!({"name": "Base", "tier": "Free"}))
    );

    // A managed-identity cluster gets what AKS makes: the node resource group and in it the
    // kubelet's identity, a real one.
    assert_eq!(p["nodeResourceGroup"], "MC_rg_aks_eastus");
    let kubelet = &p["identityProfile"]["kubeletidentity"];
    let kubelet_id = kubelet["resourceId"].as_str().unwrap();
    assert!(
        kubelet_id.ends_with(
            "/resourcegroups/MC_rg_aks_eastus/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aks-agentpool"
        ),
        "{kubelet}"
    );
    let (st, identity) = s.arm(&admin, "GET", kubelet_id, None).await;
    assert_eq!(st, 200, "{identity}");
    assert_eq!(
        (&identity["properties"]["clientId"], &identity["properties"]["principalId"]),
        (&kubelet["clientId"], &kubelet["objectId"])
    );
    let (_, node_group) = s.arm(&admin, "GET", "/subscriptions/{sub}/resourceGroups/MC_rg_aks_eastus", None).await;
    assert_eq!(node_group["tags"], json!({"aks-managed-cluster-name": "aks", "aks-managed-cluster-rg": "rg"}));

    // az aks update: the GET, edited, PUT back whole.
    let mut update = got.clone();
    update["properties"]["securityProfile"]["workloadIdentity"]["enabled"] = json!(false);
    let (st, updated) = s.arm(&admin, "PUT", CLUSTER, Some(update)).await;
    assert_eq!(st, 200, "{updated}");
    assert_eq!(updated["properties"]["securityProfile"]["workloadIdentity"]["enabled"], false);
    assert_eq!(updated["properties"]["agentPoolProfiles"], got["properties"]["agentPoolProfiles"]);
    assert_eq!(updated["properties"]["oidcIssuerProfile"], got["properties"]["oidcIssuerProfile"]);

    // A PATCH of tags keeps everything else.
    let (st, patched) = s.arm(&admin, "PATCH", CLUSTER, Some(json!({"tags": {"team": "a"}}))).await;
    assert_eq!(st, 200, "{patched}");
    assert_eq!(patched["tags"], json!({"team": "a"}));
    assert_eq!(patched["properties"]["networkProfile"], got["properties"]["networkProfile"]);
    assert_eq!(patched["identity"], got["identity"]);

    // More than wid keeps: refused, nothing changed.
    let mut huge = az_create_body();
    huge["properties"]["blob"] = json!("x".repeat(70 * 1024));
    let (st, body) = s.arm(&admin, "PUT", CLUSTER, Some(huge)).await;
    assert_eq!((st, err(&body).0), (400, "BadRequest"), "{body}");
    assert_eq!(s.arm(&admin, "GET", CLUSTER, None).await.1, patched);

    // Deleting the cluster deletes its node resource group, as AKS does; a group of that name
    // wid did not make for it is left alone.
    assert_eq!(s.arm(&admin, "DELETE", CLUSTER, None).await.0, 200);
    assert_eq!(s.arm(&admin, "GET", kubelet_id, None).await.0, 404);
    assert_eq!(s.arm(&admin, "GET", "/subscriptions/{sub}/resourceGroups/MC_rg_aks_eastus", None).await.0, 404);
    let mine = "/subscriptions/{sub}/resourceGroups/nodes-of-mine";
    assert_eq!(s.arm(&admin, "PUT", mine, Some(json!({"location": "eastus"}))).await.0, 201);
    let mut body = az_create_body();
    body["properties"]["nodeResourceGroup"] = json!("nodes-of-mine");
    assert_eq!(s.arm(&admin, "PUT", CLUSTER, Some(body)).await.0, 201);
    assert_eq!(
        s.arm(
            &admin,
            "GET",
            &format!("{mine}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aks-agentpool"),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(s.arm(&admin, "DELETE", CLUSTER, None).await.0, 200);
    assert_eq!(s.arm(&admin, "GET", mine, None).await.0, 200);
}

#[tokio::test]
async fn the_user_kubeconfig_names_the_registered_api_server_and_kubelogin() {
    let (s, admin) = setup().await;
    let ca_pem = std::fs::read(s.ca_pem()).unwrap();
    let creds = format!("{CLUSTER}/listClusterUserCredential?api-version=2025-10-01");
    assert_eq!(s.arm(&admin, "PUT", CLUSTER, Some(json!({}))).await.0, 201);

    // No API server yet: a clear refusal naming the fix.
    let (st, body) = s.arm(&admin, "POST", &creds, None).await;
    assert_eq!((st, err(&body).0), (400, "BadRequest"), "{body}");
    assert!(err(&body).1.contains("--api-server"), "{body}");

    // Bad API servers are refused.
    for (bad, why) in [
        (json!({"url": "http://10.0.0.1:6443", "certificateAuthorityData": b64(&ca_pem)}), "https"),
        (json!({"url": "https://10.0.0.1:6443"}), "certificateAuthorityData"),
        (json!({"url": "https://10.0.0.1:6443", "certificateAuthorityData": "%%%"}), "base64"),
        (json!({"url": "https://10.0.0.1:6443", "certificateAuthorityData": b64(b"not a cert")}), "certificate"),
    ] {
        let (st, body) = s.arm(&admin, "PUT", CLUSTER, Some(json!({"properties": {"apiServer": bad}}))).await;
        assert_eq!((st, err(&body).0), (400, "BadRequest"), "{body}");
        assert!(err(&body).1.contains(why), "{why}: {body}");
    }

    let api = json!({"url": "https://127.0.0.1:6443/", "certificateAuthorityData": b64(&ca_pem)});
    let (st, c) = s.arm(&admin, "PUT", CLUSTER, Some(json!({"properties": {"apiServer": api}}))).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(
        (c["properties"]["fqdn"].as_str(), c["properties"]["apiServer"]["url"].as_str()),
        (Some("127.0.0.1"), Some("https://127.0.0.1:6443"))
    );

    let (st, body) = s.arm(&admin, "POST", &creds, None).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["kubeconfigs"][0]["name"], "clusterUser");
    let yaml =
        base64::engine::general_purpose::STANDARD.decode(body["kubeconfigs"][0]["value"].as_str().unwrap()).unwrap();
    let yaml = String::from_utf8(yaml).unwrap();
    for line in [
        "    server: \"https://127.0.0.1:6443\"",
        &format!("    certificate-authority-data: {}", b64(&ca_pem)),
        "current-context: \"aks\"",
        "- name: \"clusterUser_rg_aks\"",
        "      command: kubelogin",
        "      - \"6dae42f8-4368-4678-94ff-3960e28e3630\"",
        &format!("      - \"{}\"", s.tenant),
        "      - \"devicecode\"",
    ] {
        assert!(yaml.lines().any(|l| l == line), "{line:?} not in:\n{yaml}");
    }

    // The GET-then-PUT of an update sends the URL back without the CA: kept.
    let (_, got) = s.arm(&admin, "GET", CLUSTER, None).await;
    assert_eq!(s.arm(&admin, "PUT", CLUSTER, Some(got)).await.0, 200);
    assert_eq!(s.arm(&admin, "POST", &creds, None).await.0, 200);

    // Static credentials are refused; the exec format only.
    for action in ["listClusterAdminCredential", "listClusterMonitoringUserCredential"] {
        let (st, body) = s.arm(&admin, "POST", &format!("{CLUSTER}/{action}"), None).await;
        assert_eq!((st, err(&body).0), (400, "BadRequest"), "{body}");
        assert!(err(&body).1.contains("no cluster credentials"), "{body}");
    }
    let (st, body) = s.arm(&admin, "POST", &format!("{creds}&format=azure"), None).await;
    assert_eq!((st, err(&body).0), (400, "BadRequest"), "{body}");

    // An empty URL forgets the API server.
    let forget = json!({"properties": {"apiServer": {"url": ""}}});
    assert_eq!(s.arm(&admin, "PUT", CLUSTER, Some(forget)).await.0, 200);
    assert_eq!(s.arm(&admin, "POST", &creds, None).await.0, 400);

    // Without a role on the cluster, nothing.
    let reader = s.workload_identity(&admin, "rg", "nobody", &s.url).await.token;
    let (st, body) = s.arm(&reader, "POST", &creds, None).await;
    assert_eq!((st, err(&body).0), (403, "AuthorizationFailed"), "{body}");
}

/// kubelogin asks tokens for AKS's server app; the cluster's API server checks that audience.
#[tokio::test]
async fn tokens_for_the_aks_server_app() {
    let (s, _) = setup().await;
    let (st, body) = s.admin_token_for("6dae42f8-4368-4678-94ff-3960e28e3630").await;
    assert_eq!(st, 200, "{body}");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], "6dae42f8-4368-4678-94ff-3960e28e3630");
    assert_eq!(claims["iss"], format!("{}/{}/", s.url, s.tenant));
}

/// Azure lists a subscription to a principal with a role anywhere in it.
#[tokio::test]
async fn a_role_on_one_resource_shows_the_subscription() {
    let (s, admin) = setup().await;
    let wl = s.workload_identity(&admin, "rg", "narrow", &s.url).await;
    assert_eq!(s.arm(&wl.token, "GET", "/subscriptions", None).await.1["value"], json!([]));
    let id = "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/narrow";
    let ra = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7", s.subscription),
        "principalId": wl.principal_id,
        "principalType": "ServicePrincipal",
    }});
    let path = format!("{id}/providers/Microsoft.Authorization/roleAssignments/{}", uuid::Uuid::new_v4());
    let (st, body) = s.arm(&admin, "PUT", &path, Some(ra)).await;
    assert_eq!(st, 201, "{body}");
    let (st, subs) = s.arm(&wl.token, "GET", "/subscriptions", None).await;
    assert_eq!((st, subs["value"][0]["subscriptionId"].as_str()), (200, Some(s.subscription.as_str())), "{subs}");
    // Reading the subscription itself still needs a role there.
    assert_eq!(s.arm(&wl.token, "GET", "/subscriptions/{sub}", None).await.0, 403);
}

/// AKS identity bindings: the ARM shape, the one credential an identity gets however many clusters
/// bind it, and its removal with the last binding.
#[tokio::test]
async fn identity_bindings_share_one_credential_per_identity() {
    let (s, admin) = setup().await;
    let other = CLUSTER.replace("/aks", "/aks2");
    for c in [CLUSTER, other.as_str()] {
        assert_eq!(s.arm(&admin, "PUT", c, Some(json!({}))).await.0, 201);
    }
    let id_path = "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities";
    let (_, web) = s.arm(&admin, "PUT", &format!("{id_path}/web"), Some(json!({}))).await;
    let (_, api) = s.arm(&admin, "PUT", &format!("{id_path}/api"), Some(json!({}))).await;
    let body = |identity: &Value| json!({"properties": {"managedIdentity": {"resourceId": identity["id"]}}});
    let binding = |cluster: &str, name: &str| format!("{cluster}/identityBindings/{name}?api-version=2026-06-01");

    let (st, b) = s.arm(&admin, "PUT", &binding(CLUSTER, "web-binding"), Some(body(&web))).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(b["type"], "Microsoft.ContainerService/managedClusters/identityBindings");
    let mi = &b["properties"]["managedIdentity"];
    assert_eq!((&mi["clientId"], &mi["objectId"]), (&web["properties"]["clientId"], &web["properties"]["principalId"]));
    assert_eq!(mi["tenantId"], s.tenant.as_str());
    let issuer = format!("{}/identitybinding/{}/{}", s.url, s.tenant, web["properties"]["clientId"].as_str().unwrap());
    assert_eq!(b["properties"]["oidcIssuer"]["oidcIssuerUrl"], issuer.as_str());
    assert_eq!(b["properties"]["provisioningState"], "Succeeded");

    // The identity's credential, as AKS names it.
    let fics = format!("{id_path}/web/federatedIdentityCredentials");
    let (st, fic) = s.arm(&admin, "GET", &format!("{fics}/aks-identity-binding"), None).await;
    assert_eq!(st, 200, "{fic}");
    assert_eq!(fic["properties"]["issuer"], issuer.as_str());
    assert_eq!(fic["properties"]["subject"], web["id"]);

    // Again: 200; another identity under the same name: refused.
    assert_eq!(s.arm(&admin, "PUT", &binding(CLUSTER, "web-binding"), Some(body(&web))).await.0, 200);
    let (st, e) = s.arm(&admin, "PUT", &binding(CLUSTER, "WEB-binding"), Some(body(&api))).await;
    assert_eq!((st, err(&e).0), (400, "BadRequest"), "{e}");
    assert!(err(&e).1.contains("cannot be changed"), "{e}");

    // A second cluster binds the same identity: still one credential.
    assert_eq!(s.arm(&admin, "PUT", &binding(&other, "web"), Some(body(&web))).await.0, 201);
    let (_, list) = s.arm(&admin, "GET", &fics, None).await;
    assert_eq!(list["value"].as_array().unwrap().len(), 1, "{list}");
    let (_, listed) = s.arm(&admin, "GET", &format!("{CLUSTER}/identityBindings"), None).await;
    assert_eq!(listed["value"][0]["name"], "web-binding");
    assert_eq!(s.arm(&admin, "GET", &binding(&other, "web"), None).await.0, 200);

    // A cluster PUT keeps its bindings (they are child resources).
    assert_eq!(s.arm(&admin, "PUT", CLUSTER, Some(json!({"tags": {"a": "b"}}))).await.0, 200);
    assert_eq!(s.arm(&admin, "GET", &binding(CLUSTER, "web-binding"), None).await.0, 200);

    // The credential goes with the identity's last binding.
    assert_eq!(s.arm(&admin, "DELETE", &binding(CLUSTER, "web-binding"), None).await.0, 200);
    assert_eq!(s.arm(&admin, "GET", &format!("{fics}/aks-identity-binding"), None).await.0, 200);
    assert_eq!(s.arm(&admin, "DELETE", &binding(&other, "web"), None).await.0, 200);
    assert_eq!(s.arm(&admin, "GET", &format!("{fics}/aks-identity-binding"), None).await.0, 404);
    assert_eq!(s.arm(&admin, "DELETE", &binding(&other, "web"), None).await.0, 204);

    // Bad input.
    for (bad, code) in [
        (json!({"properties": {}}), 400),
        (json!({"properties": {"managedIdentity": {"resourceId": "/subscriptions/x/whatever"}}}), 400),
        (
            json!({"properties": {"managedIdentity": {"resourceId": format!("{}/ghost", web["id"].as_str().unwrap().rsplit_once('/').unwrap().0)}}}),
            404,
        ),
    ] {
        let (st, e) = s.arm(&admin, "PUT", &binding(CLUSTER, "b2"), Some(bad)).await;
        assert_eq!(st, code, "{e}");
    }
    assert_eq!(s.arm(&admin, "PUT", &binding(CLUSTER, "-bad"), Some(body(&web))).await.0, 400);
}
