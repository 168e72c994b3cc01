//! The official Rust `azure_security_keyvault_secrets` crate (with `azure_identity`'s
//! `WorkloadIdentityCredential`) against the Key Vault data plane of an in-process `wid serve`.
//!
//! Set-up through the management API, as the walkthrough (seed 003) does it with the CLI: a vault with
//! RBAC authorization and purge protection, identities with federated credentials for hosted cluster
//! c1, and role assignments at the vault's scope — Key Vault Secrets Officer for the identity that
//! writes the secret, Key Vault Secrets User for the workload, nothing for a third identity.
//!
//! Vaults are served at `https://{vault}.vault.localhost:PORT/`, a name the test machine's resolver
//! need not know. In-process, the SDK gets an injected transport (reqwest with `.resolve()` and the
//! test CA). The verification workload binary (`wid-sdk-rust-keyvault`, the SDK's default transport and
//! environment-only configuration) runs as a child process in a private mount namespace
//! (`unshare -m`, or `unshare -rm` when not root) with a hosts file bind-mounted over /etc/hosts; where
//! that is impossible, that test says so and returns without checking anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::sync::Arc;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::error::ErrorKind;
use azure_core::http::RequestContent;
use azure_core::http::{ClientOptions, StatusCode, Transport};
use azure_identity::{ClientAssertionCredentialOptions, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions};
use azure_security_keyvault_secrets::models::{
    RestoreSecretParameters, SecretClientGetSecretOptions, SetSecretParameters, UpdateSecretPropertiesParameters,
};
use azure_security_keyvault_secrets::{ResourceExt, ResourceId, SecretClient, SecretClientOptions};
use futures::TryStreamExt;
use serde_json::{Value, json};
use wid_testkit::TestServer;

const AUD: &str = "api://AzureADTokenExchange";
const RG: &str = "/subscriptions/{sub}/resourceGroups/rg1";
const VAULT: &str = "kv1";
/// A vault without purge protection (round trip).
const VAULT2: &str = "kv2";
const SECRET: &str = "my-secret";
/// What `az keyvault secret set … --value "Hello\!"` stores when run from a script (seed 003).
const VALUE: &str = "Hello\\!";
const SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
const SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";

struct Identity {
    client_id: String,
    principal_id: String,
    token_file: PathBuf,
}

struct Setup {
    s: TestServer,
    admin: String,
    issuer: String,
    vault_id: String,
    /// `properties.vaultUri`, e.g. `https://kv1.vault.localhost:PORT/`.
    vault_url: String,
    user: Identity,
    officer: Identity,
    norole: Identity,
    assignments: u32,
}

async fn setup() -> Setup {
    let s = TestServer::start().await;
    let admin = s.admin_token().await;
    let (st, body) = s.arm(&admin, "PUT", RG, Some(json!({"location": "eastus"}))).await;
    assert_eq!(st, 201, "{body}");
    let (st, c) = s
        .arm(
            &admin,
            "PUT",
            &format!("{RG}/providers/Microsoft.ContainerService/managedClusters/c1"),
            Some(json!({"location": "eastus"})),
        )
        .await;
    assert!(st == 200 || st == 201, "{st} {c}");
    let issuer = c["properties"]["oidcIssuerProfile"]["issuerURL"].as_str().unwrap().to_string();

    // `az keyvault create --enable-rbac-authorization --enable-purge-protection` sends this body.
    let vault = json!({"location": "eastus", "properties": {
        "tenantId": s.tenant, "sku": {"family": "A", "name": "standard"}, "accessPolicies": [],
        "enableRbacAuthorization": true, "enablePurgeProtection": true, "softDeleteRetentionInDays": 90}});
    let (st, v) = s.arm(&admin, "PUT", &format!("{RG}/providers/Microsoft.KeyVault/vaults/{VAULT}"), Some(vault)).await;
    assert!(st == 200 || st == 201, "{st} {v}");
    let vault_id = v["id"].as_str().unwrap().to_string();
    let vault_url = v["properties"]["vaultUri"].as_str().unwrap().to_string();
    let suffix = s.profile.key_vault_dns_suffix.clone().unwrap();
    assert_eq!(vault_url, format!("https://{VAULT}.{suffix}/"));

    let placeholder = || Identity { client_id: String::new(), principal_id: String::new(), token_file: PathBuf::new() };
    let mut x = Setup {
        s,
        admin,
        issuer,
        vault_id,
        vault_url,
        user: placeholder(),
        officer: placeholder(),
        norole: placeholder(),
        assignments: 0,
    };
    x.user = x.identity("kv-user").await;
    x.officer = x.identity("kv-officer").await;
    x.norole = x.identity("kv-norole").await;
    let (user, officer) = (x.user.principal_id.clone(), x.officer.principal_id.clone());
    x.assign(&user, SECRETS_USER).await;
    x.assign(&officer, SECRETS_OFFICER).await;
    x
}

