//! Mapping of sqlx errors into the port's [`StoreError`].
//!
//! Uniqueness, foreign-key, not-null and check violations become `Constraint`; decoding
//! problems become `Corrupt`; migration failures become `Migration`; everything else
//! (pool, I/O, protocol, other database errors) becomes `Unavailable`, except a full disk
//! (SQLite `SQLITE_FULL`, PostgreSQL `53100`, `ENOSPC`), which becomes `DiskFull`.

use exai_actors::ports::StoreError;
use sqlx::error::ErrorKind;
use sqlx::migrate::MigrateError;

/// Convert a sqlx error into a [`StoreError`].
pub(crate) fn map_sqlx(err: sqlx::Error) -> StoreError {
    match err {
        // SQLITE_FULL (13, also as an extended code), PostgreSQL disk_full (53100).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c == "53100" || c.parse::<i32>().is_ok_and(|n| n & 0xff == 13)) =>
        {
            StoreError::DiskFull(db.message().to_string())
        }
        sqlx::Error::Io(io) if io.raw_os_error() == Some(28) || io.kind() == std::io::ErrorKind::StorageFull => {
            StoreError::DiskFull(io.to_string())
        }
        sqlx::Error::Database(db) => match db.kind() {
            ErrorKind::UniqueViolation
            | ErrorKind::ForeignKeyViolation
            | ErrorKind::NotNullViolation
            | ErrorKind::CheckViolation => StoreError::Constraint(db.message().to_string()),
            _ => StoreError::Unavailable(db.message().to_string()),
        },
        e @ (sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. }) => StoreError::Corrupt(e.to_string()),
        sqlx::Error::Migrate(m) => map_migrate(*m),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Convert a migration error into [`StoreError::Migration`].
pub(crate) fn map_migrate(err: MigrateError) -> StoreError {
    StoreError::Migration(err.to_string())
}

/// Error for a failed connection attempt; names the (redacted) URL, never the password.
pub(crate) fn connect_failed(redacted_url: &str, err: sqlx::Error) -> StoreError {
    match map_sqlx(err) {
        StoreError::Unavailable(msg) => StoreError::Unavailable(format!("cannot open {redacted_url}: {msg}")),
        other => other,
    }
}
