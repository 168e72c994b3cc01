//! wid management plane, ARM-shaped: resource groups ([`groups`]), user-assigned identities and
//! their federated identity credentials ([`identities`]), cluster registrations
//! (`Microsoft.ContainerService/managedClusters`, [`clusters`]), key vaults (`Microsoft.KeyVault/vaults`,
//! [`vaults`]) and Azure RBAC role definitions and assignments at any scope ([`roles`]), plus the
//! subscription, tenant and cloud-metadata documents clients ask for (here). [`route`] parses paths.

pub mod bindings;
pub mod clusters;
pub mod error;
pub mod filter;
pub mod groups;
pub mod identities;
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
use wid_core::directory::Directory;
use wid_core::issuer::HostedIssuers;
use wid_core::model::{ResourceGroup, ResourceKey, Tags};
use wid_core::rbac::{Action, Decision};
use wid_core::scope::{Scope, ids};
use wid_core::{Caller, Clock};
use wid_crypto::MasterKey;
use wid_store::{LockGuard, Store, Written};

pub use error::{ArmError, ArmWire};

/// A verified caller of one management request, with the request id its audit events carry.
#[derive(Debug, Clone)]
pub struct Actor {
    pub caller: Caller,
    /// The `x-ms-request-id` of the request.
    pub request_id: String,
    /// The request came under Azure Resource Manager's own name (`wid serve --azure-hostnames`):
    /// replies name vaults by Azure's Key Vault host names.
    pub azure_names: bool,
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
    /// Federated credentials allowed per identity; 0: no limit.
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

    /// What the caller's role assignments say about an action at a scope (not audited).
    fn decision(&self, caller: &Actor, action: &str, scope: &Scope) -> Decision {
        self.dir().rbac().check(&caller.principal_id, Action::Control(action), scope)
    }

    fn allowed(&self, caller: &Actor, action: &str, scope: &str) -> bool {
        Scope::parse(scope).is_ok_and(|scope| self.decision(caller, action, &scope).is_allowed())
    }

    /// Checks and audits one management call; an unparsable scope is refused like a missing role.
    fn authorize(&self, caller: &Actor, action: &str, scope: &str) -> Result<()> {
        match Scope::parse(scope) {
            Ok(scope) => self.authorize_at(caller, action, &scope).map(|_| ()),
            Err(_) => Err(self.denied(caller, action, scope, "no role assignment allows it")),
        }
    }

    /// [`Management::authorize`] at a parsed scope, returning the grant.
    pub(crate) fn authorize_at(&self, caller: &Actor, action: &str, scope: &Scope) -> Result<Decision> {
        match self.decision(caller, action, scope) {
            Decision::Allowed { assignment, role } => Ok(self.granted(caller, action, scope, assignment, role)),
            Decision::Denied => Err(self.denied(caller, action, scope.as_str(), "no role assignment allows it")),
        }
    }

    /// Audits an allowed call, naming the role and assignment that allow it.
    fn granted(&self, caller: &Actor, action: &str, scope: &Scope, assignment: Uuid, role: String) -> Decision {
        self.audit(caller, action, scope.as_str(), true, &format!("role '{role}' (assignment {assignment})"));
        Decision::Allowed { assignment, role }
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
        // Azure lists a subscription to anyone with a role in it, however narrow its scope (a
        // workload identity whose only role is on a vault sees it, so `az login` needs no
        // --allow-no-subscriptions); reading the subscription itself still needs a role there.
        let visible = Scope::parse(&sub).is_ok_and(|s| self.dir().rbac().has_role_touching(&caller.principal_id, &s));
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
            // az builds its Graph URLs on this (`…/v1.0/me`) and asks tokens for it: this server.
            "microsoftGraphResourceId": format!("{url}/"),
            "suffixes": {"keyVaultDns": self.cfg.vault_dns_suffix},
        })
    }
}

/// How long a write waits for another one on the same resource.
const WRITE_WAIT: Duration = Duration::from_secs(10);
