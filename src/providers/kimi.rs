//! Moonshot Kimi: OpenAI-compatible chat (body from the Kimi rules of `provider::payload`)
//! with `Idempotency-Key`, `reasoning_content`, the `$web_search` builtin and its tool-call
//! echo loop (the search runs at Moonshot; the client must hand each call's arguments back as
//! the tool result), and the Files API with extracted content.

use async_trait::async_trait;
use awc::http::header::{HeaderName, HeaderValue};
use exai_actors::files::hash::ChunkSink;
use exai_actors::provider::payload::{chat_body, PayloadKind, KIMI_WEB_SEARCH_FN};
use exai_actors::provider::transport::ProviderTransport;
use exai_actors::provider::types::{
    ChatMessage, ChatRequest, ChatResponse, ProviderError, ProviderFile, RequestTimeouts, StreamEvent, Usage,
};
use serde_json::Value;
use std::path::Path;

use super::errors::VendorClass;
use super::files;
use super::http::HttpCore;

/// Moonshot's error types (`error.type`, platform.moonshot.ai "Error codes"), which decide
/// before the HTTP status:
///
/// - account, never retried: `exceeded_current_quota_error` (429: balance exhausted or account
///   not active), `permission_denied_error` (403: suspended / not allowed);
/// - auth: `invalid_authentication_error`, `incorrect_api_key_error` (401);
/// - rate limit: `rate_limit_reached_error`, `engine_overloaded_error` (429);
/// - client: `invalid_request_error`, `resource_not_found_error`, `content_filter`;
/// - server: `server_error`, `unexpected_output`.
pub(crate) fn classify(_status: u16, code: &str) -> Option<VendorClass> {
    Some(match code {
        "exceeded_current_quota_error" | "permission_denied_error" => VendorClass::Account,
        "invalid_authentication_error" | "incorrect_api_key_error" => VendorClass::Auth,
        "rate_limit_reached_error" | "engine_overloaded_error" => VendorClass::RateLimit,
        "invalid_request_error" | "resource_not_found_error" | "content_filter" => VendorClass::Client,
        "server_error" | "unexpected_output" => VendorClass::Server,
        _ => return None,
    })
}
use super::openai::chat_call;

/// Kimi transport.
#[derive(Debug)]
pub(crate) struct KimiTransport {
    core: HttpCore,
    max_rounds: u32,
}

impl KimiTransport {
    pub(crate) fn new(core: HttpCore, max_rounds: u32) -> KimiTransport {
        KimiTransport { core, max_rounds }
    }
}

fn call_name(call: &Value) -> Option<&str> {
    call.get("function").and_then(|f| f.get("name")).and_then(Value::as_str)
}

/// The model stopped only to have `$web_search` calls echoed (any other tool call goes back
/// to the caller untouched).
pub(crate) fn wants_web_search_echo(resp: &ChatResponse) -> bool {
    resp.finish_reason.as_deref() == Some("tool_calls")
        && !resp.tool_calls.is_empty()
        && resp.tool_calls.iter().all(|c| call_name(c) == Some(KIMI_WEB_SEARCH_FN))
}

/// The messages one echo round appends: the assistant turn with its tool calls (and its
/// `reasoning_content`, which Kimi's thinking models need kept in tool loops), then one `tool`
/// message per call whose content is the call's `arguments` string verbatim.
pub(crate) fn echo_messages(resp: &ChatResponse) -> Vec<ChatMessage> {
    let mut out = Vec::with_capacity(1 + resp.tool_calls.len());
    out.push(ChatMessage {
        reasoning_content: resp.reasoning.clone().filter(|r| !r.is_empty()),
        tool_calls: Some(Value::Array(resp.tool_calls.clone())),
        ..ChatMessage::text("assistant", resp.content.clone())
    });
    for call in &resp.tool_calls {
        let arguments = call.get("function").and_then(|f| f.get("arguments")).and_then(Value::as_str).unwrap_or("{}");
        out.push(ChatMessage {
            tool_call_id: Some(call.get("id").and_then(Value::as_str).unwrap_or_default().to_string()),
            name: Some(KIMI_WEB_SEARCH_FN.to_string()),
            ..ChatMessage::text("tool", arguments)
        });
    }
    out
}

fn add_usage(total: &mut Option<Usage>, more: Option<Usage>) {
    if let Some(m) = more {
        let t = total.get_or_insert_with(Usage::default);
        t.prompt_tokens += m.prompt_tokens;
        t.completion_tokens += m.completion_tokens;
        t.total_tokens += m.total_tokens;
    }
}

fn idempotency_header(key: Option<&str>, round: u32) -> Vec<(HeaderName, HeaderValue)> {
    let Some(key) = key.filter(|k| !k.is_empty()) else { return Vec::new() };
    // Each echo round is a different request: give it its own key.
    let value = if round == 0 { key.to_string() } else { format!("{key}-r{round}") };
    match HeaderValue::from_str(&value) {
        Ok(v) => vec![(HeaderName::from_static("idempotency-key"), v)],
        Err(_) => {
            tracing::warn!("idempotency key is not a valid header value; not sent");
            Vec::new()
        }
    }
}

