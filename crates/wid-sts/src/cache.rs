//! Two bounded caches that save RSA operations without skipping any check.
//!
//! **Issued tokens** ([`TokenCache`]): a warm exchange (the same client presenting the same assertion
//! for the same resource again) gets back the access token it was given moments ago instead of a fresh
//! RSA signature, which is ~95 % of an exchange's CPU.
//!
//! Only what the token's claims depend on goes into the key, together with the assertion itself, so
//! a hit can only return a token that the current configuration would mint too:
//! client id, principal id, `xms_mirid` (identity), resource, `xms_cc`, the signing key's kid, the
//! credential that admitted the assertion, and a SHA-256 of the assertion. The caller runs the whole
//! validation (directory lookup, assertion times, issuer keys, signature, credential match) *before*
//! looking here, so a deleted identity or credential, a changed subject or audience, a removed
//! cluster key or a rotated signing key refuses or misses exactly as without the cache.
//!
//! A cached token is reused only while it keeps most of its lifetime (at least 90 %: reused for
//! 2.4 h of a 24 h token), and the reply's `expires_in` is what is left of it. The cache holds at
//! most `capacity` tokens (the oldest go first); capacity 0 turns it off.
//!
//! **Verified signatures** ([`VerifiedTokens`]): a bearer token presented again (a client reads
//! secrets with the same access token for up to a day) skips the RSA verify of its signature, ~20 %
//! of a secret `GET`. An entry says "these exact bytes carry a valid signature by this key": it is
//! keyed by the SHA-256 of the whole token and holds the key that verified it, and counts only while
//! the key ring still returns that same key for the token's `kid` — a rotated or removed key misses.
//! Parsing and every claim check (issuer, audience, tenant, expiry, not-before) still run on each
//! request.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use wid_crypto::jose::VerifyingKey;
use zeroize::Zeroizing;

/// What determines a token, hashed.
pub(crate) type CacheKey = [u8; 32];

/// The inputs of [`CacheKey`]; each field is length-prefixed so no two inputs collide.
#[derive(Clone, Copy)]
pub(crate) struct KeyParts<'a> {
    pub client_id: &'a uuid::Uuid,
    pub principal_id: &'a uuid::Uuid,
    pub mirid: &'a str,
    pub resource: &'a str,
    pub cp1: bool,
    pub kid: &'a str,
    pub credential: &'a str,
    pub assertion: &'a str,
}

impl KeyParts<'_> {
    pub(crate) fn key(&self) -> CacheKey {
        let assertion = wid_crypto::secret::sha256(self.assertion.as_bytes());
        let mut buf = Vec::with_capacity(256);
        let mut field = |b: &[u8]| {
            buf.extend_from_slice(&(b.len() as u64).to_be_bytes());
            buf.extend_from_slice(b);
        };
        field(self.client_id.as_bytes());
        field(self.principal_id.as_bytes());
        field(self.mirid.as_bytes());
        field(self.resource.as_bytes());
        field(&[u8::from(self.cp1)]);
        field(self.kid.as_bytes());
        field(self.credential.as_bytes());
        field(&assertion);
        wid_crypto::secret::sha256(&buf)
    }
}

struct Entry {
    token: Zeroizing<String>,
    iat: i64,
    exp: i64,
}

impl Entry {
    /// Reusable at `now`: issued no later than now, and at least 90 % of its lifetime left.
    fn fresh(&self, now: i64) -> bool {
        let lifetime = self.exp.saturating_sub(self.iat);
        now >= self.iat && now.saturating_sub(self.iat).saturating_mul(10) <= lifetime && now < self.exp
    }
}

/// A map bounded by insertion order: at capacity the oldest entry goes (O(1) per insert).
struct Fifo<V> {
    capacity: usize,
    map: HashMap<CacheKey, V>,
    order: VecDeque<CacheKey>,
}

impl<V> Fifo<V> {
    fn new(capacity: usize) -> Self {
        Self { capacity, map: HashMap::new(), order: VecDeque::new() }
    }

    fn insert(&mut self, key: CacheKey, value: V) {
        if self.capacity == 0 {
            return;
        }
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.capacity {
                let Some(old) = self.order.pop_front() else { break };
                self.map.remove(&old);
            }
        }
        if self.map.insert(key, value).is_none() {
            self.order.push_back(key);
        }
    }
}

fn lock<V>(m: &Mutex<Fifo<V>>) -> std::sync::MutexGuard<'_, Fifo<V>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A token served from the cache.
pub(crate) struct Hit {
    pub token: String,
    /// Seconds left (`expires_in`).
    pub remaining: i64,
}

/// The issued-token cache (see the module docs).
pub(crate) struct TokenCache {
    enabled: bool,
    inner: Mutex<Fifo<Entry>>,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { enabled: capacity > 0, inner: Mutex::new(Fifo::new(capacity)) }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The token stored under `key` if it is still fresh at `now`.
    pub(crate) fn get(&self, key: &CacheKey, now: i64) -> Option<Hit> {
        let inner = lock(&self.inner);
        let e = inner.map.get(key)?;
        e.fresh(now).then(|| Hit { token: e.token.to_string(), remaining: e.exp.saturating_sub(now) })
    }

