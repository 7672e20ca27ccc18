//! The checked-in JSON Schemas and `docs/topics.md` are generated from the code; these tests
//! fail when they drift. `UPDATE_SCHEMAS=1 cargo test -p schema` rewrites them.

use std::path::{Path, PathBuf};

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn updating() -> bool {
    std::env::var_os("UPDATE_SCHEMAS").is_some()
}

#[track_caller]
fn check_file(path: &Path, expected: &str) {
    if updating() {
        std::fs::write(path, expected).unwrap();
        return;
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is out of date with the code; run `UPDATE_SCHEMAS=1 cargo test -p schema` and commit the result",
        path.display()
    );
}

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = crate_dir().join("schemas");
    let mut names = Vec::new();
    for (name, schema) in schema::schemas::all() {
        check_file(&dir.join(name), &schema::schemas::render(&schema));
        names.push(name.to_owned());
    }
    // No stale schema files for payloads that no longer exist.
    let mut on_disk: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    on_disk.sort();
    names.sort();
    assert_eq!(on_disk, names);
}

#[test]
fn topic_doc_matches_the_grammar() {
    let path = crate_dir().join("../../docs/topics.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let begin = "<!-- topic-table:begin -->\n";
    let end = "<!-- topic-table:end -->";
    let start = text.find(begin).expect("begin marker") + begin.len();
    let stop = text.find(end).expect("end marker");
    let expected = format!("{}{}{}", &text[..start], schema::topic::markdown_table(), &text[stop..]);
    check_file(&path, &expected);
}
