//! Identity bindings (`Microsoft.ContainerService/managedClusters/identityBindings`, AKS api-version
//! 2026-06-01): a user-assigned identity bound to a cluster, used by the cluster's pods through
//! the token proxy when Kubernetes RBAC allows their service account (`use-managed-identity` on
//! `cid.wi.aks.azure.com/<client id>`), however many service accounts and clusters.
//!
//! As AKS, a binding gives the identity one federated credential, `aks-identity-binding`, shared
//! by every binding of that identity (its issuer is per identity, not per cluster). Unlike AKS,
//! deleting the last binding of an identity deletes that credential too.

use serde::Deserialize;
use serde_json::{Value, json};
use wid_core::fic::{DEFAULT_AUDIENCE, FederatedCredential};
use wid_core::model::{Cluster, Identity, IdentityBinding, ResourceKey, StoredCredential};
use wid_core::scope::ids;

use crate::route::{ArmRoute, parse};
use crate::{Actor, ArmError, Management, Reply, Result, parse_body};

/// The resource type, as ARM names it.
pub const BINDING_TYPE: &str = "Microsoft.ContainerService/managedClusters/identityBindings";
/// The credential a binding gives its identity (AKS's name).
pub const BINDING_CREDENTIAL: &str = "aks-identity-binding";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManagedIdentity {
    resource_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingProperties {
    managed_identity: Option<ManagedIdentity>,
}

#[derive(Deserialize)]
struct BindingBody {
    properties: Option<BindingProperties>,
}

impl Management {
    /// The issuer of the credential bindings give `identity` (one per identity, as AKS's).
    pub fn binding_issuer(&self, identity: &Identity) -> String {
        format!("{}/identitybinding/{}/{}", self.cfg.public_url, self.cfg.tenant_id, identity.client_id)
    }

    /// `PUT …/managedClusters/{cluster}/identityBindings/{name}`.
    pub fn put_binding(
        &self,
        caller: &Actor,
        sub: &str,
        rg: &str,
        cluster: &str,
        name: &str,
        body: &[u8],
    ) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        valid_name(name)?;
        let id = binding_id(&sub, rg, cluster, name);
        self.authorize(caller, &format!("{BINDING_TYPE}/write"), &id)?;
        let body: BindingBody = parse_body(body)?;
        let resource_id = body
            .properties
            .and_then(|p| p.managed_identity)
            .and_then(|m| m.resource_id)
            .ok_or_else(|| ArmError::BadRequest("properties.managedIdentity.resourceId is required.".into()))?;
        let Ok(ArmRoute::Identity { sub: id_sub, rg: id_rg, name: id_name }) = parse(&resource_id) else {
            return Err(ArmError::BadRequest(format!(
                "properties.managedIdentity.resourceId '{resource_id}' is not the id of a user-assigned identity."
            )));
        };
        let id_sub = self.subscription(&id_sub)?;
        let identity = self.load_identity(&id_sub, &id_rg, &id_name)?;
        // As on AKS: the binding writes a federated credential, so the caller must be allowed to.
        let fic_action = "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write";
        self.authorize(caller, fic_action, &ids::federated_credential(&id_sub, &id_rg, &id_name, BINDING_CREDENTIAL))?;

        let key = ResourceKey::new(self.cfg.subscription_id, rg, cluster);
        let _exclusive = self.exclusive("cluster", &key)?;
        let mut c = self.load_cluster(&sub, rg, cluster)?;
        let now = self.clock.now();
        let existing = c.extras.identity_bindings.iter().position(|b| b.name.eq_ignore_ascii_case(name));
        let binding = match existing.and_then(|i| c.extras.identity_bindings.get(i)) {
            Some(old) if old.identity != identity.key() => {
                return Err(ArmError::BadRequest(format!(
                    "The managed identity of identity binding '{}' cannot be changed; delete and re-create the binding.",
                    old.name
                )));
            }
            Some(old) => IdentityBinding { updated: now, ..old.clone() },
            None => IdentityBinding {
                name: name.to_string(),
                identity: identity.key(),
                client_id: identity.client_id,
                created: now,
                updated: now,
            },
        };
        self.ensure_binding_credential(caller, &identity)?;
        match existing {
            Some(i) => {
                if let Some(slot) = c.extras.identity_bindings.get_mut(i) {
                    *slot = binding.clone();
                }
            }
            None => c.extras.identity_bindings.push(binding.clone()),
        }
        self.store.put_cluster(&c)?;
        self.dir_mut().put_cluster(c.clone());
        self.audit_write(caller, "binding.written", &id, &format!("identity {}", identity.arm_id()));
        let reply = self.binding_shape(&c, &binding, &identity);
        Ok(if existing.is_some() { Reply::Ok(reply) } else { Reply::Created(reply) })
    }

    /// `GET …/identityBindings/{name}`.
    pub fn get_binding(&self, caller: &Actor, sub: &str, rg: &str, cluster: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, &format!("{BINDING_TYPE}/read"), &binding_id(&sub, rg, cluster, name))?;
        let c = self.load_cluster(&sub, rg, cluster)?;
        let b = c
            .extras
            .identity_bindings
            .iter()
            .find(|b| b.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| not_found(name, rg))?;
        Ok(Reply::Ok(self.binding_shape(&c, b, &self.bound_identity(b)?)))
    }

    /// `GET …/identityBindings`.
    pub fn list_bindings(&self, caller: &Actor, sub: &str, rg: &str, cluster: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, &format!("{BINDING_TYPE}/read"), &ids::cluster(&sub, rg, cluster))?;
        let c = self.load_cluster(&sub, rg, cluster)?;
        let value = c
            .extras
            .identity_bindings
            .iter()
            .map(|b| Ok(self.binding_shape(&c, b, &self.bound_identity(b)?)))
            .collect::<Result<Vec<Value>>>()?;
        Ok(Reply::Ok(json!({ "value": value })))
    }

    /// `DELETE …/identityBindings/{name}` (204 if absent). The identity's `aks-identity-binding`
    /// credential goes with its last binding in the subscription.
    pub fn delete_binding(&self, caller: &Actor, sub: &str, rg: &str, cluster: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let id = binding_id(&sub, rg, cluster, name);
        self.authorize(caller, &format!("{BINDING_TYPE}/delete"), &id)?;
        let key = ResourceKey::new(self.cfg.subscription_id, rg, cluster);
        let _exclusive = self.exclusive("cluster", &key)?;
        let mut c = self.load_cluster(&sub, rg, cluster)?;
        let Some(i) = c.extras.identity_bindings.iter().position(|b| b.name.eq_ignore_ascii_case(name)) else {
            return Ok(Reply::NoContent);
        };
        let removed = c.extras.identity_bindings.remove(i);
        self.store.put_cluster(&c)?;
        self.dir_mut().put_cluster(c);
        self.audit_write(caller, "binding.deleted", &id, "deleted");
        let still_bound = self
            .store
            .clusters(self.cfg.subscription_id, None)?
            .iter()
            .any(|c| c.extras.identity_bindings.iter().any(|b| b.identity == removed.identity));
        if !still_bound {
            let _guard = self.begin_credential_write(&removed.identity)?;
            if self.store.delete_credential(&removed.identity, BINDING_CREDENTIAL)?.is_some() {
                self.dir_mut().remove_credential(&removed.identity, BINDING_CREDENTIAL);
                self.audit_write(caller, "credential.deleted", &removed.identity.name, "last identity binding deleted");
            }
        }
        Ok(Reply::Done)
    }

    /// The identity's `aks-identity-binding` credential, written if absent.
    fn ensure_binding_credential(&self, caller: &Actor, identity: &Identity) -> Result<()> {
        let key = identity.key();
        let _guard = self.begin_credential_write(&key)?;
        if self.store.credential(&key, BINDING_CREDENTIAL)?.is_some() {
            return Ok(());
        }
        let max = self.cfg.max_credentials_per_identity;
        if max > 0 && self.store.credential_count(&key)? >= max {
            return Err(ArmError::BadRequest(format!(
                "The identity '{}' already has {max} federated identity credentials, the most allowed, so a binding cannot add its own; delete one or raise the server's limit.",
                identity.name
            )));
        }
        let now = self.clock.now();
        let credential = FederatedCredential {
            name: BINDING_CREDENTIAL.into(),
            issuer: self.binding_issuer(identity),
            subject: Some(identity.arm_id()),
            claims_matching_expression: None,
            audiences: vec![DEFAULT_AUDIENCE.into()],
            description: Some("Managed by wid for identity bindings; deleted with the last binding.".into()),
        };
        let stored = StoredCredential { identity: key.clone(), credential, created: now, updated: now };
        self.store.put_credential(&stored)?;
        self.dir_mut().put_credential(&key, stored.credential);
        self.audit_write(caller, "credential.written", &identity.arm_id(), "identity binding's credential");
        Ok(())
    }

    fn bound_identity(&self, b: &IdentityBinding) -> Result<Identity> {
        let k = &b.identity;
        self.load_identity(&k.subscription.to_string(), &k.resource_group, &k.name)
    }

    fn binding_shape(&self, c: &Cluster, b: &IdentityBinding, identity: &Identity) -> Value {
        let sub = self.cfg.subscription_id.to_string();
        json!({
            "id": binding_id(&sub, &c.resource_group, &c.name, &b.name),
            "name": b.name,
            "type": BINDING_TYPE,
            "eTag": format!("\"{:x}\"", b.updated),
            "properties": {
                "managedIdentity": {
                    "resourceId": identity.arm_id(),
                    "clientId": identity.client_id,
                    "objectId": identity.principal_id,
                    "tenantId": identity.tenant_id,
                },
                "oidcIssuer": {"oidcIssuerUrl": self.binding_issuer(identity)},
                "provisioningState": "Succeeded",
            },
        })
    }
}

fn binding_id(sub: &str, rg: &str, cluster: &str, name: &str) -> String {
    format!("{}/identityBindings/{name}", ids::cluster(sub, rg, cluster))
}

fn not_found(name: &str, rg: &str) -> ArmError {
    ArmError::ResourceNotFound { resource_type: BINDING_TYPE, name: name.to_string(), resource_group: rg.to_string() }
}

/// Binding names: a letter or digit, then letters, digits, `-` and `_`, 1–63 in all.
fn valid_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ArmError::BadRequest(format!(
            "The identity binding name '{name}' is invalid: 1-63 letters, digits, '-' and '_', starting with a letter or digit."
        )))
    }
}
