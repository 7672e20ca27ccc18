//! What building for a board's target triple takes: the linker, the strip tool, the standard
//! library of the toolchain, and what to install when one of them is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A target triple as busgate builds for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub triple: String,
    /// The C compiler driver cargo links with (`CARGO_TARGET_<TRIPLE>_LINKER`); `None` for the
    /// host's own triple, where cargo's default `cc` is right.
    pub linker: Option<String>,
    /// The binutils `strip` for the target's object files.
    pub strip: String,
    /// Debian's architecture name, for `dpkg --add-architecture` and `:arch` packages.
    pub debian_arch: &'static str,
    /// The Debian package holding the linker.
    pub linker_package: String,
}

/// The triples this table knows: their GNU tool prefix and Debian architecture. (ARMv6
/// boards, the first Pi Zero and the Pi 1, are missing on purpose: Debian's armhf tools and
/// libraries are ARMv7.)
const KNOWN: &[(&str, &str, &str)] = &[
    ("x86_64-unknown-linux-gnu", "x86_64-linux-gnu", "amd64"),
    ("aarch64-unknown-linux-gnu", "aarch64-linux-gnu", "arm64"),
    ("armv7-unknown-linux-gnueabihf", "arm-linux-gnueabihf", "armhf"),
    ("riscv64gc-unknown-linux-gnu", "riscv64-linux-gnu", "riscv64"),
];

impl Target {
    /// The tools for `triple` when building on `host` (both Rust triples). `linker` is the
    /// board's own choice (`[deploy] linker`), which wins over the table.
    pub fn new(triple: &str, host: &str, linker: Option<&str>) -> anyhow::Result<Target> {
        let Some(&(_, prefix, debian_arch)) = KNOWN.iter().find(|(known, _, _)| *known == triple) else {
            let known: Vec<&str> = KNOWN.iter().map(|(triple, _, _)| *triple).collect();
            bail!("target {triple:?} is not one xtask knows how to build for (known: {})", known.join(", "));
        };
        let native = triple == host;
        let default_linker = (!native).then(|| format!("{prefix}-gcc"));
        Ok(Target {
            triple: triple.to_owned(),
            linker: linker.map(str::to_owned).or(default_linker),
            strip: if native { "strip".to_owned() } else { format!("{prefix}-strip") },
            debian_arch,
            linker_package: format!("gcc-{}", prefix.replace('_', "-")),
        })
    }

    /// Whether this is the host's own triple (built without `--target`, into `target/release`).
    pub fn is_native(&self, host: &str) -> bool {
        self.triple == host
    }

    /// The environment variable cargo reads the linker from, e.g.
    /// `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER`.
    pub fn linker_variable(&self) -> String {
        format!("CARGO_TARGET_{}_LINKER", self.triple.to_uppercase().replace(['-', '.'], "_"))
    }
}

/// The Rust compiler cargo will use: `$RUSTC`, or the one on `PATH`.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub rustc: PathBuf,
    /// Whether `RUSTC` named it (as opposed to the default, usually rustup's).
    pub from_env: bool,
    pub sysroot: PathBuf,
    pub host: String,
    pub version: String,
}

impl Toolchain {
    /// The toolchain named by `RUSTC`, or the default one.
    pub fn current() -> anyhow::Result<Toolchain> {
        match std::env::var_os("RUSTC") {
            Some(rustc) => Toolchain::at(Path::new(&rustc), true),
            None => Toolchain::at(Path::new("rustc"), false),
        }
    }

    pub fn at(rustc: &Path, from_env: bool) -> anyhow::Result<Toolchain> {
        let query = |args: &[&str]| -> anyhow::Result<String> {
            let output = Command::new(rustc)
                .args(args)
                .output()
                .with_context(|| format!("running {} {}", rustc.display(), args.join(" ")))?;
            if !output.status.success() {
                bail!("{} {} failed: {}", rustc.display(), args.join(" "), String::from_utf8_lossy(&output.stderr));
            }
            Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
        };
        let sysroot = PathBuf::from(query(&["--print", "sysroot"])?);
        let verbose = query(&["-vV"])?;
        let host = verbose.lines().find_map(|line| line.strip_prefix("host: ")).unwrap_or_default().to_owned();
        let version = verbose.lines().next().unwrap_or_default().to_owned();
        Ok(Toolchain { rustc: rustc.to_owned(), from_env, sysroot, host, version })
    }

    /// Whether the toolchain has the standard library for `triple`.
    pub fn has_std(&self, triple: &str) -> bool {
        let lib = self.sysroot.join("lib/rustlib").join(triple).join("lib");
        std::fs::read_dir(lib).is_ok_and(|entries| {
            entries.filter_map(Result::ok).any(|entry| {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libstd-") && name.ends_with(".rlib")
            })
        })
    }

