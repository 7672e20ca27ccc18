//! The board's MQTT broker: rumqttd configured from the board file, plus the message journal.
//!
//! [`rumqttd_config`] turns the board's `[broker]` section into a rumqttd configuration with
//! small, explicit limits. [`run`] starts rumqttd's router and one MQTT 3.1.1 server per listener,
//! waits until every listener really accepts MQTT connections, prints the readiness line, and
//! stops cleanly when the shutdown future resolves.
//!
//! rumqttd is used through its `Router` and `Server` rather than its `Broker` wrapper, for two
//! reasons. A server that cannot bind its address only logs an error inside `Broker::start`,
//! while `Server::start` returns it to us. And a server takes the MQTT codec as a parameter,
//! which lets [`tap`] see every PUBLISH exactly as the client sent it, QoS and retain flag
//! included, for the journal (see [`journal`] for why the router's own view is not enough).
//!
//! Around rumqttd: [`front`] accepts every listener's clients (TLS in [`tls`]) and relays them to
//! rumqttd; [`gate`] checks every packet (strict frames in [`frame`], logins and access rules in
//! [`policy`]); [`retained`] keeps retained messages across restarts; [`uplink`] forwards to an
//! upstream broker; [`local`] publishes the broker's own health. ARCHITECTURE.md tells why.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use board::{Board, JournalOutput};
use rumqttd::{ConnectionSettings, LinkType, Router, RouterConfig, Server, ServerSettings};
use tokio::sync::mpsc;

pub mod frame;
pub mod front;
pub mod gate;
pub mod journal;
pub mod local;
pub mod policy;
mod ready;
pub mod retained;
pub mod tap;
pub mod tls;
pub mod uplink;

use gate::{Admission, Counters, Gate};
use journal::Journal;
use local::{HealthSources, Internal};
use policy::{Policy, PolicyError};
use retained::RetainedStore;
use rumqttd::local::LinkBuilder;
use tap::Tap;

/// The substring of the readiness line that scripts and tests wait for.
pub const READY: &str = "busgate broker ready";

/// How long the listeners have to accept an MQTT connection after start.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// QoS 0 messages the router hands to one subscriber per pass. rumqttd also pauses a subscriber
/// whose outgoing buffer holds 200 notifications, so a slow client cannot hold more than that.
const MAX_OUTGOING_PACKET_COUNT: u64 = 200;

/// Connections the router has room for beyond the board's limit (see [`rumqttd_config`]).
const ROUTER_SLACK: usize = 16;

/// Pause after accepting a TCP connection: at most about a thousand new connections a second,
/// so a crowd of reconnecting clients cannot starve the router.
const NEXT_CONNECTION_DELAY_MS: u64 = 1;

/// Why the broker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listener {name:?}: cannot listen on {address}: {error}")]
    Bind { name: String, address: SocketAddr, error: io::Error },
    #[error("listener {name:?} on {address} stopped: {message}")]
    ListenerStopped { name: String, address: SocketAddr, message: String },
    #[error("listener {name:?} on {address} did not accept MQTT connections within {timeout:?}: {reason}")]
    NotReady { name: String, address: SocketAddr, timeout: Duration, reason: String },
    #[error("journal file {}: {error}", path.display())]
    JournalFile { path: PathBuf, error: io::Error },
    #[error("cannot start the journal writer thread: {0}")]
    JournalThread(io::Error),
    #[error(
        "--listen {0} is reachable from other machines; declare such a listener in the board file with allow_remote = true"
    )]
    RemoteListen(SocketAddr),
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signals(io::Error),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error("the broker's own link to its router: {0}")]
    Internal(String),
    #[error("listener {name:?}: {error}")]
    Tls { name: String, error: tls::TlsError },
    #[error("no random numbers from the operating system: {0}")]
    Random(io::Error),
}

/// Where `--journal` sends the journal, overriding the board file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalChoice {
    Off,
    Stdout,
    File(PathBuf),
}

