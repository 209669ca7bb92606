//! AI tools: tools that call a model through the provider service, and the step-pattern
//! tools that go with them. Each invocation makes a bounded number of provider calls (at most
//! `max_provider_calls_per_invocation`, never self-recursion); `files` are read by the server
//! only from the allowed roots and never logged.
//!
//! Modules: `common` (shared arguments, the call budget, one routed call, result shapes),
//! `steps` (the step record kept in the conversation thread), `workflow` + `workflow_defs`
//! (the nine expert-analysis workflow tools), `consensus`, `planner`, `docgen`, `challenge`,
//! `kimi` (raw Kimi chat and intent analysis), `glm` (web search and payload preview), `chat`,
//! `file_tools` and `file_chat` (the six file tools over the files gateway; see `crate::files`).

pub mod challenge;
pub mod chat;
pub mod common;
pub mod consensus;
pub mod docgen;
pub mod file_chat;
pub mod file_tools;
pub mod glm;
pub mod kimi;
pub mod planner;
pub mod steps;
pub mod workflow;
pub mod workflow_defs;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use super::Tool;
use std::sync::Arc;

/// All AI tools in the old server's listing order.
pub fn all() -> Vec<Arc<dyn Tool>> {
    let mut v: Vec<Arc<dyn Tool>> = vec![Arc::new(chat::Chat::new())];
    for def in workflow_defs::all() {
        v.push(Arc::new(workflow::WorkflowTool::new(def)));
    }
    v.push(Arc::new(docgen::Docgen::new()));
    v.push(Arc::new(planner::Planner::new()));
    v.push(Arc::new(consensus::Consensus::new()));
    v.push(Arc::new(challenge::Challenge::new()));
    v.push(Arc::new(kimi::KimiChatWithTools::new()));
    v.push(Arc::new(kimi::KimiIntentAnalysis::new()));
    v.push(Arc::new(glm::GlmWebSearch::new()));
    v.push(Arc::new(glm::GlmPayloadPreview::new()));
    v
}
