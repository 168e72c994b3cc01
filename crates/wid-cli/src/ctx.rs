//! The per-invocation context of a client command: environment, global arguments, terminal,
//! the profile, the authenticated management-API client and Key Vault data-plane clients.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};

use super::error::CliError;
use super::http::{self, Body, Credential, Http, Response};
use super::profile::{self, Profile, ProfileError};
use super::{Console, GlobalArgs};
use crate::output::value::Val;

/// Longest time an ARM long-running operation is awaited.
const LRO_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Context handed to every client command.
pub struct Ctx<'a> {
    pub env: &'a HashMap<String, String>,
    pub global: GlobalArgs,
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub console: &'a mut Console,
    profile: Option<(PathBuf, Profile)>,
    http: Option<Http>,
    token: Option<String>,
    /// Tokens for other resources (the Key Vault data plane), by resource.
    tokens: HashMap<String, String>,
    /// Data-plane clients, by origin (`https://{vault}.vault.HOST[:PORT]`).
    vault_http: HashMap<String, Http>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        env: &'a HashMap<String, String>,
        global: GlobalArgs,
        out: &'a mut dyn Write,
        err: &'a mut dyn Write,
        console: &'a mut Console,
    ) -> Self {
        Ctx {
            env,
            global,
            out,
            err,
            console,
            profile: None,
            http: None,
            token: None,
            tokens: HashMap::new(),
            vault_http: HashMap::new(),
        }
    }

    /// Prints `WARNING: ...` unless `--only-show-errors`.
    pub fn warn(&mut self, msg: &str) {
        if !self.global.only_show_errors {
            let _ = writeln!(self.err, "WARNING: {msg}");
        }
    }

    /// Prints a message to stderr as is (knack's deprecation notices) unless `--only-show-errors`.
    pub fn notice(&mut self, msg: &str) {
        if !self.global.only_show_errors {
            let _ = writeln!(self.err, "{msg}");
        }
    }

    /// Writes pending `--debug` lines to stderr.
    pub fn flush_debug(&mut self) {
        let mut lines = Vec::new();
        if let Some(h) = &mut self.http {
            lines.extend(h.take_log());
        }
        for h in self.vault_http.values_mut() {
            lines.extend(h.take_log());
        }
        for line in lines {
            let _ = writeln!(self.err, "DEBUG: {line}");
        }
    }

    /// Where the profile lives.
    pub fn profile_path(&self) -> Result<PathBuf, CliError> {
        profile::default_path(self.env).map_err(|e| CliError::failed(e.to_string()))
    }

    /// The profile, loaded on first use.
    pub fn profile(&mut self) -> Result<&Profile, CliError> {
        if self.profile.is_none() {
            let path = self.profile_path()?;
            let p = Profile::load(&path).map_err(|e| match e {
                ProfileError::NotFound(p) => CliError::failed("Please run 'wid login' to setup account.")
                    .recommend(format!(
                        "No profile at {} (set WID_CONFIG, run 'wid login', or start 'wid serve' on this machine, which writes it).",
                        p.display()
                    )),
                other => CliError::failed(other.to_string()),
            })?;
            self.profile = Some((path, p));
        }
        match &self.profile {
            Some((_, p)) => Ok(p),
            None => Err(CliError::failed("Please run 'wid login' to setup account.")),
        }
    }

    /// The subscription id to use: `--subscription` (the profile's id or name, or another GUID),
    /// else the profile's.
    pub fn subscription_id(&mut self) -> Result<String, CliError> {
        let requested = self.global.subscription.clone();
        let p = self.profile()?;
        match requested {
            None => Ok(p.subscription_id.clone()),
            Some(s)
                if s.eq_ignore_ascii_case(&p.subscription_id)
                    || (!p.subscription_name.is_empty() && s.eq_ignore_ascii_case(&p.subscription_name)) =>
            {
                Ok(p.subscription_id.clone())
            }
            Some(s) if is_guid(&s) => Ok(s),
            Some(s) => Err(CliError::failed(format!(
                "Subscription '{s}' not found. Check the spelling and casing and try again."
            ))),
        }
    }

    fn http(&mut self) -> Result<&mut Http, CliError> {
        if self.http.is_none() {
            let debug = self.global.debug;
            let p = self.profile()?.clone();
            let overrides = self.resolve_overrides()?;
            self.http = Some(Http::with_resolve(&p.server, p.ca_cert_file.as_deref(), debug, &overrides)?);
        }
        self.http.as_mut().ok_or_else(|| CliError::failed("HTTP client unavailable"))
    }

    /// Host pins from `WID_RESOLVE` (see [`http`]).
    pub(crate) fn resolve_overrides(&self) -> Result<HashMap<String, std::net::IpAddr>, CliError> {
        match self.env.get(http::RESOLVE_ENV) {
            Some(spec) => http::parse_resolve(spec),
            None => Ok(HashMap::new()),
        }
    }

    /// A management-API URL on the profile's server.
    pub fn url(&mut self, segments: &[&str], api_version: &str) -> Result<Url, CliError> {
        self.http()?.url(segments, &[("api-version", api_version)])
    }

    /// A management token for the CLI's principal (client credentials), cached per invocation.
    pub async fn token(&mut self) -> Result<String, CliError> {
        if let Some(t) = &self.token {
            return Ok(t.clone());
        }
        let p = self.profile()?.clone();
        let credential = match (&p.client_secret, &p.client_assertion) {
            (Some(s), _) => Credential::Secret(s),
            (None, Some(a)) => Credential::Assertion(a),
            (None, None) => {
                return Err(CliError::failed(
                    "The profile has no credential (clientSecret or clientAssertion). Run 'wid login'.",
                ));
            }
        };
        let result =
            http::acquire_token(self.http()?, &p.tenant_id, &p.client_id, &credential, p.management_audience()).await;
        self.flush_debug();
        let info = result?;
        self.token = Some(info.access_token.clone());
        Ok(info.access_token)
    }

    /// A token for another resource of the server (e.g. the Key Vault data plane,
    /// `https://vault.HOST[:PORT]`), cached per invocation.
    pub async fn token_for(&mut self, resource: &str) -> Result<String, CliError> {
        if let Some(t) = self.tokens.get(resource) {
            return Ok(t.clone());
        }
        let p = self.profile()?.clone();
        let credential = match (&p.client_secret, &p.client_assertion) {
            (Some(s), _) => Credential::Secret(s),
            (None, Some(a)) => Credential::Assertion(a),
            (None, None) => {
                return Err(CliError::failed(
                    "The profile has no credential (clientSecret or clientAssertion). Run 'wid login'.",
                ));
            }
        };
        let result = http::acquire_token(self.http()?, &p.tenant_id, &p.client_id, &credential, resource).await;
        self.flush_debug();
        let info = result?;
        self.tokens.insert(resource.to_owned(), info.access_token.clone());
        Ok(info.access_token)
    }

    /// Sends a data-plane request to a vault (`url` on `https://{vault}.vault.HOST[:PORT]`) with a
    /// token for `resource`, and returns the response whatever its status.
    pub async fn vault_send(
        &mut self,
        method: Method,
        url: Url,
        resource: &str,
        body: Option<serde_json::Value>,
    ) -> Result<Response, CliError> {
        let token = self.token_for(resource).await?;
        let origin = url.origin().ascii_serialization();
        if !self.vault_http.contains_key(&origin) {
            let p = self.profile()?.clone();
            let overrides = self.resolve_overrides()?;
            let client = Http::with_resolve(&origin, p.ca_cert_file.as_deref(), self.global.debug, &overrides)?;
            self.vault_http.insert(origin.clone(), client);
        }
        let client = self.vault_http.get_mut(&origin).ok_or_else(|| CliError::failed("HTTP client unavailable"))?;
        let body = body.map_or(Body::None, Body::Json);
        let result = client.send(method, url, Some(&token), body, true).await;
        self.flush_debug();
        result
    }

    /// Sends an authenticated request and returns the response whatever its status.
    pub async fn send(
        &mut self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<Response, CliError> {
        let token = self.token().await?;
        let body = body.map_or(Body::None, Body::Json);
        let result = self.http()?.send(method, url, Some(&token), body, true).await;
        self.flush_debug();
        result
    }

    /// Sends an authenticated request; a non-2xx status becomes az's ARM error.
    pub async fn call(
        &mut self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
    ) -> Result<Response, CliError> {
        let resp = self.send(method, url, body).await?;
        if resp.is_success() { Ok(resp) } else { Err(http::arm_error(&resp)) }
    }

    /// `GET` returning the JSON body.
    pub async fn get_json(&mut self, url: Url) -> Result<Val, CliError> {
        self.call(Method::GET, url, None).await?.json()
    }

    /// `GET` a collection and follow `nextLink` (same server only).
    pub async fn list(&mut self, url: Url) -> Result<Vec<Val>, CliError> {
        let mut items = Vec::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > 1000 {
                return Err(CliError::failed("Too many pages in a list response"));
            }
            let page = self.get_json(url).await?;
            if let Some(Val::List(values)) = page.get("value") {
                items.extend(values.iter().cloned());
            }
            if let Some(link) = page.get_str("nextLink").filter(|l| !l.is_empty()) {
                next = Some(self.same_server_url(link)?);
            }
        }
        Ok(items)
    }

    fn same_server_url(&mut self, link: &str) -> Result<Url, CliError> {
        let url =
            Url::parse(link).map_err(|e| CliError::failed(format!("Invalid link '{link}' from the server: {e}")))?;
        if !self.http()?.same_origin(&url) {
            return Err(CliError::failed(format!(
                "The server sent a link to another host ({link}); not following it with credentials."
            )));
        }
        Ok(url)
    }

    /// `PUT`/`PATCH`/`DELETE`/`POST` as an ARM long-running operation: unless `no_wait`, a 201/202
    /// with `Azure-AsyncOperation` or `Location` is polled to completion; a `PUT` then returns the
    /// final resource. `None` when `no_wait` (az prints nothing) or when there is no body.
    pub async fn long_running(
        &mut self,
        method: Method,
        url: Url,
        body: Option<serde_json::Value>,
        no_wait: bool,
    ) -> Result<Option<Val>, CliError> {
        let resp = self.call(method.clone(), url.clone(), body).await?;
        if no_wait {
            return Ok(None);
        }
        let async_op = resp.header("azure-asyncoperation").map(str::to_owned);
        let location = resp.header("location").map(str::to_owned);
        let pending = matches!(resp.status, StatusCode::CREATED | StatusCode::ACCEPTED)
            && (async_op.is_some() || location.is_some());
        if !pending {
            let v = resp.json()?;
            return Ok(if v.is_null() { None } else { Some(v) });
        }
        let started = std::time::Instant::now();
        let mut delay = retry_after(&resp);
        let last = loop {
            if started.elapsed() > LRO_TIMEOUT {
                return Err(CliError::failed("Timed out waiting for the operation to finish."));
            }
            tokio::time::sleep(delay).await;
            if let Some(op) = &async_op {
                let op_url = self.same_server_url(op)?;
                let status = self.call(Method::GET, op_url, None).await?;
                let v = status.json()?;
                match v.get_str("status").unwrap_or("InProgress") {
                    s if s.eq_ignore_ascii_case("Succeeded") => break None,
                    s if s.eq_ignore_ascii_case("Failed") || s.eq_ignore_ascii_case("Canceled") => {
                        let msg = v
                            .get("error")
                            .and_then(http::odata_error)
                            .unwrap_or_else(|| format!("The operation {}.", s.to_lowercase()));
                        return Err(CliError::failed(msg));
                    }
                    _ => delay = retry_after(&status),
                }
            } else if let Some(loc) = &location {
                let loc_url = self.same_server_url(loc)?;
                let r = self.send(Method::GET, loc_url, None).await?;
                match r.status {
                    StatusCode::ACCEPTED => delay = retry_after(&r),
                    s if s.is_success() => break Some(r),
                    _ => return Err(http::arm_error(&r)),
                }
            }
        };
        if method == Method::PUT || method == Method::PATCH {
            return Ok(Some(self.get_json(url).await?));
        }
        match last {
            Some(r) => {
                let v = r.json()?;
                Ok(if v.is_null() { None } else { Some(v) })
            }
            None => Ok(None),
        }
    }

    /// az's confirmation prompt (`knack.prompting.prompt_y_n`). Without a terminal it warns and
    /// the command is cancelled, as az does.
    pub fn confirm(&mut self, message: &str) -> Result<(), CliError> {
        if !self.console.stdin_is_tty {
            self.warn("Unable to prompt for confirmation as no tty available. Use --yes.");
            return Err(CliError::failed("Operation cancelled."));
        }
        loop {
            let _ = write!(self.out, "{message} (y/n): ");
            let _ = self.out.flush();
            let Some(answer) = self.console.read_line() else {
                return Err(CliError::failed("Operation cancelled."));
            };
            match answer.to_lowercase().as_str() {
                "y" => return Ok(()),
                "n" => return Err(CliError::failed("Operation cancelled.")),
                _ => {}
            }
        }
    }
}

fn retry_after(resp: &Response) -> Duration {
    let secs = resp.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(1);
    Duration::from_secs(secs.clamp(1, 30))
}

/// Whether `s` looks like a GUID (8-4-4-4-12 hex digits).
pub fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()))
}
