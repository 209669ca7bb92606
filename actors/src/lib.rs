//! exai-actors: the core of exai.
//!
//! Actors and their typed messages, the wire protocols (MCP JSON-RPC and the legacy EXAI
//! op protocol), the tool registry and dispatcher, and the ports (traits) through which
//! the core reaches storage and the world. No SQL and no HTTP client live here.

pub mod access;
pub mod breakers;
pub mod catalog;
pub mod clock;
pub mod cluster;
pub mod conversation;
pub mod coordinator;
pub mod dispatch;
pub mod engine;
pub mod env;
pub mod error;
pub mod files;
pub mod idle_poll;
pub mod limits;
pub mod mcp_extra;
pub mod metrics;
pub mod ports;
pub mod prompts;
pub mod protocol;
pub mod provider;
pub mod redact;
pub mod result_cache;
pub mod session;
pub mod settings;
pub mod storage_health;
pub mod supervision;
pub mod tasks;
pub mod toollog;
pub mod tools;
pub mod watcher;
