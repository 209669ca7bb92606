//! Database URL handling: choosing the backend from the URL scheme and hiding passwords.
//!
//! A database URL may carry a password (`postgres://user:secret@host/db` or
//! `?password=secret`). Nothing in exai logs the raw URL: every message goes through
//! [`redact_url`] first.

use exai_actors::ports::StoreError;

/// Which adapter a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// `sqlite:` URLs and plain file paths.
    Sqlite,
    /// `postgres://` and `postgresql://` URLs.
    Postgres,
}

/// Choose the backend from the URL scheme. A string without a scheme is a SQLite file path.
pub(crate) fn classify(url: &str) -> Result<Backend, StoreError> {
    let trimmed = url.trim();
    if trimmed.is_empty() {
        return Err(StoreError::Unavailable("database URL is empty".into()));
    }
    match scheme(trimmed) {
        None => Ok(Backend::Sqlite),
        Some(s) if s.eq_ignore_ascii_case("sqlite") => Ok(Backend::Sqlite),
        Some(s) if s.eq_ignore_ascii_case("postgres") || s.eq_ignore_ascii_case("postgresql") => Ok(Backend::Postgres),
        Some(other) => Err(StoreError::Unavailable(format!(
            "unsupported database URL scheme `{other}` (expected `sqlite:`, `postgres://`, \
             `postgresql://` or a file path)"
        ))),
    }
}

/// The URL scheme, if the string starts with one (`letter (letter|digit|+|-|.)* :`).
/// Single letters are not treated as schemes so Windows drive paths stay file paths.
fn scheme(url: &str) -> Option<&str> {
    let colon = url.find(':')?;
    let candidate = &url[..colon];
    let mut chars = candidate.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (valid && candidate.len() > 1).then_some(candidate)
}

/// Hide any password in a database URL: the password in the user-info part
/// (`user:secret@host` → `user:***@host`) and the value of any `password=` parameter.
/// Strings without a password come back unchanged.
pub fn redact_url(url: &str) -> String {
    redact_password_params(&redact_userinfo(url))
}

fn redact_userinfo(url: &str) -> String {
    let Some(sep) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = sep + 3;
    let rest = &url[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return url.to_string();
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(&url[..authority_start]);
    out.push_str(&userinfo[..colon]);
    out.push_str(":***");
    out.push_str(&rest[at..]);
    out
}

fn redact_password_params(url: &str) -> String {
    const KEY: &str = "password=";
    let lower = url.to_ascii_lowercase();
    let mut out = String::with_capacity(url.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find(KEY) {
        let value_start = pos + found + KEY.len();
        let value_len = url[value_start..].find(['&', ';', ' ', '#']).unwrap_or(url.len() - value_start);
        out.push_str(&url[pos..value_start]);
        out.push_str("***");
        pos = value_start + value_len;
    }
    out.push_str(&url[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_schemes_and_paths() {
        assert_eq!(classify("sqlite:data/exai.db").ok(), Some(Backend::Sqlite));
        assert_eq!(classify("sqlite://data/exai.db").ok(), Some(Backend::Sqlite));
        assert_eq!(classify("sqlite::memory:").ok(), Some(Backend::Sqlite));
        assert_eq!(classify("data/exai.db").ok(), Some(Backend::Sqlite));
        assert_eq!(classify("/var/lib/exai/exai.db").ok(), Some(Backend::Sqlite));
        assert_eq!(classify(r"C:\exai\exai.db").ok(), Some(Backend::Sqlite));
        assert_eq!(classify("postgres://u@h/db").ok(), Some(Backend::Postgres));
        assert_eq!(classify("postgresql://u@h/db").ok(), Some(Backend::Postgres));
    }

    #[test]
    fn rejects_unknown_scheme_by_name() {
        match classify("mysql://root:pw@localhost/db") {
            Err(StoreError::Unavailable(msg)) => {
                assert!(msg.contains("`mysql`"), "{msg}");
                assert!(!msg.contains("pw"), "{msg}");
            }
            other => panic!("expected an error, got {other:?}"),
        }
        assert!(classify("  ").is_err());
    }

    #[test]
    fn redacts_userinfo_password() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db.example:5432/exai?sslmode=require"),
            "postgres://app:***@db.example:5432/exai?sslmode=require"
        );
        assert_eq!(redact_url("postgresql://app:p@ss@host/db"), "postgresql://app:***@host/db");
    }

    #[test]
    fn redacts_password_parameters() {
        assert_eq!(
            redact_url("postgres://host/db?user=app&password=hunter2&sslmode=disable"),
            "postgres://host/db?user=app&password=***&sslmode=disable"
        );
        assert_eq!(redact_url("postgres://host/db?PASSWORD=hunter2"), "postgres://host/db?PASSWORD=***");
        assert_eq!(
            redact_url("host=db user=app password=hunter2 dbname=exai"),
            "host=db user=app password=*** dbname=exai"
        );
    }

    #[test]
    fn leaves_urls_without_password_alone() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "sqlite://data/exai.db",
            "data/exai.db",
            "postgres://host/db?sslmode=disable&application_name=exai",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }
}
