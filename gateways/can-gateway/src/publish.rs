//! Publishing received frames: each DBC message and each raw identifier is a [`Slot`] (its
//! topic, publish-policy tracker, sequence number and the newest frame of a deferred
//! publication), and one function takes a frame through the policy for either kind.
//!
//! The receive path allocates nothing per frame: decoding writes into a reused buffer and the
//! payload into a reused scratch buffer; only a publication hands an owned topic and payload to
//! MQTT (a test counts the allocations).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::SystemTime;

use board::can::{Policy, RawFrames};
use buses::can::CanFrame;
use dbc::Decoded;
use tokio::time::Instant;

use crate::decoder::{self, Lookup};
use crate::gateway::Bus;
use crate::policy::{Decision, Tracker};

/// Raw identifiers whose publish state is kept; frames of further identifiers are counted but
/// not published raw, so a bus full of random identifiers cannot grow memory.
pub const MAX_RAW_IDS: usize = 1024;

/// Which slot of a bus: a DBC message by index, or a raw identifier (with bit 31 for extended).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Message(usize),
    Raw(u32),
}

/// A topic frames are published on: one DBC message, or one raw identifier.
#[derive(Debug)]
pub struct Slot {
    pub topic: String,
    tracker: Tracker,
    /// The sequence number of the next publication (DBC messages carry it).
    seq: u64,
    /// The newest frame while a publication is deferred: it is the one that goes out.
    newest: Option<(CanFrame, SystemTime)>,
}

impl Slot {
    pub fn new(topic: String, tracker: Tracker) -> Slot {
        Slot { topic, tracker, seq: 0, newest: None }
    }

    /// The deferred publication due at `due`, with its newest frame, if it is still wanted.
    fn take_due(&mut self, due: Instant) -> Option<(CanFrame, SystemTime)> {
        if !self.tracker.take_deferred(due) {
            return None;
        }
        self.newest.take()
    }
}

/// What publishing keeps between frames: the deferred publications and reused buffers.
#[derive(Debug)]
pub struct Publisher {
    /// Deferred publications by due time, the soonest first: (due, bus index, slot).
    deadlines: BinaryHeap<Reverse<(Instant, usize, Key)>>,
    /// Scratch buffer for payloads.
    out: Vec<u8>,
    /// Scratch buffer for signal values (signal index, value) for the policy.
    values: Vec<(usize, f64)>,
    /// The decode buffer, kept empty between frames so its allocation is reused.
    decoded: Vec<Decoded<'static>>,
}

impl Default for Publisher {
    fn default() -> Self {
        Publisher {
            deadlines: BinaryHeap::new(),
            out: Vec::with_capacity(1024),
            values: Vec::with_capacity(64),
            decoded: Vec::with_capacity(64),
        }
    }
}

impl Publisher {
    /// When the soonest deferred publication is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes a frame received on bus `index` at `at` (wall clock) and `now` (monotonic) through
    /// decoding and the publish policy; `emit` gets each publication's topic and payload.
    pub fn receive(
        &mut self,
        bus: &mut Bus,
        index: usize,
        (frame, at): (&CanFrame, SystemTime),
        now: Instant,
        emit: &mut dyn FnMut(&str, &[u8]),
    ) {
        bus.counters.rx_frames += 1;
        let known = match bus.decoder.lookup(frame) {
            Lookup::Message { index: message, .. } => {
                self.offer(bus, index, Key::Message(message), (frame, at), now, false, emit);
                true
            }
            Lookup::Unknown => {
                bus.counters.unknown_frames += 1;
                false
            }
        };
        let raw = match bus.can.raw {
            RawFrames::All => true,
            RawFrames::Unknown => !known,
            RawFrames::None => false,
        };
        if raw && let Some(key) = raw_slot(bus, frame) {
            self.offer(bus, index, Key::Raw(key), (frame, at), now, false, emit);
        }
    }

    /// Publishes the deferred publications that are due at `now`.
    pub fn on_deadlines(&mut self, buses: &mut [Bus], now: Instant, emit: &mut dyn FnMut(&str, &[u8])) {
        while let Some(Reverse((due, index, key))) = self.deadlines.peek().copied() {
            if due > now {
                break;
            }
            self.deadlines.pop();
            let bus = &mut buses[index];
            let Some(slot) = bus.slot(key) else { continue };
            if let Some((frame, at)) = slot.take_due(due) {
                self.offer(bus, index, key, (&frame, at), now, true, emit);
            }
        }
    }

