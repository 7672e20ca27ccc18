//! `cargo xtask deploy --board NAME [--host user@host]`: package, copy over ssh, install into
//! a versioned directory, switch the `current` link, restart the services, then wait until
//! every gateway says "online". A deploy whose gateways do not come up is rolled back to the
//! release that ran before.
//!
//! Everything on the board is done by the package's `install.sh` (see `package.rs`); this side
//! only runs the system's `ssh`. The gateways' status is read from the board's own broker
//! through `ssh -W`, so the broker can stay on loopback.

use std::io::{BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use schema::payload::{Online, Status};
use schema::topic::GatewayTopics;

use crate::mqtt;
use crate::package::{self, Package};

#[derive(Debug, Clone)]
pub struct Options {
    pub board: String,
    /// `user@host` or an ssh alias; the board's `[deploy] host` when absent.
    pub host: Option<String>,
    pub debug: bool,
    /// An ssh configuration file (`ssh -F`), e.g. for a port or a key.
    pub ssh_config: Option<String>,
    /// Passed to `install.sh` as `BUSGATE_ROOT` (tests and image staging).
    pub root: Option<String>,
    /// Passed to `install.sh` as `BUSGATE_SYSTEMCTL` (tests).
    pub systemctl: Option<String>,
    /// How long the gateways have to come online.
    pub timeout: Duration,
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options {
            board: "sim".into(),
            host: None,
            debug: false,
            ssh_config: None,
            root: None,
            systemctl: None,
            timeout: Duration::from_secs(60),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().with_context(|| format!("{arg} needs a value")).cloned();
            match arg.as_str() {
                "--board" => options.board = value()?,
                "--host" => options.host = Some(value()?),
                "--debug" => options.debug = true,
                "--ssh-config" => options.ssh_config = Some(value()?),
                "--root" => options.root = Some(value()?),
                "--systemctl" => options.systemctl = Some(value()?),
                "--timeout" => {
                    let seconds: u64 = value()?.parse().context("--timeout takes whole seconds")?;
                    options.timeout = Duration::from_secs(seconds);
                }
                other => bail!("unknown option {other:?} for deploy"),
            }
        }
        Ok(options)
    }
}

pub fn deploy(options: &Options) -> anyhow::Result<()> {
    let package = package::package(&package::Options { board: options.board.clone(), debug: options.debug })?;
    let host = match (&options.host, &package.board.deploy) {
        (Some(host), _) => host.clone(),
        (None, Some(deploy)) => deploy.host.clone(),
        (None, None) => bail!("board {:?} has no [deploy] host: give one with --host user@host", package.board.name),
    };
    let remote = Remote::new(host, options)?;
    let prefix = package::prefix(&package.board);
    let incoming = format!("{prefix}/releases/.incoming");

    eprintln!("xtask: copying {} to {}:{incoming}", package.tarball.display(), remote.host);
    let tarball =
        std::fs::File::open(&package.tarball).with_context(|| format!("opening {}", package.tarball.display()))?;
    remote.run(&format!("rm -rf {0} && mkdir -p {0} && tar -xzf - -C {0}", quote(&incoming)), Stdio::from(tarball))?;

    let installer = format!("{incoming}/{}/install.sh", package.dir_name);
    let (installed, output) = remote.run_unchecked(&remote.installer(&installer, "install"), Stdio::null())?;
    print!("{output}");
    let previous = output.lines().find_map(|line| line.strip_prefix("previous=")).map(str::to_owned);
    if !installed {
        // A failure after "previous=" may have switched the link or stopped the services.
        let failure =
            format!("installing release {} on {} failed (see its output above)", package.version, remote.host);
        eprintln!("xtask: {failure}");
        if let Some(previous) = &previous {
            roll_back(&remote, &package, previous, options.timeout)?;
        }
        bail!("{failure}");
    }
    let previous = previous.unwrap_or_else(|| "none".to_owned());
    eprintln!(
        "xtask: installed {} (previous: {previous}); waiting for {}",
        package.version,
        package.gateways.join(", ")
    );

    let release = format!("{prefix}/releases/{}", package.version);
    let missing = remote.wait_online(&package.board, &release, options.timeout)?;
    if missing.is_empty() {
        println!("deployed {} to {} ({}): every gateway is online", package.version, remote.host, package.board.name);
        return Ok(());
    }
    let failure = format!(
        "release {} did not come up on {}: {} not online within {:?}",
        package.version,
        remote.host,
        missing.join(", "),
        options.timeout
    );
    eprintln!("xtask: {failure}");
    roll_back(&remote, &package, &previous, options.timeout)?;
    bail!("{failure}")
}

