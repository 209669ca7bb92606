//! Tests of the AI tools against fake providers (see `testkit`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chat;
mod consensus;
mod local;
mod registry;
mod vendor;
mod workflow;
