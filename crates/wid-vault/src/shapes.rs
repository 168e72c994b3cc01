//! The JSON shapes of Key Vault replies (field names exact, times in integer Unix seconds, absent
//! optional fields omitted).

use serde::Serialize;
use wid_core::model::{DeletedSecret, SecretVersion, Tags, Vault};
use zeroize::Zeroizing;

/// `SecretAttributes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attributes {
    pub enabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    pub created: i64,
    pub updated: i64,
    pub recoverable_days: i64,
    pub recovery_level: &'static str,
}

/// The `recoveryLevel` of a vault's objects: soft delete is always on; purge protection makes it
/// non-purgeable; a retention below 90 days makes it "Customized".
pub fn recovery_level(vault: &Vault) -> &'static str {
    match (vault.enable_purge_protection, vault.soft_delete_retention_days >= 90) {
        (true, true) => "Recoverable",
        (true, false) => "CustomizedRecoverable",
        (false, true) => "Recoverable+Purgeable",
        (false, false) => "CustomizedRecoverable+Purgeable",
    }
}

impl Attributes {
    /// The attributes of a stored version in a vault.
    pub fn of(v: &SecretVersion, vault: &Vault) -> Self {
        Attributes {
            enabled: v.enabled,
            nbf: v.nbf,
            exp: v.exp,
            created: v.created,
            updated: v.updated,
            recoverable_days: vault.soft_delete_retention_days,
            recovery_level: recovery_level(vault),
        }
    }
}

fn is_empty(tags: &Tags) -> bool {
    tags.is_empty()
}

fn expose<S: serde::Serializer>(v: &Option<Zeroizing<String>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_str(v),
        None => s.serialize_none(),
    }
}

/// `SecretBundle`. The value, when present, is zeroized on drop and never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretBundle {
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose")]
    pub value: Option<Zeroizing<String>>,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    pub attributes: Attributes,
    #[serde(skip_serializing_if = "is_empty")]
    pub tags: Tags,
}

impl std::fmt::Debug for SecretBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBundle")
            .field("value", &self.value.as_ref().map(|_| ".."))
            .field("id", &self.id)
            .field("content_type", &self.content_type)
            .field("attributes", &self.attributes)
            .field("tags", &self.tags)
            .finish()
    }
}

/// Ids and URLs of one vault as the client addresses it (`https://{authority}`).
#[derive(Debug, Clone)]
pub struct Urls<'a> {
    pub authority: &'a str,
}

impl Urls<'_> {
    /// `https://{host}/secrets/{name}/{version}`.
    pub fn version_id(&self, name: &str, version: &str) -> String {
        format!("https://{}/secrets/{name}/{version}", self.authority)
    }
    /// `https://{host}/secrets/{name}`.
    pub fn secret_id(&self, name: &str) -> String {
        format!("https://{}/secrets/{name}", self.authority)
    }
    /// `https://{host}/deletedsecrets/{name}`.
    pub fn recovery_id(&self, name: &str) -> String {
        format!("https://{}/deletedsecrets/{name}", self.authority)
    }
    /// An absolute `nextLink` on this host, carrying the request's api-version.
    pub fn next_link(&self, path: &str, api_version: &str, skiptoken: &str, maxresults: usize) -> String {
        format!(
            "https://{}{path}?api-version={api_version}&$skiptoken={skiptoken}&maxresults={maxresults}",
            self.authority
        )
    }
}

impl SecretBundle {
    /// A version's bundle, with or without its value.
    pub fn of(v: &SecretVersion, vault: &Vault, urls: &Urls<'_>, value: Option<Zeroizing<String>>) -> Self {
        SecretBundle {
            value,
            id: urls.version_id(&v.name, &v.version),
            content_type: v.content_type.clone(),
            attributes: Attributes::of(v, vault),
            tags: v.tags.clone(),
        }
    }
}

/// `DeletedSecretBundle` (never carries a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedSecretBundle {
    pub recovery_id: String,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
    #[serde(flatten)]
    pub bundle: SecretBundle,
}

