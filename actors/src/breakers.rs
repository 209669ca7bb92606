//! Circuit-breaker states as health and the dashboard see them.
//!
//! [`BreakerBoard`] (held in `RuntimeState::breakers`) keeps the providers' breaker handles,
//! registered once at start-up, and reads their live state on every snapshot — so it can
//! never disagree with the breakers themselves. `/health/ready`, `/api/overview` and the
//! dashboard read [`BreakerBoard::snapshot`]. An empty board means no provider is
//! configured, and readers show exactly that.

use crate::provider::breaker::BreakerHandle;
pub use crate::provider::breaker::BreakerState;
use serde::Serialize;
use std::sync::RwLock;

/// One provider's breaker as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerStatus {
    /// Provider name.
    pub provider: String,
    /// Current state.
    pub state: BreakerState,
    /// When it last opened (Unix ms), if it ever did.
    pub opened_at_ms: Option<i64>,
    /// Transitions so far.
    pub transitions: u64,
}

/// Every provider's breaker.
#[derive(Default)]
pub struct BreakerBoard {
    handles: RwLock<Vec<BreakerHandle>>,
}

impl BreakerBoard {
    /// Add a provider's breaker (at start-up).
    pub fn register(&self, handle: BreakerHandle) {
        self.handles.write().unwrap_or_else(|p| p.into_inner()).push(handle);
    }

    /// Every breaker's current state, by provider name.
    pub fn snapshot(&self) -> Vec<BreakerStatus> {
        let mut out: Vec<BreakerStatus> = self
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|h| {
                let s = h.snapshot();
                BreakerStatus {
                    provider: s.provider,
                    state: s.state,
                    opened_at_ms: s.opened_at_ms,
                    transitions: s.transitions,
                }
            })
            .collect();
        out.sort_by(|a, b| a.provider.cmp(&b.provider));
        out
    }

    /// True when at least one breaker exists and every one is open: no provider can serve.
    pub fn all_open(&self) -> bool {
        let s = self.snapshot();
        !s.is_empty() && s.iter().all(|e| e.state == BreakerState::Open)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::metrics::Metrics;
    use crate::provider::breaker::BreakerConfig;

    #[test]
    fn board_reads_live_breaker_states() {
        let m = Metrics::new().unwrap();
        let b = BreakerBoard::default();
        assert!(b.snapshot().is_empty());
        assert!(!b.all_open(), "an empty board is not 'all open'");
        let cfg = BreakerConfig { consecutive_failures: 1, ..BreakerConfig::default() };
        let kimi = BreakerHandle::new("kimi", cfg, &m);
        b.register(kimi.clone());
        b.register(BreakerHandle::new("glm", cfg, &m));
        assert!(b.snapshot().iter().all(|s| s.state == BreakerState::Closed));
        kimi.try_acquire().unwrap().failure();
        let snap = b.snapshot();
        assert_eq!(
            snap.iter().map(|s| (s.provider.as_str(), s.state)).collect::<Vec<_>>(),
            [("glm", BreakerState::Closed), ("kimi", BreakerState::Open)]
        );
        assert!(!b.all_open());
    }
}
