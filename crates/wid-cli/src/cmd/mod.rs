//! Client commands, one module per az command group.

pub mod account;
pub mod ad;
pub mod aks;
pub mod group;
pub mod identity;
pub mod jwks;
pub mod keyvault;
pub mod login;
pub mod role;
pub mod run;
pub mod secret;

use reqwest::Method;

use super::Ctx;
use super::error::CliError;
use crate::output::value::{Obj, Val};

/// api-version of `Microsoft.Resources` resource groups (azure-cli 2.91 profile `latest`).
pub const RESOURCE_GROUPS_API: &str = "2024-11-01";

/// Parses az's `--tags a=b c=d` (a bare `k` is an empty value, `""` clears).
pub fn parse_tags(tags: &[String]) -> Obj {
    let mut out = Obj::new();
    for t in tags {
        if t.is_empty() {
            continue;
        }
        match t.split_once('=') {
            Some((k, v)) => out.insert(k, v),
            None => out.insert(t.as_str(), ""),
        }
    }
    out
}

/// The location of a resource group (az uses it when `--location` is omitted).
pub async fn resource_group_location(ctx: &mut Ctx<'_>, sub: &str, rg: &str) -> Result<String, CliError> {
    let url = ctx.url(&["subscriptions", sub, "resourcegroups", rg], RESOURCE_GROUPS_API)?;
    let v = ctx.call(Method::GET, url, None).await?.json()?;
    v.get_str("location")
        .map(str::to_owned)
        .ok_or_else(|| CliError::failed(format!("Resource group '{rg}' has no location")))
}

/// A required string member of a server response.
pub fn require_str<'v>(v: &'v Val, key: &str) -> Result<&'v str, CliError> {
    v.get_str(key).ok_or_else(|| CliError::failed(format!("The server response has no '{key}'")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::format_json;

    #[test]
    fn tags() {
        let t = parse_tags(&["a=b".into(), "c".into(), "d=e=f".into(), String::new()]);
        assert_eq!(format_json(&Val::Obj(t)), "{\n  \"a\": \"b\",\n  \"c\": \"\",\n  \"d\": \"e=f\"\n}\n");
    }
}
