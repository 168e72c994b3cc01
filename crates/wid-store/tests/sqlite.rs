//! The SQLite backend: the conformance suite on a temp file and in memory, then what only a file can
//! show (durability across reopen and SIGKILL, schema versions and upgrades, permissions, unusable
//! paths, purged secret values gone from the file).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test helpers

#[macro_use]
mod conformance;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;
use uuid::Uuid;
use wid_core::fic::FederatedCredential;
use wid_core::model::{
    AppPrincipal, Cluster, ClusterExtras, ClusterIssuer, Identity, PrincipalType, ResourceGroup, ResourceKey,
    RoleAssignment, SecretVersion, StoredCredential, Vault,
};
use wid_store::{SigningKeyRecord, SqliteStore, Store, StoreError};

/// The schema version this build writes (the number of migrations).
const SCHEMA_VERSION: i64 = 5;

fn file_store() -> (TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("wid.db")).unwrap();
    (dir, store)
}

mod file {
    conformance_tests!(super::file_store());
}

mod memory {
    conformance_tests!(((), wid_store::SqliteStore::open_in_memory().unwrap()));
}

#[test]
fn export_then_import_into_a_new_file_gives_the_same_records() {
    let ((_a, from), (_b, to)) = (file_store(), file_store());
    conformance::export_import_round_trip(&from, &to);
}

#[test]
fn run_all_accepts_boxed_stores() {
    conformance::run_all(&|| Box::new(SqliteStore::open_in_memory().unwrap()));
}

// ---------------------------------------------------------------------------------------------------

const SUB: Uuid = Uuid::from_u128(0x5ab5_0000_0000_4000_8000_0000_0000_0001);

fn guid(n: u128) -> Uuid {
    Uuid::from_u128(0x1d00_0000_0000_4000_8000_0000_0000_0000 | n)
}

fn group(name: &str) -> ResourceGroup {
    ResourceGroup {
        subscription: SUB,
        name: name.into(),
        location: "westeurope".into(),
        tags: BTreeMap::from([("k".to_string(), "v".to_string())]),
        created: 1,
    }
}

fn identity(group: &str, n: u128) -> Identity {
    Identity {
        subscription: SUB,
        resource_group: group.into(),
        name: format!("Id-{n}"),
        location: "westeurope".into(),
        tags: BTreeMap::new(),
        tenant_id: guid(0xfff),
        client_id: guid(0x1000 + n),
        principal_id: guid(0x2000 + n),
        created: 2,
        updated: 3,
    }
}

fn credential(identity: &ResourceKey, name: &str) -> StoredCredential {
    StoredCredential {
        identity: identity.clone(),
        credential: FederatedCredential {
            name: name.into(),
            issuer: "https://issuer.example/".into(),
            subject: Some(format!("system:serviceaccount:ns:{name}")),
            claims_matching_expression: None,
            audiences: vec!["api://AzureADTokenExchange".into()],
            description: None,
        },
        created: 4,
        updated: 5,
    }
}

fn vault(name: &str, n: u128) -> Vault {
    Vault {
        subscription: SUB,
        resource_group: "Team".into(),
        name: name.into(),
        location: "westeurope".into(),
        tags: BTreeMap::new(),
        vault_id: guid(0x8000 + n),
        tenant_id: guid(0xfff),
        sku: "standard".into(),
        enable_rbac_authorization: true,
        enable_purge_protection: n.is_multiple_of(2),
        soft_delete_retention_days: 7,
        public_network_access: "Enabled".into(),
        sealed_data_key: vec![n as u8; 60],
        created: 11,
        updated: 12,
        deleted: None,
    }
}

fn secret(vault: &str, name: &str, n: u128, sealed_value: Vec<u8>) -> SecretVersion {
    SecretVersion {
        vault: vault.into(),
        name: name.into(),
        version: format!("{:032x}", 0xabc0_0000_0000_0000_0000_0000_0000_0000 | n),
        sealed_value,
        content_type: None,
        tags: BTreeMap::new(),
        enabled: true,
        nbf: None,
        exp: None,
        created: 13,
        updated: 14,
    }
}

