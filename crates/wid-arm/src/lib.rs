//! wid management plane, ARM-shaped: resource groups, user-assigned identities, federated identity
//! credentials, cluster registrations (`Microsoft.ContainerService/managedClusters`), key vaults
//! (`Microsoft.KeyVault/vaults`, [`vaults`]) and Azure RBAC role definitions and assignments at any
//! scope ([`roles`]), plus the subscription, tenant and cloud-metadata documents clients ask for.
//!
//! Every call is authorized with the RBAC engine against the caller's role assignments at the target
//! scope or above. Writes go to the store first and then to the in-memory directory, so they take
//! effect for the very next token request. Methods are synchronous (the store is); the server runs
//! them off the async executor.

pub mod error;
pub mod filter;
mod names;
pub mod roles;
pub mod route;
mod shapes;
pub mod vaults;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wid_core::clock::rfc3339;
use wid_core::directory::Directory;
use wid_core::fic::{self, ClaimsMatchingExpression, FederatedCredential};
use wid_core::issuer::HostedIssuers;
use wid_core::model::{Cluster, ClusterIssuer, Identity, ResourceGroup, ResourceKey, StoredCredential, Tags};
use wid_core::rbac::{Action, Decision};
use wid_core::scope::{Scope, ids};
use wid_core::{Caller, Clock, kube};
use wid_crypto::MasterKey;
use wid_store::{LockGuard, Store, StoreError, Written};

pub use error::{ArmError, ArmWire};

/// A verified caller of one management request, with the request id its audit events carry.
#[derive(Debug, Clone)]
pub struct Actor {
    pub caller: Caller,
    /// The `x-ms-request-id` of the request.
    pub request_id: String,
}

impl std::ops::Deref for Actor {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.caller
    }
}

/// Settings of the management plane.
#[derive(Debug, Clone)]
pub struct ArmConfig {
    pub tenant_id: Uuid,
    pub subscription_id: Uuid,
    pub subscription_name: String,
    /// `https://HOST[:PORT]`, no trailing slash.
    pub public_url: String,
    /// Key Vault DNS suffix, e.g. `vault.localhost:8443`.
    pub vault_dns_suffix: String,
    /// Federated credentials allowed per identity.
    pub max_credentials_per_identity: usize,
}

/// What a successful management call answers; the server turns it into a status and body.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// 200 with the resource or list.
    Ok(Value),
    /// 201: the resource was created.
    Created(Value),
    /// 200 without a body (a delete that removed something).
    Done,
    /// 204: nothing was there to delete.
    NoContent,
}

impl Reply {
    /// The resource after a write: 201 if the write created it, else 200.
    pub fn written(w: Written, resource: Value) -> Reply {
        match w {
            Written::Created => Reply::Created(resource),
            Written::Updated => Reply::Ok(resource),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Reply::Ok(_) | Reply::Done => 200,
            Reply::Created(_) => 201,
            Reply::NoContent => 204,
        }
    }

    /// The JSON body, if any.
    pub fn body(&self) -> Option<&Value> {
        match self {
            Reply::Ok(v) | Reply::Created(v) => Some(v),
            Reply::Done | Reply::NoContent => None,
        }
    }
}

type Result<T> = std::result::Result<T, ArmError>;

/// The management service.
pub struct Management {
    cfg: ArmConfig,
    store: Arc<dyn Store>,
    directory: Arc<RwLock<Directory>>,
    issuers: Arc<dyn HostedIssuers>,
    clock: Arc<dyn Clock>,
    /// Seals each new vault's data key.
    master: Arc<MasterKey>,
}

const RG_TYPE: &str = "Microsoft.Resources/resourceGroups";
const IDENTITY_TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities";
const FIC_TYPE: &str = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials";
const CLUSTER_TYPE: &str = "Microsoft.ContainerService/managedClusters";

fn parse_body<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body).map_err(|e| {
        ArmError::InvalidRequestContent(format!("The request content was invalid and could not be deserialized: {e}"))
    })
}

