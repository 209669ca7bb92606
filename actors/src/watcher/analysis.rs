//! Prompts for the analysis model and parsing of its answers (pure functions).
//!
//! Models are asked for JSON; answers are parsed leniently (a fenced ```json block or the
//! first `{…}` / `[…]` in the text). An error analysis that is not JSON is kept as
//! `{"text": …}`; auditor entries without an observation text are dropped, unknown
//! severities become `info`, and categories are cut to a short lower-case word.

use crate::metrics::SEVERITIES;
use crate::ports::{ErrorOccurrence, ToolCallRecord};
use serde_json::{json, Value};

/// System instruction for error root-cause analysis.
pub const ERROR_SYSTEM: &str = "You are a senior site-reliability engineer for exai, a Rust MCP server \
(actix actors, sqlx storage, AI provider clients). Given one deduplicated error from its logs, explain the most \
likely root cause and the fix. Answer with one JSON object only: {\"root_cause\": string, \"evidence\": string, \
\"fix\": string, \"confidence\": number between 0 and 1}.";

/// System instruction for the auditor.
pub const AUDIT_SYSTEM: &str = "You audit tool calls served by exai, an MCP server. Given a sample of finished \
calls (no arguments or results, only timings and outcomes), point out problems worth an operator's attention: \
slow calls, waits for capacity, error patterns, misuse. Answer with one JSON array only (empty if nothing is \
notable) of objects {\"severity\": \"info\"|\"low\"|\"medium\"|\"high\"|\"critical\", \"category\": string, \
\"observation\": string, \"recommendation\": string, \"confidence\": number between 0 and 1, \
\"tool_call_ids\": [number]}.";

/// The user prompt for one error.
pub fn error_prompt(e: &ErrorOccurrence, occurrences: i64) -> String {
    format!(
        "Error (normalised): {}\nLogged by: {}\nOccurrences so far: {}\nContext: {}\n",
        e.message, e.error_type, occurrences, e.context
    )
}

/// The user prompt for a sample of tool calls.
pub fn audit_prompt(calls: &[ToolCallRecord]) -> String {
    let mut out = String::from("Sampled tool calls (one JSON object per line):\n");
    for c in calls {
        let line = json!({
            "id": c.id, "tool": c.tool, "protocol": c.protocol, "outcome": c.outcome.as_str(),
            "error_code": c.error_code, "total_ms": c.total_ms, "global_wait_ms": c.global_wait_ms,
            "provider_wait_ms": c.provider_wait_ms, "processing_ms": c.processing_ms,
            "provider": c.provider, "model": c.model, "args_bytes": c.args_bytes,
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// The first JSON value in a model's answer (fenced block, or first object / array).
pub fn extract_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Some(v);
    }
    if let Some(start) = trimmed.find("```") {
        let body = &trimmed[start + 3..];
        let body = body.strip_prefix("json").unwrap_or(body);
        if let Some(end) = body.find("```") {
            if let Ok(v) = serde_json::from_str::<Value>(body[..end].trim()) {
                return Some(v);
            }
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(s), Some(e)) = (trimmed.find(open), trimmed.rfind(close)) {
            if s < e {
                if let Ok(v) = serde_json::from_str::<Value>(&trimmed[s..=e]) {
                    return Some(v);
                }
            }
        }
    }
    None
}

/// Split an error analysis answer into (investigation, fix).
pub fn parse_error_analysis(text: &str) -> (Value, Option<Value>) {
    match extract_json(text) {
        Some(Value::Object(mut m)) => {
            let fix = m.remove("fix").filter(|f| !f.is_null()).map(|f| json!({ "recommendation": f }));
            (Value::Object(m), fix)
        }
        _ => (json!({ "text": text.trim() }), None),
    }
}

/// One observation as the model reported it, cleaned.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedObservation {
    /// One of [`SEVERITIES`].
    pub severity: String,
    /// Short lower-case category.
    pub category: String,
    /// The observation text.
    pub observation: String,
    /// Suggested action.
    pub recommendation: Option<String>,
    /// 0..=1.
    pub confidence: Option<f64>,
    /// Tool-call ids it refers to.
    pub tool_call_ids: Vec<i64>,
}

fn field<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty())
}

/// The observations in an auditor answer (an array, or an object with `observations`).
pub fn parse_observations(text: &str) -> Option<Vec<ParsedObservation>> {
    let items = match extract_json(text)? {
        Value::Array(a) => a,
        Value::Object(mut m) => match m.remove("observations") {
            Some(Value::Array(a)) => a,
            _ => vec![Value::Object(m)],
        },
        _ => return None,
    };
    Some(
        items
            .iter()
            .filter_map(|v| {
                let observation = field(v, "observation")?.chars().take(4000).collect();
                let sev = field(v, "severity").unwrap_or("info").to_ascii_lowercase();
                let severity = if SEVERITIES.contains(&sev.as_str()) { sev } else { "info".into() };
                let category: String =
                    field(v, "category").unwrap_or("general").to_ascii_lowercase().chars().take(40).collect();
                Some(ParsedObservation {
                    severity,
                    category,
                    observation,
                    recommendation: field(v, "recommendation").map(|r| r.chars().take(4000).collect()),
                    confidence: v.get("confidence").and_then(Value::as_f64).map(|c| c.clamp(0.0, 1.0)),
                    tool_call_ids: v
                        .get("tool_call_ids")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_i64).collect())
                        .unwrap_or_default(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn extracts_json_from_chatty_answers() {
        assert_eq!(extract_json(r#"{"a":1}"#), Some(json!({"a":1})));
        assert_eq!(extract_json("Sure!\n```json\n[1, 2]\n```\nDone."), Some(json!([1, 2])));
        assert_eq!(extract_json("The answer: {\"root_cause\": \"x\"} hope it helps"), Some(json!({"root_cause":"x"})));
        assert_eq!(extract_json("no json here"), None);
    }

    #[test]
    fn error_analysis_splits_fix_or_keeps_text() {
        let (inv, fix) = parse_error_analysis(r#"{"root_cause":"pool exhausted","fix":"raise max_connections"}"#);
        assert_eq!(inv, json!({"root_cause":"pool exhausted"}));
        assert_eq!(fix, Some(json!({"recommendation":"raise max_connections"})));
        let (inv, fix) = parse_error_analysis("probably the network");
        assert_eq!(inv, json!({"text":"probably the network"}));
        assert_eq!(fix, None);
    }

    #[test]
    fn observations_are_cleaned() {
        let text = r#"[{"severity":"HIGH","category":"Latency","observation":"chat waits 5 s for capacity",
            "recommendation":"raise limits","confidence":1.7,"tool_call_ids":[3,4]},
            {"severity":"weird","observation":"x"}, {"severity":"low"}]"#;
        let obs = parse_observations(text).unwrap();
        assert_eq!(obs.len(), 2, "an entry without an observation is dropped");
        assert_eq!(obs[0].severity, "high");
        assert_eq!(obs[0].category, "latency");
        assert_eq!(obs[0].confidence, Some(1.0));
        assert_eq!(obs[0].tool_call_ids, vec![3, 4]);
        assert_eq!((obs[1].severity.as_str(), obs[1].category.as_str()), ("info", "general"));
        assert_eq!(parse_observations("[]").unwrap(), vec![]);
        assert_eq!(parse_observations(r#"{"observations":[{"observation":"y"}]}"#).unwrap().len(), 1);
        assert_eq!(parse_observations("nothing to report"), None);
    }
}
