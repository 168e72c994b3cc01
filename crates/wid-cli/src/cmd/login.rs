//! `wid login`: connect the CLI to a (remote) wid server with a service principal, as
//! `az login --service-principal -u ID -p SECRET --tenant T` does, and write the profile.
//!
//! Steps: discover the endpoints (`/metadata/endpoints`, as `az cloud register` does), find the
//! tenant (`/tenants`) when `--tenant` is absent, verify the credential by getting a management
//! token, list the subscriptions (`/subscriptions`), then save the profile (mode 0600) and print
//! the subscriptions as az does.
//!
//! `--federated-token`: like az, the token itself is stored in the profile as the client assertion
//! and reused until it expires; `wid login` must be run again with a fresh token after that (az
//! behaves the same). Storing a file path instead would silently pick up rotated tokens, but
//! `az login --federated-token` takes the token's value, and so does wid.

use std::path::PathBuf;

use clap::Args;
use reqwest::{Method, StatusCode};

use crate::cmd::account::{CLOUD_NAME, account_entry};
use crate::error::CliError;
use crate::http::{self, Body, Credential, Http};
use crate::output::value::Val;
use crate::profile::Profile;
use crate::{Ctx, GlobalArgs, Outcome};

/// api-version az uses for `/subscriptions` and `/tenants`.
const SUBSCRIPTIONS_API: &str = "2022-12-01";
/// api-version az uses for `/metadata/endpoints`.
const METADATA_API: &str = "2022-09-01";

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Base URL of the wid server, e.g. https://localhost:8443 (default: the profile's).
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// The Microsoft Entra-compatible tenant (discovered when omitted).
    #[arg(short = 't', long)]
    pub tenant: Option<String>,
    /// Log in with a service principal (the only kind of login wid supports; accepted for
    /// compatibility).
    #[arg(long)]
    pub service_principal: bool,
    /// Client ID of the service principal.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Client secret of the service principal.
    #[arg(short = 'p', long, conflicts_with = "federated_token")]
    pub password: Option<String>,
    /// A federated token (JWT) to use as client assertion instead of a secret.
    #[arg(long, value_name = "TOKEN")]
    pub federated_token: Option<String>,
    /// PEM file with the CA certificate(s) of the server (e.g. DATA_DIR/ca.pem).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
    /// Support access tenants without subscriptions.
    #[arg(long)]
    pub allow_no_subscriptions: bool,
}

struct Endpoints {
    management: String,
    key_vault_dns_suffix: String,
}

pub async fn run(args: LoginArgs, ctx: &mut Ctx<'_>) -> Result<Outcome, CliError> {
    let existing = ctx.profile_path().ok().and_then(|p| Profile::load(&p).ok());
    let server = match (&args.server, &existing) {
        (Some(s), _) => s.trim_end_matches('/').to_owned(),
        (None, Some(p)) => p.server_base().to_owned(),
        (None, None) => {
            return Err(CliError::usage(
                "usage error: --server URL --service-principal --username ID --password SECRET [--tenant TENANT]",
            ));
        }
    };
    let Some(client_id) = args.username.clone() else {
        return Err(CliError::usage(
            "usage error: --service-principal --username NAME --password SECRET --tenant TENANT",
        ));
    };
    let credential = match (&args.password, &args.federated_token) {
        (Some(p), _) => Credential::Secret(p),
        (None, Some(t)) => Credential::Assertion(t),
        (None, None) => {
            return Err(CliError::failed("Please specify both username and password in non-interactive mode."));
        }
    };
    let ca_file = match &args.ca_file {
        Some(f) => Some(
            std::fs::canonicalize(f)
                .map_err(|e| CliError::failed(format!("Cannot read CA file '{}': {e}", f.display())))?,
        ),
        None => existing.as_ref().filter(|p| p.server_base() == server).and_then(|p| p.ca_cert_file.clone()),
    };

    let mut http = Http::new(&server, ca_file.as_deref(), ctx.global.debug)?;
    let previous_name = existing
        .as_ref()
        .filter(|p| p.server_base() == server && p.client_id == client_id)
        .and_then(|p| p.display_name.clone());
    let result = login(
        &args,
        ctx,
        &mut http,
        LoginTarget { server: &server, client_id: &client_id, credential: &credential, ca_file, previous_name },
    )
    .await;
    for line in http.take_log() {
        let _ = writeln!(ctx.err, "DEBUG: {line}");
    }
    result
}

