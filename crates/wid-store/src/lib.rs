//! wid storage: the repository trait every backend implements, and the embedded SQLite backend.
//!
//! The trait is synchronous on purpose: SQLite is synchronous, the hot paths (token exchange, secret
//! read, RBAC checks) never reach storage — they read in-memory indexes that writers update — and
//! services call the store from `spawn_blocking`. Secret material arrives here already sealed by the
//! caller (see `wid-crypto::envelope`); the store never sees a plaintext key or secret.
//!
//! Names are case-insensitive: records keep the casing they were created with and are found by
//! lower-case keys (`wid_core::model::ResourceKey`).

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod sqlite;

pub use sqlite::SqliteStore;

use uuid::Uuid;
use wid_core::model::{
    AppPrincipal, Cluster, DeletedSecret, Identity, ResourceGroup, ResourceKey, RoleAssignment, SecretVersion,
    StoredCredential, Vault,
};

/// Result of a store call.
pub type Result<T> = std::result::Result<T, StoreError>;

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was violated (e.g. the same role assignment twice); the message says which.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The parent of a record does not exist (e.g. a credential for a deleted identity).
    #[error("missing parent: {0}")]
    MissingParent(String),
    /// The backend failed (IO, full disk, read-only file system, locked database…).
    #[error("storage backend error: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}

/// Whether a put created a record or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}

/// A signing key, sealed with the master key (AAD = `signing-key:{kid}`).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Stable key id (published as `kid`).
    pub kid: String,
    /// `sts` for access tokens, `cluster:{cluster-id}` for a hosted cluster issuer.
    pub purpose: String,
    /// PKCS#8 DER sealed by the caller.
    pub sealed_pkcs8: Vec<u8>,
    pub created: i64,
    /// When it stopped being the active signer (still published until `expires`).
    pub retired: Option<i64>,
    /// When it may leave the JWKS (every token it signed has expired).
    pub expires: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("purpose", &self.purpose)
            .field("created", &self.created)
            .field("retired", &self.retired)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Everything the in-memory indexes are built from at start.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub identities: Vec<Identity>,
    pub credentials: Vec<StoredCredential>,
    pub clusters: Vec<Cluster>,
    pub apps: Vec<AppPrincipal>,
    pub role_assignments: Vec<RoleAssignment>,
}

/// What deleting a resource group removed (so caches can drop it too).
#[derive(Debug, Clone, Default)]
pub struct Removed {
    pub identities: Vec<Identity>,
    pub clusters: Vec<Cluster>,
    pub role_assignments: Vec<RoleAssignment>,
    /// Vaults in the group; they are soft-deleted (kept with `deleted` set), not removed.
    pub vaults: Vec<Vault>,
}

/// What an expiry sweep removed (so caches can drop it too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// Soft-deleted secrets purged on their own schedule (not those inside purged vaults).
    pub secrets: usize,
    pub vaults: Vec<Vault>,
    /// Role assignments at or below the purged vaults.
    pub role_assignments: Vec<RoleAssignment>,
}

/// One page of a listing: the items and, if more follow, the cursor to pass to get the next page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Opaque to callers: pass it back as `after`.
    pub next: Option<String>,
}

