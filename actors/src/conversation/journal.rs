//! The conversation journal: append-only segment files of turn records, the durable half of
//! conversation write-behind (see [`super::writer`]).
//!
//! A caller appends its record — one `write(2)` of one framed record, under a mutex, no
//! fsync — before the client is answered. That gives the guarantee SQLite itself gives in WAL
//! mode with `synchronous = NORMAL`: the record survives the process dying (crash, kill,
//! restart), not the machine losing power. At start-up [`Journal::open`] hands back every
//! record an earlier process left, to be applied again before any call is served; applying is
//! idempotent (the conversation insert does nothing when the row exists, messages carry
//! idempotency keys), so a record applied before the crash is harmless to apply twice.
//!
//! Frame: `payload length: u32 LE | xxh3_64(payload): u64 LE | payload (JSON)`. A torn or
//! corrupt frame ends the replay of its segment: the process died inside that `write`, so the
//! client never received an answer for it.
//!
//! Segments are `conversations-<n>.journal`. Once everything written to the live segment has
//! been applied and it has grown past `roll_bytes`, appends move on to a fresh segment and
//! the old one is deleted; when it grows past `rotate_bytes` while the writer is behind,
//! appends move on likewise and the old one is deleted as soon as all its records are
//! applied. Deleting (and truncating) a file is slow kernel work (a millisecond and more on
//! ext4): it happens outside the lock the appenders take, so the reply path never waits for
//! it. [`Journal::settle`] empties the live segment when nothing is pending (clean shutdown),
//! so a clean restart replays nothing.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use crate::ports::TurnRecord;

const HEADER: usize = 12;
/// Largest record accepted on replay (a larger length is treated as corruption).
const MAX_RECORD: usize = 256 * 1024 * 1024;

/// Errors of the journal (I/O and record encoding).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading, writing or creating a segment failed.
    #[error("conversation journal {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: io::Error,
    },
    /// A record could not be encoded.
    #[error("conversation journal record: {0}")]
    Encode(#[from] serde_json::Error),
    /// Another running server holds this journal (the same data directory).
    #[error("conversation journal {0} is in use by another exai server (each server needs its own storage.data_dir)")]
    Locked(String),
}

impl JournalError {
    /// True when the write failed because the disk is full (`ENOSPC`).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, JournalError::Io { source, .. } if source.raw_os_error() == Some(28) || source.kind() == io::ErrorKind::StorageFull)
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.display().to_string(), source }
}

struct Live {
    id: u64,
    path: PathBuf,
    file: File,
    bytes: u64,
    written: u64,
    applied: u64,
}

struct Sealed {
    path: PathBuf,
    written: u64,
    applied: u64,
}

struct State {
    live: Live,
    sealed: BTreeMap<u64, Sealed>,
}

/// The journal of one server's data directory.
pub struct Journal {
    dir: PathBuf,
    _lock: File,
    state: Mutex<State>,
    rotate_bytes: u64,
    roll_bytes: u64,
}

/// What an earlier process left: records to apply again, and the files holding them (delete
/// with [`Journal::retire`] once applied).
pub struct Recovered {
    /// Records in write order.
    pub records: Vec<TurnRecord>,
    /// The segments they came from.
    pub files: Vec<PathBuf>,
    /// Segments whose tail was torn or corrupt.
    pub torn: Vec<PathBuf>,
}

fn segment_id(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("conversations-")?.strip_suffix(".journal")?.parse().ok()
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("conversations-{id:020}.journal"))
}

/// Segments hold prompts and answers: readable by the server's user only.
fn open_append(path: &Path) -> Result<File, JournalError> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path).map_err(io_err(path))
}

/// Encode one record as a frame.
pub fn frame(rec: &TurnRecord) -> Result<Vec<u8>, JournalError> {
    let payload = serde_json::to_vec(rec)?;
    let mut buf = Vec::with_capacity(HEADER + payload.len());
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(buf)
}

/// Decode the valid frames at the start of `bytes`; the flag says a torn or corrupt tail
/// followed them.
pub fn decode(bytes: &[u8]) -> (Vec<TurnRecord>, bool) {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + HEADER) else { return (out, true) };
        let mut len4 = [0u8; 4];
        len4.copy_from_slice(&head[..4]);
        let mut sum8 = [0u8; 8];
        sum8.copy_from_slice(&head[4..]);
        let len = u32::from_le_bytes(len4) as usize;
        if len > MAX_RECORD {
            return (out, true);
        }
        let Some(payload) = bytes.get(at + HEADER..at + HEADER + len) else { return (out, true) };
        if xxhash_rust::xxh3::xxh3_64(payload) != u64::from_le_bytes(sum8) {
            return (out, true);
        }
        match serde_json::from_slice(payload) {
            Ok(r) => out.push(r),
            Err(_) => return (out, true),
        }
        at += HEADER + len;
    }
    (out, false)
}

