//! Journal framing, replay of what a dead process left, truncation and rotation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::ports::{MessageRole, NewMessage};
use serde_json::json;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("exai-journal-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn rec(cid: &str, n: usize) -> TurnRecord {
    TurnRecord {
        continuation_id: cid.into(),
        conversation: None,
        messages: vec![NewMessage {
            conversation_id: cid.into(),
            role: MessageRole::User,
            content: format!("message {n}"),
            model: None,
            metadata: json!({}),
            idempotency_key: format!("{cid}-{n}"),
            created_at_ms: n as i64,
        }],
    }
}

fn append(j: &Journal, r: &TurnRecord) -> u64 {
    j.append_then(&frame(r).unwrap(), |seg| seg).unwrap()
}

#[test]
fn frames_round_trip_and_a_torn_tail_ends_the_replay() {
    let (a, b) = (rec("c", 1), rec("c", 2));
    let mut bytes = frame(&a).unwrap();
    bytes.extend(frame(&b).unwrap());
    assert_eq!(decode(&bytes), (vec![a.clone(), b.clone()], false));
    // Cut inside the second frame: the first survives, the tail is reported torn.
    let cut = &bytes[..bytes.len() - 3];
    assert_eq!(decode(cut), (vec![a.clone()], true));
    // A flipped payload byte fails the checksum.
    let mut bad = bytes.clone();
    let last = bad.len() - 2;
    bad[last] ^= 0x20;
    assert_eq!(decode(&bad), (vec![a], true));
    assert_eq!(decode(&[]), (vec![], false));
}

#[test]
fn open_returns_what_a_dead_process_left_and_retire_removes_it() {
    let d = dir("recover");
    {
        let (j, r) = Journal::open(&d, 1 << 20, 1 << 20).unwrap();
        assert!(r.records.is_empty() && r.files.is_empty());
        append(&j, &rec("x", 1));
        append(&j, &rec("x", 2));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let seg = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap().path()).find(|p| segment_id(p).is_some());
            let mode = std::fs::metadata(seg.unwrap()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "segments are private to the server's user");
        }
        // Dropped without applying: the "process" dies here.
    }
    let (j, r) = Journal::open(&d, 1 << 20, 1 << 20).unwrap();
    assert_eq!(r.records, vec![rec("x", 1), rec("x", 2)]);
    assert!(r.torn.is_empty());
    j.retire(&r.files).unwrap();
    drop(j);
    let (_, again) = Journal::open(&d, 1 << 20, 1 << 20).unwrap();
    assert!(again.records.is_empty(), "retired segments are gone");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn an_applied_live_segment_is_replaced_and_deleted_and_settle_empties_it() {
    let d = dir("truncate");
    let count = || std::fs::read_dir(&d).unwrap().filter(|e| segment_id(&e.as_ref().unwrap().path()).is_some()).count();
    let (j, _) = Journal::open(&d, 1 << 20, 200).unwrap();
    let s1 = append(&j, &rec("t", 1));
    j.applied(s1).unwrap();
    assert!(j.live_bytes() > 0, "below roll_bytes the segment is kept");
    let s2 = append(&j, &rec("t", 2));
    let s3 = append(&j, &rec("t", 3));
    j.applied(s2).unwrap();
    assert!(j.live_bytes() > 200, "a record is still unapplied");
    assert_eq!(j.settle().unwrap(), 1);
    j.applied(s3).unwrap();
    assert_eq!(j.live_bytes(), 0, "all applied past the threshold: a fresh segment");
    assert_eq!(count(), 1, "the applied segment is deleted");
    let s4 = append(&j, &rec("t", 4));
    assert_eq!(s4, s1 + 1, "appends go to the fresh segment");
    j.applied(s4).unwrap();
    assert_eq!(j.settle().unwrap(), 0);
    assert_eq!(j.live_bytes(), 0, "settle empties an applied segment");
    drop(j);
    let (_, r) = Journal::open(&d, 1 << 20, 200).unwrap();
    assert!(r.records.is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_full_segment_rotates_while_behind_and_is_deleted_when_applied() {
    let d = dir("rotate");
    let size = frame(&rec("r", 1)).unwrap().len() as u64;
    let (j, _) = Journal::open(&d, size + 1, 1 << 30).unwrap();
    let a = append(&j, &rec("r", 1));
    let b = append(&j, &rec("r", 2));
    assert_eq!(a, b, "one frame does not reach rotate_bytes");
    let c = append(&j, &rec("r", 3));
    assert_eq!(c, a + 1, "past rotate_bytes with unapplied records: a new segment");
    let count = || std::fs::read_dir(&d).unwrap().filter(|e| segment_id(&e.as_ref().unwrap().path()).is_some()).count();
    assert_eq!(count(), 2);
    j.applied(a).unwrap();
    assert_eq!(count(), 2);
    j.applied(b).unwrap();
    assert_eq!(count(), 1, "the sealed segment is deleted once all its records are applied");
    drop(j);
    let (_, r) = Journal::open(&d, size + 1, 1 << 30).unwrap();
    assert_eq!(r.records, vec![rec("r", 3)], "only the unapplied record is replayed");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_second_server_cannot_open_a_journal_in_use() {
    let d = dir("lock");
    let (j, _) = Journal::open(&d, 1 << 20, 1 << 20).unwrap();
    match Journal::open(&d, 1 << 20, 1 << 20) {
        Err(JournalError::Locked(_)) => {}
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    drop(j);
    assert!(Journal::open(&d, 1 << 20, 1 << 20).is_ok(), "free again once the first is gone");
    let _ = std::fs::remove_dir_all(&d);
}
