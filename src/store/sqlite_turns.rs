//! SQLite: applying a batch of conversation turns (the write-behind writer's one statement
//! set per batch).
//!
//! Five statements in one `BEGIN IMMEDIATE` transaction, whatever the batch size: the new
//! threads (multi-row insert), the stored highest `seq` of every thread the batch appends to
//! (one query), every message with the `seq` that follows (multi-row insert), and the
//! BEGIN/COMMIT around them. Messages are plain `VALUES` rows: no per-row subquery, so a
//! statement keeps one cursor per table however many rows it carries (a `SELECT … UNION ALL`
//! per row, as before, opened cursors per row and SQLite walks every open cursor of a table
//! on each insert into it: quadratic in the batch).
//!
//! Semantics match one-by-one appends: a repeated idempotency key inserts nothing (its
//! `seq` stays unused: a gap, order kept), a message of a thread that does not exist inserts
//! nothing, a thread that already exists is left as it is.

use std::collections::{HashMap, HashSet};

use exai_actors::ports::{ConversationRecord, NewMessage, StoreError, TurnRecord};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use super::error::map_sqlx;

/// Threads per statement of the `seq` lookup (one bind each).
const IDS_PER_QUERY: usize = 500;
/// Messages per insert (eight binds each; far below SQLite's bind limit, and full chunks
/// reuse one cached statement).
const MESSAGES_PER_INSERT: usize = 100;
/// Threads per insert (eleven binds each).
const THREADS_PER_INSERT: usize = 100;

/// Apply `turns` inside the open transaction `conn`.
pub(super) async fn apply(conn: &mut SqliteConnection, turns: &[&TurnRecord]) -> Result<(), StoreError> {
    let convs: Vec<&ConversationRecord> = turns.iter().filter_map(|t| t.conversation.as_ref()).collect();
    for chunk in convs.chunks(THREADS_PER_INSERT) {
        let mut qb = super::sqlite::insert_conversations(chunk);
        qb.push(" ON CONFLICT DO NOTHING");
        qb.build().execute(&mut *conn).await.map_err(map_sqlx)?;
    }
    let msgs: Vec<&NewMessage> = turns.iter().flat_map(|t| t.messages.iter()).collect();
    let mut last_seq = stored_seqs(conn, &msgs).await?;
    let rows: Vec<(&NewMessage, i64)> = msgs
        .iter()
        .filter_map(|m| {
            let seq = last_seq.get_mut(m.conversation_id.as_str())?;
            *seq += 1;
            Some((*m, *seq))
        })
        .collect();
    for chunk in rows.chunks(MESSAGES_PER_INSERT) {
        insert_messages(chunk).build().execute(&mut *conn).await.map_err(map_sqlx)?;
    }
    Ok(())
}

/// The highest stored `seq` (0 for none) of every existing thread `msgs` append to. Threads
/// that do not exist are absent.
async fn stored_seqs(conn: &mut SqliteConnection, msgs: &[&NewMessage]) -> Result<HashMap<String, i64>, StoreError> {
    let mut seen = HashSet::new();
    let ids: Vec<&str> = msgs.iter().map(|m| m.conversation_id.as_str()).filter(|id| seen.insert(*id)).collect();
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT c.id, COALESCE((SELECT MAX(seq) FROM messages WHERE conversation_id = c.id), 0) \
             FROM conversations c WHERE c.id IN (",
        );
        let mut list = qb.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        qb.push(")");
        let found: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut *conn).await.map_err(map_sqlx)?;
        out.extend(found);
    }
    Ok(out)
}

fn insert_messages<'a>(rows: &[(&'a NewMessage, i64)]) -> QueryBuilder<'a, Sqlite> {
    let mut qb = QueryBuilder::<Sqlite>::new(
        "INSERT INTO messages (conversation_id, seq, role, content, model, metadata, idempotency_key, created_at) ",
    );
    qb.push_values(rows, |mut b, (m, seq)| {
        b.push_bind(&m.conversation_id)
            .push_bind(*seq)
            .push_bind(m.role.as_str())
            .push_bind(&m.content)
            .push_bind(&m.model)
            .push_bind(m.metadata.to_string())
            .push_bind(&m.idempotency_key)
            .push_bind(m.created_at_ms);
    });
    qb.push(" ON CONFLICT (idempotency_key) DO NOTHING");
    qb
}
