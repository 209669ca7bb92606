//! Cluster coordination: the port through which several nodes share vendor limits, rate
//! buckets and breaker state, and the [`ClusterGate`] provider calls pass through.
//!
//! The core knows nothing about Redis. [`ClusterPort`] is implemented by the adapter crate
//! (`src/cluster/`); the gate holds an optional port, so a single node (no
//! `cluster.redis_url`) runs the gate only when it has `rpm` / `tpm` buckets, and then with
//! local buckets alone.
//!
//! Admission of one provider request through the gate (after the node's own semaphores):
//! one port call that takes, all or nothing, a lease on the cluster-wide global limit, on the
//! provider's limit and — for a half-open probe — on the provider's probe limit, and one
//! token from its `rpm` bucket (and checks that its `tpm` bucket is not in debt). A full
//! limit is polled until the caller's deadline (the same bounded wait as on one node); an
//! empty bucket is waited for when its tokens come back before the deadline; otherwise the
//! caller gets the typed refusal that becomes `OVER_CAPACITY` with `retry_after`. Leases are
//! released when the returned [`LeaseSet`] is dropped (however the request ends) and expire
//! on their own when their node dies.
//!
//! When the port fails (the store is unreachable or slow), [`RedisDownPolicy`] decides:
//! `FailClosed` refuses the request, `Local` admits it on the node's own limits and buckets,
//! logs a warning (at most every 10 s) and counts `exai_cluster_local_fallbacks_total`.

use crate::provider::breaker::BreakerState;
use async_trait::async_trait;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A failure of the cluster store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// The store did not answer in time or the connection is down.
    #[error("cluster store unreachable: {0}")]
    Unreachable(String),
    /// The store answered with an error.
    #[error("cluster store error: {0}")]
    Command(String),
}

/// One counting limit shared by the cluster (a set of leases, at most `max`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLimit {
    /// Limit name, e.g. `global`, `provider:glm`, `probe:glm` (the adapter maps it to a key).
    pub name: String,
    /// Leases allowed at once.
    pub max: u32,
}

/// One token bucket shared by the cluster: `per_minute` tokens, refilled continuously.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedBucket {
    /// Bucket name, e.g. `rpm:glm`, `tpm:glm`.
    pub name: String,
    /// Capacity, refilled over one minute.
    pub per_minute: u64,
    /// Tokens that must be present to pass (at least 1).
    pub need: u64,
    /// Tokens taken on admission (1 for requests, 0 for tokens, which are debited afterwards).
    pub take: u64,
}

/// The port's answer to one admission attempt.
pub enum Admission {
    /// Every lease and token was taken.
    Granted(LeaseSet),
    /// The limit at this index of the request is full.
    Full(usize),
    /// The bucket at this index is short; enough tokens are back after `wait`.
    Short(usize, Duration),
}

/// Releases the leases of a [`LeaseSet`]; implemented by the adapter (never blocks).
pub trait LeaseRelease: Send + Sync {
    /// Give back the leases of `member` (fire and forget).
    fn release(&self, member: &str);
}

/// Leases held by one request; released on drop.
pub struct LeaseSet {
    member: String,
    releaser: Arc<dyn LeaseRelease>,
}

impl LeaseSet {
    /// A set named `member` that `releaser` gives back on drop.
    pub fn new(member: String, releaser: Arc<dyn LeaseRelease>) -> LeaseSet {
        LeaseSet { member, releaser }
    }

    /// The lease member id (node id and a counter).
    pub fn member(&self) -> &str {
        &self.member
    }
}

impl std::fmt::Debug for LeaseSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseSet").field("member", &self.member).finish()
    }
}

impl Drop for LeaseSet {
    fn drop(&mut self) {
        self.releaser.release(&self.member);
    }
}

/// One node as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NodeInfo {
    /// Node id (`cluster.node_id`).
    pub id: String,
    /// Address clients reach it at (`host:port`).
    pub address: String,
    /// Start time, Unix ms.
    pub started_ms: i64,
    /// exai version.
    pub version: String,
    /// Tool calls in flight at its last heartbeat.
    pub inflight: u64,
    /// Time of its last heartbeat, Unix ms.
    pub heartbeat_ms: i64,
}

