//! Lock-free admission limits: in-flight call slots and connection counts.
//!
//! These sit on the hot path of every call, so they are atomics (and, for per-IP connection
//! counts, one short mutex taken only at connect and disconnect), never an actor. Every
//! acquisition returns an RAII guard: a cancelled, timed-out or panicking call drops its guard
//! and the slot comes back, so nothing can leak.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A counting limit with fail-fast acquisition.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    used: AtomicUsize,
}

/// A held slot of a [`Limiter`]; released on drop.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.used.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limiter {
    /// A limit of `max` concurrent holders.
    pub fn new(max: usize) -> Arc<Limiter> {
        Arc::new(Limiter { max, used: AtomicUsize::new(0) })
    }

    /// Take a slot now or fail at once.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            if cur >= self.max {
                return None;
            }
            match self.used.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(Permit { limiter: Arc::clone(self) }),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Slots in use.
    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnLimitError {
    /// Too many connections overall.
    #[error("too many connections ({current}/{max})")]
    Global {
        /// Open now.
        current: usize,
        /// Limit.
        max: usize,
    },
    /// Too many from one address.
    #[error("too many connections from your IP ({current}/{max})")]
    PerIp {
        /// Open now from this IP.
        current: usize,
        /// Limit.
        max: usize,
    },
}

#[derive(Debug)]
struct ConnInner {
    max_total: usize,
    max_per_ip: usize,
    total: AtomicUsize,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Counts open connections globally and per IP.
#[derive(Debug, Clone)]
pub struct ConnectionTracker(Arc<ConnInner>);

/// A counted connection; uncounted on drop.
#[derive(Debug)]
pub struct ConnGuard {
    tracker: ConnectionTracker,
    ip: IpAddr,
}

impl ConnectionTracker {
    /// New tracker with the two limits.
    pub fn new(max_total: usize, max_per_ip: usize) -> ConnectionTracker {
        ConnectionTracker(Arc::new(ConnInner {
            max_total,
            max_per_ip,
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }))
    }

    /// Admit a connection from `ip` or say which limit refuses it.
    pub fn try_admit(&self, ip: IpAddr) -> Result<ConnGuard, ConnLimitError> {
        let mut map = self.0.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let total = self.0.total.load(Ordering::Acquire);
        if total >= self.0.max_total {
            return Err(ConnLimitError::Global { current: total, max: self.0.max_total });
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= self.0.max_per_ip {
            return Err(ConnLimitError::PerIp { current: *n, max: self.0.max_per_ip });
        }
        *n += 1;
        self.0.total.fetch_add(1, Ordering::AcqRel);
        Ok(ConnGuard { tracker: self.clone(), ip })
    }

    /// Open connections.
    pub fn total(&self) -> usize {
        self.0.total.load(Ordering::Acquire)
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut map = self.tracker.0.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.tracker.0.total.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn permits_come_back_on_drop() {
        let l = Limiter::new(2);
        let a = l.try_acquire().unwrap();
        let _b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(a);
        assert_eq!(l.in_use(), 1);
        assert!(l.try_acquire().is_some());
    }

    #[test]
    fn per_ip_and_global_limits() {
        let t = ConnectionTracker::new(3, 2);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let ip2: IpAddr = "127.0.0.2".parse().unwrap();
        let g1 = t.try_admit(ip).unwrap();
        let _g2 = t.try_admit(ip).unwrap();
        assert!(matches!(t.try_admit(ip), Err(ConnLimitError::PerIp { .. })));
        let _g3 = t.try_admit(ip2).unwrap();
        assert!(matches!(t.try_admit(ip2), Err(ConnLimitError::Global { .. })));
        drop(g1);
        assert_eq!(t.total(), 2);
        assert!(t.try_admit(ip).is_ok());
    }
}