    /// The policy's arms, once for messages and raw frames; `due` when a deferred publication
    /// has come due and goes out whatever the policy would say now.
    #[allow(clippy::too_many_arguments, reason = "the frame's place, the frame, the time and the sink")]
    fn offer(
        &mut self,
        bus: &mut Bus,
        index: usize,
        key: Key,
        (frame, at): (&CanFrame, SystemTime),
        now: Instant,
        due: bool,
        emit: &mut dyn FnMut(&str, &[u8]),
    ) {
        let mut decoded = recycle(std::mem::take(&mut self.decoded));
        self.values.clear();
        let message = match key {
            Key::Message(message) => {
                let definition = &bus.decoder.messages()[message];
                if let Err(error) = definition.decode(frame.data(), &mut decoded) {
                    bus.counters.decode_errors += 1;
                    tracing::debug!(bus = %bus.name, %error, "frame does not match its DBC message");
                }
                self.values.extend(decoded.iter().map(|d| (d.index, decoder::as_f64(d.physical))));
                Some(definition)
            }
            Key::Raw(_) => {
                self.values.push((0, data_fingerprint(frame)));
                None
            }
        };
        // A frame too short for any of its message's signals is counted, not published.
        if message.is_some() && decoded.is_empty() {
            self.decoded = recycle(decoded);
            return;
        }
        let slot = match key {
            Key::Message(message) => &mut bus.messages[message],
            Key::Raw(raw) => match bus.raw.get_mut(&raw) {
                Some(slot) => slot,
                None => {
                    self.decoded = recycle(decoded);
                    return;
                }
            },
        };
        let decision = if due { Decision::Publish } else { slot.tracker.decide(now, &self.values) };
        // The bus's published and suppressed counters are about DBC messages.
        let counters = &mut bus.counters;
        match decision {
            Decision::Publish => {
                match message {
                    Some(definition) => {
                        let fd = frame.is_fd();
                        decoder::write_message(&mut self.out, &bus.name, definition, &decoded, at, slot.seq, fd);
                        counters.published += 1;
                    }
                    None => decoder::write_frame(&mut self.out, &bus.name, frame, at),
                }
                slot.tracker.published(now, &self.values);
                slot.seq += 1;
                slot.newest = None;
                emit(&slot.topic, &self.out);
            }
            Decision::Defer(due) => {
                counters.suppressed += u64::from(message.is_some());
                if slot.newest.is_none() {
                    self.deadlines.push(Reverse((due, index, key)));
                }
                slot.newest = Some((*frame, at));
            }
            Decision::Suppress => {
                counters.suppressed += u64::from(message.is_some());
                if slot.newest.is_some() {
                    // A deferred publication goes out with the newest frame.
                    slot.newest = Some((*frame, at));
                }
            }
        }
        self.decoded = recycle(decoded);
    }
}

/// The raw slot of a frame's identifier, made on its first frame; `None` beyond
/// [`MAX_RAW_IDS`] identifiers.
fn raw_slot(bus: &mut Bus, frame: &CanFrame) -> Option<u32> {
    let key = frame.id() | (u32::from(frame.is_extended()) << 31);
    if bus.raw.contains_key(&key) {
        return Some(key);
    }
    if bus.raw.len() >= MAX_RAW_IDS {
        if !bus.raw_full_warned {
            tracing::warn!(bus = %bus.name, "more than {MAX_RAW_IDS} raw identifiers; frames of new ones are not published raw");
            bus.raw_full_warned = true;
        }
        return None;
    }
    let policy: Policy = bus.can.publish;
    let topic = bus.topics.frame(frame.id(), frame.is_extended());
    bus.raw.insert(key, Slot::new(topic, Tracker::new(vec![policy])));
    Some(key)
}

/// An empty decode buffer of another lifetime, keeping its allocation: collecting an empty
/// vector into one of a type of the same layout reuses its buffer (the allocation test checks).
fn recycle<'b>(mut buffer: Vec<Decoded<'_>>) -> Vec<Decoded<'b>> {
    buffer.clear();
    buffer.into_iter().map(|_| unreachable!("the buffer is empty")).collect()
}

/// A fingerprint of a frame's data for change detection of raw frames (FNV-1a, folded into the
/// 53 bits an f64 holds exactly).
fn data_fingerprint(frame: &CanFrame) -> f64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in frame.data() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= u64::from(frame.dlc()) << 56;
    (hash >> 11) as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests fail loudly")]
mod tests {
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// The test bus (`tests/fixtures/test.dbc`, every frame also raw) with this publish policy.
    fn bus(policy: &str) -> Bus {
        let text = format!(
            "[board]\nname = \"test\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\n[[bus]]\nname = \"can0\"\n\
             kind = \"can\"\nmock = true\nfd = true\ndbc = [\"test.dbc\"]\nraw = \"all\"\n[bus.publish]\n{policy}\n"
        );
        let board = board::Board::parse(&text, Path::new("tests/fixtures/board.toml")).unwrap();
        let mut plan = crate::plan(&board).unwrap();
        let (jobs, _) = tokio::sync::mpsc::channel(1);
        Bus::new("test", plan.buses.remove(0), jobs, None)
    }

