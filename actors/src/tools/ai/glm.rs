//! GLM tools: `glm_web_search` (Z.ai's standalone `POST /web_search`, one provider call) and
//! `glm_payload_preview` (the exact chat body the GLM transport would send, built by
//! `provider::payload`; no network).

use super::common::{json_output, object_schema, pick_common, props, CallBudget, Common};
use crate::error::ToolError;
use crate::provider::actor::{FileReply, FileRequest};
use crate::provider::payload::{chat_body, PayloadKind};
use crate::provider::service::ChatCall;
use crate::provider::types::{ChatMessage, ChatRequest};
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};

const ENGINES: [&str; 6] =
    ["search-prime", "search-pro", "search_std", "search_pro", "search_pro_sogou", "search_pro_quark"];

/// The vendor body of a web search from the tool's arguments.
pub fn search_body(args: &Map<String, Value>) -> Value {
    let c = Common(args);
    let mut body = json!({
        "search_query": c.str("search_query").unwrap_or_default(),
        "count": c.u32("count").unwrap_or(10),
        "search_engine": c.str("search_engine").unwrap_or("search-prime"),
    });
    for k in ["search_domain_filter", "search_recency_filter", "request_id", "user_id"] {
        if let Some(v) = c.str(k).filter(|v| !v.is_empty()) {
            body[k] = json!(v);
        }
    }
    body
}

/// `glm_web_search`.
pub struct GlmWebSearch(ToolSpec);

impl Default for GlmWebSearch {
    fn default() -> Self {
        Self::new()
    }
}

impl GlmWebSearch {
    /// Build it.
    pub fn new() -> Self {
        let p = props(json!({
            "search_query": { "type": "string", "minLength": 1, "maxLength": 4000, "description": "What to search for." },
            "count": { "type": "integer", "minimum": 1, "maximum": 50, "description": "Results to return (default 10)." },
            "search_engine": { "type": "string", "enum": ENGINES, "description": "Search engine (default search-prime)." },
            "search_domain_filter": { "type": "string", "maxLength": 253, "description": "Only results from this domain, e.g. docs.rs." },
            "search_recency_filter": { "type": "string", "enum": ["oneDay", "oneWeek", "oneMonth", "oneYear", "noLimit"],
                                       "description": "Only results this recent (default noLimit)." },
            "request_id": { "type": "string", "minLength": 1, "maxLength": 128, "description": "Your id for the request (echoed by GLM)." },
            "user_id": { "type": "string", "minLength": 6, "maxLength": 128, "description": "End-user id for GLM's abuse monitoring." }
        }));
        GlmWebSearch(ToolSpec {
            name: "glm_web_search".into(),
            title: Some("GLM web search".into()),
            description: "Web search through Z.ai GLM's search API (no model answer): returns titles, links, snippets \
                          and dates of matching pages. Use it to find current information or sources."
                .into(),
            input_schema: object_schema(p, &["search_query"]),
            kind: ToolKind::Simple,
            read_only: true,
        })
    }
}

impl Tool for GlmWebSearch {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let body = search_body(&args);
            let budget = CallBudget::new(&ctx);
            budget.take("glm_web_search")?;
            let reply = ctx.env.providers.file_op("glm", FileRequest::WebSearch(body.clone())).await?;
            let FileReply::Json(results) = reply else {
                return Err(ToolError::Internal("web search answered with something other than JSON".into()));
            };
            let count = results.get("search_result").and_then(Value::as_array).map(Vec::len);
            let v = json!({
                "status": "success",
                "search_query": body["search_query"],
                "search_engine": body["search_engine"],
                "result_count": count,
                "results": results,
                "metadata": { "tool": "glm_web_search", "provider": "glm", "provider_calls": budget.used() },
            });
            let mut out = json_output(v, None);
            out.provider = Some("glm".into());
            Ok(out)
        })
    }
}

/// `glm_payload_preview`.
pub struct GlmPayloadPreview(ToolSpec);

