//! Behaviour suite for the `Store` port: every test runs against SQLite and, when
//! `EXAI_TEST_POSTGRES_URL` is set, against a fresh PostgreSQL database (see `harness`).

mod diagnostics;
pub(crate) mod harness;
mod reachability;
mod tasks;
mod turns;

use std::sync::Arc;
use std::time::{Duration, Instant};

use exai::store::{self, MigrationStatus, Store, StoreError, StoreOptions};
use exai_actors::ports::{
    CallOutcome, ConversationRecord, MessageRole, NewMessage, SessionRecord, ToolCallQuery, ToolCallRecord,
};
use harness::{on_each_backend, Raw};
use serde_json::json;

const KNOWN_VERSIONS: [i64; 8] = [1, 2, 3, 4, 5, 6, 7, 9];

const TABLES: [&str; 11] = [
    "sessions",
    "conversations",
    "messages",
    "tool_calls",
    "provider_file_uploads",
    "cleanup_runs",
    "cleanup_items",
    "error_investigations",
    "auditor_observations",
    "tasks",
    "file_leases",
];

async fn open(url: &str) -> Arc<dyn Store> {
    store::open(url, &StoreOptions::default()).await.unwrap()
}

fn expected_backend(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
}

fn conversation(id: &str, continuation_id: &str) -> ConversationRecord {
    ConversationRecord {
        id: id.to_string(),
        continuation_id: continuation_id.to_string(),
        session_id: Some("sess-1".into()),
        tool: "chat".into(),
        model: Some("glm-4.6".into()),
        provider: Some("glm".into()),
        turn_count: 0,
        created_at_ms: 1_000,
        updated_at_ms: 1_000,
        expires_at_ms: 1_000 + 3 * 3_600_000,
        metadata: json!({"origin": "test"}),
    }
}

fn message(conversation_id: &str, key: &str, content: &str, at_ms: i64) -> NewMessage {
    NewMessage {
        conversation_id: conversation_id.to_string(),
        role: MessageRole::User,
        content: content.to_string(),
        model: None,
        metadata: json!({}),
        idempotency_key: key.to_string(),
        created_at_ms: at_ms,
    }
}