/// The cluster store as the core uses it.
#[async_trait]
pub trait ClusterPort: Send + Sync {
    /// This node's id.
    fn node_id(&self) -> &str;
    /// Try once to take a lease on every limit and the tokens of every bucket (all or none).
    async fn try_admit(&self, limits: &[SharedLimit], buckets: &[SharedBucket]) -> Result<Admission, ClusterError>;
    /// Take `tokens` from a bucket after the fact (it may go into debt); fire and forget.
    fn debit(&self, bucket: &SharedBucket, tokens: u64);
    /// Tell the other nodes a breaker moved (fire and forget).
    fn breaker_changed(&self, provider: &str, state: BreakerState, remaining: Duration);
    /// The live nodes.
    async fn nodes(&self) -> Result<Vec<NodeInfo>, ClusterError>;
}

/// What to do when the cluster store cannot be reached (`cluster.on_redis_down`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisDownPolicy {
    /// Refuse provider requests (`OVER_CAPACITY`).
    FailClosed,
    /// Admit them on this node's own limits and buckets, with a warning and a metric.
    Local,
}

/// The cluster metrics (registered only in cluster mode).
#[derive(Clone)]
pub struct ClusterMetrics {
    /// `exai_cluster_redis_errors_total{op}`.
    pub redis_errors: IntCounterVec,
    /// `exai_cluster_local_fallbacks_total`: admissions on local limits because the store failed.
    pub local_fallbacks: IntCounter,
    /// `exai_cluster_refusals_total{reason}`: fail-closed refusals and full limits at the deadline.
    pub refusals: IntCounterVec,
    /// `exai_cluster_admit_seconds`: one admission round trip.
    pub admit_seconds: Histogram,
    /// `exai_cluster_nodes`: live nodes at the last heartbeat.
    pub nodes: IntGauge,
    /// `exai_cluster_leases_held`: leases this node holds.
    pub leases_held: IntGauge,
    /// `exai_cluster_breaker_messages_total{direction}`: breaker changes sent and applied.
    pub breaker_messages: IntCounterVec,
    /// `exai_cluster_node_info{node, version}` = 1: which node this scrape came from (one series).
    pub node_info: prometheus::IntGaugeVec,
}

impl ClusterMetrics {
    /// Register on `r` (names get the registry's `exai_` prefix); label values known in
    /// advance are created at zero.
    pub fn new(r: &Registry, node: &str, version: &str) -> Result<ClusterMetrics, prometheus::Error> {
        let redis_errors = IntCounterVec::new(
            Opts::new("cluster_redis_errors_total", "Cluster store commands that failed or timed out"),
            &["op"],
        )?;
        let local_fallbacks = IntCounter::new(
            "cluster_local_fallbacks_total",
            "Provider admissions decided on local limits because the cluster store failed",
        )?;
        let refusals = IntCounterVec::new(
            Opts::new("cluster_refusals_total", "Provider admissions refused by cluster coordination"),
            &["reason"],
        )?;
        let admit_seconds = Histogram::with_opts(
            HistogramOpts::new("cluster_admit_seconds", "One cluster admission round trip")
                .buckets(vec![0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25]),
        )?;
        let nodes = IntGauge::new("cluster_nodes", "Live cluster nodes at the last heartbeat")?;
        let leases_held = IntGauge::new("cluster_leases_held", "Cluster limit leases this node holds")?;
        let breaker_messages = IntCounterVec::new(
            Opts::new("cluster_breaker_messages_total", "Breaker changes published and applied from other nodes"),
            &["direction"],
        )?;
        let node_info = prometheus::IntGaugeVec::new(
            Opts::new("cluster_node_info", "This node's cluster id and version (always 1)"),
            &["node", "version"],
        )?;
        node_info.with_label_values(&[node, version]).set(1);
        for op in ["admit", "release", "renew", "heartbeat", "debit", "breaker", "nodes", "subscribe"] {
            redis_errors.with_label_values(&[op]);
        }
        for reason in ["full", "rate", "probe_busy", "unavailable"] {
            refusals.with_label_values(&[reason]);
        }
        for d in ["sent", "applied"] {
            breaker_messages.with_label_values(&[d]);
        }
        r.register(Box::new(redis_errors.clone()))?;
        r.register(Box::new(local_fallbacks.clone()))?;
        r.register(Box::new(refusals.clone()))?;
        r.register(Box::new(admit_seconds.clone()))?;
        r.register(Box::new(nodes.clone()))?;
        r.register(Box::new(leases_held.clone()))?;
        r.register(Box::new(breaker_messages.clone()))?;
        r.register(Box::new(node_info.clone()))?;
        Ok(ClusterMetrics {
            redis_errors,
            local_fallbacks,
            refusals,
            admit_seconds,
            nodes,
            leases_held,
            breaker_messages,
            node_info,
        })
    }
}

