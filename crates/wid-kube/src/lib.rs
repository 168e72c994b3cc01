//! A minimal Kubernetes API client: just what `wid webhook` needs, on the workspace's reqwest
//! (rustls, aws-lc-rs), without kube-rs or k8s-openapi.
//!
//! - [`KubeConfig`]: a kubeconfig file (current or named context: server, CA data or file, token,
//!   token file or client certificate) or the in-cluster ServiceAccount (`KUBERNETES_SERVICE_HOST/PORT`
//!   and `/var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt}`, the token re-read as it rotates);
//! - [`Client`]: `GET /version`, `GET` one ServiceAccount, `LIST` and `WATCH` all of them;
//! - [`ServiceAccountCache`]: LIST + WATCH (resourceVersion, bookmarks, re-list on 410) into a map.

pub mod cache;
pub mod client;
pub mod config;
pub mod error;

pub use cache::{ReflectorOptions, ServiceAccountCache};
pub use client::{Client, ListPage, ServerVersion, ServiceAccount, WatchEvent, WatchStream};
pub use config::{ClientCert, Credentials, IN_CLUSTER_DIR, KubeConfig};
pub use error::{ConfigError, KubeError};
