//! `[providers.*]`, `[[providers.custom]]`, `[retry]`, `[routing]`, `[conversations]` and the
//! resolved provider settings.

use std::time::Duration;

use exai_actors::provider::breaker::BreakerConfig;
use exai_actors::provider::retry::RetryPolicy;

use super::{at, Setup};
use crate::config::{Config, ProviderKind};

const KIMI_KEY: &str = "sk-kimi-0123456789abcdef";
const GLM_KEY: &str = "glm-key-0123456789abcdef";
const CUSTOM_KEY: &str = "or-key-0123456789abcdef";

const CUSTOM: &str = r#"
[[providers.custom]]
name = "ollama"
base_url = "http://127.0.0.1:11434/v1/"
max_inflight = 2
fallback = ["glm-4.5-flash"]

[[providers.custom.models]]
name = "llama3.1:8b"
aliases = ["llama3"]
tools = true

[[providers.custom.models]]
name = "qwen2.5-coder"
context_window = 32768

[[providers.custom]]
name = "openrouter"
base_url = "https://openrouter.ai/api/v1"
api_key_env = "OPENROUTER_API_KEY"
breaker_failure_ratio = 1

[[providers.custom.models]]
name = "deepseek/deepseek-chat"
vision = true
thinking = true
"#;

#[test]
fn vendor_defaults() {
    let cfg = Setup::new().ok();
    let all = cfg.provider_configs();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["kimi", "glm"]);
    let (kimi, glm) = (&all[0], &all[1]);
    assert_eq!(kimi.kind, ProviderKind::Kimi);
    assert_eq!(kimi.base_url, "https://api.moonshot.ai/v1");
    assert_eq!(kimi.max_inflight, 6);
    assert_eq!(kimi.timeouts.connect, Duration::from_secs(10));
    // Fit for thinking models: 3 min to the first byte, 2 min gaps, 5 min in all (the old
    // daemon's 300 s), so a 40 s answer or a 40 s stream is well inside the defaults.
    assert_eq!(kimi.timeouts.first_byte, Duration::from_secs(180));
    assert_eq!(kimi.timeouts.idle, Duration::from_secs(120));
    assert_eq!(kimi.timeouts.total, Duration::from_secs(300));
    assert_eq!(glm.kind, ProviderKind::Glm);
    assert_eq!(glm.base_url, "https://api.z.ai/api/paas/v4");
    assert_eq!(glm.max_inflight, 4);
    assert_eq!(glm.timeouts, kimi.timeouts);
    // AI tools get at least one provider call's budget: 300 s + 2 s permit wait + 5 s, far
    // above the 30 s simple-tool timeout that used to cut `chat`.
    assert_eq!(cfg.provider_call_budget_secs(), 307);
    assert_eq!(cfg.core_settings().provider_call_budget_secs, 307);
    assert_eq!(cfg.core_settings().simple_tool_timeout_secs, 30);
    for p in &all {
        assert!(p.enabled);
        assert!(p.api_key.is_none());
        assert!(p.fallback.is_empty());
        assert!(p.models.is_empty());
        assert_eq!(p.breaker, BreakerConfig::default());
        assert_eq!(p.retry, RetryPolicy::default());
    }
    let limits = cfg.provider_limits();
    assert_eq!(limits.global_max_inflight, 24);
    assert_eq!(limits.queue_wait, Duration::from_millis(2000));
    let info = glm.info();
    assert_eq!((info.kind.as_str(), info.web_search_endpoint, info.api_key_configured), ("glm", true, false));
    assert_eq!(cfg.model_entries().len(), exai_actors::catalog::builtin_models().len());
}

#[test]
fn other_section_defaults() {
    let cfg = Config::default();
    assert_eq!(cfg.routing.default_model, "glm-4.5-flash");
    assert_eq!(cfg.routing.kimi_default_model, "kimi-k2.6");
    assert_eq!(cfg.routing.kimi_speed_model, "kimi-k2.7-code-highspeed");
    assert_eq!(cfg.routing.kimi_quality_model, "kimi-k3");
    assert_eq!(cfg.routing.glm_speed_model, "glm-4.5-flash");
    assert_eq!(cfg.routing.glm_quality_model, "glm-5.1");
    assert_eq!((cfg.conversations.max_turns, cfg.conversations.ttl_hours), (20, 3));
    assert!(!cfg.conversations.cross_session);
    assert_eq!(cfg.tools.max_provider_calls_per_invocation, 3);
    assert!(cfg.tools.allowed_roots.is_empty());
    assert_eq!((cfg.tools.max_file_bytes, cfg.tools.max_total_file_bytes), (1 << 20, 4 << 20));
    assert!(cfg.tools.expert_analysis);
    assert_eq!(cfg.retry.rate_limit_attempts, 3);
}

