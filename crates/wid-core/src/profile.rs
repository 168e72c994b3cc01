//! The CLI profile: which server to talk to and the credential of the CLI's own principal.
//!
//! Written by `wid serve` on first start (the bootstrap admin) and by `wid login`; read by every
//! client command. The file holds a credential, so it is written with mode 0600 through a temp
//! file in the same directory and an atomic rename. Location: `WID_CONFIG`, else
//! `$HOME/.wid/profile.json`.
//!
//! One type for both sides, here below both: the server writes it, the CLI reads and rewrites it.
//! It is the one file this crate touches; [`write_private`] is also how the server writes its key
//! files and the CLI its token files.

use std::collections::HashMap;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Contents of `profile.json` (camelCase JSON; unknown fields are ignored).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    /// Base URL of `wid serve`, e.g. `https://localhost:8443` (authority and management endpoint).
    pub server: String,
    pub tenant_id: String,
    pub subscription_id: String,
    /// Display name of the subscription (az `name`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subscription_name: String,
    /// Application (client) id of the CLI's principal.
    pub client_id: String,
    /// Client secret of the CLI's principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// A federated token (JWT) used as client assertion instead of a secret, as `az login
    /// --federated-token` stores it; valid until the token expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_assertion: Option<String>,
    /// Object id of the CLI's principal (`az ad signed-in-user show --query id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// PEM file with the CA(s) to trust in addition to the OS roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_file: Option<PathBuf>,
    /// Token audience of the management API (defaults to `server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_resource: Option<String>,
    /// Token audience of the Key Vault data plane, e.g. `https://vault.localhost:8443`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_resource: Option<String>,
    /// DNS suffix of vaults, e.g. `vault.localhost:8443`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_vault_dns_suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

impl fmt::Debug for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials never reach logs or error messages.
        f.debug_struct("Profile")
            .field("server", &self.server)
            .field("tenant_id", &self.tenant_id)
            .field("subscription_id", &self.subscription_id)
            .field("subscription_name", &self.subscription_name)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("client_assertion", &self.client_assertion.as_ref().map(|_| "<redacted>"))
            .field("principal_id", &self.principal_id)
            .field("ca_cert_file", &self.ca_cert_file)
            .field("management_resource", &self.management_resource)
            .field("key_vault_resource", &self.key_vault_resource)
            .field("key_vault_dns_suffix", &self.key_vault_dns_suffix)
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// Why the profile could not be read or written.
#[derive(Debug)]
pub enum ProfileError {
    /// No profile file at this path.
    NotFound(PathBuf),
    /// Reading or writing failed.
    Io(PathBuf, std::io::Error),
    /// The file is not a valid profile.
    Invalid(PathBuf, serde_json::Error),
    /// Neither `WID_CONFIG` nor `HOME` is set.
    NoLocation,
}

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProfileError::NotFound(p) => write!(f, "no profile at {}", p.display()),
            ProfileError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            ProfileError::Invalid(p, e) => write!(f, "{} is not a valid profile: {e}", p.display()),
            ProfileError::NoLocation => f.write_str("set WID_CONFIG or HOME to locate the profile"),
        }
    }
}

impl std::error::Error for ProfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProfileError::Io(_, e) => Some(e),
            ProfileError::Invalid(_, e) => Some(e),
            ProfileError::NotFound(_) | ProfileError::NoLocation => None,
        }
    }
}

/// The profile path: `WID_CONFIG`, else `$HOME/.wid/profile.json`.
pub fn default_path(env: &HashMap<String, String>) -> Result<PathBuf, ProfileError> {
    if let Some(p) = env.get("WID_CONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    match env.get("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(Path::new(home).join(".wid").join("profile.json")),
        None => Err(ProfileError::NoLocation),
    }
}

