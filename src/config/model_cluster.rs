//! `[cluster]`: cluster mode. Unset `redis_url` = a single node (nothing below applies and no
//! Redis is needed); set, the nodes that share it act as one gateway for vendor limits, rate
//! buckets and circuit breakers (docs/ARCHITECTURE.md, "Cluster").

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// What a node does when Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisDown {
    /// Admit provider requests on this node's own limits, with a warning and a metric.
    #[default]
    Local,
    /// Refuse provider requests (`OVER_CAPACITY`) until Redis answers again.
    FailClosed,
}

/// `[cluster]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host:port[/db]` (or `rediss://`); set = cluster mode.
    pub redis_url: Option<Secret>,
    /// This node's id, unique in the cluster. Empty = `<hostname>:<server.port>`.
    pub node_id: String,
    /// Address shown for this node in `/api/cluster`. Empty = `<server.host>:<port>`.
    pub advertise_address: String,
    /// Prefix of every Redis key (one hash tag, so a Redis Cluster keeps them in one slot).
    pub key_prefix: String,
    /// Lifetime of a limit lease and of a node's announcement, ms; renewed every heartbeat.
    pub lease_ms: u64,
    /// Heartbeat interval, ms (< `lease_ms / 2`).
    pub heartbeat_ms: u64,
    /// Timeout of one Redis command (and of connecting), ms.
    pub command_timeout_ms: u64,
    /// How often a request waiting for a full cluster-wide limit asks again, ms.
    pub poll_ms: u64,
    /// `local` or `fail_closed`.
    pub on_redis_down: OnRedisDown,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            node_id: String::new(),
            advertise_address: String::new(),
            key_prefix: "exai".into(),
            lease_ms: 15_000,
            heartbeat_ms: 3_000,
            command_timeout_ms: 250,
            poll_ms: 20,
            on_redis_down: OnRedisDown::Local,
        }
    }
}
