//! Cluster mode (`[cluster]`, on when `cluster.redis_url` is set): the Redis adapter of the
//! core's [`ClusterPort`](exai_actors::cluster::ClusterPort), the [`ClusterGate`] built from
//! the configuration, and the [`ClusterNode`] actor that keeps this node announced.
//!
//! Without `redis_url` nothing here connects anywhere: [`gate`] returns a local-only gate when
//! some provider has `rpm` / `tpm`, and `None` otherwise.

pub mod redis;
mod scripts;

use crate::config::{Config, OnRedisDown};
use actix::prelude::*;
use exai_actors::cluster::{ClusterGate, ClusterMetrics, ClusterPort, GateLimits, NodeInfo, RedisDownPolicy};
use exai_actors::coordinator::{Child, ChildHandle, ChildSpec, Crash, Drain, ExitNotifier};
use exai_actors::env::now_ms;
use exai_actors::metrics::Metrics;
use exai_actors::provider::breaker::{BreakerHandle, BreakerObserver};
use exai_actors::provider::service::ProviderSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use self::redis::{RedisPort, RedisSettings};

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    /// The Redis URL is unusable.
    #[error("cluster.redis_url: {0}")]
    Url(String),
    /// The metrics could not be registered.
    #[error("cluster metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// This node's membership of the cluster.
