//! File tools that ask a model about files: `kimi_chat_with_files` (uploads through the
//! gateway, fetches Kimi's extracted text through the Files API and sends it in a system
//! message, as Kimi documents; small files are embedded directly), `glm_multi_file_chat`
//! (GLM cannot return file text, so the text is extracted locally and sent with the
//! prompt — the old tool never sent it) and `smart_file_query` (picks the provider by size,
//! type and policy). The references these uploads take belong to the call: they are held in
//! a [`CallLeases`] and released when the call ends (success, error, cancel, timeout). One
//! model call per invocation; file texts go only into the request, never into logs.

use super::common::{
    call_model, json_output, object_schema, pick_common, request_from_args, result_meta, CallBudget, Common,
};
use crate::error::ToolError;
use crate::files::gateway::{CallLeases, FileGateway};
use crate::files::policy::Tier;
use crate::files::ports::LeaseScope;
use crate::provider::actor::{FileReply, FileRequest};
use crate::provider::service::ChatCall;
use crate::provider::types::ChatMessage;
use crate::tools::{Tool, ToolContext, ToolKind, ToolOutput, ToolSpec};
use futures_util::future::LocalBoxFuture;
use serde_json::{json, Map, Value};
use std::sync::Arc;

const SYSTEM: &str = "You answer questions about the files given below. Quote them precisely, name the file \
you rely on, and say so when the files do not contain the answer.";

fn schema(max_files: usize, with_ids: bool, with_provider: bool) -> Value {
    let mut p = pick_common(&["model", "temperature"]);
    p.insert("prompt".into(), json!({ "type": "string", "minLength": 1, "maxLength": 100000 }));
    p.insert(
        "files".into(),
        json!({ "type": "array", "maxItems": max_files, "items": { "type": "string", "minLength": 1, "maxLength": 4096 },
                "description": "paths the server reads (only under its allowed roots)" }),
    );
    if with_ids {
        p.insert(
            "file_ids".into(),
            json!({ "type": "array", "maxItems": max_files, "items": { "type": "string", "minLength": 1, "maxLength": 200 },
                    "description": "ids of files already uploaded to Kimi" }),
        );
    }
    if with_provider {
        p.insert("provider".into(), json!({ "type": "string", "enum": ["auto", "kimi", "glm"] }));
    }
    object_schema(p, &["prompt"])
}

fn spec(name: &str, title: &str, description: &str, schema: Value) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        title: Some(title.into()),
        description: description.into(),
        input_schema: schema,
        kind: ToolKind::Simple,
        read_only: false,
    }
}

/// Texts of files for Kimi: embedded when small, else uploaded and read back as Kimi's
/// extracted text. Returns the prompt section and per-file metadata; the references taken
/// go to `held`.
async fn kimi_texts(
    ctx: &ToolContext,
    gw: &FileGateway,
    paths: &[String],
    ids: &[String],
    held: &mut CallLeases,
) -> Result<(String, Vec<Value>), ToolError> {
    gw.check_count("files", paths.len() + ids.len())?;
    let mut section = String::new();
    let mut meta = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        let field = format!("files/{i}");
        let up = gw.upload(&ctx.env.files, &field, p, "kimi", true, LeaseScope::Call).await?;
        held.hold(&up);
        let text = match (up.tier, &up.provider_file_id) {
            (Tier::Embed, _) => ctx.env.files.read_texts("files", std::slice::from_ref(p)).await?.remove(0).text,
            (Tier::BlobOnly, _) | (_, None) => {
                meta.push(json!({ "file": up, "sent": false }));
                continue;
            }
            (_, Some(id)) => content(ctx, id).await?,
        };
        section.push_str(&format!("--- {} ---\n{}\n", up.path, text));
        meta.push(json!({ "file": up, "sent": true, "chars": text.chars().count() }));
    }
    for id in ids {
        let text = content(ctx, id).await?;
        section.push_str(&format!("--- kimi file {id} ---\n{text}\n"));
        meta.push(json!({ "file_id": id, "sent": true, "chars": text.chars().count() }));
    }
    Ok((section, meta))
}

