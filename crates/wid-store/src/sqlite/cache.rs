//! The read cache of the hot Key Vault lookups: a vault by name and a secret version, the two reads
//! of every secret `GET`. A hit costs a hash probe and a clone instead of two SQL statements.
//!
//! It is exact because this process is the only writer of the file (see [`super::SqliteStore::open`])
//! and every write goes through [`super::SqliteStore::write`], which calls [`ReadCache::invalidate`]
//! after its commit: each write empties the cache. A reader notes the generation before its SQL read
//! and keeps the row only if no write committed since ([`ReadCache::fill`]), so a row read before a
//! commit can never be kept after it. Between a commit and its invalidation a read may still see the
//! state before the write — its writer has not returned yet, so no client has seen the write either.
//!
//! Cached rows carry sealed values only, as the file does. The cache holds at most [`MAX_ENTRIES`]
//! rows and [`MAX_BYTES`] of sealed values; when full it starts again empty.

use std::collections::HashMap;
use std::sync::RwLock;

use wid_core::model::{SecretVersion, Vault};

/// Most rows held.
const MAX_ENTRIES: usize = 8_192;
/// Most bytes of sealed secret values held.
const MAX_BYTES: usize = 16 * 1024 * 1024;

/// A secret version lookup: vault key, secret name key, version (`None`: the latest).
pub(super) type VersionKey = (String, String, Option<String>);

#[derive(Default)]
struct Inner {
    /// Bumped by every committed write.
    generation: u64,
    vaults: HashMap<String, Option<Vault>>,
    versions: HashMap<VersionKey, Option<SecretVersion>>,
    bytes: usize,
}

impl Inner {
    fn clear(&mut self) {
        self.vaults.clear();
        self.versions.clear();
        self.bytes = 0;
    }

    fn full(&self, adding: usize) -> bool {
        self.vaults.len() + self.versions.len() >= MAX_ENTRIES || self.bytes.saturating_add(adding) > MAX_BYTES
    }
}

#[derive(Default)]
pub(super) struct ReadCache {
    inner: RwLock<Inner>,
}

impl ReadCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Empties the cache; called after every committed write.
    pub(super) fn invalidate(&self) {
        let mut inner = self.write();
        inner.generation = inner.generation.wrapping_add(1);
        inner.clear();
    }

    /// The generation to pass to a `fill_*` after reading from the database.
    pub(super) fn generation(&self) -> u64 {
        self.read().generation
    }

    /// The cached vault under `key` (its name key): `Some(None)` is a cached absence.
    pub(super) fn vault(&self, key: &str) -> Option<Option<Vault>> {
        self.read().vaults.get(key).cloned()
    }

    /// The cached secret version under `key`: `Some(None)` is a cached absence.
    pub(super) fn version(&self, key: &VersionKey) -> Option<Option<SecretVersion>> {
        self.read().versions.get(key).cloned()
    }

    /// Keeps a vault read at `generation` unless a write committed since.
    pub(super) fn fill_vault(&self, generation: u64, key: String, vault: &Option<Vault>) {
        self.fill(generation, 0, |inner| {
            inner.vaults.insert(key, vault.clone());
        });
    }

    /// Keeps a secret version read at `generation` unless a write committed since.
    pub(super) fn fill_version(&self, generation: u64, key: VersionKey, version: &Option<SecretVersion>) {
        let bytes = version.as_ref().map_or(0, |v| v.sealed_value.len());
        self.fill(generation, bytes, |inner| {
            if inner.versions.insert(key, version.clone()).is_none() {
                inner.bytes += bytes;
            }
        });
    }

    fn fill(&self, generation: u64, bytes: usize, insert: impl FnOnce(&mut Inner)) {
        let mut inner = self.write();
        if inner.generation != generation {
            return;
        }
        if inner.full(bytes) {
            inner.clear();
        }
        insert(&mut inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(value: usize) -> SecretVersion {
        SecretVersion {
            vault: "v".into(),
            name: "s".into(),
            version: "0".repeat(32),
            sealed_value: vec![0; value],
            content_type: None,
            tags: Default::default(),
            enabled: true,
            nbf: None,
            exp: None,
            created: 0,
            updated: 0,
        }
    }

    fn key(n: usize) -> VersionKey {
        ("v".into(), format!("s{n}"), None)
    }

    #[test]
    fn a_row_read_before_a_write_is_not_kept_after_it() {
        let c = ReadCache::default();
        let g = c.generation();
        c.invalidate();
        c.fill_version(g, key(1), &Some(version(1)));
        assert!(c.version(&key(1)).is_none());
        let g = c.generation();
        c.fill_version(g, key(1), &Some(version(1)));
        assert!(c.version(&key(1)).is_some_and(|v| v.is_some()));
    }

    #[test]
    fn every_write_empties_it_and_absences_are_kept_too() {
        let c = ReadCache::default();
        c.fill_vault(c.generation(), "v".into(), &None);
        assert_eq!(c.vault("v").map(|v| v.is_none()), Some(true));
        c.invalidate();
        assert!(c.vault("v").is_none());
    }

    #[test]
    fn bounded_by_entries_and_bytes() {
        let c = ReadCache::default();
        for n in 0..MAX_ENTRIES * 2 {
            c.fill_version(c.generation(), key(n), &None);
        }
        assert!(c.read().versions.len() <= MAX_ENTRIES);
        let big = MAX_BYTES / 4 + 1;
        for n in 0..8 {
            c.fill_version(c.generation(), key(n), &Some(version(big)));
            assert!(c.read().bytes <= MAX_BYTES);
        }
    }
}
