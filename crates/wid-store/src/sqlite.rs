//! The embedded SQLite backend: one file, WAL, every commit fsynced.
//!
//! One writer connection behind a mutex serializes writes (SQLite allows one writer anyway, and an
//! `IMMEDIATE` transaction per call keeps check-then-write sequences atomic). Reads go to a small pool
//! of reader connections, so a `GET` or a list never waits for a writer's fsync: in WAL mode readers
//! see the last committed state while a write is in progress. An in-memory database (tests) has no
//! pool; everything goes through the writer connection.
//!
//! The schema lives in `migrations/` and is applied at open, in one transaction, tracked by
//! `PRAGMA user_version`. Keys are computed in Rust (`wid_core::model::name_key`, `Scope::key`), never
//! with SQL functions, so every backend agrees on them.
//!
//! Key Vault storage (vaults, secret versions, soft delete, paging) is in the `key_vault` submodule.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params};
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

mod cache;
mod key_vault;

/// The migrations, in order; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_init.sql"),
    include_str!("../migrations/0002_key_vault.sql"),
    include_str!("../migrations/0003_changes.sql"),
    include_str!("../migrations/0004_cluster_extras.sql"),
    include_str!("../migrations/0005_identity_bindings.sql"),
];

/// `PRAGMA application_id` of a wid database ("wid1"), so another program's SQLite file is refused.
const APPLICATION_ID: i32 = 0x7769_6431;

/// Reader connections for a file database. Two cover the machines wid targets; reads are short.
const READERS: usize = 2;

/// How long a connection waits for a lock held by another connection (e.g. a checkpoint).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite backend. See the module docs for the connection layout.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Held (exclusively locked) while the store is open; `None` in memory.
    _lock: Option<std::fs::File>,
    /// Named locks ([`Store::lock`]): one process owns the file, so they live here.
    locks: std::sync::Arc<NamedLocks>,
    /// The vault and secret-version reads of a secret `GET`; emptied by every write.
    cache: cache::ReadCache,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("readers", &self.readers.len()).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it, mode 0600, if absent) the database at `path` and brings its schema up to
    /// date. Refuses a database written by a newer wid, or a SQLite file that is not a wid database.
    ///
    /// SQLite creates the `-wal` and `-shm` files with the main file's permission bits, so they are
    /// 0600 too; the directory's permissions are the operator's to set.
    ///
    /// One process at a time: a second `open` of the same file (another `wid serve`, an offline admin
    /// command) fails while this store lives, because each keeps in-memory indexes the other's writes
    /// would bypass. The lock is an advisory `flock` on `{path}-lock`, released when the store drops.
    pub fn open(path: &Path) -> Result<Self> {
        let lock = lock_exclusive(path)?;
        create_private_file(path)?;
        let mut writer = open_connection(path)?;
        if writer.is_readonly(rusqlite::MAIN_DB).map_err(sql("opening the database"))? {
            return Err(StoreError::Backend(format!("the database file '{}' is not writable", path.display())));
        }
        configure(&writer, false)?;
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0)).map_err(sql("enabling WAL"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend(format!(
                "the database '{}' cannot use write-ahead logging (journal mode is '{mode}'); \
                 put it on a local file system",
                path.display()
            )));
        }
        migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let conn = open_connection(path)?;
                configure(&conn, true)?;
                Ok(Mutex::new(conn))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            _lock: Some(lock),
            locks: Default::default(),
            cache: Default::default(),
        })
    }

    /// A private in-memory database (tests): same schema and rules, nothing durable.
    pub fn open_in_memory() -> Result<Self> {
        let mut conn = Connection::open_in_memory().map_err(sql("opening an in-memory database"))?;
        configure(&conn, false)?;
        migrate(&mut conn)?;
        Ok(Self {
            writer: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            _lock: None,
            locks: Default::default(),
            cache: Default::default(),
        })
    }

    /// Runs `f` in an `IMMEDIATE` transaction on the writer and commits; any error rolls back.
    /// Empties the read cache before returning, whatever the outcome.
    fn write<T>(&self, what: &str, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.writer.lock().map_err(|_| poisoned())?;
        let out = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql(what)).and_then(|tx| {
            let out = f(&tx)?;
            tx.commit().map_err(sql(what))?;
            Ok(out)
        });
        self.cache.invalidate();
        out
    }

    /// Runs `f` on a reader connection (the writer for an in-memory database).
    fn read<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.reader()?;
        f(&mut conn)
    }

    /// A free reader if there is one, else waits for the next in turn.
    fn reader(&self) -> Result<MutexGuard<'_, Connection>> {
        let n = self.readers.len();
        if n == 0 {
            return self.writer.lock().map_err(|_| poisoned());
        }
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            if let Some(m) = self.readers.get((start + i) % n) {
                match m.try_lock() {
                    Ok(guard) => return Ok(guard),
                    Err(TryLockError::WouldBlock) => {}
                    Err(TryLockError::Poisoned(_)) => return Err(poisoned()),
                }
            }
        }
        let m = self.readers.get(start % n).ok_or_else(poisoned)?;
        m.lock().map_err(|_| poisoned())
    }
}

/// Takes the process-exclusive lock for the database at `path` (see [`SqliteStore::open`]).
fn lock_exclusive(path: &Path) -> Result<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push("-lock");
    let lock_path = Path::new(&lock_path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock_path)
        .map_err(|e| io_error("creating the lock file of", path, &e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Backend(format!(
            "the database '{}' is in use by another wid process (or another store in this one)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error("locking", path, &e)),
    }
}

/// Creates the database file with mode 0600 unless it exists, so SQLite never creates it under the
/// process umask; then syncs the directory so the new entry survives a crash.
fn create_private_file(path: &Path) -> Result<()> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => {
            file.sync_all().map_err(|e| io_error("creating", path, &e))?;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_error("syncing the directory of", path, &e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error("creating", path, &e)),
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} the database file '{}': {e}", path.display()))
}

/// Opens a connection to an existing file. No `CREATE` (the file was made private beforehand) and no
/// `URI` (the path is a path). The mutex is ours, so SQLite's own is off.
fn open_connection(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError::Backend(format!("opening the database '{}': {}", path.display(), sqlite_message(&e))))
}

/// Per-connection settings; checks the ones that matter for integrity actually took.
fn configure(conn: &Connection, reader: bool) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql("setting the busy timeout"))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Acknowledged writes survive power loss: with WAL, FULL fsyncs the log at every commit.
    conn.pragma_update(None, "synchronous", "FULL").map_err(sql("setting synchronous=FULL"))?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(sql("enabling foreign keys"))?;
    // Overwrite deleted content (e.g. retired sealed keys) instead of leaving it in free pages.
    conn.pragma_update(None, "secure_delete", "ON").map_err(sql("enabling secure_delete"))?;
    conn.pragma_update(None, "trusted_schema", "OFF").map_err(sql("disabling trusted_schema"))?;
    if reader {
        conn.pragma_update(None, "query_only", "ON").map_err(sql("making a reader read-only"))?;
    }
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).map_err(sql("reading synchronous"))?;
    let fks: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0)).map_err(sql("reading foreign_keys"))?;
    if sync != 2 || fks != 1 {
        return Err(StoreError::Backend(format!(
            "SQLite refused the required settings (synchronous={sync}, foreign_keys={fks})"
        )));
    }
    Ok(())
}

