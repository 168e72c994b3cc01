//! Row decoding shared by the SQLite and PostgreSQL backends.
//!
//! Both backends store the same records in the same columns; only the primitive reads differ
//! (rusqlite's `Row::get`, tokio-postgres's `Row::try_get`; SQLite keeps flags as integers,
//! PostgreSQL as booleans). Each backend implements [`RawRow`] for its native row type with those
//! reads, and everything above them lives here once: the column lists of the `SELECT`s, the typed
//! column helpers ([`Cols`]) and one decoder per record. A decoder fix or a new column is then made
//! in one place instead of being mirrored line for line in two backends.
//!
//! Decoders take `&dyn RawRow`, not a generic row: rusqlite's `Row<'stmt>` borrows its statement,
//! and a generic decoder passed as a value is fixed to one `'stmt`, so it cannot serve helpers that
//! decode rows of any statement (`for<'s> Fn(&Row<'s>)`); one object-safe signature serves both.
//!
//! Every failure is `StoreError::Corrupt("{table}.{col}: {why}")`, a NULL in a non-null column too.

use uuid::Uuid;
use wid_core::fic::{ClaimsMatchingExpression, FederatedCredential};
use wid_core::model::{
    AppPrincipal, Cluster, ClusterExtras, ClusterIssuer, DeletedSecret, Identity, PrincipalType, ResourceGroup,
    ResourceKey, RoleAssignment, SecretVersion, StoredCredential, Vault,
};

use crate::{Result, SigningKeyRecord, StoreError};

/// The primitive reads of a backend's row, by column name. `Ok(None)` is SQL NULL; `Err` is the
/// backend's own description of why the column cannot be read as that type.
pub(crate) trait RawRow {
    fn opt_text(&self, col: &str) -> std::result::Result<Option<String>, String>;
    fn opt_int(&self, col: &str) -> std::result::Result<Option<i64>, String>;
    fn opt_flag(&self, col: &str) -> std::result::Result<Option<bool>, String>;
    fn opt_bytes(&self, col: &str) -> std::result::Result<Option<Vec<u8>>, String>;
}

/// Typed access to a row's columns by name; every failure is `Corrupt` naming the table and column.
pub(crate) struct Cols<'a> {
    pub(crate) row: &'a dyn RawRow,
    pub(crate) table: &'static str,
}

impl Cols<'_> {
    pub(crate) fn corrupt(&self, col: &str, why: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(format!("{}.{col}: {why}", self.table))
    }

    fn nullable<T>(&self, col: &str, read: std::result::Result<Option<T>, String>) -> Result<Option<T>> {
        read.map_err(|why| self.corrupt(col, why))
    }

    fn required<T>(&self, col: &str, read: std::result::Result<Option<T>, String>) -> Result<T> {
        self.nullable(col, read)?.ok_or_else(|| self.corrupt(col, "is NULL"))
    }

    pub(crate) fn text(&self, col: &str) -> Result<String> {
        self.required(col, self.row.opt_text(col))
    }

    pub(crate) fn opt_text(&self, col: &str) -> Result<Option<String>> {
        self.nullable(col, self.row.opt_text(col))
    }

    pub(crate) fn int(&self, col: &str) -> Result<i64> {
        self.required(col, self.row.opt_int(col))
    }

    pub(crate) fn opt_int(&self, col: &str) -> Result<Option<i64>> {
        self.nullable(col, self.row.opt_int(col))
    }

    pub(crate) fn flag(&self, col: &str) -> Result<bool> {
        self.required(col, self.row.opt_flag(col))
    }

    pub(crate) fn bytes(&self, col: &str) -> Result<Vec<u8>> {
        self.required(col, self.row.opt_bytes(col))
    }

    pub(crate) fn uuid(&self, col: &str) -> Result<Uuid> {
        let s = self.text(col)?;
        Uuid::parse_str(&s).map_err(|_| self.corrupt(col, "not a GUID"))
    }

    pub(crate) fn opt_uuid(&self, col: &str) -> Result<Option<Uuid>> {
        let s = self.opt_text(col)?;
        s.map(|s| Uuid::parse_str(&s).map_err(|_| self.corrupt(col, "not a GUID"))).transpose()
    }

    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, col: &str) -> Result<T> {
        let s = self.text(col)?;
        serde_json::from_str(&s).map_err(|e| self.corrupt(col, e))
    }
}

