//! wid's az-compatible client: the command groups of `az` that the AKS walkthrough uses (account,
//! login, ad, group, identity, aks, keyvault, role) against `wid serve`, plus the local tools `wid run`
//! and `wid jwks`. The `wid` binary mounts [`ClientCommand`] beside its process commands.
//!
//! [`run`] is the whole client minus process plumbing, so tests can call it in-process with an
//! environment map and buffers. The pipeline is az's: parse (clap, exit 2 on usage errors) →
//! command → az's global result transform (`resourceGroup` from ids) → `--query` → `-o` format.
//!
//! Adding a command group: a module in `cmd/` with a clap `Subcommand` enum and an
//! `async fn run(cmd, &mut Ctx) -> Result<Outcome, CliError>`, a variant in [`Command`] wrapping it
//! with [`GlobalArgs`], and a line in [`dispatch`].

pub mod cmd;
pub mod error;
pub mod http;
pub mod output;
pub mod profile;

mod ctx;

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::time::Instant;

use clap::{Args, FromArgMatches, Parser, Subcommand};

pub use ctx::Ctx;
pub use error::{CliError, ErrorKind};
pub use output::value::{Obj, Val};
pub use output::{OutputFormat, TableTransformer};

use error::QUERY_REFERENCE;
use output::query::Query;

/// `wid`'s client commands alone (what tests and [`run`] parse; the binary adds its process commands).
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

/// The client's command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the CLI's account (as `az account`).
    Account(cmd::account::AccountArgs),
    /// Log in to a wid server with a service principal (as `az login --service-principal`).
    Login(cmd::login::LoginArgs),
    /// Directory objects (as `az ad`).
    Ad(cmd::ad::AdArgs),
    /// Manage resource groups (as `az group`).
    Group(cmd::group::GroupArgs),
    /// Managed identities and their federated credentials (as `az identity`).
    Identity(cmd::identity::IdentityArgs),
    /// Cluster registrations: OIDC issuers for service-account tokens (as `az aks`).
    Aks(cmd::aks::AksArgs),
    /// Manage key vaults and their secrets (as `az keyvault`).
    Keyvault(cmd::keyvault::KeyvaultArgs),
    /// Manage Azure RBAC role assignments and definitions (as `az role`).
    Role(cmd::role::RoleArgs),
    /// JSON Web Key Set of a cluster's service-account keys (as `azwi jwks`).
    Jwks(cmd::jwks::JwksArgs),
    /// Run a local command as a workload-identity pod would run (token file, AZURE_* env, CA trust).
    Run(Box<cmd::run::RunArgs>),
    /// `wid run --azure-hostnames`'s set-up inside the command's namespaces (not for people).
    #[command(name = cmd::run::namespace::INIT_COMMAND, hide = true)]
    RunNamespaceInit(Box<cmd::run::namespace::InitArgs>),
}

/// Arguments az accepts on every command.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// JMESPath query string. See http://jmespath.org/ for more information and examples.
    #[arg(long, global = true, value_name = "JMESPATH")]
    pub query: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, ignore_case = true)]
    pub output: Option<OutputFormat>,
    /// Name or ID of subscription.
    #[arg(long, global = true, value_name = "SUBSCRIPTION")]
    pub subscription: Option<String>,
    /// Only show errors, suppressing warnings.
    #[arg(long, global = true)]
    pub only_show_errors: bool,
    /// Increase logging verbosity to show all debug logs.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Increase logging verbosity.
    #[arg(long, global = true)]
    pub verbose: bool,
}

/// What a command produced.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The result object; `None` prints nothing (as az for `delete`).
    pub result: Option<Val>,
    /// How `-o table` shapes the result.
    pub table: Option<TableTransformer>,
    /// Text printed instead of the result when `-o` is not given (e.g. a bare token).
    pub raw: Option<String>,
}

impl Outcome {
    pub fn none() -> Self {
        Outcome::default()
    }

    pub fn value(v: Val) -> Self {
        Outcome { result: Some(v), ..Outcome::default() }
    }

    pub fn with_table(mut self, t: TableTransformer) -> Self {
        self.table = Some(t);
        self
    }
}

/// The terminal the CLI runs in: decides colours and whether confirmation prompts are possible.
#[derive(Debug, Default)]
pub struct Console {
    pub stdin_is_tty: bool,
    pub stdout_is_tty: bool,
    /// Answers to prompts for tests; `None` reads the process's stdin.
    scripted: Option<VecDeque<String>>,
}

impl Console {
    /// The process's terminal.
    pub fn terminal() -> Self {
        Console {
            stdin_is_tty: std::io::stdin().is_terminal(),
            stdout_is_tty: std::io::stdout().is_terminal(),
            scripted: None,
        }
    }

    /// No terminal: no colours, prompts fail as az's do without a TTY.
    pub fn detached() -> Self {
        Console::default()
    }

    /// A fake terminal answering prompts with `answers`.
    pub fn scripted(answers: &[&str]) -> Self {
        Console {
            stdin_is_tty: true,
            stdout_is_tty: false,
            scripted: Some(answers.iter().map(|s| (*s).to_owned()).collect()),
        }
    }