#[derive(Deserialize)]
struct TrackedBody {
    location: Option<String>,
    tags: Option<Tags>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FicProperties {
    issuer: Option<String>,
    subject: Option<String>,
    audiences: Option<Vec<String>>,
    claims_matching_expression: Option<ClaimsMatchingExpression>,
    description: Option<String>,
}

#[derive(Deserialize)]
struct FicBody {
    properties: Option<FicProperties>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OidcIssuerProfile {
    #[serde(rename = "issuerURL", alias = "issuerUrl")]
    issuer_url: Option<String>,
    jwks: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WorkloadIdentityProfile {
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SecurityProfile {
    workload_identity: Option<WorkloadIdentityProfile>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ClusterProperties {
    oidc_issuer_profile: Option<OidcIssuerProfile>,
    security_profile: Option<SecurityProfile>,
}

#[derive(Deserialize)]
struct ClusterBody {
    location: Option<String>,
    tags: Option<Tags>,
    properties: Option<ClusterProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    namespace: Option<String>,
    service_account_name: Option<String>,
    audiences: Option<Vec<String>>,
    expiration_seconds: Option<i64>,
}

/// Shortest and longest service-account token lifetimes (kube-apiserver's minimum; two days).
const SA_TOKEN_MIN_SECS: i64 = 600;
const SA_TOKEN_MAX_SECS: i64 = 48 * 3600;

impl Management {
    /// Builds the service; `master` seals the data key of each vault created.
    pub fn new(
        cfg: ArmConfig,
        store: Arc<dyn Store>,
        directory: Arc<RwLock<Directory>>,
        issuers: Arc<dyn HostedIssuers>,
        clock: Arc<dyn Clock>,
        master: Arc<MasterKey>,
    ) -> Self {
        Self { cfg, store, directory, issuers, clock, master }
    }

    fn dir(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|p| p.into_inner())
    }

    fn dir_mut(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Serialises read-modify-write sequences on one resource across every replica sharing the store
    /// (e.g. two creates of one identity must agree on its client id).
    fn exclusive(&self, kind: &str, key: &ResourceKey) -> Result<LockGuard> {
        self.exclusive_name(&format!("{kind}/{}/{}/{}", key.subscription, key.resource_group, key.name))
    }

    fn exclusive_name(&self, name: &str) -> Result<LockGuard> {
        Ok(self.store.lock(name, WRITE_WAIT)?)
    }

    fn subscription(&self, sub: &str) -> Result<String> {
        let ours = self.cfg.subscription_id.to_string();
        if sub.eq_ignore_ascii_case(&ours) { Ok(ours) } else { Err(ArmError::SubscriptionNotFound(sub.to_string())) }
    }

    fn decision(&self, caller: &Actor, action: &str, scope: &str) -> Decision {
        let Ok(scope) = Scope::parse(scope) else { return Decision::Denied };
        self.dir().rbac().check(&caller.principal_id, Action::Control(action), &scope)
    }

    fn allowed(&self, caller: &Actor, action: &str, scope: &str) -> bool {
        self.decision(caller, action, scope).is_allowed()
    }

    /// Checks and audits one management call.
    fn authorize(&self, caller: &Actor, action: &str, scope: &str) -> Result<()> {
        match self.decision(caller, action, scope) {
            Decision::Allowed { assignment, role } => {
                self.audit(caller, action, scope, true, &format!("role '{role}' (assignment {assignment})"));
                Ok(())
            }
            Decision::Denied => Err(self.denied(caller, action, scope, "no role assignment allows it")),
        }
    }

    /// Audits what a management write did (`event`: `identity.written`, `vault.purged`…).
    fn audit_write(&self, caller: &Actor, event: &str, resource: &str, detail: &str) {
        self.audit(caller, event, resource, true, detail);
    }

    /// Audits a refusal and returns ARM's 403.
    fn denied(&self, caller: &Actor, action: &str, scope: &str, reason: &str) -> ArmError {
        self.audit(caller, action, scope, false, reason);
        ArmError::AuthorizationFailed {
            principal: caller.principal_id.to_string(),
            action: action.to_string(),
            scope: scope.to_string(),
        }
    }

    /// A list reply with the items the caller may read (as ARM lists: no error for the rest).
    fn visible<T>(
        &self,
        caller: &Actor,
        action: &str,
        items: &[T],
        id: impl Fn(&T) -> String,
        shape: impl Fn(&T) -> Value,
    ) -> Reply {
        let value: Vec<Value> = items.iter().filter(|i| self.allowed(caller, action, &id(i))).map(shape).collect();
        Reply::Ok(json!({ "value": value }))
    }

    /// A list of one resource type in a group (which must exist) or the whole subscription,
    /// filtered to what the caller may read.
    #[allow(clippy::too_many_arguments)]
    fn list_in<T>(
        &self,
        caller: &Actor,
        sub: &str,
        rg: Option<&str>,
        action: &str,
        fetch: impl FnOnce(&dyn Store, Uuid, Option<&str>) -> wid_store::Result<Vec<T>>,
        id: impl Fn(&T) -> String,
        shape: impl Fn(&T) -> Value,
    ) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        if let Some(rg) = rg {
            self.group(&sub, rg)?;
        }
        let items = fetch(self.store.as_ref(), self.cfg.subscription_id, rg)?;
        Ok(self.visible(caller, action, &items, id, shape))
    }

    fn group(&self, sub: &str, rg: &str) -> Result<ResourceGroup> {
        self.store.resource_group(self.cfg.subscription_id, rg)?.ok_or_else(|| {
            let _ = sub;
            ArmError::ResourceGroupNotFound(rg.to_string())
        })
    }

    // ---- subscriptions, tenants, metadata ----------------------------------------------------

    /// `GET /subscriptions`: the subscription, if the caller holds any role in it.
    pub fn list_subscriptions(&self, caller: &Actor) -> Result<Reply> {
        let sub = ids::subscription(&self.cfg.subscription_id.to_string());
        let visible = self.allowed(caller, "Microsoft.Resources/subscriptions/read", &sub);
        let value: Vec<Value> = if visible { vec![shapes::subscription(&self.cfg)] } else { vec![] };
        Ok(Reply::Ok(json!({ "value": value })))
    }

    /// `GET /subscriptions/{sub}`.
    pub fn get_subscription(&self, caller: &Actor, sub: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, "Microsoft.Resources/subscriptions/read", &ids::subscription(&sub))?;
        Ok(Reply::Ok(shapes::subscription(&self.cfg)))
    }

    /// `GET /tenants`.
    pub fn list_tenants(&self) -> Reply {
        let t = self.cfg.tenant_id;
        Reply::Ok(
            json!({"value": [{"id": format!("/tenants/{t}"), "tenantId": t, "tenantCategory": "Home", "displayName": "wid"}]}),
        )
    }

    /// `GET /metadata/endpoints` (what `az cloud register` reads); no authentication.
    pub fn metadata_endpoints(&self) -> Value {
        let url = &self.cfg.public_url;
        json!({
            "name": "wid",
            "resourceManager": format!("{url}/"),
            "authentication": {"loginEndpoint": url, "audiences": [url, format!("{url}/")], "tenant": "common", "identityProvider": "AAD"},
            "suffixes": {"keyVaultDns": self.cfg.vault_dns_suffix},
        })
    }

    // ---- resource groups ---------------------------------------------------------------------

    /// `PUT /subscriptions/{sub}/resourcegroups/{rg}`.
    pub fn put_group(&self, caller: &Actor, sub: &str, rg: &str, body: &[u8]) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        names::resource_group(rg)?;
        let scope = ids::resource_group(&sub, rg);
        self.authorize(caller, "Microsoft.Resources/subscriptions/resourceGroups/write", &scope)?;
        let body: TrackedBody = parse_body(body)?;
        let location = body.location.ok_or_else(|| {
            ArmError::LocationRequired("The location property is required for this definition.".into())
        })?;
        names::location(&location)?;
        let existing = self.store.resource_group(self.cfg.subscription_id, rg)?;
        let group = ResourceGroup {
            subscription: self.cfg.subscription_id,
            // The name keeps the casing it was created with.
            name: existing.as_ref().map_or_else(|| rg.to_string(), |g| g.name.clone()),
            location,
            tags: body.tags.unwrap_or_default(),
            created: existing.as_ref().map_or_else(|| self.clock.now(), |g| g.created),
        };
        let written = self.store.put_resource_group(&group)?;
        Ok(Reply::written(written, shapes::group(&group)))
    }

    /// `GET /subscriptions/{sub}/resourcegroups/{rg}`.
    pub fn get_group(&self, caller: &Actor, sub: &str, rg: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(
            caller,
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            &ids::resource_group(&sub, rg),
        )?;
        Ok(Reply::Ok(shapes::group(&self.group(&sub, rg)?)))
    }

    /// `GET /subscriptions/{sub}/resourcegroups`: the groups the caller can read.
    pub fn list_groups(&self, caller: &Actor, sub: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let items = self.store.resource_groups(self.cfg.subscription_id)?;
        let id = |g: &ResourceGroup| ids::resource_group(&sub, &g.name);
        Ok(self.visible(caller, "Microsoft.Resources/subscriptions/resourceGroups/read", &items, id, shapes::group))
    }

    /// `DELETE /subscriptions/{sub}/resourcegroups/{rg}`: the group and everything in it.
    pub fn delete_group(&self, caller: &Actor, sub: &str, rg: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(
            caller,
            "Microsoft.Resources/subscriptions/resourceGroups/delete",
            &ids::resource_group(&sub, rg),
        )?;
        let removed = self.store.delete_resource_group(self.cfg.subscription_id, rg)?;
        let Some(removed) = removed else { return Err(ArmError::ResourceGroupNotFound(rg.to_string())) };
        for c in &removed.clusters {
            self.drop_cluster_keys(c);
        }
        let mut dir = self.dir_mut();
        for i in &removed.identities {
            dir.remove_identity(&i.key());
        }
        for c in &removed.clusters {
            dir.remove_cluster(&c.key());
        }
        for ra in &removed.role_assignments {
            dir.remove_role_assignment(ra);
        }
        drop(dir);
        for v in &removed.vaults {
            self.audit_write(caller, "vault.deleted", &v.arm_id(), "resource group deleted");
        }
        Ok(Reply::Done)
    }

    // ---- identities --------------------------------------------------------------------------

    /// `PUT …/userAssignedIdentities/{name}`.
    pub fn put_identity(&self, caller: &Actor, sub: &str, rg: &str, name: &str, body: &[u8]) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        names::identity(name)?;
        self.authorize(
            caller,
            "Microsoft.ManagedIdentity/userAssignedIdentities/write",
            &ids::identity(&sub, rg, name),
        )?;
        let body: TrackedBody = parse_body(body)?;
        let group = self.group(&sub, rg)?;
        let location = body.location.unwrap_or_else(|| group.location.clone());
        names::location(&location)?;
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        let _exclusive = self.exclusive("identity", &key)?;
        let now = self.clock.now();
        let identity = match self.store.identity(&key)? {
            Some(old) => Identity { location, tags: body.tags.unwrap_or(old.tags.clone()), updated: now, ..old },
            None => Identity {
                subscription: self.cfg.subscription_id,
                resource_group: group.name.clone(),
                name: name.to_string(),
                location,
                tags: body.tags.unwrap_or_default(),
                tenant_id: self.cfg.tenant_id,
                client_id: Uuid::new_v4(),
                principal_id: Uuid::new_v4(),
                created: now,
                updated: now,
            },
        };
        let written = self.store.put_identity(&identity)?;
        self.dir_mut().put_identity(identity.clone());
        self.audit_write(caller, "identity.written", &identity.arm_id(), "written");
        Ok(Reply::written(written, shapes::identity(&identity)))
    }

