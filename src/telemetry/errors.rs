//! The tracing layer that feeds the error watcher: every ERROR event (except the watcher's
//! own) is formatted like the activity ring formats it and pushed into the
//! [`ErrorQueue`], which never blocks: a full queue drops the event and counts it.

use super::ring::Fields;
use exai_actors::env::now_ms;
use exai_actors::watcher::errors::{ErrorEvent, ErrorQueue, OWN_TARGET};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Forwards ERROR events to the error watcher's queue.
pub struct ErrorLayer(pub ErrorQueue);

impl<S: Subscriber> Layer<S> for ErrorLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() != Level::ERROR || meta.target().starts_with(OWN_TARGET) {
            return;
        }
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.0.push(ErrorEvent { at_ms: now_ms(), target: meta.target().to_string(), message: f.0.trim().to_string() });
    }
}
