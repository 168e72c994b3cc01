//! CLI errors and their exit codes (az's conventions, `azure/cli/core/util.py::handle_exception`):
//! 1 for errors, 2 for usage errors (argparse), 3 for `ResourceNotFoundError` (HTTP 404).

use std::fmt;

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Any failure (exit 1).
    Failed,
    /// Wrong arguments (exit 2).
    Usage,
    /// The resource does not exist (exit 3).
    NotFound,
}

/// A failure to report as `ERROR: <message>` followed by recommendation lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub kind: ErrorKind,
    pub message: String,
    /// Printed after the error, one per line (az's `set_recommendation`).
    pub recommendations: Vec<String>,
}

/// az's pointer printed after `--query` errors.
pub const QUERY_REFERENCE: &str =
    "To learn more about --query, please visit: 'https://docs.microsoft.com/cli/azure/query-azure-cli'";

impl CliError {
    pub fn failed(message: impl Into<String>) -> Self {
        CliError { kind: ErrorKind::Failed, message: message.into(), recommendations: Vec::new() }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        CliError { kind: ErrorKind::Usage, message: message.into(), recommendations: Vec::new() }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        CliError { kind: ErrorKind::NotFound, message: message.into(), recommendations: Vec::new() }
    }

    pub fn recommend(mut self, line: impl Into<String>) -> Self {
        self.recommendations.push(line.into());
        self
    }

    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::Failed => 1,
            ErrorKind::Usage => 2,
            ErrorKind::NotFound => 3,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}
