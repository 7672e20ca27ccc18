//! What loading gives: message and signal properties, lookups, merging.

use std::path::Path;

use dbc::{ByteOrder, Database, Raw, ValueType};

use crate::fixtures::directory;

pub fn load(name: &str) -> Database {
    let (database, warnings) = Database::load(&directory().join(name)).unwrap();
    assert!(warnings.is_empty(), "{name}: {}", warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("\n"));
    database
}

#[test]
fn message_properties() {
    let database = load("layouts.dbc");
    assert_eq!(database.messages().count(), 12);
    assert_eq!(database.nodes, ["Ecu", "Gateway"]);

    let intel = database.message(0x100, false).unwrap();
    assert_eq!((intel.name.as_str(), intel.size, intel.fd, intel.extended), ("IntelMix", 8, false, false));
    assert_eq!(intel.senders, ["Ecu"]);
    assert_eq!(intel.comment.as_deref(), Some("Intel signals at odd offsets and widths."));
    assert_eq!(intel.cycle_time_ms, None);
    assert_eq!(intel.line, 17);
    assert_eq!(intel.file.as_deref(), Some(directory().join("layouts.dbc").as_path()));

    let j1939 = database.message(0x18FE_F100, true).unwrap();
    assert_eq!((j1939.name.as_str(), j1939.cycle_time_ms, j1939.fd), ("EngineJ1939", Some(100), false));
    // The same number as a standard identifier is another message (or none).
    assert!(database.message(0x100, true).is_none());

    let fd = database.message_by_name("FdBig").unwrap();
    assert_eq!((fd.id, fd.size, fd.fd, fd.extended), (0x200, 64, true, false));
    let fd_extended = database.message_by_name("FdExtended").unwrap();
    assert_eq!((fd_extended.id, fd_extended.size, fd_extended.fd, fd_extended.extended), (0x1A_BCDE, 12, true, true));
}

#[test]
fn signal_properties() {
    let database = load("layouts.dbc");
    let intel = database.message_by_name("IntelMix").unwrap();
    let s11 = intel.signal("S11").unwrap();
    assert_eq!(
        (s11.start_bit, s11.size, s11.byte_order, s11.value_type),
        (5, 11, ByteOrder::LittleEndian, ValueType::Signed)
    );
    assert_eq!((s11.factor, s11.offset, s11.minimum, s11.maximum), (0.5, -10.0, -522.0, 501.5));
    assert_eq!((s11.unit.as_str(), s11.receivers.as_slice()), ("degC", ["Gateway".to_owned()].as_slice()));
    assert_eq!(s11.comment.as_deref(), Some("Signed, scaled by 0.5 with offset -10."));

    let floats = database.message_by_name("Floats").unwrap();
    assert_eq!(floats.signal("F32be").unwrap().value_type, ValueType::Float32);
    assert_eq!(floats.signal("F32be").unwrap().byte_order, ByteOrder::BigEndian);
    let position = database.message_by_name("FdBig").unwrap().signal("Position").unwrap();
    assert_eq!(position.value_type, ValueType::Float64);

    let labels = database.message_by_name("Labels").unwrap();
    let mode = labels.signal("Mode").unwrap();
    assert_eq!(mode.label(-1), Some("Invalid"));
    assert_eq!(mode.label(2), None);

    let setpoints = database.message_by_name("Setpoints").unwrap();
    assert_eq!(setpoints.signal("Target").unwrap().initial_raw, Some(Raw::Unsigned(650)));
    assert_eq!(setpoints.signal("Limit").unwrap().initial_raw, None);
}

#[test]
fn multiplexing_properties() {
    let database = load("multiplexing.dbc");
    let simple = database.message_by_name("SimpleMux").unwrap();
    assert!(simple.signal("Selector").unwrap().is_multiplexer);
    let voltage = simple.signal("Voltage").unwrap().multiplexed_by.as_ref().unwrap();
    assert_eq!((voltage.multiplexer.as_str(), voltage.ranges.as_slice()), ("Selector", [(1, 1)].as_slice()));
    assert!(simple.signal("Common").unwrap().multiplexed_by.is_none());

    let extended = database.message(0x301, true).unwrap();
    let mux2 = extended.signal("Mux2").unwrap();
    assert!(mux2.is_multiplexer);
    assert_eq!(mux2.multiplexed_by.as_ref().unwrap().multiplexer, "Mux1");
    let c = extended.signal("SigC").unwrap().multiplexed_by.as_ref().unwrap();
    assert_eq!((c.multiplexer.as_str(), c.ranges.as_slice()), ("Mux2", [(5, 5), (7, 9)].as_slice()));
}

#[test]
fn merge_adds_messages_and_warns_about_duplicates() {
    let mut database = load("layouts.dbc");
    let (other, _) = Database::parse(
        "BO_ 256 Clash: 8 Ecu\n SG_ A : 0|8@1+ (1,0) [0|0] \"\" X\n\nBO_ 300 IntelMix: 8 Ecu\n\nBO_ 301 New: 1 Ecu\n",
    );
    let warnings: Vec<String> = database.merge(other).iter().map(ToString::to_string).collect();
    let file = directory().join("layouts.dbc");
    assert_eq!(
        warnings,
        [
            format!(
                "line 1: message \"Clash\" (0x100) has the same identifier as message \"IntelMix\" (0x100) from {} line 17; ignored",
                file.display()
            ),
            format!(
                "line 4: message \"IntelMix\" (0x12C) has the same name as message \"IntelMix\" (0x100) from {} line 17; ignored",
                file.display()
            ),
        ]
    );
    assert_eq!(database.message(301, false).unwrap().name, "New");
    assert_eq!(database.message(0x100, false).unwrap().name, "IntelMix");
}

#[test]
fn unreadable_file_is_an_error() {
    let error = Database::load(Path::new("/nonexistent/bus.dbc")).unwrap_err();
    assert!(error.to_string().starts_with("reading DBC file /nonexistent/bus.dbc: "), "{error}");
}

#[test]
fn windows_1252_file_loads() {
    let path = std::env::temp_dir().join(format!("dbc-cp1252-{}.dbc", std::process::id()));
    std::fs::write(&path, b"BO_ 1 M: 1 E\n SG_ T : 0|8@1+ (1,0) [0|0] \"\xb0C\" X\n").unwrap();
    let (database, warnings) = Database::load(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(warnings.is_empty());
    assert_eq!(database.message(1, false).unwrap().signals[0].unit, "°C");
}
