//! `version`, `listmodels`, `status`, `health` and `provider_capabilities`: answers from local
//! state (settings, runtime state, catalogue, store health). No secrets are ever included:
//! providers report only whether a key is configured.

use super::spec;
use crate::env::ToolEnv;
use crate::error::ToolError;
use crate::ports::ActivityQuery;
use crate::protocol::mcp::SUPPORTED_VERSIONS;
use crate::tools::{Tool, ToolContext, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;

fn no_args() -> Value {
    json!({ "type": "object", "properties": {}, "additionalProperties": false })
}

fn tail_args() -> Value {
    json!({
        "type": "object",
        "properties": {
            "tail_lines": { "type": "integer", "minimum": 0, "maximum": 200, "description": "recent WARN/ERROR log lines to include" }
        },
        "additionalProperties": false
    })
}

fn sessions(env: &ToolEnv) -> Value {
    let r = &env.runtime;
    json!({
        "mcp_ws": r.sessions_mcp_ws.load(Ordering::Relaxed),
        "legacy_ws": r.sessions_legacy.load(Ordering::Relaxed),
        "mcp_http": r.sessions_http.load(Ordering::Relaxed),
        "connections": r.connections.total(),
    })
}

fn capacity(env: &ToolEnv) -> Value {
    let l = &env.runtime.inflight;
    json!({
        "global_inflight": l.in_use(),
        "global_max_inflight": l.max(),
        "session_max_inflight": env.settings.session_max_inflight,
    })
}

fn recent_problems(env: &ToolEnv, n: usize) -> Vec<Value> {
    if n == 0 {
        return Vec::new();
    }
    let q = ActivityQuery { limit: n, min_level: Some("warn".into()), ..ActivityQuery::default() };
    env.activity.recent(&q).into_iter().map(|e| json!(e)).collect()
}

fn providers(env: &ToolEnv) -> Vec<Value> {
    let breakers = env.runtime.breakers.snapshot();
    env.catalog
        .providers()
        .iter()
        .map(|p| {
            let models: Vec<&str> =
                env.catalog.models().iter().filter(|m| m.provider == p.name).map(|m| m.name.as_str()).collect();
            // A disabled provider has no breaker.
            let breaker = breakers.iter().find(|b| b.provider == p.name).map(
                |b| json!({ "state": b.state.as_str(), "opened_at_ms": b.opened_at_ms, "transitions": b.transitions }),
            );
            json!({ "name": p.name, "kind": p.kind, "configured": p.api_key_configured, "models": models,
                    "breaker": breaker })
        })
        .collect()
}

async fn store_health(env: &ToolEnv) -> Value {
    let backend = env.store.backend();
    match env.store.ping().await {
        Err(e) => json!({ "backend": backend, "reachable": false, "error": e.to_string() }),
        Ok(()) => match env.store.migration_status().await {
            Ok(m) => json!({ "backend": backend, "reachable": true, "migrations_current": m.is_current(),
                             "applied": m.applied.len(), "known": m.known.len() }),
            Err(e) => {
                json!({ "backend": backend, "reachable": true, "migrations_current": false, "error": e.to_string() })
            }
        },
    }
}

macro_rules! simple_tool {
    ($ty:ident) => {
        /// The tool.
        pub struct $ty(ToolSpec);
        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

simple_tool!(Version);
impl Version {
    /// Build it.
    pub fn new() -> Self {
        Version(spec("version", "Server name, version, protocol versions and uptime.", no_args()))
    }
}
impl Tool for Version {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call(&self, ctx: ToolContext, _: Map<String, Value>) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let env = &ctx.env;
        let v = json!({
            "name": env.settings.server_name,
            "version": env.settings.server_version,
            "mcp_protocol_versions": SUPPORTED_VERSIONS,
            "legacy_protocol": "exai-ws op protocol",
            "uptime_secs": env.runtime.uptime_secs(),
            "tools": env.runtime.tool_names.get().map(Vec::len).unwrap_or(0),
        });
        Box::pin(async move { Ok(ToolOutput::json(v)) })
    }
}

simple_tool!(ListModels);
impl ListModels {
    /// Build it.
    pub fn new() -> Self {
        ListModels(spec(
            "listmodels",
            "Lists providers and their models with context windows and capabilities.",
            no_args(),
        ))
    }
}
impl Tool for ListModels {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call(&self, ctx: ToolContext, _: Map<String, Value>) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let env = &ctx.env;
        let out: Vec<Value> = env
            .catalog
            .providers()
            .iter()
            .map(|p| {
                let models: Vec<Value> = env
                    .catalog
                    .models()
                    .iter()
                    .filter(|m| m.provider == p.name)
                    .map(|m| {
                        json!({ "name": m.name, "aliases": m.aliases, "context_window": m.context_window,
                                     "max_output_tokens": m.max_output_tokens, "capabilities": m.capabilities,
                                     "price_per_million_tokens": { "input": m.input_price, "output": m.output_price,
                                                                   "currency": "USD" } })
                    })
                    .collect();
                json!({ "provider": p.name, "configured": p.api_key_configured, "models": models })
            })
            .collect();
        Box::pin(async move { Ok(ToolOutput::json(json!({ "providers": out }))) })
    }
}

simple_tool!(Status);
impl Status {
    /// Build it.
    pub fn new() -> Self {
        Status(spec(
            "status",
            "Short status: providers, sessions, calls in flight, supervised actors, recent problems.",
            json!({
                "type": "object",
                "properties": {
                    "tail_lines": { "type": "integer", "minimum": 0, "maximum": 200 },
                    "include_tools": { "type": "boolean" }
                },
                "additionalProperties": false
            }),
        ))
    }
}
impl Tool for Status {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let env = &ctx.env;
        let tail = args.get("tail_lines").and_then(Value::as_u64).unwrap_or(5) as usize;
        let mut v = json!({
            "status": if env.runtime.is_shutting_down() { "shutting_down" } else { "ok" },
            "version": env.settings.server_version,
            "uptime_secs": env.runtime.uptime_secs(),
            "providers": providers(env),
            "sessions": sessions(env),
            "capacity": capacity(env),
            "actors": env.runtime.children(),
            "recent_problems": recent_problems(env, tail),
        });
        if args.get("include_tools").and_then(Value::as_bool).unwrap_or(false) {
            v["tools"] = json!(env.runtime.tool_names.get());
        }
        Box::pin(async move { Ok(ToolOutput::json(v)) })
    }
}

