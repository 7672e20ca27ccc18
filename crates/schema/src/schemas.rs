//! JSON Schemas of every payload, generated from the types. The checked-in copies in
//! `crates/schema/schemas/` are what applications validate against; a test regenerates them and
//! fails on any difference (run with `UPDATE_SCHEMAS=1` to rewrite them after a change).

use schemars::{JsonSchema, generate::SchemaSettings};

use crate::can::{CanBusState, CanFrame, CanMessage};
use crate::payload::{Availability, CommandPayload, Health, JournalEntry, Reading, Reply, Status};

fn schema_of<T: JsonSchema>() -> serde_json::Value {
    let generator = SchemaSettings::draft2020_12().into_generator();
    generator.into_root_schema_for::<T>().to_value()
}

/// Every payload's schema, by file name.
pub fn all() -> Vec<(&'static str, serde_json::Value)> {
    vec![
        ("reading.json", schema_of::<Reading>()),
        ("command.json", schema_of::<CommandPayload>()),
        ("reply.json", schema_of::<Reply>()),
        ("availability.json", schema_of::<Availability>()),
        ("status.json", schema_of::<Status>()),
        ("health.json", schema_of::<Health>()),
        ("journal.json", schema_of::<JournalEntry>()),
        ("can-message.json", schema_of::<CanMessage>()),
        ("can-frame.json", schema_of::<CanFrame>()),
        ("can-bus.json", schema_of::<CanBusState>()),
    ]
}

/// A schema file's text: pretty JSON with a final newline.
pub fn render(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}
