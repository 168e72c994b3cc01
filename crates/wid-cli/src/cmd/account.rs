//! `wid account show|list`: the subscription of the profile, shaped as az's cached account
//! (`azure/cli/core/_profile.py::_normalize_properties`).

use crate::output::table_rows;
use clap::{Args, Subcommand};

use crate::error::CliError;
use crate::output::TableTransformer;
use crate::output::value::{Obj, Val};
use crate::profile::Profile;
use crate::{Ctx, GlobalArgs, Outcome};

/// Name of the cloud wid reports (az's `environmentName` / `cloudName`).
pub const CLOUD_NAME: &str = "wid";

#[derive(Debug, Args)]
pub struct AccountArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub cmd: AccountCmd,
}

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Get the details of a subscription.
    Show(ShowArgs),
    /// Get a list of subscriptions for the logged in account.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Name or ID of subscription.
    #[arg(short = 'n', long = "name", value_name = "SUBSCRIPTION")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// List all subscriptions from all clouds (accepted for compatibility).
    #[arg(long)]
    pub all: bool,
    /// Retrieve up-to-date subscriptions from server (accepted for compatibility).
    #[arg(long)]
    pub refresh: bool,
}

/// One account entry as az caches it (insertion order of `_normalize_properties`).
pub fn account_entry(id: &str, name: &str, state: &str, user: &str, tenant: &str, is_default: bool) -> Obj {
    Obj::new()
        .with("id", id)
        .with("name", name)
        .with("state", state)
        .with("user", Obj::new().with("name", user).with("type", "servicePrincipal"))
        .with("isDefault", is_default)
        .with("tenantId", tenant)
        .with("environmentName", CLOUD_NAME)
        .with("homeTenantId", tenant)
        .with("managedByTenants", Val::List(Vec::new()))
}

fn profile_account(p: &Profile) -> Obj {
    account_entry(&p.subscription_id, &p.subscription_name, "Enabled", &p.client_id, &p.tenant_id, true)
}

/// az `account list` table transformer (`profile/_format.py::transform_account_list`).
fn account_list_table(result: &Val) -> Option<Val> {
    table_rows(result, |r| {
        Some(
            Obj::ordered()
                .with("Name", r.get("name")?.clone())
                .with("CloudName", r.get("cloudName")?.clone())
                .with("SubscriptionId", r.get("id")?.clone())
                .with("TenantId", r.get("tenantId")?.clone())
                .with("State", r.get("state").cloned().unwrap_or(Val::Null))
                .with("IsDefault", r.get("isDefault")?.clone()),
        )
    })
}

pub async fn run(cmd: AccountCmd, ctx: &mut Ctx<'_>) -> Result<Outcome, CliError> {
    match cmd {
        AccountCmd::Show(args) => {
            let requested = args.name.or_else(|| ctx.global.subscription.clone());
            let p = ctx.profile()?;
            if let Some(s) = requested
                && !s.eq_ignore_ascii_case(&p.subscription_id)
                && !s.eq_ignore_ascii_case(&p.subscription_name)
            {
                return Err(CliError::failed(format!(
                    "Subscription '{s}' not found. Check the spelling and casing and try again."
                )));
            }
            Ok(Outcome::value(Val::Obj(profile_account(p))))
        }
        AccountCmd::List(_) => {
            let p = ctx.profile()?;
            let mut entry = profile_account(p);
            let cloud = entry.remove("environmentName").unwrap_or(Val::Null);
            entry.insert("cloudName", cloud);
            Ok(Outcome::value(Val::List(vec![Val::Obj(entry)])).with_table(TableTransformer::Func(account_list_table)))
        }
    }
}
