//! The board's MQTT broker: rumqttd's router, with busgate's own connection engine in front of
//! it, configured from the board file.
//!
//! [`run`] binds every listener itself ([`listen`]: TCP, TLS, Unix sockets) and serves each
//! client with a connection task ([`connection`]) that owns the MQTT session as the client sees
//! it ([`session`], [`registry`]): the strict frame check ([`frame`], [`codec`]), logins and
//! access rules ([`policy`]), QoS 1 and 2 in both directions, persistent sessions kept across
//! restarts ([`persist`]), and the will. rumqttd's router carries the messages, at QoS 0, from
//! the sessions' links to the engine's dispatcher, which hands them to the sessions ([`hub`]). Around it: the journal ([`journal`]), the retained store
//! ([`retained`]), the uplink ([`uplink`]) and the broker's health ([`local`]).
//! ARCHITECTURE.md tells why.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use board::{Board, JournalOutput};
use rumqttd::local::LinkBuilder;
use rumqttd::{Router, RouterConfig};
use tokio::sync::{mpsc, watch};

pub mod codec;
pub mod connection;
pub mod counters;
pub mod frame;
pub mod hub;
pub mod journal;
pub mod listen;
pub mod local;
pub mod log;
pub mod persist;
pub mod policy;
pub mod registry;
pub mod retained;
pub mod session;
pub mod tls;
pub mod uplink;

use connection::{Engine, Settings};
use counters::Counters;
use hub::{Hub, LinkFactory};
use journal::Journal;
use local::{HealthSources, Internal};
use policy::{Policy, PolicyError};
use registry::{Registry, SessionLimits};
use retained::RetainedStore;
use session::Bounds;

/// The substring of the readiness line that scripts and tests wait for.
pub const READY: &str = "busgate broker ready";

/// Connections the router has room for beyond the engine's own (the broker's health and
/// uplink links, and links still being taken down).
const ROUTER_SLACK: usize = 16;

/// How long stopping waits for the connections to end, and then for the dispatcher.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// How often the session file is written while sessions change, and sessions expire.
const SESSION_TICK: Duration = Duration::from_secs(2);

/// Why the broker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listener {name:?}: cannot listen on {address}: {error}")]
    Bind { name: String, address: SocketAddr, error: io::Error },
    #[error("listener {name:?} on {address} stopped: {message}")]
    ListenerStopped { name: String, address: SocketAddr, message: String },
    #[error("socket {name:?}: cannot listen on {}: {error}", path.display())]
    BindUnix { name: String, path: PathBuf, error: io::Error },
    #[error("the session file: {0}")]
    Sessions(String),
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

