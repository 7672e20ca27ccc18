//! Test helpers: real brokers on free loopback ports, and an MQTT client that records what it
//! receives so tests can wait for a condition instead of sleeping.
//!
//! The busgate broker runs as its own process (the binary built by `cargo build -p broker`,
//! which `cargo test --workspace` builds first), so a test can kill it and start a new one.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc, reason = "test helpers fail loudly")]

pub mod bench;
pub mod fixtures;
pub mod gateway;
pub mod vm;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// How long a test waits for anything before failing.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A new empty directory under the system temp dir, unique to this process and call.
pub fn temp_dir(name: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("busgate-{name}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The directory holding the workspace's built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/test-binary → target/debug
    exe.parent().and_then(Path::parent).unwrap().to_owned()
}

/// A workspace binary, which must have been built (`cargo test --workspace` builds them all).
pub fn workspace_bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(path.exists(), "{} is missing: run `cargo build -p {name}` or `cargo test --workspace`", path.display());
    path
}

/// A board file with only a broker listening on `port`, for tests that need just the broker.
pub fn broker_board(port: u16, extra: &str) -> String {
    format!(
        "[board]\nname = \"test\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\n\
         [broker.listeners.local]\naddress = \"127.0.0.1:{port}\"\n{extra}\n"
    )
}

/// A password hash for a board file's `[broker.users.NAME]`, from `broker hash-password`.
pub fn hash_password(password: &str) -> String {
    use std::io::Write as _;
    let mut child = Command::new(workspace_bin("broker"))
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "broker hash-password failed");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A child process that is killed when dropped.
pub struct Process {
    child: Child,
    name: String,
    /// The stderr lines not yet looked at by [`Process::wait_line`] (none for `start_quiet`).
    lines: Option<std::sync::mpsc::Receiver<String>>,
    /// The lines printed before the readiness line.
    early: Vec<String>,
}

impl Process {
    /// Starts `command` and waits until a line of its stderr contains `ready`.
    pub fn start(mut command: Command, name: &str, ready: &str) -> Process {
        command.stdout(Stdio::null()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = command.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let label = name.to_owned();
        // Keep reading stderr for the process's whole life so it never blocks on a full pipe;
        // echo it for the test log.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + TIMEOUT;
        let mut early = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break,
                Ok(line) => early.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("{name} did not print {ready:?} within {TIMEOUT:?}");
                }
            }
        }
        Process { child, name: name.to_owned(), lines: Some(rx), early }
    }

    /// Waits for a line of stderr that contains `needle` (one printed before the readiness
    /// line counts too), and returns it; panics after [`TIMEOUT`].
    pub fn wait_line(&mut self, needle: &str) -> String {
        if let Some(index) = self.early.iter().position(|line| line.contains(needle)) {
            let line = self.early.remove(index);
            self.early.drain(..index);
            return line;
        }
        let lines = self.lines.as_ref().unwrap_or_else(|| panic!("{}: stderr is not captured", self.name));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(_) => panic!("{} printed no line with {needle:?} within {TIMEOUT:?}", self.name),
            }
        }
    }

    /// Starts `command` without waiting for any output (its stderr is echoed).
    pub fn start_quiet(mut command: Command, name: &str) -> Process {
        command.stdout(Stdio::null()).stderr(Stdio::inherit()).stdin(Stdio::null());
        let child = command.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process { child, name: name.to_owned(), lines: None, early: Vec::new() }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Asks the process to stop (SIGTERM) and waits for its exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill -TERM {}", self.name);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not stop after SIGTERM", self.name);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// busgate's broker on a loopback port, started from its binary.
pub struct Broker {
    pub process: Process,
    pub port: u16,
    pub dir: PathBuf,
}

impl Broker {
    /// Starts a broker on a free port.
    pub fn start() -> Broker {
        Broker::start_on(free_port(), "")
    }

    /// Starts a broker on `port` (e.g. the port of one that was killed), with extra board text.
    pub fn start_on(port: u16, extra: &str) -> Broker {
        let dir = temp_dir("broker");
        let board = dir.join("test.toml");
        std::fs::write(&board, broker_board(port, extra)).unwrap();
        let mut command = Command::new(workspace_bin("broker"));
        command.arg("--board").arg(&board);
        let process = Process::start(command, "broker", "busgate broker ready");
        Broker { process, port, dir }
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Mosquitto on a loopback port. `None` when mosquitto is not installed (CI installs it; see
/// `.ci/run`).
pub struct Mosquitto {
    pub process: Child,
    pub port: u16,
}

impl Mosquitto {
    /// For interoperability tests: it logs every packet to `mosquitto.log` in its temporary
    /// directory.
    pub fn start() -> Option<Mosquitto> {
        Mosquitto::start_with(|dir| format!("log_dest file {}\nlog_type all\n", dir.join("mosquitto.log").display()))
    }

    /// For benchmarks against busgate's broker: no logging, unbounded queues, and 100 messages
    /// in flight per client, as rumqttd has.
    pub fn for_benchmarks() -> Option<Mosquitto> {
        Mosquitto::start_with(|_| {
            "log_dest none\nmax_inflight_messages 100\nmax_queued_messages 0\nmax_queued_bytes 0\n".to_owned()
        })
    }

    fn start_with(settings: impl FnOnce(&Path) -> String) -> Option<Mosquitto> {
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())?;
        let port = free_port();
        let dir = temp_dir("mosquitto");
        let config = dir.join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{}", settings(&dir)),
        )
        .unwrap();
        let process =
            Command::new(binary).arg("-c").arg(&config).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Mosquitto { process, port })
    }

