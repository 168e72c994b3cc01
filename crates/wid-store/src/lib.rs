//! wid storage: the repository trait every backend implements, and the embedded SQLite backend.
//!
//! The trait is synchronous on purpose: SQLite is synchronous, the hot paths (token exchange, secret
//! read, RBAC checks) never reach storage — they read in-memory indexes that writers update — and
//! services call the store from `spawn_blocking`. Secret material arrives here already sealed by the
//! caller (see `wid-crypto::envelope`); the store never sees a plaintext key or secret.
//!
//! Names are case-insensitive: records keep the casing they were created with and are found by
//! lower-case keys (`wid_core::model::ResourceKey`).

mod postgres;
mod rows;
mod sqlite;

pub use postgres::{PostgresConfig, PostgresStore};
pub use sqlite::SqliteStore;

use uuid::Uuid;
use wid_core::model::{
    AppPrincipal, Cluster, DeletedSecret, Identity, ResourceGroup, ResourceKey, RoleAssignment, SecretVersion,
    StoredCredential, Vault,
};

/// The current Unix time, for change-log rows (the trait's writes take no clock).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

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
    /// A named lock is held by another writer (in this process or another replica).
    #[error("busy: {0}")]
    Busy(String),
}

/// Whether a put created a record or replaced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Created,
    Updated,
}

/// A signing key, sealed with the master key (AAD = `signing-key:{kid}`).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// The newest change-log entry the snapshot includes: follow the log from here.
    pub change_head: i64,
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

/// A record the in-memory indexes hold changed: replicas reload it (see [`Store::changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Changed {
    /// An identity or any of its federated credentials.
    Identity(ResourceKey),
    Cluster(ResourceKey),
    /// An application principal, by client id.
    App(Uuid),
    RoleAssignment {
        id: Uuid,
        principal: Uuid,
    },
    /// The signing keys of a purpose (`sts`, `cluster:{id}`).
    SigningKeys(String),
}

impl Changed {
    /// The `(kind, key)` columns of a change-log row; every backend uses this encoding.
    pub fn encode(&self) -> (&'static str, String) {
        let rk = |k: &ResourceKey| format!("{}/{}/{}", k.subscription, k.resource_group, k.name);
        match self {
            Changed::Identity(k) => ("identity", rk(k)),
            Changed::Cluster(k) => ("cluster", rk(k)),
            Changed::App(client) => ("app", client.to_string()),
            Changed::RoleAssignment { id, principal } => ("role_assignment", format!("{id}/{principal}")),
            Changed::SigningKeys(purpose) => ("signing_keys", purpose.clone()),
        }
    }

    /// Decodes a change-log row; `None` for a kind or key this release does not know.
    pub fn decode(kind: &str, key: &str) -> Option<Changed> {
        let rk = |key: &str| {
            let mut parts = key.splitn(3, '/');
            let sub = Uuid::parse_str(parts.next()?).ok()?;
            let (rg, name) = (parts.next()?, parts.next()?);
            Some(ResourceKey { subscription: sub, resource_group: rg.to_string(), name: name.to_string() })
        };
        match kind {
            "identity" => rk(key).map(Changed::Identity),
            "cluster" => rk(key).map(Changed::Cluster),
            "app" => Uuid::parse_str(key).ok().map(Changed::App),
            "role_assignment" => {
                let (id, principal) = key.split_once('/')?;
                Some(Changed::RoleAssignment {
                    id: Uuid::parse_str(id).ok()?,
                    principal: Uuid::parse_str(principal).ok()?,
                })
            }
            "signing_keys" => Some(Changed::SigningKeys(key.to_string())),
            _ => None,
        }
    }
}

/// Entries of the change log after a sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeBatch {
    /// `(seq, what)`, oldest first.
    pub changes: Vec<(i64, Changed)>,
    /// The log was pruned past the requested point: rebuild from a [`Store::snapshot`] instead.
    pub resync: bool,
}

