//! Key Vault storage for the PostgreSQL backend: vaults, secret versions, soft-deleted secrets.
//!
//! Functions here run inside the caller's transaction (READ COMMITTED). Check-then-write sequences
//! stay atomic under concurrent writers because every write to a vault's secrets first locks the
//! vault's row (`FOR NO KEY UPDATE`, which foreign-key checks do not wait for): writers of one vault
//! take turns, as they do behind SQLite's single writer, and a purge waits for them. Vault and
//! secret names are looked up by `name_key`; a vault argument may be the vault's name in any casing
//! or its key.
//!
//! Paging as in the SQLite backend: a listing fetches `limit + 1` rows; cursors are the last item's
//! name key, or the version's `seq` in decimal for [`secret_versions`].

use uuid::Uuid;
use wid_core::model::{DeletedSecret, SecretVersion, Vault, name_key};

use super::conn::Db;
use super::{ExportQuery, decode_all, decode_opt, json, rg_locked, uuid_text, written};
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

async fn vault_by_key(db: &Db<'_>, key: &str, lock: &str) -> Result<Option<Vault>> {
    let sql = format!("SELECT {VAULT_COLS} FROM vaults WHERE name_key = $1 {lock}");
    decode_opt(db.query_opt(&sql, &[&key]).await?, rows::vault)
}

/// Locks a vault's row for a write to its secrets; `false` if there is no such vault.
async fn lock_vault(db: &Db<'_>, key: &str) -> Result<bool> {
    db.exists("SELECT 1 FROM vaults WHERE name_key = $1 FOR NO KEY UPDATE", &[&key]).await
}

fn missing_vault(vault: &str) -> StoreError {
    StoreError::MissingParent(format!("vault '{vault}' does not exist"))
}

/// Creates or updates a vault under the same rules as the SQLite backend. The existing row is
/// locked while it is checked; a create that loses a race to another create of the same name is
/// checked again against the winner (so it is an update of the same vault, or a `Conflict`).
pub(super) async fn put_vault(db: &Db<'_>, v: &Vault) -> Result<Written> {
    let key = name_key(&v.name);
    let rg_key = name_key(&v.resource_group);
    let sub = uuid_text(v.subscription);
    let tags = json(db.what, &v.tags)?;
    let (vault_id, tenant_id) = (uuid_text(v.vault_id), uuid_text(v.tenant_id));
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 18] = [
        &key,
        &sub,
        &rg_key,
        &v.resource_group,
        &v.name,
        &v.location,
        &tags,
        &vault_id,
        &tenant_id,
        &v.sku,
        &v.enable_rbac_authorization,
        &v.enable_purge_protection,
        &v.soft_delete_retention_days,
        &v.public_network_access,
        &v.sealed_data_key,
        &v.created,
        &v.updated,
        &v.deleted,
    ];
    // An active vault needs its group, locked against deletion until commit (before the vault's row:
    // deleting a group locks the group, then its vaults). A soft-deleted one may outlive its group
    // (deleting a group soft-deletes its vaults; an import brings such vaults back), so one written
    // soft-deleted does not.
    if v.deleted.is_none() && !rg_locked(db, &sub, &rg_key).await? {
        return Err(StoreError::MissingParent(format!(
            "resource group '{}' does not exist in subscription {}",
            v.resource_group, v.subscription
        )));
    }
    for _ in 0..3 {
        let existing = vault_by_key(db, &key, "FOR NO KEY UPDATE").await?;
        if let Some(e) = &existing {
            check_same_vault(e, v, &rg_key)?;
            db.execute(
                "UPDATE vaults SET subscription = $2, rg_key = $3, resource_group = $4, name = $5, location = $6, \
                 tags = $7, vault_id = $8, tenant_id = $9, sku = $10, enable_rbac_authorization = $11, \
                 enable_purge_protection = $12, soft_delete_retention_days = $13, public_network_access = $14, \
                 sealed_data_key = $15, created = $16, updated = $17, deleted = $18 WHERE name_key = $1",
                &params,
            )
            .await?;
            return Ok(written(true));
        }
        let inserted = db
            .execute(
                "INSERT INTO vaults (name_key, subscription, rg_key, resource_group, name, location, tags, vault_id, \
                 tenant_id, sku, enable_rbac_authorization, enable_purge_protection, soft_delete_retention_days, \
                 public_network_access, sealed_data_key, created, updated, deleted) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                 ON CONFLICT (name_key) DO NOTHING",
                &params,
            )
            .await?;
        if inserted == 1 {
            return Ok(written(false));
        }
    }
    Err(StoreError::Busy(format!("{}: the vault kept changing under concurrent writers; try again", db.what)))
}