#[async_trait(?Send)]
impl ProviderTransport for KimiTransport {
    /// With `web_search`, runs the echo loop: at most `max_rounds` follow-up calls; usage is
    /// summed over all calls. A model still asking for `$web_search` after the last round is
    /// a protocol error.
    async fn chat(
        &self,
        req: &ChatRequest,
        timeouts: &RequestTimeouts,
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ChatResponse, ProviderError> {
        // Each echo round sends the conversation so far, built by the same body rules.
        let mut round_req = req.clone();
        let mut usage = None;
        let mut round = 0;
        loop {
            let headers = idempotency_header(req.idempotency_key.as_deref(), round);
            let body = chat_body(PayloadKind::Kimi, &round_req);
            let mut resp = chat_call(&self.core, &body, &headers, req.stream, timeouts, on_event).await?;
            add_usage(&mut usage, resp.usage);
            if !(req.web_search && wants_web_search_echo(&resp)) {
                resp.usage = usage;
                return Ok(resp);
            }
            if round >= self.max_rounds {
                return Err(ProviderError::Protocol(format!(
                    "Kimi still asked for $web_search after {} echo rounds",
                    self.max_rounds
                )));
            }
            round += 1;
            tracing::debug!(provider = %self.core.name(), round, calls = resp.tool_calls.len(), "echoing $web_search calls");
            round_req.messages.extend(echo_messages(&resp));
        }
    }

    async fn web_search(&self, _params: &Value, _timeouts: &RequestTimeouts) -> Result<Value, ProviderError> {
        Err(ProviderError::Unsupported(
            "Kimi has no standalone web search API; use chat with web_search (the $web_search builtin)".into(),
        ))
    }

    async fn upload_file(
        &self,
        path: &Path,
        filename: &str,
        purpose: &str,
        tee: Option<ChunkSink>,
        timeouts: &RequestTimeouts,
    ) -> Result<ProviderFile, ProviderError> {
        let purpose = if purpose.is_empty() { "file-extract" } else { purpose };
        files::upload(&self.core, path, filename, purpose, tee, timeouts).await
    }

    async fn list_files(&self, timeouts: &RequestTimeouts) -> Result<Vec<ProviderFile>, ProviderError> {
        files::list(&self.core, timeouts).await
    }

    async fn file_content(&self, id: &str, timeouts: &RequestTimeouts) -> Result<String, ProviderError> {
        files::content(&self.core, id, timeouts).await
    }

    async fn delete_file(&self, id: &str, timeouts: &RequestTimeouts) -> Result<(), ProviderError> {
        files::delete(&self.core, id, timeouts).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn call(id: &str, name: &str, args: &str) -> Value {
        json!({"id": id, "type": "builtin_function", "function": {"name": name, "arguments": args}})
    }

    #[test]
    fn echo_only_for_web_search_tool_calls() {
        let mut resp = ChatResponse {
            finish_reason: Some("tool_calls".into()),
            tool_calls: vec![call("a", KIMI_WEB_SEARCH_FN, "{}")],
            ..ChatResponse::default()
        };
        assert!(wants_web_search_echo(&resp));
        resp.tool_calls.push(call("b", "get_weather", "{}"));
        assert!(!wants_web_search_echo(&resp), "other tool calls go back to the caller");
        resp.tool_calls.truncate(1);
        resp.finish_reason = Some("stop".into());
        assert!(!wants_web_search_echo(&resp));
    }

    #[test]
    fn echo_messages_hand_the_arguments_back_verbatim() {
        let args = r#"{"search_result":{"search_id":"s1"},"usage":{"total_tokens":9}}"#;
        let resp = ChatResponse {
            finish_reason: Some("tool_calls".into()),
            tool_calls: vec![call("c1", KIMI_WEB_SEARCH_FN, args)],
            ..ChatResponse::default()
        };
        let msgs = serde_json::to_value(echo_messages(&resp)).unwrap();
        assert_eq!(
            msgs,
            json!([
                {"role": "assistant", "content": "", "tool_calls": [call("c1", KIMI_WEB_SEARCH_FN, args)]},
                {"role": "tool", "tool_call_id": "c1", "name": KIMI_WEB_SEARCH_FN, "content": args}
            ])
        );
    }

    #[test]
    fn echo_keeps_the_reasoning_of_the_assistant_turn() {
        let resp = ChatResponse {
            content: "Let me look that up.".into(),
            reasoning: Some("The user wants news; search first.".into()),
            finish_reason: Some("tool_calls".into()),
            tool_calls: vec![call("c1", KIMI_WEB_SEARCH_FN, "{}")],
            ..ChatResponse::default()
        };
        let msgs = echo_messages(&resp);
        assert_eq!(msgs[0].reasoning_content.as_deref(), Some("The user wants news; search first."));
        assert_eq!(msgs[0].content, json!("Let me look that up."));
        let body = chat_body(PayloadKind::Kimi, &ChatRequest { messages: msgs, ..ChatRequest::default() });
        assert_eq!(body["messages"][0]["reasoning_content"], "The user wants news; search first.");
        assert!(body["messages"][1].get("reasoning_content").is_none());
        // An empty reasoning is not sent.
        let resp = ChatResponse { reasoning: Some(String::new()), ..resp };
        assert_eq!(echo_messages(&resp)[0].reasoning_content, None);
    }

    #[test]
    fn idempotency_keys_differ_per_round() {
        assert!(idempotency_header(None, 0).is_empty());
        assert_eq!(idempotency_header(Some("k1"), 0)[0].1, "k1");
        assert_eq!(idempotency_header(Some("k1"), 2)[0].1, "k1-r2");
    }
}