// ---------------------------------------------------------------------------------------------------
// Records: a column list for the `SELECT`s and the decoder of a row holding those columns.

pub(crate) const RG_COLS: &str = "subscription, name, location, tags, created";

pub(crate) fn resource_group(row: &dyn RawRow) -> Result<ResourceGroup> {
    let c = Cols { row, table: "resource_groups" };
    Ok(ResourceGroup {
        subscription: c.uuid("subscription")?,
        name: c.text("name")?,
        location: c.text("location")?,
        tags: c.json("tags")?,
        created: c.int("created")?,
    })
}

pub(crate) const IDENTITY_COLS: &str =
    "subscription, resource_group, name, location, tags, tenant_id, client_id, principal_id, created, updated";

pub(crate) fn identity(row: &dyn RawRow) -> Result<Identity> {
    let c = Cols { row, table: "identities" };
    Ok(Identity {
        subscription: c.uuid("subscription")?,
        resource_group: c.text("resource_group")?,
        name: c.text("name")?,
        location: c.text("location")?,
        tags: c.json("tags")?,
        tenant_id: c.uuid("tenant_id")?,
        client_id: c.uuid("client_id")?,
        principal_id: c.uuid("principal_id")?,
        created: c.int("created")?,
        updated: c.int("updated")?,
    })
}

pub(crate) const CREDENTIAL_COLS: &str = "subscription, rg_key, identity_key, name, issuer, subject, expression, \
                                          expression_version, audiences, description, created, updated";

pub(crate) fn credential(row: &dyn RawRow) -> Result<StoredCredential> {
    let c = Cols { row, table: "credentials" };
    let claims_matching_expression = match (c.opt_text("expression")?, c.opt_int("expression_version")?) {
        (Some(value), Some(language_version)) => Some(ClaimsMatchingExpression { value, language_version }),
        (None, None) => None,
        _ => return Err(c.corrupt("expression", "expression and its version must both be set or both be null")),
    };
    Ok(StoredCredential {
        identity: ResourceKey {
            subscription: c.uuid("subscription")?,
            resource_group: c.text("rg_key")?,
            name: c.text("identity_key")?,
        },
        credential: FederatedCredential {
            name: c.text("name")?,
            issuer: c.text("issuer")?,
            subject: c.opt_text("subject")?,
            claims_matching_expression,
            audiences: c.json("audiences")?,
            description: c.opt_text("description")?,
        },
        created: c.int("created")?,
        updated: c.int("updated")?,
    })
}

pub(crate) const CLUSTER_COLS: &str = "subscription, resource_group, name, location, tags, cluster_id, issuer_kind, \
                                       issuer_url, issuer_kid, issuer_jwks, workload_identity, api_server, \
                                       api_server_ca, arm_extra, identity_bindings, created, updated";

pub(crate) fn cluster(row: &dyn RawRow) -> Result<Cluster> {
    let c = Cols { row, table: "clusters" };
    let kind = c.text("issuer_kind")?;
    let issuer_url = c.text("issuer_url")?;
    let kid = c.opt_text("issuer_kid")?;
    let jwks = c.opt_text("issuer_jwks")?;
    let issuer = match (kind.as_str(), kid) {
        ("hosted", Some(kid)) => ClusterIssuer::Hosted { issuer_url, kid },
        ("external", None) => ClusterIssuer::External { issuer_url, jwks },
        _ => return Err(c.corrupt("issuer_kind", format!("'{kind}' does not fit the issuer columns"))),
    };
    Ok(Cluster {
        subscription: c.uuid("subscription")?,
        resource_group: c.text("resource_group")?,
        name: c.text("name")?,
        location: c.text("location")?,
        tags: c.json("tags")?,
        cluster_id: c.uuid("cluster_id")?,
        issuer,
        workload_identity: c.flag("workload_identity")?,
        extras: ClusterExtras {
            api_server: c.opt_text("api_server")?,
            api_server_ca: c.opt_text("api_server_ca")?,
            arm: c.opt_text("arm_extra")?,
            identity_bindings: match c.opt_text("identity_bindings")? {
                Some(text) => serde_json::from_str(&text).map_err(|e| c.corrupt("identity_bindings", e.to_string()))?,
                None => Vec::new(),
            },
        },
        created: c.int("created")?,
        updated: c.int("updated")?,
    })
}

pub(crate) const APP_COLS: &str = "client_id, principal_id, display_name, secret_hash, created";