    /// Whether rustup manages this toolchain (so `rustup target add` is the way to add a target).
    pub fn is_rustup(&self) -> bool {
        self.sysroot.components().any(|part| part.as_os_str() == ".rustup")
    }

    /// Exactly what to install so that this toolchain can build for `target`.
    pub fn std_advice(&self, target: &Target) -> String {
        let triple = &target.triple;
        if self.is_rustup() {
            format!(
                "the Rust standard library for {triple} is missing from {} ({}): install it with\n    \
                 rustup target add {triple}\n\
                 or, where rustup cannot download (Debian), use Debian's toolchain:\n    \
                 dpkg --add-architecture {arch} && apt-get update\n    \
                 apt-get install rustc-web libstd-rust-web-dev:{arch}\n    \
                 RUSTC=/usr/bin/rustc cargo xtask build ...",
                self.sysroot.display(),
                self.version,
                arch = target.debian_arch,
            )
        } else {
            // Debian's rustc-web and rustc each have their own std packages.
            let package =
                if Path::new("/usr/share/doc/rustc-web").exists() { "libstd-rust-web-dev" } else { "libstd-rust-dev" };
            format!(
                "the Rust standard library for {triple} is missing from {} ({}, {}): install it with\n    \
                 dpkg --add-architecture {arch} && apt-get update && apt-get install {package}:{arch}",
                self.sysroot.display(),
                self.rustc.display(),
                self.version,
                arch = target.debian_arch,
            )
        }
    }
}

/// Whether a program is on `PATH` (or is an existing path).
pub fn on_path(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    const HOST: &str = "x86_64-unknown-linux-gnu";

    #[track_caller]
    fn check(triple: &str, expected: &str) {
        let target = Target::new(triple, HOST, None).unwrap();
        let actual = format!(
            "linker {} via {}, strip {}, debian {}, package {}",
            target.linker.as_deref().unwrap_or("(cargo's default)"),
            target.linker_variable(),
            target.strip,
            target.debian_arch,
            target.linker_package,
        );
        assert_eq!(actual, expected);
    }

    #[test]
    fn native_target_uses_cargos_linker() {
        check(
            "x86_64-unknown-linux-gnu",
            "linker (cargo's default) via CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER, strip strip, debian amd64, \
             package gcc-x86-64-linux-gnu",
        );
    }

    #[test]
    fn aarch64_uses_the_gnu_cross_tools() {
        check(
            "aarch64-unknown-linux-gnu",
            "linker aarch64-linux-gnu-gcc via CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER, \
             strip aarch64-linux-gnu-strip, debian arm64, package gcc-aarch64-linux-gnu",
        );
    }

    #[test]
    fn armv7_uses_the_hard_float_tools() {
        check(
            "armv7-unknown-linux-gnueabihf",
            "linker arm-linux-gnueabihf-gcc via CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER, \
             strip arm-linux-gnueabihf-strip, debian armhf, package gcc-arm-linux-gnueabihf",
        );
    }

    #[test]
    fn board_linker_wins() {
        let target = Target::new("aarch64-unknown-linux-gnu", HOST, Some("clang-aarch64")).unwrap();
        assert_eq!(target.linker.as_deref(), Some("clang-aarch64"));
    }

    #[test]
    fn building_x86_64_on_arm_is_a_cross_build() {
        let target = Target::new(HOST, "aarch64-unknown-linux-gnu", None).unwrap();
        assert_eq!(target.linker.as_deref(), Some("x86_64-linux-gnu-gcc"));
        assert!(!target.is_native("aarch64-unknown-linux-gnu"));
    }

    #[test]
    fn unknown_triple_lists_the_known_ones() {
        let error = Target::new("mips-unknown-linux-gnu", HOST, None).unwrap_err().to_string();
        assert!(error.starts_with("target \"mips-unknown-linux-gnu\" is not one xtask knows"), "{error}");
        assert!(error.contains("armv7-unknown-linux-gnueabihf"), "{error}");
    }

    #[test]
    fn std_advice_names_the_packages() {
        let target = Target::new("aarch64-unknown-linux-gnu", HOST, None).unwrap();
        let rustup = Toolchain {
            rustc: "rustc".into(),
            from_env: false,
            sysroot: "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu".into(),
            host: HOST.into(),
            version: "rustc 1.95.0".into(),
        };
        let advice = rustup.std_advice(&target);
        assert!(advice.contains("rustup target add aarch64-unknown-linux-gnu"), "{advice}");
        assert!(advice.contains("libstd-rust-web-dev:arm64"), "{advice}");
        let debian = Toolchain { rustc: "/usr/bin/rustc".into(), sysroot: "/usr".into(), from_env: true, ..rustup };
        let advice = debian.std_advice(&target);
        assert!(advice.contains("dpkg --add-architecture arm64"), "{advice}");
        assert!(advice.contains("libstd-rust"), "{advice}");
        assert!(!advice.contains("rustup"), "{advice}");
    }
}
