//! The lenient loader: `tests/fixtures/messy.dbc` loads what it can and warns about the rest, line by line.

use dbc::{Database, Raw, ValueType};

use crate::fixtures::directory;

#[test]
fn messy_file_warnings() {
    let path = directory().join("messy.dbc");
    let (database, warnings) = Database::load(&path).unwrap();
    let actual: Vec<(usize, &str)> = warnings.iter().map(|w| (w.line, w.message.as_str())).collect();
    let expected = [
        (11, "signal \"Orphan\" outside a BO_ message; ignored"),
        (15, "signal \"Beyond\" of message \"Good\" needs 9 bytes, more than the message's 8"),
        (16, "malformed SG_ statement: expected the signal length, found `x`; ignored"),
        (17, "message \"Good\" already has a signal \"Speed\" (line 14); ignored"),
        (
            18,
            "signal \"Weird\": multiplexer indicator `m1x` is not M, m<number> or m<number>M; taken as a plain signal",
        ),
        (
            19,
            "signal \"Lonely\" is multiplexed (m3) but message \"Good\" has no multiplexer signal; taken as always present",
        ),
        (21, "message \"SameId\" has the same identifier 0x64 as message \"Good\" (line 13); ignored"),
        (24, "message name \"Good\" (0x65) is already used by the message on line 13 (0x64); ignored"),
        (32, "message \"TooLong\" has length 65, more than 64 bytes; ignored"),
        (39, "signal \"Zero\" of message \"Muxed\" has length 0; it must be 1 to 64 bits; ignored"),
        (41, "unknown statement `FOO_`; ignored"),
        (44, "CM_ for unknown message 999; ignored"),
        (45, "VAL_ for unknown signal \"Nope\" of message \"Good\"; ignored"),
        (46, "VAL_ for unknown message 999; ignored"),
        (48, "BA_ statement is not terminated by `;`"),
        (50, "SIG_VALTYPE_ for signal \"Half\": a float of type 1 needs 32 bits, the signal has 16; ignored"),
        (52, "SG_MUL_VAL_ for signal \"Value\": \"Plain\" is not a multiplexer signal of message \"Muxed\"; ignored"),
        (53, "unexpected `}`; line ignored"),
        (54, "string without a closing quote; taken to end at the end of its line"),
        (54, "CM_ statement is not terminated by `;`"),
    ];
    assert_eq!(actual, expected);
    assert_eq!(
        warnings[0].to_string(),
        format!("{} line 11: signal \"Orphan\" outside a BO_ message; ignored", path.display())
    );

    // What could be used was.
    let names: Vec<&str> = database.messages().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["Good", "Float", "Muxed"]);
    let good = database.message(100, false).unwrap();
    let signals: Vec<&str> = good.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(signals, ["Speed", "Beyond", "Weird", "Lonely"]);
    let speed = good.signal("Speed").unwrap();
    assert_eq!(speed.comment.as_deref(), Some("Vehicle speed, \"filtered\"\nover two lines."));
    assert_eq!(speed.initial_raw, Some(Raw::Unsigned(100)));
    assert_eq!(good.cycle_time_ms, Some(50));
    assert!(good.signal("Lonely").unwrap().multiplexed_by.is_none());
    assert_eq!(database.message_by_name("Float").unwrap().signals[0].value_type, ValueType::Signed);
    let value = database.message_by_name("Muxed").unwrap().signal("Value").unwrap();
    assert_eq!(value.multiplexed_by.as_ref().unwrap().multiplexer, "Selector");

    // A signal beyond the message is left out of a frame of the declared length without an error, and
    // decodes when the frame is long enough to hold it anyway.
    let mut out = Vec::new();
    good.decode(&[0; 8], &mut out).unwrap();
    assert_eq!(out.iter().map(|d| d.name()).collect::<Vec<_>>(), ["Speed", "Weird", "Lonely"]);
    good.decode(&[0; 9], &mut out).unwrap();
    assert_eq!(out.len(), 4);
}

#[test]
fn parse_without_a_file_names_lines_only() {
    let (_, warnings) = Database::parse("BO_ 1 A: 1 E\nBOGUS\n");
    assert_eq!(
        warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["line 2: unknown statement `BOGUS`; ignored"]
    );
}

#[test]
fn byte_order_mark_and_windows_line_ends() {
    let text = "\u{FEFF}VERSION \"1.2\"\r\nBO_ 1 A: 1 E\r\n SG_ X : 0|8@1+ (1,0) [0|0] \"\" E\r\nCM_ SG_ 1 X \"two\r\nlines\";\r\n";
    let (database, warnings) = Database::parse(text);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(database.version.as_deref(), Some("1.2"));
    assert_eq!(database.message(1, false).unwrap().signals[0].comment.as_deref(), Some("two\nlines"));
}

#[test]
fn multiplexer_cycle_is_broken() {
    let text = "BO_ 1 A: 2 E\n SG_ X m1M : 0|8@1+ (1,0) [0|0] \"\" E\n SG_ Y m1M : 8|8@1+ (1,0) [0|0] \"\" E\n\
                SG_MUL_VAL_ 1 X Y 1-1;\nSG_MUL_VAL_ 1 Y X 1-1;\n";
    let (database, warnings) = Database::parse(text);
    assert_eq!(
        warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["line 3: signal \"Y\": its multiplexer \"X\" depends on it; taken as always present"]
    );
    let mut out = Vec::new();
    database.message(1, false).unwrap().decode(&[1, 1], &mut out).unwrap();
    assert_eq!(out.len(), 2);
}