fn tool_call(i: i64) -> ToolCallRecord {
    let outcomes =
        [CallOutcome::Ok, CallOutcome::Error, CallOutcome::Timeout, CallOutcome::OverCapacity, CallOutcome::Cancelled];
    let outcome = outcomes[(i % 5) as usize];
    ToolCallRecord {
        id: 0,
        started_at_ms: 1_700_000_000_000 + i,
        session_id: format!("sess-{}", i % 2),
        request_id: format!("req-{i}"),
        tool: ["chat", "thinkdeep", "analyze"][(i % 3) as usize].to_string(),
        protocol: "mcp-ws".into(),
        outcome,
        error_code: (outcome != CallOutcome::Ok).then(|| "PROVIDER_ERROR".to_string()),
        total_ms: 12.5 + i as f64,
        global_wait_ms: 0.25,
        provider_wait_ms: 1.5,
        processing_ms: 10.75,
        provider: (i % 4 != 0).then(|| "kimi".to_string()),
        model: (i % 4 != 0).then(|| "kimi-k2".to_string()),
        args_bytes: 100 + i,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_apply_and_are_current() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        assert_eq!(s.backend(), expected_backend(&url));
        s.ping().await.unwrap();
        let status = s.migration_status().await.unwrap();
        assert!(status.is_current(), "{status:?}");
        assert_eq!(status.known, KNOWN_VERSIONS);
        assert_eq!(status.applied, KNOWN_VERSIONS);
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_twice_is_a_noop() {
    on_each_backend(|url| async move {
        let unmigrated = StoreOptions { migrate: false, ..StoreOptions::default() };
        let s = store::open(&url, &unmigrated).await.unwrap();
        let before = s.migration_status().await.unwrap();
        assert!(before.applied.is_empty(), "{before:?}");
        assert!(!before.is_current());
        s.close().await;

        let first = store::migrate(&url).await.unwrap();
        let second = store::migrate(&url).await.unwrap();
        let expected = MigrationStatus { applied: KNOWN_VERSIONS.to_vec(), known: KNOWN_VERSIONS.to_vec() };
        assert_eq!(first, expected);
        assert_eq!(second, expected);

        // Data written between runs survives a further migrate.
        let s = open(&url).await;
        s.create_conversation(&conversation("c1", "cont-1")).await.unwrap();
        s.close().await;
        store::migrate(&url).await.unwrap();
        let s = open(&url).await;
        assert!(s.get_conversation("cont-1").await.unwrap().is_some());
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_has_every_table_and_named_unique_keys() {
    on_each_backend(|url| async move {
        store::migrate(&url).await.unwrap();
        let raw = Raw::open(&url).await;
        for table in TABLES {
            assert_eq!(raw.count(table).await, 0, "table {table}");
        }
        raw.insert_upload("kimi", Some("file-1"), "abc").await.unwrap();
        // Same provider + sha256: uk_provider_sha256.
        let dup_sha = raw.insert_upload("kimi", Some("file-2"), "abc").await;
        assert!(dup_sha.is_err(), "duplicate (provider, sha256) accepted");
        // Same provider + provider_file_id.
        let dup_id = raw.insert_upload("kimi", Some("file-1"), "def").await;
        assert!(dup_id.is_err(), "duplicate (provider, provider_file_id) accepted");
        // Other provider, same hash: allowed; several pending rows without a file id too.
        raw.insert_upload("glm", Some("file-1"), "abc").await.unwrap();
        raw.insert_upload("glm", None, "x1").await.unwrap();
        raw.insert_upload("glm", None, "x2").await.unwrap();
        assert_eq!(raw.count("provider_file_uploads").await, 4);
        raw.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_batch_and_filters() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        assert_eq!(s.record_tool_calls(&[]).await.unwrap(), 0);

        let rows: Vec<ToolCallRecord> = (0..1000).map(tool_call).collect();
        let started = Instant::now();
        assert_eq!(s.record_tool_calls(&rows).await.unwrap(), 1000);
        let took = started.elapsed();
        eprintln!("[store suite] {}: 1000 tool calls in {took:?}", s.backend());
        assert!(took < Duration::from_secs(10), "batch insert took {took:?}");

        let all = s.recent_tool_calls(&ToolCallQuery { limit: 5000, ..ToolCallQuery::default() }).await.unwrap();
        assert_eq!(all.len(), 1000);
        assert!(all.windows(2).all(|w| w[0].started_at_ms > w[1].started_at_ms));
        assert!(all.iter().all(|r| r.id > 0));
        // Every field round-trips (the newest row is index 999).
        let mut newest = all[0].clone();
        assert_eq!(newest.request_id, "req-999");
        newest.id = 0;
        assert_eq!(newest, rows[999]);

        let ten = s.recent_tool_calls(&ToolCallQuery { limit: 10, ..ToolCallQuery::default() }).await.unwrap();
        let ids: Vec<&str> = ten.iter().map(|r| r.request_id.as_str()).collect();
        let want: Vec<String> = (990..1000).rev().map(|i| format!("req-{i}")).collect();
        assert_eq!(ids, want);

        let q = |tool: Option<&str>, session: Option<&str>, outcome, since| ToolCallQuery {
            limit: 0,
            tool: tool.map(str::to_string),
            session_id: session.map(str::to_string),
            outcome,
            since_ms: since,
        };
        let chat = s.recent_tool_calls(&q(Some("chat"), None, None, None)).await.unwrap();
        assert_eq!(chat.len(), 334);
        assert!(chat.iter().all(|r| r.tool == "chat"));

        let sess = s.recent_tool_calls(&q(None, Some("sess-1"), None, None)).await.unwrap();
        assert_eq!(sess.len(), 500);
        assert!(sess.iter().all(|r| r.session_id == "sess-1"));

        let timeouts = s.recent_tool_calls(&q(None, None, Some(CallOutcome::Timeout), None)).await.unwrap();
        assert_eq!(timeouts.len(), 200);
        assert!(timeouts.iter().all(|r| r.outcome == CallOutcome::Timeout));

        let recent = s.recent_tool_calls(&q(None, None, None, Some(1_700_000_000_000 + 990))).await.unwrap();
        assert_eq!(recent.len(), 10);

        // All filters at once: i % 3 == 0, i % 2 == 0, i % 5 == 0, i >= 900 → i % 30 == 0.
        let combined = s
            .recent_tool_calls(&q(Some("chat"), Some("sess-0"), Some(CallOutcome::Ok), Some(1_700_000_000_000 + 900)))
            .await
            .unwrap();
        let got: Vec<&str> = combined.iter().map(|r| r.request_id.as_str()).collect();
        let want: Vec<String> = (900..1000).rev().filter(|i| i % 30 == 0).map(|i| format!("req-{i}")).collect();
        assert_eq!(got, want);

        let none = s.recent_tool_calls(&q(Some("nope"), None, None, None)).await.unwrap();
        assert!(none.is_empty());
        s.close().await;
    })
    .await;
}

/// `request_id`s of every stored tool call, oldest first.
async fn stored_requests(s: &dyn Store) -> Vec<String> {
    let all = s.recent_tool_calls(&ToolCallQuery { limit: 0, ..ToolCallQuery::default() }).await.unwrap();
    all.into_iter().rev().map(|r| r.request_id).collect()
}

fn requests(range: std::ops::Range<i64>) -> Vec<String> {
    range.map(|i| format!("req-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_retention_by_age_and_by_count_in_bounded_batches() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let t0 = 1_700_000_000_000;
        // Nothing stored, nothing due.
        assert_eq!(s.prune_tool_calls(Some(t0 + 10), Some(5), 100).await.unwrap(), 0);
        let rows: Vec<ToolCallRecord> = (0..100).map(tool_call).collect();
        s.record_tool_calls(&rows).await.unwrap();

        // By age: rows started before t0 + 30 (req-0..req-29), never more than the batch.
        assert_eq!(s.prune_tool_calls(Some(t0 + 30), None, 8).await.unwrap(), 8);
        assert_eq!(stored_requests(&*s).await, requests(8..100), "the oldest go first");
        assert_eq!(s.prune_tool_calls(Some(t0 + 30), None, 100).await.unwrap(), 22);
        assert_eq!(s.prune_tool_calls(Some(t0 + 30), None, 100).await.unwrap(), 0, "nothing more is due");
        assert_eq!(stored_requests(&*s).await, requests(30..100));

        // By count: keep the newest 50.
        assert_eq!(s.prune_tool_calls(None, Some(50), 100).await.unwrap(), 20);
        assert_eq!(stored_requests(&*s).await, requests(50..100));
        assert_eq!(s.prune_tool_calls(None, Some(50), 100).await.unwrap(), 0);

        // Both limits in one call share the batch: age takes req-50..54, count the next 5.
        assert_eq!(s.prune_tool_calls(Some(t0 + 55), Some(20), 10).await.unwrap(), 10);
        assert_eq!(stored_requests(&*s).await, requests(60..100));

        // The core's pass loops batches until nothing is due and counts what it deleted.
        let metrics = exai_actors::metrics::Metrics::new().unwrap();
        let limits = exai_actors::toollog::Retention { max_age: None, max_rows: Some(7) };
        let pruned = exai_actors::toollog::prune(&*s, limits, t0, &metrics).await.unwrap();
        assert_eq!(pruned, 33);
        assert_eq!(metrics.toollog_pruned.get(), 33);
        assert_eq!(stored_requests(&*s).await, requests(93..100));
        // Age measured from `now`: with now = t0 + 96 + 1 day, a one-day limit leaves req-96..99.
        let limits = exai_actors::toollog::Retention { max_age: Some(Duration::from_secs(86_400)), max_rows: None };
        let pruned = exai_actors::toollog::prune(&*s, limits, t0 + 96 + 86_400_000, &metrics).await.unwrap();
        assert_eq!(pruned, 3);
        assert_eq!(stored_requests(&*s).await, requests(96..100));
        // New rows after pruning keep their ids growing: the count limit still holds.
        let more: Vec<ToolCallRecord> = (100..110).map(tool_call).collect();
        s.record_tool_calls(&more).await.unwrap();
        assert_eq!(s.prune_tool_calls(None, Some(5), 100).await.unwrap(), 9);
        assert_eq!(stored_requests(&*s).await, requests(105..110));
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_upsert_get_close() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        assert_eq!(s.get_session("missing").await.unwrap(), None);
        let mut rec = SessionRecord {
            id: "sess-a".into(),
            protocol: "mcp-ws".into(),
            client_name: Some("claude-code".into()),
            client_version: Some("2.0.1".into()),
            created_at_ms: 10,
            last_seen_at_ms: 10,
            closed_at_ms: None,
            metadata: json!({"ip": "127.0.0.1"}),
        };
        s.upsert_session(&rec).await.unwrap();
        assert_eq!(s.get_session("sess-a").await.unwrap(), Some(rec.clone()));

        // Update: created_at is kept; unknown client info does not erase the known one.
        let update = SessionRecord {
            created_at_ms: 99,
            last_seen_at_ms: 50,
            client_name: None,
            client_version: None,
            metadata: json!({"ip": "127.0.0.1", "calls": 3}),
            ..rec.clone()
        };
        s.upsert_session(&update).await.unwrap();
        rec.last_seen_at_ms = 50;
        rec.metadata = json!({"ip": "127.0.0.1", "calls": 3});
        assert_eq!(s.get_session("sess-a").await.unwrap(), Some(rec.clone()));

        s.close_session("sess-a", 70).await.unwrap();
        let closed = s.get_session("sess-a").await.unwrap().unwrap();
        assert_eq!(closed.closed_at_ms, Some(70));
        assert_eq!(closed.last_seen_at_ms, 70);

        match s.close_session("missing", 70).await {
            Err(StoreError::NotFound(_)) => {}
            other => panic!("expected NotFound, got {other:?}"),
        }
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_create_get_and_duplicate() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let c = conversation("c1", "cont-1");
        s.create_conversation(&c).await.unwrap();
        assert_eq!(s.get_conversation("cont-1").await.unwrap(), Some(c));
        assert_eq!(s.get_conversation("cont-unknown").await.unwrap(), None);

        match s.create_conversation(&conversation("c2", "cont-1")).await {
            Err(StoreError::Constraint(_)) => {}
            other => panic!("expected Constraint for duplicate continuation id, got {other:?}"),
        }
        match s.create_conversation(&conversation("c1", "cont-2")).await {
            Err(StoreError::Constraint(_)) => {}
            other => panic!("expected Constraint for duplicate id, got {other:?}"),
        }
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_message_is_idempotent() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        s.create_conversation(&conversation("c1", "cont-1")).await.unwrap();

        let first = s.append_message(&message("c1", "k1", "hello", 2_000)).await.unwrap();
        assert_eq!(first.seq, 1);
        assert_eq!(first.content, "hello");
        // Same key again (even with other content): the stored row, nothing inserted.
        let again = s.append_message(&message("c1", "k1", "changed", 3_000)).await.unwrap();
        assert_eq!(again, first);

        let listed = s.list_messages("c1", 0).await.unwrap();
        assert_eq!(listed, vec![first.clone()]);
        let conv = s.get_conversation("cont-1").await.unwrap().unwrap();
        assert_eq!(conv.turn_count, 1);
        assert_eq!(conv.updated_at_ms, 2_000);

        // The key belongs to c1; reusing it for another conversation is rejected.
        s.create_conversation(&conversation("c2", "cont-2")).await.unwrap();
        match s.append_message(&message("c2", "k1", "hello", 4_000)).await {
            Err(StoreError::Constraint(_)) => {}
            other => panic!("expected Constraint for a key of another conversation, got {other:?}"),
        }
        assert!(s.list_messages("c2", 0).await.unwrap().is_empty());
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_sequenced_and_listed_in_order() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        s.create_conversation(&conversation("c1", "cont-1")).await.unwrap();
        s.create_conversation(&conversation("c2", "cont-2")).await.unwrap();
        for i in 1..=5_i64 {
            let mut m = message("c1", &format!("c1-k{i}"), &format!("turn {i}"), 1_000 + i);
            if i % 2 == 0 {
                m.role = MessageRole::Assistant;
                m.model = Some("kimi-k2".into());
            }
            let stored = s.append_message(&m).await.unwrap();
            assert_eq!(stored.seq, i);
            assert_eq!(stored.role, m.role);
            assert_eq!(stored.model, m.model);
        }
        // Sequences are per conversation.
        let other = s.append_message(&message("c2", "c2-k1", "x", 5)).await.unwrap();
        assert_eq!(other.seq, 1);

        let all = s.list_messages("c1", 0).await.unwrap();
        let seqs: Vec<i64> = all.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4, 5]);
        assert_eq!(all[2].content, "turn 3");
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));

        // A limit keeps the newest messages, still oldest first.
        let last_two = s.list_messages("c1", 2).await.unwrap();
        let seqs: Vec<i64> = last_two.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, [4, 5]);
        assert_eq!(s.list_messages("c1", 100).await.unwrap().len(), 5);
        assert!(s.list_messages("unknown", 10).await.unwrap().is_empty());

        let conv = s.get_conversation("cont-1").await.unwrap().unwrap();
        assert_eq!(conv.turn_count, 5);
        assert_eq!(conv.updated_at_ms, 1_005);
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_gapless_seq() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        s.create_conversation(&conversation("c1", "cont-1")).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = Arc::clone(&s);
            tasks.push(tokio::spawn(async move {
                s.append_message(&message("c1", &format!("k{i}"), &format!("m{i}"), 100 + i)).await.unwrap()
            }));
        }
        let mut seqs = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());

        // Concurrent retries of one key insert once.
        let mut retries = Vec::new();
        for _ in 0..8 {
            let s = Arc::clone(&s);
            retries.push(tokio::spawn(
                async move { s.append_message(&message("c1", "retry", "same", 500)).await.unwrap() },
            ));
        }
        let mut ids = Vec::new();
        for t in retries {
            ids.push(t.await.unwrap().id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one row for one key");

        let listed = s.list_messages("c1", 0).await.unwrap();
        assert_eq!(listed.len(), 21);
        assert_eq!(listed.last().unwrap().seq, 21);
        let conv = s.get_conversation("cont-1").await.unwrap().unwrap();
        assert_eq!(conv.turn_count, 21);
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_to_unknown_conversation_fails() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        match s.append_message(&message("nope", "k1", "hello", 1)).await {
            Err(StoreError::NotFound(_) | StoreError::Constraint(_)) => {}
            other => panic!("expected NotFound or Constraint, got {other:?}"),
        }
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_metadata_round_trips() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let meta = json!({
            "tokens": {"prompt": 1234, "completion": 56, "total": 1290},
            "latency_ms": 812.5,
            "tags": ["a", "b", "ünïcödé ✓", "quote\"and\\backslash"],
            "nested": {"deep": [{"x": null}, true, false, -7]},
            "empty": {},
        });
        let session = SessionRecord {
            id: "s1".into(),
            protocol: "stdio".into(),
            client_name: None,
            client_version: None,
            created_at_ms: 1,
            last_seen_at_ms: 1,
            closed_at_ms: None,
            metadata: meta.clone(),
        };
        s.upsert_session(&session).await.unwrap();
        assert_eq!(s.get_session("s1").await.unwrap().unwrap().metadata, meta);

        let mut conv = conversation("c1", "cont-1");
        conv.metadata = meta.clone();
        s.create_conversation(&conv).await.unwrap();
        assert_eq!(s.get_conversation("cont-1").await.unwrap().unwrap().metadata, meta);

        let mut m = message("c1", "k1", "hi", 5);
        m.metadata = meta.clone();
        assert_eq!(s.append_message(&m).await.unwrap().metadata, meta);
        assert_eq!(s.list_messages("c1", 0).await.unwrap()[0].metadata, meta);

        // Non-object JSON values are stored as given.
        let mut m2 = message("c1", "k2", "hi", 6);
        m2.metadata = json!([1, "two", null]);
        assert_eq!(s.append_message(&m2).await.unwrap().metadata, json!([1, "two", null]));
        s.close().await;
    })
    .await;
}

