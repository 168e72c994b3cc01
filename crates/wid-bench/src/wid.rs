//! `wid serve` under test: started pinned to core 0 on a data dir, set up through its own management
//! API (resource group, a cluster registered with an uploaded JWKS, identities with 20 federated
//! credentials each, a vault with RBAC, role assignments, a secret), and the workloads' requests.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use http::Method;
use serde_json::{Value, json};

use crate::client::{Conn, Proto, Req, Target};
use crate::cluster::{AUDIENCE, Cluster, ISSUER, NAMESPACE, subject};
use crate::procs::{Server, wait_for_file, wait_ready};

pub const RG: &str = "bench";
pub const VAULT: &str = "kvbench";
pub const SECRET: &str = "bench-secret";
pub const KV_API: &str = "7.5";
pub const ARM_API: &str = "2023-01-31";
/// Credentials per bench identity (Entra's limit); the one that matches is the last.
pub const CREDS_PER_IDENTITY: usize = 20;
use wid_core::rbac::roles::KEY_VAULT_SECRETS_OFFICER;

pub struct Wid {
    pub server: Server,
    pub target: Target,
    pub vault: Target,
    pub tenant: String,
    pub subscription: String,
    pub port: u16,
    pub cold_start: Duration,
    profile: Value,
}

/// The bench identities as the workloads use them.
pub struct Identities {
    pub client_ids: Vec<String>,
    /// One assertion per identity, presented again and again (warm).
    pub warm_assertions: Vec<String>,
    /// A Key Vault token per identity.
    pub vault_tokens: Vec<String>,
}

impl Wid {
    /// Starts `wid serve` on `data_dir` (initialised on first start) and waits for `/readyz`.
    pub async fn start(bin: &Path, data_dir: &Path, port: u16, extra: &[&str]) -> anyhow::Result<Self> {
        let profile_path = data_dir.with_extension("profile.json");
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = data_dir.with_extension("log");
        let started = Instant::now();
        let server = Server::spawn(
            "0",
            bin,
            &args,
            &[("WID_CONFIG", profile_path.display().to_string()), ("WID_LOG", "warn,wid_server=info".into())],
            &log,
        )?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        // The CA exists once the data dir is initialised: wait for it, then for /readyz.
        let ca = data_dir.join("ca.pem");
        let target = Target::new(addr, "localhost", &wait_for_file(&ca, started, &log).await?)?;
        let cold_start = wait_ready(&target, "/readyz", 200, started, Duration::from_secs(120)).await?;
        let profile: Value = serde_json::from_slice(&std::fs::read(&profile_path)?).context("profile")?;
        let text = |k: &str| profile.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        Ok(Self {
            vault: target.with_name(&format!("{VAULT}.vault.localhost")),
            target,
            tenant: text("tenantId"),
            subscription: text("subscriptionId"),
            port,
            cold_start,
            server,
            profile,
        })
    }

    pub fn vault_resource(&self) -> String {
        format!("https://vault.localhost:{}", self.port)
    }

    pub fn mgmt_resource(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    pub fn token_path(&self) -> String {
        format!("/{}/oauth2/v2.0/token", self.tenant)
    }

    pub fn arm_path(&self, rel: &str) -> String {
        format!("/subscriptions/{}/resourceGroups/{RG}{rel}?api-version={ARM_API}", self.subscription)
    }

    pub fn vault_id(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{VAULT}", self.subscription)
    }

    /// A token for the CLI's admin principal (client secret).
    pub async fn admin_token(&self, conn: &mut Conn, resource: &str) -> anyhow::Result<String> {
        let text = |k: &str| self.profile.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let scope = format!("{resource}/.default");
        let (id, secret) = (text("clientId"), text("clientSecret"));
        let req = Req::form(
            self.token_path(),
            &[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret), ("scope", &scope)],
        );
        let v = conn.json(&req, &[200]).await?;
        Ok(v.get("access_token").and_then(Value::as_str).unwrap_or_default().to_string())
    }

    /// The exchange request of identity `client_id` presenting `assertion` for the vault.
    pub fn exchange_req(&self, client_id: &str, assertion: &str) -> Req {
        let scope = format!("{}/.default", self.vault_resource());
        Req::form(
            self.token_path(),
            &[
                ("client_id", client_id),
                ("client_assertion", assertion),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("grant_type", "client_credentials"),
                ("scope", &scope),
            ],
        )
    }

