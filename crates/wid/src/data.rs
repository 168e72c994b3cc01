//! Where the state lives, and the offline data commands: `wid migrate`, `wid export`, `wid import`.
//!
//! An export is JSON lines: a header line, then one [`wid_store::Record`] per line, secret material
//! exactly as stored — sealed by the master key (signing keys, the admin secret, vault data keys)
//! or by a vault's data key (secret values). Nothing is decrypted on the way: moving a SQLite data
//! dir to PostgreSQL is `wid export` from the one and `wid import` into the other, and the replicas
//! then run with the same master key.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use wid_server::config::Database;
use wid_store::{PostgresConfig, Record};

/// The first line of an export.
const HEADER: &str = r#"{"format":"wid-export","version":1}"#;

/// Where the state lives (shared by `serve`, `migrate`, `export` and `import`).
#[derive(Debug, Clone, Default, Args)]
pub struct DatabaseArgs {
    /// Data directory (SQLite database, master key, CA). Env: WID_DATA_DIR. Default: ~/.wid/data
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep the state in this PostgreSQL database instead of SQLite, so several replicas can share
    /// it (postgres://USER:PASSWORD@HOST:PORT/DB?sslmode=require). Env: WID_DATABASE_URL
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// CA bundle (PEM) that signs the database's TLS certificate. Env: WID_DATABASE_CA_FILE.
    /// Default: the system bundle
    #[arg(long, value_name = "FILE")]
    pub database_ca_file: Option<PathBuf>,
    /// Connections to PostgreSQL per process. Default: 8
    #[arg(long, value_name = "N")]
    pub database_pool_size: Option<usize>,
    /// The 32-byte master key that seals keys and secrets; replicas on one database share it.
    /// Env: WID_MASTER_KEY_FILE. Default: DATA_DIR/master.key (created on first start)
    #[arg(long, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl DatabaseArgs {
    /// The data dir: flag, `WID_DATA_DIR`, or `~/.wid/data`.
    pub fn data_dir(&self, env: &HashMap<String, String>) -> PathBuf {
        self.data_dir.clone().or_else(|| env.get("WID_DATA_DIR").map(PathBuf::from)).unwrap_or_else(|| {
            env.get("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".wid").join("data")
        })
    }

    /// The database: PostgreSQL if a URL is given (flag or `WID_DATABASE_URL`), else SQLite.
    pub fn database(&self, env: &HashMap<String, String>) -> anyhow::Result<Database> {
        let Some(url) = self.database_url.clone().or_else(|| env.get("WID_DATABASE_URL").cloned()) else {
            return Ok(Database::Sqlite);
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            bail!("--database-url must be a postgres:// URL (SQLite needs no URL: it lives in the data dir)");
        }
        let mut pg = PostgresConfig::new(url);
        pg.ca_file = self.database_ca_file.clone().or_else(|| env.get("WID_DATABASE_CA_FILE").map(PathBuf::from));
        if let Some(n) = self.database_pool_size {
            if n == 0 {
                bail!("--database-pool-size must be at least 1");
            }
            pg.pool_size = n;
        }
        Ok(Database::Postgres(pg))
    }

    /// The master key file named by flag or `WID_MASTER_KEY_FILE`, if any.
    pub fn master_key_file(&self, env: &HashMap<String, String>) -> Option<PathBuf> {
        self.master_key_file.clone().or_else(|| env.get("WID_MASTER_KEY_FILE").map(PathBuf::from))
    }

    fn describe(&self, env: &HashMap<String, String>) -> String {
        match self.database(env) {
            Ok(Database::Postgres(_)) => "the PostgreSQL database".into(),
            _ => format!("{}", self.data_dir(env).join("wid.db").display()),
        }
    }

    fn open(
        &self,
        env: &HashMap<String, String>,
        migrate: bool,
    ) -> anyhow::Result<std::sync::Arc<dyn wid_store::Store>> {
        let dir = self.data_dir(env);
        let database = self.database(env)?;
        if matches!(database, Database::Sqlite) {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let (store, _) = wid_server::bootstrap::open_store(&dir, &database, migrate)
            .with_context(|| format!("opening {}", self.describe(env)))?;
        Ok(store)
    }
}

/// `wid migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
}

/// `wid export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Write the export here (mode 0600) instead of standard output
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// `wid import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// The export to load ('-': standard input)
    #[arg(long, short = 'f', value_name = "FILE")]
    pub file: PathBuf,
}

