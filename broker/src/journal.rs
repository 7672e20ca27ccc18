//! The message journal: every message through the broker, one JSON line each, to stdout or to a
//! size-capped rotating file.
//!
//! Messages come from the connections ([`crate::connection`]): each PUBLISH a client's rules let
//! through, as the client sent it (QoS and retain flag included), and each will the broker
//! publishes. Denied messages are not journaled.
//!
//! The journal must never slow the broker. A connection hands each message to a bounded queue
//! without waiting; a writer thread formats the lines and does the file I/O. When the writer
//! falls behind (a slow disk, or a stdout pipe nobody reads) and the queue is full, in messages
//! or in bytes, further messages are left out of the journal and counted, and the count is
//! logged at most once a second; the broker itself is unaffected. At shutdown the journal gets a
//! bounded time to write what is queued.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use board::JournalOutput;
use schema::JournalEntry;
use schema::payload::Payload as _;

use crate::Error;

/// Messages waiting for the writer, at most.
const QUEUE_MESSAGES: usize = 4096;

/// Bytes of topics and payloads waiting for the writer, at most (but always room for one
/// message of the largest size the broker accepts).
const QUEUE_BYTES: usize = 1024 * 1024;

/// What a queued message costs besides its topic and payload, for the byte budget.
const RECORD_OVERHEAD: usize = 64;

/// How often, at most, the senders log that messages were left out.
const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(1);

/// How long [`Journal::close`] waits for the writer to write what is queued.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One message for the journal, copied out of the broker's buffers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    pub payload: Vec<u8>,
}

impl Record {
    fn cost(&self) -> usize {
        self.topic.len() + self.payload.len() + RECORD_OVERHEAD
    }
}

/// Bounds on the queue between the broker and the journal writer.
#[derive(Debug, Clone, Copy)]
pub struct Queue {
    pub messages: usize,
    pub bytes: usize,
}

/// The running journal: the writer thread and the way to stop it.
pub struct Journal {
    sender: JournalSender,
    writer: JoinHandle<()>,
    /// Disconnects when the writer thread ends, so that closing can wait with a timeout.
    writer_done: Receiver<()>,
}

/// The handle the connections use to journal messages; cheap to clone, never blocks.
#[derive(Clone)]
pub struct JournalSender {
    /// Bounded, so a journal that cannot keep up costs a fixed amount of memory.
    queue: SyncSender<Command>,
    shared: Arc<Shared>,
}

/// Counters shared by the senders and the writer.
struct Shared {
    /// Messages left out because the queue was full.
    dropped: AtomicU64,
    /// Bytes (by [`Record::cost`]) in the queue now, kept under `max_queued_bytes` by the senders
    /// and released by the writer.
    queued_bytes: AtomicUsize,
    max_queued_bytes: usize,
    /// The senders log drops, not the writer, which may be stuck in a write; these rate-limit
    /// that log: `dropped` when last logged, and when (milliseconds since `started`).
    reported: AtomicU64,
    reported_at_ms: AtomicU64,
    started: Instant,
}

/// `reported_at_ms` before the first report.
const NEVER: u64 = u64::MAX;

enum Command {
    Record(Record),
    /// Write what is queued, flush, and end the writer.
    Stop,
}

impl Journal {
    /// Opens the board's journal output and starts the writer.
    pub fn start(journal: &board::Journal, limits: &board::Limits) -> Result<Journal, Error> {
        let sink = match &journal.output {
            JournalOutput::Stdout => Sink::Stdout(BufWriter::new(io::stdout())),
            JournalOutput::File { path } => Sink::File(
                RotatingFile::open(path, journal.max_file_bytes, journal.max_files)
                    .map_err(|error| Error::JournalFile { path: path.clone(), error })?,
            ),
        };
        let queue =
            Queue { messages: QUEUE_MESSAGES, bytes: QUEUE_BYTES.max(limits.max_payload_bytes + 2 * RECORD_OVERHEAD) };
        Journal::spawn(sink, queue)
    }

