//! The CAN settings of a `[[bus]]` with `kind = "can"`: interface, bitrates, DBC files,
//! acceptance filters, raw frames, the publish policy, and the simulation on a mock bus.
//!
//! ```toml
//! [[bus]]
//! name = "can0"
//! kind = "can"
//! interface = "can0"          # the SocketCAN interface (default: the bus name)
//! bitrate = 500000
//! fd = false
//! dbc = ["dbc/busgate-demo.dbc"]            # relative to the board file
//! filters = [{ id = 0x100, mask = 0x700 }]  # kernel filters; none: every frame
//! raw = "unknown"             # raw frames on topics: "none", "unknown" (not in a DBC), "all"
//! raw_send = true             # applications may send raw frames by command
//! [bus.publish]               # the bus's default publish policy
//! mode = "on_change"
//! heartbeat_ms = 1000
//! [bus.messages.EngineStatus] # per message...
//! min_interval_ms = 100
//! [bus.messages.EngineStatus.signals.AliveCounter]  # ...and per signal
//! mode = "ignore"
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::BoardError;

/// The CAN settings of one bus.
#[derive(Debug, Clone, PartialEq)]
pub struct CanBus {
    /// SocketCAN interface name, e.g. `can0`.
    pub interface: String,
    /// Nominal bitrate the interface should run at; not changed when absent.
    pub bitrate: Option<u32>,
    /// Whether the interface runs CAN FD, so FD frames may be sent.
    pub fd: bool,
    /// FD data-phase bitrate.
    pub data_bitrate: Option<u32>,
    /// DBC files, resolved against the board file's directory.
    pub dbc: Vec<PathBuf>,
    /// Where `dbc` stands in the board file.
    pub dbc_span: Range<usize>,
    pub filters: Vec<IdFilter>,
    pub raw: RawFrames,
    pub raw_send: bool,
    /// The policy of messages without their own.
    pub publish: Policy,
    /// Per-message policies by DBC message name.
    pub messages: BTreeMap<String, MessagePolicy>,
    /// Mock bus: a candump log played onto the bus.
    pub replay: Option<PathBuf>,
    /// Mock bus: 1 plays the log in real time, 2 twice as fast, 0 as fast as possible.
    pub replay_speed: f64,
    /// Mock bus: the DBC node that a simulated ECU plays.
    pub simulate: Option<String>,
}

/// A kernel acceptance filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdFilter {
    pub id: u32,
    pub mask: u32,
    pub extended: bool,
}

/// Which received frames are published raw, on a per-identifier topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawFrames {
    None,
    /// Frames no DBC file describes.
    Unknown,
    All,
}

/// What makes a signal's change publish its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every frame.
    Every,
    /// A frame whose value differs from the last published one (by more than `deadband`).
    OnChange,
    /// Never by itself (e.g. a rolling counter); still published with its message.
    Ignore,
}

/// When a message is published. A message is published when any of its signals asks for it:
/// by its mode, or because the last publication is older than its heartbeat; never twice within
/// a signal's minimum interval (a change held back is published when the interval ends).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub mode: Mode,
    /// 0: no minimum.
    pub min_interval_ms: u64,
    /// 0: no heartbeat.
    pub heartbeat_ms: u64,
    /// Changes up to this size (in physical units) do not count as changes.
    pub deadband: f64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { mode: Mode::OnChange, min_interval_ms: 0, heartbeat_ms: 1_000, deadband: 0.0 }
    }
}

/// The policy of one message and its signals' overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct MessagePolicy {
    pub policy: Policy,
    pub signals: BTreeMap<String, Policy>,
    /// Where the message's table stands, to report a name no DBC knows.
    pub span: Range<usize>,
}

impl CanBus {
    /// The policy of a signal of a message.
    pub fn policy(&self, message: &str, signal: &str) -> Policy {
        match self.messages.get(message) {
            Some(m) => m.signals.get(signal).copied().unwrap_or(m.policy),
            None => self.publish,
        }
    }
}

/// The CAN fields of a `[[bus]]` table as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CanFields {
    pub interface: Option<Spanned<String>>,
    pub bitrate: Option<Spanned<i64>>,
    pub fd: Option<bool>,
    pub data_bitrate: Option<Spanned<i64>>,
    pub dbc: Option<Spanned<Vec<String>>>,
    pub filters: Option<Vec<Spanned<FilterSection>>>,
    pub raw: Option<RawFrames>,
    pub raw_send: Option<bool>,
    pub publish: Option<Spanned<PolicySection>>,
    pub messages: Option<BTreeMap<String, Spanned<MessageSection>>>,
    pub replay: Option<Spanned<String>>,
    pub replay_speed: Option<Spanned<f64>>,
    pub simulate: Option<Spanned<String>>,
}

