//! `wid run -n CLUSTER -g RG --namespace NS --service-account SA -- COMMAND ARGS…`: runs a local
//! process as the workload-identity webhook and kubelet would run it in a pod of that cluster.
//!
//! What the process gets:
//! - a service-account token for `system:serviceaccount:NS:SA` (audience `--audience`), minted by
//!   the cluster's wid-hosted issuer (`POST …/managedClusters/{c}/serviceAccountToken`, as
//!   `wid aks get-token`), in a file of mode 0600 in a private directory (mode 0700, under
//!   `$TMPDIR`) that is removed when `wid run` exits;
//! - the token refreshed as kubelet refreshes a projected token: at 80 % of its lifetime (and at
//!   most 24 h after it was issued), written to a temp file and renamed over the old one, so the
//!   SDK never reads a partial file; a failed refresh is retried with backoff (1 s doubling to
//!   60 s) while the old token stays in place;
//! - the webhook's four variables: `AZURE_CLIENT_ID`, `AZURE_TENANT_ID` (the profile's tenant),
//!   `AZURE_FEDERATED_TOKEN_FILE`, `AZURE_AUTHORITY_HOST` (the profile's server);
//! - trust for wid's CA when the profile names one: `SSL_CERT_FILE` and `REQUESTS_CA_BUNDLE` point
//!   at a bundle of wid's CA plus the system roots (they replace the default trust store, so the
//!   CA alone would cut the process off from every other HTTPS server), `NODE_EXTRA_CA_CERTS`
//!   (additive by design) at the CA file itself. A CA variable the user already set is kept, with
//!   a warning;
//! - the rest of the caller's environment, except the variables of azure-identity's
//!   `EnvironmentCredential` (`AZURE_CLIENT_SECRET`, `AZURE_CLIENT_CERTIFICATE_PATH`, …), which
//!   `DefaultAzureCredential` would try before the workload identity and which a pod does not
//!   have: they are removed, with a warning.
//!
//! The client id is `--client-id`, else discovered: the identity (in the subscription) one of
//! whose federated credentials admits the minted token, matched by the token service's own rules
//! (`wid_core::fic::find_match`: issuer byte for byte, subject or claims-matching expression,
//! audience). Exactly one must match; otherwise the error lists what was found and how to fix it.
//!
//! Signals: SIGINT, SIGTERM and SIGHUP are forwarded to the child (with `kill(1)`; the workspace
//! forbids `unsafe`). The child's pid is signalled only while it has not been reaped: tokio reaps
//! it only when its `wait` is polled, which never happens while a signal is being forwarded, so
//! the pid cannot have been reused. A SIGINT is not forwarded when the terminal has already
//! delivered it to the child (Ctrl-C goes to the whole foreground process group, which the child
//! shares), so the child sees one SIGINT per Ctrl-C, not two.
//!
//! Exit code: the child's; 128+N if it was killed by signal N (as shells report it); 127 if the
//! command was not found, 126 if it could not be executed; 128+N if signal N arrived before the
//! child started; otherwise wid's own codes (1 error, 2 usage, 3 not found).
//!
//! `--azure-hostnames` runs the command where Azure's host names (`login.microsoftonline.com`,
//! `management.azure.com`, `graph.microsoft.com`, the subscription's `NAME.vault.azure.net`) reach
//! the profile's server (`wid serve --azure-hostnames`, checked first) and wid's CA is trusted,
//! with AKS's `AZURE_AUTHORITY_HOST` (`https://login.microsoftonline.com/`) and the same other
//! variables: private user, mount and network namespaces, rootless where unprivileged user
//! namespaces exist; the network there is loopback only. See [`namespace`].
//!
//! `--print-env` prints `export`/`unset` lines for `eval "$(wid run … --print-env)"` instead of
//! running a command. No process stays behind to refresh the token, so it goes to a stable path
//! under the user's cache directory (`$XDG_CACHE_HOME` or `~/.cache`, `wid/run/…`) and the command
//! says when it expires. It cannot carry namespaces, so it refuses `--azure-hostnames` (exit 2).

use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;
use reqwest::Method;
use rustix::process::{Pid, Signal as UnixSignal, kill_process};
use serde_json::json;
use tokio::signal::unix::{Signal, SignalKind, signal};
use wid_core::fic::{ClaimsMatchingExpression, FederatedCredential, NoMatch, Presented, find_match};
use wid_core::profile::write_private;

use super::aks::{AKS_API, parse_duration_secs};
use super::identity::{DEFAULT_AUDIENCE, FIC_API, IDENTITY_API};
use super::require_str;
use crate::error::CliError;
use crate::http::jwt_claims;
use crate::output::shape::ResourceId;
use crate::output::value::Val;
use crate::{Console, Ctx, GlobalArgs};

pub mod namespace;

/// File name of the token, as in the pod (`…/azure-identity-token`).
const TOKEN_FILE: &str = "azure-identity-token";
/// File name of the CA bundle next to the token.
const BUNDLE_FILE: &str = "ca-bundle.pem";
/// kubelet refreshes a projected token when 80 % of its lifetime has passed …
const REFRESH_FRACTION: f64 = 0.8;
/// … or when it is older than 24 hours.
const MAX_TOKEN_AGE: Duration = Duration::from_secs(24 * 3600);
/// Never refresh more often than this (only reachable with the hidden `--refresh-at`).
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);
/// Longest wait between retries of a failed refresh.
const MAX_RETRY: Duration = Duration::from_secs(60);
/// Timers are re-armed at least this often against the wall clock, so a refresh due while the
/// machine was suspended (the monotonic clock stops) happens soon after it resumes.
const WALL_CLOCK_CHECK: Duration = Duration::from_secs(30);

