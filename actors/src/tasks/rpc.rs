//! The task methods, transport-neutral: a task-augmented `tools/call` ([`start`]),
//! `tasks/get`, `tasks/result`, `tasks/list` and `tasks/cancel`.
//!
//! Errors follow the spec: an unknown, expired or foreign task id and a bad cursor are
//! -32602; a task-augmented call of a tool whose `taskSupport` is `forbidden` is -32601;
//! cancelling a terminal task is -32602. A store failure is -32603.

use super::{iso8601, TaskCursor, TaskRecord, TaskStatus, TaskStore};
use crate::dispatch::CallRequest;
use crate::env::now_ms;
use crate::error::ToolError;
use crate::mcp_extra::ExtraCtx;
use crate::protocol::jsonrpc::{self, codes};
use crate::protocol::mcp::{self, CallParams, RpcError};
use crate::tools::{ProgressSink, TaskSupport};
use futures_util::future::{AbortHandle, Abortable};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// `_meta` key tying a result to its task.
pub const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError { code: codes::INTERNAL_ERROR, message: format!("task store: {e}"), data: None }
}

fn store(ctx: &ExtraCtx) -> Result<Arc<dyn TaskStore>, RpcError> {
    ctx.dispatcher.env().store.task_store().ok_or_else(|| RpcError {
        code: codes::METHOD_NOT_FOUND,
        message: "tasks are not available: this server's store keeps no tasks".into(),
        data: None,
    })
}

fn not_found(id: &str) -> RpcError {
    RpcError::invalid_params(format!("Unknown task: {id} (it does not exist, has expired, or is not yours)"))
}

/// The spec's `Task` object.
pub fn task_json(t: &TaskRecord) -> Value {
    let mut v = json!({
        "taskId": t.task_id,
        "status": t.status.as_str(),
        "ttl": t.ttl_ms,
        "createdAt": iso8601(t.created_at_ms),
        "lastUpdatedAt": iso8601(t.updated_at_ms),
        "pollInterval": t.poll_interval_ms,
    });
    if let Some(m) = &t.status_message {
        v["statusMessage"] = json!(m);
    }
    v
}

fn task_id_param(params: Option<&Value>) -> Result<String, RpcError> {
    params
        .and_then(|p| p.get("taskId"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| RpcError::invalid_params("taskId (string) is required"))
}

/// The TTL granted for a requested one (ms): absent → the default, else clamped.
fn granted_ttl(task: &Value) -> Result<i64, RpcError> {
    let Some(obj) = task.as_object() else {
        return Err(RpcError::invalid_params("tools/call: task must be an object"));
    };
    match obj.get("ttl") {
        None | Some(Value::Null) => Ok(super::DEFAULT_TTL_MS),
        Some(v) => match v.as_f64() {
            Some(ms) if ms.is_finite() && ms >= 0.0 => Ok((ms as i64).clamp(super::MIN_TTL_MS, super::MAX_TTL_MS)),
            _ => Err(RpcError::invalid_params("tools/call: task.ttl must be a non-negative number of milliseconds")),
        },
    }
}

/// Removes the task from the runner however its future ends (even by a panic), after its
/// status was stored: waiters wake and re-read the store.
struct Finished(Arc<crate::env::RuntimeState>, String);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.tasks.finished(&self.1);
    }
}

