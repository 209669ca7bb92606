//! `Store::apply_turns`, conversation write-behind's batch write: threads created with their
//! first turn, messages of several threads interleaved in one batch, order and turn counts
//! kept, a replayed batch stores nothing twice — on SQLite and PostgreSQL.

use super::{conversation, message, open};
use exai_actors::ports::TurnRecord;
use harness::on_each_backend;

use super::harness;

fn turn(conv: Option<&str>, cid: &str, keys: &[&str]) -> TurnRecord {
    TurnRecord {
        continuation_id: cid.into(),
        conversation: conv.map(|id| conversation(id, cid)),
        messages: keys.iter().map(|k| message(if cid == "cont-a" { "a" } else { "b" }, k, k, 5_000)).collect(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_creates_threads_and_appends_in_order_idempotently() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let batch = [
            turn(Some("a"), "cont-a", &["a1", "a2"]),
            turn(Some("b"), "cont-b", &["b1", "b2"]),
            turn(None, "cont-a", &["a3", "a4"]),
        ];
        let refs: Vec<&TurnRecord> = batch.iter().collect();
        s.apply_turns(&refs).await.unwrap();
        // Applied again (a replay after a crash): nothing changes.
        s.apply_turns(&refs).await.unwrap();
        let a: Vec<(i64, String)> =
            s.list_messages("a", 0).await.unwrap().into_iter().map(|m| (m.seq, m.content)).collect();
        assert_eq!(a, [(1, "a1"), (2, "a2"), (3, "a3"), (4, "a4")].map(|(q, c)| (q, c.to_string())));
        let b: Vec<String> = s.list_messages("b", 0).await.unwrap().into_iter().map(|m| m.content).collect();
        assert_eq!(b, ["b1", "b2"]);
        assert_eq!(s.get_conversation("cont-a").await.unwrap().unwrap().turn_count, 4);
        assert_eq!(s.get_conversation("cont-b").await.unwrap().unwrap().turn_count, 2);
        // A later batch continues the sequence.
        let next = turn(None, "cont-a", &["a5", "a6"]);
        s.apply_turns(&[&next]).await.unwrap();
        let last = s.list_messages("a", 0).await.unwrap().pop().unwrap();
        assert_eq!((last.seq, last.content.as_str()), (6, "a6"));
        s.close().await;
    })
    .await;
}