/// Who logs in where.
struct LoginTarget<'a> {
    server: &'a str,
    client_id: &'a str,
    credential: &'a Credential<'a>,
    ca_file: Option<PathBuf>,
    /// Display name kept from a previous login of the same principal.
    previous_name: Option<String>,
}

async fn login(
    args: &LoginArgs,
    ctx: &mut Ctx<'_>,
    http: &mut Http,
    target: LoginTarget<'_>,
) -> Result<Outcome, CliError> {
    let LoginTarget { server, client_id, credential, ca_file, previous_name } = target;
    let endpoints = discover_endpoints(http, server).await?;
    let tenant = match &args.tenant {
        Some(t) => t.clone(),
        None => discover_tenant(http, client_id, credential, &endpoints.management).await?,
    };
    let info = http::acquire_token(http, &tenant, client_id, credential, &endpoints.management).await?;

    let url = http.url(&["subscriptions"], &[("api-version", SUBSCRIPTIONS_API)])?;
    let resp = http.send(Method::GET, url, Some(&info.access_token), Body::None, true).await?;
    if !resp.is_success() {
        return Err(http::arm_error(&resp));
    }
    let subs: Vec<Val> = resp
        .json()?
        .get("value")
        .and_then(Val::as_list)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|s| s.get_str("tenantId").is_none_or(|t| t.eq_ignore_ascii_case(&tenant)))
        .collect();

    // (id, name, state) of each subscription.
    let mut entries: Vec<(String, String, String)> = subs
        .iter()
        .filter_map(|s| {
            let id = s
                .get_str("subscriptionId")
                .map(str::to_owned)
                .or_else(|| s.get_str("id").map(|i| i.rsplit('/').next().unwrap_or(i).to_owned()))?;
            let name = s.get_str("displayName").unwrap_or(&id).to_owned();
            let state = s.get_str("state").unwrap_or("Enabled").to_owned();
            Some((id, name, state))
        })
        .collect();
    if entries.is_empty() {
        if !args.allow_no_subscriptions {
            return Err(CliError::failed(format!("No subscriptions found for {client_id}.")));
        }
        entries.push((tenant.clone(), "N/A(tenant level account)".to_owned(), "Enabled".to_owned()));
    }
    let default_index = match &ctx.global.subscription {
        None => 0,
        Some(want) => entries
            .iter()
            .position(|(id, name, _)| want.eq_ignore_ascii_case(id) || want.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                CliError::failed(format!(
                    "Subscription '{want}' not found. Check the spelling and casing and try again."
                ))
            })?,
    };
    let (sub_id, sub_name, _) =
        entries.get(default_index).cloned().ok_or_else(|| CliError::failed("No subscription selected"))?;

    let (secret, assertion) = match credential {
        Credential::Secret(s) => (Some((*s).to_owned()), None),
        Credential::Assertion(a) => (None, Some(a.trim().to_owned())),
    };
    let profile = Profile {
        server: server.to_owned(),
        tenant_id: tenant.clone(),
        subscription_id: sub_id,
        subscription_name: sub_name,
        client_id: client_id.to_owned(),
        client_secret: secret,
        client_assertion: assertion,
        principal_id: info.object_id.clone(),
        ca_cert_file: ca_file,
        management_resource: Some(endpoints.management.clone()),
        key_vault_resource: Some(format!("https://{}", endpoints.key_vault_dns_suffix)),
        key_vault_dns_suffix: Some(endpoints.key_vault_dns_suffix.clone()),
        display_name: info.display_name.clone().or(previous_name),
    };
    let path = ctx.profile_path()?;
    profile.save(&path).map_err(|e| CliError::failed(format!("Cannot save the profile: {e}")))?;

    let accounts: Vec<Val> = entries
        .iter()
        .enumerate()
        .map(|(i, (id, name, state))| {
            let mut e = account_entry(id, name, state, client_id, &tenant, i == default_index);
            e.remove("environmentName");
            e.insert("cloudName", CLOUD_NAME);
            Val::Obj(e)
        })
        .collect();
    Ok(Outcome::value(Val::List(accounts)))
}