/// A local token bucket (the single-node form of `rpm` / `tpm`, and the fallback).
#[derive(Debug)]
pub struct LocalBucket {
    per_minute: f64,
    state: Mutex<(f64, Instant)>,
}

impl LocalBucket {
    /// A full bucket of `per_minute` tokens.
    pub fn new(per_minute: u64) -> LocalBucket {
        let cap = per_minute as f64;
        LocalBucket { per_minute: cap, state: Mutex::new((cap, Instant::now())) }
    }

    fn refill(&self, s: &mut (f64, Instant), now: Instant) {
        let dt = now.saturating_duration_since(s.1).as_secs_f64();
        s.0 = (s.0 + dt * self.per_minute / 60.0).min(self.per_minute);
        s.1 = now;
    }

    /// Take `take` tokens if `need` are present; else the time until they are.
    pub fn try_take(&self, need: u64, take: u64) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.refill(&mut s, Instant::now());
        let need = need as f64;
        if s.0 >= need {
            s.0 -= take as f64;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((need - s.0) * 60.0 / self.per_minute).max(0.001)))
        }
    }

    /// Take `tokens` whatever the level (the bucket may go into debt, at most one minute's worth).
    pub fn debit(&self, tokens: u64) {
        let mut s = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.refill(&mut s, Instant::now());
        s.0 = (s.0 - tokens as f64).max(-self.per_minute);
    }
}

/// The limits of one provider as the gate enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GateLimits {
    /// `providers.<p>.max_inflight` (cluster-wide in cluster mode).
    pub max_inflight: u32,
    /// `providers.<p>.breaker_half_open_probes` (cluster-wide in cluster mode).
    pub half_open_probes: u32,
    /// `providers.<p>.rpm` (0 = none).
    pub rpm: u64,
    /// `providers.<p>.tpm` (0 = none).
    pub tpm: u64,
}

struct GateProvider {
    limits: GateLimits,
    shared: Vec<SharedLimit>,
    shared_probe: Vec<SharedLimit>,
    buckets: Vec<SharedBucket>,
    rpm: Option<LocalBucket>,
    tpm: Option<LocalBucket>,
}

/// Why the gate refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateRefusal {
    /// A cluster-wide limit stayed full until the deadline.
    #[error("cluster-wide {limit} limit {max} reached")]
    Full {
        /// Limit name.
        limit: String,
        /// Its size.
        max: u32,
    },
    /// A rate bucket has no tokens before the deadline.
    #[error("{limit} rate limit reached")]
    Rate {
        /// Bucket name.
        limit: String,
        /// When a token is back.
        retry_after: Duration,
    },
    /// Another node is probing the half-open provider.
    #[error("another node is probing the provider")]
    ProbeBusy,
    /// The cluster store failed and the policy is `fail_closed`.
    #[error("cluster coordination unavailable ({0}); cluster.on_redis_down = fail_closed")]
    Unavailable(String),
}

/// Cluster-wide (or local) admission of provider requests. Shared; cheap on the hot path
/// (one port round trip per request in cluster mode, one short lock per bucket locally).
pub struct ClusterGate {
    port: Option<Arc<dyn ClusterPort>>,
    policy: RedisDownPolicy,
    providers: HashMap<String, GateProvider>,
    poll: Duration,
    metrics: Option<ClusterMetrics>,
    last_warn_ms: AtomicI64,
}

