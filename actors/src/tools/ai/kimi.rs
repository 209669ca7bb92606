//! Raw Kimi tools: `kimi_chat_with_tools` (an OpenAI-shaped chat with caller tools and Kimi's
//! `$web_search`) and `kimi_intent_analysis` (a Kimi model classifies a prompt into routing
//! hints, parsed strictly). Both refuse models not served by a Kimi provider; `auto` picks the
//! Kimi speed model. One provider call per invocation.

use super::common::{call_model, json_output, object_schema, pick_common, props, result_meta, CallBudget, Common};
use crate::error::ToolError;
use crate::provider::service::{ChatCall, ChatResult};
use crate::provider::types::{ChatMessage, ChatRequest};
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use serde_json::{json, Map, Value};

fn invalid(field: &str, message: impl Into<String>) -> ToolError {
    ToolError::InvalidArguments { field: field.into(), message: message.into() }
}

/// Check that `call` resolves to a model a Kimi provider serves.
pub fn require_kimi(ctx: &ToolContext, call: &ChatCall) -> Result<(), ToolError> {
    let catalog = ctx.env.providers.catalog();
    let is_kimi = |provider: &str| catalog.provider(provider).map(|p| p.kind.as_str()).unwrap_or(provider) == "kimi";
    let (m, routing) = ctx.env.providers.resolve(call)?;
    if is_kimi(&m.provider) {
        return Ok(());
    }
    let kimi: Vec<&str> = catalog.models().iter().filter(|x| is_kimi(&x.provider)).map(|x| x.name.as_str()).collect();
    let message = if routing == "explicit" {
        format!(
            "{} is served by {}, not Kimi; this tool talks to Kimi only. Kimi models: {}",
            m.name,
            m.provider,
            kimi.join(", ")
        )
    } else {
        format!(
            "{routing}: chose {} ({}); this tool needs the Kimi provider (set KIMI_API_KEY) or an explicit Kimi model",
            m.name, m.provider
        )
    };
    Err(invalid("model", message))
}

fn message_schema() -> Value {
    json!({ "type": "object",
            "properties": {
                "role": { "type": "string", "enum": ["system", "user", "assistant", "tool"] },
                "content": { "type": ["string", "array", "null"], "description": "text, or content parts ({type: text|image_url})" },
                "name": { "type": "string", "maxLength": 128 },
                "tool_call_id": { "type": "string", "maxLength": 256 },
                "tool_calls": { "type": "array", "maxItems": 128, "items": { "type": "object" } } },
            "required": ["role"], "additionalProperties": false })
}

/// Check the roles' rules and convert to chat messages.
pub fn parse_messages(v: &Value) -> Result<Vec<ChatMessage>, ToolError> {
    let Some(items) = v.as_array().filter(|a| !a.is_empty()) else {
        return Err(invalid("messages", "give at least one message"));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, m) in items.iter().enumerate() {
        let field = format!("messages/{i}");
        let msg: ChatMessage = serde_json::from_value(json!({
            "role": m["role"], "content": m.get("content").cloned().unwrap_or(Value::Null),
            "tool_calls": m.get("tool_calls"), "tool_call_id": m.get("tool_call_id"), "name": m.get("name"),
        }))
        .map_err(|e| invalid(&field, e.to_string()))?;
        let has_calls = msg.tool_calls.as_ref().and_then(Value::as_array).is_some_and(|a| !a.is_empty());
        let ok = match msg.role.as_str() {
            "tool" => msg.tool_call_id.is_some() && msg.content.is_string(),
            "assistant" => !msg.content.is_null() || has_calls,
            _ => !msg.content.is_null(),
        };
        if !ok {
            let rule = match msg.role.as_str() {
                "tool" => "a tool message needs tool_call_id and string content",
                "assistant" => "an assistant message needs content or tool_calls",
                _ => "this message needs content",
            };
            return Err(invalid(&field, rule));
        }
        if msg.tool_calls.is_some() && msg.role != "assistant" {
            return Err(invalid(&field, "only assistant messages carry tool_calls"));
        }
        out.push(msg);
    }
    Ok(out)
}

fn metadata(tool: &str, res: &ChatResult, budget: &CallBudget) -> Value {
    let mut m = result_meta(res);
    m["tool"] = json!(tool);
    m["provider_calls"] = json!(budget.used());
    m
}

