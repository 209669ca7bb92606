//! The transport port: raw access to one vendor's OpenAI-compatible API.
//!
//! Implemented in the `exai` crate over awc (`src/providers/`). An instance is created on
//! its provider actor's own thread (awc clients are not `Send`) and used only there, so the
//! futures are not `Send` either. Dropping a returned future aborts the HTTP request.
//! Implementations do one logical operation per call (the provider actor owns retries and
//! the circuit breaker); vendor-specific loops that are part of one answer — Kimi's
//! `$web_search` tool-call echo — happen inside `chat`.

use super::types::{ChatRequest, ChatResponse, ProviderError, ProviderFile, RequestTimeouts, StreamEvent};
use async_trait::async_trait;
use serde_json::Value;
use std::path::Path;

/// One vendor API.
#[async_trait(?Send)]
pub trait ProviderTransport: 'static {
    /// Chat completion. When `req.stream` is set, `on_event` receives chunks as they arrive
    /// and the returned response holds the whole answer.
    async fn chat(
        &self,
        req: &ChatRequest,
        timeouts: &RequestTimeouts,
        on_event: &mut dyn FnMut(StreamEvent),
    ) -> Result<ChatResponse, ProviderError>;

    /// Standalone web search (GLM `POST /web_search`); `params` is the vendor's body.
    async fn web_search(&self, params: &Value, timeouts: &RequestTimeouts) -> Result<Value, ProviderError>;

    /// Upload a file (streamed from disk as multipart; never read whole into memory), its
    /// bytes also fed to `tee` from the same read when given.
    async fn upload_file(
        &self,
        path: &Path,
        filename: &str,
        purpose: &str,
        tee: Option<crate::files::hash::ChunkSink>,
        timeouts: &RequestTimeouts,
    ) -> Result<ProviderFile, ProviderError>;

    /// List files.
    async fn list_files(&self, timeouts: &RequestTimeouts) -> Result<Vec<ProviderFile>, ProviderError>;

    /// Extracted text content of a file (Kimi `GET /files/{id}/content`).
    async fn file_content(&self, id: &str, timeouts: &RequestTimeouts) -> Result<String, ProviderError>;

    /// Delete a file.
    async fn delete_file(&self, id: &str, timeouts: &RequestTimeouts) -> Result<(), ProviderError>;
}

/// Builds a transport on the provider actor's thread.
pub type TransportFactory = std::sync::Arc<dyn Fn() -> Box<dyn ProviderTransport> + Send + Sync>;
