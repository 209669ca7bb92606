//! The `tools/call` response frame, serialized in one pass from borrowed parts.
//!
//! [`call_result_frame`] writes exactly what `jsonrpc::result_frame(id, mcp::call_result(res))`
//! writes (the same JSON, keys in another order), without building a `serde_json::Value` tree
//! first: no copy of the structured result or of the content text, no map inserts. It runs once
//! per tool call on the worker thread, so it is on every call's path.

use super::jsonrpc::{self, RequestId};
use super::mcp::call_result;
use crate::dispatch::{CallResult, LatencyMetrics};
use crate::tools::Content;
use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use serde_json::Value;

/// The JSON-RPC response to a `tools/call` with id `id`.
pub fn call_result_frame(id: &RequestId, res: &CallResult) -> String {
    let Ok(out) = &res.outcome else { return jsonrpc::result_frame(id, call_result(res)) };
    let frame = Frame {
        jsonrpc: "2.0",
        id: Id(id),
        result: OkResult {
            content: Blocks(&out.content),
            is_error: false,
            structured: out.structured.as_ref().filter(|s| s.is_object()),
            meta: Meta { latency_metrics: &res.latency, model: out.model.as_deref() },
        },
    };
    serde_json::to_string(&frame).unwrap_or_else(|_| jsonrpc::result_frame(id, call_result(res)))
}

#[derive(Serialize)]
struct Frame<'a> {
    jsonrpc: &'static str,
    id: Id<'a>,
    result: OkResult<'a>,
}

struct Id<'a>(&'a RequestId);

impl Serialize for Id<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            RequestId::Num(n) => s.serialize_i64(*n),
            RequestId::Str(t) => s.serialize_str(t),
        }
    }
}

#[derive(Serialize)]
struct OkResult<'a> {
    content: Blocks<'a>,
    #[serde(rename = "isError")]
    is_error: bool,
    #[serde(rename = "_meta")]
    meta: Meta<'a>,
    #[serde(rename = "structuredContent", skip_serializing_if = "Option::is_none")]
    structured: Option<&'a Value>,
}

#[derive(Serialize)]
struct Meta<'a> {
    latency_metrics: &'a LatencyMetrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
}

/// Content blocks; an empty list is sent as one empty text block.
struct Blocks<'a>(&'a [Content]);

impl Serialize for Blocks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let empty = [Content::Text(String::new())];
        let blocks = if self.0.is_empty() { &empty[..] } else { self.0 };
        let mut seq = s.serialize_seq(Some(blocks.len()))?;
        for b in blocks {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::error::ToolError;
    use crate::tools::ToolOutput;
    use serde_json::json;

    fn result(outcome: Result<ToolOutput, ToolError>) -> CallResult {
        let latency = LatencyMetrics {
            total_ms: 1.25,
            global_wait_ms: 0.0,
            provider_wait_ms: 0.5,
            processing_ms: 1.0,
            provider: Some("glm".into()),
        };
        CallResult { tool: "chat".into(), outcome, latency }
    }

    fn same_as_tree(id: &RequestId, res: &CallResult) {
        let fast: Value = serde_json::from_str(&call_result_frame(id, res)).unwrap();
        let tree: Value = serde_json::from_str(&jsonrpc::result_frame(id, call_result(res))).unwrap();
        assert_eq!(fast, tree);
    }

    #[test]
    fn matches_the_value_tree_rendering_for_every_shape() {
        let structured = json!({"status": "ok", "content": "hé \"quoted\"\n", "metadata": {"n": 1}});
        let outputs = [
            ToolOutput {
                content: vec![Content::Text("text \u{1F600}".into())],
                structured: Some(structured.clone()),
                provider: Some("glm".into()),
                model: Some("glm-4.5-flash".into()),
            },
            ToolOutput { content: vec![], structured: None, provider: None, model: None },
            ToolOutput {
                content: vec![
                    Content::Image { data: "aGk=".into(), mime_type: "image/png".into() },
                    Content::Text(String::new()),
                ],
                structured: Some(json!(["not", "an", "object"])),
                provider: None,
                model: Some("m".into()),
            },
        ];
        for out in outputs {
            for id in [RequestId::Num(7), RequestId::Num(-1), RequestId::Str("a\"b".into())] {
                same_as_tree(&id, &result(Ok(out.clone())));
            }
        }
        same_as_tree(&RequestId::Num(3), &result(Err(ToolError::NotFound { name: "nope".into() })));
    }
}
