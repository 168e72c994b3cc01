//! What several replicas on one database need: the change log and its listener, named locks, and
//! export/import.
//!
//! Change log: writers append rows under a transaction-level advisory lock taken just before
//! (held to commit), so rows commit in `seq` order and a follower reading `seq > last` never skips
//! one that commits late; the same transaction sends `NOTIFY wid_changes`, delivered at commit.
//! [`wait_for_changes`] waits on a dedicated connection that `LISTEN`s; its first call, and the first
//! after the listener is re-opened, returns at once (changes may have been missed meanwhile).
//!
//! Named locks are session-level advisory locks (one-`bigint` keys: FNV-1a of the name) on a
//! connection taken out of the pool (from an allowance of its own: callers write through the store
//! while they hold one) and held by the guard; if the process dies, the session ends and the lock
//! is released.
//!
//! Export streams records from one REPEATABLE READ transaction (portals, a page at a time) to the
//! caller over a bounded channel; import streams them the other way into one transaction, which
//! commits only when the caller's iterator ended without an error.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client};

use super::conn::{Db, Pooled, begin_snapshot, block_on, pg_error, run};
use super::{CHANGE_LOG_LOCK, ExportQuery, LOCKS, Shared, key_vault};
use crate::rows::{
    self, APP_COLS, CLUSTER_COLS, CREDENTIAL_COLS, Cols, IDENTITY_COLS, RA_COLS, RG_COLS, SIGNING_KEY_COLS,
};
use crate::{ChangeBatch, Changed, Record, Result, StoreError};

/// The channel `NOTIFY` uses.
const CHANNEL: &str = "wid_changes";

/// The least time between attempts to re-open a broken listener.
const RELISTEN_PAUSE: Duration = Duration::from_secs(1);

/// How often a waiting [`lock`] tries again.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// Rows an export reads per round trip.
const EXPORT_PAGE: i32 = 256;

// ---------------------------------------------------------------------------------------------------
// The change log.

/// Appends change-log rows (nothing if `changes` is empty) and notifies the replicas at commit.
pub(super) async fn log_changes(db: &Db<'_>, changes: &[Changed]) -> Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    // Taken last in the transaction and held to commit: `seq`s are drawn in commit order.
    db.execute("SELECT pg_advisory_xact_lock($1, $2), pg_notify($3, '')", &[&LOCKS, &CHANGE_LOG_LOCK, &CHANNEL])
        .await?;
    let (kinds, keys): (Vec<&str>, Vec<String>) = changes.iter().map(Changed::encode).unzip();
    db.execute(
        "INSERT INTO changes (at, kind, key) \
         SELECT $1, k, v FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(k, v, n) ORDER BY n",
        &[&crate::unix_now(), &kinds, &keys],
    )
    .await?;
    Ok(())
}

pub(super) async fn changes_since(db: &Db<'_>, seq: i64, limit: usize) -> Result<ChangeBatch> {
    let limit = i64::try_from(limit.max(1)).unwrap_or(i64::MAX);
    // One statement, so the pruning point and the rows come from the same snapshot.
    let rows = db
        .query(
            "SELECT p.through, c.seq, c.kind, c.key FROM changes_pruned p LEFT JOIN LATERAL \
             (SELECT seq, kind, key FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2) c ON true ORDER BY c.seq",
            &[&seq, &limit],
        )
        .await?;
    let mut batch = ChangeBatch::default();
    for row in &rows {
        let c = Cols { row, table: "changes" };
        let pruned = c.int("through")?;
        batch.resync = seq < pruned;
        let (Some(at), Some(kind), Some(key)) = (c.opt_int("seq")?, c.opt_text("kind")?, c.opt_text("key")?) else {
            continue;
        };
        // A kind or key this release does not know is skipped.
        if let Some(change) = Changed::decode(&kind, &key) {
            batch.changes.push((at, change));
        }
    }
    Ok(batch)
}

