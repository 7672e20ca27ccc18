//! `cargo xtask package --board NAME`: a release tarball for the board: the stripped binaries,
//! the board file, one systemd unit per process and the script that installs them.
//!
//! The tarball holds one directory, `busgate-BOARD-VERSION/`:
//!
//! ```text
//! bin/broker, bin/i2c-gateway, ...   stripped, for the board's target triple
//! board.toml                         the board file
//! dbc/..., ...                       files the board file names (DBC files, candump logs),
//!                                    at the same paths relative to it
//! units/busgate-*.service            systemd units (broker first; gateways require it)
//! install.sh                         install | activate | remove, run as root on the board
//! VERSION                            the version, with the git commit it was built from
//! ```
//!
//! The version is a hash of everything else in the directory (the git commit it was built
//! from is written in `VERSION`), so packaging the same build twice gives the same version and
//! deploying it again changes nothing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use board::{Board, JournalOutput};

use crate::build::{self, Built};
use crate::{root, run_step};

/// Where releases go on a board without a `[deploy]` section.
const DEFAULT_PREFIX: &str = "/opt/busgate";
/// The unprivileged user the services run as.
pub const USER: &str = "busgate";

#[derive(Debug, Clone)]
pub struct Options {
    pub board: String,
    /// Package a debug build (quick to build; for tests and trials, not for boards).
    pub debug: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options { board: "sim".into(), debug: false };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--board" => options.board = args.next().context("--board needs a board name")?.clone(),
                "--debug" => options.debug = true,
                other => bail!("unknown option {other:?} for package"),
            }
        }
        Ok(options)
    }
}

/// A packaged release.
#[derive(Debug)]
pub struct Package {
    pub board: Board,
    pub version: String,
    /// `target/busgate/BOARD/busgate-BOARD-VERSION.tar.gz`.
    pub tarball: PathBuf,
    /// The directory inside the tarball.
    pub dir_name: String,
    /// Unit file names in start order: the broker first.
    pub units: Vec<String>,
    /// The gateways the board runs.
    pub gateways: Vec<String>,
}

pub fn package(options: &Options) -> anyhow::Result<Package> {
    let built = build::build(&build::Options { board: options.board.clone(), release: !options.debug })?;
    let package = assemble(&built)?;
    println!("{} ({} units: {})", package.tarball.display(), package.units.len(), package.units.join(", "));
    Ok(package)
}

