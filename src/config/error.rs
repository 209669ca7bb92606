//! `ConfigError`: every way loading or validating the configuration can fail.
//!
//! Messages name the key, the offending value (never for secrets) and what is allowed, and
//! where known the source of the value (file, environment variable, command-line override).
//! File errors name the file but never echo its contents.

use std::path::PathBuf;

/// A configuration problem that stops the process from starting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// An explicitly named config file does not exist.
    #[error("config file {} not found", path.display())]
    FileNotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The config file exists but could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    FileRead {
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("cannot parse config file {}: {message}", path.display())]
    FileParse {
        /// The path as given.
        path: PathBuf,
        /// Position and parser message (no file contents).
        message: String,
    },
    /// A key that does not exist in the configuration.
    #[error("unknown config key {key} in {origin} (see docs/CONFIG.md for the valid keys)")]
    UnknownKey {
        /// The dotted key.
        key: String,
        /// Where it was found.
        origin: String,
    },
    /// A value of the wrong type, out of range, or inconsistent with another key.
    #[error("{}", invalid_message(key, value.as_deref(), expected, origin.as_deref()))]
    InvalidValue {
        /// The dotted key.
        key: String,
        /// The offending value as written (quoted if a string); `None` for secrets.
        value: Option<String>,
        /// What is allowed.
        expected: String,
        /// Where the value came from, when known.
        origin: Option<String>,
    },
    /// Any other error from the `config` crate, reduced to a message naming the key.
    #[error("config error at {key}: {message}")]
    Other {
        /// The dotted key, or `(root)`.
        key: String,
        /// What went wrong.
        message: String,
    },
}

impl ConfigError {
    /// The dotted key the error is about, if any.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::InvalidValue { key, .. }
            | ConfigError::Other { key, .. } => Some(key),
            _ => None,
        }
    }
}

fn invalid_message(key: &str, value: Option<&str>, expected: &str, origin: Option<&str>) -> String {
    let mut msg = format!("invalid value for {key}");
    if let Some(value) = value {
        msg.push_str(": ");
        msg.push_str(value);
    }
    msg.push_str(" (expected ");
    msg.push_str(expected);
    msg.push(')');
    if let Some(origin) = origin {
        msg.push_str(" [from ");
        msg.push_str(origin);
        msg.push(']');
    }
    msg
}
