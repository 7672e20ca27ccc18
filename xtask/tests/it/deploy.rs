//! `cargo xtask deploy` end to end, against a real sshd on 127.0.0.1 started by the test (its
//! own host key, a throwaway client key, a free port), installing under a temporary root with
//! a stand-in for systemctl that runs the units' `ExecStart` commands. Four deploys: the first,
//! the same again, one whose gateways stay offline and one whose restart fails; the last two
//! must be rolled back. The board is closed to anonymous clients: the installer makes every
//! identity's password, and deploy logs in with its own to read the status.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, root, temp_dir};

const SSHD: &str = "/usr/sbin/sshd";

/// The units of the simulated board, in start order.
const UNITS: [&str; 4] = [
    "busgate-broker.service",
    "busgate-i2c-gateway.service",
    "busgate-spi-gateway.service",
    "busgate-can-gateway.service",
];

/// The stand-in for systemctl (install.sh passes BUSGATE_ROOT on): `restart` stops the units it is given (last first) and starts
/// their `ExecStart` in the background; `stop` stops them; the rest is only logged.
const SYSTEMCTL: &str = r#"#!/bin/sh
units="$BUSGATE_ROOT/etc/systemd/system"
state="$BUSGATE_ROOT/run/systemctl"
mkdir -p "$state"
command=$1
shift
echo "$command $*" >> "$state/calls"
stop() {
    [ -f "$state/$1.pid" ] || return 0
    pid=$(cat "$state/$1.pid")
    kill "$pid" 2>/dev/null || true
    tries=0
    while kill -0 "$pid" 2>/dev/null && [ $tries -lt 100 ]; do sleep 0.1; tries=$((tries + 1)); done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$state/$1.pid"
}
case $command in
restart | start | stop)
    # The test's way to make one restart fail, as a unit that cannot start would.
    if [ "$command" = restart ] && [ -f "$state/fail-next-restart" ]; then
        rm -f "$state/fail-next-restart"
        echo "systemctl stand-in: failing this restart as asked" >&2
        exit 1
    fi
    reversed=""
    for unit in "$@"; do reversed="$unit $reversed"; done
    for unit in $reversed; do stop "$unit"; done
    [ "$command" = stop ] && exit 0
    for unit in "$@"; do
        exec_start=$(sed -n 's/^ExecStart=//p' "$units/$unit")
        setsid sh -c "exec $exec_start" </dev/null >>"$state/$unit.log" 2>&1 &
        echo $! > "$state/$unit.pid"
    done
    ;;
esac
"#;

/// sshd and the deployed processes, stopped when the test ends however it ends.
struct Board {
    dir: PathBuf,
    sshd: Child,
}

impl Drop for Board {
    fn drop(&mut self) {
        let _ = Command::new(self.dir.join("systemctl"))
            .arg("stop")
            .args(UNITS)
            .env("BUSGATE_ROOT", self.dir.join("root"))
            .status();
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).status().unwrap();
    assert!(status.success(), "ssh-keygen {}", path.display());
}

/// Starts sshd on a free port with fresh keys; writes an ssh config naming it `board`.
fn start_sshd(dir: &Path) -> Board {
    keygen(&dir.join("host_key"));
    keygen(&dir.join("client_key"));
    std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
    let port = free_port();
    let sshd_config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nAuthorizedKeysFile {dir}/authorized_keys\n\
         PidFile {dir}/sshd.pid\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         UsePAM no\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("sshd_config"), sshd_config).unwrap();
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(whoami);
    let ssh_config = format!(
        "Host board\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {dir}/client_key\n  \
         IdentitiesOnly yes\n  UserKnownHostsFile {dir}/known_hosts\n  StrictHostKeyChecking no\n  LogLevel ERROR\n",
        dir = dir.display()
    );
    std::fs::write(dir.join("ssh_config"), ssh_config).unwrap();
    // sshd insists on its privilege separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let log = std::fs::File::create(dir.join("sshd.log")).unwrap();
    let sshd = Command::new(SSHD)
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    std::fs::write(dir.join("systemctl"), SYSTEMCTL).unwrap();
    let _ = Command::new("chmod").arg("+x").arg(dir.join("systemctl")).status();
    let board = Board { dir: dir.to_owned(), sshd };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "sshd did not listen on port {port}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
    board
}

