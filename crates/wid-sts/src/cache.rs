//! Issued-token cache: a warm exchange (the same client presenting the same assertion for the same
//! resource again) gets back the access token it was given moments ago instead of a fresh RSA
//! signature, which is ~95 % of an exchange's CPU.
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

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

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

#[derive(Default)]
struct Inner {
    map: HashMap<CacheKey, Entry>,
    order: VecDeque<CacheKey>,
}

/// A token served from the cache.
pub(crate) struct Hit {
    pub token: String,
    /// Seconds left (`expires_in`).
    pub remaining: i64,
}

/// The bounded cache (see the module docs).
pub(crate) struct TokenCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity, inner: Mutex::new(Inner::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The token stored under `key` if it is still fresh at `now`.
    pub(crate) fn get(&self, key: &CacheKey, now: i64) -> Option<Hit> {
        if !self.enabled() {
            return None;
        }
        let inner = self.lock();
        let e = inner.map.get(key)?;
        e.fresh(now).then(|| Hit { token: e.token.to_string(), remaining: e.exp.saturating_sub(now) })
    }

    /// Stores a token minted at `iat`, valid until `exp`.
    pub(crate) fn put(&self, key: CacheKey, token: &str, iat: i64, exp: i64) {
        if !self.enabled() {
            return;
        }
        let mut inner = self.lock();
        let Inner { map, order } = &mut *inner;
        if !map.contains_key(&key) {
            // Oldest first: tokens are stored in the order they were minted, so the front of the
            // queue is also the stalest (O(1) per insert, no sweep under a cold load).
            while map.len() >= self.capacity {
                let Some(old) = order.pop_front() else { break };
                map.remove(&old);
            }
        }
        if map.insert(key, Entry { token: Zeroizing::new(token.to_string()), iat, exp }).is_none() {
            order.push_back(key);
        }
    }

    /// Number of tokens held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().map.len()
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
