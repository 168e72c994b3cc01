//! The PostgreSQL backend, for several `wid serve` replicas on one database.
//!
//! The trait is synchronous and is called from `spawn_blocking` threads and sometimes straight from
//! async code, so the store owns a small private tokio runtime (`wid-pg` threads): each call runs as
//! a task there and the calling thread waits for it, which works from any thread (`tokio-postgres`
//! underneath; the sync `postgres` crate would start a runtime inside the caller's). Connections
//! come from a bounded pool of the store's own, re-opened when broken; each session gets a statement
//! timeout, a shorter lock timeout and `synchronous_commit = on`. TLS is rustls (aws-lc-rs) and
//! always verifies: `sslmode` `verify-ca`/`verify-full` mean `require`; roots come from the CA file,
//! else the system bundle. Messages name the database as `user@host:port/db`, never with the password.
//! Sessions carry state (prepared statements, `LISTEN`, named locks), so connect to PostgreSQL
//! directly or through a session-mode pooler, not a transaction-mode one.
//!
//! Each write is one READ COMMITTED transaction. What SQLite gets from its single writer, this gets
//! from locks: a parent row is locked (`FOR KEY SHARE`) while a child is written and (`FOR UPDATE`)
//! while it is deleted; puts insert-or-update so concurrent creates of one record cannot both create
//! it; role assignments take a shared advisory lock that deleting a group or purging vaults takes
//! exclusively; writes to a vault's secrets lock the vault row (see `key_vault`). Unique constraints
//! back every rule. Locks are taken in one order (group, role assignments, group members, vaults,
//! change log last), so writers wait for each other but never deadlock. Consistent reads (snapshot,
//! export) are REPEATABLE READ.
//!
//! Change log, listener, named locks, export and import: `replica`. The schema lives in
//! `migrations/postgres/`, tracked in `wid_schema`, applied by [`PostgresStore::migrate`] (or
//! `connect(.., true)`) in one transaction under an advisory lock, so replicas starting together
//! do not race; [`PostgresStore::connect`] without migrating refuses a schema that is behind.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio_postgres::Row;
use uuid::Uuid;
use wid_core::Scope;
use wid_core::model::{
    AppPrincipal, Cluster, ClusterIssuer, DeletedSecret, Identity, ResourceGroup, ResourceKey, RoleAssignment,
    SecretVersion, StoredCredential, Vault, name_key,
};

use crate::rows::{
    self, APP_COLS, CLUSTER_COLS, CREDENTIAL_COLS, Cols, IDENTITY_COLS, RA_COLS, RG_COLS, RawRow, SIGNING_KEY_COLS,
};
use crate::{
    ChangeBatch, Changed, LockGuard, Page, Purged, Record, Removed, Result, SigningKeyRecord, Snapshot, Store,
    StoreError, Written,
};

mod conn;
mod key_vault;
mod replica;

use conn::{Db, Pool, Target, begin_snapshot, chain, pg_error};

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_cluster_extras.sql"),
    include_str!("../migrations/postgres/0003_identity_bindings.sql"),
];

/// Advisory lock keys, two-`int4` form (`pg_advisory_xact_lock(LOCKS, n)`): a key space apart from
/// the one-`bigint` keys of named locks ([`Store::lock`]).
const LOCKS: i32 = 0x7769_6400; // "wid\0"
/// Held from appending change-log rows to commit, so rows commit in `seq` order.
const CHANGE_LOG_LOCK: i32 = 1;
/// Held while migrating.
const MIGRATION_LOCK: i32 = 2;
/// Shared by role-assignment inserts; exclusive for deletes of everything at or below a scope.
const ROLE_ASSIGNMENT_LOCK: i32 = 3;

