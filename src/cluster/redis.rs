//! [`RedisPort`]: the core's [`ClusterPort`] over Redis (or Valkey, or a Redis Cluster).
//!
//! Keys, all under one hash tag `{<cluster.key_prefix>}` (one slot in a Redis Cluster):
//! - `…:lim:<limit>` — sorted set of leases (`<node>|<n>` scored by expiry, server ms);
//! - `…:bucket:<bucket>` — token bucket hash (`t` tokens, `at` last refill);
//! - `…:nodes` (expiry set) and `…:nodes:info` (id → JSON) — the announcements;
//! - `…:brk:<provider>` — present while that provider's breaker is open, expiring when it
//!   would start probing; changes are published on the channel `…:breaker`.
//!
//! Every command runs under `cluster.command_timeout_ms`. Releases, breaker publications and
//! token debits are queued to background tasks (never awaited on the request path); lease
//! renewal, the node announcement and the breaker resync run on the heartbeat.

use super::scripts;
use exai_actors::cluster::{
    Admission, ClusterError, ClusterMetrics, ClusterPort, LeaseRelease, LeaseSet, NodeInfo, SharedBucket, SharedLimit,
};
use exai_actors::provider::breaker::{BreakerHandle, BreakerObserver, BreakerState};
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Static settings of the adapter.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// This node's id.
    pub node_id: String,
    /// Key prefix (inside the hash tag).
    pub prefix: String,
    /// Lease lifetime.
    pub lease: Duration,
    /// Timeout of each command.
    pub timeout: Duration,
}

enum Background {
    Release(Vec<String>, String),
    Breaker(String, BreakerState, Duration),
    Debit(String, u64, u64),
}

pub(crate) struct Inner {
    pub(crate) settings: RedisSettings,
    pub(crate) conn: ConnectionManager,
    client: redis::Client,
    scripts: Scripts,
    /// Leases this node holds: member → keys.
    held: Mutex<HashMap<String, Vec<String>>>,
    next: AtomicU64,
    tx: mpsc::UnboundedSender<Background>,
    pub(crate) metrics: ClusterMetrics,
}

struct Scripts {
    admit: Script,
    renew: Script,
    debit: Script,
    heartbeat: Script,
    nodes: Script,
}

/// The Redis adapter (cheap to clone).
#[derive(Clone)]
pub struct RedisPort {
    pub(crate) inner: Arc<Inner>,
}

fn err(e: redis::RedisError) -> ClusterError {
    if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        ClusterError::Unreachable(e.to_string())
    } else {
        ClusterError::Command(e.to_string())
    }
}

impl Inner {
    pub(crate) fn key(&self, rest: &str) -> String {
        format!("{{{}}}:{rest}", self.settings.prefix)
    }

    /// Run `f` under the command timeout.
    pub(crate) async fn timed<T, F>(&self, f: F) -> Result<T, ClusterError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.settings.timeout, f).await {
            Ok(r) => r.map_err(err),
            Err(_) => {
                Err(ClusterError::Unreachable(format!("no answer within {} ms", self.settings.timeout.as_millis())))
            }
        }
    }

    fn count(&self, op: &str) {
        self.metrics.redis_errors.with_label_values(&[op]).inc();
    }
}

impl LeaseRelease for Inner {
    fn release(&self, member: &str) {
        let keys = self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(member);
        if let Some(keys) = keys {
            self.metrics.leases_held.dec();
            let _ = self.tx.send(Background::Release(keys, member.to_string()));
        }
    }
}

