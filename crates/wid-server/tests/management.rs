//! The management plane over HTTPS: Entra's federated-credential rules, RBAC on reads and writes,
//! ARM error shapes for bad input, and casing rules of ARM ids.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use serde_json::{Value, json};
use wid_core::SystemClock;
use wid_testkit::TestServer;

const ID: &str =
    "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app";

fn fic(issuer: &str, subject: &str) -> Value {
    json!({"properties": {"issuer": issuer, "subject": subject, "audiences": ["api://AzureADTokenExchange"]}})
}

async fn with_identity(max_fics: usize) -> (TestServer, String) {
    let s = TestServer::start_with(move |c| c.max_credentials_per_identity = max_fics, Arc::new(SystemClock)).await;
    let admin = s.admin_token().await;
    assert_eq!(
        s.arm(&admin, "PUT", "/subscriptions/{sub}/resourcegroups/rg", Some(json!({"location": "eastus"}))).await.0,
        201
    );
    assert_eq!(s.arm(&admin, "PUT", ID, Some(json!({"location": "eastus"}))).await.0, 201);
    (s, admin)
}

fn err(body: &Value) -> (&str, &str) {
    (body["error"]["code"].as_str().unwrap_or(""), body["error"]["message"].as_str().unwrap_or(""))
}

#[tokio::test]
async fn federated_credential_rules() {
    let (s, admin) = with_identity(3).await;
    let put = |name: &str, body: Value| {
        let (s, admin, path) = (&s, admin.clone(), format!("{ID}/federatedIdentityCredentials/{name}"));
        async move { s.arm(&admin, "PUT", &path, Some(body)).await }
    };
    let iss = "https://issuer.example/t/c/";
    let (st, body) = put("fic-1", fic(iss, "system:serviceaccount:a:b")).await;
    assert_eq!(st, 201, "{body}");
    assert_eq!(body["type"], "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials");
    // PUT again = update (200), the name keeps its casing.
    let (st, body) = put("FIC-1", fic(iss, "system:serviceaccount:a:c")).await;
    assert_eq!((st, body["name"].as_str()), (200, Some("fic-1")), "{body}");

    let (st, body) = put("fic-2", fic(iss, "system:serviceaccount:a:c")).await;
    assert_eq!(st, 400);
    assert!(err(&body).1.contains("Issuer and subject combination already exists"), "{body}");

    let two = json!({"properties": {"issuer": iss, "subject": "x", "audiences": ["a", "b"]}});
    let (st, body) = put("fic-2", two).await;
    assert_eq!((st, err(&body).1), (400, "Federated identity credentials must have exactly one audience."));

    for bad_name in ["ab", "-lead", "has.dot", "x%2F..%2Fy"] {
        let (st, body) = put(bad_name, fic(iss, "s")).await;
        assert_eq!(st, 400, "{bad_name}: {body}");
    }
    let (st, body) = put("fic-2", fic("http://insecure.example/", "s")).await;
    assert_eq!(st, 400, "{body}");
    let (st, body) = put("fic-2", json!({"properties": {"issuer": iss}})).await;
    assert_eq!(st, 400, "{body}");

    // The per-identity limit is configurable (3 here, 20 by default).
    assert_eq!(put("fic-2", fic(iss, "s2")).await.0, 201);
    assert_eq!(put("fic-3", fic(iss, "s3")).await.0, 201);
    let (st, body) = put("fic-4", fic(iss, "s4")).await;
    assert_eq!(st, 400);
    assert!(err(&body).1.contains("already has 3"), "{body}");

    let (st, list) = s.arm(&admin, "GET", &format!("{ID}/federatedIdentityCredentials"), None).await;
    assert_eq!((st, list["value"].as_array().unwrap().len()), (200, 3));
    let (st, body) = s.arm(&admin, "GET", &format!("{ID}/federatedIdentityCredentials/nope"), None).await;
    assert_eq!((st, err(&body).0), (404, "ResourceNotFound"));
    // A credential under a missing identity.
    let missing = ID.replace("/app", "/ghost");
    let (st, body) =
        s.arm(&admin, "PUT", &format!("{missing}/federatedIdentityCredentials/fic-9"), Some(fic(iss, "s"))).await;
    assert_eq!((st, err(&body).0), (404, "ResourceNotFound"), "{body}");
}