    /// Starts the writer on a sink.
    pub fn spawn(sink: Sink, queue: Queue) -> Result<Journal, Error> {
        let (sender, receiver) = mpsc::sync_channel(queue.messages);
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            queued_bytes: AtomicUsize::new(0),
            max_queued_bytes: queue.bytes,
            reported: AtomicU64::new(0),
            reported_at_ms: AtomicU64::new(NEVER),
            started: Instant::now(),
        });
        let (done, writer_done) = mpsc::channel::<()>();
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("journal".into())
                .spawn(move || {
                    write_loop(sink, &receiver, &shared);
                    drop(done);
                })
                .map_err(Error::JournalThread)?
        };
        Ok(Journal { sender: JournalSender { queue: sender, shared }, writer, writer_done })
    }

    pub fn sender(&self) -> JournalSender {
        self.sender.clone()
    }

    /// Writes everything queued so far, flushes, and stops; returns how many messages were
    /// left out in all. Messages journaled afterwards are ignored. Gives up after a while if
    /// the output is stuck (a full pipe), leaving the writer to die with the process.
    pub fn close(self) -> u64 {
        let dropped = || self.sender.shared.dropped.load(Ordering::Relaxed);
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut stop = Command::Stop;
        loop {
            match self.sender.queue.try_send(stop) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => break,
                Err(TrySendError::Full(command)) if Instant::now() < deadline => {
                    stop = command;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => {
                    tracing::warn!("the journal output is stuck; the last messages may be missing from it");
                    return dropped();
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(RecvTimeoutError::Timeout) = self.writer_done.recv_timeout(left) {
            tracing::warn!("the journal output is stuck; the last messages may be missing from it");
            return dropped();
        }
        if self.writer.join().is_err() {
            tracing::error!("the journal writer panicked");
        }
        dropped()
    }
}

impl JournalSender {
    /// Queues a message for the journal, or counts it as left out when the queue is full.
    pub fn record(&self, record: Record) {
        let shared = &self.shared;
        let cost = record.cost();
        let before = shared.queued_bytes.fetch_add(cost, Ordering::Relaxed);
        if before + cost > shared.max_queued_bytes {
            shared.queued_bytes.fetch_sub(cost, Ordering::Relaxed);
            self.left_out();
            return;
        }
        match self.queue.try_send(Command::Record(record)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                shared.queued_bytes.fetch_sub(cost, Ordering::Relaxed);
                self.left_out();
            }
            // The journal was closed at shutdown: nothing is lost that anyone will read.
            Err(TrySendError::Disconnected(_)) => {
                shared.queued_bytes.fetch_sub(cost, Ordering::Relaxed);
            }
        }
    }

    /// Messages left out so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Counts a message left out, and logs the count at most once per [`DROP_REPORT_INTERVAL`].
    fn left_out(&self) {
        let shared = &self.shared;
        let total = shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(shared.started.elapsed().as_millis()).unwrap_or(NEVER - 1);
        let last = shared.reported_at_ms.load(Ordering::Relaxed);
        let due = last == NEVER || now.saturating_sub(last) >= DROP_REPORT_INTERVAL.as_millis() as u64;
        // One sender wins the right to report.
        if due && shared.reported_at_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            let since = total - shared.reported.swap(total, Ordering::Relaxed);
            tracing::warn!(dropped = since, total, "the journal is behind; messages left out: {since}");
        }
    }
}

/// Where the writer puts the lines.
pub enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(RotatingFile),
}

impl Sink {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => {
                out.write_all(line.as_bytes())?;
                out.write_all(b"\n")
            }
            Sink::File(file) => file.write_line(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(file) => file.flush(),
        }
    }
}

fn write_loop(mut sink: Sink, receiver: &Receiver<Command>, shared: &Shared) {
    let mut failing = false;
    let mut stop = false;
    while !stop {
        let Ok(first) = receiver.recv() else { break };
        // Write everything queued, then flush once: a burst costs one flush, and a line is
        // never left in the buffer while the writer waits.
        let mut next = Some(first);
        while let Some(command) = next.take() {
            match command {
                Command::Record(record) => {
                    let entry = JournalEntry::new(&record.topic, record.qos, record.retain, &record.payload);
                    let written = sink.write_line(&entry.to_json_line());
                    shared.queued_bytes.fetch_sub(record.cost(), Ordering::Relaxed);
                    failing = note_io(written, failing);
                }
                Command::Stop => {
                    stop = true;
                    break;
                }
            }
            next = receiver.try_recv().ok();
        }
        failing = note_io(sink.flush(), failing);
    }
}

