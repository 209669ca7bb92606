//! Parsing OpenAI-shaped chat answers: a whole `chat.completion` body, and the
//! `chat.completion.chunk` deltas of a stream, accumulated (content, reasoning, tool calls by
//! index, finish reason, usage) into the same `ChatResponse`.

use exai_actors::provider::types::{ChatResponse, ProviderError, StreamEvent, Usage};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use super::errors::{truncate, MAX_MESSAGE_CHARS};

/// Parses a non-streamed `chat.completion` body.
pub(crate) fn parse_completion(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ProviderError::Protocol(format!("chat completion is not valid JSON: {e}")))?;
    check_error_field(&v)?;
    let choice = v
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|c| c.first())
        .ok_or_else(|| ProviderError::Protocol("chat completion has no choices".into()))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| ProviderError::Protocol("chat completion choice has no message".into()))?;
    let tool_calls = match message.get("tool_calls") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(calls)) => calls.clone(),
        Some(_) => return Err(ProviderError::Protocol("tool_calls is not an array".into())),
    };
    Ok(ChatResponse {
        content: message.get("content").and_then(text_of).unwrap_or_default(),
        reasoning: reasoning_of(message),
        tool_calls,
        finish_reason: choice.get("finish_reason").and_then(Value::as_str).map(str::to_string),
        usage: v.get("usage").and_then(usage_of),
        model: v.get("model").and_then(Value::as_str).unwrap_or_default().to_string(),
    })
}

/// A 200 answer that carries `{"error": ...}` instead of a completion.
fn check_error_field(v: &Value) -> Result<(), ProviderError> {
    match v.get("error") {
        None | Some(Value::Null) => Ok(()),
        Some(e) => {
            let msg = e.get("message").and_then(Value::as_str).or_else(|| e.as_str()).unwrap_or("unspecified error");
            Err(ProviderError::Protocol(format!("provider reported an error: {}", truncate(msg, MAX_MESSAGE_CHARS))))
        }
    }
}

/// Message text: a string, or the concatenated `text` of content parts.
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            Some(parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<String>())
        }
        _ => None,
    }
}

