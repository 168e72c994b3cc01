//! Azure RBAC: role definitions (the built-ins with their real GUIDs) and evaluation of a principal's
//! role assignments against an action at a scope.
//!
//! Effective permission = union over the principal's assignments at the scope or any ancestor; a role
//! allows an action if some permission block matches it in `actions` (`dataActions`) and not in
//! `notActions` (`notDataActions`). Matching is case-insensitive with `*` wildcards. The index is keyed by
//! principal, so a check costs O(assignments of that principal), never O(all assignments).

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::glob::glob_ignore_case;
use crate::model::RoleAssignment;
use crate::scope::Scope;

/// One permission block of a role definition.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

/// A role definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleDefinition {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
    pub built_in: bool,
    pub assignable_scopes: Vec<String>,
}

/// An operation to authorize: a control-plane action (ARM) or a data action (Key Vault data plane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    Control(&'a str),
    Data(&'a str),
}

impl Action<'_> {
    /// The action string.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Control(a) | Action::Data(a) => a,
        }
    }
}

impl RoleDefinition {
    /// True if this role grants `action`.
    pub fn allows(&self, action: Action<'_>) -> bool {
        let any = |patterns: &[String], a: &str| patterns.iter().any(|p| glob_ignore_case(p.as_bytes(), a.as_bytes()));
        self.permissions.iter().any(|p| match action {
            Action::Control(a) => any(&p.actions, a) && !any(&p.not_actions, a),
            Action::Data(a) => any(&p.data_actions, a) && !any(&p.not_data_actions, a),
        })
    }
}

fn perm(actions: &[&str], not_actions: &[&str], data_actions: &[&str]) -> Permission {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
    Permission {
        actions: v(actions),
        not_actions: v(not_actions),
        data_actions: v(data_actions),
        not_data_actions: vec![],
    }
}

fn builtin(id: &str, name: &str, description: &str, p: Permission) -> RoleDefinition {
    RoleDefinition {
        id: Uuid::parse_str(id).unwrap_or_default(),
        name: name.into(),
        description: description.into(),
        permissions: vec![p],
        built_in: true,
        assignable_scopes: vec!["/".into()],
    }
}

/// Well-known role GUIDs.
pub mod roles {
    pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
    pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
    pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
    pub const MANAGED_IDENTITY_CONTRIBUTOR: &str = "e40ec5ca-96e0-45a2-b4ff-59039f2c2b59";
    pub const MANAGED_IDENTITY_OPERATOR: &str = "f1a07417-d97a-45cb-824c-7a7467783830";
    pub const KEY_VAULT_ADMINISTRATOR: &str = "00482a5a-887f-4fb3-b363-3b7fe8e74483";
    pub const KEY_VAULT_SECRETS_OFFICER: &str = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7";
    pub const KEY_VAULT_SECRETS_USER: &str = "4633458b-17de-408a-b874-0445c86b69e6";
    pub const KEY_VAULT_READER: &str = "21090545-7ca7-4776-b22c-e363652d74d2";
    pub const KEY_VAULT_DATA_ACCESS_ADMINISTRATOR: &str = "8b54135c-b56d-4d72-a534-26097cfdc8d8";
}

