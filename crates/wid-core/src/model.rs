//! The records wid keeps: resource groups, identities, federated credentials, cluster registrations,
//! application principals and role assignments. Names are case-insensitive in ARM, so each record keeps
//! the name as created (for display and ids) and lookups go through lower-case keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::fic::FederatedCredential;

/// ARM tags.
pub type Tags = BTreeMap<String, String>;

/// Lower-cases a name for use as a lookup key.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// A resource group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceGroup {
    pub subscription: Uuid,
    pub name: String,
    pub location: String,
    pub tags: Tags,
    pub created: i64,
}

/// Identifies an identity (or any resource) inside a resource group; keys are lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceKey {
    pub subscription: Uuid,
    pub resource_group: String,
    pub name: String,
}

impl ResourceKey {
    /// Builds a key from names in any casing.
    pub fn new(subscription: Uuid, resource_group: &str, name: &str) -> Self {
        Self { subscription, resource_group: name_key(resource_group), name: name_key(name) }
    }
}

/// A user-assigned managed identity: a client that can get tokens (`client_id`) and an RBAC principal
/// (`principal_id`, the `oid` in its tokens).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub subscription: Uuid,
    /// Resource group name as created.
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: Tags,
    pub tenant_id: Uuid,
    pub client_id: Uuid,
    pub principal_id: Uuid,
    pub created: i64,
    pub updated: i64,
}

impl Identity {
    /// The lookup key.
    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(self.subscription, &self.resource_group, &self.name)
    }
    /// The ARM id.
    pub fn arm_id(&self) -> String {
        crate::scope::ids::identity(&self.subscription.to_string(), &self.resource_group, &self.name)
    }
}

/// A federated identity credential stored under an identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredential {
    pub identity: ResourceKey,
    pub credential: FederatedCredential,
    pub created: i64,
    pub updated: i64,
}

/// How a registered cluster's service-account tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ClusterIssuer {
    /// wid hosts the issuer (`https://HOST/oidc/{tenant}/{cluster_id}/`) and holds its signing key.
    Hosted { issuer_url: String, kid: String },
    /// The cluster's own issuer; keys by OIDC discovery, or from an uploaded JWKS (private issuers).
    External { issuer_url: String, jwks: Option<String> },
}

impl ClusterIssuer {
    /// The issuer URL (`iss` of the cluster's tokens).
    pub fn issuer_url(&self) -> &str {
        match self {
            ClusterIssuer::Hosted { issuer_url, .. } | ClusterIssuer::External { issuer_url, .. } => issuer_url,
        }
    }
}

/// A registered cluster (`managedClusters` in ARM terms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub subscription: Uuid,
    pub resource_group: String,
    pub name: String,
    pub location: String,
    pub tags: Tags,
    pub cluster_id: Uuid,
    pub issuer: ClusterIssuer,
    pub workload_identity: bool,
    /// What wid keeps for `az aks` but does not act on (absent in exports of older versions).
    #[serde(default)]
    pub extras: ClusterExtras,
    pub created: i64,
    pub updated: i64,
}

/// What a cluster registration keeps beyond its issuer: its API server (for the kubeconfig of
/// `listClusterUserCredential`, and the token proxy's access reviews), the identities bound to it
/// (AKS identity bindings), and the ARM fields a create or update sent that wid does not interpret
/// (agent pools, identity, network profile, …), returned as sent so `az aks update` round-trips.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterExtras {
    /// The API server's URL (`https://HOST:PORT`).
    pub api_server: Option<String>,
    /// The PEM CA bundle that verifies the API server.
    pub api_server_ca: Option<String>,
    /// A JSON object: `properties` (less what wid computes), `identity`, `sku`, `kind` as last sent.
    pub arm: Option<String>,
    /// `managedClusters/{cluster}/identityBindings`, by name.
    #[serde(default)]
    pub identity_bindings: Vec<IdentityBinding>,
}

/// An identity binding: pods of the cluster whose service accounts Kubernetes RBAC allows
/// (`use-managed-identity` on `cid.wi.aks.azure.com/<client id>`) act as the identity through the
/// token proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityBinding {
    /// As created (unique per cluster, case-insensitively).
    pub name: String,
    /// The user-assigned identity bound.
    pub identity: ResourceKey,
    pub client_id: Uuid,
    pub created: i64,
    pub updated: i64,
}

