//! First start initialises the data dir and the database; later starts reuse them.
//!
//! Layout: `master.key` (32 random bytes, 0600) seals everything secret in the database; `wid.db`
//! (SQLite); `ca.pem` (the local CA certificate, for clients to trust) and `ca.key` (0600). The tenant
//! and subscription ids, the signing keys (sealed) and the bootstrap admin principal (Owner at `/`,
//! its client secret sealed) live in the database.
//!
//! Replicas sharing a database start under the store's `bootstrap` lock, so exactly one of them
//! creates the ids, the admin and the first signing key (or rotates an old one) and the others load
//! what it made.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;
use wid_core::Clock;
use wid_core::model::{AppPrincipal, PrincipalType, RoleAssignment};
use wid_core::rbac::roles;
use wid_crypto::envelope::MasterKey;
use wid_crypto::pki::LocalCa;
use wid_store::{PostgresStore, SqliteStore, Store, StoreError};
use zeroize::Zeroizing;

use wid_sts::keys::KeyRing;

use crate::config::Database;
use crate::{ServeError, ServerConfig};
use wid_core::profile::write_private;

/// The admin principal created on first start.
pub struct Admin {
    pub client_id: Uuid,
    pub principal_id: Uuid,
    pub secret: Zeroizing<String>,
}

/// What a start needs from the data dir.
pub struct DataDir {
    pub path: PathBuf,
    pub store: Arc<dyn Store>,
    pub master: Arc<MasterKey>,
    pub tenant_id: Uuid,
    pub subscription_id: Uuid,
    pub admin: Admin,
    pub ca: LocalCa,
    pub keys: Arc<KeyRing>,
    /// What the in-memory state starts from (and its change-log position).
    pub snapshot: wid_store::Snapshot,
    /// Other processes may write to the store (replicas on one database): follow its change log.
    pub shared: bool,
}

impl DataDir {
    /// Path of the CA certificate clients should trust.
    pub fn ca_pem_path(&self) -> PathBuf {
        self.path.join("ca.pem")
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ServeError + '_ {
    move |source| ServeError::Io { path: path.to_path_buf(), source }
}

/// How long a replica waits for another one's bootstrap.
const BOOTSTRAP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Opens (and on first start initialises) the data dir and the database, loads the signing keys
/// (rotating the access-token key when due) and reads the snapshot the in-memory indexes start from.
pub fn open(cfg: &ServerConfig, clock: &dyn Clock) -> Result<DataDir, ServeError> {
    let dir = cfg.data_dir.as_path();
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
    let master = Arc::new(match &cfg.master_key_file {
        Some(path) => read_master_key(path)?,
        None => master_key(&dir.join("master.key"))?,
    });
    let (store, shared) = open_store(dir, &cfg.database, cfg.migrate)?;
    let ca = local_ca(dir)?;
    let guard = store.lock("bootstrap", BOOTSTRAP_WAIT)?;
    let tenant_id = meta_id(store.as_ref(), "tenant_id")?;
    let subscription_id = meta_id(store.as_ref(), "subscription_id")?;
    let admin = admin(store.as_ref(), &master, clock)?;
    let keys = Arc::new(
        KeyRing::load(store.clone(), master.clone(), clock.now()).map_err(|e| ServeError::Crypto(e.to_string()))?,
    );
    rotate_if_due(cfg, &keys, clock.now())?;
    drop(guard);
    let snapshot = store.snapshot()?;
    Ok(DataDir {
        path: dir.to_path_buf(),
        store,
        master,
        tenant_id,
        subscription_id,
        admin,
        ca,
        keys,
        snapshot,
        shared,
    })
}

/// Replaces the access-token signing key when asked or when it is older than the configured age. The
/// old key stays in the JWKS until every token it signed has expired (plus the allowed clock skew).
fn rotate_if_due(cfg: &ServerConfig, keys: &KeyRing, now: i64) -> Result<(), ServeError> {
    let purpose = wid_sts::keys::STS_PURPOSE;
    let age = keys.signer_created(purpose).map_or(0, |created| now - created);
    let max_age = i64::try_from(cfg.signing_key_max_age.as_secs()).unwrap_or(i64::MAX);
    if cfg.rotate_signing_key || age > max_age {
        let keep_until = now + i64::try_from(cfg.token_lifetime.as_secs()).unwrap_or(86400).max(3600) + 300;
        let kid = keys.rotate(purpose, now, Some(keep_until)).map_err(|e| ServeError::Crypto(e.to_string()))?;
        tracing::info!(
            kid,
            age_days = age / 86400,
            "rotated the access-token signing key; the previous key stays published until its tokens expire"
        );
    }
    Ok(())
}

/// Opens the store `database` names (SQLite: `DATA_DIR/wid.db`); `true` if other processes may
/// share it. `migrate` applies pending schema migrations (SQLite always does).
pub fn open_store(dir: &Path, database: &Database, migrate: bool) -> Result<(Arc<dyn Store>, bool), ServeError> {
    Ok(match database {
        Database::Sqlite => (Arc::new(SqliteStore::open(&dir.join("wid.db"))?), false),
        Database::Postgres(pg) => (Arc::new(PostgresStore::connect(pg, migrate)?), true),
    })
}

/// Reads a master key that must exist (a replica's shared key, or the key an import checks against).
pub fn read_master_key(path: &Path) -> Result<MasterKey, ServeError> {
    if !path.exists() {
        return Err(ServeError::Config(format!(
            "the master key file {} does not exist; replicas sharing a database need the same 32-byte key \
             (copy the first replica's DATA_DIR/master.key, or create one with `head -c 32 /dev/urandom`)",
            path.display()
        )));
    }
    master_key(path)
}

fn master_key(path: &Path) -> Result<MasterKey, ServeError> {
    if path.exists() {
        let mode = std::fs::metadata(path).map_err(io(path))?.permissions().mode();
        // Group read is how Kubernetes mounts a Secret for a non-root pod (fsGroup); others never.
        if mode & 0o007 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the master key is readable by every user; chmod 600 it");
        } else if mode & 0o070 != 0 {
            tracing::info!(path = %path.display(), mode = format!("{mode:o}"), "the master key is readable by its group");
        }
        let bytes = Zeroizing::new(std::fs::read(path).map_err(io(path))?);
        return MasterKey::from_bytes(&bytes).map_err(|e| ServeError::Crypto(format!("{}: {e}", path.display())));
    }
    let key = MasterKey::generate().map_err(|e| ServeError::Crypto(e.to_string()))?;
    write_private(path, key.expose_bytes()).map_err(io(path))?;
    Ok(key)
}

