//! Wire protocols spoken on the WebSocket port and `/mcp`.
//!
//! - [`jsonrpc`]: JSON-RPC 2.0 message parsing and response building (MCP framing).
//! - [`mcp`]: MCP 2025-11-25 method semantics shared by every MCP transport.
//! - [`mcp_frame`]: the `tools/call` response frame written in one pass (every call's path).
//! - [`legacy`]: the old EXAI op protocol (`hello`, `call_tool`, …) with its defects fixed.

pub mod jsonrpc;
pub mod legacy;
pub mod mcp;
pub mod mcp_frame;