impl FromStr for JournalChoice {
    type Err = String;

    /// `off`, `stdout`, or anything else as a file path.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "" => Err("expected stdout, off or a file path".into()),
            "off" => Ok(JournalChoice::Off),
            "stdout" => Ok(JournalChoice::Stdout),
            path => Ok(JournalChoice::File(PathBuf::from(path))),
        }
    }
}

/// Command-line settings that take precedence over the board file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub journal: Option<JournalChoice>,
    /// Listen only here, instead of on the board's listeners; for tests and local runs, so
    /// loopback only (a remote listener belongs in the board file, with `allow_remote`).
    pub listen: Option<SocketAddr>,
}

impl Overrides {
    /// The name of the listener `--listen` creates.
    pub const LISTEN_NAME: &str = "cli";

    pub fn apply(&self, board: &mut Board) -> Result<(), Error> {
        if let Some(address) = self.listen {
            if !address.ip().is_loopback() {
                return Err(Error::RemoteListen(address));
            }
            // As open as the board's most open listener: no more, since the override exists for
            // local runs of the same board.
            let anonymous = board.broker.listeners.iter().any(|listener| listener.anonymous);
            board.broker.listeners =
                vec![board::Listener { name: Self::LISTEN_NAME.into(), address, anonymous, tls: None }];
        }
        let journal = &mut board.broker.journal;
        match &self.journal {
            None => {}
            Some(JournalChoice::Off) => journal.enabled = false,
            Some(JournalChoice::Stdout) => {
                journal.enabled = true;
                journal.output = JournalOutput::Stdout;
            }
            Some(JournalChoice::File(path)) => {
                journal.enabled = true;
                journal.output = JournalOutput::File { path: path.clone() };
            }
        }
        Ok(())
    }
}