/// Brings the schema to the newest version this binary knows, in one transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let what = "migrating the database schema";
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sql(what))?;
    let app_id: i32 = tx.pragma_query_value(None, "application_id", |r| r.get(0)).map_err(sql(what))?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(sql(what))?;
    let known = MIGRATIONS.len() as i64;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(StoreError::Backend(format!(
            "the database is not a wid database (application_id {app_id:#x}); refusing to open it"
        )));
    }
    if version > known {
        return Err(StoreError::Backend(format!(
            "the database schema is version {version}, newer than this wid supports (up to {known}); \
             run the wid release that wrote it, or a newer one"
        )));
    }
    if version < 0 {
        return Err(StoreError::Backend(format!("the database schema version {version} is invalid")));
    }
    if version == 0 {
        let tables: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'", [], |r| r.get(0))
            .map_err(sql(what))?;
        if tables > 0 {
            return Err(StoreError::Backend(
                "the database has tables but no wid schema version; refusing to open another program's database".into(),
            ));
        }
    }
    for (i, script) in MIGRATIONS.iter().enumerate().skip(usize::try_from(version).unwrap_or(0)) {
        let to = i as i64 + 1;
        tx.execute_batch(script)
            .map_err(|e| StoreError::Backend(format!("applying schema migration {to}: {}", sqlite_message(&e))))?;
        tx.pragma_update(None, "user_version", to).map_err(sql(what))?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(sql(what))?;
    tx.commit().map_err(sql(what))
}

fn poisoned() -> StoreError {
    StoreError::Backend("the database connection is unusable: a previous call panicked while holding it".into())
}

/// The SQLite message of an error (names tables and columns, never bound values).
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(err, Some(msg)) => format!("{msg} ({err})"),
        other => other.to_string(),
    }
}

/// Maps a SQLite error during `what`: constraint violations become `Conflict`/`MissingParent`, the
/// rest (IO, full disk, read-only, locked…) `Backend`.
fn sql(what: &str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| {
        if let rusqlite::Error::SqliteFailure(f, msg) = &e
            && f.code == ErrorCode::ConstraintViolation
        {
            let msg = msg.as_deref().unwrap_or("constraint failed");
            return match f.extended_code {
                rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                    StoreError::MissingParent(format!("{what}: the record it belongs to does not exist"))
                }
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                    StoreError::Conflict(format!("{what}: {}", unique_rule(msg)))
                }
                _ => StoreError::Backend(format!("{what}: {msg}")),
            };
        }
        StoreError::Backend(format!("{what}: {}", sqlite_message(&e)))
    }
}

/// Says which uniqueness rule a SQLite `UNIQUE constraint failed: t.c, …` message is about.
fn unique_rule(msg: &str) -> String {
    let cols = msg.rsplit(": ").next().unwrap_or(msg);
    let rule = match cols {
        "identities.client_id" => "another identity has the same client id",
        "identities.principal_id" => "another identity has the same principal id",
        "clusters.cluster_id" => "another cluster has the same cluster id",
        "apps.principal_id" => "another application has the same principal id",
        "vaults.vault_id" => "another vault has the same vault id",
        "secrets.vault, secrets.version" => "the vault already has a secret version with this id",
        c if c.starts_with("credentials.") && c.contains("credentials.issuer") => {
            "the identity already has a federated credential with this issuer and subject"
        }
        c if c.starts_with("role_assignments.principal_id") => "the principal already holds this role at this scope",
        _ => return format!("already exists ({msg})"),
    };
    rule.to_string()
}

// ---------------------------------------------------------------------------------------------------
// Encoding and decoding rows (column lists and decoders: `crate::rows`, shared by both backends).

fn json<T: serde::Serialize + ?Sized>(what: &str, value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(format!("{what}: cannot encode: {e}")))
}

/// SQLite keeps flags as integers: nonzero is true.
impl RawRow for Row<'_> {
    fn opt_text(&self, col: &str) -> std::result::Result<Option<String>, String> {
        self.get(col).map_err(|e: rusqlite::Error| e.to_string())
    }
    fn opt_int(&self, col: &str) -> std::result::Result<Option<i64>, String> {
        self.get(col).map_err(|e: rusqlite::Error| e.to_string())
    }
    fn opt_flag(&self, col: &str) -> std::result::Result<Option<bool>, String> {
        self.opt_int(col).map(|v| v.map(|v| v != 0))
    }
    fn opt_bytes(&self, col: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        self.get(col).map_err(|e: rusqlite::Error| e.to_string())
    }
}

/// Runs a query and decodes every row.
fn query_all<T>(
    conn: &Connection,
    what: &str,
    query: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&dyn RawRow) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(query).map_err(sql(what))?;
    let mut rows = stmt.query(params).map_err(sql(what))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql(what))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Runs a query expected to return at most one row.
fn query_opt<T>(
    conn: &Connection,
    what: &str,
    query: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&dyn RawRow) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(query).map_err(sql(what))?;
    let mut rows = stmt.query(params).map_err(sql(what))?;
    match rows.next().map_err(sql(what))? {
        Some(row) => decode(row).map(Some),
        None => Ok(None),
    }
}

fn exists(conn: &Connection, what: &str, query: &str, params: impl rusqlite::Params) -> Result<bool> {
    let mut stmt = conn.prepare_cached(query).map_err(sql(what))?;
    stmt.query_row(params, |_| Ok(())).optional().map(|r| r.is_some()).map_err(sql(what))
}

fn written(existed: bool) -> Written {
    if existed { Written::Updated } else { Written::Created }
}

/// The parameters identifying a resource inside a group: subscription, group key, name key.
fn key_params(key: &ResourceKey) -> [Value; 3] {
    [
        Value::Text(key.subscription.to_string()),
        Value::Text(name_key(&key.resource_group)),
        Value::Text(name_key(&key.name)),
    ]
}

fn uuid_text(id: Uuid) -> String {
    id.to_string()
}

fn opt_uuid_text(id: Option<Uuid>) -> Option<String> {
    id.map(uuid_text)
}

/// The scope key under which role assignments belong to a resource group.
fn resource_group_scope_key(subscription: Uuid, rg_key: &str) -> String {
    format!("/subscriptions/{subscription}/resourcegroups/{rg_key}")
}

