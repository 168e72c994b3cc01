//! Key Vault storage for the SQLite backend: vaults, secret versions, soft-deleted secrets (schema in
//! `migrations/0002_key_vault.sql`).
//!
//! Functions here run inside the caller's transaction (an `IMMEDIATE` one for writes), so every
//! check-then-write sequence is atomic. Vault and secret names are looked up by `name_key`; a vault
//! argument may be the vault's name in any casing or its key.
//!
//! Paging: a listing fetches `limit + 1` rows; the extra row only says that more follow. Cursors are
//! the last item's position: the name key for [`secrets`] and [`deleted_secrets`], the version's
//! `seq` in decimal for [`secret_versions`].

use rusqlite::{Connection, params};
use uuid::Uuid;
use wid_core::model::{DeletedSecret, SecretVersion, Vault, name_key};

use super::{exists, json, query_all, query_opt, rg_exists, sql, uuid_text, written};
use crate::rows::{self, Cols, DELETED_COLS, DELETED_SECRET_COLS, RA_COLS, VAULT_COLS, VERSION_COLS};
use crate::{Page, Purged, Record, Result, StoreError, Written};

// ---------------------------------------------------------------------------------------------------
// Filters.

/// `s` is the latest version of its name.
const IS_LATEST: &str =
    "s.seq = (SELECT max(t.seq) FROM secrets t WHERE t.vault = s.vault AND t.name_key = s.name_key)";

/// `s` belongs to a secret that is not soft-deleted.
const IS_ACTIVE: &str =
    "NOT EXISTS (SELECT 1 FROM deleted_secrets d WHERE d.vault = s.vault AND d.name_key = s.name_key)";

// ---------------------------------------------------------------------------------------------------
// Paging.

/// How many rows to fetch for a page of `limit` (at least one item per page, so paging always ends).
fn fetch_count(limit: usize) -> (usize, i64) {
    let limit = limit.max(1);
    (limit, i64::try_from(limit.saturating_add(1)).unwrap_or(i64::MAX))
}

/// Cuts the extra row off and makes the cursor from the last item kept.
fn page<T>(mut rows: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Page<T> {
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(cursor);
        Page { items: rows, next }
    } else {
        Page { items: rows, next: None }
    }
}

/// The comparison for a name-key cursor: `>` the cursor, or `>=` the empty string (everything).
fn after_key(after: Option<&str>) -> (&'static str, &str) {
    match after {
        Some(key) => (">", key),
        None => (">=", ""),
    }
}

// ---------------------------------------------------------------------------------------------------
// Vaults.

fn vault_by_key(conn: &Connection, what: &str, key: &str) -> Result<Option<Vault>> {
    query_opt(conn, what, &format!("SELECT {VAULT_COLS} FROM vaults WHERE name_key = ?1"), [key], rows::vault)
}

fn vault_exists(conn: &Connection, what: &str, key: &str) -> Result<bool> {
    exists(conn, what, "SELECT 1 FROM vaults WHERE name_key = ?1", [key])
}

fn missing_vault(vault: &str) -> StoreError {
    StoreError::MissingParent(format!("vault '{vault}' does not exist"))
}