/// Activates the release that ran before, or removes the services when there was none.
fn roll_back(remote: &Remote, package: &Package, previous: &str, timeout: Duration) -> anyhow::Result<()> {
    let prefix = package::prefix(&package.board);
    if previous == package.version {
        eprintln!("xtask: the failed release was already the current one: nothing to roll back to");
        return Ok(());
    }
    if previous == "none" {
        eprintln!("xtask: no earlier release: stopping the services");
        let installer = format!("{prefix}/releases/{}/install.sh", package.version);
        remote.run(&remote.installer(&installer, "remove"), Stdio::null())?;
        return Ok(());
    }
    eprintln!("xtask: rolling back to {previous}");
    let release = format!("{prefix}/releases/{previous}");
    remote.run(&remote.installer(&format!("{release}/install.sh"), "activate"), Stdio::null())?;
    // Its own board file says where its broker is and which gateways it runs.
    let board_text = remote.run(&format!("cat {}", quote(&format!("{release}/board.toml"))), Stdio::null())?;
    let board =
        board::Board::parse(&board_text, std::path::Path::new(&format!("{}:{release}/board.toml", remote.host)))?;
    let missing = remote.wait_online(&board, &release, timeout)?;
    if missing.is_empty() {
        eprintln!("xtask: {previous} is running again");
    } else {
        eprintln!("xtask: after the rollback to {previous}, still not online: {}", missing.join(", "));
    }
    Ok(())
}

/// The board, reached with the system's `ssh`.
struct Remote {
    host: String,
    ssh_config: Option<String>,
    /// `sudo` unless ssh logs in as root.
    sudo: bool,
    /// `NAME=value` for the installer.
    environment: Vec<String>,
}

impl Remote {
    fn new(host: String, options: &Options) -> anyhow::Result<Remote> {
        let mut remote = Remote { host, ssh_config: options.ssh_config.clone(), sudo: true, environment: Vec::new() };
        // The user ssh will log in as, after aliases and configuration files.
        let output = remote.ssh().arg("-G").arg(&remote.host).output().context("running ssh -G")?;
        let user = String::from_utf8_lossy(&output.stdout)
            .lines()
            .find_map(|line| line.strip_prefix("user ").map(str::to_owned))
            .unwrap_or_default();
        // An installation under another root (tests, image staging) is the login user's own.
        remote.sudo = user != "root" && options.root.is_none();
        if let Some(root) = &options.root {
            remote.environment.push(format!("BUSGATE_ROOT={}", quote(root)));
        }
        if let Some(systemctl) = &options.systemctl {
            remote.environment.push(format!("BUSGATE_SYSTEMCTL={}", quote(systemctl)));
        }
        Ok(remote)
    }

    fn ssh(&self) -> Command {
        let mut command = Command::new("ssh");
        if let Some(config) = &self.ssh_config {
            command.arg("-F").arg(config);
        }
        // Never wait for a password or a host key prompt: deploy runs unattended.
        command.args(["-o", "BatchMode=yes"]);
        command
    }

    /// The shell command that runs an installer subcommand as root.
    fn installer(&self, script: &str, subcommand: &str) -> String {
        format!("env {} sh {} {subcommand}", self.environment.join(" "), quote(script))
    }

    /// Runs a shell command on the board as root; returns its standard output.
    fn run(&self, script: &str, stdin: Stdio) -> anyhow::Result<String> {
        let (success, stdout) = self.run_unchecked(script, stdin)?;
        if !success {
            bail!("on {}: `{script}` failed", self.host);
        }
        Ok(stdout)
    }