impl RedisPort {
    /// Connect (lazily: a Redis that is down at start-up is retried on use) and start the
    /// background tasks on the current runtime.
    pub fn connect(url: &str, settings: RedisSettings, metrics: ClusterMetrics) -> Result<RedisPort, ClusterError> {
        let client = redis::Client::open(url).map_err(|e| ClusterError::Command(e.to_string()))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(settings.timeout))
            .set_response_timeout(Some(settings.timeout))
            .set_number_of_retries(2)
            .set_max_delay(settings.timeout);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), cfg).map_err(err)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            settings,
            conn,
            client,
            scripts: Scripts {
                admit: Script::new(scripts::ADMIT),
                renew: Script::new(scripts::RENEW),
                debit: Script::new(scripts::DEBIT),
                heartbeat: Script::new(scripts::HEARTBEAT),
                nodes: Script::new(scripts::NODES),
            },
            held: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            tx,
            metrics,
        });
        actix_rt::spawn(background(Arc::clone(&inner), rx));
        Ok(RedisPort { inner })
    }

    /// Check that Redis answers (start-up message only; the node runs either way).
    pub async fn ping(&self) -> Result<(), ClusterError> {
        let mut c = self.inner.conn.clone();
        self.inner.timed(redis::cmd("PING").query_async::<String>(&mut c)).await.map(|_| ())
    }

    /// Announce this node (`info` with a fresh heartbeat time); returns the live node count.
    pub async fn announce(&self, info: &NodeInfo) -> Result<u64, ClusterError> {
        let json = serde_json::to_string(info).map_err(|e| ClusterError::Command(e.to_string()))?;
        let ttl = self.inner.settings.lease.as_millis() as u64;
        let mut c = self.inner.conn.clone();
        let mut inv = self.inner.scripts.heartbeat.prepare_invoke();
        inv.key(self.inner.key("nodes")).key(self.inner.key("nodes:info")).arg(&info.id).arg(json).arg(ttl);
        self.inner.timed(inv.invoke_async::<u64>(&mut c)).await
    }

    /// Remove this node's announcement (orderly shutdown).
    pub async fn leave(&self) -> Result<(), ClusterError> {
        let id = self.inner.settings.node_id.clone();
        let mut c = self.inner.conn.clone();
        let mut p = redis::pipe();
        p.cmd("ZREM").arg(self.inner.key("nodes")).arg(&id).ignore();
        p.cmd("HDEL").arg(self.inner.key("nodes:info")).arg(&id).ignore();
        self.inner.timed(p.query_async::<()>(&mut c)).await
    }

    /// Push the expiry of every lease this node holds forward; returns how many were renewed
    /// and how many were found already expired.
    pub async fn renew(&self) -> Result<(usize, usize), ClusterError> {
        let pairs: Vec<(String, String)> = {
            let held = self.inner.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            held.iter().flat_map(|(m, keys)| keys.iter().map(move |k| (k.clone(), m.clone()))).collect()
        };
        if pairs.is_empty() {
            return Ok((0, 0));
        }
        let mut inv = self.inner.scripts.renew.prepare_invoke();
        inv.arg(self.inner.settings.lease.as_millis() as u64);
        for (k, m) in &pairs {
            inv.key(k).arg(m);
        }
        let mut c = self.inner.conn.clone();
        let n: usize = self.inner.timed(inv.invoke_async(&mut c)).await?;
        Ok((n, pairs.len().saturating_sub(n)))
    }

    /// Bring local breakers in line with the open-breaker keys (missed messages, a node that
    /// joined late).
    pub async fn resync_breakers(&self, breakers: &[BreakerHandle]) -> Result<(), ClusterError> {
        if breakers.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        for b in breakers {
            p.cmd("PTTL").arg(self.inner.key(&format!("brk:{}", b.provider())));
        }
        let mut c = self.inner.conn.clone();
        let ttls: Vec<i64> = self.inner.timed(p.query_async(&mut c)).await?;
        for (b, ttl) in breakers.iter().zip(ttls) {
            if ttl > 0 && b.state() == BreakerState::Closed {
                b.apply_remote(BreakerState::Open, Duration::from_millis(ttl as u64));
                self.inner.metrics.breaker_messages.with_label_values(&["applied"]).inc();
            }
        }
        Ok(())
    }

    /// Listen for other nodes' breaker changes and apply them (runs until the system stops;
    /// reconnects after a second when the subscription breaks).
    pub async fn listen_breakers(self, breakers: Vec<BreakerHandle>) {
        let channel = self.inner.key("breaker");
        loop {
            match self.inner.client.get_async_pubsub().await {
                Ok(mut ps) => {
                    if ps.subscribe(&channel).await.is_ok() {
                        let _ = self.resync_breakers(&breakers).await;
                        let mut stream = ps.on_message();
                        while let Some(msg) = stream.next().await {
                            let Ok(payload) = msg.get_payload::<String>() else { continue };
                            self.apply_message(&payload, &breakers);
                        }
                    }
                }
                Err(_) => self.inner.count("subscribe"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn apply_message(&self, payload: &str, breakers: &[BreakerHandle]) {
        // `<node>|<provider>|open|<remaining ms>` or `<node>|<provider>|closed|0`.
        let mut it = payload.split('|');
        let (Some(node), Some(provider), Some(state), Some(ms)) = (it.next(), it.next(), it.next(), it.next()) else {
            return;
        };
        if node == self.inner.settings.node_id {
            return;
        }
        let Some(b) = breakers.iter().find(|b| b.provider() == provider) else { return };
        let remaining = Duration::from_millis(ms.parse().unwrap_or(0));
        match state {
            "open" => b.apply_remote(BreakerState::Open, remaining),
            "closed" => b.apply_remote(BreakerState::Closed, Duration::ZERO),
            _ => return,
        }
        tracing::info!(provider, from_node = node, state, "breaker change applied from another node");
        self.inner.metrics.breaker_messages.with_label_values(&["applied"]).inc();
    }
}

impl BreakerObserver for Inner {
    fn changed(&self, provider: &str, to: BreakerState, remaining: Duration) {
        if to != BreakerState::HalfOpen {
            let _ = self.tx.send(Background::Breaker(provider.to_string(), to, remaining));
        }
    }
}

#[async_trait::async_trait]
impl ClusterPort for RedisPort {
    fn node_id(&self) -> &str {
        &self.inner.settings.node_id
    }

    async fn try_admit(&self, limits: &[SharedLimit], buckets: &[SharedBucket]) -> Result<Admission, ClusterError> {
        let inner = &self.inner;
        let member = format!("{}|{}", inner.settings.node_id, inner.next.fetch_add(1, Ordering::Relaxed));
        let keys: Vec<String> = limits.iter().map(|l| inner.key(&format!("lim:{}", l.name))).collect();
        let mut inv = inner.scripts.admit.prepare_invoke();
        for k in &keys {
            inv.key(k);
        }
        for b in buckets {
            inv.key(inner.key(&format!("bucket:{}", b.name)));
        }
        inv.arg(limits.len()).arg(&member).arg(inner.settings.lease.as_millis() as u64);
        for l in limits {
            inv.arg(l.max);
        }
        for b in buckets {
            inv.arg(b.per_minute).arg(b.need.max(1)).arg(b.take);
        }
        let mut c = inner.conn.clone();
        let res: Result<Vec<i64>, ClusterError> = inner.timed(inv.invoke_async(&mut c)).await;
        if let Ok([0, ..]) = res.as_deref() {
            // A fresh lease has its whole lifetime ahead: the next heartbeat renews it.
            inner.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(member.clone(), keys);
            inner.metrics.leases_held.inc();
            return Ok(Admission::Granted(LeaseSet::new(member, Arc::clone(inner) as Arc<dyn LeaseRelease>)));
        }
        match res {
            Ok(v) => match v.as_slice() {
                [1, i, ..] => Ok(Admission::Full(usize::try_from(*i).unwrap_or(0))),
                [2, j, ms, ..] => Ok(Admission::Short(
                    usize::try_from(*j).unwrap_or(0),
                    Duration::from_millis(u64::try_from(*ms).unwrap_or(1).max(1)),
                )),
                other => Err(ClusterError::Command(format!("unexpected admission answer {other:?}"))),
            },
            Err(e) => {
                // The script may have run before the timeout: give the lease back (a no-op if not).
                let _ = inner.tx.send(Background::Release(keys, member));
                Err(e)
            }
        }
    }

    fn debit(&self, bucket: &SharedBucket, tokens: u64) {
        let key = self.inner.key(&format!("bucket:{}", bucket.name));
        let _ = self.inner.tx.send(Background::Debit(key, bucket.per_minute, tokens));
    }

    fn breaker_changed(&self, provider: &str, state: BreakerState, remaining: Duration) {
        self.inner.changed(provider, state, remaining);
    }

    async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError> {
        let mut inv = self.inner.scripts.nodes.prepare_invoke();
        inv.key(self.inner.key("nodes")).key(self.inner.key("nodes:info"));
        let mut c = self.inner.conn.clone();
        let raw: Vec<String> = self.inner.timed(inv.invoke_async(&mut c)).await?;
        let mut out: Vec<NodeInfo> = raw.iter().filter_map(|s| serde_json::from_str(s).ok()).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }
}

/// Releases, breaker publications and debits, in order, off the request path.
async fn background(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Background>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut p = redis::pipe();
        let mut ops = Vec::new();
        let mut debits = Vec::new();
        for item in batch.drain(..) {
            match item {
                Background::Release(keys, member) => {
                    for k in keys {
                        p.cmd("ZREM").arg(k).arg(&member).ignore();
                    }
                    ops.push("release");
                }
                Background::Breaker(provider, state, remaining) => {
                    let key = inner.key(&format!("brk:{provider}"));
                    let ms = remaining.as_millis().max(1) as u64;
                    let node = &inner.settings.node_id;
                    if state == BreakerState::Open {
                        p.cmd("SET").arg(&key).arg(node).arg("PX").arg(ms).ignore();
                        p.cmd("PUBLISH").arg(inner.key("breaker")).arg(format!("{node}|{provider}|open|{ms}")).ignore();
                    } else {
                        p.cmd("DEL").arg(&key).ignore();
                        p.cmd("PUBLISH").arg(inner.key("breaker")).arg(format!("{node}|{provider}|closed|0")).ignore();
                    }
                    inner.metrics.breaker_messages.with_label_values(&["sent"]).inc();
                    ops.push("breaker");
                }
                Background::Debit(key, rate, tokens) => debits.push((key, rate, tokens)),
            }
        }
        let mut c = inner.conn.clone();
        if !ops.is_empty() && inner.timed(p.query_async::<()>(&mut c)).await.is_err() {
            for op in ops {
                inner.count(op);
            }
        }
        for (key, rate, tokens) in debits {
            let mut inv = inner.scripts.debit.prepare_invoke();
            inv.key(key).arg(rate).arg(tokens);
            if inner.timed(inv.invoke_async::<i64>(&mut c)).await.is_err() {
                inner.count("debit");
            }
        }
    }
}