/// The built-in roles wid knows, with Azure's GUIDs and permissions.
pub fn builtin_roles() -> Vec<RoleDefinition> {
    let kv_actions = [
        "Microsoft.Authorization/*/read",
        "Microsoft.Insights/alertRules/*",
        "Microsoft.Resources/deployments/*",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.Support/*",
        "Microsoft.KeyVault/checkNameAvailability/read",
        "Microsoft.KeyVault/deletedVaults/read",
        "Microsoft.KeyVault/locations/*/read",
        "Microsoft.KeyVault/vaults/*/read",
        "Microsoft.KeyVault/operations/read",
    ];
    let mi_common = [
        "Microsoft.Authorization/*/read",
        "Microsoft.Insights/alertRules/*",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.Resources/deployments/*",
        "Microsoft.Support/*",
    ];
    let mi_contributor: Vec<&str> = [
        "Microsoft.ManagedIdentity/userAssignedIdentities/read",
        "Microsoft.ManagedIdentity/userAssignedIdentities/write",
        "Microsoft.ManagedIdentity/userAssignedIdentities/delete",
        "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/read",
        "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/write",
        "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials/delete",
        "Microsoft.ManagedIdentity/userAssignedIdentities/revokeTokens/action",
    ]
    .into_iter()
    .chain(mi_common)
    .collect();
    let mi_operator: Vec<&str> = [
        "Microsoft.ManagedIdentity/userAssignedIdentities/*/read",
        "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
    ]
    .into_iter()
    .chain(mi_common)
    .collect();
    vec![
        builtin(
            roles::OWNER,
            "Owner",
            "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
            perm(&["*"], &[], &[]),
        ),
        builtin(
            roles::CONTRIBUTOR,
            "Contributor",
            "Grants full access to manage all resources, but does not allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share image galleries.",
            perm(
                &["*"],
                &[
                    "Microsoft.Authorization/*/Delete",
                    "Microsoft.Authorization/*/Write",
                    "Microsoft.Authorization/elevateAccess/Action",
                    "Microsoft.Blueprint/blueprintAssignments/write",
                    "Microsoft.Blueprint/blueprintAssignments/delete",
                    "Microsoft.Compute/galleries/share/action",
                    "Microsoft.Purview/consents/write",
                    "Microsoft.Purview/consents/delete",
                    "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
                    "Microsoft.Subscription/cancel/action",
                    "Microsoft.Subscription/enable/action",
                ],
                &[],
            ),
        ),
        builtin(
            roles::READER,
            "Reader",
            "View all resources, but does not allow you to make any changes.",
            perm(&["*/read"], &[], &[]),
        ),
        builtin(
            roles::USER_ACCESS_ADMINISTRATOR,
            "User Access Administrator",
            "Lets you manage user access to Azure resources.",
            perm(&["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"], &[], &[]),
        ),
        builtin(
            roles::MANAGED_IDENTITY_CONTRIBUTOR,
            "Managed Identity Contributor",
            "Create, Read, Update, and Delete User Assigned Identity",
            perm(&mi_contributor, &[], &[]),
        ),
        builtin(
            roles::MANAGED_IDENTITY_OPERATOR,
            "Managed Identity Operator",
            "Read and Assign User Assigned Identity",
            perm(&mi_operator, &[], &[]),
        ),
        builtin(
            roles::KEY_VAULT_ADMINISTRATOR,
            "Key Vault Administrator",
            "Perform all data plane operations on a key vault and all objects in it, including certificates, keys, and secrets. Cannot manage key vault resources or manage role assignments. Only works for key vaults that use the 'Azure role-based access control' permission model.",
            perm(&kv_actions, &[], &["Microsoft.KeyVault/vaults/*"]),
        ),
        builtin(
            roles::KEY_VAULT_SECRETS_OFFICER,
            "Key Vault Secrets Officer",
            "Perform any action on the secrets of a key vault, except manage permissions. Only works for key vaults that use the 'Azure role-based access control' permission model.",
            perm(&kv_actions, &[], &["Microsoft.KeyVault/vaults/secrets/*"]),
        ),
        builtin(
            roles::KEY_VAULT_SECRETS_USER,
            "Key Vault Secrets User",
            "Read secret contents. Only works for key vaults that use the 'Azure role-based access control' permission model.",
            perm(
                &[],
                &[],
                &[
                    "Microsoft.KeyVault/vaults/secrets/getSecret/action",
                    "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
                ],
            ),
        ),
        builtin(
            roles::KEY_VAULT_READER,
            "Key Vault Reader",
            "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read sensitive values such as secret contents or key material. Only works for key vaults that use the 'Azure role-based access control' permission model.",
            perm(
                &kv_actions,
                &[],
                &["Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/secrets/readMetadata/action"],
            ),
        ),
        builtin(
            roles::KEY_VAULT_DATA_ACCESS_ADMINISTRATOR,
            "Key Vault Data Access Administrator",
            "Manage access to Azure Key Vault by adding or removing role assignments for the Key Vault Administrator, Key Vault Certificates Officer, Key Vault Crypto Officer, Key Vault Crypto Service Encryption User, Key Vault Crypto User, Key Vault Reader, Key Vault Secrets Officer, or Key Vault Secrets User roles. Includes an ABAC condition to constrain role assignments.",
            perm(
                &[
                    "Microsoft.Authorization/roleAssignments/write",
                    "Microsoft.Authorization/roleAssignments/delete",
                    "Microsoft.Authorization/*/read",
                    "Microsoft.Resources/deployments/*",
                    "Microsoft.Resources/subscriptions/resourceGroups/read",
                    "Microsoft.Management/managementGroups/read",
                    "Microsoft.Resources/subscriptions/read",
                    "Microsoft.Support/*",
                    "Microsoft.KeyVault/vaults/*/read",
                ],
                &[],
                &[],
            ),
        ),
    ]
}

