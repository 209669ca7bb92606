//! Criterion micro-benchmarks of the call path without the network: JSON-RPC parsing and
//! rendering, and a whole `Dispatcher::call` of the built-in `version` tool (schema
//! validation, limits, latency metrics, tool-call log enqueue).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use exai::store::{self, StoreOptions};
use exai::telemetry::ActivityRing;
use exai_actors::catalog::{builtin_models, Catalog};
use exai_actors::conversation::{ConversationSettings, Conversations};
use exai_actors::dispatch::{CallRequest, Dispatcher};
use exai_actors::env::{RuntimeState, ToolEnv};
use exai_actors::metrics::Metrics;
use exai_actors::protocol::{jsonrpc, mcp};
use exai_actors::provider::router::RoutingConfig;
use exai_actors::provider::service::ProviderSet;
use exai_actors::settings::CoreSettings;
use exai_actors::toollog::ToolLogQueue;
use exai_actors::tools::files::FileAccess;
use exai_actors::tools::registry::Registry;
use exai_actors::tools::{builtin, ProgressSink};
use std::sync::Arc;
use std::time::{Duration, Instant};

const FRAME: &str = r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"version","arguments":{},"_meta":{"progressToken":42}}}"#;

fn bench_jsonrpc(c: &mut Criterion) {
    c.bench_function("jsonrpc_parse_tools_call", |b| b.iter(|| jsonrpc::parse(std::hint::black_box(FRAME))));
    c.bench_function("mcp_call_params", |b| {
        b.iter(|| {
            let Ok(jsonrpc::Incoming::Request { params, .. }) = jsonrpc::parse(FRAME) else { return };
            let _ = mcp::call_params(params);
        })
    });
}

fn bench_dispatch(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("exai-bench-{}", std::process::id()));
    let sys = actix_rt::System::new();
    let dispatcher = sys.block_on(async {
        let url = format!("sqlite://{}/bench.db", dir.display());
        let store = store::open(&url, &StoreOptions::default()).await.expect("store");
        let metrics = Metrics::new().expect("metrics");
        let settings = Arc::new(CoreSettings::default());
        let env = Arc::new(ToolEnv {
            settings: Arc::clone(&settings),
            store: Arc::clone(&store),
            activity: Arc::new(ActivityRing::new(10)),
            metrics: metrics.clone(),
            runtime: Arc::new(RuntimeState::new(&settings)),
            catalog: Arc::new(Catalog::new(builtin_models(), vec![])),
            toollog: ToolLogQueue::new(1 << 20, metrics.clone()),
            providers: Arc::new(ProviderSet::new(
                vec![],
                4,
                Duration::from_millis(100),
                1,
                RoutingConfig::default(),
                Arc::new(Catalog::new(builtin_models(), vec![])),
                metrics.clone(),
            )),
            conversations: Arc::new(Conversations::new(Arc::clone(&store), ConversationSettings::default())),
            files: Arc::new(FileAccess::new(&[], 1024, 4096).0),
        });
        let registry = Arc::new(Registry::new(builtin::all(), &[], 50, &metrics).expect("registry"));
        Dispatcher::new(registry, env)
    });
    let session: Arc<str> = Arc::from("bench");
    c.bench_function("dispatch_version", |b| {
        b.iter_custom(|iters| {
            sys.block_on(async {
                let t0 = Instant::now();
                for i in 0..iters {
                    let r = dispatcher
                        .call(CallRequest {
                            name: "version".into(),
                            args: None,
                            session_id: Arc::clone(&session),
                            request_id: i.to_string(),
                            principal: Arc::clone(&session),
                            protocol: "bench",
                            progress: ProgressSink::none(),
                        })
                        .await;
                    std::hint::black_box(mcp::call_result(&r));
                }
                t0.elapsed()
            })
        })
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench_jsonrpc, bench_dispatch
}
criterion_main!(benches);