pub(super) fn put_vault(tx: &Connection, what: &str, v: &Vault) -> Result<Written> {
    let key = name_key(&v.name);
    let rg_key = name_key(&v.resource_group);
    let existing = vault_by_key(tx, what, &key)?;
    // An active vault needs its group. A soft-deleted one may outlive it (deleting a group
    // soft-deletes its vaults; an import brings such vaults back), so one written soft-deleted does not.
    if v.deleted.is_none() && !rg_exists(tx, what, v.subscription, &rg_key)? {
        return Err(StoreError::MissingParent(format!(
            "resource group '{}' does not exist in subscription {}",
            v.resource_group, v.subscription
        )));
    }
    if let Some(e) = &existing {
        let same_place = e.subscription == v.subscription && name_key(&e.resource_group) == rg_key;
        if e.vault_id != v.vault_id {
            return Err(StoreError::Conflict(if e.deleted.is_some() {
                format!(
                    "the vault name '{}' is held by a soft-deleted vault; it can be reused once that vault is \
                     purged",
                    e.name
                )
            } else if same_place {
                format!("vault '{}' already exists (with another vault id)", e.name)
            } else {
                format!(
                    "the vault name '{}' is already taken by a vault in another resource group or subscription; \
                     vault names are globally unique",
                    e.name
                )
            }));
        }
        if !same_place {
            return Err(StoreError::Conflict(format!(
                "vault '{}' belongs to resource group '{}' of subscription {}; a vault cannot move",
                e.name, e.resource_group, e.subscription
            )));
        }
    }
    let tags = json(what, &v.tags)?;
    tx.prepare_cached(
        "INSERT INTO vaults (name_key, subscription, rg_key, resource_group, name, location, tags, vault_id, \
         tenant_id, sku, enable_rbac_authorization, enable_purge_protection, soft_delete_retention_days, \
         public_network_access, sealed_data_key, created, updated, deleted) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
         ON CONFLICT (name_key) DO UPDATE SET subscription = excluded.subscription, rg_key = excluded.rg_key, \
         resource_group = excluded.resource_group, name = excluded.name, location = excluded.location, \
         tags = excluded.tags, vault_id = excluded.vault_id, tenant_id = excluded.tenant_id, sku = excluded.sku, \
         enable_rbac_authorization = excluded.enable_rbac_authorization, \
         enable_purge_protection = excluded.enable_purge_protection, \
         soft_delete_retention_days = excluded.soft_delete_retention_days, \
         public_network_access = excluded.public_network_access, sealed_data_key = excluded.sealed_data_key, \
         created = excluded.created, updated = excluded.updated, deleted = excluded.deleted",
    )
    .and_then(|mut s| {
        s.execute(params![
            key,
            uuid_text(v.subscription),
            rg_key,
            v.resource_group,
            v.name,
            v.location,
            tags,
            uuid_text(v.vault_id),
            uuid_text(v.tenant_id),
            v.sku,
            i64::from(v.enable_rbac_authorization),
            i64::from(v.enable_purge_protection),
            v.soft_delete_retention_days,
            v.public_network_access,
            v.sealed_data_key,
            v.created,
            v.updated,
            v.deleted,
        ])
    })
    .map_err(sql(what))?;
    Ok(written(existing.is_some()))
}

pub(super) fn vault(conn: &Connection, name: &str) -> Result<Option<Vault>> {
    vault_by_key(conn, "reading a vault", &name_key(name))
}

