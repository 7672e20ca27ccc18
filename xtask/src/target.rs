//! What building for a board's target triple takes: the linker, the C cross compiler with the
//! target's C library, the strip tool, the standard library of the toolchain, and what to
//! install when one of them is missing.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
    /// The GNU C cross compiler that build scripts (ring's, for one) compile C with: what the
    /// `cc` crate picks for the triple unless `CC_<triple>` or `TARGET_CC` names another;
    /// `None` for the host's own triple.
    pub c_compiler: Option<String>,
    /// The Debian package with the target's C library headers and startup files. The cross
    /// compiler only recommends it, so `--no-install-recommends` leaves it out, and without it
    /// the cross compiler finds the host's headers and fails deep in a build script.
    pub libc_package: String,
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
        let cross_gcc = (!native).then(|| format!("{prefix}-gcc"));
        Ok(Target {
            triple: triple.to_owned(),
            linker: linker.map(str::to_owned).or_else(|| cross_gcc.clone()),
            strip: if native { "strip".to_owned() } else { format!("{prefix}-strip") },
            debian_arch,
            linker_package: format!("gcc-{}", prefix.replace('_', "-")),
            c_compiler: cross_gcc,
            libc_package: format!("libc6-dev-{debian_arch}-cross"),
        })
    }

    /// The Debian packages of the C cross toolchain: the compiler (which also links) and the
    /// target's C library.
    pub fn c_packages(&self) -> String {
        format!("{} {}", self.linker_package, self.libc_package)
    }

    /// Checks that the C cross compiler builds a C program for the target (headers, startup
    /// files and C library), as build scripts will; the error names the package to install.
    /// Nothing to check for the host's own triple.
    pub fn check_c_compiler(&self) -> anyhow::Result<()> {
        let Some(default) = &self.c_compiler else { return Ok(()) };
        // The variables the `cc` crate reads first, in its order.
        let compiler =
            [format!("CC_{}", self.triple), format!("CC_{}", self.triple.replace('-', "_")), "TARGET_CC".into()]
                .iter()
                .find_map(std::env::var_os)
                .map_or_else(|| default.clone(), |name| name.to_string_lossy().into_owned());
        self.check_c_compiler_named(&compiler)
    }

    fn check_c_compiler_named(&self, compiler: &str) -> anyhow::Result<()> {
        if !on_path(compiler) {
            bail!(
                "the C cross compiler for {} ({compiler}) is not installed: apt-get install {}",
                self.triple,
                self.c_packages()
            );
        }
        let program = std::env::temp_dir().join(format!("busgate-c-probe-{}-{}", self.triple, std::process::id()));
        let mut child = Command::new(compiler)
            .args(["-x", "c", "-o"])
            .arg(&program)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {compiler}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(C_PROBE.as_bytes()).with_context(|| format!("writing to {compiler}"))?;
        }
        let output = child.wait_with_output().with_context(|| format!("running {compiler}"))?;
        let _ = std::fs::remove_file(&program);
        if output.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&output.stderr);
        if dpkg_installed(&self.libc_package) == Some(true) {
            bail!(
                "{compiler} cannot build a C program for {} although {} is installed; it said:\n{}",
                self.triple,
                self.libc_package,
                said.trim()
            );
        }
        bail!(
            "{compiler} cannot build a C program for {}: the target's C library headers and startup files are \
             missing: apt-get install {}\n({compiler} said: {})",
            self.triple,
            self.libc_package,
            said.lines().find(|line| line.contains("error")).unwrap_or(said.trim())
        );
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

/// What [`Target::check_c_compiler`] builds: what a build script's C needs, the C library's
/// headers (`stdint.h` is where a host-only compiler fails) and its startup files and `libc`.
const C_PROBE: &str = "#include <stdint.h>\n#include <stdio.h>\nint main(void) { uint8_t zero = 0; return zero; }\n";

/// Whether dpkg has `package` installed; `None` where there is no dpkg.
pub fn dpkg_installed(package: &str) -> Option<bool> {
    let output = Command::new("dpkg-query").args(["-W", "-f=${Status}", package]).output().ok()?;
    Some(output.status.success() && output.stdout == b"install ok installed")
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
            "linker {} via {}, strip {}, debian {}, packages {}, C compiler {}",
            target.linker.as_deref().unwrap_or("(cargo's default)"),
            target.linker_variable(),
            target.strip,
            target.debian_arch,
            target.c_packages(),
            target.c_compiler.as_deref().unwrap_or("(the host's)"),
        );
        assert_eq!(actual, expected);
    }

    #[test]
    fn native_target_uses_cargos_linker() {
        check(
            "x86_64-unknown-linux-gnu",
            "linker (cargo's default) via CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER, strip strip, debian amd64, \
             packages gcc-x86-64-linux-gnu libc6-dev-amd64-cross, C compiler (the host's)",
        );
    }

    #[test]
    fn aarch64_uses_the_gnu_cross_tools() {
        check(
            "aarch64-unknown-linux-gnu",
            "linker aarch64-linux-gnu-gcc via CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER, \
             strip aarch64-linux-gnu-strip, debian arm64, packages gcc-aarch64-linux-gnu libc6-dev-arm64-cross, \
             C compiler aarch64-linux-gnu-gcc",
        );
    }

    #[test]
    fn armv7_uses_the_hard_float_tools() {
        check(
            "armv7-unknown-linux-gnueabihf",
            "linker arm-linux-gnueabihf-gcc via CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER, \
             strip arm-linux-gnueabihf-strip, debian armhf, packages gcc-arm-linux-gnueabihf libc6-dev-armhf-cross, \
             C compiler arm-linux-gnueabihf-gcc",
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

    /// A fake C compiler: a shell script that prints `stderr` and exits with `code`.
    fn fake_compiler(name: &str, stderr: &str, code: u8) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("busgate-xtask-fake-cc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\ncat >/dev/null\necho '{stderr}' >&2\nexit {code}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn missing_cross_compiler_names_both_packages() {
        let target = Target::new("aarch64-unknown-linux-gnu", HOST, None).unwrap();
        let error = target.check_c_compiler_named("/nonexistent/aarch64-linux-gnu-gcc").unwrap_err().to_string();
        assert!(
            error.ends_with("is not installed: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross"),
            "{error}"
        );
    }

    /// Regression test: on a fresh machine `gcc-aarch64-linux-gnu` was installed without
    /// `libc6-dev-arm64-cross`, and the build failed in ring's build script with this error.
    #[test]
    fn cross_compiler_without_headers_names_the_c_library_package() {
        let mut target = Target::new("armv7-unknown-linux-gnueabihf", HOST, None).unwrap();
        // A package dpkg cannot have, so that the advice does not depend on this machine.
        target.libc_package = "libc6-dev-nothing-cross".into();
        let said = "/usr/include/stdint.h:26:10: fatal error: bits/libc-header-start.h: No such file or directory";
        let compiler = fake_compiler("no-headers-gcc", said, 1);
        let error = target.check_c_compiler_named(compiler.to_str().unwrap()).unwrap_err().to_string();
        assert!(
            error.contains(
                "the target's C library headers and startup files are missing: apt-get install libc6-dev-nothing-cross"
            ),
            "{error}"
        );
        assert!(error.contains("bits/libc-header-start.h"), "{error}");
    }

    #[test]
    fn a_compiler_that_builds_the_probe_passes() {
        let target = Target::new("aarch64-unknown-linux-gnu", HOST, None).unwrap();
        // The host's own compiler builds the probe (gcc is on every machine CI runs on).
        target.check_c_compiler_named("gcc").unwrap();
    }
}
