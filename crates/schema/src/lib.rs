//! The wire contract: every MQTT topic and JSON payload busgate uses, defined once.
//!
//! Gateways, the broker's journal and the tools build topics with [`topic`] and payloads with
//! the types in [`payload`]; nothing else in the workspace formats a topic string or serializes
//! JSON. The JSON Schemas in `schemas/` are generated from these types (see [`schemas`]) and a
//! test fails when they drift, so the files users validate against always match the code.

pub mod acl;
pub mod broker;
pub mod can;
pub mod command;
pub mod homeassistant;
pub mod payload;
pub mod schemas;
pub mod topic;

pub use command::{Command, CommandError, MAX_COMMAND_BYTES};
pub use payload::{
    Availability, ErrorKind, Health, JournalEntry, Measurement, Online, Reading, Reply, ReplyError, Status, Version,
    WireValue,
};

/// The current time as RFC 3339 UTC with milliseconds, the `ts` of every payload.
pub fn now() -> String {
    timestamp(std::time::SystemTime::now())
}

/// A point in time as RFC 3339 UTC with milliseconds.
pub fn timestamp(at: std::time::SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}
