//! The CAN part of the wire contract. A CAN bus fits the general grammar with three kinds of
//! "device" under `busgate/{board}/can/{bus}/`:
//!
//! ```text
//! {message}/state        a DBC message's latest decode: signals with units and labels, retained
//! {message}/set, /reply  send the message: action "send", args = signal values by name
//! id-{ID}/state          a raw frame (hex ID as candump writes it: 3 or 8 digits), retained
//! bus/availability       online (error-active, error-passive) or offline (bus-off, down), retained
//! bus/state              bus state and counters, retained
//! bus/set, /reply        action "send_raw": a raw frame by command
//! bus/sim                mock buses only: bus_off, recover, error_passive, interface_down, ...
//! ```
//!
//! Readings are written by hand-rolled serializers ([`write_message`], [`write_frame`]) because
//! a full bus means thousands of frames per second; tests check that their output parses into
//! the schema types ([`CanMessage`], [`CanFrame`]) from which the JSON Schemas are generated.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::command::{Command, CommandError};
use crate::payload::{ErrorKind, Version, WireValue};
use crate::topic::{DeviceTopics, ROOT};

/// The topic level of CAN buses.
pub const BUS_KIND: &str = "can";
/// The device name of the bus itself (availability, state, raw sends, simulation).
pub const BUS_DEVICE: &str = "bus";

/// The topics of one CAN bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanTopics {
    board: String,
    bus: String,
}

impl CanTopics {
    pub fn new(board: &str, bus: &str) -> Self {
        Self { board: board.to_owned(), bus: bus.to_owned() }
    }
    /// A DBC message's topics (`state`, `set`, `reply`).
    pub fn message(&self, name: &str) -> DeviceTopics {
        DeviceTopics::new(&self.board, BUS_KIND, &self.bus, name)
    }
    /// The bus's own topics (`availability`, `state`, `set`, `reply`, `sim`).
    pub fn bus(&self) -> DeviceTopics {
        DeviceTopics::new(&self.board, BUS_KIND, &self.bus, BUS_DEVICE)
    }
    /// The raw-frame topic of an identifier.
    pub fn frame(&self, id: u32, extended: bool) -> String {
        format!("{ROOT}/{}/{BUS_KIND}/{}/{}/state", self.board, self.bus, frame_device(id, extended))
    }
}

/// The device level of a raw frame's topic: `id-123`, `id-18FEF100`.
pub fn frame_device(id: u32, extended: bool) -> String {
    if extended { format!("id-{id:08X}") } else { format!("id-{id:03X}") }
}

/// A signal's decoded value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalValue {
    /// Physical value (raw × factor + offset): an integer when the signal's scaling is; null for
    /// a float signal holding NaN or an infinity.
    pub value: Option<WireValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The DBC value-table label of the raw value, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// A decoded DBC message, on `busgate/{board}/can/{bus}/{message}/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanMessage {
    pub v: Version,
    /// Reception time of the frame.
    pub ts: String,
    /// Publications of this message since the gateway started.
    pub seq: u64,
    pub bus: String,
    pub message: String,
    pub id: u32,
    pub extended: bool,
    #[serde(default)]
    pub fd: bool,
    /// Signals present in this frame (for multiplexed messages, those of its multiplexer value).
    pub signals: BTreeMap<String, SignalValue>,
}

/// A raw frame, on `busgate/{board}/can/{bus}/id-{ID}/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanFrame {
    pub v: Version,
    pub ts: String,
    pub bus: String,
    pub id: u32,
    pub extended: bool,
    pub fd: bool,
    /// Bit rate switch (FD frames).
    #[serde(default)]
    pub brs: bool,
    /// Remote transmission request.
    #[serde(default)]
    pub rtr: bool,
    /// Data length code.
    pub dlc: u8,
    /// Data bytes as lowercase hex.
    pub data: String,
}

/// The bus state word on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BusStateName {
    ErrorActive,
    ErrorWarning,
    ErrorPassive,
    BusOff,
    Down,
}

/// Bus state and counters, on `busgate/{board}/can/{bus}/bus/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CanBusState {
    pub v: Version,
    pub ts: String,
    pub bus: String,
    pub interface: String,
    pub state: BusStateName,
    pub fd: bool,
    /// Frames received.
    pub rx_frames: u64,
    /// Frames sent by command.
    pub tx_frames: u64,
    /// Received frames that no DBC message describes.
    pub unknown_frames: u64,
    /// Frames a DBC message describes but that could not be decoded (e.g. too short).
    pub decode_errors: u64,
    /// Decoded messages published.
    pub published: u64,
    /// Decoded frames not published because of the publish policy.
    pub suppressed: u64,
    /// Frames lost because the receiver fell behind (as far as the interface reports it).
    pub lost_frames: u64,
    /// Bus errors reported by the controller.
    pub bus_errors: u64,
    /// Times the interface was reopened after going down.
    pub reopened: u64,
}

