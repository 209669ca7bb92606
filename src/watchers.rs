//! Wiring of the watcher actors (error watcher, AI auditor) as supervised children, from the
//! `[monitoring]` configuration.
//!
//! Both ask an [`AnalysisModel`] only when one is wired in (`model`) and their `*_enabled`
//! switch is on; without a model they still run (the error watcher keeps recording errors)
//! and count every analysis they could not make as `unavailable`.

use crate::config::Config;
use exai_actors::coordinator::{Child, ChildHandle, ChildSpec};
use exai_actors::metrics::Metrics;
use exai_actors::ports::{AnalysisModel, DiagnosticsStore, Store};
use exai_actors::watcher::auditor::{Auditor, AuditorConfig};
use exai_actors::watcher::errors::{ErrorQueue, ErrorWatcher, ErrorWatcherConfig};
use std::sync::Arc;
use std::time::Duration;

/// Child name of the error watcher.
pub const ERROR_WATCHER: &str = "error_watcher";
/// Child name of the auditor.
pub const AUDITOR: &str = "auditor";

/// The error queue the telemetry layer fills, when the error watcher is enabled.
pub fn error_queue(cfg: &Config, metrics: &Metrics) -> Option<ErrorQueue> {
    cfg.monitoring.error_watcher_enabled.then(|| ErrorQueue::new(cfg.monitoring.error_queue, metrics))
}

/// The supervised watcher children the configuration asks for.
pub fn children(
    cfg: &Config,
    metrics: &Metrics,
    store: &Arc<dyn Store>,
    errors: Option<ErrorQueue>,
    model: Option<Arc<dyn AnalysisModel>>,
) -> Vec<Box<dyn ChildSpec>> {
    let m = &cfg.monitoring;
    let mut out: Vec<Box<dyn ChildSpec>> = Vec::new();
    if (m.error_ai_enabled || m.auditor_enabled) && model.is_none() {
        tracing::warn!(
            "monitoring: model analyses are enabled but no analysis model is wired into this build; \
             nothing will be asked (counted as outcome=\"unavailable\")"
        );
    }
    if let Some(queue) = errors {
        let wcfg = ErrorWatcherConfig {
            ai_enabled: m.error_ai_enabled,
            model: m.error_ai_model.clone(),
            calls_per_hour: m.error_ai_calls_per_hour,
            ..ErrorWatcherConfig::default()
        };
        let (diag, metrics, model): (Arc<dyn DiagnosticsStore>, _, _) =
            (Arc::clone(store) as Arc<dyn DiagnosticsStore>, metrics.clone(), model.clone());
        out.push(Box::new(Child::new(ERROR_WATCHER, ChildHandle::default(), move |exit| {
            ErrorWatcher::new(
                queue.clone(),
                Arc::clone(&diag),
                model.clone(),
                wcfg.clone(),
                metrics.clone(),
                Some(exit),
            )
        })));
    }
    if m.auditor_enabled {
        let acfg = AuditorConfig {
            sample_rate: m.auditor_sample_rate,
            calls_per_hour: m.auditor_calls_per_hour,
            interval: Duration::from_secs(m.auditor_interval_secs),
            model: m.auditor_model.clone(),
            ..AuditorConfig::default()
        };
        let (store, metrics) = (Arc::clone(store), metrics.clone());
        out.push(Box::new(Child::new(AUDITOR, ChildHandle::default(), move |exit| {
            Auditor::new(Arc::clone(&store), model.clone(), acfg.clone(), metrics.clone(), Some(exit))
        })));
    }
    out
}