/// `kimi_chat_with_tools`.
pub struct KimiChatWithTools(ToolSpec);

impl Default for KimiChatWithTools {
    fn default() -> Self {
        Self::new()
    }
}

impl KimiChatWithTools {
    /// Build it.
    pub fn new() -> Self {
        let mut p = pick_common(&["model", "temperature", "use_websearch"]);
        p.extend(props(json!({
            "messages": { "type": "array", "minItems": 1, "maxItems": 500, "items": message_schema(),
                          "description": "The conversation in OpenAI chat format." },
            "tools": { "type": "array", "maxItems": 128,
                       "items": { "type": "object", "required": ["type"],
                                  "properties": { "type": { "type": "string" }, "function": { "type": "object", "required": ["name"] } } },
                       "description": "OpenAI-format tools the model may call; calls come back in tool_calls for you to run." },
            "tool_choice": { "oneOf": [ { "type": "string", "enum": ["auto", "none", "required"] },
                                        { "type": "object", "required": ["type"] } ],
                             "description": "auto (default), none, required, or a specific function." },
            "stream": { "type": "boolean", "description": "stream the answer as progress (default: when a progress token is given)" }
        })));
        KimiChatWithTools(ToolSpec {
            name: "kimi_chat_with_tools".into(),
            title: Some("Kimi chat with tools".into()),
            description: "Raw chat completion on a Kimi (Moonshot) model with OpenAI-format messages and tools, and \
                          optional Kimi web search ($web_search, run by Moonshot). Returns the answer, the tool calls \
                          the model wants you to run (send their results back as tool messages in a next call) and \
                          token usage. model: a Kimi model or auto (the Kimi speed model)."
                .into(),
            input_schema: object_schema(p, &["messages"]),
            kind: ToolKind::Simple,
            read_only: true,
        })
    }
}

impl Tool for KimiChatWithTools {
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
            let messages = parse_messages(args.get("messages").unwrap_or(&Value::Null))?;
            let call = ChatCall {
                model: c.str("model").map(str::to_string),
                tool: "kimi_chat_with_tools".into(),
                request: ChatRequest {
                    messages,
                    temperature: c.f64("temperature"),
                    stream: c.bool("stream").unwrap_or(false),
                    tools: args.get("tools").and_then(Value::as_array).filter(|a| !a.is_empty()).cloned(),
                    tool_choice: args.get("tool_choice").cloned(),
                    web_search: c.bool("use_websearch").unwrap_or(false),
                    ..ChatRequest::default()
                },
                ..ChatCall::default()
            };
            require_kimi(&ctx, &call)?;
            let budget = CallBudget::new(&ctx);
            let res = call_model(&ctx, &budget, call).await?;
            let mut v = json!({
                "status": "success",
                "content": res.response.content,
                "tool_calls": res.response.tool_calls,
                "finish_reason": res.response.finish_reason,
                "usage": res.response.usage,
                "metadata": metadata("kimi_chat_with_tools", &res, &budget),
            });
            if let Some(r) = &res.response.reasoning {
                v["reasoning"] = json!(r);
            }
            Ok(json_output(v, Some(&res)))
        })
    }
}

/// A parsed intent classification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Intent {
    /// The request needs current information from the web.
    pub needs_websearch: bool,
    /// simple | moderate | complex.
    pub complexity: String,
    /// kimi | glm.
    pub recommended_provider: String,
    /// A model name.
    pub recommended_model: String,
    /// Why.
    pub reasoning: String,
}

/// The JSON object in a model's answer, tolerating what models add around it: a code fence,
/// prose before or after, trailing commas.
fn json_object_in(text: &str) -> Result<Value, String> {
    let t = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Ok(v);
    }
    let start = t.find('{').ok_or("no JSON object in the answer")?;
    let end = t.rfind('}').filter(|e| *e > start).ok_or("unterminated JSON object")?;
    let inner = &t[start..=end];
    serde_json::from_str(inner)
        .or_else(|_| serde_json::from_str(&strip_trailing_commas(inner)))
        .map_err(|e| format!("not JSON: {e}"))
}