fn rg_exists(tx: &Connection, what: &str, subscription: Uuid, rg_key: &str) -> Result<bool> {
    exists(
        tx,
        what,
        "SELECT 1 FROM resource_groups WHERE subscription = ?1 AND name_key = ?2",
        params![uuid_text(subscription), rg_key],
    )
}

// Writes, one function per record type, shared by the trait methods and `import`.

fn meta_put(tx: &Connection, what: &str, key: &str, value: &[u8]) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut s| s.execute(params![key, value]))
    .map_err(sql(what))?;
    Ok(())
}

fn put_signing_key(tx: &Connection, what: &str, key: &SigningKeyRecord) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO signing_keys (kid, purpose, sealed_pkcs8, created, retired, expires) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (kid) DO UPDATE SET purpose = excluded.purpose, sealed_pkcs8 = excluded.sealed_pkcs8, \
         created = excluded.created, retired = excluded.retired, expires = excluded.expires",
    )
    .and_then(|mut s| s.execute(params![key.kid, key.purpose, key.sealed_pkcs8, key.created, key.retired, key.expires]))
    .map_err(sql(what))?;
    log_changes(tx, what, [&Changed::SigningKeys(key.purpose.clone())])
}

fn put_resource_group(tx: &Connection, what: &str, rg: &ResourceGroup) -> Result<Written> {
    let tags = json(what, &rg.tags)?;
    let sub = uuid_text(rg.subscription);
    let key = name_key(&rg.name);
    let existed = rg_exists(tx, what, rg.subscription, &key)?;
    tx.prepare_cached(
        "INSERT INTO resource_groups (subscription, name_key, name, location, tags, created) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
         ON CONFLICT (subscription, name_key) DO UPDATE SET name = excluded.name, \
         location = excluded.location, tags = excluded.tags, created = excluded.created",
    )
    .and_then(|mut s| s.execute(params![sub, key, rg.name, rg.location, tags, rg.created]))
    .map_err(sql(what))?;
    Ok(written(existed))
}

fn put_identity(tx: &Connection, what: &str, identity: &Identity) -> Result<Written> {
    let tags = json(what, &identity.tags)?;
    let key = identity.key();
    let [sub, rg_key, id_key] = key_params(&key);
    if !rg_exists(tx, what, key.subscription, &key.resource_group)? {
        return Err(StoreError::MissingParent(format!(
            "resource group '{}' does not exist in subscription {}",
            identity.resource_group, identity.subscription
        )));
    }
    let existed = exists(
        tx,
        what,
        "SELECT 1 FROM identities WHERE subscription = ?1 AND rg_key = ?2 AND name_key = ?3",
        params![sub, rg_key, id_key],
    )?;
    tx.prepare_cached(
        "INSERT INTO identities (subscription, rg_key, name_key, resource_group, name, location, tags, \
         tenant_id, client_id, principal_id, created, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (subscription, rg_key, name_key) DO UPDATE SET \
         resource_group = excluded.resource_group, name = excluded.name, location = excluded.location, \
         tags = excluded.tags, tenant_id = excluded.tenant_id, client_id = excluded.client_id, \
         principal_id = excluded.principal_id, created = excluded.created, updated = excluded.updated",
    )
    .and_then(|mut s| {
        s.execute(params![
            sub,
            rg_key,
            id_key,
            identity.resource_group,
            identity.name,
            identity.location,
            tags,
            uuid_text(identity.tenant_id),
            uuid_text(identity.client_id),
            uuid_text(identity.principal_id),
            identity.created,
            identity.updated,
        ])
    })
    .map_err(sql(what))?;
    log_changes(tx, what, [&Changed::Identity(key.clone())])?;
    Ok(written(existed))
}

fn put_credential(tx: &Connection, what: &str, cred: &StoredCredential) -> Result<Written> {
    let c = &cred.credential;
    let audiences = json(what, &c.audiences)?;
    let [sub, rg_key, id_key] = key_params(&cred.identity);
    let cred_key = name_key(&c.name);
    let (expression, version) = match &c.claims_matching_expression {
        Some(e) => (Some(e.value.as_str()), Some(e.language_version)),
        None => (None, None),
    };
    let identity_exists = exists(
        tx,
        what,
        "SELECT 1 FROM identities WHERE subscription = ?1 AND rg_key = ?2 AND name_key = ?3",
        params![sub, rg_key, id_key],
    )?;
    if !identity_exists {
        return Err(StoreError::MissingParent(format!(
            "identity '{}' does not exist in resource group '{}' of subscription {}",
            cred.identity.name, cred.identity.resource_group, cred.identity.subscription
        )));
    }
    let existed = exists(
        tx,
        what,
        "SELECT 1 FROM credentials \
         WHERE subscription = ?1 AND rg_key = ?2 AND identity_key = ?3 AND name_key = ?4",
        params![sub, rg_key, id_key, cred_key],
    )?;
    tx.prepare_cached(
        "INSERT INTO credentials (subscription, rg_key, identity_key, name_key, name, issuer, subject, \
         expression, expression_version, audiences, description, created, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
         ON CONFLICT (subscription, rg_key, identity_key, name_key) DO UPDATE SET \
         name = excluded.name, issuer = excluded.issuer, subject = excluded.subject, \
         expression = excluded.expression, expression_version = excluded.expression_version, \
         audiences = excluded.audiences, description = excluded.description, \
         created = excluded.created, updated = excluded.updated",
    )
    .and_then(|mut s| {
        s.execute(params![
            sub,
            rg_key,
            id_key,
            cred_key,
            c.name,
            c.issuer,
            c.subject,
            expression,
            version,
            audiences,
            c.description,
            cred.created,
            cred.updated,
        ])
    })
    .map_err(sql(what))?;
    log_changes(tx, what, [&Changed::Identity(cred.identity.clone())])?;
    Ok(written(existed))
}

