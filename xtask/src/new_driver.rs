//! `cargo xtask new-driver NAME --bus i2c|spi [--model MODEL]`: a driver crate from the
//! templates in `xtask/templates/driver/`, registered so that board files can name it, with
//! its tests run at once.
//!
//! It writes `crates/drv-NAME/`, then registers the crate in the root `Cargo.toml`
//! (`[workspace.dependencies]`), in the gateway's `Cargo.toml` and driver registry
//! (`registry.rs`), and in ARCHITECTURE.md's code map (the tidy test demands an entry); then
//! formats the crate, runs its tests and clippy, and checks that the gateway compiles.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::{cargo, root, run_step};

#[derive(Debug, Clone)]
pub struct Options {
    /// The driver name board files use, e.g. `tmp102`.
    pub name: String,
    pub bus: Bus,
    /// The chip's name as people write it, e.g. `TMP102` (default: the name in capitals).
    pub model: String,
    /// The workspace to add the crate to (default: this one).
    pub workspace: PathBuf,
    /// Skip building and testing the new crate.
    pub no_test: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    I2c,
    Spi,
}

impl Bus {
    fn as_str(self) -> &'static str {
        match self {
            Bus::I2c => "i2c",
            Bus::Spi => "spi",
        }
    }
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut name = None;
        let mut bus = None;
        let mut model = None;
        let mut workspace = root();
        let mut no_test = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value")).cloned();
            match arg.as_str() {
                "--bus" => {
                    bus = Some(match value()?.as_str() {
                        "i2c" => Bus::I2c,
                        "spi" => Bus::Spi,
                        other => bail!("--bus {other:?}: new-driver knows i2c and spi"),
                    })
                }
                "--model" => model = Some(value()?),
                "--workspace" => workspace = PathBuf::from(value()?),
                "--no-test" => no_test = true,
                other if other.starts_with('-') => bail!("unknown option {other:?} for new-driver"),
                other if name.is_none() => name = Some(other.trim_start_matches("drv-").to_owned()),
                other => bail!("new-driver takes one name, got {other:?} too"),
            }
        }
        let name = name.context("new-driver needs a name: cargo xtask new-driver NAME --bus i2c|spi")?;
        check_name(&name)?;
        let bus = bus.context("new-driver needs --bus i2c or --bus spi")?;
        let model = model.unwrap_or_else(|| name.to_uppercase());
        Ok(Options { name, bus, model, workspace, no_test })
    }
}

/// A driver name: a lowercase letter, then lowercase letters and digits (it becomes a crate
/// name, a Rust identifier and a board-file word).
fn check_name(name: &str) -> anyhow::Result<()> {
    let good = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 32;
    if !good {
        bail!("driver name {name:?}: use a lowercase letter, then lowercase letters and digits (e.g. tmp102)");
    }
    Ok(())
}