/// The repository every backend implements. Every write is durable when the call returns.
pub trait Store: Send + Sync + 'static {
    /// A metadata value (tenant id, subscription id, sealed admin secret…).
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a metadata value only if absent; returns false if one was already there.
    fn meta_insert(&self, key: &str, value: &[u8]) -> Result<bool>;
    /// Sets a metadata value.
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()>;

    /// All signing keys (active, retired and not yet expired).
    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>>;
    /// Inserts or replaces a signing key by `kid`.
    fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<()>;
    /// Deletes a signing key.
    fn delete_signing_key(&self, kid: &str) -> Result<()>;

    /// Creates or replaces a resource group.
    fn put_resource_group(&self, rg: &ResourceGroup) -> Result<Written>;
    /// A resource group by name (any casing).
    fn resource_group(&self, subscription: Uuid, name: &str) -> Result<Option<ResourceGroup>>;
    /// The resource groups of a subscription, ordered by name key.
    fn resource_groups(&self, subscription: Uuid) -> Result<Vec<ResourceGroup>>;
    /// Deletes a group and everything in it (identities with their credentials, clusters, and role
    /// assignments at or below the group's scope) in one transaction. `None` if there was no group.
    fn delete_resource_group(&self, subscription: Uuid, name: &str) -> Result<Option<Removed>>;

    /// Creates or replaces an identity (its group must exist → `MissingParent`).
    fn put_identity(&self, identity: &Identity) -> Result<Written>;
    /// An identity by key.
    fn identity(&self, key: &ResourceKey) -> Result<Option<Identity>>;
    /// Identities of a subscription, optionally of one group, ordered by (group key, name key).
    fn identities(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Identity>>;
    /// Deletes an identity and its credentials.
    fn delete_identity(&self, key: &ResourceKey) -> Result<Option<Identity>>;

    /// Creates or replaces a credential by (identity, name key) (identity must exist → `MissingParent`).
    fn put_credential(&self, cred: &StoredCredential) -> Result<Written>;
    /// The credentials of an identity, ordered by name key.
    fn credentials(&self, identity: &ResourceKey) -> Result<Vec<StoredCredential>>;
    /// Deletes a credential.
    fn delete_credential(&self, identity: &ResourceKey, name: &str) -> Result<Option<StoredCredential>>;

    /// Creates or replaces a cluster registration (group must exist → `MissingParent`).
    fn put_cluster(&self, cluster: &Cluster) -> Result<Written>;
    /// A cluster by key.
    fn cluster(&self, key: &ResourceKey) -> Result<Option<Cluster>>;
    /// Clusters of a subscription, optionally of one group, ordered by (group key, name key).
    fn clusters(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Cluster>>;
    /// Deletes a cluster registration.
    fn delete_cluster(&self, key: &ResourceKey) -> Result<Option<Cluster>>;

    /// Creates or replaces an application principal by client id.
    fn put_app(&self, app: &AppPrincipal) -> Result<()>;

    /// Inserts a role assignment; `Conflict` if its id exists or the same (principal, role, scope key)
    /// is already assigned.
    fn insert_role_assignment(&self, ra: &RoleAssignment) -> Result<()>;
    /// A role assignment by id.
    fn role_assignment(&self, id: Uuid) -> Result<Option<RoleAssignment>>;
    /// Deletes a role assignment.
    fn delete_role_assignment(&self, id: Uuid) -> Result<Option<RoleAssignment>>;
    /// Role assignments, of one principal or all, ordered by (scope key, id). For management
    /// listings; access checks use the in-memory index.
    fn role_assignments(&self, principal: Option<Uuid>) -> Result<Vec<RoleAssignment>>;

    /// Everything the in-memory indexes need, read in one consistent transaction.
    fn snapshot(&self) -> Result<Snapshot>;

    // ---- Key Vault ------------------------------------------------------------------------------

    /// Creates or replaces a vault by name key (group must exist → `MissingParent`; a vault with that
    /// name in another group or subscription, or soft-deleted → `Conflict`).
    fn put_vault(&self, vault: &Vault) -> Result<Written>;
    /// A vault by name (any casing), active or soft-deleted.
    fn vault(&self, name: &str) -> Result<Option<Vault>>;
    /// Active (not soft-deleted) vaults of a subscription, optionally of one group, ordered by name key.
    fn vaults(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Vault>>;
    /// Soft-deleted vaults of a subscription, ordered by name key.
    fn deleted_vaults(&self, subscription: Uuid) -> Result<Vec<Vault>>;
    /// Removes a vault with all its secrets (active and deleted) for good.
    fn purge_vault(&self, name: &str) -> Result<Option<Vault>>;

    /// Adds a version. `Conflict` if the version id exists in the vault, or if the secret name is
    /// soft-deleted (the name is reserved until it is recovered or purged). Versions of one secret
    /// share its name key; the first version fixes the name's casing.
    fn insert_secret_version(&self, version: &SecretVersion) -> Result<()>;
    /// Replaces the attributes (content type, tags, enabled, nbf, exp, updated) of an existing
    /// version; the sealed value is never changed. `false` if there is no such active version.
    fn update_secret_version(&self, version: &SecretVersion) -> Result<bool>;
    /// A version of an active secret; `version = None` is the latest (most recently inserted).
    fn secret_version(&self, vault: &str, name: &str, version: Option<&str>) -> Result<Option<SecretVersion>>;
    /// The latest version of each active secret of a vault, ordered by name key, at most `limit`,
    /// starting after the cursor `after`.
    fn secrets(&self, vault: &str, after: Option<&str>, limit: usize) -> Result<Page<SecretVersion>>;
    /// The versions of an active secret, oldest first, at most `limit`, starting after `after`.
    fn secret_versions(
        &self,
        vault: &str,
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SecretVersion>>;
    /// Soft-deletes a secret (all versions). `None` if no active secret has that name.
    fn delete_secret(
        &self,
        vault: &str,
        name: &str,
        deleted: i64,
        scheduled_purge: i64,
    ) -> Result<Option<DeletedSecret>>;
    /// A soft-deleted secret with its latest version.
    fn deleted_secret(&self, vault: &str, name: &str) -> Result<Option<(DeletedSecret, SecretVersion)>>;
    /// Soft-deleted secrets of a vault with their latest versions, ordered by name key, paged.
    fn deleted_secrets(
        &self,
        vault: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<(DeletedSecret, SecretVersion)>>;
    /// Makes a soft-deleted secret active again with all its versions; returns its latest version.
    fn recover_secret(&self, vault: &str, name: &str) -> Result<Option<SecretVersion>>;
    /// Removes a soft-deleted secret for good. `false` if there was none.
    fn purge_secret(&self, vault: &str, name: &str) -> Result<bool>;
    /// Purges every soft-deleted secret whose scheduled purge time is at or before `now`, and
    /// every soft-deleted vault likewise (with its secrets and the role assignments at or below it).
    fn purge_expired(&self, now: i64) -> Result<Purged>;
    /// Inserts all versions of a secret at once (a restore): `Conflict` if the name exists, active or
    /// soft-deleted.
    fn restore_secret(&self, versions: &[SecretVersion]) -> Result<()>;
}