/// Store a new task for `p` and start it detached; resolves to the `CreateTaskResult`.
pub async fn start(ctx: ExtraCtx, p: CallParams, task: Value, request_id: String) -> Result<Value, RpcError> {
    let env = Arc::clone(ctx.dispatcher.env());
    let Some(entry) = ctx.dispatcher.registry().get(&p.name) else {
        return Err(RpcError::invalid_params(format!("Unknown tool: {}", p.name)));
    };
    let spec = entry.tool.spec();
    if spec.task_support() == TaskSupport::Forbidden {
        return Err(RpcError {
            code: codes::METHOD_NOT_FOUND,
            message: format!("tool '{}' does not support tasks (execution.taskSupport is \"forbidden\")", spec.name),
            data: None,
        });
    }
    let ttl_ms = granted_ttl(&task)?;
    if env.runtime.is_shutting_down() {
        return Err(RpcError {
            code: codes::SHUTTING_DOWN,
            message: "the server is shutting down and starts no new tasks".into(),
            data: None,
        });
    }
    let tasks = store(&ctx)?;
    let now = now_ms();
    let mut rec = TaskRecord {
        task_id: uuid::Uuid::new_v4().to_string(),
        principal: ctx.principal.to_string(),
        session_id: ctx.session_id.to_string(),
        tool: spec.name.clone(),
        status: TaskStatus::Working,
        status_message: None,
        result: None,
        created_at_ms: now,
        updated_at_ms: now,
        ttl_ms,
        expires_at_ms: now.saturating_add(ttl_ms),
        poll_interval_ms: super::POLL_INTERVAL_MS,
    };
    tasks.create_task(&rec).await.map_err(internal)?;
    let created = json!({ "task": task_json(&rec) });

    let (abort, reg) = AbortHandle::new_pair();
    env.runtime.tasks.register(&rec.task_id, abort);
    let req = CallRequest {
        name: p.name,
        args: p.arguments,
        session_id: Arc::clone(&ctx.session_id),
        principal: Arc::clone(&ctx.principal),
        request_id,
        protocol: ctx.protocol,
        progress: ProgressSink::none(),
    };
    let call = ctx.dispatcher.call(req);
    let notify = ctx.notify.clone();
    tracing::info!(task = %rec.task_id, tool = %rec.tool, session = %rec.session_id, ttl_ms, "task started");
    actix_rt::spawn(async move {
        let _finished = Finished(Arc::clone(&env.runtime), rec.task_id.clone());
        let (status, message, result) = match Abortable::new(call, reg).await {
            Ok(res) => {
                let v = mcp::call_result(&res);
                match &res.outcome {
                    Ok(_) => (TaskStatus::Completed, None, v),
                    Err(e) => (TaskStatus::Failed, Some(format!("{}: {e}", e.code())), v),
                }
            }
            Err(_) if env.runtime.is_shutting_down() => {
                let e = ToolError::Cancelled {
                    reason: format!(
                        "the server shut down before the task finished (drain deadline of {} s passed)",
                        env.settings.shutdown_deadline_secs
                    ),
                };
                (TaskStatus::Failed, Some(format!("{}: {e}", e.code())), mcp::tool_error_result(&e, None))
            }
            Err(_) => {
                let e = ToolError::Cancelled { reason: "cancelled by tasks/cancel".into() };
                (TaskStatus::Cancelled, Some(format!("{}: {e}", e.code())), mcp::tool_error_result(&e, None))
            }
        };
        let now = now_ms();
        match tasks.finish_task(&rec.task_id, status, message.as_deref(), Some(&result), now).await {
            Ok(true) => {
                tracing::info!(task = %rec.task_id, status = status.as_str(), "task finished");
                rec.status = status;
                rec.status_message = message;
                rec.updated_at_ms = now;
                if let Some(n) = notify {
                    n(jsonrpc::notification_frame("notifications/tasks/status", task_json(&rec)));
                }
            }
            // Cancelled (or expired) meanwhile: the stored status stands.
            Ok(false) => {}
            Err(e) => tracing::error!(task = %rec.task_id, error = %e, "storing a finished task failed"),
        }
    });
    Ok(created)
}

/// `tasks/get`.
pub async fn get(ctx: ExtraCtx, params: Option<Value>) -> Result<Value, RpcError> {
    let id = task_id_param(params.as_ref())?;
    let rec = store(&ctx)?.get_task(&ctx.principal, &id, now_ms()).await.map_err(internal)?;
    rec.map(|t| task_json(&t)).ok_or_else(|| not_found(&id))
}