#[derive(Clone)]
pub struct Cluster {
    port: RedisPort,
    info: Arc<Mutex<NodeInfo>>,
    heartbeat: Duration,
    policy: OnRedisDown,
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|h| h.trim().to_string()))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The node id: `cluster.node_id`, else `<hostname>:<server.port>` (`<hostname>:pid<pid>`
/// when the port is chosen by the OS).
pub fn node_id(cfg: &Config) -> String {
    if !cfg.cluster.node_id.is_empty() {
        return cfg.cluster.node_id.clone();
    }
    match cfg.server.port {
        0 => format!("{}:pid{}", hostname(), std::process::id()),
        p => format!("{}:{p}", hostname()),
    }
}

/// Connect to Redis when `cluster.redis_url` is set (lazily: a Redis that is down now is
/// retried on use, under `cluster.on_redis_down`).
pub fn connect(cfg: &Config, metrics: &Metrics) -> Result<Option<Cluster>, ClusterStartError> {
    let Some(url) = &cfg.cluster.redis_url else { return Ok(None) };
    let c = &cfg.cluster;
    let id = node_id(cfg);
    let cm = ClusterMetrics::new(&metrics.registry, &id, env!("CARGO_PKG_VERSION"))?;
    let settings = RedisSettings {
        node_id: id.clone(),
        prefix: c.key_prefix.clone(),
        lease: Duration::from_millis(c.lease_ms),
        timeout: Duration::from_millis(c.command_timeout_ms),
    };
    let port = RedisPort::connect(url.expose(), settings, cm).map_err(|e| ClusterStartError::Url(e.to_string()))?;
    let address = if c.advertise_address.is_empty() {
        format!("{}:{}", cfg.server.host, cfg.server.port)
    } else {
        c.advertise_address.clone()
    };
    let info = NodeInfo {
        id,
        address,
        started_ms: now_ms(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        inflight: 0,
        heartbeat_ms: 0,
    };
    Ok(Some(Cluster {
        port,
        info: Arc::new(Mutex::new(info)),
        heartbeat: Duration::from_millis(c.heartbeat_ms),
        policy: c.on_redis_down,
    }))
}

/// The gate provider requests pass through: cluster-wide limits over `cluster`, or local
/// rate buckets alone; `None` when there is nothing to enforce beyond the node's semaphores.
pub fn gate(cfg: &Config, cluster: Option<&Cluster>) -> Option<Arc<ClusterGate>> {
    let providers: Vec<(String, GateLimits)> = cfg
        .provider_configs()
        .into_iter()
        .filter(|p| p.enabled)
        .map(|p| {
            let limits = GateLimits {
                max_inflight: u32::try_from(p.max_inflight).unwrap_or(u32::MAX),
                half_open_probes: p.breaker.half_open_probes,
                rpm: p.rpm,
                tpm: p.tpm,
            };
            (p.name, limits)
        })
        .collect();
    if cluster.is_none() && providers.iter().all(|(_, l)| l.rpm == 0 && l.tpm == 0) {
        return None;
    }
    let policy = match cfg.cluster.on_redis_down {
        OnRedisDown::Local => RedisDownPolicy::Local,
        OnRedisDown::FailClosed => RedisDownPolicy::FailClosed,
    };
    let port = cluster.map(|c| Arc::new(c.port.clone()) as Arc<dyn ClusterPort>);
    let metrics = cluster.map(|c| c.port.inner.metrics.clone());
    Some(Arc::new(ClusterGate::new(
        port,
        policy,
        u32::try_from(cfg.limits.provider_global_max_inflight).unwrap_or(u32::MAX),
        providers,
        Duration::from_millis(cfg.cluster.poll_ms),
        metrics,
    )))
}

impl Cluster {
    /// The adapter.
    pub fn port(&self) -> &RedisPort {
        &self.port
    }

    /// This node's id.
    pub fn node_id(&self) -> String {
        self.port.inner.settings.node_id.clone()
    }

    /// Record the address the server bound (when `advertise_address` was not given and the
    /// configured port was 0).
    pub fn bound(&self, addr: SocketAddr, configured_port: u16, advertised: bool) {
        if !advertised && configured_port == 0 {
            let mut info = self.info.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            info.address = addr.to_string();
        }
    }

    /// Share the providers' breakers with the cluster and add the heartbeat actor to
    /// `children`. Checks Redis once and says how it went.
    pub fn attach(&self, providers: &ProviderSet, metrics: &Metrics, children: &mut Vec<Box<dyn ChildSpec>>) {
        let breakers: Vec<BreakerHandle> = providers.entries().iter().map(|e| e.breaker.clone()).collect();
        for b in &breakers {
            b.set_observer(Arc::clone(&self.port.inner) as Arc<dyn BreakerObserver>);
        }
        actix_rt::spawn(self.port.clone().listen_breakers(breakers.clone()));
        let port = self.port.clone();
        let policy = self.policy;
        actix_rt::spawn(async move {
            match port.ping().await {
                Ok(()) => tracing::info!(node = %port.node_id(), "cluster: connected to Redis"),
                Err(e) => tracing::warn!(
                    error = %e,
                    policy = ?policy,
                    "cluster: Redis is not answering at start-up; provider limits follow cluster.on_redis_down until it does"
                ),
            }
        });
        let node = NodeState {
            cluster: self.clone(),
            breakers,
            inflight: metrics.inflight.clone(),
            busy: Arc::new(AtomicBool::new(false)),
        };
        let handle: ChildHandle<ClusterNode> = ChildHandle::default();
        children.push(Box::new(Child::new("cluster", handle, move |exit| ClusterNode {
            state: node.clone(),
            left: false,
            _exit: Some(exit),
        })));
    }

    /// The live nodes, for `/api/cluster`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, exai_actors::cluster::ClusterError> {
        self.port.nodes().await
    }
}

#[derive(Clone)]
struct NodeState {
    cluster: Cluster,
    breakers: Vec<BreakerHandle>,
    inflight: prometheus::IntGauge,
    busy: Arc<AtomicBool>,
}

impl NodeState {
    async fn beat(self) {
        let info = {
            let mut info = self.cluster.info.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            info.inflight = u64::try_from(self.inflight.get()).unwrap_or(0);
            info.heartbeat_ms = now_ms();
            info.clone()
        };
        let port = &self.cluster.port;
        let m = &port.inner.metrics;
        match port.announce(&info).await {
            Ok(n) => m.nodes.set(i64::try_from(n).unwrap_or(i64::MAX)),
            Err(e) => {
                m.redis_errors.with_label_values(&["heartbeat"]).inc();
                tracing::debug!(error = %e, "cluster heartbeat failed");
            }
        }
        match port.renew().await {
            Ok((_, 0)) => {}
            Ok((_, lost)) => {
                tracing::warn!(
                    lost,
                    "cluster: leases expired before they were renewed (node paused past cluster.lease_ms?)"
                )
            }
            Err(_) => m.redis_errors.with_label_values(&["renew"]).inc(),
        }
        if port.resync_breakers(&self.breakers).await.is_err() {
            m.redis_errors.with_label_values(&["breaker"]).inc();
        }
        self.busy.store(false, Ordering::Release);
    }
}

/// Keeps this node announced and its leases renewed.
///
/// States: `Announcing` (a heartbeat every `cluster.heartbeat_ms`: announcement, lease
/// renewal, breaker resync; a heartbeat still running when the next is due is skipped) →
/// `Left` (after [`Drain`]: the announcement is removed, no more heartbeats).
/// Messages taken: [`Drain`] (leave the cluster), [`Crash`] (fault injection: panics).
pub struct ClusterNode {
    state: NodeState,
    left: bool,
    _exit: Option<ExitNotifier>,
}

impl Actor for ClusterNode {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(16);
        self.tick();
        ctx.run_interval(self.state.cluster.heartbeat, |act, _| act.tick());
    }
}

impl ClusterNode {
    fn tick(&self) {
        if self.left || self.state.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        actix_rt::spawn(self.state.clone().beat());
    }
}

impl Handler<Drain> for ClusterNode {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Drain, _: &mut Context<Self>) -> Self::Result {
        self.left = true;
        let port = self.state.cluster.port.clone();
        Box::pin(async move {
            match port.leave().await {
                Ok(()) => tracing::info!(node = %port.node_id(), "cluster: left"),
                Err(e) => tracing::warn!(error = %e, "cluster: could not remove this node's announcement (it expires)"),
            }
        })
    }
}

impl Handler<Crash> for ClusterNode {
    type Result = ();

    fn handle(&mut self, msg: Crash, _: &mut Context<Self>) {
        panic!("fault injection: {}", msg.0);
    }
}