/// Writes `n` of every kind of record.
fn populate(store: &SqliteStore, n: u128) {
    store.meta_put("tenant_id", b"tenant").unwrap();
    assert!(store.meta_insert("sealed_admin", &[0, 1, 2, 255]).unwrap());
    store.put_resource_group(&group("Team")).unwrap();
    for i in 0..n {
        let ident = identity("Team", i);
        store.put_identity(&ident).unwrap();
        store.put_credential(&credential(&ident.key(), &format!("fic-{i}"))).unwrap();
        store
            .put_cluster(&Cluster {
                subscription: SUB,
                resource_group: "Team".into(),
                name: format!("aks-{i}"),
                location: "westeurope".into(),
                tags: BTreeMap::new(),
                cluster_id: guid(0x3000 + i),
                issuer: ClusterIssuer::External { issuer_url: format!("https://oidc.example/{i}"), jwks: None },
                workload_identity: i % 2 == 0,
                extras: Default::default(),
                created: 6,
                updated: 7,
            })
            .unwrap();
        store
            .insert_role_assignment(&RoleAssignment {
                id: guid(0x4000 + i),
                scope: ident.arm_id(),
                role_definition_id: guid(0x5000),
                principal_id: ident.principal_id,
                principal_type: PrincipalType::ServicePrincipal,
                description: None,
                created: 8,
                updated: 9,
                created_by: None,
            })
            .unwrap();
        store
            .put_signing_key(&SigningKeyRecord {
                kid: format!("kid-{i}"),
                purpose: "sts".into(),
                sealed_pkcs8: vec![i as u8; 48],
                created: i as i64,
                retired: None,
                expires: Some(1000),
            })
            .unwrap();
    }
    store.put_vault(&vault("kv", 1)).unwrap();
    for i in 0..n {
        store.insert_secret_version(&secret("kv", &format!("s-{i}"), i, vec![i as u8; 40])).unwrap();
    }
    store.delete_secret("kv", "s-0", 20, 30).unwrap().unwrap();
    store
        .put_app(&AppPrincipal {
            client_id: guid(0x6000),
            principal_id: guid(0x7000),
            display_name: "admin".into(),
            secret_hash: vec![7; 32],
            created: 10,
        })
        .unwrap();
}

#[test]
fn everything_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wid.db");
    let n = 25;
    let (before, keys, vaults) = {
        let store = SqliteStore::open(&path).unwrap();
        populate(&store, n);
        (format!("{:?}", store.snapshot().unwrap()), store.signing_keys().unwrap(), key_vault_state(&store))
    };
    let store = SqliteStore::open(&path).unwrap();
    let after = store.snapshot().unwrap();
    assert_eq!(after.identities.len() as u128, n);
    assert_eq!(after.credentials.len() as u128, n);
    assert_eq!(after.clusters.len() as u128, n);
    assert_eq!(after.role_assignments.len() as u128, n);
    assert_eq!(after.apps.len(), 1);
    assert_eq!(format!("{after:?}"), before);
    assert_eq!(store.signing_keys().unwrap(), keys);
    assert_eq!(store.meta_get("tenant_id").unwrap().as_deref(), Some(&b"tenant"[..]));
    assert_eq!(store.meta_get("sealed_admin").unwrap(), Some(vec![0, 1, 2, 255]));
    assert_eq!(store.resource_groups(SUB).unwrap(), vec![group("Team")]);
    assert_eq!(key_vault_state(&store), vaults);
    assert_eq!(store.secrets("kv", None, 100).unwrap().items.len() as u128, n - 1);
    // Migrations ran once: the schema is the newest version and a third open changes nothing.
    drop(store);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(format!("{:?}", store.snapshot().unwrap()), before);
}