/// Brings the schema up to date and says where it stands.
pub fn migrate(args: &MigrateArgs, env: &HashMap<String, String>, out: &mut dyn Write) -> anyhow::Result<()> {
    match args.db.database(env)? {
        Database::Postgres(pg) => {
            let (from, to) = wid_store::PostgresStore::migrate(&pg).context("migrating the PostgreSQL schema")?;
            if from == to {
                writeln!(out, "the PostgreSQL schema is up to date (version {to})")?;
            } else {
                writeln!(out, "migrated the PostgreSQL schema from version {from} to {to}")?;
            }
        }
        Database::Sqlite => {
            args.db.open(env, true)?;
            writeln!(out, "the SQLite database {} is up to date", args.db.describe(env))?;
        }
    }
    Ok(())
}

/// Writes every record of the store as JSON lines, streaming (to a `.partial` file renamed at the end).
pub fn export(
    args: &ExportArgs,
    env: &HashMap<String, String>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let store = args.db.open(env, false)?;
    let partial = args.file.as_ref().map(|p| {
        let mut name = p.as_os_str().to_owned();
        name.push(".partial");
        PathBuf::from(name)
    });
    let mut file = match &partial {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?,
        )),
        None => None,
    };
    let out: &mut dyn Write = match &mut file {
        Some(f) => f,
        None => stdout,
    };
    let mut counts: std::collections::BTreeMap<&'static str, u64> = Default::default();
    writeln!(out, "{HEADER}")?;
    store
        .export(&mut |record| {
            *counts.entry(record.kind()).or_default() += 1;
            let line = serde_json::to_string(&record).map_err(|e| wid_store::StoreError::Corrupt(e.to_string()))?;
            writeln!(out, "{line}").map_err(|e| wid_store::StoreError::Backend(format!("writing the export: {e}")))
        })
        .context("exporting")?;
    out.flush()?;
    if let (Some(file), Some(partial), Some(path)) = (file, &partial, &args.file) {
        file.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(partial, path)
            .with_context(|| format!("renaming {} to {}", partial.display(), path.display()))?;
    }
    let total: u64 = counts.values().sum();
    let detail: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    writeln!(stderr, "exported {total} records ({}) from {}", detail.join(", "), args.db.describe(env))?;
    Ok(())
}

/// Loads an export into an empty store, checking first that the master key opens what it sealed.
pub fn import(args: &ImportArgs, env: &HashMap<String, String>, stderr: &mut dyn Write) -> anyhow::Result<()> {
    let key_path = args.db.master_key_file(env).unwrap_or_else(|| args.db.data_dir(env).join("master.key"));
    let master = wid_server::bootstrap::read_master_key(&key_path)?;
    let reader: Box<dyn BufRead> = if args.file == Path::new("-") {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let file = std::fs::File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut lines = reader.lines();
    match lines.next() {
        Some(Ok(first)) if first.trim() == HEADER => {}
        _ => bail!("{} is not a wid export (it must start with {HEADER})", args.file.display()),
    }
    let store = args.db.open(env, true)?;
    let mut line_no = 1;
    let mut records = lines.map(|line| {
        line_no += 1;
        let line = line.map_err(|e| wid_store::StoreError::Backend(format!("reading line {line_no}: {e}")))?;
        let record: Record = serde_json::from_str(&line)
            .map_err(|e| wid_store::StoreError::Corrupt(format!("line {line_no} is not a wid record: {e}")))?;
        if let Record::Meta { key, value } = &record
            && key == "admin"
        {
            wid_server::bootstrap::check_master_key(&master, value).map_err(|e| {
                wid_store::StoreError::Conflict(format!("{e}; import with the master key of the exported data dir"))
            })?;
        }
        Ok(record)
    });
    let n = store
        .import(&mut records)
        .with_context(|| format!("importing {} (nothing was written)", args.file.display()))?;
    writeln!(
        stderr,
        "imported {n} records into {}; start wid serve on it with the master key {}",
        args.db.describe(env),
        key_path.display()
    )?;
    Ok(())
}
