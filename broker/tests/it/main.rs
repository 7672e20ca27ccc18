//! Integration tests: the broker binary on a free loopback port, talked to as clients would.

#![allow(clippy::unwrap_used, reason = "tests fail loudly")]

mod conformance;
mod engine;
mod hardening;
mod journal;
mod limits;
mod load;
mod security;
mod startup;
mod state;
mod tls;
mod uplink;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use schema::JournalEntry;
use test_support::{Process, TIMEOUT, broker_board, free_port, temp_dir};

/// The broker binary, journaling to a file in its own temp directory.
struct Broker {
    process: Process,
    port: u16,
    journal: PathBuf,
}

impl Broker {
    /// Starts the broker with extra board-file text and waits for its readiness line.
    fn start(extra_board: &str) -> Broker {
        let dir = temp_dir("broker-it");
        let port = free_port();
        let board = dir.join("test.toml");
        std::fs::write(&board, broker_board(port, extra_board)).unwrap();
        // A directory that does not exist yet: the broker creates it.
        let journal = dir.join("journal/journal.jsonl");
        let mut command = Command::new(env!("CARGO_BIN_EXE_broker"));
        command.arg("--board").arg(&board).arg("--journal").arg(&journal);
        let process = Process::start(command, "broker", broker::READY);
        Broker { process, port, journal }
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits until the journal has a line on `topic`, then returns every line.
    async fn wait_journal(&self, topic: &str) -> Vec<JournalEntry> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let entries = read_journal(&self.journal);
            if entries.iter().any(|entry| entry.topic == topic) {
                return entries;
            }
            assert!(Instant::now() < deadline, "no journal line on {topic} within {TIMEOUT:?}; journal: {entries:#?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn read_journal(path: &Path) -> Vec<JournalEntry> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only whole lines: the writer may be in the middle of one.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    complete
        .lines()
        .map(|line| schema::payload::parse(line.as_bytes()).unwrap_or_else(|e| panic!("journal line {line:?}: {e}")))
        .collect()
}

/// The broker binary run directly, for tests about how it starts and stops.
struct Spawned {
    child: Child,
    /// Lines of its stderr, read by a thread so the pipe never fills.
    lines: Receiver<String>,
    stderr: String,
}

impl Spawned {
    fn new(args: &[&str]) -> Spawned {
        let mut child = Command::new(env!("CARGO_BIN_EXE_broker"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[broker] {line}");
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Spawned { child, lines, stderr: String::new() }
    }

    /// Waits for a stderr line containing `needle`; false if stderr ended first.
    fn wait_line(&mut self, needle: &str) -> bool {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.stderr.push_str(&line);
                    self.stderr.push('\n');
                    if found {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line with {needle:?} within {TIMEOUT:?}:\n{}", self.stderr)
                }
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// Waits for the broker to exit by itself; returns its status and all of its stderr.
    fn wait_exit(mut self) -> (ExitStatus, String) {
        // Reads stderr to its end, which comes when the process exits.
        while self.wait_line("\0never\0") {}
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, std::mem::take(&mut self.stderr));
            }
            assert!(Instant::now() < deadline, "the broker did not exit within {TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