pub(super) fn vaults(conn: &Connection, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Vault>> {
    let what = "listing vaults";
    let sub = uuid_text(subscription);
    match resource_group {
        Some(rg) => query_all(
            conn,
            what,
            &format!(
                "SELECT {VAULT_COLS} FROM vaults WHERE subscription = ?1 AND rg_key = ?2 AND deleted IS NULL \
                 ORDER BY name_key"
            ),
            params![sub, name_key(rg)],
            rows::vault,
        ),
        None => query_all(
            conn,
            what,
            &format!("SELECT {VAULT_COLS} FROM vaults WHERE subscription = ?1 AND deleted IS NULL ORDER BY name_key"),
            [sub],
            rows::vault,
        ),
    }
}

pub(super) fn deleted_vaults(conn: &Connection, subscription: Uuid) -> Result<Vec<Vault>> {
    query_all(
        conn,
        "listing deleted vaults",
        &format!("SELECT {VAULT_COLS} FROM vaults WHERE subscription = ?1 AND deleted IS NOT NULL ORDER BY name_key"),
        [uuid_text(subscription)],
        rows::vault,
    )
}

pub(super) fn purge_vault(tx: &Connection, what: &str, name: &str) -> Result<Option<Vault>> {
    let key = name_key(name);
    let found = vault_by_key(tx, what, &key)?;
    if found.is_some() {
        // Versions and deleted-secret rows go with it (ON DELETE CASCADE).
        tx.prepare_cached("DELETE FROM vaults WHERE name_key = ?1")
            .and_then(|mut s| s.execute([&key]))
            .map_err(sql(what))?;
    }
    Ok(found)
}

/// Soft-deletes the active vaults of a group that is being deleted and returns them as they are now.
///
/// The trait gives `delete_resource_group` no clock, so the deletion time is the database's: the
/// current Unix time (`strftime('%s','now')`), read once for all of them. Vaults already soft-deleted
/// keep their own deletion time and are not returned.
pub(super) fn soft_delete_group_vaults(tx: &Connection, what: &str, sub: &str, rg_key: &str) -> Result<Vec<Vault>> {
    let filter = "subscription = ?1 AND rg_key = ?2 AND deleted IS NULL";
    let mut vaults = query_all(
        tx,
        what,
        &format!("SELECT {VAULT_COLS} FROM vaults WHERE {filter} ORDER BY name_key"),
        params![sub, rg_key],
        rows::vault,
    )?;
    if vaults.is_empty() {
        return Ok(vaults);
    }
    let now: i64 =
        tx.query_row("SELECT CAST(strftime('%s', 'now') AS INTEGER)", [], |r| r.get(0)).map_err(sql(what))?;
    tx.prepare_cached(&format!("UPDATE vaults SET deleted = ?3 WHERE {filter}"))
        .and_then(|mut s| s.execute(params![sub, rg_key, now]))
        .map_err(sql(what))?;
    for v in &mut vaults {
        v.deleted = Some(now);
    }
    Ok(vaults)
}

// ---------------------------------------------------------------------------------------------------
// Secrets.

/// The display name of a secret that has versions (active or soft-deleted): the first version's.
fn secret_name(conn: &Connection, what: &str, vault: &str, key: &str) -> Result<Option<String>> {
    query_opt(
        conn,
        what,
        "SELECT name FROM secrets WHERE vault = ?1 AND name_key = ?2 ORDER BY seq LIMIT 1",
        params![vault, key],
        |row| Cols { row, table: "secrets" }.text("name"),
    )
}

fn is_deleted(conn: &Connection, what: &str, vault: &str, key: &str) -> Result<bool> {
    exists(conn, what, "SELECT 1 FROM deleted_secrets WHERE vault = ?1 AND name_key = ?2", params![vault, key])
}

/// The latest version of a name, whether or not it is soft-deleted.
fn latest(conn: &Connection, what: &str, vault: &str, key: &str) -> Result<Option<SecretVersion>> {
    query_opt(
        conn,
        what,
        &format!(
            "SELECT {VERSION_COLS} FROM secrets s WHERE s.vault = ?1 AND s.name_key = ?2 ORDER BY s.seq DESC LIMIT 1"
        ),
        params![vault, key],
        rows::secret_version,
    )
}

fn deleted_but_recoverable(name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "secret '{name}' is deleted but recoverable; its name cannot be reused until it is recovered or purged"
    ))
}

