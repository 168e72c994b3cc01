//! The Microsoft Graph subset over HTTPS: the caller, service principals by filter and id,
//! getByIds, Graph's shapes and errors, and which tokens it takes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use serde_json::{Value, json};
use wid_core::SystemClock;
use wid_testkit::TestServer;

async fn graph(s: &TestServer, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = s.http.request(method.parse().unwrap(), format!("{}{path}", s.url)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn principals_are_service_principals_in_graphs_shapes() {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let id = s
        .arm(
            &admin,
            "PUT",
            "/subscriptions/{sub}/resourcegroups/rg?api-version=2021-04-01",
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(id.0, 201, "{}", id.1);
    let ident_path = "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app?api-version=2023-01-31";
    let (status, ident) = s.arm(&admin, "PUT", ident_path, Some(json!({"location": "eastus"}))).await;
    assert_eq!(status, 201, "{ident}");
    let (client_id, principal_id) =
        (ident["properties"]["clientId"].as_str().unwrap(), ident["properties"]["principalId"].as_str().unwrap());

    // az ad signed-in-user show: the caller, here an application (an extension: Entra refuses app tokens).
    let (status, me) = graph(&s, &admin, "GET", "/v1.0/me", None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["@odata.context"], "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals/$entity");
    assert_eq!(me["@odata.type"], "#microsoft.graph.servicePrincipal");
    assert_eq!(me["appId"], s.profile.client_id.as_str());
    assert_eq!(me["servicePrincipalType"], "Application");

    // What az role assignment create --assignee X asks, for an app id, then an object id.
    let filter = format!("/v1.0/servicePrincipals?$filter=servicePrincipalNames/any(c:c%20eq%20'{client_id}')");
    let (status, list) = graph(&s, &admin, "GET", &filter, None).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["@odata.context"], "https://graph.microsoft.com/v1.0/$metadata#servicePrincipals");
    let (sp,) = (list["value"].as_array().unwrap().first().unwrap(),);
    assert_eq!((sp["id"].as_str(), sp["displayName"].as_str()), (Some(principal_id), Some("app")));
    assert_eq!(sp["servicePrincipalType"], "ManagedIdentity");
    assert!(
        sp["servicePrincipalNames"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().ends_with("/userAssignedIdentities/app"))
    );
    let (_, by_app) =
        graph(&s, &admin, "GET", &format!("/v1.0/servicePrincipals?$filter=appId%20eq%20'{client_id}'"), None).await;
    assert_eq!(by_app["value"][0]["id"], principal_id);
    let (_, none) = graph(&s, &admin, "GET", "/v1.0/servicePrincipals?$filter=appId%20eq%20'nobody'", None).await;
    assert_eq!(none["value"], json!([]));
    let body = json!({"ids": [principal_id, "00000000-0000-0000-0000-000000000000"], "types": ["user", "group", "servicePrincipal"]});
    let (status, objs) = graph(&s, &admin, "POST", "/v1.0/directoryObjects/getByIds", Some(body)).await;
    assert_eq!(status, 200, "{objs}");
    assert_eq!(objs["value"].as_array().unwrap().len(), 1);
    assert_eq!(objs["value"][0]["appId"], client_id);
    let (status, one) = graph(&s, &admin, "GET", &format!("/v1.0/servicePrincipals/{principal_id}"), None).await;
    assert_eq!((status, one["displayName"].as_str()), (200, Some("app")));

    // Graph's errors.
    let (status, err) =
        graph(&s, &admin, "GET", "/v1.0/servicePrincipals/00000000-0000-0000-0000-000000000000", None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("Request_ResourceNotFound")));
    assert!(err["error"]["innerError"]["request-id"].is_string(), "{err}");
    let (status, err) = graph(&s, &admin, "GET", "/v1.0/servicePrincipals", None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (400, Some("Request_UnsupportedQuery")));
    let (status, err) = graph(&s, "not-a-token", "GET", "/v1.0/me", None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (401, Some("InvalidAuthenticationToken")));
}

/// Graph's own audience is taken with --azure-hostnames, and is no resource of this server without it.
#[tokio::test]
async fn graph_tokens_only_with_azure_hostnames() {
    let plain = TestServer::start().await;
    let azure = TestServer::start_with(|c| c.azure_hostnames = true, Arc::new(SystemClock)).await;
    for (s, want) in [(&plain, 400), (&azure, 200)] {
        let (status, body) = s.admin_token_for("https://graph.microsoft.com").await;
        assert_eq!(status, want, "{body}");
        if status == 200 {
            let (status, me) = graph(s, body["access_token"].as_str().unwrap(), "GET", "/v1.0/me", None).await;
            assert_eq!(status, 200, "{me}");
        }
    }
}
