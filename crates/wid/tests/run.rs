//! `wid run` against an in-process `wid serve`: the real `wid` binary runs `sh -c` children and
//! the seed 004 Python application; the client-id discovery and `--print-env` run in-process.
//!
//! Each `wid run` process is started in a process group of its own, so a SIGINT sent by the test
//! is forwarded even when the test runner sits in a terminal's foreground group.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use std::sync::Arc;

use rustix::process::Signal;
use wid_core::SystemClock;
use wid_testkit::{TestServer, claims_of, send_signal};

const AUD: &str = "api://AzureADTokenExchange";
const NS: &str = "ns1";
const SA: &str = "sa1";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A server with the walkthrough's objects: group `rg`, hosted cluster `c1`, identity `id1`
/// federated with `system:serviceaccount:ns1:sa1`.
struct Setup {
    s: TestServer,
    env: HashMap<String, String>,
    issuer: String,
    client_id: String,
    /// Scratch space: HOME, TMPDIR, files the children write.
    scratch: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        Self::start(false).await
    }

    /// As [`Setup::new`], the server answering under Azure's names too (`--azure-hostnames`).
    async fn azure_hostnames() -> Self {
        Self::start(true).await
    }

    async fn start(azure_hostnames: bool) -> Self {
        let s = TestServer::start_with(|cfg| cfg.azure_hostnames = azure_hostnames, Arc::new(SystemClock)).await;
        let scratch = tempfile::tempdir().unwrap();
        let mut env = HashMap::new();
        env.insert("WID_CONFIG".to_owned(), s.dir.path().join("profile.json").display().to_string());
        env.insert("HOME".to_owned(), scratch.path().join("home").display().to_string());
        let mut setup = Setup { s, env, issuer: String::new(), client_id: String::new(), scratch };
        setup.ok(&["group", "create", "-n", "rg", "-l", "eastus", "-o", "none"]).await;
        setup
            .ok(&[
                "aks",
                "create",
                "-n",
                "c1",
                "-g",
                "rg",
                "--enable-oidc-issuer",
                "--enable-workload-identity",
                "-o",
                "none",
            ])
            .await;
        setup.issuer = setup
            .tsv(&["aks", "show", "-n", "c1", "-g", "rg", "--query", "oidcIssuerProfile.issuerUrl", "-o", "tsv"])
            .await;
        setup.client_id =
            setup.identity_with_credential("id1", "fic1", &format!("system:serviceaccount:{NS}:{SA}")).await;
        setup
    }

    /// Creates an identity with one federated credential for `subject` on c1's issuer; returns its client id.
    async fn identity_with_credential(&self, identity: &str, fic: &str, subject: &str) -> String {
        self.ok(&["identity", "create", "-n", identity, "-g", "rg", "-o", "none"]).await;
        self.ok(&[
            "identity",
            "federated-credential",
            "create",
            "--name",
            fic,
            "--identity-name",
            identity,
            "-g",
            "rg",
            "--issuer",
            &self.issuer,
            "--subject",
            subject,
            "--audience",
            AUD,
            "-o",
            "none",
        ])
        .await;
        self.tsv(&["identity", "show", "-n", identity, "-g", "rg", "--query", "clientId", "-o", "tsv"]).await
    }

    async fn run_env(&self, args: &[&str], env: &HashMap<String, String>) -> (i32, String, String) {
        let argv = std::iter::once("wid").chain(args.iter().copied()).map(String::from).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = wid_cli::run(argv, env.clone(), &mut out, &mut err).await;
        (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
    }

    async fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_env(args, &self.env).await
    }

    async fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args).await;
        assert_eq!(code, 0, "wid {args:?}\nstdout: {out}\nstderr: {err}");
        out
    }

    async fn tsv(&self, args: &[&str]) -> String {
        self.ok(args).await.trim_end().to_owned()
    }

    /// Vault `kv` holding secret `my-secret` = `value`, readable by identity id1 (Key Vault Secrets
    /// User); returns the vault's URL as `keyvault show` gives it.
    async fn vault_with_secret(&self, kv: &str, value: &str) -> String {
        let kv_id = self
            .tsv(&[
                "keyvault",
                "create",
                "-n",
                kv,
                "-g",
                "rg",
                "--enable-rbac-authorization",
                "--query",
                "id",
                "-o",
                "tsv",
            ])
            .await;
        let me = self.tsv(&["ad", "signed-in-user", "show", "--query", "id", "-o", "tsv"]).await;
        let principal =
            self.tsv(&["identity", "show", "-n", "id1", "-g", "rg", "--query", "principalId", "-o", "tsv"]).await;
        for (who, role) in [(me.as_str(), "Key Vault Secrets Officer"), (principal.as_str(), "Key Vault Secrets User")]
        {
            self.ok(&[
                "role",
                "assignment",
                "create",
                "--assignee-object-id",
                who,
                "--assignee-principal-type",
                "ServicePrincipal",
                "--role",
                role,
                "--scope",
                &kv_id,
                "-o",
                "none",
            ])
            .await;
        }
        self.ok(&["keyvault", "secret", "set", "--vault-name", kv, "-n", "my-secret", "--value", value, "-o", "none"])
            .await;
        self.tsv(&["keyvault", "show", "-n", kv, "-g", "rg", "--query", "properties.vaultUri", "-o", "tsv"]).await
    }

    fn tmpdir(&self) -> PathBuf {
        let dir = self.scratch.path().join("tmp");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The real binary: `wid run -n c1 -g rg --namespace ns1 --service-account sa1 EXTRA… -- sh -c SCRIPT`,
    /// with a clean environment plus `vars`.
    fn spawn(&self, extra: &[&str], script: &str, vars: &[(&str, &str)]) -> tokio::process::Child {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wid"));
        cmd.args(["run", "-n", "c1", "-g", "rg", "--namespace", NS, "--service-account", SA])
            .args(extra)
            .args(["--", "sh", "-c", script])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
            .env("TMPDIR", self.tmpdir())
            .envs(&self.env)
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        cmd.spawn().unwrap()
    }
}

