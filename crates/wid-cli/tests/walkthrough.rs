//! The seed walkthrough (AKS workload identity with Key Vault) run with `az` replaced by `wid`,
//! in-process against a real `wid serve` on port 0: from `keyvault create` to the role
//! assignments and `keyvault secret set/show`, then the workload's own read of the secret. Also
//! the rest of the Key Vault and role commands against the same server.
//!
//! The vault host `{vault}.vault.localhost:PORT` is reached without /etc/hosts: the CLI sends
//! `*.localhost` names to the loopback address itself (RFC 6761).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::Value;
use wid_testkit::TestServer;

struct Cli {
    env: HashMap<String, String>,
}

impl Cli {
    fn new(s: &TestServer) -> Self {
        let mut env = HashMap::new();
        env.insert("WID_CONFIG".to_owned(), s.dir.path().join("profile.json").display().to_string());
        Cli { env }
    }

    /// Runs `wid ARGS`; returns (exit code, stdout, stderr).
    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let argv = std::iter::once("wid").chain(args.iter().copied()).map(String::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = wid_cli::run(argv, self.env.clone(), &mut out, &mut err).await;
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    /// Runs and expects success; returns stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args).await;
        assert_eq!(code, 0, "wid {args:?}\nstdout: {out}\nstderr: {err}");
        out
    }

    /// `--query … -o tsv` value, trimmed.
    async fn tsv(&self, args: &[&str]) -> String {
        self.ok(args).await.trim_end_matches('\n').to_owned()
    }

    async fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args).await).unwrap()
    }
}