/// azure-identity's `EnvironmentCredential` inputs: `DefaultAzureCredential` tries them before
/// the workload identity, and a pod does not have them.
const CONFLICTING: [&str; 5] = [
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
];

/// Where distributions keep the system's CA bundle (Go's `crypto/x509` list, first found wins).
const SYSTEM_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Name of the cluster (a wid-hosted issuer; see `wid aks create`).
    #[arg(short = 'n', long)]
    pub name: String,
    /// Name of resource group.
    #[arg(short = 'g', long)]
    pub resource_group: String,
    /// Namespace of the service account.
    #[arg(long)]
    pub namespace: String,
    /// Name of the service account.
    #[arg(long)]
    pub service_account: String,
    /// Client id of the identity (AZURE_CLIENT_ID). Default: the one identity with a federated
    /// credential for this service account.
    #[arg(long)]
    pub client_id: Option<String>,
    /// Audience of the token.
    #[arg(long, default_value = DEFAULT_AUDIENCE)]
    pub audience: String,
    /// Lifetime of each token, e.g. 1h, 90m (10m to 48h); refreshed at 80 % of it, as kubelet does.
    #[arg(long, value_parser = parse_duration_secs, default_value = "1h")]
    pub duration: u64,
    /// Print the environment as shell lines (eval "$(wid run … --print-env)") instead of running
    /// a command. The token is written under the cache directory and NOT refreshed.
    #[arg(long)]
    pub print_env: bool,
    /// Run the command where Azure's host names (login.microsoftonline.com, management.azure.com,
    /// graph.microsoft.com, NAME.vault.azure.net) reach this wid server and its CA is trusted, with
    /// AKS's AZURE_AUTHORITY_HOST: private user, mount and network namespaces (loopback only).
    /// Needs `wid serve --azure-hostnames`.
    #[arg(long)]
    pub azure_hostnames: bool,
    /// Refresh at this fraction of the token's lifetime (kubelet: 0.8). For tests.
    #[arg(long, hide = true, value_parser = parse_fraction, default_value_t = REFRESH_FRACTION)]
    pub refresh_at: f64,
    /// The command to run and its arguments (after `--`).
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "print_env",
        conflicts_with = "print_env"
    )]
    pub command: Vec<String>,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!("expected a fraction in (0, 1], got '{s}'")),
    }
}

/// What the token request names.
#[derive(Debug, Clone)]
struct TokenRequest {
    subscription: String,
    resource_group: String,
    cluster: String,
    namespace: String,
    service_account: String,
    audience: String,
    duration: u64,
}

/// A token and what its timing needs.
struct Minted {
    token: String,
    claims: serde_json::Map<String, serde_json::Value>,
    /// When this machine received it (refresh times count from here, so clock skew between this
    /// machine and the server does not matter).
    received: SystemTime,
    /// `exp - iat` of the token (the requested duration if the claims lack them).
    lifetime: Duration,
}

impl Minted {
    fn claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(serde_json::Value::as_str)
    }

    /// When kubelet would replace it.
    fn refresh_due(&self, fraction: f64) -> SystemTime {
        self.received + refresh_delay(self.lifetime, fraction)
    }

    fn expires(&self) -> String {
        rfc3339(self.received + self.lifetime)
    }
}

/// kubelet's rule (`pkg/kubelet/token/token_manager.go`: `requiresRefresh`): 80 % of the lifetime,
/// at most 24 h.
fn refresh_delay(lifetime: Duration, fraction: f64) -> Duration {
    lifetime.mul_f64(fraction).min(MAX_TOKEN_AGE).max(MIN_REFRESH_INTERVAL)
}

/// Backoff after `failures` failed refreshes in a row: 1 s, 2 s, 4 s, … 60 s.
fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_RETRY)
}

/// Runs the command (or prints the environment) and returns the exit code.
pub async fn run(a: RunArgs, ctx: &mut Ctx<'_>) -> Result<i32, CliError> {
    if a.print_env && a.azure_hostnames {
        return Err(CliError::usage(
            "--print-env cannot be combined with --azure-hostnames: Azure's names reach wid only inside the namespaces wid run creates for COMMAND, which a shell's environment cannot carry.",
        )
        .recommend("Run the command under wid run: wid run --azure-hostnames … -- COMMAND"));
    }
    let sandbox =
        if a.azure_hostnames { Some(namespace::probe(rustix::process::geteuid().is_root()).await?) } else { None };
    let profile = ctx.profile()?.clone();
    let req = TokenRequest {
        subscription: ctx.subscription_id()?,
        resource_group: a.resource_group.clone(),
        cluster: a.name.clone(),
        namespace: a.namespace.clone(),
        service_account: a.service_account.clone(),
        audience: a.audience.clone(),
        duration: a.duration,
    };
    require_hosted_issuer(ctx, &req).await?;
    let first = mint(ctx, &req).await?;
    let client_id = match &a.client_id {
        Some(id) => id.clone(),
        None => discover_client_id(ctx, &req, &first).await?,
    };
    let azure = match sandbox {
        Some(flags) => Some(AzureHosts { flags, vaults: azure_hostnames_preflight(ctx, &req).await? }),
        None => None,
    };
    let workload = Workload {
        client_id,
        tenant_id: profile.tenant_id.clone(),
        // AKS's value under Azure's names; the server's own URL otherwise.
        authority_host: if azure.is_some() {
            namespace::AZURE_AUTHORITY_HOST.to_owned()
        } else {
            profile.server.clone()
        },
        ca_file: profile.ca_cert_file.clone(),
    };
    if a.print_env {
        print_env(ctx, &req, &workload, &first)
    } else {
        execute(ctx, &a, &req, &workload, first, azure).await
    }
}