async fn finish(child: tokio::process::Child) -> (i32, String, String) {
    let out =
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.expect("wid run ends").unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

fn empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_gets_a_pods_environment_and_its_exit_code_passes_through() {
    let t = Setup::new().await;
    let script = r#"
        f="$AZURE_FEDERATED_TOKEN_FILE"
        printf 'client=%s\ntenant=%s\nfile=%s\nauthority=%s\n' "$AZURE_CLIENT_ID" "$AZURE_TENANT_ID" "$f" "$AZURE_AUTHORITY_HOST"
        printf 'ssl=%s\nrequests=%s\nnode=%s\n' "$SSL_CERT_FILE" "$REQUESTS_CA_BUNDLE" "$NODE_EXTRA_CA_CERTS"
        printf 'mine=%s\nsecret=%s\n' "$MY_SETTING" "${AZURE_CLIENT_SECRET-unset}"
        printf 'modes=%s %s\n' "$(stat -c %a "$f")" "$(stat -c %a "$(dirname "$f")")"
        printf 'token=%s\n' "$(cat "$f")"
        exit 42
    "#;
    let child = t.spawn(&[], script, &[("MY_SETTING", "kept"), ("AZURE_CLIENT_SECRET", "do-not-use")]);
    let (code, out, err) = finish(child).await;
    assert_eq!(code, 42, "stdout: {out}\nstderr: {err}");
    let vars: HashMap<&str, &str> = out.lines().filter_map(|l| l.split_once('=')).collect();
    assert_eq!(vars["client"], t.client_id, "discovered from the federated credential");
    assert_eq!(vars["tenant"], t.s.tenant);
    assert_eq!(vars["authority"], t.s.url);
    let file = Path::new(vars["file"]);
    assert!(file.starts_with(t.tmpdir()) && file.ends_with("azure-identity-token"), "{file:?}");
    assert_eq!(vars["modes"], "600 700");
    let claims = claims_of(vars["token"]);
    assert_eq!(claims["sub"], format!("system:serviceaccount:{NS}:{SA}"));
    assert_eq!(claims["iss"], t.issuer.as_str());
    assert_eq!(claims["aud"], serde_json::json!([AUD]));
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3600, "--duration 1h by default");
    // CA trust: a bundle (wid's CA first) for the variables that replace the trust store; the CA
    // itself for Node's additive one.
    let ca = t.s.ca_pem();
    assert_eq!(vars["ssl"], vars["requests"]);
    assert_eq!(Path::new(vars["ssl"]).parent(), file.parent());
    assert_eq!(vars["node"], ca.to_str().unwrap());
    // The rest of the environment is the caller's, minus credentials DefaultAzureCredential would prefer.
    assert_eq!(vars["mine"], "kept");
    assert_eq!(vars["secret"], "unset");
    assert!(err.contains("WARNING: AZURE_CLIENT_SECRET is removed for this workload"), "{err}");
    assert!(!err.contains("do-not-use"), "{err}");
    // The private directory is gone.
    assert!(empty_dir(&t.tmpdir()), "left behind: {:?}", std::fs::read_dir(t.tmpdir()).unwrap().collect::<Vec<_>>());

    // Killed by a signal: 128+N, as a shell reports it.
    let (code, _, err) = finish(t.spawn(&[], "kill -KILL $$", &[])).await;
    assert_eq!(code, 128 + 9, "{err}");
    // A user's CA setting is kept, with a warning.
    let (code, out, err) =
        finish(t.spawn(&[], r#"printf '%s' "$SSL_CERT_FILE""#, &[("SSL_CERT_FILE", "/etc/mine.pem")])).await;
    assert_eq!((code, out.as_str()), (0, "/etc/mine.pem"), "{err}");
    assert!(err.contains("WARNING: SSL_CERT_FILE is already set ('/etc/mine.pem'); keeping it"), "{err}");
    assert!(empty_dir(&t.tmpdir()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_run() {
    let t = Setup::new().await;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_wid"));
    cmd.args([
        "run",
        "-n",
        "c1",
        "-g",
        "rg",
        "--namespace",
        NS,
        "--service-account",
        SA,
        "--",
        "/no/such/program",
        "x",
    ])
    .env_clear()
    .env("TMPDIR", t.tmpdir())
    .envs(&t.env);
    let out = cmd.output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(err.starts_with("ERROR: cannot run '/no/such/program':"), "{err}");
    assert!(empty_dir(&t.tmpdir()));

    // No command at all is a usage error.
    let (code, _, err) = t.run(&["run", "-n", "c1", "-g", "rg", "--namespace", NS, "--service-account", SA]).await;
    assert_eq!(code, 2, "{err}");
}

/// kubelet's refresh at 80 % of the lifetime, scaled down with the hidden `--refresh-at` (the
/// shortest token the issuer mints lives 10 minutes): the child sees the file replaced, never a
/// partial one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_refreshed_and_replaced_atomically() {
    let t = Setup::new().await;
    // 600 s × 0.002 = 1.2 s between tokens.
    let script = r#"
        f="$AZURE_FEDERATED_TOKEN_FILE"
        last=$(cat "$f"); printf '%s\n' "$last"; seen=1; reads=0
        deadline=$(( $(date +%s) + 30 ))
        while [ "$seen" -lt 3 ]; do
            t=$(cat "$f"); reads=$((reads + 1))
            case "$t" in
                *.*.*) ;;
                *) echo "PARTIAL READ: '$t'"; exit 3 ;;
            esac
            if [ "$t" != "$last" ]; then printf '%s\n' "$t"; last=$t; seen=$((seen + 1)); fi
            [ "$(date +%s)" -gt "$deadline" ] && { echo "NO REFRESH"; exit 4; }
        done
        echo "reads=$reads"
    "#;
    let (code, out, err) = finish(t.spawn(&["--duration", "10m", "--refresh-at", "0.002"], script, &[])).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let tokens: Vec<&str> = out.lines().filter(|l| l.starts_with("ey")).collect();
    assert_eq!(tokens.len(), 3, "{out}");
    let iats: Vec<i64> = tokens.iter().map(|t| claims_of(t)["iat"].as_i64().unwrap()).collect();
    assert!(iats[0] < iats[1] && iats[1] < iats[2], "fresh tokens: {iats:?}");
    for t in &tokens {
        let c = claims_of(t);
        assert_eq!(c["sub"], format!("system:serviceaccount:{NS}:{SA}"));
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 600);
    }
    assert!(err.is_empty(), "{err}");
}

/// A refresh that fails (here: the cluster was deleted) leaves the current token in place, says so,
/// and is retried with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_refresh_keeps_the_token_and_is_retried() {
    let t = Setup::new().await;
    let ready = t.scratch.path().join("ready-refresh");
    // 600 s × 0.005 = 3 s to the first refresh; retries after 1 s and 2 s more.
    let script = r#"f="$AZURE_FEDERATED_TOKEN_FILE"; first=$(cat "$f"); : > "$READY"; sleep 6.5
        [ "$(cat "$f")" = "$first" ] && echo unchanged"#;
    let child = t.spawn(&["--duration", "10m", "--refresh-at", "0.005"], script, &[("READY", ready.to_str().unwrap())]);
    let started = Instant::now();
    while !ready.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the child never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.ok(&["aks", "delete", "-n", "c1", "-g", "rg", "--yes"]).await;
    let (code, out, err) = finish(child).await;
    assert_eq!((code, out.as_str()), (0, "unchanged\n"), "{err}");
    let warnings: Vec<&str> = err.lines().collect();
    assert!(warnings.len() >= 2, "{err}");
    assert!(
        warnings[0].starts_with(
            "WARNING: Could not refresh the service-account token: (ResourceNotFound) The Resource 'Microsoft.ContainerService/managedClusters/c1' under resource group 'rg' was not found."
        ) && warnings[0].contains("; retrying in 1 s (the current token expires at "),
        "{err}"
    );
    assert!(warnings[1].contains("; retrying in 2 s (the current token expires at "), "{err}");
}

