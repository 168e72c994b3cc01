//! The large data set, written straight into wid's SQLite database while `wid serve` is stopped:
//! everything the server wrote is exported, a fresh database gets that plus the generated
//! identities, credentials and role assignments in one transaction (`Store::import`, what
//! `wid import` uses), and the server starts on it. Creating 100,000 identities through the
//! management API would take an hour of fsyncs and measures nothing the small run does not.

use std::path::Path;

use anyhow::Context;
use uuid::Uuid;
use wid_core::fic::{ClaimsMatchingExpression, FederatedCredential};
use wid_core::model::{Identity, PrincipalType, ResourceKey, RoleAssignment, StoredCredential};
use wid_store::{Record, SqliteStore, Store};

use crate::cluster::{AUDIENCE, ISSUER};

/// What was added.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Added {
    pub identities: usize,
    pub credentials: usize,
    pub role_assignments: usize,
    /// Exact credentials added to bench identity 0 (none of them admits its tokens).
    pub crowd_exact: usize,
    /// Claims-matching credentials on the bench cluster's issuer added to bench identity 1, whose
    /// tokens only an expression written after them admits.
    pub crowd_patterns: usize,
}

/// Extra exact credentials on bench identity 0 and patterns on bench identity 1 (the server of
/// the large run has no cap: `--max-federated-credentials 0`).
pub const CROWD_EXACT: usize = 100_000;
pub const CROWD_PATTERNS: usize = 10_000;

/// Credentials of generated identity `i`: 20 for one identity in 100, 1–3 for the others (a
/// workload federated with one to three clusters or namespaces); mean ≈ 2.2.
pub fn credentials_of(i: usize) -> usize {
    if i.is_multiple_of(100) { 20 } else { 1 + i % 3 }
}

/// Adds `identities` identities (with their credentials) and `role_assignments` assignments to the
/// SQLite database in `data_dir` (the server must be stopped).
pub fn grow(
    data_dir: &Path,
    subscription: Uuid,
    tenant: Uuid,
    rg: &str,
    vault_id: &str,
    identities: usize,
    role_assignments: usize,
) -> anyhow::Result<Added> {
    let mut added = Added::default();
    rewrite(data_dir, |records| {
        let now = crate::cluster::unix_now();
        let mut principals = Vec::with_capacity(identities);
        for i in 0..identities {
            let name = format!("scale-{i}");
            let identity = Identity {
                subscription,
                resource_group: rg.to_string(),
                name: name.clone(),
                location: "eastus".into(),
                tags: Default::default(),
                tenant_id: tenant,
                client_id: Uuid::new_v4(),
                principal_id: Uuid::new_v4(),
                created: now,
                updated: now,
            };
            principals.push(identity.principal_id);
            records.push(Record::Identity(identity));
            added.identities += 1;
            for j in 0..credentials_of(i) {
                let issuer =
                    if j % 2 == 0 { ISSUER.to_string() } else { format!("https://oidc.cluster-{}.example/", j) };
                records.push(Record::Credential(StoredCredential {
                    identity: ResourceKey::new(subscription, rg, &name),
                    credential: FederatedCredential {
                        name: format!("fic-{j}"),
                        issuer,
                        subject: Some(format!("system:serviceaccount:ns-{}:sa-{i}-{j}", i % 50)),
                        claims_matching_expression: None,
                        audiences: vec![AUDIENCE.to_string()],
                        description: None,
                    },
                    created: now,
                    updated: now,
                }));
                added.credentials += 1;
            }
        }
        let user = Uuid::parse_str(wid_core::rbac::roles::KEY_VAULT_SECRETS_USER).context("role id")?;
        for n in 0..role_assignments {
            let principal = principals.get(n % principals.len().max(1)).copied().unwrap_or_else(Uuid::new_v4);
            // Half at the vault, half at secrets of it (the scopes a vault read walks).
            let scope = if n % 2 == 0 { vault_id.to_string() } else { format!("{vault_id}/secrets/s-{n}") };
            records.push(Record::RoleAssignment(RoleAssignment {
                id: Uuid::new_v4(),
                scope,
                role_definition_id: user,
                principal_id: principal,
                principal_type: PrincipalType::ServicePrincipal,
                description: None,
                created: now,
                updated: now,
                created_by: None,
            }));
            added.role_assignments += 1;
        }
        Ok(())
    })?;
    Ok(added)
}

/// Crowds two bench identities' credentials (see [`crowd`]) in the stopped server's database.
pub fn crowd_db(data_dir: &Path, subscription: Uuid, rg: &str, added: &mut Added) -> anyhow::Result<()> {
    rewrite(data_dir, |records| {
        crowd(records, subscription, rg, crate::cluster::unix_now(), added);
        Ok(())
    })
}

/// Exports the stopped server's SQLite database, lets `change` edit the records, and writes them
/// into a fresh database in one transaction (`Store::import`, what `wid import` uses).
fn rewrite(data_dir: &Path, change: impl FnOnce(&mut Vec<Record>) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let db = data_dir.join("wid.db");
    let mut records = Vec::new();
    {
        let store = SqliteStore::open(&db).context("open wid.db")?;
        store.export(&mut |r| {
            records.push(r);
            Ok(())
        })?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let p = data_dir.join(format!("wid.db{suffix}"));
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("remove {}", p.display()))?;
        }
    }
    change(&mut records)?;
    let store = SqliteStore::open(&db).context("create wid.db")?;
    store.import(&mut records.into_iter().map(Ok)).context("import")?;
    Ok(())
}

/// Crowds two bench identities' credentials. Identity `id-0` keeps its admitting credential among
/// [`CROWD_EXACT`] exact ones that admit nothing (an exchange is one probe however many). For
/// `id-1`, the admitting exact credential becomes the expression `claims['sub'] eq '…'`, written
/// after [`CROWD_PATTERNS`] expressions on the same issuer that do not match (an exchange evaluates
/// them all: the worst case of pattern credentials on one issuer).
fn crowd(records: &mut Vec<Record>, subscription: Uuid, rg: &str, now: i64, added: &mut Added) {
    let cred = |identity: &str, name: String, subject: Option<String>, expression: Option<String>| {
        Record::Credential(StoredCredential {
            identity: ResourceKey::new(subscription, rg, identity),
            credential: FederatedCredential {
                name,
                issuer: ISSUER.to_string(),
                subject,
                claims_matching_expression: expression
                    .map(|value| ClaimsMatchingExpression { value, language_version: 1 }),
                audiences: vec![AUDIENCE.to_string()],
                description: None,
            },
            created: now,
            updated: now,
        })
    };
    for k in 0..CROWD_EXACT {
        records.push(cred("id-0", format!("crowd-{k}"), Some(format!("system:serviceaccount:crowd-{k}:sa")), None));
        added.crowd_exact += 1;
    }
    let admitting = crate::cluster::subject(1);
    records.retain(|r| {
        !matches!(r, Record::Credential(c) if c.identity.name == "id-1" && c.credential.subject.as_deref() == Some(admitting.as_str()) && c.credential.issuer == ISSUER)
    });
    for k in 0..CROWD_PATTERNS {
        let expression = format!("claims['sub'] matches 'system:serviceaccount:crowd-{k}:*'");
        records.push(cred("id-1", format!("pattern-{k}"), None, Some(expression)));
        added.crowd_patterns += 1;
    }
    records.push(cred("id-1", "zz-admitting".into(), None, Some(format!("claims['sub'] eq '{admitting}'"))));
}
