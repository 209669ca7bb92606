//! Model routing: `model: "auto"` picks a model by tool and workflow step, a continuation
//! keeps the model it started with, and a choice whose provider has no key is swapped for the
//! equivalent model of a configured provider. Explicit names are resolved by the catalogue
//! (so a Kimi model can only ever reach the Kimi provider and the reverse).

use serde::{Deserialize, Serialize};

/// The model names auto-routing chooses from (the `[routing]` config section).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// Model used when a call names none (`auto` = pick by tool and step).
    pub default_model: String,
    /// Kimi model for Kimi-specific tools.
    pub kimi_default_model: String,
    /// Fast Kimi model (`kimi_chat_with_tools`).
    pub kimi_speed_model: String,
    /// Deep Kimi model (thinkdeep, consensus, docgen, secaudit; deep workflow steps).
    pub kimi_quality_model: String,
    /// Fast GLM model (simple tools, early workflow steps).
    pub glm_speed_model: String,
    /// Deep GLM model.
    pub glm_quality_model: String,
}

impl RoutingConfig {
    /// The simple-tool model, with `auto` meaning the GLM speed model.
    pub fn default_or_speed(&self) -> &str {
        if self.default_model == "auto" {
            &self.glm_speed_model
        } else {
            &self.default_model
        }
    }
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            default_model: "glm-4.5-flash".into(),
            kimi_default_model: "kimi-k2.6".into(),
            kimi_speed_model: "kimi-k2.7-code-highspeed".into(),
            kimi_quality_model: "kimi-k3".into(),
            glm_speed_model: "glm-4.5-flash".into(),
            glm_quality_model: "glm-5.1".into(),
        }
    }
}

/// Where a workflow call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StepInfo {
    /// 1-based step.
    pub step_number: u32,
    /// Planned steps.
    pub total_steps: u32,
    /// More steps follow.
    pub next_step_required: bool,
    /// The caller asked for depth.
    pub deep: bool,
}

/// Which slot of the routing table a choice came from (used to swap providers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// `default_model`.
    Default,
    /// `kimi_default_model`.
    KimiDefault,
    /// Speed tier.
    Speed,
    /// Quality tier.
    Quality,
}

/// Pick the slot for a tool (and step) as the old server's auto routing did.
pub fn auto_slot(tool: &str, step: Option<&StepInfo>) -> (Slot, &'static str) {
    let last = step.is_none_or(|s| !s.next_step_required || s.deep);
    match tool {
        "kimi_upload_files" | "kimi_chat_with_files" | "kimi_manage_files" => (Slot::KimiDefault, "kimi file tool"),
        "kimi_chat_with_tools" | "kimi_intent_analysis" => (Slot::Speed, "kimi speed tool"),
        "thinkdeep" | "consensus" | "docgen" | "secaudit" => (Slot::Quality, "deep-reasoning tool"),
        "analyze" => match step {
            Some(s) if s.step_number == 1 && s.next_step_required && !s.deep => (Slot::Speed, "analyze: first step"),
            _ => (Slot::Quality, "analyze: later or final step"),
        },
        "codereview" | "refactor" | "debug" | "testgen" | "planner" | "tracer" | "precommit" => {
            if last {
                (Slot::Quality, "workflow: final step or deep")
            } else {
                (Slot::Speed, "workflow: intermediate step")
            }
        }
        _ => (Slot::Default, "simple tool"),
    }
}

/// The model for a slot, preferring `prefer_kimi` for the tiers both vendors have.
pub fn slot_model(cfg: &RoutingConfig, slot: Slot, tool: &str, prefer_kimi: bool) -> String {
    let kimi_family = tool.starts_with("kimi_") || matches!(tool, "thinkdeep" | "consensus" | "docgen" | "secaudit");
    let kimi = prefer_kimi || kimi_family;
    match (slot, kimi) {
        (Slot::Default, _) => cfg.default_or_speed().to_string(),
        (Slot::KimiDefault, _) => cfg.kimi_default_model.clone(),
        (Slot::Speed, true) => cfg.kimi_speed_model.clone(),
        (Slot::Speed, false) => cfg.glm_speed_model.clone(),
        (Slot::Quality, true) => cfg.kimi_quality_model.clone(),
        (Slot::Quality, false) => cfg.glm_quality_model.clone(),
    }
}

/// The same tier on the other vendor (used when the chosen vendor has no key).
pub fn counterpart(cfg: &RoutingConfig, model: &str) -> Option<String> {
    let pairs = [
        (&cfg.glm_speed_model, &cfg.kimi_speed_model),
        (&cfg.glm_quality_model, &cfg.kimi_quality_model),
        (&cfg.default_model, &cfg.kimi_default_model),
    ];
    for (g, k) in pairs {
        if model == g.as_str() {
            return Some(k.clone());
        }
        if model == k.as_str() {
            return Some(g.clone());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_routing_rules() {
        let c = RoutingConfig::default();
        let (s, _) = auto_slot("chat", None);
        assert_eq!(slot_model(&c, s, "chat", false), "glm-4.5-flash");
        let (s, _) = auto_slot("thinkdeep", None);
        assert_eq!(slot_model(&c, s, "thinkdeep", false), "kimi-k3");
        let first = StepInfo { step_number: 1, total_steps: 3, next_step_required: true, deep: false };
        let last = StepInfo { step_number: 3, total_steps: 3, next_step_required: false, deep: false };
        assert_eq!(slot_model(&c, auto_slot("analyze", Some(&first)).0, "analyze", false), "glm-4.5-flash");
        assert_eq!(slot_model(&c, auto_slot("analyze", Some(&last)).0, "analyze", false), "glm-5.1");
        assert_eq!(slot_model(&c, auto_slot("codereview", Some(&first)).0, "codereview", false), "glm-4.5-flash");
        assert_eq!(slot_model(&c, auto_slot("codereview", Some(&last)).0, "codereview", false), "glm-5.1");
        assert_eq!(
            slot_model(&c, auto_slot("kimi_chat_with_tools", None).0, "kimi_chat_with_tools", false),
            "kimi-k2.7-code-highspeed"
        );
        assert_eq!(counterpart(&c, "glm-5.1").as_deref(), Some("kimi-k3"));
    }
}
