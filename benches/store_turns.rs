//! The conversation writer's batch on SQLite: time to apply one batch of 128 turns that each
//! create a thread with two messages (the write-behind batch a busy `chat` produces), into a
//! database that already holds `PRELOAD` such threads. The store's CPU per turn competes
//! with the request path on a small machine, so this is the figure to watch.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use exai::store::sqlite::SqliteStore;
use exai::store::StoreOptions;
use exai_actors::ports::{ConversationRecord, MessageRole, NewMessage, Store, TurnRecord};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::time::Duration;

const BATCH: usize = 128;
const PRELOAD: usize = 50_000;

fn turn(n: u64, now: i64) -> TurnRecord {
    // As `Conversations` makes them: time-ordered thread ids, keys prefixed by the thread id.
    let id = uuid::Uuid::now_v7().to_string();
    let conv = ConversationRecord {
        id: id.clone(),
        continuation_id: id.clone(),
        session_id: Some("bench-session".into()),
        tool: "chat".into(),
        model: Some("glm-4.5-flash".into()),
        provider: Some("glm".into()),
        turn_count: 0,
        created_at_ms: now,
        updated_at_ms: now,
        expires_at_ms: now + 3_600_000,
        metadata: json!({}),
    };
    let messages = [(MessageRole::User, "hi"), (MessageRole::Assistant, "Hello! How can I help you today?")]
        .into_iter()
        .map(|(role, text)| NewMessage {
            conversation_id: id.clone(),
            role,
            content: text.into(),
            model: None,
            metadata: json!({}),
            idempotency_key: format!("{id}:{:x}", Sha256::digest(format!("{id}\0{n}\0{}", role.as_str())))
                [..id.len() + 33]
                .to_string(),
            created_at_ms: now,
        })
        .collect();
    TurnRecord { continuation_id: conv.continuation_id.clone(), conversation: Some(conv), messages }
}

fn batch(from: u64) -> Vec<TurnRecord> {
    (0..BATCH as u64).map(|i| turn(from + i, 1_700_000_000_000 + (from + i) as i64)).collect()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("bench.db").to_string_lossy().into_owned();
    let opts = StoreOptions { max_connections: 4, migrate: true, ..StoreOptions::default() };
    let store = rt.block_on(SqliteStore::connect(&url, &opts)).expect("open store");
    let mut n = 0u64;
    for _ in 0..PRELOAD / BATCH {
        let b = batch(n);
        n += BATCH as u64;
        rt.block_on(store.apply_turns(&b.iter().collect::<Vec<_>>())).unwrap();
    }
    c.bench_function("apply_turns_128_new_threads", |bench| {
        bench.iter_batched(
            || {
                n += BATCH as u64;
                batch(n)
            },
            |b| rt.block_on(store.apply_turns(&b.iter().collect::<Vec<_>>())).unwrap(),
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(8)).warm_up_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