fn put_cluster(tx: &Connection, what: &str, cluster: &Cluster) -> Result<Written> {
    let tags = json(what, &cluster.tags)?;
    let bindings = (!cluster.extras.identity_bindings.is_empty())
        .then(|| json(what, &cluster.extras.identity_bindings))
        .transpose()?;
    let key = cluster.key();
    let [sub, rg_key, cl_key] = key_params(&key);
    let (kind, url, kid, jwks) = match &cluster.issuer {
        ClusterIssuer::Hosted { issuer_url, kid } => ("hosted", issuer_url, Some(kid), None),
        ClusterIssuer::External { issuer_url, jwks } => ("external", issuer_url, None, jwks.as_ref()),
    };
    if !rg_exists(tx, what, key.subscription, &key.resource_group)? {
        return Err(StoreError::MissingParent(format!(
            "resource group '{}' does not exist in subscription {}",
            cluster.resource_group, cluster.subscription
        )));
    }
    let existed = exists(
        tx,
        what,
        "SELECT 1 FROM clusters WHERE subscription = ?1 AND rg_key = ?2 AND name_key = ?3",
        params![sub, rg_key, cl_key],
    )?;
    tx.prepare_cached(
        "INSERT INTO clusters (subscription, rg_key, name_key, resource_group, name, location, tags, \
         cluster_id, issuer_kind, issuer_url, issuer_kid, issuer_jwks, workload_identity, api_server, \
         api_server_ca, arm_extra, identity_bindings, created, updated) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
         ON CONFLICT (subscription, rg_key, name_key) DO UPDATE SET \
         resource_group = excluded.resource_group, name = excluded.name, location = excluded.location, \
         tags = excluded.tags, cluster_id = excluded.cluster_id, issuer_kind = excluded.issuer_kind, \
         issuer_url = excluded.issuer_url, issuer_kid = excluded.issuer_kid, \
         issuer_jwks = excluded.issuer_jwks, workload_identity = excluded.workload_identity, \
         api_server = excluded.api_server, api_server_ca = excluded.api_server_ca, \
         arm_extra = excluded.arm_extra, identity_bindings = excluded.identity_bindings, \
         created = excluded.created, updated = excluded.updated",
    )
    .and_then(|mut s| {
        s.execute(params![
            sub,
            rg_key,
            cl_key,
            cluster.resource_group,
            cluster.name,
            cluster.location,
            tags,
            uuid_text(cluster.cluster_id),
            kind,
            url,
            kid,
            jwks,
            i64::from(cluster.workload_identity),
            cluster.extras.api_server,
            cluster.extras.api_server_ca,
            cluster.extras.arm,
            bindings,
            cluster.created,
            cluster.updated,
        ])
    })
    .map_err(sql(what))?;
    log_changes(tx, what, [&Changed::Cluster(key.clone())])?;
    Ok(written(existed))
}

fn put_app(tx: &Connection, what: &str, app: &AppPrincipal) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO apps (client_id, principal_id, display_name, secret_hash, created) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (client_id) DO UPDATE SET principal_id = excluded.principal_id, \
         display_name = excluded.display_name, secret_hash = excluded.secret_hash, \
         created = excluded.created",
    )
    .and_then(|mut s| {
        s.execute(params![
            uuid_text(app.client_id),
            uuid_text(app.principal_id),
            app.display_name,
            app.secret_hash,
            app.created,
        ])
    })
    .map_err(sql(what))?;
    log_changes(tx, what, [&Changed::App(app.client_id)])
}

fn insert_role_assignment(tx: &Connection, what: &str, ra: &RoleAssignment) -> Result<()> {
    // The service validated the scope; a scope that does not parse cannot be stored consistently.
    let scope = Scope::parse(&ra.scope)
        .map_err(|e| StoreError::Corrupt(format!("role assignment {} cannot be stored: {e}", ra.id)))?;
    let id = uuid_text(ra.id);
    let principal = uuid_text(ra.principal_id);
    let role = uuid_text(ra.role_definition_id);
    if exists(tx, what, "SELECT 1 FROM role_assignments WHERE id = ?1", [&id])? {
        return Err(StoreError::Conflict(format!("a role assignment with id {id} already exists")));
    }
    let twin = query_opt(
        tx,
        what,
        "SELECT id FROM role_assignments \
         WHERE principal_id = ?1 AND role_definition_id = ?2 AND scope_key = ?3",
        params![principal, role, scope.key()],
        |row| Cols { row, table: "role_assignments" }.text("id"),
    )?;
    if let Some(existing) = twin {
        return Err(StoreError::Conflict(format!(
            "principal {principal} already holds role {role} at scope '{}' (role assignment {existing})",
            ra.scope
        )));
    }
    tx.prepare_cached(
        "INSERT INTO role_assignments (id, scope, scope_key, role_definition_id, principal_id, \
         principal_type, description, created, updated, created_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .and_then(|mut s| {
        s.execute(params![
            id,
            ra.scope,
            scope.key(),
            role,
            principal,
            ra.principal_type.as_str(),
            ra.description,
            ra.created,
            ra.updated,
            opt_uuid_text(ra.created_by),
        ])
    })
    .map_err(sql(what))?;
    log_changes(tx, what, [&ra_changed(ra)])
}

/// Runs an export query, turning each row into a record.
type ExportQuery<'a> = dyn FnMut(&str, &dyn Fn(&dyn RawRow) -> Result<Record>) -> Result<()> + 'a;

/// Appends change-log rows (see `migrations/0003_changes.sql`).
fn log_changes<'c>(tx: &Connection, what: &str, changes: impl IntoIterator<Item = &'c Changed>) -> Result<()> {
    let at = crate::unix_now();
    let mut stmt = tx.prepare_cached("INSERT INTO changes (at, kind, key) VALUES (?1, ?2, ?3)").map_err(sql(what))?;
    for change in changes {
        let (kind, key) = change.encode();
        stmt.execute(params![at, kind, key]).map_err(sql(what))?;
    }
    Ok(())
}

fn ra_changed(ra: &RoleAssignment) -> Changed {
    Changed::RoleAssignment { id: ra.id, principal: ra.principal_id }
}

/// The process-wide named locks of a SQLite store.
#[derive(Default)]
struct NamedLocks {
    held: Mutex<std::collections::HashSet<String>>,
    freed: std::sync::Condvar,
}

/// Releases a named lock when dropped.
struct NamedLockRelease {
    locks: std::sync::Arc<NamedLocks>,
    name: String,
}

impl Drop for NamedLockRelease {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.name);
        self.locks.freed.notify_all();
    }
}

