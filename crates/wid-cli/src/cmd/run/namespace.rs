//! `wid run --azure-hostnames`: the command runs where Azure's host names reach wid and wid's CA is
//! trusted, so it sees exactly what a pod on AKS sees — `AZURE_AUTHORITY_HOST` is
//! `https://login.microsoftonline.com/`, vaults are `https://NAME.vault.azure.net/` — while
//! `wid serve --azure-hostnames` listens wherever its profile says (e.g. `https://localhost:8443`).
//!
//! ```text
//! wid run (your namespaces)                           the command's namespaces (user + mount + network)
//!   mints the token, lists the vaults,   ── spawns ──▶ unshare -U -r -m -n  wid __run-namespace-init
//!   writes DIR/hosts                                    lo up (netlink); /etc/hosts and the system CA
//!                                                       bundle bind-mounted; TCP listeners on
//!   accepts on those listeners    ◀── SCM_RIGHTS over DIR/namespace.sock ──  127.0.0.1:443 (and wid's port)
//!   and copies each connection, bytes untouched        exec unshare -U --map-user=UID --map-group=GID
//!   (TLS and SNI end to end), to wid serve               COMMAND  (you again, no capabilities)
//! ```
//!
//! Why processes and util-linux's `unshare` rather than syscalls: the workspace forbids `unsafe`,
//! and rustix's `unshare` is `unsafe` (its safe form is deprecated for that reason); a
//! multi-threaded process (tokio) cannot enter a new user namespace at all; and `unshare(1)` writes
//! `uid_map`, `setgroups` and `gid_map` correctly and makes the mounts private. It execs this binary
//! inside, which execs the command, so the command keeps the pid `wid run` spawned: signals, exit
//! codes and token refresh are plain `wid run`'s. As root no user namespace is needed (`unshare -m
//! -n`; with a user namespace as a fallback); otherwise the caller becomes root of a new user
//! namespace (which may bind port 443 and mount over /etc/hosts in its own namespaces), and the
//! command runs as the caller again in a nested one.
//!
//! Why listeners made inside and used outside: a socket belongs to the network namespace it was
//! created in, wherever its descriptor goes. `wid run` accepts the command's connections on them
//! and dials the server from the caller's network, so the server may be on any host and port and
//! nothing listens on the machine's port 443.
//!
//! Limits (the README says them too):
//! - The namespace's network is loopback only: the command reaches wid — under Azure's names and
//!   under its own URL — and nothing else (no other host, no internet). `resolv.conf` is left as it
//!   is; its servers are unreachable there, so other names fail at once.
//! - `/etc/hosts` has no wildcards: the vaults named are those of the profile's subscription when
//!   `wid run` starts (`NAME.vault.azure.net` and `NAME.vault.HOST`); a vault created later needs
//!   a new `wid run`. Every resolver reads /etc/hosts first (glibc's and musl's, Go's, so Java,
//!   Node and Python too) unless nsswitch.conf was changed to ask something else before `files`.
//! - wid's own URL is forwarded only when its host is a name or a loopback address.

use std::collections::HashSet;
use std::io::{IoSlice, IoSliceMut, Write};
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketFlags, SocketType,
};
use tokio::io::Interest;
use tokio::net::{TcpListener, TcpStream, UnixListener};
use tokio::task::JoinSet;

use crate::GlobalArgs;
use crate::error::CliError;

/// What the webhook injects on AKS (azure-workload-identity: the cloud's `ActiveDirectoryEndpoint`).
pub(super) const AZURE_AUTHORITY_HOST: &str = "https://login.microsoftonline.com/";
/// Azure's names `wid serve --azure-hostnames` answers (beside `NAME.vault.azure.net`).
const AZURE_HOSTS: [&str; 3] = ["login.microsoftonline.com", "management.azure.com", "graph.microsoft.com"];
/// Key Vault's DNS suffix in Azure's public cloud.
const AZURE_VAULT_SUFFIX: &str = "vault.azure.net";
/// The HTTPS port the command dials for Azure's names.
const HTTPS_PORT: u16 = 443;
/// Namespace flags of `unshare(1)`: as root, mount and network namespaces suffice …
const ROOT_FLAGS: &[&str] = &["--mount", "--net"];
/// … otherwise a user namespace whose root is the caller owns them.
const USER_FLAGS: &[&str] = &["--user", "--map-root-user", "--mount", "--net"];
/// The set-up inside takes milliseconds; this bounds a stuck one.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);
/// Dialing wid's server for one forwarded connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many listeners cross the socket (two per port).
const MAX_LISTENERS: usize = 8;
/// The hidden subcommand run inside the namespaces.
pub const INIT_COMMAND: &str = "__run-namespace-init";

