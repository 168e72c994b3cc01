//! HTTPS plumbing shared by wid's two servers, `wid serve` and `wid webhook`: TLS configurations
//! from PEM files, certificates reloaded when their files change, and the accept loop with its time
//! and size limits and graceful shutdown. What each server answers is its own crate's business.

pub mod prometheus;
pub mod serve;
pub mod tls;

pub use serve::{serve, shutdown_signal};
pub use tls::{ReloadingCert, TlsError};