impl CanBusState {
    /// A bus before anything happened on it: down, every counter at 0.
    pub fn new(bus: &str, interface: &str, fd: bool) -> CanBusState {
        CanBusState {
            v: Version,
            ts: String::new(),
            bus: bus.to_owned(),
            interface: interface.to_owned(),
            state: BusStateName::Down,
            fd,
            rx_frames: 0,
            tx_frames: 0,
            unknown_frames: 0,
            decode_errors: 0,
            published: 0,
            suppressed: 0,
            lost_frames: 0,
            bus_errors: 0,
            reopened: 0,
        }
    }
}

impl crate::payload::Payload for CanBusState {}
impl crate::payload::Payload for CanMessage {}
impl crate::payload::Payload for CanFrame {}

/// One signal to write with [`write_message`].
#[derive(Debug, Clone, Copy)]
pub struct SignalOut<'a> {
    pub name: &'a str,
    pub value: Number,
    pub unit: &'a str,
    pub label: Option<&'a str>,
}

/// A signal's physical value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

/// The fixed part of a decoded message.
#[derive(Debug, Clone, Copy)]
pub struct MessageOut<'a> {
    pub at: SystemTime,
    pub seq: u64,
    pub bus: &'a str,
    pub message: &'a str,
    pub id: u32,
    pub extended: bool,
    pub fd: bool,
}

/// Writes a [`CanMessage`] payload into `out` (cleared first), signals in the given order.
pub fn write_message<'a>(out: &mut Vec<u8>, head: &MessageOut<'_>, signals: impl IntoIterator<Item = SignalOut<'a>>) {
    out.clear();
    out.extend_from_slice(b"{\"v\":1,\"ts\":\"");
    let _ = write!(out, "{}", humantime::format_rfc3339_millis(head.at));
    let _ = write!(out, "\",\"seq\":{},\"bus\":", head.seq);
    string(out, head.bus);
    out.extend_from_slice(b",\"message\":");
    string(out, head.message);
    let _ = write!(out, ",\"id\":{},\"extended\":{},\"fd\":{},\"signals\":{{", head.id, head.extended, head.fd);
    for (i, signal) in signals.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, signal.name);
        out.extend_from_slice(b":{\"value\":");
        match signal.value {
            Number::Int(value) => {
                let _ = write!(out, "{value}");
            }
            Number::Float(value) => {
                // serde_json writes NaN and infinities as null.
                let _ = serde_json::to_writer(&mut *out, &value);
            }
        }
        if !signal.unit.is_empty() {
            out.extend_from_slice(b",\"unit\":");
            string(out, signal.unit);
        }
        if let Some(label) = signal.label {
            out.extend_from_slice(b",\"label\":");
            string(out, label);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"}}");
}

/// The raw part of a frame to write with [`write_frame`].
#[derive(Debug, Clone, Copy)]
pub struct FrameOut<'a> {
    pub at: SystemTime,
    pub bus: &'a str,
    pub id: u32,
    pub extended: bool,
    pub fd: bool,
    pub brs: bool,
    pub rtr: bool,
    pub dlc: u8,
    pub data: &'a [u8],
}

/// Writes a [`CanFrame`] payload into `out` (cleared first).
pub fn write_frame(out: &mut Vec<u8>, frame: &FrameOut<'_>) {
    out.clear();
    let _ = write!(out, "{{\"v\":1,\"ts\":\"{}\",\"bus\":", humantime::format_rfc3339_millis(frame.at));
    string(out, frame.bus);
    let _ = write!(
        out,
        ",\"id\":{},\"extended\":{},\"fd\":{},\"brs\":{},\"rtr\":{},\"dlc\":{},\"data\":\"",
        frame.id, frame.extended, frame.fd, frame.brs, frame.rtr, frame.dlc
    );
    for byte in frame.data {
        let _ = write!(out, "{byte:02x}");
    }
    out.extend_from_slice(b"\"}");
}

fn string(out: &mut Vec<u8>, text: &str) {
    let _ = serde_json::to_writer(&mut *out, text);
}

/// A signal value given in a `send` command: a number, or a value-table label.
#[derive(Debug, Clone, PartialEq)]
pub enum SignalArg {
    Number(f64),
    Label(String),
}