/// The files a board file names by a path relative to itself (a CAN bus's DBC files and replay
/// log), as (path relative to the board file, path here). They travel with the release so the
/// relative paths hold on the board; an absolute path must already exist there.
fn board_files(board: &Board) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    let base = board.file.parent().unwrap_or(Path::new("."));
    let mut files = Vec::new();
    for bus in &board.buses {
        let Some(can) = &bus.can else { continue };
        for path in can.dbc.iter().chain(can.replay.iter()) {
            if path.is_absolute() && !path.starts_with(base) {
                continue;
            }
            let Ok(relative) = path.strip_prefix(base) else { continue };
            if relative.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
                bail!(
                    "{}: bus {:?} names {}, outside the board file's directory; the release cannot carry it",
                    board.file.display(),
                    bus.name,
                    path.display()
                );
            }
            if !path.is_file() {
                bail!("{}: bus {:?} names {}, which does not exist", board.file.display(), bus.name, path.display());
            }
            files.push((relative.to_owned(), path.clone()));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The installation prefix on the board.
pub fn prefix(board: &Board) -> &str {
    board.deploy.as_ref().map_or(DEFAULT_PREFIX, |deploy| deploy.prefix.as_str())
}

/// The unit file name of a binary.
pub fn unit_name(binary: &str) -> String {
    format!("busgate-{binary}.service")
}

fn assemble(built: &Built) -> anyhow::Result<Package> {
    let board = &built.board;
    let staging = root().join("target/busgate").join(&board.name).join("staging");
    let _ = std::fs::remove_dir_all(&staging);
    let content = staging.join("content");
    for dir in ["bin", "units"] {
        std::fs::create_dir_all(content.join(dir)).with_context(|| format!("creating {}", content.display()))?;
    }
    for binary in &built.binaries {
        let name = binary.file_name().context("binary without a name")?;
        std::fs::copy(binary, content.join("bin").join(name))
            .with_context(|| format!("copying {}", binary.display()))?;
    }
    std::fs::copy(&board.file, content.join("board.toml"))
        .with_context(|| format!("copying {}", board.file.display()))?;
    for (relative, source) in board_files(board)? {
        let target = content.join(&relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::copy(&source, &target).with_context(|| format!("copying {}", source.display()))?;
    }
    let mut units = Vec::new();
    for (name, text) in units_for(board) {
        std::fs::write(content.join("units").join(&name), text).with_context(|| format!("writing {name}"))?;
        units.push(name);
    }

    let commit = git_commit();
    // Only the content names the release, so that the same build deploys as the same release
    // whatever the state of the git tree; the commit is recorded inside.
    let version = format!("{:016x}", hash_dir(&content)?);
    let version_text = format!(
        "{version}\nboard {}\ntarget {}\ncommit {}\n",
        board.name,
        built.target.triple,
        commit.as_deref().unwrap_or("(none)")
    );
    std::fs::write(content.join("VERSION"), version_text).context("writing VERSION")?;
    std::fs::write(content.join("install.sh"), install_script(board, &version, &units))
        .context("writing install.sh")?;

    let dir_name = format!("busgate-{}-{version}", board.name);
    std::fs::rename(&content, staging.join(&dir_name)).context("naming the package directory")?;
    let tarball = root().join("target/busgate").join(&board.name).join(format!("{dir_name}.tar.gz"));
    let mut tar = Command::new("tar");
    // Owned by root on the board whoever built it; modes are kept (binaries executable).
    tar.arg("-czf").arg(&tarball).args(["--owner=0", "--group=0", "-C"]).arg(&staging).arg(&dir_name);
    run_step(tar, &format!("packing {}", tarball.display()))?;
    let gateways = build::binaries(board).into_iter().skip(1).map(str::to_owned).collect();
    Ok(Package { board: board.clone(), version, tarball, dir_name, units, gateways })
}

/// Every unit of the board, in start order: the broker, then its gateways.
pub fn units_for(board: &Board) -> Vec<(String, String)> {
    let mut units = vec![(unit_name("broker"), broker_unit(board))];
    for kind in board.gateway_kinds() {
        units.push((unit_name(kind.gateway()), gateway_unit(board, kind)));
    }
    units
}

/// Hardening that holds for every busgate process: none of them needs more of the system than
/// its own files, the network and (gateways) a few device nodes.
const HARDENING: &str = "\
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
UMask=0027
";

fn header(board: &Board, what: &str) -> String {
    format!(
        "# {what} of busgate board {:?}, generated by `cargo xtask package`: edit the board file, not this.\n",
        board.name
    )
}

fn exec_start(board: &Board, binary: &str) -> String {
    let prefix = prefix(board);
    format!("ExecStart={prefix}/current/bin/{binary} --board {prefix}/current/board.toml\n")
}

fn broker_unit(board: &Board) -> String {
    let mut unit = header(board, "The MQTT broker");
    unit.push_str("[Unit]\n");
    let _ = writeln!(unit, "Description=busgate MQTT broker ({})", board.name);
    unit.push_str("After=network.target\n\n[Service]\nType=simple\n");
    let _ = writeln!(unit, "User={USER}\nGroup={USER}");
    unit.push_str(&exec_start(board, "broker"));
    unit.push_str("Restart=on-failure\nRestartSec=2\nEnvironment=RUST_LOG=info\n");
    unit.push_str("# /var/lib/busgate, owned by the service user, for the broker's data.\nStateDirectory=busgate\n");
    if let JournalOutput::File { path } = &board.broker.journal.output {
        unit.push_str(&writable_dir(path));
    }
    unit.push_str("PrivateDevices=yes\n");
    if board.broker.listeners.iter().any(|listener| listener.address.port() < 1024) {
        unit.push_str(
            "# A listener below port 1024.\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n\
             CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n",
        );
    } else {
        unit.push_str("CapabilityBoundingSet=\n");
    }
    unit.push_str("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n");
    unit.push_str(HARDENING);
    unit.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    unit
}

/// The directive that lets the broker write its journal file under `ProtectSystem=strict`.
fn writable_dir(file: &Path) -> String {
    let Some(dir) = file.parent() else { return String::new() };
    let managed = [("/var/log/", "LogsDirectory"), ("/var/lib/", "StateDirectory"), ("/var/cache/", "CacheDirectory")];
    for (base, directive) in managed {
        if let Ok(relative) = dir.strip_prefix(base)
            && !relative.as_os_str().is_empty()
        {
            return format!("# The journal file.\n{directive}={}\n", relative.display());
        }
    }
    format!("# The journal file.\nReadWritePaths={}\n", dir.display())
}

/// What a gateway of a bus kind needs from the system beyond the common hardening.
struct Access {
    /// Groups owning the device nodes (as on Raspberry Pi OS).
    groups: Vec<&'static str>,
    /// Device nodes the gateway opens.
    devices: Vec<String>,
    address_families: &'static str,
    /// Capabilities, e.g. raw CAN sockets.
    capabilities: &'static str,
}

/// The device nodes and rights a gateway needs. Matched on the bus kind's name, so a new bus
/// kind gets the plain defaults (its buses' device files) until it is described here.
fn access(board: &Board, kind: board::BusKind) -> Access {
    let real_buses = board.buses_of(kind).filter(|bus| !bus.mock && board.devices_on(&bus.name).next().is_some());
    let mut access = Access {
        groups: Vec::new(),
        devices: Vec::new(),
        address_families: "AF_UNIX AF_INET AF_INET6",
        capabilities: "",
    };
    for bus in real_buses {
        let Some(path) = &bus.path else { continue };
        match kind.as_str() {
            "spi" => {
                // One device file per chip select: `{bus path}.{chip_select}`.
                for device in board.devices_on(&bus.name) {
                    if let Some(spi) = device.spi {
                        access.devices.push(format!("{}.{}", path.display(), spi.chip_select));
                    }
                }
            }
            // CAN buses are network interfaces, not device files.
            "can" => {}
            _ => access.devices.push(path.display().to_string()),
        }
    }
    access.devices.sort();
    access.devices.dedup();
    match kind.as_str() {
        "i2c" => access.groups.push("i2c"),
        "spi" => access.groups.push("spi"),
        "can" => {
            access.address_families = "AF_UNIX AF_INET AF_INET6 AF_CAN AF_NETLINK";
            // Raw CAN sockets; netlink to set the bitrate and bring the interface up.
            access.capabilities = "CAP_NET_RAW CAP_NET_ADMIN";
        }
        _ => {}
    }
    access
}

fn gateway_unit(board: &Board, kind: board::BusKind) -> String {
    let gateway = kind.gateway();
    let broker = unit_name("broker");
    let access = access(board, kind);
    let mut unit = header(board, &format!("The {} gateway", kind.as_str()));
    unit.push_str("[Unit]\n");
    let _ = writeln!(unit, "Description=busgate {gateway} ({})", board.name);
    let _ = writeln!(unit, "# Stopped and restarted with the broker.\nAfter={broker}\nRequires={broker}");
    // The gateway says READY=1 once its buses and MQTT link are started and feeds the watchdog
    // from its loop, so systemd restarts a gateway whose loop hangs.
    unit.push_str("\n[Service]\nType=notify\nWatchdogSec=30\n");
    let _ = writeln!(unit, "User={USER}\nGroup={USER}");
    if !access.groups.is_empty() {
        let _ = writeln!(unit, "SupplementaryGroups={}", access.groups.join(" "));
    }
    unit.push_str(&exec_start(board, gateway));
    unit.push_str("Restart=on-failure\nRestartSec=2\nEnvironment=RUST_LOG=info\n");
    unit.push_str("# Only the board's device nodes for this bus.\nDevicePolicy=closed\n");
    for device in &access.devices {
        let _ = writeln!(unit, "DeviceAllow={device} rw");
    }
    if access.capabilities.is_empty() {
        unit.push_str("CapabilityBoundingSet=\n");
    } else {
        let _ = writeln!(unit, "AmbientCapabilities={0}\nCapabilityBoundingSet={0}", access.capabilities);
    }
    let _ = writeln!(unit, "RestrictAddressFamilies={}", access.address_families);
    unit.push_str(HARDENING);
    unit.push_str("\n[Install]\nWantedBy=multi-user.target\n");
    unit
}

/// The installer, with the board's values filled in.
pub fn install_script(board: &Board, version: &str, units: &[String]) -> String {
    let mut groups: Vec<&str> = board.gateway_kinds().into_iter().flat_map(|kind| access(board, kind).groups).collect();
    groups.dedup();
    let credentials = board.gateway.credentials_dir.as_ref().map(|dir| dir.display().to_string());
    let mut identities: Vec<&str> = Vec::new();
    if credentials.is_some() {
        identities.extend(board.gateway_kinds().into_iter().map(|kind| kind.gateway()));
        identities.push(schema::acl::DEPLOY_USER);
    }
    include_str!("../templates/install.sh")
        .replace("@BOARD@", &board.name)
        .replace("@VERSION@", version)
        .replace("@PREFIX@", prefix(board))
        .replace("@USER@", USER)
        .replace("@GROUPS@", &groups.join(" "))
        .replace("@UNITS@", &units.join(" "))
        .replace("@CREDENTIALS@", &credentials.unwrap_or_default())
        .replace("@IDENTITIES@", &identities.join(" "))
}

/// The short commit hash, with `-dirty` when the tree has uncommitted changes.
fn git_commit() -> Option<String> {
    let output = Command::new("git").current_dir(root()).args(["rev-parse", "--short=8", "HEAD"]).output().ok()?;
    let commit = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    if !output.status.success() || commit.is_empty() {
        return None;
    }
    let clean =
        Command::new("git").current_dir(root()).args(["status", "--porcelain"]).output().ok()?.stdout.is_empty();
    Some(if clean { commit } else { format!("{commit}-dirty") })
}

/// FNV-1a over the relative paths and contents of every file under `dir`, in sorted order:
/// the same files give the same hash on every machine and Rust version.
fn hash_dir(dir: &Path) -> anyhow::Result<u64> {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() { files(&path, out)? } else { out.push(path) }
        }
        Ok(())
    }
    let mut paths = Vec::new();
    files(dir, &mut paths)?;
    paths.sort();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for path in paths {
        let relative = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().into_owned();
        let content = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        for byte in relative.as_bytes().iter().chain([0u8].iter()).chain(content.iter()) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    /// Compares `actual` with `xtask/tests/snapshots/NAME`; `UPDATE_SNAPSHOTS=1` rewrites it.
    #[track_caller]
    fn check_snapshot(name: &str, actual: &str) {
        let path = root().join("xtask/tests/snapshots").join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, actual).unwrap();
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            expected == actual,
            "{} differs (UPDATE_SNAPSHOTS=1 cargo test -p xtask rewrites it); now:\n{actual}",
            path.display()
        );
    }

    fn board(name: &str) -> Board {
        Board::load(&root().join("boards").join(format!("{name}.toml"))).unwrap()
    }

    #[test]
    fn rpi4_units() {
        let units = units_for(&board("rpi4"));
        let names: Vec<&str> = units.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "busgate-broker.service",
                "busgate-i2c-gateway.service",
                "busgate-spi-gateway.service",
                "busgate-can-gateway.service"
            ]
        );
        for (name, text) in &units {
            check_snapshot(&format!("rpi4/{name}"), text);
        }
    }

    #[test]
    fn rpi4_install_script() {
        let board = board("rpi4");
        let units: Vec<String> = units_for(&board).into_iter().map(|(name, _)| name).collect();
        check_snapshot("rpi4/install.sh", &install_script(&board, "0011223344556677", &units));
    }

    /// systemd's own parser on the rendered units, where systemd is installed (it need not be
    /// running): any complaint but the missing binaries fails.
    #[test]
    fn systemd_accepts_the_units() {
        if !crate::target::on_path("systemd-analyze") {
            eprintln!("skipped: systemd-analyze is not installed");
            return;
        }
        let dir = std::env::temp_dir().join(format!("busgate-units-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        for (name, text) in units_for(&board("rpi4")) {
            std::fs::write(dir.join(&name), text).unwrap();
            paths.push(dir.join(&name));
        }
        let output = Command::new("systemd-analyze").args(["verify", "--man=no"]).args(&paths).output().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let complaints: Vec<&str> = stderr.lines().filter(|line| !line.contains("is not executable")).collect();
        assert!(complaints.is_empty(), "systemd-analyze verify:\n{stderr}");
    }

    #[test]
    fn mocked_buses_need_no_device_nodes() {
        for (name, text) in units_for(&board("sim")) {
            assert!(!text.contains("DeviceAllow="), "{name}:\n{text}");
            assert!(text.contains("DevicePolicy=closed") || name == "busgate-broker.service", "{name}:\n{text}");
        }
    }

    #[test]
    fn journal_directories_are_writable() {
        assert_eq!(
            writable_dir(Path::new("/var/log/busgate/journal.jsonl")),
            "# The journal file.\nLogsDirectory=busgate\n"
        );
        assert_eq!(
            writable_dir(Path::new("/var/lib/busgate/j.jsonl")),
            "# The journal file.\nStateDirectory=busgate\n"
        );
        assert_eq!(writable_dir(Path::new("/data/j.jsonl")), "# The journal file.\nReadWritePaths=/data\n");
    }

    #[test]
    fn privileged_port_gets_its_capability() {
        let text = std::fs::read_to_string(root().join("boards/rpi4.toml"))
            .unwrap()
            .replace("127.0.0.1:1883\"", "0.0.0.0:883\"\nallow_remote = true");
        let board = Board::parse(&text, Path::new("low-port.toml")).unwrap();
        let unit = broker_unit(&board);
        assert!(unit.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE\n"), "{unit}");
    }
}