/// Logs the first of a run of I/O errors; returns whether the journal is failing now.
fn note_io(result: io::Result<()>, failing: bool) -> bool {
    match result {
        Ok(()) => {
            if failing {
                tracing::info!("the journal is writing again");
            }
            false
        }
        Err(error) => {
            if !failing {
                tracing::error!(%error, "cannot write the journal; messages are left out until it works again");
            }
            true
        }
    }
}

/// A line-oriented file that rotates before it would grow past a size: `journal.jsonl` is the
/// current file, `journal.jsonl.1` the newest rotated one, up to `journal.jsonl.N`, the oldest.
pub struct RotatingFile {
    path: PathBuf,
    /// Rotate before a line would take the current file past this. A single line longer than
    /// this still goes whole into a fresh file: lines are never split.
    max_file_bytes: u64,
    /// Rotated files kept besides the current one; 0 truncates the current file instead.
    max_files: u32,
    file: BufWriter<File>,
    /// Bytes in the current file, including those still buffered.
    len: u64,
}

impl RotatingFile {
    /// Opens (appending) or creates the file, and its parent directory if needed. Rotated files
    /// beyond `max_files`, left by a run with a larger setting, are deleted.
    pub fn open(path: &Path, max_file_bytes: u64, max_files: u32) -> io::Result<RotatingFile> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let len = file.metadata()?.len();
        for number in max_files + 1.. {
            match fs::remove_file(rotated(path, number)) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => break,
                Err(error) => return Err(error),
            }
        }
        Ok(RotatingFile { path: path.to_owned(), max_file_bytes, max_files, file: BufWriter::new(file), len })
    }

    /// Appends `line` and a newline, rotating first if the file would grow past its limit.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let size = line.len() as u64 + 1;
        if self.len > 0 && self.len + size > self.max_file_bytes {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.file.write_all(b"\n")?;
        self.len += size;
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.max_files > 0 {
            for number in (1..self.max_files).rev() {
                match fs::rename(rotated(&self.path, number), rotated(&self.path, number + 1)) {
                    Ok(()) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error),
                }
            }
            // Renaming over the oldest file deletes it.
            fs::rename(&self.path, rotated(&self.path, 1))?;
        }
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(&self.path)?;
        self.file = BufWriter::new(file);
        self.len = 0;
        Ok(())
    }
}