/// What `--azure-hostnames` decided before the command starts.
struct AzureHosts {
    /// `unshare(1)` flags that work on this machine.
    flags: &'static [&'static str],
    /// The subscription's vaults (their names go into the namespace's /etc/hosts).
    vaults: Vec<String>,
}

/// Checks that the server answers under Azure's names (instance discovery for Azure's sign-in host
/// succeeds only with `wid serve --azure-hostnames`) and lists the subscription's vaults.
async fn azure_hostnames_preflight(ctx: &mut Ctx<'_>, req: &TokenRequest) -> Result<Vec<String>, CliError> {
    let mut url = ctx.url(&["common", "discovery", "instance"], "1.1")?;
    url.query_pairs_mut()
        .append_pair("authorization_endpoint", "https://login.microsoftonline.com/common/oauth2/v2.0/authorize");
    let server = ctx.profile()?.server.clone();
    let resp = ctx.send(Method::GET, url, None).await?;
    if !resp.is_success() {
        return Err(CliError::failed(format!(
            "The server {server} does not answer under Azure's host names (instance discovery for login.microsoftonline.com: HTTP {}).",
            resp.status.as_u16()
        ))
        .recommend("Start it with 'wid serve --azure-hostnames' (its CA then names Azure's hosts too)."));
    }
    let url = ctx.url(
        &["subscriptions", &req.subscription, "providers", "Microsoft.KeyVault", "vaults"],
        super::keyvault::KEYVAULT_API,
    )?;
    let vaults = ctx.list(url).await?;
    Ok(vaults.iter().filter_map(|v| v.get_str("name").map(str::to_owned)).collect())
}

/// Refuses clusters whose issuer wid does not host: it holds no key to mint their tokens.
async fn require_hosted_issuer(ctx: &mut Ctx<'_>, req: &TokenRequest) -> Result<(), CliError> {
    let url = cluster_url(ctx, req, None)?;
    let cluster = ctx.get_json(url).await?;
    let hosted = cluster.path(&["properties", "issuerHosting", "hostedByWid"]).and_then(Val::as_bool);
    if hosted == Some(false) {
        let issuer = cluster.path(&["properties", "oidcIssuerProfile", "issuerURL"]).and_then(Val::as_str);
        return Err(CliError::failed(format!(
            "Cluster '{}' has an external issuer ({}): its service-account keys are the cluster's, not wid's, so wid cannot mint its tokens.",
            req.cluster,
            issuer.unwrap_or("?")
        ))
        .recommend("Run the workload on that cluster, or register a wid-hosted cluster (wid aks create -n NAME -g RG, without --issuer-url) and federate the identity with its issuer."));
    }
    Ok(())
}

fn cluster_url(ctx: &mut Ctx<'_>, req: &TokenRequest, action: Option<&str>) -> Result<reqwest::Url, CliError> {
    let mut segs = vec![
        "subscriptions",
        req.subscription.as_str(),
        "resourceGroups",
        req.resource_group.as_str(),
        "providers",
        "Microsoft.ContainerService",
        "managedClusters",
        req.cluster.as_str(),
    ];
    segs.extend(action);
    ctx.url(&segs, AKS_API)
}

/// Mints a token through the hosted issuer (as `wid aks get-token`).
async fn mint(ctx: &mut Ctx<'_>, req: &TokenRequest) -> Result<Minted, CliError> {
    let url = cluster_url(ctx, req, Some("serviceAccountToken"))?;
    let body = json!({
        "namespace": req.namespace,
        "serviceAccountName": req.service_account,
        "audiences": [req.audience],
        "expirationSeconds": req.duration,
    });
    let v = ctx.call(Method::POST, url, Some(body)).await?.json()?;
    let token = require_str(&v, "token")?.to_owned();
    let received = SystemTime::now();
    let claims = jwt_claims(&token)
        .ok_or_else(|| CliError::failed("The server returned a service-account token that is not a JWT"))?;
    let time = |name: &str| claims.get(name).and_then(serde_json::Value::as_i64);
    let lifetime = match (time("iat"), time("exp")) {
        (Some(iat), Some(exp)) if exp > iat => Duration::from_secs(exp.abs_diff(iat)),
        _ => Duration::from_secs(req.duration),
    };
    Ok(Minted { token, claims, received, lifetime })
}

fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    wid_core::clock::rfc3339(i64::try_from(secs).unwrap_or(0))
}

// ---------------------------------------------------------------------------------------------
// Client-id discovery

/// An identity one of whose credentials admits the token.
#[derive(Debug)]
struct Candidate {
    identity: String,
    resource_group: String,
    client_id: String,
    credential: String,
}

