//! Watchers: the error watcher (ERROR log events → deduplicated, optionally analysed
//! records) and the AI auditor (samples finished tool calls → observations), with the
//! pieces they share: error normalisation, the hourly call budget, prompts and parsing.

pub mod analysis;
pub mod auditor;
pub mod budget;
pub mod errors;
pub mod normalize;