/// How to reach the database. `Debug` shows the URL with its password replaced.
#[derive(Clone)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/dbname?sslmode=…` (or libpq's `key=value` form).
    /// `sslmode`: `disable`; `prefer` (the default: TLS if the server offers it, verified like the
    /// rest, so a server with a certificate the roots do not cover is refused, not used unverified);
    /// `require`, `verify-ca`, `verify-full` (alike: TLS, certificate chain and host name verified).
    /// `sslrootcert=FILE` is taken as the CA file when `ca_file` is not set.
    pub url: String,
    /// PEM CA certificates the server's certificate must chain to; else the system bundle.
    pub ca_file: Option<PathBuf>,
    /// Most connections the store opens for queries. Named locks hold one each while held, from an
    /// allowance of as many again; the listener of [`Store::wait_for_changes`] has one of its own.
    pub pool_size: usize,
    /// Longest a statement may run; lock waits end with `Busy` after half of it.
    pub statement_timeout: Duration,
    /// Longest connecting (TCP, TLS, authentication) may take.
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    /// The defaults: 8 connections, 10 s statement and connect timeouts, CA from the system bundle.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_file: None,
            pool_size: 8,
            statement_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &conn::redacted(&self.url))
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .field("statement_timeout", &self.statement_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The PostgreSQL backend. See the module docs.
pub struct PostgresStore {
    shared: Arc<Shared>,
    handle: Handle,
    /// Shut down (without waiting) when the store drops: its connections close, its session locks go.
    runtime: Option<tokio::runtime::Runtime>,
}

/// What the tasks of a store share.
struct Shared {
    target: Target,
    pool: Arc<Pool>,
    listener: replica::Listener,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").field("database", &self.shared.target.name).finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// An export query and the decoder of its rows.
type ExportQuery = (String, fn(&dyn RawRow) -> Result<Record>);

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

impl PostgresStore {
    /// The schema version this build writes.
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Connects to the database. With `migrate`, brings the schema up to date first (as
    /// [`PostgresStore::migrate`] does); without, refuses a schema that is behind (`run wid migrate`).
    /// Either way refuses a schema newer than this build, or a database holding another program's
    /// tables.
    pub fn connect(config: &PostgresConfig, migrate: bool) -> Result<Self> {
        let store = Self::open(config)?;
        if migrate {
            store.run(migrate_schema)?;
            return Ok(store);
        }
        let version = store.schema_version()?;
        if version > Self::SCHEMA_VERSION {
            return Err(newer_schema(version));
        }
        if version < Self::SCHEMA_VERSION {
            return Err(StoreError::Backend(format!(
                "the database schema is version {version}, this wid needs {}: run `wid migrate`",
                Self::SCHEMA_VERSION
            )));
        }
        Ok(store)
    }

    /// Brings the schema of the database up to date; returns the versions before and after.
    pub fn migrate(config: &PostgresConfig) -> Result<(i64, i64)> {
        Self::open(config)?.run(migrate_schema)
    }

    /// The schema version of the database (0 if it has none).
    pub fn schema_version(&self) -> Result<i64> {
        self.read("reading the schema version", |db| {
            Box::pin(async move { Ok(schema_version(db).await?.unwrap_or(0)) })
        })
    }

    fn open(config: &PostgresConfig) -> Result<Self> {
        let target = Target::new(config)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("wid-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("starting the database runtime: {e}")))?;
        let shared =
            Arc::new(Shared { target, pool: Pool::new(config.pool_size), listener: replica::Listener::default() });
        Ok(Self { shared, handle: runtime.handle().clone(), runtime: Some(runtime) })
    }

    /// Runs a task on the store's runtime and waits for it.
    fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Shared>) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
    {
        conn::run(&self.handle, f(self.shared.clone()))
    }

    /// Runs `f` in a transaction and commits; any error rolls back.
    fn write<T, F>(&self, what: impl Into<String>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Db<'a>) -> BoxFut<'a, T> + Send + 'static,
    {
        let what = what.into();
        self.run(move |shared| async move {
            let timeout = shared.target.statement_timeout;
            let mut pooled = shared.pool.get(&shared.target, &what).await?;
            let (client, stmts) = pooled.parts()?;
            let tx = client.transaction().await.map_err(|e| pg_error(&what, &e, timeout))?;
            let out = f(&Db::tx(&tx, stmts, &what, timeout)).await?;
            tx.commit().await.map_err(|e| pg_error(&what, &e, timeout))?;
            Ok(out)
        })
    }

    /// Runs `f` on a pooled connection, outside a transaction.
    fn read<T, F>(&self, what: impl Into<String>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Db<'a>) -> BoxFut<'a, T> + Send + 'static,
    {
        let what = what.into();
        self.run(move |shared| async move {
            let pooled = shared.pool.get(&shared.target, &what).await?;
            f(&pooled.db(&what, shared.target.statement_timeout)?).await
        })
    }

    /// Runs `f` in a REPEATABLE READ, read-only transaction: every query sees the same state.
    fn read_consistent<T, F>(&self, what: impl Into<String>, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a Db<'a>) -> BoxFut<'a, T> + Send + 'static,
    {
        let what = what.into();
        self.run(move |shared| async move {
            let timeout = shared.target.statement_timeout;
            let mut pooled = shared.pool.get(&shared.target, &what).await?;
            let (client, stmts) = pooled.parts()?;
            let tx = begin_snapshot(client, &what, timeout).await?;
            let out = f(&Db::tx(&tx, stmts, &what, timeout)).await?;
            tx.commit().await.map_err(|e| pg_error(&what, &e, timeout))?;
            Ok(out)
        })
    }
}

// ---------------------------------------------------------------------------------------------------
// Migrations.

fn newer_schema(version: i64) -> StoreError {
    StoreError::Backend(format!(
        "the database schema is version {version}, newer than this wid supports (up to {}); run the wid \
         release that wrote it, or a newer one",
        PostgresStore::SCHEMA_VERSION
    ))
}

/// The schema version, `None` if there is no `wid_schema` table.
async fn schema_version(db: &Db<'_>) -> Result<Option<i64>> {
    if !db.scalar::<bool>("SELECT to_regclass('wid_schema') IS NOT NULL", &[]).await? {
        return Ok(None);
    }
    db.scalar("SELECT coalesce(max(version), 0)::bigint FROM wid_schema", &[]).await.map(Some)
}

/// Brings the schema to the newest version this binary knows, in one transaction, under an advisory
/// lock (a second replica starting at the same time waits, then finds nothing to do).
async fn migrate_schema(shared: Arc<Shared>) -> Result<(i64, i64)> {
    let what = "migrating the database schema";
    let timeout = shared.target.statement_timeout;
    let mut pooled = shared.pool.get(&shared.target, what).await?;
    let (client, stmts) = pooled.parts()?;
    let result = async {
        let tx = client.transaction().await.map_err(|e| pg_error(what, &e, timeout))?;
        // Another replica may be migrating: wait for it longer than for an ordinary lock.
        tx.batch_execute("SET LOCAL lock_timeout = '5min'; SET LOCAL statement_timeout = '5min'")
            .await
            .map_err(|e| pg_error(what, &e, timeout))?;
        let db = Db::tx(&tx, stmts, what, timeout);
        db.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCKS, &MIGRATION_LOCK]).await?;
        let known = PostgresStore::SCHEMA_VERSION;
        let from = match schema_version(&db).await? {
            Some(version) => version,
            None => {
                let tables: i64 = db
                    .scalar("SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = current_schema()", &[])
                    .await?;
                if tables > 0 {
                    return Err(StoreError::Backend(
                        "the database has tables but no wid schema; refusing to use another program's database \
                         (give wid a database of its own)"
                            .into(),
                    ));
                }
                0
            }
        };
        if from > known {
            return Err(newer_schema(from));
        }
        if from < 0 {
            return Err(StoreError::Backend(format!("the database schema version {from} is invalid")));
        }
        for (i, script) in MIGRATIONS.iter().enumerate().skip(usize::try_from(from).unwrap_or(0)) {
            let to = i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1);
            tx.batch_execute(script).await.map_err(|e| {
                let why = e.as_db_error().map_or_else(|| chain(&e), |db| db.message().to_string());
                StoreError::Backend(format!("applying schema migration {to}: {why}"))
            })?;
            db.execute("INSERT INTO wid_schema (version, applied) VALUES ($1, $2)", &[&to, &crate::unix_now()]).await?;
        }
        tx.commit().await.map_err(|e| pg_error(what, &e, timeout))?;
        Ok((from, known))
    }
    .await;
    if result.is_err() {
        // Statements it prepared may name tables the rollback took away.
        pooled.discard();
    }
    result
}

// ---------------------------------------------------------------------------------------------------
// Encoding and decoding rows (column lists and decoders: `crate::rows`, shared by both backends).

fn json<T: serde::Serialize + ?Sized>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: cannot encode: {e}")))
}

/// PostgreSQL reads every type natively; its errors are rendered with their causes.
impl RawRow for Row {
    fn opt_text(&self, col: &str) -> std::result::Result<Option<String>, String> {
        self.try_get(col).map_err(|e| chain(&e))
    }
    fn opt_int(&self, col: &str) -> std::result::Result<Option<i64>, String> {
        self.try_get(col).map_err(|e| chain(&e))
    }
    fn opt_flag(&self, col: &str) -> std::result::Result<Option<bool>, String> {
        self.try_get(col).map_err(|e| chain(&e))
    }
    fn opt_bytes(&self, col: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        self.try_get(col).map_err(|e| chain(&e))
    }
}

/// Decodes every row of a query.
fn decode_all<T>(rows: &[Row], decode: impl Fn(&dyn RawRow) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(|row| decode(row)).collect()
}

/// Decodes the row of a query expected to return at most one.
fn decode_opt<T>(row: Option<Row>, decode: impl Fn(&dyn RawRow) -> Result<T>) -> Result<Option<T>> {
    row.map(|row| decode(&row)).transpose()
}

fn written(existed: bool) -> Written {
    if existed { Written::Updated } else { Written::Created }
}

/// Subscription, group key, name key: what identifies a resource inside a group.
fn key_params(key: &ResourceKey) -> [String; 3] {
    [key.subscription.to_string(), name_key(&key.resource_group), name_key(&key.name)]
}

fn uuid_text(id: Uuid) -> String {
    id.to_string()
}

/// The scope key under which role assignments belong to a resource group.
fn resource_group_scope_key(subscription: Uuid, rg_key: &str) -> String {
    format!("/subscriptions/{subscription}/resourcegroups/{rg_key}")
}

/// A key as the log records it: lower-case, whatever casing the caller's key was built with.
fn key_of(key: &ResourceKey) -> ResourceKey {
    ResourceKey::new(key.subscription, &key.resource_group, &key.name)
}

fn ra_changed(ra: &RoleAssignment) -> Changed {
    Changed::RoleAssignment { id: ra.id, principal: ra.principal_id }
}

// ---------------------------------------------------------------------------------------------------
// Writes, one function per record type, shared by the trait methods and `import` (the trait methods
// append the change-log rows).

/// Locks a resource group's row against deletion until commit (foreign-key checks take the same
/// lock); `false` if there is no such group.
async fn rg_locked(db: &Db<'_>, sub: &str, rg_key: &str) -> Result<bool> {
    db.exists("SELECT 1 FROM resource_groups WHERE subscription = $1 AND name_key = $2 FOR KEY SHARE", &[&sub, &rg_key])
        .await
}

/// Inserts a row, or updates it where its key exists. Both statements take the same parameters.
/// `INSERT … ON CONFLICT DO NOTHING` waits for a concurrent insert of the key, so two creates never
/// both report `Created`; a row deleted between the two statements is inserted again.
async fn upsert(db: &Db<'_>, insert: &str, update: &str, params: conn::Params<'_>) -> Result<Written> {
    for _ in 0..3 {
        if db.execute(insert, params).await? == 1 {
            return Ok(Written::Created);
        }
        if db.execute(update, params).await? == 1 {
            return Ok(Written::Updated);
        }
    }
    Err(StoreError::Busy(format!("{}: the record kept changing under concurrent writers; try again", db.what)))
}

async fn meta_put(db: &Db<'_>, key: &str, value: &[u8]) -> Result<()> {
    db.execute(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        &[&key, &value],
    )
    .await?;
    Ok(())
}

async fn put_signing_key(db: &Db<'_>, key: &SigningKeyRecord) -> Result<()> {
    db.execute(
        "INSERT INTO signing_keys (kid, purpose, sealed_pkcs8, created, retired, expires) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (kid) DO UPDATE SET purpose = excluded.purpose, sealed_pkcs8 = excluded.sealed_pkcs8, \
         created = excluded.created, retired = excluded.retired, expires = excluded.expires",
        &[&key.kid, &key.purpose, &key.sealed_pkcs8, &key.created, &key.retired, &key.expires],
    )
    .await?;
    Ok(())
}

async fn put_resource_group(db: &Db<'_>, rg: &ResourceGroup) -> Result<Written> {
    let tags = json(db.what, &rg.tags)?;
    let (sub, key) = (uuid_text(rg.subscription), name_key(&rg.name));
    upsert(
        db,
        "INSERT INTO resource_groups (subscription, name_key, name, location, tags, created) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subscription, name_key) DO NOTHING",
        "UPDATE resource_groups SET name = $3, location = $4, tags = $5, created = $6 \
         WHERE subscription = $1 AND name_key = $2",
        &[&sub, &key, &rg.name, &rg.location, &tags, &rg.created],
    )
    .await
}

async fn put_identity(db: &Db<'_>, identity: &Identity) -> Result<Written> {
    let tags = json(db.what, &identity.tags)?;
    let [sub, rg_key, id_key] = key_params(&identity.key());
    if !rg_locked(db, &sub, &rg_key).await? {
        return Err(StoreError::MissingParent(format!(
            "resource group '{}' does not exist in subscription {}",
            identity.resource_group, identity.subscription
        )));
    }
    let (tenant, client, principal) =
        (uuid_text(identity.tenant_id), uuid_text(identity.client_id), uuid_text(identity.principal_id));
    upsert(
        db,
        "INSERT INTO identities (subscription, rg_key, name_key, resource_group, name, location, tags, tenant_id, \
         client_id, principal_id, created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (subscription, rg_key, name_key) DO NOTHING",
        "UPDATE identities SET resource_group = $4, name = $5, location = $6, tags = $7, tenant_id = $8, \
         client_id = $9, principal_id = $10, created = $11, updated = $12 \
         WHERE subscription = $1 AND rg_key = $2 AND name_key = $3",
        &[
            &sub,
            &rg_key,
            &id_key,
            &identity.resource_group,
            &identity.name,
            &identity.location,
            &tags,
            &tenant,
            &client,
            &principal,
            &identity.created,
            &identity.updated,
        ],
    )
    .await
}

async fn put_credential(db: &Db<'_>, cred: &StoredCredential) -> Result<Written> {
    let c = &cred.credential;
    let audiences = json(db.what, &c.audiences)?;
    let [sub, rg_key, id_key] = key_params(&cred.identity);
    let cred_key = name_key(&c.name);
    let (expression, version) = match &c.claims_matching_expression {
        Some(e) => (Some(e.value.as_str()), Some(e.language_version)),
        None => (None, None),
    };
    let identity_exists = db
        .exists(
            "SELECT 1 FROM identities WHERE subscription = $1 AND rg_key = $2 AND name_key = $3 FOR KEY SHARE",
            &[&sub, &rg_key, &id_key],
        )
        .await?;
    if !identity_exists {
        return Err(StoreError::MissingParent(format!(
            "identity '{}' does not exist in resource group '{}' of subscription {}",
            cred.identity.name, cred.identity.resource_group, cred.identity.subscription
        )));
    }
    upsert(
        db,
        "INSERT INTO credentials (subscription, rg_key, identity_key, name_key, name, issuer, subject, expression, \
         expression_version, audiences, description, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (subscription, rg_key, identity_key, name_key) DO NOTHING",
        "UPDATE credentials SET name = $5, issuer = $6, subject = $7, expression = $8, expression_version = $9, \
         audiences = $10, description = $11, created = $12, updated = $13 \
         WHERE subscription = $1 AND rg_key = $2 AND identity_key = $3 AND name_key = $4",
        &[
            &sub,
            &rg_key,
            &id_key,
            &cred_key,
            &c.name,
            &c.issuer,
            &c.subject,
            &expression,
            &version,
            &audiences,
            &c.description,
            &cred.created,
            &cred.updated,
        ],
    )
    .await
}

async fn put_cluster(db: &Db<'_>, cluster: &Cluster) -> Result<Written> {
    let tags = json(db.what, &cluster.tags)?;
    let bindings = (!cluster.extras.identity_bindings.is_empty())
        .then(|| json(db.what, &cluster.extras.identity_bindings))
        .transpose()?;
    let [sub, rg_key, cl_key] = key_params(&cluster.key());
    let (kind, url, kid, jwks) = match &cluster.issuer {
        ClusterIssuer::Hosted { issuer_url, kid } => ("hosted", issuer_url, Some(kid), None),
        ClusterIssuer::External { issuer_url, jwks } => ("external", issuer_url, None, jwks.as_ref()),
    };
    if !rg_locked(db, &sub, &rg_key).await? {
        return Err(StoreError::MissingParent(format!(
            "resource group '{}' does not exist in subscription {}",
            cluster.resource_group, cluster.subscription
        )));
    }
    let cluster_id = uuid_text(cluster.cluster_id);
    upsert(
        db,
        "INSERT INTO clusters (subscription, rg_key, name_key, resource_group, name, location, tags, cluster_id, \
         issuer_kind, issuer_url, issuer_kid, issuer_jwks, workload_identity, api_server, api_server_ca, arm_extra, \
         identity_bindings, created, updated) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) \
         ON CONFLICT (subscription, rg_key, name_key) DO NOTHING",
        "UPDATE clusters SET resource_group = $4, name = $5, location = $6, tags = $7, cluster_id = $8, \
         issuer_kind = $9, issuer_url = $10, issuer_kid = $11, issuer_jwks = $12, workload_identity = $13, \
         api_server = $14, api_server_ca = $15, arm_extra = $16, identity_bindings = $17, created = $18, \
         updated = $19 WHERE subscription = $1 AND rg_key = $2 AND name_key = $3",
        &[
            &sub,
            &rg_key,
            &cl_key,
            &cluster.resource_group,
            &cluster.name,
            &cluster.location,
            &tags,
            &cluster_id,
            &kind,
            url,
            &kid,
            &jwks,
            &cluster.workload_identity,
            &cluster.extras.api_server,
            &cluster.extras.api_server_ca,
            &cluster.extras.arm,
            &bindings,
            &cluster.created,
            &cluster.updated,
        ],
    )
    .await
}

async fn put_app(db: &Db<'_>, app: &AppPrincipal) -> Result<()> {
    db.execute(
        "INSERT INTO apps (client_id, principal_id, display_name, secret_hash, created) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (client_id) DO UPDATE SET principal_id = excluded.principal_id, \
         display_name = excluded.display_name, secret_hash = excluded.secret_hash, created = excluded.created",
        &[&uuid_text(app.client_id), &uuid_text(app.principal_id), &app.display_name, &app.secret_hash, &app.created],
    )
    .await?;
    Ok(())
}

async fn insert_role_assignment(db: &Db<'_>, ra: &RoleAssignment) -> Result<()> {
    // The service validated the scope; a scope that does not parse cannot be stored consistently.
    let scope = Scope::parse(&ra.scope)
        .map_err(|e| StoreError::Corrupt(format!("role assignment {} cannot be stored: {e}", ra.id)))?;
    let (id, principal, role) = (uuid_text(ra.id), uuid_text(ra.principal_id), uuid_text(ra.role_definition_id));
    // Shared: inserts run side by side; deleting everything below a scope waits for them.
    db.execute("SELECT pg_advisory_xact_lock_shared($1, $2)", &[&LOCKS, &ROLE_ASSIGNMENT_LOCK]).await?;
    if db.exists("SELECT 1 FROM role_assignments WHERE id = $1", &[&id]).await? {
        return Err(StoreError::Conflict(format!("a role assignment with id {id} already exists")));
    }
    let twin = db
        .query_opt(
            "SELECT id FROM role_assignments WHERE principal_id = $1 AND role_definition_id = $2 AND scope_key = $3",
            &[&principal, &role, &scope.key()],
        )
        .await?;
    if let Some(row) = twin {
        let existing = Cols { row: &row, table: "role_assignments" }.text("id")?;
        return Err(StoreError::Conflict(format!(
            "principal {principal} already holds role {role} at scope '{}' (role assignment {existing})",
            ra.scope
        )));
    }
    // The unique constraints decide between concurrent inserts that both passed the checks.
    db.execute(
        "INSERT INTO role_assignments (id, scope, scope_key, role_definition_id, principal_id, principal_type, \
         description, created, updated, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &id,
            &ra.scope,
            &scope.key(),
            &role,
            &principal,
            &ra.principal_type.as_str(),
            &ra.description,
            &ra.created,
            &ra.updated,
            &ra.created_by.map(uuid_text),
        ],
    )
    .await?;
    Ok(())
}

async fn delete_resource_group(db: &Db<'_>, subscription: Uuid, name: &str) -> Result<Option<Removed>> {
    let (sub, key) = (uuid_text(subscription), name_key(name));
    let scope_key = resource_group_scope_key(subscription, &key);
    let below = format!("{scope_key}/");
    // The group row, exclusively: no child can be written into it until commit.
    let locked = db
        .exists("SELECT 1 FROM resource_groups WHERE subscription = $1 AND name_key = $2 FOR UPDATE", &[&sub, &key])
        .await?;
    if !locked {
        return Ok(None);
    }
    db.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCKS, &ROLE_ASSIGNMENT_LOCK]).await?;
    let in_group = "subscription = $1 AND rg_key = $2";
    let identities = decode_all(
        &db.query(
            &format!("SELECT {IDENTITY_COLS} FROM identities WHERE {in_group} ORDER BY name_key FOR UPDATE"),
            &[&sub, &key],
        )
        .await?,
        rows::identity,
    )?;
    let clusters = decode_all(
        &db.query(
            &format!("SELECT {CLUSTER_COLS} FROM clusters WHERE {in_group} ORDER BY name_key FOR UPDATE"),
            &[&sub, &key],
        )
        .await?,
        rows::cluster,
    )?;
    // "At or below" on whole segments: the group's key itself, or the key followed by '/'.
    let ra_filter = "scope_key = $1 OR starts_with(scope_key, $2)";
    let role_assignments = decode_all(
        &db.query(
            &format!("SELECT {RA_COLS} FROM role_assignments WHERE {ra_filter} ORDER BY scope_key, id"),
            &[&scope_key, &below],
        )
        .await?,
        rows::role_assignment,
    )?;
    db.execute(&format!("DELETE FROM role_assignments WHERE {ra_filter}"), &[&scope_key, &below]).await?;
    db.execute(&format!("DELETE FROM clusters WHERE {in_group}"), &[&sub, &key]).await?;
    db.execute(&format!("DELETE FROM identities WHERE {in_group}"), &[&sub, &key]).await?;
    // Vaults outlive their group, soft-deleted (see `key_vault::soft_delete_group_vaults`).
    let vaults = key_vault::soft_delete_group_vaults(db, &sub, &key).await?;
    db.execute("DELETE FROM resource_groups WHERE subscription = $1 AND name_key = $2", &[&sub, &key]).await?;
    Ok(Some(Removed { identities, clusters, role_assignments, vaults }))
}

