//! Unit tests of config loading, the legacy names, validation, rendering and the docs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod docs;
mod legacy;
mod load;
mod providers;
mod render;
mod validate;

use std::collections::HashMap;
use std::path::PathBuf;

use super::load::load_in;
use super::{Config, ConfigError, LoadOptions};

/// A test setup: an optional `exai.toml` in a fresh directory, an environment, overrides.
pub(super) struct Setup {
    dir: tempfile::TempDir,
    file: Option<PathBuf>,
    env: HashMap<String, String>,
    overrides: Vec<(String, String)>,
}

impl Setup {
    pub(super) fn new() -> Self {
        Setup { dir: tempfile::tempdir().unwrap(), file: None, env: HashMap::new(), overrides: Vec::new() }
    }

    /// Writes `exai.toml` and passes it as `--config`.
    pub(super) fn file(mut self, contents: &str) -> Self {
        let path = self.dir.path().join("exai.toml");
        std::fs::write(&path, contents).unwrap();
        self.file = Some(path);
        self
    }

    /// Writes `exai.toml` in the directory without naming it (found by the cwd lookup).
    pub(super) fn cwd_file(self, contents: &str) -> Self {
        std::fs::write(self.dir.path().join("exai.toml"), contents).unwrap();
        self
    }

    pub(super) fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    pub(super) fn set(mut self, key: &str, value: &str) -> Self {
        self.overrides.push((key.into(), value.into()));
        self
    }

    pub(super) fn options(&self) -> LoadOptions {
        LoadOptions { config_file: self.file.clone(), overrides: self.overrides.clone(), env: Some(self.env.clone()) }
    }

    pub(super) fn load(&self) -> Result<Config, ConfigError> {
        load_in(&self.options(), Some(self.dir.path()))
    }

    pub(super) fn ok(&self) -> Config {
        match self.load() {
            Ok(cfg) => cfg,
            Err(e) => panic!("load failed: {e}"),
        }
    }

    pub(super) fn err(&self) -> String {
        match self.load() {
            Ok(_) => panic!("load succeeded but an error was expected"),
            Err(e) => e.to_string(),
        }
    }
}

/// A token long enough to pass validation; tests check it never shows up.
pub(super) const TOKEN: &str = "s3cr3t-T0KEN-abcdefghijklmnop";

/// The dotted keys of every leaf of a TOML tree (arrays are leaves).
pub(super) fn leaf_keys(value: &toml::Value) -> Vec<String> {
    fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<String>) {
        match value.as_table() {
            Some(table) => {
                for (k, v) in table {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            None => out.push(prefix.to_owned()),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// The value at a dotted path.
pub(super) fn at<'a>(value: &'a toml::Value, dotted: &str) -> Option<&'a toml::Value> {
    dotted.split('.').try_fold(value, |node, part| node.get(part))
}
