//! `cargo xtask run`: the simulated (or real) board on this machine, with readings shown live.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use schema::JournalEntry;

use crate::{cargo, root, run_step};

pub struct Options {
    pub board: String,
    pub mock: bool,
    pub release: bool,
}

impl Options {
    pub fn parse(args: &[String]) -> anyhow::Result<Options> {
        let mut options = Options { board: "sim".into(), mock: false, release: false };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--board" => options.board = args.next().context("--board needs a board name")?.clone(),
                "--mock" => options.mock = true,
                "--release" => options.release = true,
                other => bail!("unknown option {other:?} for run"),
            }
        }
        Ok(options)
    }
}

/// Lines from the child processes.
enum Line {
    Journal(String),
    Log(&'static str, String),
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    let board_path = root().join("boards").join(format!("{}.toml", options.board));
    let board = board::Board::load(&board_path)?;
    let gateways: Vec<&str> = board.gateway_kinds().into_iter().map(|kind| kind.gateway()).collect();

    let mut build = cargo();
    build.args(["build", "--package", "broker"]);
    for gateway in &gateways {
        build.args(["--package", gateway]);
    }
    if options.release {
        build.arg("--release");
    }
    run_step(build, "building the broker and gateways")?;
    let bin = crate::target_dir()?.join(if options.release { "release" } else { "debug" });

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
    }
    let (lines_tx, lines) = mpsc::channel();

    let mut broker = Command::new(bin.join("broker"));
    broker.arg("--board").arg(&board_path).args(["--journal", "stdout"]);
    let mut children = vec![spawn(broker, "broker", &lines_tx)?];
    wait_ready(&lines, &stop)?;

    for gateway in &gateways {
        let mut command = Command::new(bin.join(gateway));
        command.arg("--board").arg(&board_path);
        if options.mock {
            command.arg("--mock");
        }
        children.push(spawn(command, gateway, &lines_tx)?);
    }
    banner(&board, &gateways);

    let result = watch(&lines, &stop, &mut children);
    shut_down(&mut children);
    result
}

fn spawn(
    mut command: Command,
    name: &'static str,
    lines: &mpsc::Sender<Line>,
) -> anyhow::Result<(&'static str, Child)> {
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().with_context(|| format!("starting {name}"))?;
    if let Some(stdout) = child.stdout.take() {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(if name == "broker" { Line::Journal(line) } else { Line::Log(name, line) });
            }
        });
    }
    if let Some(stderr) = child.stderr.take() {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines.send(Line::Log(name, line));
            }
        });
    }
    Ok((name, child))
}

