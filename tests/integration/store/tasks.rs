//! Behaviour of the `TaskStore` part of both adapters: tasks are scoped to their principal,
//! a terminal status is written once (a cancel and a finish racing leave one of them),
//! expired tasks are invisible and then deleted, listing pages newest first, and unfinished
//! tasks can be failed at start-up.

use exai_actors::tasks::{TaskCursor, TaskRecord, TaskStatus, TaskStore};
use serde_json::json;
use std::sync::Arc;

use super::harness::on_each_backend;
use super::open;

fn task(id: u128, principal: &str, created_at_ms: i64, ttl_ms: i64) -> TaskRecord {
    TaskRecord {
        task_id: uuid::Uuid::from_u128(id).to_string(),
        principal: principal.to_string(),
        session_id: "sess-1".into(),
        tool: "chat".into(),
        status: TaskStatus::Working,
        status_message: None,
        result: None,
        created_at_ms,
        updated_at_ms: created_at_ms,
        ttl_ms,
        expires_at_ms: created_at_ms + ttl_ms,
        poll_interval_ms: 1_000,
    }
}

fn tasks_of(s: &Arc<dyn exai_actors::ports::Store>) -> Arc<dyn TaskStore> {
    s.task_store().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_scoped_to_their_principal_and_finish_once() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let t = tasks_of(&s);
        let a = task(1, "alice", 1_000, 60_000);
        t.create_task(&a).await.unwrap();
        assert!(t.create_task(&a).await.is_err(), "a repeated id is refused");
        let got = t.get_task("alice", &a.task_id, 2_000).await.unwrap().unwrap();
        assert_eq!(got, a);
        assert_eq!(t.get_task("bob", &a.task_id, 2_000).await.unwrap(), None, "another principal sees nothing");
        let unknown = uuid::Uuid::from_u128(99).to_string();
        assert_eq!(t.get_task("alice", &unknown, 2_000).await.unwrap(), None);

        let result = json!({"content": [{"type": "text", "text": "done"}], "isError": false});
        assert!(t.finish_task(&a.task_id, TaskStatus::Completed, None, Some(&result), 3_000).await.unwrap());
        // Terminal stays terminal: a late cancel writes nothing.
        assert!(!t
            .finish_task(&a.task_id, TaskStatus::Cancelled, Some("late"), Some(&json!({})), 4_000)
            .await
            .unwrap());
        let done = t.get_task("alice", &a.task_id, 5_000).await.unwrap().unwrap();
        assert_eq!(done.status, TaskStatus::Completed);
        assert_eq!(done.result, Some(result));
        assert_eq!(done.updated_at_ms, 3_000);
        assert_eq!(done.status_message, None);
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_tasks_are_invisible_then_deleted() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let t = tasks_of(&s);
        let short = task(1, "alice", 1_000, 1_000);
        let long = task(2, "alice", 1_000, 100_000);
        t.create_task(&short).await.unwrap();
        t.create_task(&long).await.unwrap();
        assert!(t.get_task("alice", &short.task_id, 1_999).await.unwrap().is_some());
        assert_eq!(t.get_task("alice", &short.task_id, 2_000).await.unwrap(), None, "gone at its expiry");
        assert_eq!(t.list_tasks("alice", None, 10, 2_000).await.unwrap().len(), 1);
        // An expired task can no longer be finished either.
        assert!(!t.finish_task(&short.task_id, TaskStatus::Completed, None, None, 2_500).await.unwrap());
        assert_eq!(t.delete_expired_tasks(2_000).await.unwrap(), 1);
        assert_eq!(t.delete_expired_tasks(2_000).await.unwrap(), 0);
        assert!(t.get_task("alice", &long.task_id, 2_000).await.unwrap().is_some());
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_listing_pages_newest_first_per_principal() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let t = tasks_of(&s);
        // Five of alice's (two share a creation time), one of bob's.
        for (i, at) in [(1u128, 100), (2, 200), (3, 300), (4, 300), (5, 400)] {
            t.create_task(&task(i, "alice", at, 1_000_000)).await.unwrap();
        }
        t.create_task(&task(6, "bob", 250, 1_000_000)).await.unwrap();
        let mut seen = Vec::new();
        let mut after: Option<TaskCursor> = None;
        loop {
            let page = t.list_tasks("alice", after.as_ref(), 2, 1_000).await.unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= 2);
            let last = page.last().unwrap();
            after = Some(TaskCursor { created_at_ms: last.created_at_ms, task_id: last.task_id.clone() });
            seen.extend(page.into_iter().map(|r| r.task_id));
        }
        let want: Vec<String> = [5u128, 4, 3, 2, 1].iter().map(|i| uuid::Uuid::from_u128(*i).to_string()).collect();
        assert_eq!(seen, want);
        assert_eq!(t.list_tasks("bob", None, 10, 1_000).await.unwrap().len(), 1);
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_tasks_can_be_failed_with_a_reason() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let t = tasks_of(&s);
        let running = task(1, "alice", 1_000, 1_000_000);
        let done = task(2, "alice", 1_000, 1_000_000);
        t.create_task(&running).await.unwrap();
        t.create_task(&done).await.unwrap();
        t.finish_task(&done.task_id, TaskStatus::Completed, None, Some(&json!({"content": []})), 2_000).await.unwrap();
        assert_eq!(t.fail_unfinished_tasks("the server stopped", 3_000).await.unwrap(), 1);
        let failed = t.get_task("alice", &running.task_id, 3_000).await.unwrap().unwrap();
        assert_eq!(failed.status, TaskStatus::Failed);
        assert!(failed.status_message.unwrap().contains("the server stopped"));
        let r = failed.result.unwrap();
        assert_eq!(r["isError"], true);
        assert_eq!(r["structuredContent"]["error"]["code"], "CANCELLED");
        let kept = t.get_task("alice", &done.task_id, 3_000).await.unwrap().unwrap();
        assert_eq!(kept.status, TaskStatus::Completed);
        s.close().await;
    })
    .await;
}
