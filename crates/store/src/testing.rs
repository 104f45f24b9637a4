//! Fresh databases for tests, on both backends.
//!
//! SQLite: a new file in a temporary directory. PostgreSQL: a new schema in
//! the database named by `TEST_DATABASE_URL`, reached through
//! `search_path`, dropped when the [`TestDatabase`] is dropped... best
//! effort, at the next start otherwise (schemas are named `certhall_t_*`).
//!
//! When `TEST_DATABASE_URL` is unset the PostgreSQL variants are skipped
//! with a clear line on stderr — except under `CI=true`, where the URL
//! defaults to the machine's PostgreSQL and an unreachable server fails the
//! test, so CI can never pass with the PostgreSQL run silently skipped.

use std::path::PathBuf;

use crate::{Backend, Result, Store, StoreError};

/// The PostgreSQL CI uses when `TEST_DATABASE_URL` is unset.
pub const CI_DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Where a test's database lives; keeps it alive while held.
#[derive(Debug)]
pub struct TestDatabase {
    /// The migrated store.
    pub store: Store,
    /// The URL another process can use to reach the same database.
    pub url: String,
    _dir: Option<TempDirGuard>,
    pg_schema: Option<(String, String)>,
}

#[derive(Debug)]
struct TempDirGuard(PathBuf);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unique_suffix() -> String {
    format!("{}_{:016x}", std::process::id(), rand::random::<u64>())
}

/// The PostgreSQL URL for tests, or `None` (skip) outside CI.
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => Some(CI_DEFAULT_PG_URL.to_owned()),
        _ => None,
    }
}

/// Records that a test could not run: prints `SKIPPED: {what}` and, when
/// `CERTHALL_SKIP_LOG` names a file (scripts/test.sh sets it), appends the
/// line there, so the run ends with a summary of what did not run — cargo
/// hides the output of a test that passes. (Under `CI=true` the callers
/// fail instead of skipping.)
pub fn report_skip(what: &str) {
    use std::io::Write;
    eprintln!("SKIPPED: {what}");
    if let Some(path) = std::env::var_os("CERTHALL_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{what}");
        }
    }
}

impl TestDatabase {
    /// A fresh SQLite database file.
    pub async fn sqlite() -> Result<Self> {
        let dir = std::env::temp_dir().join(format!("certhall-test-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let url = crate::sqlite_url(&dir.join("certhall.db"));
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        Ok(Self {
            store,
            url,
            _dir: Some(TempDirGuard(dir)),
            pg_schema: None,
        })
    }

    /// A fresh PostgreSQL schema, or `None` when PostgreSQL tests are skipped.
    pub async fn postgres() -> Result<Option<Self>> {
        let Some(base) = postgres_url() else {
            report_skip(
                "PostgreSQL variant (set TEST_DATABASE_URL=postgres://… to run it; \
                 it always runs under CI=true)",
            );
            return Ok(None);
        };
        let admin = Store::connect(&base).await?;
        let schema = format!("certhall_t_{}", unique_suffix());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(admin.pool())
            .await?;
        admin.close().await;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        let store = Store::connect(&url).await?;
        store.migrate().await?;
        Ok(Some(Self {
            store,
            url,
            _dir: None,
            pg_schema: Some((base, schema)),
        }))
    }

    /// Both backends: SQLite always, PostgreSQL when configured.
    pub async fn each() -> Result<Vec<Self>> {
        let mut all = vec![Self::sqlite().await?];
        if let Some(pg) = Self::postgres().await? {
            all.push(pg);
        }
        Ok(all)
    }

    /// The backend of this database.
    pub fn backend(&self) -> Backend {
        self.store.backend()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some((base, schema)) = self.pg_schema.take() {
            // Drop the schema from a short-lived thread: Drop cannot await,
            // and the test's runtime may be shutting down.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio_rt() else { return };
                rt.block_on(async move {
                    if let Ok(admin) = Store::connect(&base).await {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(admin.pool())
                            .await;
                        admin.close().await;
                    }
                });
            })
            .join();
        }
    }
}

fn tokio_rt() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}