// ---------------------------------------------------------------------------------------------
// Outside: checks, the hosts file, spawning, forwarding

/// The kernel settings that decide whether an unprivileged user may create user namespaces.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sysctls {
    /// `kernel.unprivileged_userns_clone` (Debian's and Arch's kernels; 0 = refused).
    pub unprivileged_userns_clone: Option<u64>,
    /// `user.max_user_namespaces` (0 = none for anyone).
    pub max_user_namespaces: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 and later; 1 = restricted).
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
}

impl Sysctls {
    fn read() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok());
        Sysctls {
            unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
            apparmor_restrict_unprivileged_userns: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        }
    }
}

/// Finds the `unshare(1)` flags that work here by creating the namespaces once (`unshare FLAGS
/// true`); else an error naming the reason and the fix.
pub(super) async fn probe(root: bool) -> Result<&'static [&'static str], CliError> {
    let candidates: &[&'static [&'static str]] = if root { &[ROOT_FLAGS, USER_FLAGS] } else { &[USER_FLAGS] };
    let mut said = String::new();
    for flags in candidates {
        let run = tokio::process::Command::new("unshare")
            .args(*flags)
            .args(["--", "true"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(SETUP_TIMEOUT, run).await {
            Ok(Ok(out)) if out.status.success() => return Ok(flags),
            Ok(Ok(out)) => said = String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CliError::failed(
                    "wid run --azure-hostnames needs util-linux's 'unshare', which is not on PATH.",
                )
                .recommend("Install util-linux (Debian and Ubuntu: apt-get install util-linux)."));
            }
            Ok(Err(e)) => said = e.to_string(),
            Err(_) => said = format!("'unshare' did not finish within {} s", SETUP_TIMEOUT.as_secs()),
        }
    }
    Err(diagnose(&Sysctls::read(), root, &said))
}

/// Why namespaces could not be created, and how to allow them.
pub(super) fn diagnose(s: &Sysctls, root: bool, unshare_said: &str) -> CliError {
    let (reason, fix) = if !root && s.unprivileged_userns_clone == Some(0) {
        (
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)".to_owned(),
            "sudo sysctl -w kernel.unprivileged_userns_clone=1",
        )
    } else if s.max_user_namespaces == Some(0) {
        (
            "user namespaces are disabled (user.max_user_namespaces = 0)".to_owned(),
            "sudo sysctl -w user.max_user_namespaces=15000",
        )
    } else if !root && s.apparmor_restrict_unprivileged_userns == Some(1) {
        (
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)"
                .to_owned(),
            "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or give wid an AppArmor profile with 'userns,')",
        )
    } else {
        let said = if unshare_said.is_empty() { "no reason given" } else { unshare_said };
        (format!("unshare failed: {said}"), "")
    };
    let mut e = CliError::failed(format!(
        "wid run --azure-hostnames cannot create the namespaces the command runs in: {reason}."
    ));
    if !fix.is_empty() {
        e = e.recommend(format!("Allow them: {fix} (persist it in /etc/sysctl.d/)."));
    }
    if root {
        e.recommend("In a container, give it CAP_SYS_ADMIN (or run it privileged), or allow user namespaces.")
    } else {
        e.recommend("Or run wid run as root (sudo), which needs no user namespace.")
    }
}

/// The system's CA bundle, which the namespace sees replaced by wid's CA plus its contents (for
/// clients that ignore `SSL_CERT_FILE`, as curl, or read a fixed path).
pub(super) fn system_bundle() -> Option<PathBuf> {
    super::SYSTEM_BUNDLES.iter().map(PathBuf::from).find(|p| p.is_file())
}

