//! Integration tests for the `exai` binary, compiled as ONE test binary (one link, shared
//! harness). Each module drives a real `exai serve` process started by [`common::server`]
//! or a real database; external clients (Python MCP SDK, official conformance suite) are
//! installed by `scripts/test.sh`, which is how these tests are meant to be run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod ai;
mod bench;
mod client;
mod cluster;
mod common;
mod conformance;
mod dashboard;
mod faults_e2e;
mod files;
mod legacy;
mod lifecycle;
mod malformed;
mod mcp_ws;
mod metrics;
mod ops;
mod probe;
mod prompts;
mod providers;
mod resume;
mod store;
mod watcher;
