//! The idle-connections preset: open many MCP WebSocket connections (each initialised, then
//! silent apart from answering pings), hold them, and report how much resident memory the
//! server gained per connection.

use super::limits;
use super::progress::Live;
use super::rss::RssSource;
use super::wire::{self, Incoming, Target};
use super::BenchError;
use futures_util::StreamExt;
use serde::Serialize;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Connections opened at once.
const CONNECT_CONCURRENCY: usize = 200;

/// What the preset measured.
#[derive(Debug, Clone, Serialize)]
pub struct IdleReport {
    /// Connections asked for.
    pub requested: usize,
    /// Connections that completed the handshake.
    pub established: u64,
    /// Connections that failed to connect.
    pub failed: u64,
    /// Established connections the server closed while they were held.
    pub closed_early: u64,
    /// Seconds held after all were open.
    pub hold_seconds: f64,
    /// Server RSS before connecting, bytes.
    pub rss_before_bytes: Option<u64>,
    /// Server RSS with every connection open (after a 2 s settle), bytes.
    pub rss_after_bytes: Option<u64>,
    /// Server RSS at the end of the hold, bytes.
    pub rss_end_bytes: Option<u64>,
    /// `(after − before) / established`, bytes.
    pub rss_per_connection_bytes: Option<f64>,
    /// The client's open-file limit after raising it.
    pub nofile_limit: Option<u64>,
}

impl IdleReport {
    /// One line for humans.
    pub fn line(&self) -> String {
        let mb = |b: Option<u64>| b.map_or("?".into(), |b| format!("{:.1} MB", b as f64 / 1e6));
        format!(
            "idle: {}/{} connections held {:.0} s ({} failed, {} closed early); server RSS {} -> {} (end {}), {} per connection",
            self.established,
            self.requested,
            self.hold_seconds,
            self.failed,
            self.closed_early,
            mb(self.rss_before_bytes),
            mb(self.rss_after_bytes),
            mb(self.rss_end_bytes),
            self.rss_per_connection_bytes.map_or("?".into(), |b| format!("{:.1} KB", b / 1e3))
        )
    }
}

/// RSS growth per connection, bytes.
pub fn per_connection(before: Option<u64>, after: Option<u64>, established: u64) -> Option<f64> {
    match (before, after) {
        (Some(b), Some(a)) if established > 0 => Some((a as f64 - b as f64) / established as f64),
        _ => None,
    }
}

async fn keep(mut ws: wire::Framed, t: Target, mut stop: watch::Receiver<bool>, closed: Rc<Cell<u64>>) {
    loop {
        tokio::select! {
            v = wire::recv_json(&mut ws) => match v {
                None => {
                    closed.set(closed.get() + 1);
                    return;
                }
                Some(v) => {
                    if let Incoming::Ping(id) = wire::classify(t.protocol, &v) {
                        wire::pong(&mut ws, id).await;
                    }
                }
            },
            _ = stop.changed() => return,
        }
    }
}

/// Opens `n` connections, holds them `hold` seconds, reports RSS per connection.
pub fn run(
    t: &Target,
    n: usize,
    hold: f64,
    rss: Option<&RssSource>,
    live: Arc<Live>,
) -> Result<IdleReport, BenchError> {
    let nofile_limit = limits::raise_nofile();
    let read = || rss.and_then(RssSource::read);
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = read();
    let t = t.clone();
    actix_rt::System::new().block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let closed = Rc::new(Cell::new(0u64));
        let mut conns = futures_util::stream::iter(0..n)
            .map(|_| {
                live.sent.fetch_add(1, Ordering::Relaxed);
                wire::connect(&t)
            })
            .buffer_unordered(CONNECT_CONCURRENCY);
        let (mut established, mut failed) = (0u64, 0u64);
        while let Some(c) = conns.next().await {
            match c {
                Ok(ws) => {
                    established += 1;
                    live.done.fetch_add(1, Ordering::Relaxed);
                    actix_rt::spawn(keep(ws, t.clone(), stop_rx.clone(), closed.clone()));
                }
                Err(_) => {
                    failed += 1;
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        actix_rt::time::sleep(Duration::from_secs(2)).await;
        let rss_after = read();
        actix_rt::time::sleep(Duration::from_secs_f64(hold.max(0.0))).await;
        let rss_end = read();
        let _ = stop_tx.send(true);
        Ok(IdleReport {
            requested: n,
            established,
            failed,
            closed_early: closed.get(),
            hold_seconds: hold,
            rss_before_bytes: rss_before,
            rss_after_bytes: rss_after,
            rss_end_bytes: rss_end,
            rss_per_connection_bytes: per_connection(rss_before, rss_after, established),
            nofile_limit,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_divides_the_growth() {
        assert_eq!(per_connection(Some(40_000_000), Some(260_000_000), 10_000), Some(22_000.0));
        assert_eq!(per_connection(Some(1), Some(2), 0), None);
        assert_eq!(per_connection(None, Some(2), 5), None);
    }
}
