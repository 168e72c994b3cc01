//! `wid` binary: reads the process environment once and hands over to [`wid::run_with`].
//!
//! Exit codes (as az): 0 success, 1 error, 2 usage error, 3 resource not found.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let env: HashMap<String, String> =
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect();

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ERROR: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let console = wid_cli::Console::terminal();
    let code = runtime.block_on(async {
        // Unlocked handles: `serve` logs from other threads while this future runs.
        let mut stdout = std::io::stdout();
        let mut stderr = std::io::stderr();
        let code = wid::run_with(argv, env, &mut stdout, &mut stderr, console).await;
        let _ = stdout.flush();
        code
    });
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