impl ClusterGate {
    /// A gate over `port` (None = local buckets only) for these providers.
    pub fn new(
        port: Option<Arc<dyn ClusterPort>>,
        policy: RedisDownPolicy,
        global_max: u32,
        providers: Vec<(String, GateLimits)>,
        poll: Duration,
        metrics: Option<ClusterMetrics>,
    ) -> ClusterGate {
        let providers = providers
            .into_iter()
            .map(|(name, l)| {
                let shared = vec![
                    SharedLimit { name: "global".into(), max: global_max },
                    SharedLimit { name: format!("provider:{name}"), max: l.max_inflight },
                ];
                let mut shared_probe = shared.clone();
                shared_probe.push(SharedLimit { name: format!("probe:{name}"), max: l.half_open_probes.max(1) });
                let mut buckets = Vec::new();
                if l.rpm > 0 {
                    buckets.push(SharedBucket { name: format!("rpm:{name}"), per_minute: l.rpm, need: 1, take: 1 });
                }
                if l.tpm > 0 {
                    buckets.push(SharedBucket { name: format!("tpm:{name}"), per_minute: l.tpm, need: 1, take: 0 });
                }
                let gp = GateProvider {
                    limits: l,
                    shared,
                    shared_probe,
                    buckets,
                    rpm: (l.rpm > 0).then(|| LocalBucket::new(l.rpm)),
                    tpm: (l.tpm > 0).then(|| LocalBucket::new(l.tpm)),
                };
                (name, gp)
            })
            .collect();
        ClusterGate {
            port,
            policy,
            providers,
            poll: poll.max(Duration::from_millis(1)),
            metrics,
            last_warn_ms: AtomicI64::new(0),
        }
    }

    /// Whether the gate has anything to do for `provider` (a port, or a bucket).
    pub fn applies(&self, provider: &str) -> bool {
        self.port.is_some() || self.providers.get(provider).is_some_and(|p| p.rpm.is_some() || p.tpm.is_some())
    }

    /// The port, in cluster mode.
    pub fn port(&self) -> Option<&Arc<dyn ClusterPort>> {
        self.port.as_ref()
    }

    /// Admit one request to `provider` by `deadline`. `Ok(None)` when admitted without
    /// cluster leases (single node, or the `local` fallback).
    pub async fn admit(&self, provider: &str, probe: bool, deadline: Instant) -> Result<Option<LeaseSet>, GateRefusal> {
        let Some(p) = self.providers.get(provider) else { return Ok(None) };
        let Some(port) = &self.port else {
            self.admit_local(p, deadline).await?;
            return Ok(None);
        };
        let limits = if probe { &p.shared_probe } else { &p.shared };
        loop {
            let t0 = Instant::now();
            let res = port.try_admit(limits, &p.buckets).await;
            if let Some(m) = &self.metrics {
                m.admit_seconds.observe(t0.elapsed().as_secs_f64());
            }
            let wait = match res {
                Ok(Admission::Granted(l)) => return Ok(Some(l)),
                Ok(Admission::Full(i)) => {
                    if probe && i == 2 {
                        self.refused("probe_busy");
                        return Err(GateRefusal::ProbeBusy);
                    }
                    let now = Instant::now();
                    if now >= deadline {
                        self.refused("full");
                        let l = limits.get(i);
                        return Err(GateRefusal::Full {
                            limit: l.map_or_else(|| "provider".to_string(), |l| l.name.clone()),
                            max: l.map_or(0, |l| l.max),
                        });
                    }
                    self.poll.min(deadline - now)
                }
                Ok(Admission::Short(i, wait)) => {
                    if Instant::now() + wait > deadline {
                        self.refused("rate");
                        let name = p.buckets.get(i).map_or_else(|| "rate".to_string(), |b| b.name.clone());
                        return Err(GateRefusal::Rate { limit: name, retry_after: wait });
                    }
                    wait
                }
                Err(e) => return self.on_store_error(p, &e, deadline).await,
            };
            tokio::time::sleep(wait).await;
        }
    }

    async fn on_store_error(
        &self,
        p: &GateProvider,
        e: &ClusterError,
        deadline: Instant,
    ) -> Result<Option<LeaseSet>, GateRefusal> {
        if let Some(m) = &self.metrics {
            m.redis_errors.with_label_values(&["admit"]).inc();
        }
        match self.policy {
            RedisDownPolicy::FailClosed => {
                self.warn(e, "refusing provider requests");
                self.refused("unavailable");
                Err(GateRefusal::Unavailable(e.to_string()))
            }
            RedisDownPolicy::Local => {
                self.warn(e, "using this node's own limits");
                if let Some(m) = &self.metrics {
                    m.local_fallbacks.inc();
                }
                self.admit_local(p, deadline).await?;
                Ok(None)
            }
        }
    }

