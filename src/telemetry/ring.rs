//! The activity ring: a bounded buffer of recent log events, filled by a tracing layer and
//! read by the `activity` tool (and later the dashboard).

use exai_actors::env::now_ms;
use exai_actors::ports::{ActivityEvent, ActivityQuery, ActivitySource};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Recent events, oldest first, at most `capacity`.
pub struct ActivityRing {
    capacity: usize,
    events: Mutex<VecDeque<ActivityEvent>>,
}

impl ActivityRing {
    /// An empty ring.
    pub fn new(capacity: usize) -> ActivityRing {
        ActivityRing { capacity: capacity.max(1), events: Mutex::new(VecDeque::new()) }
    }

    /// Add an event, evicting the oldest when full.
    pub fn push(&self, ev: ActivityEvent) {
        let mut g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() >= self.capacity {
            g.pop_front();
        }
        g.push_back(ev);
    }
}

fn rank(level: &str) -> u8 {
    match level.to_ascii_lowercase().as_str() {
        "error" => 1,
        "warn" | "warning" => 2,
        "info" => 3,
        "debug" => 4,
        _ => 5,
    }
}

impl ActivitySource for ActivityRing {
    fn recent(&self, q: &ActivityQuery) -> Vec<ActivityEvent> {
        let g = self.events.lock().unwrap_or_else(|p| p.into_inner());
        let max_rank = q.min_level.as_deref().map(rank).unwrap_or(5);
        let needle = q.contains.as_ref().map(|s| s.to_lowercase());
        let mut out: Vec<ActivityEvent> = g
            .iter()
            .rev()
            .filter(|e| rank(&e.level) <= max_rank)
            .filter(|e| q.since_ms.is_none_or(|s| e.at_ms >= s))
            .filter(|e| q.until_ms.is_none_or(|u| e.at_ms <= u))
            .filter(|e| {
                needle.as_ref().is_none_or(|n| {
                    e.message.to_lowercase().contains(n.as_str()) || e.target.to_lowercase().contains(n.as_str())
                })
            })
            .take(q.limit.max(1))
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// Formats an event's message and fields as `message key=value ...`.
pub(crate) struct Fields(pub(crate) String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
            if !self.0.is_empty() {
                self.0.insert(0, ' ');
            }
        } else {
            let _ = write!(self.0, " {}={:?}", field.name(), value);
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={}", field.name(), value);
        }
    }
}

/// The tracing layer feeding a ring with INFO and above.
pub struct RingLayer(pub Arc<ActivityRing>);

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() > Level::INFO {
            return;
        }
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.0.push(ActivityEvent {
            at_ms: now_ms(),
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: f.0.trim().to_string(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(level: &str, msg: &str, at: i64) -> ActivityEvent {
        ActivityEvent { at_ms: at, level: level.into(), target: "t".into(), message: msg.into() }
    }

    #[test]
    fn filters_and_bounds() {
        let r = ActivityRing::new(3);
        r.push(ev("INFO", "a", 1));
        r.push(ev("WARN", "b", 2));
        r.push(ev("ERROR", "c", 3));
        r.push(ev("INFO", "d", 4));
        let all = r.recent(&ActivityQuery { limit: 10, ..Default::default() });
        assert_eq!(all.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(), vec!["b", "c", "d"]);
        let warn = r.recent(&ActivityQuery { limit: 10, min_level: Some("warn".into()), ..Default::default() });
        assert_eq!(warn.len(), 2);
        let c = r.recent(&ActivityQuery { limit: 10, contains: Some("D".into()), ..Default::default() });
        assert_eq!(c.len(), 1);
        let since = r.recent(&ActivityQuery { limit: 1, since_ms: Some(3), ..Default::default() });
        assert_eq!(since[0].message, "d");
    }
}
