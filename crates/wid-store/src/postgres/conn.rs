//! Connections for the PostgreSQL backend: the bridge from the synchronous trait to the private
//! runtime, the connection string and TLS, the pool, queries with a per-connection statement cache,
//! and how PostgreSQL errors map to [`StoreError`].
//!
//! Nothing here ever formats the connection string: messages name the database as
//! `user@host:port/dbname`, and errors raised while connecting have the password scrubbed too.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Client, Row, Socket, Statement, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PostgresConfig;
use crate::{Result, StoreError};

/// Debian's CA bundle: the TLS roots when no CA file is configured.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Query parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A connection as `connect` returns it, for callers that drive it themselves (the listener).
pub(super) type Connection = tokio_postgres::Connection<Socket, <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream>;

// ---------------------------------------------------------------------------------------------------
// The bridge: every trait call runs as a task on the store's runtime; the calling thread waits.

/// Runs `fut` on the store's runtime and blocks the calling thread until it is done. Works from any
/// thread, a thread of another tokio runtime included (that thread blocks, as any store call does).
pub(super) fn run<T: Send + 'static>(
    handle: &Handle,
    fut: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().unwrap_or_else(|_| Err(StoreError::Backend("the database task stopped before it finished".into())))
}

/// Polls `fut` to completion on the calling thread, parking between wake-ups: for the channels that
/// stream records between a runtime task and the caller (export and import). Outside tokio's
/// cooperative budget, so it cannot spin when called from a task that used its budget up.
pub(super) fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(tokio::task::coop::unconstrained(fut));
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

// ---------------------------------------------------------------------------------------------------
// The target: connection string, TLS, session settings.

/// What every connection of a store needs, parsed once from a [`PostgresConfig`].
pub(super) struct Target {
    pg: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// `user@host:port/dbname`, for messages.
    pub(super) name: String,
    /// Where the TLS roots came from, for messages.
    roots: String,
    /// Scrubbed from connection errors (as given and as it may appear percent-encoded in the URL).
    secrets: Vec<String>,
    /// The `SET`s every pooled connection runs first.
    session: String,
    connect_timeout: Duration,
    pub(super) statement_timeout: Duration,
}

impl Target {
    pub(super) fn new(config: &PostgresConfig) -> Result<Self> {
        let (url, root_cert) = normalize(&config.url);
        let mut secrets = url_password(&config.url).into_iter().collect::<Vec<_>>();
        let mut pg: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            StoreError::Backend(scrub(&format!("the database URL is not valid: {}", chain(&e)), &secrets))
        })?;
        if let Some(password) = pg.get_password() {
            secrets.push(String::from_utf8_lossy(password).into_owned());
        }
        secrets.retain(|s| !s.is_empty());
        pg.connect_timeout(config.connect_timeout);
        // A peer that vanished (a failed-over server, a dropped route) ends the connection within
        // about a minute instead of the kernel's quarter of an hour, unless the URL says otherwise.
        if !url.contains("keepalives_idle") {
            pg.keepalives_idle(Duration::from_secs(30));
        }
        if pg.get_tcp_user_timeout().is_none() {
            pg.tcp_user_timeout(Duration::from_secs(30));
        }
        if pg.get_application_name().is_none() {
            pg.application_name("wid");
        }
        let ca_file = config.ca_file.clone().or(root_cert);
        let (tls, roots) = tls(ca_file.as_deref(), pg.get_ssl_mode())?;
        Ok(Self {
            name: describe_target(&pg),
            pg,
            tls,
            roots,
            secrets,
            session: session_settings(config.statement_timeout),
            connect_timeout: config.connect_timeout,
            statement_timeout: config.statement_timeout,
        })
    }

    /// Opens a connection; the caller drives (or spawns) the returned `Connection`.
    pub(super) async fn open(&self) -> Result<(Client, Connection)> {
        let what = format!("connecting to the database {}", self.name);
        match tokio::time::timeout(self.connect_timeout, self.pg.connect(self.tls.clone())).await {
            Err(_) => Err(StoreError::Backend(format!("{what}: no answer within {:?}", self.connect_timeout))),
            Ok(Err(e)) => {
                let mut why = match e.as_db_error() {
                    Some(db) => db.message().to_string(),
                    None => chain(&e),
                };
                if why.starts_with("error performing TLS handshake") {
                    why.push_str(&format!(
                        " (the server's certificate must chain to {} and name the host; set the CA file, \
                         or sslmode=disable to connect without TLS)",
                        self.roots
                    ));
                }
                Err(StoreError::Backend(scrub(&format!("{what}: {why}"), &self.secrets)))
            }
            Ok(Ok(pair)) => Ok(pair),
        }
    }

    /// Opens a connection for the pool: driven by a task of its own, session settings applied.
    async fn open_pooled(&self) -> Result<Conn> {
        let (client, connection) = self.open().await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let what = format!("configuring a connection to the database {}", self.name);
        client.batch_execute(&self.session).await.map_err(|e| pg_error(&what, &e, self.statement_timeout))?;
        Ok(Conn { client, stmts: Stmts::default() })
    }
}

