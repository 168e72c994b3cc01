//! The management plane on a temp SQLite store, a fixed clock and an in-memory directory, with no
//! server around it: what each call replies, the RBAC refusals, the credential cap, name reservation
//! by a soft-deleted vault, and that every write reaches both the store and the directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Value, json};
use uuid::Uuid;
use wid_arm::{Actor, ArmConfig, ArmError, Management, Reply};
use wid_core::directory::Directory;
use wid_core::issuer::{HostedIssuers, IssuerError};
use wid_core::model::{AppPrincipal, Cluster, PrincipalType, RoleAssignment};
use wid_core::rbac::roles::{OWNER, READER};
use wid_core::{Caller, FixedClock};
use wid_crypto::MasterKey;
use wid_store::{SqliteStore, Store};

const T0: i64 = 1_700_000_000;

/// The hosted-issuer side as the token service would keep it: which clusters have a signing key.
/// Only cluster writes reach it; the token service's own tests cover signing.
#[derive(Default)]
struct IssuerKeys(Mutex<Vec<Uuid>>);

impl HostedIssuers for IssuerKeys {
    fn ensure_signing_key(&self, cluster_id: &Uuid, _now: i64) -> Result<String, IssuerError> {
        let mut keys = self.0.lock().unwrap();
        if !keys.contains(cluster_id) {
            keys.push(*cluster_id);
        }
        Ok(format!("kid-{cluster_id}"))
    }

    fn remove_signing_keys(&self, cluster_id: &Uuid) -> Result<(), IssuerError> {
        self.0.lock().unwrap().retain(|c| c != cluster_id);
        Ok(())
    }

    fn mint_service_account_token(
        &self,
        _cluster: &Cluster,
        _namespace: &str,
        _service_account: &str,
        _audiences: &[String],
        _lifetime: i64,
    ) -> Result<(String, i64), IssuerError> {
        Err(IssuerError("not minted in these tests".into()))
    }
}

struct Env {
    arm: Management,
    store: Arc<dyn Store>,
    directory: Arc<RwLock<Directory>>,
    issuers: Arc<IssuerKeys>,
    clock: Arc<FixedClock>,
    sub: String,
    tenant: Uuid,
    owner: Actor,
    _tmp: tempfile::TempDir,
}

/// A principal known to the directory with `role` at `scope` (none if `role` is `None`).
fn principal(env_dir: &Arc<RwLock<Directory>>, role: Option<(&str, &str)>) -> Actor {
    let (client_id, principal_id) = (Uuid::new_v4(), Uuid::new_v4());
    let mut dir = env_dir.write().unwrap();
    dir.put_app(AppPrincipal {
        client_id,
        principal_id,
        display_name: "p".into(),
        secret_hash: vec![0; 32],
        created: T0,
    });
    if let Some((role, scope)) = role {
        dir.put_role_assignment(&RoleAssignment {
            id: Uuid::new_v4(),
            scope: scope.into(),
            role_definition_id: Uuid::parse_str(role).unwrap(),
            principal_id,
            principal_type: PrincipalType::ServicePrincipal,
            description: None,
            created: T0,
            updated: T0,
            created_by: None,
        });
    }
    Actor {
        caller: Caller { principal_id, client_id, issuer: "https://localhost:8443/t/".into() },
        request_id: Uuid::new_v4().to_string(),
        azure_names: false,
    }
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&tmp.path().join("wid.db")).unwrap());
    let directory = Arc::new(RwLock::new(Directory::default()));
    let clock = Arc::new(FixedClock::new(T0));
    let issuers = Arc::new(IssuerKeys::default());
    let (subscription_id, tenant) = (Uuid::new_v4(), Uuid::new_v4());
    let cfg = ArmConfig {
        tenant_id: tenant,
        subscription_id,
        subscription_name: "wid".into(),
        public_url: "https://localhost:8443".into(),
        vault_dns_suffix: "vault.localhost:8443".into(),
        max_credentials_per_identity: 2,
    };
    let master = Arc::new(MasterKey::generate().unwrap());
    let arm = Management::new(cfg, store.clone(), directory.clone(), issuers.clone(), clock.clone(), master);
    let owner = principal(&directory, Some((OWNER, "/")));
    Env { arm, store, directory, issuers, clock, sub: subscription_id.to_string(), tenant, owner, _tmp: tmp }
}

