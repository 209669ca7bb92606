//! Telemetry: tracing set-up (human or JSON lines on stderr) and the in-memory activity ring.
//!
//! The [`ActivityRing`] is a tracing layer that keeps the most recent INFO/WARN/ERROR events
//! (message and fields, formatted) in a bounded ring; the `activity` and `status` tools read
//! it through the `ActivitySource` port. Nothing the code logs contains file contents, API
//! keys or tokens, so the ring holds none either.
//!
//! [`ErrorLayer`] forwards ERROR events to the error watcher's bounded queue (never
//! blocking the logging thread). Calls run inside a `call` span carrying `session`,
//! `request`, `tool` and `protocol`, so every line logged during a call names them: the
//! human format prints the span before the message, the JSON format adds `span`/`spans`.
//!
//! Client-caused errors of the HTTP stack (a malformed request and the like) are logged as
//! warnings by [`client::ClientErrorLayer`], never at ERROR, so the error watcher ignores
//! them.

mod client;
mod errors;
mod ring;

pub use errors::ErrorLayer;
pub use ring::ActivityRing;

use exai_actors::watcher::errors::ErrorQueue;

use std::sync::Arc;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Errors setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The level directive does not parse.
    #[error("invalid logging.level '{0}': {1}")]
    BadFilter(String, String),
    /// A global subscriber was already installed.
    #[error("tracing is already initialised")]
    AlreadySet,
}

/// Install the global subscriber. `format` is `human` or `json`; `errors`, when given,
/// receives every ERROR event for the error watcher. Returns the activity ring.
pub fn init(
    level: &str,
    format: &str,
    ring_capacity: usize,
    errors: Option<ErrorQueue>,
) -> Result<Arc<ActivityRing>, TelemetryError> {
    let filter = EnvFilter::try_new(level).map_err(|e| TelemetryError::BadFilter(level.to_string(), e.to_string()))?;
    let ring = Arc::new(ActivityRing::new(ring_capacity));
    let print_warn = filter.max_level_hint().is_none_or(|l| l >= tracing::level_filters::LevelFilter::WARN);
    let client = client::ClientErrorLayer { ring: Arc::clone(&ring), json: format == "json", print: print_warn };
    let fmt_layer = if format == "json" {
        fmt::layer().json().with_writer(std::io::stderr).with_current_span(true).boxed()
    } else {
        fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_target(true)
            .boxed()
    };
    let not_client = || tracing_subscriber::filter::filter_fn(|m| !client::client_caused(m));
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer.with_filter(not_client()))
        .with(ring::RingLayer(Arc::clone(&ring)).with_filter(not_client()))
        .with(errors.map(ErrorLayer).with_filter(not_client()))
        .with(client)
        .try_init()
        .map_err(|_| TelemetryError::AlreadySet)?;
    Ok(ring)
}