#[tokio::test]
async fn arm_shapes_and_casing() {
    let (s, admin) = with_identity(20).await;
    let (st, id) =
        s.arm(&admin, "GET", &ID.replace("resourceGroups/rg", "resourcegroups/RG").replace("app", "APP"), None).await;
    assert_eq!(st, 200, "{id}");
    assert_eq!(id["name"], "app", "names keep the casing they were created with");
    assert_eq!(id["type"], "Microsoft.ManagedIdentity/userAssignedIdentities");
    assert!(id["id"].as_str().unwrap().contains("/resourcegroups/rg/providers/"), "{id}");
    for field in ["clientId", "principalId", "tenantId"] {
        assert!(id["properties"][field].as_str().unwrap().len() == 36, "{field}");
    }
    assert_eq!(id["properties"]["tenantId"], s.tenant.as_str());
    let (st, list) = s
        .arm(&admin, "GET", "/subscriptions/{sub}/providers/Microsoft.ManagedIdentity/userAssignedIdentities", None)
        .await;
    assert_eq!((st, list["value"].as_array().unwrap().len()), (200, 1));
    let (st, subs) = s.arm(&admin, "GET", "/subscriptions", None).await;
    assert_eq!((st, subs["value"][0]["subscriptionId"].as_str()), (200, Some(s.subscription.as_str())));
    // Deleting a missing identity is a 204, as ARM.
    assert_eq!(s.arm(&admin, "DELETE", &ID.replace("/app", "/ghost"), None).await.0, 204);
}

#[tokio::test]
async fn bad_input_gets_arm_errors_never_5xx() {
    let (s, admin) = with_identity(20).await;
    let url = |p: &str| format!("{}{}?api-version=junk", s.url, p.replace("{sub}", &s.subscription));
    let send = |method: reqwest::Method, path: String, body: &'static [u8]| {
        let req = s
            .http
            .request(method, url(&path))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body);
        async move {
            let resp = req.send().await.unwrap();
            let st = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (st, serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)))
        }
    };
    let dotted = ID.replace("/app", "/x.y");
    let cases: Vec<(reqwest::Method, &str, &[u8], u16, &str)> = vec![
        (reqwest::Method::PUT, "/subscriptions/{sub}/resourcegroups/rg2", b"{not json", 400, "InvalidRequestContent"),
        (reqwest::Method::PUT, "/subscriptions/{sub}/resourcegroups/rg2", b"[]", 400, "InvalidRequestContent"),
        (reqwest::Method::PUT, "/subscriptions/{sub}/resourcegroups/rg2", b"{}", 400, "LocationRequired"),
        (
            reqwest::Method::PUT,
            "/subscriptions/{sub}/resourcegroups/rg2",
            br#"{"location": 5}"#,
            400,
            "InvalidRequestContent",
        ),
        (
            reqwest::Method::PUT,
            "/subscriptions/{sub}/resourcegroups/a%00b",
            br#"{"location":"x"}"#,
            400,
            "InvalidResourceName",
        ),
        (
            reqwest::Method::PUT,
            "/subscriptions/{sub}/resourcegroups/a%2Fb",
            br#"{"location":"x"}"#,
            400,
            "InvalidResourceName",
        ),
        (
            reqwest::Method::GET,
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg",
            b"",
            404,
            "SubscriptionNotFound",
        ),
        (reqwest::Method::GET, "/subscriptions/{sub}/resourcegroups/nope", b"", 404, "ResourceGroupNotFound"),
        (
            reqwest::Method::GET,
            "/subscriptions/{sub}/resourcegroups/rg/providers/Microsoft.Foo/bars/x",
            b"",
            400,
            "InvalidResourceType",
        ),
        (reqwest::Method::POST, "/subscriptions/{sub}/resourcegroups/rg", b"", 400, "MethodNotAllowed"),
        (reqwest::Method::PUT, &dotted, b"{}", 400, "InvalidResourceName"),
    ];
    for (method, path, body, want, code) in cases {
        let (st, got) = send(method.clone(), path.to_string(), body).await;
        assert_eq!((st, err(&got).0), (want, code), "{method} {path}: {got}");
    }
    // Path traversal never escapes its segment, and an unknown top-level path is a plain 404.
    let resp = s
        .http
        .get(format!("{}/subscriptions/{}/resourcegroups/rg/../../tenants", s.url, s.subscription))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    assert_eq!(s.http.get(format!("{}/nothing/here", s.url)).send().await.unwrap().status().as_u16(), 404);
    // Oversized headers are refused at the HTTP layer.
    let resp = s.http.get(format!("{}/healthz", s.url)).header("x-big", "a".repeat(100 * 1024)).send().await;
    assert!(resp.map(|r| r.status().is_client_error()).unwrap_or(true));
    assert_eq!(s.http.get(format!("{}/healthz", s.url)).send().await.unwrap().status().as_u16(), 200, "still serving");
}