/// The one identity whose federated credentials admit `minted` (the token service's matching).
async fn discover_client_id(ctx: &mut Ctx<'_>, req: &TokenRequest, minted: &Minted) -> Result<String, CliError> {
    let issuer = minted.claim("iss").unwrap_or_default().to_owned();
    let subject = minted.claim("sub").unwrap_or_default().to_owned();
    let audiences: Vec<String> = match minted.claims.get("aud") {
        Some(serde_json::Value::String(a)) => vec![a.clone()],
        Some(serde_json::Value::Array(list)) => list.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    let aud_refs: Vec<&str> = audiences.iter().map(String::as_str).collect();
    let presented = Presented { issuer: &issuer, subject: &subject, audiences: &aud_refs, claims: &minted.claims };

    let url = ctx.url(
        &["subscriptions", &req.subscription, "providers", "Microsoft.ManagedIdentity", "userAssignedIdentities"],
        IDENTITY_API,
    )?;
    let identities = ctx.list(url).await.map_err(cannot_discover)?;
    let mut found = Vec::new();
    let mut near = Vec::new();
    for ident in &identities {
        let Some(id) = ident.get_str("id") else { continue };
        let name = ident.get_str("name").unwrap_or_default().to_owned();
        let resource_group = ResourceId::parse(id).and_then(|r| r.resource_group).unwrap_or_default();
        let client_id = ident.path(&["properties", "clientId"]).and_then(Val::as_str).unwrap_or_default().to_owned();
        let mut segs: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
        segs.push("federatedIdentityCredentials");
        let url = ctx.url(&segs, FIC_API)?;
        let creds: Vec<FederatedCredential> =
            ctx.list(url).await.map_err(cannot_discover)?.iter().filter_map(fic_from_arm).collect();
        let closest = match find_match(&creds, &presented) {
            Ok(c) => {
                found.push(Candidate { identity: name, resource_group, client_id, credential: c.name.clone() });
                continue;
            }
            Err(NoMatch::NoCredentials) => None,
            // Another issuer is only worth mentioning when it differs by a slash, case or spaces.
            Err(NoMatch::Issuer { closest }) => {
                closest.filter(|c| creds.iter().any(|f| f.name == c.name && loosely_equal(&f.issuer, &issuer)))
            }
            Err(NoMatch::Subject { closest, .. } | NoMatch::Audience { closest }) => closest,
        };
        if let Some(c) = closest {
            near.push(format!(
                "  identity '{name}' (resource group '{resource_group}'), credential '{}': {}",
                c.name, c.reason
            ));
        }
    }

    let workload = format!(
        "service account '{}/{}' of cluster '{}' (issuer '{issuer}', subject '{subject}', audience '{}')",
        req.namespace,
        req.service_account,
        req.cluster,
        audiences.join("', '")
    );
    match found.len() {
        1 => {
            let c = found.remove(0);
            if c.client_id.is_empty() {
                return Err(CliError::failed(format!("Identity '{}' has no clientId; pass --client-id.", c.identity)));
            }
            if ctx.global.verbose {
                let line = format!(
                    "INFO: identity '{}' (resource group '{}'), credential '{}': client id {}",
                    c.identity, c.resource_group, c.credential, c.client_id
                );
                ctx.notice(&line);
            }
            Ok(c.client_id)
        }
        0 => {
            let mut e = CliError::failed(format!(
                "No identity has a federated credential for {workload}; looked at {} identities in subscription '{}'.",
                identities.len(),
                req.subscription
            ));
            if !near.is_empty() {
                e = e.recommend("Close, but not matching:");
                let shown = near.len().min(10);
                for line in near.drain(..shown) {
                    e = e.recommend(line);
                }
                if !near.is_empty() {
                    e = e.recommend(format!("  … and {} more", near.len()));
                }
            }
            Err(e
                .recommend("Federate an identity with this service account, as for a pod:")
                .recommend(format!(
                    "  wid identity federated-credential create --name NAME --identity-name IDENTITY --resource-group RG --issuer {} --subject {} --audience {}",
                    sh_quote_if_needed(&issuer),
                    sh_quote_if_needed(&subject),
                    sh_quote_if_needed(audiences.first().map_or(DEFAULT_AUDIENCE, String::as_str))
                ))
                .recommend("or name the identity with --client-id."))
        }
        n => {
            let mut e = CliError::failed(format!(
                "{n} identities have a federated credential for {workload}; choose one with --client-id:"
            ));
            for c in &found {
                e = e.recommend(format!(
                    "  --client-id {}  (identity '{}' in resource group '{}', credential '{}')",
                    c.client_id, c.identity, c.resource_group, c.credential
                ));
            }
            Err(e)
        }
    }
}

fn cannot_discover(e: CliError) -> CliError {
    let mut out = CliError {
        kind: e.kind,
        message: format!("Cannot find the identity to use (listing identities failed): {}", e.message),
        recommendations: e.recommendations,
    };
    out.recommendations
        .push("Pass --client-id (wid identity show -n NAME -g RG --query clientId -o tsv gives it).".to_owned());
    out
}

/// A federated credential from its ARM JSON.
fn fic_from_arm(v: &Val) -> Option<FederatedCredential> {
    let p = v.get("properties")?;
    let cme = p.get("claimsMatchingExpression").filter(|e| !e.is_null()).and_then(|e| {
        Some(ClaimsMatchingExpression {
            value: e.get_str("value")?.to_owned(),
            language_version: e.get("languageVersion")?.to_json().as_i64()?,
        })
    });
    Some(FederatedCredential {
        name: v.get_str("name")?.to_owned(),
        issuer: p.get_str("issuer")?.to_owned(),
        subject: p.get_str("subject").map(str::to_owned),
        claims_matching_expression: cme,
        audiences: p
            .get("audiences")
            .and_then(Val::as_list)
            .map(|l| l.iter().filter_map(|a| a.as_str().map(str::to_owned)).collect())
            .unwrap_or_default(),
        description: None,
    })
}

/// Equal but for surrounding spaces, a trailing `/` or letter case.
fn loosely_equal(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    norm(a) == norm(b)
}

// ---------------------------------------------------------------------------------------------
// The environment

/// Who the workload is and where it finds its server.
struct Workload {
    client_id: String,
    tenant_id: String,
    authority_host: String,
    ca_file: Option<PathBuf>,
}

/// The files a workload's variables point at.
struct Files<'a> {
    token: &'a Path,
    /// wid's CA plus the system roots (for `SSL_CERT_FILE`, `REQUESTS_CA_BUNDLE`), if there is a CA.
    bundle: Option<&'a Path>,
    /// The system bundle `--azure-hostnames` mounts `bundle` over in the command's namespace: a CA
    /// variable of the caller's that names it trusts wid there.
    replaced: Option<&'a Path>,
}

