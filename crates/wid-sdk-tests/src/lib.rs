//! Real-client compatibility tests for wid with the official Rust Azure SDK (`azure_identity`).
//!
//! The library is empty; the tests live in `tests/` and start an in-process `wid serve` with
//! `wid-testkit`. The `wid-sdk-rust-probe` binary is the unmodified application path (configuration
//! from `AZURE_*` environment variables, the SDK's default transport), run as a child process with
//! its own environment so that no test mutates the test process's environment.