impl DeletedSecretBundle {
    /// A deleted secret with its latest version.
    pub fn of(d: &DeletedSecret, v: &SecretVersion, vault: &Vault, urls: &Urls<'_>) -> Self {
        DeletedSecretBundle {
            recovery_id: urls.recovery_id(&d.name),
            deleted_date: d.deleted,
            scheduled_purge_date: d.scheduled_purge,
            bundle: SecretBundle::of(v, vault, urls, None),
        }
    }
}

/// `SecretItem`: `id` without a version in a secrets listing, with one in a versions listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretItem {
    pub id: String,
    pub attributes: Attributes,
    #[serde(skip_serializing_if = "is_empty")]
    pub tags: Tags,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

impl SecretItem {
    /// An item; `versioned` chooses the id form.
    pub fn of(v: &SecretVersion, vault: &Vault, urls: &Urls<'_>, versioned: bool) -> Self {
        SecretItem {
            id: if versioned { urls.version_id(&v.name, &v.version) } else { urls.secret_id(&v.name) },
            attributes: Attributes::of(v, vault),
            tags: v.tags.clone(),
            content_type: v.content_type.clone(),
        }
    }
}

/// `DeletedSecretItem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedSecretItem {
    pub recovery_id: String,
    pub deleted_date: i64,
    pub scheduled_purge_date: i64,
    #[serde(flatten)]
    pub item: SecretItem,
}

/// One page of a listing: `{"value":[…],"nextLink":…}` (`null` on the last page, as Key Vault).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListPage<T> {
    pub value: Vec<T>,
    pub next_link: Option<String>,
}

/// `BackupSecretResult`: `{"value":"<base64url blob>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupResult {
    pub value: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn vault(protect: bool, days: i64) -> Vault {
        Vault {
            subscription: Uuid::nil(),
            resource_group: "rg".into(),
            name: "kv".into(),
            location: "eastus".into(),
            tags: Tags::new(),
            vault_id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            sku: "standard".into(),
            enable_rbac_authorization: true,
            enable_purge_protection: protect,
            soft_delete_retention_days: days,
            public_network_access: "Enabled".into(),
            sealed_data_key: vec![],
            created: 0,
            updated: 0,
            deleted: None,
        }
    }

    #[test]
    fn recovery_levels() {
        assert_eq!(recovery_level(&vault(false, 90)), "Recoverable+Purgeable");
        assert_eq!(recovery_level(&vault(true, 90)), "Recoverable");
        assert_eq!(recovery_level(&vault(true, 7)), "CustomizedRecoverable");
        assert_eq!(recovery_level(&vault(false, 30)), "CustomizedRecoverable+Purgeable");
    }

    #[test]
    fn bundle_shape_omits_absent_fields() {
        let v = SecretVersion {
            vault: "kv".into(),
            name: "Db".into(),
            version: "0".repeat(32),
            sealed_value: vec![1, 2, 3],
            content_type: None,
            tags: Tags::new(),
            enabled: true,
            nbf: None,
            exp: None,
            created: 10,
            updated: 11,
        };
        let urls = Urls { authority: "kv.vault.localhost:8443" };
        let b = SecretBundle::of(&v, &vault(false, 90), &urls, Some(Zeroizing::new("pw".into())));
        assert!(!format!("{b:?}").contains("pw"));
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            json!({"value": "pw", "id": format!("https://kv.vault.localhost:8443/secrets/Db/{}", "0".repeat(32)),
                   "attributes": {"enabled": true, "created": 10, "updated": 11, "recoverableDays": 90, "recoveryLevel": "Recoverable+Purgeable"}})
        );
        let d = DeletedSecret { vault: "kv".into(), name: "Db".into(), deleted: 100, scheduled_purge: 200 };
        let db = serde_json::to_value(DeletedSecretBundle::of(&d, &v, &vault(false, 90), &urls)).unwrap();
        assert_eq!(db["recoveryId"], "https://kv.vault.localhost:8443/deletedsecrets/Db");
        assert_eq!((db["deletedDate"].as_i64(), db["scheduledPurgeDate"].as_i64()), (Some(100), Some(200)));
        assert!(db.get("value").is_none());
        let page = ListPage::<SecretItem> { value: vec![], next_link: None };
        assert_eq!(serde_json::to_value(page).unwrap(), json!({"value": [], "nextLink": null}));
    }
}