/// `tasks/result`: waits while the task works, then returns its `CallToolResult`.
pub async fn result(ctx: ExtraCtx, params: Option<Value>) -> Result<Value, RpcError> {
    let id = task_id_param(params.as_ref())?;
    let tasks = store(&ctx)?;
    let runtime = Arc::clone(&ctx.dispatcher.env().runtime);
    loop {
        // Subscribe before reading, so a finish between the two is not missed.
        let done = runtime.tasks.watch(&id);
        let Some(t) = tasks.get_task(&ctx.principal, &id, now_ms()).await.map_err(internal)? else {
            return Err(not_found(&id));
        };
        if t.status.is_terminal() {
            let mut v = t.result.unwrap_or_else(|| {
                let e = ToolError::Internal("the task ended without a stored result".into());
                mcp::tool_error_result(&e, None)
            });
            if !v["_meta"].is_object() {
                v["_meta"] = json!({});
            }
            v["_meta"][RELATED_TASK] = json!({ "taskId": t.task_id });
            return Ok(v);
        }
        match done {
            // Runs here: wake when it finishes.
            Some(mut rx) => {
                let _ = rx.wait_for(|d| *d).await;
            }
            // Runs elsewhere (another node) or died with an earlier process: poll.
            None => tokio::time::sleep(Duration::from_millis(t.poll_interval_ms.max(100) as u64)).await,
        }
    }
}

/// `tasks/list` (paginated, newest first).
pub async fn list(ctx: ExtraCtx, params: Option<Value>) -> Result<Value, RpcError> {
    let after = match params.as_ref().and_then(|p| p.get("cursor")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(TaskCursor::decode(s).ok_or_else(|| RpcError::invalid_params(format!("invalid cursor '{s}'")))?)
        }
        Some(_) => return Err(RpcError::invalid_params("cursor must be a string")),
    };
    let page = ctx.dispatcher.env().settings.tools_page_size.max(1);
    let limit = u32::try_from(page + 1).unwrap_or(u32::MAX);
    let mut rows = store(&ctx)?.list_tasks(&ctx.principal, after.as_ref(), limit, now_ms()).await.map_err(internal)?;
    let more = rows.len() > page;
    rows.truncate(page);
    let mut v = json!({ "tasks": rows.iter().map(task_json).collect::<Vec<_>>() });
    if more {
        if let Some(last) = rows.last() {
            let c = TaskCursor { created_at_ms: last.created_at_ms, task_id: last.task_id.clone() };
            v["nextCursor"] = json!(c.encode());
        }
    }
    Ok(v)
}

/// `tasks/cancel`.
pub async fn cancel(ctx: ExtraCtx, params: Option<Value>) -> Result<Value, RpcError> {
    let id = task_id_param(params.as_ref())?;
    let tasks = store(&ctx)?;
    let Some(mut t) = tasks.get_task(&ctx.principal, &id, now_ms()).await.map_err(internal)? else {
        return Err(not_found(&id));
    };
    let terminal =
        |t: &TaskRecord| RpcError::invalid_params(format!("task {} is already {}", t.task_id, t.status.as_str()));
    if t.status.is_terminal() {
        return Err(terminal(&t));
    }
    let e = ToolError::Cancelled { reason: "cancelled by tasks/cancel".into() };
    let message = format!("{}: {e}", e.code());
    let now = now_ms();
    let result = mcp::tool_error_result(&e, None);
    if !tasks.finish_task(&id, TaskStatus::Cancelled, Some(&message), Some(&result), now).await.map_err(internal)? {
        // It finished in between: report what it became.
        return match tasks.get_task(&ctx.principal, &id, now_ms()).await.map_err(internal)? {
            Some(t) => Err(terminal(&t)),
            None => Err(not_found(&id)),
        };
    }
    ctx.dispatcher.env().runtime.tasks.cancel(&id);
    tracing::info!(task = %id, "task cancelled by client");
    t.status = TaskStatus::Cancelled;
    t.status_message = Some(message);
    t.updated_at_ms = now;
    Ok(task_json(&t))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ttl_is_defaulted_and_clamped() {
        assert_eq!(granted_ttl(&json!({})).unwrap(), super::super::DEFAULT_TTL_MS);
        assert_eq!(granted_ttl(&json!({"ttl": 5})).unwrap(), super::super::MIN_TTL_MS);
        assert_eq!(granted_ttl(&json!({"ttl": 60000})).unwrap(), 60_000);
        assert_eq!(granted_ttl(&json!({"ttl": 1e12})).unwrap(), super::super::MAX_TTL_MS);
        assert_eq!(granted_ttl(&json!({"ttl": "soon"})).unwrap_err().code, codes::INVALID_PARAMS);
        assert_eq!(granted_ttl(&json!({"ttl": -1})).unwrap_err().code, codes::INVALID_PARAMS);
        assert_eq!(granted_ttl(&json!(3)).unwrap_err().code, codes::INVALID_PARAMS);
    }
}
