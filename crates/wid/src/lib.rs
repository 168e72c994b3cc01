//! wid: self-hosted, keyless workload identity for Kubernetes.
//!
//! The binary is a thin wrapper: [`cli::run`] parses the command line (an az-compatible client plus
//! the `serve` subcommand) and [`serve::run`] starts the control plane. Both are library functions so
//! tests can run commands in-process.

pub mod cli;
pub mod serve;
pub mod webhook;