#[test]
fn a_partial_vendor_section_keeps_the_vendor_defaults() {
    let cfg = Setup::new().file("[providers.glm]\nmax_inflight = 2\n\n[providers.kimi]\nenabled = false\n").ok();
    let glm = &cfg.provider_configs()[1];
    assert_eq!(glm.max_inflight, 2);
    assert_eq!(glm.base_url, "https://api.z.ai/api/paas/v4");
    assert_eq!(glm.timeouts.first_byte, Duration::from_secs(180));
    assert_eq!(glm.timeouts.total, Duration::from_secs(300));
    let kimi = &cfg.provider_configs()[0];
    assert!(!kimi.enabled);
    assert_eq!(kimi.max_inflight, 6);
    assert_eq!(kimi.timeouts.total, Duration::from_secs(300));
}

#[test]
fn nested_env_names_and_overrides() {
    let cfg = Setup::new()
        .env("EXAI_PROVIDERS__KIMI__MAX_INFLIGHT", "3")
        .env("exai_providers__glm__api_key", GLM_KEY)
        .env("EXAI_PROVIDERS__GLM__FALLBACK", "kimi-k2, kimi-latest")
        .env("EXAI_RETRY__SERVER_ATTEMPTS", "2")
        .set("providers.glm.breaker_failure_ratio", "0.25")
        .set("routing.default_model", "auto")
        .ok();
    let all = cfg.provider_configs();
    assert_eq!(all[0].max_inflight, 3);
    assert_eq!(all[1].api_key.as_ref().unwrap().expose(), GLM_KEY);
    assert_eq!(all[1].fallback, ["kimi-k2", "kimi-latest"]);
    assert_eq!(all[1].breaker.failure_ratio, 0.25);
    assert_eq!(all[1].retry.server.attempts, 2);
    assert_eq!(cfg.routing.default_model, "auto");
    assert_eq!(cfg.sources["providers.kimi.max_inflight"], "environment variable EXAI_PROVIDERS__KIMI__MAX_INFLIGHT");
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let err = Setup::new().env("EXAI_PROVIDERS__GLM__BREAKER_FAILURE_RATIO", "half").err();
    assert!(err.contains("providers.glm.breaker_failure_ratio: \"half\" (expected a number)"), "{err}");
}