impl Setup {
    /// An identity with a federated credential for `system:serviceaccount:ns1:{name}` on c1's issuer,
    /// and that service account's token in a file.
    async fn identity(&self, name: &str) -> Identity {
        let path = format!("{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}");
        let (st, id) = self.s.arm(&self.admin, "PUT", &path, Some(json!({"location": "eastus"}))).await;
        assert_eq!(st, 201, "{id}");
        let subject = format!("system:serviceaccount:ns1:{name}");
        let fic = json!({"properties": {"issuer": self.issuer, "subject": subject, "audiences": [AUD]}});
        let (st, body) =
            self.s.arm(&self.admin, "PUT", &format!("{path}/federatedIdentityCredentials/fic1"), Some(fic)).await;
        assert_eq!(st, 201, "{body}");
        let (st, body) = self
            .s
            .arm(
                &self.admin,
                "POST",
                &format!("{RG}/providers/Microsoft.ContainerService/managedClusters/c1/serviceAccountToken"),
                Some(json!({"namespace": "ns1", "serviceAccountName": name, "audiences": [AUD], "expirationSeconds": 3600})),
            )
            .await;
        assert_eq!(st, 200, "{body}");
        let token_file = self.s.dir.path().join(format!("{name}.jwt"));
        std::fs::write(&token_file, body["token"].as_str().unwrap()).unwrap();
        Identity {
            client_id: id["properties"]["clientId"].as_str().unwrap().into(),
            principal_id: id["properties"]["principalId"].as_str().unwrap().into(),
            token_file,
        }
    }

    /// `PUT {vault}/providers/Microsoft.Authorization/roleAssignments/{guid}` (what `az role assignment
    /// create --assignee-object-id … --assignee-principal-type ServicePrincipal --scope VAULT` sends).
    async fn assign(&mut self, principal_id: &str, role: &str) {
        let scope = self.vault_id.clone();
        self.assign_at(&scope, principal_id, role).await;
    }