/// SIGTERM, SIGINT and SIGHUP reach the child; its exit code is `wid run`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_forwarded_to_the_child() {
    let t = Setup::new().await;
    for (signal, trap_code) in [("TERM", 7), ("INT", 9), ("HUP", 5)] {
        let ready = t.scratch.path().join(format!("ready-{signal}"));
        let script = format!(
            r#"trap 'echo got {signal}; exit {trap_code}' {signal}; : > "$READY"; while :; do sleep 0.05; done"#
        );
        let child = t.spawn(&[], &script, &[("READY", ready.to_str().unwrap())]);
        let started = Instant::now();
        while !ready.exists() {
            assert!(started.elapsed() < Duration::from_secs(30), "the child never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let unix_signal = match signal {
            "TERM" => Signal::TERM,
            "INT" => Signal::INT,
            _ => Signal::HUP,
        };
        send_signal(child.id().unwrap(), unix_signal);
        let (code, out, err) = finish(child).await;
        assert_eq!(code, trap_code, "SIG{signal}: stdout: {out}\nstderr: {err}");
        assert_eq!(out, format!("got {signal}\n"));
        assert!(empty_dir(&t.tmpdir()));
    }

    // A child that does not handle SIGTERM dies of it: 128+15.
    let ready = t.scratch.path().join("ready-plain");
    let child = t.spawn(&[], r#": > "$READY"; exec sleep 30"#, &[("READY", ready.to_str().unwrap())]);
    let started = Instant::now();
    while !ready.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the child never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // until `exec sleep` has replaced sh
    send_signal(child.id().unwrap(), Signal::TERM);
    let (code, _, err) = finish(child).await;
    assert_eq!(code, 128 + 15, "{err}");
    assert!(empty_dir(&t.tmpdir()));
}

/// Ctrl-C at a terminal: the terminal sends SIGINT to the whole foreground process group, the
/// child included, so `wid run` does not send a second one. A `script(1)` pseudo-terminal types
/// the ^C; the child (Python, `sigtimedwait`) reports every SIGINT with its origin. Skipped without
/// `script` or `python3`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_at_a_terminal_reaches_the_child_once() {
    let has = |program: &str, args: &[&str]| {
        std::process::Command::new(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has("script", &["--version"]) || !has("python3", &["-c", "import signal; signal.sigtimedwait"]) {
        skip("needs script(1) and python3");
        return;
    }
    let t = Setup::new().await;
    let counter = t.scratch.path().join("sigcount.py");
    std::fs::write(
        &counter,
        r#"
import os, signal, sys, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
open(os.environ["READY"], "w").close()
got, deadline = [], None
while True:
    timeout = 30 if deadline is None else max(0.0, deadline - time.monotonic())
    info = signal.sigtimedwait({signal.SIGINT}, timeout)
    if info is None:
        break
    got.append("terminal" if info.si_code == 0x80 else f"sent-by-pid-{info.si_pid}")
    deadline = deadline or time.monotonic() + 1.0
print("SIGINT from:", ",".join(got), flush=True)
sys.exit(len(got))
"#,
    )
    .unwrap();
    let ready = t.scratch.path().join("ready-tty");
    let command = format!(
        "exec '{}' run -n c1 -g rg --namespace {NS} --service-account {SA} -- python3 '{}'",
        env!("CARGO_BIN_EXE_wid"),
        counter.display()
    );
    let mut child = tokio::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .env("SHELL", "/bin/sh")
        .env("TMPDIR", t.tmpdir())
        .env("READY", &ready)
        .envs(&t.env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        tokio::io::AsyncReadExt::read_to_end(&mut stdout, &mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    });
    let started = Instant::now();
    while !ready.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the child never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"\x03").await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("ends").unwrap();
    drop(stdin);
    let out = reader.await.unwrap();
    assert!(out.contains("SIGINT from: terminal\r\n"), "{out}");
    assert_eq!(status.code(), Some(1), "one SIGINT: {out}");
    assert!(empty_dir(&t.tmpdir()));
}

#[tokio::test]
async fn client_id_discovery() {
    let t = Setup::new().await;
    let print_env = |ns: &'static str, sa: &'static str| {
        vec!["run", "-n", "c1", "-g", "rg", "--namespace", ns, "--service-account", sa, "--print-env"]
    };

    // One identity admits the token: its client id.
    let (code, out, err) = t.run(&print_env(NS, SA)).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("export AZURE_CLIENT_ID='{}'\n", t.client_id)), "{out}");

    // None: the error says what was looked for, what came close, and how to fix it.
    let (code, out, err) = t.run(&print_env(NS, "other")).await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    let subject = format!("system:serviceaccount:{NS}:other");
    assert!(
        err.starts_with(&format!(
            "ERROR: No identity has a federated credential for service account '{NS}/other' of cluster 'c1' (issuer '{}', subject '{subject}', audience '{AUD}'); looked at 1 identities",
            t.issuer
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "identity 'id1' (resource group 'rg'), credential 'fic1': its subject is 'system:serviceaccount:{NS}:{SA}'"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "wid identity federated-credential create --name NAME --identity-name IDENTITY --resource-group RG --issuer {} --subject {subject} --audience {AUD}",
            t.issuer
        )),
        "{err}"
    );
    assert!(err.contains("--client-id"), "{err}");

    // A credential on the issuer without its trailing slash is a near miss, named as such.
    t.ok(&["identity", "create", "-n", "id-noslash", "-g", "rg", "-o", "none"]).await;
    t.ok(&[
        "identity",
        "federated-credential",
        "create",
        "--name",
        "noslash",
        "--identity-name",
        "id-noslash",
        "-g",
        "rg",
        "--issuer",
        t.issuer.trim_end_matches('/'),
        "--subject",
        "system:serviceaccount:ns9:sa9",
        "--audience",
        AUD,
        "-o",
        "none",
    ])
    .await;
    let (code, _, err) = t.run(&print_env("ns9", "sa9")).await;
    assert_eq!(code, 1);
    assert!(err.contains("credential 'noslash': its issuer") && err.contains("trailing '/'"), "{err}");

    // Several: all listed, choose with --client-id.
    let second = t.identity_with_credential("id2", "fic2", &format!("system:serviceaccount:{NS}:{SA}")).await;
    let (code, _, err) = t.run(&print_env(NS, SA)).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("ERROR: 2 identities have a federated credential for service account 'ns1/sa1'"), "{err}");
    assert!(
        err.contains(&format!(
            "--client-id {}  (identity 'id1' in resource group 'rg', credential 'fic1')",
            t.client_id
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("--client-id {second}  (identity 'id2' in resource group 'rg', credential 'fic2')")),
        "{err}"
    );
    let mut args = print_env(NS, SA);
    args.extend(["--client-id", &second]);
    let (code, out, err) = t.run(&args).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("export AZURE_CLIENT_ID='{second}'\n")), "{out}");

    // A flexible credential (claims-matching expression) counts as the token service counts it.
    t.ok(&["identity", "create", "-n", "id-flex", "-g", "rg", "-o", "none"]).await;
    t.ok(&[
        "identity",
        "federated-credential",
        "create",
        "--name",
        "flex",
        "--identity-name",
        "id-flex",
        "-g",
        "rg",
        "--issuer",
        &t.issuer,
        "--claims-matching-expression-value",
        "claims['sub'] matches 'system:serviceaccount:batch:*'",
        "--claims-matching-expression-version",
        "1",
        "--audience",
        AUD,
        "-o",
        "none",
    ])
    .await;
    let flex = t.tsv(&["identity", "show", "-n", "id-flex", "-g", "rg", "--query", "clientId", "-o", "tsv"]).await;
    let (code, out, err) = t.run(&print_env("batch", "job-1")).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("export AZURE_CLIENT_ID='{flex}'\n")), "{out}");
}