impl Store for SqliteStore {
    fn meta_get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|conn| {
            query_opt(conn, "reading metadata", "SELECT value FROM meta WHERE key = ?1", [key], |row| {
                Cols { row, table: "meta" }.bytes("value")
            })
        })
    }

    fn meta_insert(&self, key: &str, value: &[u8]) -> Result<bool> {
        let what = format!("inserting metadata '{key}'");
        self.write(&what, |tx| {
            let n = tx
                .prepare_cached("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING")
                .and_then(|mut s| s.execute(params![key, value]))
                .map_err(sql(&what))?;
            Ok(n == 1)
        })
    }

    fn meta_put(&self, key: &str, value: &[u8]) -> Result<()> {
        let what = format!("writing metadata '{key}'");
        self.write(&what, |tx| meta_put(tx, &what, key, value))
    }

    fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        self.read(|conn| {
            query_all(
                conn,
                "reading signing keys",
                &format!("SELECT {SIGNING_KEY_COLS} FROM signing_keys ORDER BY created, kid"),
                [],
                rows::signing_key,
            )
        })
    }

    fn put_signing_key(&self, key: &SigningKeyRecord) -> Result<()> {
        let what = format!("writing signing key '{}'", key.kid);
        self.write(&what, |tx| put_signing_key(tx, &what, key))
    }

    fn delete_signing_key(&self, kid: &str) -> Result<()> {
        let what = format!("deleting signing key '{kid}'");
        self.write(&what, |tx| {
            let purpose = query_opt(tx, &what, "SELECT purpose FROM signing_keys WHERE kid = ?1", [kid], |row| {
                Cols { row, table: "signing_keys" }.text("purpose")
            })?;
            let Some(purpose) = purpose else { return Ok(()) };
            tx.prepare_cached("DELETE FROM signing_keys WHERE kid = ?1")
                .and_then(|mut s| s.execute([kid]))
                .map_err(sql(&what))?;
            log_changes(tx, &what, [&Changed::SigningKeys(purpose)])
        })
    }

    fn put_resource_group(&self, rg: &ResourceGroup) -> Result<Written> {
        let what = format!("writing resource group '{}'", rg.name);
        self.write(&what, |tx| put_resource_group(tx, &what, rg))
    }

    fn resource_group(&self, subscription: Uuid, name: &str) -> Result<Option<ResourceGroup>> {
        self.read(|conn| {
            query_opt(
                conn,
                "reading a resource group",
                &format!("SELECT {RG_COLS} FROM resource_groups WHERE subscription = ?1 AND name_key = ?2"),
                params![uuid_text(subscription), name_key(name)],
                rows::resource_group,
            )
        })
    }

    fn resource_groups(&self, subscription: Uuid) -> Result<Vec<ResourceGroup>> {
        self.read(|conn| {
            query_all(
                conn,
                "listing resource groups",
                &format!("SELECT {RG_COLS} FROM resource_groups WHERE subscription = ?1 ORDER BY name_key"),
                [uuid_text(subscription)],
                rows::resource_group,
            )
        })
    }

    fn delete_resource_group(&self, subscription: Uuid, name: &str) -> Result<Option<Removed>> {
        let what = format!("deleting resource group '{name}'");
        let sub = uuid_text(subscription);
        let key = name_key(name);
        let scope_key = resource_group_scope_key(subscription, &key);
        let below = format!("{scope_key}/");
        self.write(&what, |tx| {
            if !rg_exists(tx, &what, subscription, &key)? {
                return Ok(None);
            }
            let identities = query_all(
                tx,
                &what,
                &format!(
                    "SELECT {IDENTITY_COLS} FROM identities WHERE subscription = ?1 AND rg_key = ?2 ORDER BY name_key"
                ),
                params![sub, key],
                rows::identity,
            )?;
            let clusters = query_all(
                tx,
                &what,
                &format!(
                    "SELECT {CLUSTER_COLS} FROM clusters WHERE subscription = ?1 AND rg_key = ?2 ORDER BY name_key"
                ),
                params![sub, key],
                rows::cluster,
            )?;
            // "At or below" on whole segments: the group's key itself, or the key followed by '/'.
            let ra_filter = "scope_key = ?1 OR substr(scope_key, 1, length(?2)) = ?2";
            let role_assignments = query_all(
                tx,
                &what,
                &format!("SELECT {RA_COLS} FROM role_assignments WHERE {ra_filter} ORDER BY scope_key, id"),
                params![scope_key, below],
                rows::role_assignment,
            )?;
            let run = |query: &str, params: &[&dyn rusqlite::ToSql]| {
                tx.prepare_cached(query).and_then(|mut s| s.execute(params)).map_err(sql(&what))
            };
            run(&format!("DELETE FROM role_assignments WHERE {ra_filter}"), params![scope_key, below])?;
            run("DELETE FROM clusters WHERE subscription = ?1 AND rg_key = ?2", params![sub, key])?;
            run("DELETE FROM identities WHERE subscription = ?1 AND rg_key = ?2", params![sub, key])?;
            // Vaults outlive their group, soft-deleted (see `key_vault::soft_delete_group_vaults`).
            let vaults = key_vault::soft_delete_group_vaults(tx, &what, &sub, &key)?;
            run("DELETE FROM resource_groups WHERE subscription = ?1 AND name_key = ?2", params![sub, key])?;
            let changes: Vec<Changed> = identities
                .iter()
                .map(|i| Changed::Identity(i.key()))
                .chain(clusters.iter().map(|c| Changed::Cluster(c.key())))
                .chain(role_assignments.iter().map(ra_changed))
                .collect();
            log_changes(tx, &what, &changes)?;
            Ok(Some(Removed { identities, clusters, role_assignments, vaults }))
        })
    }

    fn put_identity(&self, identity: &Identity) -> Result<Written> {
        let what = format!("writing identity '{}'", identity.name);
        self.write(&what, |tx| put_identity(tx, &what, identity))
    }

    fn identity(&self, key: &ResourceKey) -> Result<Option<Identity>> {
        self.read(|conn| {
            query_opt(
                conn,
                "reading an identity",
                &format!(
                    "SELECT {IDENTITY_COLS} FROM identities WHERE subscription = ?1 AND rg_key = ?2 AND name_key = ?3"
                ),
                key_params(key),
                rows::identity,
            )
        })
    }

    fn identities(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Identity>> {
        self.read(|conn| {
            let sub = uuid_text(subscription);
            match resource_group {
                Some(rg) => query_all(
                    conn,
                    "listing identities",
                    &format!(
                        "SELECT {IDENTITY_COLS} FROM identities WHERE subscription = ?1 AND rg_key = ?2 \
                         ORDER BY rg_key, name_key"
                    ),
                    params![sub, name_key(rg)],
                    rows::identity,
                ),
                None => query_all(
                    conn,
                    "listing identities",
                    &format!(
                        "SELECT {IDENTITY_COLS} FROM identities WHERE subscription = ?1 ORDER BY rg_key, name_key"
                    ),
                    [sub],
                    rows::identity,
                ),
            }
        })
    }

    fn delete_identity(&self, key: &ResourceKey) -> Result<Option<Identity>> {
        let what = format!("deleting identity '{}'", key.name);
        self.write(&what, |tx| {
            let found = query_opt(
                tx,
                &what,
                &format!(
                    "SELECT {IDENTITY_COLS} FROM identities WHERE subscription = ?1 AND rg_key = ?2 AND name_key = ?3"
                ),
                key_params(key),
                rows::identity,
            )?;
            if found.is_some() {
                // Credentials go with it (ON DELETE CASCADE).
                tx.prepare_cached("DELETE FROM identities WHERE subscription = ?1 AND rg_key = ?2 AND name_key = ?3")
                    .and_then(|mut s| s.execute(key_params(key)))
                    .map_err(sql(&what))?;
                log_changes(tx, &what, [&Changed::Identity(key.clone())])?;
            }
            Ok(found)
        })
    }

    fn put_credential(&self, cred: &StoredCredential) -> Result<Written> {
        let c = &cred.credential;
        let what = format!("writing federated credential '{}'", c.name);
        self.write(&what, |tx| put_credential(tx, &what, cred))
    }

    fn credentials(&self, identity: &ResourceKey) -> Result<Vec<StoredCredential>> {
        self.read(|conn| {
            query_all(
                conn,
                "listing federated credentials",
                &format!(
                    "SELECT {CREDENTIAL_COLS} FROM credentials \
                     WHERE subscription = ?1 AND rg_key = ?2 AND identity_key = ?3 ORDER BY name_key"
                ),
                key_params(identity),
                rows::credential,
            )
        })
    }

    fn credential(&self, identity: &ResourceKey, name: &str) -> Result<Option<StoredCredential>> {
        let [sub, rg_key, id_key] = key_params(identity);
        self.read(|conn| {
            query_opt(
                conn,
                "reading a federated credential",
                &format!(
                    "SELECT {CREDENTIAL_COLS} FROM credentials \
                     WHERE subscription = ?1 AND rg_key = ?2 AND identity_key = ?3 AND name_key = ?4"
                ),
                params![sub, rg_key, id_key, name_key(name)],
                rows::credential,
            )
        })
    }

    fn credential_count(&self, identity: &ResourceKey) -> Result<usize> {
        let what = "counting federated credentials";
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT COUNT(*) FROM credentials WHERE subscription = ?1 AND rg_key = ?2 AND identity_key = ?3",
            )
            .and_then(|mut s| s.query_row(key_params(identity), |r| r.get::<_, i64>(0)))
            .map(|n| usize::try_from(n).unwrap_or(0))
            .map_err(sql(what))
        })
    }

    fn delete_credential(&self, identity: &ResourceKey, name: &str) -> Result<Option<StoredCredential>> {
        let what = format!("deleting federated credential '{name}'");
        let [sub, rg_key, id_key] = key_params(identity);
        let cred_key = name_key(name);
        self.write(&what, |tx| {
            let filter = "subscription = ?1 AND rg_key = ?2 AND identity_key = ?3 AND name_key = ?4";
            let found = query_opt(
                tx,
                &what,
                &format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE {filter}"),
                params![sub, rg_key, id_key, cred_key],
                rows::credential,
            )?;
            if found.is_some() {
                tx.prepare_cached(&format!("DELETE FROM credentials WHERE {filter}"))
                    .and_then(|mut s| s.execute(params![sub, rg_key, id_key, cred_key]))
                    .map_err(sql(&what))?;
                log_changes(tx, &what, [&Changed::Identity(identity.clone())])?;
            }
            Ok(found)
        })
    }

    fn put_cluster(&self, cluster: &Cluster) -> Result<Written> {
        let what = format!("writing cluster '{}'", cluster.name);
        self.write(&what, |tx| put_cluster(tx, &what, cluster))
    }

    fn cluster(&self, key: &ResourceKey) -> Result<Option<Cluster>> {
        self.read(|conn| {
            query_opt(
                conn,
                "reading a cluster",
                &format!(
                    "SELECT {CLUSTER_COLS} FROM clusters WHERE subscription = ?1 AND rg_key = ?2 AND name_key = ?3"
                ),
                key_params(key),
                rows::cluster,
            )
        })
    }

    fn clusters(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Cluster>> {
        self.read(|conn| {
            let sub = uuid_text(subscription);
            match resource_group {
                Some(rg) => query_all(
                    conn,
                    "listing clusters",
                    &format!(
                        "SELECT {CLUSTER_COLS} FROM clusters WHERE subscription = ?1 AND rg_key = ?2 \
                         ORDER BY rg_key, name_key"
                    ),
                    params![sub, name_key(rg)],
                    rows::cluster,
                ),
                None => query_all(
                    conn,
                    "listing clusters",
                    &format!("SELECT {CLUSTER_COLS} FROM clusters WHERE subscription = ?1 ORDER BY rg_key, name_key"),
                    [sub],
                    rows::cluster,
                ),
            }
        })
    }

    fn delete_cluster(&self, key: &ResourceKey) -> Result<Option<Cluster>> {
        let what = format!("deleting cluster '{}'", key.name);
        self.write(&what, |tx| {
            let filter = "subscription = ?1 AND rg_key = ?2 AND name_key = ?3";
            let found = query_opt(
                tx,
                &what,
                &format!("SELECT {CLUSTER_COLS} FROM clusters WHERE {filter}"),
                key_params(key),
                rows::cluster,
            )?;
            if found.is_some() {
                tx.prepare_cached(&format!("DELETE FROM clusters WHERE {filter}"))
                    .and_then(|mut s| s.execute(key_params(key)))
                    .map_err(sql(&what))?;
                log_changes(tx, &what, [&Changed::Cluster(key.clone())])?;
            }
            Ok(found)
        })
    }

    fn put_app(&self, app: &AppPrincipal) -> Result<()> {
        let what = format!("writing application '{}'", app.display_name);
        self.write(&what, |tx| put_app(tx, &what, app))
    }

    fn app(&self, client_id: Uuid) -> Result<Option<AppPrincipal>> {
        self.read(|conn| {
            query_opt(
                conn,
                "reading an application",
                &format!("SELECT {APP_COLS} FROM apps WHERE client_id = ?1"),
                [uuid_text(client_id)],
                rows::app,
            )
        })
    }

    fn insert_role_assignment(&self, ra: &RoleAssignment) -> Result<()> {
        let what = format!("creating role assignment {}", ra.id);
        self.write(&what, |tx| insert_role_assignment(tx, &what, ra))
    }

    fn role_assignment(&self, id: Uuid) -> Result<Option<RoleAssignment>> {
        self.read(|conn| {
            query_opt(
                conn,
                "reading a role assignment",
                &format!("SELECT {RA_COLS} FROM role_assignments WHERE id = ?1"),
                [uuid_text(id)],
                rows::role_assignment,
            )
        })
    }

    fn role_assignments(&self, principal: Option<Uuid>) -> Result<Vec<RoleAssignment>> {
        let what = "listing role assignments";
        self.read(|conn| match principal {
            Some(p) => query_all(
                conn,
                what,
                &format!("SELECT {RA_COLS} FROM role_assignments WHERE principal_id = ?1 ORDER BY scope_key, id"),
                [uuid_text(p)],
                rows::role_assignment,
            ),
            None => query_all(
                conn,
                what,
                &format!("SELECT {RA_COLS} FROM role_assignments ORDER BY scope_key, id"),
                [],
                rows::role_assignment,
            ),
        })
    }

    fn delete_role_assignment(&self, id: Uuid) -> Result<Option<RoleAssignment>> {
        let what = format!("deleting role assignment {id}");
        let id = uuid_text(id);
        self.write(&what, |tx| {
            let found = query_opt(
                tx,
                &what,
                &format!("SELECT {RA_COLS} FROM role_assignments WHERE id = ?1"),
                [&id],
                rows::role_assignment,
            )?;
            if let Some(ra) = &found {
                tx.prepare_cached("DELETE FROM role_assignments WHERE id = ?1")
                    .and_then(|mut s| s.execute([&id]))
                    .map_err(sql(&what))?;
                log_changes(tx, &what, [&ra_changed(ra)])?;
            }
            Ok(found)
        })
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let what = "reading a snapshot";
        self.read(|conn| {
            // One read transaction: in WAL mode every query below sees the same committed state.
            let tx = conn.transaction().map_err(sql(what))?;
            let snapshot = Snapshot {
                identities: query_all(
                    &tx,
                    what,
                    &format!("SELECT {IDENTITY_COLS} FROM identities ORDER BY subscription, rg_key, name_key"),
                    [],
                    rows::identity,
                )?,
                credentials: query_all(
                    &tx,
                    what,
                    &format!(
                        "SELECT {CREDENTIAL_COLS} FROM credentials \
                         ORDER BY subscription, rg_key, identity_key, name_key"
                    ),
                    [],
                    rows::credential,
                )?,
                clusters: query_all(
                    &tx,
                    what,
                    &format!("SELECT {CLUSTER_COLS} FROM clusters ORDER BY subscription, rg_key, name_key"),
                    [],
                    rows::cluster,
                )?,
                apps: query_all(&tx, what, &format!("SELECT {APP_COLS} FROM apps ORDER BY client_id"), [], rows::app)?,
                role_assignments: query_all(
                    &tx,
                    what,
                    &format!("SELECT {RA_COLS} FROM role_assignments ORDER BY scope_key, id"),
                    [],
                    rows::role_assignment,
                )?,
                change_head: tx
                    .query_row("SELECT coalesce(max(seq), 0) FROM changes", [], |r| r.get(0))
                    .map_err(sql(what))?,
            };
            tx.commit().map_err(sql(what))?;
            Ok(snapshot)
        })
    }

    // Key Vault: the queries live in `key_vault`; each write is one IMMEDIATE transaction.

    fn put_vault(&self, vault: &Vault) -> Result<Written> {
        let what = format!("writing vault '{}'", vault.name);
        self.write(&what, |tx| key_vault::put_vault(tx, &what, vault))
    }

    fn vault(&self, name: &str) -> Result<Option<Vault>> {
        let key = name_key(name);
        if let Some(hit) = self.cache.vault(&key) {
            return Ok(hit);
        }
        let generation = self.cache.generation();
        let found = self.read(|conn| key_vault::vault(conn, name))?;
        self.cache.fill_vault(generation, key, &found);
        Ok(found)
    }

    fn vaults(&self, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Vault>> {
        self.read(|conn| key_vault::vaults(conn, subscription, resource_group))
    }

    fn deleted_vaults(&self, subscription: Uuid) -> Result<Vec<Vault>> {
        self.read(|conn| key_vault::deleted_vaults(conn, subscription))
    }

    fn purge_vault(&self, name: &str) -> Result<Option<Vault>> {
        let what = format!("purging vault '{name}'");
        self.write(&what, |tx| key_vault::purge_vault(tx, &what, name))
    }

    fn insert_secret_version(&self, version: &SecretVersion) -> Result<()> {
        let what = format!("writing a version of secret '{}'", version.name);
        self.write(&what, |tx| key_vault::insert_secret_version(tx, &what, version))
    }

    fn update_secret_version(&self, version: &SecretVersion) -> Result<bool> {
        let what = format!("updating a version of secret '{}'", version.name);
        self.write(&what, |tx| key_vault::update_secret_version(tx, &what, version))
    }

    fn secret_version(&self, vault: &str, name: &str, version: Option<&str>) -> Result<Option<SecretVersion>> {
        let key = (name_key(vault), name_key(name), version.map(str::to_string));
        if let Some(hit) = self.cache.version(&key) {
            return Ok(hit);
        }
        let generation = self.cache.generation();
        let found = self.read(|conn| key_vault::secret_version(conn, vault, name, version))?;
        self.cache.fill_version(generation, key, &found);
        Ok(found)
    }

    fn secrets(&self, vault: &str, after: Option<&str>, limit: usize) -> Result<Page<SecretVersion>> {
        self.read(|conn| key_vault::secrets(conn, vault, after, limit))
    }

    fn secret_versions(
        &self,
        vault: &str,
        name: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<SecretVersion>> {
        self.read(|conn| key_vault::secret_versions(conn, vault, name, after, limit))
    }

    fn delete_secret(
        &self,
        vault: &str,
        name: &str,
        deleted: i64,
        scheduled_purge: i64,
    ) -> Result<Option<DeletedSecret>> {
        let what = format!("deleting secret '{name}'");
        self.write(&what, |tx| key_vault::delete_secret(tx, &what, vault, name, deleted, scheduled_purge))
    }

    fn deleted_secret(&self, vault: &str, name: &str) -> Result<Option<(DeletedSecret, SecretVersion)>> {
        self.read(|conn| key_vault::deleted_secret(conn, vault, name))
    }

    fn deleted_secrets(
        &self,
        vault: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<(DeletedSecret, SecretVersion)>> {
        self.read(|conn| key_vault::deleted_secrets(conn, vault, after, limit))
    }

    fn recover_secret(&self, vault: &str, name: &str) -> Result<Option<SecretVersion>> {
        let what = format!("recovering secret '{name}'");
        self.write(&what, |tx| key_vault::recover_secret(tx, &what, vault, name))
    }

    fn purge_secret(&self, vault: &str, name: &str) -> Result<bool> {
        let what = format!("purging secret '{name}'");
        self.write(&what, |tx| key_vault::purge_secret(tx, &what, vault, name))
    }

    fn purge_expired(&self, now: i64) -> Result<Purged> {
        let what = "purging expired deleted secrets and vaults";
        self.write(what, |tx| {
            let purged = key_vault::purge_expired(tx, what, now)?;
            log_changes(tx, what, &purged.role_assignments.iter().map(ra_changed).collect::<Vec<_>>())?;
            Ok(purged)
        })
    }

    fn restore_secret(&self, versions: &[SecretVersion]) -> Result<()> {
        let what = match versions.first() {
            Some(v) => format!("restoring secret '{}'", v.name),
            None => "restoring a secret".to_string(),
        };
        self.write(&what, |tx| key_vault::restore_secret(tx, &what, versions))
    }

    fn changes_since(&self, seq: i64, limit: usize) -> Result<ChangeBatch> {
        let what = "reading the change log";
        self.read(|conn| {
            let tx = conn.transaction().map_err(sql(what))?;
            let pruned: i64 =
                tx.query_row("SELECT through FROM changes_pruned", [], |r| r.get(0)).map_err(sql(what))?;
            let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
            let rows = query_all(
                &tx,
                what,
                "SELECT seq, kind, key FROM changes WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![seq, limit],
                |row| {
                    let c = Cols { row, table: "changes" };
                    Ok((c.int("seq")?, c.text("kind")?, c.text("key")?))
                },
            )?;
            tx.commit().map_err(sql(what))?;
            let changes = rows.into_iter().filter_map(|(seq, kind, key)| Some((seq, Changed::decode(&kind, &key)?)));
            Ok(ChangeBatch { changes: changes.collect(), resync: seq < pruned })
        })
    }

    fn prune_changes(&self, before: i64) -> Result<usize> {
        let what = "pruning the change log";
        self.write(what, |tx| {
            let through: Option<i64> = tx
                .query_row(
                    "SELECT max(seq) FROM changes WHERE at < ?1 AND seq < (SELECT max(seq) FROM changes)",
                    [before],
                    |r| r.get(0),
                )
                .map_err(sql(what))?;
            let Some(through) = through else { return Ok(0) };
            let n = tx.execute("DELETE FROM changes WHERE seq <= ?1", [through]).map_err(sql(what))?;
            tx.execute("UPDATE changes_pruned SET through = max(through, ?1)", [through]).map_err(sql(what))?;
            Ok(n)
        })
    }

    fn wait_for_changes(&self, timeout: Duration) -> Result<()> {
        // One process owns the file: every change was made here and is already applied.
        std::thread::sleep(timeout);
        Ok(())
    }

    fn lock(&self, name: &str, timeout: Duration) -> Result<LockGuard> {
        let deadline = std::time::Instant::now() + timeout;
        let mut held = self.locks.held.lock().map_err(|_| poisoned())?;
        while held.contains(name) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(StoreError::Busy(format!("'{name}' is held by another writer")));
            }
            held = self.locks.freed.wait_timeout(held, left).map_err(|_| poisoned())?.0;
        }
        held.insert(name.to_string());
        Ok(LockGuard::new(NamedLockRelease { locks: self.locks.clone(), name: name.to_string() }))
    }

    fn export(&self, out: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
        let what = "exporting";
        self.read(|conn| {
            // One read transaction: every query sees the same committed state.
            let tx = conn.transaction().map_err(sql(what))?;
            let each = |query: &str,
                        out: &mut dyn FnMut(Record) -> Result<()>,
                        decode: &dyn Fn(&dyn RawRow) -> Result<Record>| {
                let mut stmt = tx.prepare(query).map_err(sql(what))?;
                let mut rows = stmt.query([]).map_err(sql(what))?;
                while let Some(row) = rows.next().map_err(sql(what))? {
                    out(decode(row)?)?;
                }
                Ok::<_, StoreError>(())
            };
            each("SELECT key, value FROM meta ORDER BY key", out, &|row| {
                let c = Cols { row, table: "meta" };
                Ok(Record::Meta { key: c.text("key")?, value: c.bytes("value")? })
            })?;
            each(&format!("SELECT {SIGNING_KEY_COLS} FROM signing_keys ORDER BY created, kid"), out, &|row| {
                rows::signing_key(row).map(Record::SigningKey)
            })?;
            each(&format!("SELECT {RG_COLS} FROM resource_groups ORDER BY subscription, name_key"), out, &|row| {
                rows::resource_group(row).map(Record::ResourceGroup)
            })?;
            each(
                &format!("SELECT {IDENTITY_COLS} FROM identities ORDER BY subscription, rg_key, name_key"),
                out,
                &|row| rows::identity(row).map(Record::Identity),
            )?;
            each(
                &format!(
                    "SELECT {CREDENTIAL_COLS} FROM credentials ORDER BY subscription, rg_key, identity_key, name_key"
                ),
                out,
                &|row| rows::credential(row).map(Record::Credential),
            )?;
            each(
                &format!("SELECT {CLUSTER_COLS} FROM clusters ORDER BY subscription, rg_key, name_key"),
                out,
                &|row| rows::cluster(row).map(Record::Cluster),
            )?;
            each(&format!("SELECT {APP_COLS} FROM apps ORDER BY client_id"), out, &|row| {
                rows::app(row).map(Record::App)
            })?;
            each(&format!("SELECT {RA_COLS} FROM role_assignments ORDER BY scope_key, id"), out, &|row| {
                rows::role_assignment(row).map(Record::RoleAssignment)
            })?;
            key_vault::export(&mut |query, decode| each(query, out, decode))?;
            tx.commit().map_err(sql(what))
        })
    }

    fn import(&self, records: &mut dyn Iterator<Item = Result<Record>>) -> Result<u64> {
        let what = "importing";
        self.write(what, |tx| {
            let used: i64 = tx
                .query_row(
                    "SELECT (SELECT count(*) FROM identities) + (SELECT count(*) FROM resource_groups)                      + (SELECT count(*) FROM vaults) + (SELECT count(*) FROM apps)                      + (SELECT count(*) FROM role_assignments)",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql(what))?;
            if used > 0 {
                return Err(StoreError::Conflict(
                    "the target store is not empty; import into a fresh database (no wid serve has started on it)"
                        .into(),
                ));
            }
            let mut n = 0u64;
            for record in records {
                match record? {
                    Record::Meta { key, value } => meta_put(tx, what, &key, &value)?,
                    Record::SigningKey(k) => put_signing_key(tx, what, &k)?,
                    Record::ResourceGroup(rg) => drop(put_resource_group(tx, what, &rg)?),
                    Record::Identity(i) => drop(put_identity(tx, what, &i)?),
                    Record::Credential(c) => drop(put_credential(tx, what, &c)?),
                    Record::Cluster(c) => drop(put_cluster(tx, what, &c)?),
                    Record::App(a) => put_app(tx, what, &a)?,
                    Record::RoleAssignment(ra) => insert_role_assignment(tx, what, &ra)?,
                    Record::Vault(v) => drop(key_vault::put_vault(tx, what, &v)?),
                    Record::SecretVersion(v) => key_vault::insert_secret_version(tx, what, &v)?,
                    Record::DeletedSecret(d) => {
                        key_vault::delete_secret(tx, what, &d.vault, &d.name, d.deleted, d.scheduled_purge)?;
                    }
                }
                n += 1;
            }
            Ok(n)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_rules_are_named() {
        assert_eq!(
            unique_rule("UNIQUE constraint failed: identities.client_id"),
            "another identity has the same client id"
        );
        assert!(
            unique_rule("UNIQUE constraint failed: credentials.subscription, credentials.rg_key, credentials.identity_key, credentials.issuer, credentials.subject")
                .contains("issuer and subject")
        );
        assert!(unique_rule("UNIQUE constraint failed: x.y").contains("x.y"));
    }

    #[test]
    fn every_migration_is_plain_sql() {
        let conn = Connection::open_in_memory().unwrap();
        for m in MIGRATIONS {
            conn.execute_batch(m).unwrap();
        }
    }
}