/// Whether `host` (of a URL) is an IP address, not a name.
fn is_ip(host: &str) -> bool {
    host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok()
}

/// A DNS label as vault names are (letters, digits, hyphens): nothing else reaches the hosts file.
fn is_label(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The names sent to the namespace's loopback: Azure's, each vault's under Azure's suffix and under
/// wid's host, and wid's host itself when it is a name other than `localhost` (which /etc/hosts
/// already has).
pub(super) fn names(server_host: &str, vaults: &[String]) -> Vec<String> {
    let mut out: Vec<String> = AZURE_HOSTS.iter().map(|h| (*h).to_owned()).collect();
    let host = server_host.trim_end_matches('.').to_ascii_lowercase();
    let named = !is_ip(&host) && !host.is_empty();
    if named && host != "localhost" {
        out.push(host.clone());
    }
    for vault in vaults.iter().filter(|v| is_label(v)) {
        let vault = vault.to_ascii_lowercase();
        out.push(format!("{vault}.{AZURE_VAULT_SUFFIX}"));
        if named {
            out.push(format!("{vault}.vault.{host}"));
        }
    }
    let mut seen = HashSet::new();
    out.retain(|n| seen.insert(n.clone()));
    out
}

/// The namespace's /etc/hosts: `names` on 127.0.0.1 first, then the machine's file with those
/// names taken out of its lines (resolvers may return every address a name has in the file).
pub(super) fn hosts_file(current: &str, names: &[String]) -> String {
    let ours: HashSet<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut out = String::from("# wid run --azure-hostnames: these names reach wid serve\n");
    // A few names a line: some resolvers have limits on aliases per line.
    for chunk in names.chunks(6) {
        out.push_str(&format!("127.0.0.1 {}\n", chunk.join(" ")));
    }
    out.push_str("# this machine's /etc/hosts, without the names above\n");
    for line in current.lines() {
        let (body, comment) = line.split_once('#').map_or((line, None), |(b, c)| (b, Some(c)));
        let mut fields = body.split_whitespace();
        let Some(addr) = fields.next() else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let aliases: Vec<&str> = fields.collect();
        let kept: Vec<&str> = aliases.iter().copied().filter(|a| !ours.contains(&a.to_ascii_lowercase())).collect();
        if kept.len() == aliases.len() {
            out.push_str(line);
        } else if kept.is_empty() {
            out.push_str(&format!("# (wid run) {line}"));
        } else {
            out.push_str(&format!("{addr} {}", kept.join(" ")));
            if let Some(c) = comment {
                out.push_str(&format!(" #{c}"));
            }
        }
        out.push('\n');
    }
    out
}

/// Everything the namespace needs, decided outside it.
pub(super) struct Sandbox {
    socket: UnixListener,
    socket_path: PathBuf,
    hosts: PathBuf,
    /// Ours (wid's CA and the system roots) over the system's.
    ca_bundle: Option<(PathBuf, PathBuf)>,
    ports: Vec<u16>,
    /// wid serve's addresses, as the caller's network resolves them.
    targets: Vec<SocketAddr>,
    flags: &'static [&'static str],
    /// The caller, when not root: the command runs as them in a nested user namespace.
    user: Option<(u32, u32)>,
}

/// Inputs of [`Sandbox::prepare`].
pub(super) struct Layout<'a> {
    /// The private directory of this `wid run`.
    pub dir: &'a Path,
    /// The profile's server URL.
    pub server: &'a str,
    pub vaults: &'a [String],
    /// The CA bundle `wid run` wrote (wid's CA and the system roots).
    pub bundle: Option<&'a Path>,
    pub flags: &'static [&'static str],
    /// Host pins (`WID_RESOLVE`, `*.localhost`) for dialing the server.
    pub pins: &'a std::collections::HashMap<String, IpAddr>,
}

