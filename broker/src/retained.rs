//! Retained messages across restarts: a small file holding every retained message, written
//! atomically (temporary file, fsync, rename) with mode 0600, bounded in size, and restored
//! into the router at start.
//!
//! rumqttd keeps retained messages in memory only. The gate sees every retained PUBLISH it lets
//! through and hands it here without blocking ([`RetainedSender::record`]: a full queue drops
//! and counts); a thread keeps the current set and rewrites the file at most every
//! [`WRITE_EVERY`], and once more when the broker stops. A crash loses at most that much.
//!
//! The file is `BGRETAIN1\n`, then one record per message: topic length (u16, big endian),
//! topic, QoS (u8), payload length (u32, big endian), payload. A message that would take the
//! total over the bound is not kept (logged and counted); it is still retained in memory.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The file's first bytes.
const MAGIC: &[u8] = b"BGRETAIN1\n";

/// The longest a change waits before it is written.
pub const WRITE_EVERY: Duration = Duration::from_millis(200);

/// Changes waiting for the writer thread; beyond this they are dropped and counted.
const QUEUE: usize = 4096;

/// Bytes a record takes besides its topic and payload.
const RECORD_OVERHEAD: usize = 2 + 1 + 4;

/// A retained message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub qos: u8,
    pub payload: Bytes,
}

/// What the file could not be.
#[derive(Debug, thiserror::Error)]
pub enum RetainedError {
    #[error("retained store {}: {error}", path.display())]
    Io { path: PathBuf, error: io::Error },
    #[error("retained store {}: not a retained-message file, or cut short", path.display())]
    Format { path: PathBuf },
}

/// Reads the store; a missing file is an empty store.
pub fn load(path: &Path) -> Result<BTreeMap<String, Message>, RetainedError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(error) => return Err(RetainedError::Io { path: path.to_owned(), error }),
    };
    decode(&bytes).ok_or_else(|| RetainedError::Format { path: path.to_owned() })
}

fn decode(bytes: &[u8]) -> Option<BTreeMap<String, Message>> {
    let mut rest = bytes.strip_prefix(MAGIC)?;
    let mut messages = BTreeMap::new();
    let take = |count: usize, rest: &mut &[u8]| -> Option<Vec<u8>> {
        let (taken, left) = rest.split_at_checked(count)?;
        *rest = left;
        Some(taken.to_vec())
    };
    while !rest.is_empty() {
        let length = take(2, &mut rest)?;
        let topic =
            String::from_utf8(take(usize::from(u16::from_be_bytes([length[0], length[1]])), &mut rest)?).ok()?;
        let qos = take(1, &mut rest)?[0];
        let length = take(4, &mut rest)?;
        let length = usize::try_from(u32::from_be_bytes([length[0], length[1], length[2], length[3]])).ok()?;
        let payload = Bytes::from(take(length, &mut rest)?);
        messages.insert(topic, Message { qos: qos.min(2), payload });
    }
    Some(messages)
}