/// A database of schema 3 (before clusters kept their API server and ARM fields) opens as 4 with its
/// clusters intact and their new fields empty, and takes them from then on.
#[test]
fn schema_3_clusters_migrate_with_nothing_lost() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("wid.db");
    let store = SqliteStore::open(&path).unwrap();
    populate(&store, 3);
    let before = store.clusters(SUB, None).unwrap();
    drop(store);
    // Back to schema 3: the columns migrations 4 and 5 add, gone.
    let conn = rusqlite::Connection::open(&path).unwrap();
    for column in ["api_server", "api_server_ca", "arm_extra", "identity_bindings"] {
        conn.execute_batch(&format!("ALTER TABLE clusters DROP COLUMN {column}")).unwrap();
    }
    conn.pragma_update(None, "user_version", 3).unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(store.clusters(SUB, None).unwrap(), before);
    assert!(before.iter().all(|c| c.extras == ClusterExtras::default()));
    let extras = ClusterExtras {
        api_server: Some("https://k:6443".into()),
        api_server_ca: Some("pem".into()),
        arm: Some("{}".into()),
        identity_bindings: Vec::new(),
    };
    let cluster = Cluster { extras, ..before[0].clone() };
    store.put_cluster(&cluster).unwrap();
    assert_eq!(store.cluster(&cluster.key()).unwrap(), Some(cluster));
}

/// Everything the Key Vault part of the store holds for the vault "kv", as comparable text.
fn key_vault_state(store: &SqliteStore) -> String {
    let secrets = store.secrets("kv", None, 1000).unwrap();
    let versions: Vec<_> = secrets
        .items
        .iter()
        .map(|s| (s.sealed_value.clone(), store.secret_versions("kv", &s.name, None, 1000).unwrap()))
        .collect();
    format!(
        "{:?} {secrets:?} {versions:?} {:?}",
        store.vault("kv").unwrap(),
        store.deleted_secrets("kv", None, 1000).unwrap()
    )
}

fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
}

#[track_caller]
fn backend_error(r: Result<SqliteStore, StoreError>) -> String {
    match r {
        Err(StoreError::Backend(msg)) => msg,
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wid.db");
    drop(SqliteStore::open(&path).unwrap());
    rusqlite::Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let msg = backend_error(SqliteStore::open(&path));
    assert!(msg.contains("version 99") && msg.contains("newer"), "{msg}");
    // Refusing did not touch it.
    assert_eq!(user_version(&path), 99);
}

#[test]
fn foreign_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Another program's SQLite database.
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other).unwrap().execute_batch("CREATE TABLE notes (body TEXT);").unwrap();
    let msg = backend_error(SqliteStore::open(&other));
    assert!(msg.contains("another program"), "{msg}");
    // A SQLite file marked as some other application's.
    let marked = dir.path().join("marked.db");
    rusqlite::Connection::open(&marked).unwrap().pragma_update(None, "application_id", 42).unwrap();
    let msg = backend_error(SqliteStore::open(&marked));
    assert!(msg.contains("not a wid database"), "{msg}");
    // Not SQLite at all.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    let msg = backend_error(SqliteStore::open(&junk));
    assert!(!msg.is_empty());
}

