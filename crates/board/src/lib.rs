//! Board definitions: one TOML file per board in `boards/`, loaded and validated here.
//!
//! A board file says what runs on the board: the broker's listeners and limits, the MQTT
//! settings the gateways share, the buses (real or mocked) and the devices on them. Every error
//! names the file, the line and the field, because users write these files by hand.
//!
//! The format is documented by `boards/sim.toml` and `boards/rpi4.toml`, which are loaded by
//! this crate's tests.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

pub mod can;
mod raw;

pub use raw::{BusKind, JournalOutput};

/// A board file that could not be used, with where and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}: {field}: {message}", file.display())]
pub struct BoardError {
    pub file: PathBuf,
    /// 1-based line of the offending value (or 1 when the whole file is at fault).
    pub line: usize,
    /// Dotted path of the field, e.g. `device[2].address`.
    pub field: String,
    pub message: String,
}

/// A validated board.
#[derive(Debug, Clone)]
pub struct Board {
    /// The file it came from, for error messages and for handing to the processes.
    pub file: PathBuf,
    /// Source text, kept so that later checks (e.g. driver names) can point at lines.
    source: String,
    pub name: String,
    pub description: String,
    /// Rust target triple of the board's CPU, e.g. `aarch64-unknown-linux-gnu`.
    pub target: String,
    pub deploy: Option<Deploy>,
    /// Home Assistant's discovery prefix, when the board publishes discovery configs.
    pub homeassistant: Option<String>,
    pub broker: Broker,
    pub gateway: Gateway,
    pub buses: Vec<Bus>,
    pub devices: Vec<Device>,
}

/// Where `cargo xtask deploy` installs the board's software.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    /// `user@host` reached over ssh.
    pub host: String,
    /// Installation directory on the board.
    pub prefix: String,
    /// The C compiler that links for the board's target, when the usual cross compiler for
    /// the triple (e.g. `aarch64-linux-gnu-gcc`) is not the right one.
    pub linker: Option<String>,
}

/// The broker's configuration. Listeners are named so that later additions (TLS, per-listener
/// authentication) attach to a listener without reshaping the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    pub listeners: Vec<Listener>,
    pub limits: Limits,
    pub journal: Journal,
    /// Identities that may log in; a gateway logs in as the user named after its program
    /// (e.g. `i2c-gateway`), whose access rules the broker derives from the board.
    pub users: Vec<User>,
    pub retained: Retained,
    /// Forwarding to an upstream broker, if any.
    pub uplink: Option<Uplink>,
    /// How often the broker publishes its counters on its health topic.
    pub health_interval_s: u64,
    /// Persistent sessions (clean session 0): how many, for how long, how much they keep.
    pub sessions: Sessions,
    /// Unix-socket listeners.
    pub sockets: Vec<Socket>,
}

/// Bounds on persistent sessions; they are kept across restarts beside the retained store.
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    pub max_sessions: usize,
    /// A session whose client has been away this long is removed.
    pub expiry_s: u64,
    /// Messages queued per session (connected or not); beyond it the oldest is dropped and
    /// counted.
    pub max_queued: usize,
    /// Topic and payload bytes queued per session, bounded the same way.
    pub max_queued_bytes: usize,
    /// Bound on the session file.
    pub max_bytes: usize,
}

/// A Unix-socket listener: who may connect is the socket file's mode; a peer uid listed in
/// `peers` logs in as that user without a password (`SO_PEERCRED`).
#[derive(Debug, Clone, PartialEq)]
pub struct Socket {
    pub name: String,
    pub path: PathBuf,
    pub mode: u32,
    pub anonymous: bool,
    pub peers: Vec<(u32, String)>,
}

/// Forwarding selected local topics to an upstream broker (QoS 1, through a bounded queue on
/// disk), and command topics back down.
#[derive(Debug, Clone, PartialEq)]
pub struct Uplink {
    /// The upstream broker's host name or IP address; with TLS, its certificate must be for
    /// this name.
    pub host: String,
    pub port: u16,
    /// TLS to the upstream broker; plain MQTT when absent.
    pub tls: Option<UplinkTls>,
    pub client_id: String,
    pub username: Option<String>,
    /// The upstream password, in a file only the broker's user can read.
    pub password_file: Option<PathBuf>,
    /// Local topic filters forwarded upstream.
    pub forward: Vec<String>,
    /// Prepended to a local topic upstream, removed from a command topic coming down.
    pub remote_prefix: String,
    /// Upstream topic filters whose messages are published locally.
    pub commands: Vec<String>,
    /// The store-and-forward queue file.
    pub queue_path: PathBuf,
    /// Bound on the queue file; the oldest messages are dropped (and counted) beyond it.
    pub max_queue_bytes: u64,
}

