//! The key ring: wid's own signing keys (access tokens) and the keys of hosted cluster issuers.
//!
//! Keys are stored sealed with the master key (AAD `signing-key:{kid}`) and unsealed once at start.
//! Rotation makes a new key the signer and keeps the old one in the JWKS until every token it signed
//! has expired, so verifiers never see an unknown `kid` for a valid token.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;
use wid_crypto::envelope::MasterKey;
use wid_crypto::jose::VerifyingKey;
use wid_crypto::jwk::{Jwk, JwkSet};
use wid_crypto::keys::SigningKey;
use wid_store::{SigningKeyRecord, Store};

/// Purpose of wid's access-token keys.
pub const STS_PURPOSE: &str = "sts";

/// The purpose string of a hosted cluster's issuer key.
pub fn cluster_purpose(cluster_id: &Uuid) -> String {
    format!("cluster:{cluster_id}")
}

/// Errors of the key ring.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("storage: {0}")]
    Store(#[from] wid_store::StoreError),
    #[error("key {0} cannot be unsealed with this master key (wrong master key or corrupted row)")]
    Unseal(String),
    #[error("crypto: {0}")]
    Crypto(String),
}

struct Published {
    jwk: Jwk,
    verifier: Arc<VerifyingKey>,
    expires: Option<i64>,
}

#[derive(Default)]
struct Set {
    signer: Option<Arc<SigningKey>>,
    signer_created: i64,
    published: Vec<Published>,
}

impl Set {
    fn verifier(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.published.iter().find(|p| p.jwk.kid.as_deref() == Some(kid)).map(|p| p.verifier.clone())
    }
    fn jwks(&self, now: i64) -> JwkSet {
        JwkSet {
            keys: self.published.iter().filter(|p| p.expires.is_none_or(|e| e > now)).map(|p| p.jwk.clone()).collect(),
        }
    }
}

/// Signing keys by purpose.
pub struct KeyRing {
    master: Arc<MasterKey>,
    store: Arc<dyn Store>,
    sets: RwLock<HashMap<String, Set>>,
}

fn aad(kid: &str) -> Vec<u8> {
    format!("signing-key:{kid}").into_bytes()
}

impl KeyRing {
    /// Loads every stored key; creates the access-token key on first start.
    pub fn load(store: Arc<dyn Store>, master: Arc<MasterKey>, now: i64) -> Result<Self, KeyError> {
        let ring = Self { master, store, sets: RwLock::new(HashMap::new()) };
        // Expired keys leave the store here, at start (under the bootstrap lock), not on every reload.
        for rec in ring.store.signing_keys()?.iter().filter(|r| r.expires.is_some_and(|e| e <= now)) {
            ring.store.delete_signing_key(&rec.kid)?;
        }
        ring.reload_all(now)?;
        if ring.signer(STS_PURPOSE).is_none() {
            ring.create(STS_PURPOSE, now)?;
        }
        Ok(ring)
    }

    /// Rebuilds every purpose's keys from the store (a replica fell behind the change log).
    pub fn reload_all(&self, now: i64) -> Result<(), KeyError> {
        let records = self.store.signing_keys()?;
        let mut purposes: Vec<&str> = records.iter().map(|r| r.purpose.as_str()).collect();
        purposes.sort_unstable();
        purposes.dedup();
        let mut sets = HashMap::new();
        for purpose in purposes {
            sets.insert(purpose.to_string(), self.build(records.iter().filter(|r| r.purpose == purpose), now)?);
        }
        *self.sets.write().unwrap_or_else(|p| p.into_inner()) = sets;
        Ok(())
    }

    /// Rebuilds one purpose's keys from the store (another replica created, rotated or removed them).
    pub fn reload(&self, purpose: &str, now: i64) -> Result<(), KeyError> {
        let records = self.store.signing_keys()?;
        let set = self.build(records.iter().filter(|r| r.purpose == purpose), now)?;
        let mut sets = self.sets.write().unwrap_or_else(|p| p.into_inner());
        if set.published.is_empty() {
            sets.remove(purpose);
        } else {
            sets.insert(purpose.to_string(), set);
        }
        Ok(())
    }