pub(crate) fn app(row: &dyn RawRow) -> Result<AppPrincipal> {
    let c = Cols { row, table: "apps" };
    Ok(AppPrincipal {
        client_id: c.uuid("client_id")?,
        principal_id: c.uuid("principal_id")?,
        display_name: c.text("display_name")?,
        secret_hash: c.bytes("secret_hash")?,
        created: c.int("created")?,
    })
}

pub(crate) const RA_COLS: &str =
    "id, scope, role_definition_id, principal_id, principal_type, description, created, updated, created_by";

pub(crate) fn role_assignment(row: &dyn RawRow) -> Result<RoleAssignment> {
    let c = Cols { row, table: "role_assignments" };
    let principal_type = c.text("principal_type")?;
    Ok(RoleAssignment {
        id: c.uuid("id")?,
        scope: c.text("scope")?,
        role_definition_id: c.uuid("role_definition_id")?,
        principal_id: c.uuid("principal_id")?,
        principal_type: PrincipalType::parse(&principal_type)
            .ok_or_else(|| c.corrupt("principal_type", format!("unknown principal type '{principal_type}'")))?,
        description: c.opt_text("description")?,
        created: c.int("created")?,
        updated: c.int("updated")?,
        created_by: c.opt_uuid("created_by")?,
    })
}

pub(crate) const SIGNING_KEY_COLS: &str = "kid, purpose, sealed_pkcs8, created, retired, expires";

pub(crate) fn signing_key(row: &dyn RawRow) -> Result<SigningKeyRecord> {
    let c = Cols { row, table: "signing_keys" };
    Ok(SigningKeyRecord {
        kid: c.text("kid")?,
        purpose: c.text("purpose")?,
        sealed_pkcs8: c.bytes("sealed_pkcs8")?,
        created: c.int("created")?,
        retired: c.opt_int("retired")?,
        expires: c.opt_int("expires")?,
    })
}

// ---------------------------------------------------------------------------------------------------
// Key Vault records.

pub(crate) const VAULT_COLS: &str = "subscription, resource_group, name, location, tags, vault_id, tenant_id, sku, \
                                     enable_rbac_authorization, enable_purge_protection, \
                                     soft_delete_retention_days, public_network_access, sealed_data_key, created, \
                                     updated, deleted";

pub(crate) fn vault(row: &dyn RawRow) -> Result<Vault> {
    let c = Cols { row, table: "vaults" };
    Ok(Vault {
        subscription: c.uuid("subscription")?,
        resource_group: c.text("resource_group")?,
        name: c.text("name")?,
        location: c.text("location")?,
        tags: c.json("tags")?,
        vault_id: c.uuid("vault_id")?,
        tenant_id: c.uuid("tenant_id")?,
        sku: c.text("sku")?,
        enable_rbac_authorization: c.flag("enable_rbac_authorization")?,
        enable_purge_protection: c.flag("enable_purge_protection")?,
        soft_delete_retention_days: c.int("soft_delete_retention_days")?,
        public_network_access: c.text("public_network_access")?,
        sealed_data_key: c.bytes("sealed_data_key")?,
        created: c.int("created")?,
        updated: c.int("updated")?,
        deleted: c.opt_int("deleted")?,
    })
}

/// The columns of a secret version, from `secrets` aliased `s`.
pub(crate) const VERSION_COLS: &str = "s.seq, s.vault, s.name, s.version, s.sealed_value, s.content_type, s.tags, \
                                       s.enabled, s.nbf, s.exp, s.created, s.updated";

/// A version and its `seq` (the versions cursor).
pub(crate) fn secret_version_seq(row: &dyn RawRow) -> Result<(i64, SecretVersion)> {
    let c = Cols { row, table: "secrets" };
    let version = SecretVersion {
        vault: c.text("vault")?,
        name: c.text("name")?,
        version: c.text("version")?,
        sealed_value: c.bytes("sealed_value")?,
        content_type: c.opt_text("content_type")?,
        tags: c.json("tags")?,
        enabled: c.flag("enabled")?,
        nbf: c.opt_int("nbf")?,
        exp: c.opt_int("exp")?,
        created: c.int("created")?,
        updated: c.int("updated")?,
    };
    Ok((c.int("seq")?, version))
}

/// A version, without its `seq`.
pub(crate) fn secret_version(row: &dyn RawRow) -> Result<SecretVersion> {
    secret_version_seq(row).map(|(_, v)| v)
}

