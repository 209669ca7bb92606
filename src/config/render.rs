//! `Config::render_redacted`: the effective configuration as TOML, for `exai config check`.
//!
//! Every key is shown, in the documented order, and the output is a config file that loads
//! back to the same configuration (given the same secrets in the environment): secrets are
//! written as comment lines (`# auth_token = "<set>"` / `"<unset>"`), and so is the database
//! URL when it is the default one (derived from `storage.data_dir`) or its password had to be
//! hidden; keys not at their default carry a comment naming their
//! source (file, environment variable, override). Arrays of tables (`[[providers.custom]]`)
//! are written as `[[...]]` blocks after their section's other keys, or as `key = []` when
//! empty.

use std::fmt::Write as _;

use super::keys::{self, Kind};
use super::model::Config;
use super::secret::{redact_url, HIDDEN_PASSWORD, REDACTED, UNSET};

/// The value at a dotted path of a TOML tree.
fn lookup<'a>(tree: &'a toml::Value, dotted: &str) -> Option<&'a toml::Value> {
    dotted.split('.').try_fold(tree, |node, part| node.get(part))
}

fn non_empty_array(v: Option<&toml::Value>) -> bool {
    v.and_then(toml::Value::as_array).is_some_and(|a| !a.is_empty())
}

/// `items` (an array of tables) as `[[key]]` blocks, fields in key-table order and nested
/// arrays of tables after the plain fields of their item.
fn tables_block(out: &mut String, key: &str, fields: &[keys::KeySpec], items: &[toml::Value]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "[[{key}]]");
        let mut nested = Vec::new();
        for f in fields {
            match (f.kind, item.get(f.key)) {
                (Kind::Tables(inner), Some(toml::Value::Array(sub))) => nested.push((f.key, inner, sub)),
                (_, Some(v)) => {
                    let _ = writeln!(out, "{} = {v}", f.key);
                }
                (_, None) => {}
            }
        }
        for (field, inner, sub) in nested {
            out.push('\n');
            tables_block(out, &format!("{key}.{field}"), inner, sub);
        }
    }
}

fn comment(note: &str) -> String {
    note.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

impl Config {
    /// The effective configuration as valid TOML with secrets redacted (as comments, so that
    /// the text can be used as a config file).
    pub fn render_redacted(&self) -> String {
        let mut out = String::from("# exai effective configuration (secrets redacted)\n");
        let tree = match toml::Value::try_from(self) {
            Ok(tree) => tree,
            Err(e) => {
                let _ = writeln!(out, "# could not render the configuration: {e}");
                return out;
            }
        };
        for section in keys::sections() {
            let node = lookup(&tree, section);
            let specs: Vec<_> = keys::KEYS.iter().filter(|s| s.section() == section).collect();
            let header = specs
                .iter()
                .any(|s| !matches!(s.kind, Kind::Tables(_)) || !non_empty_array(node.and_then(|t| t.get(s.field()))));
            if header {
                let _ = write!(out, "\n[{section}]\n");
            }
            let mut blocks = Vec::new();
            for spec in specs {
                let current = node.and_then(|t| t.get(spec.field()));
                let mut commented = false;
                let (value, default_note) = match spec.kind {
                    Kind::Secret => {
                        commented = true;
                        (toml::Value::from(if current.is_some() { REDACTED } else { UNSET }), None)
                    }
                    Kind::DbUrl => {
                        // The default (derived from storage.data_dir) stays derived when the
                        // text is loaded again, and a hidden password must not be loaded.
                        let shown = redact_url(&self.database_url());
                        commented = self.storage.database_url.is_none() || shown.contains(HIDDEN_PASSWORD);
                        (
                            toml::Value::from(shown),
                            self.storage.database_url.is_none().then_some("default: exai.db in storage.data_dir"),
                        )
                    }
                    Kind::Tables(fields) if non_empty_array(current) => {
                        blocks.extend(current.and_then(toml::Value::as_array).map(|items| (spec, fields, items)));
                        continue;
                    }
                    _ => match current {
                        Some(v) => (v.clone(), None),
                        None => continue,
                    },
                };
                if commented {
                    out.push_str("# ");
                }
                let _ = write!(out, "{} = {value}", spec.field());
                if let Some(note) = self.sources.get(spec.key).map(String::as_str).or(default_note) {
                    let _ = write!(out, "  # {}", comment(note));
                }
                out.push('\n');
            }
            for (spec, fields, items) in blocks {
                out.push('\n');
                if let Some(note) = self.sources.get(spec.key) {
                    let _ = writeln!(out, "# {}: {}", spec.key, comment(note));
                }
                tables_block(&mut out, spec.key, fields, items);
            }
        }
        out
    }
}