impl Default for GlmPayloadPreview {
    fn default() -> Self {
        Self::new()
    }
}

impl GlmPayloadPreview {
    /// Build it.
    pub fn new() -> Self {
        let mut p = pick_common(&["model", "temperature", "thinking_mode", "use_websearch"]);
        p.extend(props(json!({
            "prompt": { "type": "string", "minLength": 1, "maxLength": 100000, "description": "The user message." },
            "system_prompt": { "type": "string", "maxLength": 100000, "description": "Optional system message." },
            "tools": { "type": "array", "maxItems": 128, "items": { "type": "object", "required": ["type"] },
                       "description": "OpenAI-format tools to include." },
            "tool_choice": { "oneOf": [ { "type": "string", "enum": ["auto", "none", "required"] },
                                        { "type": "object", "required": ["type"] } ] },
            "stream": { "type": "boolean", "description": "Preview a streaming request (default false)." }
        })));
        GlmPayloadPreview(ToolSpec {
            name: "glm_payload_preview".into(),
            title: Some("GLM payload preview".into()),
            description:
                "Shows the exact JSON body exai would POST to GLM's /chat/completions for a prompt and options \
                          (model, temperature, thinking, web search tool, tools), and the endpoint. Makes no network \
                          call; use it to debug GLM requests."
                    .into(),
            input_schema: object_schema(p, &["prompt"]),
            kind: ToolKind::Builtin,
            read_only: true,
        })
    }
}

impl Tool for GlmPayloadPreview {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        Box::pin(async move {
            let c = Common(&args);
            let probe = ChatCall {
                model: c.str("model").map(str::to_string),
                tool: "glm_payload_preview".into(),
                ..ChatCall::default()
            };
            let (m, routing) = ctx.env.providers.resolve(&probe)?;
            let catalog = ctx.env.providers.catalog();
            let info = catalog.provider(&m.provider);
            if info.map(|p| p.kind.as_str()).unwrap_or(m.provider.as_str()) != "glm" {
                return Err(ToolError::InvalidArguments {
                    field: "model".into(),
                    message: format!(
                        "{} is served by {} ({routing}); give a GLM model (glm-4.6, glm-4.5, glm-4.5-flash, ...)",
                        m.name, m.provider
                    ),
                });
            }
            let mut messages = Vec::new();
            if let Some(s) = c.str("system_prompt").filter(|s| !s.trim().is_empty()) {
                messages.push(ChatMessage::text("system", s));
            }
            messages.push(ChatMessage::text("user", c.str("prompt").unwrap_or_default()));
            let req = ChatRequest {
                model: m.name.clone(),
                messages,
                temperature: c.f64("temperature"),
                stream: c.bool("stream").unwrap_or(false),
                tools: args.get("tools").and_then(Value::as_array).filter(|a| !a.is_empty()).cloned(),
                tool_choice: args.get("tool_choice").cloned(),
                thinking: c.thinking(),
                web_search: c.bool("use_websearch").unwrap_or(false),
                ..ChatRequest::default()
            };
            let mut notes = Vec::new();
            if req.thinking == Some(true) && !m.capabilities.thinking {
                notes.push(format!("{} has no thinking mode; GLM may ignore or reject \"thinking\"", m.name));
            }
            if req.web_search && !m.capabilities.web_search {
                notes.push(format!("{} has no web search; GLM may ignore or reject the web_search tool", m.name));
            }
            let endpoint = info.map(|p| format!("{}/chat/completions", p.base_url.trim_end_matches('/')));
            Ok(json_output(
                json!({
                    "status": "success",
                    "provider": m.provider,
                    "model": m.name,
                    "routing": routing,
                    "endpoint": endpoint,
                    "payload": chat_body(PayloadKind::Glm, &req),
                    "notes": notes,
                    "metadata": { "tool": "glm_payload_preview", "provider_calls": 0 },
                }),
                None,
            ))
        })
    }
}