impl Profile {
    /// Reads the profile at `path`.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ProfileError::NotFound(path.to_owned())
            } else {
                ProfileError::Io(path.to_owned(), e)
            }
        })?;
        serde_json::from_str(&text).map_err(|e| ProfileError::Invalid(path.to_owned(), e))
    }

    /// Writes the profile to `path` with mode 0600 (temp file + rename, so readers never see a
    /// partial file and the credential is never briefly world-readable). Creates the parent
    /// directory with mode 0700 if needed.
    pub fn save(&self, path: &Path) -> Result<(), ProfileError> {
        let mut json = serde_json::to_string_pretty(self).map_err(|e| ProfileError::Invalid(path.to_owned(), e))?;
        json.push('\n');
        write_private(path, json.as_bytes()).map_err(|e| ProfileError::Io(path.to_owned(), e))
    }

    /// The server base URL without a trailing slash.
    pub fn server_base(&self) -> &str {
        self.server.trim_end_matches('/')
    }

    /// Token audience of the management API.
    pub fn management_audience(&self) -> &str {
        self.management_resource.as_deref().unwrap_or(&self.server)
    }
}

/// Writes `bytes` to `path` atomically with mode 0600 (temp file in the same directory, fsync,
/// rename, directory fsync), creating the parent directory with mode 0700 if needed.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    }
    let file_name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let tmp = dir.join(format!(".{file_name}.{}.{nanos}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        // The mode given to open() is filtered by the umask; make sure it is exactly 0600.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Profile {
        Profile {
            server: "https://localhost:8443".into(),
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            subscription_id: "0b1f6471-1bf0-4dda-aec3-cb9272f09590".into(),
            subscription_name: "wid".into(),
            client_id: "04b07795-8ddb-461a-bbee-02f9e1bf7b46".into(),
            client_secret: Some("s3cret".into()),
            client_assertion: None,
            principal_id: Some("5f8b0c2e-2f6a-4c1b-9a8e-0c3d7f1e2a4b".into()),
            ca_cert_file: Some("/data/ca.pem".into()),
            management_resource: Some("https://localhost:8443".into()),
            key_vault_resource: Some("https://vault.localhost:8443".into()),
            key_vault_dns_suffix: Some("vault.localhost:8443".into()),
            display_name: Some("wid-admin".into()),
        }
    }

    #[test]
    fn round_trip_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("profile.json");
        let p = sample();
        p.save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(Profile::load(&path).unwrap(), p);
        // Overwriting keeps the mode and leaves no temp files behind.
        p.save(&path).unwrap();
        let entries: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn reads_the_server_written_shape_and_ignores_unknown_fields() {
        let json = r#"{"server":"https://localhost:8443","tenantId":"t","subscriptionId":"s",
            "subscriptionName":"wid","clientId":"c","clientSecret":"x","principalId":"p",
            "caCertFile":"/d/ca.pem","managementResource":"https://localhost:8443",
            "keyVaultResource":"https://vault.localhost:8443","keyVaultDnsSuffix":"vault.localhost:8443",
            "displayName":"wid-admin","somethingNew":{"a":1}}"#;
        let p: Profile = serde_json::from_str(json).unwrap();
        assert_eq!(p.client_secret.as_deref(), Some("x"));
        assert_eq!(p.ca_cert_file.as_deref(), Some(Path::new("/d/ca.pem")));
        let minimal: Profile =
            serde_json::from_str(r#"{"server":"https://h","tenantId":"t","subscriptionId":"s","clientId":"c"}"#)
                .unwrap();
        assert_eq!(minimal.management_audience(), "https://h");
        assert!(minimal.ca_cert_file.is_none());
    }

    #[test]
    fn debug_redacts_credentials() {
        let s = format!("{:?}", sample());
        assert!(!s.contains("s3cret"));
        assert!(s.contains("<redacted>"));
    }

    #[test]
    fn path_from_env() {
        let mut env = HashMap::new();
        env.insert("HOME".to_owned(), "/home/u".to_owned());
        assert_eq!(default_path(&env).unwrap(), PathBuf::from("/home/u/.wid/profile.json"));
        env.insert("WID_CONFIG".to_owned(), "/etc/wid.json".to_owned());
        assert_eq!(default_path(&env).unwrap(), PathBuf::from("/etc/wid.json"));
        assert!(matches!(default_path(&HashMap::new()), Err(ProfileError::NoLocation)));
    }
}
