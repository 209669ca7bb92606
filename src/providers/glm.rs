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

use super::files;
use super::http::HttpCore;
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