    async fn assign_at(&mut self, scope: &str, principal_id: &str, role: &str) {
        self.assignments += 1;
        let n = self.assignments;
        let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{n:08x}-0000-4000-8000-{n:012x}");
        let body = json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", self.s.subscription),
            "principalId": principal_id, "principalType": "ServicePrincipal"}});
        let (st, body) = self.s.arm(&self.admin, "PUT", &path, Some(body)).await;
        assert_eq!(st, 201, "{body}");
    }

    fn vault_host(&self) -> String {
        format!("{VAULT}.vault.localhost")
    }

    /// Creates another RBAC vault in rg1 and returns its id and URL.
    async fn vault(&self, name: &str, purge_protection: bool) -> (String, String) {
        let body = json!({"location": "eastus", "properties": {
            "tenantId": self.s.tenant, "sku": {"family": "A", "name": "standard"}, "accessPolicies": [],
            "enableRbacAuthorization": true, "enablePurgeProtection": purge_protection}});
        let path = format!("{RG}/providers/Microsoft.KeyVault/vaults/{name}");
        let (st, v) = self.s.arm(&self.admin, "PUT", &path, Some(body)).await;
        assert!(st == 200 || st == 201, "{st} {v}");
        (v["id"].as_str().unwrap().to_string(), v["properties"]["vaultUri"].as_str().unwrap().to_string())
    }

    fn server_addr(&self) -> SocketAddr {
        let port = self.s.url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A transport trusting the test CA that resolves the vault's host name to the server.
    fn transport(&self) -> Transport {
        let pem = std::fs::read(self.s.ca_pem()).unwrap();
        let certs = reqwest::Certificate::from_pem_bundle(&pem).unwrap();
        let mut http = reqwest::Client::builder().tls_certs_merge(certs);
        for vault in [VAULT, VAULT2] {
            http = http.resolve(&format!("{vault}.vault.localhost"), self.server_addr());
        }
        let http = http.build().unwrap();
        Transport::new(Arc::new(http))
    }

    fn client_options(&self) -> ClientOptions {
        let mut cloud = CustomConfiguration::default();
        cloud.authority_host = self.s.url.clone();
        ClientOptions {
            cloud: Some(Arc::new(CloudConfiguration::from(cloud))),
            transport: Some(self.transport()),
            ..Default::default()
        }
    }

    /// The SDK's `SecretClient` as `who`, configured through options (tests don't touch the process
    /// environment), over the injected transport.
    fn client(&self, who: &Identity) -> SecretClient {
        self.client_of(&self.vault_url, who)
    }

    fn client_of(&self, vault_url: &str, who: &Identity) -> SecretClient {
        let options = WorkloadIdentityCredentialOptions {
            credential_options: ClientAssertionCredentialOptions { client_options: self.client_options() },
            client_id: Some(who.client_id.clone()),
            tenant_id: Some(self.s.tenant.clone()),
            token_file_path: Some(who.token_file.clone()),
        };
        let credential = WorkloadIdentityCredential::new(Some(options)).unwrap();
        let options = SecretClientOptions { client_options: self.client_options(), ..Default::default() };
        SecretClient::new(vault_url, credential, Some(options)).unwrap()
    }

    /// Runs the verification workload as `who` in the namespace `prefix` sets up, with exactly the
    /// webhook's variables, CA trust and the pod spec's variables.
    async fn run_workload(&self, prefix: &[String], who: &Identity) -> Output {
        tokio::process::Command::new(&prefix[0])
            .args(&prefix[1..])
            .arg(env!("CARGO_BIN_EXE_wid-sdk-rust-keyvault"))
            .env_clear()
            .env("AZURE_CLIENT_ID", &who.client_id)
            .env("AZURE_TENANT_ID", &self.s.tenant)
            .env("AZURE_FEDERATED_TOKEN_FILE", &who.token_file)
            .env("AZURE_AUTHORITY_HOST", &self.s.url)
            .env("SSL_CERT_FILE", self.s.ca_pem())
            .env("KEYVAULT_URL", &self.vault_url)
            .env("SECRET_NAME", SECRET)
            .output()
            .await
            .unwrap()
    }

    /// Writes the walkthrough's secret as the Secrets Officer.
    async fn set_secret(&self) -> String {
        let params = SetSecretParameters { value: Some(VALUE.into()), ..Default::default() };
        let secret = self
            .client(&self.officer)
            .set_secret(SECRET, params.try_into().unwrap(), None)
            .await
            .unwrap()
            .into_model()
            .unwrap();
        assert_eq!(secret.value.as_deref(), Some(VALUE));
        secret.resource_id().unwrap().version.unwrap()
    }
}

/// Checks that `e` is Key Vault's RBAC refusal: 403 with `innererror.code` `ForbiddenByRbac`.
fn check_forbidden_by_rbac(e: &azure_core::Error) {
    let ErrorKind::HttpResponse { status, raw_response: Some(raw), .. } = e.kind() else {
        panic!("not an HTTP error: {e:?}");
    };
    assert_eq!(*status, StatusCode::Forbidden, "{e}");
    let body: Value = serde_json::from_slice(raw.body()).unwrap();
    assert_eq!(body["error"]["code"], "Forbidden", "{body}");
    assert_eq!(body["error"]["innererror"]["code"], "ForbiddenByRbac", "{body}");
}

#[tokio::test]
async fn secret_client_in_process_with_an_injected_transport() {
    let x = setup().await;
    let version = x.set_secret().await;
    assert_eq!(version.len(), 32, "{version}");

    // The workload (Key Vault Secrets User) reads it: latest, then by version.
    let client = x.client(&x.user);
    let secret = client.get_secret(SECRET, None).await.unwrap().into_model().unwrap();
    assert_eq!(secret.value.as_deref(), Some(VALUE));
    assert_eq!(secret.id.as_deref(), Some(format!("{}secrets/{SECRET}/{version}", x.vault_url).as_str()));
    let id = secret.resource_id().unwrap();
    assert_eq!(id.vault_url, x.vault_url.trim_end_matches('/'));
    assert_eq!((id.name.as_str(), id.version.as_deref()), (SECRET, Some(version.as_str())));
    assert_eq!(secret.attributes.as_ref().and_then(|a| a.enabled), Some(true));
    let options = SecretClientGetSecretOptions { secret_version: Some(version.clone()), ..Default::default() };
    let same = client.get_secret(SECRET, Some(options)).await.unwrap().into_model().unwrap();
    assert_eq!(same.value.as_deref(), Some(VALUE));

    // Secrets User may not write.
    let params = SetSecretParameters { value: Some("nope".into()), ..Default::default() };
    let e = client.set_secret(SECRET, params.try_into().unwrap(), None).await.unwrap_err();
    check_forbidden_by_rbac(&e);

    // No role assignment: refused, with the reason.
    let e = x.client(&x.norole).get_secret(SECRET, None).await.unwrap_err();
    check_forbidden_by_rbac(&e);
}