/// The return code of the CONNACK the board's broker answers a CONNECT with.
fn connack_code(board_file: &Path, login: Option<(&str, &str)>) -> u8 {
    use std::io::{Read as _, Write as _};
    let text = std::fs::read_to_string(board_file).unwrap();
    let board = board::Board::parse(&text, board_file).unwrap();
    let mut stream = TcpStream::connect(board.gateway.broker).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, if login.is_some() { 0xC2 } else { 2 }, 0, 60, 0, 1, b'c'];
    if let Some((user, password)) = login {
        for field in [user, password] {
            body.extend_from_slice(&u16::try_from(field.len()).unwrap().to_be_bytes());
            body.extend_from_slice(field.as_bytes());
        }
    }
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend_from_slice(&body);
    stream.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).unwrap();
    assert_eq!(connack[0], 0x20, "not a CONNACK: {connack:?}");
    connack[3]
}

fn whoami() -> String {
    String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout).unwrap().trim().to_owned()
}

/// The simulated board renamed, on a free broker port, installed inside `dir/root`, and
/// closed to anonymous clients as a real board is: every process logs in with a password the
/// installer makes in `dir/root/etc/busgate/credentials`.
fn board_file(dir: &Path, extra_gateway: &str) -> PathBuf {
    let port = free_port();
    let credentials = dir.join("root/etc/busgate/credentials");
    let text = std::fs::read_to_string(root().join("boards/sim.toml"))
        .unwrap()
        .replace("name = \"sim\"", "name = \"deploy-test\"")
        .replace("127.0.0.1:1883", &format!("127.0.0.1:{port}"))
        .replace("anonymous = true\n", "anonymous = false\n")
        .replace("[gateway]\n", &format!("[gateway]\ncredentials_dir = \"{}\"\n{extra_gateway}", credentials.display()))
        .replace("enabled = true\noutput = \"stdout\"", "enabled = false\noutput = \"stdout\"")
        + &format!("\n[deploy]\nhost = \"board\"\nprefix = \"{}/root/opt/busgate\"\n", dir.display());
    let path = dir.join("deploy-test.toml");
    std::fs::write(&path, text).unwrap();
    // The sim board's CAN bus names its DBC file relative to the board file.
    std::fs::create_dir_all(dir.join("dbc")).unwrap();
    std::fs::copy(root().join("boards/dbc/busgate-demo.dbc"), dir.join("dbc/busgate-demo.dbc")).unwrap();
    path
}

fn deploy(dir: &Path, board: &Path, timeout: &str) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("deploy")
        .arg("--board")
        .arg(board)
        .args(["--debug", "--timeout", timeout, "--ssh-config"])
        .arg(dir.join("ssh_config"))
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--systemctl")
        .arg(dir.join("systemctl"))
        .output()
        .unwrap();
    eprintln!("--- deploy stdout\n{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("--- deploy stderr\n{}", String::from_utf8_lossy(&output.stderr));
    output
}

fn current(dir: &Path) -> String {
    let link = std::fs::read_link(dir.join("root/opt/busgate/current")).unwrap();
    link.to_string_lossy().into_owned()
}

fn running(dir: &Path, unit: &str) -> bool {
    let pid = std::fs::read_to_string(dir.join("root/run/systemctl").join(format!("{unit}.pid"))).unwrap_or_default();
    !pid.trim().is_empty() && Path::new("/proc").join(pid.trim()).exists()
}

#[test]
fn deploy_installs_switches_and_rolls_back() {
    if !Path::new(SSHD).exists() {
        assert!(
            std::env::var_os("BUSGATE_REQUIRE_SSHD").is_none(),
            "BUSGATE_REQUIRE_SSHD is set but {SSHD} is missing: apt-get install openssh-server"
        );
        eprintln!("skipped: {SSHD} is not installed (apt-get install openssh-server)");
        return;
    }
    let _target = crate::target_dir_lock();
    let dir = temp_dir("deploy");
    let board = start_sshd(&dir);
    check_deploys(&dir);
    // Stops the services and sshd before their files go.
    drop(board);
    let _ = std::fs::remove_dir_all(&dir);
}