/// Rewrites what libpq accepts and tokio-postgres does not: `sslmode=verify-ca` and `verify-full`
/// (rustls always verifies the chain and the host name, so both mean `require`), and
/// `sslrootcert=FILE` (taken out and returned as the CA file).
fn normalize(url: &str) -> (String, Option<PathBuf>) {
    let mut root_cert = None;
    let verify = |v: &str| v == "verify-ca" || v == "verify-full";
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return (url.to_string(), None) };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) if verify(v) => kept.push("sslmode=require".to_string()),
                Some(("sslrootcert", v)) => root_cert = Some(PathBuf::from(percent_decode(v))),
                _ => kept.push(pair.to_string()),
            }
        }
        let url = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        return (url, root_cert);
    }
    // libpq's `key=value` form; tokens are rewritten only when they are exactly these settings.
    let mut kept = Vec::new();
    for token in url.split(' ') {
        match token.split_once('=') {
            Some(("sslmode", v)) if verify(v) => kept.push("sslmode=require"),
            Some(("sslrootcert", v)) => root_cert = Some(PathBuf::from(v.trim_matches('\''))),
            _ => kept.push(token),
        }
    }
    (kept.join(" "), root_cert)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (b, hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The password of a `postgres://user:password@…` URL as written (maybe percent-encoded).
fn url_password(url: &str) -> Option<String> {
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(password.to_string())
}

/// The connection string with its password replaced, for `Debug` output.
pub(super) fn redacted(url: &str) -> String {
    match url_password(url) {
        Some(p) if !p.is_empty() => url.replacen(&format!(":{p}@"), ":***@", 1),
        _ if url.contains("password=") => url
            .split(' ')
            .map(|t| if t.starts_with("password=") { "password=***" } else { t })
            .collect::<Vec<_>>()
            .join(" "),
        _ => url.to_string(),
    }
}

fn scrub(message: &str, secrets: &[String]) -> String {
    secrets.iter().fold(message.to_string(), |m, s| m.replace(s.as_str(), "***"))
}

/// `user@host:port/dbname` of a parsed configuration.
fn describe_target(pg: &tokio_postgres::Config) -> String {
    let host = match pg.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    let user = pg.get_user().unwrap_or("?");
    let db = pg.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

/// The TLS connector: rustls with aws-lc-rs, roots from the CA file, else the system bundle. Used
/// for every `sslmode` (with `disable` it is never asked to connect).
fn tls(ca_file: Option<&Path>, mode: SslMode) -> Result<(MakeRustlsConnect, String)> {
    let mut roots = rustls::RootCertStore::empty();
    let source = match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| StoreError::Backend(format!("reading the database CA file '{}': {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StoreError::Backend(format!(
                    "the database CA file '{}' holds no usable certificate",
                    path.display()
                )));
            }
            format!("the CA file '{}'", path.display())
        }
        None if mode != SslMode::Disable && Path::new(SYSTEM_ROOTS).exists() => {
            let certs = CertificateDer::pem_file_iter(SYSTEM_ROOTS)
                .map(|certs| certs.filter_map(std::result::Result::ok).collect::<Vec<_>>())
                .unwrap_or_default();
            roots.add_parsable_certificates(certs);
            format!("the system CA bundle ({SYSTEM_ROOTS})")
        }
        None => "no CA at all (no CA file is set and there is no system bundle)".to_string(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("configuring TLS to the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok((MakeRustlsConnect::new(config), source))
}

/// Session settings: a statement timeout; a shorter lock timeout, so waiting on another writer's
/// row locks reports `Busy` before the statement timeout ends it (PostgreSQL reports whichever was
/// scheduled to fire first); a bound on sessions left idle inside a transaction; and the durability
/// and isolation the store relies on, whatever the server's defaults.
fn session_settings(statement_timeout: Duration) -> String {
    let ms = statement_timeout.as_millis().min(2_147_483_647);
    format!(
        "SET statement_timeout = {ms}; SET lock_timeout = {}; SET idle_in_transaction_session_timeout = {}; \
         SET synchronous_commit = on; SET default_transaction_isolation = 'read committed'",
        ms / 2,
        ms.saturating_mul(2).clamp(60_000, 2_147_483_647)
    )
}

// ---------------------------------------------------------------------------------------------------
// The pool.

/// Prepared statements of one connection, by SQL text.
#[derive(Default)]
pub(super) struct Stmts(Mutex<HashMap<String, Statement>>);

impl Stmts {
    fn get(&self, sql: &str) -> Option<Statement> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(sql).cloned()
    }
    fn insert(&self, sql: &str, statement: Statement) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(sql.to_string(), statement);
    }
}

