//! The official Rust `azure_identity` crate's `WorkloadIdentityCredential` against an in-process
//! `wid serve`: the walkthrough's identity, hosted cluster issuer and federated credential are set up
//! through the management API, a service-account token is written to a file, and the SDK exchanges
//! it for a Key Vault access token — or surfaces wid's refusal with its AADSTS code.
//!
//! In-process, the credential is configured through `WorkloadIdentityCredentialOptions` (client id,
//! tenant, token file) and `ClientOptions` (`cloud` = the authority host, `transport` = a reqwest
//! client trusting the test CA), because tests must not mutate the process environment. The
//! environment-only path is covered by running the `wid-sdk-rust-probe` binary as a child process
//! with exactly the four `AZURE_*` variables and `SSL_CERT_FILE`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::TokenCredential;
use azure_core::error::ErrorKind;
use azure_core::http::{ClientOptions, Transport};
use azure_identity::{ClientAssertionCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use serde_json::json;
use wid_testkit::{TestServer, claims_of};

const AUD: &str = "api://AzureADTokenExchange";
const RG: &str = "/subscriptions/{sub}/resourceGroups/rg1";

struct Setup {
    s: TestServer,
    admin: String,
    client_id: String,
    principal_id: String,
}

/// Resource group, identity, hosted cluster `c1` and a federated credential for
/// `system:serviceaccount:ns1:sa1` on c1's issuer, as the walkthrough does with the CLI.
async fn setup() -> Setup {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (st, body) = s.arm(&admin, "PUT", RG, Some(json!({"location": "eastus"}))).await;
    assert_eq!(st, 201, "{body}");
    let (st, id) = s
        .arm(
            &admin,
            "PUT",
            &format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1"),
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert_eq!(st, 201, "{id}");
    let x = Setup {
        client_id: id["properties"]["clientId"].as_str().unwrap().into(),
        principal_id: id["properties"]["principalId"].as_str().unwrap().into(),
        s,
        admin,
    };
    x.fic("fic1", "system:serviceaccount:ns1:sa1").await;
    x
}

impl Setup {
    /// Adds a federated credential on id1 for cluster c1's issuer.
    async fn fic(&self, name: &str, subject: &str) {
        let issuer = self.cluster("c1").await;
        let fic = json!({"properties": {"issuer": issuer, "subject": subject, "audiences": [AUD]}});
        let (st, body) = self
            .s
            .arm(
                &self.admin,
                "PUT",
                &format!(
                    "{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1/federatedIdentityCredentials/{name}"
                ),
                Some(fic),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }

    /// Registers (or re-puts) a hosted cluster and returns its issuer URL.
    async fn cluster(&self, name: &str) -> String {
        let (st, c) = self
            .s
            .arm(
                &self.admin,
                "PUT",
                &format!("{RG}/providers/Microsoft.ContainerService/managedClusters/{name}"),
                Some(json!({"location": "eastus"})),
            )
            .await;
        assert!(st == 200 || st == 201, "{st} {c}");
        c["properties"]["oidcIssuerProfile"]["issuerURL"].as_str().unwrap().to_string()
    }

    /// A service-account token minted by a hosted cluster (`aks get-token`).
    async fn sa_token(&self, cluster: &str, ns: &str, sa: &str, aud: &str) -> String {
        let (st, body) = self
            .s
            .arm(
                &self.admin,
                "POST",
                &format!("{RG}/providers/Microsoft.ContainerService/managedClusters/{cluster}/serviceAccountToken"),
                Some(json!({"namespace": ns, "serviceAccountName": sa, "audiences": [aud], "expirationSeconds": 3600})),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        body["token"].as_str().unwrap().to_string()
    }

    /// Writes `contents` to a file in the server's temp dir (a projected token volume).
    fn token_file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.s.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn vault_scope(&self) -> String {
        format!("{}/.default", self.s.profile.key_vault_resource.as_deref().unwrap())
    }

    /// The SDK's credential, configured through its options instead of the process environment.
    fn credential(&self, client_id: &str, tenant: &str, file: PathBuf) -> Arc<WorkloadIdentityCredential> {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.s.url.clone();
        let http = wid_testkit::client_trusting(&self.s.ca_pem());
        let client_options = ClientOptions {
            cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
            transport: Some(Transport::new(Arc::new(http))),
            ..Default::default()
        };
        let options = WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions { client_options },
            client_id: Some(client_id.to_string()),
            tenant_id: Some(tenant.to_string()),
            token_file_path: Some(file),
        };
        WorkloadIdentityCredential::new(Some(options)).unwrap()
    }

    /// Exchanges `assertion` through the SDK, which must fail with wid's AADSTS `code`: in the
    /// message, and in the wrapped `HttpResponse` error that the SDK builds from Entra's error JSON
    /// (its `error_codes`). Returns what was wrong, if anything.
    ///
    /// The second check matters: azure_identity 1.0.0 deserialises `error_description` as a borrowed
    /// `&str` (`EntraIdErrorResponse` in its `src/lib.rs`), so a description that needs a JSON escape
    /// (`"`, `\`, a control character) turns the refusal into a `DataConversion` error without the code.
    async fn refused(&self, client_id: &str, tenant: &str, assertion: &str, scope: &str, code: &str) -> Option<String> {
        let cred = self.credential(client_id, tenant, self.token_file(&format!("{code}.jwt"), assertion));
        let err = match cred.get_token(&[scope], None).await {
            Ok(_) => return Some("a token was issued".into()),
            Err(e) => e,
        };
        let message = err.to_string();
        if !matches!(err.kind(), ErrorKind::Credential)
            || !message.starts_with("WorkloadIdentityCredential authentication failed.")
            || !message.contains(&format!("AADSTS{code}:"))
        {
            return Some(format!("{:?}: {message}", err.kind()));
        }
        let inner = std::error::Error::source(&err).and_then(|e| e.downcast_ref::<azure_core::Error>());
        match inner.map(|e| e.kind()) {
            Some(ErrorKind::HttpResponse { error_code, .. }) if error_code.as_deref() == Some(code) => None,
            other => Some(format!("inner error {other:?}: {message}")),
        }
    }
}

#[tokio::test]
async fn workload_identity_credential_gets_a_key_vault_token() {
    let x = setup().await;
    // `kubectl create token … > file` leaves a trailing newline; the SDK sends the file verbatim.
    let sa = x.sa_token("c1", "ns1", "sa1", AUD).await;
    let cred = x.credential(&x.client_id, &x.s.tenant, x.token_file("token", &format!("{sa}\n")));
    let token = cred.get_token(&[&x.vault_scope()], None).await.unwrap();
    let at = claims_of(token.token.secret());
    assert_eq!(at["aud"], x.s.profile.key_vault_resource.as_deref().unwrap());
    assert_eq!(at["oid"], x.principal_id.as_str());
    assert_eq!(at["appid"], x.client_id.as_str());
    assert_eq!(at["tid"], x.s.tenant.as_str());
    // `expires_in` was an integer the SDK understood (a missing one would make the token stale at once).
    let left = (token.expires_on - std::time::SystemTime::now()).whole_seconds();
    assert!(left > 23 * 3600 && left <= 24 * 3600, "expires in {left} s");

    // The second call is served from the SDK's cache: the same token.
    let again = cred.get_token(&[&x.vault_scope()], None).await.unwrap();
    assert_eq!(again.token.secret(), token.token.secret());

    // The management resource works as well.
    let token = cred.get_token(&[&format!("{}/.default", x.s.url)], None).await.unwrap();
    assert_eq!(claims_of(token.token.secret())["aud"], x.s.url.as_str());
}

#[tokio::test]
async fn environment_only_configuration_with_the_default_transport() {
    let x = setup().await;
    let sa = x.sa_token("c1", "ns1", "sa1", AUD).await;
    let file = x.token_file("token", &sa);
    let probe = |client_id: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wid-sdk-rust-probe"))
            .arg(x.vault_scope())
            .env_clear()
            .env("AZURE_CLIENT_ID", client_id)
            .env("AZURE_TENANT_ID", &x.s.tenant)
            .env("AZURE_FEDERATED_TOKEN_FILE", &file)
            .env("AZURE_AUTHORITY_HOST", &x.s.url)
            .env("SSL_CERT_FILE", x.s.ca_pem())
            .output()
    };
    let out = probe(&x.client_id).await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let at = claims_of(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(at["aud"], x.s.profile.key_vault_resource.as_deref().unwrap());
    assert_eq!(at["oid"], x.principal_id.as_str());
    assert_eq!(at["appid"], x.client_id.as_str());
    assert_eq!(at["tid"], x.s.tenant.as_str());

    let out = probe("11111111-2222-3333-4444-555555555555").await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("AADSTS700016:"), "{stderr}");
}

#[tokio::test]
async fn refusals_surface_through_the_sdk_with_their_aadsts_codes() {
    let x = setup().await;
    let (client, tenant, scope) = (x.client_id.as_str(), x.s.tenant.as_str(), x.vault_scope());
    let good = x.sa_token("c1", "ns1", "sa1", AUD).await;

    let other_sa = x.sa_token("c1", "ns1", "other", AUD).await;
    // Kubernetes names are lower-case, so the credential carries the upper-case subject.
    x.fic("fic-case", "system:serviceaccount:NS2:sa2").await;
    let case_only = x.sa_token("c1", "ns2", "sa2", AUD).await;
    let other_aud = x.sa_token("c1", "ns1", "sa1", "https://kubernetes.default.svc").await;
    x.cluster("c2").await;
    let other_issuer = x.sa_token("c2", "ns1", "sa1", AUD).await;
    let unknown_client = "11111111-2222-3333-4444-555555555555";
    let unknown_tenant = "00000000-0000-0000-0000-000000000001";
    let elsewhere = "https://vault.elsewhere.example/.default";

    let cases = [
        ("subject mismatch", client, tenant, other_sa.as_str(), scope.as_str(), "700213"),
        ("subject differs by case", client, tenant, &case_only, &scope, "7002138"),
        ("audience mismatch", client, tenant, &other_aud, &scope, "700212"),
        ("issuer mismatch (another cluster)", client, tenant, &other_issuer, &scope, "700211"),
        ("unknown client", unknown_client, tenant, &good, &scope, "700016"),
        ("unknown tenant", client, unknown_tenant, &good, &scope, "90002"),
        ("unknown resource", client, tenant, &good, elsewhere, "500011"),
        ("not a JWT", client, tenant, "not-a-jwt", &scope, "50027"),
    ];
    let mut problems = Vec::new();
    for (what, client, tenant, assertion, scope, code) in cases {
        if let Some(p) = x.refused(client, tenant, assertion, scope, code).await {
            problems.push(format!("{what} (AADSTS{code}): {p}"));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}