/// `inner` without commas directly before `}` or `]` (outside strings).
fn strip_trailing_commas(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let (mut in_str, mut escaped) = (false, false);
    let chars: Vec<char> = inner.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if in_str {
            in_str = c != '"' || escaped;
            escaped = c == '\\' && !escaped;
        } else if c == '"' {
            in_str = true;
        } else if c == ',' && chars[i + 1..].iter().find(|n| !n.is_whitespace()).is_some_and(|n| matches!(n, '}' | ']'))
        {
            continue;
        }
        out.push(c);
    }
    out
}

/// Parse the classifier's answer: one JSON object (a code fence, prose around it and trailing
/// commas are tolerated; a boolean may come as `"true"`/`"false"`) with typed fields. The
/// reason is returned when it does not parse.
pub fn parse_intent(text: &str) -> Result<Intent, String> {
    let v = json_object_in(text)?;
    let o = v.as_object().ok_or("not a JSON object")?;
    let string = |k: &str| o.get(k).and_then(Value::as_str).map(str::trim).ok_or(format!("missing or non-string {k}"));
    let needs_websearch = match o.get("needs_websearch") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("true") => true,
        Some(Value::String(s)) if s.trim().eq_ignore_ascii_case("false") => false,
        _ => return Err("missing or non-boolean needs_websearch".into()),
    };
    let complexity = string("complexity")?.to_ascii_lowercase();
    if !["simple", "moderate", "complex"].contains(&complexity.as_str()) {
        return Err(format!("complexity '{complexity}' is not simple, moderate or complex"));
    }
    let recommended_provider = string("recommended_provider")?.to_ascii_lowercase();
    if !["kimi", "glm"].contains(&recommended_provider.as_str()) {
        return Err(format!("recommended_provider '{recommended_provider}' is not kimi or glm"));
    }
    let recommended_model = string("recommended_model")?.to_string();
    if recommended_model.is_empty() {
        return Err("recommended_model is empty".into());
    }
    Ok(Intent {
        needs_websearch,
        complexity,
        recommended_provider,
        recommended_model,
        reasoning: string("reasoning")?.into(),
    })
}

const INTENT_SYSTEM: &str = "You classify requests for an AI router. Reply with ONE JSON object and nothing else, \
with exactly these keys: \"needs_websearch\" (boolean: the request needs current information from the web), \
\"complexity\" (\"simple\", \"moderate\" or \"complex\"), \"recommended_provider\" (\"glm\" or \"kimi\"), \
\"recommended_model\" (a model name), \"reasoning\" (one sentence). Prefer glm with glm-4.5-flash for simple, fast \
tasks; glm-5.1 for moderate ones; kimi with kimi-k2.6 for complex reasoning or long context.";

/// `kimi_intent_analysis`.
pub struct KimiIntentAnalysis(ToolSpec);

impl Default for KimiIntentAnalysis {
    fn default() -> Self {
        Self::new()
    }
}

impl KimiIntentAnalysis {
    /// Build it.
    pub fn new() -> Self {
        let mut p = pick_common(&["model"]);
        p.extend(props(json!({
            "prompt": { "type": "string", "minLength": 1, "maxLength": 100000, "description": "The request to classify." },
            "context": { "type": "string", "maxLength": 50000, "description": "Optional hints about the situation." },
            "use_websearch": { "type": "boolean", "description": "Whether web search is available for the request (default true); the classifier is told, it does not search." }
        })));
        KimiIntentAnalysis(ToolSpec {
            name: "kimi_intent_analysis".into(),
            title: Some("Kimi intent analysis".into()),
            description: "Classifies a request with a Kimi model into routing hints, as strict JSON: needs_websearch, \
                          complexity (simple|moderate|complex), recommended_provider (glm|kimi), recommended_model, \
                          reasoning. Fails with an error if the model's answer is not that JSON."
                .into(),
            input_schema: object_schema(p, &["prompt"]),
            kind: ToolKind::Simple,
            read_only: true,
        })
    }
}

