//! Payload types. Every payload carries `"v": 1` so consumers can tell future versions apart.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The payload format version, always `1` in this version of busgate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Version;

impl Version {
    pub const NUMBER: u64 = 1;
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(Self::NUMBER)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = u64::deserialize(deserializer)?;
        if v == Self::NUMBER {
            Ok(Version)
        } else {
            Err(serde::de::Error::custom(format!("unsupported payload version {v}, expected {}", Self::NUMBER)))
        }
    }
}

impl JsonSchema for Version {
    fn schema_name() -> Cow<'static, str> {
        "Version".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "description": "Payload format version.", "const": 1 })
    }
}

/// A value as it appears on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum WireValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl From<&device::Value> for WireValue {
    fn from(value: &device::Value) -> Self {
        match value {
            device::Value::Bool(b) => WireValue::Bool(*b),
            device::Value::Int(i) => WireValue::Int(*i),
            device::Value::Float(f) => WireValue::Float(*f),
            device::Value::Text(s) => WireValue::Text(s.clone()),
            device::Value::Bytes(bytes) => WireValue::Text(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        }
    }
}

/// One named value with its unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Measurement {
    pub value: WireValue,
    /// Unit symbol (`°C`, `%`, `hPa`, `V`, `A`, `W`); absent for unitless values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// Builds the `values` map of a reading or reply from a driver's samples.
pub fn measurements(samples: &[device::Sample], description: &device::Description) -> BTreeMap<String, Measurement> {
    samples
        .iter()
        .map(|sample| {
            let unit = description.quantity(sample.name).and_then(|q| q.unit).map(str::to_owned);
            (sample.name.to_owned(), Measurement { value: WireValue::from(&sample.value), unit })
        })
        .collect()
}

/// A device reading, published retained on `.../state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    pub v: Version,
    /// When the reading was taken, RFC 3339 UTC.
    pub ts: String,
    /// Per-device sequence number, from 0 at gateway start; a gap means readings were dropped.
    pub seq: u64,
    pub device: String,
    /// The chip, e.g. `BME280`.
    pub model: String,
    pub values: BTreeMap<String, Measurement>,
}

/// A command, received on `.../set`. Parse with [`crate::Command::parse`], which is strict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandPayload {
    pub v: Version,
    /// Chosen by the sender; the reply carries it back. 1 to 64 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub id: Option<String>,
    /// The device's action, e.g. `set_duty`.
    #[schemars(length(min = 1, max = 64))]
    pub action: String,
    /// The action's parameters.
    #[serde(default)]
    pub args: BTreeMap<String, WireValue>,
}

/// What went wrong with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The payload is larger than the command size limit.
    TooLarge,
    /// The payload is not JSON.
    InvalidJson,
    /// The JSON does not have the command's shape (field, expected, got say where).
    InvalidCommand,
    /// The device has no such action.
    UnknownAction,
    /// An argument is missing, unknown, of the wrong type or out of range.
    InvalidArgument,
    /// The device is offline; the command was not sent to the bus.
    DeviceOffline,
    /// The bus transfer failed.
    BusError,
    /// The chip reported a problem.
    DeviceError,
    /// The board file does not allow this command on this device (e.g. raw SPI transfers).
    NotAllowed,
    /// The gateway is overloaded or shutting down.
    Unavailable,
}

/// The error part of a failed reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyError {
    pub kind: ErrorKind,
    /// A full sentence for people.
    pub message: String,
    /// The offending field, e.g. `args.channel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What the field should have been.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What came instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
}

/// The reply to a command, published on `.../reply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub v: Version,
    pub ts: String,
    /// The command's id, if it had one (and could be read).
    pub id: Option<String>,
    pub device: String,
    /// The command's action, if it could be read.
    pub action: Option<String>,
    pub ok: bool,
    /// On success: the values the command set, read back from the chip.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<String, Measurement>,
    /// On success: anything the user should know (e.g. a value was rounded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ReplyError>,
}

/// Online or offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Online {
    Online,
    Offline,
}

/// A device's availability, retained on `.../availability`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Availability {
    pub v: Version,
    pub ts: String,
    pub state: Online,
    /// Why the device is offline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A gateway's process status, retained on `.../status` and set as its last will.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub v: Version,
    pub ts: String,
    pub state: Online,
    pub gateway: String,
    /// busgate version of the gateway.
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A gateway's counters, retained on `.../health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub v: Version,
    pub ts: String,
    pub gateway: String,
    pub uptime_s: u64,
    /// Messages handed to the MQTT connection.
    pub messages_out: u64,
    /// Commands received.
    pub commands_in: u64,
    /// Failed polls and commands.
    pub errors: u64,
    /// Messages dropped from the full outbox while the broker was unreachable.
    pub dropped: u64,
    /// Messages waiting in the outbox now.
    pub outbox_len: u64,
    /// Successful connections to the broker after the first.
    pub reconnects: u64,
    pub devices_online: u64,
    pub devices_total: u64,
}

/// One line of the broker's message journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JournalEntry {
    /// When the broker routed the message, RFC 3339 UTC.
    pub ts: String,
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    /// Payload length in bytes.
    pub bytes: usize,
    /// The payload, when it is JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
    /// The payload in hex, when it is not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_hex: Option<String>,
}

impl JournalEntry {
    /// Records a message, keeping a JSON payload as JSON and anything else as hex.
    pub fn new(topic: &str, qos: u8, retain: bool, payload: &[u8]) -> Self {
        let json = serde_json::from_slice::<serde_json::Value>(payload).ok();
        let payload_hex = match json {
            Some(_) => None,
            None => Some(payload.iter().map(|b| format!("{b:02x}")).collect()),
        };
        Self {
            ts: crate::now(),
            topic: topic.to_owned(),
            qos,
            retain,
            bytes: payload.len(),
            payload: json,
            payload_hex,
        }
    }
}

/// Serialization shared by every payload type.
pub trait Payload: Serialize {
    fn to_json(&self) -> Vec<u8> {
        // Serializing these types cannot fail: they hold only strings, numbers, maps with
        // string keys and JSON values.
        serde_json::to_vec(self).unwrap_or_default()
    }
    fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Payload for Reading {}
impl Payload for Reply {}

impl Reply {
    /// The reply of `device` refusing a command: the error and whatever of the command (id,
    /// action) could be read.
    pub fn refused(device: impl Into<String>, error: &crate::CommandError) -> Reply {
        Reply {
            v: Version,
            ts: crate::now(),
            id: error.id.clone(),
            device: device.into(),
            action: error.action.clone(),
            ok: false,
            values: BTreeMap::new(),
            note: None,
            error: Some(error.to_reply_error()),
        }
    }
}
impl Payload for Availability {}
impl Payload for Status {}
impl Payload for Health {}
impl Payload for JournalEntry {}
impl Payload for CommandPayload {}

/// Parses any payload type, for consumers (tests, tools).
pub fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}
