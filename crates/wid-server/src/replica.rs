//! Following the change log, for replicas that share a database.
//!
//! Each `wid serve` keeps its in-memory directory (identities, credentials, clusters, applications,
//! role assignments) and key ring. Its own writes update them at once; writes made by the other
//! replicas reach it through the store's change log: the follower wakes on the store's notification
//! (PostgreSQL `LISTEN`), or at the latest every [`POLL`], reads the entries after the last one it
//! applied and reloads each named record from the store. A change made on one replica is therefore in
//! effect on every other within `POLL` plus one store read — in practice a few milliseconds.
//!
//! Applying an entry reloads the record's current state, so entries are idempotent and a late one
//! can never undo a newer write. A follower that fell behind the pruned part of the log rebuilds
//! everything from a snapshot.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use wid_core::Clock;
use wid_core::directory::Directory;
use wid_store::{Changed, Store};
use wid_sts::keys::KeyRing;

/// The longest a replica waits before it looks at the change log again.
pub const POLL: Duration = Duration::from_secs(1);
/// Entries older than this are pruned (a replica away for longer resyncs from a snapshot).
const KEEP: Duration = Duration::from_secs(3600);
/// How often a follower prunes.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Entries read per round.
const BATCH: usize = 512;

/// Applies other replicas' writes to this one's in-memory state.
pub struct Follower {
    pub store: Arc<dyn Store>,
    pub directory: Arc<RwLock<Directory>>,
    pub keys: Arc<KeyRing>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
enum FollowError {
    #[error(transparent)]
    Store(#[from] wid_store::StoreError),
    #[error(transparent)]
    Keys(#[from] wid_sts::keys::KeyError),
}

impl Follower {
    /// Follows the log from `from` on its own thread until `stop` is set.
    pub fn spawn(self, from: i64, stop: Arc<AtomicBool>) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new().name("wid-replica".into()).spawn(move || self.run(from, &stop))
    }

    fn run(&self, mut last: i64, stop: &AtomicBool) {
        let mut pruned = Instant::now();
        while !stop.load(Ordering::Acquire) {
            match self.catch_up(last) {
                Ok(seq) => last = seq,
                Err(e) => tracing::warn!(error = %e, "following the change log failed; retrying"),
            }
            if pruned.elapsed() >= PRUNE_EVERY {
                pruned = Instant::now();
                let before = self.clock.now() - i64::try_from(KEEP.as_secs()).unwrap_or(i64::MAX);
                if let Err(e) = self.store.prune_changes(before) {
                    tracing::warn!(error = %e, "pruning the change log failed");
                }
            }
            if let Err(e) = self.store.wait_for_changes(POLL) {
                tracing::warn!(error = %e, "waiting for changes failed");
                std::thread::sleep(POLL);
            }
        }
    }

    /// Applies every entry after `last`; returns the last one applied.
    pub fn catch_up(&self, mut last: i64) -> Result<i64, wid_store::StoreError> {
        loop {
            let batch = self.store.changes_since(last, BATCH)?;
            if batch.resync {
                return self.resync();
            }
            let Some(&(newest, _)) = batch.changes.last() else { return Ok(last) };
            for (seq, change) in &batch.changes {
                if let Err(e) = self.apply(change) {
                    tracing::warn!(error = %e, ?change, "applying a change from another replica failed; retrying");
                    return Ok(last);
                }
                last = *seq;
            }
            tracing::debug!(through = newest, count = batch.changes.len(), "applied changes from other replicas");
            if batch.changes.len() < BATCH {
                return Ok(last);
            }
        }
    }

    fn apply(&self, change: &Changed) -> Result<(), FollowError> {
        let store = self.store.as_ref();
        match change {
            Changed::Identity(key) => {
                let now = match store.identity(key)? {
                    Some(identity) => {
                        let credentials = store.credentials(key)?.into_iter().map(|c| c.credential).collect();
                        Some((identity, credentials))
                    }
                    None => None,
                };
                self.dir().replace_identity(key, now);
            }
            Changed::Cluster(key) => match store.cluster(key)? {
                Some(cluster) => self.dir().put_cluster(cluster),
                None => self.dir().remove_cluster(key),
            },
            Changed::App(client_id) => {
                if let Some(app) = store.app(*client_id)? {
                    self.dir().put_app(app);
                }
            }
            Changed::RoleAssignment { id, principal } => match store.role_assignment(*id)? {
                Some(ra) => self.dir().put_role_assignment(&ra),
                None => self.dir().remove_role_assignment_id(principal, id),
            },
            Changed::SigningKeys(purpose) => self.keys.reload(purpose, self.clock.now())?,
        }
        Ok(())
    }

    /// Rebuilds the directory and the key ring from a snapshot; returns its change-log position.
    fn resync(&self) -> Result<i64, wid_store::StoreError> {
        let s = self.store.snapshot()?;
        let rebuilt = Directory::build(s.identities, s.credentials, s.clusters, s.apps, s.role_assignments);
        *self.dir() = rebuilt;
        if let Err(e) = self.keys.reload_all(self.clock.now()) {
            tracing::warn!(error = %e, "reloading the signing keys failed");
        }
        tracing::info!(
            at = s.change_head,
            "rebuilt the in-memory state from a snapshot (behind the pruned change log)"
        );
        Ok(s.change_head)
    }

    fn dir(&self) -> std::sync::RwLockWriteGuard<'_, Directory> {
        self.directory.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use uuid::Uuid;
    use wid_core::fic::{DEFAULT_AUDIENCE, FederatedCredential};
    use wid_core::model::{AppPrincipal, Identity, PrincipalType, ResourceGroup, RoleAssignment, StoredCredential};
    use wid_core::rbac::{Action, roles};
    use wid_core::{FixedClock, Scope};
    use wid_crypto::envelope::MasterKey;
    use wid_store::SqliteStore;
    use wid_sts::keys::STS_PURPOSE;

    use super::*;

    const SUB: Uuid = Uuid::from_u128(1);

    /// Two replicas' views of one store: `mine` follows what `theirs` writes straight to the store.
    fn setup() -> (Arc<dyn Store>, Arc<KeyRing>, Follower) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let master = Arc::new(MasterKey::generate().unwrap());
        let theirs = Arc::new(KeyRing::load(store.clone(), master.clone(), 1000).unwrap());
        let mine = Arc::new(KeyRing::load(store.clone(), master, 1000).unwrap());
        let directory = Arc::new(RwLock::new(Directory::default()));
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(1000));
        (store.clone(), theirs, Follower { store, directory, keys: mine, clock })
    }