    /// Stores a token minted at `iat`, valid until `exp`. Tokens are stored in the order they were
    /// minted, so the oldest entry is also the stalest (no sweep under a cold load).
    pub(crate) fn put(&self, key: CacheKey, token: &str, iat: i64, exp: i64) {
        lock(&self.inner).insert(key, Entry { token: Zeroizing::new(token.to_string()), iat, exp });
    }

    /// Number of tokens held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.inner).map.len()
    }
}

/// The verified-signature cache (see the module docs).
pub(crate) struct VerifiedTokens {
    inner: Mutex<Fifo<Arc<VerifyingKey>>>,
}

impl VerifiedTokens {
    /// Tokens remembered; 32 bytes of hash and a key pointer each (~5 MB when full).
    pub(crate) const CAPACITY: usize = 50_000;

    pub(crate) fn new(capacity: usize) -> Self {
        Self { inner: Mutex::new(Fifo::new(capacity)) }
    }

    /// The key for a token's hash.
    pub(crate) fn key(token: &str) -> CacheKey {
        wid_crypto::secret::sha256(token.as_bytes())
    }

    /// Whether the token hashed to `key` was verified with `by` (the very key the ring holds now).
    pub(crate) fn verified(&self, key: &CacheKey, by: &Arc<VerifyingKey>) -> bool {
        lock(&self.inner).map.get(key).is_some_and(|k| Arc::ptr_eq(k, by))
    }

    /// Remembers that the token hashed to `key` carries a valid signature by `by`.
    pub(crate) fn put(&self, key: CacheKey, by: &Arc<VerifyingKey>) {
        lock(&self.inner).insert(key, by.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> CacheKey {
        [n; 32]
    }

    #[test]
    fn reused_only_while_most_of_the_lifetime_is_left() {
        let c = TokenCache::new(8);
        c.put(key(1), "t1", 1000, 1000 + 86400);
        let hit = c.get(&key(1), 1000 + 60).unwrap();
        assert_eq!((hit.token.as_str(), hit.remaining), ("t1", 86400 - 60));
        assert!(c.get(&key(1), 1000 + 8640).is_some(), "10 % of the lifetime used: still reused");
        assert!(c.get(&key(1), 1000 + 8641).is_none(), "more than 10 % used: a fresh token");
        assert!(c.get(&key(1), 999).is_none(), "a clock that went back does not serve a future token");
        assert!(c.get(&key(2), 1000).is_none());
    }

    #[test]
    fn bounded_and_off_at_zero() {
        let c = TokenCache::new(3);
        for n in 0..10u8 {
            c.put(key(n), "t", 0, 100);
            assert!(c.len() <= 3);
        }
        assert!(c.get(&key(9), 1).is_some(), "the newest stays");
        assert!(c.get(&key(0), 1).is_none(), "the oldest went");
        c.put(key(9), "again", 0, 100);
        assert_eq!(c.len(), 3, "replacing an entry evicts nothing");

        let off = TokenCache::new(0);
        off.put(key(1), "t", 0, 100);
        assert!(off.get(&key(1), 1).is_none());
        assert_eq!(off.len(), 0);
    }

    #[test]
    fn a_signature_counts_only_for_the_very_key_that_verified_it() {
        let signer = wid_crypto::SigningKey::generate_ec(wid_crypto::EcCurve::P256).unwrap();
        let (a, b) = (Arc::new(signer.verifying_key().unwrap()), Arc::new(signer.verifying_key().unwrap()));
        let v = VerifiedTokens::new(2);
        let t = VerifiedTokens::key("a.b.c");
        v.put(t, &a);
        assert!(v.verified(&t, &a));
        assert!(!v.verified(&t, &b), "the same key material reloaded is another key: verified again");
        assert!(!v.verified(&VerifiedTokens::key("a.b.d"), &a), "other bytes");
        v.put(VerifiedTokens::key("1"), &a);
        v.put(VerifiedTokens::key("2"), &a);
        assert!(!v.verified(&t, &a), "bounded: the oldest went");
        let off = VerifiedTokens::new(0);
        off.put(t, &a);
        assert!(!off.verified(&t, &a));
    }

    #[test]
    fn every_input_changes_the_key() {
        let (c, p) = (uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2));
        let base = KeyParts {
            client_id: &c,
            principal_id: &p,
            mirid: "/m",
            resource: "https://r",
            cp1: false,
            kid: "k",
            credential: "f",
            assertion: "a.b.c",
        };
        let k = base.key();
        let other = uuid::Uuid::from_u128(3);
        let variants = [
            KeyParts { client_id: &other, ..base },
            KeyParts { principal_id: &other, ..base },
            KeyParts { mirid: "/n", ..base },
            KeyParts { resource: "https://s", ..base },
            KeyParts { cp1: true, ..base },
            KeyParts { kid: "k2", ..base },
            KeyParts { credential: "g", ..base },
            KeyParts { assertion: "a.b.d", ..base },
            // Length prefixes: moving a character between fields is a different key.
            KeyParts { mirid: "/mk", kid: "", ..base },
        ];
        for v in variants {
            assert_ne!(v.key(), k);
        }
    }
}
