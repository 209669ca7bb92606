//! Files: the upload gateway, content-addressed deduplication and the staged cleanup.
//!
//! Modules: `ports` (the [`ports::BlobStore`] and [`ports::FileRegistry`] ports and their
//! records), `policy` (the one upload policy table: embed / direct / gateway / blob-only),
//! `hash` (sha256 + xxh3 of a file in one streaming pass, off the actor threads, optionally
//! feeding an upload body and a blob store from the same read), `dedup` (the
//! [`dedup::DedupManager`] actor: (provider, sha256) reference counting and in-flight
//! request dedup), `resolve` (its leader's hash-first / upload-first work), `gateway` (what
//! file tools call: policy → dedup → provider and blob store),
//! `cleanup` (the [`cleanup::CleanupCoordinator`] actor) and `cleanup_run` (its staged run).
//! File contents are never logged; messages name paths, sizes and ids only.

pub mod cleanup;
pub mod cleanup_run;
pub mod dedup;
pub mod gateway;
pub mod hash;
pub mod policy;
pub mod ports;
mod resolve;
