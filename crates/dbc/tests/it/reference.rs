//! Agreement with cantools on DBC files of cantools and opendbc (`/work/shared/fixtures/can`, or the
//! directory in `BUSGATE_CAN_FIXTURES`); skipped when the directory is absent, as in a clean checkout.

use std::path::PathBuf;

use crate::expected::compare;

fn directory() -> PathBuf {
    std::env::var_os("BUSGATE_CAN_FIXTURES").map_or_else(|| PathBuf::from("/work/shared/fixtures/can"), PathBuf::from)
}

#[test]
fn decodes_agree_with_cantools() {
    let directory = directory();
    if !directory.is_dir() {
        println!("skipped: no reference fixtures at {}", directory.display());
        return;
    }
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
