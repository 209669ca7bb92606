//! The model and provider catalogue: which model names exist, which provider serves each,
//! and what each can do.
//!
//! One explicit table (built-in defaults, extended from config) is the only routing source:
//! a model name or alias resolves to exactly one provider, so a Kimi model can never reach
//! the GLM endpoint or the reverse. Provider entries carry no secrets, only whether a key is
//! configured.

use serde::Serialize;
use std::collections::HashMap;

/// What a model supports.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
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
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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

fn caps(vision: bool, tools: bool, thinking: bool, web_search: bool) -> Capabilities {
    Capabilities { vision, tools, thinking, web_search }
}

fn model(name: &str, aliases: &[&str], provider: &str, ctx: u32, out: u32, c: Capabilities) -> ModelEntry {
    ModelEntry {
        name: name.into(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        provider: provider.into(),
        context_window: ctx,
        max_output_tokens: out,
        capabilities: c,
    }
}

/// The built-in model table (Moonshot Kimi and Z.ai GLM, as the old daemon knew them).
pub fn builtin_models() -> Vec<ModelEntry> {
    let k = "kimi";
    let g = "glm";
    vec![
        model("kimi-k2-0905-preview", &["kimi-k2-0905", "kimi-k2"], k, 262_144, 16_384, caps(true, true, false, true)),
        model("kimi-k2-0711-preview", &["kimi-k2-0711"], k, 131_072, 16_384, caps(false, true, false, true)),
        model("kimi-k2-turbo-preview", &["kimi-k2-turbo"], k, 262_144, 16_384, caps(false, true, false, true)),
        model("kimi-thinking-preview", &["kimi-thinking"], k, 131_072, 16_384, caps(true, false, true, false)),
        model("kimi-latest", &[], k, 131_072, 16_384, caps(true, true, false, true)),
        model("kimi-latest-8k", &[], k, 8_192, 4_096, caps(true, true, false, true)),
        model("kimi-latest-32k", &[], k, 32_768, 16_384, caps(true, true, false, true)),
        model("kimi-latest-128k", &[], k, 131_072, 16_384, caps(true, true, false, true)),
        model("moonshot-v1-8k", &[], k, 8_192, 4_096, caps(false, true, false, true)),
        model("moonshot-v1-32k", &[], k, 32_768, 16_384, caps(false, true, false, true)),
        model("moonshot-v1-128k", &[], k, 131_072, 16_384, caps(false, true, false, true)),
        model("moonshot-v1-8k-vision-preview", &[], k, 8_192, 4_096, caps(true, true, false, false)),
        model("moonshot-v1-32k-vision-preview", &[], k, 32_768, 16_384, caps(true, true, false, false)),
        model("moonshot-v1-128k-vision-preview", &[], k, 131_072, 16_384, caps(true, true, false, false)),
        model("glm-4.6", &[], g, 200_000, 8_192, caps(false, true, true, true)),
        model("glm-4.5", &[], g, 131_072, 8_192, caps(false, true, true, true)),
        model("glm-4.5-flash", &[], g, 131_072, 8_192, caps(false, true, false, true)),
        model("glm-4.5-air", &["glm-4.5-x"], g, 131_072, 8_192, caps(false, true, true, true)),
        model("glm-4.5v", &[], g, 65_536, 8_192, caps(true, false, true, false)),
    ]
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
    fn every_builtin_routes_to_its_vendor() {
        let c = Catalog::new(builtin_models(), vec![]);
        for m in c.models() {
            let expect = if m.name.starts_with("glm") { "glm" } else { "kimi" };
            assert_eq!(m.provider, expect, "{}", m.name);
            for a in &m.aliases {
                assert_eq!(c.resolve(a).unwrap().provider, expect);
            }
        }
        let e = c.resolve("gpt-9").unwrap_err();
        assert!(e.to_string().contains("glm-4.5-flash"));
    }
}
