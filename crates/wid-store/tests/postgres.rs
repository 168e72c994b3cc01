//! The PostgreSQL backend: the conformance suite, each case on a database of its own, then what only
//! a server shows: two stores on one database behave as two replicas (named locks, change
//! notifications, no change skipped under concurrent writers), schema versions and racing migrations,
//! timeouts, broken connections, TLS, passwords kept out of errors, calls from async code, and moving
//! a store between SQLite and PostgreSQL.
//!
//! The server comes from `WID_TEST_DATABASE_URL` (a superuser: each test creates and drops databases),
//! as `eval "$(bash scripts/postgres.sh start DIR)"` sets it, with `WID_TEST_DATABASE_TLS_URL` and
//! `WID_TEST_DATABASE_CA` for the TLS tests. Without it the tests skip, loudly; with `CI` set they fail.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // test helpers

#[macro_use]
mod conformance;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use uuid::Uuid;
use wid_core::model::AppPrincipal;
use wid_store::{Changed, PostgresConfig, PostgresStore, SqliteStore, Store, StoreError};

/// Skips a test whose prerequisite is missing, loudly; in CI (`CI` set) that is a failure, so a green
/// CI never hides an untested backend.
fn skip(why: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "required in CI but unavailable: {why}; run the tests through `bash scripts/test`, or start a server \
         first: eval \"$(bash scripts/postgres.sh start DIR)\""
    );
    eprintln!("SKIPPED: {why} (start one with: eval \"$(bash scripts/postgres.sh start DIR)\")");
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The admin URL of the test server.
fn server() -> Option<String> {
    let url = env_var("WID_TEST_DATABASE_URL");
    if url.is_none() {
        skip("no PostgreSQL server (WID_TEST_DATABASE_URL is not set)");
    }
    url
}

/// `url` with its database replaced by `db`.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// The password of a `postgres://user:password@…` URL.
fn password(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let userinfo = rest.split_once('@').unwrap().0;
    userinfo.split_once(':').unwrap().1.to_string()
}

/// Runs SQL on the server through a plain connection of its own.
fn admin(url: &str, sql: &str) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        let driver = tokio::spawn(conn);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = driver.await;
    });
}

/// A database of its own, dropped (its sessions ended first) when the guard drops.
struct TestDb {
    admin: String,
    name: String,
    url: String,
}

