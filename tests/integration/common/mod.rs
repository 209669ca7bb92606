//! Shared harness for the integration tests: the server process ([`server`]), external
//! commands with a time limit ([`cmd`]), HTTP helpers ([`http`]), paths of the installed test
//! clients ([`tools`]), a raw WebSocket client ([`ws`]), mock AI providers ([`mock`]) and a
//! TCP proxy whose connections a test can cut ([`proxy`]).
// Not every test module uses every helper; the harness is shared by all of them.
#![allow(dead_code)]

pub mod cmd;
pub mod http;
pub mod mcp_http;
pub mod mock;
pub mod proxy;
pub mod server;
pub mod sim;
pub mod tools;
pub mod ws;

pub use server::{ServerOptions, ServerProcess};
