//! wid Key Vault data plane: secrets with versions, soft delete, backup/restore, encryption under
//! per-vault data keys, RBAC enforcement.
//!
//! [`VaultService`] knows no HTTP: the server parses the host, routes the path ([`route`]), reads the
//! query and authenticates the bearer token, then calls one method per operation with a [`Ctx`] (vault host, verified caller,
//! request id, api-version) and the raw body. Each method resolves the vault, authorizes the data
//! action with RBAC at the vault or the secret (recording the decision in the audit trail),
//! validates, acts on the [`wid_store::Store`] and returns the Key Vault JSON shape, or a
//! [`VaultError`] whose [`VaultError::to_wire`] is the one mapping to status, code and message.
//!
//! Values are sealed with the vault's data key ([`wid_crypto::data_key`]) before they reach the store; backups are
//! sealed with the master key and bound to the tenant ([`backup`]).

pub mod backup;
mod error;
pub mod request;
pub mod route;
mod service;
pub mod shapes;
mod throttle;

pub use error::{AuthFailure, RbacDenial, VaultError, WireError};
pub use request::VaultHost;
pub use service::{AZURE_DNS_SUFFIX, AZURE_RESOURCE, Ctx, Paging, VaultConfig, VaultService, actions};
pub use throttle::Throttle;