/// How the child's environment differs from the caller's.
#[derive(Debug, Default, PartialEq, Eq)]
struct EnvPlan {
    set: Vec<(&'static str, String)>,
    unset: Vec<&'static str>,
    warnings: Vec<String>,
}

impl EnvPlan {
    /// The caller's environment with the plan applied.
    fn apply(&self, user: &HashMap<String, String>) -> HashMap<String, String> {
        let mut env = user.clone();
        for name in &self.unset {
            env.remove(*name);
        }
        for (name, value) in &self.set {
            env.insert((*name).to_owned(), value.clone());
        }
        env
    }

    /// `export`/`unset` lines for a POSIX shell (and fish, which has `export` too).
    fn shell_lines(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.set {
            out.push_str(&format!("export {name}={}\n", sh_quote(value)));
        }
        for name in &self.unset {
            out.push_str(&format!("unset {name}\n"));
        }
        out
    }
}

/// The variables a pod would have, on top of `user` (the caller's environment).
fn plan_env(user: &HashMap<String, String>, w: &Workload, files: &Files<'_>) -> EnvPlan {
    let mut plan = EnvPlan::default();
    let token = files.token.display().to_string();
    let identity = [
        ("AZURE_CLIENT_ID", w.client_id.as_str()),
        ("AZURE_TENANT_ID", w.tenant_id.as_str()),
        ("AZURE_FEDERATED_TOKEN_FILE", token.as_str()),
        ("AZURE_AUTHORITY_HOST", w.authority_host.as_str()),
    ];
    for (name, value) in identity {
        if let Some(old) = user.get(name).filter(|v| !v.is_empty() && v.as_str() != value) {
            plan.warnings.push(format!("{name} is '{value}' for this workload, not '{old}' as in your environment."));
        }
        plan.set.push((name, value.to_owned()));
    }
    for name in CONFLICTING {
        if let Some(v) = user.get(name) {
            if !v.is_empty() {
                plan.warnings.push(format!(
                    "{name} is removed for this workload: DefaultAzureCredential would use it before the workload identity (a pod has no such variable)."
                ));
            }
            plan.unset.push(name);
        }
    }
    if let Some(ca) = &w.ca_file {
        let ca = ca.display().to_string();
        let bundle = files.bundle.map_or_else(|| ca.clone(), |b| b.display().to_string());
        for (name, value) in [("SSL_CERT_FILE", &bundle), ("REQUESTS_CA_BUNDLE", &bundle), ("NODE_EXTRA_CA_CERTS", &ca)]
        {
            match user.get(name).filter(|v| !v.is_empty()) {
                Some(theirs) if files.replaced.is_some_and(|r| same_file(r, Path::new(theirs))) => {}
                Some(theirs) => plan.warnings.push(format!(
                    "{name} is already set ('{theirs}'); keeping it, so the workload trusts wid's server only if that file includes wid's CA ({ca})."
                )),
                None => plan.set.push((name, value.clone())),
            }
        }
    }
    plan
}

/// Whether two paths name one file (the same path, or after resolving links).
fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// wid's CA followed by the system's roots (if a system bundle is found).
fn trust_bundle(ca: &Path) -> Result<Vec<u8>, CliError> {
    let mut out = std::fs::read(ca).map_err(|e| {
        CliError::failed(format!("Cannot read the CA file '{}' named by the profile: {e}", ca.display()))
    })?;
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    if let Some(system) = SYSTEM_BUNDLES.iter().find_map(|p| std::fs::read(p).ok()) {
        out.extend_from_slice(&system);
    }
    Ok(out)
}

/// Writes the token (and the CA bundle) into `dir`; returns their paths.
fn write_files(dir: &Path, token: &str, ca: Option<&Path>) -> Result<(PathBuf, Option<PathBuf>), CliError> {
    let token_path = dir.join(TOKEN_FILE);
    write_private(&token_path, token.as_bytes())
        .map_err(|e| CliError::failed(format!("Cannot write the token file '{}': {e}", token_path.display())))?;
    let bundle = match ca {
        Some(ca) => {
            let path = dir.join(BUNDLE_FILE);
            write_private(&path, &trust_bundle(ca)?)
                .map_err(|e| CliError::failed(format!("Cannot write '{}': {e}", path.display())))?;
            Some(path)
        }
        None => None,
    };
    Ok((token_path, bundle))
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn sh_quote_if_needed(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain { s.to_owned() } else { sh_quote(s) }
}

// ---------------------------------------------------------------------------------------------
// --print-env

fn print_env(ctx: &mut Ctx<'_>, req: &TokenRequest, w: &Workload, minted: &Minted) -> Result<i32, CliError> {
    let dir = stable_dir(ctx.env, req)?;
    let (token, bundle) = write_files(&dir, &minted.token, w.ca_file.as_deref())?;
    let plan = plan_env(ctx.env, w, &Files { token: &token, bundle: bundle.as_deref(), replaced: None });
    for warning in &plan.warnings {
        ctx.warn(warning);
    }
    let _ = ctx.out.write_all(plan.shell_lines().as_bytes());
    let _ = ctx.out.flush();
    ctx.warn(&format!(
        "The token in {} expires at {} and is not refreshed (no process stays behind to do it); run this again before then, or use 'wid run … -- COMMAND', which refreshes it.",
        token.display(),
        minted.expires()
    ));
    Ok(0)
}

/// `CACHE/wid/run/{subscription}/{rg}/{cluster}/{namespace}/{service account}` (names as ARM
/// compares them: resource group and cluster in lower case).
fn stable_dir(env: &HashMap<String, String>, req: &TokenRequest) -> Result<PathBuf, CliError> {
    let cache = match env.get("XDG_CACHE_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(p) => p,
        None => match env.get("HOME").filter(|h| !h.is_empty()) {
            Some(home) => Path::new(home).join(".cache"),
            None => {
                return Err(CliError::failed(
                    "Set HOME or XDG_CACHE_HOME: --print-env keeps the token under the cache directory.",
                ));
            }
        },
    };
    let parts = [
        req.subscription.clone(),
        req.resource_group.to_ascii_lowercase(),
        req.cluster.to_ascii_lowercase(),
        req.namespace.clone(),
        req.service_account.clone(),
    ];
    let mut dir = cache.join("wid").join("run");
    for part in &parts {
        if part.is_empty() || part == "." || part == ".." || part.contains(['/', '\0']) {
            return Err(CliError::failed(format!("'{part}' cannot be part of a path")));
        }
        dir.push(part);
    }
    Ok(dir)
}

// ---------------------------------------------------------------------------------------------
// Running the command

/// A private directory (mode 0700) removed when dropped.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create(env: &HashMap<String, String>) -> Result<Self, CliError> {
        let parent = env.get("TMPDIR").map(PathBuf::from).filter(|p| p.is_absolute()).unwrap_or_else(|| "/tmp".into());
        let path = parent.join(format!("wid-run-{}", uuid::Uuid::new_v4().simple()));
        // `create` (not `recursive`) fails if the name exists, so nobody can have prepared it.
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| {
                CliError::failed(format!("Cannot create a private directory in '{}': {e}", parent.display()))
            })?;
        Ok(PrivateDir(path))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The signals forwarded to the child, caught from before the child starts.
struct Signals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Self, CliError> {
        let catch = |kind: SignalKind| {
            signal(kind).map_err(|e| CliError::failed(format!("Cannot install a signal handler: {e}")))
        };
        Ok(Signals {
            int: catch(SignalKind::interrupt())?,
            term: catch(SignalKind::terminate())?,
            hup: catch(SignalKind::hangup())?,
        })
    }

