//! CertHall's storage: one schema on SQLite (the embedded default) and
//! PostgreSQL (selected by `DATABASE_URL`), through sqlx's `Any` driver.
//!
//! - One migrations folder per backend (`migrations/sqlite`,
//!   `migrations/postgresql`, the vaultwarden layout), embedded in the binary
//!   and run at start. Both create the same tables and columns.
//! - Times are `BIGINT` milliseconds, ids `BIGINT`, binary `BLOB`/`BYTEA`,
//!   so every value has one representation on both backends.
//! - SQL uses `$n` placeholders, which both drivers accept.
//! - Writes go through [`WriteTx`]: on SQLite it is `BEGIN IMMEDIATE` (the
//!   single writer lock is taken up front, so a read-then-write transaction
//!   never fails on a stale snapshot); on PostgreSQL it is a normal
//!   transaction and [`WriteTx::lock`] takes a transaction-scoped advisory
//!   lock where a read-then-write must be serialized across processes.
//!   Backend-specific SQL lives only in this file and is marked.
//!
//! Repositories are grouped by aggregate in the submodules; each function
//! takes the pool (reads) or a [`WriteTx`] (writes).

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};

pub mod accounts;
pub mod addresses;
pub mod applications;
pub mod audit;
pub mod ca;
pub mod challenges;
pub mod checkouts;
pub mod demo_pay;
pub mod jobs;
pub mod key_models;
pub mod login_codes;
pub mod materials;
pub mod messages;
pub mod notices;
pub mod operators;
pub mod orders;
pub mod payments;
pub mod production;
pub mod relying;
pub mod reminders;
pub mod renewals;
pub mod sessions;
pub mod shipments;
pub mod sms;
pub mod testing;

/// A storage failure. Never shown to users as is.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value could not be read back into a domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// True when a unique constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// Result of a storage call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which database engine is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite, a file in the data directory.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// Lower-case name, as shown in logs and `/readyz`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgresql",
        }
    }
}

/// The database: a connection pool and the backend it talks to.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgresql");

impl Backend {
    /// The backend a database URL names.
    fn of_url(url: &str) -> Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else {
            Err(StoreError::Corrupt(format!(
                "unsupported database URL scheme in {}",
                redact_url(url)
            )))
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // Backend-specific: a SQLite connection is a file handle in
            // this process and cannot die on its own, so the ping before
            // every acquire (a round trip to the connection's thread, on
            // every query and transaction) buys nothing there. PostgreSQL
            // connections can (a server restart), so they keep the ping.
            .test_before_acquire(backend == Backend::Postgres)
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Per-connection settings; journal_mode=WAL is
                        // persistent in the file but cheap to repeat.
                        conn.execute(
                            "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                             PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;",
                        )
                        .await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, backend })
    }

    /// Connects to `url` for reading only: a SQLite file is opened
    /// read-only and must exist (nothing is created), PostgreSQL sessions
    /// are read-only; migrations are not run. For the commands that only
    /// look (`certhall audit verify`): a write is an error, not a change.
    pub async fn connect_read_only(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            Backend::Sqlite => {
                let (path, query) = url.split_once('?').unwrap_or((url, ""));
                let mut params: Vec<&str> = query
                    .split('&')
                    .filter(|p| !p.is_empty() && !p.starts_with("mode="))
                    .collect();
                params.push("mode=ro");
                format!("{path}?{}", params.join("&"))
            }
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute(match backend {
                        Backend::Sqlite => "PRAGMA query_only = ON; PRAGMA busy_timeout = 10000;",
                        Backend::Postgres => "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                    })
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        Ok(Self { pool, backend })
    }

    /// Opens (creating if needed) the SQLite file at `path`.
    pub async fn open_sqlite_file(path: &Path) -> Result<Self> {
        Self::connect(&sqlite_url(path)).await
    }

    /// Runs the migrations of this backend that have not run yet.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Which engine this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for read queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// True when the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Begins a write transaction (see the module docs).
    pub async fn begin_write(&self) -> Result<WriteTx> {
        let tx = match self.backend {
            // Backend-specific: take SQLite's writer lock up front.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            backend: self.backend,
        })
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The VALUES list of a multi-row INSERT of `rows` rows of `columns`
/// columns: `($1, …, $k), ($k+1, …)` on PostgreSQL; `(?, …), (?, …)` on
/// SQLite (backend-specific: the driver looks up the name of every
/// numbered parameter on every execution, and SQLite finds a name by a
/// linear scan, which made binding a 1,664-parameter INSERT quadratic).
pub(crate) fn values_list(backend: Backend, rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            match backend {
                Backend::Sqlite => out.push('?'),
                Backend::Postgres => {
                    out.push('$');
                    out.push_str(&(r * columns + c + 1).to_string());
                }
            }
        }
        out.push(')');
    }
    out
}