    fn load_identity(&self, sub: &str, rg: &str, name: &str) -> Result<Identity> {
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        match self.store.identity(&key)? {
            Some(i) => Ok(i),
            None => {
                self.group(sub, rg)?;
                Err(ArmError::ResourceNotFound {
                    resource_type: IDENTITY_TYPE,
                    name: name.to_string(),
                    resource_group: rg.to_string(),
                })
            }
        }
    }

    /// `GET …/userAssignedIdentities/{name}`.
    pub fn get_identity(&self, caller: &Actor, sub: &str, rg: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(
            caller,
            "Microsoft.ManagedIdentity/userAssignedIdentities/read",
            &ids::identity(&sub, rg, name),
        )?;
        Ok(Reply::Ok(shapes::identity(&self.load_identity(&sub, rg, name)?)))
    }

    /// `GET …/userAssignedIdentities` in a group or the subscription: those the caller can read.
    pub fn list_identities(&self, caller: &Actor, sub: &str, rg: Option<&str>) -> Result<Reply> {
        let action = "Microsoft.ManagedIdentity/userAssignedIdentities/read";
        self.list_in(caller, sub, rg, action, |st, id, rg| st.identities(id, rg), Identity::arm_id, shapes::identity)
    }

    /// `DELETE …/userAssignedIdentities/{name}` (204 if it did not exist, as ARM).
    pub fn delete_identity(&self, caller: &Actor, sub: &str, rg: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(
            caller,
            "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
            &ids::identity(&sub, rg, name),
        )?;
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        let _exclusive = self.exclusive("identity", &key)?;
        match self.store.delete_identity(&key)? {
            Some(i) => {
                self.dir_mut().remove_identity(&key);
                self.audit_write(caller, "identity.deleted", &i.arm_id(), "deleted");
                Ok(Reply::Done)
            }
            None => Ok(Reply::NoContent),
        }
    }

