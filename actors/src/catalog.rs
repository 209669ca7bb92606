//! The model and provider catalogue: which model names exist, which provider serves each,
//! what each can do, its context window and its price.
//!
//! The built-in models are data: `actors/catalog/models.toml`, embedded at compile time
//! ([`builtin_models`]); configuration adds or overrides models per vendor. One explicit table
//! (built-in defaults, extended from config) is the only routing source:
//! a model name or alias resolves to exactly one provider, so a Kimi model can never reach
//! the GLM endpoint or the reverse. Provider entries carry no secrets, only whether a key is
//! configured.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What a model supports.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Capabilities {
    /// Image input.
    pub vision: bool,
    /// Function/tool calling.
    pub tools: bool,
    /// Extended thinking / reasoning output.
    pub thinking: bool,
    /// Provider-side web search.
    pub web_search: bool,
}

/// One model.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelEntry {
    /// Canonical name sent to the provider.
    pub name: String,
    /// Other names that resolve to it.
    pub aliases: Vec<String>,
    /// Provider id (`kimi`, `glm`, or a configured custom provider).
    pub provider: String,
    /// Context window, tokens.
    pub context_window: u32,
    /// Largest output, tokens.
    pub max_output_tokens: u32,
    /// Capabilities.
    pub capabilities: Capabilities,
    /// Price of input (prompt) tokens, USD per million; `None` when not published.
    pub input_price: Option<f64>,
    /// Price of output (completion) tokens, USD per million; `None` when not published.
    pub output_price: Option<f64>,
}

impl ModelEntry {
    /// The cost of a call in USD, when both prices are known.
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        let (i, o) = (self.input_price?, self.output_price?);
        Some((prompt_tokens as f64 * i + completion_tokens as f64 * o) / 1_000_000.0)
    }
}

/// One provider (no secrets).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Provider id.
    pub name: String,
    /// `kimi`, `glm` or `openai-compatible`.
    pub kind: String,
    /// Base URL of its OpenAI-compatible API.
    pub base_url: String,
    /// Whether an API key is configured (the key itself is never exposed).
    pub api_key_configured: bool,
    /// Whether the vendor has a Files API.
    pub files_api: bool,
    /// Whether it has a standalone web search endpoint.
    pub web_search_endpoint: bool,
}

/// Why a model name did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown model '{model}'; available: {}", available.join(", "))]
pub struct UnknownModel {
    /// Requested name.
    pub model: String,
    /// Canonical names available.
    pub available: Vec<String>,
}

/// The catalogue.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    models: Vec<ModelEntry>,
    by_name: HashMap<String, usize>,
    providers: Vec<ProviderInfo>,
}

/// The shipped catalogue file.
pub const CATALOG_TOML: &str = include_str!("../catalog/models.toml");

/// One `[[models]]` entry of the catalogue file (and of `[[providers.<vendor>.models]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogModel {
    name: String,
    provider: String,
    #[serde(default)]
    aliases: Vec<String>,
    context_window: u32,
    max_output_tokens: u32,
    #[serde(default)]
    vision: bool,
    #[serde(default)]
    tools: bool,
    #[serde(default)]
    thinking: bool,
    #[serde(default)]
    web_search: bool,
    #[serde(default)]
    input_price: Option<f64>,
    #[serde(default)]
    output_price: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    models: Vec<CatalogModel>,
}

/// Why the catalogue file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("model catalogue: {0}")]
pub struct CatalogError(String);

/// Parses a catalogue file (`[[models]]` entries).
pub fn parse_catalog(text: &str) -> Result<Vec<ModelEntry>, CatalogError> {
    let file: CatalogFile = toml::from_str(text).map_err(|e| CatalogError(e.to_string()))?;
    Ok(file
        .models
        .into_iter()
        .map(|m| ModelEntry {
            name: m.name,
            aliases: m.aliases,
            provider: m.provider,
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            capabilities: Capabilities {
                vision: m.vision,
                tools: m.tools,
                thinking: m.thinking,
                web_search: m.web_search,
            },
            input_price: m.input_price,
            output_price: m.output_price,
        })
        .collect())
}

/// The built-in model table (Moonshot Kimi and Z.ai GLM): the shipped catalogue file. A unit
/// test keeps the file valid, so the empty fallback is never reached in a release.
pub fn builtin_models() -> Vec<ModelEntry> {
    parse_catalog(CATALOG_TOML).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the built-in model catalogue does not parse");
        Vec::new()
    })
}