fn insert_row(tx: &Connection, what: &str, vault: &str, key: &str, name: &str, v: &SecretVersion) -> Result<()> {
    if exists(tx, what, "SELECT 1 FROM secrets WHERE vault = ?1 AND version = ?2", params![vault, v.version])? {
        return Err(StoreError::Conflict(format!("vault '{vault}' already has a secret version '{}'", v.version)));
    }
    let tags = json(what, &v.tags)?;
    tx.prepare_cached(
        "INSERT INTO secrets (vault, name_key, name, version, sealed_value, content_type, tags, enabled, nbf, exp, \
         created, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    )
    .and_then(|mut s| {
        s.execute(params![
            vault,
            key,
            name,
            v.version,
            v.sealed_value,
            v.content_type,
            tags,
            i64::from(v.enabled),
            v.nbf,
            v.exp,
            v.created,
            v.updated,
        ])
    })
    .map_err(sql(what))?;
    Ok(())
}

pub(super) fn insert_secret_version(tx: &Connection, what: &str, v: &SecretVersion) -> Result<()> {
    let vault = name_key(&v.vault);
    let key = name_key(&v.name);
    if !vault_exists(tx, what, &vault)? {
        return Err(missing_vault(&v.vault));
    }
    let name = secret_name(tx, what, &vault, &key)?;
    if is_deleted(tx, what, &vault, &key)? {
        return Err(deleted_but_recoverable(name.as_deref().unwrap_or(&v.name)));
    }
    insert_row(tx, what, &vault, &key, name.as_deref().unwrap_or(&v.name), v)
}

pub(super) fn update_secret_version(tx: &Connection, what: &str, v: &SecretVersion) -> Result<bool> {
    let tags = json(what, &v.tags)?;
    let n = tx
        .prepare_cached(&format!(
            "UPDATE secrets AS s SET content_type = ?4, tags = ?5, enabled = ?6, nbf = ?7, exp = ?8, updated = ?9 \
             WHERE s.vault = ?1 AND s.name_key = ?2 AND s.version = ?3 AND {IS_ACTIVE}"
        ))
        .and_then(|mut s| {
            s.execute(params![
                name_key(&v.vault),
                name_key(&v.name),
                v.version,
                v.content_type,
                tags,
                i64::from(v.enabled),
                v.nbf,
                v.exp,
                v.updated,
            ])
        })
        .map_err(sql(what))?;
    Ok(n == 1)
}

pub(super) fn secret_version(
    conn: &Connection,
    vault: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Option<SecretVersion>> {
    let what = "reading a secret";
    let (vault, key) = (name_key(vault), name_key(name));
    match version {
        None => query_opt(
            conn,
            what,
            &format!(
                "SELECT {VERSION_COLS} FROM secrets s WHERE s.vault = ?1 AND s.name_key = ?2 AND {IS_ACTIVE} \
                 ORDER BY s.seq DESC LIMIT 1"
            ),
            params![vault, key],
            rows::secret_version,
        ),
        Some(version) => query_opt(
            conn,
            what,
            &format!(
                "SELECT {VERSION_COLS} FROM secrets s \
                 WHERE s.vault = ?1 AND s.name_key = ?2 AND s.version = ?3 AND {IS_ACTIVE}"
            ),
            params![vault, key, version],
            rows::secret_version,
        ),
    }
}

pub(super) fn secrets(
    conn: &Connection,
    vault: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<SecretVersion>> {
    let (limit, fetch) = fetch_count(limit);
    let (op, from) = after_key(after);
    let rows = query_all(
        conn,
        "listing secrets",
        &format!(
            "SELECT {VERSION_COLS} FROM secrets s WHERE s.vault = ?1 AND s.name_key {op} ?2 AND {IS_LATEST} \
             AND {IS_ACTIVE} ORDER BY s.name_key LIMIT ?3"
        ),
        params![name_key(vault), from, fetch],
        rows::secret_version,
    )?;
    Ok(page(rows, limit, |v| name_key(&v.name)))
}

pub(super) fn secret_versions(
    conn: &Connection,
    vault: &str,
    name: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<SecretVersion>> {
    let (limit, fetch) = fetch_count(limit);
    // Cursors are ours, but they travel through clients (`$skiptoken`): one that is not a sequence
    // number points past the end, so it yields an empty last page rather than an error or a restart.
    let from = match after {
        None => 0,
        Some(cursor) => match cursor.parse::<i64>() {
            Ok(seq) => seq,
            Err(_) => return Ok(Page { items: Vec::new(), next: None }),
        },
    };
    let rows = query_all(
        conn,
        "listing secret versions",
        &format!(
            "SELECT {VERSION_COLS} FROM secrets s WHERE s.vault = ?1 AND s.name_key = ?2 AND s.seq > ?3 \
             AND {IS_ACTIVE} ORDER BY s.seq LIMIT ?4"
        ),
        params![name_key(vault), name_key(name), from, fetch],
        rows::secret_version_seq,
    )?;
    let Page { items, next } = page(rows, limit, |(seq, _)| seq.to_string());
    Ok(Page { items: items.into_iter().map(|(_, v)| v).collect(), next })
}

pub(super) fn delete_secret(
    tx: &Connection,
    what: &str,
    vault: &str,
    name: &str,
    deleted: i64,
    scheduled_purge: i64,
) -> Result<Option<DeletedSecret>> {
    let (vault, key) = (name_key(vault), name_key(name));
    let Some(name) = secret_name(tx, what, &vault, &key)? else { return Ok(None) };
    if is_deleted(tx, what, &vault, &key)? {
        return Ok(None);
    }
    tx.prepare_cached(
        "INSERT INTO deleted_secrets (vault, name_key, name, deleted, scheduled_purge) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| s.execute(params![vault, key, name, deleted, scheduled_purge]))
    .map_err(sql(what))?;
    Ok(Some(DeletedSecret { vault, name, deleted, scheduled_purge }))
}

/// Deleted secrets joined with their latest versions (found by `seq`, one index probe per row).
fn deleted_query(filter: &str) -> String {
    format!(
        "SELECT {DELETED_COLS}, {VERSION_COLS} FROM deleted_secrets d \
         JOIN secrets s ON s.seq = (SELECT max(t.seq) FROM secrets t WHERE t.vault = d.vault AND t.name_key = d.name_key) \
         WHERE {filter}"
    )
}

pub(super) fn deleted_secret(
    conn: &Connection,
    vault: &str,
    name: &str,
) -> Result<Option<(DeletedSecret, SecretVersion)>> {
    query_opt(
        conn,
        "reading a deleted secret",
        &deleted_query("d.vault = ?1 AND d.name_key = ?2"),
        params![name_key(vault), name_key(name)],
        rows::deleted_secret_version,
    )
}

pub(super) fn deleted_secrets(
    conn: &Connection,
    vault: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<(DeletedSecret, SecretVersion)>> {
    let (limit, fetch) = fetch_count(limit);
    let (op, from) = after_key(after);
    let rows = query_all(
        conn,
        "listing deleted secrets",
        &format!("{} ORDER BY d.name_key LIMIT ?3", deleted_query(&format!("d.vault = ?1 AND d.name_key {op} ?2"))),
        params![name_key(vault), from, fetch],
        rows::deleted_secret_version,
    )?;
    Ok(page(rows, limit, |(d, _)| name_key(&d.name)))
}

pub(super) fn recover_secret(tx: &Connection, what: &str, vault: &str, name: &str) -> Result<Option<SecretVersion>> {
    let (vault, key) = (name_key(vault), name_key(name));
    let n = tx
        .prepare_cached("DELETE FROM deleted_secrets WHERE vault = ?1 AND name_key = ?2")
        .and_then(|mut s| s.execute(params![vault, key]))
        .map_err(sql(what))?;
    if n == 0 {
        return Ok(None);
    }
    match latest(tx, what, &vault, &key)? {
        Some(v) => Ok(Some(v)),
        None => Err(StoreError::Corrupt(format!("deleted secret '{name}' of vault '{vault}' has no versions"))),
    }
}

pub(super) fn purge_secret(tx: &Connection, what: &str, vault: &str, name: &str) -> Result<bool> {
    let (vault, key) = (name_key(vault), name_key(name));
    let n = tx
        .prepare_cached("DELETE FROM deleted_secrets WHERE vault = ?1 AND name_key = ?2")
        .and_then(|mut s| s.execute(params![vault, key]))
        .map_err(sql(what))?;
    if n == 0 {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM secrets WHERE vault = ?1 AND name_key = ?2")
        .and_then(|mut s| s.execute(params![vault, key]))
        .map_err(sql(what))?;
    Ok(true)
}

/// Purges expired soft-deleted secrets, then expired soft-deleted vaults. The secret count is of
/// secrets purged on their own schedule; the secrets of a purged vault go with it uncounted.
pub(super) fn purge_expired(tx: &Connection, what: &str, now: i64) -> Result<Purged> {
    let run = |query: &str| tx.prepare_cached(query).and_then(|mut s| s.execute([now])).map_err(sql(what));
    run("DELETE FROM secrets WHERE (vault, name_key) IN \
         (SELECT vault, name_key FROM deleted_secrets WHERE scheduled_purge <= ?1)")?;
    let secrets = run("DELETE FROM deleted_secrets WHERE scheduled_purge <= ?1")?;
    // Vault::scheduled_purge, in SQL.
    let expired = "deleted IS NOT NULL AND deleted + soft_delete_retention_days * 86400 <= ?1";
    let vaults = query_all(
        tx,
        what,
        &format!("SELECT {VAULT_COLS} FROM vaults WHERE {expired} ORDER BY name_key"),
        [now],
        rows::vault,
    )?;
    // Grants on a purged vault (or its secrets) go with it, so a vault re-created under the name
    // starts with none.
    let mut role_assignments = Vec::new();
    for v in &vaults {
        let key = wid_core::Scope::parse(&v.arm_id()).map(|s| s.key().to_string()).unwrap_or_default();
        let below = format!("{key}/");
        let filter = "scope_key = ?1 OR substr(scope_key, 1, length(?2)) = ?2";
        role_assignments.extend(query_all(
            tx,
            what,
            &format!("SELECT {RA_COLS} FROM role_assignments WHERE {filter} ORDER BY scope_key, id"),
            params![key, below],
            rows::role_assignment,
        )?);
        tx.prepare_cached(&format!("DELETE FROM role_assignments WHERE {filter}"))
            .and_then(|mut s| s.execute(params![key, below]))
            .map_err(sql(what))?;
    }
    run(&format!("DELETE FROM vaults WHERE {expired}"))?;
    Ok(Purged { secrets, vaults, role_assignments })
}

/// Streams vaults, secret versions (in insertion order) and soft-deleted secrets for an export.
pub(super) fn export(each: &mut super::ExportQuery<'_>) -> Result<()> {
    each(&format!("SELECT {VAULT_COLS} FROM vaults ORDER BY name_key"), &|row| rows::vault(row).map(Record::Vault))?;
    each(&format!("SELECT {VERSION_COLS} FROM secrets s ORDER BY s.seq"), &|row| {
        rows::secret_version(row).map(Record::SecretVersion)
    })?;
    each(&format!("SELECT {DELETED_SECRET_COLS} FROM deleted_secrets ORDER BY vault, name_key"), &|row| {
        rows::deleted_secret(row).map(Record::DeletedSecret)
    })
}

pub(super) fn restore_secret(tx: &Connection, what: &str, versions: &[SecretVersion]) -> Result<()> {
    let Some(first) = versions.first() else { return Ok(()) };
    let vault = name_key(&first.vault);
    let key = name_key(&first.name);
    if let Some(other) = versions.iter().find(|v| name_key(&v.vault) != vault || name_key(&v.name) != key) {
        return Err(StoreError::Conflict(format!(
            "a restore holds versions of one secret; '{}' in vault '{}' is not '{}' in vault '{}'",
            other.name, other.vault, first.name, first.vault
        )));
    }
    if !vault_exists(tx, what, &vault)? {
        return Err(missing_vault(&first.vault));
    }
    if let Some(name) = secret_name(tx, what, &vault, &key)? {
        if is_deleted(tx, what, &vault, &key)? {
            return Err(deleted_but_recoverable(&name));
        }
        return Err(StoreError::Conflict(format!("secret '{name}' already exists in vault '{vault}'")));
    }
    // In the given order, so the last one is the latest; the first fixes the name's casing.
    for v in versions {
        insert_row(tx, what, &vault, &key, &first.name, v)?;
    }
    Ok(())
}