fn check_deploys(dir: &Path) {
    let dir = dir.to_owned();

    // First deploy: files in place, units rendered, the link switched, every process running.
    let good = board_file(&dir, "");
    let output = deploy(&dir, &good, "60");
    assert!(output.status.success(), "the first deploy failed");
    let first = current(&dir);
    assert!(first.starts_with("releases/"), "{first}");
    let release = dir.join("root/opt/busgate").join(&first);
    for file in [
        "bin/broker",
        "bin/i2c-gateway",
        "bin/spi-gateway",
        "bin/can-gateway",
        "board.toml",
        "dbc/busgate-demo.dbc",
        "install.sh",
        "VERSION",
    ] {
        assert!(release.join(file).is_file(), "{file} missing from {}", release.display());
    }
    for unit in UNITS {
        let text = std::fs::read_to_string(dir.join("root/etc/systemd/system").join(unit)).unwrap();
        let binary = unit.trim_start_matches("busgate-").trim_end_matches(".service");
        let exec = format!("ExecStart={}/root/opt/busgate/current/bin/{binary} --board", dir.display());
        assert!(text.contains(&exec), "{unit}:\n{text}");
        assert!(running(&dir, unit), "{unit} is not running");
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("every gateway is online"), "{stdout}");
    // Each identity got a password and its hash, readable by their owner only; the broker
    // refuses anyone without them.
    let credentials = dir.join("root/etc/busgate/credentials");
    let mut passwords = Vec::new();
    for name in ["i2c-gateway", "spi-gateway", "can-gateway", "deploy"] {
        for file in [format!("{name}.password"), format!("{name}.hash")] {
            let mode = std::fs::metadata(credentials.join(&file)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        passwords.push(std::fs::read_to_string(credentials.join(format!("{name}.password"))).unwrap());
    }
    assert_eq!(connack_code(&good, None), 5, "an anonymous client was let in");
    assert_eq!(connack_code(&good, Some(("deploy", "wrong"))), 4);
    assert_eq!(connack_code(&good, Some(("deploy", &passwords[3]))), 0);

    // The same build again: the same version, nothing to undo, the same passwords.
    let output = deploy(&dir, &good, "60");
    assert!(output.status.success(), "deploying the same release again failed");
    assert_eq!(current(&dir), first);
    assert!(String::from_utf8_lossy(&output.stderr).contains("is already installed"));
    let again = std::fs::read_to_string(credentials.join("i2c-gateway.password")).unwrap();
    assert_eq!(again, passwords[0], "a redeploy changed a password");

    // A release whose gateways cannot reach the broker: named, and rolled back.
    let bad = board_file(&dir, &format!("broker = \"127.0.0.1:{}\"\n", free_port()));
    let output = deploy(&dir, &bad, "8");
    assert!(!output.status.success(), "a deploy whose gateways stay offline succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("i2c-gateway, spi-gateway, can-gateway not online"), "{stderr}");
    assert!(stderr.contains("is running again"), "{stderr}");
    assert_eq!(current(&dir), first, "the link was not rolled back");
    for unit in UNITS {
        assert!(running(&dir, unit), "{unit} is not running after the rollback");
    }

    // An installer that fails while restarting the services: rolled back as well.
    // Another release: the same board with a comment more.
    let other = board_file(&dir, "");
    let text = std::fs::read_to_string(&other).unwrap() + "# another release\n";
    std::fs::write(&other, text).unwrap();
    std::fs::write(dir.join("root/run/systemctl/fail-next-restart"), "").unwrap();
    let output = deploy(&dir, &other, "30");
    assert!(!output.status.success(), "a deploy whose restart failed succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("failed (see its output above)"), "{stderr}");
    assert!(stderr.contains("is running again"), "{stderr}");
    assert_eq!(current(&dir), first, "the link was not rolled back after the failed restart");
    for unit in UNITS {
        assert!(running(&dir, unit), "{unit} is not running after the rollback");
    }
}
