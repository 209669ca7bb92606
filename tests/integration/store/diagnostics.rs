//! Behaviour of the `DiagnosticsStore` part of both adapters: the atomic error upsert,
//! analyses, resolution (and reopening on recurrence), and auditor observations.

use std::sync::Arc;

use exai_actors::ports::{
    ErrorAnalysis, ErrorOccurrence, ErrorQuery, NewObservation, ObservationQuery, Store, StoreError,
};
use serde_json::json;

use super::harness::on_each_backend;
use super::open;

fn occurrence(hash: &str, count: i64, at_ms: i64) -> ErrorOccurrence {
    ErrorOccurrence {
        error_hash: hash.to_string(),
        message: format!("upstream failed after <n> ms ({hash})"),
        error_type: "exai::providers".into(),
        context: json!({ "target": "exai::providers", "sample": format!("upstream failed after {at_ms} ms") }),
        count,
        at_ms,
    }
}

fn observation(n: i64) -> NewObservation {
    NewObservation {
        tool_call_ref: Some(format!("{n}")),
        observation: format!("observation {n}"),
        severity: "medium".into(),
        category: "latency".into(),
        confidence: Some(0.5),
        recommendation: Some("raise the timeout".into()),
        model_used: Some("glm-4.5-flash".into()),
        created_at_ms: 1_000 + n,
        metadata: json!({ "batch": n }),
    }
}

fn not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    match r {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_upsert_counts_and_keeps_first_seen() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let first = s.record_error(&occurrence("h1", 1, 100)).await.unwrap();
        assert!(first.created);
        assert_eq!(first.occurrence_count, 1);
        let again = s.record_error(&occurrence("h1", 3, 300)).await.unwrap();
        assert_eq!((again.id, again.occurrence_count, again.created), (first.id, 4, false));
        // An out-of-order (older) report never moves last_occurrence backwards.
        s.record_error(&occurrence("h1", 1, 200)).await.unwrap();
        let other = s.record_error(&occurrence("h2", 2, 250)).await.unwrap();
        assert!(other.created);
        assert_eq!(other.occurrence_count, 2);

        let all = s.list_errors(&ErrorQuery { resolved: None, limit: 10 }).await.unwrap();
        assert_eq!(all.iter().map(|e| e.error_hash.as_str()).collect::<Vec<_>>(), ["h1", "h2"]);
        let h1 = &all[0];
        assert_eq!(h1.occurrence_count, 5);
        assert_eq!((h1.first_seen_at_ms, h1.last_occurrence_at_ms, h1.created_at_ms), (100, 300, 100));
        assert_eq!(h1.error_context["sample"], "upstream failed after 200 ms", "context is the latest sample");
        assert_eq!(h1.investigation_result, None);
        assert!(!h1.resolved);
        let one = s.list_errors(&ErrorQuery { resolved: Some(false), limit: 1 }).await.unwrap();
        assert_eq!(one.len(), 1);
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_error_upserts_create_one_row() {
    on_each_backend(|url| async move {
        let s: Arc<dyn Store> = open(&url).await;
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let s = Arc::clone(&s);
                tokio::spawn(async move { s.record_error(&occurrence("same", 1, 1_000 + i)).await.unwrap() })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            if t.await.unwrap().created {
                created += 1;
            }
        }
        assert_eq!(created, 1, "exactly one upsert creates the row");
        let all = s.list_errors(&ErrorQuery::default()).await.unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].occurrence_count, 16);
        assert_eq!(all[0].last_occurrence_at_ms, 1_015);
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_analysis_resolution_and_reopening() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let id = s.record_error(&occurrence("h", 1, 10)).await.unwrap().id;
        let analysis = ErrorAnalysis {
            investigation: json!({ "root_cause": "the upstream closed the connection" }),
            fix: Some(json!({ "recommendation": "retry with backoff" })),
            model: "glm-4.5-flash".into(),
            duration_ms: 1234,
        };
        s.set_error_analysis(id, &analysis).await.unwrap();
        not_found(s.set_error_analysis(id + 1000, &analysis).await);
        let e = &s.list_errors(&ErrorQuery::default()).await.unwrap()[0];
        assert_eq!(e.investigation_result, Some(analysis.investigation.clone()));
        assert_eq!(e.fix_recommendation, analysis.fix);
        assert_eq!(e.model_used.as_deref(), Some("glm-4.5-flash"));
        assert_eq!(e.investigation_duration_ms, Some(1234));

        let resolved = s.resolve_error(id, Some("fixed in v2"), 50).await.unwrap();
        assert!(resolved.resolved);
        assert_eq!(resolved.resolved_at_ms, Some(50));
        assert_eq!(resolved.resolution_notes.as_deref(), Some("fixed in v2"));
        assert!(s.list_errors(&ErrorQuery { resolved: Some(false), limit: 0 }).await.unwrap().is_empty());
        assert_eq!(s.list_errors(&ErrorQuery { resolved: Some(true), limit: 0 }).await.unwrap().len(), 1);
        not_found(s.resolve_error(id + 1000, None, 60).await);

        // It happens again: the record reopens, keeping its notes and analysis.
        let again = s.record_error(&occurrence("h", 1, 70)).await.unwrap();
        assert_eq!((again.id, again.occurrence_count, again.created), (id, 2, false));
        let open_again = &s.list_errors(&ErrorQuery { resolved: Some(false), limit: 0 }).await.unwrap()[0];
        assert_eq!(open_again.resolved_at_ms, None);
        assert_eq!(open_again.resolution_notes.as_deref(), Some("fixed in v2"));
        assert_eq!(open_again.investigation_result, Some(analysis.investigation));
        s.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observations_list_and_acknowledge() {
    on_each_backend(|url| async move {
        let s = open(&url).await;
        let mut ids = Vec::new();
        for n in 0..3 {
            ids.push(s.add_observation(&observation(n)).await.unwrap());
        }
        let all = s.list_observations(&ObservationQuery::default()).await.unwrap();
        assert_eq!(all.iter().map(|o| o.id).collect::<Vec<_>>(), ids.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(all[2].fields, observation(0), "fields round-trip");
        assert!(!all[0].acknowledged);

        let acked = s.acknowledge_observation(ids[1], Some("operator"), 500).await.unwrap();
        assert!(acked.acknowledged);
        assert_eq!((acked.acknowledged_at_ms, acked.acknowledged_by.as_deref()), (Some(500), Some("operator")));
        // A second acknowledgement keeps the first time and author.
        let twice = s.acknowledge_observation(ids[1], Some("someone else"), 900).await.unwrap();
        assert_eq!((twice.acknowledged_at_ms, twice.acknowledged_by.as_deref()), (Some(500), Some("operator")));
        not_found(s.acknowledge_observation(ids[2] + 1000, None, 1).await);

        let open = s.list_observations(&ObservationQuery { acknowledged: Some(false), limit: 0 }).await.unwrap();
        assert_eq!(open.iter().map(|o| o.id).collect::<Vec<_>>(), vec![ids[2], ids[0]]);
        let done = s.list_observations(&ObservationQuery { acknowledged: Some(true), limit: 0 }).await.unwrap();
        assert_eq!(done.len(), 1);
        let limited = s.list_observations(&ObservationQuery { acknowledged: None, limit: 2 }).await.unwrap();
        assert_eq!(limited.len(), 2);
        s.close().await;
    })
    .await;
}