    // ---- federated identity credentials ------------------------------------------------------

    /// `PUT …/userAssignedIdentities/{id}/federatedIdentityCredentials/{name}`.
    pub fn put_credential(
        &self,
        caller: &Actor,
        sub: &str,
        rg: &str,
        identity: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let scope = ids::federated_credential(&sub, rg, identity, name);
        self.authorize(
            caller,
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
            &scope,
        )?;
        let body: FicBody = parse_body(body)?;
        let props = body.properties.ok_or_else(|| {
            ArmError::InvalidRequestContent(
                "The request content must contain 'properties' with issuer, subject and audiences.".into(),
            )
        })?;
        let parent = self.load_identity(&sub, rg, identity)?;
        let credential = FederatedCredential {
            name: name.to_string(),
            issuer: props.issuer.unwrap_or_default(),
            subject: props.subject.filter(|s| !s.is_empty()),
            claims_matching_expression: props.claims_matching_expression,
            audiences: props.audiences.unwrap_or_else(|| vec![fic::DEFAULT_AUDIENCE.to_string()]),
            description: props.description,
        };
        credential.validate().map_err(|e| ArmError::BadRequest(e.to_string()))?;

        let key = parent.key();
        let _guard = self.begin_credential_write(&key)?;
        let existing = self.store.credentials(&key)?;
        let siblings: Vec<FederatedCredential> = existing.iter().map(|c| c.credential.clone()).collect();
        fic::check_siblings(&credential, &siblings, self.cfg.max_credentials_per_identity)
            .map_err(|e| ArmError::BadRequest(e.to_string()))?;
        let now = self.clock.now();
        let old = existing.iter().find(|c| c.credential.name.eq_ignore_ascii_case(name));
        let stored = StoredCredential {
            identity: key.clone(),
            credential: FederatedCredential {
                // The name is immutable: keep the casing it was created with.
                name: old.map_or_else(|| name.to_string(), |o| o.credential.name.clone()),
                ..credential
            },
            created: old.map_or(now, |o| o.created),
            updated: now,
        };
        let written = self.store.put_credential(&stored)?;
        self.dir_mut().put_credential(&key, stored.credential.clone());
        self.audit_write(
            caller,
            "credential.written",
            &parent.arm_id(),
            &format!("credential '{}'", stored.credential.name),
        );
        Ok(Reply::written(written, shapes::credential(&parent, &stored.credential)))
    }

