//! wid: self-hosted, keyless workload identity for Kubernetes.
//!
//! The binary is a thin wrapper: [`cli::run`] parses the command line (an az-compatible client, the
//! local tools `run` and `jwks`, and the process commands), [`serve::run`] starts the control plane and
//! [`webhook::run`] the admission webhook. All are library functions so tests can run commands
//! in-process.

pub mod cli;
pub mod data;
pub mod serve;
pub mod webhook;