impl Sandbox {
    pub(super) async fn prepare(l: Layout<'_>) -> Result<Self, CliError> {
        let url = reqwest::Url::parse(l.server)
            .map_err(|e| CliError::failed(format!("Invalid server URL '{}': {e}", l.server)))?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(HTTPS_PORT);
        let targets = resolve(&host, port, l.pins).await?;

        let mut ports = vec![HTTPS_PORT];
        let loopback_ip =
            host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if port != HTTPS_PORT && (!is_ip(&host) || loopback_ip) {
            ports.push(port);
        }

        let current = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let hosts = l.dir.join("hosts");
        std::fs::write(&hosts, hosts_file(&current, &names(&host, l.vaults)))
            .and_then(|()| std::fs::set_permissions(&hosts, std::os::unix::fs::PermissionsExt::from_mode(0o644)))
            .map_err(|e| CliError::failed(format!("Cannot write '{}': {e}", hosts.display())))?;

        let ca_bundle = l.bundle.zip(system_bundle()).map(|(ours, system)| (ours.to_owned(), system));

        let socket_path = l.dir.join("namespace.sock");
        let socket = UnixListener::bind(&socket_path)
            .map_err(|e| CliError::failed(format!("Cannot listen on '{}': {e}", socket_path.display())))?;
        let uid = rustix::process::getuid().as_raw();
        let user = (uid != 0).then(|| (uid, rustix::process::getgid().as_raw()));
        Ok(Sandbox { socket, socket_path, hosts, ca_bundle, ports, targets, flags: l.flags, user })
    }

    /// `unshare FLAGS -- wid __run-namespace-init … -- PROGRAM ARGS…`.
    pub(super) fn command(&self, program: &str, args: &[String]) -> Result<tokio::process::Command, CliError> {
        // This very binary: the hidden subcommand sets the namespaces up and execs the command.
        let exe =
            std::env::current_exe().map_err(|e| CliError::failed(format!("Cannot find wid's own executable: {e}")))?;
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(self.flags).arg("--").arg(exe).arg(INIT_COMMAND);
        cmd.arg("--socket").arg(&self.socket_path).arg("--hosts").arg(&self.hosts);
        if let Some((ours, system)) = &self.ca_bundle {
            cmd.arg("--ca-bundle").arg(ours).arg("--system-bundle").arg(system);
        }
        for port in &self.ports {
            cmd.arg("--port").arg(port.to_string());
        }
        if let Some((uid, gid)) = self.user {
            cmd.arg("--map-user").arg(uid.to_string()).arg("--map-group").arg(gid.to_string());
        }
        cmd.arg("--").arg(program).args(args);
        Ok(cmd)
    }

    /// The listeners the set-up inside sends (checked to come from `child`), or why it failed.
    pub(super) async fn receive(&self, child_pid: u32) -> Result<Vec<std::net::TcpListener>, CliError> {
        tokio::time::timeout(SETUP_TIMEOUT, self.receive_now(child_pid)).await.unwrap_or_else(|_| {
            Err(CliError::failed(format!(
                "Setting up the command's namespaces failed: nothing came within {} s.",
                SETUP_TIMEOUT.as_secs()
            )))
        })
    }

    async fn receive_now(&self, child_pid: u32) -> Result<Vec<std::net::TcpListener>, CliError> {
        let failed = |what: String| CliError::failed(format!("Setting up the command's namespaces failed: {what}"));
        let (stream, _) = self.socket.accept().await.map_err(|e| failed(format!("accept: {e}")))?;
        let peer = rustix::net::sockopt::socket_peercred(&stream).map_err(|e| failed(format!("peer: {e}")))?;
        if u32::try_from(peer.pid.as_raw_nonzero().get()).ok() != Some(child_pid) {
            return Err(failed(format!(
                "a process other than the command (pid {}) connected",
                peer.pid.as_raw_nonzero()
            )));
        }
        let (text, fds) = loop {
            stream.readable().await.map_err(|e| failed(e.to_string()))?;
            match stream.try_io(Interest::READABLE, || receive_fds(&stream)) {
                Ok(got) => break got,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(failed(e.to_string())),
            }
        };
        let text = String::from_utf8_lossy(&text);
        match text.strip_prefix("ok") {
            Some("") if !fds.is_empty() => Ok(fds.into_iter().map(std::net::TcpListener::from).collect()),
            _ => Err(failed(text.strip_prefix("error: ").unwrap_or(&text).to_owned())),
        }
    }

