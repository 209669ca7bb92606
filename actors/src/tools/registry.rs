//! The tool registry: every tool once, its compiled input validator, its metric handles, and
//! the pre-rendered `tools/list` pages.
//!
//! Names are looked up after stripping the suffixes clients add to server names
//! (`_EXAI-WS`, `-EXAI-WS`, `_EXAI_WS`, `-EXAI_WS`). Arguments are validated against the
//! tool's JSON Schema before the tool runs; the first violation becomes a
//! `VALIDATION_ERROR` naming the field.

use super::Tool;
use crate::error::ToolError;
use crate::metrics::{Metrics, ToolMetrics};
use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

const SUFFIXES: [&str; 4] = ["_EXAI-WS", "-EXAI-WS", "_EXAI_WS", "-EXAI_WS"];

/// Strip a client-added server suffix from a tool name.
pub fn normalize_name(name: &str) -> &str {
    for s in SUFFIXES {
        if let Some(base) = name.strip_suffix(s) {
            return base;
        }
    }
    name
}

/// A registered tool with what the call path needs.
pub struct Entry {
    /// The tool.
    pub tool: Arc<dyn Tool>,
    /// Compiled input schema.
    validator: jsonschema::Validator,
    /// Metric handles.
    pub metrics: ToolMetrics,
}

/// Errors building the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Two tools share a name.
    #[error("duplicate tool name '{0}'")]
    Duplicate(String),
    /// A tool's schema does not compile.
    #[error("tool '{tool}' has an invalid input schema: {message}")]
    BadSchema {
        /// Tool name.
        tool: String,
        /// Compiler message.
        message: String,
    },
}

/// A cursor that does not belong to this server's listing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor '{0}'")]
pub struct InvalidCursor(pub String);

/// All tools.
pub struct Registry {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
    pages: Vec<Vec<Value>>,
    legacy: Vec<Value>,
}

impl Registry {
    /// Build from tools (order is the listing order); `disabled` names are left out.
    pub fn new(
        tools: Vec<Arc<dyn Tool>>,
        disabled: &[String],
        page_size: usize,
        metrics: &Metrics,
    ) -> Result<Registry, RegistryError> {
        let mut entries = Vec::new();
        let mut by_name = HashMap::new();
        for tool in tools {
            let spec = tool.spec();
            if disabled.iter().any(|d| d == &spec.name) {
                continue;
            }
            if by_name.contains_key(&spec.name) {
                return Err(RegistryError::Duplicate(spec.name.clone()));
            }
            let validator = jsonschema::validator_for(&spec.input_schema)
                .map_err(|e| RegistryError::BadSchema { tool: spec.name.clone(), message: e.to_string() })?;
            by_name.insert(spec.name.clone(), entries.len());
            let metrics = metrics.for_tool(&spec.name);
            entries.push(Entry { tool, validator, metrics });
        }
        let all: Vec<Value> = entries
            .iter()
            .map(|e| {
                let mut v = e.tool.spec().to_mcp();
                if let Some(o) = e.tool.output_schema() {
                    v["outputSchema"] = o.clone();
                }
                v
            })
            .collect();
        let pages = all.chunks(page_size.max(1)).map(|c| c.to_vec()).collect();
        let legacy = entries.iter().map(|e| e.tool.spec().to_legacy()).collect();
        Ok(Registry { entries, by_name, pages, legacy })
    }

    /// Look a tool up by (normalised) name.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(normalize_name(name)).and_then(|i| self.entries.get(*i))
    }

    /// Names in listing order.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.tool.spec().name.clone()).collect()
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One page of the MCP listing and the cursor of the next page.
    pub fn page(&self, cursor: Option<&str>) -> Result<(&[Value], Option<String>), InvalidCursor> {
        let idx = match cursor {
            None => 0,
            Some(c) => c
                .strip_prefix("page-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n > 0 && *n < self.pages.len())
                .ok_or_else(|| InvalidCursor(c.to_string()))?,
        };
        let page = self.pages.get(idx).map(Vec::as_slice).unwrap_or(&[]);
        let next = (idx + 1 < self.pages.len()).then(|| format!("page-{}", idx + 1));
        Ok((page, next))
    }

    /// The legacy `list_tools_res.tools` array.
    pub fn legacy_list(&self) -> &[Value] {
        &self.legacy
    }
}

impl Entry {
    /// Validate arguments (absent means `{}`) and return them as a map.
    pub fn validate(&self, args: Option<Value>) -> Result<Map<String, Value>, ToolError> {
        let args = args.unwrap_or_else(|| Value::Object(Map::new()));
        if !self.validator.is_valid(&args) {
            if let Err(e) = self.validator.validate(&args) {
                let path = e.instance_path().as_str().trim_start_matches('/').to_string();
                let field = match e.kind() {
                    ValidationErrorKind::Required { property } => {
                        property.as_str().map(str::to_string).unwrap_or_else(|| property.to_string())
                    }
                    ValidationErrorKind::AdditionalProperties { unexpected } if path.is_empty() => {
                        unexpected.join(", ")
                    }
                    _ if path.is_empty() => "arguments".to_string(),
                    _ => path,
                };
                return Err(ToolError::InvalidArguments { field, message: e.to_string() });
            }
        }
        match args {
            Value::Object(m) => Ok(m),
            _ => Err(ToolError::InvalidArguments { field: "arguments".into(), message: "must be an object".into() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_name;

    #[test]
    fn strips_client_suffixes() {
        assert_eq!(normalize_name("chat_EXAI-WS"), "chat");
        assert_eq!(normalize_name("status-EXAI_WS"), "status");
        assert_eq!(normalize_name("version"), "version");
    }
}