impl Cluster {
    /// The lookup key.
    pub fn key(&self) -> ResourceKey {
        ResourceKey::new(self.subscription, &self.resource_group, &self.name)
    }
    /// The ARM id.
    pub fn arm_id(&self) -> String {
        crate::scope::ids::cluster(&self.subscription.to_string(), &self.resource_group, &self.name)
    }
}

/// An application principal that authenticates with a client secret (the bootstrap admin, apps).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppPrincipal {
    pub client_id: Uuid,
    pub principal_id: Uuid,
    pub display_name: String,
    /// SHA-256 of the client secret (secrets are random, so no KDF is needed).
    pub secret_hash: Vec<u8>,
    pub created: i64,
}

impl std::fmt::Debug for AppPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppPrincipal")
            .field("client_id", &self.client_id)
            .field("principal_id", &self.principal_id)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// The kind of principal a role assignment names (as ARM spells it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PrincipalType {
    User,
    Group,
    ServicePrincipal,
    ForeignGroup,
    Device,
}

impl PrincipalType {
    /// The ARM spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalType::User => "User",
            PrincipalType::Group => "Group",
            PrincipalType::ServicePrincipal => "ServicePrincipal",
            PrincipalType::ForeignGroup => "ForeignGroup",
            PrincipalType::Device => "Device",
        }
    }
    /// Parses the ARM spelling (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        [Self::User, Self::Group, Self::ServicePrincipal, Self::ForeignGroup, Self::Device]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
    }
}

/// A role assignment: `principal_id` holds `role_definition_id` at `scope` and everything below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleAssignment {
    /// The assignment's GUID (its ARM `name`).
    pub id: Uuid,
    /// The scope as given (validated by [`crate::Scope::parse`]).
    pub scope: String,
    pub role_definition_id: Uuid,
    pub principal_id: Uuid,
    pub principal_type: PrincipalType,
    pub description: Option<String>,
    pub created: i64,
    pub updated: i64,
    /// Principal id of whoever created it.
    pub created_by: Option<Uuid>,
}

/// A key vault (`Microsoft.KeyVault/vaults`). Vault names are DNS labels, unique in the tenant
/// (case-insensitive); a soft-deleted vault keeps its name reserved until purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vault {
    pub subscription: Uuid,
    pub resource_group: String,
    /// Name as created (lookups use its lower-case form).
    pub name: String,
    pub location: String,
    pub tags: Tags,
    /// Internal id; binds sealed blobs (data key, secret values) to this vault.
    pub vault_id: Uuid,
    pub tenant_id: Uuid,
    /// `standard` or `premium`.
    pub sku: String,
    pub enable_rbac_authorization: bool,
    pub enable_purge_protection: bool,
    /// 7–90 days.
    pub soft_delete_retention_days: i64,
    pub public_network_access: String,
    /// The vault's data key, sealed with the master key (AAD `vault-key:{vault_id}`).
    pub sealed_data_key: Vec<u8>,
    pub created: i64,
    pub updated: i64,
    /// Set when the vault is soft-deleted.
    pub deleted: Option<i64>,
}

impl Vault {
    /// The ARM id (also the RBAC scope of the vault).
    pub fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.KeyVault/vaults/{}",
            self.subscription, self.resource_group, self.name
        )
    }
    /// When a soft-deleted vault is purged automatically.
    pub fn scheduled_purge(&self) -> Option<i64> {
        self.deleted.map(|d| d + self.soft_delete_retention_days * 86400)
    }
}

/// One version of a secret. The value is sealed with the vault's data key (AAD
/// `secret:{vault_id}/{name key}/{version}`), so the store never sees plaintext.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersion {
    /// The vault's name key (lower-case).
    pub vault: String,
    /// Secret name as first created (lookups are case-insensitive).
    pub name: String,
    /// 32 lower-case hex digits.
    pub version: String,
    pub sealed_value: Vec<u8>,
    pub content_type: Option<String>,
    pub tags: Tags,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

impl std::fmt::Debug for SecretVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretVersion")
            .field("vault", &self.vault)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A soft-deleted secret: every version is kept until it is recovered or purged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedSecret {
    /// The vault's name key.
    pub vault: String,
    /// Secret name as created.
    pub name: String,
    pub deleted: i64,
    pub scheduled_purge: i64,
}