#[tokio::test]
async fn print_env_keeps_the_token_under_the_cache_dir() {
    let t = Setup::new().await;
    let args = ["run", "-n", "c1", "-g", "rg", "--namespace", NS, "--service-account", SA, "--print-env"];
    let (code, out, err) = t.run(&args).await;
    assert_eq!(code, 0, "{err}");
    let home = Path::new(&t.env["HOME"]);
    let dir = home.join(".cache/wid/run").join(&t.s.subscription).join("rg/c1").join(NS).join(SA);
    let token = dir.join("azure-identity-token");
    let bundle = dir.join("ca-bundle.pem");
    assert_eq!(
        out,
        format!(
            "export AZURE_CLIENT_ID='{}'\nexport AZURE_TENANT_ID='{}'\nexport AZURE_FEDERATED_TOKEN_FILE='{}'\nexport AZURE_AUTHORITY_HOST='{}'\nexport SSL_CERT_FILE='{b}'\nexport REQUESTS_CA_BUNDLE='{b}'\nexport NODE_EXTRA_CA_CERTS='{}'\n",
            t.client_id,
            t.s.tenant,
            token.display(),
            t.s.url,
            t.s.ca_pem().display(),
            b = bundle.display(),
        )
    );
    assert_eq!(mode(&token), 0o600);
    let claims = claims_of(&std::fs::read_to_string(&token).unwrap());
    assert_eq!(claims["sub"], format!("system:serviceaccount:{NS}:{SA}"));
    let ca = std::fs::read_to_string(t.s.ca_pem()).unwrap();
    assert!(std::fs::read_to_string(&bundle).unwrap().starts_with(ca.trim_end()), "wid's CA comes first");
    assert!(err.contains("is not refreshed") && err.contains(&token.display().to_string()), "{err}");

    // Again: the same path, a fresh token; a credential in the caller's environment is unset.
    let mut env = t.env.clone();
    env.insert("AZURE_CLIENT_SECRET".into(), "s".into());
    let (code, out2, _) = t.run_env(&args, &env).await;
    assert_eq!(code, 0);
    assert!(out2.starts_with(&out) && out2.ends_with("unset AZURE_CLIENT_SECRET\n"), "{out2}");
    assert!(std::fs::read_dir(&dir).unwrap().count() == 2, "no temp files left");
}

