//! `wid group create|show|list|delete|exists` (azure-cli `resource` module: `ResourceGroup` model
//! of azure-mgmt-resource, api-version 2024-11-01, `/resourcegroups/` in URLs as the SDK sends).

use crate::output::table_rows;
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode};

use super::{RESOURCE_GROUPS_API, parse_tags};
use crate::error::CliError;
use crate::output::TableTransformer;
use crate::output::shape::Models;
use crate::output::value::{Obj, Val};
use crate::{Ctx, GlobalArgs, Outcome};

#[derive(Debug, Args)]
pub struct GroupArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub cmd: GroupCmd,
}

#[derive(Debug, Subcommand)]
pub enum GroupCmd {
    /// Create a new resource group.
    Create(CreateArgs),
    /// Gets a resource group.
    Show(NameArgs),
    /// List resource groups.
    List(ListArgs),
    /// Delete a resource group.
    Delete(DeleteArgs),
    /// Check if a resource group exists.
    Exists(NameArgs),
}

#[derive(Debug, Args)]
pub struct NameArgs {
    /// Name of resource group.
    #[arg(short = 'n', long = "name", visible_alias = "resource-group", short_alias = 'g')]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the new resource group.
    #[arg(short = 'n', long = "name", visible_alias = "resource-group", short_alias = 'g')]
    pub name: String,
    /// Location.
    #[arg(short = 'l', long)]
    pub location: String,
    /// Space-separated tags: key[=value] [key[=value] ...]. Use "" to clear existing tags.
    #[arg(long, num_args = 0..)]
    pub tags: Option<Vec<String>>,
    /// The ID of the resource that manages this resource group.
    #[arg(long)]
    pub managed_by: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// A single tag in 'key[=value]' format.
    #[arg(long)]
    pub tag: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// Name of resource group.
    #[arg(short = 'n', long = "name", visible_alias = "resource-group", short_alias = 'g')]
    pub name: String,
    /// Do not prompt for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Do not wait for the long-running operation to finish.
    #[arg(long)]
    pub no_wait: bool,
    /// The resource types you want to force delete (accepted for compatibility).
    #[arg(short = 'f', long)]
    pub force_deletion_types: Option<String>,
}

fn group_url(ctx: &mut Ctx<'_>, rg: &str) -> Result<reqwest::Url, CliError> {
    let sub = ctx.subscription_id()?;
    ctx.url(&["subscriptions", &sub, "resourcegroups", rg], RESOURCE_GROUPS_API)
}

fn to_az(wire: &Val) -> Val {
    Models::get().to_az("ResourceGroup", wire)
}

/// azure-cli `transform_resource_group_list`.
fn group_list_table(result: &Val) -> Option<Val> {
    table_rows(result, |r| {
        Some(
            Obj::ordered()
                .with("Name", r.get("name")?.clone())
                .with("Location", r.get("location")?.clone())
                .with("Status", r.get("properties")?.as_obj()?.get("provisioningState")?.clone()),
        )
    })
}

pub async fn run(cmd: GroupCmd, ctx: &mut Ctx<'_>) -> Result<Outcome, CliError> {
    match cmd {
        GroupCmd::Create(a) => {
            let url = group_url(ctx, &a.name)?;
            let mut body = Obj::new().with("location", a.location.as_str());
            if let Some(m) = &a.managed_by {
                body.insert("managedBy", m.as_str());
            }
            if let Some(tags) = &a.tags {
                body.insert("tags", parse_tags(tags));
            }
            let body = Val::Obj(body).to_json();
            let v = ctx.call(Method::PUT, url, Some(body)).await?.json()?;
            Ok(Outcome::value(to_az(&v)))
        }
        GroupCmd::Show(a) => {
            let url = group_url(ctx, &a.name)?;
            let v = ctx.get_json(url).await?;
            Ok(Outcome::value(to_az(&v)))
        }
        GroupCmd::List(a) => {
            let sub = ctx.subscription_id()?;
            let url = ctx.url(&["subscriptions", &sub, "resourcegroups"], RESOURCE_GROUPS_API)?;
            let mut groups = ctx.list(url).await?;
            if let Some(tag) = &a.tag {
                // az sends `$filter=tagname eq 'k' [and tagvalue eq 'v']`; filtering here gives the
                // same answer whether or not the server implements $filter.
                let (k, v) = match tag.split_once('=') {
                    Some((k, v)) => (k, Some(v)),
                    None => (tag.as_str(), None),
                };
                groups.retain(|g| match g.get("tags").and_then(|t| t.get(k)) {
                    Some(Val::Str(actual)) => v.is_none_or(|v| v.is_empty() || actual == v),
                    Some(_) => v.is_none_or(str::is_empty),
                    None => false,
                });
            }
            let out = groups.iter().map(to_az).collect();
            Ok(Outcome::value(Val::List(out)).with_table(TableTransformer::Func(group_list_table)))
        }
        GroupCmd::Delete(a) => {
            if !a.yes {
                ctx.confirm("Are you sure you want to perform this operation?")?;
            }
            let url = group_url(ctx, &a.name)?;
            ctx.long_running(Method::DELETE, url, None, a.no_wait).await?;
            Ok(Outcome::none())
        }
        GroupCmd::Exists(a) => {
            let url = group_url(ctx, &a.name)?;
            let mut resp = ctx.send(Method::HEAD, url.clone(), None).await?;
            if resp.status == StatusCode::METHOD_NOT_ALLOWED {
                resp = ctx.send(Method::GET, url, None).await?;
            }
            match resp.status {
                s if s.is_success() => Ok(Outcome::value(Val::Bool(true))),
                StatusCode::NOT_FOUND => Ok(Outcome::value(Val::Bool(false))),
                _ => Err(crate::http::arm_error(&resp)),
            }
        }
    }
}
