//! Conversation threads (`continuation_id`): stored through the `Store` port, re-sent to the
//! provider on every turn (the vendor APIs are stateless), capped in turns, expiring after a
//! configured time, and owned by the principal that created them
//! ([`crate::access::principal`]: the token, or every local client when none is set): any
//! connection, session or transport of that principal may continue a thread, also after a
//! restart; another principal may not, unless `conversations.cross_session` allows it.
//! The owner is kept in the thread's metadata (`owner`); threads stored before owners existed
//! have none and may be continued by anyone admitted.
//!
//! Each exchange appends the user and the assistant message with idempotency keys derived
//! from (conversation, the server's call id, role): a replayed journal record or a retried
//! store write stores nothing twice, and two calls never share a key — clients reuse their
//! JSON-RPC request ids (every connection starts again at 0 or 1), so a key built from the
//! request id silently dropped the second turn that reused one. A thread is created only when its first exchange succeeds.
//!
//! Two ways to store a turn: directly through the store before the reply (`Conversations::new`),
//! or write-behind (`Conversations::with_write_behind`): the turn goes into the
//! [`journal`] before the reply and the [`writer`] applies it to the store behind it; a
//! continuation waits for its thread's queued turns, and a restart replays the journal.

pub mod journal;
pub mod writer;

use crate::clock::now_ms;
use crate::error::ToolError;
use crate::ports::{ConversationRecord, MessageRecord, MessageRole, NewMessage, Store, StoreError};
use crate::provider::types::ChatMessage;
use crate::storage_health::{StorageHealth, Writer};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
use writer::WriteBehind;

/// Limits of conversation threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConversationSettings {
    /// Most user/assistant exchanges per thread.
    pub max_turns: u32,
    /// Lifetime of a thread from its creation.
    pub ttl: Duration,
    /// Allow continuing a thread owned by another principal.
    pub cross_session: bool,
}

impl Default for ConversationSettings {
    fn default() -> Self {
        ConversationSettings { max_turns: 20, ttl: Duration::from_secs(3 * 3600), cross_session: false }
    }
}

/// An open thread: its record and its stored history.
#[derive(Debug, Clone)]
pub struct Thread {
    /// The stored record (not yet stored when `is_new`).
    pub record: ConversationRecord,
    /// Messages so far, oldest first.
    pub history: Vec<MessageRecord>,
    /// True for a thread that starts with this call.
    pub is_new: bool,
    /// True once the thread's record is stored (or journaled with a turn).
    pub stored: bool,
}

impl Thread {
    /// Exchanges made so far.
    pub fn turns(&self) -> u32 {
        (self.record.turn_count / 2) as u32
    }

    /// The history as chat messages.
    pub fn messages(&self) -> Vec<ChatMessage> {
        self.history.iter().map(|m| ChatMessage::text(m.role.as_str(), m.content.clone())).collect()
    }
}

/// The thread service.
pub struct Conversations {
    store: Arc<dyn Store>,
    settings: ConversationSettings,
    write_behind: Option<Arc<WriteBehind>>,
    health: Arc<StorageHealth>,
}

fn bad(message: impl Into<String>) -> ToolError {
    ToolError::InvalidArguments { field: "continuation_id".into(), message: message.into() }
}

fn unavailable(e: crate::ports::StoreError) -> ToolError {
    ToolError::Unavailable(format!("conversation store: {e}"))
}

