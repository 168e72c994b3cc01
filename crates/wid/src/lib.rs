//! wid: self-hosted, keyless workload identity for Kubernetes.
//!
//! The binary is a thin wrapper over three products: the az-compatible client ([`wid_cli`]), the
//! control plane ([`serve`] over `wid_server`) and the admission webhook (`wid_webhook`'s
//! server), plus the data commands ([`data`]: migrate, export, import). [`run_with`]
//! parses the command line and hands over; everything is a library function so tests can run
//! commands in-process.

pub mod data;
pub mod serve;

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use clap::{FromArgMatches, Parser, Subcommand};
use wid_cli::Console;

/// `wid`: self-hosted workload identity (az-compatible CLI and its servers).
#[derive(Debug, Parser)]
#[command(
    name = "wid",
    version,
    about = "wid: self-hosted, keyless workload identity for Kubernetes (az-compatible CLI)",
    infer_long_args = true,
    disable_help_subcommand = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The client's command groups, then the long-running processes and the data commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Client(wid_cli::Command),
    /// Run the wid control plane.
    Serve(serve::ServeArgs),
    /// Run the admission webhook (drop-in for azure-workload-identity's).
    Webhook(wid_webhook::server::WebhookArgs),
    /// Apply pending database schema migrations (wid serve also does at start unless --no-migrate).
    Migrate(data::MigrateArgs),
    /// Write every record of a wid database as JSON lines, secrets still sealed (stop wid serve first
    /// when it uses SQLite).
    Export(data::ExportArgs),
    /// Load an export into an empty database (e.g. move a SQLite data dir to PostgreSQL).
    Import(data::ImportArgs),
}

/// Runs `wid` with `argv` (including the program name) and returns the exit code (as az: 0
/// success, 1 error, 2 usage error, 3 resource not found).
pub async fn run_with(
    argv: Vec<String>,
    env: HashMap<String, String>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    console: Console,
) -> i32 {
    let started = Instant::now();
    let parsed =
        <Cli as clap::CommandFactory>::command().try_get_matches_from(argv).and_then(|m| Cli::from_arg_matches(&m));
    let command = match parsed {
        Ok(cli) => cli.command,
        Err(e) => return wid_cli::report_clap_error(&e, stdout, stderr),
    };
    let process = match command {
        Command::Client(c) => return wid_cli::execute(c, &env, stdout, stderr, console, started).await,
        Command::Serve(args) => serve::run(args, &env).await,
        Command::Webhook(args) => wid_webhook::server::run(args, &env).await,
        Command::Migrate(args) => data::migrate(&args, &env, stdout),
        Command::Export(args) => data::export(&args, &env, stdout, stderr),
        Command::Import(args) => data::import(&args, &env, stderr),
    };
    match process {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(stderr, "ERROR: {e:#}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tree_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
