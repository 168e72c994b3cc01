//! End-to-end token exchange against a real in-process `wid serve` over HTTPS: the walkthrough's
//! management calls, a hosted cluster issuer, an uploaded-JWKS issuer, and every refusal with its
//! AADSTS code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use base64::Engine;
use serde_json::{Value, json};
use wid_crypto::{Alg, SigningKey, encode_compact};
use wid_testkit::{TestServer, claims_of};

const AUD: &str = "api://AzureADTokenExchange";
const EXT_ISSUER: &str = "https://private-issuer.example/cluster-1/";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct Setup {
    s: TestServer,
    admin: String,
    client_id: String,
    principal_id: String,
    issuer: String,
    ext_key: SigningKey,
}

async fn setup() -> Setup {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (st, _) =
        s.arm(&admin, "PUT", "/subscriptions/{sub}/resourcegroups/rg1", Some(json!({"location": "eastus"}))).await;
    assert_eq!(st, 201);
    let (st, id) = s
        .arm(
            &admin,
            "PUT",
            "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1",
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(st, 201, "{id}");
    let (st, cluster) = s
        .arm(
            &admin,
            "PUT",
            "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1",
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(st, 201, "{cluster}");
    let issuer = cluster["properties"]["oidcIssuerProfile"]["issuerURL"].as_str().unwrap().to_string();
    assert!(issuer.starts_with(&format!("{}/oidc/{}/", s.url, s.tenant)) && issuer.ends_with('/'), "{issuer}");
    let fic = json!({"properties": {"issuer": issuer, "subject": "system:serviceaccount:ns1:sa1", "audiences": [AUD]}});
    let (st, body) = s
        .arm(&admin, "PUT", "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1/federatedIdentityCredentials/fic1", Some(fic))
        .await;
    assert_eq!(st, 201, "{body}");

    // A private cluster whose JWKS is uploaded: the test holds its key and can forge any assertion.
    let ext_key = SigningKey::generate_rsa(2048).unwrap();
    // No `alg` in the JWK, so the key may verify every RSA algorithm (a JWK naming RS256 binds it).
    let mut jwk = serde_json::to_value(ext_key.public_jwk()).unwrap();
    jwk.as_object_mut().unwrap().remove("alg");
    let jwks = json!({"keys": [jwk]});
    let body = json!({"location": "eastus", "properties": {"oidcIssuerProfile": {"enabled": true, "issuerURL": EXT_ISSUER, "jwks": jwks}}});
    let (st, c2) = s
        .arm(
            &admin,
            "PUT",
            "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/private1",
            Some(body),
        )
        .await;
    assert_eq!(st, 201, "{c2}");
    let fic =
        json!({"properties": {"issuer": EXT_ISSUER, "subject": "system:serviceaccount:ext:app", "audiences": [AUD]}});
    let (st, _) = s
        .arm(&admin, "PUT", "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1/federatedIdentityCredentials/fic2", Some(fic))
        .await;
    assert_eq!(st, 201);
    Setup {
        client_id: id["properties"]["clientId"].as_str().unwrap().into(),
        principal_id: id["properties"]["principalId"].as_str().unwrap().into(),
        s,
        admin,
        issuer,
        ext_key,
    }
}

impl Setup {
    async fn sa_token(&self, ns: &str, sa: &str, aud: &str) -> String {
        let (st, body) = self
            .s
            .arm(
                &self.admin,
                "POST",
                "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/c1/serviceAccountToken",
                Some(json!({"namespace": ns, "serviceAccountName": sa, "audiences": [aud], "expirationSeconds": 3600})),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    async fn exchange(&self, assertion: &str, scope: &str) -> (u16, Value) {
        self.s
            .token(
                &self.s.tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &self.client_id),
                    ("client_assertion", assertion),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("scope", scope),
                ],
            )
            .await
    }

    fn vault_scope(&self) -> String {
        format!("{}/.default", self.s.profile.key_vault_resource.as_deref().unwrap())
    }

    fn forge(&self, claims: Value, alg: Alg) -> String {
        encode_compact(&json!({"typ": "JWT"}), &claims, &self.ext_key, alg).unwrap()
    }

    fn ext_claims(&self) -> Value {
        let t = now();
        json!({"iss": EXT_ISSUER, "sub": "system:serviceaccount:ext:app", "aud": [AUD], "iat": t, "nbf": t, "exp": t + 3600})
    }
}

fn code(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn hosted_issuer_token_is_exchanged_for_a_v1_access_token() {
    let x = setup().await;
    // The hosted issuer publishes discovery and a JWKS, as AKS does.
    let disc: Value =
        x.s.http
            .get(format!("{}.well-known/openid-configuration", x.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(disc["issuer"], x.issuer.as_str());
    let jwks: Value = x.s.http.get(disc["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "RS256");

    let sa = x.sa_token("ns1", "sa1", AUD).await;
    let c = claims_of(&sa);
    assert_eq!(c["sub"], "system:serviceaccount:ns1:sa1");
    assert_eq!(c["aud"], json!([AUD]));
    assert_eq!(c["kubernetes.io"]["namespace"], "ns1");

    // Whitespace around the assertion (a file's trailing newline) is trimmed.
    let (st, body) = x.exchange(&format!("{sa}\n"), &x.vault_scope()).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].is_i64(), "expires_in must be an integer");
    assert!(body.get("scope").is_none());
    let at = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(at["aud"], x.s.profile.key_vault_resource.as_deref().unwrap());
    assert_eq!(at["oid"], x.principal_id.as_str());
    assert_eq!(at["sub"], x.principal_id.as_str());
    assert_eq!(at["appid"], x.client_id.as_str());
    assert_eq!(at["tid"], x.s.tenant.as_str());
    assert_eq!(at["idtyp"], "app");
    assert_eq!(at["ver"], "1.0");
    assert_eq!(at["iss"], format!("{}/{}/", x.s.url, x.s.tenant));
    assert!(
        at["xms_mirid"].as_str().unwrap().ends_with("/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1")
    );
    assert_eq!(at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(), 86400);

    // The access token verifies against the published keys of the tenant.
    let keys: Value =
        x.s.http
            .get(format!("{}/{}/discovery/v2.0/keys", x.s.url, x.s.tenant))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(!keys["keys"].as_array().unwrap().is_empty());

    // The management resource, with MSAL's extra scopes and a trailing-slash resource.
    let (st, body) = x.exchange(&sa, &format!("{}//.default openid offline_access profile", x.s.url)).await;
    assert_eq!(st, 200, "{body}");
}

#[tokio::test]
async fn mismatches_name_the_closest_credential() {
    let x = setup().await;
    let sa = x.sa_token("ns1", "other", AUD).await;
    let (st, body) = x.exchange(&sa, &x.vault_scope()).await;
    assert_eq!((st, code(&body)), (401, 700213), "{body}");
    let desc = body["error_description"].as_str().unwrap();
    assert!(desc.contains("'system:serviceaccount:ns1:other'") && desc.contains("fic1"), "{desc}");
    assert_eq!(body["error"], "invalid_client");
    assert!(body["trace_id"].is_string() && body["correlation_id"].is_string() && body["timestamp"].is_string());

    let sa = x.sa_token("ns1", "sa1", "https://kubernetes.default.svc").await;
    let (st, body) = x.exchange(&sa, &x.vault_scope()).await;
    assert_eq!((st, code(&body)), (401, 700212), "{body}");

    // Issuer differing by the trailing slash only.
    let mut c = x.ext_claims();
    c["iss"] = json!(EXT_ISSUER.trim_end_matches('/'));
    let (st, body) = x.exchange(&x.forge(c, Alg::Rs256), &x.vault_scope()).await;
    assert_eq!((st, code(&body)), (401, 700211), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("trailing '/'"), "{body}");

    // Subject differing in case only.
    let mut c = x.ext_claims();
    c["sub"] = json!("system:serviceaccount:EXT:app");
    let (st, body) = x.exchange(&x.forge(c, Alg::Rs256), &x.vault_scope()).await;
    assert_eq!((st, code(&body)), (401, 7002138), "{body}");
}

#[tokio::test]
async fn uploaded_jwks_issuer_and_assertion_rules() {
    let x = setup().await;
    let scope = x.vault_scope();
    for alg in [Alg::Rs256, Alg::Rs384, Alg::Rs512, Alg::Ps256] {
        let (st, body) = x.exchange(&x.forge(x.ext_claims(), alg), &scope).await;
        assert_eq!(st, 200, "{alg}: {body}");
    }
    // aud as a plain string is accepted.
    let mut c = x.ext_claims();
    c["aud"] = json!(AUD);
    assert_eq!(x.exchange(&x.forge(c, Alg::Rs256), &scope).await.0, 200);

    let t = now();
    let cases: Vec<(&str, Value, u64, u16)> = vec![
        ("expired", json!({"iat": t - 7200, "nbf": t - 7200, "exp": t - 3600}), 700024, 401),
        ("not yet valid", json!({"iat": t, "nbf": t + 3600, "exp": t + 7200}), 700024, 401),
        ("over 25 h", json!({"iat": t, "exp": t + 26 * 3600}), 70023, 400),
        ("no iat", json!({"iat": null, "exp": t + 3600}), 50027, 400),
        ("no exp", json!({"exp": null}), 50027, 400),
    ];
    for (what, patch, want, status) in cases {
        let mut c = x.ext_claims();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        let (st, body) = x.exchange(&x.forge(c, Alg::Rs256), &scope).await;
        assert_eq!((st, code(&body)), (status, want), "{what}: {body}");
    }

    // A key the issuer does not publish.
    let other = SigningKey::generate_rsa(2048).unwrap();
    let forged = encode_compact(&json!({}), &x.ext_claims(), &other, Alg::Rs256).unwrap();
    let (st, body) = x.exchange(&forged, &scope).await;
    assert_eq!((st, code(&body)), (401, 7000272), "{body}");

    // The right kid with another key's signature.
    let forged = encode_compact(&json!({"kid": x.ext_key.kid()}), &x.ext_claims(), &other, Alg::Rs256).unwrap();
    let (st, body) = x.exchange(&forged, &scope).await;
    assert_eq!((st, code(&body)), (401, 700027), "{body}");

    // alg none and HS256 are refused.
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    for alg in ["none", "HS256"] {
        let token =
            format!("{}.{}.{}", b64(&json!({"alg": alg, "kid": x.ext_key.kid()})), b64(&x.ext_claims()), "c2ln");
        let (st, body) = x.exchange(&token, &scope).await;
        assert_eq!((st, code(&body)), (401, 700027), "{alg}: {body}");
    }
    // Garbage, and an assertion larger than any real one (32 KiB).
    let (st, body) = x.exchange("not-a-jwt", &scope).await;
    assert_eq!((st, code(&body)), (400, 50027), "{body}");
    let mut c = x.ext_claims();
    c["padding"] = json!("x".repeat(40 * 1024));
    let (st, body) = x.exchange(&x.forge(c, Alg::Rs256), &scope).await;
    assert_eq!((st, code(&body)), (400, 50027), "{body}");
}

#[tokio::test]
async fn request_errors_have_their_codes() {
    let x = setup().await;
    let sa = x.sa_token("ns1", "sa1", AUD).await;
    let base = |k: &str| -> Vec<(String, String)> {
        let mut v = vec![
            ("grant_type".to_string(), "client_credentials".to_string()),
            ("client_id".into(), x.client_id.clone()),
            ("client_assertion".into(), sa.clone()),
            ("client_assertion_type".into(), "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
            ("scope".into(), x.vault_scope()),
        ];
        v.retain(|(name, _)| name != k);
        v
    };
    let send = |tenant: String, form: Vec<(String, String)>| {
        let s = &x.s;
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            s.token(&tenant, &form).await
        }
    };
    for missing in ["grant_type", "client_id", "scope"] {
        let (st, body) = send(x.s.tenant.clone(), base(missing)).await;
        assert_eq!((st, code(&body)), (400, 900144), "{missing}: {body}");
        assert!(body["error_description"].as_str().unwrap().contains(missing));
    }
    let (st, body) = send("00000000-0000-0000-0000-000000000001".into(), base("")).await;
    assert_eq!((st, code(&body)), (400, 90002), "{body}");

    let mut f = base("client_id");
    f.push(("client_id".into(), "11111111-2222-3333-4444-555555555555".into()));
    let (st, body) = send(x.s.tenant.clone(), f).await;
    assert_eq!((st, code(&body), body["error"].as_str()), (400, 700016, Some("unauthorized_client")), "{body}");

    let mut f = base("grant_type");
    f.push(("grant_type".into(), "password".into()));
    let (st, body) = send(x.s.tenant.clone(), f).await;
    assert_eq!((st, code(&body)), (400, 70003), "{body}");

    for (scope, want, err) in [
        ("https://vault.elsewhere.example/.default", 500011, "invalid_resource"),
        ("https://vault.elsewhere.example", 1002012, "invalid_scope"),
    ] {
        let mut f = base("scope");
        f.push(("scope".into(), scope.into()));
        let (st, body) = send(x.s.tenant.clone(), f).await;
        assert_eq!((st, code(&body), body["error"].as_str()), (400, want, Some(err)), "{body}");
    }

    // The correlation id echoes client-request-id.
    let resp =
        x.s.http
            .post(format!("{}/{}/oauth2/v2.0/token", x.s.url, x.s.tenant))
            .header("client-request-id", "6f0a0a8e-0a4f-4d1b-9a0e-0b3a5a0c9d11")
            .body("grant_type=client_credentials")
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
            .await
            .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["correlation_id"], "6f0a0a8e-0a4f-4d1b-9a0e-0b3a5a0c9d11");

    // Malformed form and oversized body: a clear 4xx, never a 5xx.
    let resp =
        x.s.http
            .post(format!("{}/{}/oauth2/v2.0/token", x.s.url, x.s.tenant))
            .body(vec![0xffu8, 0xfe, b'='])
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let resp =
        x.s.http
            .post(format!("{}/{}/oauth2/v2.0/token", x.s.url, x.s.tenant))
            .body(vec![b'a'; 2 * 1024 * 1024])
            .send()
            .await
            .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
}

#[tokio::test]
async fn identities_without_roles_are_denied_management_calls() {
    let x = setup().await;
    let sa = x.sa_token("ns1", "sa1", AUD).await;
    let (st, body) = x.exchange(&sa, &format!("{}/.default", x.s.url)).await;
    assert_eq!(st, 200);
    let token = body["access_token"].as_str().unwrap();
    let (st, body) = x.s.arm(token, "GET", "/subscriptions/{sub}/resourceGroups/rg1", None).await;
    assert_eq!(st, 403, "{body}");
    assert_eq!(body["error"]["code"], "AuthorizationFailed");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("Microsoft.Resources/subscriptions/resourceGroups/read")
    );
    // A Key Vault token is not a management token.
    let (_, kv) = x.exchange(&sa, &x.vault_scope()).await;
    let (st, body) =
        x.s.arm(kv["access_token"].as_str().unwrap(), "GET", "/subscriptions/{sub}/resourceGroups/rg1", None).await;
    assert_eq!((st, body["error"]["code"].as_str()), (401, Some("InvalidAuthenticationTokenAudience")), "{body}");
    let (st, _) = x.s.arm("garbage", "GET", "/subscriptions/{sub}/resourceGroups", None).await;
    assert_eq!(st, 401);
}

#[tokio::test]
async fn credential_changes_take_effect_immediately() {
    let x = setup().await;
    let sa = x.sa_token("ns1", "sa1", AUD).await;
    assert_eq!(x.exchange(&sa, &x.vault_scope()).await.0, 200);
    let fic = "/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1/federatedIdentityCredentials/fic1";
    let (st, _) = x.s.arm(&x.admin, "DELETE", fic, None).await;
    assert_eq!(st, 200);
    let (st, body) = x.exchange(&sa, &x.vault_scope()).await;
    assert_eq!((st, code(&body)), (401, 700211), "{body}");
    let (st, _) = x.s.arm(&x.admin, "DELETE", "/subscriptions/{sub}/resourceGroups/rg1", None).await;
    assert_eq!(st, 200);
    let (st, body) = x.exchange(&sa, &x.vault_scope()).await;
    assert_eq!((st, code(&body)), (400, 700016), "{body}");
}

#[tokio::test]
async fn ec_signed_assertions_are_accepted() {
    let x = setup().await;
    let curves = [
        ("ec256", wid_crypto::EcCurve::P256),
        ("ec384", wid_crypto::EcCurve::P384),
        ("ec521", wid_crypto::EcCurve::P521),
    ];
    for (name, curve) in curves {
        let key = SigningKey::generate_ec(curve).unwrap();
        let issuer = format!("https://{name}.example/");
        let body =
            json!({"properties": {"oidcIssuerProfile": {"issuerURL": issuer, "jwks": {"keys": [key.public_jwk()]}}}});
        let path = format!(
            "/subscriptions/{{sub}}/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/{name}"
        );
        assert_eq!(x.s.arm(&x.admin, "PUT", &path, Some(body)).await.0, 201);
        let fic = json!({"properties": {"issuer": issuer, "subject": "s", "audiences": [AUD]}});
        let path = format!(
            "/subscriptions/{{sub}}/resourceGroups/rg1/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1/federatedIdentityCredentials/{name}"
        );
        assert_eq!(x.s.arm(&x.admin, "PUT", &path, Some(fic)).await.0, 201);
        let t = now();
        let claims = json!({"iss": issuer, "sub": "s", "aud": AUD, "iat": t, "exp": t + 600});
        let token = encode_compact(&json!({}), &claims, &key, key.default_alg()).unwrap();
        let (st, body) = x.exchange(&token, &x.vault_scope()).await;
        assert_eq!(st, 200, "{name}: {body}");
    }
}
