//! Every payload the gateways build validates against its checked-in schema.

use std::collections::BTreeMap;

use schema::payload::{self, Payload};
use schema::{
    Availability, ErrorKind, Health, JournalEntry, Measurement, Online, Reading, Reply, ReplyError, Status, Version,
    WireValue,
};

fn validator(name: &str) -> jsonschema::Validator {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(name);
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

#[track_caller]
fn check_valid(name: &str, payload: &impl Payload) {
    let json: serde_json::Value = serde_json::from_slice(&payload.to_json()).unwrap();
    let validator = validator(name);
    let errors: Vec<String> = validator.iter_errors(&json).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{json} does not match {name}: {errors:?}");
}

#[track_caller]
fn check_invalid(name: &str, json: serde_json::Value) {
    assert!(!validator(name).is_valid(&json), "{json} should not match {name}");
}

fn reading() -> Reading {
    Reading {
        v: Version,
        ts: schema::now(),
        seq: 7,
        device: "ambient".into(),
        model: "BME280".into(),
        values: BTreeMap::from([
            ("temperature".into(), Measurement { value: WireValue::Float(21.5), unit: Some("°C".into()) }),
            ("ok".into(), Measurement { value: WireValue::Bool(true), unit: None }),
        ]),
    }
}

#[test]
fn reading_validates_and_round_trips() {
    let reading = reading();
    check_valid("reading.json", &reading);
    let back: Reading = payload::parse(&reading.to_json()).unwrap();
    assert_eq!(back, reading);
    let json: serde_json::Value = serde_json::from_slice(&reading.to_json()).unwrap();
    assert_eq!(json["v"], 1);
    assert_eq!(json["values"]["temperature"]["unit"], "°C");
}

#[test]
fn wrong_version_is_rejected_by_schema_and_parser() {
    let mut json: serde_json::Value = serde_json::from_slice(&reading().to_json()).unwrap();
    json["v"] = 2.into();
    check_invalid("reading.json", json.clone());
    let error = serde_json::from_value::<Reading>(json).unwrap_err();
    assert!(error.to_string().contains("unsupported payload version 2"), "{error}");
}

#[test]
fn replies_validate() {
    let ok = Reply {
        v: Version,
        ts: schema::now(),
        id: Some("42".into()),
        device: "leds".into(),
        action: Some("set_duty".into()),
        ok: true,
        values: BTreeMap::from([("ch3".into(), Measurement { value: WireValue::Float(0.5), unit: None })]),
        note: Some("rounded".into()),
        error: None,
    };
    check_valid("reply.json", &ok);
    let failed = Reply {
        ok: false,
        values: BTreeMap::new(),
        note: None,
        error: Some(ReplyError {
            kind: ErrorKind::InvalidArgument,
            message: "m".into(),
            field: Some("args.channel".into()),
            expected: Some("an integer from 0 to 15".into()),
            got: Some("integer 17".into()),
        }),
        ..ok
    };
    check_valid("reply.json", &failed);
    let json: serde_json::Value = serde_json::from_slice(&failed.to_json()).unwrap();
    assert_eq!(json["error"]["kind"], "invalid_argument");
}

#[test]
fn status_availability_health_validate() {
    check_valid(
        "availability.json",
        &Availability { v: Version, ts: schema::now(), state: Online::Online, reason: None },
    );
    check_valid(
        "availability.json",
        &Availability { v: Version, ts: schema::now(), state: Online::Offline, reason: Some("no acknowledge".into()) },
    );
    check_valid(
        "status.json",
        &Status {
            v: Version,
            ts: schema::now(),
            state: Online::Online,
            gateway: "i2c-gateway".into(),
            version: "0.1.0".into(),
            reason: None,
        },
    );
    check_valid(
        "health.json",
        &Health {
            v: Version,
            ts: schema::now(),
            gateway: "i2c-gateway".into(),
            uptime_s: 1,
            messages_out: 2,
            commands_in: 0,
            errors: 3,
            dropped: 4,
            outbox_len: 5,
            reconnects: 0,
            devices_online: 2,
            devices_total: 3,
        },
    );
    check_invalid("availability.json", serde_json::json!({"v": 1, "ts": "x", "state": "maybe"}));
}

#[test]
fn journal_keeps_json_as_json_and_the_rest_as_hex() {
    let json = JournalEntry::new("a/b", 1, true, br#"{"x":1}"#);
    assert_eq!(json.payload, Some(serde_json::json!({"x": 1})));
    assert_eq!(json.payload_hex, None);
    check_valid("journal.json", &json);
    let binary = JournalEntry::new("a/b", 0, false, &[0xde, 0xad, 0x00]);
    assert_eq!(binary.payload_hex.as_deref(), Some("dead00"));
    assert_eq!(binary.bytes, 3);
    check_valid("journal.json", &binary);
}

#[test]
fn measurements_take_units_from_the_description() {
    let description = device::Description {
        model: "X",
        quantities: vec![device::Quantity {
            name: "temperature",
            unit: Some("°C"),
            kind: device::Kind::Temperature,
            description: "",
        }],
        commands: vec![],
    };
    let values = payload::measurements(&[device::Sample::new("temperature", 20.0)], &description);
    assert_eq!(values["temperature"], Measurement { value: WireValue::Float(20.0), unit: Some("°C".into()) });
}