/// The rumqttd configuration for a board: one MQTT 3.1.1 server per listener, named after it,
/// and the board's limits.
///
/// MQTT 5 is not served: rumqttd needs a separate port for it, which the board file does not
/// describe yet. Nothing else is configured (no console, metrics, bridge or cluster), so nothing
/// listens except the board's listeners.
pub fn rumqttd_config(board: &Board) -> rumqttd::Config {
    let limits = &board.broker.limits;
    let connections = ConnectionSettings {
        // rumqttd keeps this in a u16; the board allows up to ten minutes, which saturates at
        // about 65 seconds.
        connection_timeout_ms: u16::try_from(limits.connect_timeout_ms).unwrap_or(u16::MAX),
        // rumqttd checks the packet's remaining length (topic, packet id and payload) against
        // this, so the largest payload is a little smaller: max_payload_bytes minus the topic
        // length and 4 bytes.
        max_payload_size: limits.max_payload_bytes,
        // In rumqttd 0.20 this bounds how many packets are read from one client before they are
        // handed to the router; the QoS 1/2 messages in flight to a client are fixed at 100.
        max_inflight_count: usize::from(limits.max_inflight),
        // Per-listener authentication will go here (a later issue).
        auth: None,
        external_auth: None,
        // Without subscribers a publish is simply not stored; with dynamic filters rumqttd
        // would keep a commit log per published topic.
        dynamic_filters: false,
    };
    let servers = board
        .broker
        .listeners
        .iter()
        .map(|listener| {
            let settings = ServerSettings {
                name: listener.name.clone(),
                listen: listener.address,
                tls: None,
                next_connection_delay_ms: NEXT_CONNECTION_DELAY_MS,
                connections: connections.clone(),
            };
            (listener.name.clone(), settings)
        })
        .collect::<HashMap<_, _>>();
    rumqttd::Config {
        id: 0,
        router: RouterConfig {
            // The gate refuses clients beyond the board's limit with a CONNACK; the router's
            // own limit (which leaves a client waiting) is kept out of the way, with room for
            // connections the router has not forgotten yet.
            max_connections: limits.max_connections + ROUTER_SLACK,
            max_outgoing_packet_count: MAX_OUTGOING_PACKET_COUNT,
            // Each subscribed filter keeps a commit log of at most max_segment_count segments
            // plus the one being filled, each closed once it holds max_segment_size bytes of
            // topics and payloads. rumqttd's sample config allows 100 MB x 10 per filter.
            max_segment_size: limits.segment_bytes,
            max_segment_count: limits.max_segments,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(servers),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    }
}

/// Resolves on SIGINT or SIGTERM. Installs the handlers at once, so a signal that arrives
/// while the broker starts is not lost; must be called inside the Tokio runtime.
pub fn shutdown_signal() -> Result<impl Future<Output = ()>, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Runs the broker for `board` until `shutdown` resolves, then flushes the journal.
///
/// Once every listener accepts MQTT connections, prints one line to stderr:
/// `busgate broker ready: board=NAME listeners=NAME@ADDRESS[,...] journal=off|stdout|PATH`.
pub async fn run(board: &Board, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
    let config = rumqttd_config(board);
    let listeners = &board.broker.listeners;

    // Every listener's socket is bound here, so a busy port is an error before anything starts,
    // and served by the front (see [`front`]), which relays to a rumqttd server on an internal
    // loopback port.
    let mut fronts = HashMap::new();
    let preamble = front::preamble().map_err(Error::Random)?;
    for listener in listeners {
        let bind_error = |error| Error::Bind { name: listener.name.clone(), address: listener.address, error };
        let bound = std::net::TcpListener::bind(listener.address).map_err(bind_error)?;
        let acceptor = match &listener.tls {
            Some(settings) => {
                Some(tls::acceptor(settings).map_err(|error| Error::Tls { name: listener.name.clone(), error })?)
            }
            None => None,
        };
        bound.set_nonblocking(true).map_err(bind_error)?;
        let socket = tokio::net::TcpListener::from_std(bound).map_err(bind_error)?;
        // The internal server's port: free a moment ago, on loopback.
        let internal = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0))
            .and_then(|probe| probe.local_addr())
            .map_err(bind_error)?;
        fronts.insert(listener.name.clone(), (socket, acceptor, internal));
    }

    let journal = if board.broker.journal.enabled {
        Some(Journal::start(&board.broker.journal, &board.broker.limits)?)
    } else {
        None
    };
    let tap = Tap::new(journal.as_ref().map(Journal::sender));
    let policy = Arc::new(Policy::from_board(board)?);
    let counters = Arc::new(Counters::default());

    let router_tx = Router::new(config.id, config.router.clone()).spawn();
    let mut internal =
        Internal::connect(LinkBuilder::new(local::CLIENT_ID, router_tx.clone())).await.map_err(Error::Internal)?;
    let retained = match start_retained(&board.broker.retained, &mut internal).await {
        Ok(retained) => retained,
        Err(error) => {
            close(journal, None);
            return Err(error);
        }
    };
    let mut dropped: Vec<Box<dyn Fn() -> u64 + Send + Sync>> = Vec::new();
    if let Some(journal) = &journal {
        let sender = journal.sender();
        dropped.push(Box::new(move || sender.dropped()));
    }
    if let Some(store) = &retained {
        let counter = store.sender().dropped;
        dropped.push(Box::new(move || counter.load(std::sync::atomic::Ordering::Relaxed)));
    }
    let mut uplink_queue: Box<dyn Fn() -> u64 + Send + Sync> = Box::new(|| 0);
    let mut uplink_connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut uplink_task = None;
    if let Some(settings) = &board.broker.uplink {
        let queue = match uplink::Queue::open(settings.queue_path.clone(), settings.max_queue_bytes) {
            Ok(queue) => queue,
            Err(error) => {
                close(journal, retained);
                let path = settings.queue_path.display();
                return Err(Error::Internal(format!("the uplink queue {path}: {error}")));
            }
        };
        let (depth, queue_dropped) = (queue.depth.clone(), queue.dropped.clone());
        uplink_queue = Box::new(move || depth.load(std::sync::atomic::Ordering::Relaxed));
        dropped.push(Box::new(move || queue_dropped.load(std::sync::atomic::Ordering::Relaxed)));
        let builder = LinkBuilder::new(uplink::CLIENT_ID, router_tx.clone());
        match uplink::Uplink::start(builder, settings.clone(), queue).await {
            Ok(uplink) => {
                uplink_connected = uplink.connected.clone();
                uplink_task = Some(tokio::spawn(uplink.run()));
            }
            Err(error) => {
                close(journal, retained);
                return Err(Error::Internal(format!("the uplink: {error}")));
            }
        }
    }
    let sources = HealthSources {
        board: board.name.clone(),
        counters: counters.clone(),
        dropped,
        uplink_queue,
        uplink_connected,
    };
    let interval = Duration::from_secs(board.broker.health_interval_s);
    let health = tokio::spawn(local::publish_health(internal, sources, interval));

    let servers = config.v4.unwrap_or_default();
    let (stopped_tx, mut stopped) = mpsc::unbounded_channel();
    let mut probes = Vec::new();
    for listener in listeners {
        let Some(settings) = servers.get(&listener.name) else { continue };
        let mut settings = settings.clone();
        let front = fronts.remove(&listener.name);
        let mut probe = ready::Probe { name: listener.name.clone(), address: listener.address, preamble: None };
        if let Some((socket, acceptor, internal)) = front {
            settings.listen = internal;
            // A plain listener is probed through the front; a TLS one at its internal server.
            if acceptor.is_some() {
                probe.address = internal;
                probe.preamble = Some(preamble.clone());
            }
            let handshake = Duration::from_millis(board.broker.limits.connect_timeout_ms);
            let stopped_tx = stopped_tx.clone();
            let (name, address, preamble) = (listener.name.clone(), listener.address, preamble.clone());
            tokio::spawn(async move {
                let error = front::serve(socket, acceptor, internal, preamble, handshake).await;
                let _ = stopped_tx.send(Error::ListenerStopped { name, address, message: error.to_string() });
            });
        }
        probes.push(probe);
        let admission = Admission {
            listener: listener.name.clone(),
            anonymous: listener.anonymous,
            max_keepalive_s: board.broker.limits.max_keepalive_s,
            max_connections: board.broker.limits.max_connections,
            policy: policy.clone(),
            counters: counters.clone(),
            retained: retained.as_ref().map(RetainedStore::sender),
            preamble: Some(preamble.clone()),
        };
        let codec = tap.wrap(Gate::new(rumqttd::protocol::v4::V4, admission));
        let mut server = Server::new(settings, router_tx.clone(), codec);
        let stopped_tx = stopped_tx.clone();
        let (name, address) = (listener.name.clone(), listener.address);
        tokio::spawn(async move {
            // Only returns when the server could not listen; it serves forever otherwise.
            let message = match server.start(LinkType::Remote).await {
                Ok(()) => "the server ended".to_owned(),
                Err(error) => error.to_string(),
            };
            let _ = stopped_tx.send(Error::ListenerStopped { name, address, message });
        });
    }
    drop(router_tx);

    let outcome = tokio::select! {
        Some(error) = stopped.recv() => Err(error),
        ready = ready::wait_all(&probes, READY_TIMEOUT) => ready,
    };
    if let Err(error) = outcome {
        health.abort();
        if let Some(task) = &uplink_task {
            task.abort();
        }
        close(journal, retained);
        return Err(error);
    }
    eprintln!("{}", ready_line(board));

    let outcome = tokio::select! {
        () = shutdown => {
            tracing::info!("shutting down");
            Ok(())
        }
        Some(error) = stopped.recv() => Err(error),
    };
    health.abort();
    if let Some(task) = &uplink_task {
        task.abort();
    }
    close(journal, retained);
    outcome
}

