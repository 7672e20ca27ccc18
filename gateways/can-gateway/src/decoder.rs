//! Frames to payloads: looks a frame up in the bus's DBC messages, decodes it, and writes the
//! JSON the gateway publishes. Shared by the gateway and the offline decoder, so what
//! `can-gateway decode` prints is exactly what the gateway would publish.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use buses::can::CanFrame;
use dbc::{Database, Decoded, Message, Physical};
use schema::can::{FrameOut, MessageOut, Number, SignalOut};

/// The DBC messages of one bus, indexed by identifier.
#[derive(Debug, Clone)]
pub struct Decoder {
    bus: String,
    messages: Vec<Message>,
    by_id: HashMap<u32, usize>,
}

/// Where a frame's identifier leads.
#[derive(Debug)]
pub enum Lookup<'a> {
    Message { index: usize, message: &'a Message },
    Unknown,
}

/// A DBC file that could not be used, or what loading them warned about.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(String);

impl Decoder {
    /// Loads the bus's DBC files leniently: returns the decoder and the warnings (each naming
    /// the file and line). Only an unreadable file is an error.
    pub fn load(bus: &str, files: &[impl AsRef<Path>]) -> Result<(Decoder, Vec<String>), LoadError> {
        let mut database: Option<Database> = None;
        let mut warnings = Vec::new();
        for file in files {
            let file = file.as_ref();
            let (db, file_warnings) = Database::load(file).map_err(|error| LoadError(error.to_string()))?;
            warnings.extend(file_warnings.iter().map(ToString::to_string));
            match &mut database {
                None => database = Some(db),
                Some(all) => warnings.extend(all.merge(db).iter().map(|w| format!("{}: {w}", file.display()))),
            }
        }
        Ok((Decoder::new(bus, database.unwrap_or_else(|| Database::parse("").0)), warnings))
    }

    pub fn new(bus: &str, database: Database) -> Decoder {
        let messages: Vec<Message> = database.messages().cloned().collect();
        let by_id = messages.iter().enumerate().map(|(index, m)| (key(m.id, m.extended), index)).collect();
        Decoder { bus: bus.to_owned(), messages, by_id }
    }

    pub fn bus(&self) -> &str {
        &self.bus
    }

    pub fn messages(&self) -> &[Message] {
        &self.messages
    }

    pub fn message_by_name(&self, name: &str) -> Option<(usize, &Message)> {
        self.messages.iter().enumerate().find(|(_, m)| m.name == name)
    }

    pub fn lookup(&self, frame: &CanFrame) -> Lookup<'_> {
        if frame.is_remote() {
            return Lookup::Unknown;
        }
        match self.by_id.get(&key(frame.id(), frame.is_extended())) {
            Some(&index) => Lookup::Message { index, message: &self.messages[index] },
            None => Lookup::Unknown,
        }
    }
}

fn key(id: u32, extended: bool) -> u32 {
    id | (u32::from(extended) << 31)
}

/// A physical value as a float, for change detection.
pub fn as_f64(physical: Physical) -> f64 {
    match physical {
        Physical::Int(value) => value as f64,
        Physical::Float(value) => value,
    }
}

fn number(physical: Physical) -> Number {
    match physical {
        Physical::Int(value) => i64::try_from(value).map_or(Number::Float(value as f64), Number::Int),
        Physical::Float(value) => Number::Float(value),
    }
}

/// Writes the payload of a decoded message.
pub fn write_message(
    out: &mut Vec<u8>,
    bus: &str,
    message: &Message,
    decoded: &[Decoded<'_>],
    at: SystemTime,
    seq: u64,
    fd: bool,
) {
    let head = MessageOut { at, seq, bus, message: &message.name, id: message.id, extended: message.extended, fd };
    let signals = decoded.iter().map(|d| SignalOut {
        name: &d.signal.name,
        value: number(d.physical),
        unit: &d.signal.unit,
        label: d.label,
    });
    schema::can::write_message(out, &head, signals);
}

/// Writes the payload of a raw frame.
pub fn write_frame(out: &mut Vec<u8>, bus: &str, frame: &CanFrame, at: SystemTime) {
    let raw = FrameOut {
        at,
        bus,
        id: frame.id(),
        extended: frame.is_extended(),
        fd: frame.is_fd(),
        brs: frame.brs(),
        rtr: frame.is_remote(),
        dlc: frame.dlc(),
        data: frame.data(),
    };
    schema::can::write_frame(out, &raw);
}
