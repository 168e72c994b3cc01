//! `wid identity create|show|list|delete` and `wid identity federated-credential
//! create|update|show|list|delete` (azure-cli aaz commands: identities at api-version
//! 2025-05-31-preview, federated credentials at 2025-01-31-preview; output filtered by the aaz
//! schema with `properties` flattened).

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::json;

use super::{parse_tags, resource_group_location};
use crate::error::CliError;
use crate::output::shape::{self, FEDERATED_CREDENTIAL, IDENTITY, ResourceId};
use crate::output::value::{Obj, Val};
use crate::{Ctx, GlobalArgs, Outcome};

/// api-version of `az identity` (aaz, azure-cli 2.91).
pub const IDENTITY_API: &str = "2025-05-31-preview";
/// api-version of `az identity federated-credential` (aaz, azure-cli 2.91).
pub const FIC_API: &str = "2025-01-31-preview";
/// The audience az puts on a federated credential by default.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";

const PROVIDER: &str = "Microsoft.ManagedIdentity";
const IDENTITIES: &str = "userAssignedIdentities";
const FICS: &str = "federatedIdentityCredentials";

#[derive(Debug, Args)]
pub struct IdentityArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub cmd: IdentityCmd,
}

#[derive(Debug, Subcommand)]
pub enum IdentityCmd {
    /// Create an identity.
    Create(CreateArgs),
    /// Get an identity.
    Show(TargetArgs),
    /// List all identities in a resource group or subscription.
    List(ListArgs),
    /// Delete an identity.
    Delete(TargetArgs),
    /// Manage federated identity credentials under user assigned identities.
    #[command(name = "federated-credential", subcommand)]
    FederatedCredential(FicCmd),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The name of the identity resource.
    #[arg(short = 'n', long = "name", visible_alias = "resource-name")]
    pub name: String,
    /// Name of resource group.
    #[arg(short = 'g', long)]
    pub resource_group: String,
    /// Location (default: the resource group's).
    #[arg(short = 'l', long)]
    pub location: Option<String>,
    /// Space-separated tags: key[=value] [key[=value] ...].
    #[arg(long, num_args = 0..)]
    pub tags: Option<Vec<String>>,
    /// Regional restrictions on identity assignment: None or Regional.
    #[arg(long)]
    pub isolation_scope: Option<String>,
}

/// An identity named by `-n -g` or by `--ids`.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// The name of the identity resource.
    #[arg(short = 'n', long = "name", visible_alias = "resource-name")]
    pub name: Option<String>,
    /// Name of resource group.
    #[arg(short = 'g', long)]
    pub resource_group: Option<String>,
    /// One or more resource IDs (space-delimited).
    #[arg(long, num_args = 1.., conflicts_with_all = ["name", "resource_group"])]
    pub ids: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Name of resource group (default: the whole subscription).
    #[arg(short = 'g', long)]
    pub resource_group: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum FicCmd {
    /// Create a federated identity credential under an existing user assigned identity.
    Create(FicWriteArgs),
    /// Update a federated identity credential under an existing user assigned identity.
    Update(FicWriteArgs),
    /// Show a federated identity credential under an existing user assigned identity.
    Show(FicNameArgs),
    /// List all federated identity credentials under an existing user assigned identity.
    List(FicListArgs),
    /// Delete a federated identity credential under an existing user assigned identity.
    Delete(FicDeleteArgs),
}

#[derive(Debug, Args)]
pub struct FicWriteArgs {
    /// The name of the federated identity credential resource.
    #[arg(short = 'n', long)]
    pub name: String,
    /// The name of the identity resource.
    #[arg(long)]
    pub identity_name: String,
    /// Name of resource group.
    #[arg(short = 'g', long)]
    pub resource_group: String,
    /// The openId connect metadata URL of the issuer of the identity provider.
    #[arg(long)]
    pub issuer: Option<String>,
    /// The sub value in the token sent for getting the user-assigned managed identity token.
    #[arg(long)]
    pub subject: Option<String>,
    /// The aud value in the token (default: api://AzureADTokenExchange).
    #[arg(long, visible_alias = "audience", num_args = 1..)]
    pub audiences: Option<Vec<String>>,
    /// The wildcard-based expression for matching incoming claims. Cannot be used with --subject.
    #[arg(long = "claims-matching-expression-value", visible_alias = "cme-value")]
    pub cme_value: Option<String>,
    /// The version of the claims matching expression.
    #[arg(long = "claims-matching-expression-version", visible_alias = "cme-version")]
    pub cme_version: Option<i64>,
}