    fn identity(name: &str) -> Identity {
        Identity {
            subscription: SUB,
            resource_group: "rg".into(),
            name: name.into(),
            location: "local".into(),
            tags: Default::default(),
            tenant_id: Uuid::nil(),
            client_id: Uuid::new_v4(),
            principal_id: Uuid::new_v4(),
            created: 0,
            updated: 0,
        }
    }

    fn credential(name: &str) -> FederatedCredential {
        FederatedCredential {
            name: name.into(),
            issuer: "https://issuer/".into(),
            subject: Some(format!("system:serviceaccount:default:{name}")),
            claims_matching_expression: None,
            audiences: vec![DEFAULT_AUDIENCE.into()],
            description: None,
        }
    }

    fn can_read_secrets(f: &Follower, principal: &Uuid) -> bool {
        let scope = Scope::parse(&format!("/subscriptions/{SUB}/resourceGroups/rg")).unwrap();
        let action = Action::Data("Microsoft.KeyVault/vaults/secrets/getSecret/action");
        f.directory.read().unwrap().rbac().check(principal, action, &scope).is_allowed()
    }

    #[test]
    fn other_replicas_writes_reach_the_directory_and_key_ring() {
        let (store, theirs, f) = setup();
        let mut at = f.catch_up(0).unwrap();
        store
            .put_resource_group(&ResourceGroup {
                subscription: SUB,
                name: "rg".into(),
                location: "local".into(),
                tags: Default::default(),
                created: 0,
            })
            .unwrap();
        let id = identity("web");
        store.put_identity(&id).unwrap();
        for name in ["a", "b"] {
            let cred = StoredCredential { identity: id.key(), credential: credential(name), created: 0, updated: 0 };
            store.put_credential(&cred).unwrap();
        }
        let ra = RoleAssignment {
            id: Uuid::new_v4(),
            scope: format!("/subscriptions/{SUB}/resourceGroups/rg"),
            role_definition_id: Uuid::parse_str(roles::KEY_VAULT_SECRETS_USER).unwrap(),
            principal_id: id.principal_id,
            principal_type: PrincipalType::ServicePrincipal,
            description: None,
            created: 0,
            updated: 0,
            created_by: None,
        };
        store.insert_role_assignment(&ra).unwrap();
        let app = AppPrincipal {
            client_id: Uuid::new_v4(),
            principal_id: Uuid::new_v4(),
            display_name: "ci".into(),
            secret_hash: vec![0; 32],
            created: 0,
        };
        store.put_app(&app).unwrap();
        let new_kid = theirs.rotate(STS_PURPOSE, 2000, Some(9000)).unwrap();
        assert!(f.keys.verifier(STS_PURPOSE, &new_kid).is_none(), "not seen before catching up");

        at = f.catch_up(at).unwrap();
        {
            let dir = f.directory.read().unwrap();
            let entry = dir.identity_by_client(&id.client_id).unwrap();
            assert_eq!(entry.credentials.len(), 2);
            assert!(dir.issuer_is_named("https://issuer/"));
            assert!(dir.app_by_client(&app.client_id).is_some());
        }
        assert!(can_read_secrets(&f, &id.principal_id));
        assert_eq!(f.keys.signer(STS_PURPOSE).unwrap().kid(), new_kid, "the same signer as the replica that rotated");
        assert_eq!(f.keys.jwks(STS_PURPOSE, 2000).keys.len(), 2, "the retired key stays published");

        // Deletes and revocations, and applying the same entries again changes nothing.
        store.delete_credential(&id.key(), "a").unwrap();
        store.delete_role_assignment(ra.id).unwrap();
        f.catch_up(at).unwrap();
        let again = f.catch_up(0).unwrap();
        assert!(!can_read_secrets(&f, &id.principal_id));
        assert_eq!(f.directory.read().unwrap().identity_by_client(&id.client_id).unwrap().credentials.len(), 1);
        store.delete_identity(&id.key()).unwrap();
        f.catch_up(again).unwrap();
        assert!(f.directory.read().unwrap().identity_by_client(&id.client_id).is_none());
        assert!(!f.directory.read().unwrap().issuer_is_named("https://issuer/"));
    }

    #[test]
    fn a_follower_behind_the_pruned_log_rebuilds_from_a_snapshot() {
        let (store, _theirs, f) = setup();
        let app = |n: u128| AppPrincipal {
            client_id: Uuid::from_u128(n),
            principal_id: Uuid::from_u128(100 + n),
            display_name: "a".into(),
            secret_hash: vec![0; 32],
            created: 0,
        };
        for n in 1..=3 {
            store.put_app(&app(n)).unwrap();
        }
        assert_eq!(store.prune_changes(i64::MAX).unwrap(), 3, "the first signing key and two apps");
        let at = f.catch_up(0).unwrap();
        assert_eq!(at, store.snapshot().unwrap().change_head);
        let dir = f.directory.read().unwrap();
        assert!((1..=3).all(|n| dir.app_by_client(&Uuid::from_u128(n)).is_some()));
    }
}
