//! The breaker's sliding window: request and failure counts over the last `window`, kept in
//! a fixed ring of time buckets (so memory does not grow with traffic). The window covers
//! between `(BUCKETS - 1) / BUCKETS` and all of `window`, depending on where in the current
//! bucket `now` falls.

use std::time::{Duration, Instant};

/// Buckets per window.
pub(super) const BUCKETS: u64 = 20;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Bucket number + 1; 0 = never used.
    tag: u64,
    requests: u32,
    failures: u32,
}

/// Counts over a sliding window.
#[derive(Debug)]
pub(super) struct Window {
    base: Instant,
    bucket_ms: u64,
    slots: [Slot; BUCKETS as usize],
}

impl Window {
    /// An empty window of length `window`, with bucket numbers counted from `base`.
    pub(super) fn new(window: Duration, base: Instant) -> Window {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        Window { base, bucket_ms: window_ms.div_ceil(BUCKETS), slots: [Slot::default(); BUCKETS as usize] }
    }

    fn bucket(&self, now: Instant) -> u64 {
        let ms = u64::try_from(now.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX);
        ms / self.bucket_ms
    }

    fn live(&self, slot: &Slot, current: u64) -> bool {
        slot.tag != 0 && slot.tag - 1 <= current && (slot.tag - 1).saturating_add(BUCKETS) > current
    }

    /// Count one finished request.
    pub(super) fn record(&mut self, now: Instant, failed: bool) {
        let current = self.bucket(now);
        let idx = usize::try_from(current % BUCKETS).unwrap_or(0);
        let slot = &mut self.slots[idx];
        if slot.tag != current + 1 {
            *slot = Slot { tag: current + 1, requests: 0, failures: 0 };
        }
        slot.requests = slot.requests.saturating_add(1);
        if failed {
            slot.failures = slot.failures.saturating_add(1);
        }
    }

    /// (requests, failures) within the window ending at `now`.
    pub(super) fn totals(&self, now: Instant) -> (u32, u32) {
        let current = self.bucket(now);
        self.slots
            .iter()
            .filter(|s| self.live(s, current))
            .fold((0u32, 0u32), |(r, f), s| (r.saturating_add(s.requests), f.saturating_add(s.failures)))
    }

    /// Forget everything.
    pub(super) fn clear(&mut self) {
        self.slots = [Slot::default(); BUCKETS as usize];
    }
}