// ---------------------------------------------------------------------------------------------------

impl Store for PostgresStore {
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_string();
        self.read("reading metadata", move |db| {
            Box::pin(async move {
                let row = db.query_opt("SELECT value FROM meta WHERE key = $1", &[&key]).await?;
                row.map(|row| Cols { row: &row, table: "meta" }.bytes("value")).transpose()
            })
        })
    }

    fn meta_insert(&self, key: &str, value: &[u8]) -> Result<bool> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.write(format!("inserting metadata '{key}'"), move |db| {
            Box::pin(async move {
                let sql = "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";
                Ok(db.execute(sql, &[&key, &value]).await? == 1)
            })
        })
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.write(format!("writing metadata '{key}'"), move |db| {
            Box::pin(async move { meta_put(db, &key, &value).await })
        })
    }

    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.read("reading signing keys", |db| {
            Box::pin(async move {
                let sql = format!("SELECT {SIGNING_KEY_COLS} FROM signing_keys ORDER BY created, kid");
                decode_all(&db.query(&sql, &[]).await?, rows::signing_key)
            })
        })
    }

    fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let key = key.clone();
        self.write(format!("writing signing key '{}'", key.kid), move |db| {
            Box::pin(async move {
                put_signing_key(db, &key).await?;
                replica::log_changes(db, &[Changed::SigningKeys(key.purpose.clone())]).await
            })
        })
    }

    fn delete_signing_key(&self, kid: &str) -> Result<()> {
        let kid = kid.to_string();
        self.write(format!("deleting signing key '{kid}'"), move |db| {
            Box::pin(async move {
                let row = db.query_opt("DELETE FROM signing_keys WHERE kid = $1 RETURNING purpose", &[&kid]).await?;
                let Some(row) = row else { return Ok(()) };
                let purpose = Cols { row: &row, table: "signing_keys" }.text("purpose")?;
                replica::log_changes(db, &[Changed::SigningKeys(purpose)]).await
            })
        })
    }

    fn put_resource_group(&self, rg: &ResourceGroup) -> Result<Written> {
        let rg = rg.clone();
        self.write(format!("writing resource group '{}'", rg.name), move |db| {
            Box::pin(async move { put_resource_group(db, &rg).await })
        })
    }

    fn resource_group(&self, subscription: Uuid, name: &str) -> Result<Option<ResourceGroup>> {
        let key = name_key(name);
        self.read("reading a resource group", move |db| {
            Box::pin(async move {
                let sql = format!("SELECT {RG_COLS} FROM resource_groups WHERE subscription = $1 AND name_key = $2");
                decode_opt(db.query_opt(&sql, &[&uuid_text(subscription), &key]).await?, rows::resource_group)
            })
        })
    }

    fn resource_groups(&self, subscription: Uuid) -> Result<Vec<ResourceGroup>> {
        self.read("listing resource groups", move |db| {
            Box::pin(async move {
                let sql = format!("SELECT {RG_COLS} FROM resource_groups WHERE subscription = $1 ORDER BY name_key");
                decode_all(&db.query(&sql, &[&uuid_text(subscription)]).await?, rows::resource_group)
            })
        })
    }

    fn delete_resource_group(&self, subscription: Uuid, name: &str) -> Result<Option<Removed>> {
        let name = name.to_string();
        self.write(format!("deleting resource group '{name}'"), move |db| {
            Box::pin(async move {
                let removed = delete_resource_group(db, subscription, &name).await?;
                if let Some(r) = &removed {
                    let changes: Vec<Changed> = r
                        .identities
                        .iter()
                        .map(|i| Changed::Identity(i.key()))
                        .chain(r.clusters.iter().map(|c| Changed::Cluster(c.key())))
                        .chain(r.role_assignments.iter().map(ra_changed))
                        .collect();
                    replica::log_changes(db, &changes).await?;
                }
                Ok(removed)
            })
        })
    }

    fn put_identity(&self, identity: &Identity) -> Result<Written> {
        let identity = identity.clone();
        self.write(format!("writing identity '{}'", identity.name), move |db| {
            Box::pin(async move {
                let written = put_identity(db, &identity).await?;
                replica::log_changes(db, &[Changed::Identity(identity.key())]).await?;
                Ok(written)
            })
        })
    }

    fn identity(&self, key: &ResourceKey) -> Result<Option<Identity>> {
        let params = key_params(key);
        self.read("reading an identity", move |db| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {IDENTITY_COLS} FROM identities WHERE subscription = $1 AND rg_key = $2 AND name_key = $3"
                );
                let [sub, rg, name] = &params;
                decode_opt(db.query_opt(&sql, &[sub, rg, name]).await?, rows::identity)
            })
        })
    }

    fn identities(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Identity>> {
        let rg = resource_group.map(name_key);
        self.read("listing identities", move |db| {
            Box::pin(async move {
                let sub = uuid_text(subscription);
                let rows = match &rg {
                    Some(rg) => {
                        let sql = format!(
                            "SELECT {IDENTITY_COLS} FROM identities WHERE subscription = $1 AND rg_key = $2 \
                             ORDER BY rg_key, name_key"
                        );
                        db.query(&sql, &[&sub, rg]).await?
                    }
                    None => {
                        let sql = format!(
                            "SELECT {IDENTITY_COLS} FROM identities WHERE subscription = $1 ORDER BY rg_key, name_key"
                        );
                        db.query(&sql, &[&sub]).await?
                    }
                };
                decode_all(&rows, rows::identity)
            })
        })
    }

    fn delete_identity(&self, key: &ResourceKey) -> Result<Option<Identity>> {
        let key = key.clone();
        self.write(format!("deleting identity '{}'", key.name), move |db| {
            Box::pin(async move {
                // Credentials go with it (ON DELETE CASCADE).
                let [sub, rg, name] = key_params(&key);
                let sql = format!(
                    "DELETE FROM identities WHERE subscription = $1 AND rg_key = $2 AND name_key = $3 \
                     RETURNING {IDENTITY_COLS}"
                );
                let found = decode_opt(db.query_opt(&sql, &[&sub, &rg, &name]).await?, rows::identity)?;
                if found.is_some() {
                    replica::log_changes(db, &[Changed::Identity(key_of(&key))]).await?;
                }
                Ok(found)
            })
        })
    }

    fn put_credential(&self, cred: &StoredCredential) -> Result<Written> {
        let cred = cred.clone();
        self.write(format!("writing federated credential '{}'", cred.credential.name), move |db| {
            Box::pin(async move {
                let written = put_credential(db, &cred).await?;
                replica::log_changes(db, &[Changed::Identity(key_of(&cred.identity))]).await?;
                Ok(written)
            })
        })
    }

    fn credentials(&self, identity: &ResourceKey) -> Result<Vec<StoredCredential>> {
        let params = key_params(identity);
        self.read("listing federated credentials", move |db| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {CREDENTIAL_COLS} FROM credentials \
                     WHERE subscription = $1 AND rg_key = $2 AND identity_key = $3 ORDER BY name_key"
                );
                let [sub, rg, name] = &params;
                decode_all(&db.query(&sql, &[sub, rg, name]).await?, rows::credential)
            })
        })
    }

    fn credential(&self, identity: &ResourceKey, name: &str) -> Result<Option<StoredCredential>> {
        let (params, cred_key) = (key_params(identity), name_key(name));
        self.read("reading a federated credential", move |db| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {CREDENTIAL_COLS} FROM credentials \
                     WHERE subscription = $1 AND rg_key = $2 AND identity_key = $3 AND name_key = $4"
                );
                let [sub, rg, name] = &params;
                decode_opt(db.query_opt(&sql, &[sub, rg, name, &cred_key]).await?, rows::credential)
            })
        })
    }

    fn credential_count(&self, identity: &ResourceKey) -> Result<usize> {
        let params = key_params(identity);
        self.read("counting federated credentials", move |db| {
            Box::pin(async move {
                let [sub, rg, name] = &params;
                let sql =
                    "SELECT COUNT(*) FROM credentials WHERE subscription = $1 AND rg_key = $2 AND identity_key = $3";
                let row = db.query_opt(sql, &[sub, rg, name]).await?;
                let n: i64 = match row {
                    Some(r) => r
                        .try_get(0)
                        .map_err(|e| StoreError::Backend(format!("counting federated credentials: {}", chain(&e))))?,
                    None => 0,
                };
                Ok(usize::try_from(n).unwrap_or(0))
            })
        })
    }

    fn delete_credential(&self, identity: &ResourceKey, name: &str) -> Result<Option<StoredCredential>> {
        let (identity, cred_key) = (identity.clone(), name_key(name));
        self.write(format!("deleting federated credential '{name}'"), move |db| {
            Box::pin(async move {
                let [sub, rg, id] = key_params(&identity);
                let sql = format!(
                    "DELETE FROM credentials \
                     WHERE subscription = $1 AND rg_key = $2 AND identity_key = $3 AND name_key = $4 \
                     RETURNING {CREDENTIAL_COLS}"
                );
                let row = db.query_opt(&sql, &[&sub, &rg, &id, &cred_key]).await?;
                let found = decode_opt(row, rows::credential)?;
                if let Some(c) = &found {
                    replica::log_changes(db, &[Changed::Identity(c.identity.clone())]).await?;
                }
                Ok(found)
            })
        })
    }

    fn put_cluster(&self, cluster: &Cluster) -> Result<Written> {
        let cluster = cluster.clone();
        self.write(format!("writing cluster '{}'", cluster.name), move |db| {
            Box::pin(async move {
                let written = put_cluster(db, &cluster).await?;
                replica::log_changes(db, &[Changed::Cluster(cluster.key())]).await?;
                Ok(written)
            })
        })
    }

    fn cluster(&self, key: &ResourceKey) -> Result<Option<Cluster>> {
        let params = key_params(key);
        self.read("reading a cluster", move |db| {
            Box::pin(async move {
                let sql = format!(
                    "SELECT {CLUSTER_COLS} FROM clusters WHERE subscription = $1 AND rg_key = $2 AND name_key = $3"
                );
                let [sub, rg, name] = &params;
                decode_opt(db.query_opt(&sql, &[sub, rg, name]).await?, rows::cluster)
            })
        })
    }

    fn clusters(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Cluster>> {
        let rg = resource_group.map(name_key);
        self.read("listing clusters", move |db| {
            Box::pin(async move {
                let sub = uuid_text(subscription);
                let rows = match &rg {
                    Some(rg) => {
                        let sql = format!(
                            "SELECT {CLUSTER_COLS} FROM clusters WHERE subscription = $1 AND rg_key = $2 \
                             ORDER BY rg_key, name_key"
                        );
                        db.query(&sql, &[&sub, rg]).await?
                    }
                    None => {
                        let sql = format!(
                            "SELECT {CLUSTER_COLS} FROM clusters WHERE subscription = $1 ORDER BY rg_key, name_key"
                        );
                        db.query(&sql, &[&sub]).await?
                    }
                };
                decode_all(&rows, rows::cluster)
            })
        })
    }

    fn delete_cluster(&self, key: &ResourceKey) -> Result<Option<Cluster>> {
        let key = key.clone();
        self.write(format!("deleting cluster '{}'", key.name), move |db| {
            Box::pin(async move {
                let [sub, rg, name] = key_params(&key);
                let sql = format!(
                    "DELETE FROM clusters WHERE subscription = $1 AND rg_key = $2 AND name_key = $3 \
                     RETURNING {CLUSTER_COLS}"
                );
                let found = decode_opt(db.query_opt(&sql, &[&sub, &rg, &name]).await?, rows::cluster)?;
                if found.is_some() {
                    replica::log_changes(db, &[Changed::Cluster(key_of(&key))]).await?;
                }
                Ok(found)
            })
        })
    }

    fn put_app(&self, app: &AppPrincipal) -> Result<()> {
        let app = app.clone();
        self.write(format!("writing application '{}'", app.display_name), move |db| {
            Box::pin(async move {
                put_app(db, &app).await?;
                replica::log_changes(db, &[Changed::App(app.client_id)]).await
            })
        })
    }

    fn app(&self, client_id: Uuid) -> Result<Option<AppPrincipal>> {
        self.read("reading an application", move |db| {
            Box::pin(async move {
                let sql = format!("SELECT {APP_COLS} FROM apps WHERE client_id = $1");
                decode_opt(db.query_opt(&sql, &[&uuid_text(client_id)]).await?, rows::app)
            })
        })
    }

    fn insert_role_assignment(&self, ra: &RoleAssignment) -> Result<()> {
        let ra = ra.clone();
        self.write(format!("creating role assignment {}", ra.id), move |db| {
            Box::pin(async move {
                insert_role_assignment(db, &ra).await?;
                replica::log_changes(db, &[ra_changed(&ra)]).await
            })
        })
    }

    fn role_assignment(&self, id: Uuid) -> Result<Option<RoleAssignment>> {
        self.read("reading a role assignment", move |db| {
            Box::pin(async move {
                let sql = format!("SELECT {RA_COLS} FROM role_assignments WHERE id = $1");
                decode_opt(db.query_opt(&sql, &[&uuid_text(id)]).await?, rows::role_assignment)
            })
        })
    }

    fn delete_role_assignment(&self, id: Uuid) -> Result<Option<RoleAssignment>> {
        self.write(format!("deleting role assignment {id}"), move |db| {
            Box::pin(async move {
                let sql = format!("DELETE FROM role_assignments WHERE id = $1 RETURNING {RA_COLS}");
                let found = decode_opt(db.query_opt(&sql, &[&uuid_text(id)]).await?, rows::role_assignment)?;
                if let Some(ra) = &found {
                    replica::log_changes(db, &[ra_changed(ra)]).await?;
                }
                Ok(found)
            })
        })
    }

    fn role_assignments(&self, principal: Option<Uuid>) -> Result<Vec<RoleAssignment>> {
        self.read("listing role assignments", move |db| {
            Box::pin(async move {
                let rows = match principal {
                    Some(p) => {
                        let sql = format!(
                            "SELECT {RA_COLS} FROM role_assignments WHERE principal_id = $1 ORDER BY scope_key, id"
                        );
                        db.query(&sql, &[&uuid_text(p)]).await?
                    }
                    None => {
                        let sql = format!("SELECT {RA_COLS} FROM role_assignments ORDER BY scope_key, id");
                        db.query(&sql, &[]).await?
                    }
                };
                decode_all(&rows, rows::role_assignment)
            })
        })
    }

    fn snapshot(&self) -> Result<Snapshot> {
        self.read_consistent("reading a snapshot", |db| {
            Box::pin(async move {
                let all = |sql: String| async move { db.query(&sql, &[]).await };
                Ok(Snapshot {
                    identities: decode_all(
                        &all(format!("SELECT {IDENTITY_COLS} FROM identities ORDER BY subscription, rg_key, name_key"))
                            .await?,
                        rows::identity,
                    )?,
                    credentials: decode_all(
                        &all(format!(
                            "SELECT {CREDENTIAL_COLS} FROM credentials \
                             ORDER BY subscription, rg_key, identity_key, name_key"
                        ))
                        .await?,
                        rows::credential,
                    )?,
                    clusters: decode_all(
                        &all(format!("SELECT {CLUSTER_COLS} FROM clusters ORDER BY subscription, rg_key, name_key"))
                            .await?,
                        rows::cluster,
                    )?,
                    apps: decode_all(
                        &all(format!("SELECT {APP_COLS} FROM apps ORDER BY client_id")).await?,
                        rows::app,
                    )?,
                    role_assignments: decode_all(
                        &all(format!("SELECT {RA_COLS} FROM role_assignments ORDER BY scope_key, id")).await?,
                        rows::role_assignment,
                    )?,
                    change_head: db.scalar("SELECT coalesce(max(seq), 0)::bigint FROM changes", &[]).await?,
                })
            })
        })
    }

    // Key Vault: the queries live in `key_vault`.

    fn put_vault(&self, vault: &Vault) -> Result<Written> {
        let vault = vault.clone();
        self.write(format!("writing vault '{}'", vault.name), move |db| {
            Box::pin(async move { key_vault::put_vault(db, &vault).await })
        })
    }

    fn vault(&self, name: &str) -> Result<Option<Vault>> {
        let name = name.to_string();
        self.read("reading a vault", move |db| Box::pin(async move { key_vault::vault(db, &name).await }))
    }

    fn vaults(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Vault>> {
        let rg = resource_group.map(str::to_string);
        self.read("listing vaults", move |db| {
            Box::pin(async move { key_vault::vaults(db, subscription, rg.as_deref()).await })
        })
    }

    fn deleted_vaults(&self, subscription: Uuid) -> Result<Vec<Vault>> {
        self.read("listing deleted vaults", move |db| {
            Box::pin(async move { key_vault::deleted_vaults(db, subscription).await })
        })
    }

    fn purge_vault(&self, name: &str) -> Result<Option<Vault>> {
        let name = name.to_string();
        self.write(format!("purging vault '{name}'"), move |db| {
            Box::pin(async move { key_vault::purge_vault(db, &name).await })
        })
    }

    fn insert_secret_version(&self, version: &SecretVersion) -> Result<()> {
        let version = version.clone();
        self.write(format!("writing a version of secret '{}'", version.name), move |db| {
            Box::pin(async move { key_vault::insert_secret_version(db, &version).await })
        })
    }

    fn update_secret_version(&self, version: &SecretVersion) -> Result<bool> {
        let version = version.clone();
        self.write(format!("updating a version of secret '{}'", version.name), move |db| {
            Box::pin(async move { key_vault::update_secret_version(db, &version).await })
        })
    }

    fn secret_version(&self, vault: &str, name: &str, version: Option<&str>) -> Result<Option<SecretVersion>> {
        let (vault, name, version) = (vault.to_string(), name.to_string(), version.map(str::to_string));
        self.read("reading a secret", move |db| {
            Box::pin(async move { key_vault::secret_version(db, &vault, &name, version.as_deref()).await })
        })
    }

    fn secrets(&self, vault: &str, after: Option<&str>, limit: usize) -> Result<Page<SecretVersion>> {
        let (vault, after) = (vault.to_string(), after.map(str::to_string));
        self.read("listing secrets", move |db| {
            Box::pin(async move { key_vault::secrets(db, &vault, after.as_deref(), limit).await })
        })
    }

    fn secret_versions(
        &self,
        vault: &str,
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SecretVersion>> {
        let (vault, name, after) = (vault.to_string(), name.to_string(), after.map(str::to_string));
        self.read("listing secret versions", move |db| {
            Box::pin(async move { key_vault::secret_versions(db, &vault, &name, after.as_deref(), limit).await })
        })
    }

    fn delete_secret(
        &self,
        vault: &str,
        name: &str,
        deleted: i64,
        scheduled_purge: i64,
    ) -> Result<Option<DeletedSecret>> {
        let (vault, name) = (vault.to_string(), name.to_string());
        self.write(format!("deleting secret '{name}'"), move |db| {
            Box::pin(async move { key_vault::delete_secret(db, &vault, &name, deleted, scheduled_purge).await })
        })
    }

    fn deleted_secret(&self, vault: &str, name: &str) -> Result<Option<(DeletedSecret, SecretVersion)>> {
        let (vault, name) = (vault.to_string(), name.to_string());
        self.read("reading a deleted secret", move |db| {
            Box::pin(async move { key_vault::deleted_secret(db, &vault, &name).await })
        })
    }

    fn deleted_secrets(
        &self,
        vault: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<(DeletedSecret, SecretVersion)>> {
        let (vault, after) = (vault.to_string(), after.map(str::to_string));
        self.read("listing deleted secrets", move |db| {
            Box::pin(async move { key_vault::deleted_secrets(db, &vault, after.as_deref(), limit).await })
        })
    }

    fn recover_secret(&self, vault: &str, name: &str) -> Result<Option<SecretVersion>> {
        let (vault, name) = (vault.to_string(), name.to_string());
        self.write(format!("recovering secret '{name}'"), move |db| {
            Box::pin(async move { key_vault::recover_secret(db, &vault, &name).await })
        })
    }

    fn purge_secret(&self, vault: &str, name: &str) -> Result<bool> {
        let (vault, name) = (vault.to_string(), name.to_string());
        self.write(format!("purging secret '{name}'"), move |db| {
            Box::pin(async move { key_vault::purge_secret(db, &vault, &name).await })
        })
    }

    fn purge_expired(&self, now: i64) -> Result<Purged> {
        self.write("purging expired deleted secrets and vaults", move |db| {
            Box::pin(async move {
                db.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCKS, &ROLE_ASSIGNMENT_LOCK]).await?;
                let purged = key_vault::purge_expired(db, now).await?;
                let changes: Vec<Changed> = purged.role_assignments.iter().map(ra_changed).collect();
                replica::log_changes(db, &changes).await?;
                Ok(purged)
            })
        })
    }

    fn restore_secret(&self, versions: &[SecretVersion]) -> Result<()> {
        let what = match versions.first() {
            Some(v) => format!("restoring secret '{}'", v.name),
            None => "restoring a secret".to_string(),
        };
        let versions = versions.to_vec();
        self.write(what, move |db| Box::pin(async move { key_vault::restore_secret(db, &versions).await }))
    }

    // Replicas: the queries live in `replica`.

    fn changes_since(&self, seq: i64, limit: usize) -> Result<ChangeBatch> {
        self.read("reading the change log", move |db| {
            Box::pin(async move { replica::changes_since(db, seq, limit).await })
        })
    }

    fn prune_changes(&self, before: i64) -> Result<usize> {
        self.write("pruning the change log", move |db| {
            Box::pin(async move { replica::prune_changes(db, before).await })
        })
    }

    fn wait_for_changes(&self, timeout: Duration) -> Result<()> {
        self.run(move |shared| replica::wait_for_changes(shared, timeout))
    }

    fn lock(&self, name: &str, timeout: Duration) -> Result<LockGuard> {
        let name = name.to_string();
        let held = self.run(move |shared| replica::lock(shared, name, timeout))?;
        Ok(LockGuard::new(replica::HeldLock::new(held, self.handle.clone())))
    }

    fn export(&self, out: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        replica::export(&self.handle, self.shared.clone(), out)
    }

    fn import(&self, records: &mut dyn Iterator<Item = Result<Record>>) -> Result<u64> {
        replica::import(&self.handle, self.shared.clone(), records)
    }
}
