//! User-assigned identities and their federated identity credentials
//! (`Microsoft.ManagedIdentity`).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wid_core::fic::{self, ClaimsMatchingExpression, FederatedCredential, FicError};
use wid_core::model::{Identity, ResourceKey, StoredCredential};
use wid_core::scope::ids;
use wid_store::{LockGuard, StoreError};

use crate::{
    Actor, ArmError, FIC_TYPE, IDENTITY_TYPE, Management, Reply, Result, TrackedBody, names, parse_body, shapes,
};

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

impl Management {
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

    pub(crate) fn load_identity(&self, sub: &str, rg: &str, name: &str) -> Result<Identity> {
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
        // Two lookups, not a listing: an identity may have any number of credentials (0 = no cap).
        let old = self.store.credential(&key, name)?;
        let max = self.cfg.max_credentials_per_identity;
        if old.is_none() && max > 0 {
            let count = self.store.credential_count(&key)?;
            if count >= max {
                return Err(ArmError::BadRequest(FicError::TooMany(count).to_string()));
            }
        }
        let now = self.clock.now();
        let old = old.as_ref();
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
        // Issuer and subject are unique per identity: the store's constraint decides, so that two
        // writers on two replicas cannot both pass a check.
        let written = self.store.put_credential(&stored).map_err(|e| match e {
            StoreError::Conflict(_) => ArmError::BadRequest(FicError::Duplicate.to_string()),
            other => other.into(),
        })?;
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
    pub(crate) fn begin_credential_write(&self, key: &ResourceKey) -> Result<LockGuard> {
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
}