impl CanFields {
    /// Where the first CAN-only field stands, to refuse it on another bus kind.
    pub fn first_present(&self) -> Option<(&'static str, Range<usize>)> {
        let spans: [(&str, Option<Range<usize>>); 9] = [
            ("interface", self.interface.as_ref().map(Spanned::span)),
            ("bitrate", self.bitrate.as_ref().map(Spanned::span)),
            ("data_bitrate", self.data_bitrate.as_ref().map(Spanned::span)),
            ("dbc", self.dbc.as_ref().map(Spanned::span)),
            ("publish", self.publish.as_ref().map(Spanned::span)),
            ("replay", self.replay.as_ref().map(Spanned::span)),
            ("replay_speed", self.replay_speed.as_ref().map(Spanned::span)),
            ("simulate", self.simulate.as_ref().map(Spanned::span)),
            ("filters", self.filters.as_ref().and_then(|f| f.first()).map(Spanned::span)),
        ];
        if let Some((name, Some(span))) = spans.into_iter().find(|(_, span)| span.is_some()) {
            return Some((name, span));
        }
        let flags = [("fd", self.fd.is_some()), ("raw", self.raw.is_some()), ("raw_send", self.raw_send.is_some())];
        flags.into_iter().find(|(_, set)| *set).map(|(name, _)| (name, 0..0))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilterSection {
    id: Spanned<i64>,
    mask: Option<Spanned<i64>>,
    extended: Option<bool>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct PolicySection {
    mode: Option<Mode>,
    min_interval_ms: Option<Spanned<i64>>,
    heartbeat_ms: Option<Spanned<i64>>,
    deadband: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageSection {
    mode: Option<Mode>,
    min_interval_ms: Option<Spanned<i64>>,
    heartbeat_ms: Option<Spanned<i64>>,
    deadband: Option<Spanned<f64>>,
    #[serde(default)]
    signals: BTreeMap<String, Spanned<PolicySection>>,
}

/// Reports an error at a span of the board file.
pub(crate) type ErrorAt<'a> = &'a dyn Fn(Range<usize>, String, String) -> BoardError;

/// Validates the CAN fields of bus `name` (at `bus[index]`); `file` resolves relative paths.
pub(crate) fn validate(
    fields: CanFields,
    name: &str,
    index: usize,
    mock: bool,
    file: &Path,
    error: ErrorAt<'_>,
) -> Result<CanBus, BoardError> {
    let field = |f: &str| format!("bus[{index}].{f}");
    let base = file.parent().unwrap_or(Path::new("."));
    let resolve = |path: &str| if Path::new(path).is_absolute() { PathBuf::from(path) } else { base.join(path) };
    let interface = match fields.interface {
        Some(interface) => {
            let (interface, span) = (interface.get_ref().clone(), interface.span());
            // Linux interface names: up to 15 bytes, no '/' or whitespace.
            if interface.is_empty() || interface.len() > 15 || interface.contains(['/', ' ', '\t']) {
                return Err(error(
                    span,
                    field("interface"),
                    format!("{interface:?} is not a network interface name like \"can0\""),
                ));
            }
            interface
        }
        None => name.to_owned(),
    };
    let bitrate_in = |value: &Option<Spanned<i64>>, what: &str, max: i64| -> Result<Option<u32>, BoardError> {
        match value {
            None => Ok(None),
            Some(v) if (10_000..=max).contains(v.get_ref()) => Ok(Some(*v.get_ref() as u32)),
            Some(v) => Err(error(v.span(), field(what), format!("{} is outside 10000 to {max} bit/s", v.get_ref()))),
        }
    };
    let bitrate = bitrate_in(&fields.bitrate, "bitrate", 1_000_000)?;
    let fd = fields.fd.unwrap_or(false);
    let data_bitrate = bitrate_in(&fields.data_bitrate, "data_bitrate", 8_000_000)?;
    if let (false, Some(v)) = (fd, &fields.data_bitrate) {
        return Err(error(v.span(), field("data_bitrate"), "a data bitrate needs fd = true".into()));
    }
    let (dbc, dbc_span) = match fields.dbc {
        Some(dbc) => {
            let span = dbc.span();
            (dbc.into_inner().iter().map(|p| resolve(p)).collect(), span)
        }
        None => (Vec::new(), 0..0),
    };
    let mut filters = Vec::new();
    for (i, filter) in fields.filters.unwrap_or_default().into_iter().enumerate() {
        let f = |what: &str| field(&format!("filters[{i}].{what}"));
        let filter = filter.into_inner();
        let id = *filter.id.get_ref();
        let extended = filter.extended.unwrap_or(id > 0x7FF);
        let max = if extended { 0x1FFF_FFFF } else { 0x7FF };
        if !(0..=max).contains(&id) {
            let kind = if extended { "29-bit" } else { "11-bit" };
            return Err(error(
                filter.id.span(),
                f("id"),
                format!("{id:#x} is not a {kind} identifier (0 to {max:#x})"),
            ));
        }
        let mask = match &filter.mask {
            Some(mask) if (0..=max).contains(mask.get_ref()) => *mask.get_ref() as u32,
            Some(mask) => {
                return Err(error(mask.span(), f("mask"), format!("{:#x} is outside 0 to {max:#x}", mask.get_ref())));
            }
            None => max as u32,
        };
        filters.push(IdFilter { id: id as u32, mask, extended });
    }
    let default = Policy::default();
    let publish = match &fields.publish {
        Some(section) => policy(section.get_ref(), default, &field("publish"), error)?,
        None => default,
    };
    let mut messages = BTreeMap::new();
    for (message, section) in fields.messages.unwrap_or_default() {
        let span = section.span();
        let section = section.into_inner();
        let at = field(&format!("messages.{message}"));
        let own = PolicySection {
            mode: section.mode,
            min_interval_ms: section.min_interval_ms,
            heartbeat_ms: section.heartbeat_ms,
            deadband: section.deadband,
        };
        let message_policy = policy(&own, publish, &at, error)?;
        let mut signals = BTreeMap::new();
        for (signal, s) in section.signals {
            let p = policy(s.get_ref(), message_policy, &format!("{at}.signals.{signal}"), error)?;
            signals.insert(signal, p);
        }
        messages.insert(message, MessagePolicy { policy: message_policy, signals, span });
    }
    let mock_only = [
        ("replay", fields.replay.as_ref().map(Spanned::span)),
        ("simulate", fields.simulate.as_ref().map(Spanned::span)),
    ];
    if !mock && let Some((what, Some(span))) = mock_only.iter().find(|(_, span)| span.is_some()) {
        return Err(error(span.clone(), field(what), format!("{what} needs a mock bus (mock = true)")));
    }
    let replay_speed = match &fields.replay_speed {
        Some(speed) if speed.get_ref().is_finite() && *speed.get_ref() >= 0.0 => *speed.get_ref(),
        Some(speed) => {
            return Err(error(speed.span(), field("replay_speed"), format!("{} is not 0 or more", speed.get_ref())));
        }
        None => 1.0,
    };
    Ok(CanBus {
        interface,
        bitrate,
        fd,
        data_bitrate,
        dbc,
        dbc_span,
        filters,
        raw: fields.raw.unwrap_or(RawFrames::Unknown),
        raw_send: fields.raw_send.unwrap_or(false),
        publish,
        messages,
        replay: fields.replay.map(|p| resolve(p.get_ref())),
        replay_speed,
        simulate: fields.simulate.map(Spanned::into_inner),
    })
}

fn policy(section: &PolicySection, inherited: Policy, at: &str, error: ErrorAt<'_>) -> Result<Policy, BoardError> {
    let ms = |value: &Option<Spanned<i64>>, what: &str, default: u64| match value {
        None => Ok(default),
        Some(v) if (0..=86_400_000).contains(v.get_ref()) => Ok(*v.get_ref() as u64),
        Some(v) => Err(error(v.span(), format!("{at}.{what}"), format!("{} is outside 0 to 86400000 ms", v.get_ref()))),
    };
    let deadband = match &section.deadband {
        None => inherited.deadband,
        Some(v) if v.get_ref().is_finite() && *v.get_ref() >= 0.0 => *v.get_ref(),
        Some(v) => return Err(error(v.span(), format!("{at}.deadband"), format!("{} is not 0 or more", v.get_ref()))),
    };
    Ok(Policy {
        mode: section.mode.unwrap_or(inherited.mode),
        min_interval_ms: ms(&section.min_interval_ms, "min_interval_ms", inherited.min_interval_ms)?,
        heartbeat_ms: ms(&section.heartbeat_ms, "heartbeat_ms", inherited.heartbeat_ms)?,
        deadband,
    })
}