fn body(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn resource(r: Reply) -> Value {
    match r {
        Reply::Ok(v) | Reply::Created(v) => v,
        other => panic!("no body: {other:?}"),
    }
}

impl Env {
    fn sub_id(&self) -> Uuid {
        Uuid::parse_str(&self.sub).unwrap()
    }

    fn group(&self, name: &str) -> Reply {
        self.arm.put_group(&self.owner, &self.sub, name, &body(json!({"location": "eastus"}))).unwrap()
    }

    fn identity(&self, rg: &str, name: &str) -> Value {
        resource(self.arm.put_identity(&self.owner, &self.sub, rg, name, &body(json!({"location": "eastus"}))).unwrap())
    }

    fn credential(&self, rg: &str, identity: &str, name: &str, subject: &str) -> Result<Reply, ArmError> {
        let props = json!({"properties": {"issuer": "https://issuer.example/", "subject": subject, "audiences": ["api://AzureADTokenExchange"]}});
        self.arm.put_credential(&self.owner, &self.sub, rg, identity, name, &body(props))
    }
}

#[test]
fn writes_reply_created_then_ok_and_reach_the_store_and_the_directory() {
    let e = env();
    assert_eq!(e.group("rg").status(), 201);
    e.clock.advance(10);
    assert_eq!(e.group("rg").status(), 200);
    let id = e.identity("rg", "app-id");
    assert_eq!(id["location"], "eastus");
    let client_id = Uuid::parse_str(id["properties"]["clientId"].as_str().unwrap()).unwrap();
    assert!(e.directory.read().unwrap().identity_by_client(&client_id).is_some(), "in the directory at once");
    assert_eq!(e.credential("rg", "app-id", "fic", "system:serviceaccount:a:b").unwrap().status(), 201);
    let entry_creds = e.directory.read().unwrap().identity_by_client(&client_id).unwrap().credentials.len();
    assert_eq!(entry_creds, 1);
    let listed = resource(e.arm.list_credentials(&e.owner, &e.sub, "rg", "app-id").unwrap());
    assert_eq!(listed["value"][0]["name"], "fic");
    assert_eq!(e.store.identities(e.sub_id(), None).unwrap().len(), 1);
}

#[test]
fn a_caller_without_a_role_is_refused_and_a_reader_cannot_write() {
    let e = env();
    e.group("rg");
    let nobody = principal(&e.directory, None);
    let err = e.arm.get_group(&nobody, &e.sub, "rg").unwrap_err();
    assert_eq!(err.to_wire().status, 403, "{err:?}");
    let reader = principal(&e.directory, Some((READER, &format!("/subscriptions/{}/resourceGroups/rg", e.sub))));
    assert_eq!(e.arm.get_group(&reader, &e.sub, "rg").unwrap().status(), 200);
    let err = e.arm.put_identity(&reader, &e.sub, "rg", "app-id", &body(json!({"location": "eastus"}))).unwrap_err();
    assert!(matches!(err, ArmError::AuthorizationFailed { .. }), "{err:?}");
    assert_eq!(e.store.identities(e.sub_id(), None).unwrap().len(), 0, "nothing written");
}

#[test]
fn the_credential_cap_holds_and_updates_do_not_count() {
    let e = env();
    e.group("rg");
    e.identity("rg", "app-id");
    e.credential("rg", "app-id", "one", "s1").unwrap();
    e.credential("rg", "app-id", "two", "s2").unwrap();
    assert_eq!(e.credential("rg", "app-id", "two", "s2-changed").unwrap().status(), 200);
    let err = e.credential("rg", "app-id", "three", "s3").unwrap_err();
    assert_eq!(err.to_wire().status, 400, "{err:?}");
    assert!(err.to_wire().message.contains('2'), "the message names the cap: {}", err.to_wire().message);
}

/// Under Azure Resource Manager's name (`--azure-hostnames`), vaults are named by Azure's Key Vault
/// host names; under wid's own, by wid's.
#[test]
fn vault_uris_follow_the_name_the_request_came_under() {
    let e = env();
    e.group("rg");
    let vault =
        json!({"location": "eastus", "properties": {"tenantId": e.tenant, "sku": {"family": "A", "name": "standard"}}});
    let put = resource(e.arm.put_vault(&e.owner, &e.sub, "rg", "KV1", &body(vault)).unwrap());
    assert_eq!(put["properties"]["vaultUri"], "https://kv1.vault.localhost:8443/");
    let azure = Actor { azure_names: true, ..principal(&e.directory, Some((OWNER, "/"))) };
    let got = resource(e.arm.get_vault(&azure, &e.sub, "rg", "kv1").unwrap());
    assert_eq!(got["properties"]["vaultUri"], "https://kv1.vault.azure.net/");
}

#[test]
fn a_soft_deleted_vault_keeps_its_name_until_purged() {
    let e = env();
    e.group("rg");
    let vault = json!({"location": "eastus", "properties": {"tenantId": e.tenant, "sku": {"family": "A", "name": "standard"}, "enableRbacAuthorization": true}});
    assert_eq!(e.arm.put_vault(&e.owner, &e.sub, "rg", "kv1", &body(vault.clone())).unwrap().status(), 201);
    assert_eq!(e.arm.delete_vault(&e.owner, &e.sub, "rg", "kv1").unwrap().status(), 200);
    let err = e.arm.put_vault(&e.owner, &e.sub, "rg", "kv1", &body(vault)).unwrap_err();
    assert!(matches!(err, ArmError::ConflictError(_)), "{err:?}");
    assert_eq!(err.to_wire().status, 409);
}

#[test]
fn deleting_a_group_takes_its_identities_and_clusters_keys_with_it() {
    let e = env();
    e.group("rg");
    e.identity("rg", "app-id");
    let cluster = json!({"location": "eastus", "properties": {"oidcIssuerProfile": {"enabled": true}, "securityProfile": {"workloadIdentity": {"enabled": true}}}});
    assert_eq!(e.arm.put_cluster(&e.owner, &e.sub, "rg", "c1", &body(cluster)).unwrap().status(), 201);
    assert_eq!(e.issuers.0.lock().unwrap().len(), 1, "a hosted issuer got its key");
    assert_eq!(e.arm.delete_group(&e.owner, &e.sub, "rg").unwrap().status(), 200);
    assert!(e.issuers.0.lock().unwrap().is_empty(), "its key went with the cluster");
    assert_eq!(e.store.identities(e.sub_id(), None).unwrap().len(), 0);
    let again = e.arm.delete_group(&e.owner, &e.sub, "rg").unwrap_err();
    assert!(matches!(again, ArmError::ResourceGroupNotFound(_)), "{again:?}");
}
