//! Agreement with cantools on DBC files of cantools and opendbc (`shared/fixtures/can` beside the
//! checkout); skipped when it is absent, as in a clean checkout, unless BUSGATE_REQUIRE_FIXTURES
//! is set, as in CI.

use crate::expected::compare;

#[test]
fn decodes_agree_with_cantools() {
    let Some(directory) = test_support::fixtures::shared("can") else { return };
    let mut names: Vec<String> = std::fs::read_dir(&directory)
        .expect("readable fixture directory")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.strip_suffix(".expected.jsonl").map(str::to_owned))
        .collect();
    names.sort();
    let mut summary = Vec::new();
    let mut failures = Vec::new();
    for name in &names {
        let outcome = compare(&directory, name);
        let (_, warnings) = dbc::Database::load(&directory.join(format!("{name}.dbc"))).unwrap();
        summary.push(format!(
            "{name}: {}/{} frames agree ({} load warnings)",
            outcome.agreeing,
            outcome.frames,
            warnings.len()
        ));
        failures.extend(outcome.differences.into_iter().take(5));
    }
    println!("{}", summary.join("\n"));
    assert!(!names.is_empty(), "no *.expected.jsonl in {}", directory.display());
    assert!(failures.is_empty(), "{}\n\nfirst differences:\n{}", summary.join("\n"), failures.join("\n"));
}
