//! File tools that move files: `kimi_upload_files`, `glm_upload_file`, `kimi_manage_files`
//! (list, delete = give a reference back — for Kimi, or GLM with `provider: "glm"` —,
//! cleanup with `dry_run`). Paths come only from the
//! allowed roots (symlinks resolved); uploads follow the policy table and are deduplicated
//! by content. Each uploaded file's reference belongs to the user: it is released by
//! `kimi_manage_files` delete or when it expires (`files.reference_ttl_secs`, the result's
//! `reference_expires_at_ms`). Files API operations are bounded by
//! `files.max_files_per_call`; no model is called. File contents are never logged or
//! returned.

use super::common::{object_schema, props, Common};
use crate::error::ToolError;
use crate::files::cleanup::RunCleanup;
use crate::files::gateway::FileGateway;
use crate::files::ports::LeaseScope;
use crate::provider::actor::{FileReply, FileRequest};
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};
use std::sync::Arc;

fn paths_prop(max: usize) -> Value {
    json!({ "type": "array", "minItems": 1, "maxItems": max,
            "items": { "type": "string", "minLength": 1, "maxLength": 4096 },
            "description": "paths the server reads (only under its allowed roots)" })
}

/// `kimi_upload_files`.
pub struct KimiUploadFiles(ToolSpec, Arc<FileGateway>);

impl KimiUploadFiles {
    /// Build it.
    pub fn new(gw: Arc<FileGateway>) -> Self {
        KimiUploadFiles(
            ToolSpec {
                name: "kimi_upload_files".into(),
                title: Some("Upload files to Kimi".into()),
                description: "Upload files to Kimi's Files API (deduplicated by content: the same bytes reuse the \
                              existing file id; only the file types Kimi documents are accepted). Large files are \
                              also kept in the blob store; files above every provider limit are kept in the blob \
                              store only. Returns file ids; each reference expires after files.reference_ttl_secs."
                    .into(),
                input_schema: object_schema(props(json!({ "files": paths_prop(gw.max_files_per_call) })), &["files"]),
                kind: ToolKind::Simple,
                read_only: false,
            },
            gw,
        )
    }
}

async fn upload_all(ctx: &ToolContext, gw: &FileGateway, provider: &str, paths: &[String]) -> Result<Value, ToolError> {
    gw.check_count("files", paths.len())?;
    // Until the result reaches the user, the references taken belong to this call: a file
    // that fails gives back those of the files before it (the user never learns their ids).
    let mut taken = gw.call_leases();
    let mut out = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let up = gw.upload(&ctx.env.files, &format!("files/{i}"), p, provider, false, LeaseScope::Upload).await;
        match up {
            Ok(up) => {
                taken.hold(&up);
                out.push(up);
            }
            Err(e) => {
                taken.release().await;
                return Err(e);
            }
        }
    }
    taken.keep();
    Ok(json!({ "status": "success", "provider": provider, "files": out }))
}

impl Tool for KimiUploadFiles {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let gw = Arc::clone(&self.1);
        Box::pin(async move {
            let paths = Common(&args).strings("files");
            let v = upload_all(&ctx, &gw, "kimi", &paths).await?;
            Ok(ToolOutput { provider: Some("kimi".into()), ..ToolOutput::json(v) })
        })
    }
}

/// `glm_upload_file`.
pub struct GlmUploadFile(ToolSpec, Arc<FileGateway>);

impl GlmUploadFile {
    /// Build it.
    pub fn new(gw: Arc<FileGateway>) -> Self {
        GlmUploadFile(
            ToolSpec {
                name: "glm_upload_file".into(),
                title: Some("Upload a file to GLM".into()),
                description: "Upload one file to GLM's Files API (deduplicated by content; GLM's limit is \
                              files.glm_max_bytes). GLM cannot return extracted text: use glm_multi_file_chat to \
                              ask about files."
                    .into(),
                input_schema: object_schema(
                    props(json!({ "file": { "type": "string", "minLength": 1, "maxLength": 4096 } })),
                    &["file"],
                ),
                kind: ToolKind::Simple,
                read_only: false,
            },
            gw,
        )
    }
}

impl Tool for GlmUploadFile {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let gw = Arc::clone(&self.1);
        Box::pin(async move {
            let path = Common(&args).str("file").unwrap_or_default().to_string();
            let up = gw.upload(&ctx.env.files, "file", &path, "glm", false, LeaseScope::Upload).await?;
            Ok(ToolOutput {
                provider: Some("glm".into()),
                ..ToolOutput::json(json!({ "status": "success", "provider": "glm", "file": up }))
            })
        })
    }
}

