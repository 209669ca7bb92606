//! Vendor chat bodies: pure functions turning a routed [`ChatRequest`] into the exact
//! OpenAI-compatible `POST /chat/completions` JSON body each vendor expects.
//!
//! This is the only place the vendor body rules live: the HTTP transports (`exai::providers`)
//! send what [`chat_body`] returns, and `glm_payload_preview` shows the same value, so the
//! preview cannot disagree with what is sent.
//!
//! - common: `model`, `messages`, `temperature`, `max_tokens`, `stream` (always, `false` too),
//!   `tools`, `tool_choice`, then `extra`, which may add or override any field except
//!   [`RESERVED_FIELDS`] (e.g. GLM `"thinking": {"type": "disabled"}`, or `stream_options` for a
//!   vendor that does not get it by default);
//! - `stream_options.include_usage` only for other OpenAI-compatible servers when streaming:
//!   Kimi reports a stream's usage in its last choice and GLM in its last chunk without it, and
//!   neither documents the field;
//! - web search: Kimi's builtin `$web_search` function tool, GLM's `web_search` tool
//!   (`enable: true`, `search_pro_jina`, results returned); an injected tool comes with `tool_choice: "auto"`
//!   unless the caller chose one (what the Python predecessor sent to both vendors); a builtin
//!   the caller passed already is not added twice; other providers have no web search;
//! - thinking: GLM `"thinking": {"type": "enabled"}` when asked for, `"disabled"` when turned off
//!   (thinking mode minimal or low), nothing when unspecified; Kimi needs nothing in the body (its
//!   thinking models answer with `reasoning_content` on their own);
//! - GLM `tool_stream: true` only when streaming with the caller's own `function` tools;
//! - `reasoning_content` of assistant messages (Kimi's thinking models need it kept during
//!   tool loops) is sent to Kimi and GLM, and dropped for other OpenAI-compatible servers,
//!   some of which reject it.

use super::types::ChatRequest;
use serde_json::{json, Map, Value};

/// Body fields `ChatRequest::extra` may not override: the transport depends on `model`,
/// `messages` and `stream` (SSE or not), and `tools` is built from `ChatRequest::tools` plus
/// the web search builtin (an `extra` list would silently drop the builtin).
pub const RESERVED_FIELDS: &[&str] = &["model", "messages", "stream", "tools"];

/// Name of Kimi's builtin web search function.
pub const KIMI_WEB_SEARCH_FN: &str = "$web_search";

/// Which vendor's body rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    /// Moonshot Kimi.
    Kimi,
    /// Z.ai GLM.
    Glm,
    /// Any other OpenAI-compatible API.
    OpenAi,
}

impl PayloadKind {
    /// The rules for a catalogue provider kind (`kimi`, `glm`, anything else).
    pub fn for_provider_kind(kind: &str) -> PayloadKind {
        match kind {
            "kimi" => PayloadKind::Kimi,
            "glm" => PayloadKind::Glm,
            _ => PayloadKind::OpenAi,
        }
    }

    /// The vendor's in-chat web search tool, if it has one.
    pub fn web_search_tool(self) -> Option<Value> {
        match self {
            PayloadKind::Kimi => Some(kimi_web_search_tool()),
            PayloadKind::Glm => Some(glm_web_search_tool()),
            PayloadKind::OpenAi => None,
        }
    }
}

/// Kimi's builtin web search tool.
pub fn kimi_web_search_tool() -> Value {
    json!({ "type": "builtin_function", "function": { "name": KIMI_WEB_SEARCH_FN } })
}

/// GLM's in-chat web search tool.
pub fn glm_web_search_tool() -> Value {
    json!({ "type": "web_search",
            "web_search": { "enable": true, "search_engine": "search_pro_jina", "search_result": true } })
}

