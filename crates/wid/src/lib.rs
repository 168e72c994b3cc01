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

use clap::{CommandFactory, FromArgMatches, Subcommand};
use wid_cli::Console;

/// The binary's own commands, mounted after the client's: the long-running processes and the data
/// commands.
#[derive(Debug, Subcommand)]
pub enum Process {
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

/// The whole command tree: the client's ([`wid_cli::Cli`]) with [`Process`] added, under the
/// client's description (augmenting would put [`Process`]'s own doc in its place).
pub fn command() -> clap::Command {
    let client = <wid_cli::Cli as CommandFactory>::command();
    let about = client.get_about().cloned().unwrap_or_default();
    Process::augment_subcommands(client).about(about)
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
    let matches = match command().try_get_matches_from(argv) {
        Ok(m) => m,
        Err(e) => return wid_cli::report_clap_error(&e, stdout, stderr),
    };
    let process = match matches.subcommand_name() {
        Some(name) if Process::has_subcommand(name) => Process::from_arg_matches(&matches),
        _ => {
            return match wid_cli::Cli::from_arg_matches(&matches) {
                Ok(cli) => wid_cli::execute(cli.command, &env, stdout, stderr, console, started).await,
                Err(e) => wid_cli::report_clap_error(&e, stdout, stderr),
            };
        }
    };
    let result = match process {
        Ok(Process::Serve(args)) => serve::run(args, &env).await,
        Ok(Process::Webhook(args)) => wid_webhook::server::run(args, &env).await,
        Ok(Process::Migrate(args)) => data::migrate(&args, &env, stdout),
        Ok(Process::Export(args)) => data::export(&args, &env, stdout, stderr),
        Ok(Process::Import(args)) => data::import(&args, &env, stderr),
        Err(e) => return wid_cli::report_clap_error(&e, stdout, stderr),
    };
    match result {
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
        command().debug_assert();
    }

    #[test]
    fn process_and_client_commands_share_one_tree() {
        let help = command().render_long_help().to_string();
        assert!(help.starts_with("wid: self-hosted, keyless workload identity"), "{help}");
        for name in ["identity", "keyvault", "run", "serve", "webhook", "migrate", "export", "import"] {
            assert!(help.contains(&format!("  {name}")), "{name} missing from:\n{help}");
        }
    }
}