pub(super) async fn prune_changes(db: &Db<'_>, before: i64) -> Result<usize> {
    let through: Option<i64> = db
        .scalar("SELECT max(seq) FROM changes WHERE at < $1 AND seq < (SELECT max(seq) FROM changes)", &[&before])
        .await?;
    let Some(through) = through else { return Ok(0) };
    let n = db.execute("DELETE FROM changes WHERE seq <= $1", &[&through]).await?;
    db.execute("UPDATE changes_pruned SET through = greatest(through, $1)", &[&through]).await?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

// ---------------------------------------------------------------------------------------------------
// The listener.

/// A connection that `LISTEN`s for the change log's notifications, opened on first use.
#[derive(Default)]
pub(super) struct Listener {
    state: tokio::sync::Mutex<ListenState>,
    /// Woken by every notification, and when the listening connection ends.
    notify: Arc<Notify>,
}

#[derive(Default)]
struct ListenState {
    /// Kept so the connection stays open.
    client: Option<Client>,
    /// Cleared by the connection's task when it ends.
    alive: Arc<AtomicBool>,
    last_attempt: Option<Instant>,
}

pub(super) async fn wait_for_changes(shared: Arc<Shared>, timeout: Duration) -> Result<()> {
    let listener = &shared.listener;
    // Registered before anything else, so a notification from here on is not missed.
    let notified = listener.notify.notified();
    let mut notified = std::pin::pin!(notified);
    notified.as_mut().enable();
    {
        let mut state = listener.state.lock().await;
        if !state.alive.load(Ordering::Acquire) {
            state.client = None;
            if state.last_attempt.is_some_and(|t| t.elapsed() < RELISTEN_PAUSE) {
                // Broken, and tried moments ago: no spinning; the caller polls anyway.
                drop(state);
                tokio::time::sleep(timeout).await;
                return Ok(());
            }
            state.last_attempt = Some(Instant::now());
            match listen(&shared, listener.notify.clone()).await {
                Ok((client, alive)) => {
                    state.client = Some(client);
                    state.alive = alive;
                    // Nobody listened until now: whatever happened meanwhile is unseen.
                    return Ok(());
                }
                Err(e) => {
                    drop(state);
                    tokio::time::sleep(timeout).await;
                    return Err(e);
                }
            }
        }
    }
    let _ = tokio::time::timeout(timeout, notified).await;
    Ok(())
}

/// Opens the listening connection; a task drives it and forwards its notifications to `notify`.
async fn listen(shared: &Shared, notify: Arc<Notify>) -> Result<(Client, Arc<AtomicBool>)> {
    let (client, mut connection) = shared.target.open().await?;
    let alive = Arc::new(AtomicBool::new(true));
    let flag = alive.clone();
    tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(_) = message {
                // Wake whoever waits now, and leave a permit for the next wait (a change may land
                // between a follower's read and its next wait).
                notify.notify_waiters();
                notify.notify_one();
            }
        }
        flag.store(false, Ordering::Release);
        notify.notify_waiters();
    });
    let what = format!("listening for changes on the database {}", shared.target.name);
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
        .map_err(|e| pg_error(&what, &e, shared.target.statement_timeout))?;
    Ok((client, alive))
}

// ---------------------------------------------------------------------------------------------------
// Named locks.

/// The advisory lock key of a name: FNV-1a, 64 bits.
fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// A connection holding a named lock.
pub(super) struct Held {
    conn: Pooled,
    key: i64,
    what: String,
    statement_timeout: Duration,
}

pub(super) async fn lock(shared: Arc<Shared>, name: String, timeout: Duration) -> Result<Held> {
    let what = format!("taking the lock '{name}'");
    let key = lock_key(&name);
    let deadline = Instant::now() + timeout;
    let Some(conn) = shared.pool.get_for_lock(&shared.target, &what, timeout).await? else {
        return Err(StoreError::Busy(format!(
            "'{name}' cannot be taken: too many named locks are held in this process"
        )));
    };
    loop {
        let db = conn.db(&what, shared.target.statement_timeout)?;
        if db.scalar::<bool>("SELECT pg_try_advisory_lock($1)", &[&key]).await? {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(StoreError::Busy(format!("'{name}' is held by another writer")));
        }
        tokio::time::sleep(left.min(LOCK_POLL)).await;
    }
    Ok(Held {
        conn,
        key,
        what: format!("releasing the lock '{name}'"),
        statement_timeout: shared.target.statement_timeout,
    })
}