/// `reasoning_content` (Kimi, GLM, vLLM, DeepSeek) or `reasoning` (OpenRouter, Ollama).
fn reasoning_of(message: &Value) -> Option<String> {
    ["reasoning_content", "reasoning"]
        .iter()
        .find_map(|k| message.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn usage_of(v: &Value) -> Option<Usage> {
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let prompt = n("prompt_tokens")?;
    let completion = n("completion_tokens").unwrap_or(0);
    Some(Usage {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: n("total_tokens").unwrap_or(prompt + completion),
    })
}

/// What one streamed event meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// More to come; `token` when content or reasoning arrived.
    Continue { token: bool },
    /// `[DONE]`.
    Done,
}

#[derive(Debug, Default)]
struct ToolCallParts {
    id: String,
    kind: String,
    name: String,
    arguments: String,
}

/// Accumulates a streamed answer.
#[derive(Debug, Default)]
pub(crate) struct StreamAccumulator {
    content: String,
    reasoning: String,
    tool_calls: BTreeMap<u64, ToolCallParts>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    model: String,
    done: bool,
}

impl StreamAccumulator {
    pub(crate) fn new() -> StreamAccumulator {
        StreamAccumulator::default()
    }

    /// Applies one SSE `data:` payload; deltas go to `on_event` as they arrive.
    pub(crate) fn apply(&mut self, data: &str, on_event: &mut dyn FnMut(StreamEvent)) -> Result<Step, ProviderError> {
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Step::Done);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| ProviderError::Protocol(format!("stream chunk is not valid JSON: {e}")))?;
        if !v.is_object() {
            return Err(ProviderError::Protocol("stream chunk is not a JSON object".into()));
        }
        check_error_field(&v)?;
        if let Some(model) = v.get("model").and_then(Value::as_str) {
            if self.model.is_empty() {
                self.model = model.to_string();
            }
        }
        if let Some(usage) = v.get("usage").and_then(usage_of) {
            self.usage = Some(usage);
        }
        let choices = match v.get("choices") {
            None | Some(Value::Null) => return Ok(Step::Continue { token: false }),
            Some(Value::Array(c)) => c,
            Some(_) => return Err(ProviderError::Protocol("stream chunk choices is not an array".into())),
        };
        let mut token = false;
        for choice in choices {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_string());
            }
            // Kimi reports the usage of a stream inside its last choice.
            if let Some(usage) = choice.get("usage").and_then(usage_of) {
                self.usage = Some(usage);
            }
            let Some(delta) = choice.get("delta").filter(|d| !d.is_null()) else { continue };
            if !delta.is_object() {
                return Err(ProviderError::Protocol("stream chunk delta is not an object".into()));
            }
            if let Some(r) =
                ["reasoning_content", "reasoning"].iter().find_map(|k| delta.get(*k).and_then(Value::as_str))
            {
                if !r.is_empty() {
                    self.reasoning.push_str(r);
                    on_event(StreamEvent::Reasoning(r.to_string()));
                    token = true;
                }
            }
            if let Some(c) = delta.get("content").and_then(text_of) {
                if !c.is_empty() {
                    self.content.push_str(&c);
                    on_event(StreamEvent::Content(c));
                    token = true;
                }
            }
            match delta.get("tool_calls") {
                None | Some(Value::Null) => {}
                Some(Value::Array(calls)) => {
                    for (pos, call) in calls.iter().enumerate() {
                        self.apply_tool_delta(pos as u64, call)?;
                    }
                }
                Some(_) => return Err(ProviderError::Protocol("stream delta tool_calls is not an array".into())),
            }
        }
        Ok(Step::Continue { token })
    }

    fn apply_tool_delta(&mut self, pos: u64, call: &Value) -> Result<(), ProviderError> {
        if !call.is_object() {
            return Err(ProviderError::Protocol("stream tool call delta is not an object".into()));
        }
        let index = call.get("index").and_then(Value::as_u64).unwrap_or(pos);
        let parts = self.tool_calls.entry(index).or_default();
        if let Some(id) = call.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            parts.id = id.to_string();
        }
        if let Some(kind) = call.get("type").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            parts.kind = kind.to_string();
        }
        if let Some(f) = call.get("function") {
            if let Some(name) = f.get("name").and_then(Value::as_str).filter(|s| !s.is_empty()) {
                if parts.name.is_empty() {
                    parts.name = name.to_string();
                } else if parts.name != name {
                    parts.name.push_str(name);
                }
            }
            match f.get("arguments") {
                Some(Value::String(a)) => parts.arguments.push_str(a),
                // Some servers send arguments as an object in one piece.
                Some(a @ Value::Object(_)) => parts.arguments.push_str(&a.to_string()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Saw `[DONE]` or a finish reason: the answer is complete.
    pub(crate) fn is_complete(&self) -> bool {
        self.done || self.finish_reason.is_some()
    }

    /// The whole answer.
    pub(crate) fn finish(self) -> ChatResponse {
        let tool_calls = self
            .tool_calls
            .into_values()
            .map(|p| {
                let mut call = Map::new();
                call.insert("id".into(), Value::String(p.id));
                call.insert("type".into(), Value::String(if p.kind.is_empty() { "function".into() } else { p.kind }));
                call.insert("function".into(), json!({"name": p.name, "arguments": p.arguments}));
                Value::Object(call)
            })
            .collect();
        ChatResponse {
            content: self.content,
            reasoning: (!self.reasoning.is_empty()).then_some(self.reasoning),
            tool_calls,
            finish_reason: self.finish_reason,
            usage: self.usage,
            model: self.model,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn parses_a_whole_completion() {
        let body = json!({
            "model": "kimi-k2",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": "hi", "reasoning_content": "thinking",
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
            }}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
        });
        let r = parse_completion(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.content, "hi");
        assert_eq!(r.reasoning.as_deref(), Some("thinking"));
        assert_eq!(r.tool_calls.len(), 1);
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.usage, Some(Usage { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 }));
        assert_eq!(r.model, "kimi-k2");
    }

    #[test]
    fn completion_without_choices_or_with_error_is_protocol() {
        assert!(matches!(parse_completion(b"{}"), Err(ProviderError::Protocol(_))));
        assert!(matches!(parse_completion(b"not json"), Err(ProviderError::Protocol(_))));
        let e = parse_completion(br#"{"error":{"message":"overloaded"}}"#).unwrap_err();
        assert!(e.to_string().contains("overloaded"), "{e}");
    }

    #[test]
    fn accumulates_stream_deltas_and_tool_calls_by_index() {
        let mut acc = StreamAccumulator::new();
        let mut events = Vec::new();
        let mut on = |e| events.push(e);
        let chunks = [
            json!({"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}),
            json!({"choices":[{"index":0,"delta":{"reasoning_content":"hmm"}}]}),
            json!({"choices":[{"index":0,"delta":{"content":"Hel"}}]}),
            json!({"choices":[{"index":0,"delta":{"content":"lo"}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"b","type":"function","function":{"name":"g","arguments":""}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\""}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]}}]}),
            json!({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":null}),
            json!({"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}),
        ];
        let mut tokens = Vec::new();
        for c in &chunks {
            match acc.apply(&c.to_string(), &mut on).unwrap() {
                Step::Continue { token } => tokens.push(token),
                Step::Done => panic!("not done yet"),
            }
        }
        assert_eq!(tokens, vec![false, true, true, true, false, false, false, false, false, false]);
        assert_eq!(acc.apply("[DONE]", &mut on).unwrap(), Step::Done);
        assert!(acc.is_complete());
        let r = acc.finish();
        assert_eq!(
            events,
            vec![
                StreamEvent::Reasoning("hmm".into()),
                StreamEvent::Content("Hel".into()),
                StreamEvent::Content("lo".into())
            ]
        );
        assert_eq!(r.content, "Hello");
        assert_eq!(r.reasoning.as_deref(), Some("hmm"));
        assert_eq!(
            r.tool_calls,
            vec![
                json!({"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}),
                json!({"id":"b","type":"function","function":{"name":"g","arguments":"{}"}}),
            ]
        );
        assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
        assert_eq!(r.usage.map(|u| u.total_tokens), Some(3));
        assert_eq!(r.model, "m");
    }

    #[test]
    fn malformed_chunks_are_protocol_errors() {
        let mut on = |_| {};
        for bad in
            ["{\"choices\":[{\"delta\":{\"content\":\"x\"", "42", "{\"choices\":{}}", "{\"choices\":[{\"delta\":7}]}"]
        {
            let mut acc = StreamAccumulator::new();
            assert!(matches!(acc.apply(bad, &mut on), Err(ProviderError::Protocol(_))), "{bad}");
        }
        let mut acc = StreamAccumulator::new();
        let e = acc.apply(r#"{"error":{"message":"model overloaded"}}"#, &mut on).unwrap_err();
        assert!(e.to_string().contains("model overloaded"));
    }

    #[test]
    fn incomplete_stream_is_detected() {
        let mut acc = StreamAccumulator::new();
        acc.apply(r#"{"choices":[{"index":0,"delta":{"content":"par"}}]}"#, &mut |_| {}).unwrap();
        assert!(!acc.is_complete());
    }
}
