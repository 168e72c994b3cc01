//! A cluster-wide ServiceAccount cache fed by LIST + WATCH (a client-go reflector in miniature):
//! list in pages, watch from the list's resourceVersion with bookmarks, follow the resourceVersion of
//! every event, re-watch when a watch ends, list again on 410 Gone.
//!
//! Only annotations under a prefix are kept (the webhook reads `azure.workload.identity/*`), so the
//! memory per ServiceAccount is two names and a few short strings — upstream's informer keeps whole
//! objects and needed its memory limit raised on big clusters (#599).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use crate::client::{Client, ServiceAccount, WatchEvent};
use crate::error::KubeError;

/// Timing of the reflector.
#[derive(Debug, Clone)]
pub struct ReflectorOptions {
    /// Items per LIST page.
    pub page_size: u32,
    /// First wait after a failure; doubled up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for ReflectorOptions {
    fn default() -> Self {
        ReflectorOptions {
            page_size: 500,
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

type Key = (String, String);

/// The cache. Reads are a hash probe under a read lock.
#[derive(Debug)]
pub struct ServiceAccountCache {
    map: RwLock<HashMap<Key, Arc<ServiceAccount>>>,
    synced: AtomicBool,
    annotation_prefix: Option<String>,
    lists: AtomicU64,
    events: AtomicU64,
}

impl ServiceAccountCache {
    /// An empty, unsynced cache keeping only annotations starting with `annotation_prefix` (all when
    /// `None`).
    pub fn new(annotation_prefix: Option<&str>) -> Arc<Self> {
        Arc::new(ServiceAccountCache {
            map: RwLock::new(HashMap::new()),
            synced: AtomicBool::new(false),
            annotation_prefix: annotation_prefix.map(str::to_string),
            lists: AtomicU64::new(0),
            events: AtomicU64::new(0),
        })
    }

    /// The ServiceAccount, if the cache has it.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<ServiceAccount>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(&(namespace.to_string(), name.to_string())).cloned()
    }

    /// A full LIST has been loaded (a miss then most likely means "does not exist yet").
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Number of ServiceAccounts held.
    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Completed LISTs and applied watch events, for metrics.
    pub fn counters(&self) -> (u64, u64) {
        (self.lists.load(Ordering::Relaxed), self.events.load(Ordering::Relaxed))
    }

    fn slim(&self, mut sa: ServiceAccount) -> Arc<ServiceAccount> {
        if let Some(prefix) = &self.annotation_prefix {
            sa.annotations.retain(|k, _| k.starts_with(prefix.as_str()));
        }
        sa.resource_version = String::new();
        Arc::new(sa)
    }

    /// Replaces the whole content (after a LIST) and marks the cache synced.
    pub fn replace_all(&self, items: Vec<ServiceAccount>) {
        let fresh: HashMap<Key, Arc<ServiceAccount>> =
            items.into_iter().map(|sa| ((sa.namespace.clone(), sa.name.clone()), self.slim(sa))).collect();
        *self.map.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.synced.store(true, Ordering::Release);
    }

    /// Applies one watch event.
    pub fn apply(&self, event: &WatchEvent) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        match event {
            WatchEvent::Added(sa) | WatchEvent::Modified(sa) => {
                map.insert((sa.namespace.clone(), sa.name.clone()), self.slim(sa.clone()));
            }
            WatchEvent::Deleted(sa) => {
                map.remove(&(sa.namespace.clone(), sa.name.clone()));
            }
            WatchEvent::Bookmark(_) | WatchEvent::Error { .. } => return,
        }
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    async fn list(&self, client: &Client, page_size: u32) -> Result<String, KubeError> {
        let mut items = Vec::new();
        let mut token = String::new();
        loop {
            let page = client.list_service_accounts(page_size, &token).await?;
            items.extend(page.items);
            if page.continue_token.is_empty() {
                self.replace_all(items);
                return Ok(page.resource_version);
            }
            token = page.continue_token;
        }
    }

    /// Keeps the cache in step with the API server until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, client: Client, opts: ReflectorOptions, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = opts.min_backoff;
        // Waits `d` unless shutting down; false when it is time to stop.
        macro_rules! pause {
            ($d:expr) => {
                tokio::select! {
                    _ = tokio::time::sleep($d) => {}
                    _ = shutdown.changed() => return,
                }
            };
        }
        'list: loop {
            if *shutdown.borrow() {
                return;
            }
            let mut rv = tokio::select! {
                r = self.list(&client, opts.page_size) => match r {
                    Ok(rv) => rv,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "listing ServiceAccounts failed");
                        pause!(backoff);
                        backoff = (backoff * 2).min(opts.max_backoff);
                        continue 'list;
                    }
                },
                _ = shutdown.changed() => return,
            };
            tracing::debug!(count = self.len(), resource_version = %rv, "ServiceAccounts listed");
            loop {
                let stream = tokio::select! {
                    s = client.watch_service_accounts(&rv) => s,
                    _ = shutdown.changed() => return,
                };
                let mut stream = match stream {
                    Ok(s) => s,
                    Err(e) if e.is_gone() => continue 'list,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "watching ServiceAccounts failed");
                        pause!(backoff);
                        backoff = (backoff * 2).min(opts.max_backoff);
                        continue;
                    }
                };
                loop {
                    let next = tokio::select! {
                        ev = stream.next() => ev,
                        _ = shutdown.changed() => return,
                    };
                    match next {
                        Ok(Some(WatchEvent::Error { code: 410, .. })) => continue 'list,
                        Ok(Some(WatchEvent::Error { code, message })) => {
                            tracing::warn!(code, %message, "the ServiceAccount watch ended with an error");
                            pause!(backoff);
                            backoff = (backoff * 2).min(opts.max_backoff);
                            continue 'list;
                        }
                        Ok(Some(WatchEvent::Bookmark(v))) => {
                            if !v.is_empty() {
                                rv = v;
                            }
                        }
                        Ok(Some(ev)) => {
                            if let WatchEvent::Added(sa) | WatchEvent::Modified(sa) | WatchEvent::Deleted(sa) = &ev
                                && !sa.resource_version.is_empty()
                            {
                                rv = sa.resource_version.clone();
                            }
                            self.apply(&ev);
                            backoff = opts.min_backoff;
                        }
                        Ok(None) => break, // the server's timeoutSeconds: watch again from rv
                        Err(e) => {
                            tracing::warn!(error = %e, "the ServiceAccount watch broke; watching again");
                            pause!(backoff);
                            backoff = (backoff * 2).min(opts.max_backoff);
                            break;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(ns: &str, name: &str, ann: &[(&str, &str)]) -> ServiceAccount {
        ServiceAccount {
            namespace: ns.into(),
            name: name.into(),
            annotations: ann.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            resource_version: "1".into(),
        }
    }

    #[test]
    fn events_update_the_cache_and_only_prefixed_annotations_are_kept() {
        let c = ServiceAccountCache::new(Some("azure.workload.identity/"));
        assert!(!c.is_synced());
        c.replace_all(vec![sa("a", "x", &[("azure.workload.identity/client-id", "1"), ("other", "big")])]);
        assert!(c.is_synced());
        let x = c.get("a", "x").unwrap();
        assert_eq!(x.annotations.len(), 1);
        assert!(x.resource_version.is_empty());
        c.apply(&WatchEvent::Added(sa("b", "y", &[])));
        c.apply(&WatchEvent::Modified(sa("a", "x", &[("azure.workload.identity/client-id", "2")])));
        assert_eq!(c.get("a", "x").unwrap().annotations["azure.workload.identity/client-id"], "2");
        c.apply(&WatchEvent::Deleted(sa("b", "y", &[])));
        assert!(c.get("b", "y").is_none());
        c.apply(&WatchEvent::Bookmark("9".into()));
        assert_eq!(c.len(), 1);
        assert_eq!(c.counters(), (1, 3));
        c.replace_all(vec![]);
        assert!(c.is_empty());
    }
}
