//! CLI-only tests: argument parsing and the behaviour that needs no server (usage errors,
//! confirmation prompts, profile-only commands). End-to-end tests against an in-process `wid serve`
//! are in `walkthrough.rs`.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;

use wid_cli::cmd::aks::AksCmd;
use wid_cli::cmd::identity::{FicCmd, IdentityCmd};
use wid_cli::profile::Profile;
use wid_cli::{Cli, Command, Console, OutputFormat, parse, run, run_with};

fn argv(args: &[&str]) -> Vec<String> {
    std::iter::once("wid").chain(args.iter().copied()).map(String::from).collect()
}

fn parse_ok(args: &[&str]) -> Cli {
    parse(argv(args)).unwrap_or_else(|e| panic!("{args:?} did not parse: {e}"))
}

async fn run_cli(args: &[&str], env: &HashMap<String, String>) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run(argv(args), env.clone(), &mut out, &mut err).await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

/// A profile pointing at a server that is never contacted.
fn offline_profile() -> (tempfile::TempDir, HashMap<String, String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("profile.json");
    Profile {
        server: "https://127.0.0.1:9".into(),
        tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
        subscription_id: "0b1f6471-1bf0-4dda-aec3-cb9272f09590".into(),
        subscription_name: "wid".into(),
        client_id: "04b07795-8ddb-461a-bbee-02f9e1bf7b46".into(),
        client_secret: Some("secret".into()),
        principal_id: Some("5f8b0c2e-2f6a-4c1b-9a8e-0c3d7f1e2a4b".into()),
        display_name: Some("wid-admin".into()),
        ..Profile::default()
    }
    .save(&path)
    .unwrap();
    let mut env = HashMap::new();
    env.insert("WID_CONFIG".to_owned(), path.display().to_string());
    (dir, env)
}