/// Holds a named lock until dropped (see [`Store::lock`]).
pub struct LockGuard(#[allow(dead_code)] Box<dyn Send>);

impl LockGuard {
    /// Wraps whatever releases the lock when it drops.
    pub fn new(release: impl Send + 'static) -> Self {
        Self(Box::new(release))
    }
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LockGuard")
    }
}

/// One record of an export: everything a store holds, secret material still sealed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "record", rename_all = "snake_case")]
pub enum Record {
    Meta {
        key: String,
        value: Vec<u8>,
    },
    SigningKey(SigningKeyRecord),
    ResourceGroup(ResourceGroup),
    Identity(Identity),
    Credential(StoredCredential),
    Cluster(Cluster),
    App(AppPrincipal),
    RoleAssignment(RoleAssignment),
    Vault(Vault),
    /// Versions come in insertion order, so the latest of a secret stays the latest.
    SecretVersion(SecretVersion),
    DeletedSecret(DeletedSecret),
}

impl Record {
    /// What kind of record this is, in plural words (for summaries such as an export's).
    pub fn kind(&self) -> &'static str {
        match self {
            Record::Meta { .. } => "metadata",
            Record::SigningKey(_) => "signing keys",
            Record::ResourceGroup(_) => "resource groups",
            Record::Identity(_) => "identities",
            Record::Credential(_) => "federated credentials",
            Record::Cluster(_) => "clusters",
            Record::App(_) => "applications",
            Record::RoleAssignment(_) => "role assignments",
            Record::Vault(_) => "vaults",
            Record::SecretVersion(_) => "secret versions",
            Record::DeletedSecret(_) => "deleted secrets",
        }
    }
}

/// The repository every backend implements. Every write is durable when the call returns.
pub trait Store: Send + Sync + 'static {
    /// A metadata value (tenant id, subscription id, sealed admin secret…).
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets a metadata value only if absent; returns false if one was already there.
    fn meta_insert(&self, key: &str, value: &[u8]) -> Result<bool>;
    /// Sets a metadata value.
    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()>;

    /// All signing keys (active, retired and not yet expired), oldest first (by `created`, then `kid`).
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
    /// One credential of an identity by name (case-insensitively).
    fn credential(&self, identity: &ResourceKey, name: &str) -> Result<Option<StoredCredential>>;
    /// How many credentials an identity has.
    fn credential_count(&self, identity: &ResourceKey) -> Result<usize>;
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
    /// An application principal by client id.
    fn app(&self, client_id: Uuid) -> Result<Option<AppPrincipal>>;

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

    // ---- replicas, locks, export ------------------------------------------------------------------

    /// Change-log entries after `seq` (at most `limit`), oldest first. Every write to a record the
    /// in-memory indexes hold appends one in the same transaction, in commit order, so a replica that
    /// applies them in turn ends where the store is.
    fn changes_since(&self, seq: i64, limit: usize) -> Result<ChangeBatch>;
    /// Drops change-log entries recorded before `before` (Unix seconds), keeping the newest one;
    /// returns how many went. A replica behind the pruned point is told to resync.
    fn prune_changes(&self, before: i64) -> Result<usize>;
    /// Blocks until another process may have recorded a change, or `timeout` passes. A backend only
    /// one process can open just sleeps.
    fn wait_for_changes(&self, timeout: std::time::Duration) -> Result<()>;
    /// Takes the lock `name` shared by every process on this store, waiting at most `timeout`
    /// (`Busy` after that); `timeout` zero tries once.
    fn lock(&self, name: &str, timeout: std::time::Duration) -> Result<LockGuard>;

    /// Streams every record, secret material sealed as stored, in an order [`Store::import`] accepts,
    /// from one consistent read.
    fn export(&self, out: &mut dyn FnMut(Record) -> Result<()>) -> Result<()>;
    /// Loads an export into an empty store in one transaction (`Conflict` if the store holds any
    /// identity, group, vault, application or role assignment); returns how many records it wrote.
    /// The change log is not exported; replicas of the new store start from a snapshot.
    fn import(&self, records: &mut dyn Iterator<Item = Result<Record>>) -> Result<u64>;
}
