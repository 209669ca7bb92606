//! Client-caused errors of the HTTP stack, logged as warnings.
//!
//! actix-http logs what a peer did wrong at ERROR: a malformed request line or header
//! ("stream error: request parse error: invalid Header provided"), a broken payload, a
//! connection that vanished mid-write. Anyone who can reach the port can produce them, so at
//! ERROR they would become error-watcher records (and, with AI analysis on, model calls). The
//! request never reached exai's handlers, and there is nothing for the operator to fix.
//!
//! tracing cannot change an event's level, and an event emitted inside a subscriber is
//! dropped, so [`ClientErrorLayer`] writes these events itself: one WARN line on stderr in
//! the configured format (when WARN is enabled) and a WARN entry in the activity ring. Every
//! other layer skips them ([`client_caused`]).

use super::ring::{ActivityRing, Fields};
use exai_actors::env::now_ms;
use exai_actors::ports::ActivityEvent;
use std::io::Write;
use std::sync::Arc;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// ERROR events of actix-http's HTTP/1 connection handling (dispatcher, decoder): about a
/// peer's connection, never about exai's own work.
pub fn client_caused(meta: &Metadata<'_>) -> bool {
    *meta.level() == Level::ERROR && meta.target().starts_with("actix_http::h1")
}

/// Logs [`client_caused`] events as warnings (see the module doc).
pub struct ClientErrorLayer {
    /// The activity ring the other events go to.
    pub ring: Arc<ActivityRing>,
    /// `json` lines instead of the human format.
    pub json: bool,
    /// Whether WARN lines are printed at all (the configured level allows them).
    pub print: bool,
}

impl<S: Subscriber> Layer<S> for ClientErrorLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if !client_caused(meta) {
            return;
        }
        let mut f = Fields(String::new());
        event.record(&mut f);
        let message = f.0.trim().to_string();
        if self.print {
            let mut ts = String::new();
            let _ = SystemTime.format_time(&mut Writer::new(&mut ts));
            let line = if self.json {
                serde_json::json!({
                    "timestamp": ts, "level": "WARN", "fields": { "message": message }, "target": meta.target(),
                })
                .to_string()
            } else {
                format!("{ts}  WARN {}: {message}", meta.target())
            };
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        self.ring.push(ActivityEvent {
            at_ms: now_ms(),
            level: "WARN".into(),
            target: meta.target().to_string(),
            message,
        });
    }
}
