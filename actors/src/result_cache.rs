//! Bounded, TTL-limited cache of finished legacy `call_tool_res` frames.
//!
//! Keyed by (session id, request id): a client that resends a finished request id (after a
//! reconnect, say) gets the same terminal reply again instead of a second execution. The
//! cache holds at most `capacity` entries; the oldest are evicted first, and entries older
//! than the TTL are never served.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

type Key = (String, String);

struct Inner {
    map: HashMap<Key, (Instant, String)>,
    order: VecDeque<(Instant, Key)>,
}

/// The cache.
pub struct ResultCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl ResultCache {
    /// A cache with `capacity` entries living `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> ResultCache {
        ResultCache {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner { map: HashMap::new(), order: VecDeque::new() }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remember a terminal frame.
    pub fn put(&self, session: &str, request_id: &str, frame: String) {
        let now = Instant::now();
        let key = (session.to_string(), request_id.to_string());
        let mut g = self.lock();
        g.map.insert(key.clone(), (now, frame));
        g.order.push_back((now, key));
        while g.map.len() > self.capacity || g.order.front().is_some_and(|(t, _)| now.duration_since(*t) > self.ttl) {
            let Some((t, k)) = g.order.pop_front() else { break };
            if g.map.get(&k).is_some_and(|(at, _)| *at == t) {
                g.map.remove(&k);
            }
        }
    }

    /// A stored frame that has not expired.
    pub fn get(&self, session: &str, request_id: &str) -> Option<String> {
        let g = self.lock();
        g.map
            .get(&(session.to_string(), request_id.to_string()))
            .filter(|(t, _)| t.elapsed() <= self.ttl)
            .map(|(_, f)| f.clone())
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_expiring() {
        let c = ResultCache::new(2, Duration::from_secs(60));
        c.put("s", "1", "a".into());
        c.put("s", "2", "b".into());
        c.put("s", "3", "c".into());
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("s", "1"), None);
        assert_eq!(c.get("s", "3").as_deref(), Some("c"));
        assert_eq!(c.get("other", "3"), None);
        let c = ResultCache::new(10, Duration::from_millis(0));
        c.put("s", "1", "a".into());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.get("s", "1"), None);
    }
}
