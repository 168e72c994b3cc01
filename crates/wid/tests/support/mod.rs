//! A real `wid serve` process for the hardening tests (crash safety, soak, secrets hygiene): spawn
//! on SQLite in a directory, wait for the profile and `/readyz`, talk ARM, the token endpoint and the
//! Key Vault data plane over HTTPS, read its RSS and open descriptors from `/proc`, kill it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wid_testkit::Client;

use wid_core::rbac::roles::KEY_VAULT_SECRETS_OFFICER;
pub const RG: &str = "/subscriptions/{sub}/resourceGroups/rg";

/// A `wid serve` process with its data dir in `dir/data` (SQLite unless its arguments name a
/// database), logging to `dir/serve.log`.
pub struct Serve {
    pub child: Child,
    pub dir: PathBuf,
    /// The loopback address it listens on (replicas use 127.0.0.2, 127.0.0.3… on one port).
    pub ip: [u8; 4],
    pub port: u16,
    pub client: Client,
    /// Reaches `{vault}.vault.localhost` for the vault names given at spawn.
    pub vault_http: reqwest::Client,
    /// How long the process took from spawn to ready.
    pub startup: Duration,
    ca: Vec<u8>,
    vault_hosts: Vec<String>,
}

impl Serve {
    /// Starts `wid serve` on 127.0.0.1:`port` (0: any) with `args`; waits until it is ready.
    pub async fn spawn(dir: &Path, port: u16, args: &[&str], vaults: &[&str]) -> Serve {
        Self::spawn_at(dir, [127, 0, 0, 1], port, args, vaults).await
    }