    fn warn(&self, e: &ClusterError, action: &str) {
        let now = crate::env::now_ms();
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        if now - last >= 10_000
            && self.last_warn_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tracing::warn!(error = %e, "cluster store failed: {action} (cluster.on_redis_down)");
        }
    }

    fn refused(&self, reason: &str) {
        if let Some(m) = &self.metrics {
            m.refusals.with_label_values(&[reason]).inc();
        }
    }

    async fn admit_local(&self, p: &GateProvider, deadline: Instant) -> Result<(), GateRefusal> {
        loop {
            let short = [(&p.rpm, 1u64, "rpm"), (&p.tpm, 0u64, "tpm")]
                .into_iter()
                .find_map(|(b, take, name)| b.as_ref().and_then(|b| b.try_take(1, take).err().map(|w| (w, name))));
            let Some((wait, name)) = short else { return Ok(()) };
            if Instant::now() + wait > deadline {
                return Err(GateRefusal::Rate { limit: name.to_string(), retry_after: wait });
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Hold a cluster-wide lock named `name` (a one-lease limit, so it is renewed by the
    /// heartbeat and expires with a dead node): waits up to `wait` for it. `None` outside
    /// cluster mode, when the wait ran out, or when the store failed — callers then go on
    /// with their local exclusion only.
    pub async fn exclusive(&self, name: &str, wait: Duration) -> Option<LeaseSet> {
        let port = self.port.as_ref()?;
        let limit = [SharedLimit { name: format!("lock:{name}"), max: 1 }];
        let deadline = Instant::now() + wait;
        loop {
            match port.try_admit(&limit, &[]).await {
                Ok(Admission::Granted(l)) => return Some(l),
                Ok(_) if Instant::now() < deadline => {
                    tokio::time::sleep(self.poll.max(Duration::from_millis(20))).await
                }
                Ok(_) => return None,
                Err(e) => {
                    if let Some(m) = &self.metrics {
                        m.redis_errors.with_label_values(&["admit"]).inc();
                    }
                    self.warn(&e, "taking a cluster lock locally only");
                    return None;
                }
            }
        }
    }

    /// Count the tokens a finished request used against the provider's `tpm` bucket.
    pub fn record_tokens(&self, provider: &str, tokens: u64) {
        let Some(p) = self.providers.get(provider) else { return };
        if p.limits.tpm == 0 || tokens == 0 {
            return;
        }
        if let Some(b) = &p.tpm {
            b.debit(tokens);
        }
        if let (Some(port), Some(bucket)) = (&self.port, p.buckets.iter().find(|b| b.name.starts_with("tpm:"))) {
            port.debit(bucket, tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn local_bucket_refuses_then_refills() {
        let b = LocalBucket::new(600); // 10 per second
        for _ in 0..600 {
            b.try_take(1, 1).unwrap();
        }
        let wait = b.try_take(1, 1).unwrap_err();
        assert!(wait <= Duration::from_millis(110), "{wait:?}");
        std::thread::sleep(Duration::from_millis(120));
        b.try_take(1, 1).unwrap();
    }

    #[test]
    fn debit_puts_a_bucket_in_debt() {
        let b = LocalBucket::new(60);
        b.debit(120);
        let wait = b.try_take(1, 0).unwrap_err();
        assert!(wait > Duration::from_secs(59), "{wait:?}");
    }

    #[actix_rt::test]
    async fn local_gate_waits_within_the_deadline_and_refuses_beyond() {
        let gate = ClusterGate::new(
            None,
            RedisDownPolicy::Local,
            10,
            vec![("glm".into(), GateLimits { max_inflight: 2, half_open_probes: 1, rpm: 1200, tpm: 0 })],
            Duration::from_millis(10),
            None,
        );
        assert!(gate.applies("glm"));
        assert!(!gate.applies("kimi"));
        for _ in 0..1200 {
            gate.admit("glm", false, Instant::now()).await.unwrap();
        }
        // 20 per second: the next token is 50 ms away.
        let t0 = Instant::now();
        gate.admit("glm", false, Instant::now() + Duration::from_millis(500)).await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(30));
        let err = gate.admit("glm", false, Instant::now()).await.unwrap_err();
        assert!(matches!(err, GateRefusal::Rate { .. }), "{err:?}");
    }
}
