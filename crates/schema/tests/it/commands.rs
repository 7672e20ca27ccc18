//! Commands are parsed strictly; every refusal names the field, what was expected and what came.

use device::{CommandSpec, Description, Param, ParamKind, Value};
use schema::{Command, ErrorKind, MAX_COMMAND_BYTES};

fn description() -> Description {
    Description {
        model: "PCA9685",
        quantities: vec![],
        commands: vec![
            CommandSpec {
                action: "set_duty",
                params: vec![
                    Param {
                        name: "channel",
                        kind: ParamKind::Int { min: 0, max: 15 },
                        required: true,
                        description: "",
                    },
                    Param {
                        name: "duty",
                        kind: ParamKind::Float { min: 0.0, max: 1.0 },
                        required: true,
                        description: "",
                    },
                    Param { name: "invert", kind: ParamKind::Bool, required: false, description: "" },
                    Param {
                        name: "curve",
                        kind: ParamKind::Choice(&["linear", "gamma"]),
                        required: false,
                        description: "",
                    },
                    Param { name: "raw", kind: ParamKind::Hex { max_bytes: 4 }, required: false, description: "" },
                ],
                description: "",
            },
            CommandSpec { action: "off", params: vec![], description: "" },
        ],
    }
}

/// Parses and validates `payload`; expects an error of `kind` on `field` containing `needle`.
#[track_caller]
fn check_refused(payload: &str, kind: ErrorKind, field: Option<&str>, needle: &str) {
    let result = Command::parse(payload.as_bytes()).and_then(|c| c.args_for(&description()));
    let error = result.unwrap_err();
    assert_eq!((error.kind, error.field.as_deref()), (kind, field), "{error}");
    assert!(error.message.contains(needle), "{:?} does not contain {needle:?}", error.message);
}