    /// A signal that has already arrived, without waiting.
    async fn pending(&mut self) -> Option<Sig> {
        tokio::select! {
            biased;
            _ = self.int.recv() => Some(Sig::Int),
            _ = self.term.recv() => Some(Sig::Term),
            _ = self.hup.recv() => Some(Sig::Hup),
            () = std::future::ready(()) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sig {
    Int,
    Term,
    Hup,
}

impl Sig {
    fn name(self) -> &'static str {
        match self {
            Sig::Int => "INT",
            Sig::Term => "TERM",
            Sig::Hup => "HUP",
        }
    }

    fn number(self) -> i32 {
        self.signal().as_raw()
    }

    fn signal(self) -> UnixSignal {
        match self {
            Sig::Int => UnixSignal::INT,
            Sig::Term => UnixSignal::TERM,
            Sig::Hup => UnixSignal::HUP,
        }
    }
}

async fn execute(
    ctx: &mut Ctx<'_>,
    a: &RunArgs,
    req: &TokenRequest,
    w: &Workload,
    first: Minted,
    azure: Option<AzureHosts>,
) -> Result<i32, CliError> {
    let Some((program, args)) = a.command.split_first() else {
        return Err(CliError::usage("the following arguments are required: COMMAND"));
    };
    let mut signals = Signals::install()?;
    let dir = PrivateDir::create(ctx.env)?;
    let (token_path, bundle) = write_files(&dir.0, &first.token, w.ca_file.as_deref())?;
    let replaced = azure.as_ref().and(bundle.as_ref()).and_then(|_| namespace::system_bundle());
    let files = Files { token: &token_path, bundle: bundle.as_deref(), replaced: replaced.as_deref() };
    let plan = plan_env(ctx.env, w, &files);
    for warning in &plan.warnings {
        ctx.warn(warning);
    }
    let env = plan.apply(ctx.env);

    // A signal that came during set-up stops here, as it would have stopped the child.
    if let Some(sig) = signals.pending().await {
        return Ok(128 + sig.number());
    }
    let sandbox = match &azure {
        Some(az) => {
            let server = ctx.profile()?.server.clone();
            let layout = namespace::Layout {
                dir: &dir.0,
                server: &server,
                vaults: &az.vaults,
                bundle: bundle.as_deref(),
                flags: az.flags,
                pins: &ctx.resolve_overrides()?,
            };
            Some(namespace::Sandbox::prepare(layout).await?)
        }
        None => None,
    };
    let mut command = match &sandbox {
        Some(sandbox) => sandbox.command(program, args)?,
        None => {
            let mut c = tokio::process::Command::new(program);
            c.args(args);
            c
        }
    };
    let mut child = match command.env_clear().envs(&env).spawn() {
        Ok(child) => child,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            let _ = writeln!(ctx.err, "ERROR: cannot run '{program}': {e}");
            return Ok(code);
        }
    };

    // With --azure-hostnames: the listeners made inside the namespaces, served until the end.
    let _forwarders = match &sandbox {
        Some(sandbox) => {
            let pid = child.id().unwrap_or_default();
            let received = tokio::select! {
                received = sandbox.receive(pid) => received,
                status = child.wait() => match status {
                    // Killed (a Ctrl-C during set-up, say) as the command would have been.
                    Ok(status) if status.signal().is_some() => return Ok(status.signal().map_or(1, |s| 128 + s)),
                    Ok(status) => Err(CliError::failed(format!(
                        "Setting up the command's namespaces failed: unshare ended ({status}) before the set-up was done (see its message above)."
                    ))),
                    Err(e) => Err(CliError::failed(format!("Waiting for the command failed: {e}"))),
                },
            };
            match received.and_then(|listeners| sandbox.forward(listeners)) {
                Ok(forwarders) => Some(forwarders),
                Err(e) => {
                    let _ = child.start_kill();
                    let _ = child.wait().await;
                    return Err(e);
                }
            }
        }
        None => None,
    };

    let user_env: &HashMap<String, String> = ctx.env;
    let mut current = first;
    let mut failures = 0u32;
    let mut refresh =
        Box::pin(refresh_token(user_env, ctx.global.clone(), req.clone(), current.refresh_due(a.refresh_at)));
    let status = loop {
        let forward = tokio::select! {
            status = child.wait() => break status,
            _ = signals.int.recv() => Sig::Int,
            _ = signals.term.recv() => Sig::Term,
            _ = signals.hup.recv() => Sig::Hup,
            (result, log) = &mut refresh => {
                let _ = ctx.err.write_all(&log);
                let next = match result.and_then(|m| {
                    write_private(&token_path, m.token.as_bytes())
                        .map_err(|e| CliError::failed(format!("cannot write '{}': {e}", token_path.display())))?;
                    Ok(m)
                }) {
                    Ok(m) => {
                        current = m;
                        failures = 0;
                        current.refresh_due(a.refresh_at)
                    }
                    Err(e) => {
                        failures += 1;
                        let delay = retry_delay(failures);
                        // The first line: az's ARM errors repeat code and message below it.
                        let reason = e.message.lines().next().unwrap_or_default();
                        ctx.warn(&format!(
                            "Could not refresh the service-account token: {reason}; retrying in {} s (the current token expires at {}).",
                            delay.as_secs(),
                            current.expires()
                        ));
                        SystemTime::now() + delay
                    }
                };
                refresh = Box::pin(refresh_token(user_env, ctx.global.clone(), req.clone(), next));
                continue;
            }
        };
        // Not reaped yet (its wait is only polled above), so the pid is still the child's.
        let Some(pid) = child.id() else { continue };
        if forward == Sig::Int && terminal_signalled_child(pid) {
            continue;
        }
        let sent = i32::try_from(pid).ok().and_then(Pid::from_raw).map(|p| kill_process(p, forward.signal()));
        if !matches!(sent, Some(Ok(()))) {
            ctx.warn(&format!("Could not forward SIG{} to the command (pid {pid}).", forward.name()));
        }
    };
    drop(refresh);
    drop(dir);
    let status = status.map_err(|e| CliError::failed(format!("Waiting for the command failed: {e}")))?;
    Ok(status.code().unwrap_or_else(|| status.signal().map_or(1, |s| 128 + s)))
}

/// Mints a fresh token at `at` with a context of its own (a fresh management token too: the
/// process may outlive the first one).
async fn refresh_token(
    env: &HashMap<String, String>,
    global: GlobalArgs,
    req: TokenRequest,
    at: SystemTime,
) -> (Result<Minted, CliError>, Vec<u8>) {
    sleep_until(at).await;
    let mut out = std::io::sink();
    let mut err = Vec::new();
    let mut console = Console::detached();
    let result = {
        let mut ctx = Ctx::new(env, global, &mut out, &mut err, &mut console);
        let result = mint(&mut ctx, &req).await;
        ctx.flush_debug();
        result
    };
    (result, err)
}

/// Sleeps until the wall clock reaches `at`, checking it at least every 30 s.
async fn sleep_until(at: SystemTime) {
    while let Ok(left) = at.duration_since(SystemTime::now()) {
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(WALL_CLOCK_CHECK)).await;
    }
}