#[tokio::test]
async fn callers_without_roles_see_and_change_nothing() {
    let (s, admin) = with_identity(20).await;
    // An identity with no role assignment, holding a valid management token.
    let reader = s.workload_identity(&admin, "rg", "reader", &s.url).await.token;
    assert_eq!(s.arm(&reader, "GET", "/subscriptions/{sub}/resourceGroups/rg", None).await.0, 403);
    let (st, body) = s.arm(&reader, "PUT", &ID.replace("/app", "/other"), Some(json!({}))).await;
    assert_eq!((st, err(&body).0), (403, "AuthorizationFailed"));
    assert!(err(&body).1.contains("Microsoft.ManagedIdentity/userAssignedIdentities/write"), "{body}");
    let (st, list) = s.arm(&reader, "GET", "/subscriptions/{sub}/resourcegroups", None).await;
    assert_eq!((st, list["value"].as_array().unwrap().len()), (200, 0), "lists show only what the caller may read");
    let (st, subs) = s.arm(&reader, "GET", "/subscriptions", None).await;
    assert_eq!((st, subs["value"].as_array().unwrap().len()), (200, 0));
    // The Owner at `/` reads everywhere.
    assert_eq!(s.arm(&admin, "GET", "/subscriptions/{sub}/resourceGroups/rg", None).await.0, 200);
}

/// With --azure-hostnames, Resource Manager's own audiences (the SDKs' and az's) are this server's
/// management API too; without it, they are no resource of this server.
#[tokio::test]
async fn azure_management_audiences_only_with_azure_hostnames() {
    let plain = TestServer::start().await;
    let azure = TestServer::start_with(|c| c.azure_hostnames = true, Arc::new(SystemClock)).await;
    for resource in ["https://management.azure.com/", "https://management.core.windows.net/"] {
        let (status, body) = plain.admin_token_for(resource).await;
        assert_eq!((status, body["error_codes"][0].as_i64()), (400, Some(500011)), "{resource}: {body}");

        let (status, body) = azure.admin_token_for(resource).await;
        assert_eq!(status, 200, "{resource}: {body}");
        let token = body["access_token"].as_str().unwrap();
        let (status, body) = azure.arm(token, "GET", "/subscriptions/{sub}?api-version=2022-12-01", None).await;
        assert_eq!(status, 200, "{resource}: {body}");
        // Another server's management API does not take it.
        let (status, _) = plain.arm(token, "GET", "/subscriptions/{sub}?api-version=2022-12-01", None).await;
        assert_eq!(status, 401);
    }
}

/// `--max-federated-credentials 0`: no limit, and exchanges still find their credential (through the
/// index large sets get) after writes and deletes.
#[tokio::test]
async fn zero_means_no_credential_limit() {
    let (s, admin) = with_identity(0).await;
    let cluster = "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/big";
    let (st, c) = s.arm(&admin, "PUT", cluster, Some(json!({}))).await;
    assert_eq!(st, 201, "{c}");
    let iss = c["properties"]["oidcIssuerProfile"]["issuerURL"].as_str().unwrap().to_string();
    let n = 150;
    for i in 0..n {
        let path = format!("{ID}/federatedIdentityCredentials/fic-{i}");
        let (st, body) =
            s.arm(&admin, "PUT", &path, Some(fic(&iss, &format!("system:serviceaccount:apps:sa{i}")))).await;
        assert_eq!(st, 201, "{i}: {body}");
    }
    let (_, list) = s.arm(&admin, "GET", &format!("{ID}/federatedIdentityCredentials"), None).await;
    assert_eq!(list["value"].as_array().unwrap().len(), n);
    let (_, id) = s.arm(&admin, "GET", ID, None).await;
    let client_id = id["properties"]["clientId"].as_str().unwrap().to_string();
    let exchange = |sa: String| {
        let (s, admin, client_id) = (&s, admin.clone(), client_id.clone());
        async move {
            let body = json!({"namespace": "apps", "serviceAccountName": sa});
            let (st, t) = s.arm(&admin, "POST", &format!("{cluster}/serviceAccountToken"), Some(body)).await;
            assert_eq!(st, 200, "{t}");
            s.exchange(&client_id, t["token"].as_str().unwrap(), &format!("{}/.default", s.url)).await
        }
    };
    assert_eq!(exchange("sa77".into()).await.0, 200);
    // Deleting one moves another in the index; both answer as they should.
    let (st, _) = s.arm(&admin, "DELETE", &format!("{ID}/federatedIdentityCredentials/fic-3"), None).await;
    assert_eq!(st, 200);
    let (st, body) = exchange("sa3".into()).await;
    assert_eq!((st, body["error_codes"][0].as_i64()), (401, Some(700213)), "{body}");
    assert_eq!(exchange(format!("sa{}", n - 1)).await.0, 200);
    // A duplicate issuer and subject is still refused.
    let (st, body) = s
        .arm(
            &admin,
            "PUT",
            &format!("{ID}/federatedIdentityCredentials/again"),
            Some(fic(&iss, "system:serviceaccount:apps:sa9")),
        )
        .await;
    assert_eq!(st, 400);
    assert!(err(&body).1.contains("Issuer and subject combination already exists"), "{body}");
}