/// Loads the retained store, if the board keeps one, and hands its messages to the router
/// before any client connects. A damaged file is set aside (`.damaged`), not fatal: the
/// gateways republish their retained state anyway.
async fn start_retained(settings: &board::Retained, internal: &mut Internal) -> Result<Option<RetainedStore>, Error> {
    if !settings.enabled {
        return Ok(None);
    }
    let path = &settings.path;
    let messages = match retained::load(path) {
        Ok(messages) => messages,
        Err(error) => {
            let aside = path.with_extension("damaged");
            tracing::error!(%error, aside = %aside.display(), "starting without the retained messages");
            let _ = std::fs::rename(path, &aside);
            Default::default()
        }
    };
    for (topic, message) in &messages {
        internal.publish_retained(topic, message).await.map_err(Error::Internal)?;
    }
    if !messages.is_empty() {
        tracing::info!(count = messages.len(), path = %path.display(), "retained messages restored");
    }
    let store = RetainedStore::start(path.clone(), settings.max_bytes, messages)
        .map_err(|error| Error::Internal(format!("cannot start the retained store thread: {error}")))?;
    Ok(Some(store))
}

/// Flushes and stops the journal, before the runtime drops the connections (whose wills would
/// otherwise be journaled although the broker never publishes them), and writes the retained
/// store one last time.
fn close(journal: Option<Journal>, retained: Option<RetainedStore>) {
    if let Some(store) = retained {
        store.close();
    }
    if let Some(journal) = journal {
        let dropped = journal.close();
        if dropped > 0 {
            tracing::warn!(dropped, "the journal fell behind; messages left out in all: {dropped}");
        }
    }
}