/// Releases a named lock when dropped: unlocks, then returns the connection to the pool (or closes
/// it, ending the session and with it the lock, if unlocking failed).
pub(super) struct HeldLock {
    held: Option<Held>,
    handle: Handle,
}

impl HeldLock {
    pub(super) fn new(held: Held, handle: Handle) -> Self {
        Self { held: Some(held), handle }
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        let Some(mut held) = self.held.take() else { return };
        // If the store's runtime is gone, so is the connection (and the lock with it).
        let _ = run(&self.handle, async move {
            let unlocked = match held.conn.db(&held.what, held.statement_timeout) {
                Ok(db) => db.scalar::<bool>("SELECT pg_advisory_unlock($1)", &[&held.key]).await,
                Err(e) => Err(e),
            };
            if !matches!(unlocked, Ok(true)) {
                held.conn.discard();
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------------------
// Export and import.

/// The export queries, in the order `import` takes them, with their decoders.
fn exports() -> Vec<ExportQuery> {
    let mut queries: Vec<ExportQuery> = vec![
        ("SELECT key, value FROM meta ORDER BY key".to_string(), |row| {
            let c = Cols { row, table: "meta" };
            Ok(Record::Meta { key: c.text("key")?, value: c.bytes("value")? })
        }),
        (format!("SELECT {SIGNING_KEY_COLS} FROM signing_keys ORDER BY created, kid"), |row| {
            rows::signing_key(row).map(Record::SigningKey)
        }),
        (format!("SELECT {RG_COLS} FROM resource_groups ORDER BY subscription, name_key"), |row| {
            rows::resource_group(row).map(Record::ResourceGroup)
        }),
        (format!("SELECT {IDENTITY_COLS} FROM identities ORDER BY subscription, rg_key, name_key"), |row| {
            rows::identity(row).map(Record::Identity)
        }),
        (
            format!("SELECT {CREDENTIAL_COLS} FROM credentials ORDER BY subscription, rg_key, identity_key, name_key"),
            |row| rows::credential(row).map(Record::Credential),
        ),
        (format!("SELECT {CLUSTER_COLS} FROM clusters ORDER BY subscription, rg_key, name_key"), |row| {
            rows::cluster(row).map(Record::Cluster)
        }),
        (format!("SELECT {APP_COLS} FROM apps ORDER BY client_id"), |row| rows::app(row).map(Record::App)),
        (format!("SELECT {RA_COLS} FROM role_assignments ORDER BY scope_key, id"), |row| {
            rows::role_assignment(row).map(Record::RoleAssignment)
        }),
    ];
    queries.extend(key_vault::exports());
    queries
}

pub(super) fn export(handle: &Handle, shared: Arc<Shared>, out: &mut dyn FnMut(Record) -> Result<()>) -> Result<()> {
    let (sink, mut records) = tokio::sync::mpsc::channel(EXPORT_PAGE.unsigned_abs() as usize);
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = done.send(export_task(shared, sink).await);
    });
    let mut failed = None;
    while let Some(record) = block_on(records.recv()) {
        if let Err(e) = out(record) {
            failed = Some(e);
            break;
        }
    }
    // Dropping the receiver stops the task at its next record.
    drop(records);
    let read = finished.recv().unwrap_or_else(|_| Err(StoreError::Backend("exporting: the task stopped".into())));
    match failed {
        Some(e) => Err(e),
        None => read,
    }
}

async fn export_task(shared: Arc<Shared>, sink: tokio::sync::mpsc::Sender<Record>) -> Result<()> {
    let what = "exporting";
    let timeout = shared.target.statement_timeout;
    let mut pooled = shared.pool.get(&shared.target, what).await?;
    let (client, _) = pooled.parts()?;
    let tx = begin_snapshot(client, what, timeout).await?;
    for (sql, decode) in exports() {
        let portal = tx.bind(sql.as_str(), &[]).await.map_err(|e| pg_error(what, &e, timeout))?;
        loop {
            let rows = tx.query_portal(&portal, EXPORT_PAGE).await.map_err(|e| pg_error(what, &e, timeout))?;
            for row in &rows {
                if sink.send(decode(row)?).await.is_err() {
                    return Ok(()); // the caller stopped reading
                }
            }
            if rows.len() < EXPORT_PAGE.unsigned_abs() as usize {
                break;
            }
        }
    }
    tx.commit().await.map_err(|e| pg_error(what, &e, timeout))
}

/// What the caller of `import` sends its task.
enum Import {
    Record(Box<Record>),
    /// The records ended without an error: commit.
    Commit,
}

pub(super) fn import(
    handle: &Handle,
    shared: Arc<Shared>,
    records: &mut dyn Iterator<Item = Result<Record>>,
) -> Result<u64> {
    let (sink, incoming) = tokio::sync::mpsc::channel(EXPORT_PAGE.unsigned_abs() as usize);
    let (done, finished) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = done.send(import_task(shared, incoming).await);
    });
    let mut failed = None;
    for record in records {
        match record {
            // A closed channel means the task stopped; its result says why.
            Ok(record) => {
                if block_on(sink.send(Import::Record(Box::new(record)))).is_err() {
                    break;
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if failed.is_none() {
        let _ = block_on(sink.send(Import::Commit));
    }
    drop(sink);
    let written = finished.recv().unwrap_or_else(|_| Err(StoreError::Backend("importing: the task stopped".into())));
    match failed {
        Some(e) => Err(e),
        None => written,
    }
}

async fn import_task(shared: Arc<Shared>, mut incoming: tokio::sync::mpsc::Receiver<Import>) -> Result<u64> {
    let what = "importing";
    let timeout = shared.target.statement_timeout;
    let mut pooled = shared.pool.get(&shared.target, what).await?;
    let (client, stmts) = pooled.parts()?;
    let tx = client.transaction().await.map_err(|e| pg_error(what, &e, timeout))?;
    let db = Db::tx(&tx, stmts, what, timeout);
    let used: i64 = db
        .scalar(
            "SELECT (SELECT count(*) FROM identities) + (SELECT count(*) FROM resource_groups) \
             + (SELECT count(*) FROM vaults) + (SELECT count(*) FROM apps) \
             + (SELECT count(*) FROM role_assignments)",
            &[],
        )
        .await?;
    if used > 0 {
        return Err(StoreError::Conflict(
            "the target store is not empty; import into a fresh database (no wid serve has started on it)".into(),
        ));
    }
    // Like the SQLite backend's import, through the same writes as the trait's; no change-log rows
    // (a store is imported before any replica follows it).
    let mut n = 0u64;
    loop {
        match incoming.recv().await {
            Some(Import::Record(record)) => {
                match *record {
                    Record::Meta { key, value } => super::meta_put(&db, &key, &value).await?,
                    Record::SigningKey(k) => super::put_signing_key(&db, &k).await?,
                    Record::ResourceGroup(rg) => drop(super::put_resource_group(&db, &rg).await?),
                    Record::Identity(i) => drop(super::put_identity(&db, &i).await?),
                    Record::Credential(c) => drop(super::put_credential(&db, &c).await?),
                    Record::Cluster(c) => drop(super::put_cluster(&db, &c).await?),
                    Record::App(a) => super::put_app(&db, &a).await?,
                    Record::RoleAssignment(ra) => super::insert_role_assignment(&db, &ra).await?,
                    Record::Vault(v) => drop(key_vault::put_vault(&db, &v).await?),
                    Record::SecretVersion(v) => key_vault::insert_secret_version(&db, &v).await?,
                    Record::DeletedSecret(d) => {
                        key_vault::delete_secret(&db, &d.vault, &d.name, d.deleted, d.scheduled_purge).await?;
                    }
                }
                n += 1;
            }
            Some(Import::Commit) => break,
            None => return Err(StoreError::Backend(format!("{what}: the records ended early; nothing was imported"))),
        }
    }
    tx.commit().await.map_err(|e| pg_error(what, &e, timeout))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_fnv1a() {
        // FNV-1a 64 of "" and "a" (the published test vectors).
        assert_eq!(lock_key(""), i64::from_ne_bytes(0xcbf2_9ce4_8422_2325u64.to_ne_bytes()));
        assert_eq!(lock_key("a"), i64::from_ne_bytes(0xaf63_dc4c_8601_ec8cu64.to_ne_bytes()));
        assert_ne!(lock_key("identity/a"), lock_key("identity/b"));
    }
}