async fn content(ctx: &ToolContext, id: &str) -> Result<String, ToolError> {
    match ctx.env.providers.file_op("kimi", FileRequest::Content(id.to_string())).await? {
        FileReply::Text(t) => Ok(t),
        _ => Err(ToolError::Provider { provider: "kimi".into(), message: "unexpected file content answer".into() }),
    }
}

/// Texts extracted locally (UTF-8 files within `tools.max_file_bytes`).
async fn local_texts(ctx: &ToolContext, gw: &FileGateway, paths: &[String]) -> Result<(String, Vec<Value>), ToolError> {
    gw.check_count("files", paths.len())?;
    let files = ctx.env.files.read_texts("files", paths).await?;
    let mut section = String::new();
    let mut meta = Vec::new();
    for f in &files {
        section.push_str(&format!("--- {} ---\n{}\n", f.path.display(), f.text));
        meta.push(
            json!({ "path": f.path.display().to_string(), "bytes": f.text.len(), "sent": true, "tier": "local_text" }),
        );
    }
    Ok((section, meta))
}

/// Where the file texts go: Kimi documents them as a system message of their own; GLM gets
/// them with the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    System,
    User,
}

fn messages(prompt: &str, section: &str, placement: Placement) -> Vec<ChatMessage> {
    if section.is_empty() {
        return vec![ChatMessage::text("system", SYSTEM), ChatMessage::text("user", prompt)];
    }
    let files = format!("=== FILES ===\n{section}=== END FILES ===\n");
    match placement {
        Placement::System => vec![
            ChatMessage::text("system", SYSTEM),
            ChatMessage::text("system", files),
            ChatMessage::text("user", prompt),
        ],
        Placement::User => {
            vec![ChatMessage::text("system", SYSTEM), ChatMessage::text("user", format!("{prompt}\n\n{files}"))]
        }
    }
}

async fn ask(
    ctx: &ToolContext,
    args: &Map<String, Value>,
    routing_tool: &str,
    (section, placement): (String, Placement),
    files: Vec<Value>,
    extra: Value,
) -> Result<ToolOutput, ToolError> {
    let c = Common(args);
    let prompt = c.str("prompt").unwrap_or_default();
    let messages = messages(prompt, &section, placement);
    let call = ChatCall {
        model: c.str("model").map(str::to_string),
        tool: routing_tool.into(),
        request: request_from_args(args, messages),
        ..ChatCall::default()
    };
    let res = call_model(ctx, &CallBudget::new(ctx), call).await?;
    let mut v = json!({ "status": "success", "content": res.response.content, "content_type": "markdown",
                        "metadata": result_meta(&res), "files": files });
    if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
        m.extend(e);
    }
    Ok(json_output(v, Some(&res)))
}

/// `kimi_chat_with_files`.
pub struct KimiChatWithFiles(ToolSpec, Arc<FileGateway>);

impl KimiChatWithFiles {
    /// Build it.
    pub fn new(gw: Arc<FileGateway>) -> Self {
        KimiChatWithFiles(
            spec(
                "kimi_chat_with_files",
                "Ask Kimi about files",
                "Ask a Kimi model about files: small files are embedded, larger ones uploaded (deduplicated) and \
                 their extracted text fetched from Kimi and sent with the prompt.",
                schema(gw.max_files_per_call, true, false),
            ),
            gw,
        )
    }
}

impl Tool for KimiChatWithFiles {
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
            let mut held = gw.call_leases();
            let res = match kimi_texts(&ctx, &gw, &c.strings("files"), &c.strings("file_ids"), &mut held).await {
                Ok((section, files)) => {
                    ask(&ctx, &args, "kimi_chat_with_files", (section, Placement::System), files, Value::Null).await
                }
                Err(e) => Err(e),
            };
            held.release().await;
            res
        })
    }
}

/// `glm_multi_file_chat`.
pub struct GlmMultiFileChat(ToolSpec, Arc<FileGateway>);

