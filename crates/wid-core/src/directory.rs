//! The in-memory read model the hot paths use: identities by client id with their credentials,
//! application principals, clusters by issuer, the issuers any credential names, and the RBAC index.
//!
//! Writers update the store first and then apply the same change here, so a change takes effect for
//! the very next request and a token exchange never touches storage. Every lookup is a hash probe:
//! its cost does not grow with the number of identities, credentials or role assignments.

use std::collections::HashMap;

use uuid::Uuid;

use crate::credentials::CredentialSet;
use crate::fic::FederatedCredential;
use crate::model::{AppPrincipal, Cluster, Identity, ResourceKey, RoleAssignment, StoredCredential};
use crate::rbac::RbacIndex;

/// An identity with its federated credentials.
#[derive(Debug, Clone)]
pub struct IdentityEntry {
    pub identity: Identity,
    pub credentials: CredentialSet,
}

/// The read model. Not internally synchronised: hold it behind a lock.
#[derive(Debug, Clone)]
pub struct Directory {
    /// Boxed: a hash table keeps a quarter or more of its slots empty, and an entry is ~250 bytes.
    identities: HashMap<Uuid, Box<IdentityEntry>>,
    client_by_key: HashMap<ResourceKey, Uuid>,
    principals: HashMap<Uuid, Uuid>,
    apps: HashMap<Uuid, AppPrincipal>,
    clusters: HashMap<String, Cluster>,
    issuer_by_cluster: HashMap<ResourceKey, String>,
    issuer_refs: HashMap<String, usize>,
    rbac: RbacIndex,
}

impl Default for Directory {
    fn default() -> Self {
        Self {
            identities: HashMap::new(),
            client_by_key: HashMap::new(),
            principals: HashMap::new(),
            apps: HashMap::new(),
            clusters: HashMap::new(),
            issuer_by_cluster: HashMap::new(),
            issuer_refs: HashMap::new(),
            rbac: RbacIndex::with_builtin_roles(),
        }
    }
}

impl Directory {
    /// Builds the model from everything stored, then releases the spare capacity its maps grew while
    /// being filled (the inputs are dropped first, so the allocator can reuse their memory).
    pub fn build(
        identities: Vec<Identity>,
        credentials: Vec<StoredCredential>,
        clusters: Vec<Cluster>,
        apps: Vec<AppPrincipal>,
        role_assignments: Vec<RoleAssignment>,
    ) -> Self {
        let mut d = Self::default();
        for i in identities {
            d.put_identity(i);
        }
        for c in credentials {
            d.put_credential(&c.identity, c.credential);
        }
        for c in clusters {
            d.put_cluster(c);
        }
        for a in apps {
            d.put_app(a);
        }
        for ra in &role_assignments {
            d.rbac.insert(ra);
        }
        drop(role_assignments);
        d.shrink_to_fit();
        d
    }

    fn shrink_to_fit(&mut self) {
        self.identities.values_mut().for_each(|e| e.credentials.shrink_to_fit());
        self.identities.shrink_to_fit();
        self.client_by_key.shrink_to_fit();
        self.principals.shrink_to_fit();
        self.apps.shrink_to_fit();
        self.clusters.shrink_to_fit();
        self.issuer_by_cluster.shrink_to_fit();
        self.issuer_refs.shrink_to_fit();
        self.rbac.shrink_to_fit();
    }

    /// The RBAC index.
    pub fn rbac(&self) -> &RbacIndex {
        &self.rbac
    }

    /// An identity (with credentials) by client id.
    pub fn identity_by_client(&self, client_id: &Uuid) -> Option<&IdentityEntry> {
        self.identities.get(client_id).map(|e| e.as_ref())
    }

    /// An application principal by client id.
    pub fn app_by_client(&self, client_id: &Uuid) -> Option<&AppPrincipal> {
        self.apps.get(client_id)
    }

    /// True if `principal_id` is a known identity or application principal.
    pub fn principal_exists(&self, principal_id: &Uuid) -> bool {
        self.principals.contains_key(principal_id)
    }

    /// The client id of a principal (object id).
    pub fn client_of_principal(&self, principal_id: &Uuid) -> Option<Uuid> {
        self.principals.get(principal_id).copied()
    }

    /// The cluster registered with this exact issuer URL.
    pub fn cluster_by_issuer(&self, issuer: &str) -> Option<&Cluster> {
        self.clusters.get(issuer)
    }

    /// True if some federated credential names this exact issuer (outbound key fetches are allowed
    /// only for such issuers).
    pub fn issuer_is_named(&self, issuer: &str) -> bool {
        self.issuer_refs.contains_key(issuer)
    }

    /// Adds or replaces an identity (keeping its credentials).
    pub fn put_identity(&mut self, identity: Identity) {
        let key = identity.key();
        if let Some(old) = self.client_by_key.get(&key).copied()
            && old != identity.client_id
        {
            self.remove_identity(&key);
        }
        self.client_by_key.insert(key, identity.client_id);
        self.principals.insert(identity.principal_id, identity.client_id);
        let client_id = identity.client_id;
        match self.identities.get_mut(&client_id) {
            Some(entry) => entry.identity = identity,
            None => {
                let entry = IdentityEntry { identity, credentials: CredentialSet::default() };
                self.identities.insert(client_id, Box::new(entry));
            }
        }
    }

    /// Removes an identity and its credentials. Role assignments naming it stay (as in Azure, where
    /// they become assignments to an unknown principal) until deleted.
    pub fn remove_identity(&mut self, key: &ResourceKey) {
        let Some(client_id) = self.client_by_key.remove(key) else { return };
        if let Some(entry) = self.identities.remove(&client_id) {
            self.principals.remove(&entry.identity.principal_id);
            for c in entry.credentials.as_slice() {
                self.unref_issuer(&c.issuer);
            }
        }
    }