    /// Copies every connection accepted on `listeners` to wid serve, until dropped.
    pub(super) fn forward(&self, listeners: Vec<std::net::TcpListener>) -> Result<JoinSet<()>, CliError> {
        let mut set = JoinSet::new();
        for listener in listeners {
            let listener = listener
                .set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(listener))
                .map_err(|e| CliError::failed(format!("Cannot use the namespace's listener: {e}")))?;
            set.spawn(accept_loop(listener, self.targets.clone()));
        }
        Ok(set)
    }
}

/// The server's addresses: pinned (`WID_RESOLVE`, `*.localhost`), else the system resolver's.
async fn resolve(
    host: &str,
    port: u16,
    pins: &std::collections::HashMap<String, IpAddr>,
) -> Result<Vec<SocketAddr>, CliError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let pinned: Vec<SocketAddr> =
        crate::http::pinned_addrs(host, pins).into_iter().map(|a| SocketAddr::new(a.ip(), port)).collect();
    if !pinned.is_empty() {
        return Ok(pinned);
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| CliError::failed(format!("Cannot resolve the server's host '{host}': {e}")))?
        .collect();
    if found.is_empty() {
        return Err(CliError::failed(format!("The server's host '{host}' has no address")));
    }
    Ok(found)
}

async fn accept_loop(listener: TcpListener, targets: Vec<SocketAddr>) {
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((inside, _)) => {
                connections.spawn(pipe(inside, targets.clone()));
            }
            // Out of descriptors, say: wait rather than spin.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
        while connections.try_join_next().is_some() {}
    }
}

/// One connection, both ways, bytes untouched; the first reachable address of the server wins.
async fn pipe(mut inside: TcpStream, targets: Vec<SocketAddr>) {
    for target in targets {
        if let Ok(Ok(mut outside)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await {
            let _ = inside.set_nodelay(true);
            let _ = outside.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
            return;
        }
    }
    // Unreachable server: the command sees the connection closed, as a client of a down server would.
}

/// One message and the descriptors that came with it.
fn receive_fds(socket: impl AsFd) -> std::io::Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = [0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_LISTENERS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = rustix::net::recvmsg(&socket, &mut [IoSliceMut::new(&mut buf)], &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    let text = buf.get(..got.bytes).unwrap_or_default().to_vec();
    Ok((text, fds))
}

// ---------------------------------------------------------------------------------------------
// Inside: the hidden `wid __run-namespace-init`

/// Arguments of the set-up inside the namespaces (written by [`Sandbox::command`], not by people).
#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// Where `wid run` waits for the listeners.
    #[arg(long)]
    socket: PathBuf,
    /// Mounted over /etc/hosts.
    #[arg(long)]
    hosts: PathBuf,
    /// Mounted over `--system-bundle`.
    #[arg(long, requires = "system_bundle")]
    ca_bundle: Option<PathBuf>,
    #[arg(long, requires = "ca_bundle")]
    system_bundle: Option<PathBuf>,
    /// Ports to listen on (loopback).
    #[arg(long = "port", required = true)]
    ports: Vec<u16>,
    /// Run the command as this user (and group) of the caller's namespace, in a nested user namespace.
    #[arg(long, requires = "map_group")]
    map_user: Option<u32>,
    #[arg(long, requires = "map_user")]
    map_group: Option<u32>,
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// Sets the namespaces up, hands the listeners to `wid run` and execs the command; returns only
/// on failure (the exit code).
pub fn init(a: InitArgs, err: &mut dyn Write) -> i32 {
    let sent = match set_up(&a) {
        Ok(listeners) => {
            let fds: Vec<_> = listeners.iter().map(AsFd::as_fd).collect();
            send(&a.socket, b"ok", &fds)
        }
        Err(reason) => {
            let sent = send(&a.socket, format!("error: {reason}").as_bytes(), &[]);
            if sent.is_err() {
                let _ = writeln!(err, "ERROR: setting up the command's namespaces failed: {reason}");
            }
            return 1;
        }
    };
    if let Err(e) = sent {
        let _ = writeln!(err, "ERROR: cannot reach wid run at '{}': {e}", a.socket.display());
        return 1;
    }
    // The listeners were close-on-exec: the command does not inherit them; wid run holds them.
    let Some((program, args)) = a.command.split_first() else { return 2 };
    let mut cmd = match (a.map_user, a.map_group) {
        (Some(uid), Some(gid)) => {
            let mut c = std::process::Command::new("unshare");
            c.arg("--user").arg(format!("--map-user={uid}")).arg(format!("--map-group={gid}")).arg("--");
            c.arg(program).args(args);
            c
        }
        _ => {
            let mut c = std::process::Command::new(program);
            c.args(args);
            c
        }
    };
    let e = cmd.exec();
    let _ = writeln!(err, "ERROR: cannot run '{program}': {e}");
    if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 }
}

fn set_up(a: &InitArgs) -> Result<Vec<std::net::TcpListener>, String> {
    loopback_up().map_err(|e| format!("cannot bring the loopback interface up: {e}"))?;
    rustix::mount::mount_bind(&a.hosts, "/etc/hosts")
        .map_err(|e| format!("cannot mount '{}' over /etc/hosts: {e}", a.hosts.display()))?;
    if let (Some(ours), Some(system)) = (&a.ca_bundle, &a.system_bundle) {
        rustix::mount::mount_bind(ours, system)
            .map_err(|e| format!("cannot mount '{}' over '{}': {e}", ours.display(), system.display()))?;
    }
    let mut listeners = Vec::new();
    for &port in &a.ports {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        listeners.push(std::net::TcpListener::bind(v4).map_err(|e| format!("cannot listen on {v4}: {e}"))?);
        // IPv6 where the kernel has it (`localhost` may resolve to ::1 first).
        if let Ok(l) = std::net::TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port)) {
            listeners.push(l);
        }
    }
    Ok(listeners)
}