pub fn new_driver(options: &Options) -> anyhow::Result<()> {
    let workspace = &options.workspace;
    let krate = format!("drv-{}", options.name);
    let dir = workspace.join("crates").join(&krate);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let gateway = format!("{}-gateway", options.bus.as_str());
    let registry_path = workspace.join("gateways").join(&gateway).join("src/registry.rs");
    let registry = read(&registry_path)?;
    if registry.contains(&format!("drv_{}::", options.name)) {
        bail!("{} already registers a driver crate drv-{}", registry_path.display(), options.name);
    }

    // The registry, manifests and ARCHITECTURE.md are checked before anything is written.
    let registry = register(&registry, options)?;
    let root_manifest_path = workspace.join("Cargo.toml");
    let root_manifest =
        insert_after_last(&read(&root_manifest_path)?, "drv-", &format!("{krate} = {{ path = \"crates/{krate}\" }}\n"))
            .with_context(|| format!("{}: no drv-* entry in [workspace.dependencies]", root_manifest_path.display()))?;
    let gateway_manifest_path = workspace.join("gateways").join(&gateway).join("Cargo.toml");
    let gateway_manifest =
        insert_after_last(&read(&gateway_manifest_path)?, "drv-", &format!("{krate}.workspace = true\n"))
            .with_context(|| format!("{}: no drv-* dependency", gateway_manifest_path.display()))?;
    let architecture_path = workspace.join("ARCHITECTURE.md");
    let architecture = code_map_entry(&read(&architecture_path)?, options, &krate)
        .with_context(|| format!("{}: no `### `crates/test-support`` section", architecture_path.display()))?;

    let templates = root().join("xtask/templates/driver").join(options.bus.as_str());
    copy_templates(&templates, &dir, options)?;
    write(&registry_path, &registry)?;
    write(&root_manifest_path, &root_manifest)?;
    write(&gateway_manifest_path, &gateway_manifest)?;
    write(&architecture_path, &architecture)?;
    println!("created {} and registered driver {:?} in {gateway}", dir.display(), options.name);
    // The templates are formatted already; this keeps `cargo fmt --check` green whatever the
    // name's length does to line widths.
    let mut format = cargo();
    format.current_dir(workspace).args(["fmt", "--package", &krate]);
    run_step(format, &format!("cargo fmt -p {krate}"))?;

    if !options.no_test {
        let mut test = cargo();
        test.current_dir(workspace).args(["test", "--package", &krate]);
        run_step(test, &format!("cargo test -p {krate}"))?;
        let mut clippy = cargo();
        clippy.current_dir(workspace).args(["clippy", "--package", &krate, "--all-targets", "--", "-D", "warnings"]);
        run_step(clippy, &format!("cargo clippy -p {krate} --all-targets -- -D warnings"))?;
        let mut check = cargo();
        check.current_dir(workspace).args(["check", "--package", &gateway]);
        run_step(check, &format!("cargo check -p {gateway} (the registry compiles)"))?;
    }
    println!(
        "next: fill in crates/{krate}/src/chip.rs with your chip's registers (docs/adding-a-driver.md), \
         then name it in a board file: driver = \"{}\"",
        options.name
    );
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// The words that fill the templates.
fn fill(template: &str, options: &Options) -> String {
    let type_name: String = {
        let mut chars = options.name.chars();
        chars.next().map(|first| first.to_ascii_uppercase()).into_iter().chain(chars).collect()
    };
    template
        .replace("@NAME@", &options.name)
        .replace("@IDENT@", &options.name)
        .replace("@TYPE@", &type_name)
        .replace("@MODEL@", &options.model)
}

/// Copies `*.tmpl` files from `from` to `to`, filled, without the `.tmpl`.
fn copy_templates(from: &Path, to: &Path, options: &Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let path = entry?.path();
        let name = path.file_name().context("template without a name")?.to_string_lossy().into_owned();
        if path.is_dir() {
            copy_templates(&path, &to.join(&name), options)?;
        } else if let Some(target) = name.strip_suffix(".tmpl") {
            write(&to.join(target), &fill(&read(&path)?, options))?;
        }
    }
    Ok(())
}

/// Inserts `line` after the last line starting with `prefix`.
fn insert_after_last(text: &str, prefix: &str, line: &str) -> Option<String> {
    let mut offset = 0;
    let mut insert_at = None;
    for current in text.split_inclusive('\n') {
        offset += current.len();
        if current.starts_with(prefix) {
            insert_at = Some(offset);
        }
    }
    let at = insert_at?;
    Some(format!("{}{line}{}", &text[..at], &text[at..]))
}