/// The outcome of an authorization check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by this assignment of this role.
    Allowed { assignment: Uuid, role: String },
    /// No assignment of the principal at the scope or above grants the action.
    Denied,
}

impl Decision {
    /// True when allowed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }
}

#[derive(Debug, Clone)]
struct Grant {
    assignment: Uuid,
    /// Interned in [`RbacIndex::scopes`]: many assignments share a scope (a vault, a resource group).
    scope_key: Arc<str>,
    role: Uuid,
}

/// Role definitions and assignments indexed for checks.
#[derive(Debug, Clone, Default)]
pub struct RbacIndex {
    roles: HashMap<Uuid, Arc<RoleDefinition>>,
    by_principal: HashMap<Uuid, Vec<Grant>>,
    /// Each scope key some grant names, with the number of grants naming it; an entry goes with its
    /// last grant, so the map never outgrows the assignments.
    scopes: HashMap<Arc<str>, usize>,
}

impl RbacIndex {
    /// An index with the built-in roles and no assignments.
    pub fn with_builtin_roles() -> Self {
        let mut idx = Self::default();
        for r in builtin_roles() {
            idx.roles.insert(r.id, Arc::new(r));
        }
        idx
    }

    /// All role definitions.
    pub fn roles(&self) -> impl Iterator<Item = &RoleDefinition> {
        self.roles.values().map(|r| r.as_ref())
    }

    /// A role definition by GUID.
    pub fn role(&self, id: &Uuid) -> Option<&RoleDefinition> {
        self.roles.get(id).map(|r| r.as_ref())
    }

    /// Adds (or replaces, by id) an assignment; an assignment with an invalid scope is ignored.
    pub fn insert(&mut self, ra: &RoleAssignment) {
        self.remove(&ra.principal_id, &ra.id);
        let Ok(scope) = Scope::parse(&ra.scope) else { return };
        let scope_key = self.intern_scope(scope.key());
        self.by_principal.entry(ra.principal_id).or_default().push(Grant {
            assignment: ra.id,
            scope_key,
            role: ra.role_definition_id,
        });
    }

    /// Removes an assignment.
    pub fn remove(&mut self, principal: &Uuid, assignment: &Uuid) {
        let Some(grants) = self.by_principal.get_mut(principal) else { return };
        let Some(pos) = grants.iter().position(|g| g.assignment == *assignment) else { return };
        let removed = grants.remove(pos);
        if grants.is_empty() {
            self.by_principal.remove(principal);
        }
        self.release_scope(&removed.scope_key);
    }