    /// A purpose's key set from its records (oldest first): every unexpired key is published and the
    /// newest one not retired signs, so replicas that load the same rows agree on the signer.
    fn build<'a>(&self, records: impl Iterator<Item = &'a SigningKeyRecord>, now: i64) -> Result<Set, KeyError> {
        let mut set = Set::default();
        for rec in records.filter(|r| r.expires.is_none_or(|e| e > now)) {
            let key = self.unseal(rec)?;
            let jwk = key.public_jwk();
            let Ok(verifier) = VerifyingKey::from_jwk(&jwk) else { continue };
            set.published.push(Published { jwk, verifier: Arc::new(verifier), expires: rec.expires });
            if rec.retired.is_none() {
                set.signer = Some(Arc::new(key));
                set.signer_created = rec.created;
            }
        }
        Ok(set)
    }

    fn unseal(&self, rec: &SigningKeyRecord) -> Result<SigningKey, KeyError> {
        let der = self.master.open(&rec.sealed_pkcs8, &aad(&rec.kid)).map_err(|_| KeyError::Unseal(rec.kid.clone()))?;
        SigningKey::from_pkcs8_der(&der).map_err(|e| KeyError::Crypto(e.to_string()))
    }

    /// Publishes a key; `active_since` makes it the signer (created at that time).
    fn add(&self, purpose: &str, key: SigningKey, active_since: Option<i64>, expires: Option<i64>) {
        let jwk = key.public_jwk();
        let Ok(verifier) = VerifyingKey::from_jwk(&jwk) else { return };
        let mut sets = self.sets.write().unwrap_or_else(|p| p.into_inner());
        let set = sets.entry(purpose.to_string()).or_default();
        set.published.retain(|p| p.jwk.kid != jwk.kid);
        set.published.push(Published { jwk, verifier: Arc::new(verifier), expires });
        if let Some(created) = active_since {
            set.signer = Some(Arc::new(key));
            set.signer_created = created;
        }
    }

    /// Generates and stores a new RSA-2048 signer for `purpose`, retiring the current one (kept in
    /// the JWKS until `retire_until`, or forever if `None`). Returns the new kid.
    pub fn rotate(&self, purpose: &str, now: i64, retire_until: Option<i64>) -> Result<String, KeyError> {
        if let Some(old) = self.signer(purpose) {
            let rec = self.store.signing_keys()?.into_iter().find(|r| r.kid == old.kid());
            if let Some(mut rec) = rec {
                rec.retired = Some(now);
                rec.expires = retire_until;
                self.store.put_signing_key(&rec)?;
            }
            let mut sets = self.sets.write().unwrap_or_else(|p| p.into_inner());
            if let Some(set) = sets.get_mut(purpose) {
                for p in set.published.iter_mut().filter(|p| p.jwk.kid.as_deref() == Some(old.kid())) {
                    p.expires = retire_until;
                }
                set.signer = None;
            }
        }
        self.create(purpose, now)
    }

    /// Generates and stores a first signer for `purpose`.
    pub fn create(&self, purpose: &str, now: i64) -> Result<String, KeyError> {
        let key = SigningKey::generate_rsa(2048).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let kid = key.kid().to_string();
        let der = key.to_pkcs8_der().map_err(|e| KeyError::Crypto(e.to_string()))?;
        let sealed = self.master.seal(&der, &aad(&kid)).map_err(|e| KeyError::Crypto(e.to_string()))?;
        let rec = SigningKeyRecord {
            kid: kid.clone(),
            purpose: purpose.to_string(),
            sealed_pkcs8: sealed,
            created: now,
            retired: None,
            expires: None,
        };
        self.store.put_signing_key(&rec)?;
        self.add(purpose, key, Some(now), None);
        Ok(kid)
    }

    /// Deletes every key of `purpose` (a cluster registration was removed).
    pub fn remove(&self, purpose: &str) -> Result<(), KeyError> {
        for rec in self.store.signing_keys()?.into_iter().filter(|r| r.purpose == purpose) {
            self.store.delete_signing_key(&rec.kid)?;
        }
        self.sets.write().unwrap_or_else(|p| p.into_inner()).remove(purpose);
        Ok(())
    }

    /// The active signer of `purpose`.
    pub fn signer(&self, purpose: &str) -> Option<Arc<SigningKey>> {
        self.sets.read().unwrap_or_else(|p| p.into_inner()).get(purpose).and_then(|s| s.signer.clone())
    }

    /// When the active signer of `purpose` was created.
    pub fn signer_created(&self, purpose: &str) -> Option<i64> {
        let sets = self.sets.read().unwrap_or_else(|p| p.into_inner());
        sets.get(purpose).filter(|s| s.signer.is_some()).map(|s| s.signer_created)
    }

    /// A published verifying key of `purpose` by kid.
    pub fn verifier(&self, purpose: &str, kid: &str) -> Option<Arc<VerifyingKey>> {
        self.sets.read().unwrap_or_else(|p| p.into_inner()).get(purpose).and_then(|s| s.verifier(kid))
    }

    /// All published verifying keys of `purpose` (for tokens without a kid).
    pub fn verifiers(&self, purpose: &str) -> Vec<Arc<VerifyingKey>> {
        self.sets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(purpose)
            .map(|s| s.published.iter().map(|p| p.verifier.clone()).collect())
            .unwrap_or_default()
    }

    /// The JWKS of `purpose` (keys not yet past their expiry).
    pub fn jwks(&self, purpose: &str, now: i64) -> JwkSet {
        self.sets.read().unwrap_or_else(|p| p.into_inner()).get(purpose).map(|s| s.jwks(now)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(store: Arc<dyn Store>, master: Arc<MasterKey>, now: i64) -> KeyRing {
        KeyRing::load(store, master, now).unwrap()
    }

    #[test]
    fn rotation_keeps_the_old_key_published_until_it_expires() {
        let store: Arc<dyn Store> = Arc::new(wid_store::SqliteStore::open_in_memory().unwrap());
        let master = Arc::new(MasterKey::generate().unwrap());
        let r = ring(store.clone(), master.clone(), 1000);
        let old = r.signer(STS_PURPOSE).unwrap().kid().to_string();
        let new = r.rotate(STS_PURPOSE, 2000, Some(5000)).unwrap();
        assert_ne!(old, new);
        assert_eq!(r.signer(STS_PURPOSE).unwrap().kid(), new);
        assert_eq!(r.jwks(STS_PURPOSE, 2000).keys.len(), 2);
        assert!(r.verifier(STS_PURPOSE, &old).is_some());
        assert_eq!(r.jwks(STS_PURPOSE, 5000).keys.len(), 1, "gone once its tokens expired");

        // Reloaded from the store: the same signer, the retired key still published until 5000.
        let again = ring(store.clone(), master.clone(), 3000);
        assert_eq!(again.signer(STS_PURPOSE).unwrap().kid(), new);
        assert_eq!(again.jwks(STS_PURPOSE, 3000).keys.len(), 2);
        let later = ring(store.clone(), master, 6000);
        assert_eq!(later.jwks(STS_PURPOSE, 6000).keys.len(), 1);
        assert_eq!(store.signing_keys().unwrap().len(), 1, "expired keys are deleted at load");
    }

    #[test]
    fn a_wrong_master_key_is_a_clear_error() {
        let store: Arc<dyn Store> = Arc::new(wid_store::SqliteStore::open_in_memory().unwrap());
        ring(store.clone(), Arc::new(MasterKey::generate().unwrap()), 0);
        let err = KeyRing::load(store, Arc::new(MasterKey::generate().unwrap()), 0).err().unwrap();
        assert!(err.to_string().contains("master key"), "{err}");
    }
}