/// The registry with the new driver's entry at the end of `DRIVERS`.
fn register(registry: &str, options: &Options) -> anyhow::Result<String> {
    let start = registry.find("pub const DRIVERS").context("registry.rs has no `pub const DRIVERS`")?;
    let end = start + registry[start..].find("\n];").context("registry.rs: the DRIVERS list has no end")?;
    let ident = format!("drv_{}", options.name);
    let (handle, simulate) = match options.bus {
        Bus::I2c => ("I2cHandle", "simulated"),
        Bus::Spi => ("SpiHandle", "simulated"),
    };
    let entry = format!(
        "\n    Driver {{\n        name: {ident}::DRIVER,\n        options: {ident}::OPTIONS,\n        \
         build: {ident}::device::<{handle}>,\n        simulate: {ident}::{simulate},\n    }},"
    );
    Ok(format!("{}{entry}{}", &registry[..end], &registry[end..]))
}

/// ARCHITECTURE.md with a code-map section for the new crate, before `crates/test-support`.
fn code_map_entry(architecture: &str, options: &Options, krate: &str) -> Option<String> {
    let at = architecture.find("### `crates/test-support`")?;
    let (bus, chip_trait, bus_trait) = match options.bus {
        Bus::I2c => ("I2C", "I2cChip", "I2c"),
        Bus::Spi => ("SPI", "SpiChip", "SpiDevice"),
    };
    let entry = format!(
        "### `crates/{krate}`\nThe {} on {bus}: our own driver against embedded-hal's `{bus_trait}`, its \
         `device::Device` adapter and a simulated chip implementing `device::{chip_trait}`.\n\
         Depends only on `device` and embedded-hal.\n\n",
        options.model
    );
    Some(format!("{}{entry}{}", &architecture[..at], &architecture[at..]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    fn options(name: &str, bus: Bus) -> Options {
        Options { name: name.into(), bus, model: name.to_uppercase(), workspace: root(), no_test: true }
    }

    #[test]
    fn names_are_checked() {
        for bad in ["Tmp102", "1wire", "tmp-102", "tmp_102", ""] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("tmp102").unwrap();
        let parsed = Options::parse(&["drv-tmp102".into(), "--bus".into(), "i2c".into()]).unwrap();
        assert_eq!((parsed.name.as_str(), parsed.model.as_str(), parsed.bus), ("tmp102", "TMP102", Bus::I2c));
        let error = Options::parse(&["tmp102".into()]).unwrap_err().to_string();
        assert_eq!(error, "new-driver needs --bus i2c or --bus spi");
    }

    #[test]
    fn registry_entry_goes_at_the_end_of_the_list() {
        let registry = read(&root().join("gateways/spi-gateway/src/registry.rs")).unwrap();
        let registered = register(&registry, &options("adc1", Bus::Spi)).unwrap();
        let entry = "        build: drv_adc1::device::<SpiHandle>,\n        simulate: drv_adc1::simulated,\n    },\n];";
        assert!(registered.contains(entry), "{registered}");
    }

    #[test]
    fn manifest_line_follows_the_last_driver() {
        let text = "a = 1\ndrv-a = 2\ndrv-b = 3\nc = 4\n";
        assert_eq!(
            insert_after_last(text, "drv-", "drv-z = 9\n").unwrap(),
            "a = 1\ndrv-a = 2\ndrv-b = 3\ndrv-z = 9\nc = 4\n"
        );
        assert_eq!(insert_after_last("a = 1\n", "drv-", "x\n"), None);
    }

    #[test]
    fn templates_fill_every_placeholder() {
        for bus in ["i2c", "spi"] {
            let mut files = Vec::new();
            let dir = root().join("xtask/templates/driver").join(bus);
            fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_dir() { collect(&path, files) } else { files.push(path) }
                }
            }
            collect(&dir, &mut files);
            assert!(files.len() >= 8, "{bus}: {files:?}");
            for file in files {
                let filled = fill(&read(&file).unwrap(), &options("tmp102", Bus::I2c));
                assert!(!filled.contains('@'), "{} keeps a placeholder", file.display());
                if file.to_string_lossy().ends_with(".rs.tmpl") {
                    assert!(filled.starts_with("//!"), "{} must start with //!", file.display());
                }
            }
        }
    }
}