    /// Federated credentials of one identity are written one at a time, as in Entra: a second writer
    /// (on any replica) is turned away with 409, not queued.
    fn begin_credential_write(&self, key: &ResourceKey) -> Result<LockGuard> {
        let name = format!("credentials/{}/{}/{}", key.subscription, key.resource_group, key.name);
        self.store.lock(&name, Duration::ZERO).map_err(|e| match e {
            StoreError::Busy(_) => ArmError::ConcurrentCredentialWrites(format!(
                    "Too many Federated Identity Credentials are written concurrently for the managed identity '{}'. Concurrent Federated Identity Credentials writes under the same managed identity are not supported; retry after the other write finishes.",
                    key.name
                )),
            other => other.into(),
        })
    }

    /// `GET …/federatedIdentityCredentials/{name}`.
    pub fn get_credential(&self, caller: &Actor, sub: &str, rg: &str, identity: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let scope = ids::federated_credential(&sub, rg, identity, name);
        self.authorize(
            caller,
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
            &scope,
        )?;
        let parent = self.load_identity(&sub, rg, identity)?;
        let cred = self
            .store
            .credentials(&parent.key())?
            .into_iter()
            .find(|c| c.credential.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| ArmError::ResourceNotFound {
                resource_type: FIC_TYPE,
                name: format!("{}/{name}", parent.name),
                resource_group: rg.to_string(),
            })?;
        Ok(Reply::Ok(shapes::credential(&parent, &cred.credential)))
    }

