//! wid Key Vault data plane: secrets with versions, soft delete, backup/restore, encryption under
//! per-vault data keys, RBAC enforcement.

pub mod keys;