#[test]
fn legacy_provider_and_routing_names() {
    let cfg = Setup::new()
        .env("MOONSHOT_API_KEY", "moonshot-key-ignored")
        .env("KIMI_API_KEY", KIMI_KEY)
        .env("ZHIPUAI_API_KEY", GLM_KEY)
        .env("MOONSHOT_API_URL", "http://127.0.0.1:9999/v1")
        .env("GLM_API_URL", "http://127.0.0.1:9998/api/paas/v4")
        .env("EXAI_WS_KIMI_MAX_INFLIGHT", "5")
        .env("EXAI_WS_GLM_MAX_INFLIGHT", "3")
        .env("KIMI_TIMEOUT_SECS", "40.5")
        .env("GLM_TIMEOUT_SECS", "30")
        .env("KIMI_STREAM_TIMEOUT", "900")
        .env("GLM_STREAM_TIMEOUT", "200")
        .env("DEFAULT_MODEL", "auto")
        .env("KIMI_DEFAULT_MODEL", "kimi-latest")
        .env("KIMI_SPEED_MODEL", "kimi-k2-turbo")
        .env("KIMI_THINKING_MODEL", "kimi-thinking")
        .env("GLM_SPEED_MODEL", "glm-4.5-air")
        .env("GLM_QUALITY_MODEL", "glm-4.5")
        .env("MAX_CONVERSATION_TURNS", "40")
        .env("CONVERSATION_TIMEOUT_HOURS", "1.5")
        .env("DEFAULT_USE_ASSISTANT_MODEL", "false")
        .ok();
    let all = cfg.provider_configs();
    let (kimi, glm) = (&all[0], &all[1]);
    assert_eq!(kimi.api_key.as_ref().unwrap().expose(), KIMI_KEY, "KIMI_API_KEY wins over MOONSHOT_API_KEY");
    assert_eq!(glm.api_key.as_ref().unwrap().expose(), GLM_KEY);
    assert_eq!(kimi.base_url, "http://127.0.0.1:9999/v1");
    assert_eq!(glm.base_url, "http://127.0.0.1:9998/api/paas/v4");
    assert_eq!((kimi.max_inflight, glm.max_inflight), (5, 3));
    assert_eq!(kimi.timeouts.first_byte, Duration::from_secs(41));
    assert_eq!(glm.timeouts.first_byte, Duration::from_secs(30));
    assert_eq!(kimi.timeouts.total, Duration::from_secs(900));
    assert_eq!(glm.timeouts.total, Duration::from_secs(200));
    assert_eq!(cfg.routing.default_model, "auto");
    assert_eq!(cfg.routing.kimi_default_model, "kimi-latest");
    assert_eq!(cfg.routing.kimi_speed_model, "kimi-k2-turbo");
    assert_eq!(cfg.routing.kimi_quality_model, "kimi-thinking");
    assert_eq!(cfg.routing.glm_speed_model, "glm-4.5-air");
    assert_eq!(cfg.routing.glm_quality_model, "glm-4.5");
    assert_eq!(cfg.conversations.max_turns, 40);
    assert_eq!(cfg.conversations.ttl_hours, 2);
    assert!(!cfg.tools.expert_analysis);
    assert_eq!(cfg.sources["providers.kimi.api_key"], "environment variable KIMI_API_KEY (legacy name)");
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].contains("MOONSHOT_API_KEY ignored"), "{:?}", cfg.warnings);
    let shown = format!("{:?} {} {:?}", cfg.warnings, cfg.render_redacted(), cfg.provider_configs());
    assert!(!shown.contains(KIMI_KEY) && !shown.contains(GLM_KEY) && !shown.contains("moonshot-key"), "{shown}");
    // The quality model wins over the older thinking-model name.
    let cfg = Setup::new().env("KIMI_THINKING_MODEL", "kimi-thinking").env("KIMI_QUALITY_MODEL", "kimi-latest").ok();
    assert_eq!(cfg.routing.kimi_quality_model, "kimi-latest");
}

#[test]
fn a_kimi_model_cannot_be_the_glm_speed_model() {
    let err = Setup::new().env("GLM_SPEED_MODEL", "kimi-k2").err();
    assert!(err.contains("routing.glm_speed_model: \"kimi-k2\""), "{err}");
    assert!(err.contains("served by glm"), "{err}");
    assert!(err.contains("GLM_SPEED_MODEL (legacy name)"), "{err}");
}

#[test]
fn custom_providers_from_the_file() {
    let cfg = Setup::new().file(CUSTOM).env("OPENROUTER_API_KEY", CUSTOM_KEY).ok();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    let all = cfg.provider_configs();
    let names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["kimi", "glm", "ollama", "openrouter"]);
    let (ollama, router) = (&all[2], &all[3]);
    assert_eq!(ollama.kind, ProviderKind::OpenAiCompatible);
    assert_eq!(ollama.base_url, "http://127.0.0.1:11434/v1", "trailing slash trimmed");
    assert!(ollama.api_key.is_none());
    assert_eq!(ollama.max_inflight, 2);
    assert_eq!(ollama.timeouts.first_byte, Duration::from_secs(180));
    assert_eq!(ollama.timeouts.total, Duration::from_secs(300));
    assert_eq!(ollama.fallback, ["glm-4.5-flash"]);
    assert_eq!(ollama.models.len(), 2);
    let llama = &ollama.models[0];
    assert_eq!((llama.name.as_str(), llama.provider.as_str()), ("llama3.1:8b", "ollama"));
    assert_eq!(llama.aliases, ["llama3"]);
    assert_eq!((llama.context_window, llama.max_output_tokens), (131_072, 8_192));
    assert!(llama.capabilities.tools && !llama.capabilities.vision);
    assert_eq!(ollama.models[1].context_window, 32_768);
    assert_eq!(router.api_key.as_ref().unwrap().expose(), CUSTOM_KEY);
    assert_eq!(router.breaker.failure_ratio, 1.0, "an integer is accepted for a number");
    assert!(router.models[0].capabilities.vision && router.models[0].capabilities.thinking);
    let info = router.info();
    assert_eq!(info.kind, "openai-compatible");
    assert!(info.api_key_configured && !info.files_api && !info.web_search_endpoint);
    let entries = cfg.model_entries();
    assert!(entries.iter().any(|m| m.name == "deepseek/deepseek-chat" && m.provider == "openrouter"));
    assert!(cfg.sources["providers.custom"].starts_with("config file "));
    let shown = format!("{cfg:?} {all:?} {}", cfg.render_redacted());
    assert!(!shown.contains(CUSTOM_KEY), "custom key leaked");
}

