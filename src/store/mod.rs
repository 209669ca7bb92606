//! Storage: the [`Store`] port implemented over sqlx for SQLite and PostgreSQL.
//!
//! [`open`] picks the adapter from the database URL: `sqlite:` URLs and plain file paths
//! select [`sqlite::SqliteStore`] (the embedded default), `postgres://` and `postgresql://`
//! select [`postgres::PgStore`]. The schema comes only from the versioned migrations in
//! `migrations/sqlite` and `migrations/postgres`, embedded into the binary; [`migrate`]
//! applies them (`exai migrate`). Queries are runtime `sqlx::query` calls with bound
//! values. Database URLs are only ever shown through [`redact_url`]. A PostgreSQL store is
//! wrapped in the reachability gate of [`guard`], so that operations and readiness fail fast
//! with the connection error while the database cannot be reached.

mod diagnostics;
mod error;
mod files;
pub mod guard;
pub mod postgres;
mod priority;
mod rows;
pub mod sqlite;
mod sqlite_turns;
mod tasks;
mod url;

use std::sync::Arc;

pub use exai_actors::ports::{MigrationStatus, Store, StoreError};
pub use url::redact_url;

use self::postgres::PgStore;
use self::sqlite::SqliteStore;
use self::url::Backend;

/// How to open a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Upper bound on pooled connections (at least 1; an in-memory SQLite database uses 1).
    pub max_connections: u32,
    /// Apply pending migrations while opening.
    pub migrate: bool,
    /// SQLite: how long a statement waits for a lock before failing with "database is
    /// locked".
    pub busy_timeout_ms: u64,
    /// SQLite: page cache of the writer connection, MiB.
    pub sqlite_cache_mib: u32,
    /// Both backends: the longest wait for a pooled connection.
    pub acquire_timeout_ms: u64,
    /// PostgreSQL: how long a reachability probe (a readiness ping, a direct connection
    /// attempt) may take; see `guard.rs`.
    pub probe_timeout_ms: u64,
    /// SQLite: when the writer connection does only background work (conversation
    /// write-behind is on), the `nice` its worker thread runs at (see `priority.rs`); 0 keeps
    /// it at normal priority.
    pub writer_nice: i32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            migrate: true,
            busy_timeout_ms: 5_000,
            sqlite_cache_mib: 8,
            acquire_timeout_ms: 2_000,
            probe_timeout_ms: 500,
            writer_nice: 0,
        }
    }
}

/// Open the store the URL names, applying migrations when `opts.migrate` is set.
///
/// Fails with [`StoreError::Unavailable`] for an unsupported URL scheme (the message names
/// the scheme) or an unreachable database, and with [`StoreError::Migration`] when a
/// migration fails.
pub async fn open(url: &str, opts: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = match url::classify(url)? {
        Backend::Sqlite => Arc::new(SqliteStore::connect(url, opts).await?),
        Backend::Postgres => {
            let pg = PgStore::connect(url, opts).await?;
            let gate = guard::Gate::new(pg.probe(), std::time::Duration::from_millis(opts.probe_timeout_ms.max(1)));
            Arc::new(guard::Guarded::new(pg, gate))
        }
    };
    tracing::debug!(
        backend = store.backend(),
        url = %redact_url(url),
        "store opened"
    );
    Ok(store)
}

/// Apply every pending migration to the database the URL names and report the resulting
/// status; running it again is a no-op. Used by `exai migrate`.
pub async fn migrate(url: &str) -> Result<MigrationStatus, StoreError> {
    migrate_with(url, &StoreOptions::default()).await
}

/// [`migrate`] with these options (timeouts; at most two connections are opened).
pub async fn migrate_with(url: &str, opts: &StoreOptions) -> Result<MigrationStatus, StoreError> {
    let opts = StoreOptions { max_connections: 2, migrate: true, ..opts.clone() };
    let store = open(url, &opts).await?;
    let status = store.migration_status().await;
    store.close().await;
    status
}
