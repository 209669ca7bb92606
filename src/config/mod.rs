//! Typed configuration of exai, layered with the `config` crate.
//!
//! Precedence, lowest first: built-in defaults (the `Default` impls in `model.rs`) < the
//! config file (`--config FILE`, else `EXAI_CONFIG`, else `exai.toml` in the current
//! directory if present) < environment variables (`EXAI_<SECTION>__<KEY>`, plus the old
//! daemon's names, see `legacy.rs`) < command-line overrides. `docs/CONFIG.md` documents
//! every key.
//!
//! - `model.rs` / `model_providers.rs`: the serde structs and defaults;
//! - `keys.rs`: the key table (kinds, secrets, lists) used to type and check values;
//! - `env.rs` / `legacy.rs`: the environment layer and the old-name mapping;
//! - `load.rs`: merging, checking and [`LoadOptions`];
//! - `validate.rs` / `validate_providers.rs`: ranges and cross-key rules;
//! - `providers.rs`: resolved per-provider settings ([`Config::provider_configs`]);
//! - `render.rs`: the redacted TOML shown by `exai config check`;
//! - `secret.rs`: [`Secret`], a string that never prints itself.

mod env;
mod error;
mod keys;
mod legacy;
mod load;
mod model;
mod model_cluster;
mod model_files;
mod model_providers;
mod providers;
mod render;
mod secret;
mod validate;
mod validate_providers;

#[cfg(test)]
mod tests;

pub use error::ConfigError;
pub use exai_actors::provider::retry::RetryConfig;
pub use load::{LoadOptions, DEFAULT_CONFIG_FILE};
pub use model::{
    Config, ConversationsConfig, DebugConfig, HttpConfig, LegacyConfig, LimitsConfig, LogFormat, LoggingConfig,
    MonitoringConfig, RoutingConfig, ServerConfig, StorageConfig, SupervisorConfig, TimeoutsConfig, ToolsConfig,
};
pub use model_cluster::{ClusterConfig, OnRedisDown};
pub use model_files::{BlobConfig, CleanupConfig, FilesConfig};
pub use model_providers::{
    CustomModelConfig, CustomProviderConfig, Glm, Kimi, ProvidersConfig, VendorConfig, VendorDefaults,
};
pub use providers::{ProviderKind, ProviderLimits, ProviderSettings};
pub use secret::{redact_url, Secret};
pub use validate::is_loopback_host;

use exai_actors::settings::CoreSettings;

impl Config {
    /// The database URL: `storage.database_url` if set, else
    /// `sqlite://<storage.data_dir>/exai.db`. Contains the password if there is one: do not
    /// log it (use [`redact_url`]).
    pub fn database_url(&self) -> String {
        match &self.storage.database_url {
            Some(url) => url.expose().to_owned(),
            None => {
                let dir = self.storage.data_dir.trim_end_matches('/');
                let dir = if dir.is_empty() { "/" } else { dir };
                format!("sqlite://{}/exai.db", dir.trim_end_matches('/'))
            }
        }
    }

    /// HTTP worker threads: `server.workers`, or the number of CPU cores when it is 0.
    pub fn worker_threads(&self) -> usize {
        match self.server.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    /// One provider call's whole budget, seconds: the longest `total_timeout_secs` of the
    /// enabled providers, plus the permit wait and 5 s for the work around the call. The least
    /// timeout of every tool that calls a model.
    pub fn provider_call_budget_secs(&self) -> u64 {
        let total = self.provider_configs().iter().filter(|p| p.enabled).map(|p| p.timeouts.total.as_secs()).max();
        total.map_or(0, |t| t + self.limits.provider_queue_wait_ms.div_ceil(1000) + 5)
    }

    /// The settings the actor core needs.
    pub fn core_settings(&self) -> CoreSettings {
        let defaults = CoreSettings::default();
        CoreSettings {
            server_name: defaults.server_name,
            server_version: defaults.server_version,
            max_message_bytes: self.server.max_message_bytes,
            max_connections: self.server.max_connections,
            max_connections_per_ip: self.server.max_connections_per_ip,
            idle_poll_us: self.server.idle_poll_us,
            global_max_inflight: self.limits.global_max_inflight,
            session_max_inflight: self.limits.session_max_inflight,
            retry_after_secs: self.limits.retry_after_secs,
            simple_tool_timeout_secs: self.timeouts.simple_tool_secs,
            workflow_tool_timeout_secs: self.timeouts.workflow_tool_secs,
            provider_call_budget_secs: self.provider_call_budget_secs(),
            hello_timeout_secs: self.timeouts.hello_secs,
            heartbeat_interval_secs: self.timeouts.heartbeat_interval_secs,
            client_timeout_secs: self.timeouts.client_timeout_secs,
            progress_interval_secs: self.timeouts.progress_interval_secs,
            result_ttl_secs: self.legacy.result_ttl_secs,
            result_cache_entries: self.legacy.result_cache_entries,
            outbox_capacity: self.limits.outbox_capacity,
            tools_page_size: self.tools.page_size,
            toollog_queue: self.storage.toollog_queue,
            toollog_flush_ms: self.storage.toollog_flush_ms,
            toollog_batch: self.storage.toollog_batch,
            toollog_retention: (self.storage.toollog_retention_days > 0)
                .then(|| std::time::Duration::from_secs(self.storage.toollog_retention_days.saturating_mul(86_400))),
            toollog_max_rows: (self.storage.toollog_max_rows > 0).then_some(self.storage.toollog_max_rows),
            shutdown_deadline_secs: self.timeouts.shutdown_deadline_secs,
            restart_backoff_ms: self.supervisor.restart_backoff_ms,
            restart_backoff_max_ms: self.supervisor.restart_backoff_max_ms,
            restart_max: self.supervisor.restart_max,
            restart_window_secs: self.supervisor.restart_window_secs,
            auth_token: self.server.auth_token.as_ref().map(|t| t.expose().to_owned()),
            access: exai_actors::access::AccessPolicy {
                allowed_hosts: self.server.allowed_hosts.clone(),
                allowed_origins: self.server.allowed_origins.clone(),
            },
            expert_analysis: self.tools.expert_analysis,
            max_provider_calls_per_invocation: self.tools.max_provider_calls_per_invocation,
        }
    }
}
