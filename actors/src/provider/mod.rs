//! Providers: the types and ports for talking to AI vendors, the per-provider actor with its
//! circuit breaker, retries and limits, model routing, and the service tools call.

pub mod actor;
pub mod breaker;
pub mod lane;
pub mod payload;
pub mod retry;
pub mod router;
pub mod service;
pub mod transport;
pub mod types;