#[tokio::test]
async fn clusters_with_an_external_issuer_cannot_mint() {
    let t = Setup::new().await;
    t.ok(&["aks", "create", "-n", "onprem", "-g", "rg", "--issuer-url", "https://issuer.example/x/", "-o", "none"])
        .await;
    let (code, _, err) =
        t.run(&["run", "-n", "onprem", "-g", "rg", "--namespace", NS, "--service-account", SA, "--print-env"]).await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("ERROR: Cluster 'onprem' has an external issuer (https://issuer.example/x/): its service-account keys are the cluster's, not wid's"),
        "{err}"
    );
    // A cluster that does not exist: az's not-found exit code.
    let (code, _, err) =
        t.run(&["run", "-n", "nope", "-g", "rg", "--namespace", NS, "--service-account", SA, "--print-env"]).await;
    assert_eq!(code, 3, "{err}");
}

/// The seed 004 application, unchanged, under `wid run`: it reads its secret through
/// DefaultAzureCredential → WorkloadIdentityCredential → wid's token service → wid's Key Vault.
/// Needs the Python venv of `scripts/sdk-python.sh` (target/sdk-venv) and a mount namespace for a
/// private /etc/hosts (the vault is `kv-wid-run.vault.localhost`); skipped with a message otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed004_app_reads_its_secret_under_wid_run() {
    let Some((python, app)) = seed004_app() else { return };
    let Some(unshare) = ["-m", "-rm"].into_iter().find(|flags| {
        std::process::Command::new("unshare")
            .args([flags, "--", "sh", "-c", "mount --bind /etc/hosts /etc/hosts"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }) else {
        skip("cannot mount a private /etc/hosts (unshare -m and unshare -rm failed)");
        return;
    };

    let t = Setup::new().await;
    let kv = "kv-wid-run";
    let vault_url = t.vault_with_secret(kv, "Hello from wid run!").await;

    let hosts = t.scratch.path().join("hosts");
    let mut text = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("127.0.0.1 localhost vault.localhost {kv}.vault.localhost\n"));
    std::fs::write(&hosts, text).unwrap();

    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args([unshare, "--", "sh", "-c", r#"mount --bind "$0" /etc/hosts && exec "$@""#])
        .arg(&hosts)
        .arg(env!("CARGO_BIN_EXE_wid"))
        .args(["run", "-n", "c1", "-g", "rg", "--namespace", NS, "--service-account", SA, "--"])
        .arg(&python)
        .arg(&app)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into()))
        .env("TMPDIR", t.tmpdir())
        .env("LANG", "C.UTF-8")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(&t.env)
        // The pod spec's variables (seed 003).
        .env("KEYVAULT_URL", &vault_url)
        .env("SECRET_NAME", "my-secret")
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output()).await.expect("the app finishes").unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(stdout, "Hello from wid run!\n");
    assert!(empty_dir(&t.tmpdir()));
}