#[test]
fn valid_command_converts_its_arguments() {
    let command = Command::parse(br#"{"v":1,"id":"a1","action":"set_duty","args":{"channel":3,"duty":0.5}}"#).unwrap();
    assert_eq!(command.id.as_deref(), Some("a1"));
    let args = command.args_for(&description()).unwrap();
    assert_eq!(args.get("channel"), Some(&Value::Int(3)));
    assert_eq!(args.get("duty"), Some(&Value::Float(0.5)));
    assert_eq!(args.get("invert"), None);
}

#[test]
fn integer_is_accepted_for_a_float_parameter() {
    let command = Command::parse(br#"{"v":1,"action":"set_duty","args":{"channel":0,"duty":1}}"#).unwrap();
    assert_eq!(command.args_for(&description()).unwrap().get("duty"), Some(&Value::Float(1.0)));
}

#[test]
fn args_may_be_left_out_for_actions_without_parameters() {
    let command = Command::parse(br#"{"v":1,"action":"off"}"#).unwrap();
    assert!(command.args_for(&description()).unwrap().0.is_empty());
}

#[test]
fn too_large() {
    let payload = format!(r#"{{"v":1,"action":"off","id":"{}"}}"#, "x".repeat(MAX_COMMAND_BYTES));
    check_refused(&payload, ErrorKind::TooLarge, None, "larger than the limit of 4096 bytes");
}

#[test]
fn not_json() {
    check_refused("{\"v\":1,", ErrorKind::InvalidJson, None, "not valid JSON");
    check_refused("\u{0}\u{1}", ErrorKind::InvalidJson, None, "not valid JSON");
}

#[test]
fn not_an_object() {
    check_refused("[1,2]", ErrorKind::InvalidCommand, Some("(payload)"), "expected a JSON object, got array [1,2]");
}

#[test]
fn missing_or_wrong_version() {
    check_refused(r#"{"action":"off"}"#, ErrorKind::InvalidCommand, Some("v"), "field `v`: expected 1, got nothing");
    check_refused(r#"{"v":"1","action":"off"}"#, ErrorKind::InvalidCommand, Some("v"), "got string \"1\"");
    check_refused(r#"{"v":2,"action":"off"}"#, ErrorKind::InvalidCommand, Some("v"), "got integer 2");
}

#[test]
fn missing_action() {
    check_refused(r#"{"v":1}"#, ErrorKind::InvalidCommand, Some("action"), "expected a string, got nothing");
}

#[test]
fn unknown_field() {
    check_refused(r#"{"v":1,"action":"off","arg":{}}"#, ErrorKind::InvalidCommand, Some("arg"), "no such field");
}

#[test]
fn id_must_be_a_short_string() {
    check_refused(r#"{"v":1,"id":5,"action":"off"}"#, ErrorKind::InvalidCommand, Some("id"), "got integer 5");
    let long = format!(r#"{{"v":1,"id":"{}","action":"off"}}"#, "x".repeat(65));
    check_refused(&long, ErrorKind::InvalidCommand, Some("id"), "1 to 64 printable characters");
}

#[test]
fn unknown_action_lists_the_known_ones() {
    check_refused(
        r#"{"v":1,"action":"explode"}"#,
        ErrorKind::UnknownAction,
        Some("action"),
        "expected one of set_duty, off",
    );
}

#[test]
fn missing_argument() {
    check_refused(
        r#"{"v":1,"action":"set_duty","args":{"channel":1}}"#,
        ErrorKind::InvalidArgument,
        Some("args.duty"),
        "field `args.duty`: expected a number from 0 to 1, got nothing",
    );
}

#[test]
fn argument_out_of_range() {
    check_refused(
        r#"{"v":1,"action":"set_duty","args":{"channel":17,"duty":0.5}}"#,
        ErrorKind::InvalidArgument,
        Some("args.channel"),
        "expected an integer from 0 to 15, got integer 17",
    );
    check_refused(
        r#"{"v":1,"action":"set_duty","args":{"channel":1,"duty":1.5}}"#,
        ErrorKind::InvalidArgument,
        Some("args.duty"),
        "got number 1.5",
    );
}

#[test]
fn argument_of_the_wrong_type() {
    check_refused(
        r#"{"v":1,"action":"set_duty","args":{"channel":1.5,"duty":0.5}}"#,
        ErrorKind::InvalidArgument,
        Some("args.channel"),
        "expected an integer from 0 to 15, got number 1.5",
    );
    check_refused(
        r#"{"v":1,"action":"set_duty","args":{"channel":1,"duty":0.5,"invert":"yes"}}"#,
        ErrorKind::InvalidArgument,
        Some("args.invert"),
        "expected a boolean",
    );
    check_refused(
        r#"{"v":1,"action":"set_duty","args":{"channel":1,"duty":0.5,"curve":"cubic"}}"#,
        ErrorKind::InvalidArgument,
        Some("args.curve"),
        "expected one of linear, gamma, got string \"cubic\"",
    );
}

#[test]
fn unknown_argument() {
    check_refused(
        r#"{"v":1,"action":"off","args":{"now":true}}"#,
        ErrorKind::InvalidArgument,
        Some("args.now"),
        "no arguments for off",
    );
}

#[test]
fn errors_keep_the_id_and_action_for_the_reply() {
    let error = Command::parse(br#"{"v":1,"id":"q","action":"set_duty","args":{"channel":99,"duty":0}}"#)
        .and_then(|c| c.args_for(&description()))
        .unwrap_err();
    assert_eq!(error.id.as_deref(), Some("q"));
    assert_eq!(error.action.as_deref(), Some("set_duty"));
    let error = Command::parse(br#"{"id":"q","action":"off"}"#).unwrap_err();
    assert_eq!(error.id.as_deref(), Some("q"), "id kept even when v is missing");
}

/// Arbitrary bytes never panic the parser.
#[test]
fn garbage_never_panics() {
    let mut state = 0x2545_f491_u32;
    for length in 0..300 {
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                {
                    let alphabet = b"{}[]\":,1v actiondrgs\\u0";
                    alphabet[state as usize % alphabet.len()]
                }
            })
            .collect();
        let _ = Command::parse(&bytes).and_then(|c| c.args_for(&description()));
    }
}

#[test]
fn hex_arguments_become_bytes() {
    let command =
        Command::parse(br#"{"v":1,"action":"set_duty","args":{"channel":0,"duty":0,"raw":"9F 0a"}}"#).unwrap();
    assert_eq!(command.args_for(&description()).unwrap().get("raw"), Some(&Value::Bytes(vec![0x9f, 0x0a])));
    // Regression: "+f" passed because from_str_radix accepts a sign.
    for bad in [r#""9f0""#, r#""zz""#, r#""""#, r#""0102030405""#, "12", r#""+f+f""#] {
        check_refused(
            &format!(r#"{{"v":1,"action":"set_duty","args":{{"channel":0,"duty":0,"raw":{bad}}}}}"#),
            ErrorKind::InvalidArgument,
            Some("args.raw"),
            "expected a hex string of 1 to 4 bytes",
        );
    }
}