#[test]
fn seed_commands_parse() {
    let cli = parse_ok(&[
        "identity",
        "federated-credential",
        "create",
        "--name",
        "x",
        "--identity-name",
        "y",
        "-g",
        "z",
        "--issuer",
        "i",
        "--subject",
        "s",
        "--audience",
        "a",
    ]);
    let Command::Identity(id) = cli.command else { panic!("not identity") };
    let IdentityCmd::FederatedCredential(FicCmd::Create(a)) = id.cmd else { panic!("not fic create") };
    assert_eq!((a.name.as_str(), a.identity_name.as_str(), a.resource_group.as_str()), ("x", "y", "z"));
    assert_eq!(a.issuer.as_deref(), Some("i"));
    assert_eq!(a.subject.as_deref(), Some("s"));
    assert_eq!(a.audiences, Some(vec!["a".to_owned()]));

    let cli = parse_ok(&["identity", "show", "-g", "rg", "-n", "id", "-o", "tsv", "--query", "clientId"]);
    let g = cli.command.global();
    assert_eq!(g.output, Some(OutputFormat::Tsv));
    assert_eq!(g.query.as_deref(), Some("clientId"));

    for args in [
        &["group", "create", "--name", "rg", "--location", "eastus"][..],
        &[
            "aks",
            "create",
            "--resource-group",
            "rg",
            "--name",
            "c",
            "--enable-oidc-issuer",
            "--enable-workload-identity",
            "--generate-ssh-keys",
        ],
        &[
            "aks",
            "show",
            "--name",
            "c",
            "--resource-group",
            "rg",
            "--query",
            "oidcIssuerProfile.issuerUrl",
            "--output",
            "tsv",
        ],
        &["account", "show", "--query", "id", "--output", "tsv"],
        &[
            "identity",
            "create",
            "--name",
            "i",
            "--resource-group",
            "rg",
            "--location",
            "eastus",
            "--subscription",
            "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
        ],
        &["ad", "signed-in-user", "show", "--query", "id", "-o", "tsv"],
        &["aks", "update", "--resource-group", "rg", "--name", "c", "--disable-workload-identity"],
        &[
            "aks",
            "update",
            "--resource-group",
            "rg",
            "--name",
            "c",
            "--enable-oidc-issuer",
            "--enable-workload-identity",
        ],
        &[
            "identity",
            "federated-credential",
            "create",
            "--name",
            "f",
            "--identity-name",
            "i",
            "--resource-group",
            "rg",
            "--issuer",
            "https://i/",
            "--subject",
            "system:serviceaccount:ns:sa",
            "--audiences",
            "a",
            "b",
        ],
        &[
            "identity",
            "show",
            "--ids",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i",
        ],
        &["group", "delete", "-n", "rg", "--yes", "--no-wait"],
        &[
            "login",
            "--service-principal",
            "-u",
            "c",
            "-p",
            "s",
            "--tenant",
            "t",
            "--server",
            "https://h:8443",
            "--ca-file",
            "/x/ca.pem",
        ],
        &["login", "--service-principal", "-u", "c", "--federated-token", "eyJ", "--tenant", "t"],
        &[
            "keyvault",
            "create",
            "--name",
            "kv",
            "--resource-group",
            "rg",
            "--location",
            "eastus",
            "--enable-purge-protection",
            "--enable-rbac-authorization",
        ],
        &["keyvault", "show", "--resource-group", "rg", "--name", "kv", "--query", "id", "--output", "tsv"],
        &["keyvault", "show", "-g", "rg", "-n", "kv", "--query", "properties.vaultUri", "-o", "tsv"],
        &["role", "assignment", "create", "--assignee", "o", "--role", "Key Vault Secrets Officer", "--scope", "/s"],
        &["keyvault", "secret", "set", "--vault-name", "kv", "--name", "s", "--value", "Hello\\!"],
        &[
            "role",
            "assignment",
            "create",
            "--assignee-object-id",
            "o",
            "--role",
            "Key Vault Secrets User",
            "--scope",
            "/s",
            "--assignee-principal-type",
            "ServicePrincipal",
        ],
        &["keyvault", "list", "-g", "rg"],
        &["keyvault", "delete", "-n", "kv", "-g", "rg"],
        &["keyvault", "purge", "-n", "kv", "-l", "eastus", "--no-wait"],
        &["keyvault", "list-deleted", "--resource-type", "vault"],
        &["keyvault", "create", "-n", "kv", "-g", "rg", "--retention-days", "7", "--enable-purge-protection", "false"],
        &["keyvault", "secret", "show", "--id", "https://kv.vault.localhost/secrets/s/v"],
        &["keyvault", "secret", "list", "--vault-name", "kv", "--maxresults", "5"],
        &["keyvault", "secret", "list-versions", "--vault-name", "kv", "-n", "s"],
        &["keyvault", "secret", "delete", "--vault-name", "kv", "-n", "s"],
        &["keyvault", "secret", "recover", "--vault-name", "kv", "-n", "s"],
        &["keyvault", "secret", "purge", "--id", "https://kv.vault.localhost/deletedsecrets/s"],
        &["keyvault", "secret", "backup", "--vault-name", "kv", "-n", "s", "--file", "/tmp/b"],
        &["keyvault", "secret", "restore", "--vault-name", "kv", "-f", "/tmp/b"],
        &[
            "keyvault",
            "secret",
            "set",
            "--vault-name",
            "kv",
            "-n",
            "s",
            "--file",
            "/tmp/v",
            "--encoding",
            "base64",
            "--content-type",
            "x",
            "--tags",
            "a=b",
            "c",
            "--disabled",
            "--expires",
            "2030-01-01T00:00:00Z",
            "--not-before",
            "2029-01-01",
        ],
        &["keyvault", "secret", "set-attributes", "--vault-name", "kv", "-n", "s", "--enabled", "false"],
        &["role", "assignment", "list", "--scope", "/s", "--include-inherited", "-o", "table"],
        &["role", "assignment", "list", "--all", "--assignee", "o"],
        &["role", "assignment", "delete", "--ids", "/a", "/b"],
        &["role", "definition", "list", "--name", "Reader"],
    ] {
        parse_ok(args);
    }
}

