//! `wid webhook`: the mutating admission webhook process (placeholder until it is built).

use std::collections::HashMap;

use clap::Args;

/// Flags of `wid webhook`.
#[derive(Debug, Args)]
pub struct WebhookArgs {}

/// Runs the webhook until SIGTERM/SIGINT.
pub async fn run(_args: WebhookArgs, _env: &HashMap<String, String>) -> anyhow::Result<()> {
    anyhow::bail!("wid webhook is not built yet")
}