/// What the command checks under `wid run --azure-hostnames`, with Python's standard library only
/// (as an SDK does, from the environment alone): Azure's discovery document and token endpoint
/// at `AZURE_AUTHORITY_HOST`, the federated exchange with the token file, a secret read at
/// `https://NAME.vault.azure.net/`, TLS through the system bundle without `SSL_CERT_FILE`, the
/// namespace's interfaces, wid's own URL, and who it runs as.
const AZURE_PROBE: &str = r#"
import json, os, ssl, sys, urllib.error, urllib.parse, urllib.request

def fetch(url, data=None, headers={}, context=None):
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

authority, tenant = os.environ["AZURE_AUTHORITY_HOST"], os.environ["AZURE_TENANT_ID"]
print("authority=" + authority)
status, body = fetch(f"{authority}{tenant}/v2.0/.well-known/openid-configuration")
endpoint = json.loads(body)["token_endpoint"]
print("token_endpoint=" + endpoint)
form = urllib.parse.urlencode({
    "grant_type": "client_credentials",
    "client_id": os.environ["AZURE_CLIENT_ID"],
    "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    "client_assertion": open(os.environ["AZURE_FEDERATED_TOKEN_FILE"]).read(),
    "scope": "https://vault.azure.net/.default",
}).encode()
status, body = fetch(endpoint, data=form)
print(f"token_status={status}")
token = json.loads(body)["access_token"]
status, body = fetch(os.environ["VAULT_URL"] + "secrets/my-secret?api-version=7.4",
                     headers={"Authorization": "Bearer " + token})
print(f"secret_status={status}")
print("secret=" + json.loads(body)["value"])
system = next(p for p in ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt",
                          "/etc/ssl/ca-bundle.pem", "/etc/pki/tls/cacert.pem",
                          "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem", "/etc/ssl/cert.pem"]
              if os.path.isfile(p))
status, _ = fetch("https://management.azure.com/subscriptions?api-version=2022-12-01",
                  context=ssl.create_default_context(cafile=system))
print(f"system_bundle_status={status}")
print("interfaces=" + ",".join(sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:])))
status, body = fetch(os.environ["WID_URL"] + "/healthz")
print(f"own_url={status} {body.decode()}")
print(f"uid={os.getuid()}")
sys.exit(int(os.environ.get("EXIT_WITH", "0")))
"#;

/// The probe's `key=value` lines.
fn probe_lines(out: &str) -> HashMap<&str, &str> {
    out.lines().filter_map(|l| l.split_once('=')).collect()
}

/// What the probe prints when everything reached wid as AKS's names.
fn assert_probe(t: &Setup, out: &str, uid: u32) {
    let v = probe_lines(out);
    assert_eq!(v.get("authority"), Some(&"https://login.microsoftonline.com/"), "AKS's value: {out}");
    assert_eq!(v["token_endpoint"], format!("https://login.microsoftonline.com/{}/oauth2/v2.0/token", t.s.tenant));
    assert_eq!(v["token_status"], "200");
    assert_eq!(v["secret_status"], "200");
    assert_eq!(v["secret"], "from the namespace");
    assert_eq!(v["system_bundle_status"], "401", "TLS through the system bundle, then ARM's challenge: {out}");
    assert_eq!(v["interfaces"], "lo", "loopback only: {out}");
    assert_eq!(v["own_url"], "200 ok");
    assert_eq!(v["uid"], uid.to_string(), "the caller's uid: {out}");
}

