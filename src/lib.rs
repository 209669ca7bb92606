//! exai: the adapters and wiring around the `exai-actors` core.
//!
//! Config loading, the actix-web server (WebSocket upgrade, Streamable HTTP, health,
//! metrics), storage over sqlx, telemetry and the command line live here; the actors,
//! protocols and tools live in `exai-actors`.

pub mod app;
pub mod bench;
pub mod blob;
pub mod cleanup_cli;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod health_cli;
pub mod providers;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod term;
pub mod watchers;
pub mod wiring;
pub mod wiring_files;
