//! `cargo xtask build --board NAME [--release]`: the broker and the board's gateways for the
//! board's target triple, stripped, with their sizes.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::target::{Target, Toolchain, on_path};
use crate::{cargo, load_board, run_step, target_dir};

#[derive(Debug, Clone)]
pub struct Options {
    pub board: String,
    pub release: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options { board: "sim".into(), release: false };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--board" => options.board = args.next().context("--board needs a board name")?.clone(),
                "--release" => options.release = true,
                other => bail!("unknown option {other:?} for build"),
            }
        }
        Ok(options)
    }
}

/// What a build produced.
#[derive(Debug)]
pub struct Built {
    pub board: board::Board,
    pub target: Target,
    /// Stripped copies of the binaries, `TARGET_DIR/busgate/BOARD/PROFILE/NAME` (`TARGET_DIR`
    /// is cargo's, usually `target/`).
    pub binaries: Vec<PathBuf>,
}

/// The binaries a board runs: the broker and one gateway per bus kind in use.
pub fn binaries(board: &board::Board) -> Vec<&'static str> {
    let mut names = vec!["broker"];
    names.extend(board.gateway_kinds().into_iter().map(|kind| kind.gateway()));
    names
}

pub fn build(options: &Options) -> anyhow::Result<Built> {
    let board = load_board(&options.board)?;
    let (target, toolchain) = prerequisites(&board)?;
    let native = target.is_native(&toolchain.host);
    let linker_variable = target.linker_variable();
    let user_linker = std::env::var_os(&linker_variable).is_some();

    let names = binaries(&board);
    let profile = if options.release { "release" } else { "debug" };
    // Two cargo runs, because cargo unifies the features of the packages one run builds: the
    // broker's uplink turns on rumqttc's TLS (rustls, ring), which would otherwise be linked
    // into every gateway too (about 1.2 MB each on aarch64).
    let (broker, gateways) = names.split_at(1);
    for group in [broker, gateways].into_iter().filter(|group| !group.is_empty()) {
        let mut command = cargo();
        command.arg("build");
        for name in group {
            command.args(["--package", name]);
        }
        if options.release {
            command.arg("--release");
        }
        if !native {
            command.args(["--target", &target.triple]);
        }
        if toolchain.from_env {
            command.env("RUSTC", &toolchain.rustc);
        }
        if let (Some(linker), false) = (&target.linker, user_linker) {
            command.env(&linker_variable, linker);
        }
        run_step(
            command,
            &format!("building {} for {} ({profile}, {})", group.join(", "), target.triple, toolchain.version),
        )?;
    }

    // Where cargo put them: `CARGO_TARGET_DIR` and `build.target-dir` move them.
    let target_dir = target_dir()?;
    let mut out = target_dir.clone();
    if !native {
        out.push(&target.triple);
    }
    out.push(profile);
    let bin = target_dir.join("busgate").join(&board.name).join(profile);
    std::fs::create_dir_all(&bin).with_context(|| format!("creating {}", bin.display()))?;
    let mut binaries = Vec::new();
    for name in &names {
        let built = out.join(name);
        let copy = bin.join(name);
        // Copied rather than hard-linked, so that stripping leaves cargo's file alone.
        let _ = std::fs::remove_file(&copy);
        std::fs::copy(&built, &copy).with_context(|| format!("copying {}", built.display()))?;
        strip(&target, &copy)?;
        binaries.push(copy);
    }
    print_sizes(&target.triple, &binaries)?;
    Ok(Built { board, target, binaries })
}

/// Checks that everything building for the board's target takes is installed, and returns the
/// target with the Rust toolchain to build with: the default one, or Debian's when only that
/// has the target's standard library. The error says exactly what to install, before cargo
/// would fail deep in a build script.
pub fn prerequisites(board: &board::Board) -> anyhow::Result<(Target, Toolchain)> {
    let toolchain = Toolchain::current()?;
    let linker = board.deploy.as_ref().and_then(|deploy| deploy.linker.as_deref());
    let target = Target::new(&board.target, &toolchain.host, linker)?;
    if target.is_native(&toolchain.host) {
        return Ok((target, toolchain));
    }
    let user_linker = std::env::var_os(target.linker_variable()).is_some();
    let linker_missing = !user_linker && target.linker.as_deref().is_some_and(|linker| !on_path(linker));
    let toolchain = if toolchain.has_std(&target.triple) {
        toolchain
    } else {
        debian_fallback(&toolchain, &target).with_context(|| {
            let mut advice = toolchain.std_advice(&target);
            if linker_missing {
                advice.push_str(&format!(
                    "\nand the C cross compiler with the target's C library: apt-get install {}",
                    target.c_packages()
                ));
            }
            advice
        })?
    };
    if let (Some(linker), true) = (&target.linker, linker_missing) {
        bail!(
            "the linker for {} ({linker}) is not installed: apt-get install {}\n(or name another one with {}, \
             or `linker` in the board's [deploy] section)",
            target.triple,
            target.c_packages(),
            target.linker_variable(),
        );
    }
    target.check_c_compiler()?;
    Ok((target, toolchain))
}

/// Debian's toolchain (`/usr/bin/rustc`, from rustc-web or rustc) when the default one lacks
/// the target's standard library but Debian's has it, as on machines where rustup cannot
/// download targets.
fn debian_fallback(toolchain: &Toolchain, target: &Target) -> anyhow::Result<Toolchain> {
    let debian = Path::new("/usr/bin/rustc");
    if toolchain.from_env || toolchain.rustc == debian || !debian.exists() {
        bail!("no standard library for {}", target.triple);
    }
    let candidate = Toolchain::at(debian, true)?;
    if !candidate.has_std(&target.triple) {
        bail!("no standard library for {} in {} either", target.triple, debian.display());
    }
    eprintln!(
        "xtask: {} has no standard library for {}; using {} ({}) instead",
        toolchain.version,
        target.triple,
        candidate.rustc.display(),
        candidate.version
    );
    Ok(candidate)
}

/// Strips symbols and debug information with the target's `strip`, when it is installed (the
/// release profile already strips symbols at link time; debug builds keep theirs otherwise).
fn strip(target: &Target, binary: &Path) -> anyhow::Result<()> {
    if !on_path(&target.strip) {
        eprintln!("xtask: {} is not installed; {} is left unstripped", target.strip, binary.display());
        return Ok(());
    }
    let mut command = std::process::Command::new(&target.strip);
    command.arg(binary);
    let status = command.status().with_context(|| format!("running {}", target.strip))?;
    if !status.success() {
        bail!("{} {} failed ({status})", target.strip, binary.display());
    }
    Ok(())
}

fn print_sizes(triple: &str, binaries: &[PathBuf]) -> anyhow::Result<()> {
    println!("{triple}, stripped:");
    for binary in binaries {
        let bytes = std::fs::metadata(binary).with_context(|| format!("reading {}", binary.display()))?.len();
        println!("  {:>10} bytes  {:>6.2} MB  {}", bytes, bytes as f64 / 1e6, binary.display());
    }
    Ok(())
}