fn ready_line(board: &Board) -> String {
    let mut line = format!("{READY}: board={} listeners=", board.name);
    for (index, listener) in board.broker.listeners.iter().enumerate() {
        let separator = if index == 0 { "" } else { "," };
        let _ = write!(line, "{separator}{}@{}", listener.name, listener.address);
    }
    let journal = &board.broker.journal;
    let _ = match (&journal.enabled, &journal.output) {
        (false, _) => write!(line, " journal=off"),
        (true, JournalOutput::Stdout) => write!(line, " journal=stdout"),
        (true, JournalOutput::File { path }) => write!(line, " journal={}", path.display()),
    };
    line
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::path::Path;

    use super::*;

    fn board(broker: &str) -> Board {
        let text = format!("[board]\nname = \"test\"\ntarget = \"x86_64-unknown-linux-gnu\"\n{broker}");
        Board::parse(&text, Path::new("test.toml")).unwrap()
    }

    #[test]
    fn sim_board_maps_to_small_explicit_limits() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/sim.toml");
        let config = rumqttd_config(&Board::load(&path).unwrap());

        let servers = config.v4.as_ref().unwrap();
        assert_eq!(servers.len(), 1);
        let local = &servers["local"];
        assert_eq!(local.name, "local");
        assert_eq!(local.listen, "127.0.0.1:1883".parse().unwrap());
        assert!(local.tls.is_none());
        let connections = &local.connections;
        assert_eq!(connections.max_payload_size, 65536);
        assert_eq!(connections.connection_timeout_ms, 5000);
        assert_eq!(connections.max_inflight_count, 100);
        assert!(connections.auth.is_none() && !connections.dynamic_filters);

        let router = &config.router;
        assert_eq!(router.max_connections, 64 + ROUTER_SLACK);
        assert_eq!(router.max_segment_size, 262_144);
        assert_eq!(router.max_segment_count, 4);
        assert_eq!(router.max_outgoing_packet_count, MAX_OUTGOING_PACKET_COUNT);
        assert!(router.initialized_filters.is_none() && router.custom_segment.is_none());

        // Nothing listens besides the board's listeners.
        assert!(config.v5.is_none() && config.ws.is_none() && config.console.is_none());
        assert!(config.prometheus.is_none() && config.bridge.is_none() && config.cluster.is_none());
    }

    #[test]
    fn every_listener_becomes_a_named_server() {
        let config = rumqttd_config(&board(
            "[broker.listeners.local]\naddress = \"127.0.0.1:1883\"\n\
             [broker.listeners.lan]\naddress = \"0.0.0.0:1884\"\nallow_remote = true\n",
        ));
        let servers = config.v4.unwrap();
        let mut names: Vec<(&str, String)> =
            servers.iter().map(|(key, s)| (key.as_str(), format!("{}@{}", s.name, s.listen))).collect();
        names.sort();
        assert_eq!(names, [("lan", "lan@0.0.0.0:1884".into()), ("local", "local@127.0.0.1:1883".into())]);
    }

    #[test]
    fn limits_flow_from_the_board() {
        let config = rumqttd_config(&board(
            "[broker.limits]\nmax_connections = 7\nmax_payload_bytes = 1000\nconnect_timeout_ms = 250\n\
             max_inflight = 9\nsegment_bytes = 4096\nmax_segments = 2\n",
        ));
        let connections = &config.v4.as_ref().unwrap()["local"].connections;
        assert_eq!(
            (connections.max_payload_size, connections.connection_timeout_ms, connections.max_inflight_count),
            (1000, 250, 9)
        );
        let router = &config.router;
        assert_eq!(
            (router.max_connections, router.max_segment_size, router.max_segment_count),
            (7 + ROUTER_SLACK, 4096, 2)
        );
    }

    // Regression: rumqttd keeps the connect timeout in a u16, and a plain cast wrapped 100 s
    // around to 34 s.
    #[test]
    fn connect_timeout_saturates_at_the_rumqttd_maximum() {
        let config = rumqttd_config(&board("[broker.limits]\nconnect_timeout_ms = 100000\n"));
        assert_eq!(config.v4.unwrap()["local"].connections.connection_timeout_ms, u16::MAX);
    }

    #[test]
    fn journal_choice_parses() {
        assert_eq!("off".parse(), Ok(JournalChoice::Off));
        assert_eq!("stdout".parse(), Ok(JournalChoice::Stdout));
        assert_eq!("/tmp/j.jsonl".parse(), Ok(JournalChoice::File("/tmp/j.jsonl".into())));
        assert!("".parse::<JournalChoice>().is_err());
    }

    #[test]
    fn overrides_replace_listeners_and_journal() {
        let mut board = board("[broker.journal]\nenabled = false\n");
        let overrides = Overrides {
            journal: Some(JournalChoice::File("j.jsonl".into())),
            listen: Some("127.0.0.1:4000".parse().unwrap()),
        };
        overrides.apply(&mut board).unwrap();
        assert_eq!(ready_line(&board), "busgate broker ready: board=test listeners=cli@127.0.0.1:4000 journal=j.jsonl");

        Overrides { journal: Some(JournalChoice::Off), listen: None }.apply(&mut board).unwrap();
        assert!(!board.broker.journal.enabled);
    }

    #[test]
    fn listen_override_refuses_remote_addresses() {
        let mut board = board("");
        let overrides = Overrides { journal: None, listen: Some("0.0.0.0:1883".parse().unwrap()) };
        let error = overrides.apply(&mut board).unwrap_err();
        assert!(error.to_string().starts_with("--listen 0.0.0.0:1883 is reachable from other machines"), "{error}");
    }

    #[test]
    fn ready_line_names_board_listeners_and_journal() {
        let board =
            board("[broker.listeners.a]\naddress = \"127.0.0.1:1\"\n[broker.listeners.b]\naddress = \"127.0.0.1:2\"\n");
        assert_eq!(
            ready_line(&board),
            "busgate broker ready: board=test listeners=a@127.0.0.1:1,b@127.0.0.1:2 journal=off"
        );
    }
}
