//! Z.ai GLM: OpenAI-compatible chat with the GLM body rules of `provider::payload`
//! (`thinking`, the `web_search` tool inside chat, `tool_stream`), the standalone
//! `POST /web_search`, and the Files API (upload with purpose `agent` by default, list,
//! delete; GLM has no content retrieval).

use async_trait::async_trait;
use awc::http::Method;
use exai_actors::files::hash::ChunkSink;
use exai_actors::provider::payload::{chat_body, PayloadKind};
use exai_actors::provider::transport::ProviderTransport;
use exai_actors::provider::types::{
    ChatRequest, ChatResponse, ProviderError, ProviderFile, RequestTimeouts, StreamEvent,
};
use serde_json::Value;
use std::path::Path;

use super::errors::VendorClass;
use super::files;
use super::http::HttpCore;

/// Z.ai's business codes (docs.z.ai, "API error codes"), which decide before the HTTP status:
/// Z.ai answers 429 for rate limits *and* for account problems.
///
/// - account, never retried: 1110 inactive, 1111 no such account, 1112 locked, 1113 in
///   arrears / balance exhausted, 1120 abnormal, 1121 suspended, 1309 plan expired;
/// - auth: 1000–1004 (missing, invalid or expired token);
/// - rate limit: 1302 concurrency, 1303 frequency, 1304 daily limit, 1305 overloaded, 1308
///   usage limit of the period;
/// - client: 1210–1261 (bad parameters, unknown model, prompt too long), 1301 unsafe content;
/// - server: 500, 1230–1234 (internal network errors).
pub(crate) fn classify(_status: u16, code: &str) -> Option<VendorClass> {
    let n: u32 = code.parse().ok()?;
    Some(match n {
        1110..=1113 | 1120 | 1121 | 1309 => VendorClass::Account,
        1000..=1004 => VendorClass::Auth,
        1302..=1305 | 1308 => VendorClass::RateLimit,
        1230..=1234 | 500 => VendorClass::Server,
        1210..=1229 | 1235..=1261 | 1301 => VendorClass::Client,
        _ => return None,
    })
}
use super::openai::chat_call;

/// GLM transport.
#[derive(Debug)]
pub(crate) struct GlmTransport {
    core: HttpCore,
}

impl GlmTransport {
    pub(crate) fn new(core: HttpCore) -> GlmTransport {
        GlmTransport { core }
    }
}

#[async_trait(?Send)]
impl ProviderTransport for GlmTransport {
    async fn chat(
        &self,
        req: &ChatRequest,
        timeouts: &RequestTimeouts,
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ChatResponse, ProviderError> {
        let body = chat_body(PayloadKind::Glm, req);
        chat_call(&self.core, &body, &[], req.stream, timeouts, on_event).await
    }

    async fn web_search(&self, params: &Value, timeouts: &RequestTimeouts) -> Result<Value, ProviderError> {
        self.core.json_call(Method::POST, "/web_search", Some(params), timeouts).await
    }

    async fn upload_file(
        &self,
        path: &Path,
        filename: &str,
        purpose: &str,
        tee: Option<ChunkSink>,
        timeouts: &RequestTimeouts,
    ) -> Result<ProviderFile, ProviderError> {
        let purpose = if purpose.is_empty() { "agent" } else { purpose };
        files::upload(&self.core, path, filename, purpose, tee, timeouts).await
    }

    async fn list_files(&self, timeouts: &RequestTimeouts) -> Result<Vec<ProviderFile>, ProviderError> {
        files::list(&self.core, timeouts).await
    }

    async fn file_content(&self, _id: &str, _timeouts: &RequestTimeouts) -> Result<String, ProviderError> {
        Err(ProviderError::Unsupported("GLM's Files API has no content retrieval".into()))
    }

    async fn delete_file(&self, id: &str, timeouts: &RequestTimeouts) -> Result<(), ProviderError> {
        files::delete(&self.core, id, timeouts).await
    }
}