/// `path.N`.
fn rotated(path: &Path, number: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{number}"));
    PathBuf::from(name)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        use std::sync::atomic::AtomicU32;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("busgate-journal-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The files of `dir`, sorted, each with its lines.
    fn files(dir: &Path) -> Vec<(String, Vec<String>)> {
        let mut files: Vec<(String, Vec<String>)> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let path = entry.unwrap().path();
                let text = fs::read_to_string(&path).unwrap();
                (path.file_name().unwrap().to_string_lossy().into_owned(), text.lines().map(str::to_owned).collect())
            })
            .collect();
        files.sort();
        files
    }

    #[track_caller]
    fn check(max_file_bytes: u64, max_files: u32, lines: &[&str], expected: &[(&str, &[&str])]) {
        let dir = temp_dir("rotation");
        let mut file = RotatingFile::open(&dir.join("j.jsonl"), max_file_bytes, max_files).unwrap();
        for line in lines {
            file.write_line(line).unwrap();
        }
        file.flush().unwrap();
        let expected: Vec<(String, Vec<String>)> = expected
            .iter()
            .map(|(name, lines)| (name.to_string(), lines.iter().map(|l| l.to_string()).collect()))
            .collect();
        assert_eq!(files(&dir), expected);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn no_rotation_below_the_limit() {
        // Two 5-byte lines fill a 10-byte file exactly.
        check(10, 2, &["aaaa", "bbbb"], &[("j.jsonl", &["aaaa", "bbbb"])]);
    }

    #[test]
    fn rotates_before_a_line_would_pass_the_limit() {
        check(10, 2, &["aaaa", "bbbb", "cccc"], &[("j.jsonl", &["cccc"]), ("j.jsonl.1", &["aaaa", "bbbb"])]);
    }

    #[test]
    fn keeps_max_files_and_deletes_the_oldest() {
        check(
            5,
            2,
            &["aaaa", "bbbb", "cccc", "dddd"],
            &[("j.jsonl", &["dddd"]), ("j.jsonl.1", &["cccc"]), ("j.jsonl.2", &["bbbb"])],
        );
    }

    #[test]
    fn zero_max_files_truncates() {
        check(5, 0, &["aaaa", "bbbb", "cccc"], &[("j.jsonl", &["cccc"])]);
    }

    #[test]
    fn a_line_longer_than_the_limit_goes_whole_into_a_fresh_file() {
        check(
            5,
            3,
            &["aa", "0123456789", "bb"],
            &[("j.jsonl", &["bb"]), ("j.jsonl.1", &["0123456789"]), ("j.jsonl.2", &["aa"])],
        );
    }

    #[test]
    fn reopening_appends_and_counts_what_is_there() {
        let dir = temp_dir("reopen");
        let path = dir.join("j.jsonl");
        let mut file = RotatingFile::open(&path, 10, 1).unwrap();
        file.write_line("aaaa").unwrap();
        file.flush().unwrap();
        drop(file);
        let mut file = RotatingFile::open(&path, 10, 1).unwrap();
        file.write_line("bbbb").unwrap();
        file.write_line("cccc").unwrap();
        file.flush().unwrap();
        assert_eq!(
            files(&dir),
            [("j.jsonl".to_owned(), vec!["cccc".to_owned()]), ("j.jsonl.1".into(), vec!["aaaa".into(), "bbbb".into()])]
        );
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn opening_creates_the_directory_and_removes_files_beyond_max_files() {
        let dir = temp_dir("open");
        let path = dir.join("logs/deeper/j.jsonl");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        for number in 1..=4 {
            fs::write(rotated(&path, number), "old\n").unwrap();
        }
        RotatingFile::open(&path, 100, 2).unwrap();
        let names: Vec<String> = files(path.parent().unwrap()).into_iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["j.jsonl", "j.jsonl.1", "j.jsonl.2"]);

        let fresh = dir.join("new/j.jsonl");
        RotatingFile::open(&fresh, 100, 2).unwrap();
        assert!(fresh.exists());
        fs::remove_dir_all(dir).unwrap();
    }

    fn record(topic: &str, qos: u8, retain: bool, payload: &[u8]) -> Record {
        Record { topic: topic.into(), qos, retain, payload: payload.to_vec() }
    }

    #[test]
    fn writer_journals_json_and_binary_payloads_and_flushes_on_close() {
        let dir = temp_dir("writer");
        let path = dir.join("j.jsonl");
        let sink = Sink::File(RotatingFile::open(&path, 1 << 20, 1).unwrap());
        let journal = Journal::spawn(sink, Queue { messages: 16, bytes: 1 << 20 }).unwrap();
        let sender = journal.sender();
        sender.record(record("a/state", 1, true, br#"{"v":1}"#));
        sender.record(record("a/raw", 0, false, &[0x00, 0xff]));
        assert_eq!(journal.close(), 0);

        let text = fs::read_to_string(&path).unwrap();
        let entries: Vec<JournalEntry> =
            text.lines().map(|line| schema::payload::parse(line.as_bytes()).unwrap()).collect();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].topic.as_str(), entries[0].qos, entries[0].retain), ("a/state", 1, true));
        assert_eq!(entries[0].payload.as_ref().unwrap()["v"], 1);
        assert_eq!((entries[1].topic.as_str(), entries[1].qos, entries[1].retain), ("a/raw", 0, false));
        assert_eq!(entries[1].payload_hex.as_deref(), Some("00ff"));

        // After close, messages are ignored, not counted as dropped.
        sender.record(record("late", 0, false, b"x"));
        assert_eq!(sender.dropped(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = temp_dir("full");
        let path = dir.join("j.jsonl");
        let sink = Sink::File(RotatingFile::open(&path, 1 << 20, 1).unwrap());
        // Room for one small message by bytes.
        let journal = Journal::spawn(sink, Queue { messages: 16, bytes: 100 }).unwrap();
        let sender = journal.sender();
        sender.record(record("big", 0, false, &[0; 200]));
        assert_eq!(sender.dropped(), 1);
        sender.record(record("small", 0, false, b"1"));
        assert_eq!(journal.close(), 1);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        assert!(text.contains("\"small\""), "{text}");
        fs::remove_dir_all(dir).unwrap();
    }
}