fn wait_ready(lines: &mpsc::Receiver<Line>, stop: &AtomicBool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        match lines.recv_timeout(Duration::from_millis(100)) {
            Ok(Line::Log(_, line)) if line.contains("busgate broker ready") => return Ok(()),
            Ok(Line::Log(name, line)) => eprintln!("[{name}] {line}"),
            Ok(Line::Journal(_)) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    bail!("the broker did not become ready (see its log above)")
}

fn banner(board: &board::Board, gateways: &[&str]) {
    let broker = board.gateway.broker;
    let (host, port) = (broker.ip(), broker.port());
    let example = board.devices.iter().find(|d| d.driver == "pca9685");
    println!();
    println!("busgate board {:?} is up: broker on {broker}, gateways: {}", board.name, gateways.join(", "));
    println!();
    println!("  watch everything:  mosquitto_sub -h {host} -p {port} -t 'busgate/#' -v");
    if let Some(device) = example {
        println!(
            "  send a command:    mosquitto_pub -h {host} -p {port} -t 'busgate/{}/i2c/{}/{}/set' \\\n                       -m '{{\"v\":1,\"id\":\"1\",\"action\":\"set_duty\",\"args\":{{\"channel\":0,\"duty\":0.5}}}}'",
            board.name, device.bus, device.name
        );
        println!(
            "  and its reply:     mosquitto_sub -h {host} -p {port} -t 'busgate/{}/i2c/{}/{}/reply' -v",
            board.name, device.bus, device.name
        );
    }
    if let Some(adc) = board.devices.iter().find(|d| d.spi.is_some_and(|s| s.raw)) {
        println!(
            "  raw SPI transfer:  mosquitto_pub -h {host} -p {port} -t 'busgate/{}/spi/{}/{}/set' \\\n                       -m '{{\"v\":1,\"id\":\"2\",\"action\":\"raw_transfer\",\"args\":{{\"data\":\"018000\"}}}}'",
            board.name, adc.bus, adc.name
        );
    }
    if let Some(can) = board.buses.iter().find(|b| b.can.as_ref().is_some_and(|c| c.simulate.is_some())) {
        println!(
            "  CAN message:       mosquitto_pub -h {host} -p {port} -t 'busgate/{}/can/{}/LightsCommand/set' \\\n                       -m '{{\"v\":1,\"id\":\"3\",\"action\":\"send\",\"args\":{{\"HeadLights\":\"High\"}}}}'",
            board.name, can.name
        );
    }
    println!("  readable traffic:  busgate-tail --port {port}   (pip install -e python)");
    println!("  topics and payloads: docs/topics.md; JSON Schemas: crates/schema/schemas/");
    println!();
    println!("Readings follow. Ctrl-C stops everything.");
    println!();
}

fn watch(
    lines: &mpsc::Receiver<Line>,
    stop: &AtomicBool,
    children: &mut [(&'static str, Child)],
) -> anyhow::Result<()> {
    while !stop.load(Ordering::SeqCst) {
        match lines.recv_timeout(Duration::from_millis(200)) {
            Ok(Line::Journal(line)) => {
                if let Some(text) = describe(&line) {
                    println!("{text}");
                }
            }
            Ok(Line::Log(name, line)) => {
                if line.contains("WARN") || line.contains("ERROR") {
                    eprintln!("[{name}] {line}");
                }
            }
            Err(_) => {}
        }
        for (name, child) in children.iter_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("{name} exited unexpectedly ({status})");
            }
        }
    }
    Ok(())
}

/// One readable line for a journal entry, or `None` for traffic not worth showing.
fn describe(line: &str) -> Option<String> {
    let entry: JournalEntry = schema::payload::parse(line.as_bytes()).ok()?;
    let levels: Vec<&str> = entry.topic.split('/').collect();
    let time = entry.ts.get(11..23).unwrap_or(&entry.ts);
    let payload = entry.payload.as_ref()?;
    match levels.as_slice() {
        // The CAN bus's own state is counters: not a reading.
        [_, _, "can", _, "bus", "state"] => None,
        [_, _, kind, _, device, "state"] => {
            let mut values = Vec::new();
            // Device readings have values, CAN messages signals, raw CAN frames data.
            if let Some(data) = payload["data"].as_str() {
                values.push(format!("data={data}"));
            }
            let named = payload["values"].as_object().or_else(|| payload["signals"].as_object());
            for (name, m) in named.into_iter().flatten() {
                let value = match &m["value"] {
                    serde_json::Value::Number(n) if n.is_f64() => {
                        n.as_f64().map_or_else(|| n.to_string(), |f| format!("{f:.2}"))
                    }
                    other => other.to_string(),
                };
                let unit = m["unit"].as_str().map(|u| format!(" {u}")).unwrap_or_default();
                let label = m["label"].as_str().map(|l| format!(" ({l})")).unwrap_or_default();
                values.push(format!("{name}={value}{unit}{label}"));
            }
            Some(format!("{time} {kind} {device:<10} {}", values.join(" ")))
        }
        [_, _, _, _, device, "availability"] => {
            let state = payload["state"].as_str()?;
            let reason = payload["reason"].as_str().map(|r| format!(": {r}")).unwrap_or_default();
            // `!!` marks trouble: a device going offline, not one coming online.
            let mark = if state == "online" { "" } else { "!! " };
            Some(format!("{time} {mark}{device} is {state}{reason}"))
        }
        [_, _, _, _, device, leaf @ ("reply" | "set")] => Some(format!("{time} {device} {leaf} {payload}")),
        [_, _, gateway, "status"] => Some(format!("{time} {gateway} is {}", payload["state"].as_str()?)),
        _ => None,
    }
}

/// Stops the children: SIGTERM (they may already have Ctrl-C from the terminal), then waits.
fn shut_down(children: &mut [(&'static str, Child)]) {
    // Gateways first, so their clean "offline" status reaches the broker.
    for (_, child) in children.iter_mut().rev() {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    eprintln!("xtask: stopped");
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use super::*;

    fn availability(state: &str, reason: Option<&str>) -> String {
        let payload = serde_json::json!({"v": 1, "ts": "2026-01-01T10:00:00.000Z", "state": state, "reason": reason});
        serde_json::json!({
            "ts": "2026-01-01T10:00:01.250Z",
            "topic": "busgate/sim/i2c/i2c1/ambient/availability",
            "qos": 1,
            "retain": true,
            "bytes": 10,
            "payload": payload,
        })
        .to_string()
    }

    /// Regression: a device coming online was marked `!!`, the mark for trouble.
    #[test]
    fn only_a_device_going_offline_is_marked() {
        assert_eq!(describe(&availability("online", None)).unwrap(), "10:00:01.250 ambient is online");
        assert_eq!(
            describe(&availability("offline", Some("no response"))).unwrap(),
            "10:00:01.250 !! ambient is offline: no response"
        );
    }
}