/// The signal values of a `send` command's `args`, in name order. Refuses anything but numbers,
/// booleans (as 0 and 1) and label strings.
pub fn signal_args(command: &Command) -> Result<Vec<(String, SignalArg)>, CommandError> {
    let mut args = Vec::with_capacity(command.args.len());
    for (name, value) in &command.args {
        let arg = match value {
            Json::Number(n) => n.as_f64().map(SignalArg::Number),
            Json::Bool(b) => Some(SignalArg::Number(f64::from(u8::from(*b)))),
            Json::String(label) => Some(SignalArg::Label(label.clone())),
            _ => None,
        };
        let Some(arg) = arg else {
            let got = match value {
                Json::Null => "null",
                Json::Array(_) => "an array",
                _ => "an object",
            };
            let expected = "a number or a value-table label";
            return Err(CommandError {
                kind: ErrorKind::InvalidArgument,
                message: format!("field `args.{name}`: expected {expected}, got {got}"),
                field: Some(format!("args.{name}")),
                expected: Some(expected.into()),
                got: Some(got.into()),
                id: command.id.clone(),
                action: Some(command.action.clone()),
            });
        };
        args.push((name.clone(), arg));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn topics_fit_the_grammar() {
        let t = CanTopics::new("sim", "can0");
        assert_eq!(t.message("EngineStatus").state(), "busgate/sim/can/can0/EngineStatus/state");
        assert_eq!(t.bus().availability(), "busgate/sim/can/can0/bus/availability");
        assert_eq!(t.frame(0x12, false), "busgate/sim/can/can0/id-012/state");
        assert_eq!(t.frame(0x18FEF100, true), "busgate/sim/can/can0/id-18FEF100/state");
        assert!(crate::topic::parse(&t.frame(0x12, false)).is_some());
    }

    #[test]
    fn written_messages_parse_into_the_schema_type() {
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
        let head = MessageOut { at, seq: 7, bus: "can0", message: "Engine", id: 0x123, extended: false, fd: false };
        let mut out = Vec::new();
        let signals = [
            SignalOut { name: "Speed", value: Number::Float(12.5), unit: "km/h", label: None },
            SignalOut { name: "Gear", value: Number::Int(-1), unit: "", label: Some("Reverse \"R\"") },
            SignalOut { name: "Bad", value: Number::Float(f64::NAN), unit: "", label: None },
        ];
        write_message(&mut out, &head, signals);
        let parsed: CanMessage = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed.ts, "2023-11-14T22:13:20.250Z");
        assert_eq!((parsed.seq, parsed.id, parsed.message.as_str()), (7, 0x123, "Engine"));
        assert_eq!(parsed.signals["Speed"].value, Some(WireValue::Float(12.5)));
        assert_eq!(parsed.signals["Speed"].unit.as_deref(), Some("km/h"));
        assert_eq!(parsed.signals["Gear"].label.as_deref(), Some("Reverse \"R\""));
        assert_eq!(parsed.signals["Gear"].value, Some(WireValue::Int(-1)));
        assert!(serde_json::from_slice::<Json>(&out).unwrap()["signals"]["Bad"]["value"].is_null());
    }

    #[test]
    fn written_frames_parse_into_the_schema_type() {
        let frame = FrameOut {
            at: UNIX_EPOCH,
            bus: "can0",
            id: 0x18FEF100,
            extended: true,
            fd: true,
            brs: true,
            rtr: false,
            dlc: 9,
            data: &[0xde, 0xad, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        };
        let mut out = Vec::new();
        write_frame(&mut out, &frame);
        let parsed: CanFrame = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed.data, "dead00010203040506070809");
        assert_eq!((parsed.id, parsed.dlc, parsed.brs), (0x18FEF100, 9, true));
    }

    #[test]
    fn send_arguments_are_numbers_or_labels() {
        let command =
            Command::parse(br#"{"v":1,"id":"a","action":"send","args":{"Gear":"Reverse","On":true,"Speed":3.5}}"#)
                .unwrap();
        assert_eq!(
            signal_args(&command).unwrap(),
            vec![
                ("Gear".into(), SignalArg::Label("Reverse".into())),
                ("On".into(), SignalArg::Number(1.0)),
                ("Speed".into(), SignalArg::Number(3.5)),
            ]
        );
        let command = Command::parse(br#"{"v":1,"id":"b","action":"send","args":{"Speed":[1]}}"#).unwrap();
        let error = signal_args(&command).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("args.Speed"));
        assert_eq!(error.id.as_deref(), Some("b"));
    }
}