fn set_params(value: &str) -> RequestContent<SetSecretParameters> {
    SetSecretParameters { value: Some(value.into()), ..Default::default() }.try_into().unwrap()
}

fn version_of(id: Option<&str>) -> String {
    let id: ResourceId = id.unwrap().parse().unwrap();
    id.version.unwrap()
}

#[tokio::test]
async fn secret_client_round_trip_of_every_operation() {
    let mut x = setup().await;
    let (vault_id, vault_url) = x.vault(VAULT2, false).await;
    let officer = x.officer.principal_id.clone();
    x.assign_at(&vault_id, &officer, SECRETS_OFFICER).await;
    let c = x.client_of(&vault_url, &x.officer);
    let base = vault_url.trim_end_matches('/');

    // set (new secret, new version), get latest and by version.
    let first = c.set_secret("rt", set_params("one"), None).await.unwrap().into_model().unwrap();
    let v1 = version_of(first.id.as_deref());
    assert_eq!(first.id.as_deref(), Some(format!("{base}/secrets/rt/{v1}").as_str()));
    let attrs = first.attributes.unwrap();
    assert_eq!((attrs.enabled, attrs.recoverable_days), (Some(true), Some(90)));
    assert_eq!(attrs.recovery_level.map(|l| l.to_string()).as_deref(), Some("Recoverable+Purgeable"));
    assert!(attrs.created.is_some() && attrs.updated.is_some());
    let second = c.set_secret("rt", set_params("two"), None).await.unwrap().into_model().unwrap();
    let v2 = version_of(second.id.as_deref());
    assert_ne!(v1, v2);
    assert_eq!(c.get_secret("rt", None).await.unwrap().into_model().unwrap().value.as_deref(), Some("two"));
    let by_version = SecretClientGetSecretOptions { secret_version: Some(v1.clone()), ..Default::default() };
    assert_eq!(c.get_secret("rt", Some(by_version)).await.unwrap().into_model().unwrap().value.as_deref(), Some("one"));

    // update properties of the latest version (PATCH /secrets/rt/).
    let update = UpdateSecretPropertiesParameters {
        content_type: Some("text/plain".into()),
        tags: Some(HashMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    };
    let updated =
        c.update_secret_properties("rt", update.try_into().unwrap(), None).await.unwrap().into_model().unwrap();
    assert_eq!(version_of(updated.id.as_deref()), v2);
    assert_eq!(updated.content_type.as_deref(), Some("text/plain"));
    assert_eq!(updated.tags.unwrap()["k"], "v");
    assert_eq!(updated.value, None);

    // list with paging: 30 more secrets, default page size 25.
    for i in 0..30 {
        c.set_secret(&format!("page-{i:02}"), set_params("v"), None).await.unwrap();
    }
    let mut pages = c.list_secret_properties(None).unwrap().into_pages();
    let mut names = Vec::new();
    let mut page_count = 0;
    while let Some(page) = pages.try_next().await.unwrap() {
        let page = page.into_model().unwrap();
        assert!(page.value.len() <= 25);
        page_count += 1;
        for item in page.value {
            let id: ResourceId = item.id.as_deref().unwrap().parse().unwrap();
            assert_eq!((id.vault_url.as_str(), id.version), (base, None));
            names.push(id.name);
        }
    }
    assert!(page_count >= 2, "{page_count} page(s)");
    assert_eq!(names.len(), 31, "{names:?}");
    let versions: Vec<_> = c.list_secret_properties_versions("rt", None).unwrap().try_collect().await.unwrap();
    let mut listed: Vec<_> = versions.iter().map(|p| version_of(p.id.as_deref())).collect();
    listed.sort();
    let mut expected = vec![v1.clone(), v2.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // delete, get deleted, list deleted, recover.
    let deleted = c.delete_secret("rt", None).await.unwrap().into_model().unwrap();
    assert_eq!(deleted.recovery_id.as_deref(), Some(format!("{base}/deletedsecrets/rt").as_str()));
    let (deleted_on, purge_on) = (deleted.deleted_date.unwrap(), deleted.scheduled_purge_date.unwrap());
    assert_eq!(purge_on - deleted_on, azure_core::time::Duration::days(90));
    let e = c.get_secret("rt", None).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::HttpResponse { status: StatusCode::NotFound, .. }), "{e}");
    let got = c.get_deleted_secret("rt", None).await.unwrap().into_model().unwrap();
    assert_eq!(got.recovery_id, deleted.recovery_id);
    let deleted_items: Vec<_> = c.list_deleted_secret_properties(None).unwrap().try_collect().await.unwrap();
    assert!(deleted_items.iter().any(|d| d.recovery_id == deleted.recovery_id));
    let recovered = c.recover_deleted_secret("rt", None).await.unwrap().into_model().unwrap();
    assert_eq!(version_of(recovered.id.as_deref()), v2);
    assert_eq!(c.get_secret("rt", None).await.unwrap().into_model().unwrap().value.as_deref(), Some("two"));

    // backup, delete, purge (204), restore.
    let blob = c.backup_secret("rt", None).await.unwrap().into_model().unwrap().value.unwrap();
    assert!(!blob.is_empty());
    c.delete_secret("rt", None).await.unwrap();
    let purged = c.purge_deleted_secret("rt", None).await.unwrap();
    assert_eq!(purged.status(), StatusCode::NoContent);
    let e = c.get_deleted_secret("rt", None).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::HttpResponse { status: StatusCode::NotFound, .. }), "{e}");
    let restore = RestoreSecretParameters { secret_backup: Some(blob) };
    let restored = c.restore_secret(restore.try_into().unwrap(), None).await.unwrap().into_model().unwrap();
    assert_eq!(version_of(restored.id.as_deref()), v2);
    assert_eq!(c.get_secret("rt", None).await.unwrap().into_model().unwrap().value.as_deref(), Some("two"));

    // Purge protection (kv1) refuses purge.
    let protected = x.client(&x.officer);
    protected.set_secret("kept", set_params("v"), None).await.unwrap();
    protected.delete_secret("kept", None).await.unwrap();
    let e = protected.purge_deleted_secret("kept", None).await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::HttpResponse { status: StatusCode::Forbidden, .. }), "{e}");
    assert!(protected.get_deleted_secret("kept", None).await.is_ok());
}