    pub fn address(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A message a [`Client`] received.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    pub qos: QoS,
}

impl Received {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }

    /// The payload as JSON; fails the test if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| panic!("{} is not JSON: {e}", self.text()))
    }

    /// Validates the payload against the checked-in JSON Schema `name` (e.g. `reading.json`)
    /// and returns it; fails the test naming every violation.
    #[track_caller]
    pub fn check_schema(&self, name: &str) -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/schemas").join(name);
        let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let value = self.json();
        let errors: Vec<String> =
            validator.iter_errors(&value).map(|e| format!("{e} at {}", e.instance_path())).collect();
        assert!(errors.is_empty(), "{} on {} violates {name}: {errors:?}", self.text(), self.topic);
        value
    }
}

/// An MQTT client as an application would use it, recording everything it receives.
pub struct Client {
    pub client: AsyncClient,
    received: mpsc::UnboundedReceiver<Received>,
    connected: mpsc::UnboundedReceiver<()>,
    /// Everything received so far, in order (also what `wait_for` skipped over).
    pub log: Vec<Received>,
}

impl Client {
    /// Connects with a unique client id and waits for the CONNACK.
    pub async fn connect(address: SocketAddr, id: &str) -> Client {
        let mut options = MqttOptions::new(id, address.ip().to_string(), address.port());
        options.set_keep_alive(Duration::from_secs(30));
        options.set_max_packet_size(1024 * 1024, 1024 * 1024);
        let (client, mut eventloop) = AsyncClient::new(options, 1000);
        let (tx, received) = mpsc::unbounded_channel();
        let (connected_tx, mut connected) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let message =
                            Received { topic: p.topic, payload: p.payload.to_vec(), retain: p.retain, qos: p.qos };
                        if tx.send(message).is_err() {
                            return;
                        }
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = connected_tx.send(());
                    }
                    Ok(_) => {}
                    // The broker went away (tests kill it); retry until the test drops us.
                    Err(_) => {
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        });
        tokio::time::timeout(TIMEOUT, connected.recv()).await.expect("client connected").unwrap();
        Client { client, received, connected, log: Vec::new() }
    }

    /// Subscribes and waits until the broker has the subscription in place.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        // SUBACK ordering: the broker handles our packets in order, so once a message on our
        // own private topic comes back, the earlier subscription is in place.
        let marker = format!("test-support/marker/{}", fastid());
        self.client.subscribe(&marker, QoS::AtLeastOnce).await.unwrap();
        self.client.publish(&marker, QoS::AtLeastOnce, false, b"m".to_vec()).await.unwrap();
        self.wait_for(|m| m.topic == marker).await;
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client.publish(topic, QoS::AtLeastOnce, false, payload.into()).await.unwrap();
    }

    /// Waits for the next message satisfying `predicate`, returning it; fails after [`TIMEOUT`].
    pub async fn wait_for(&mut self, mut predicate: impl FnMut(&Received) -> bool) -> Received {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            let message = tokio::time::timeout_at(deadline, self.received.recv())
                .await
                .unwrap_or_else(|_| panic!("no matching message within {TIMEOUT:?}; received: {:#?}", self.tail()))
                .unwrap();
            self.log.push(message.clone());
            if predicate(&message) {
                return message;
            }
        }
    }

    /// The last message already received on `topic` (while waiting for something else), or
    /// the next one: for messages published once, such as retained configs and status, that
    /// arrive in a burst in no particular order.
    pub async fn seen_or_wait(&mut self, topic: &str) -> Received {
        match self.log.iter().rev().find(|m| m.topic == topic) {
            Some(message) => message.clone(),
            None => self.wait_on(topic).await,
        }
    }

    /// Waits for a message on exactly `topic`.
    pub async fn wait_on(&mut self, topic: &str) -> Received {
        self.wait_for(|m| m.topic == topic).await
    }

    /// Publishes a command (`$ID` in `body` replaced by `id`) on `set_topic` and waits for the
    /// schema-valid reply with that id on `reply_topic`.
    pub async fn command(&mut self, set_topic: &str, reply_topic: &str, id: &str, body: &str) -> serde_json::Value {
        self.publish(set_topic, body.replace("$ID", id)).await;
        let reply = self.wait_for(|m| m.topic == reply_topic && m.json()["id"] == id).await;
        reply.check_schema("reply.json")
    }

    /// Waits until the client has reconnected after its broker went away.
    pub async fn wait_reconnected(&mut self) {
        tokio::time::timeout(TIMEOUT, self.connected.recv()).await.expect("client reconnected").unwrap();
    }

    fn tail(&self) -> Vec<String> {
        self.log.iter().rev().take(10).map(|m| format!("{} {}", m.topic, m.text())).collect()
    }
}

fn fastid() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!("{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