    /// Reads one line of input; `None` at end of input.
    pub fn read_line(&mut self) -> Option<String> {
        if let Some(q) = &mut self.scripted {
            return q.pop_front();
        }
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
        }
    }
}

/// Runs `wid` with `argv` (including the program name) and returns the exit code. No terminal:
/// prompts behave as without a TTY and `jsonc` is not coloured.
pub async fn run(
    argv: Vec<String>,
    env: HashMap<String, String>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> i32 {
    run_with(argv, env, stdout, stderr, Console::detached()).await
}

/// [`run`] with an explicit console.
pub async fn run_with(
    argv: Vec<String>,
    env: HashMap<String, String>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    console: Console,
) -> i32 {
    let started = Instant::now();
    match parse(argv) {
        Ok(cli) => execute(cli.command, &env, stdout, stderr, console, started).await,
        Err(e) => report_clap_error(&e, stdout, stderr),
    }
}

/// Runs one parsed client command (`started`: when the process began, for `--verbose` timings).
pub async fn execute(
    command: Command,
    env: &HashMap<String, String>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    mut console: Console,
    started: Instant,
) -> i32 {
    // Inside `wid run --azure-hostnames`'s namespaces: set up, then exec the command.
    let command = match command {
        Command::RunNamespaceInit(a) => return cmd::run::namespace::init(*a, stderr),
        other => other,
    };
    let global = command.global().clone();

    let query = match global.query.as_deref().map(Query::parse).transpose() {
        Ok(q) => q,
        Err(_) => {
            let e = CliError::usage(format!(
                "argument --query: invalid jmespath_type value: '{}'",
                global.query.as_deref().unwrap_or_default()
            ))
            .recommend(QUERY_REFERENCE);
            return report_error(&e, stderr);
        }
    };

    let parsed = Instant::now();
    let mut ctx = Ctx::new(env, global.clone(), stdout, stderr, &mut console);
    // `wid run` passes its child's exit code through instead of printing a result.
    let command = match command {
        Command::Run(a) => {
            let code = cmd::run::run(*a, &mut ctx).await;
            ctx.flush_debug();
            drop(ctx);
            return code.unwrap_or_else(|e| report_error(&e, stderr));
        }
        other => other,
    };
    let outcome = dispatch(command, &mut ctx).await;
    ctx.flush_debug();
    drop(ctx);
    let code = match outcome {
        Ok(outcome) => match emit(outcome, &global, query.as_ref(), console.stdout_is_tty, stdout) {
            Ok(()) => 0,
            Err(e) => report_error(&e, stderr),
        },
        Err(e) => report_error(&e, stderr),
    };
    if global.verbose || global.debug {
        let total = started.elapsed().as_secs_f64();
        let init = parsed.duration_since(started).as_secs_f64();
        let _ =
            writeln!(stderr, "INFO: Command ran in {total:.3} seconds (init: {init:.3}, invoke: {:.3})", total - init);
    }
    code
}

/// Parses a command line (`argv[0]` is the program name).
pub fn parse(argv: Vec<String>) -> Result<Cli, clap::Error> {
    let matches = <Cli as clap::CommandFactory>::command().try_get_matches_from(argv)?;
    Cli::from_arg_matches(&matches)
}

/// Prints a command-line parse error (or help and version) as az does; returns the exit code.
pub fn report_clap_error(e: &clap::Error, stdout: &mut dyn Write, stderr: &mut dyn Write) -> i32 {
    use clap::error::ErrorKind as K;
    let text = e.render().to_string();
    match e.kind() {
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = write!(stdout, "{text}");
            if e.kind() == K::DisplayHelpOnMissingArgumentOrSubcommand { 2 } else { 0 }
        }
        _ => {
            let text = text.strip_prefix("error: ").unwrap_or(&text);
            let _ = write!(stderr, "ERROR: {text}");
            2
        }
    }
}

fn report_error(e: &CliError, stderr: &mut dyn Write) -> i32 {
    let _ = writeln!(stderr, "ERROR: {}", e.message);
    for r in &e.recommendations {
        let _ = writeln!(stderr, "{r}");
    }
    e.exit_code()
}

/// az's result pipeline after the command: global transform, `--query`, formatting.
fn emit(
    outcome: Outcome,
    global: &GlobalArgs,
    query: Option<&Query>,
    color: bool,
    stdout: &mut dyn Write,
) -> Result<(), CliError> {
    if let (Some(raw), None, None) = (&outcome.raw, global.output, query) {
        let _ = writeln!(stdout, "{raw}");
        return Ok(());
    }
    let Some(mut result) = outcome.result else {
        return Ok(());
    };
    output::shape::add_resource_group(&mut result);
    if let Some(q) = query {
        result = q.search(&result).map_err(|e| {
            CliError::failed(format!("Invalid jmespath query supplied for `--query`: {e}")).recommend(QUERY_REFERENCE)
        })?;
    }
    if result.is_null() {
        return Ok(());
    }
    let format = global.output.unwrap_or(OutputFormat::Json);
    let text =
        output::render(format, &result, outcome.table.as_ref(), query.is_some(), color).map_err(CliError::failed)?;
    // A closed pipe (e.g. `| head`) is not an error, as in knack.
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
    Ok(())
}