struct Conn {
    client: Client,
    stmts: Stmts,
}

/// Connections opened on demand and reused while they work: at most `size` for queries, and as many
/// again for named locks. Callers hold a named lock while they write through the store, so lock
/// holders must never take the connections their own writes wait for.
pub(super) struct Pool {
    idle: Mutex<Vec<Conn>>,
    queries: Arc<Semaphore>,
    locks: Arc<Semaphore>,
    size: usize,
}

impl Pool {
    pub(super) fn new(size: usize) -> Arc<Self> {
        let size = size.max(1);
        Arc::new(Self {
            idle: Mutex::new(Vec::new()),
            queries: Arc::new(Semaphore::new(size)),
            locks: Arc::new(Semaphore::new(size)),
            size,
        })
    }

    /// A connection for queries: an idle one that still works, or a new one. Waits for a free slot at
    /// most the statement timeout.
    pub(super) async fn get(self: &Arc<Self>, target: &Target, what: &str) -> Result<Pooled> {
        let wait = target.statement_timeout.max(Duration::from_secs(1));
        match self.permit(&self.queries, wait).await {
            Ok(Some(permit)) => self.conn(target, permit).await,
            Ok(None) => Err(StoreError::Backend(format!(
                "{what}: all {} connections to the database stayed busy for {wait:?}",
                self.size
            ))),
            Err(e) => Err(StoreError::Backend(format!("{what}: {e}"))),
        }
    }

    /// A connection to hold a named lock on; `None` if `size` locks stay held for `wait`.
    pub(super) async fn get_for_lock(
        self: &Arc<Self>,
        target: &Target,
        what: &str,
        wait: Duration,
    ) -> Result<Option<Pooled>> {
        match self.permit(&self.locks, wait).await {
            Ok(Some(permit)) => self.conn(target, permit).await.map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(StoreError::Backend(format!("{what}: {e}"))),
        }
    }

    async fn permit(
        &self,
        slots: &Arc<Semaphore>,
        wait: Duration,
    ) -> std::result::Result<Option<OwnedSemaphorePermit>, &'static str> {
        match tokio::time::timeout(wait, slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            Ok(Err(_)) => Err("the connection pool is closed"),
            Err(_) => Ok(None),
        }
    }

    async fn conn(self: &Arc<Self>, target: &Target, permit: OwnedSemaphorePermit) -> Result<Pooled> {
        loop {
            let conn = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            match conn {
                Some(conn) if conn.client.is_closed() => {}
                Some(conn) => return Ok(Pooled { conn: Some(conn), pool: self.clone(), keep: true, _permit: permit }),
                None => break,
            }
        }
        let conn = target.open_pooled().await?;
        Ok(Pooled { conn: Some(conn), pool: self.clone(), keep: true, _permit: permit })
    }
}

