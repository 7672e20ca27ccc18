//! The simulation on a mock CAN bus: a simulated ECU, a candump log replayed onto the bus, and
//! the fault controls reached on the bus's `sim` topic.
//!
//! The ECU plays one node of the bus's DBC files: it sends every message that node transmits,
//! at the message's cycle time (`GenMsgCycleTime`, else once a second), with values that move
//! plausibly within the signals' ranges (slow waves, value-table labels in turn, counters that
//! count). It answers commands the way a real ECU echoes its inputs: a signal received in any
//! frame from another node is copied into the ECU's messages that have a signal of that name.

use std::collections::HashMap;
use std::f64::consts::TAU;

use board::can::CanBus;
use buses::can::replay::{self, Recording, Speed};
use buses::can::{BusState, CanEvent, CanFrame, CanPort, MockCanBus, MockCanNode};
use dbc::{Message, Signal, Value as DbcValue};
use device::{Args, CommandSpec, Param, ParamKind, Value};
use tokio::task::JoinHandle;
use tokio::time::{Duration, Instant};

use crate::decoder::{self, Decoder, Lookup};

/// Starts the bus's replay and simulated ECU, as the board asks.
pub fn start(bus: &MockCanBus, can: &CanBus, decoder: &Decoder, still: bool) -> anyhow::Result<Vec<JoinHandle<()>>> {
    use anyhow::Context;
    let mut tasks = Vec::new();
    if let Some(path) = &can.replay {
        let recording = Recording::load(path)?;
        let node = bus.open(&[]).context("opening a replay node on the mock bus")?;
        let speed = Speed::from_factor(can.replay_speed);
        let frames = recording.frames.len();
        tracing::info!(path = %path.display(), frames, ?speed, "replaying a candump log");
        tasks.push(tokio::spawn(async move {
            let sent = replay::play(&node, &recording, speed).await;
            tracing::info!(sent, frames, "replay finished");
        }));
    }
    if let Some(node_name) = &can.simulate {
        let mut ecu = Ecu::new(node_name, decoder, bus.open(&[]).context("opening the ECU's node on the mock bus")?);
        ecu.still = still;
        if ecu.messages.is_empty() {
            anyhow::bail!(
                "simulate = {node_name:?}: no message of the bus's DBC files is sent by node {node_name:?}; nodes: {}",
                nodes(decoder).join(", ")
            );
        }
        tracing::info!(node = %node_name, messages = ecu.messages.len(), "simulated ECU");
        tasks.push(tokio::spawn(ecu.run()));
    }
    Ok(tasks)
}