    /// Runs a shell command on the board as root; returns whether it succeeded and its output.
    fn run_unchecked(&self, script: &str, stdin: Stdio) -> anyhow::Result<(bool, String)> {
        let wrapped = if self.sudo { format!("sudo -n sh -c {}", quote(script)) } else { script.to_owned() };
        let output = self
            .ssh()
            .arg(&self.host)
            .arg(&wrapped)
            .stdin(stdin)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running ssh {}", self.host))?;
        if !output.status.success() {
            eprintln!("xtask: on {}: `{script}` failed ({})", self.host, output.status);
        }
        Ok((output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    /// Waits until each gateway's retained status says online; returns those that did not.
    /// `release` is the installed release's directory on the board.
    fn wait_online(&self, board: &board::Board, release: &str, timeout: Duration) -> anyhow::Result<Vec<String>> {
        // With a credentials directory the broker wants a login: deploy has its own identity,
        // allowed to read the status topics and nothing else, made by the installer.
        let password = match &board.gateway.credentials_dir {
            None => None,
            Some(_) => {
                let output =
                    self.run(&self.installer(&format!("{release}/install.sh"), "deploy-password"), Stdio::null())?;
                Some(output.trim().to_owned())
            }
        };
        let login = password.as_deref().map(|password| (schema::acl::DEPLOY_USER, password));
        let gateways = crate::build::binaries(board).into_iter().skip(1);
        let broker = board.gateway.broker;
        let address =
            if broker.ip().is_unspecified() { format!("127.0.0.1:{}", broker.port()) } else { broker.to_string() };
        let topics: Vec<(String, String)> =
            gateways.map(|gateway| (GatewayTopics::new(&board.name, gateway).status(), gateway.to_owned())).collect();
        let mut online = vec![false; topics.len()];
        let deadline = Instant::now() + timeout;
        // The broker may still be starting: connect again until the deadline.
        while Instant::now() < deadline && online.iter().any(|up| !up) {
            // Each session hears every retained status again.
            online.fill(false);
            let mut session = match Session::open(self, &address, login, &topics) {
                Ok(session) => session,
                Err(error) => {
                    eprintln!("xtask: {error:#}");
                    std::thread::sleep(Duration::from_millis(500));
                    continue;
                }
            };
            while let Some(message) = session.next(deadline) {
                let Some(index) = topics.iter().position(|(topic, _)| *topic == message.topic) else { continue };
                if let Ok(status) = schema::payload::parse::<Status>(&message.payload) {
                    online[index] = status.state == Online::Online;
                }
                if online.iter().all(|up| *up) {
                    break;
                }
            }
            session.close();
            if online.iter().any(|up| !up) {
                // Closed by the broker (restarting) or by ssh: try again shortly.
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Ok(topics.into_iter().zip(online).filter(|(_, up)| !up).map(|((_, gateway), _)| gateway).collect())
    }
}

/// An MQTT session with the board's broker through `ssh -W`.
struct Session {
    ssh: Child,
    /// Kept open for the session's life: closing it would end the connection.
    _stdin: ChildStdin,
    messages: mpsc::Receiver<anyhow::Result<mqtt::Message>>,
}

impl Session {
    fn open(
        remote: &Remote,
        address: &str,
        login: Option<(&str, &str)>,
        topics: &[(String, String)],
    ) -> anyhow::Result<Session> {
        let mut ssh = remote
            .ssh()
            .arg("-W")
            .arg(address)
            .arg(&remote.host)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting ssh -W")?;
        let mut stdin = ssh.stdin.take().context("ssh stdin")?;
        let stdout = ssh.stdout.take().context("ssh stdout")?;
        let filters: Vec<String> = topics.iter().map(|(topic, _)| topic.clone()).collect();
        let client_id = format!("busgate-deploy-{}", std::process::id());
        mqtt::connect_and_subscribe(&mut stdin, &client_id, login, &filters).context("sending CONNECT")?;
        stdin.flush().context("sending CONNECT")?;
        let (sender, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            loop {
                let message = mqtt::next_message(&mut reader);
                let end = message.is_err();
                if sender.send(message).is_err() || end {
                    break;
                }
            }
        });
        Ok(Session { ssh, _stdin: stdin, messages })
    }

    /// The next message, or `None` at the deadline or when the connection ended.
    fn next(&mut self, deadline: Instant) -> Option<mqtt::Message> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(Ok(message)) => Some(message),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    fn close(mut self) {
        let _ = self.ssh.kill();
        let _ = self.ssh.wait();
    }
}

/// Single-quotes a word for the remote shell.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}