/// The rules for writing over an existing vault: same vault id, same place.
fn check_same_vault(e: &Vault, v: &Vault, rg_key: &str) -> Result<()> {
    let same_place = e.subscription == v.subscription && name_key(&e.resource_group) == rg_key;
    if e.vault_id != v.vault_id {
        return Err(StoreError::Conflict(if e.deleted.is_some() {
            format!(
                "the vault name '{}' is held by a soft-deleted vault; it can be reused once that vault is purged",
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
    Ok(())
}

pub(super) async fn vault(db: &Db<'_>, name: &str) -> Result<Option<Vault>> {
    vault_by_key(db, &name_key(name), "").await
}

pub(super) async fn vaults(db: &Db<'_>, subscription: Uuid, resource_group: Option<&str>) -> Result<Vec<Vault>> {
    let sub = uuid_text(subscription);
    let rows = match resource_group {
        Some(rg) => {
            let sql = format!(
                "SELECT {VAULT_COLS} FROM vaults WHERE subscription = $1 AND rg_key = $2 AND deleted IS NULL \
                 ORDER BY name_key"
            );
            db.query(&sql, &[&sub, &name_key(rg)]).await?
        }
        None => {
            let sql = format!(
                "SELECT {VAULT_COLS} FROM vaults WHERE subscription = $1 AND deleted IS NULL ORDER BY name_key"
            );
            db.query(&sql, &[&sub]).await?
        }
    };
    decode_all(&rows, rows::vault)
}

pub(super) async fn deleted_vaults(db: &Db<'_>, subscription: Uuid) -> Result<Vec<Vault>> {
    let sql =
        format!("SELECT {VAULT_COLS} FROM vaults WHERE subscription = $1 AND deleted IS NOT NULL ORDER BY name_key");
    decode_all(&db.query(&sql, &[&uuid_text(subscription)]).await?, rows::vault)
}

pub(super) async fn purge_vault(db: &Db<'_>, name: &str) -> Result<Option<Vault>> {
    // Versions and deleted-secret rows go with it (ON DELETE CASCADE).
    let sql = format!("DELETE FROM vaults WHERE name_key = $1 RETURNING {VAULT_COLS}");
    decode_opt(db.query_opt(&sql, &[&name_key(name)]).await?, rows::vault)
}

/// Soft-deletes the active vaults of a group that is being deleted (its row locked by the caller, so
/// no vault can become active in it meanwhile) and returns them as they are now. The trait gives
/// `delete_resource_group` no clock, so the deletion time is the current Unix time, read once.
pub(super) async fn soft_delete_group_vaults(db: &Db<'_>, sub: &str, rg_key: &str) -> Result<Vec<Vault>> {
    let filter = "subscription = $1 AND rg_key = $2 AND deleted IS NULL";
    let sql = format!("SELECT {VAULT_COLS} FROM vaults WHERE {filter} ORDER BY name_key FOR NO KEY UPDATE");
    let mut vaults = decode_all(&db.query(&sql, &[&sub, &rg_key]).await?, rows::vault)?;
    if vaults.is_empty() {
        return Ok(vaults);
    }
    let now = crate::unix_now();
    db.execute(&format!("UPDATE vaults SET deleted = $3 WHERE {filter}"), &[&sub, &rg_key, &now]).await?;
    for v in &mut vaults {
        v.deleted = Some(now);
    }
    Ok(vaults)
}

// ---------------------------------------------------------------------------------------------------
// Secrets.

/// The display name of a secret that has versions (active or soft-deleted): the first version's.
async fn secret_name(db: &Db<'_>, vault: &str, key: &str) -> Result<Option<String>> {
    let row = db
        .query_opt("SELECT name FROM secrets WHERE vault = $1 AND name_key = $2 ORDER BY seq LIMIT 1", &[&vault, &key])
        .await?;
    row.map(|row| Cols { row: &row, table: "secrets" }.text("name")).transpose()
}

async fn is_deleted(db: &Db<'_>, vault: &str, key: &str) -> Result<bool> {
    db.exists("SELECT 1 FROM deleted_secrets WHERE vault = $1 AND name_key = $2", &[&vault, &key]).await
}

/// The latest version of a name, whether or not it is soft-deleted.
async fn latest(db: &Db<'_>, vault: &str, key: &str) -> Result<Option<SecretVersion>> {
    let sql = format!(
        "SELECT {VERSION_COLS} FROM secrets s WHERE s.vault = $1 AND s.name_key = $2 ORDER BY s.seq DESC LIMIT 1"
    );
    decode_opt(db.query_opt(&sql, &[&vault, &key]).await?, rows::secret_version)
}

fn deleted_but_recoverable(name: &str) -> StoreError {
    StoreError::Conflict(format!(
        "secret '{name}' is deleted but recoverable; its name cannot be reused until it is recovered or purged"
    ))
}

async fn insert_row(db: &Db<'_>, vault: &str, key: &str, name: &str, v: &SecretVersion) -> Result<()> {
    if db.exists("SELECT 1 FROM secrets WHERE vault = $1 AND version = $2", &[&vault, &v.version]).await? {
        return Err(StoreError::Conflict(format!("vault '{vault}' already has a secret version '{}'", v.version)));
    }
    let tags = json(db.what, &v.tags)?;
    db.execute(
        "INSERT INTO secrets (vault, name_key, name, version, sealed_value, content_type, tags, enabled, nbf, exp, \
         created, updated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &vault,
            &key,
            &name,
            &v.version,
            &v.sealed_value,
            &v.content_type,
            &tags,
            &v.enabled,
            &v.nbf,
            &v.exp,
            &v.created,
            &v.updated,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn insert_secret_version(db: &Db<'_>, v: &SecretVersion) -> Result<()> {
    let vault = name_key(&v.vault);
    let key = name_key(&v.name);
    if !lock_vault(db, &vault).await? {
        return Err(missing_vault(&v.vault));
    }
    let name = secret_name(db, &vault, &key).await?;
    if is_deleted(db, &vault, &key).await? {
        return Err(deleted_but_recoverable(name.as_deref().unwrap_or(&v.name)));
    }
    insert_row(db, &vault, &key, name.as_deref().unwrap_or(&v.name), v).await
}

pub(super) async fn update_secret_version(db: &Db<'_>, v: &SecretVersion) -> Result<bool> {
    let vault = name_key(&v.vault);
    if !lock_vault(db, &vault).await? {
        return Ok(false);
    }
    let tags = json(db.what, &v.tags)?;
    let n = db
        .execute(
            &format!(
                "UPDATE secrets AS s SET content_type = $4, tags = $5, enabled = $6, nbf = $7, exp = $8, updated = $9 \
                 WHERE s.vault = $1 AND s.name_key = $2 AND s.version = $3 AND {IS_ACTIVE}"
            ),
            &[&vault, &name_key(&v.name), &v.version, &v.content_type, &tags, &v.enabled, &v.nbf, &v.exp, &v.updated],
        )
        .await?;
    Ok(n == 1)
}

pub(super) async fn secret_version(
    db: &Db<'_>,
    vault: &str,
    name: &str,
    version: Option<&str>,
) -> Result<Option<SecretVersion>> {
    let (vault, key) = (name_key(vault), name_key(name));
    let row = match version {
        None => {
            let sql = format!(
                "SELECT {VERSION_COLS} FROM secrets s WHERE s.vault = $1 AND s.name_key = $2 AND {IS_ACTIVE} \
                 ORDER BY s.seq DESC LIMIT 1"
            );
            db.query_opt(&sql, &[&vault, &key]).await?
        }
        Some(version) => {
            let sql = format!(
                "SELECT {VERSION_COLS} FROM secrets s \
                 WHERE s.vault = $1 AND s.name_key = $2 AND s.version = $3 AND {IS_ACTIVE}"
            );
            db.query_opt(&sql, &[&vault, &key, &version]).await?
        }
    };
    decode_opt(row, rows::secret_version)
}

pub(super) async fn secrets(
    db: &Db<'_>,
    vault: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<SecretVersion>> {
    let (limit, fetch) = fetch_count(limit);
    let (op, from) = after_key(after);
    let sql = format!(
        "SELECT {VERSION_COLS} FROM secrets s WHERE s.vault = $1 AND s.name_key {op} $2 AND {IS_LATEST} \
         AND {IS_ACTIVE} ORDER BY s.name_key LIMIT $3"
    );
    let rows = decode_all(&db.query(&sql, &[&name_key(vault), &from, &fetch]).await?, rows::secret_version)?;
    Ok(page(rows, limit, |v| name_key(&v.name)))
}

pub(super) async fn secret_versions(
    db: &Db<'_>,
    vault: &str,
    name: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<SecretVersion>> {
    let (limit, fetch) = fetch_count(limit);
    // Cursors are ours, but they travel through clients (`$skiptoken`): one that is not a sequence
    // number points past the end, so it yields an empty last page rather than an error or a restart.
    let from: i64 = match after {
        None => 0,
        Some(cursor) => match cursor.parse() {
            Ok(seq) => seq,
            Err(_) => return Ok(Page { items: Vec::new(), next: None }),
        },
    };
    let sql = format!(
        "SELECT {VERSION_COLS} FROM secrets s WHERE s.vault = $1 AND s.name_key = $2 AND s.seq > $3 \
         AND {IS_ACTIVE} ORDER BY s.seq LIMIT $4"
    );
    let rows = decode_all(
        &db.query(&sql, &[&name_key(vault), &name_key(name), &from, &fetch]).await?,
        rows::secret_version_seq,
    )?;
    let Page { items, next } = page(rows, limit, |(seq, _)| seq.to_string());
    Ok(Page { items: items.into_iter().map(|(_, v)| v).collect(), next })
}

pub(super) async fn delete_secret(
    db: &Db<'_>,
    vault: &str,
    name: &str,
    deleted: i64,
    scheduled_purge: i64,
) -> Result<Option<DeletedSecret>> {
    let (vault, key) = (name_key(vault), name_key(name));
    if !lock_vault(db, &vault).await? {
        return Ok(None);
    }
    let Some(name) = secret_name(db, &vault, &key).await? else { return Ok(None) };
    if is_deleted(db, &vault, &key).await? {
        return Ok(None);
    }
    db.execute(
        "INSERT INTO deleted_secrets (vault, name_key, name, deleted, scheduled_purge) VALUES ($1, $2, $3, $4, $5)",
        &[&vault, &key, &name, &deleted, &scheduled_purge],
    )
    .await?;
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

pub(super) async fn deleted_secret(
    db: &Db<'_>,
    vault: &str,
    name: &str,
) -> Result<Option<(DeletedSecret, SecretVersion)>> {
    let sql = deleted_query("d.vault = $1 AND d.name_key = $2");
    decode_opt(db.query_opt(&sql, &[&name_key(vault), &name_key(name)]).await?, rows::deleted_secret_version)
}

pub(super) async fn deleted_secrets(
    db: &Db<'_>,
    vault: &str,
    after: Option<&str>,
    limit: usize,
) -> Result<Page<(DeletedSecret, SecretVersion)>> {
    let (limit, fetch) = fetch_count(limit);
    let (op, from) = after_key(after);
    let sql =
        format!("{} ORDER BY d.name_key LIMIT $3", deleted_query(&format!("d.vault = $1 AND d.name_key {op} $2")));
    let rows = decode_all(&db.query(&sql, &[&name_key(vault), &from, &fetch]).await?, rows::deleted_secret_version)?;
    Ok(page(rows, limit, |(d, _)| name_key(&d.name)))
}

pub(super) async fn recover_secret(db: &Db<'_>, vault: &str, name: &str) -> Result<Option<SecretVersion>> {
    let (vault, key) = (name_key(vault), name_key(name));
    if !lock_vault(db, &vault).await? {
        return Ok(None);
    }
    let n = db.execute("DELETE FROM deleted_secrets WHERE vault = $1 AND name_key = $2", &[&vault, &key]).await?;
    if n == 0 {
        return Ok(None);
    }
    match latest(db, &vault, &key).await? {
        Some(v) => Ok(Some(v)),
        None => Err(StoreError::Corrupt(format!("deleted secret '{name}' of vault '{vault}' has no versions"))),
    }
}

pub(super) async fn purge_secret(db: &Db<'_>, vault: &str, name: &str) -> Result<bool> {
    let (vault, key) = (name_key(vault), name_key(name));
    if !lock_vault(db, &vault).await? {
        return Ok(false);
    }
    let n = db.execute("DELETE FROM deleted_secrets WHERE vault = $1 AND name_key = $2", &[&vault, &key]).await?;
    if n == 0 {
        return Ok(false);
    }
    db.execute("DELETE FROM secrets WHERE vault = $1 AND name_key = $2", &[&vault, &key]).await?;
    Ok(true)
}

/// Purges expired soft-deleted secrets, then expired soft-deleted vaults. The secret count is of
/// secrets purged on their own schedule; the secrets of a purged vault go with it uncounted. The
/// caller holds the role-assignment lock exclusively (the grants of purged vaults go too).
pub(super) async fn purge_expired(db: &Db<'_>, now: i64) -> Result<Purged> {
    // Vault::scheduled_purge, in SQL.
    let expired = "deleted IS NOT NULL AND deleted + soft_delete_retention_days * 86400 <= $1";
    // Every vault it touches, locked first: writers of a vault's secrets lock the vault before them.
    db.execute(
        &format!(
            "SELECT 1 FROM vaults WHERE name_key IN (SELECT vault FROM deleted_secrets WHERE scheduled_purge <= $1) \
             OR ({expired}) ORDER BY name_key FOR UPDATE"
        ),
        &[&now],
    )
    .await?;
    db.execute(
        "DELETE FROM secrets WHERE (vault, name_key) IN \
         (SELECT vault, name_key FROM deleted_secrets WHERE scheduled_purge <= $1)",
        &[&now],
    )
    .await?;
    let secrets = db.execute("DELETE FROM deleted_secrets WHERE scheduled_purge <= $1", &[&now]).await?;
    let secrets = usize::try_from(secrets).unwrap_or(usize::MAX);
    let sql = format!("SELECT {VAULT_COLS}, name_key FROM vaults WHERE {expired} ORDER BY name_key");
    let rows = db.query(&sql, &[&now]).await?;
    let vaults = decode_all(&rows, rows::vault)?;
    let keys: Vec<String> =
        rows.iter().map(|row| Cols { row, table: "vaults" }.text("name_key")).collect::<Result<_>>()?;
    // Grants on a purged vault (or its secrets) go with it, so a vault re-created under the name
    // starts with none.
    let mut role_assignments = Vec::new();
    for v in &vaults {
        let key = wid_core::Scope::parse(&v.arm_id()).map(|s| s.key().to_string()).unwrap_or_default();
        let below = format!("{key}/");
        let filter = "scope_key = $1 OR starts_with(scope_key, $2)";
        let sql = format!("SELECT {RA_COLS} FROM role_assignments WHERE {filter} ORDER BY scope_key, id FOR UPDATE");
        role_assignments.extend(decode_all(&db.query(&sql, &[&key, &below]).await?, rows::role_assignment)?);
        db.execute(&format!("DELETE FROM role_assignments WHERE {filter}"), &[&key, &below]).await?;
    }
    db.execute("DELETE FROM vaults WHERE name_key = ANY($1)", &[&keys]).await?;
    Ok(Purged { secrets, vaults, role_assignments })
}

pub(super) async fn restore_secret(db: &Db<'_>, versions: &[SecretVersion]) -> Result<()> {
    let Some(first) = versions.first() else { return Ok(()) };
    let vault = name_key(&first.vault);
    let key = name_key(&first.name);
    if let Some(other) = versions.iter().find(|v| name_key(&v.vault) != vault || name_key(&v.name) != key) {
        return Err(StoreError::Conflict(format!(
            "a restore holds versions of one secret; '{}' in vault '{}' is not '{}' in vault '{}'",
            other.name, other.vault, first.name, first.vault
        )));
    }
    if !lock_vault(db, &vault).await? {
        return Err(missing_vault(&first.vault));
    }
    if let Some(name) = secret_name(db, &vault, &key).await? {
        if is_deleted(db, &vault, &key).await? {
            return Err(deleted_but_recoverable(&name));
        }
        return Err(StoreError::Conflict(format!("secret '{name}' already exists in vault '{vault}'")));
    }
    // In the given order, so the last one is the latest; the first fixes the name's casing.
    for v in versions {
        insert_row(db, &vault, &key, &first.name, v).await?;
    }
    Ok(())
}

/// The export queries of Key Vault records, in the order `import` takes them, with their decoders.
pub(super) fn exports() -> Vec<ExportQuery> {
    vec![
        (format!("SELECT {VAULT_COLS} FROM vaults ORDER BY name_key"), |row| rows::vault(row).map(Record::Vault)),
        (format!("SELECT {VERSION_COLS} FROM secrets s ORDER BY s.seq"), |row| {
            rows::secret_version(row).map(Record::SecretVersion)
        }),
        (format!("SELECT {DELETED_SECRET_COLS} FROM deleted_secrets ORDER BY vault, name_key"), |row| {
            rows::deleted_secret(row).map(Record::DeletedSecret)
        }),
    ]
}