#[derive(Debug, Args)]
pub struct FicNameArgs {
    /// The name of the federated identity credential resource.
    #[arg(short = 'n', long)]
    pub name: String,
    /// The name of the identity resource.
    #[arg(long)]
    pub identity_name: String,
    /// Name of resource group.
    #[arg(short = 'g', long)]
    pub resource_group: String,
}

#[derive(Debug, Args)]
pub struct FicDeleteArgs {
    #[command(flatten)]
    pub target: FicNameArgs,
    /// Do not prompt for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct FicListArgs {
    /// The name of the identity resource.
    #[arg(long)]
    pub identity_name: String,
    /// Name of resource group.
    #[arg(short = 'g', long)]
    pub resource_group: String,
    /// A skip token to continue listing (accepted for compatibility).
    #[arg(long)]
    pub skiptoken: Option<String>,
    /// Number of records to return.
    #[arg(long)]
    pub top: Option<usize>,
}

/// (subscription, resource group, name) of each identity targeted.
fn targets(ctx: &mut Ctx<'_>, a: &TargetArgs) -> Result<Vec<(String, String, String)>, CliError> {
    if !a.ids.is_empty() {
        return a
            .ids
            .iter()
            .map(|id| {
                let rid = ResourceId::parse(id)
                    .filter(|r| r.resource_group.is_some() && r.types.len() == 1)
                    .ok_or_else(|| CliError::usage(format!("invalid resource ID: {id}")))?;
                let name = rid.name().unwrap_or_default().to_owned();
                Ok((rid.subscription, rid.resource_group.unwrap_or_default(), name))
            })
            .collect();
    }
    match (&a.name, &a.resource_group) {
        (Some(n), Some(g)) => Ok(vec![(ctx.subscription_id()?, g.clone(), n.clone())]),
        _ => Err(CliError::usage(
            "the following arguments are required: --name/-n/--resource-name, --resource-group/-g (or --ids)",
        )),
    }
}

fn identity_url(ctx: &mut Ctx<'_>, sub: &str, rg: &str, name: &str) -> Result<reqwest::Url, CliError> {
    ctx.url(&["subscriptions", sub, "resourceGroups", rg, "providers", PROVIDER, IDENTITIES, name], IDENTITY_API)
}

fn fic_url(ctx: &mut Ctx<'_>, rg: &str, identity: &str, name: Option<&str>) -> Result<reqwest::Url, CliError> {
    let sub = ctx.subscription_id()?;
    let mut segs = vec!["subscriptions", &sub, "resourceGroups", rg, "providers", PROVIDER, IDENTITIES, identity, FICS];
    if let Some(n) = name {
        segs.push(n);
    }
    ctx.url(&segs, FIC_API)
}

fn identity_out(v: &Val) -> Val {
    shape::aaz_output(&IDENTITY, v).unwrap_or(Val::Null)
}

fn fic_out(v: &Val) -> Val {
    shape::aaz_output(&FEDERATED_CREDENTIAL, v).unwrap_or(Val::Null)
}

/// One result, or a list when several `--ids` were given (as az does).
fn one_or_many(mut results: Vec<Val>) -> Option<Val> {
    match results.len() {
        0 => None,
        1 => results.pop(),
        _ => Some(Val::List(results)),
    }
}

pub async fn run(cmd: IdentityCmd, ctx: &mut Ctx<'_>) -> Result<Outcome, CliError> {
    match cmd {
        IdentityCmd::Create(a) => {
            let sub = ctx.subscription_id()?;
            let location = match a.location {
                Some(l) => l,
                None => resource_group_location(ctx, &sub, &a.resource_group).await?,
            };
            let mut body = Obj::new().with("location", location);
            if let Some(tags) = &a.tags {
                body.insert("tags", parse_tags(tags));
            }
            if let Some(scope) = &a.isolation_scope {
                body.insert("properties", Obj::new().with("isolationScope", scope.as_str()));
            }
            let body = Val::Obj(body).to_json();
            let url = identity_url(ctx, &sub, &a.resource_group, &a.name)?;
            let v = ctx.call(Method::PUT, url, Some(body)).await?.json()?;
            Ok(Outcome::value(identity_out(&v)))
        }
        IdentityCmd::Show(a) => {
            let mut out = Vec::new();
            for (sub, rg, name) in targets(ctx, &a)? {
                let url = identity_url(ctx, &sub, &rg, &name)?;
                out.push(identity_out(&ctx.get_json(url).await?));
            }
            Ok(Outcome { result: one_or_many(out), ..Outcome::default() })
        }
        IdentityCmd::List(a) => {
            let sub = ctx.subscription_id()?;
            let url = match &a.resource_group {
                Some(rg) => ctx.url(
                    &["subscriptions", &sub, "resourceGroups", rg, "providers", PROVIDER, IDENTITIES],
                    IDENTITY_API,
                )?,
                None => ctx.url(&["subscriptions", &sub, "providers", PROVIDER, IDENTITIES], IDENTITY_API)?,
            };
            let items = ctx.list(url).await?;
            Ok(Outcome::value(Val::List(items.iter().map(identity_out).collect())))
        }
        IdentityCmd::Delete(a) => {
            for (sub, rg, name) in targets(ctx, &a)? {
                let url = identity_url(ctx, &sub, &rg, &name)?;
                ctx.call(Method::DELETE, url, None).await?;
            }
            Ok(Outcome::none())
        }
        IdentityCmd::FederatedCredential(f) => run_fic(f, ctx).await,
    }
}