/// A connection out of the pool; back in when dropped, unless it broke or was discarded.
pub(super) struct Pooled {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    keep: bool,
    // Released after `drop` put the connection back, so the pool never exceeds its size.
    _permit: OwnedSemaphorePermit,
}

impl Pooled {
    fn conn(&self) -> Result<&Conn> {
        self.conn.as_ref().ok_or_else(|| StoreError::Backend("a pooled connection was used after release".into()))
    }

    /// A query handle on the connection itself (autocommit).
    pub(super) fn db<'a>(&'a self, what: &'a str, timeout: Duration) -> Result<Db<'a>> {
        let conn = self.conn()?;
        Ok(Db { on: On::Client(&conn.client), stmts: &conn.stmts, what, timeout })
    }

    /// The client and statement cache, apart, so a transaction can borrow the one and queries the other.
    pub(super) fn parts(&mut self) -> Result<(&mut Client, &Stmts)> {
        match self.conn.as_mut() {
            Some(conn) => Ok((&mut conn.client, &conn.stmts)),
            None => Err(StoreError::Backend("a pooled connection was used after release".into())),
        }
    }

    /// Closes the connection instead of returning it (its session state is unknown).
    pub(super) fn discard(&mut self) {
        self.keep = false;
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && self.keep
            && !conn.client.is_closed()
        {
            let mut idle = self.pool.idle.lock().unwrap_or_else(PoisonError::into_inner);
            // Locks and queries share the idle connections; beyond `size` of them, close the rest.
            if idle.len() < self.pool.size {
                idle.push(conn);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Queries.

#[derive(Clone, Copy)]
enum On<'a> {
    Client(&'a Client),
    Tx(&'a Transaction<'a>),
}

/// Queries on a connection or a transaction, with the connection's statement cache; every error is
/// mapped with [`pg_error`] naming `what` was being done.
pub(super) struct Db<'a> {
    on: On<'a>,
    stmts: &'a Stmts,
    pub(super) what: &'a str,
    timeout: Duration,
}

impl<'a> Db<'a> {
    pub(super) fn tx(tx: &'a Transaction<'a>, stmts: &'a Stmts, what: &'a str, timeout: Duration) -> Self {
        Db { on: On::Tx(tx), stmts, what, timeout }
    }

    pub(super) fn error(&self, e: &tokio_postgres::Error) -> StoreError {
        pg_error(self.what, e, self.timeout)
    }

    async fn statement(&self, sql: &str) -> Result<Statement> {
        if let Some(statement) = self.stmts.get(sql) {
            return Ok(statement);
        }
        let prepared = match self.on {
            On::Client(c) => c.prepare(sql).await,
            On::Tx(t) => t.prepare(sql).await,
        }
        .map_err(|e| self.error(&e))?;
        self.stmts.insert(sql, prepared.clone());
        Ok(prepared)
    }

    pub(super) async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let statement = self.statement(sql).await?;
        match self.on {
            On::Client(c) => c.query(&statement, params).await,
            On::Tx(t) => t.query(&statement, params).await,
        }
        .map_err(|e| self.error(&e))
    }

    /// The first row, if any.
    pub(super) async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Rows affected.
    pub(super) async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64> {
        let statement = self.statement(sql).await?;
        match self.on {
            On::Client(c) => c.execute(&statement, params).await,
            On::Tx(t) => t.execute(&statement, params).await,
        }
        .map_err(|e| self.error(&e))
    }

    pub(super) async fn exists(&self, sql: &str, params: Params<'_>) -> Result<bool> {
        Ok(self.query_opt(sql, params).await?.is_some())
    }

    /// The first column of the one row a query returns.
    pub(super) async fn scalar<T: for<'r> FromSql<'r>>(&self, sql: &str, params: Params<'_>) -> Result<T> {
        let row = self
            .query_opt(sql, params)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("{}: the query returned no row", self.what)))?;
        row.try_get(0).map_err(|e| StoreError::Corrupt(format!("{}: {}", self.what, chain(&e))))
    }
}