impl Tool for KimiIntentAnalysis {
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
            let mut user = c.str("prompt").unwrap_or_default().to_string();
            if let Some(context) = c.str("context").filter(|s| !s.trim().is_empty()) {
                user.push_str(&format!("\n\n[Context]\n{context}"));
            }
            let web = c.bool("use_websearch").unwrap_or(true);
            user.push_str(&format!("\n\n[Web search available: {}]", if web { "yes" } else { "no" }));
            let call = ChatCall {
                model: c.str("model").map(str::to_string),
                tool: "kimi_intent_analysis".into(),
                request: ChatRequest {
                    messages: vec![ChatMessage::text("system", INTENT_SYSTEM), ChatMessage::text("user", user)],
                    temperature: Some(0.1),
                    max_tokens: Some(512),
                    // JSON mode: Moonshot's `response_format` makes the answer one JSON object.
                    extra: [("response_format".to_string(), json!({ "type": "json_object" }))].into_iter().collect(),
                    ..ChatRequest::default()
                },
                ..ChatCall::default()
            };
            require_kimi(&ctx, &call)?;
            let budget = CallBudget::new(&ctx);
            let res = call_model(&ctx, &budget, call).await?;
            let intent = parse_intent(&res.response.content).map_err(|why| {
                let head: String = res.response.content.chars().take(200).collect();
                ToolError::Execution(format!(
                    "the model's classification is not the expected JSON ({why}); it began: {head}"
                ))
            })?;
            let known = ctx.env.providers.catalog().resolve(&intent.recommended_model).is_ok();
            Ok(json_output(
                json!({
                    "status": "success",
                    "intent": intent,
                    "recommended_model_known": known,
                    "metadata": metadata("kimi_intent_analysis", &res, &budget),
                }),
                Some(&res),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const GOOD: &str = r#"{"needs_websearch": true, "complexity": "Complex", "recommended_provider": "KIMI",
                          "recommended_model": "kimi-k2-0905-preview", "reasoning": "long context", "extra": 1}"#;

    #[test]
    fn intent_json_tolerates_fences_prose_and_trailing_commas() {
        let i = parse_intent(GOOD).unwrap();
        assert!(i.needs_websearch);
        assert_eq!((i.complexity.as_str(), i.recommended_provider.as_str()), ("complex", "kimi"));
        assert_eq!(parse_intent(&format!("```json\n{GOOD}\n```")).unwrap(), i);
        assert_eq!(parse_intent(&format!("  ```\n{GOOD}```  ")).unwrap(), i);
        // Slightly-off JSON as models write it.
        assert_eq!(parse_intent(&format!("Here it is: {GOOD} Hope this helps.")).unwrap(), i);
        assert_eq!(parse_intent(&format!("```json\n{GOOD}")).unwrap(), i, "unterminated fence");
        assert_eq!(parse_intent(&GOOD.replace("\"extra\": 1}", "\"extra\": [1,],}")).unwrap(), i, "trailing commas");
        assert_eq!(parse_intent(&GOOD.replace("true", "\"true\"")).unwrap(), i, "a quoted boolean");
        let with_comma_in_string = GOOD.replace("long context", "a, }");
        assert_eq!(parse_intent(&with_comma_in_string).unwrap().reasoning, "a, }", "strings stay untouched");
        for (bad, why) in [
            ("sure! here it is", "no JSON object"),
            ("[1]", "not a JSON object"),
            (r#"{"needs_websearch": "yes"}"#, "needs_websearch"),
            (&GOOD.replace("Complex", "hard"), "complexity"),
            (&GOOD.replace("KIMI", "openai"), "recommended_provider"),
            (&GOOD.replace("\"reasoning\": \"long context\",", ""), "reasoning"),
            ("{ not json at all }", "not JSON"),
        ] {
            let e = parse_intent(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn messages_follow_role_rules() {
        let ok = json!([{ "role": "system", "content": "s" }, { "role": "user", "content": "u" },
                        { "role": "assistant", "content": null, "tool_calls": [{ "id": "1" }] },
                        { "role": "tool", "tool_call_id": "1", "content": "r" }]);
        assert_eq!(parse_messages(&ok).unwrap().len(), 4);
        for (bad, field) in [
            (json!([]), "messages"),
            (json!([{ "role": "tool", "content": "r" }]), "messages/0"),
            (json!([{ "role": "user", "content": "u" }, { "role": "assistant" }]), "messages/1"),
            (json!([{ "role": "user" }]), "messages/0"),
            (json!([{ "role": "user", "content": "u", "tool_calls": [{}] }]), "messages/0"),
        ] {
            let e = parse_messages(&bad).unwrap_err();
            assert!(matches!(e, ToolError::InvalidArguments { field: ref f, .. } if f == field), "{bad}: {e}");
        }
    }
}