impl TestDb {
    fn config(&self) -> PostgresConfig {
        PostgresConfig::new(self.url.clone())
    }
    fn connect(&self) -> PostgresStore {
        PostgresStore::connect(&self.config(), true).unwrap()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn create_db() -> Option<TestDb> {
    let admin_url = server()?;
    let name = format!("wid_t_{}", Uuid::new_v4().simple());
    admin(&admin_url, &format!("CREATE DATABASE {name}"));
    let url = with_db(&admin_url, &name);
    Some(TestDb { admin: admin_url, name, url })
}

/// A migrated store on a brand-new database.
fn fresh_pg() -> Option<(TestDb, PostgresStore)> {
    let db = create_db()?;
    let store = db.connect();
    Some((db, store))
}

mod cases {
    conformance_tests!(match super::fresh_pg() {
        Some(pair) => pair,
        None => return,
    });
}

fn app(n: u128) -> AppPrincipal {
    AppPrincipal {
        client_id: Uuid::from_u128(0xa990_0000_0000_4000_8000_0000_0000_0000 | n),
        principal_id: Uuid::from_u128(0xb990_0000_0000_4000_8000_0000_0000_0000 | n),
        display_name: format!("app-{n}"),
        secret_hash: vec![n as u8; 32],
        created: 1,
    }
}

#[track_caller]
fn backend_error<T: std::fmt::Debug>(r: wid_store::Result<T>) -> String {
    match r {
        Err(StoreError::Backend(msg)) => msg,
        other => panic!("expected a Backend error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------
// Two stores on one database: two replicas.

#[test]
fn a_named_lock_excludes_the_other_replica_until_released_or_its_holder_is_gone() {
    let Some(db) = create_db() else { return };
    let (a, b) = (db.connect(), db.connect());
    let held = a.lock("identity/x", Duration::ZERO).unwrap();
    assert!(matches!(b.lock("identity/x", Duration::ZERO), Err(StoreError::Busy(_))));
    let start = Instant::now();
    match b.lock("identity/x", Duration::from_millis(200)) {
        Err(StoreError::Busy(msg)) => assert!(msg.contains("identity/x") && msg.contains("held"), "{msg}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(200));
    // Other names are free.
    drop(b.lock("identity/y", Duration::ZERO).unwrap());
    drop(held);
    let held_by_b = b.lock("identity/x", Duration::ZERO).unwrap();
    assert!(matches!(a.lock("identity/x", Duration::ZERO), Err(StoreError::Busy(_))));
    // The holder goes away (as a process that dies would) with the guard still alive: its session
    // ends, and the lock with it.
    drop(b);
    let start = Instant::now();
    let again = a.lock("identity/x", Duration::from_secs(10)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    drop(held_by_b);
    drop(again);
    drop(a.lock("identity/x", Duration::ZERO).unwrap());
}

#[test]
fn lock_holders_still_get_connections_to_write_with() {
    let Some(db) = create_db() else { return };
    let store = PostgresStore::connect(&PostgresConfig { pool_size: 2, ..db.config() }, true).unwrap();
    // As many locks as the pool has connections, each holder then writing (as wid-arm does).
    let guards: Vec<_> = (0..2).map(|n| store.lock(&format!("app/{n}"), Duration::ZERO).unwrap()).collect();
    std::thread::scope(|scope| {
        for n in 0..2 {
            let store = &store;
            scope.spawn(move || store.put_app(&app(n)).unwrap());
        }
    });
    // Beyond that allowance a lock is busy, not a wait for ever.
    match store.lock("app/2", Duration::from_millis(100)) {
        Err(StoreError::Busy(msg)) => assert!(msg.contains("too many named locks"), "{msg}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    drop(guards);
    drop(store.lock("app/2", Duration::ZERO).unwrap());
    assert_eq!(store.app(app(1).client_id).unwrap(), Some(app(1)));
}

#[test]
fn a_change_through_one_replica_wakes_the_other() {
    let Some(db) = create_db() else { return };
    let (a, b) = (db.connect(), db.connect());
    // The first wait opens the listener and returns at once (nobody listened before).
    b.wait_for_changes(Duration::from_secs(5)).unwrap();
    // Nothing happens: the wait lasts its timeout.
    let start = Instant::now();
    b.wait_for_changes(Duration::from_millis(300)).unwrap();
    assert!(start.elapsed() >= Duration::from_millis(250), "{:?}", start.elapsed());

    let head = b.snapshot().unwrap().change_head;
    let waited = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let start = Instant::now();
            b.wait_for_changes(Duration::from_secs(30)).unwrap();
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        a.put_app(&app(1)).unwrap();
        waiter.join().unwrap()
    });
    assert!(waited < Duration::from_secs(10), "woken after {waited:?}");
    let batch = b.changes_since(head, 10).unwrap();
    assert!(!batch.resync);
    assert_eq!(batch.changes.into_iter().map(|(_, c)| c).collect::<Vec<_>>(), [Changed::App(app(1).client_id)]);
    assert!(b.snapshot().unwrap().change_head > head);
}

#[test]
fn changes_committed_concurrently_through_both_replicas_are_all_seen_in_order() {
    let Some(db) = create_db() else { return };
    let (a, b) = (db.connect(), db.connect());
    const WRITERS: u128 = 4;
    const EACH: u128 = 25;
    let total = (2 * WRITERS * EACH) as usize;
    let seen = std::thread::scope(|scope| {
        for (s, store) in [&a, &b].into_iter().enumerate() {
            for w in 0..WRITERS {
                scope.spawn(move || {
                    for n in 0..EACH {
                        store.put_app(&app(s as u128 * 10_000 + w * 100 + n)).unwrap();
                    }
                });
            }
        }
        // A follower on one replica, polling in small pages while both write.
        let follower = scope.spawn(|| {
            let (mut last, mut seen) = (0, Vec::new());
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.len() < total && Instant::now() < deadline {
                let batch = b.changes_since(last, 5).unwrap();
                assert!(!batch.resync);
                for (seq, change) in batch.changes {
                    assert!(seq > last);
                    last = seq;
                    seen.push((seq, change));
                }
            }
            seen
        });
        follower.join().unwrap()
    });
    // Exactly the log, none skipped.
    assert_eq!(seen, a.changes_since(0, 10_000).unwrap().changes);
    assert_eq!(seen.len(), total);
}

// ---------------------------------------------------------------------------------------------------
// Schema versions.

#[test]
fn migrations_racing_on_an_empty_database_both_succeed() {
    let Some(db) = create_db() else { return };
    let config = db.config();
    let results = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..2).map(|_| scope.spawn(|| PostgresStore::connect(&config, true))).collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect::<Vec<_>>()
    });
    for r in results {
        assert_eq!(r.unwrap().schema_version().unwrap(), PostgresStore::SCHEMA_VERSION);
    }
    let latest = PostgresStore::SCHEMA_VERSION;
    assert_eq!(PostgresStore::migrate(&config).unwrap(), (latest, latest));
}

#[test]
fn without_migrating_a_database_behind_is_refused() {
    let Some(db) = create_db() else { return };
    let config = db.config();
    let msg = backend_error(PostgresStore::connect(&config, false));
    assert!(msg.contains("version 0") && msg.contains("run `wid migrate`"), "{msg}");
    assert_eq!(PostgresStore::migrate(&config).unwrap(), (0, PostgresStore::SCHEMA_VERSION));
    let store = PostgresStore::connect(&config, false).unwrap();
    assert_eq!(store.schema_version().unwrap(), PostgresStore::SCHEMA_VERSION);
}

#[test]
fn a_newer_schema_is_refused() {
    let Some(db) = create_db() else { return };
    drop(db.connect());
    admin(&db.url, "INSERT INTO wid_schema (version, applied) VALUES (99, 0)");
    for migrate in [true, false] {
        let msg = backend_error(PostgresStore::connect(&db.config(), migrate));
        assert!(msg.contains("version 99") && msg.contains("newer than this wid"), "{msg}");
    }
    assert!(PostgresStore::migrate(&db.config()).is_err());
}

#[test]
fn another_programs_database_is_refused() {
    let Some(db) = create_db() else { return };
    admin(&db.url, "CREATE TABLE accounts (id int)");
    let msg = backend_error(PostgresStore::connect(&db.config(), true));
    assert!(msg.contains("another program's database"), "{msg}");
    assert!(backend_error(PostgresStore::connect(&db.config(), false)).contains("wid migrate"));
}

// ---------------------------------------------------------------------------------------------------
// Timeouts and broken connections.

#[test]
fn a_statement_timeout_is_a_backend_error_naming_it() {
    let Some(db) = create_db() else { return };
    let store =
        PostgresStore::connect(&PostgresConfig { statement_timeout: Duration::from_secs(1), ..db.config() }, true)
            .unwrap();
    // A trigger makes writing metadata take longer than the timeout.
    admin(
        &db.url,
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(5); RETURN NEW; END $$; \
         CREATE TRIGGER slow BEFORE INSERT ON meta FOR EACH ROW EXECUTE FUNCTION slow();",
    );
    let start = Instant::now();
    let msg = backend_error(store.meta_put("k", b"v"));
    assert!(msg.contains("writing metadata 'k'") && msg.contains("statement timeout (1s)"), "{msg}");
    assert!(start.elapsed() < Duration::from_secs(4), "{:?}", start.elapsed());
    // Nothing was written, and the store goes on working.
    assert_eq!(store.meta_get("k").unwrap(), None);
}

#[test]
fn waiting_on_another_writers_lock_is_busy() {
    let Some(db) = create_db() else { return };
    let store =
        PostgresStore::connect(&PostgresConfig { statement_timeout: Duration::from_secs(2), ..db.config() }, true)
            .unwrap();
    let (locked_tx, locked) = std::sync::mpsc::channel();
    let url = db.url.clone();
    let holder = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (mut client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(conn);
            let tx = client.transaction().await.unwrap();
            tx.batch_execute("LOCK TABLE meta IN ACCESS EXCLUSIVE MODE").await.unwrap();
            locked_tx.send(()).unwrap();
            tokio::time::sleep(Duration::from_secs(4)).await;
            tx.rollback().await.unwrap();
        });
    });
    locked.recv().unwrap();
    let start = Instant::now();
    match store.meta_get("k") {
        Err(StoreError::Busy(msg)) => assert!(msg.contains("reading metadata"), "{msg}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    // The lock timeout (half the statement timeout) ends the wait.
    assert!(start.elapsed() < Duration::from_millis(1900), "{:?}", start.elapsed());
    holder.join().unwrap();
    assert_eq!(store.meta_get("k").unwrap(), None);
}

#[test]
fn connections_the_server_ends_are_replaced() {
    let Some(db) = create_db() else { return };
    let (a, b) = (db.connect(), db.connect());
    a.meta_put("k", b"v").unwrap();
    b.wait_for_changes(Duration::ZERO).unwrap(); // opens b's listener
    admin(
        &db.admin,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            db.name
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.meta_get("k").unwrap().as_deref(), Some(&b"v"[..]));
    // The listener noticed: its next wait re-opens it (returning at once), then changes wake it again.
    let start = Instant::now();
    b.wait_for_changes(Duration::from_secs(2)).unwrap();
    b.wait_for_changes(Duration::from_secs(2)).unwrap();
    assert!(start.elapsed() < Duration::from_secs(3), "{:?}", start.elapsed());
    let waited = std::thread::scope(|scope| {
        let waiter = scope.spawn(|| {
            let start = Instant::now();
            b.wait_for_changes(Duration::from_secs(30)).unwrap();
            start.elapsed()
        });
        std::thread::sleep(Duration::from_millis(200));
        a.put_app(&app(2)).unwrap();
        waiter.join().unwrap()
    });
    assert!(waited < Duration::from_secs(10), "woken after {waited:?}");
}

// ---------------------------------------------------------------------------------------------------
// TLS and secrets in messages.

/// The TLS URL of the test server pointed at `db`, and its CA file.
fn tls_target(db: &TestDb) -> Option<(String, PathBuf)> {
    match (env_var("WID_TEST_DATABASE_TLS_URL"), env_var("WID_TEST_DATABASE_CA")) {
        (Some(url), Some(ca)) => Some((with_db(&url, &db.name), PathBuf::from(ca))),
        _ => {
            skip("no TLS test server (WID_TEST_DATABASE_TLS_URL and WID_TEST_DATABASE_CA are not set)");
            None
        }
    }
}

/// A CA that did not sign the server's certificate.
fn other_ca(dir: &tempfile::TempDir) -> PathBuf {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let path = dir.path().join("other-ca.pem");
    std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
    path
}

#[test]
fn tls_verifies_the_server_against_the_ca() {
    let Some(db) = create_db() else { return };
    let Some((url, ca)) = tls_target(&db) else { return };
    let secret = password(&url);
    let store =
        PostgresStore::connect(&PostgresConfig { ca_file: Some(ca.clone()), ..PostgresConfig::new(&url) }, true)
            .unwrap();
    store.meta_put("k", b"v").unwrap();
    // The store's sessions are encrypted.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let encrypted: i64 = rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&db.admin, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = $1 AND s.ssl",
                &[&db.name],
            )
            .await
            .unwrap();
        row.get(0)
    });
    assert!(encrypted >= 1);
    drop(store);
    // libpq's spellings: verify-full, and the CA named in the URL.
    let verify_full = url.replace("sslmode=require", "sslmode=verify-full");
    PostgresStore::connect(&PostgresConfig { ca_file: Some(ca.clone()), ..PostgresConfig::new(&verify_full) }, false)
        .unwrap();
    let in_url = format!("{verify_full}&sslrootcert={}", ca.display());
    PostgresStore::connect(&PostgresConfig::new(in_url), false).unwrap();
    // The default (prefer) takes the TLS the server offers, verified the same way: never unverified.
    let prefer = url.replacen("?sslmode=require", "", 1);
    assert!(!prefer.contains("sslmode"));
    PostgresStore::connect(&PostgresConfig { ca_file: Some(ca.clone()), ..PostgresConfig::new(&prefer) }, false)
        .unwrap();
    assert!(backend_error(PostgresStore::connect(&PostgresConfig::new(&prefer), false)).contains("TLS"));

    // Another CA, or none (the system bundle does not hold the test CA): refused, saying why.
    let dir = tempfile::tempdir().unwrap();
    for ca_file in [Some(other_ca(&dir)), None] {
        let msg =
            backend_error(PostgresStore::connect(&PostgresConfig { ca_file, ..PostgresConfig::new(&url) }, false));
        assert!(msg.contains("TLS") && msg.contains("certificate") && msg.contains("CA"), "{msg}");
        assert!(!msg.contains(&secret), "{msg}");
    }
    // A CA file that is not there, or holds no certificate.
    let missing = dir.path().join("missing.pem");
    let msg = backend_error(PostgresStore::connect(
        &PostgresConfig { ca_file: Some(missing), ..PostgresConfig::new(&url) },
        false,
    ));
    assert!(msg.contains("missing.pem"), "{msg}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate").unwrap();
    let msg = backend_error(PostgresStore::connect(
        &PostgresConfig { ca_file: Some(empty), ..PostgresConfig::new(&url) },
        false,
    ));
    assert!(msg.contains("no usable certificate"), "{msg}");
}

#[test]
fn no_error_shows_the_password() {
    let Some(db) = create_db() else { return };
    let secret = password(&db.url);
    assert!(secret.len() >= 8);
    let port = db.url.split_once("@127.0.0.1:").unwrap().1.split_once('/').unwrap().0.to_string();
    let cases = [
        // Wrong password (its own text must not show either).
        db.url.replacen(&format!(":{secret}@"), &format!(":{secret}-wrong@"), 1),
        // Nobody listening.
        db.url.replacen(&format!(":{port}/"), ":1/", 1),
        // No such database.
        with_db(&db.url, "no_such_database"),
        // Options the driver refuses.
        format!("{}&no_such_option=1", db.url),
        db.url.replacen("sslmode=disable", "sslmode=sometimes", 1),
        format!("{}&port=notanumber", db.url),
    ];
    for url in cases {
        let config = PostgresConfig { connect_timeout: Duration::from_secs(3), ..PostgresConfig::new(&url) };
        let msg = backend_error(PostgresStore::connect(&config, true));
        assert!(!msg.contains(&secret), "{msg}");
        assert!(!format!("{config:?}").contains(&secret), "{config:?}");
    }
    // A working store's debug output and errors do not show it either.
    let store = db.connect();
    assert!(!format!("{store:?}").contains(&secret));
}

// ---------------------------------------------------------------------------------------------------
// Calls from async code, and moves between backends.

#[test]
fn calls_from_inside_a_tokio_runtime_work() {
    let Some((_db, store)) = fresh_pg() else { return };
    for rt in [
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap(),
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap(),
    ] {
        rt.block_on(async {
            store.put_app(&app(3)).unwrap();
            assert_eq!(store.app(app(3).client_id).unwrap(), Some(app(3)));
            let guard = store.lock("in-async", Duration::ZERO).unwrap();
            drop(guard);
            store.wait_for_changes(Duration::from_millis(10)).unwrap();
            let mut n = 0;
            store
                .export(&mut |_| {
                    n += 1;
                    Ok(())
                })
                .unwrap();
            assert!(n >= 1);
        });
    }
    // Dropping a store inside async code is fine too.
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async move { drop(store) });
}