impl Journal {
    /// Open the journal in `dir` (created if missing): collect what earlier processes left and
    /// start a fresh live segment after them.
    pub fn open(dir: &Path, rotate_bytes: u64, roll_bytes: u64) -> Result<(Journal, Recovered), JournalError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        // One server per journal: a second one would replay and delete the first one's segments.
        let lock_path = dir.join("journal.lock");
        let lock =
            OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(io_err(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(JournalError::Locked(dir.display().to_string())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
        }
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let path = entry.map_err(io_err(dir))?.path();
            if let Some(id) = segment_id(&path) {
                found.push((id, path));
            }
        }
        found.sort();
        let mut rec = Recovered { records: Vec::new(), files: Vec::new(), torn: Vec::new() };
        for (_, path) in &found {
            let mut bytes = Vec::new();
            File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(io_err(path))?;
            let (records, torn) = decode(&bytes);
            if torn {
                rec.torn.push(path.clone());
            }
            rec.records.extend(records);
            rec.files.push(path.clone());
        }
        let id = found.last().map_or(1, |(id, _)| id + 1);
        let path = segment_path(dir, id);
        let file = open_append(&path)?;
        let live = Live { id, path, file, bytes: 0, written: 0, applied: 0 };
        let journal = Journal {
            dir: dir.to_path_buf(),
            _lock: lock,
            state: Mutex::new(State { live, sealed: BTreeMap::new() }),
            rotate_bytes: rotate_bytes.max(1),
            roll_bytes,
        };
        Ok((journal, rec))
    }

    /// Delete segments whose records have all been applied (from [`Recovered::files`]).
    pub fn retire(&self, files: &[PathBuf]) -> Result<(), JournalError> {
        for f in files {
            match std::fs::remove_file(f) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(f)(e)),
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters, not files, half-updated: go on.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Append one framed record; returns the segment it went to. `then` runs under the same
    /// lock right after the write, so records enter the writer's queue in journal order.
    pub fn append_then<R>(&self, frame: &[u8], then: impl FnOnce(u64) -> R) -> Result<R, JournalError> {
        let mut st = self.lock();
        if st.live.bytes >= self.rotate_bytes && st.live.applied < st.live.written {
            let old = self.next_live(&mut st)?;
            st.sealed.insert(old.id, Sealed { path: old.path, written: old.written, applied: old.applied });
        }
        let live = &mut st.live;
        if let Err(e) = live.file.write_all(frame) {
            // A partial frame is a torn tail for replay; cut it so later frames stay readable.
            let _ = live.file.set_len(live.bytes);
            return Err(io_err(&live.path)(e));
        }
        live.bytes += frame.len() as u64;
        live.written += 1;
        Ok(then(live.id))
    }

    /// Start a new live segment after the current one, which is handed back.
    fn next_live(&self, st: &mut State) -> Result<Live, JournalError> {
        let id = st.live.id + 1;
        let path = segment_path(&self.dir, id);
        let file = open_append(&path)?;
        Ok(std::mem::replace(&mut st.live, Live { id, path, file, bytes: 0, written: 0, applied: 0 }))
    }

    /// One record of segment `id` has been applied to the store. A sealed segment whose
    /// records are all applied is deleted; a live one past `roll_bytes` with all its
    /// records applied is replaced by a fresh segment and deleted. The deletes run after the
    /// lock is released.
    pub fn applied(&self, id: u64) -> Result<(), JournalError> {
        let done: Option<PathBuf> = {
            let mut st = self.lock();
            if st.live.id == id {
                st.live.applied += 1;
                if st.live.applied == st.live.written && st.live.bytes >= self.roll_bytes {
                    Some(self.next_live(&mut st)?.path)
                } else {
                    None
                }
            } else {
                match st.sealed.get_mut(&id) {
                    Some(s) if s.applied + 1 >= s.written => st.sealed.remove(&id).map(|s| s.path),
                    Some(s) => {
                        s.applied += 1;
                        None
                    }
                    None => None,
                }
            }
        };
        match done {
            Some(path) => std::fs::remove_file(&path).map_err(io_err(&path)),
            None => Ok(()),
        }
    }

    fn truncate(live: &mut Live) -> Result<(), JournalError> {
        live.file.set_len(0).map_err(io_err(&live.path))?;
        live.bytes = 0;
        live.written = 0;
        live.applied = 0;
        Ok(())
    }

    /// Empty the live segment when everything written has been applied (clean shutdown).
    /// Returns the number of records still unapplied.
    pub fn settle(&self) -> Result<u64, JournalError> {
        let mut st = self.lock();
        let left = st.live.written - st.live.applied + st.sealed.values().map(|s| s.written - s.applied).sum::<u64>();
        if left == 0 && st.live.bytes > 0 {
            Self::truncate(&mut st.live)?;
        }
        Ok(left)
    }

    /// Bytes in the live segment (for tests and diagnostics).
    pub fn live_bytes(&self) -> u64 {
        self.lock().live.bytes
    }
}

#[cfg(test)]
mod tests;