/// `wid run --azure-hostnames` against `wid serve --azure-hostnames` on a loopback port: the
/// command reaches wid as login.microsoftonline.com and NAME.vault.azure.net on port 443 from its
/// own namespaces (rootless when the test runs unprivileged), with AKS's environment; exit codes
/// and signals as plain `wid run`; the machine's /etc/hosts untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_hostnames_reach_wid_from_the_commands_namespaces() {
    let t = Setup::azure_hostnames().await;
    let vault_url = t.vault_with_secret("kv-azns", "from the namespace").await;
    assert!(vault_url.starts_with("https://kv-azns.vault.localhost:"), "wid's own name outside: {vault_url}");
    let probe = t.scratch.path().join("probe.py");
    std::fs::write(&probe, AZURE_PROBE).unwrap();
    let hosts_before = std::fs::read("/etc/hosts").unwrap_or_default();

    let vars = [
        ("PROBE", probe.to_str().unwrap()),
        ("VAULT_URL", "https://kv-azns.vault.azure.net/"),
        ("WID_URL", t.s.url.as_str()),
        ("EXIT_WITH", "5"),
    ];
    let (code, out, err) = finish(t.spawn(&["--azure-hostnames"], r#"exec python3 "$PROBE""#, &vars)).await;
    assert_eq!(code, 5, "the command's exit code\nstdout: {out}\nstderr: {err}");
    assert_probe(&t, &out, rustix::process::getuid().as_raw());
    assert!(err.is_empty(), "{err}");
    assert!(empty_dir(&t.tmpdir()), "the private directory (hosts file, socket, token) is gone");
    assert_eq!(std::fs::read("/etc/hosts").unwrap_or_default(), hosts_before, "the machine's /etc/hosts is untouched");

    // A signal reaches the command as with plain `wid run`.
    let ready = t.scratch.path().join("ready-ns");
    let script = r#"trap 'echo got TERM; exit 9' TERM; : > "$READY"; while :; do sleep 0.05; done"#;
    let child = t.spawn(&["--azure-hostnames"], script, &[("READY", ready.to_str().unwrap())]);
    let started = Instant::now();
    while !ready.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "the child never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send_signal(child.id().unwrap(), Signal::TERM);
    let (code, out, err) = finish(child).await;
    assert_eq!((code, out.as_str()), (9, "got TERM\n"), "{err}");

    // A command that does not exist: 127, as a shell says.
    let (code, _, err) = finish(t.spawn(&["--azure-hostnames"], "exec /no/such/program", &[])).await;
    assert_eq!(code, 127, "{err}");
}

/// A server without `--azure-hostnames` is refused before anything runs, with the fix; and
/// `--print-env` cannot carry namespaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_hostnames_needs_the_servers_mode_and_a_command() {
    let t = Setup::new().await;
    let marker = t.scratch.path().join("ran");
    let (code, out, err) =
        finish(t.spawn(&["--azure-hostnames"], r#": > "$MARKER""#, &[("MARKER", marker.to_str().unwrap())])).await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(err.contains("does not answer under Azure's host names"), "{err}");
    assert!(err.contains("wid serve --azure-hostnames"), "{err}");
    assert!(!marker.exists(), "the command did not run");

    let (code, out, err) = t
        .run(&[
            "run",
            "-n",
            "c1",
            "-g",
            "rg",
            "--namespace",
            NS,
            "--service-account",
            SA,
            "--print-env",
            "--azure-hostnames",
        ])
        .await;
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.starts_with("ERROR: --print-env cannot be combined with --azure-hostnames"), "{err}");
}

/// The rootless path, from root: `wid run` as nobody (uid 65534) gets its namespaces from an
/// unprivileged user namespace and runs the command as nobody; where user namespaces are off
/// (`user.max_user_namespaces = 0`, set in a user namespace of the test's own), it fails with exit
/// code 1, the reason and the fix. Unprivileged runs of this suite take the rootless path in
/// `azure_hostnames_reach_wid_from_the_commands_namespaces` already.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_hostnames_without_root() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the rootless path ran in azure_hostnames_reach_wid_from_the_commands_namespaces");
        return;
    }
    const NOBODY: u32 = 65534;
    let path = "/usr/local/bin:/usr/bin:/bin";
    let as_nobody = |program: &str| {
        let mut c = tokio::process::Command::new("setpriv");
        c.args(["--reuid", &NOBODY.to_string(), "--regid", &NOBODY.to_string(), "--clear-groups", "--", program]);
        c.env_clear().env("PATH", path).stdin(Stdio::null()).kill_on_drop(true);
        c
    };
    let python_runs = as_nobody("python3").args(["-c", "pass"]).status().await.is_ok_and(|s| s.success());
    if !python_runs {
        skip("nobody cannot run python3 from /usr/local/bin, /usr/bin or /bin");
        return;
    }

    let t = Setup::azure_hostnames().await;
    t.vault_with_secret("kv-nobody", "from the namespace").await;
    // Nobody's own files: a copy of the binary (the build may sit under a private home), the
    // profile naming a readable copy of the CA, the probe, HOME and TMPDIR.
    let base = tempfile::tempdir().unwrap();
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = base.path().join("nobody");
    std::fs::create_dir(&home).unwrap();
    let wid = home.join("wid");
    std::fs::copy(env!("CARGO_BIN_EXE_wid"), &wid).unwrap();
    let ca = home.join("ca.pem");
    std::fs::copy(t.s.ca_pem(), &ca).unwrap();
    let mut profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&t.env["WID_CONFIG"]).unwrap()).unwrap();
    for value in profile.as_object_mut().unwrap().values_mut() {
        if value.as_str() == Some(t.s.ca_pem().to_str().unwrap()) {
            *value = serde_json::Value::from(ca.to_str().unwrap());
        }
    }
    std::fs::write(home.join("profile.json"), profile.to_string()).unwrap();
    std::fs::write(home.join("probe.py"), AZURE_PROBE).unwrap();
    std::fs::create_dir(home.join("tmp")).unwrap();
    for entry in std::fs::read_dir(&home).unwrap() {
        std::os::unix::fs::chown(entry.unwrap().path(), Some(NOBODY), Some(NOBODY)).unwrap();
    }
    std::os::unix::fs::chown(&home, Some(NOBODY), Some(NOBODY)).unwrap();

    let run = ["run", "-n", "c1", "-g", "rg", "--namespace", NS, "--service-account", SA, "--azure-hostnames", "--"];
    let mut cmd = as_nobody(wid.to_str().unwrap());
    cmd.args(run)
        .args(["python3", home.join("probe.py").to_str().unwrap()])
        .env("WID_CONFIG", home.join("profile.json"))
        .env("HOME", &home)
        .env("TMPDIR", home.join("tmp"))
        .env("VAULT_URL", "https://kv-nobody.vault.azure.net/")
        .env("WID_URL", &t.s.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let (code, out, err) = finish(cmd.spawn().unwrap()).await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_probe(&t, &out, NOBODY);

    // User namespaces off: a user namespace of our own (uids 0-65535 mapped, written as root
    // can) sets its user.max_user_namespaces to 0, then runs wid run as nobody in it.
    // Its first shell lost its capabilities at exec (unmapped until the maps are written); the
    // second, exec'd as the mapped root, has them in that namespace.
    let script = r#"read _ && exec sh -c "$STEP2" sh "$@""#;
    let step2 = r#"echo 0 > /proc/sys/user/max_user_namespaces && exec setpriv --reuid 65534 --regid 65534 --clear-groups -- "$@""#;
    let mut cmd = tokio::process::Command::new("unshare");
    cmd.args(["--user", "--", "sh", "-c", script, "sh", wid.to_str().unwrap()])
        .args(run)
        .arg("true")
        .env_clear()
        .env("PATH", path)
        .env("STEP2", step2)
        .env("WID_CONFIG", home.join("profile.json"))
        .env("HOME", &home)
        .env("TMPDIR", home.join("tmp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let pid = child.id().unwrap();
    // Its maps can be written once it is in the new user namespace (unshare then execs sh).
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    let started = Instant::now();
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|ns| ns == ours) {
        assert!(started.elapsed() < Duration::from_secs(30), "unshare --user never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for map in ["uid_map", "gid_map"] {
        std::fs::write(format!("/proc/{pid}/{map}"), "0 0 65536\n").unwrap();
    }
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"go\n").await.unwrap();
    drop(stdin);
    let (code, out, err) = finish(child).await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert!(
        err.starts_with("ERROR: wid run --azure-hostnames cannot create the namespaces the command runs in: user namespaces are disabled (user.max_user_namespaces = 0)."),
        "{err}"
    );
    assert!(err.contains("Allow them: sudo sysctl -w user.max_user_namespaces=15000"), "{err}");
    assert!(err.contains("Or run wid run as root (sudo)"), "{err}");
}

/// The seed 004 application and the real Python Azure SDK, unmodified and with default settings,
/// under `wid run --azure-hostnames`: `KEYVAULT_URL` is the vault's Azure URL and the authority
/// AKS's, as in a pod on AKS; MSAL's instance discovery at login.microsoftonline.com reaches wid.
/// Needs the Python venv of `scripts/sdk-python.sh` (target/sdk-venv); skipped otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed004_app_with_aks_names_under_azure_hostnames() {
    let Some((python, app)) = seed004_app() else { return };
    let t = Setup::azure_hostnames().await;
    t.vault_with_secret("kv-seed004", "Hello from AKS's names!").await;
    let script = r#"exec "$PYTHON" "$APP""#;
    let vars = [
        ("PYTHON", python.to_str().unwrap()),
        ("APP", app.to_str().unwrap()),
        ("LANG", "C.UTF-8"),
        ("PYTHONDONTWRITEBYTECODE", "1"),
        // The pod spec's variables (seed 003), with the vault's Azure URL.
        ("KEYVAULT_URL", "https://kv-seed004.vault.azure.net/"),
        ("SECRET_NAME", "my-secret"),
    ];
    let (code, out, err) = finish(t.spawn(&["--azure-hostnames"], script, &vars)).await;
    assert_eq!((code, out.as_str()), (0, "Hello from AKS's names!\n"), "stderr: {err}");
}

/// Skips a test whose prerequisite is missing, loudly; in CI (`CI` set) a missing prerequisite is a
/// failure, so a green CI never hides an untested path.
/// The Python of the SDK venv (`scripts/sdk-python.sh --prepare`) and the seed 004 application;
/// `None` (the test skipped, saying why) when the venv lacks the SDK.
fn seed004_app() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let python = root.join("target/sdk-venv/bin/python");
    let app = root.join("tests/sdk/python/seed004_app.py");
    let imports = std::process::Command::new(&python)
        .args(["-c", "import azure.identity, azure.keyvault.secrets"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !imports.is_ok_and(|s| s.success()) {
        skip(&format!("no Python SDK venv at {} (run scripts/sdk-python.sh --prepare)", python.display()));
        return None;
    }
    Some((python, app))
}

fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "required in CI but unavailable: {why}");
    eprintln!("SKIPPED: {why}");
}
