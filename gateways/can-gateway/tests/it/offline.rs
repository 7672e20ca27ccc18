//! The offline decoder against the project's fixture and cantools' decodes of it, and (when
//! present) the reference fixtures of `shared/fixtures/can` beside the checkout (required where
//! BUSGATE_REQUIRE_FIXTURES is set, as in CI).
//!
//! `drive.cantools.jsonl` was produced with cantools 45:
//! `db.get_message_by_frame_id(id).decode(data, decode_choices=False, allow_truncated=True)`.

use std::path::{Path, PathBuf};

use can_gateway::offline;

/// Decodes `log` with `dbc` and returns the printed lines as JSON values.
fn decode(dbc: &Path, log: &Path) -> (Vec<serde_json::Value>, offline::Summary) {
    let mut out = Vec::new();
    let summary = offline::decode(&[dbc.to_owned()], log, "can0", &mut out).unwrap();
    let lines = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (lines, summary)
}

/// Compares decodes with expected lines (`message` and `signals` name → number); returns the
/// differences.
fn differences(got: &[serde_json::Value], expected: &[serde_json::Value]) -> Vec<String> {
    let mut problems = Vec::new();
    if got.len() != expected.len() {
        problems.push(format!("{} lines, expected {}", got.len(), expected.len()));
    }
    for (index, (got, expected)) in got.iter().zip(expected).enumerate() {
        if expected["message"].is_null() {
            if !got["message"].is_null() {
                problems.push(format!("line {}: expected a raw frame, got {}", index + 1, got["message"]));
            }
            continue;
        }
        if got["message"] != expected["message"] {
            problems.push(format!("line {}: message {} != {}", index + 1, got["message"], expected["message"]));
            continue;
        }
        let signals = expected["signals"].as_object().unwrap();
        let got_signals = got["signals"].as_object().unwrap();
        if signals.len() != got_signals.len() {
            problems.push(format!("line {}: signals {:?} != {:?}", index + 1, got_signals.keys(), signals.keys()));
        }
        for (name, value) in signals {
            let got_value = &got_signals.get(name).map_or(serde_json::Value::Null, |s| s["value"].clone());
            let agree = match (got_value.as_f64(), value.as_f64()) {
                (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * b.abs().max(a.abs()),
                // cantools writes NaN, which JSON has no word for; the gateway writes null.
                (None, None) => true,
                _ => false,
            };
            if !agree {
                problems.push(format!("line {}: {name} = {got_value}, expected {value}", index + 1));
            }
        }
    }
    problems
}

#[test]
fn the_offline_decoder_agrees_with_cantools_on_the_project_fixture() {
    let fixtures = Path::new("tests/fixtures");
    let (got, summary) = decode(&fixtures.join("test.dbc"), &fixtures.join("drive.log"));
    let expected: Vec<serde_json::Value> = std::fs::read_to_string(fixtures.join("drive.cantools.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(differences(&got, &expected), Vec::<String>::new());
    assert_eq!((summary.frames, summary.decoded, summary.unknown, summary.errors), (11, 9, 2, 1));
    // Labels and units beside the numbers; raw frames for unknown identifiers.
    assert_eq!(got[0]["signals"]["Gear"]["label"], "R");
    assert_eq!(got[0]["signals"]["Speed"]["unit"], "rpm");
    assert_eq!(got[3]["data"], "0102");
    assert_eq!(got[5]["fd"], true);
}

#[test]
fn the_offline_decoder_agrees_with_cantools_on_the_reference_fixtures() {
    let Some(directory) = test_support::fixtures::shared("can") else { return };
    let entries = std::fs::read_dir(&directory).unwrap();
    let mut dbcs: Vec<PathBuf> =
        entries.map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "dbc")).collect();
    dbcs.sort();
    assert!(!dbcs.is_empty(), "no DBC files in {}", directory.display());
    let mut report = Vec::new();
    let mut all = Vec::new();
    for dbc in dbcs {
        let log = dbc.with_extension("log");
        let expected_path = dbc.with_extension("expected.jsonl");
        // Python's json writes NaN, which is not JSON.
        let expected: Vec<serde_json::Value> = std::fs::read_to_string(&expected_path)
            .unwrap()
            .replace(": NaN", ": null")
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let (got, _) = decode(&dbc, &log);
        let problems = differences(&got, &expected);
        report.push(format!("{}: {}/{} agree", dbc.display(), expected.len() - problems.len(), expected.len()));
        all.extend(problems.into_iter().map(|p| format!("{}: {p}", dbc.display())));
    }
    eprintln!("{}", report.join("\n"));
    assert_eq!(all, Vec::<String>::new());
}

#[test]
fn a_broken_log_line_is_reported_with_its_line() {
    let dir = test_support::temp_dir("offline-broken");
    let log = dir.join("broken.log");
    std::fs::write(&log, "(1.000000) can0 123#00\n(2.000000) can0 123#0\n").unwrap();
    let error = offline::decode(&[PathBuf::from("tests/fixtures/test.dbc")], &log, "can0", Vec::new()).unwrap_err();
    assert!(error.to_string().contains("broken.log:2:"), "{error}");
}
