//! Mosquitto's raw-packet protocol cases against the broker, where the shared test data is
//! present (`shared/fixtures/mqtt-conformance` beside the checkout, or the directory in
//! `BUSGATE_CONFORMANCE_DIR`). Only MQTT 3.1.1 cases run: the broker serves no MQTT 5.
//!
//! A case sends bytes, expects bytes back, and ends with the broker having closed the connection
//! (a protocol violation) or still answering a PINGREQ. The test prints the pass and fail counts
//! with every failure, and fails unless every case passes or is listed in [`KNOWN`] with why.

use std::path::PathBuf;
use std::time::Duration;

use rumqttc::QoS;
use test_support::Client;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::Broker;

/// How long one step may take: a reply to arrive, or the broker to close the connection.
const STEP: Duration = Duration::from_secs(3);

/// Cases whose expectation is Mosquitto's own choice, where busgate legitimately differs.
const KNOWN: &[(&str, &str)] = &[];

/// The cases: `BUSGATE_CONFORMANCE_DIR`, or the shared fixtures beside the checkout (required
/// where `BUSGATE_REQUIRE_FIXTURES` is set, as in CI).
fn cases_dir() -> Option<PathBuf> {
    match std::env::var_os("BUSGATE_CONFORMANCE_DIR") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => test_support::fixtures::shared("mqtt-conformance"),
    }
}

fn hex(text: &str) -> Vec<u8> {
    let digits: String = text.split_whitespace().collect();
    (0..digits.len() / 2).map(|i| u8::from_str_radix(&digits[2 * i..2 * i + 2], 16).unwrap()).collect()
}

fn connect_packet(client_id: &str) -> Vec<u8> {
    let mut body = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 60];
    body.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    body.extend_from_slice(client_id.as_bytes());
    crate::engine::with_length(0x10, &body)
}

async fn read_exact(stream: &mut TcpStream, count: usize) -> Result<Vec<u8>, String> {
    let mut buffer = vec![0; count];
    match timeout(STEP, stream.read_exact(&mut buffer)).await {
        Ok(Ok(_)) => Ok(buffer),
        Ok(Err(error)) => Err(format!("connection ended while expecting {count} bytes: {error}")),
        Err(_) => Err(format!("no {count} bytes within {STEP:?}")),
    }
}

/// Runs one case; `Err` says how it failed.
async fn run_case(broker: &Broker, case: &serde_json::Value, client_id: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect(broker.address()).await.map_err(|e| e.to_string())?;
    if case["connect"].as_bool().unwrap_or(true) {
        stream.write_all(&connect_packet(client_id)).await.map_err(|e| e.to_string())?;
        let connack = read_exact(&mut stream, 4).await?;
        if connack != [0x20, 0x02, 0x00, 0x00] {
            return Err(format!("CONNACK {connack:02x?}"));
        }
    }
    let mut helper: Option<Client> = None;
    for message in case["msgs"].as_array().into_iter().flatten() {
        match message["type"].as_str() {
            Some("send") => {
                // The broker may already have closed; that shows at the end.
                let _ = stream.write_all(&hex(message["payload"].as_str().unwrap_or(""))).await;
            }
            Some("recv") => {
                let expected = hex(message["payload"].as_str().unwrap_or(""));
                let got = read_exact(&mut stream, expected.len()).await?;
                if got != expected {
                    return Err(format!("expected {expected:02x?}, got {got:02x?}"));
                }
            }
            Some("publish") => {
                if helper.is_none() {
                    helper = Some(Client::connect(broker.address(), &format!("{client_id}-helper")).await);
                }
                let qos = match message["qos"].as_u64() {
                    Some(1) => QoS::AtLeastOnce,
                    Some(2) => QoS::ExactlyOnce,
                    _ => QoS::AtMostOnce,
                };
                let topic = message["topic"].as_str().unwrap_or("");
                let payload = message["payload"].as_str().unwrap_or("").as_bytes().to_vec();
                if let Some(helper) = &helper {
                    helper.client.publish(topic, qos, false, payload).await.map_err(|e| e.to_string())?;
                }
            }
            other => return Err(format!("unknown message type {other:?}")),
        }
    }
    if case["expect_disconnect"].as_bool().unwrap_or(true) {
        let mut rest = Vec::new();
        match timeout(STEP, stream.read_to_end(&mut rest)).await {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("still connected after {STEP:?} (received {rest:02x?})")),
        }
    } else {
        stream.write_all(&[0xc0, 0x00]).await.map_err(|e| format!("PINGREQ: {e}"))?;
        let pingresp = read_exact(&mut stream, 2).await?;
        if pingresp != [0xd0, 0x00] {
            return Err(format!("expected PINGRESP, got {pingresp:02x?}"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn mosquitto_protocol_cases() {
    let Some(dir) = cases_dir() else {
        eprintln!("skipped: no conformance cases (set BUSGATE_CONFORMANCE_DIR or put shared/ beside the workspace)");
        return;
    };
    let broker = Broker::start("");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|path| path.extension().is_some_and(|e| e == "json"));
    files.sort();
    let (mut passed, mut known, mut skipped) = (0, 0, 0);
    let mut failures = Vec::new();
    let mut index = 0;
    for file in files {
        let groups: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let file_name = file.file_stem().unwrap().to_string_lossy().into_owned();
        for group in groups.as_array().into_iter().flatten() {
            for case in group["tests"].as_array().into_iter().flatten() {
                if case["ver"].as_u64() != Some(4) {
                    skipped += 1;
                    continue;
                }
                index += 1;
                let name = format!("{file_name}: {}: {}", group["group"].as_str().unwrap_or(""), case["name"]);
                match run_case(&broker, case, &format!("conformance-{index}")).await {
                    Ok(()) => passed += 1,
                    Err(_) if KNOWN.iter().any(|(known, _)| name.ends_with(known)) => known += 1,
                    Err(why) => failures.push(format!("{name}: {why}")),
                }
            }
        }
    }
    for failure in &failures {
        eprintln!("FAIL {failure}");
    }
    eprintln!(
        "conformance: {passed} passed, {} failed, {known} known differences, {skipped} MQTT 5 cases not run",
        failures.len()
    );
    assert!(failures.is_empty(), "{} conformance cases failed (listed above)", failures.len());
    assert!(broker.process.terminate().success());
}