// ---------------------------------------------------------------------------------------------------
// Errors.

/// Starts a REPEATABLE READ, read-only transaction: every query in it sees the same committed state.
pub(super) async fn begin_snapshot<'c>(
    client: &'c mut Client,
    what: &str,
    statement_timeout: Duration,
) -> Result<Transaction<'c>> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(|e| pg_error(what, &e, statement_timeout))
}

/// Maps a PostgreSQL error during `what`: uniqueness → `Conflict` (naming the rule), a missing
/// parent → `MissingParent`, lock waits and serialization failures → `Busy`, the rest (timeouts,
/// lost connections, the server's own errors) → `Backend`.
pub(super) fn pg_error(what: &str, e: &tokio_postgres::Error, statement_timeout: Duration) -> StoreError {
    let Some(db) = e.as_db_error() else {
        if e.is_closed() {
            return StoreError::Backend(format!("{what}: the connection to the database was lost"));
        }
        return StoreError::Backend(format!("{what}: {}", chain(e)));
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        StoreError::Conflict(format!("{what}: {}", unique_rule(db.constraint())))
    } else if *code == SqlState::FOREIGN_KEY_VIOLATION {
        StoreError::MissingParent(format!("{what}: the record it belongs to does not exist"))
    } else if *code == SqlState::QUERY_CANCELED {
        StoreError::Backend(format!(
            "{what}: the database did not finish within the statement timeout ({statement_timeout:?})"
        ))
    } else if *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::T_R_DEADLOCK_DETECTED
    {
        StoreError::Busy(format!("{what}: another writer holds the same records ({}); try again", db.message()))
    } else {
        StoreError::Backend(format!("{what}: {} (SQLSTATE {})", db.message(), code.code()))
    }
}

/// Says which uniqueness rule a constraint (named in the migration) is about; the same words as the
/// SQLite backend's.
fn unique_rule(constraint: Option<&str>) -> String {
    let rule = match constraint {
        Some("identities_client_id") => "another identity has the same client id",
        Some("identities_principal_id") => "another identity has the same principal id",
        Some("clusters_cluster_id") => "another cluster has the same cluster id",
        Some("apps_principal_id") => "another application has the same principal id",
        Some("vaults_vault_id") => "another vault has the same vault id",
        Some("secrets_vault_version") => "the vault already has a secret version with this id",
        Some("credentials_issuer_subject") => {
            "the identity already has a federated credential with this issuer and subject"
        }
        Some("role_assignments_principal_role_scope") => "the principal already holds this role at this scope",
        Some(other) => return format!("already exists ({other})"),
        None => "already exists",
    };
    rule.to_string()
}

/// An error and its sources, one after the other.
pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_settings_are_rewritten() {
        let (url, ca) = normalize("postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&x=y");
        assert_eq!(url, "postgres://u:p@h/db?sslmode=require&x=y");
        assert_eq!(ca, Some(PathBuf::from("/etc/ca.pem")));
        let (url, ca) = normalize("host=h sslmode=verify-ca user=u sslrootcert=/ca.pem");
        assert_eq!(url, "host=h sslmode=require user=u");
        assert_eq!(ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(normalize("postgres://h/db").0, "postgres://h/db");
        assert_eq!(normalize("postgres://h/db?sslrootcert=x").0, "postgres://h/db");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("postgres://wid:s3cr%40t@h:5/db?sslmode=require"),
            "postgres://wid:***@h:5/db?sslmode=require"
        );
        assert_eq!(redacted("host=h password=s3cret user=u"), "host=h password=*** user=u");
        assert_eq!(redacted("postgres://h/db"), "postgres://h/db");
        assert_eq!(url_password("postgresql://a:b@c/d"), Some("b".into()));
        assert_eq!(scrub("x s3cret y", &["s3cret".into()]), "x *** y");
    }

    #[test]
    fn constraints_name_rules() {
        assert_eq!(unique_rule(Some("identities_client_id")), "another identity has the same client id");
        assert!(unique_rule(Some("x_pkey")).contains("x_pkey"));
    }
}