    /// `GET …/federatedIdentityCredentials`.
    pub fn list_credentials(&self, caller: &Actor, sub: &str, rg: &str, identity: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let scope = ids::identity(&sub, rg, identity);
        self.authorize(
            caller,
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
            &scope,
        )?;
        let parent = self.load_identity(&sub, rg, identity)?;
        let value: Vec<Value> =
            self.store.credentials(&parent.key())?.iter().map(|c| shapes::credential(&parent, &c.credential)).collect();
        Ok(Reply::Ok(json!({ "value": value })))
    }

    /// `DELETE …/federatedIdentityCredentials/{name}` (204 if absent).
    pub fn delete_credential(&self, caller: &Actor, sub: &str, rg: &str, identity: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let scope = ids::federated_credential(&sub, rg, identity, name);
        self.authorize(
            caller,
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
            &scope,
        )?;
        let parent = self.load_identity(&sub, rg, identity)?;
        let key = parent.key();
        let _guard = self.begin_credential_write(&key)?;
        match self.store.delete_credential(&key, name)? {
            Some(_) => {
                self.dir_mut().remove_credential(&key, name);
                self.audit_write(caller, "credential.deleted", &parent.arm_id(), &format!("credential '{name}'"));
                Ok(Reply::Done)
            }
            None => Ok(Reply::NoContent),
        }
    }

    // ---- clusters ----------------------------------------------------------------------------

    /// The issuer URL of a hosted cluster.
    pub fn hosted_issuer_url(&self, cluster_id: &Uuid) -> String {
        format!("{}/oidc/{}/{cluster_id}/", self.cfg.public_url, self.cfg.tenant_id)
    }

    /// `PUT …/managedClusters/{name}`: registers a cluster (hosted issuer unless `issuerURL` is given).
    pub fn put_cluster(&self, caller: &Actor, sub: &str, rg: &str, name: &str, body: &[u8]) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        names::cluster(name)?;
        self.authorize(caller, "Microsoft.ContainerService/managedClusters/write", &ids::cluster(&sub, rg, name))?;
        let body: ClusterBody = parse_body(body)?;
        let _exclusive = self.exclusive("cluster", &ResourceKey::new(self.cfg.subscription_id, rg, name))?;
        let group = self.group(&sub, rg)?;
        let props = body.properties.unwrap_or_default();
        let oidc = props.oidc_issuer_profile.unwrap_or_default();
        let jwks = oidc.jwks.map(|j| validate_jwks(&j)).transpose()?;
        let wi = props.security_profile.and_then(|s| s.workload_identity).and_then(|w| w.enabled);
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        let now = self.clock.now();
        let existing = self.store.cluster(&key)?;
        let location =
            body.location.or_else(|| existing.as_ref().map(|c| c.location.clone())).unwrap_or(group.location.clone());
        names::location(&location)?;
        let cluster = match existing {
            Some(old) => {
                let issuer = match (&old.issuer, oidc.issuer_url) {
                    (ClusterIssuer::Hosted { .. }, Some(url)) if url != old.issuer.issuer_url() => {
                        return Err(ArmError::BadRequest("The issuer of a cluster whose issuer wid hosts cannot be changed; delete and re-create the cluster registration.".into()));
                    }
                    (ClusterIssuer::Hosted { .. }, _) => old.issuer.clone(),
                    (ClusterIssuer::External { issuer_url, jwks: old_jwks }, url) => ClusterIssuer::External {
                        issuer_url: url.map(|u| validate_issuer_url(&u)).transpose()?.unwrap_or(issuer_url.clone()),
                        jwks: jwks.or(old_jwks.clone()),
                    },
                };
                Cluster {
                    location,
                    tags: body.tags.unwrap_or(old.tags.clone()),
                    issuer,
                    workload_identity: wi.unwrap_or(old.workload_identity),
                    updated: now,
                    ..old
                }
            }
            None => {
                let cluster_id = Uuid::new_v4();
                let issuer = match oidc.issuer_url {
                    Some(url) => ClusterIssuer::External { issuer_url: validate_issuer_url(&url)?, jwks },
                    None if jwks.is_some() => {
                        return Err(ArmError::BadRequest("A JWKS can only be uploaded for an external issuer: give oidcIssuerProfile.issuerURL (wid aks create --issuer-url).".into()));
                    }
                    None => {
                        ClusterIssuer::Hosted { issuer_url: self.hosted_issuer_url(&cluster_id), kid: String::new() }
                    }
                };
                Cluster {
                    subscription: self.cfg.subscription_id,
                    resource_group: group.name.clone(),
                    name: name.to_string(),
                    location,
                    tags: body.tags.unwrap_or_default(),
                    cluster_id,
                    issuer,
                    workload_identity: wi.unwrap_or(true),
                    created: now,
                    updated: now,
                }
            }
        };
        if let Some(other) = self.dir().cluster_by_issuer(cluster.issuer.issuer_url())
            && other.key() != key
        {
            return Err(ArmError::IssuerAlreadyRegistered(format!(
                "The issuer '{}' is already registered by cluster '{}' in resource group '{}'.",
                cluster.issuer.issuer_url(),
                other.name,
                other.resource_group
            )));
        }
        let cluster = self.ensure_cluster_key(cluster)?;
        let written = self.store.put_cluster(&cluster)?;
        self.dir_mut().put_cluster(cluster.clone());
        self.audit_write(caller, "cluster.written", &cluster.arm_id(), "written");
        Ok(Reply::written(written, shapes::cluster(&cluster)))
    }

