//! Errors: configuration (kubeconfig, in-cluster files) and API calls.

use std::path::PathBuf;

/// The Kubernetes API configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file named by the configuration could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The kubeconfig is not YAML/JSON of the expected shape.
    #[error("kubeconfig {path}: {detail}")]
    Kubeconfig { path: PathBuf, detail: String },
    /// In-cluster configuration was asked for outside a pod.
    #[error(
        "not running in a pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (pass --kubeconfig FILE \
         when running outside the cluster)"
    )]
    NotInCluster,
    /// A feature of the configuration this client does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// The HTTP client could not be built (bad CA or client certificate).
    #[error("{0}")]
    Tls(String),
}

/// A call to the Kubernetes API failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The API answered with an error `Status` (404 NotFound, 403 Forbidden, 410 Gone, ...).
    #[error("{message}")]
    Api { status: u16, reason: String, message: String },
    /// No answer: connection, TLS or timeout.
    #[error("the Kubernetes API could not be reached: {0}")]
    Transport(String),
    /// An answer this client could not read.
    #[error("unexpected answer from the Kubernetes API ({0})")]
    Decode(String),
    /// A namespace or name that is not a Kubernetes object name (never sent to the API).
    #[error("{0}")]
    InvalidName(String),
    /// The bearer token file could not be read.
    #[error("reading the bearer token {path}: {source}")]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl KubeError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// 410 Gone (a watch's resourceVersion is too old: list again).
    pub fn is_gone(&self) -> bool {
        self.status() == Some(410)
    }

    pub(crate) fn transport(e: &reqwest::Error) -> Self {
        // reqwest's Display stops at the outermost error; the cause (refused, certificate, timeout) is below.
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            source = s.source();
        }
        KubeError::Transport(msg)
    }
}