#[test]
fn key_vault_and_role_arguments() {
    use wid_cli::cmd::keyvault::KeyvaultCmd;
    use wid_cli::cmd::role::{AssignmentCmd, RoleCmd};
    use wid_cli::cmd::secret::SecretCmd;
    let cli = parse_ok(&["keyvault", "create", "-n", "kv", "-g", "rg", "--enable-purge-protection"]);
    let Command::Keyvault(k) = cli.command else { panic!() };
    let KeyvaultCmd::Create(c) = k.cmd else { panic!() };
    assert_eq!((c.enable_purge_protection, c.enable_rbac_authorization), (Some(true), None));
    let cli = parse_ok(&["keyvault", "create", "-n", "kv", "-g", "rg", "--enable-rbac-authorization", "FALSE"]);
    let Command::Keyvault(k) = cli.command else { panic!() };
    let KeyvaultCmd::Create(c) = k.cmd else { panic!() };
    assert_eq!(c.enable_rbac_authorization, Some(false));
    let cli = parse_ok(&["keyvault", "secret", "set", "--vault-name", "kv", "-n", "s", "--value", "-x-"]);
    let Command::Keyvault(k) = cli.command else { panic!() };
    let KeyvaultCmd::Secret(SecretCmd::Set(s)) = k.cmd else { panic!() };
    assert_eq!((s.value.as_deref(), s.encoding.as_str(), s.disabled), (Some("-x-"), "utf-8", None));
    let cli = parse_ok(&[
        "role",
        "assignment",
        "create",
        "--assignee-object-id",
        "o",
        "--role",
        "r",
        "--scope",
        "/",
        "--assignee-principal-type",
        "serviceprincipal",
    ]);
    let Command::Role(r) = cli.command else { panic!() };
    let RoleCmd::Assignment(AssignmentCmd::Create(c)) = r.cmd else { panic!() };
    assert_eq!(c.assignee_principal_type.as_deref(), Some("ServicePrincipal"));

    for bad in [
        &["keyvault", "secret", "set", "--vault-name", "kv", "-n", "s", "--expires", "tomorrow"][..],
        &["keyvault", "secret", "set", "--vault-name", "kv", "-n", "s", "--encoding", "latin1"],
        &["keyvault", "secret", "show", "--id", "https://x/secrets/s", "--vault-name", "kv"],
        &["keyvault", "create", "-n", "kv", "-g", "rg", "--enable-purge-protection", "maybe"],
        &["role", "assignment", "create", "--assignee", "o", "--role", "r", "--assignee-principal-type", "Robot"],
        &["role", "assignment", "create", "--assignee", "o", "--role", "r", "--scope", "/s", "-g", "rg"],
    ] {
        assert!(parse(argv(bad)).is_err(), "{bad:?}");
    }
}

#[tokio::test]
async fn key_vault_and_role_usage_errors_need_no_server() {
    let (_dir, env) = offline_profile();
    let (code, _, err) = run_cli(&["role", "assignment", "create", "--role", "Reader", "--scope", "/"], &env).await;
    assert_eq!((code, err.as_str()), (1, "ERROR: usage error: --assignee STRING | --assignee-object-id GUID\n"));
    let (code, _, err) = run_cli(&["role", "assignment", "delete"], &env).await;
    assert_eq!(code, 2);
    assert!(err.starts_with("ERROR: Please provide at least one of these arguments"), "{err}");
    let (code, _, err) = run_cli(&["keyvault", "secret", "set", "--vault-name", "kv", "-n", "s"], &env).await;
    assert_eq!((code, err.as_str()), (1, "ERROR: incorrect usage: [Required] --value VALUE | --file PATH\n"));
    let (code, _, err) = run_cli(&["keyvault", "secret", "show", "--vault-name", "kv"], &env).await;
    assert_eq!((code, err.as_str()), (2, "ERROR: Please specify --vault-name and --name, or --id.\n"));
    let (code, _, err) = run_cli(&["role", "assignment", "list", "--all", "-g", "rg"], &env).await;
    assert_eq!((code, err.as_str()), (1, "ERROR: group or scope are not required when --all is used\n"));
    let mut env = env;
    env.insert("WID_RESOLVE".into(), "nonsense".into());
    let (code, _, err) = run_cli(&["group", "list"], &env).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("ERROR: Invalid WID_RESOLVE entry 'nonsense'"), "{err}");
}

#[test]
fn get_token_arguments() {
    let cli = parse_ok(&[
        "aks",
        "get-token",
        "-n",
        "c",
        "-g",
        "rg",
        "--namespace",
        "ns",
        "--service-account",
        "sa",
        "--duration",
        "90m",
    ]);
    let Command::Aks(a) = cli.command else { panic!() };
    let AksCmd::GetToken(t) = a.cmd else { panic!() };
    assert_eq!(t.duration, 5400);
    assert_eq!(t.audience, vec!["api://AzureADTokenExchange".to_owned()]);
    let cli = parse_ok(&[
        "aks",
        "get-token",
        "-n",
        "c",
        "-g",
        "rg",
        "--namespace",
        "ns",
        "--service-account",
        "sa",
        "--audience",
        "x",
        "--audience",
        "y",
    ]);
    let Command::Aks(a) = cli.command else { panic!() };
    let AksCmd::GetToken(t) = a.cmd else { panic!() };
    assert_eq!(t.duration, 3600);
    assert_eq!(t.audience, vec!["x".to_owned(), "y".to_owned()]);
    assert!(
        parse(argv(&[
            "aks",
            "get-token",
            "-n",
            "c",
            "-g",
            "rg",
            "--namespace",
            "n",
            "--service-account",
            "s",
            "--duration",
            "1500ms"
        ]))
        .is_err()
    );
}