/// `unshare FLAGS -- sh -c 'mount --bind HOSTS /etc/hosts && exec "$@"' HOSTS …` where that works.
fn namespace_prefix(hosts: &Path) -> Option<Vec<String>> {
    let find = |names: &[&str]| names.iter().map(PathBuf::from).find(|p| p.is_file());
    let unshare = find(&["/usr/bin/unshare", "/bin/unshare", "/usr/sbin/unshare", "/sbin/unshare"])?;
    let mount = find(&["/usr/bin/mount", "/bin/mount", "/usr/sbin/mount", "/sbin/mount"])?;
    let script = format!("{} --bind \"$0\" /etc/hosts && exec \"$@\"", mount.display());
    for flags in ["-m", "-rm"] {
        let prefix = vec![
            unshare.display().to_string(),
            flags.to_string(),
            "--".into(),
            "/bin/sh".into(),
            "-c".into(),
            script.clone(),
            hosts.display().to_string(),
        ];
        let probe = Command::new(&prefix[0]).args(&prefix[1..]).args(["/bin/sh", "-c", ":"]).output();
        if probe.is_ok_and(|o| o.status.success()) {
            return Some(prefix);
        }
    }
    None
}

#[tokio::test]
async fn verification_workload_with_the_pod_environment_only() {
    let x = setup().await;
    x.set_secret().await;
    let hosts = x.s.dir.path().join("hosts");
    let system = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    std::fs::write(&hosts, format!("{system}\n127.0.0.1 localhost vault.localhost {}\n", x.vault_host())).unwrap();
    let Some(prefix) = namespace_prefix(&hosts) else {
        skip(&format!(
            "{} does not resolve here and no private /etc/hosts could be mounted (unshare -m / unshare -rm failed)",
            x.vault_host()
        ));
        return;
    };
    let ok = x.run_workload(&prefix, &x.user).await;
    let refused = x.run_workload(&prefix, &x.norole).await;

    let (stdout, stderr) = (String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    assert!(ok.status.success(), "{stderr}");
    // The seed's expected pod log line, minus klog's header.
    assert_eq!(stdout, "\"successfully got secret\" secret=\"Hello\\\\!\"\n");

    let (stdout, stderr) = (String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert_eq!(refused.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("ForbiddenByRbac"), "{stderr}");
    assert!(stderr.contains("RESPONSE 403"), "{stderr}");
    assert!(stderr.contains(&x.norole.principal_id), "the refusal names the caller: {stderr}");
}

/// Skips a test whose prerequisite is missing, loudly; in CI (`CI` set) a missing prerequisite is a
/// failure, so a green CI never hides an untested path.
fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "required in CI but unavailable: {why}");
    eprintln!("SKIPPED: {why}");
}