#[test]
fn database_files_are_private() {
    let (dir, store) = file_store();
    populate(&store, 1);
    for name in ["wid.db", "wid.db-wal", "wid.db-shm", "wid.db-lock"] {
        let mode = std::fs::metadata(dir.path().join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
}

#[test]
fn one_open_store_per_file() {
    let (dir, store) = file_store();
    let path = dir.path().join("wid.db");
    let msg = backend_error(SqliteStore::open(&path));
    assert!(msg.contains("in use"), "{msg}");
    populate(&store, 1);
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.snapshot().unwrap().identities.len(), 1);
}

#[test]
fn unusable_paths_are_backend_errors() {
    let dir = tempfile::tempdir().unwrap();
    // A parent that is a file.
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let msg = backend_error(SqliteStore::open(&file.join("wid.db")));
    assert!(msg.contains("wid.db"), "{msg}");
    // A parent that does not exist.
    backend_error(SqliteStore::open(&dir.path().join("missing/wid.db")));
    // A directory, not a file.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    backend_error(SqliteStore::open(&sub));
}

#[test]
fn read_only_directory_is_a_backend_error() {
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        // Root (or CAP_DAC_OVERRIDE) writes anyway; `unusable_paths_are_backend_errors` covers the path.
        eprintln!("skipped: this process can write to read-only directories");
        return;
    }
    let msg = backend_error(SqliteStore::open(&ro.join("wid.db")));
    assert!(msg.contains("wid.db"), "{msg}");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn undecodable_rows_are_corrupt_not_panics() {
    let (dir, store) = file_store();
    populate(&store, 1);
    let key = identity("Team", 0).key();
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("wid.db")).unwrap();
    conn.execute("UPDATE identities SET tags = 'not json', tenant_id = 'nope'", []).unwrap();
    conn.execute("UPDATE role_assignments SET principal_type = 'Robot'", []).unwrap();
    drop(conn);
    let store = SqliteStore::open(&dir.path().join("wid.db")).unwrap();
    match store.identity(&key) {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("identities."), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match store.role_assignment(guid(0x4000)) {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("Robot"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(store.snapshot(), Err(StoreError::Corrupt(_))));
}

#[test]
fn invalid_scope_is_refused_without_writing() {
    let store = SqliteStore::open_in_memory().unwrap();
    let ra = RoleAssignment {
        id: guid(1),
        scope: "subscriptions/not-absolute".into(),
        role_definition_id: guid(2),
        principal_id: guid(3),
        principal_type: PrincipalType::User,
        description: None,
        created: 0,
        updated: 0,
        created_by: None,
    };
    assert!(store.insert_role_assignment(&ra).is_err());
    assert_eq!(store.role_assignment(guid(1)).unwrap(), None);
}

// ---------------------------------------------------------------------------------------------------
// SIGKILL: every write acknowledged before the kill is there after it.

const CHILD_ENV: &str = "WID_STORE_SIGKILL_CHILD_DB";

/// The child half of `acknowledged_writes_survive_sigkill`; does nothing when run on its own.
#[test]
#[ignore = "run by acknowledged_writes_survive_sigkill in a child process"]
fn sigkill_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let store = SqliteStore::open(&PathBuf::from(path)).unwrap();
    store.put_resource_group(&group("Team")).unwrap();
    for n in 0..100_000u128 {
        let ident = identity("Team", n);
        store.put_identity(&ident).unwrap();
        store.meta_put(&format!("ack-{n}"), &n.to_le_bytes()).unwrap();
        // Only now is the write acknowledged.
        println!("ack {n}");
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wid.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "sigkill_child", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(n) = line.strip_prefix("ack ") {
            let n: u128 = n.trim().parse().unwrap();
            acked = Some(n);
            if n >= 40 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let acked = acked.expect("the child acknowledged writes");

    let store = SqliteStore::open(&path).unwrap();
    for n in 0..=acked {
        assert!(store.identity(&identity("Team", n).key()).unwrap().is_some(), "identity {n} lost");
        assert_eq!(store.meta_get(&format!("ack-{n}")).unwrap(), Some(n.to_le_bytes().to_vec()), "ack {n}");
    }
}

// ---------------------------------------------------------------------------------------------------
// Schema upgrades.

#[test]
fn schema_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wid.db");
    // A database as the first release left it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(include_str!("../migrations/0001_init.sql")).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    conn.pragma_update(None, "application_id", 0x7769_6431).unwrap();
    conn.execute(
        "INSERT INTO resource_groups (subscription, name_key, name, location, tags, created) \
         VALUES (?1, 'team', 'Team', 'westeurope', '{\"k\":\"v\"}', 1)",
        [SUB.to_string()],
    )
    .unwrap();
    drop(conn);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.resource_groups(SUB).unwrap(), vec![group("Team")]);
    store.put_vault(&vault("kv", 1)).unwrap();
    store.insert_secret_version(&secret("kv", "s", 1, vec![1, 2, 3])).unwrap();
    drop(store);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.secret_version("kv", "s", None).unwrap().unwrap().sealed_value, [1, 2, 3]);
}

