//! Decoding details beyond the cantools comparison, and encoding: round trips and errors.

use dbc::{DecodeError, Decoded, Message, Physical, Value};

use crate::fixtures::directory;
use crate::model::load;

/// The values of a decode, as the encoder takes them.
fn values<'a>(decoded: &'a [Decoded<'a>]) -> Vec<(&'a str, Value<'a>)> {
    decoded
        .iter()
        .map(|d| {
            let value = match d.physical {
                Physical::Int(value) => Value::Integer(value),
                Physical::Float(value) => Value::Number(value),
            };
            (d.name(), value)
        })
        .collect()
}

fn physicals(decoded: &[Decoded<'_>]) -> Vec<(String, Physical)> {
    decoded.iter().map(|d| (d.name().to_owned(), d.physical)).collect()
}

/// Whether every value is within its signal's DBC range (random frames often are not).
fn in_range(decoded: &[Decoded<'_>]) -> bool {
    decoded.iter().all(|d| {
        let value = d.physical.as_f64();
        !d.signal.has_range() || (d.signal.minimum <= value && value <= d.signal.maximum)
    })
}

/// Decodes every frame of a fixture log, encodes the values again and checks that the new frame
/// decodes to the same physical values, for every layout class.
#[track_caller]
fn round_trip(name: &str) {
    let database = load(&format!("{name}.dbc"));
    let log = std::fs::read_to_string(directory().join(format!("{name}.log"))).unwrap();
    let mut checked = 0;
    for entry in buses::can::log::parse_log(&log) {
        let (line, entry) = entry.unwrap();
        let frame = entry.frame().unwrap();
        let message = database.message(frame.id(), frame.is_extended()).unwrap();
        let mut decoded = Vec::new();
        message.decode(frame.data(), &mut decoded).unwrap();
        if decoded.iter().any(|d| !d.physical.as_f64().is_finite()) || !in_range(&decoded) {
            continue; // NaN, infinities and values out of range cannot be encoded.
        }
        let encoded = message.encode(&values(&decoded)).unwrap_or_else(|e| panic!("{name}.log line {line}: {e}"));
        assert!(encoded.defaulted.is_empty(), "{name}.log line {line}: {:?}", encoded.defaulted);
        let mut again = Vec::new();
        message.decode(&encoded.data, &mut again).unwrap();
        assert_eq!(physicals(&again), physicals(&decoded), "{name}.log line {line}");
        checked += 1;
    }
    assert!(checked > 40, "only {checked} frames checked");
}

#[test]
fn layouts_round_trip() {
    round_trip("layouts");
}

#[test]
fn multiplexing_round_trips() {
    round_trip("multiplexing");
}

fn decode<'m>(message: &'m Message, data: &[u8]) -> Vec<(&'m str, Physical, Option<&'m str>)> {
    let mut out = Vec::new();
    message.decode(data, &mut out).unwrap();
    out.iter().map(|d| (d.signal.name.as_str(), d.physical, d.label)).collect()
}

#[test]
fn labels_are_given_beside_the_value() {
    let database = load("layouts.dbc");
    let labels = database.message_by_name("Labels").unwrap();
    assert_eq!(
        decode(labels, &[0x03, 0xFF, 0xFF]),
        [
            ("Gear", Physical::Int(3), Some("Drive")),
            ("Mode", Physical::Int(-1), Some("Invalid")),
            ("Level", Physical::Float(127.5), Some("Error")),
        ]
    );
}

#[test]
fn sixty_four_bit_unsigned_keeps_every_bit() {
    let database = load("layouts.dbc");
    let wide = database.message_by_name("Wide64").unwrap();
    assert_eq!(decode(wide, &[0xFF; 8]), [("U64", Physical::Int(u64::MAX.into()), None)]);
    let encoded = wide.encode(&[("U64", Value::Integer(u64::MAX.into()))]).unwrap();
    assert_eq!(encoded.data, [0xFF; 8]);
    let error = wide.encode(&[("U64", Value::Integer(1 << 64))]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "signal \"U64\": 18446744073709551616 is out of range: the 64-bit unsigned field holds 0 to 18446744073709552000"
    );
}

#[test]
fn short_frame_gives_the_signals_that_fit() {
    let database = load("layouts.dbc");
    let intel = database.message_by_name("IntelMix").unwrap();
    let mut out = Vec::new();
    let error = intel.decode(&[0xFF, 0xFF, 0xFF], &mut out).unwrap_err();
    assert_eq!(
        error,
        DecodeError::Truncated { message: "IntelMix", expected: 8, got: 3, missing: 3, first_missing: "U17" }
    );
    let names: Vec<&str> = out.iter().map(|d| d.name()).collect();
    assert_eq!(names, ["U3", "S11"]);
}

#[test]
fn short_frame_holding_every_signal_is_fine() {
    // The DBC says 8 bytes but the signals use 2: a 2-byte frame (a common DLC mismatch) decodes fully.
    let (database, _) = dbc::Database::parse("BO_ 1 A: 8 E\n SG_ X : 0|16@1+ (1,0) [0|0] \"\" E\n");
    let mut out = Vec::new();
    database.message(1, false).unwrap().decode(&[0x34, 0x12], &mut out).unwrap();
    assert_eq!(out[0].physical, Physical::Int(0x1234));
}

#[test]
fn longer_frame_is_fine() {
    let database = load("layouts.dbc");
    let setpoints = database.message_by_name("Setpoints").unwrap();
    let mut out = Vec::new();
    setpoints.decode(&[0, 0, 0, 0, 0, 0xAA, 0xBB], &mut out).unwrap();
    assert_eq!(out.len(), 4);
}

#[test]
fn multiplexer_value_selecting_nothing_gives_the_other_signals() {
    let database = load("multiplexing.dbc");
    let simple = database.message_by_name("SimpleMux").unwrap();
    assert_eq!(
        decode(simple, &[3, 0, 0, 0, 0, 0, 0, 9]),
        [("Selector", Physical::Int(3), None), ("Common", Physical::Int(9), None)]
    );
    assert_eq!(
        decode(simple, &[2, 0x7F, 0, 0, 0, 0, 0, 9]),
        [
            ("Selector", Physical::Int(2), Some("Status")),
            ("Status", Physical::Int(0x7F), None),
            ("Common", Physical::Int(9), None)
        ]
    );
}

#[test]
fn extended_multiplexing_follows_the_chain() {
    let database = load("multiplexing.dbc");
    let message = database.message_by_name("ExtendedMux").unwrap();
    // Mux1 = 1 selects Mux2 and SigD; Mux2 = 8 selects SigC (5, 7 to 9).
    let frame = [0x81, 0x01, 0x00, 0x00, 0x80, 0x07, 0, 0x05];
    let names: Vec<&str> = decode(message, &frame).iter().map(|(name, ..)| *name).collect();
    assert_eq!(names, ["Mux1", "Mux2", "SigC", "SigD", "Always"]);
    let mut out = Vec::new();
    message.decode(&frame, &mut out).unwrap();
    let indices: Vec<usize> = out.iter().map(|d| d.index).collect();
    assert_eq!(indices, [0, 1, 4, 5, 6]);
    let (index, found) = database.lookup(0x301, true).unwrap();
    assert_eq!((index, found.name.as_str()), (1, "ExtendedMux"));
    assert_eq!(database.message_at(index).unwrap().name, "ExtendedMux");
    // Mux1 = 2: Mux2 is absent, so SigC is too, whatever the bits say.
    let names: Vec<&str> = decode(message, &[0x82, 1, 0, 0, 0, 7, 0, 5]).iter().map(|(name, ..)| *name).collect();
    assert_eq!(names, ["Mux1", "SigD", "Always"]);
}

#[test]
fn encode_defaults_and_lists_the_signals_left_out() {
    let database = load("layouts.dbc");
    let setpoints = database.message_by_name("Setpoints").unwrap();
    let encoded = setpoints.encode(&[("Bias", Value::Integer(-20))]).unwrap();
    assert_eq!(encoded.defaulted, ["Target", "Limit", "Offsetted"]);
    // Target: GenSigStartValue 650 (25 °C); Limit: raw 0 (10 is in range); Offsetted: raw 0 is below
    // the minimum 5, so 5; Bias: -20 + 50 = raw 30.
    assert_eq!(encoded.data, [0x8A, 0x02, 0x00, 0x05, 30]);
    assert_eq!(
        decode(setpoints, &encoded.data),
        [
            ("Target", Physical::Float(25.0), None),
            ("Limit", Physical::Int(10), None),
            ("Offsetted", Physical::Int(5), None),
            ("Bias", Physical::Int(-20), None),
        ]
    );
}

#[test]
fn encode_labels_and_rounding() {
    let database = load("layouts.dbc");
    let labels = database.message_by_name("Labels").unwrap();
    let encoded = labels
        .encode(&[("Gear", "Reverse".into()), ("Mode", "Invalid".into()), ("Level", Value::Number(50.3))])
        .unwrap();
    // 50.3 / 0.5 = 100.6 rounds to raw 101.
    assert_eq!(encoded.data, [0x01, 0xFF, 101]);
    // A label's raw value is taken as is, even outside the DBC range (Error = raw 255 = 127.5 %).
    assert_eq!(labels.encode(&[("Level", "Error".into())]).unwrap().data[2], 255);
}

#[test]
fn encode_multiplexed_message() {
    let database = load("multiplexing.dbc");
    let simple = database.message_by_name("SimpleMux").unwrap();
    let encoded = simple.encode(&[("Selector", "Voltage".into()), ("Voltage", Value::Number(12.5))]).unwrap();
    assert_eq!(encoded.data, [1, 0xD4, 0x30, 0, 0, 0, 0, 0]);
    assert_eq!(encoded.defaulted, ["Common"]);
    let extended = database.message_by_name("ExtendedMux").unwrap();
    let encoded = extended
        .encode(&[("Mux1", Value::Integer(1)), ("Mux2", Value::Integer(3)), ("SigB", Value::Number(10.0))])
        .unwrap();
    assert_eq!(encoded.data, [0x31, 20, 0, 0, 0, 0, 0, 0]);
    assert_eq!(encoded.defaulted, ["SigD", "Always"]);
}

#[track_caller]
fn check_error(message: &Message, values: &[(&str, Value<'_>)], expected: &str) {
    let error = message.encode(values).unwrap_err();
    assert_eq!(error.to_string(), expected);
}

#[test]
fn encode_errors() {
    let database = load("layouts.dbc");
    let labels = database.message_by_name("Labels").unwrap();
    check_error(
        labels,
        &[("Speed", Value::Number(1.0))],
        "message \"Labels\" has no signal \"Speed\"; its signals are: Gear, Mode, Level",
    );
    check_error(
        labels,
        &[("Gear", "Sport".into())],
        "signal \"Gear\" has no value label \"Sport\"; its labels are: \"Park\", \"Reverse\", \"Neutral\", \"Drive\"",
    );
    check_error(
        labels,
        &[("Level", Value::Number(100.5))],
        "signal \"Level\": 100.5 is out of range: the DBC allows 0 to 100, and the 8-bit unsigned field holds 0 to 127.5",
    );
    check_error(
        labels,
        &[("Gear", Value::Integer(16))],
        "signal \"Gear\": 16 is out of range: the DBC allows 0 to 15, and the 4-bit unsigned field holds 0 to 15",
    );
    check_error(labels, &[("Mode", Value::Number(f64::NAN))], "signal \"Mode\": NaN is not a finite number");
    check_error(labels, &[("Mode", Value::Number(f64::INFINITY))], "signal \"Mode\": inf is not a finite number");
    check_error(labels, &[("Gear", Value::Integer(1)), ("Gear", Value::Integer(2))], "signal \"Gear\" is given twice");
    let intel = database.message_by_name("MotorolaMix").unwrap();
    check_error(
        intel,
        &[("M12s", Value::Integer(2048))],
        "signal \"M12s\": 2048 is out of range: the 12-bit signed field holds -2048 to 2047",
    );
    let setpoints = database.message_by_name("Setpoints").unwrap();
    check_error(
        setpoints,
        &[("Bias", "Low".into())],
        "signal \"Bias\" has no value label \"Low\"; it has no value labels",
    );

    let database = load("multiplexing.dbc");
    let simple = database.message_by_name("SimpleMux").unwrap();
    check_error(
        simple,
        &[("Selector", Value::Integer(1)), ("TempA", Value::Number(20.0))],
        "signal \"TempA\" is only present when Selector is 0, but Selector is 1",
    );
    let extended = database.message_by_name("ExtendedMux").unwrap();
    check_error(
        extended,
        &[("Mux1", Value::Integer(0)), ("SigC", Value::Integer(1))],
        "signal \"SigC\" is only present when Mux2 is 5 or 7 to 9, but Mux2 is not present",
    );
}