/// The router's configuration for a board. The router serves no socket: the engine's links are
/// its only connections, at most one per connection and persistent session.
pub fn router_config(board: &Board) -> RouterConfig {
    let limits = &board.broker.limits;
    RouterConfig {
        max_connections: limits.max_connections + board.broker.sessions.max_sessions + ROUTER_SLACK,
        // The engine's links subscribe at QoS 0; the router hands a link this many messages per
        // pass and pauses it at 200 until the engine has taken them (see [`hub`]).
        max_outgoing_packet_count: 200,
        // Each filter on the router (the dispatcher's, and the uplink's) keeps a commit log of at
        // most max_segment_count segments plus the one being filled, each closed once it holds
        // max_segment_size bytes of topics and payloads. The dispatcher drains it at once into
        // the sessions' bounded queues, so the log is only a short buffer.
        max_segment_size: limits.segment_bytes,
        max_segment_count: limits.max_segments,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
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

/// Runs the broker for `board` until `shutdown` resolves, then writes the session file and
/// flushes the journal. `reload` yields new identities and access rules (SIGHUP in `main`).
///
/// Once every listener is bound and the router runs, prints one line to stderr:
/// `busgate broker ready: board=NAME listeners=NAME@ADDRESS[,...] journal=off|stdout|PATH`.
pub async fn run(
    board: &Board,
    shutdown: impl Future<Output = ()>,
    mut reload: mpsc::Receiver<Policy>,
) -> Result<(), Error> {
    let limits = &board.broker.limits;
    // Every socket is bound first, so a busy port is an error before anything starts.
    let mut tcp = Vec::new();
    for listener in &board.broker.listeners {
        let bind_error = |error| Error::Bind { name: listener.name.clone(), address: listener.address, error };
        let acceptor = match &listener.tls {
            Some(settings) => {
                Some(tls::acceptor(settings).map_err(|error| Error::Tls { name: listener.name.clone(), error })?)
            }
            None => None,
        };
        let socket = tokio::net::TcpListener::bind(listener.address).await.map_err(bind_error)?;
        tcp.push((listener, socket, acceptor));
    }
    let mut unix = Vec::new();
    for socket in &board.broker.sockets {
        let bind_error = |error| Error::BindUnix { name: socket.name.clone(), path: socket.path.clone(), error };
        let bound = listen::bind_unix(&socket.path, socket.mode).map_err(bind_error)?;
        unix.push((socket, tokio::net::UnixListener::from_std(bound).map_err(bind_error)?));
    }

    let journal =
        if board.broker.journal.enabled { Some(Journal::start(&board.broker.journal, limits)?) } else { None };
    let policy = Policy::from_board(board)?;
    let counters = Arc::new(Counters::default());
    let retained = match start_retained(&board.broker.retained) {
        Ok(retained) => retained,
        Err(error) => {
            close(journal, None);
            return Err(error);
        }
    };
    let (store, kept) = match retained {
        Some((store, kept)) => (Some(store), kept),
        None => (None, BTreeMap::new()),
    };

    let router_tx = Router::new(0, router_config(board)).spawn();
    let factory: LinkFactory = Arc::new(move |client_id| LinkBuilder::new(client_id, router_tx.clone()));
    let hub = Arc::new(Hub::new(factory, kept, store.as_ref().map(RetainedStore::sender)));
    if let Err(error) = hub.start_dispatch().await {
        close(journal, store);
        return Err(Error::Internal(format!("the dispatch link: {error}")));
    }
    let sessions = &board.broker.sessions;
    let bounds = Bounds {
        inflight: usize::from(limits.max_inflight),
        queued: sessions.max_queued,
        queued_bytes: sessions.max_queued_bytes,
    };
    let session_limits =
        SessionLimits { max_sessions: sessions.max_sessions, expiry: Duration::from_secs(sessions.expiry_s) };
    let registry = Registry::new(session_limits, bounds, counters.clone());
    let session_file = board.broker.retained.enabled.then(|| session_path(&board.broker.retained.path));
    if let Some(path) = &session_file
        && let Err(error) = restore_sessions(&hub, &registry, path).await
    {
        close(journal, store);
        return Err(error);
    }
    let (policy_tx, policy_rx) = watch::channel(Arc::new(policy));
    let engine = Arc::new(Engine {
        hub: hub.clone(),
        registry,
        policy: policy_rx,
        counters: counters.clone(),
        journal: journal.as_ref().map(Journal::sender),
        settings: Settings {
            max_connections: limits.max_connections,
            max_packet_bytes: limits.max_payload_bytes,
            connect_timeout: Duration::from_millis(limits.connect_timeout_ms),
            max_keepalive_s: limits.max_keepalive_s,
            bounds,
        },
        closing: Default::default(),
    });

    let internal = match Internal::connect(hub.clone()).await {
        Ok(internal) => internal,
        Err(error) => {
            close(journal, store);
            return Err(Error::Internal(error));
        }
    };
    let mut dropped: Vec<Box<dyn Fn() -> u64 + Send + Sync>> = Vec::new();
    if let Some(journal) = &journal {
        let sender = journal.sender();
        dropped.push(Box::new(move || sender.dropped()));
    }
    if let Some(store) = &store {
        let counter = store.sender().dropped;
        dropped.push(Box::new(move || counter.load(std::sync::atomic::Ordering::Relaxed)));
    }
    let session_drops = counters.clone();
    dropped.push(Box::new(move || session_drops.dropped.load(std::sync::atomic::Ordering::Relaxed)));
    let mut uplink_queue: Box<dyn Fn() -> u64 + Send + Sync> = Box::new(|| 0);
    let mut uplink_connected = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut uplink_task = None;
    if let Some(settings) = &board.broker.uplink {
        let queue = match uplink::Queue::open(settings.queue_path.clone(), settings.max_queue_bytes) {
            Ok(queue) => queue,
            Err(error) => {
                close(journal, store);
                let path = settings.queue_path.display();
                return Err(Error::Internal(format!("the uplink queue {path}: {error}")));
            }
        };
        let (depth, queue_dropped) = (queue.depth.clone(), queue.dropped.clone());
        uplink_queue = Box::new(move || depth.load(std::sync::atomic::Ordering::Relaxed));
        dropped.push(Box::new(move || queue_dropped.load(std::sync::atomic::Ordering::Relaxed)));
        match uplink::Uplink::start(hub.clone(), settings.clone(), queue).await {
            Ok(uplink) => {
                uplink_connected = uplink.connected.clone();
                uplink_task = Some(tokio::spawn(uplink.run()));
            }
            Err(error) => {
                close(journal, store);
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

    let pending = Arc::new(listen::Pending::default());
    // Room for a crowd of clients reconnecting at once, but not for a flood.
    let max_pending = limits.max_connections * 2 + 16;
    let (stopped_tx, mut stopped) = mpsc::unbounded_channel();
    let mut tasks = Vec::new();
    for (listener, socket, acceptor) in tcp {
        let door = listen::Listener {
            name: Arc::from(listener.name.as_str()),
            anonymous: listener.anonymous,
            engine: engine.clone(),
            pending: pending.clone(),
            max_pending,
        };
        let stopped_tx = stopped_tx.clone();
        let (name, address) = (listener.name.clone(), listener.address);
        tasks.push(tokio::spawn(async move {
            let error = listen::tcp(socket, acceptor, door).await;
            let _ = stopped_tx.send(Error::ListenerStopped { name, address, message: error.to_string() });
        }));
    }
    for (socket, bound) in unix {
        let door = listen::Listener {
            name: Arc::from(socket.name.as_str()),
            anonymous: socket.anonymous,
            engine: engine.clone(),
            pending: pending.clone(),
            max_pending,
        };
        let peers = Arc::new(socket.peers.clone());
        let stopped_tx = stopped_tx.clone();
        let name = socket.name.clone();
        let address = SocketAddr::from(([0, 0, 0, 0], 0));
        tasks.push(tokio::spawn(async move {
            let error = listen::unix(bound, peers, door).await;
            let _ = stopped_tx.send(Error::ListenerStopped { name, address, message: error.to_string() });
        }));
    }
    drop(stopped_tx);
    let sessions_task = tokio::spawn(keep_sessions(engine.clone(), session_file.clone(), sessions.max_bytes));
    eprintln!("{}", ready_line(board));

    tokio::pin!(shutdown);
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => {
                tracing::info!("shutting down");
                break Ok(());
            }
            Some(error) = stopped.recv() => break Err(error),
            Some(policy) = reload.recv() => {
                tracing::info!("identities and access rules reloaded");
                let _ = policy_tx.send(Arc::new(policy));
            }
        }
    };
    for task in tasks {
        task.abort();
    }
    // Every connection ends and hands its session back; then every message already taken is
    // queued for its sessions, and only then is the session file written.
    engine.closing.close();
    let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
    while counters.live.load(std::sync::atomic::Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !hub.flush(SHUTDOWN_WAIT).await {
        tracing::warn!("messages on their way to sessions may be missing from the session file");
    }
    sessions_task.abort();
    health.abort();
    if let Some(task) = &uplink_task {
        task.abort();
    }
    if let Some(path) = &session_file {
        write_sessions(&engine, path, sessions.max_bytes).await;
    }
    close(journal, store);
    outcome
}

/// An engine on a router of its own, with no listeners, journal or stores: for driving
/// [`connection::serve`] in process (the fuzz target and the random-input test). Must be called
/// inside a Tokio runtime.
#[doc(hidden)]
pub fn standalone_engine(board: &Board) -> Result<Arc<Engine>, Error> {
    let limits = &board.broker.limits;
    let router_tx = Router::new(0, router_config(board)).spawn();
    let factory: LinkFactory = Arc::new(move |client_id| LinkBuilder::new(client_id, router_tx.clone()));
    let hub = Arc::new(Hub::new(factory, BTreeMap::new(), None));
    let counters = Arc::new(Counters::default());
    let dispatching = hub.clone();
    tokio::spawn(async move {
        if let Err(error) = dispatching.start_dispatch().await {
            tracing::error!(%error, "no dispatch link");
        }
    });
    let sessions = &board.broker.sessions;
    let bounds = Bounds {
        inflight: usize::from(limits.max_inflight),
        queued: sessions.max_queued,
        queued_bytes: sessions.max_queued_bytes,
    };
    let session_limits =
        SessionLimits { max_sessions: sessions.max_sessions, expiry: Duration::from_secs(sessions.expiry_s) };
    let (_, policy) = watch::channel(Arc::new(Policy::from_board(board)?));
    Ok(Arc::new(Engine {
        hub,
        registry: Registry::new(session_limits, bounds, counters.clone()),
        policy,
        counters,
        journal: None,
        settings: Settings {
            max_connections: limits.max_connections,
            max_packet_bytes: limits.max_payload_bytes,
            connect_timeout: Duration::from_millis(limits.connect_timeout_ms),
            max_keepalive_s: limits.max_keepalive_s,
            bounds,
        },
        closing: Default::default(),
    }))
}

/// The session file beside the retained store.
fn session_path(retained: &Path) -> PathBuf {
    retained.with_file_name("sessions.bin")
}

async fn restore_sessions(hub: &Arc<Hub>, registry: &Registry, path: &Path) -> Result<(), Error> {
    let sessions = match persist::load(path) {
        Ok(sessions) => sessions,
        Err(error) => {
            let aside = path.with_extension("damaged");
            tracing::error!(%error, aside = %aside.display(), "starting without the saved sessions");
            let _ = std::fs::rename(path, &aside);
            Vec::new()
        }
    };
    let count = sessions.len();
    registry.restore(hub, sessions).await.map_err(|error| Error::Sessions(error.to_string()))?;
    if count > 0 {
        tracing::info!(count, path = %path.display(), "persistent sessions restored");
    }
    Ok(())
}

/// Expires sessions and writes the session file when it changed, until aborted.
async fn keep_sessions(engine: Arc<Engine>, path: Option<PathBuf>, max_bytes: usize) {
    let mut ticks = tokio::time::interval(SESSION_TICK);
    let mut written = Vec::new();
    loop {
        ticks.tick().await;
        engine.registry.expire();
        if let Some(path) = &path {
            let (bytes, _) = persist::encode(&engine.registry.snapshot(), max_bytes);
            if bytes != written {
                if let Err(error) = save(path.clone(), bytes.clone()).await {
                    tracing::warn!(%error, path = %path.display(), "cannot write the session file");
                }
                written = bytes;
            }
        }
    }
}

async fn write_sessions(engine: &Engine, path: &Path, max_bytes: usize) {
    let (bytes, left_out) = persist::encode(&engine.registry.snapshot(), max_bytes);
    if left_out > 0 {
        tracing::warn!(left_out, max_bytes, "the session file is full; queued messages left out");
    }
    if let Err(error) = save(path.to_owned(), bytes).await {
        tracing::warn!(%error, path = %path.display(), "cannot write the session file");
    }
}

async fn save(path: PathBuf, bytes: Vec<u8>) -> io::Result<()> {
    tokio::task::spawn_blocking(move || persist::save(&path, &bytes)).await.map_err(io::Error::other)?
}

/// The retained store's writer and what it held at start.
type KeptRetained = (RetainedStore, BTreeMap<String, hub::Retained>);

/// Loads the retained store, if the board keeps one. A damaged file is set aside (`.damaged`),
/// not fatal: the gateways republish their retained state anyway.
fn start_retained(settings: &board::Retained) -> Result<Option<KeptRetained>, Error> {
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
    if !messages.is_empty() {
        tracing::info!(count = messages.len(), path = %path.display(), "retained messages restored");
    }
    let kept = messages
        .iter()
        .map(|(topic, message)| (topic.clone(), hub::Retained { qos: message.qos, payload: message.payload.clone() }))
        .collect();
    let store = RetainedStore::start(path.clone(), settings.max_bytes, messages)
        .map_err(|error| Error::Internal(format!("cannot start the retained store thread: {error}")))?;
    Ok(Some((store, kept)))
}

/// Flushes and stops the journal and writes the retained store one last time.
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
    for socket in &board.broker.sockets {
        let _ = write!(line, ",{}@unix:{}", socket.name, socket.path.display());
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
    fn the_router_has_room_for_every_connection_and_session() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/sim.toml");
        let router = router_config(&Board::load(&path).unwrap());
        assert_eq!(router.max_connections, 64 + 64 + ROUTER_SLACK);
        assert_eq!(router.max_segment_size, 262_144);
        assert_eq!(router.max_segment_count, 4);
        assert!(router.initialized_filters.is_none() && router.custom_segment.is_none());

        let router = router_config(&board(
            "[broker.limits]\nmax_connections = 7\nmax_payload_bytes = 1000\nsegment_bytes = 4096\nmax_segments = 2\n\
             [broker.sessions]\nmax_sessions = 3\n",
        ));
        assert_eq!(
            (router.max_connections, router.max_segment_size, router.max_segment_count),
            (7 + 3 + ROUTER_SLACK, 4096, 2)
        );
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
