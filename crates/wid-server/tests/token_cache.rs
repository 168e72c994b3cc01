//! The issued-token cache of warm exchanges: the same client presenting the same assertion for the
//! same resource gets its token again while it keeps 90 % of its lifetime, and never a token the
//! current configuration would refuse (credential, identity, cluster key or subject changes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::Arc;

use serde_json::{Value, json};
use wid_core::{Clock as _, FixedClock};
use wid_crypto::{Alg, SigningKey, encode_compact};
use wid_testkit::TestServer;

const AUD: &str = "api://AzureADTokenExchange";
const ISSUER: &str = "https://private-issuer.example/cache/";
const SUB: &str = "system:serviceaccount:ns:app";
const RG: &str = "/subscriptions/{sub}/resourceGroups/rg";
const ID: &str =
    "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1";
const CLUSTER: &str = "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c";

struct World {
    s: TestServer,
    clock: Arc<FixedClock>,
    admin: String,
    key: SigningKey,
    client_id: String,
}

fn jwks(key: &SigningKey) -> Value {
    json!({"keys": [serde_json::to_value(key.public_jwk()).unwrap()]})
}

async fn put_cluster(s: &TestServer, admin: &str, key: &SigningKey) {
    let body = json!({"location": "eastus", "properties": {"oidcIssuerProfile": {"enabled": true, "issuerURL": ISSUER, "jwks": jwks(key)}}});
    let (st, c) = s.arm(admin, "PUT", CLUSTER, Some(body)).await;
    assert!(st == 200 || st == 201, "{c}");
}

async fn put_identity(s: &TestServer, admin: &str, subject: &str) -> String {
    let (st, id) = s.arm(admin, "PUT", ID, Some(json!({"location": "eastus"}))).await;
    assert!(st == 200 || st == 201, "{id}");
    let fic = json!({"properties": {"issuer": ISSUER, "subject": subject, "audiences": [AUD]}});
    let (st, body) = s.arm(admin, "PUT", &format!("{ID}/federatedIdentityCredentials/fic"), Some(fic)).await;
    assert!(st == 200 || st == 201, "{body}");
    id["properties"]["clientId"].as_str().unwrap().to_string()
}

async fn world(cache_entries: usize) -> World {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let clock = Arc::new(FixedClock::new(now));
    let s = TestServer::start_with(move |c| c.token_cache_entries = cache_entries, clock.clone()).await;
    let admin = s.admin_token().await;
    let (st, _) = s.arm(&admin, "PUT", RG, Some(json!({"location": "eastus"}))).await;
    assert_eq!(st, 201);
    let key = SigningKey::generate_rsa(2048).unwrap();
    put_cluster(&s, &admin, &key).await;
    let client_id = put_identity(&s, &admin, SUB).await;
    World { s, clock, admin, key, client_id }
}

impl World {
    fn assertion(&self, key: &SigningKey, jti: &str) -> String {
        let t = self.clock.now();
        let claims = json!({"iss": ISSUER, "sub": SUB, "aud": [AUD], "iat": t, "nbf": t, "exp": t + 3600, "jti": jti});
        encode_compact(&json!({"typ": "JWT", "kid": key.kid()}), &claims, key, Alg::Rs256).unwrap()
    }

    async fn exchange(&self, client_id: &str, assertion: &str, scope: &str) -> (u16, Value) {
        self.s.exchange(client_id, assertion, scope).await
    }

    fn vault_scope(&self) -> String {
        format!("{}/.default", self.s.profile.key_vault_resource.as_deref().unwrap())
    }

    fn mgmt_scope(&self) -> String {
        format!("{}/.default", self.s.url)
    }
}

fn token(body: &Value) -> String {
    body["access_token"].as_str().unwrap_or_else(|| panic!("no access_token: {body}")).to_string()
}

