//! `docs/CONFIG.md` and `exai.example.toml` stay in step with the code.

use std::path::PathBuf;

use crate::config::legacy::{LEGACY, UNSUPPORTED};
use crate::config::{keys, Config, LoadOptions};

fn repo_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
}

#[test]
fn config_md_mentions_every_key_and_env_var() {
    let docs = std::fs::read_to_string(repo_file("docs/CONFIG.md")).unwrap();
    let mut count = 0;
    for dotted in keys::KEYS.iter().map(|s| s.key) {
        let key = format!("`{dotted}`");
        assert!(docs.contains(&key), "docs/CONFIG.md does not document {key}");
        let spec = keys::spec(dotted).unwrap();
        match spec.kind {
            keys::Kind::Tables(fields) => {
                for f in fields {
                    let field = format!("`{}`", f.key);
                    assert!(docs.contains(&field), "docs/CONFIG.md does not document {field} of {dotted}");
                }
            }
            _ => {
                let var = spec.env_var();
                assert!(docs.contains(&var), "docs/CONFIG.md does not name {var}");
            }
        }
        count += 1;
    }
    assert_eq!(count, keys::KEYS.len());
    for var in LEGACY {
        assert!(docs.contains(&format!("`{}`", var.name)), "legacy name {} missing from docs/CONFIG.md", var.name);
    }
    for (name, _) in UNSUPPORTED {
        assert!(docs.contains(name), "unsupported name {name} missing from docs/CONFIG.md");
    }
}

#[test]
fn example_file_loads_and_equals_the_defaults() {
    let opts = LoadOptions {
        config_file: Some(repo_file("exai.example.toml")),
        overrides: Vec::new(),
        env: Some(Default::default()),
    };
    let cfg = Config::load(&opts).unwrap();
    let loaded = toml::Value::try_from(&cfg).unwrap();
    let defaults = toml::Value::try_from(Config::default()).unwrap();
    assert_eq!(loaded, defaults);
    // Every non-secret key is written out in the example.
    let text = std::fs::read_to_string(repo_file("exai.example.toml")).unwrap();
    for spec in keys::KEYS {
        match spec.kind {
            // Arrays of tables are shown as a commented-out example.
            keys::Kind::Tables(fields) => example_has_tables(&text, spec.key, fields),
            _ => assert!(text.contains(&format!("{} =", spec.field())), "{} missing from exai.example.toml", spec.key),
        }
    }
}

/// `[[key]]` and every field of its items (recursively) appear in the example.
fn example_has_tables(text: &str, key: &str, fields: &[keys::KeySpec]) {
    assert!(text.contains(&format!("[[{key}]]")), "[[{key}]] missing from exai.example.toml");
    for f in fields {
        match f.kind {
            keys::Kind::Tables(inner) => example_has_tables(text, &format!("{key}.{}", f.key), inner),
            _ => assert!(text.contains(&format!("{} =", f.key)), "{key}.{} missing from exai.example.toml", f.key),
        }
    }
}
