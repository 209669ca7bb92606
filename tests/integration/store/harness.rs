//! Harness for the store behaviour suite: runs one test body against every backend.
//!
//! SQLite always runs, on a file in a fresh temporary directory (inside a not-yet-existing
//! subdirectory, so opening also proves the parent directory is created). PostgreSQL runs
//! when `EXAI_TEST_POSTGRES_URL` names an admin URL (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`): each test body gets its own fresh
//! database `exai_test_<uuid>`, dropped afterwards even when the body panics, so tests
//! run in parallel without seeing each other's rows.

use std::future::Future;
use std::panic::AssertUnwindSafe;

use exai::store::postgres::PgStore;
use exai::store::sqlite::SqliteStore;
use exai::store::StoreOptions;
use futures_util::FutureExt;
use sqlx::{Connection, PgConnection, PgPool, SqlitePool};

/// Environment variable holding the PostgreSQL admin URL.
pub const PG_ENV: &str = "EXAI_TEST_POSTGRES_URL";

/// Run `test(url)` against SQLite and, when configured, against PostgreSQL.
pub async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("exai.db");
    eprintln!("[store suite] backend: sqlite");
    test(format!("sqlite://{}", path.display())).await;

    if let Ok(admin) = std::env::var(PG_ENV) {
        eprintln!("[store suite] backend: postgres");
        on_fresh_pg_database(&admin, &test).await;
    }
}

/// Run `test(url)` against a fresh PostgreSQL database when one is configured (a PostgreSQL
/// only behaviour); says so and returns when none is.
pub async fn on_postgres<F, Fut>(test: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    match std::env::var(PG_ENV) {
        Ok(admin) => on_fresh_pg_database(&admin, &test).await,
        Err(_) => eprintln!("[store suite] {PG_ENV} unset: PostgreSQL-only test not run"),
    }
}

async fn on_fresh_pg_database<F, Fut>(admin: &str, test: &F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = format!("exai_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin_conn = PgConnection::connect(admin).await.unwrap();
    // Identifiers cannot be bound; `name` is generated here from a uuid.
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin_conn).await.unwrap();
    let outcome = AssertUnwindSafe(test(database_url(admin, &name))).catch_unwind().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin_conn).await.unwrap();
    admin_conn.close().await.unwrap();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// The admin URL with its database name replaced by `db`.
fn database_url(admin: &str, db: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority..].find('/') {
        Some(i) => &base[..authority + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// Direct pool access for checks the `Store` trait does not expose (schema shape).
pub enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Raw {
    /// Open the database at `url` without migrating.
    pub async fn open(url: &str) -> Raw {
        let opts = StoreOptions { migrate: false, ..StoreOptions::default() };
        if url.starts_with("sqlite:") {
            Raw::Sqlite(SqliteStore::connect(url, &opts).await.unwrap().pool().clone())
        } else {
            Raw::Postgres(PgStore::connect(url, &opts).await.unwrap().pool().clone())
        }
    }

    /// Row count of `table` (a name from the test's own constant list).
    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match self {
            Raw::Sqlite(p) => sqlx::query_scalar(&sql).fetch_one(p).await.unwrap(),
            Raw::Postgres(p) => sqlx::query_scalar(&sql).fetch_one(p).await.unwrap(),
        }
    }

    /// Insert a minimal `provider_file_uploads` row.
    pub async fn insert_upload(
        &self,
        provider: &str,
        provider_file_id: Option<&str>,
        sha256: &str,
    ) -> Result<(), sqlx::Error> {
        const SQL: &str = "INSERT INTO provider_file_uploads (provider, provider_file_id, \
             sha256, filename, file_size_bytes, upload_status, last_used_at, created_at, \
             updated_at) VALUES ($1, $2, $3, 'a.txt', 3, 'completed', 1, 1, 1)";
        match self {
            Raw::Sqlite(p) => {
                sqlx::query(SQL).bind(provider).bind(provider_file_id).bind(sha256).execute(p).await.map(|_| ())
            }
            Raw::Postgres(p) => {
                sqlx::query(SQL).bind(provider).bind(provider_file_id).bind(sha256).execute(p).await.map(|_| ())
            }
        }
    }

    /// Close the pool.
    pub async fn close(self) {
        match self {
            Raw::Sqlite(p) => p.close().await,
            Raw::Postgres(p) => p.close().await,
        }
    }
}

#[test]
fn database_url_replaces_the_database_name() {
    assert_eq!(
        database_url("postgres://postgres@127.0.0.1:5432/postgres", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(database_url("postgresql://u@h/db?sslmode=disable", "x"), "postgresql://u@h/x?sslmode=disable");
    assert_eq!(database_url("postgres://u@h", "x"), "postgres://u@h/x");
}
