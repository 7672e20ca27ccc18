//! The board file as written (serde types with spans), and its validation into [`Board`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::can;
use crate::{
    Board, BoardError, Broker, Bus, Deploy, Device, Gateway, Journal, Limits, Listener, Retained, Sessions, Socket,
    SpiSettings, Tls, Uplink, UplinkTls, User, check_name, line_of, spanned,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BoardFile {
    board: BoardSection,
    deploy: Option<DeploySection>,
    #[serde(default)]
    broker: BrokerSection,
    #[serde(default)]
    gateway: GatewaySection,
    homeassistant: Option<HomeAssistantSection>,
    #[serde(default, rename = "bus")]
    buses: Vec<BusSection>,
    #[serde(default, rename = "device")]
    devices: Vec<DeviceSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoardSection {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    target: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HomeAssistantSection {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "default_discovery_prefix")]
    discovery_prefix: Spanned<String>,
}

fn default_discovery_prefix() -> Spanned<String> {
    Spanned::new(0..0, "homeassistant".into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploySection {
    host: String,
    #[serde(default = "default_prefix")]
    prefix: String,
    linker: Option<String>,
}

fn default_prefix() -> String {
    "/opt/busgate".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BrokerSection {
    #[serde(default = "default_listeners")]
    listeners: BTreeMap<String, Spanned<ListenerSection>>,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    journal: JournalSection,
    /// Identities that may log in, by user name.
    #[serde(default)]
    users: BTreeMap<String, Spanned<UserSection>>,
    #[serde(default)]
    retained: RetainedSection,
    uplink: Option<Spanned<UplinkSection>>,
    #[serde(default = "default_health_interval")]
    health_interval_s: Spanned<u64>,
    #[serde(default)]
    sessions: SessionsSection,
    /// Unix-socket listeners, by name.
    #[serde(default)]
    sockets: BTreeMap<String, Spanned<SocketSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct SessionsSection {
    max_sessions: Spanned<usize>,
    expiry_s: Spanned<u64>,
    max_queued: Spanned<usize>,
    max_queued_bytes: Spanned<usize>,
    max_bytes: Spanned<usize>,
}

impl Default for SessionsSection {
    fn default() -> Self {
        Self {
            max_sessions: Spanned::new(0..0, 64),
            expiry_s: Spanned::new(0..0, 86_400),
            max_queued: Spanned::new(0..0, 1000),
            max_queued_bytes: Spanned::new(0..0, 4 * 1024 * 1024),
            max_bytes: Spanned::new(0..0, 16 * 1024 * 1024),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SocketSection {
    path: PathBuf,
    /// The socket file's mode, as an octal string ("660").
    #[serde(default = "default_socket_mode")]
    mode: Spanned<String>,
    #[serde(default)]
    anonymous: bool,
    /// Peer uids (as strings: TOML keys) and the user each logs in as.
    #[serde(default)]
    peers: BTreeMap<String, Spanned<String>>,
}

fn default_socket_mode() -> Spanned<String> {
    Spanned::new(0..0, "660".to_owned())
}

fn default_health_interval() -> Spanned<u64> {
    Spanned::new(0..0, 10)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UplinkSection {
    address: Spanned<String>,
    client_id: String,
    username: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default)]
    forward: Vec<Spanned<String>>,
    #[serde(default)]
    remote_prefix: String,
    #[serde(default)]
    commands: Vec<Spanned<String>>,
    queue_path: PathBuf,
    #[serde(default = "default_queue_bytes")]
    max_queue_bytes: Spanned<u64>,
    tls: Option<Spanned<UplinkTlsSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UplinkTlsSection {
    #[serde(default = "default_ca_bundle")]
    ca: PathBuf,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

fn default_ca_bundle() -> PathBuf {
    PathBuf::from("/etc/ssl/certs/ca-certificates.crt")
}

fn default_queue_bytes() -> Spanned<u64> {
    Spanned::new(0..0, 4 * 1024 * 1024)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RetainedSection {
    enabled: bool,
    path: PathBuf,
    max_bytes: Spanned<usize>,
}

impl Default for RetainedSection {
    fn default() -> Self {
        Self {
            enabled: false,
            path: PathBuf::from("/var/lib/busgate/retained.bin"),
            max_bytes: Spanned::new(0..0, 1024 * 1024),
        }
    }
}

impl Default for BrokerSection {
    fn default() -> Self {
        Self {
            listeners: default_listeners(),
            limits: LimitsSection::default(),
            journal: JournalSection::default(),
            users: BTreeMap::new(),
            retained: RetainedSection::default(),
            uplink: None,
            health_interval_s: default_health_interval(),
            sessions: SessionsSection::default(),
            sockets: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSection {
    password_hash: Spanned<String>,
    #[serde(default)]
    publish: Vec<Spanned<String>>,
    #[serde(default)]
    subscribe: Vec<Spanned<String>>,
}

fn default_listeners() -> BTreeMap<String, Spanned<ListenerSection>> {
    let local = ListenerSection {
        address: Spanned::new(0..0, DEFAULT_LISTEN.into()),
        allow_remote: false,
        anonymous: None,
        tls: None,
    };
    BTreeMap::from([("local".to_owned(), Spanned::new(0..0, local))])
}

const DEFAULT_LISTEN: &str = "127.0.0.1:1883";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerSection {
    address: Spanned<String>,
    /// Listening beyond loopback must be asked for: until authentication is configured, anyone
    /// who reaches the port reaches every device.
    #[serde(default)]
    allow_remote: bool,
    /// Whether clients may connect without a user name. Unset: only on a loopback listener of a
    /// board that declares no users.
    anonymous: Option<bool>,
    tls: Option<Spanned<TlsSection>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    #[serde(default)]
    require_client_cert: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsSection {
    max_connections: Spanned<usize>,
    max_payload_bytes: Spanned<usize>,
    connect_timeout_ms: Spanned<u64>,
    max_inflight: Spanned<u16>,
    segment_bytes: Spanned<usize>,
    max_segments: Spanned<usize>,
    max_keepalive_s: Spanned<u16>,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let at = |v| Spanned::new(0..0, v);
        Self {
            max_connections: at(64),
            max_payload_bytes: at(64 * 1024),
            connect_timeout_ms: Spanned::new(0..0, 5_000),
            max_inflight: Spanned::new(0..0, 100),
            segment_bytes: at(256 * 1024),
            max_segments: at(4),
            max_keepalive_s: Spanned::new(0..0, 3_600),
        }
    }
}

/// Where the journal goes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum JournalOutput {
    Stdout,
    File { path: PathBuf },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct JournalSection {
    enabled: bool,
    output: JournalOutput,
    max_file_bytes: Spanned<u64>,
    max_files: u32,
}

impl Default for JournalSection {
    fn default() -> Self {
        Self {
            enabled: false,
            output: JournalOutput::Stdout,
            max_file_bytes: Spanned::new(0..0, 4 * 1024 * 1024),
            max_files: 3,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct GatewaySection {
    broker: Option<Spanned<String>>,
    broker_socket: Option<Spanned<PathBuf>>,
    keep_alive_s: Spanned<u64>,
    outbox_capacity: Spanned<usize>,
    reconnect_min_ms: Spanned<u64>,
    reconnect_max_ms: Spanned<u64>,
    retry_min_ms: Spanned<u64>,
    retry_max_ms: Spanned<u64>,
    health_interval_s: Spanned<u64>,
    credentials_dir: Option<Spanned<PathBuf>>,
}

impl Default for GatewaySection {
    fn default() -> Self {
        let at = |v| Spanned::new(0..0, v);
        Self {
            broker: None,
            broker_socket: None,
            keep_alive_s: at(15),
            outbox_capacity: Spanned::new(0..0, 1_000),
            reconnect_min_ms: at(100),
            reconnect_max_ms: at(10_000),
            retry_min_ms: at(500),
            retry_max_ms: at(30_000),
            health_interval_s: at(10),
            credentials_dir: None,
        }
    }
}

/// The kind of a bus, which decides the gateway that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusKind {
    I2c,
    Spi,
    Can,
}

impl BusKind {
    /// The topic level and the word users write in the board file.
    pub fn as_str(self) -> &'static str {
        match self {
            BusKind::I2c => "i2c",
            BusKind::Spi => "spi",
            BusKind::Can => "can",
        }
    }
    /// The gateway binary that runs buses of this kind.
    pub fn gateway(self) -> &'static str {
        match self {
            BusKind::I2c => "i2c-gateway",
            BusKind::Spi => "spi-gateway",
            BusKind::Can => "can-gateway",
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BusSection {
    name: Spanned<String>,
    kind: BusKind,
    path: Option<Spanned<PathBuf>>,
    #[serde(default)]
    mock: bool,
    // CAN buses only (see can.rs); listed here because serde cannot flatten with
    // deny_unknown_fields.
    interface: Option<Spanned<String>>,
    bitrate: Option<Spanned<i64>>,
    fd: Option<bool>,
    data_bitrate: Option<Spanned<i64>>,
    dbc: Option<Spanned<Vec<String>>>,
    filters: Option<Vec<Spanned<can::FilterSection>>>,
    raw: Option<can::RawFrames>,
    raw_send: Option<bool>,
    publish: Option<Spanned<can::PolicySection>>,
    messages: Option<BTreeMap<String, Spanned<can::MessageSection>>>,
    replay: Option<Spanned<String>>,
    replay_speed: Option<Spanned<f64>>,
    simulate: Option<Spanned<String>>,
}

impl BusSection {
    fn can_fields(&mut self) -> can::CanFields {
        can::CanFields {
            interface: self.interface.take(),
            bitrate: self.bitrate.take(),
            fd: self.fd.take(),
            data_bitrate: self.data_bitrate.take(),
            dbc: self.dbc.take(),
            filters: self.filters.take(),
            raw: self.raw.take(),
            raw_send: self.raw_send.take(),
            publish: self.publish.take(),
            messages: self.messages.take(),
            replay: self.replay.take(),
            replay_speed: self.replay_speed.take(),
            simulate: self.simulate.take(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSection {
    name: Spanned<String>,
    bus: Spanned<String>,
    driver: Spanned<String>,
    address: Option<Spanned<i64>>,
    chip_select: Option<Spanned<i64>>,
    mode: Option<Spanned<i64>>,
    max_speed_hz: Option<Spanned<i64>>,
    bits_per_word: Option<Spanned<i64>>,
    /// Allows raw transfers to the device by command (SPI).
    #[serde(default)]
    raw: bool,
    #[serde(default = "default_poll")]
    poll_ms: Spanned<u64>,
    #[serde(default)]
    description: String,
    #[serde(default = "no_options")]
    options: Spanned<toml::Table>,
}

fn no_options() -> Spanned<toml::Table> {
    Spanned::new(0..0, toml::Table::new())
}

fn default_poll() -> Spanned<u64> {
    Spanned::new(0..0, 1_000)
}

/// Collects the context an error needs.
struct Checker<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Checker<'_> {
    fn error(&self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) -> BoardError {
        BoardError {
            file: self.file.to_owned(),
            line: if span == (0..0) { 1 } else { line_of(self.text, span.start) },
            field: field.into(),
            message: message.into(),
        }
    }

    fn name(&self, value: Spanned<String>, field: &str) -> Result<String, BoardError> {
        let (name, span) = spanned(value);
        check_name(&name).map_err(|message| self.error(span, field, message))?;
        Ok(name)
    }

    fn range<T: PartialOrd + std::fmt::Display + Copy>(
        &self,
        value: &Spanned<T>,
        field: &str,
        min: T,
        max: T,
    ) -> Result<T, BoardError> {
        let v = *value.get_ref();
        if v < min || v > max {
            return Err(self.error(value.span(), field, format!("{v} is out of range; allowed {min} to {max}")));
        }
        Ok(v)
    }

    /// `host:port`, where host is a name or an IP address (IPv6 in brackets).
    fn host_and_port(&self, value: &Spanned<String>, field: &str) -> Result<(String, u16), BoardError> {
        let bad = || {
            self.error(
                value.span(),
                field,
                format!(
                    "{:?} is not a host and port like \"mqtt.example.com:8883\" or \"192.0.2.10:1883\"",
                    value.get_ref()
                ),
            )
        };
        let (host, port) = value.get_ref().rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?.to_string(),
            None => host.to_owned(),
        };
        let name_ok = !host.is_empty()
            && host
                .split('.')
                .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if port == 0 || !(name_ok || host.parse::<std::net::IpAddr>().is_ok()) {
            return Err(bad());
        }
        Ok((host, port))
    }

    fn address(&self, value: &Spanned<String>, field: &str) -> Result<SocketAddr, BoardError> {
        value.get_ref().parse().map_err(|_| {
            self.error(
                value.span(),
                field,
                format!("{:?} is not an IP address and port like \"127.0.0.1:1883\"", value.get_ref()),
            )
        })
    }
}

pub(crate) fn validate(raw: BoardFile, text: &str, file: &Path) -> Result<Board, BoardError> {
    let check = Checker { text, file };
    let name = check.name(raw.board.name, "board.name")?;
    let (target, target_span) = spanned(raw.board.target);
    if target.split('-').count() < 3 {
        return Err(check.error(
            target_span,
            "board.target",
            format!("{target:?} is not a target triple like \"aarch64-unknown-linux-gnu\""),
        ));
    }

    let broker = validate_broker(&check, raw.broker)?;
    let homeassistant = match raw.homeassistant {
        Some(section) if section.enabled => {
            let (prefix, span) = spanned(section.discovery_prefix);
            if prefix.is_empty() || prefix.contains(['+', '#']) || prefix.starts_with('/') || prefix.ends_with('/') {
                return Err(check.error(
                    span,
                    "homeassistant.discovery_prefix",
                    format!("{prefix:?} is not a topic prefix like \"homeassistant\""),
                ));
            }
            Some(prefix)
        }
        _ => None,
    };
    let gateway = validate_gateway(&check, raw.gateway, &broker)?;

    let mut buses: Vec<Bus> = Vec::new();
    for (index, mut bus) in raw.buses.into_iter().enumerate() {
        let field = |f: &str| format!("bus[{index}].{f}");
        let name_span = bus.name.span();
        let can_fields = bus.can_fields();
        let name = check.name(bus.name, &field("name"))?;
        if buses.iter().any(|b| b.name == name) {
            return Err(check.error(name_span, field("name"), format!("bus {name:?} is defined twice")));
        }
        let path = bus.path.map(|p| p.into_inner());
        let error_at = |span: Range<usize>, field: String, message: String| check.error(span, field, message);
        let can = match bus.kind {
            BusKind::Can => {
                if path.is_some() {
                    return Err(check.error(
                        name_span,
                        field("path"),
                        "a CAN bus has an interface (interface = \"can0\"), not a device file",
                    ));
                }
                Some(can::validate(can_fields, &name, index, bus.mock, file, &error_at)?)
            }
            _ => {
                if let Some((what, span)) = can_fields.first_present() {
                    let span = if span.is_empty() { name_span.clone() } else { span };
                    return Err(check.error(
                        span,
                        field(what),
                        format!("{what} is a CAN setting; bus {name:?} is not CAN"),
                    ));
                }
                if path.is_none() && !bus.mock {
                    return Err(check.error(
                        name_span,
                        field("path"),
                        format!("bus {name:?} needs a device file (path = \"/dev/...\") or mock = true"),
                    ));
                }
                None
            }
        };
        buses.push(Bus { name, kind: bus.kind, path, mock: bus.mock, can });
    }

    let mut devices: Vec<Device> = Vec::new();
    for (index, device) in raw.devices.into_iter().enumerate() {
        let field = |f: &str| format!("device[{index}].{f}");
        let name_span = device.name.span();
        let name = check.name(device.name, &field("name"))?;
        let (bus_name, bus_span) = spanned(device.bus);
        let Some(bus) = buses.iter().find(|b| b.name == bus_name) else {
            let known: Vec<&str> = buses.iter().map(|b| b.name.as_str()).collect();
            return Err(check.error(
                bus_span,
                field("bus"),
                format!("no bus named {bus_name:?}; buses: {}", known.join(", ")),
            ));
        };
        if devices.iter().any(|d| d.name == name && d.bus == bus_name) {
            return Err(check.error(
                name_span,
                field("name"),
                format!("device {name:?} is defined twice on bus {bus_name:?}"),
            ));
        }
        if bus.kind == BusKind::Can {
            return Err(check.error(
                bus_span,
                field("bus"),
                format!("bus {bus_name:?} is CAN: its messages come from its DBC files, not from [[device]] entries"),
            ));
        }
        let address = match (bus.kind, &device.address) {
            (BusKind::I2c, None) => {
                return Err(check.error(
                    name_span,
                    field("address"),
                    "an I2C device needs an address, e.g. address = 0x76",
                ));
            }
            (BusKind::I2c, Some(address)) => {
                let value = *address.get_ref();
                if !(0x08..=0x77).contains(&value) {
                    return Err(check.error(
                        address.span(),
                        field("address"),
                        format!("{value:#04x} is outside the usable 7-bit I2C range 0x08 to 0x77"),
                    ));
                }
                if let Some(other) = devices.iter().find(|d| d.bus == bus_name && d.address == Some(value as u8)) {
                    return Err(check.error(
                        address.span(),
                        field("address"),
                        format!("{value:#04x} is already used by device {:?} on bus {bus_name:?}", other.name),
                    ));
                }
                Some(value as u8)
            }
            (BusKind::Spi, Some(address)) => {
                return Err(check.error(
                    address.span(),
                    field("address"),
                    "SPI devices have a chip_select, not an address",
                ));
            }
            (BusKind::Spi | BusKind::Can, None) => None,
            (BusKind::Can, Some(_)) => None,
        };
        let spi = match bus.kind {
            BusKind::I2c | BusKind::Can => {
                let spi_fields = [
                    ("chip_select", &device.chip_select),
                    ("mode", &device.mode),
                    ("max_speed_hz", &device.max_speed_hz),
                    ("bits_per_word", &device.bits_per_word),
                ];
                if let Some((name, Some(value))) = spi_fields.iter().find(|(_, v)| v.is_some()) {
                    return Err(check.error(
                        value.span(),
                        field(name),
                        format!("{name} is an SPI setting; bus {bus_name:?} is I2C"),
                    ));
                }
                if device.raw {
                    return Err(check.error(name_span, field("raw"), "raw transfers are an SPI feature"));
                }
                None
            }
            BusKind::Spi => {
                let Some(chip_select) = &device.chip_select else {
                    return Err(check.error(
                        name_span,
                        field("chip_select"),
                        "an SPI device needs a chip_select, e.g. chip_select = 0",
                    ));
                };
                let chip_select = check.range(chip_select, &field("chip_select"), 0, 255)? as u8;
                if let Some(other) =
                    devices.iter().find(|d| d.bus == bus_name && d.spi.is_some_and(|s| s.chip_select == chip_select))
                {
                    return Err(check.error(
                        device.chip_select.as_ref().map_or(name_span.clone(), Spanned::span),
                        field("chip_select"),
                        format!(
                            "chip select {chip_select} is already used by device {:?} on bus {bus_name:?}",
                            other.name
                        ),
                    ));
                }
                let opt = |value: &Option<Spanned<i64>>, name: &str, default: i64, min: i64, max: i64| match value {
                    Some(value) => check.range(value, &field(name), min, max),
                    None => Ok(default),
                };
                Some(SpiSettings {
                    chip_select,
                    mode: opt(&device.mode, "mode", 0, 0, 3)? as u8,
                    max_speed_hz: opt(&device.max_speed_hz, "max_speed_hz", 1_000_000, 1_000, 100_000_000)? as u32,
                    bits_per_word: opt(&device.bits_per_word, "bits_per_word", 8, 1, 32)? as u8,
                    raw: device.raw,
                })
            }
        };
        let poll_ms = check.range(&device.poll_ms, &field("poll_ms"), 1, 86_400_000)?;
        let (driver, driver_span) = spanned(device.driver);
        let options_span = device.options.span();
        let options = convert_options(&check, device.options.into_inner(), options_span.clone(), &field("options"))?;
        devices.push(Device {
            name,
            bus: bus_name,
            driver,
            address,
            spi,
            poll_ms,
            description: device.description,
            options,
            driver_span,
            options_span,
            index,
        });
    }

    Ok(Board {
        file: file.to_owned(),
        source: text.to_owned(),
        name,
        description: raw.board.description,
        target,
        deploy: raw.deploy.map(|d| Deploy { host: d.host, prefix: d.prefix, linker: d.linker }),
        homeassistant,
        broker,
        gateway,
        buses,
        devices,
    })
}

fn validate_broker(check: &Checker<'_>, raw: BrokerSection) -> Result<Broker, BoardError> {
    let mut users = Vec::new();
    for (name, user) in raw.users {
        let span = user.span();
        let user = user.into_inner();
        let field = format!("broker.users.{name}");
        check_name(&name).map_err(|message| check.error(span.clone(), &field, message))?;
        let hash = user.password_hash.get_ref();
        if !hash.starts_with('$') {
            return Err(check.error(
                user.password_hash.span(),
                format!("{field}.password_hash"),
                "expected a PHC hash string starting with '$' (made by `broker hash-password`), never a password",
            ));
        }
        let rules = |list: &[Spanned<String>], kind: &str| -> Result<Vec<String>, BoardError> {
            list.iter()
                .enumerate()
                .map(|(index, rule)| {
                    check_pattern(rule.get_ref())
                        .map(|()| rule.get_ref().clone())
                        .map_err(|message| check.error(rule.span(), format!("{field}.{kind}[{index}]"), message))
                })
                .collect()
        };
        let publish = rules(&user.publish, "publish")?;
        let subscribe = rules(&user.subscribe, "subscribe")?;
        users.push(User { name, password_hash: hash.clone(), publish, subscribe });
    }
    let mut listeners = Vec::new();
    for (name, listener) in raw.listeners {
        let span = listener.span();
        let listener = listener.into_inner();
        let field = format!("broker.listeners.{name}");
        check_name(&name).map_err(|message| check.error(span.clone(), &field, message))?;
        let address = check.address(&listener.address, &format!("{field}.address"))?;
        if !address.ip().is_loopback() && !listener.allow_remote {
            return Err(check.error(
                listener.address.span(),
                format!("{field}.address"),
                format!("{address} is reachable from other machines; set allow_remote = true on this listener if that is really wanted"),
            ));
        }
        let anonymous = listener.anonymous.unwrap_or(address.ip().is_loopback() && users.is_empty());
        let tls = match listener.tls {
            None => None,
            Some(tls) => {
                let span = tls.span();
                let tls = tls.into_inner();
                if tls.require_client_cert && tls.client_ca.is_none() {
                    return Err(check.error(
                        span,
                        format!("{field}.tls.require_client_cert"),
                        "needs client_ca, the CA that signs the client certificates",
                    ));
                }
                Some(Tls {
                    cert: tls.cert,
                    key: tls.key,
                    client_ca: tls.client_ca,
                    require_client_cert: tls.require_client_cert,
                })
            }
        };
        listeners.push(Listener { name, address, anonymous, tls });
    }
    if listeners.is_empty() {
        return Err(check.error(0..0, "broker.listeners", "the broker needs at least one listener"));
    }
    let l = &raw.limits;
    let limits = Limits {
        max_connections: check.range(&l.max_connections, "broker.limits.max_connections", 1, 10_000)?,
        max_payload_bytes: check.range(
            &l.max_payload_bytes,
            "broker.limits.max_payload_bytes",
            128,
            256 * 1024 * 1024,
        )?,
        connect_timeout_ms: check.range(&l.connect_timeout_ms, "broker.limits.connect_timeout_ms", 100, 600_000)?,
        max_inflight: check.range(&l.max_inflight, "broker.limits.max_inflight", 1, u16::MAX)?,
        segment_bytes: check.range(&l.segment_bytes, "broker.limits.segment_bytes", 1024, 1024 * 1024 * 1024)?,
        max_segments: check.range(&l.max_segments, "broker.limits.max_segments", 1, 1024)?,
        max_keepalive_s: check.range(&l.max_keepalive_s, "broker.limits.max_keepalive_s", 1, u16::MAX)?,
    };
    if limits.segment_bytes < limits.max_payload_bytes {
        return Err(check.error(
            l.segment_bytes.span(),
            "broker.limits.segment_bytes",
            format!(
                "{} is smaller than max_payload_bytes ({}); one message must fit in a segment",
                limits.segment_bytes, limits.max_payload_bytes
            ),
        ));
    }
    let j = raw.journal;
    let journal = Journal {
        enabled: j.enabled,
        output: j.output,
        max_file_bytes: check.range(&j.max_file_bytes, "broker.journal.max_file_bytes", 4096, u64::MAX)?,
        max_files: j.max_files,
    };
    let r = raw.retained;
    let retained = Retained {
        enabled: r.enabled,
        path: r.path,
        max_bytes: check.range(&r.max_bytes, "broker.retained.max_bytes", 1024, 256 * 1024 * 1024)?,
    };
    let health_interval_s = check.range(&raw.health_interval_s, "broker.health_interval_s", 1, 86_400)?;
    let s = &raw.sessions;
    let sessions = Sessions {
        max_sessions: check.range(&s.max_sessions, "broker.sessions.max_sessions", 0, 100_000)?,
        expiry_s: check.range(&s.expiry_s, "broker.sessions.expiry_s", 1, 365 * 86_400)?,
        max_queued: check.range(&s.max_queued, "broker.sessions.max_queued", 1, 1_000_000)?,
        max_queued_bytes: check.range(&s.max_queued_bytes, "broker.sessions.max_queued_bytes", 1024, 1 << 30)?,
        max_bytes: check.range(&s.max_bytes, "broker.sessions.max_bytes", 4096, 1 << 30)?,
    };
    let mut sockets = Vec::new();
    for (name, socket) in raw.sockets {
        let span = socket.span();
        let socket = socket.into_inner();
        let field = format!("broker.sockets.{name}");
        check_name(&name).map_err(|message| check.error(span.clone(), &field, message))?;
        let mode =
            u32::from_str_radix(socket.mode.get_ref(), 8).ok().filter(|mode| *mode <= 0o777).ok_or_else(|| {
                check.error(socket.mode.span(), format!("{field}.mode"), "expected an octal file mode such as \"660\"")
            })?;
        let mut peers = Vec::new();
        for (uid, user) in socket.peers {
            let uid = uid.parse::<u32>().map_err(|_| {
                check.error(user.span(), format!("{field}.peers"), format!("{uid:?} is not a numeric uid"))
            })?;
            peers.push((uid, user.into_inner()));
        }
        sockets.push(Socket { name, path: socket.path, mode, anonymous: socket.anonymous, peers });
    }
    let uplink = match raw.uplink {
        None => None,
        Some(uplink) => {
            let uplink = uplink.into_inner();
            let patterns = |list: &[Spanned<String>], field: &str| -> Result<Vec<String>, BoardError> {
                list.iter()
                    .enumerate()
                    .map(|(index, filter)| {
                        check_pattern(filter.get_ref()).map(|()| filter.get_ref().clone()).map_err(|message| {
                            check.error(filter.span(), format!("broker.uplink.{field}[{index}]"), message)
                        })
                    })
                    .collect()
            };
            let (host, port) = check.host_and_port(&uplink.address, "broker.uplink.address")?;
            let tls = match uplink.tls {
                None => None,
                Some(tls) => {
                    let span = tls.span();
                    let tls = tls.into_inner();
                    let client_cert = match (tls.cert, tls.key) {
                        (Some(cert), Some(key)) => Some((cert, key)),
                        (None, None) => None,
                        _ => {
                            return Err(check.error(
                                span,
                                "broker.uplink.tls",
                                "a client certificate needs both cert and key",
                            ));
                        }
                    };
                    Some(UplinkTls { ca: tls.ca, client_cert })
                }
            };
            Some(Uplink {
                host,
                port,
                tls,
                client_id: uplink.client_id,
                username: uplink.username,
                password_file: uplink.password_file,
                forward: patterns(&uplink.forward, "forward")?,
                remote_prefix: uplink.remote_prefix,
                commands: patterns(&uplink.commands, "commands")?,
                queue_path: uplink.queue_path,
                max_queue_bytes: check.range(
                    &uplink.max_queue_bytes,
                    "broker.uplink.max_queue_bytes",
                    4096,
                    1 << 34,
                )?,
            })
        }
    };
    Ok(Broker { listeners, limits, journal, users, retained, uplink, health_interval_s, sessions, sockets })
}

fn validate_gateway(check: &Checker<'_>, raw: GatewaySection, broker: &Broker) -> Result<Gateway, BoardError> {
    let address = match &raw.broker {
        Some(address) => check.address(address, "gateway.broker")?,
        // Prefer a loopback listener; a wildcard listener is reached over loopback too.
        None => match broker.listeners.iter().find(|l| l.address.ip().is_loopback()) {
            Some(listener) => listener.address,
            None => {
                let first = broker.listeners[0].address;
                if first.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], first.port())) } else { first }
            }
        },
    };
    let broker_socket = match raw.broker_socket {
        None => None,
        Some(path) => {
            if !broker.sockets.iter().any(|socket| socket.path == *path.get_ref()) {
                return Err(check.error(
                    path.span(),
                    "gateway.broker_socket",
                    format!("{} is none of the broker's [broker.sockets.*] paths", path.get_ref().display()),
                ));
            }
            Some(path.into_inner())
        }
    };
    let reconnect_min_ms = check.range(&raw.reconnect_min_ms, "gateway.reconnect_min_ms", 1, 3_600_000)?;
    let reconnect_max_ms =
        check.range(&raw.reconnect_max_ms, "gateway.reconnect_max_ms", reconnect_min_ms, 3_600_000)?;
    let retry_min_ms = check.range(&raw.retry_min_ms, "gateway.retry_min_ms", 1, 3_600_000)?;
    let retry_max_ms = check.range(&raw.retry_max_ms, "gateway.retry_max_ms", retry_min_ms, 3_600_000)?;
    Ok(Gateway {
        broker: address,
        broker_socket,
        keep_alive_s: check.range(&raw.keep_alive_s, "gateway.keep_alive_s", 5, 3_600)?,
        outbox_capacity: check.range(&raw.outbox_capacity, "gateway.outbox_capacity", 1, 1_000_000)?,
        reconnect_min_ms,
        reconnect_max_ms,
        retry_min_ms,
        retry_max_ms,
        health_interval_s: check.range(&raw.health_interval_s, "gateway.health_interval_s", 1, 86_400)?,
        credentials_dir: raw.credentials_dir.map(Spanned::into_inner),
    })
}

fn convert_options(
    check: &Checker<'_>,
    table: toml::Table,
    span: Range<usize>,
    field: &str,
) -> Result<device::Options, BoardError> {
    let mut options = BTreeMap::new();
    for (key, value) in table {
        let value = match value {
            toml::Value::Boolean(b) => device::Value::Bool(b),
            toml::Value::Integer(i) => device::Value::Int(i),
            toml::Value::Float(f) => device::Value::Float(f),
            toml::Value::String(s) => device::Value::Text(s),
            other => {
                return Err(check.error(
                    span,
                    format!("{field}.{key}"),
                    format!("options are booleans, numbers or strings, got a {}", other.type_str()),
                ));
            }
        };
        options.insert(key, value);
    }
    Ok(device::Options(options))
}

/// An access-rule pattern: a topic filter whose levels may hold `%c` and `%u`, checked as the
/// broker checks the filters clients subscribe to.
fn check_pattern(pattern: &str) -> Result<(), String> {
    schema::acl::check_topic_filter(pattern).map_err(|error| {
        let shown: String = pattern.chars().take(60).collect();
        let more = if shown.len() < pattern.len() { "..." } else { "" };
        format!("{shown:?}{more} is not a topic filter: it {error}")
    })
}