#[test]
fn custom_providers_render_as_array_of_tables() {
    let cfg = Setup::new().file(CUSTOM).env("OPENROUTER_API_KEY", CUSTOM_KEY).ok();
    let rendered = cfg.render_redacted();
    assert!(rendered.contains("[[providers.custom]]"), "{rendered}");
    assert!(rendered.contains("[[providers.custom.models]]"), "{rendered}");
    assert!(rendered.contains("# providers.custom: config file "), "{rendered}");
    let tree = toml::Value::Table(rendered.parse::<toml::Table>().unwrap());
    let custom = at(&tree, "providers.custom").and_then(toml::Value::as_array).unwrap();
    assert_eq!(custom.len(), 2);
    assert_eq!(custom[1]["api_key_env"].as_str(), Some("OPENROUTER_API_KEY"));
    assert!(custom[1].get("api_key").is_none());
    assert_eq!(custom[0]["models"].as_array().map(Vec::len), Some(2));
    assert_eq!(at(&tree, "providers.kimi.max_inflight").and_then(toml::Value::as_integer), Some(6));
}

#[test]
fn an_unset_key_variable_is_a_warning() {
    let cfg = Setup::new().file(CUSTOM).ok();
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert!(cfg.warnings[0].contains("OPENROUTER_API_KEY"), "{:?}", cfg.warnings);
    assert!(cfg.provider_configs()[3].api_key.is_none());
    // A key variable named EXAI_* is not reported as an unknown config variable.
    let file = CUSTOM.replace("OPENROUTER_API_KEY", "EXAI_OPENROUTER_KEY");
    let cfg = Setup::new().file(&file).env("EXAI_OPENROUTER_KEY", CUSTOM_KEY).ok();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(cfg.provider_configs()[3].api_key.as_ref().unwrap().expose(), CUSTOM_KEY);
}

#[test]
fn a_key_in_a_custom_entry_is_refused_without_showing_it() {
    let file =
        format!("{CUSTOM}\n").replace("api_key_env = \"OPENROUTER_API_KEY\"", &format!("api_key = \"{CUSTOM_KEY}\""));
    let err = Setup::new().file(&file).err();
    assert!(err.contains("providers.custom[1].api_key"), "{err}");
    assert!(err.contains("api_key_env"), "{err}");
    assert!(!err.contains(CUSTOM_KEY), "{err}");
}

#[test]
fn custom_entries_are_checked_field_by_field() {
    let err = Setup::new().file(&CUSTOM.replace("max_inflight = 2", "max_inflight = \"two\"")).err();
    assert!(err.contains("providers.custom[0].max_inflight: \"two\""), "{err}");
    assert!(err.contains("config file"), "{err}");
    let err = Setup::new().file(&CUSTOM.replace("thinking = true", "thinking = true\ncolour = \"red\"")).err();
    assert!(err.contains("unknown config key providers.custom[1].models[0].colour"), "{err}");
    let err = Setup::new().file("[providers]\ncustom = [1, 2]\n").err();
    assert!(err.contains("invalid value for providers.custom"), "{err}");
    let err = Setup::new().file("[providers]\nkimi = 3\n").err();
    assert!(err.contains("providers.kimi") && err.contains("a [providers.kimi] table"), "{err}");
    let err = Setup::new().file("[providers.mistral]\nbase_url = \"https://x\"\n").err();
    assert!(err.contains("unknown config key providers.mistral"), "{err}");
}