#[tokio::test]
async fn seed_walkthrough_with_key_vault() {
    let s = TestServer::start().await;
    let wid = Cli::new(&s);
    let (rg, loc) = ("myResourceGroup1a2b3c", "eastus");
    wid.ok(&["group", "create", "--name", rg, "--location", loc]).await;
    wid.ok(&[
        "aks",
        "create",
        "--resource-group",
        rg,
        "--name",
        "myAKSCluster",
        "--enable-oidc-issuer",
        "--enable-workload-identity",
        "--generate-ssh-keys",
    ])
    .await;
    let issuer = wid
        .tsv(&[
            "aks",
            "show",
            "--name",
            "myAKSCluster",
            "--resource-group",
            rg,
            "--query",
            "oidcIssuerProfile.issuerUrl",
            "--output",
            "tsv",
        ])
        .await;
    let sub = wid.tsv(&["account", "show", "--query", "id", "--output", "tsv"]).await;
    wid.ok(&[
        "identity",
        "create",
        "--name",
        "myIdentity",
        "--resource-group",
        rg,
        "--location",
        loc,
        "--subscription",
        &sub,
    ])
    .await;
    wid.ok(&[
        "identity",
        "federated-credential",
        "create",
        "--name",
        "myFedIdentity",
        "--identity-name",
        "myIdentity",
        "--resource-group",
        rg,
        "--issuer",
        &issuer,
        "--subject",
        "system:serviceaccount:default:workload-identity-sa",
        "--audience",
        "api://AzureADTokenExchange",
    ])
    .await;

    // Create a key vault with Azure RBAC authorization.
    let kv = "keyvault-workload-id1a2";
    let created = wid
        .json(&[
            "keyvault",
            "create",
            "--name",
            kv,
            "--resource-group",
            rg,
            "--location",
            loc,
            "--enable-purge-protection",
            "--enable-rbac-authorization",
        ])
        .await;
    assert_eq!(created["properties"]["enablePurgeProtection"], true);
    assert_eq!(created["properties"]["enableRbacAuthorization"], true);
    assert_eq!(created["resourceGroup"], rg);
    let kv_id =
        wid.tsv(&["keyvault", "show", "--resource-group", rg, "--name", kv, "--query", "id", "--output", "tsv"]).await;
    assert_eq!(kv_id, format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{kv}"));
    // `az keyvault create` refuses an existing vault.
    let (code, _, err) = wid.run(&["keyvault", "create", "--name", kv, "--resource-group", rg]).await;
    assert_eq!((code, err.as_str()), (1, format!("ERROR: The specified vault: {kv} already exists\n").as_str()));

    // Assign RBAC permissions for key vault management.
    let caller = wid.tsv(&["ad", "signed-in-user", "show", "--query", "id", "-o", "tsv"]).await;
    let (code, out, err) = wid
        .run(&[
            "role",
            "assignment",
            "create",
            "--assignee",
            &caller,
            "--role",
            "Key Vault Secrets Officer",
            "--scope",
            &kv_id,
        ])
        .await;
    assert_eq!(code, 0, "{err}");
    let ra: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ra["principalId"], caller.as_str());
    assert_eq!(ra["principalType"], "ServicePrincipal");
    assert_eq!(ra["scope"], kv_id.as_str());
    assert_eq!(ra["resourceGroup"], rg);
    assert!(ra["roleDefinitionId"].as_str().unwrap().ends_with("/b86a8fe4-44ce-4948-aee5-eccb2c155cd7"));
    assert_eq!(err, "", "no Graph warning when --assignee resolves");

    // Create and configure secret access.
    let secret = wid
        .json(&["keyvault", "secret", "set", "--vault-name", kv, "--name", "my-secret1a2", "--value", "Hello\\!"])
        .await;
    assert_eq!(secret["value"], "Hello\\!");
    assert_eq!(secret["name"], "my-secret1a2");
    assert_eq!(secret["tags"]["file-encoding"], "utf-8");
    assert_eq!(secret["attributes"]["enabled"], true);
    let host = s.url.trim_start_matches("https://");
    assert!(
        secret["id"].as_str().unwrap().starts_with(&format!("https://{kv}.vault.{host}/secrets/my-secret1a2/")),
        "{secret}"
    );
    let principal = wid
        .tsv(&[
            "identity",
            "show",
            "--name",
            "myIdentity",
            "--resource-group",
            rg,
            "--query",
            "principalId",
            "--output",
            "tsv",
        ])
        .await;
    let args = [
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        &principal,
        "--role",
        "Key Vault Secrets User",
        "--scope",
        &kv_id,
        "--assignee-principal-type",
        "ServicePrincipal",
    ];
    let first = wid.json(&args).await;
    // Again: az treats RoleAssignmentExists as success and prints the existing assignment.
    let again = wid.json(&args).await;
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["roleDefinitionName"], "Key Vault Secrets User");
    let vault_url = wid
        .tsv(&[
            "keyvault",
            "show",
            "--resource-group",
            rg,
            "--name",
            kv,
            "--query",
            "properties.vaultUri",
            "--output",
            "tsv",
        ])
        .await;
    assert_eq!(vault_url, format!("https://{kv}.vault.{host}/"));
    let value = wid
        .tsv(&[
            "keyvault",
            "secret",
            "show",
            "--vault-name",
            kv,
            "--name",
            "my-secret1a2",
            "--query",
            "value",
            "-o",
            "tsv",
        ])
        .await;
    assert_eq!(value, "Hello\\!");

    // The workload: its service-account token → an access token for the vault → the secret.
    let client_id =
        wid.tsv(&["identity", "show", "-g", rg, "-n", "myIdentity", "--query", "clientId", "-o", "tsv"]).await;
    let sa_token = wid
        .tsv(&[
            "aks",
            "get-token",
            "-g",
            rg,
            "-n",
            "myAKSCluster",
            "--namespace",
            "default",
            "--service-account",
            "workload-identity-sa",
        ])
        .await;
    let resource = s.profile.key_vault_resource.clone().unwrap();
    let (st, tok) = s
        .token(
            &s.tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client_id),
                ("client_assertion", &sa_token),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("scope", &format!("{resource}/.default")),
            ],
        )
        .await;
    assert_eq!(st, 200, "{tok}");
    let port = s.url.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let pem = std::fs::read(s.ca_pem()).unwrap();
    let app = reqwest::Client::builder()
        .tls_certs_merge(reqwest::Certificate::from_pem_bundle(&pem).unwrap())
        .resolve(&format!("{kv}.vault.localhost"), SocketAddr::from(([127, 0, 0, 1], port)))
        .build()
        .unwrap();
    let resp = app
        .get(format!("{vault_url}secrets/my-secret1a2/?api-version=7.5"))
        .bearer_auth(tok["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["value"], "Hello\\!");

    // What the walkthrough set up, as az lists it.
    let table = wid.ok(&["role", "assignment", "list", "--scope", &kv_id, "-o", "table"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0].split_whitespace().collect::<Vec<_>>(), vec!["Principal", "Role", "Scope"]);
    assert_eq!(lines.len(), 4, "{table}");
    assert!(table.contains(&client_id) && table.contains("Key Vault Secrets User"), "{table}");
    assert!(table.contains(&s.profile.client_id) && table.contains("Key Vault Secrets Officer"), "{table}");
}

#[tokio::test]
async fn keyvault_and_secret_commands() {
    let s = TestServer::start().await;
    let wid = Cli::new(&s);
    wid.ok(&["group", "create", "-n", "rg", "-l", "westus"]).await;
    let v = wid.json(&["keyvault", "create", "-n", "kv-cli", "-g", "rg", "--retention-days", "7"]).await;
    assert_eq!(v["location"], "westus", "the group's location");
    assert_eq!(v["properties"]["softDeleteRetentionInDays"], 7);
    assert!(v["properties"]["enablePurgeProtection"].is_null());
    // `show` without -g finds the group, as az does.
    assert_eq!(wid.tsv(&["keyvault", "show", "-n", "kv-cli", "--query", "resourceGroup", "-o", "tsv"]).await, "rg");
    let list = wid.json(&["keyvault", "list"]).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["type"], "Microsoft.KeyVault/vaults");
    assert!(list[0].get("properties").is_none(), "az keyvault list prints resources: {list}");
    let list = wid.json(&["keyvault", "list", "-g", "rg"]).await;
    assert_eq!(list[0]["properties"]["vaultUri"], v["properties"]["vaultUri"]);
    let (code, _, err) =
        wid.run(&["keyvault", "create", "-n", "kv-cli2", "-g", "rg", "--enable-rbac-authorization", "false"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("RBAC only"), "{err}");

    // Secrets: the admin needs a data role first.
    let kv_id = v["id"].as_str().unwrap().to_owned();
    let me = wid.tsv(&["ad", "signed-in-user", "show", "--query", "id", "-o", "tsv"]).await;
    let (code, _, err) =
        wid.run(&["keyvault", "secret", "set", "--vault-name", "kv-cli", "-n", "s1", "--value", "v1"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("(Forbidden)") && err.contains("ForbiddenByRbac"), "{err}");
    wid.ok(&[
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        &me,
        "--assignee-principal-type",
        "ServicePrincipal",
        "--role",
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        "--scope",
        &kv_id,
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "line1\r\nline2\n").unwrap();
    let s1 = wid
        .json(&[
            "keyvault",
            "secret",
            "set",
            "--vault-name",
            "kv-cli",
            "-n",
            "s1",
            "--file",
            file.to_str().unwrap(),
            "--content-type",
            "text/plain",
            "--tags",
            "team=a",
            "--expires",
            "2099-01-01T00:00:00Z",
        ])
        .await;
    assert_eq!(s1["value"], "line1\nline2\n");
    assert_eq!(s1["contentType"], "text/plain");
    assert_eq!(s1["tags"], serde_json::json!({"team": "a", "file-encoding": "utf-8"}));
    assert_eq!(s1["attributes"]["expires"], "2099-01-01T00:00:00+00:00");
    let version1 = s1["id"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
    wid.ok(&["keyvault", "secret", "set", "--vault-name", "kv-cli", "-n", "s1", "--value", "v2", "--disabled"]).await;
    let by_id = wid.json(&["keyvault", "secret", "show", "--id", s1["id"].as_str().unwrap()]).await;
    assert_eq!(by_id["value"], "line1\nline2\n");
    let versions = wid.json(&["keyvault", "secret", "list-versions", "--vault-name", "kv-cli", "-n", "s1"]).await;
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let updated = wid
        .json(&[
            "keyvault",
            "secret",
            "set-attributes",
            "--vault-name",
            "kv-cli",
            "-n",
            "s1",
            "--version",
            &version1,
            "--enabled",
            "false",
        ])
        .await;
    assert_eq!((updated["attributes"]["enabled"].as_bool(), updated["value"].is_null()), (Some(false), true));
    let table = wid.ok(&["keyvault", "secret", "list", "--vault-name", "kv-cli", "-o", "table"]).await;
    assert!(table.starts_with("Name"), "{table}");
    assert!(table.contains("s1"), "{table}");

    // Backup, delete, purge, restore; delete and recover.
    let backup = dir.path().join("s1.bak");
    wid.ok(&["keyvault", "secret", "backup", "--vault-name", "kv-cli", "-n", "s1", "--file", backup.to_str().unwrap()])
        .await;
    assert!(std::fs::metadata(&backup).unwrap().len() > 0);
    let (code, out, err) = wid.run(&["keyvault", "secret", "delete", "--vault-name", "kv-cli", "-n", "s1"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.starts_with("Warning! If you have soft-delete protection enabled"), "{err}");
    let deleted: Value = serde_json::from_str(&out).unwrap();
    assert!(deleted["recoveryId"].as_str().unwrap().ends_with("/deletedsecrets/s1"), "{deleted}");
    assert!(deleted["value"].is_null());
    let listed = wid.json(&["keyvault", "secret", "list-deleted", "--vault-name", "kv-cli"]).await;
    assert_eq!(listed[0]["name"], "s1");
    wid.ok(&["keyvault", "secret", "purge", "--vault-name", "kv-cli", "-n", "s1"]).await;
    let restored = wid
        .json(&["keyvault", "secret", "restore", "--vault-name", "kv-cli", "--file", backup.to_str().unwrap()])
        .await;
    assert_eq!((restored["name"].as_str(), restored["value"].is_null()), (Some("s1"), true));
    wid.ok(&["keyvault", "secret", "delete", "--vault-name", "kv-cli", "-n", "s1", "--only-show-errors"]).await;
    let recovered = wid.json(&["keyvault", "secret", "recover", "--vault-name", "kv-cli", "-n", "s1"]).await;
    assert_eq!(recovered["name"], "s1");
    let (code, _, err) = wid.run(&["keyvault", "secret", "show", "--vault-name", "kv-cli", "-n", "nope"]).await;
    assert_eq!(code, 3, "404 exits with 3: {err}");
    assert!(err.starts_with("ERROR: (SecretNotFound)"), "{err}");

    // Vault soft delete and purge.
    let (code, _, err) = wid.run(&["keyvault", "delete", "-n", "kv-cli"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.starts_with(
            "Warning! If you have soft-delete protection enabled on this key vault, you will not be able to reuse"
        ),
        "{err}"
    );
    let deleted = wid.json(&["keyvault", "list-deleted"]).await;
    assert_eq!(deleted[0]["name"], "kv-cli");
    assert_eq!(deleted[0]["properties"]["location"], "westus");
    let (code, _, err) = wid.run(&["keyvault", "create", "-n", "kv-cli", "-g", "rg"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("(ConflictError)"), "{err}");
    wid.ok(&["keyvault", "recover", "-n", "kv-cli"]).await;
    assert_eq!(
        wid.tsv(&["keyvault", "show", "-n", "kv-cli", "-g", "rg", "--query", "name", "-o", "tsv"]).await,
        "kv-cli"
    );
    wid.ok(&["keyvault", "delete", "-n", "kv-cli", "-g", "rg", "--only-show-errors"]).await;
    assert_eq!(wid.ok(&["keyvault", "purge", "-n", "kv-cli"]).await, "");
    assert_eq!(wid.json(&["keyvault", "list-deleted"]).await, serde_json::json!([]));
}

#[tokio::test]
async fn role_commands() {
    let s = TestServer::start().await;
    let wid = Cli::new(&s);
    wid.ok(&["group", "create", "-n", "rg", "-l", "eastus"]).await;
    wid.ok(&["identity", "create", "-n", "app", "-g", "rg"]).await;
    let id = wid.json(&["identity", "show", "-n", "app", "-g", "rg"]).await;
    let (principal, client) =
        (id["principalId"].as_str().unwrap().to_owned(), id["clientId"].as_str().unwrap().to_owned());

    // Definitions: by name (az matches the name exactly), by GUID, as a table.
    let defs = wid.json(&["role", "definition", "list", "--name", "Key Vault Secrets User"]).await;
    assert_eq!(defs.as_array().unwrap().len(), 1);
    assert_eq!(defs[0]["roleType"], "BuiltInRole");
    assert_eq!(defs[0]["permissions"][0]["dataActions"][0], "Microsoft.KeyVault/vaults/secrets/getSecret/action");
    let by_guid = wid.json(&["role", "definition", "list", "--name", "4633458b-17de-408a-b874-0445c86b69e6"]).await;
    assert_eq!(by_guid[0]["roleName"], "Key Vault Secrets User");
    let table = wid.ok(&["role", "definition", "list", "--name", "Reader", "-o", "table"]).await;
    assert!(table.lines().next().unwrap().starts_with("Name"), "{table}");

    // --assignee takes a client id as well (az resolves appIds through Graph).
    let ra = wid.json(&["role", "assignment", "create", "--assignee", &client, "--role", "Reader", "-g", "rg"]).await;
    assert_eq!(ra["principalId"], principal.as_str());
    let (code, _, err) = wid
        .run(&[
            "role",
            "assignment",
            "create",
            "--assignee-object-id",
            &principal,
            "--role",
            "Reader",
            "--scope",
            "/subscriptions/nope/x",
        ])
        .await;
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "WARNING: RBAC service might reject creating role assignment without --assignee-principal-type in the future. Better to specify --assignee-principal-type manually.\nERROR: Invalid scope. Please use --help to view the valid format.\n"
        )
    );
    let (code, _, err) =
        wid.run(&["role", "assignment", "create", "--assignee", &client, "--role", "No Such Role", "-g", "rg"]).await;
    assert_eq!((code, err.as_str()), (1, "ERROR: Role 'No Such Role' doesn't exist.\n"));
    let (code, _, err) = wid
        .run(&[
            "role",
            "assignment",
            "create",
            "--assignee-object-id",
            "11111111-2222-3333-4444-555555555555",
            "--assignee-principal-type",
            "ServicePrincipal",
            "--role",
            "Reader",
            "-g",
            "rg",
        ])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("ERROR: (PrincipalNotFound) Principal 11111111222233334444555555555555 does not exist"),
        "{err}"
    );

    // Lists: exactly at the scope by default; inherited on request; everything with --all.
    let at_rg = wid.json(&["role", "assignment", "list", "-g", "rg"]).await;
    assert_eq!(at_rg.as_array().unwrap().len(), 1);
    assert_eq!(at_rg[0]["principalName"], client.as_str());
    assert_eq!(at_rg[0]["roleDefinitionName"], "Reader");
    let inherited = wid.json(&["role", "assignment", "list", "-g", "rg", "--include-inherited"]).await;
    assert!(
        inherited.as_array().unwrap().iter().any(|r| r["scope"] == "/" && r["roleDefinitionName"] == "Owner"),
        "{inherited}"
    );
    let all = wid.json(&["role", "assignment", "list", "--all", "--assignee", &principal]).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert!(
        wid.json(&["role", "assignment", "list"]).await.as_array().unwrap().is_empty(),
        "nothing at the subscription itself"
    );

    // Delete: by search, then by id; nothing left to match.
    let (code, _, err) = wid.run(&["role", "assignment", "delete"]).await;
    assert_eq!(
        (code, err.as_str()),
        (
            2,
            "ERROR: Please provide at least one of these arguments: --ids, --assignee, --assignee-object-id, --role, --resource-group, --scope\n"
        )
    );
    assert_eq!(
        wid.ok(&["role", "assignment", "delete", "--assignee", &principal, "--role", "Reader", "-g", "rg"]).await,
        ""
    );
    let (code, _, err) = wid.run(&["role", "assignment", "delete", "--assignee", &principal, "-g", "rg"]).await;
    assert_eq!((code, err.as_str()), (1, "ERROR: No matched assignments were found to delete\n"));
    let ra = wid
        .json(&[
            "role",
            "assignment",
            "create",
            "--assignee-object-id",
            &principal,
            "--assignee-principal-type",
            "ServicePrincipal",
            "--role",
            "Reader",
            "--scope",
            &format!("/subscriptions/{}/resourceGroups/rg", s.subscription),
        ])
        .await;
    wid.ok(&["role", "assignment", "delete", "--ids", ra["id"].as_str().unwrap()]).await;
    assert!(wid.json(&["role", "assignment", "list", "-g", "rg"]).await.as_array().unwrap().is_empty());
}

/// The admin's client secret (from the profile) never shows in anything the CLI prints: normal
/// output, `--debug` request logs (which carry the token form), error messages, every output format.
#[tokio::test]
async fn the_cli_never_prints_the_profiles_secret() {
    let s = TestServer::start().await;
    let wid = Cli::new(&s);
    let secret = s.profile.client_secret.clone().unwrap();
    let mut printed = String::new();
    let runs: &[&[&str]] = &[
        &["account", "show"],
        &["account", "show", "-o", "yaml"],
        &["account", "list", "-o", "table"],
        &["ad", "signed-in-user", "show"],
        &["group", "create", "--name", "rg", "--location", "eastus", "--debug"],
        &["identity", "create", "--name", "app-id", "--resource-group", "rg", "--debug"],
        &["identity", "show", "--name", "nope", "--resource-group", "rg", "--debug"],
        &["keyvault", "create", "--name", "kvsecret", "--resource-group", "rg", "--debug"],
        &["role", "assignment", "list", "--all", "-o", "tsv"],
        &["keyvault", "secret", "show", "--vault-name", "kvsecret", "--name", "x", "--debug"],
        &["group", "show", "--name", "missing"],
        &["login", "--debug"],
    ];
    // Four of them fail on purpose (a missing identity, secret and group; `login` without its
    // arguments); the rest must succeed.
    let failing = |args: &[&str]| {
        args.contains(&"nope") || args.contains(&"x") || args.contains(&"missing") || args.first() == Some(&"login")
    };
    for args in runs {
        let (code, out, err) = wid.run(args).await;
        printed.push_str(&format!("$ wid {args:?} → {code}\n{out}{err}"));
        assert_eq!(code != 0, failing(args), "wid {args:?} exited {code}:\n{out}{err}");
    }
    // The --debug request log shows the token form: the secret's field, not its value.
    assert!(printed.contains("client_secret="), "the --debug logs show the token form:\n{printed}");
    assert!(!printed.contains(&secret), "the client secret was printed:\n{printed}");
    assert!(printed.contains("ResourceGroupNotFound") || printed.contains("could not be found"), "errors were printed");
}