fn nodes(decoder: &Decoder) -> Vec<String> {
    let mut nodes: Vec<String> = decoder.messages().iter().flat_map(|m| m.senders.iter().cloned()).collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// The simulation controls of a mock CAN bus.
pub fn commands() -> Vec<CommandSpec> {
    let action = |action, description| CommandSpec { action, params: Vec::new(), description };
    vec![
        action("bus_off", "the controller goes bus-off: sends fail, nothing is received"),
        action("error_passive", "the controller becomes error-passive (still working)"),
        action("recover", "the controller restarts: error-active again"),
        action("interface_down", "the interface goes down: the gateway reopens it with backoff"),
        action("interface_up", "the interface comes back"),
        CommandSpec {
            action: "transmit_full",
            params: vec![Param {
                name: "full",
                kind: ParamKind::Bool,
                required: true,
                description: "whether the transmit queue is full",
            }],
            description: "makes sends fail with 'no buffer space' while set",
        },
    ]
}

/// Runs a simulation control (already checked against [`commands`]); returns the reply note.
pub fn control(bus: &MockCanBus, action: &str, args: &Args) -> String {
    match action {
        "bus_off" => bus.set_state(BusState::BusOff),
        "error_passive" => bus.set_state(BusState::ErrorPassive),
        "recover" | "interface_up" => bus.set_state(BusState::ErrorActive),
        "interface_down" => bus.set_state(BusState::Down),
        "transmit_full" => bus.set_transmit_full(matches!(args.get("full"), Some(Value::Bool(true)))),
        _ => {}
    }
    format!("mock bus {}: {action}", bus.name())
}

struct Periodic {
    message: Message,
    period: Duration,
    next: Instant,
    sent: u64,
}

/// A simulated ECU on the mock bus.
struct Ecu {
    node: MockCanNode,
    decoder: Decoder,
    messages: Vec<Periodic>,
    /// Values received from other nodes, by signal name.
    inputs: HashMap<String, f64>,
    start: Instant,
    /// Values hold still at their starting point (counters still count).
    still: bool,
}

impl Ecu {
    fn new(name: &str, decoder: &Decoder, node: MockCanNode) -> Ecu {
        let start = Instant::now();
        let messages = decoder
            .messages()
            .iter()
            .filter(|m| m.senders.iter().any(|s| s == name))
            .enumerate()
            .map(|(i, m)| {
                let period = Duration::from_millis(u64::from(m.cycle_time_ms.unwrap_or(1000).max(1)));
                // Spread the first sends so the messages do not all go at once.
                let next = start + Duration::from_millis(7 * i as u64);
                Periodic { message: m.clone(), period, next, sent: 0 }
            })
            .collect();
        Ecu { node, decoder: decoder.clone(), messages, inputs: HashMap::new(), start, still: false }
    }

    async fn run(mut self) {
        loop {
            let Some(next) = self.messages.iter().map(|p| p.next).min() else { return };
            tokio::select! {
                () = tokio::time::sleep_until(next) => self.send_due(Instant::now()),
                event = self.node.recv() => match event {
                    Ok(CanEvent::Frame { frame, .. }) => self.on_frame(&frame),
                    Ok(_) => {}
                    // The interface went down: wait for it like a real node would.
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                },
            }
        }
    }

    fn on_frame(&mut self, frame: &CanFrame) {
        let Lookup::Message { message, .. } = self.decoder.lookup(frame) else { return };
        let mut decoded = Vec::new();
        if message.decode(frame.data(), &mut decoded).is_err() && decoded.is_empty() {
            return;
        }
        for d in &decoded {
            self.inputs.insert(d.signal.name.clone(), decoder::as_f64(d.physical));
        }
    }

    fn send_due(&mut self, now: Instant) {
        let t = if self.still { 0.0 } else { now.saturating_duration_since(self.start).as_secs_f64() };
        for periodic in &mut self.messages {
            if periodic.next > now {
                continue;
            }
            periodic.next += periodic.period;
            if periodic.next < now {
                periodic.next = now + periodic.period;
            }
            let data = match values(&periodic.message, t, periodic.sent, &self.inputs) {
                Some(data) => data,
                None => continue,
            };
            periodic.sent += 1;
            let m = &periodic.message;
            let frame = if m.fd || data.len() > 8 {
                CanFrame::fd(m.id, m.extended, false, &data)
            } else {
                CanFrame::classic(m.id, m.extended, &data)
            };
            match frame {
                Ok(frame) => {
                    // Bus-off or down: the frame is lost, as on a real bus.
                    let _ = self.node.send_now(&frame);
                }
                Err(error) => tracing::debug!(message = %m.name, %error, "simulated ECU cannot build its frame"),
            }
        }
    }
}

/// The message's data at time `t` (seconds) for its `count`th send.
fn values(message: &Message, t: f64, count: u64, inputs: &HashMap<String, f64>) -> Option<Vec<u8>> {
    // Multiplexed messages cycle through their multiplexer values.
    let mut mux_values: Vec<u64> = message
        .signals
        .iter()
        .filter_map(|s| s.multiplexed_by.as_ref())
        .flat_map(|c| c.ranges.iter().map(|&(low, _)| low))
        .collect();
    mux_values.sort_unstable();
    mux_values.dedup();
    let mux = (!mux_values.is_empty()).then(|| mux_values[(count as usize) % mux_values.len()]);
    let mut given: Vec<(&str, DbcValue<'_>)> = Vec::new();
    for (index, signal) in message.signals.iter().enumerate() {
        if let Some(condition) = &signal.multiplexed_by {
            // Only the first multiplexing level is simulated; deeper signals take initial values.
            let top = message.signals.get(condition_index(message, &condition.multiplexer)?)?;
            if top.multiplexed_by.is_some() || !mux.is_some_and(|m| condition.contains(i128::from(m))) {
                continue;
            }
        }
        let value = if signal.is_multiplexer && signal.multiplexed_by.is_none() {
            DbcValue::Integer(i128::from(mux.unwrap_or(0)))
        } else if let Some(&input) = inputs.get(&signal.name) {
            DbcValue::Number(input)
        } else {
            wave(signal, index, t, count)
        };
        given.push((&signal.name, value));
    }
    match message.encode(&given) {
        Ok(encoded) => Some(encoded.data),
        Err(error) => {
            tracing::debug!(message = %message.name, %error, "simulated ECU skipped a send");
            None
        }
    }
}

fn condition_index(message: &Message, name: &str) -> Option<usize> {
    message.signals.iter().position(|s| s.name == name)
}

/// A plausible value of a signal: labels in turn, counters counting, else a slow wave.
fn wave(signal: &Signal, index: usize, t: f64, count: u64) -> DbcValue<'_> {
    if !signal.labels.is_empty() {
        let step = (t / 5.0) as usize + index;
        return DbcValue::Label(&signal.labels[step % signal.labels.len()].1);
    }
    let (low, high) = if signal.has_range() {
        (signal.minimum, signal.maximum)
    } else {
        let (a, b) = signal.raw_range();
        let (a, b) = (a * signal.factor + signal.offset, b * signal.factor + signal.offset);
        (a.min(b).max(-1e6), a.max(b).min(1e6))
    };
    let lower = signal.name.to_ascii_lowercase();
    if lower.contains("counter") || lower.contains("alive") {
        let span = (high - low).max(0.0) as u64 + 1;
        return DbcValue::Number(low + (count % span) as f64);
    }
    let period = 20.0 + 7.0 * index as f64;
    let phase = index as f64 * 1.3;
    let level = 0.5 + 0.4 * (TAU * t / period + phase).sin();
    let value = low + (high - low) * level;
    // Stay inside the range after rounding to the raw step.
    let step = signal.factor.abs().max(f64::MIN_POSITIVE);
    let snapped = (((value - signal.offset) / step).round() * step + signal.offset).clamp(low, high);
    DbcValue::Number(snapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DBC: &str = r#"
BU_: ECU GW
BO_ 256 Engine: 8 ECU
 SG_ Speed : 0|16@1+ (0.25,0) [0|8000] "rpm" GW
 SG_ Gear : 16|3@1+ (1,0) [0|3] "" GW
 SG_ AliveCounter : 60|4@1+ (1,0) [0|15] "" GW
BO_ 512 LightsCommand: 1 GW
 SG_ HeadLights : 0|2@1+ (1,0) [0|2] "" ECU
BO_ 513 LightsStatus: 1 ECU
 SG_ HeadLights : 0|2@1+ (1,0) [0|2] "" GW
BA_DEF_ BO_ "GenMsgCycleTime" INT 0 10000;
BA_ "GenMsgCycleTime" BO_ 256 100;
VAL_ 256 Gear 0 "P" 1 "R" 2 "N" 3 "D";
"#;

    fn decoder() -> Decoder {
        Decoder::new("can0", dbc::Database::parse(DBC).0)
    }

    #[tokio::test(start_paused = true)]
    async fn the_ecu_sends_its_messages_and_echoes_commands() {
        let bus = MockCanBus::new("can0", false);
        let decoder = decoder();
        let mut gateway = bus.open(&[]).unwrap();
        let ecu = Ecu::new("ECU", &decoder, bus.open(&[]).unwrap());
        assert_eq!(ecu.messages.len(), 2, "Engine and LightsStatus");
        let task = tokio::spawn(ecu.run());
        let mut engines = Vec::new();
        while engines.len() < 3 {
            let CanEvent::Frame { frame, .. } = gateway.recv().await.unwrap() else { continue };
            if frame.id() == 256 {
                engines.push(frame);
            }
        }
        let counters: Vec<u8> = engines.iter().map(|f| f.data()[7] >> 4).collect();
        assert_eq!(counters, [0, 1, 2], "the alive counter counts");
        // A command: lights on high.
        let command =
            decoder.message_by_name("LightsCommand").unwrap().1.encode(&[("HeadLights", DbcValue::Number(2.0))]);
        gateway.send(&CanFrame::classic(512, false, &command.unwrap().data).unwrap()).await.unwrap();
        loop {
            let CanEvent::Frame { frame, .. } = gateway.recv().await.unwrap() else { continue };
            if frame.id() == 513 && frame.data()[0] & 3 == 2 {
                break;
            }
        }
        task.abort();
    }

    #[test]
    fn waves_stay_inside_the_range() {
        let decoder = decoder();
        let engine = &decoder.messages()[decoder.message_by_name("Engine").unwrap().0];
        for step in 0..200 {
            let data = values(engine, step as f64 * 0.37, step, &HashMap::new()).expect("encodable");
            let mut out = Vec::new();
            engine.decode(&data, &mut out).unwrap();
            let speed = decoder::as_f64(out[0].physical);
            assert!((0.0..=8000.0).contains(&speed), "{speed}");
        }
    }
}
