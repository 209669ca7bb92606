//! Write-behind against an in-memory store: turns reach the store in order, a continuation
//! waits for its queued turns, a restart replays the journal, a stuck writer holds turns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::conversation::{ConversationSettings, Conversations};
use crate::tools::ai::testkit::MemStore;

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("exai-writer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

async fn exchange(c: &Conversations, cid: Option<&str>, n: u32) -> String {
    let mut t = c.open(cid, "s1", "local", "chat").await.unwrap();
    let req = format!("req-{n}");
    c.record_exchange(&mut t, &req, &format!("q{n}"), &format!("a{n}"), "m", "p", serde_json::json!({})).await.unwrap();
    t.record.continuation_id.clone()
}

#[actix_rt::test]
async fn turns_reach_the_store_in_order_and_a_continuation_sees_them() {
    let d = dir("order");
    let store = Arc::new(MemStore::default());
    let wb = WriteBehind::open(&d, store.clone(), 16, Metrics::new().unwrap()).await.unwrap();
    let writer = ConversationWriter::new(Arc::clone(&wb), None).start();
    let c = Conversations::with_write_behind(store.clone(), ConversationSettings::default(), Arc::clone(&wb));
    let cid = exchange(&c, None, 1).await;
    // The continuation waits for the first turn, then adds its own.
    exchange(&c, Some(&cid), 2).await;
    let t = c.open(Some(&cid), "s1", "local", "chat").await.unwrap();
    let texts: Vec<_> = t.history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["q1", "a1", "q2", "a2"]);
    assert_eq!(t.record.turn_count, 4);
    writer.send(Drain).await.unwrap();
    assert_eq!(wb.pending(), 0);
    assert_eq!(wb.journal().live_bytes(), 0, "a drained journal is empty");
    let _ = std::fs::remove_dir_all(&d);
}

#[actix_rt::test]
async fn a_restart_replays_turns_the_writer_never_applied() {
    let d = dir("replay");
    let store = Arc::new(MemStore::default());
    let cid = {
        let wb = WriteBehind::open(&d, store.clone(), 16, Metrics::new().unwrap()).await.unwrap();
        wb.set_paused(true);
        let c = Conversations::with_write_behind(store.clone(), ConversationSettings::default(), Arc::clone(&wb));
        let cid = exchange(&c, None, 1).await;
        assert_eq!(wb.pending(), 1);
        // A paused (stuck) writer applies nothing, not even at drain: the turn stays journaled.
        assert_eq!(wb.drain().await, 1);
        assert!(store.get_conversation(&cid).await.unwrap().is_none());
        cid
    };
    let metrics = Metrics::new().unwrap();
    let wb = WriteBehind::open(&d, store.clone(), 16, metrics.clone()).await.unwrap();
    assert_eq!(metrics.conversation_journal_replayed.get(), 1);
    let c = Conversations::with_write_behind(store.clone(), ConversationSettings::default(), wb);
    let t = c.open(Some(&cid), "s1", "local", "chat").await.unwrap();
    assert_eq!(t.history.len(), 2, "the replayed turn is stored");
    assert_eq!(t.record.model.as_deref(), Some("m"), "the thread's record came with its first turn");
    let _ = std::fs::remove_dir_all(&d);
}