/// The chat completions body for `req` under `kind`'s rules (always a JSON object).
pub fn chat_body(kind: PayloadKind, req: &ChatRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(req.model));
    body.insert("messages".into(), messages(kind, req));
    if let Some(t) = req.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(m) = req.max_tokens {
        body.insert("max_tokens".into(), json!(m));
    }
    body.insert("stream".into(), json!(req.stream));
    if req.stream && kind == PayloadKind::OpenAi {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    let mut tools = req.tools.clone().unwrap_or_default();
    let has_function_tools = tools.iter().any(|t| t.get("type").and_then(Value::as_str) == Some("function"));
    let mut builtin_added = false;
    if let Some(builtin) = kind.web_search_tool().filter(|_| req.web_search) {
        if !tools.iter().any(|t| same_builtin(t, &builtin)) {
            tools.push(builtin);
            builtin_added = true;
        }
    }
    if !tools.is_empty() {
        body.insert("tools".into(), Value::Array(tools));
    }
    match &req.tool_choice {
        Some(c) => {
            body.insert("tool_choice".into(), c.clone());
        }
        None if builtin_added => {
            body.insert("tool_choice".into(), json!("auto"));
        }
        None => {}
    }
    if kind == PayloadKind::Glm {
        match req.thinking {
            Some(true) => {
                body.insert("thinking".into(), json!({ "type": "enabled" }));
            }
            Some(false) => {
                body.insert("thinking".into(), json!({ "type": "disabled" }));
            }
            None => {}
        }
        if req.stream && has_function_tools {
            body.insert("tool_stream".into(), json!(true));
        }
    }
    for (k, v) in &req.extra {
        if RESERVED_FIELDS.contains(&k.as_str()) {
            tracing::debug!(field = %k, "ignoring a reserved field in the request's extra body fields");
        } else {
            body.insert(k.clone(), v.clone());
        }
    }
    Value::Object(body)
}

/// The `messages` array; `reasoning_content` only for the vendors that produce it.
fn messages(kind: PayloadKind, req: &ChatRequest) -> Value {
    let mut messages = json!(req.messages);
    if kind == PayloadKind::OpenAi {
        if let Value::Array(list) = &mut messages {
            for m in list.iter_mut().filter_map(Value::as_object_mut) {
                m.remove("reasoning_content");
            }
        }
    }
    messages
}