/// A message's idempotency key: the thread id, then a digest of the thread, the call and
/// the role. The thread-id prefix keeps a thread's keys together in the unique index (thread
/// ids are time-ordered, so new keys land at its end instead of on a random page).
fn key(conversation: &str, call_id: &str, role: &str) -> String {
    let mut h = Sha256::new();
    h.update(conversation.as_bytes());
    h.update([0]);
    h.update(call_id.as_bytes());
    h.update([0]);
    h.update(role.as_bytes());
    let digest = h.finalize();
    let mut out = String::with_capacity(conversation.len() + 1 + 32);
    out.push_str(conversation);
    out.push(':');
    for b in &digest[..16] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

impl Conversations {
    /// A service over `store`.
    pub fn new(store: Arc<dyn Store>, settings: ConversationSettings) -> Conversations {
        Conversations { store, settings, write_behind: None, health: Arc::default() }
    }

    /// Refuse new turns while `health` says they cannot be stored, and report direct writes
    /// to it (see [`crate::storage_health`]).
    pub fn with_storage_health(mut self, health: Arc<StorageHealth>) -> Conversations {
        self.health = health;
        self
    }

    /// A service storing turns write-behind through `wb` (see the module doc).
    pub fn with_write_behind(
        store: Arc<dyn Store>,
        settings: ConversationSettings,
        wb: Arc<WriteBehind>,
    ) -> Conversations {
        Conversations { store, settings, write_behind: Some(wb), health: Arc::default() }
    }

    /// The limits.
    pub fn settings(&self) -> ConversationSettings {
        self.settings
    }

    /// Continue `continuation_id` (checked: exists, not expired, owned by `principal`, under
    /// the turn cap) or prepare a new thread for `tool`, owned by `principal` and recording
    /// the `session` that started it.
    pub async fn open(
        &self,
        continuation_id: Option<&str>,
        session: &str,
        principal: &str,
        tool: &str,
    ) -> Result<Thread, ToolError> {
        // A turn that could not be stored must not be paid for: refuse it before the provider.
        self.health.check()?;
        let now = now_ms();
        let Some(cid) = continuation_id.map(str::trim).filter(|c| !c.is_empty()) else {
            // Time-ordered (UUIDv7: 48-bit ms timestamp, 74 random bits): a new thread's rows
            // go to the end of every index keyed by it, which is what keeps the store's work
            // per turn small (random ids touch a random page of each index per insert).
            let id = uuid::Uuid::now_v7().to_string();
            return Ok(Thread {
                record: ConversationRecord {
                    id: id.clone(),
                    continuation_id: id,
                    session_id: Some(session.to_string()),
                    tool: tool.to_string(),
                    model: None,
                    provider: None,
                    turn_count: 0,
                    created_at_ms: now,
                    updated_at_ms: now,
                    expires_at_ms: now + self.settings.ttl.as_millis() as i64,
                    metadata: json!({ "owner": principal }),
                },
                history: Vec::new(),
                is_new: true,
                stored: false,
            });
        };
        if let Some(wb) = &self.write_behind {
            wb.settled(cid).await;
        }
        let rec = self
            .store
            .get_conversation(cid)
            .await
            .map_err(unavailable)?
            .ok_or_else(|| bad(format!("unknown continuation_id '{cid}'")))?;
        if rec.expires_at_ms <= now {
            return Err(bad(format!("continuation_id '{cid}' has expired; start a new conversation")));
        }
        let owner = rec.metadata.get("owner").and_then(Value::as_str);
        if !self.settings.cross_session && owner.is_some_and(|o| o != principal) {
            return Err(bad(format!("continuation_id '{cid}' belongs to another user (token)")));
        }
        if (rec.turn_count / 2) as u32 >= self.settings.max_turns {
            return Err(bad(format!(
                "continuation_id '{cid}' reached the turn limit ({}); start a new conversation",
                self.settings.max_turns
            )));
        }
        let history = self.store.list_messages(&rec.id, self.settings.max_turns * 2 + 2).await.map_err(unavailable)?;
        Ok(Thread { record: rec, history, is_new: false, stored: true })
    }

    /// Store a new thread's record now (idempotent), e.g. while the provider is working.
    /// Write-behind stores it with the thread's first turn instead, so this does nothing then.
    pub async fn create(&self, thread: &mut Thread) -> Result<(), ToolError> {
        if self.write_behind.is_some() || thread.stored {
            return Ok(());
        }
        self.store.ensure_conversation(&thread.record).await.map_err(unavailable)?;
        thread.stored = true;
        Ok(())
    }

    /// Store one exchange. Creates the thread (locking its model) on its first exchange.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_exchange(
        &self,
        thread: &mut Thread,
        call_id: &str,
        user: &str,
        assistant: &str,
        model: &str,
        provider: &str,
        metadata: Value,
    ) -> Result<(), ToolError> {
        if thread.is_new {
            thread.record.model = Some(model.to_string());
            thread.record.provider = Some(provider.to_string());
        }
        self.record_step(thread, call_id, (user, json!({})), (assistant, metadata), Some(model)).await
    }

    /// Store one user/assistant pair with their metadata, creating the thread on its first
    /// pair without locking a model (workflow threads route every step afresh). `key_base` makes
    /// the append idempotent: the same key stores nothing twice. `model` is recorded on the
    /// assistant message when a model produced it.
    pub async fn record_step(
        &self,
        thread: &mut Thread,
        key_base: &str,
        user: (&str, Value),
        assistant: (&str, Value),
        model: Option<&str>,
    ) -> Result<(), ToolError> {
        let first = !thread.stored;
        if first && self.write_behind.is_none() {
            self.store.ensure_conversation(&thread.record).await.map_err(unavailable)?;
        }
        thread.is_new = false;
        thread.stored = true;
        let now = now_ms();
        let conv = thread.record.id.clone();
        let msgs: Vec<NewMessage> = [(MessageRole::User, user), (MessageRole::Assistant, assistant)]
            .into_iter()
            .map(|(role, (content, meta))| NewMessage {
                conversation_id: conv.clone(),
                role,
                content: content.to_string(),
                model: model.filter(|_| role == MessageRole::Assistant).map(str::to_string),
                metadata: meta,
                idempotency_key: key(&conv, key_base, role.as_str()),
                created_at_ms: now,
            })
            .collect();
        if let Some(wb) = &self.write_behind {
            let next = thread.history.last().map_or(0, |h| h.seq);
            // Not stored yet: row id 0, the positions the store will give them.
            let stored: Vec<MessageRecord> =
                msgs.iter().enumerate().map(|(i, m)| m.stored(0, next + 1 + i as i64)).collect();
            let rec = journal::TurnRecord {
                continuation_id: thread.record.continuation_id.clone(),
                conversation: first.then(|| thread.record.clone()),
                messages: msgs,
            };
            wb.submit(rec).await.map_err(unavailable)?;
            thread.record.turn_count += stored.len() as i64;
            thread.history.extend(stored);
            return Ok(());
        }
        let appended = self.store.append_messages(&msgs).await;
        match &appended {
            Ok(_) => self.health.wrote(Writer::Conversations),
            Err(StoreError::DiskFull(m)) => self.health.disk_full(Writer::Conversations, m),
            Err(_) => {}
        }
        for rec in appended.map_err(unavailable)? {
            if !thread.history.iter().any(|h| h.id == rec.id) {
                thread.history.push(rec);
                thread.record.turn_count += 1;
            }
        }
        Ok(())
    }

    /// Exchanges left before the cap.
    pub fn remaining(&self, thread: &Thread) -> u32 {
        self.settings.max_turns.saturating_sub(thread.turns())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn message_keys_start_with_the_thread_and_are_stable_per_request_and_role() {
        let k = key("t1", "req-1", "user");
        assert!(k.starts_with("t1:"), "{k}");
        assert_eq!(k.len(), "t1:".len() + 32);
        assert_eq!(k, key("t1", "req-1", "user"), "the same request gives the same key");
        assert_ne!(k, key("t1", "req-1", "assistant"));
        assert_ne!(k, key("t1", "req-2", "user"));
        assert_ne!(key("t1", "req-1", "user")[3..], key("t2", "req-1", "user")[3..], "the digest covers the thread");
    }

    #[tokio::test]
    async fn new_thread_ids_are_time_ordered_uuids() {
        let store: Arc<dyn Store> = Arc::new(crate::tools::ai::testkit::MemStore::default());
        let c = Conversations::new(store, ConversationSettings::default());
        let a = c.open(None, "s", "local", "chat").await.unwrap().record.id;
        std::thread::sleep(Duration::from_millis(2));
        let b = c.open(None, "s", "local", "chat").await.unwrap().record.id;
        for id in [&a, &b] {
            assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7, "{id}");
        }
        assert!(a < b, "a later thread sorts after an earlier one: {a} {b}");
    }
}