#[test]
fn a_store_moves_from_sqlite_to_postgres_and_back() {
    let Some((_db, pg)) = fresh_pg() else { return };
    let sqlite = SqliteStore::open_in_memory().unwrap();
    // SQLite → PostgreSQL: exported again, the same records.
    conformance::export_import_round_trip(&sqlite, &pg);
    // PostgreSQL → SQLite.
    let Some((_db2, pg2)) = fresh_pg() else { return };
    let back = SqliteStore::open_in_memory().unwrap();
    conformance::export_import_round_trip(&pg2, &back);
}

#[test]
fn an_import_that_fails_midway_leaves_nothing() {
    let Some((_db, store)) = fresh_pg() else { return };
    let mut records = vec![
        Ok(wid_store::Record::App(app(1))),
        Ok(wid_store::Record::App(app(2))),
        Err(StoreError::Corrupt("line 3 is not a record".into())),
        Ok(wid_store::Record::App(app(4))),
    ]
    .into_iter();
    assert!(matches!(store.import(&mut records), Err(StoreError::Corrupt(_))));
    assert_eq!(store.app(app(1).client_id).unwrap(), None);
    // An export the caller stops early is not an error of the store's.
    store.put_app(&app(5)).unwrap();
    let r = store.export(&mut |_| Err(StoreError::Conflict("enough".into())));
    assert!(matches!(r, Err(StoreError::Conflict(_))));
    assert!(store.import(&mut std::iter::empty()).is_err(), "the store is in use now");
}