simple_tool!(Health);
impl Health {
    /// Build it.
    pub fn new() -> Self {
        Health(spec(
            "health",
            "Health of the store, supervised actors and providers, plus recent WARN/ERROR lines.",
            tail_args(),
        ))
    }
}
impl Tool for Health {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let tail = args.get("tail_lines").and_then(Value::as_u64).unwrap_or(20) as usize;
        Box::pin(async move {
            let env = &ctx.env;
            let store = store_health(env).await;
            let actors = env.runtime.children();
            let actors_ok = actors.iter().all(|c| c.state == crate::supervision::ChildState::Running);
            let store_ok = store["reachable"] == json!(true) && store["migrations_current"] == json!(true);
            Ok(ToolOutput::json(json!({
                "healthy": actors_ok && store_ok && !env.runtime.is_shutting_down(),
                "store": store,
                "actors": actors,
                "providers": providers(env),
                "sessions": sessions(env),
                "capacity": capacity(env),
                "recent_problems": recent_problems(env, tail),
            })))
        })
    }
}

simple_tool!(ProviderCapabilities);
impl ProviderCapabilities {
    /// Build it.
    pub fn new() -> Self {
        ProviderCapabilities(spec(
            "provider_capabilities",
            "Which providers are configured (keys present, never shown), their endpoints and capabilities.",
            json!({
                "type": "object",
                "properties": { "include_models": { "type": "boolean" } },
                "additionalProperties": false
            }),
        ))
    }
}
impl Tool for ProviderCapabilities {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }
    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let env = &ctx.env;
        let include = args.get("include_models").and_then(Value::as_bool).unwrap_or(true);
        let out: Vec<Value> = env
            .catalog
            .providers()
            .iter()
            .map(|p| {
                let mut v = json!({
                    "name": p.name, "kind": p.kind, "base_url": p.base_url,
                    "api_key_configured": p.api_key_configured,
                    "files_api": p.files_api, "web_search_endpoint": p.web_search_endpoint,
                });
                if include {
                    v["models"] =
                        json!(env.catalog.models().iter().filter(|m| m.provider == p.name).collect::<Vec<_>>());
                }
                v
            })
            .collect();
        Box::pin(async move { Ok(ToolOutput::json(json!({ "providers": out }))) })
    }
}