fn meta_id(store: &dyn Store, key: &str) -> Result<Uuid, ServeError> {
    store.meta_insert(key, Uuid::new_v4().to_string().as_bytes())?;
    let raw = store.meta_get(key)?.unwrap_or_default();
    std::str::from_utf8(&raw)
        .ok()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| ServeError::Store(StoreError::Corrupt(format!("meta '{key}' is not a GUID"))))
}

fn local_ca(dir: &Path) -> Result<LocalCa, ServeError> {
    let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
    if cert_path.exists() && key_path.exists() {
        let cert = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key = Zeroizing::new(std::fs::read_to_string(&key_path).map_err(io(&key_path))?);
        return LocalCa::from_pem(&cert, &key).map_err(|e| ServeError::Crypto(format!("{}: {e}", cert_path.display())));
    }
    let ca = LocalCa::generate("wid local CA").map_err(|e| ServeError::Crypto(e.to_string()))?;
    write_private(&key_path, ca.key_pem().as_bytes()).map_err(io(&key_path))?;
    // The certificate is public: clients read it to trust the server.
    write_private(&cert_path, ca.cert_pem().as_bytes()).map_err(io(&cert_path))?;
    std::fs::set_permissions(&cert_path, std::fs::Permissions::from_mode(0o644)).map_err(io(&cert_path))?;
    Ok(ca)
}

const ADMIN_AAD: &[u8] = b"admin-client-secret";

#[derive(serde::Serialize, serde::Deserialize)]
struct AdminMeta {
    client_id: Uuid,
    principal_id: Uuid,
    sealed_secret: String,
}

/// Checks that `master` opens the admin secret sealed in an `admin` metadata value (an import's
/// guard against loading data sealed under another key).
pub fn check_master_key(master: &MasterKey, admin_meta: &[u8]) -> Result<(), ServeError> {
    use base64::Engine;
    let meta: AdminMeta =
        serde_json::from_slice(admin_meta).map_err(|e| ServeError::Store(StoreError::Corrupt(e.to_string())))?;
    let sealed = base64::engine::general_purpose::STANDARD
        .decode(&meta.sealed_secret)
        .map_err(|e| ServeError::Store(StoreError::Corrupt(e.to_string())))?;
    master.open(&sealed, ADMIN_AAD).map(drop).map_err(|_| {
        ServeError::Crypto("the master key does not open the data (it was sealed with another key)".into())
    })
}

fn admin(store: &dyn Store, master: &MasterKey, clock: &dyn Clock) -> Result<Admin, ServeError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(raw) = store.meta_get("admin")? {
        let meta: AdminMeta =
            serde_json::from_slice(&raw).map_err(|e| ServeError::Store(StoreError::Corrupt(e.to_string())))?;
        let sealed =
            b64.decode(&meta.sealed_secret).map_err(|e| ServeError::Store(StoreError::Corrupt(e.to_string())))?;
        let secret = master.open(&sealed, ADMIN_AAD).map_err(|_| {
            ServeError::Crypto("the admin secret cannot be unsealed: wrong master.key for this database".into())
        })?;
        let secret = Zeroizing::new(String::from_utf8_lossy(&secret).into_owned());
        return Ok(Admin { client_id: meta.client_id, principal_id: meta.principal_id, secret });
    }
    let secret = wid_crypto::secret::generate_client_secret().map_err(|e| ServeError::Crypto(e.to_string()))?;
    let now = clock.now();
    let app = AppPrincipal {
        client_id: Uuid::new_v4(),
        principal_id: Uuid::new_v4(),
        display_name: "wid-admin".into(),
        secret_hash: wid_crypto::secret::hash_client_secret(&secret).to_vec(),
        created: now,
    };
    store.put_app(&app)?;
    let owner = RoleAssignment {
        id: Uuid::new_v4(),
        scope: "/".into(),
        role_definition_id: Uuid::parse_str(roles::OWNER).unwrap_or_default(),
        principal_id: app.principal_id,
        principal_type: PrincipalType::ServicePrincipal,
        description: Some("bootstrap admin".into()),
        created: now,
        updated: now,
        created_by: None,
    };
    store.insert_role_assignment(&owner)?;
    let sealed = master.seal(secret.as_bytes(), ADMIN_AAD).map_err(|e| ServeError::Crypto(e.to_string()))?;
    let meta =
        AdminMeta { client_id: app.client_id, principal_id: app.principal_id, sealed_secret: b64.encode(sealed) };
    // Written last: it marks the bootstrap as complete.
    store.meta_put("admin", &serde_json::to_vec(&meta).unwrap_or_default())?;
    tracing::info!(client_id = %app.client_id, principal_id = %app.principal_id, "created the bootstrap admin principal (Owner at /)");
    Ok(Admin { client_id: app.client_id, principal_id: app.principal_id, secret })
}