/// Sends `text` and `fds` over a new connection to `path`.
fn send(path: &Path, text: &[u8], fds: &[std::os::fd::BorrowedFd<'_>]) -> std::io::Result<()> {
    let stream = std::os::unix::net::UnixStream::connect(path)?;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_LISTENERS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && (fds.len() > MAX_LISTENERS || !control.push(SendAncillaryMessage::ScmRights(fds))) {
        return Err(std::io::Error::other("too many listeners"));
    }
    rustix::net::sendmsg(&stream, &[IoSlice::new(text)], &mut control, SendFlags::empty())?;
    Ok(())
}

/// `ip link set lo up` in netlink (a new network namespace has its loopback down; iproute2 is not
/// everywhere): RTM_NEWLINK for interface 1 (the loopback's index in every namespace) with IFF_UP.
fn loopback_up() -> std::io::Result<()> {
    const RTM_NEWLINK: u16 = 16;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_ACK: u16 = 0x4;
    const NLMSG_ERROR: u16 = 2;
    const LOOPBACK_IFINDEX: i32 = 1;
    const IFF_UP: u32 = 0x1;
    let socket = rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, SocketFlags::CLOEXEC, None)?;
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsghdr: length of the whole message
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    msg.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    msg.extend_from_slice(&[0, 0]); // ifinfomsg: AF_UNSPEC, padding
    msg.extend_from_slice(&0u16.to_ne_bytes()); // device type
    msg.extend_from_slice(&LOOPBACK_IFINDEX.to_ne_bytes());
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // change mask
    rustix::net::sendto(&socket, &msg, SendFlags::empty(), &rustix::net::netlink::SocketAddrNetlink::new(0, 0))?;
    let mut buf = [0u8; 1024];
    let (got, _) = rustix::net::recv(&socket, &mut buf[..], RecvFlags::empty())?;
    let reply = buf.get(..got).unwrap_or_default();
    let kind = reply.get(4..6).and_then(|b| b.try_into().ok()).map(u16::from_ne_bytes);
    let code = reply.get(16..20).and_then(|b| b.try_into().ok()).map(i32::from_ne_bytes);
    match (kind, code) {
        (Some(NLMSG_ERROR), Some(0)) => Ok(()),
        (Some(NLMSG_ERROR), Some(errno)) => Err(std::io::Error::from_raw_os_error(errno.saturating_neg())),
        _ => Err(std::io::Error::other("unexpected netlink reply")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cover_azure_the_vaults_and_wids_own_host() {
        let vaults = vec!["kv1".to_owned(), "KV-2".to_owned(), "bad name".to_owned()];
        assert_eq!(
            names("localhost", &vaults),
            [
                "login.microsoftonline.com",
                "management.azure.com",
                "graph.microsoft.com",
                "kv1.vault.azure.net",
                "kv1.vault.localhost",
                "kv-2.vault.azure.net",
                "kv-2.vault.localhost",
            ]
        );
        let n = names("wid.internal", &[]);
        assert_eq!(n.last().map(String::as_str), Some("wid.internal"));
        // An address has no vault names under it.
        assert_eq!(names("10.0.0.5", &["kv1".to_owned()]).len(), 4);
        assert_eq!(names("[::1]", &[]).len(), 3);
    }

    #[test]
    fn the_hosts_file_puts_ours_first_and_takes_them_out_of_the_machines() {
        let current = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n# a comment\n\n\
                       20.190.1.1 login.microsoftonline.com\n10.0.0.9 kv1.vault.azure.net other # pinned\n";
        let names = vec!["login.microsoftonline.com".to_owned(), "kv1.vault.azure.net".to_owned()];
        let file = hosts_file(current, &names);
        assert_eq!(
            file,
            "# wid run --azure-hostnames: these names reach wid serve\n\
             127.0.0.1 login.microsoftonline.com kv1.vault.azure.net\n\
             # this machine's /etc/hosts, without the names above\n\
             127.0.0.1 localhost\n::1 localhost ip6-localhost\n# a comment\n\n\
             # (wid run) 20.190.1.1 login.microsoftonline.com\n\
             10.0.0.9 other # pinned\n"
        );
        let many: Vec<String> = (0..13).map(|i| format!("kv{i}.vault.azure.net")).collect();
        assert_eq!(hosts_file("", &many).lines().filter(|l| l.starts_with("127.0.0.1 ")).count(), 3);
    }

    #[test]
    fn the_error_names_the_reason_and_the_fix() {
        let text = |e: CliError| format!("{}\n{}", e.message, e.recommendations.join("\n"));
        let off = Sysctls { unprivileged_userns_clone: Some(0), max_user_namespaces: Some(1000), ..Sysctls::default() };
        let t = text(diagnose(&off, false, "unshare: unshare failed: Operation not permitted"));
        assert!(t.starts_with("wid run --azure-hostnames cannot create the namespaces the command runs in: unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)."), "{t}");
        assert!(t.contains("Allow them: sudo sysctl -w kernel.unprivileged_userns_clone=1"), "{t}");
        assert!(t.contains("Or run wid run as root (sudo)"), "{t}");

        let zero = Sysctls { max_user_namespaces: Some(0), ..Sysctls::default() };
        let t = text(diagnose(&zero, false, "unshare: unshare failed: No space left on device"));
        assert!(t.contains("user namespaces are disabled (user.max_user_namespaces = 0)"), "{t}");
        assert!(t.contains("sudo sysctl -w user.max_user_namespaces=15000"), "{t}");

        let apparmor = Sysctls { apparmor_restrict_unprivileged_userns: Some(1), ..Sysctls::default() };
        let t = text(diagnose(&apparmor, false, "unshare: write failed /proc/self/uid_map: Operation not permitted"));
        assert!(t.contains("kernel.apparmor_restrict_unprivileged_userns = 1"), "{t}");

        // Nothing recognised: unshare's own words, and the ways out.
        let t = text(diagnose(&Sysctls::default(), true, "unshare: unshare failed: Operation not permitted"));
        assert!(t.contains(": unshare failed: unshare: unshare failed: Operation not permitted."), "{t}");
        assert!(t.contains("CAP_SYS_ADMIN") && !t.contains("Allow them"), "{t}");
    }
}