async fn run_fic(cmd: FicCmd, ctx: &mut Ctx<'_>) -> Result<Outcome, CliError> {
    match cmd {
        FicCmd::Create(a) => {
            let url = fic_url(ctx, &a.resource_group, &a.identity_name, Some(&a.name))?;
            let audiences = a.audiences.clone().unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()]);
            let body = fic_body(&a, audiences, None);
            let v = ctx.call(Method::PUT, url, Some(body)).await?.json()?;
            Ok(Outcome::value(fic_out(&v)))
        }
        FicCmd::Update(a) => {
            // aaz generic update: GET, apply the given arguments, PUT.
            let url = fic_url(ctx, &a.resource_group, &a.identity_name, Some(&a.name))?;
            let current = ctx.get_json(url.clone()).await?;
            let props = current.get("properties");
            let audiences = a.audiences.clone().unwrap_or_else(|| {
                props
                    .and_then(|p| p.get("audiences"))
                    .and_then(Val::as_list)
                    .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_else(|| vec![DEFAULT_AUDIENCE.to_owned()])
            });
            let body = fic_body(&a, audiences, props);
            let v = ctx.call(Method::PUT, url, Some(body)).await?.json()?;
            Ok(Outcome::value(fic_out(&v)))
        }
        FicCmd::Show(a) => {
            let url = fic_url(ctx, &a.resource_group, &a.identity_name, Some(&a.name))?;
            Ok(Outcome::value(fic_out(&ctx.get_json(url).await?)))
        }
        FicCmd::List(a) => {
            let url = fic_url(ctx, &a.resource_group, &a.identity_name, None)?;
            let mut items = ctx.list(url).await?;
            if let Some(top) = a.top {
                items.truncate(top);
            }
            Ok(Outcome::value(Val::List(items.iter().map(fic_out).collect())))
        }
        FicCmd::Delete(a) => {
            if !a.yes {
                ctx.confirm("Are you sure you want to perform this operation?")?;
            }
            let t = &a.target;
            let url = fic_url(ctx, &t.resource_group, &t.identity_name, Some(&t.name))?;
            ctx.call(Method::DELETE, url, None).await?;
            Ok(Outcome::none())
        }
    }
}

/// The PUT body aaz builds: `{"properties":{"audiences","claimsMatchingExpression"?,"issuer",
/// "subject"?}}`; on update, unspecified properties keep their current values, except that giving
/// `--subject` drops a current claims-matching expression and vice versa (the two exclude each
/// other; az would send both and get a 400).
fn fic_body(a: &FicWriteArgs, audiences: Vec<String>, current: Option<&Val>) -> serde_json::Value {
    let cur = |k: &str| current.and_then(|p| p.get(k)).filter(|v| !v.is_null()).map(Val::to_json);
    let mut props = serde_json::Map::new();
    props.insert("audiences".into(), json!(audiences));
    let cme_given = a.cme_version.is_some() || a.cme_value.is_some();
    let cme = match (&a.cme_version, &a.cme_value) {
        (None, None) if a.subject.is_some() => None,
        (None, None) => cur("claimsMatchingExpression"),
        (version, value) => {
            let existing = cur("claimsMatchingExpression");
            let old = |k: &str| existing.as_ref().and_then(|e| e.get(k)).cloned();
            Some(json!({
                "languageVersion": version.map(|v| json!(v)).or_else(|| old("languageVersion")),
                "value": value.as_ref().map(|v| json!(v)).or_else(|| old("value")),
            }))
        }
    };
    if let Some(cme) = cme {
        props.insert("claimsMatchingExpression".into(), cme);
    }
    if let Some(issuer) = a.issuer.as_ref().map(|i| json!(i)).or_else(|| cur("issuer")) {
        props.insert("issuer".into(), issuer);
    }
    let current_subject = if cme_given { None } else { cur("subject") };
    if let Some(subject) = a.subject.as_ref().map(|s| json!(s)).or(current_subject) {
        props.insert("subject".into(), subject);
    }
    json!({ "properties": props })
}