    /// Adds or replaces (by name, case-insensitively) a credential of an identity.
    pub fn put_credential(&mut self, identity: &ResourceKey, credential: FederatedCredential) {
        self.remove_credential(identity, &credential.name);
        let Some(entry) = self.client_by_key.get(identity).and_then(|c| self.identities.get_mut(c)) else { return };
        *self.issuer_refs.entry(credential.issuer.clone()).or_default() += 1;
        entry.credentials.put(credential);
    }

    /// Removes a credential by name.
    pub fn remove_credential(&mut self, identity: &ResourceKey, name: &str) {
        let Some(entry) = self.client_by_key.get(identity).and_then(|c| self.identities.get_mut(c)) else { return };
        let Some(removed) = entry.credentials.remove(name) else { return };
        self.unref_issuer(&removed.issuer);
    }

    fn unref_issuer(&mut self, issuer: &str) {
        if let Some(n) = self.issuer_refs.get_mut(issuer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.issuer_refs.remove(issuer);
            }
        }
    }

    /// Adds or replaces a cluster registration.
    pub fn put_cluster(&mut self, cluster: Cluster) {
        let key = cluster.key();
        self.remove_cluster(&key);
        let issuer = cluster.issuer.issuer_url().to_string();
        self.issuer_by_cluster.insert(key, issuer.clone());
        self.clusters.insert(issuer, cluster);
    }

    /// Removes a cluster registration.
    pub fn remove_cluster(&mut self, key: &ResourceKey) {
        if let Some(issuer) = self.issuer_by_cluster.remove(key) {
            self.clusters.remove(&issuer);
        }
    }

    /// Adds or replaces an application principal.
    pub fn put_app(&mut self, app: AppPrincipal) {
        self.principals.insert(app.principal_id, app.client_id);
        self.apps.insert(app.client_id, app);
    }

    /// Adds a role assignment.
    pub fn put_role_assignment(&mut self, ra: &RoleAssignment) {
        self.rbac.insert(ra);
    }

    /// Removes a role assignment.
    pub fn remove_role_assignment(&mut self, ra: &RoleAssignment) {
        self.remove_role_assignment_id(&ra.principal_id, &ra.id);
    }

    /// Removes a role assignment by its principal and id.
    pub fn remove_role_assignment_id(&mut self, principal: &Uuid, id: &Uuid) {
        self.rbac.remove(principal, id);
    }

    /// Makes an identity and its credentials what the store holds now (`None`: it is gone).
    pub fn replace_identity(&mut self, key: &ResourceKey, now: Option<(Identity, Vec<FederatedCredential>)>) {
        self.remove_identity(key);
        if let Some((identity, credentials)) = now {
            self.put_identity(identity);
            for c in credentials {
                self.put_credential(key, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fic::DEFAULT_AUDIENCE;
    use crate::model::ClusterIssuer;

    fn identity(name: &str) -> Identity {
        Identity {
            subscription: Uuid::nil(),
            resource_group: "RG".into(),
            name: name.into(),
            location: "local".into(),
            tags: Default::default(),
            tenant_id: Uuid::nil(),
            client_id: Uuid::new_v4(),
            principal_id: Uuid::new_v4(),
            created: 0,
            updated: 0,
        }
    }

    fn cred(name: &str, issuer: &str) -> FederatedCredential {
        FederatedCredential {
            name: name.into(),
            issuer: issuer.into(),
            subject: Some("s".into()),
            claims_matching_expression: None,
            audiences: vec![DEFAULT_AUDIENCE.into()],
            description: None,
        }
    }

    #[test]
    fn credentials_follow_their_identity_and_issuer_refs_count() {
        let mut d = Directory::default();
        let id = identity("Id1");
        let key = id.key();
        d.put_identity(id.clone());
        d.put_credential(&key, cred("a", "https://i/"));
        d.put_credential(&key, cred("b", "https://i/"));
        d.put_credential(&key, cred("B", "https://j/")); // replaces "b" by name
        assert_eq!(d.identity_by_client(&id.client_id).unwrap().credentials.len(), 2);
        assert!(d.issuer_is_named("https://i/") && d.issuer_is_named("https://j/"));
        d.remove_credential(&key, "A");
        assert!(!d.issuer_is_named("https://i/"));
        assert!(d.principal_exists(&id.principal_id));
        d.remove_identity(&ResourceKey::new(Uuid::nil(), "rg", "ID1"));
        assert!(d.identity_by_client(&id.client_id).is_none());
        assert!(!d.issuer_is_named("https://j/"));
        assert!(!d.principal_exists(&id.principal_id));
    }

    #[test]
    fn clusters_by_issuer() {
        let mut d = Directory::default();
        let c = Cluster {
            subscription: Uuid::nil(),
            resource_group: "rg".into(),
            name: "c".into(),
            location: "local".into(),
            tags: Default::default(),
            cluster_id: Uuid::new_v4(),
            issuer: ClusterIssuer::External { issuer_url: "https://k/".into(), jwks: None },
            workload_identity: true,
            extras: Default::default(),
            created: 0,
            updated: 0,
        };
        d.put_cluster(c.clone());
        assert!(d.cluster_by_issuer("https://k/").is_some());
        let moved =
            Cluster { issuer: ClusterIssuer::External { issuer_url: "https://k2/".into(), jwks: None }, ..c.clone() };
        d.put_cluster(moved);
        assert!(d.cluster_by_issuer("https://k/").is_none());
        d.remove_cluster(&c.key());
        assert!(d.cluster_by_issuer("https://k2/").is_none());
    }
}