/// Rows per multi-row INSERT at most: 13 columns × 128 rows stays far
/// below SQLite's 32,766 and PostgreSQL's 65,535 bound parameters.
pub(crate) const INSERT_CHUNK: usize = 128;

/// `rows` cut for multi-row INSERTs: chunks of [`INSERT_CHUNK`] rows, the
/// rest in powers of two (64, 32, …, 1). So an INSERT has at most eight
/// texts per table, which stay in each connection's statement cache; a
/// text for every batch size had the database parse a statement of up
/// to 1,664 parameters on most commits. (The issuance writer takes
/// batches of a power of two, which are one or a few chunks.)
pub(crate) fn insert_chunks<T>(rows: &[T]) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = rows;
    while !rest.is_empty() {
        let size = if rest.len() >= INSERT_CHUNK {
            INSERT_CHUNK
        } else {
            // The largest power of two not above what is left.
            1 << rest.len().ilog2()
        };
        let (chunk, tail) = rest.split_at(size);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// The SQLite URL for a file path, creating the file if missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

/// A URL with its password (if any) replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let creds = &url[scheme_end + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A write transaction. Dropped without [`WriteTx::commit`], it rolls back.
#[derive(Debug)]
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    backend: Backend,
}

/// Advisory lock keys for [`WriteTx::lock`].
#[derive(Debug, Clone, Copy)]
pub enum LockKey<'a> {
    /// Appends to the audit chain.
    AuditChain,
    /// Sending and checking login codes for one phone.
    Phone(&'a str),
    /// One key model's stock (reservations must not oversell it).
    KeyModel(&'a str),
    /// One order's payments (one attempt at a time, refunds).
    OrderPayment(i64),
    /// Counter password tries for one username (taken before the address).
    CounterLogin(&'a str),
    /// Counter password tries from one address.
    CounterAddress(&'a str),
    /// The orders opened for one certificate (更新, 变更: one of each).
    Certificate(&'a str),
}

impl WriteTx {
    /// Serializes this transaction with every other one that takes the same
    /// key, until commit or rollback. On SQLite every write transaction is
    /// already serialized by `BEGIN IMMEDIATE`, so this is a no-op there.
    pub async fn lock(&mut self, key: LockKey<'_>) -> Result<()> {
        if self.backend == Backend::Postgres {
            // Backend-specific: PostgreSQL transaction-scoped advisory lock.
            let name = match key {
                LockKey::AuditChain => "audit-chain".to_owned(),
                LockKey::Phone(p) => format!("phone:{p}"),
                LockKey::KeyModel(m) => format!("key-model:{m}"),
                LockKey::OrderPayment(id) => format!("order-payment:{id}"),
                LockKey::CounterLogin(u) => format!("counter-login:{u}"),
                LockKey::CounterAddress(ip) => format!("counter-address:{ip}"),
                LockKey::Certificate(serial) => format!("certificate:{serial}"),
            };
            sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                .bind(name)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Which engine this transaction runs on.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection, for queries inside the transaction.
    pub fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.tx
    }
}

/// Executes one SQL statement inside a write transaction. For operators'
/// tools and tests (e.g. proving that the audit check notices an edited
/// row); application code uses the typed functions of the submodules.
pub async fn raw_execute(tx: &mut WriteTx, sql: &str) -> Result<u64> {
    Ok(sqlx::query(sql).execute(tx.conn()).await?.rows_affected())
}

pub(crate) fn u32_from(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_chunks_are_full_chunks_then_powers_of_two() {
        let rows: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = insert_chunks(&rows).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [128, 128, 32, 8, 4]);
        let joined: Vec<u32> = insert_chunks(&rows).concat();
        assert_eq!(joined, rows, "every row once, in order");
        assert_eq!(insert_chunks(&rows[..64]).len(), 1);
        assert!(insert_chunks::<u32>(&[]).is_empty());
    }

    #[test]
    fn values_lists_number_postgres_parameters_only() {
        assert_eq!(values_list(Backend::Postgres, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values_list(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/certhall"),
            "postgres://app:***@db:5432/certhall"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(
            redact_url("sqlite://./data/certhall.db"),
            "sqlite://./data/certhall.db"
        );
    }
}