/// Whether `tool` is the same vendor builtin as `builtin` (a caller may pass it already).
fn same_builtin(tool: &Value, builtin: &Value) -> bool {
    tool.get("type") == builtin.get("type")
        && match builtin.get("type").and_then(Value::as_str) {
            Some("builtin_function") => tool.pointer("/function/name") == builtin.pointer("/function/name"),
            _ => true,
        }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::provider::types::ChatMessage;

    fn req() -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![ChatMessage::text("system", "s"), ChatMessage::text("user", "hi")],
            ..ChatRequest::default()
        }
    }

    fn fn_tool(name: &str) -> Value {
        json!({ "type": "function", "function": { "name": name, "parameters": { "type": "object" } } })
    }

    const KINDS: [PayloadKind; 3] = [PayloadKind::Kimi, PayloadKind::Glm, PayloadKind::OpenAi];

    #[test]
    fn common_fields_and_nothing_else() {
        for kind in KINDS {
            let b = chat_body(kind, &req());
            assert_eq!(
                b,
                json!({ "model": "m", "stream": false,
                        "messages": [{ "role": "system", "content": "s" }, { "role": "user", "content": "hi" }] }),
                "{kind:?}"
            );
        }
        let r = ChatRequest {
            temperature: Some(0.3),
            max_tokens: Some(512),
            stream: true,
            tools: Some(vec![fn_tool("f")]),
            tool_choice: Some(json!("none")),
            ..req()
        };
        let b = chat_body(PayloadKind::OpenAi, &r);
        assert_eq!(
            b,
            json!({ "model": "m", "messages": b["messages"], "temperature": 0.3, "max_tokens": 512, "stream": true,
                    "stream_options": { "include_usage": true }, "tools": [fn_tool("f")], "tool_choice": "none" })
        );
    }

    #[test]
    fn include_usage_only_for_plain_openai_streams() {
        let streamed = ChatRequest { stream: true, ..req() };
        assert_eq!(chat_body(PayloadKind::OpenAi, &streamed)["stream_options"], json!({ "include_usage": true }));
        assert!(chat_body(PayloadKind::OpenAi, &req()).get("stream_options").is_none(), "not without a stream");
        for kind in [PayloadKind::Kimi, PayloadKind::Glm] {
            let b = chat_body(kind, &streamed);
            assert_eq!(b["stream"], json!(true));
            assert!(b.get("stream_options").is_none(), "{kind:?} reports usage without it");
        }
    }

    #[test]
    fn messages_keep_tool_call_fields() {
        let mut r = req();
        r.messages.push(ChatMessage {
            role: "assistant".into(),
            content: Value::Null,
            reasoning_content: None,
            tool_calls: Some(
                json!([{ "id": "c1", "type": "function", "function": { "name": "f", "arguments": "{}" } }]),
            ),
            tool_call_id: None,
            name: None,
        });
        r.messages.push(ChatMessage {
            tool_call_id: Some("c1".into()),
            name: Some("f".into()),
            ..ChatMessage::text("tool", "42")
        });
        let b = chat_body(PayloadKind::Kimi, &r);
        assert_eq!(b["messages"][2]["tool_calls"][0]["id"], "c1");
        assert_eq!(b["messages"][2]["content"], Value::Null);
        assert!(b["messages"][2].get("reasoning_content").is_none());
        assert_eq!(b["messages"][3], json!({ "role": "tool", "content": "42", "tool_call_id": "c1", "name": "f" }));
    }

    #[test]
    fn reasoning_content_only_for_the_vendors_that_produce_it() {
        let mut r = req();
        r.messages
            .push(ChatMessage { reasoning_content: Some("because".into()), ..ChatMessage::text("assistant", "a") });
        for kind in [PayloadKind::Kimi, PayloadKind::Glm] {
            assert_eq!(
                chat_body(kind, &r)["messages"][2],
                json!({ "role": "assistant", "content": "a", "reasoning_content": "because" }),
                "{kind:?}"
            );
        }
        assert_eq!(chat_body(PayloadKind::OpenAi, &r)["messages"][2], json!({ "role": "assistant", "content": "a" }));
    }

    #[test]
    fn kimi_web_search_adds_builtin_and_auto_choice() {
        let r = ChatRequest { web_search: true, tools: Some(vec![fn_tool("f")]), ..req() };
        let b = chat_body(PayloadKind::Kimi, &r);
        assert_eq!(b["tools"], json!([fn_tool("f"), kimi_web_search_tool()]));
        assert_eq!(b["tools"][1]["function"]["name"], KIMI_WEB_SEARCH_FN);
        assert_eq!(b["tool_choice"], json!("auto"));
        // An explicit choice wins; a builtin the caller passed is not duplicated (and then
        // nothing was injected, so no choice is added either).
        let r = ChatRequest {
            web_search: true,
            tools: Some(vec![kimi_web_search_tool()]),
            tool_choice: Some(json!("required")),
            ..req()
        };
        let b = chat_body(PayloadKind::Kimi, &r);
        assert_eq!(b["tools"], json!([kimi_web_search_tool()]));
        assert_eq!(b["tool_choice"], json!("required"));
        let r = ChatRequest { web_search: true, tools: Some(vec![kimi_web_search_tool()]), ..req() };
        assert!(chat_body(PayloadKind::Kimi, &r).get("tool_choice").is_none());
        // Thinking and streaming with tools add nothing for Kimi.
        let r = ChatRequest { thinking: Some(true), stream: true, tools: Some(vec![fn_tool("f")]), ..req() };
        let b = chat_body(PayloadKind::Kimi, &r);
        assert!(b.get("thinking").is_none() && b.get("tool_stream").is_none());
    }

    #[test]
    fn glm_thinking_web_search_and_tool_stream() {
        let b = chat_body(PayloadKind::Glm, &ChatRequest { thinking: Some(true), ..req() });
        assert_eq!(b["thinking"], json!({ "type": "enabled" }));
        let b = chat_body(PayloadKind::Glm, &ChatRequest { thinking: Some(false), ..req() });
        assert_eq!(b["thinking"], json!({ "type": "disabled" }), "thinking can be turned off");
        assert!(chat_body(PayloadKind::Kimi, &ChatRequest { thinking: Some(false), ..req() })
            .get("thinking")
            .is_none());
        assert!(chat_body(PayloadKind::Glm, &req()).get("thinking").is_none(), "unspecified: the model's default");
        let b = chat_body(PayloadKind::Glm, &ChatRequest { web_search: true, ..req() });
        assert_eq!(
            b["tools"],
            json!([{ "type": "web_search",
                     "web_search": { "enable": true, "search_engine": "search_pro_jina", "search_result": true } }])
        );
        assert_eq!(b["tool_choice"], json!("auto"));
        assert!(b.get("tool_stream").is_none(), "no caller tools, no tool_stream");
        let all = ChatRequest {
            thinking: Some(true),
            web_search: true,
            stream: true,
            tools: Some(vec![fn_tool("f")]),
            ..req()
        };
        let b = chat_body(PayloadKind::Glm, &all);
        assert_eq!(b["tools"], json!([fn_tool("f"), glm_web_search_tool()]));
        assert_eq!(b["thinking"], json!({ "type": "enabled" }));
        assert_eq!(b["tool_stream"], json!(true));
        let b = chat_body(PayloadKind::Glm, &ChatRequest { stream: false, tools: Some(vec![fn_tool("f")]), ..req() });
        assert!(b.get("tool_stream").is_none(), "tool_stream only when streaming");
        let b = chat_body(PayloadKind::Glm, &ChatRequest { stream: true, web_search: true, ..req() });
        assert!(b.get("tool_stream").is_none(), "the injected web_search tool is not a caller function tool");
        let own_search = ChatRequest { stream: true, tools: Some(vec![glm_web_search_tool()]), ..req() };
        assert!(chat_body(PayloadKind::Glm, &own_search).get("tool_stream").is_none(), "only function tools stream");
    }

    #[test]
    fn openai_ignores_vendor_features() {
        let r = ChatRequest {
            thinking: Some(true),
            web_search: true,
            stream: true,
            tools: Some(vec![fn_tool("f")]),
            ..req()
        };
        let b = chat_body(PayloadKind::OpenAi, &r);
        assert_eq!(b["tools"], json!([fn_tool("f")]));
        assert!(b.get("thinking").is_none());
        assert!(b.get("tool_stream").is_none());
        assert!(b.get("tool_choice").is_none());
    }

    #[test]
    fn extra_overrides_all_but_the_reserved_fields() {
        let mut extra = Map::new();
        extra.insert("top_p".into(), json!(0.9));
        extra.insert("thinking".into(), json!({ "type": "disabled" }));
        extra.insert("tool_choice".into(), json!("none"));
        extra.insert("tool_stream".into(), json!(false));
        extra.insert("model".into(), json!("other"));
        extra.insert("messages".into(), json!([]));
        extra.insert("stream".into(), json!(false));
        extra.insert("tools".into(), json!([]));
        let r = ChatRequest {
            thinking: Some(true),
            stream: true,
            web_search: true,
            tools: Some(vec![fn_tool("f")]),
            extra,
            ..req()
        };
        let b = chat_body(PayloadKind::Glm, &r);
        assert_eq!(b["top_p"], json!(0.9));
        assert_eq!(b["thinking"], json!({ "type": "disabled" }));
        assert_eq!(b["tool_choice"], json!("none"));
        assert_eq!(b["tool_stream"], json!(false));
        assert_eq!(b["model"], json!("m"));
        assert_eq!(b["messages"].as_array().unwrap().len(), 2);
        assert_eq!(b["stream"], json!(true), "the transport reads SSE because of req.stream");
        assert_eq!(b["tools"], json!([fn_tool("f"), glm_web_search_tool()]));
        // A vendor that does not get include_usage by default can opt in through extra.
        let mut extra = Map::new();
        extra.insert("stream_options".into(), json!({ "include_usage": true }));
        let b = chat_body(PayloadKind::Kimi, &ChatRequest { stream: true, extra, ..req() });
        assert_eq!(b["stream_options"], json!({ "include_usage": true }));
    }

    #[test]
    fn kinds_from_catalogue() {
        assert_eq!(PayloadKind::for_provider_kind("kimi"), PayloadKind::Kimi);
        assert_eq!(PayloadKind::for_provider_kind("glm"), PayloadKind::Glm);
        assert_eq!(PayloadKind::for_provider_kind("openai-compatible"), PayloadKind::OpenAi);
        assert_eq!(PayloadKind::OpenAi.web_search_tool(), None);
    }
}