impl Command {
    /// The az-style global arguments of the command.
    pub fn global(&self) -> &GlobalArgs {
        match self {
            Command::Account(a) => &a.global,
            Command::Login(a) => &a.global,
            Command::Ad(a) => &a.global,
            Command::Group(a) => &a.global,
            Command::Identity(a) => &a.global,
            Command::Aks(a) => &a.global,
            Command::Keyvault(a) => &a.global,
            Command::Role(a) => &a.global,
            Command::Jwks(a) => &a.global,
            Command::Run(a) => &a.global,
            Command::RunNamespaceInit(a) => &a.global,
        }
    }
}

async fn dispatch(command: Command, ctx: &mut Ctx<'_>) -> Result<Outcome, CliError> {
    match command {
        Command::Account(a) => cmd::account::run(a.cmd, ctx).await,
        Command::Login(a) => cmd::login::run(a, ctx).await,
        Command::Ad(a) => cmd::ad::run(a.cmd, ctx).await,
        Command::Group(a) => cmd::group::run(a.cmd, ctx).await,
        Command::Identity(a) => cmd::identity::run(a.cmd, ctx).await,
        Command::Aks(a) => cmd::aks::run(a.cmd, ctx).await,
        Command::Keyvault(a) => cmd::keyvault::run(a.cmd, ctx).await,
        Command::Role(a) => cmd::role::run(a.cmd, ctx).await,
        Command::Jwks(a) => cmd::jwks::run(a, ctx).await,
        Command::Run(_) | Command::RunNamespaceInit(_) => Err(CliError::failed("wid run is not dispatched here")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(args: &[&str]) -> Cli {
        let argv = std::iter::once("wid").chain(args.iter().copied()).map(String::from).collect();
        parse(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn command_tree_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }

    #[test]
    fn globals_anywhere_after_the_group() {
        let cli = parse_ok(&["identity", "show", "-n", "x", "-g", "rg", "-o", "tsv", "--query", "clientId"]);
        let g = cli.command.global();
        assert_eq!(g.output, Some(OutputFormat::Tsv));
        assert_eq!(g.query.as_deref(), Some("clientId"));
        let cli = parse_ok(&["group", "-o", "TABLE", "list", "--subscription", "wid"]);
        let g = cli.command.global();
        assert_eq!(g.output, Some(OutputFormat::Table));
        assert_eq!(g.subscription.as_deref(), Some("wid"));
        let cli = parse_ok(&["account", "show", "--output", "tsv", "--only-show-errors", "--debug", "--verbose"]);
        let g = cli.command.global();
        assert!(g.only_show_errors && g.debug && g.verbose);
    }

    #[test]
    fn long_options_accept_unambiguous_prefixes_like_argparse() {
        let cli = parse_ok(&["group", "create", "--name", "rg", "--loc", "eastus"]);
        let Command::Group(g) = cli.command else { panic!() };
        let cmd::group::GroupCmd::Create(c) = g.cmd else { panic!() };
        assert_eq!(c.location, "eastus");
    }

    #[test]
    fn usage_errors_exit_2() {
        let (code, out, err) = run_sync(&["group", "create", "--name", "rg"]);
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(err.starts_with("ERROR: "), "{err}");
        let (code, _, err) = run_sync(&["nope"]);
        assert_eq!(code, 2);
        assert!(err.starts_with("ERROR: "), "{err}");
        let (code, out, _) = run_sync(&["--help"]);
        assert_eq!(code, 0);
        assert!(out.contains("identity"));
    }

    #[test]
    fn invalid_query_is_a_usage_error() {
        let (code, _, err) = run_sync(&["account", "show", "--query", "[."]);
        assert_eq!(code, 2);
        assert_eq!(
            err,
            "ERROR: argument --query: invalid jmespath_type value: '[.'\nTo learn more about --query, please visit: 'https://docs.microsoft.com/cli/azure/query-azure-cli'\n"
        );
    }

    #[test]
    fn missing_profile_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = HashMap::new();
        env.insert("WID_CONFIG".into(), dir.path().join("none.json").display().to_string());
        let (code, _, err) = run_env(&["group", "list"], env);
        assert_eq!(code, 1);
        assert!(err.starts_with("ERROR: Please run 'wid login' to setup account."), "{err}");
    }

    pub(crate) fn run_env(args: &[&str], env: HashMap<String, String>) -> (i32, String, String) {
        let argv = std::iter::once("wid").chain(args.iter().copied()).map(String::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let code = rt.block_on(run(argv, env, &mut out, &mut err));
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    fn run_sync(args: &[&str]) -> (i32, String, String) {
        run_env(args, HashMap::new())
    }
}