    /// Releases memory the maps no longer need (after a bulk load).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.by_principal.values_mut().for_each(Vec::shrink_to_fit);
        self.by_principal.shrink_to_fit();
        self.scopes.shrink_to_fit();
    }

    /// The shared copy of `key`, counting one more grant naming it.
    fn intern_scope(&mut self, key: &str) -> Arc<str> {
        let shared = self.scopes.get_key_value(key).map_or_else(|| Arc::from(key), |(k, _)| k.clone());
        *self.scopes.entry(shared.clone()).or_insert(0) += 1;
        shared
    }

    /// Counts one grant naming `key` fewer, forgetting the key with its last grant.
    fn release_scope(&mut self, key: &str) {
        if let Some(count) = self.scopes.get_mut(key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.scopes.remove(key);
            }
        }
    }

    /// True if `principal` holds any role at `scope`, above it or inside it (how Azure decides which
    /// subscriptions to list: a role on one vault shows its subscription).
    pub fn has_role_touching(&self, principal: &Uuid, scope: &Scope) -> bool {
        let Some(grants) = self.by_principal.get(principal) else { return false };
        grants.iter().any(|g| {
            let key: &str = &g.scope_key;
            scope.ancestor_keys().any(|a| a == key)
                || (key.starts_with(scope.key()) && key.as_bytes().get(scope.key().len()) == Some(&b'/'))
        })
    }

    /// Decides whether `principal` may perform `action` at `scope`.
    pub fn check(&self, principal: &Uuid, action: Action<'_>, scope: &Scope) -> Decision {
        let Some(grants) = self.by_principal.get(principal) else { return Decision::Denied };
        for ancestor in scope.ancestor_keys() {
            for g in grants.iter().filter(|g| *g.scope_key == *ancestor) {
                if let Some(role) = self.roles.get(&g.role).filter(|r| r.allows(action)) {
                    return Decision::Allowed { assignment: g.assignment, role: role.name.clone() };
                }
            }
        }
        Decision::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PrincipalType;

    fn assign(principal: Uuid, scope: &str, role: &str) -> RoleAssignment {
        RoleAssignment {
            id: Uuid::new_v4(),
            scope: scope.into(),
            role_definition_id: Uuid::parse_str(role).unwrap(),
            principal_id: principal,
            principal_type: PrincipalType::ServicePrincipal,
            description: None,
            created: 0,
            updated: 0,
            created_by: None,
        }
    }

    const VAULT: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v";

    #[test]
    fn builtins_have_unique_ids_and_names() {
        let roles = builtin_roles();
        let ids: std::collections::HashSet<_> = roles.iter().map(|r| r.id).collect();
        assert_eq!(ids.len(), roles.len());
        assert!(roles.iter().all(|r| !r.id.is_nil()));
    }

    #[test]
    fn inheritance_and_siblings() {
        let p = Uuid::new_v4();
        let mut idx = RbacIndex::with_builtin_roles();
        idx.insert(&assign(p, VAULT, roles::KEY_VAULT_SECRETS_USER));
        let get = Action::Data("Microsoft.KeyVault/vaults/secrets/getSecret/action");
        let secret = Scope::parse(&format!("{VAULT}/secrets/db")).unwrap();
        assert!(idx.check(&p, get, &secret).is_allowed());
        let other_vault =
            Scope::parse("/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v2/secrets/db")
                .unwrap();
        assert_eq!(idx.check(&p, get, &other_vault), Decision::Denied);
        assert_eq!(
            idx.check(&p, Action::Data("Microsoft.KeyVault/vaults/secrets/setSecret/action"), &secret),
            Decision::Denied
        );
        assert_eq!(idx.check(&Uuid::new_v4(), get, &secret), Decision::Denied);
    }

    #[test]
    fn a_role_touches_the_scopes_above_and_below_it() {
        let (p, q) = (Uuid::new_v4(), Uuid::new_v4());
        let mut idx = RbacIndex::with_builtin_roles();
        idx.insert(&assign(p, VAULT, roles::KEY_VAULT_SECRETS_USER));
        idx.insert(&assign(q, "/", roles::READER));
        let scope = |s: &str| Scope::parse(s).unwrap();
        assert!(idx.has_role_touching(&p, &scope("/subscriptions/S")));
        assert!(idx.has_role_touching(&p, &scope(&format!("{VAULT}/secrets/x"))));
        assert!(!idx.has_role_touching(&p, &scope("/subscriptions/s2")));
        assert!(!idx.has_role_touching(&p, &scope("/subscriptions/s/resourceGroups/rg2")));
        assert!(!idx.has_role_touching(&p, &scope("/subscriptions/s/resourceGroups/r")));
        assert!(idx.has_role_touching(&q, &scope("/subscriptions/any")));
        assert!(!idx.has_role_touching(&Uuid::new_v4(), &scope("/subscriptions/s")));
    }

    #[test]
    fn not_actions_and_case() {
        let p = Uuid::new_v4();
        let mut idx = RbacIndex::with_builtin_roles();
        let ra = assign(p, "/subscriptions/S", roles::CONTRIBUTOR);
        idx.insert(&ra);
        let rg = Scope::parse("/subscriptions/s/resourcegroups/x").unwrap();
        assert!(
            idx.check(&p, Action::Control("Microsoft.ManagedIdentity/userAssignedIdentities/write"), &rg).is_allowed()
        );
        assert_eq!(
            idx.check(&p, Action::Control("microsoft.authorization/roleAssignments/write"), &rg),
            Decision::Denied
        );
        // Control-plane roles grant no data actions.
        assert_eq!(
            idx.check(&p, Action::Data("Microsoft.KeyVault/vaults/secrets/getSecret/action"), &rg),
            Decision::Denied
        );
        idx.remove(&p, &ra.id);
        assert_eq!(
            idx.check(&p, Action::Control("Microsoft.Resources/subscriptions/resourceGroups/read"), &rg),
            Decision::Denied
        );
    }

    #[test]
    fn scope_keys_are_shared_and_go_with_their_last_grant() {
        let (p, q) = (Uuid::new_v4(), Uuid::new_v4());
        let mut idx = RbacIndex::with_builtin_roles();
        let a = assign(p, VAULT, roles::KEY_VAULT_SECRETS_USER);
        let b = assign(q, &VAULT.to_uppercase(), roles::KEY_VAULT_READER);
        let c = assign(q, "/subscriptions/s", roles::READER);
        for ra in [&a, &b, &c] {
            idx.insert(ra);
        }
        idx.insert(&a); // replacing an assignment does not count its scope twice
        assert_eq!(idx.scopes.len(), 2);
        let key = Scope::parse(VAULT).unwrap().key().to_string();
        assert_eq!(idx.scopes.get(key.as_str()), Some(&2));
        let shared = |i: &RbacIndex, who: &Uuid| i.by_principal[who].iter().find(|g| *g.scope_key == *key).cloned();
        assert!(Arc::ptr_eq(&shared(&idx, &p).unwrap().scope_key, &shared(&idx, &q).unwrap().scope_key));
        idx.remove(&p, &a.id);
        idx.remove(&p, &a.id); // removing twice releases once
        assert_eq!(idx.scopes.get(key.as_str()), Some(&1));
        idx.remove(&q, &b.id);
        assert!(!idx.scopes.contains_key(key.as_str()));
        assert_eq!(idx.scopes.len(), 1);
        let get = Action::Data("Microsoft.KeyVault/vaults/secrets/getSecret/action");
        let secret = Scope::parse(&format!("{VAULT}/secrets/db")).unwrap();
        assert_eq!(idx.check(&q, get, &secret), Decision::Denied);
        idx.remove(&q, &c.id);
        assert!(idx.scopes.is_empty() && idx.by_principal.is_empty());
    }

    #[test]
    fn owner_at_root_and_reader() {
        let p = Uuid::new_v4();
        let mut idx = RbacIndex::with_builtin_roles();
        idx.insert(&assign(p, "/", roles::READER));
        let rg = Scope::parse("/subscriptions/s/resourceGroups/x").unwrap();
        assert!(
            idx.check(&p, Action::Control("Microsoft.Resources/subscriptions/resourceGroups/read"), &rg).is_allowed()
        );
        assert_eq!(
            idx.check(&p, Action::Control("Microsoft.Resources/subscriptions/resourceGroups/write"), &rg),
            Decision::Denied
        );
        idx.insert(&assign(p, "/", roles::OWNER));
        assert!(idx.check(&p, Action::Control("Microsoft.Authorization/roleAssignments/write"), &rg).is_allowed());
    }
}