    fn ensure_cluster_key(&self, cluster: Cluster) -> Result<Cluster> {
        let ClusterIssuer::Hosted { issuer_url, .. } = &cluster.issuer else { return Ok(cluster) };
        let kid = self
            .issuers
            .ensure_signing_key(&cluster.cluster_id, self.clock.now())
            .map_err(|e| ArmError::Internal(e.to_string()))?;
        let issuer = ClusterIssuer::Hosted { issuer_url: issuer_url.clone(), kid };
        Ok(Cluster { issuer, ..cluster })
    }

    fn drop_cluster_keys(&self, cluster: &Cluster) {
        if matches!(cluster.issuer, ClusterIssuer::Hosted { .. })
            && let Err(e) = self.issuers.remove_signing_keys(&cluster.cluster_id)
        {
            tracing::warn!(error = %e, cluster = %cluster.cluster_id, "could not delete a cluster's signing keys");
        }
    }

    fn load_cluster(&self, sub: &str, rg: &str, name: &str) -> Result<Cluster> {
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        match self.store.cluster(&key)? {
            Some(c) => Ok(c),
            None => {
                self.group(sub, rg)?;
                Err(ArmError::ResourceNotFound {
                    resource_type: CLUSTER_TYPE,
                    name: name.to_string(),
                    resource_group: rg.to_string(),
                })
            }
        }
    }