fn encode(messages: &BTreeMap<String, Message>) -> Vec<u8> {
    let mut bytes = MAGIC.to_vec();
    for (topic, message) in messages {
        // Topics are at most 65535 bytes (MQTT), payloads under the broker's payload limit.
        bytes.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        bytes.extend_from_slice(topic.as_bytes());
        bytes.push(message.qos);
        bytes.extend_from_slice(&(message.payload.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&message.payload);
    }
    bytes
}

/// Replaces the file atomically: a reader sees the old or the new set, never a mix.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        // The rename itself reaches the disk with the directory.
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn size(topic: &str, message: &Message) -> usize {
    topic.len() + message.payload.len() + RECORD_OVERHEAD
}

enum Op {
    Set(String, Message),
    Remove(String),
    Stop,
}

/// Hands retained messages to the store from any connection.
#[derive(Clone)]
pub struct RetainedSender {
    tx: SyncSender<Op>,
    /// Messages not kept on disk: the queue was full or the store at its bound.
    pub dropped: Arc<AtomicU64>,
}

impl RetainedSender {
    /// A retained PUBLISH went through: an empty payload clears the topic.
    pub fn record(&self, topic: &str, qos: u8, payload: &Bytes) {
        let op = if payload.is_empty() {
            Op::Remove(topic.to_owned())
        } else {
            Op::Set(topic.to_owned(), Message { qos, payload: payload.clone() })
        };
        if let Err(TrySendError::Full(_)) = self.tx.try_send(op) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread and its queue.
pub struct RetainedStore {
    sender: RetainedSender,
    thread: JoinHandle<()>,
}

impl RetainedStore {
    /// Starts keeping `messages` (as loaded) in `path`, at most `max_bytes`.
    pub fn start(path: PathBuf, max_bytes: usize, messages: BTreeMap<String, Message>) -> io::Result<RetainedStore> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let writer = Writer { path, max_bytes, messages, dropped: dropped.clone() };
        let thread = std::thread::Builder::new().name("retained".into()).spawn(move || writer.run(rx))?;
        Ok(RetainedStore { sender: RetainedSender { tx, dropped }, thread })
    }

    pub fn sender(&self) -> RetainedSender {
        self.sender.clone()
    }

    /// Writes what is pending and stops the thread.
    pub fn close(self) {
        let _ = self.sender.tx.send(Op::Stop);
        let _ = self.thread.join();
    }
}

struct Writer {
    path: PathBuf,
    max_bytes: usize,
    messages: BTreeMap<String, Message>,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn run(mut self, rx: Receiver<Op>) {
        let mut total: usize = self.messages.iter().map(|(topic, message)| size(topic, message)).sum();
        let mut dirty_since: Option<Instant> = None;
        loop {
            let op = match dirty_since {
                Some(since) => match rx.recv_timeout(WRITE_EVERY.saturating_sub(since.elapsed())) {
                    Ok(op) => Some(op),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => Some(Op::Stop),
                },
                None => Some(rx.recv().unwrap_or(Op::Stop)),
            };
            match op {
                Some(Op::Set(topic, message)) => {
                    let old = self.messages.get(&topic).map_or(0, |old| size(&topic, old));
                    let new = size(&topic, &message);
                    if total - old + new > self.max_bytes {
                        self.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            topic,
                            limit = self.max_bytes,
                            "retained store full: message kept in memory only"
                        );
                        continue;
                    }
                    total = total - old + new;
                    self.messages.insert(topic, message);
                    dirty_since.get_or_insert_with(Instant::now);
                }
                Some(Op::Remove(topic)) => {
                    if let Some(old) = self.messages.remove(&topic) {
                        total -= size(&topic, &old);
                        dirty_since.get_or_insert_with(Instant::now);
                    }
                }
                Some(Op::Stop) => {
                    if dirty_since.is_some() {
                        self.write();
                    }
                    return;
                }
                None => {}
            }
            if dirty_since.is_some_and(|since| since.elapsed() >= WRITE_EVERY) {
                self.write();
                dirty_since = None;
            }
        }
    }

    fn write(&self) {
        if let Err(error) = write_atomically(&self.path, &encode(&self.messages)) {
            tracing::error!(path = %self.path.display(), %error, "cannot write the retained store");
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("busgate-retained-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn message(qos: u8, payload: &'static [u8]) -> Message {
        Message { qos, payload: Bytes::from_static(payload) }
    }

    #[test]
    fn messages_round_trip_through_the_file_with_mode_0600() {
        let dir = dir("round-trip");
        let path = dir.join("sub/retained.bin");
        let store = RetainedStore::start(path.clone(), 1 << 20, BTreeMap::new()).unwrap();
        let sender = store.sender();
        sender.record("a/b", 1, &Bytes::from_static(b"one"));
        sender.record("a/c", 0, &Bytes::from_static(b"\x00\xff"));
        sender.record("gone", 1, &Bytes::from_static(b"x"));
        sender.record("gone", 1, &Bytes::new());
        store.close();
        let loaded = load(&path).unwrap();
        assert_eq!(
            loaded.into_iter().collect::<Vec<_>>(),
            [("a/b".to_owned(), message(1, b"one")), ("a/c".to_owned(), message(0, b"\x00\xff"))]
        );
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!path.with_extension("tmp").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_bound_holds_and_overflow_is_counted() {
        let dir = dir("bound");
        let path = dir.join("retained.bin");
        // Room for two 10-byte payloads on 1-byte topics (18 bytes each) but not three.
        let store = RetainedStore::start(path.clone(), 40, BTreeMap::new()).unwrap();
        let sender = store.sender();
        for topic in ["a", "b", "c"] {
            sender.record(topic, 0, &Bytes::from_static(b"0123456789"));
        }
        // Replacing a kept message with one of the same size still fits.
        sender.record("a", 0, &Bytes::from_static(b"abcdefghij"));
        store.close();
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(loaded["a"].payload, Bytes::from_static(b"abcdefghij"));
        assert_eq!(sender.dropped.load(Ordering::Relaxed), 1);
        assert!(fs::metadata(&path).unwrap().len() <= 40 + MAGIC.len() as u64);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_empty_and_a_damaged_one_an_error() {
        let dir = dir("damaged");
        assert!(load(&dir.join("none.bin")).unwrap().is_empty());
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.bin");
        let mut bytes = encode(&BTreeMap::from([("t".to_owned(), message(1, b"payload"))]));
        bytes.truncate(bytes.len() - 2);
        fs::write(&path, bytes).unwrap();
        assert!(matches!(load(&path), Err(RetainedError::Format { .. })));
        fs::remove_dir_all(dir).unwrap();
    }
}