impl GlmMultiFileChat {
    /// Build it.
    pub fn new(gw: Arc<FileGateway>) -> Self {
        GlmMultiFileChat(
            spec(
                "glm_multi_file_chat",
                "Ask GLM about files",
                "Ask a GLM model about text files: the server extracts their text (UTF-8, within \
                 tools.max_file_bytes) and sends it with the prompt.",
                schema(gw.max_files_per_call, false, false),
            ),
            gw,
        )
    }
}

impl Tool for GlmMultiFileChat {
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
            let (section, files) = local_texts(&ctx, &gw, &Common(&args).strings("files")).await?;
            ask(&ctx, &args, "glm_multi_file_chat", (section, Placement::User), files, Value::Null).await
        })
    }
}

/// `smart_file_query`.
pub struct SmartFileQuery(ToolSpec, Arc<FileGateway>);

impl SmartFileQuery {
    /// Build it.
    pub fn new(gw: Arc<FileGateway>) -> Self {
        SmartFileQuery(
            spec(
                "smart_file_query",
                "Ask about files (provider chosen by size)",
                "Ask about files; the provider is chosen by file size and the upload policy (Kimi when \
                 configured and the files fit its limit, since it returns extracted text; else GLM with locally \
                 extracted text).",
                schema(gw.max_files_per_call, false, true),
            ),
            gw,
        )
    }
}

impl Tool for SmartFileQuery {
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
            let paths = c.strings("files");
            gw.check_count("files", paths.len())?;
            let mut largest = 0u64;
            let mut kimi_types = true;
            for (i, p) in paths.iter().enumerate() {
                let (path, size) = gw.resolve(&ctx.env.files, &format!("files/{i}"), p).await?;
                largest = largest.max(size);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                kimi_types &= size < gw.policy.embed_max_bytes || gw.policy.accepts_type("kimi", &name);
            }
            let configured = |name: &str| ctx.env.providers.entries().iter().any(|e| e.name == name && e.configured);
            // Kimi only when it accepts every file's type; else GLM with locally extracted text.
            let kimi_ok = configured("kimi") && (kimi_types || !configured("glm"));
            let provider = match c.str("provider").unwrap_or("auto") {
                "kimi" => "kimi",
                "glm" => "glm",
                _ => gw.policy.pick_provider(largest, kimi_ok, configured("glm")).ok_or_else(|| {
                    ToolError::InvalidArguments {
                        field: "files".into(),
                        message: format!(
                            "the largest file is {largest} bytes; no configured provider accepts it \
                             (files.kimi_max_bytes = {}, files.glm_max_bytes = {})",
                            gw.policy.kimi_max_bytes, gw.policy.glm_max_bytes
                        ),
                    }
                })?,
            };
            let why = if kimi_types || provider != "glm" {
                format!("largest file {largest} bytes; provider {provider}")
            } else {
                format!("largest file {largest} bytes; a file type Kimi does not accept; provider {provider}")
            };
            let extra = json!({ "routing": { "provider": provider, "reason": why } });
            let mut held = gw.call_leases();
            let res = if provider == "kimi" {
                match kimi_texts(&ctx, &gw, &paths, &[], &mut held).await {
                    Ok((s, f)) => ask(&ctx, &args, "kimi_chat_with_files", (s, Placement::System), f, extra).await,
                    Err(e) => Err(e),
                }
            } else {
                match local_texts(&ctx, &gw, &paths).await {
                    Ok((s, f)) => ask(&ctx, &args, "glm_multi_file_chat", (s, Placement::User), f, extra).await,
                    Err(e) => Err(e),
                }
            };
            held.release().await;
            res
        })
    }
}

/// The six file tools over one gateway.
pub fn all(gw: &Arc<FileGateway>) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(super::file_tools::KimiUploadFiles::new(Arc::clone(gw))),
        Arc::new(KimiChatWithFiles::new(Arc::clone(gw))),
        Arc::new(super::file_tools::KimiManageFiles::new(Arc::clone(gw))),
        Arc::new(super::file_tools::GlmUploadFile::new(Arc::clone(gw))),
        Arc::new(GlmMultiFileChat::new(Arc::clone(gw))),
        Arc::new(SmartFileQuery::new(Arc::clone(gw))),
    ]
}