    /// Creates the resource group, the cluster (uploaded JWKS), the vault with its secret, and `n`
    /// bench identities with 20 credentials each and Key Vault Secrets Officer on the vault.
    pub async fn setup(&self, cluster: &Cluster, n: usize, now: i64) -> anyhow::Result<Identities> {
        let mut c = self.target.connect(Proto::H1).await?;
        let admin = self.admin_token(&mut c, &self.mgmt_resource()).await?;
        let put = |path: String, body: Value| Req::json(Method::PUT, path, &body).bearer(&admin);
        c.json(&put(self.arm_path(""), json!({"location": "eastus"})), &[200, 201]).await?;
        let body = json!({"location": "eastus", "properties": {"oidcIssuerProfile": {"enabled": true, "issuerURL": ISSUER, "jwks": cluster.jwks()}}});
        c.json(&put(self.arm_path("/providers/Microsoft.ContainerService/managedClusters/bench"), body), &[200, 201])
            .await?;
        let body = json!({"location": "eastus", "properties": {"tenantId": self.tenant, "sku": {"family": "A", "name": "standard"}, "enableRbacAuthorization": true}});
        c.json(&put(self.arm_path(&format!("/providers/Microsoft.KeyVault/vaults/{VAULT}")), body), &[200, 201])
            .await?;
        let admin_principal = self.profile.get("principalId").and_then(Value::as_str).unwrap_or_default().to_string();
        self.assign(&mut c, &admin, &admin_principal).await?;

        let mut ids = Identities { client_ids: Vec::new(), warm_assertions: Vec::new(), vault_tokens: Vec::new() };
        for i in 0..n {
            let path = self.arm_path(&format!("/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{i}"));
            let id = c.json(&put(path, json!({"location": "eastus"})), &[200, 201]).await?;
            for j in 0..CREDS_PER_IDENTITY {
                let body = json!({"properties": credential(i, j)});
                let path = self.arm_path(&format!(
                    "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-{i}/federatedIdentityCredentials/fic-{j}"
                ));
                c.json(&put(path, body), &[200, 201]).await?;
            }
            let prop = |k: &str| id.pointer(&format!("/properties/{k}")).and_then(Value::as_str).unwrap_or_default();
            let (client_id, principal_id) = (prop("clientId").to_string(), prop("principalId").to_string());
            self.assign(&mut c, &admin, &principal_id).await?;
            let assertion = cluster.token(i, now)?;
            let reply = c.json(&self.exchange_req(&client_id, &assertion), &[200]).await?;
            let token = reply.get("access_token").and_then(Value::as_str).unwrap_or_default().to_string();
            ids.client_ids.push(client_id);
            ids.warm_assertions.push(assertion);
            ids.vault_tokens.push(token);
        }
        // The secret the reads get (64 bytes, like a connection string's password).
        let mut v = self.vault.connect(Proto::H1).await?;
        let kv_admin = self.admin_token(&mut c, &self.vault_resource()).await?;
        let req = Req::json(
            Method::PUT,
            format!("/secrets/{SECRET}?api-version={KV_API}"),
            &json!({"value": "x".repeat(64)}),
        )
        .bearer(&kv_admin);
        v.json(&req, &[200]).await?;
        Ok(ids)
    }

    async fn assign(&self, c: &mut Conn, admin: &str, principal: &str) -> anyhow::Result<()> {
        let body = json!({"properties": {
            "roleDefinitionId": format!("/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_SECRETS_OFFICER}", self.subscription),
            "principalId": principal,
            "principalType": "ServicePrincipal",
        }});
        let path = format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={ARM_API}",
            self.vault_id(),
            uuid::Uuid::new_v4()
        );
        c.json(&Req::json(Method::PUT, path, &body).bearer(admin), &[200, 201]).await?;
        Ok(())
    }
}

/// Credential `j` of bench identity `i`: a realistic set — other clusters' issuers, other
/// namespaces of this cluster — with the one that matches last, so the match scans all 20.
pub fn credential(i: usize, j: usize) -> Value {
    let (issuer, subject) = match j {
        j if j + 1 == CREDS_PER_IDENTITY => (ISSUER.to_string(), subject(i)),
        j if j % 2 == 0 => (format!("https://oidc.cluster-{j}.example/"), subject(i)),
        j => (ISSUER.to_string(), format!("system:serviceaccount:{NAMESPACE}-{j}:sa-{i}")),
    };
    json!({"issuer": issuer, "subject": subject, "audiences": [AUDIENCE]})
}