/// Whether a Ctrl-C at the terminal has reached the child already: we are in the foreground process
/// group of our controlling terminal and the child is in our group (no terminal: no, forward).
fn terminal_signalled_child(child: u32) -> bool {
    let Some(child) = i32::try_from(child).ok().and_then(Pid::from_raw) else { return false };
    let Ok(tty) = rustix::fs::open(
        "/dev/tty",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NOCTTY,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    let ours = rustix::process::getpgrp();
    rustix::termios::tcgetpgrp(&tty).is_ok_and(|fg| fg == ours)
        && rustix::process::getpgid(Some(child)).is_ok_and(|g| g == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(ca: Option<&str>) -> Workload {
        Workload {
            client_id: "cid".into(),
            tenant_id: "tid".into(),
            authority_host: "https://localhost:8443".into(),
            ca_file: ca.map(PathBuf::from),
        }
    }

    fn user(vars: &[(&str, &str)]) -> HashMap<String, String> {
        vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn refresh_like_kubelet() {
        assert_eq!(refresh_delay(Duration::from_secs(3600), REFRESH_FRACTION), Duration::from_secs(2880));
        assert_eq!(refresh_delay(Duration::from_secs(48 * 3600), REFRESH_FRACTION), MAX_TOKEN_AGE);
        assert_eq!(refresh_delay(Duration::from_secs(600), 0.0001), MIN_REFRESH_INTERVAL);
        let delays: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert!(parse_fraction("0.8").is_ok());
        assert!(parse_fraction("0").is_err() && parse_fraction("1.5").is_err() && parse_fraction("x").is_err());
    }

    #[test]
    fn the_pod_variables_and_ca_trust() {
        let files = Files {
            token: Path::new("/t/azure-identity-token"),
            bundle: Some(Path::new("/t/ca-bundle.pem")),
            replaced: None,
        };
        let plan = plan_env(&user(&[("PATH", "/bin")]), &workload(Some("/d/ca.pem")), &files);
        assert_eq!(
            plan.set,
            vec![
                ("AZURE_CLIENT_ID", "cid".to_owned()),
                ("AZURE_TENANT_ID", "tid".to_owned()),
                ("AZURE_FEDERATED_TOKEN_FILE", "/t/azure-identity-token".to_owned()),
                ("AZURE_AUTHORITY_HOST", "https://localhost:8443".to_owned()),
                ("SSL_CERT_FILE", "/t/ca-bundle.pem".to_owned()),
                ("REQUESTS_CA_BUNDLE", "/t/ca-bundle.pem".to_owned()),
                ("NODE_EXTRA_CA_CERTS", "/d/ca.pem".to_owned()),
            ]
        );
        assert!(plan.unset.is_empty() && plan.warnings.is_empty());
        let env = plan.apply(&user(&[("PATH", "/bin")]));
        assert_eq!(env.get("PATH").map(String::as_str), Some("/bin"));
        assert_eq!(env.len(), 8);
        // No CA in the profile (a publicly trusted server): no CA variables.
        let plan = plan_env(
            &HashMap::new(),
            &workload(None),
            &Files { token: Path::new("/t/x"), bundle: None, replaced: None },
        );
        assert_eq!(plan.set.len(), 4);
    }

    #[test]
    fn user_settings_kept_or_removed_with_warnings() {
        let files = Files { token: Path::new("/t/tok"), bundle: Some(Path::new("/t/b.pem")), replaced: None };
        let u = user(&[
            ("SSL_CERT_FILE", "/mine.pem"),
            ("NODE_EXTRA_CA_CERTS", ""),
            ("AZURE_CLIENT_SECRET", "s3cret"),
            ("AZURE_USERNAME", ""),
            ("AZURE_CLIENT_ID", "other"),
            ("AZURE_TENANT_ID", "tid"),
        ]);
        let plan = plan_env(&u, &workload(Some("/d/ca.pem")), &files);
        let set: HashMap<_, _> = plan.set.iter().cloned().collect();
        assert!(!set.contains_key("SSL_CERT_FILE"), "the user's SSL_CERT_FILE is kept");
        assert_eq!(set["NODE_EXTRA_CA_CERTS"], "/d/ca.pem", "an empty value counts as unset");
        assert_eq!(set["AZURE_CLIENT_ID"], "cid");
        assert_eq!(plan.unset, vec!["AZURE_CLIENT_SECRET", "AZURE_USERNAME"]);
        assert_eq!(plan.warnings.len(), 3, "{:?}", plan.warnings);
        assert!(plan.warnings.iter().any(|w| w.starts_with("AZURE_CLIENT_ID is 'cid'")));
        assert!(plan.warnings.iter().any(|w| w.starts_with("AZURE_CLIENT_SECRET is removed")));
        assert!(plan.warnings.iter().any(|w| w.starts_with("SSL_CERT_FILE is already set ('/mine.pem')")));
        assert!(plan.warnings.iter().all(|w| !w.contains("s3cret")), "never echo a secret");
        let env = plan.apply(&u);
        assert!(!env.contains_key("AZURE_CLIENT_SECRET"));
        assert_eq!(env["SSL_CERT_FILE"], "/mine.pem");

        // --azure-hostnames mounts the bundle over the system's: a variable naming that file is
        // kept without a warning, since it trusts wid's CA in the namespace.
        let files = Files { replaced: Some(Path::new("/mine.pem")), ..files };
        let plan = plan_env(&user(&[("SSL_CERT_FILE", "/mine.pem")]), &workload(Some("/d/ca.pem")), &files);
        assert!(plan.warnings.is_empty(), "{:?}", plan.warnings);
        assert!(plan.set.iter().all(|(name, _)| *name != "SSL_CERT_FILE"));
    }

    #[test]
    fn shell_lines_quote_everything() {
        let plan = EnvPlan {
            set: vec![("A", "it's $HOME".into()), ("B", "plain".into())],
            unset: vec!["C"],
            warnings: vec![],
        };
        assert_eq!(plan.shell_lines(), "export A='it'\\''s $HOME'\nexport B='plain'\nunset C\n");
        assert_eq!(sh_quote_if_needed("system:serviceaccount:ns:sa"), "system:serviceaccount:ns:sa");
        assert_eq!(sh_quote_if_needed("a b"), "'a b'");
    }

    #[test]
    fn stable_dir_under_the_cache() {
        let req = TokenRequest {
            subscription: "sub".into(),
            resource_group: "RG1".into(),
            cluster: "C1".into(),
            namespace: "ns".into(),
            service_account: "sa".into(),
            audience: DEFAULT_AUDIENCE.into(),
            duration: 3600,
        };
        let dir = stable_dir(&user(&[("HOME", "/home/u")]), &req).unwrap();
        assert_eq!(dir, Path::new("/home/u/.cache/wid/run/sub/rg1/c1/ns/sa"));
        let dir = stable_dir(&user(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/c")]), &req).unwrap();
        assert!(dir.starts_with("/c/wid/run"));
        assert!(stable_dir(&HashMap::new(), &req).is_err());
        let bad = TokenRequest { namespace: "..".into(), ..req };
        assert!(stable_dir(&user(&[("HOME", "/h")]), &bad).is_err());
    }

    #[test]
    fn a_child_in_another_process_group_was_not_signalled_by_the_terminal() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep").arg("5").process_group(0).spawn().unwrap();
        assert!(!terminal_signalled_child(child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!terminal_signalled_child(0), "pid 0 names no child");
    }

    #[test]
    fn arm_credentials_parse() {
        let v = Val::parse(r#"{"name":"f1","properties":{"issuer":"https://i/","subject":"system:serviceaccount:a:b","audiences":["api://AzureADTokenExchange"]}}"#).unwrap();
        let f = fic_from_arm(&v).unwrap();
        assert_eq!((f.name.as_str(), f.subject.as_deref()), ("f1", Some("system:serviceaccount:a:b")));
        let v = Val::parse(r#"{"name":"f2","properties":{"issuer":"https://i/","claimsMatchingExpression":{"value":"claims['sub'] matches 'system:serviceaccount:a:*'","languageVersion":1},"audiences":["x"]}}"#).unwrap();
        let f = fic_from_arm(&v).unwrap();
        assert_eq!(f.claims_matching_expression.unwrap().language_version, 1);
        assert!(loosely_equal("https://I/x/", "https://i/x"));
        assert!(!loosely_equal("https://i/x/", "https://i/y/"));
    }
}