#[test]
fn custom_providers_cannot_come_from_the_environment() {
    let err = Setup::new().env("EXAI_PROVIDERS__CUSTOM", "ollama").err();
    assert!(err.contains("providers.custom"), "{err}");
    assert!(err.contains("in the config file"), "{err}");
    let err = Setup::new().set("providers.custom", "x").err();
    assert!(err.contains("providers.custom") && err.contains("command-line override"), "{err}");
}

#[test]
fn custom_validation_errors_name_the_entry_and_the_file() {
    let err = Setup::new().file(&CUSTOM.replace("name = \"openrouter\"", "name = \"ollama\"")).err();
    assert!(err.starts_with("invalid value for providers.custom[1].name: \"ollama\""), "{err}");
    assert!(err.contains("[from config file "), "{err}");
    let err = Setup::new().file(&CUSTOM.replace("max_inflight = 2", "max_inflight = 30")).err();
    assert!(err.contains("providers.custom[0].max_inflight: 30"), "{err}");
    assert!(err.contains("limits.provider_global_max_inflight"), "{err}");
}

#[test]
fn provider_limit_above_the_global_limit_is_refused() {
    let err = Setup::new().set("limits.provider_global_max_inflight", "4").err();
    assert!(err.contains("providers.kimi.max_inflight: 6"), "{err}");
    assert!(err.contains("1..=4"), "{err}");
    Setup::new().set("limits.provider_global_max_inflight", "6").ok();
}

#[test]
fn first_token_timeout_must_fit_in_the_stream_timeout() {
    let err = Setup::new().file("[providers.glm]\ntotal_timeout_secs = 30\n").err();
    assert!(err.contains("providers.glm.first_byte_timeout_secs: 180"), "{err}");
    assert!(err.contains("at most total_timeout_secs"), "{err}");
}

#[test]
fn fallback_may_name_custom_models() {
    let file = format!("{CUSTOM}\n[providers.kimi]\nfallback = [\"llama3\", \"glm-4.6\"]\n");
    let cfg = Setup::new().file(&file).env("OPENROUTER_API_KEY", CUSTOM_KEY).ok();
    assert_eq!(cfg.provider_configs()[0].fallback, ["llama3", "glm-4.6"]);
    let file = format!("{CUSTOM}\n[routing]\ndefault_model = \"llama3\"\n");
    assert_eq!(Setup::new().file(&file).ok().routing.default_model, "llama3");
}

#[test]
fn vendor_models_in_config_add_to_and_override_the_catalogue() {
    let cfg = Setup::new()
        .file(
            "[[providers.kimi.models]]\nname = \"kimi-k2.8-preview\"\ncontext_window = 524288\n\
             input_price = 1.5\noutput_price = 6.0\ntools = true\n\n\
             [[providers.glm.models]]\nname = \"glm-5.1\"\ncontext_window = 250000\ninput_price = 0.7\n",
        )
        .ok();
    let c = exai_actors::catalog::Catalog::new(cfg.model_entries(), vec![]);
    let added = c.resolve("kimi-k2.8-preview").unwrap();
    assert_eq!((added.provider.as_str(), added.context_window, added.input_price), ("kimi", 524_288, Some(1.5)));
    let over = c.resolve("glm-5.1").unwrap();
    assert_eq!((over.provider.as_str(), over.context_window, over.input_price), ("glm", 250_000, Some(0.7)));
    assert_eq!(cfg.model_entries().len(), exai_actors::catalog::builtin_models().len() + 1);
    // A vendor may not take another vendor's model, and prices are not negative.
    let err = Setup::new().file("[[providers.glm.models]]\nname = \"kimi-k2.6\"\n").err();
    assert!(err.contains("providers.glm.models[0].name") && err.contains("provider kimi has it"), "{err}");
    let err = Setup::new().file("[[providers.kimi.models]]\nname = \"k\"\noutput_price = -1.0\n").err();
    assert!(err.contains("providers.kimi.models[0].output_price"), "{err}");
}