#[test]
fn undecodable_key_vault_rows_are_corrupt_not_panics() {
    let (dir, store) = file_store();
    populate(&store, 2);
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("wid.db")).unwrap();
    conn.execute("UPDATE vaults SET vault_id = 'nope'", []).unwrap();
    conn.execute("UPDATE secrets SET tags = '[1'", []).unwrap();
    drop(conn);
    let store = SqliteStore::open(&dir.path().join("wid.db")).unwrap();
    match store.vault("kv") {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("vaults.vault_id"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match store.secrets("kv", None, 25) {
        Err(StoreError::Corrupt(msg)) => assert!(msg.contains("secrets.tags"), "{msg}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(matches!(store.deleted_secrets("kv", None, 25), Err(StoreError::Corrupt(_))));
}

// ---------------------------------------------------------------------------------------------------
// Secret values: the store only ever sees sealed bytes; once purged, they are gone from the file.

fn file_contains(path: &Path, needle: &[u8]) -> bool {
    match std::fs::read(path) {
        Ok(bytes) => bytes.windows(needle.len()).any(|w| w == needle),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => panic!("reading {}: {e}", path.display()),
    }
}

/// Moves every committed page from the WAL into the database file and empties the WAL.
fn checkpoint(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0)).unwrap();
    assert_eq!(busy, 0, "the checkpoint could not complete");
}

#[test]
fn purged_secret_values_are_zeroed_in_the_file() {
    let (dir, store) = file_store();
    let db = dir.path().join("wid.db");
    let wal = dir.path().join("wid.db-wal");
    store.put_resource_group(&group("Team")).unwrap();
    store.put_vault(&vault("kv", 1)).unwrap();
    store.put_vault(&vault("doomed", 2)).unwrap();
    let value = |marker: &str, len: usize| marker.bytes().cycle().take(len).collect::<Vec<u8>>();
    // Small values live in the row's page, large ones in overflow pages; each goes a different way.
    let gone = [
        ("kv", "purged-small", "MARKER-PURGED-SMALL|", 100),
        ("kv", "purged-large", "MARKER-PURGED-LARGE|", 30_000),
        ("kv", "expired", "MARKER-EXPIRED|", 5_000),
        ("doomed", "in-vault", "MARKER-VAULT|", 20_000),
    ];
    let kept = ("kv", "kept", "MARKER-KEPT|", 3_000);
    for (n, (vault, name, marker, len)) in gone.iter().chain([&kept]).enumerate() {
        let v = secret(vault, name, n as u128, value(marker, *len));
        store.insert_secret_version(&v).unwrap();
        assert_eq!(store.secret_version(vault, name, None).unwrap().unwrap().sealed_value, v.sealed_value);
    }
    checkpoint(&db);
    for (_, _, marker, _) in gone.iter().chain([&kept]) {
        assert!(file_contains(&db, marker.as_bytes()), "{marker} should be in the file before the purge");
    }

    for name in ["purged-small", "purged-large"] {
        store.delete_secret("kv", name, 1, 2).unwrap().unwrap();
        assert!(store.purge_secret("kv", name).unwrap());
    }
    store.delete_secret("kv", "expired", 1, 50).unwrap().unwrap();
    assert_eq!(store.purge_expired(100).unwrap().secrets, 1);
    store.put_vault(&Vault { deleted: Some(1), ..vault("doomed", 2) }).unwrap();
    assert!(store.purge_vault("doomed").unwrap().is_some());
    checkpoint(&db);

    for (_, _, marker, _) in &gone {
        assert!(!file_contains(&db, marker.as_bytes()), "{marker} is still in the database file");
        assert!(!file_contains(&wal, marker.as_bytes()), "{marker} is still in the WAL");
    }
    assert!(file_contains(&db, kept.2.as_bytes()));
    assert_eq!(store.secret_version("kv", "kept", None).unwrap().unwrap().sealed_value, value(kept.2, kept.3));
}