/// `GET /metadata/endpoints` (what `az cloud register --endpoint-resource-manager` reads).
/// Without it, the server URL is the management audience and vaults live under `vault.HOST`.
async fn discover_endpoints(http: &mut Http, server: &str) -> Result<Endpoints, CliError> {
    let host = reqwest::Url::parse(server)
        .ok()
        .and_then(|u| {
            let host = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(p) => format!("{host}:{p}"),
                None => host,
            })
        })
        .unwrap_or_default();
    let fallback = Endpoints { management: server.to_owned(), key_vault_dns_suffix: format!("vault.{host}") };
    let url = http.url(&["metadata", "endpoints"], &[("api-version", METADATA_API)])?;
    let resp = http.send(Method::GET, url, None, Body::None, true).await?;
    if !resp.is_success() {
        return Ok(fallback);
    }
    let Ok(meta) = resp.json() else {
        return Ok(fallback);
    };
    let management = meta
        .path(&["authentication", "audiences"])
        .and_then(Val::as_list)
        .and_then(|a| a.first())
        .and_then(Val::as_str)
        .or_else(|| meta.get_str("resourceManager"))
        .map_or(fallback.management.clone(), str::to_owned);
    let key_vault_dns_suffix = meta
        .path(&["suffixes", "keyVaultDns"])
        .and_then(Val::as_str)
        .map(|s| s.trim_start_matches('.').to_owned())
        .unwrap_or(fallback.key_vault_dns_suffix);
    Ok(Endpoints { management, key_vault_dns_suffix })
}

/// `GET /tenants`: anonymously first; a 401 challenge names the tenant in `authorization_uri`
/// (as ARM's does); otherwise with a token from the `organizations` authority.
async fn discover_tenant(
    http: &mut Http,
    client_id: &str,
    credential: &Credential<'_>,
    management: &str,
) -> Result<String, CliError> {
    let url = http.url(&["tenants"], &[("api-version", SUBSCRIPTIONS_API)])?;
    let mut resp = http.send(Method::GET, url.clone(), None, Body::None, true).await?;
    if resp.status == StatusCode::UNAUTHORIZED {
        if let Some(tenant) = resp.header("www-authenticate").and_then(challenge_tenant) {
            return Ok(tenant);
        }
        if let Ok(info) = http::acquire_token(http, "organizations", client_id, credential, management).await {
            resp = http.send(Method::GET, url, Some(&info.access_token), Body::None, true).await?;
        }
    }
    if !resp.is_success() {
        return Err(CliError::failed("Cannot discover the tenant of this server; pass --tenant TENANT_ID."));
    }
    resp.json()?
        .get("value")
        .and_then(Val::as_list)
        .and_then(|l| l.first())
        .and_then(|t| t.get_str("tenantId"))
        .map(str::to_owned)
        .ok_or_else(|| CliError::failed("The server lists no tenant; pass --tenant TENANT_ID."))
}

/// The tenant in a `Bearer authorization_uri="https://HOST/{tenant}", ...` challenge.
fn challenge_tenant(header: &str) -> Option<String> {
    let start = header.find("authorization_uri=\"")? + "authorization_uri=\"".len();
    let rest = header.get(start..)?;
    let uri = rest.get(..rest.find('"')?)?;
    let tenant = uri.trim_end_matches('/').rsplit('/').next()?;
    (!tenant.is_empty() && !tenant.contains(':')).then(|| tenant.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_from_challenge() {
        assert_eq!(
            challenge_tenant(r#"Bearer authorization_uri="https://localhost:8443/9900c002-d87e-4cee-9df0-86be666d89f5", error="invalid_token""#)
                .as_deref(),
            Some("9900c002-d87e-4cee-9df0-86be666d89f5")
        );
        assert_eq!(challenge_tenant("Bearer realm=\"x\""), None);
        assert_eq!(challenge_tenant(r#"Bearer authorization_uri="https://h:1""#), None);
    }
}