/// `kimi_manage_files`.
pub struct KimiManageFiles(ToolSpec, Arc<FileGateway>);

impl KimiManageFiles {
    /// Build it.
    pub fn new(gw: Arc<FileGateway>) -> Self {
        KimiManageFiles(
            ToolSpec {
                name: "kimi_manage_files".into(),
                title: Some("Manage Kimi files".into()),
                description: "List Kimi (or, with provider \"glm\", GLM) files with their reference counts, \
                              delete one (gives your reference back; an unreferenced file is removed by the \
                              cleanup after the grace period), or run the staged cleanup (dry_run: report only)."
                    .into(),
                input_schema: object_schema(
                    props(json!({
                        "action": { "type": "string", "enum": ["list", "delete", "cleanup"] },
                        "provider": { "type": "string", "enum": ["kimi", "glm"], "description": "whose files (default kimi)" },
                        "file_id": { "type": "string", "minLength": 1, "maxLength": 200 },
                        "dry_run": { "type": "boolean", "description": "cleanup: report what would be deleted (default true)" }
                    })),
                    &["action"],
                ),
                kind: ToolKind::Simple,
                read_only: false,
            },
            gw,
        )
    }
}

impl Tool for KimiManageFiles {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn call(
        &self,
        ctx: ToolContext,
        args: Map<String, Value>,
    ) -> LocalBoxFuture<'static, Result<ToolOutput, ToolError>> {
        let gw = Arc::clone(&self.1);
        Box::pin(async move {
            let c = Common(&args);
            let provider = c.str("provider").unwrap_or("kimi");
            let v = match c.str("action").unwrap_or_default() {
                "list" => {
                    let files = match ctx.env.providers.file_op(provider, FileRequest::List).await? {
                        FileReply::Files(f) => f,
                        _ => Vec::new(),
                    };
                    let refs = gw
                        .registry
                        .list_file_refs(Some(provider), 10_000)
                        .await
                        .map_err(|e| ToolError::Unavailable(format!("file registry: {e}")))?;
                    let listed: Vec<Value> = files
                        .iter()
                        .map(|f| {
                            let r = refs.iter().find(|r| r.provider_file_id.as_deref() == Some(f.id.as_str()));
                            json!({ "id": f.id, "filename": f.filename, "bytes": f.bytes, "purpose": f.purpose,
                                    "created_at": f.created_at, "tracked": r.is_some(),
                                    "reference_count": r.map(|r| r.reference_count),
                                    "sha256": r.map(|r| r.sha256.clone()) })
                        })
                        .collect();
                    json!({ "status": "success", "provider": provider, "count": listed.len(), "files": listed })
                }
                "delete" => {
                    let id = c.str("file_id").ok_or_else(|| ToolError::InvalidArguments {
                        field: "file_id".into(),
                        message: "required for action \"delete\"".into(),
                    })?;
                    match gw.release(provider, id).await? {
                        Some(r) => json!({
                            "status": "success", "file_id": id, "reference_count": r.reference_count,
                            "soft_deleted": r.reference_count == 0,
                            "note": if r.reference_count == 0 {
                                "no references left: the file is removed from the provider by the next cleanup run after cleanup.grace_period_secs"
                            } else { "other references remain: the file is kept" },
                        }),
                        None => {
                            ctx.env.providers.file_op(provider, FileRequest::Delete(id.to_string())).await?;
                            json!({ "status": "success", "file_id": id, "deleted": true,
                                    "note": "not tracked by exai: deleted at the provider at once" })
                        }
                    }
                }
                "cleanup" => {
                    let dry_run = c.bool("dry_run").unwrap_or(true);
                    let addr = gw
                        .cleanup
                        .get()
                        .ok_or_else(|| ToolError::Unavailable("cleanup coordinator is restarting".into()))?;
                    let report = addr
                        .send(RunCleanup { trigger: "tool".into(), dry_run })
                        .await
                        .map_err(|_| ToolError::Unavailable("cleanup coordinator stopped".into()))?
                        .map_err(|e| ToolError::Execution(e.to_string()))?;
                    json!({ "status": "success", "run_id": report.run_id, "dry_run": report.dry_run,
                            "summary": report.summary, "items": report.items.iter().take(100).collect::<Vec<_>>() })
                }
                other => {
                    return Err(ToolError::InvalidArguments {
                        field: "action".into(),
                        message: format!("unknown action {other:?}; use list, delete or cleanup"),
                    })
                }
            };
            Ok(ToolOutput { provider: Some(provider.into()), ..ToolOutput::json(v) })
        })
    }
}
