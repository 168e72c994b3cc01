//! Secret backups: every version of one secret (values, attributes, tags) as JSON, sealed with
//! AES-256-GCM under the master key with the AAD `secret-backup:{tenant}`, then base64url-encoded.
//! The plaintext values exist only inside the ciphertext; a blob opens only on the server (master
//! key) and tenant that made it, and restores into any vault of that tenant.

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wid_core::model::Tags;
use wid_crypto::MasterKey;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::VaultError;

/// Format marker inside the sealed JSON.
const FORMAT: &str = "wid-secret-backup/1";

/// Largest blob (base64url characters) a restore accepts, and so the largest a backup produces.
pub const MAX_BLOB_CHARS: usize = 200 * 1024;

fn aad(tenant: &Uuid) -> Vec<u8> {
    format!("secret-backup:{tenant}").into_bytes()
}

/// One version inside a backup. The value is zeroized on drop.
#[derive(Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
#[serde(rename_all = "camelCase")]
pub struct BackupVersion {
    pub version: String,
    pub value: String,
    #[zeroize(skip)]
    pub content_type: Option<String>,
    #[zeroize(skip)]
    pub tags: Tags,
    pub enabled: bool,
    pub nbf: Option<i64>,
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
}

/// The content of a backup: a secret name and its versions, oldest first.
#[derive(Serialize, Deserialize)]
pub struct Backup {
    format: String,
    pub name: String,
    pub versions: Vec<BackupVersion>,
}

impl std::fmt::Debug for Backup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backup").field("name", &self.name).field("versions", &self.versions.len()).finish()
    }
}

impl Backup {
    /// A backup of `name` with `versions` (oldest first).
    pub fn new(name: String, versions: Vec<BackupVersion>) -> Self {
        Backup { format: FORMAT.into(), name, versions }
    }

    /// Seals and encodes the backup.
    pub fn seal(&self, master: &MasterKey, tenant: &Uuid) -> Result<String, VaultError> {
        let json = Zeroizing::new(serde_json::to_vec(self).map_err(|e| VaultError::Internal(e.to_string()))?);
        let sealed = master.seal(&json, &aad(tenant))?;
        let blob = wid_crypto::secret::base64url(&sealed);
        if blob.len() > MAX_BLOB_CHARS {
            return Err(VaultError::BadParameter(format!(
                "The backup of secret {} would be {} bytes, more than the {MAX_BLOB_CHARS} a restore accepts; delete old versions (or keep them elsewhere) and retry.",
                self.name,
                blob.len()
            )));
        }
        Ok(blob)
    }

    /// Decodes and opens a blob made by [`Backup::seal`] on this server for this tenant.
    pub fn open(blob: &str, master: &MasterKey, tenant: &Uuid) -> Result<Backup, VaultError> {
        let invalid = || VaultError::BadParameter("backup blob is invalid or from another tenant".into());
        if blob.len() > MAX_BLOB_CHARS {
            return Err(invalid());
        }
        // Accept padded base64url too (some clients re-encode); the content is authenticated anyway.
        let sealed = wid_crypto::secret::base64url_decode(blob.trim().trim_end_matches('=')).ok_or_else(invalid)?;
        let json = master.open(&sealed, &aad(tenant)).map_err(|_| invalid())?;
        let backup: Backup = serde_json::from_slice(&json).map_err(|_| invalid())?;
        if backup.format != FORMAT || backup.versions.is_empty() {
            return Err(invalid());
        }
        Ok(backup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(v: &str, value: &str) -> BackupVersion {
        BackupVersion {
            version: v.into(),
            value: value.into(),
            content_type: None,
            tags: Tags::new(),
            enabled: true,
            nbf: None,
            exp: None,
            created: 1,
            updated: 2,
        }
    }

    #[test]
    fn round_trip_and_binding() {
        let master = MasterKey::generate().unwrap();
        let tenant = Uuid::new_v4();
        let b = Backup::new("db".into(), vec![version("a", "one"), version("b", "two")]);
        let blob = b.seal(&master, &tenant).unwrap();
        assert!(!blob.contains("one"));
        let back = Backup::open(&blob, &master, &tenant).unwrap();
        assert_eq!(back.name, "db");
        assert_eq!(back.versions.iter().map(|v| v.value.as_str()).collect::<Vec<_>>(), ["one", "two"]);
        // Another tenant, another server, garbage.
        assert!(Backup::open(&blob, &master, &Uuid::new_v4()).is_err());
        assert!(Backup::open(&blob, &MasterKey::generate().unwrap(), &tenant).is_err());
        assert!(Backup::open("not base64!", &master, &tenant).is_err());
        assert!(Backup::open("", &master, &tenant).is_err());
        let e = Backup::open("AAAA", &master, &tenant).unwrap_err();
        assert_eq!(e.to_wire().message, "backup blob is invalid or from another tenant");
    }
}