    /// `GET …/managedClusters/{name}`.
    pub fn get_cluster(&self, caller: &Actor, sub: &str, rg: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, "Microsoft.ContainerService/managedClusters/read", &ids::cluster(&sub, rg, name))?;
        Ok(Reply::Ok(shapes::cluster(&self.load_cluster(&sub, rg, name)?)))
    }

    /// `GET …/managedClusters` in a group or the subscription.
    pub fn list_clusters(&self, caller: &Actor, sub: &str, rg: Option<&str>) -> Result<Reply> {
        let action = "Microsoft.ContainerService/managedClusters/read";
        self.list_in(caller, sub, rg, action, |st, id, rg| st.clusters(id, rg), Cluster::arm_id, shapes::cluster)
    }

    /// `DELETE …/managedClusters/{name}` (204 if absent); a hosted issuer's keys go with it.
    pub fn delete_cluster(&self, caller: &Actor, sub: &str, rg: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, "Microsoft.ContainerService/managedClusters/delete", &ids::cluster(&sub, rg, name))?;
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        let _exclusive = self.exclusive("cluster", &key)?;
        match self.store.delete_cluster(&key)? {
            Some(c) => {
                self.dir_mut().remove_cluster(&key);
                self.drop_cluster_keys(&c);
                self.audit_write(caller, "cluster.deleted", &c.arm_id(), "deleted");
                Ok(Reply::Done)
            }
            None => Ok(Reply::NoContent),
        }
    }

    /// `POST …/managedClusters/{name}/serviceAccountToken`: a TokenRequest-style token from a hosted
    /// issuer (what `kubectl create token` would give on that cluster).
    pub fn service_account_token(&self, caller: &Actor, sub: &str, rg: &str, name: &str, body: &[u8]) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let action = "Microsoft.ContainerService/managedClusters/serviceAccountToken/action";
        self.authorize(caller, action, &ids::cluster(&sub, rg, name))?;
        let body: TokenBody = parse_body(body)?;
        let cluster = self.load_cluster(&sub, rg, name)?;
        if !matches!(cluster.issuer, ClusterIssuer::Hosted { .. }) {
            return Err(ArmError::BadRequest("This cluster's issuer is external, so wid holds no key for it; get a token from the cluster itself (kubectl create token).".into()));
        }
        let ns = body.namespace.unwrap_or_else(|| "default".into());
        let sa =
            body.service_account_name.ok_or_else(|| ArmError::BadRequest("serviceAccountName is required.".into()))?;
        if !kube::is_dns1123_label(&ns) {
            return Err(ArmError::BadRequest(format!(
                "The namespace '{ns}' is not a valid Kubernetes namespace name."
            )));
        }
        if !kube::is_dns1123_subdomain(&sa) {
            return Err(ArmError::BadRequest(format!(
                "The service account name '{sa}' is not a valid Kubernetes name."
            )));
        }
        let audiences =
            body.audiences.filter(|a| !a.is_empty()).unwrap_or_else(|| vec![fic::DEFAULT_AUDIENCE.to_string()]);
        if audiences.iter().any(|a| a.is_empty() || a.len() > fic::MAX_FIELD_LEN) {
            return Err(ArmError::BadRequest("Audiences must be non-empty and at most 600 characters.".into()));
        }
        let lifetime = body.expiration_seconds.unwrap_or(3600);
        if !(SA_TOKEN_MIN_SECS..=SA_TOKEN_MAX_SECS).contains(&lifetime) {
            return Err(ArmError::BadRequest(format!(
                "expirationSeconds must be between {SA_TOKEN_MIN_SECS} and {SA_TOKEN_MAX_SECS}."
            )));
        }
        let (token, exp) = self
            .issuers
            .mint_service_account_token(&cluster, &ns, &sa, &audiences, lifetime)
            .map_err(|e| ArmError::Internal(e.to_string()))?;
        self.audit_write(caller, "cluster.token", &cluster.arm_id(), &format!("system:serviceaccount:{ns}:{sa}"));
        Ok(Reply::Ok(json!({"token": token, "expirationTimestamp": rfc3339(exp)})))
    }
}

/// How long a write waits for another one on the same resource.
const WRITE_WAIT: Duration = Duration::from_secs(10);

fn validate_issuer_url(url: &str) -> Result<String> {
    let probe = FederatedCredential {
        name: "probe".into(),
        issuer: url.to_string(),
        subject: Some("s".into()),
        claims_matching_expression: None,
        audiences: vec![fic::DEFAULT_AUDIENCE.into()],
        description: None,
    };
    match probe.validate() {
        Ok(()) => Ok(url.to_string()),
        Err(e) => Err(ArmError::BadRequest(format!("oidcIssuerProfile.issuerURL: {e}"))),
    }
}

/// Checks an uploaded JWKS: a JSON object with at least one usable signing key; returns it as text.
fn validate_jwks(jwks: &Value) -> Result<String> {
    let text = jwks.to_string();
    let set = wid_crypto::jwk::JwkSet::parse(text.as_bytes(), 256 * 1024)
        .map_err(|e| ArmError::BadRequest(format!("The uploaded JWKS is invalid: {e}")))?;
    if set.signing_keys().next().is_none() {
        return Err(ArmError::BadRequest(
            "The uploaded JWKS holds no usable signing key (RSA ≥ 2048 bits, EC P-256/P-384/P-521).".into(),
        ));
    }
    Ok(text)
}