fn code(body: &Value) -> u64 {
    body["error_codes"][0].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn warm_exchanges_reuse_the_token_while_it_keeps_most_of_its_lifetime() {
    let w = world(4096).await;
    let a = w.assertion(&w.key, "1");
    let (st, first) = w.exchange(&w.client_id, &a, &w.vault_scope()).await;
    assert_eq!(st, 200, "{first}");
    assert_eq!(first["expires_in"], 86400);

    w.clock.advance(600);
    let (st, again) = w.exchange(&w.client_id, &a, &w.vault_scope()).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(token(&again), token(&first), "the same client, assertion and resource: the same token");
    assert_eq!(again["expires_in"], 86400 - 600, "expires_in is what is left of it");
    assert_eq!(again["refresh_in"], (86400 - 600) / 2);

    let (_, other_resource) = w.exchange(&w.client_id, &a, &w.mgmt_scope()).await;
    assert_ne!(token(&other_resource), token(&first), "another resource: another token");
    let (_, other_assertion) = w.exchange(&w.client_id, &w.assertion(&w.key, "2"), &w.vault_scope()).await;
    assert_ne!(token(&other_assertion), token(&first), "a fresh assertion: a fresh signature");
}

#[tokio::test]
async fn a_token_is_fresh_once_its_reuse_window_passed() {
    let w = world(4096).await;
    // An assertion that outlives the reuse window (2.4 h of 24 h): 25 h, the longest Entra accepts.
    let t = w.clock.now();
    let claims = json!({"iss": ISSUER, "sub": SUB, "aud": [AUD], "iat": t, "exp": t + 25 * 3600});
    let a = encode_compact(&json!({"kid": w.key.kid()}), &claims, &w.key, Alg::Rs256).unwrap();
    let (_, first) = w.exchange(&w.client_id, &a, &w.vault_scope()).await;
    w.clock.advance(8640);
    let (_, within) = w.exchange(&w.client_id, &a, &w.vault_scope()).await;
    assert_eq!(token(&within), token(&first));
    w.clock.advance(1);
    let (st, after) = w.exchange(&w.client_id, &a, &w.vault_scope()).await;
    assert_eq!(st, 200, "{after}");
    assert_ne!(token(&after), token(&first));
    assert_eq!(after["expires_in"], 86400);
}

#[tokio::test]
async fn configuration_changes_are_never_bypassed_by_the_cache() {
    let w = world(4096).await;
    let a = w.assertion(&w.key, "1");
    let scope = w.vault_scope();
    assert_eq!(w.exchange(&w.client_id, &a, &scope).await.0, 200);

    // The credential goes: refused, although a token for this very assertion is cached.
    let fic = format!("{ID}/federatedIdentityCredentials/fic");
    assert_eq!(w.s.arm(&w.admin, "DELETE", &fic, None).await.0, 200);
    let (st, body) = w.exchange(&w.client_id, &a, &scope).await;
    assert_eq!((st, code(&body)), (400, 70025), "{body}");

    // Back with another subject: refused (subject mismatch).
    put_identity(&w.s, &w.admin, "system:serviceaccount:ns:other").await;
    let (st, body) = w.exchange(&w.client_id, &a, &scope).await;
    assert_eq!((st, code(&body)), (401, 700213), "{body}");

    // Back as it was: admitted again.
    put_identity(&w.s, &w.admin, SUB).await;
    assert_eq!(w.exchange(&w.client_id, &a, &scope).await.0, 200);

    // The cluster's key is replaced: the assertion signed by the old key is refused.
    let new_key = SigningKey::generate_rsa(2048).unwrap();
    put_cluster(&w.s, &w.admin, &new_key).await;
    let (st, body) = w.exchange(&w.client_id, &a, &scope).await;
    assert_eq!(st, 401, "{body}");
    put_cluster(&w.s, &w.admin, &w.key).await;
    assert_eq!(w.exchange(&w.client_id, &a, &scope).await.0, 200);

    // The identity goes and comes back under the same name: a new client id; the old one is unknown.
    assert_eq!(w.s.arm(&w.admin, "DELETE", ID, None).await.0, 200);
    let (st, body) = w.exchange(&w.client_id, &a, &scope).await;
    assert_eq!((st, code(&body)), (400, 700016), "{body}");
    let new_client = put_identity(&w.s, &w.admin, SUB).await;
    assert_ne!(new_client, w.client_id);
    let (st, body) = w.exchange(&w.client_id, &a, &scope).await;
    assert_eq!((st, code(&body)), (400, 700016), "{body}");
    let (st, body) = w.exchange(&new_client, &a, &scope).await;
    assert_eq!(st, 200, "{body}");
    let claims = wid_crypto::parse_compact(&token(&body), 16 * 1024).unwrap().claims;
    assert_eq!(claims["appid"], json!(new_client), "the token names the identity as it is now");
}

#[tokio::test]
async fn zero_entries_turn_the_cache_off() {
    let w = world(0).await;
    let a = w.assertion(&w.key, "1");
    let (_, first) = w.exchange(&w.client_id, &a, &w.vault_scope()).await;
    let (_, second) = w.exchange(&w.client_id, &a, &w.vault_scope()).await;
    assert_ne!(token(&first), "");
    assert_ne!(token(&first), token(&second));
}

/// A bearer token presented again skips its RSA verify, never a check: other bytes are verified
/// afresh, and expiry and audience are judged on every request.
#[tokio::test]
async fn a_token_seen_before_is_still_checked_on_every_request() {
    let w = world(16).await;
    let (ok, body) = w.s.arm(&w.admin, "GET", RG, None).await;
    assert_eq!(ok, 200, "{body}");
    assert_eq!(w.s.arm(&w.admin, "GET", RG, None).await.0, 200, "the same token again");

    // The same header and claims with another signature: verified, and refused.
    let (signed, sig) = w.admin.rsplit_once('.').unwrap();
    let mid = sig.len() / 2;
    let flipped = if &sig[mid..=mid] == "A" { "B" } else { "A" };
    let forged = format!("{signed}.{}{flipped}{}", &sig[..mid], &sig[mid + 1..]);
    let (st, body) = w.s.arm(&forged, "GET", RG, None).await;
    assert_eq!(st, 401, "{body}");

    // A token for Key Vault, accepted there, is still refused by the management API.
    let a = w.assertion(&w.key, "aud");
    let (_, vault) = w.exchange(&w.client_id, &a, &w.vault_scope()).await;
    let vault_token = token(&vault);
    let (st, body) = w.s.arm(&vault_token, "GET", RG, None).await;
    assert_eq!(st, 401, "{body}");

    // Expiry is judged at each request.
    w.clock.advance(2 * 86_400);
    let (st, body) = w.s.arm(&w.admin, "GET", RG, None).await;
    assert_eq!(st, 401, "{body}");
}