    fn engine(speed: u8) -> CanFrame {
        CanFrame::classic(0x123, false, &[speed, 0x0f, 0x14, 0x01, 0, 0, 0, 0]).unwrap()
    }

    /// What the publisher emitted: (topic, payload).
    #[derive(Default)]
    struct Sink(Vec<(String, String)>);

    impl Sink {
        fn on(&self, leaf: &str) -> Vec<&str> {
            self.0.iter().filter(|(topic, _)| topic.contains(leaf)).map(|(_, payload)| payload.as_str()).collect()
        }
    }

    #[test]
    fn a_minimum_interval_defers_to_the_newest_frame_for_messages_and_raw_frames() {
        let mut bus = bus("mode = \"every\"\nmin_interval_ms = 100\nheartbeat_ms = 0");
        let mut publisher = Publisher::default();
        let mut sink = Sink::default();
        let mut emit = |topic: &str, payload: &[u8]| {
            sink.0.push((topic.to_owned(), String::from_utf8_lossy(payload).into_owned()));
        };
        let start = Instant::now();
        let at = |ms: u64| (start + Duration::from_millis(ms), UNIX_EPOCH + Duration::from_millis(ms));
        for (ms, speed) in [(0, 1), (10, 2), (50, 3)] {
            let (now, wall) = at(ms);
            publisher.receive(&mut bus, 0, (&engine(speed), wall), now, &mut emit);
        }
        assert_eq!(publisher.next_deadline(), Some(at(100).0));
        publisher.on_deadlines(std::slice::from_mut(&mut bus), at(99).0, &mut emit);
        publisher.on_deadlines(std::slice::from_mut(&mut bus), at(100).0, &mut emit);
        assert_eq!(publisher.next_deadline(), None);
        let messages = sink.on("/Engine/state");
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(messages[1].contains("\"seq\":1") && messages[1].contains("00:00:00.050Z"), "{}", messages[1]);
        let raw = sink.on("/id-123/state");
        assert_eq!(raw.len(), 2, "{raw:?}");
        assert!(raw[1].contains("\"data\":\"030f140100000000\""), "the newest frame: {}", raw[1]);
        assert_eq!((bus.counters.rx_frames, bus.counters.published, bus.counters.suppressed), (3, 2, 2));
    }

    /// No per-frame allocation on the receive path: decoding, the policy and writing the
    /// payload reuse their buffers; only handing a publication to MQTT (here: counting it)
    /// would allocate.
    #[test]
    fn the_receive_path_does_not_allocate_per_frame() {
        let mut bus = bus("mode = \"on_change\"\nmin_interval_ms = 20\nheartbeat_ms = 0");
        let mut publisher = Publisher::default();
        let mut published = 0;
        let mut emit = |_: &str, payload: &[u8]| published += usize::from(!payload.is_empty());
        let start = Instant::now();
        let unknown = CanFrame::classic(0x7ff, false, &[1, 2]).unwrap();
        let too_short = CanFrame::classic(0x123, false, &[0xa0]).unwrap();
        let mut run = |publisher: &mut Publisher, bus: &mut Bus, from: u64, frames: u64| {
            for step in from..from + frames {
                let now = start + Duration::from_millis(step);
                let wall = UNIX_EPOCH + Duration::from_millis(step);
                // A value that changes every 5 ms: published, deferred and suppressed in turn.
                publisher.receive(bus, 0, (&engine((step / 5) as u8), wall), now, &mut emit);
                publisher.receive(bus, 0, (&unknown, wall), now, &mut emit);
                publisher.receive(bus, 0, (&too_short, wall), now, &mut emit);
                publisher.on_deadlines(std::slice::from_mut(bus), now, &mut emit);
            }
        };
        // Warm-up: the raw slots are made on their identifiers' first frames.
        run(&mut publisher, &mut bus, 0, 100);
        let counters = bus.counters.clone();
        let info = allocation_counter::measure(|| run(&mut publisher, &mut bus, 100, 1000));
        assert_eq!(info.count_total, 0, "{info:?}");
        let published = bus.counters.published - counters.published;
        let suppressed = bus.counters.suppressed - counters.suppressed;
        assert!(published >= 40 && suppressed >= 900, "every kind of frame was measured: {:?}", bus.counters);
        assert_eq!(bus.counters.decode_errors - counters.decode_errors, 1000);
    }
}