#[tokio::test]
async fn unsupported_scheme_is_named() {
    match store::open("mysql://root:hunter2@localhost/db", &StoreOptions::default()).await {
        Err(StoreError::Unavailable(msg)) => {
            assert!(msg.contains("mysql"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
        Err(other) => panic!("unexpected error {other:?}"),
        Ok(_) => panic!("mysql URL accepted"),
    }
}

#[tokio::test]
async fn plain_file_path_opens_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("exai.db");
    let s = open(path.to_str().unwrap()).await;
    assert_eq!(s.backend(), "sqlite");
    assert!(s.migration_status().await.unwrap().is_current());
    s.close().await;
    assert!(path.exists());
}

#[tokio::test]
async fn in_memory_sqlite_keeps_data_across_calls() {
    let s = open("sqlite::memory:").await;
    s.create_conversation(&conversation("c1", "cont-1")).await.unwrap();
    s.append_message(&message("c1", "k1", "hi", 1)).await.unwrap();
    assert_eq!(s.list_messages("c1", 0).await.unwrap().len(), 1);
    s.close().await;
}

#[test]
fn redact_url_hides_passwords() {
    let url = "postgres://app:hunter2@db:5432/exai?password=other";
    let shown = store::redact_url(url);
    assert!(!shown.contains("hunter2") && !shown.contains("other"), "{shown}");
    assert_eq!(shown, "postgres://app:***@db:5432/exai?password=***");
}