/// TLS towards the upstream broker (TLS 1.2 or 1.3).
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkTls {
    /// The CA certificates (PEM) the upstream broker's certificate must chain to; by default
    /// the system's bundle, `/etc/ssl/certs/ca-certificates.crt`.
    pub ca: PathBuf,
    /// A client certificate and its key (PEM), for upstream brokers that want one.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Where retained messages are kept across restarts.
#[derive(Debug, Clone, PartialEq)]
pub struct Retained {
    pub enabled: bool,
    /// The store file (mode 0600, replaced atomically); its directory is created if missing.
    pub path: PathBuf,
    /// Bound on the store: topics and payloads of all retained messages kept, in bytes.
    pub max_bytes: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    pub address: SocketAddr,
    /// Clients may connect without a user name (and get the anonymous identity's access).
    pub anonymous: bool,
    /// Serve MQTT over TLS (1.2 or 1.3) instead of plain TCP.
    pub tls: Option<Tls>,
}

/// A TLS listener's certificates, as PEM files.
#[derive(Debug, Clone, PartialEq)]
pub struct Tls {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// The CA whose client certificates are accepted; without it, clients present none.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a certificate signed by `client_ca`.
    pub require_client_cert: bool,
}

/// One identity that may log in to the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub name: String,
    /// A salted hash in PHC string form (`$argon2id$...`), never the password.
    pub password_hash: String,
    /// Topic patterns (with `%c` and `%u`) this user may publish to; with `subscribe`, empty
    /// means no restriction unless the broker derives rules for the user.
    pub publish: Vec<String>,
    /// Topic patterns this user may subscribe within.
    pub subscribe: Vec<String>,
}

/// Bounds on what the broker accepts and keeps, so it fits in a small board's memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    pub max_connections: usize,
    /// Largest PUBLISH payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// A client that has not sent CONNECT within this time is disconnected.
    pub connect_timeout_ms: u64,
    /// Unacknowledged QoS 1/2 messages in flight per connection.
    pub max_inflight: u16,
    /// rumqttd keeps a commit log per subscribed filter, in segments of this size.
    pub segment_bytes: usize,
    /// Segments kept per filter; memory per filter is at most `segment_bytes * max_segments`.
    pub max_segments: usize,
    /// Largest keepalive a client may ask for; a client asking for 0 (no keepalive) is given
    /// this as its idle limit.
    pub max_keepalive_s: u16,
}

/// The message journal: every message through the broker, for debugging.
#[derive(Debug, Clone, PartialEq)]
pub struct Journal {
    pub enabled: bool,
    pub output: JournalOutput,
    /// Rotate the journal file when it reaches this size.
    pub max_file_bytes: u64,
    /// Rotated files kept besides the current one.
    pub max_files: u32,
}

/// MQTT settings shared by the board's gateways.
#[derive(Debug, Clone, PartialEq)]
pub struct Gateway {
    /// The broker the gateways connect to.
    pub broker: SocketAddr,
    /// The broker's Unix socket, one of `[broker.sockets.*]`: when set, the gateways connect
    /// over it instead of `broker` (which tools such as deploy still use).
    pub broker_socket: Option<PathBuf>,
    pub keep_alive_s: u64,
    /// Readings and replies kept while the broker is unreachable; the oldest are dropped (and
    /// counted) beyond this.
    pub outbox_capacity: usize,
    /// Reconnect backoff, doubling from min to max with jitter.
    pub reconnect_min_ms: u64,
    pub reconnect_max_ms: u64,
    /// Retry backoff for a device that went offline, doubling from min to max.
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    pub health_interval_s: u64,
    /// Where each gateway finds its broker password, in `{gateway}.password` (e.g.
    /// `i2c-gateway.password`, mode 0600, made at install time); unset: connect anonymously.
    pub credentials_dir: Option<PathBuf>,
}