/// The columns of a deleted secret, from `deleted_secrets` aliased `d`, renamed apart from `s`'s.
pub(crate) const DELETED_COLS: &str = "d.vault AS d_vault, d.name AS d_name, d.deleted AS d_deleted, \
                                       d.scheduled_purge AS d_scheduled_purge";

/// A deleted secret and its latest version: a row with [`DELETED_COLS`] and [`VERSION_COLS`].
pub(crate) fn deleted_secret_version(row: &dyn RawRow) -> Result<(DeletedSecret, SecretVersion)> {
    let c = Cols { row, table: "deleted_secrets" };
    let deleted = DeletedSecret {
        vault: c.text("d_vault")?,
        name: c.text("d_name")?,
        deleted: c.int("d_deleted")?,
        scheduled_purge: c.int("d_scheduled_purge")?,
    };
    Ok((deleted, secret_version(row)?))
}

/// The columns of a `deleted_secrets` row on its own (an export).
pub(crate) const DELETED_SECRET_COLS: &str = "vault, name, deleted, scheduled_purge";

pub(crate) fn deleted_secret(row: &dyn RawRow) -> Result<DeletedSecret> {
    let c = Cols { row, table: "deleted_secrets" };
    Ok(DeletedSecret {
        vault: c.text("vault")?,
        name: c.text("name")?,
        deleted: c.int("deleted")?,
        scheduled_purge: c.int("scheduled_purge")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of named columns: `None` is NULL; a read of the wrong type fails as a backend's would.
    struct Fake(Vec<(&'static str, Option<Value>)>);

    enum Value {
        Text(&'static str),
        Int(i64),
        Bytes(&'static [u8]),
    }

    impl Fake {
        fn read<T>(&self, col: &str, pick: impl Fn(&Value) -> Option<T>) -> std::result::Result<Option<T>, String> {
            let (_, v) = self.0.iter().find(|(name, _)| *name == col).ok_or_else(|| format!("no column {col}"))?;
            v.as_ref().map(|v| pick(v).ok_or_else(|| "wrong type".to_string())).transpose()
        }
    }

    impl RawRow for Fake {
        fn opt_text(&self, col: &str) -> std::result::Result<Option<String>, String> {
            self.read(col, |v| if let Value::Text(s) = v { Some(s.to_string()) } else { None })
        }
        fn opt_int(&self, col: &str) -> std::result::Result<Option<i64>, String> {
            self.read(col, |v| if let Value::Int(i) = v { Some(*i) } else { None })
        }
        fn opt_flag(&self, col: &str) -> std::result::Result<Option<bool>, String> {
            self.opt_int(col).map(|v| v.map(|v| v != 0))
        }
        fn opt_bytes(&self, col: &str) -> std::result::Result<Option<Vec<u8>>, String> {
            self.read(col, |v| if let Value::Bytes(b) = v { Some(b.to_vec()) } else { None })
        }
    }

    fn app_row(display_name: Option<Value>, principal_id: &'static str) -> Fake {
        Fake(vec![
            ("client_id", Some(Value::Text("11111111-1111-1111-1111-111111111111"))),
            ("principal_id", Some(Value::Text(principal_id))),
            ("display_name", display_name),
            ("secret_hash", Some(Value::Bytes(b"hash"))),
            ("created", Some(Value::Int(7))),
        ])
    }

    fn corrupt(r: Result<AppPrincipal>) -> String {
        match r {
            Err(StoreError::Corrupt(msg)) => msg,
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn decodes_a_row() {
        let app = app(&app_row(Some(Value::Text("web")), "22222222-2222-2222-2222-222222222222")).unwrap();
        assert_eq!(app.display_name, "web");
        assert_eq!(app.secret_hash, b"hash");
        assert_eq!(app.created, 7);
    }

    #[test]
    fn failures_are_corrupt_naming_table_and_column() {
        let guid = "22222222-2222-2222-2222-222222222222";
        assert_eq!(corrupt(app(&app_row(None, guid))), "apps.display_name: is NULL");
        assert_eq!(corrupt(app(&app_row(Some(Value::Int(1)), guid))), "apps.display_name: wrong type");
        assert_eq!(corrupt(app(&app_row(Some(Value::Text("web")), "nope"))), "apps.principal_id: not a GUID");
    }
}