/// `base` with `additions` merged in: an addition named like a model of the same provider
/// replaces it (an override), any other is appended.
pub fn merge_models(mut base: Vec<ModelEntry>, additions: Vec<ModelEntry>) -> Vec<ModelEntry> {
    for m in additions {
        match base.iter_mut().find(|b| b.name == m.name && b.provider == m.provider) {
            Some(slot) => *slot = m,
            None => base.push(m),
        }
    }
    base
}

impl Catalog {
    /// Build from models and providers. Later entries with a name already taken are ignored
    /// (built-ins first, so config cannot silently re-route a built-in name).
    pub fn new(models: Vec<ModelEntry>, providers: Vec<ProviderInfo>) -> Catalog {
        let mut c = Catalog { models: Vec::new(), by_name: HashMap::new(), providers };
        for m in models {
            if c.by_name.contains_key(&m.name) {
                continue;
            }
            let idx = c.models.len();
            c.by_name.insert(m.name.clone(), idx);
            for a in &m.aliases {
                c.by_name.entry(a.clone()).or_insert(idx);
            }
            c.models.push(m);
        }
        c
    }

    /// Resolve a name or alias.
    pub fn resolve(&self, name: &str) -> Result<&ModelEntry, UnknownModel> {
        self.by_name.get(name).and_then(|i| self.models.get(*i)).ok_or_else(|| UnknownModel {
            model: name.to_string(),
            available: self.models.iter().map(|m| m.name.clone()).collect(),
        })
    }

    /// All models.
    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    /// All providers.
    pub fn providers(&self) -> &[ProviderInfo] {
        &self.providers
    }

    /// A provider by id.
    pub fn provider(&self, name: &str) -> Option<&ProviderInfo> {
        self.providers.iter().find(|p| p.name == name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_shipped_catalogue_parses_with_current_ids_and_retired_aliases() {
        let models = parse_catalog(CATALOG_TOML).unwrap();
        let c = Catalog::new(models, vec![]);
        for id in ["kimi-k2.6", "kimi-k2.5", "kimi-k2.7-code", "kimi-k2.7-code-highspeed", "kimi-k3", "moonshot-v1-8k"]
        {
            assert_eq!(c.resolve(id).unwrap().provider, "kimi", "{id}");
        }
        for id in ["glm-4.5", "glm-4.5-air", "glm-4.6", "glm-4.7", "glm-5", "glm-5.1", "glm-5.2", "glm-5.3", "glm-5.4"]
        {
            assert_eq!(c.resolve(id).unwrap().provider, "glm", "{id}");
        }
        // Retired on 2026-05-25: aliases of their successors.
        assert_eq!(c.resolve("kimi-k2-0905-preview").unwrap().name, "kimi-k2.6");
        assert_eq!(c.resolve("kimi-latest").unwrap().name, "kimi-k2.6");
        assert_eq!(c.resolve("kimi-k2-turbo-preview").unwrap().name, "kimi-k2.7-code-highspeed");
        let k = c.resolve("kimi-k2.6").unwrap();
        assert_eq!(k.context_window, 262_144);
        assert_eq!(k.cost_usd(1_000_000, 1_000_000), Some(3.10));
        assert_eq!(c.resolve("glm-5.1").unwrap().context_window, 200_000);
        assert_eq!(c.resolve("kimi-k3").unwrap().cost_usd(10, 10), None, "no published price");
        assert!(parse_catalog("[[models]]\nname = 1").is_err());
    }

    #[test]
    fn merging_overrides_by_name_and_provider_and_appends_the_rest() {
        let base = builtin_models();
        let n = base.len();
        let mut over = base.iter().find(|m| m.name == "kimi-k2.6").unwrap().clone();
        over.input_price = Some(9.0);
        let mut extra = over.clone();
        extra.name = "kimi-k2.8".into();
        extra.aliases.clear();
        let merged = merge_models(base, vec![over, extra]);
        assert_eq!(merged.len(), n + 1);
        let c = Catalog::new(merged, vec![]);
        assert_eq!(c.resolve("kimi-k2.6").unwrap().input_price, Some(9.0));
        assert_eq!(c.resolve("kimi-k2.8").unwrap().provider, "kimi");
    }

    #[test]
    fn every_builtin_routes_to_its_vendor() {
        let c = Catalog::new(builtin_models(), vec![]);
        for m in c.models() {
            let expect = if m.name.starts_with("glm") { "glm" } else { "kimi" };
            assert!(m.context_window > 0 && m.max_output_tokens > 0, "{}", m.name);
            assert_eq!(m.provider, expect, "{}", m.name);
            for a in &m.aliases {
                assert_eq!(c.resolve(a).unwrap().provider, expect);
            }
        }
        let e = c.resolve("gpt-9").unwrap_err();
        assert!(e.to_string().contains("glm-4.5-flash"));
    }
}