/// One bus of the board.
#[derive(Debug, Clone, PartialEq)]
pub struct Bus {
    pub name: String,
    pub kind: BusKind,
    /// The device file, e.g. `/dev/i2c-1`; absent for a mocked bus.
    pub path: Option<PathBuf>,
    /// Run a simulated bus instead of the device file.
    pub mock: bool,
    /// The CAN settings (CAN buses only).
    pub can: Option<can::CanBus>,
}

/// How an SPI device is reached. On Linux its device file is `{bus path}.{chip_select}`,
/// e.g. `/dev/spidev0.1` for bus path `/dev/spidev0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpiSettings {
    pub chip_select: u8,
    /// SPI mode 0 to 3 (clock polarity and phase), from the chip's datasheet.
    pub mode: u8,
    pub max_speed_hz: u32,
    pub bits_per_word: u8,
    /// Whether applications may send raw transfers to the device by command.
    pub raw: bool,
}

/// One peripheral on a bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub name: String,
    pub bus: String,
    pub driver: String,
    /// 7-bit I2C address (I2C devices).
    pub address: Option<u8>,
    /// Chip select and transfer settings (SPI devices).
    pub spi: Option<SpiSettings>,
    pub poll_ms: u64,
    pub description: String,
    /// Driver-specific settings.
    pub options: device::Options,
    /// Where `driver` stands in the file, so a gateway can report an unknown driver by line.
    pub driver_span: Range<usize>,
    /// Where `options` stands in the file.
    pub options_span: Range<usize>,
    /// Index in the file's `[[device]]` list, for field paths.
    pub index: usize,
}

impl Board {
    /// Reads and validates a board file.
    pub fn load(path: &Path) -> Result<Board, BoardError> {
        let text = std::fs::read_to_string(path).map_err(|error| BoardError {
            file: path.to_owned(),
            line: 1,
            field: "(file)".into(),
            message: format!("cannot read: {error}"),
        })?;
        Board::parse(&text, path)
    }

    /// Validates board text; `file` is used in error messages.
    pub fn parse(text: &str, file: &Path) -> Result<Board, BoardError> {
        let raw: raw::BoardFile = toml::from_str(text).map_err(|error| {
            let line = error.span().map_or(1, |span| line_of(text, span.start));
            BoardError {
                file: file.to_owned(),
                line,
                field: "(syntax)".into(),
                message: error.message().trim().to_owned(),
            }
        })?;
        raw::validate(raw, text, file)
    }

    /// An error pointing at a span of this board's file, for checks made outside this crate.
    pub fn error_at(&self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) -> BoardError {
        BoardError {
            file: self.file.clone(),
            line: line_of(&self.source, span.start),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The buses of one kind.
    pub fn buses_of(&self, kind: BusKind) -> impl Iterator<Item = &Bus> {
        self.buses.iter().filter(move |bus| bus.kind == kind)
    }

    /// The devices on one bus.
    pub fn devices_on<'a>(&'a self, bus: &'a str) -> impl Iterator<Item = &'a Device> + 'a {
        self.devices.iter().filter(move |device| device.bus == bus)
    }

    /// The bus kinds that have something to bridge (a device, or any CAN bus), i.e. the
    /// gateways this board runs.
    pub fn gateway_kinds(&self) -> Vec<BusKind> {
        let mut kinds: Vec<BusKind> = self
            .buses
            .iter()
            .filter(|bus| bus.kind == BusKind::Can || self.devices_on(&bus.name).next().is_some())
            .map(|bus| bus.kind)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    /// Every bus set to mock mode, for `--mock`.
    pub fn force_mock(&mut self) {
        for bus in &mut self.buses {
            bus.mock = true;
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| before.matches('\n').count() + 1)
}

/// Checks a name used as an MQTT topic level: lowercase letters, digits, `-` and `_`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 48 {
        return Err(format!("{name:?} must be 1 to 48 characters long"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit()) {
        return Err(format!("{name:?} must start with a lowercase letter or a digit"));
    }
    if let Some(bad) = name.chars().find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')) {
        return Err(format!("{name:?} contains {bad:?}; use lowercase letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// Deserializes a spanned value; used by `raw`.
fn spanned<T>(value: Spanned<T>) -> (T, Range<usize>) {
    let span = value.span();
    (value.into_inner(), span)
}