#[test]
fn conflicting_and_missing_arguments_are_usage_errors() {
    assert!(
        parse(argv(&[
            "aks",
            "update",
            "-n",
            "c",
            "-g",
            "rg",
            "--enable-workload-identity",
            "--disable-workload-identity"
        ]))
        .is_err()
    );
    assert!(parse(argv(&["identity", "show", "--ids", "/x", "-n", "y"])).is_err());
    assert!(parse(argv(&["login", "-u", "c", "-p", "s", "--federated-token", "t"])).is_err());
    assert!(parse(argv(&["group", "list", "-o", "xml"])).is_err());
}

#[tokio::test]
async fn delete_without_tty_is_cancelled_like_az() {
    let (_dir, env) = offline_profile();
    let (code, out, err) = run_cli(&["group", "delete", "-n", "rg"], &env).await;
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "WARNING: Unable to prompt for confirmation as no tty available. Use --yes.\nERROR: Operation cancelled.\n"
    );
    let (code, _, err) = run_cli(&["group", "delete", "-n", "rg", "--only-show-errors"], &env).await;
    assert_eq!(code, 1);
    assert_eq!(err, "ERROR: Operation cancelled.\n");
}

#[tokio::test]
async fn delete_prompt_answered_no() {
    let (_dir, env) = offline_profile();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = run_with(
        argv(&["aks", "delete", "-n", "c", "-g", "rg"]),
        env,
        &mut out,
        &mut err,
        Console::scripted(&["maybe", "n"]),
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "Are you sure you want to perform this operation? (y/n): Are you sure you want to perform this operation? (y/n): "
    );
    assert_eq!(String::from_utf8(err).unwrap(), "ERROR: Operation cancelled.\n");
}

#[tokio::test]
async fn profile_only_commands() {
    let (_dir, env) = offline_profile();
    let (code, out, err) = run_cli(&["account", "show", "--query", "id", "-o", "tsv"], &env).await;
    assert_eq!((code, out.as_str(), err.as_str()), (0, "0b1f6471-1bf0-4dda-aec3-cb9272f09590\n", ""));

    let (code, out, _) = run_cli(&["account", "show"], &env).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        r#"{
  "environmentName": "wid",
  "homeTenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
  "id": "0b1f6471-1bf0-4dda-aec3-cb9272f09590",
  "isDefault": true,
  "managedByTenants": [],
  "name": "wid",
  "state": "Enabled",
  "tenantId": "72f988bf-86f1-41af-91ab-2d7cd011db47",
  "user": {
    "name": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    "type": "servicePrincipal"
  }
}
"#
    );

    let (code, out, _) = run_cli(&["ad", "signed-in-user", "show", "--query", "id", "-o", "tsv"], &env).await;
    assert_eq!((code, out.as_str()), (0, "5f8b0c2e-2f6a-4c1b-9a8e-0c3d7f1e2a4b\n"));

    let (code, out, _) = run_cli(&["account", "list", "-o", "table"], &env).await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Name    CloudName    SubscriptionId                        TenantId                              State    IsDefault\n\
         ------  -----------  ------------------------------------  ------------------------------------  -------  -----------\n\
         wid     wid          0b1f6471-1bf0-4dda-aec3-cb9272f09590  72f988bf-86f1-41af-91ab-2d7cd011db47  Enabled  True\n"
    );

    let (code, out, _) = run_cli(&["account", "show", "--query", "{sub: id, who: user.name}", "-o", "tsv"], &env).await;
    assert_eq!(
        (code, out.as_str()),
        (0, "0b1f6471-1bf0-4dda-aec3-cb9272f09590\t04b07795-8ddb-461a-bbee-02f9e1bf7b46\n")
    );

    let (code, out, _) = run_cli(&["account", "show", "--query", "nothing"], &env).await;
    assert_eq!((code, out.as_str()), (0, ""));

    let (code, out, _) = run_cli(&["account", "show", "-o", "none"], &env).await;
    assert_eq!((code, out.as_str()), (0, ""));

    let (code, _, err) = run_cli(&["account", "show", "--query", "length(`1`)"], &env).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("ERROR: Invalid jmespath query supplied for `--query`: In function length()"), "{err}");

    let (code, _, err) = run_cli(&["account", "show", "--subscription", "other"], &env).await;
    assert_eq!(code, 1);
    assert_eq!(err, "ERROR: Subscription 'other' not found. Check the spelling and casing and try again.\n");
}

#[tokio::test]
async fn unreachable_server_is_an_error_not_a_panic() {
    let (_dir, env) = offline_profile();
    let (code, out, err) = run_cli(&["group", "list"], &env).await;
    assert_eq!(code, 1);
    assert_eq!(out, "");
    assert!(err.starts_with("ERROR: Failed to connect to https://127.0.0.1:9/"), "{err}");
    assert!(!err.contains("secret"));
}
