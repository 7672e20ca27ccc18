//! Tidy tests: the architecture invariants of ARCHITECTURE.md, checked on the source tree.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// A workspace crate: its directory, package name and dependency tables.
struct Crate {
    dir: PathBuf,
    name: String,
    manifest: toml::Table,
}

impl Crate {
    /// Names of the normal (non-dev) dependencies.
    fn dependencies(&self) -> Vec<String> {
        self.manifest
            .get("dependencies")
            .and_then(|d| d.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Rust source files under `src/`.
    fn sources(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        collect_rs(&self.dir.join("src"), &mut files);
        files
    }
}

fn collect_rs(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            collect_rs(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

fn crates() -> Vec<Crate> {
    let root = root();
    let mut dirs = vec![root.join("broker"), root.join("xtask")];
    for group in ["crates", "gateways"] {
        for entry in std::fs::read_dir(root.join(group)).unwrap() {
            dirs.push(entry.unwrap().path());
        }
    }
    dirs.into_iter()
        .filter(|dir| dir.join("Cargo.toml").exists())
        .map(|dir| {
            let manifest: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap().parse().unwrap();
            let name = manifest["package"]["name"].as_str().unwrap().to_owned();
            Crate { dir, name, manifest }
        })
        .collect()
}

/// The code of a source file without comments and without `#[cfg(test)]` modules, which
/// follow the file's code by convention.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let text = match text.find("#[cfg(test)]") {
        Some(index) => &text[..index],
        None => &text,
    };
    text.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Fails listing every (crate, offending item).
#[track_caller]
fn check_none(what: &str, offenders: Vec<String>) {
    assert!(offenders.is_empty(), "{what}:\n  {}", offenders.join("\n  "));
}

#[test]
fn directory_name_is_package_name() {
    let offenders = crates()
        .into_iter()
        .filter(|c| c.dir.file_name().unwrap().to_str() != Some(c.name.as_str()))
        .map(|c| format!("{} is package {}", c.dir.display(), c.name))
        .collect();
    check_none("crate directories must be named after their package", offenders);
}

#[test]
fn every_crate_is_in_the_architecture_code_map() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
    let offenders = crates()
        .into_iter()
        .filter(|c| !architecture.contains(&format!("`{}`", c.name)) && !architecture.contains(&c.name))
        .map(|c| c.name)
        .collect();
    check_none("crates missing from ARCHITECTURE.md's code map", offenders);
}

#[test]
fn only_broker_depends_on_rumqttd() {
    let offenders = crates()
        .into_iter()
        .filter(|c| c.name != "broker" && c.dependencies().iter().any(|d| d == "rumqttd"))
        .map(|c| c.name)
        .collect();
    check_none("only broker/ may depend on rumqttd", offenders);
}

#[test]
fn only_buses_opens_device_files() {
    let hardware = ["linux-embedded-hal", "i2cdev", "spidev", "socketcan"];
    let mut offenders = Vec::new();
    for c in crates().into_iter().filter(|c| c.name != "buses") {
        for dependency in c.dependencies() {
            if hardware.contains(&dependency.as_str()) {
                offenders.push(format!("{} depends on {dependency}", c.name));
            }
        }
        for file in c.sources() {
            // A string literal starting with /dev/ (escaped quotes in messages do not count).
            if code(&file).replace("\\\"", "").contains("\"/dev/") {
                offenders.push(format!("{} names a /dev path", file.display()));
            }
        }
    }
    check_none("only the buses crate opens /dev", offenders);
}

#[test]
fn only_schema_serializes_wire_data_and_writes_topics() {
    let mut offenders = Vec::new();
    for c in crates().into_iter().filter(|c| c.name != "schema") {
        for file in c.sources() {
            let code = code(&file);
            let derives_serialize = code.lines().filter(|line| line.contains("derive(")).any(|line| {
                line.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                    .any(|word| word.ends_with("Serialize") && !word.ends_with("Deserialize"))
            });
            if derives_serialize {
                offenders.push(format!("{} derives Serialize", file.display()));
            }
            if code.contains("serde_json::to_") {
                offenders.push(format!("{} serializes JSON", file.display()));
            }
            if code.contains("\"busgate/") {
                offenders.push(format!("{} writes a topic string", file.display()));
            }
        }
    }
    check_none("only the schema crate serializes wire data and defines topics", offenders);
}

#[test]
fn drivers_know_nothing_of_mqtt() {
    let forbidden = ["schema", "runtime", "rumqttc", "rumqttd", "serde_json", "serde", "tokio", "buses", "board"];
    let mut offenders = Vec::new();
    for c in crates().into_iter().filter(|c| c.name.starts_with("drv-")) {
        for dependency in c.dependencies() {
            if forbidden.contains(&dependency.as_str()) {
                offenders.push(format!("{} depends on {dependency}", c.name));
            }
        }
    }
    check_none("driver crates depend on device, embedded-hal and community drivers only", offenders);
}

#[test]
fn every_rust_file_starts_with_a_doc_comment() {
    let mut files = Vec::new();
    for c in crates() {
        collect_rs(&c.dir, &mut files);
    }
    let offenders = files
        .into_iter()
        .filter(|file| !std::fs::read_to_string(file).unwrap().trim_start().starts_with("//!"))
        .map(|file| file.display().to_string())
        .collect();
    check_none("Rust files must start with a //! line saying what they are for", offenders);
}

#[test]
fn internal_crates_use_workspace_settings() {
    let mut offenders = Vec::new();
    for c in crates() {
        let lints = c.manifest.get("lints").and_then(|l| l.get("workspace")).and_then(|w| w.as_bool());
        if lints != Some(true) {
            offenders.push(format!("{}: [lints] workspace = true is missing", c.name));
        }
        let mut versions = BTreeMap::new();
        for (table, deps) in
            ["dependencies", "dev-dependencies"].iter().filter_map(|t| Some((t, c.manifest.get(*t)?.as_table()?)))
        {
            for (name, spec) in deps {
                if spec.get("workspace").and_then(|w| w.as_bool()) != Some(true) {
                    versions.insert(format!("{table}.{name}"), spec.to_string());
                }
            }
        }
        for (dependency, spec) in versions {
            offenders.push(format!(
                "{}: {dependency} = {spec} should be declared once in the root [workspace.dependencies]",
                c.name
            ));
        }
    }
    check_none("crates take lints and dependency versions from the workspace", offenders);
}
