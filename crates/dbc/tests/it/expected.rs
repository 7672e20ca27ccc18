//! Compares decodes with expected-decode files (`NAME.expected.jsonl`, one JSON object per log line).

use std::path::Path;

use dbc::{Database, Physical};

use crate::json::{self, Json};

/// How one file compared.
pub struct Outcome {
    pub frames: usize,
    pub agreeing: usize,
    /// The first differences, described.
    pub differences: Vec<String>,
}

/// Decodes every frame of `NAME.log` with `NAME.dbc` and compares with `NAME.expected.jsonl`.
pub fn compare(directory: &Path, name: &str) -> Outcome {
    let dbc_path = directory.join(format!("{name}.dbc"));
    let (database, _warnings) = Database::load(&dbc_path).expect("readable DBC");
    let log = std::fs::read_to_string(directory.join(format!("{name}.log"))).expect("readable log");
    let expected =
        std::fs::read_to_string(directory.join(format!("{name}.expected.jsonl"))).expect("readable expected file");
    let mut expected_lines = expected.lines().filter(|line| !line.trim().is_empty());
    let mut outcome = Outcome { frames: 0, agreeing: 0, differences: Vec::new() };
    let mut out = Vec::new();
    for result in buses::can::log::parse_log(&log) {
        outcome.frames += 1;
        let (line_number, line) = match result {
            Ok(parsed) => parsed,
            Err(error) => {
                outcome.differences.push(format!("{name}.log {error}"));
                expected_lines.next();
                continue;
            }
        };
        let Some(expected) = expected_lines.next() else {
            outcome.differences.push(format!("{name}.log line {line_number}: no expected decode left"));
            continue;
        };
        let expected = json::parse(expected).expect("valid JSON");
        match check_frame(&database, line.frame(), &expected, &mut out) {
            Ok(()) => outcome.agreeing += 1,
            Err(difference) => outcome.differences.push(format!("{name}.log line {line_number}: {difference}")),
        }
    }
    if expected_lines.next().is_some() {
        outcome.differences.push(format!("{name}.expected.jsonl has more lines than {name}.log"));
    }
    outcome
}

fn check_frame<'d>(
    database: &'d Database,
    frame: Option<&buses::can::CanFrame>,
    expected: &Json,
    out: &mut Vec<dbc::Decoded<'d>>,
) -> Result<(), String> {
    let frame = frame.ok_or("an error frame, not a decodable one")?;
    let expected_id: u32 = expected.get("id").and_then(Json::as_number).and_then(|n| n.parse().ok()).ok_or("no id")?;
    let expected_extended = expected.get("extended").and_then(Json::as_bool).ok_or("no extended")?;
    if (frame.id(), frame.is_extended()) != (expected_id, expected_extended) {
        return Err(format!(
            "frame id {:X} extended {} but expected {expected_id:X} {expected_extended}",
            frame.id(),
            frame.is_extended()
        ));
    }
    let expected_data = expected.get("data").and_then(Json::as_str).ok_or("no data")?;
    let data_hex: String = frame.data().iter().map(|b| format!("{b:02x}")).collect();
    if data_hex != expected_data {
        return Err(format!("data {data_hex} but expected {expected_data}"));
    }
    let message = database
        .message(frame.id(), frame.is_extended())
        .ok_or_else(|| format!("no message for id 0x{:X}", frame.id()))?;
    let expected_name = expected.get("message").and_then(Json::as_str).ok_or("no message")?;
    if message.name != expected_name {
        return Err(format!("message {} but expected {expected_name}", message.name));
    }
    if let Some(fd) = expected.get("fd").and_then(Json::as_bool)
        && (fd != message.fd || fd != frame.is_fd())
    {
        return Err(format!("expected fd {fd}, message fd {}, frame fd {}", message.fd, frame.is_fd()));
    }
    message.decode(frame.data(), out).map_err(|error| error.to_string())?;
    let Some(Json::Object(signals)) = expected.get("signals") else { return Err("no signals".into()) };
    let mut problems = Vec::new();
    for decoded in out.iter() {
        match signals.get(decoded.name()) {
            None => problems.push(format!("{} = {} is not expected", decoded.name(), decoded.physical)),
            Some(value) => {
                let text = value.as_number().unwrap_or("");
                if !agrees(decoded.physical, text) {
                    problems.push(format!("{} = {:?} but expected {text}", decoded.name(), decoded.physical));
                }
            }
        }
    }
    for name in signals.keys() {
        if !out.iter().any(|decoded| decoded.name() == name) {
            problems.push(format!("{name} is missing"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{} {}: {}", message.name, expected_data, problems.join("; ")))
    }
}

/// Whether a decoded value equals an expected JSON number: the same kind (integer or float, as
/// cantools gives them) and the same value, floats within a relative tolerance of 1e-9.
fn agrees(physical: Physical, expected: &str) -> bool {
    let is_float = expected.contains(['.', 'e', 'E']) || expected.contains("inf") || expected == "NaN";
    match physical {
        Physical::Int(value) => !is_float && expected.parse::<i128>() == Ok(value),
        Physical::Float(value) => {
            let Ok(expected) = expected.parse::<f64>() else { return false };
            if !is_float {
                return false;
            }
            if expected.is_nan() || value.is_nan() {
                return expected.is_nan() && value.is_nan();
            }
            if expected.is_infinite() || value.is_infinite() {
                return expected == value;
            }
            (value - expected).abs() <= 1e-9 * expected.abs().max(value.abs()) || value == expected
        }
    }
}