    /// As [`Serve::spawn`], on the loopback address `ip`.
    pub async fn spawn_at(dir: &Path, ip: [u8; 4], port: u16, args: &[&str], vaults: &[&str]) -> Serve {
        let started = Instant::now();
        let child = Self::command(dir, ip, port, args).spawn().unwrap();
        let profile_path = dir.join("profile.json");
        let profile: wid_core::profile::Profile = loop {
            if let Ok(p) = wid_core::profile::Profile::load(&profile_path) {
                break p;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "wid serve did not start: {}", log_of(dir));
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let port = profile.server.rsplit_once(':').unwrap().1.parse().unwrap();
        let ca = std::fs::read(profile.ca_cert_file.clone().unwrap()).unwrap();
        let http = https_client(&ca, ip, port, &["localhost".to_string()]);
        let vault_hosts: Vec<String> = vaults.iter().map(|v| format!("{v}.vault.localhost")).collect();
        let vault_http = https_client(&ca, ip, port, &vault_hosts);
        let client = Client {
            http,
            url: profile.server.clone(),
            tenant: profile.tenant_id.clone(),
            subscription: profile.subscription_id.clone(),
            profile,
        };
        let mut s = Serve {
            child,
            dir: dir.to_path_buf(),
            ip,
            port,
            client,
            vault_http,
            startup: Duration::ZERO,
            ca,
            vault_hosts,
        };
        s.wait_ready(started).await;
        s
    }

    /// The `wid serve` command line (env cleared: no user environment leaks into the test).
    pub fn command(dir: &Path, ip: [u8; 4], port: u16, args: &[&str]) -> Command {
        std::fs::create_dir_all(dir).unwrap();
        let _ = std::fs::remove_file(dir.join("profile.json"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("serve.log")).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_wid"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(SocketAddr::from((ip, port)).to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(args)
            .env_clear()
            .env("WID_CONFIG", dir.join("profile.json"))
            .env("WID_LOG", "debug,hyper=info,h2=info,rustls=info,reqwest=info,tower=info")
            .stdout(Stdio::null())
            .stderr(log);
        cmd
    }

    async fn wait_ready(&mut self, started: Instant) {
        loop {
            if let Ok(r) = self.client.http.get(format!("{}/readyz", self.client.url)).send().await
                && r.status() == 200
            {
                self.startup = started.elapsed();
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "not ready: {}", log_of(&self.dir));
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("wid serve exited with {st}: {}", log_of(&self.dir));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replaces the HTTP clients (dropping the old ones closes their pooled connections).
    pub fn renew_clients(&mut self) {
        self.client.http = https_client(&self.ca, self.ip, self.port, &["localhost".to_string()]);
        self.vault_http = https_client(&self.ca, self.ip, self.port, &self.vault_hosts);
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn vault_resource(&self) -> String {
        format!("https://vault.localhost:{}", self.port)
    }

    pub fn vault_url(&self, vault: &str, path: &str) -> String {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("https://{vault}.vault.localhost:{}{path}{sep}api-version=7.5", self.port)
    }

    /// A Key Vault data-plane call; status and JSON (Null when empty or not JSON).
    pub async fn kv(&self, vault: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.vault_http.request(method.parse().unwrap(), self.vault_url(vault, path)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("vault request");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// An access token for the bootstrap admin (client secret) to `resource`.
    pub async fn admin_token_for(&self, resource: &str) -> String {
        let secret = self.client.profile.client_secret.clone().unwrap();
        let scope = format!("{resource}/.default");
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client.profile.client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("scope", scope.as_str()),
        ];
        let (st, body) = self.client.token(&self.client.tenant, &form).await;
        assert_eq!(st, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// A resource group `rg` and an RBAC vault `name` in it where the admin is Secrets Officer.
    pub async fn vault_with_officer(&self, admin: &str, name: &str) -> String {
        let c = &self.client;
        put(c, admin, RG, json!({"location": "local"})).await;
        let path = format!("{RG}/providers/Microsoft.KeyVault/vaults/{name}");
        let body = json!({"location": "local", "properties": {"tenantId": c.tenant, "sku": {"family": "A", "name": "standard"}, "enableRbacAuthorization": true}});
        let vault = put(c, admin, &path, body).await;
        let id = vault["id"].as_str().unwrap().to_string();
        assign(c, admin, &id, KEY_VAULT_SECRETS_OFFICER, c.profile.principal_id.as_deref().unwrap()).await;
        id
    }

    /// Sends SIGKILL and reaps the process: no shutdown, nothing flushed beyond what was committed.
    pub fn sigkill(&mut self) {
        kill(self.pid());
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (at most 30 s) for a clean exit.
    pub async fn stop(&mut self) {
        wid_testkit::send_signal(self.pid(), rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "wid serve exited with {st} on SIGTERM: {}", log_of(&self.dir));
                return;
            }
            assert!(Instant::now() < deadline, "wid serve did not stop on SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Resident set size in KiB (`VmRSS` of /proc/PID/status).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Open file descriptors (entries of /proc/PID/fd).
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).unwrap().count()
    }

    pub fn log(&self) -> String {
        log_of(&self.dir)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTPS client trusting `ca` that resolves `hosts` to `ip`:`port`.
fn https_client(ca: &[u8], ip: [u8; 4], port: u16, hosts: &[String]) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(ca).unwrap())
        .timeout(Duration::from_secs(60));
    for h in hosts {
        b = b.resolve(h, SocketAddr::from((ip, port)));
    }
    b.build().unwrap()
}

pub fn kill(pid: u32) {
    wid_testkit::send_signal(pid, rustix::process::Signal::KILL);
}

pub fn log_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

/// A PUT that must succeed (200 or 201); returns the body.
pub async fn put(c: &Client, token: &str, path: &str, body: Value) -> Value {
    let (st, body) = c.arm(token, "PUT", path, Some(body)).await;
    assert!(st == 200 || st == 201, "PUT {path}: {st} {body}");
    body
}

/// Assigns `role` (a built-in role's GUID) to `principal` at `scope`; returns the assignment's id.
pub async fn assign(c: &Client, token: &str, scope: &str, role: &str, principal: &str) -> String {
    let id = uuid::Uuid::new_v4();
    let body = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}", c.subscription),
        "principalId": principal,
        "principalType": "ServicePrincipal",
    }});
    put(c, token, &format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{id}"), body).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs a `wid` subcommand to completion with an empty environment; exit code, stdout, stderr.
pub fn wid(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_wid")).args(args).env_clear().output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An environment variable as a number, or `default`.
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}
