//! Playing a candump `-L` log onto a mock bus, and recording what a gateway sees as one.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{CanFrame, MockCanNode};

/// How fast a log is played.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// With the gaps between the log's timestamps.
    RealTime,
    /// Gaps divided by the factor: 2.0 plays twice as fast.
    Scaled(f64),
    /// One frame after the other, yielding to the runtime between frames.
    Fast,
}

impl Speed {
    /// `0` means as fast as possible, `1` real time, other values scale.
    pub fn from_factor(factor: f64) -> Speed {
        if factor <= 0.0 {
            Speed::Fast
        } else if factor == 1.0 {
            Speed::RealTime
        } else {
            Speed::Scaled(factor)
        }
    }
}

/// A log that cannot be played.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}:{line}: {message}")]
    Parse { path: String, line: usize, message: String },
}

/// A parsed log: frames with their offsets from the first frame.
#[derive(Debug, Clone)]
pub struct Recording {
    pub frames: Vec<(Duration, CanFrame)>,
    /// The log's time of the first frame; receivers see each frame at its logged time.
    pub start: SystemTime,
}

impl Recording {
    /// Reads a candump `-L` log; error frames in the log are skipped (they are not traffic).
    pub fn load(path: &Path) -> Result<Recording, ReplayError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Read { path: name.clone(), source })?;
        Recording::parse(&text, &name)
    }

    /// Parses log text; `name` is used in errors.
    pub fn parse(text: &str, name: &str) -> Result<Recording, ReplayError> {
        let mut frames = Vec::new();
        let mut first: Option<u64> = None;
        for line in super::log::parse_log(text) {
            let (_, line) = line.map_err(|error| ReplayError::Parse {
                path: name.to_owned(),
                line: error.line,
                message: format!("{:?} is not a candump -L line: {}", error.text, error.reason),
            })?;
            let Some(frame) = line.frame() else { continue };
            let start = *first.get_or_insert(line.timestamp_us);
            frames.push((Duration::from_micros(line.timestamp_us.saturating_sub(start)), *frame));
        }
        let start = UNIX_EPOCH + Duration::from_micros(first.unwrap_or(0));
        Ok(Recording { frames, start })
    }
}

/// Sends the recording's frames from `node` at `speed`, stamped with their logged times; returns
/// how many were sent. A frame the bus refuses (bus-off, down) is skipped and counted as not
/// sent, as a real node would lose it.
pub async fn play(node: &MockCanNode, recording: &Recording, speed: Speed) -> usize {
    let start = tokio::time::Instant::now();
    let mut sent = 0;
    for (offset, frame) in &recording.frames {
        match speed {
            Speed::RealTime => tokio::time::sleep_until(start + *offset).await,
            Speed::Scaled(factor) => tokio::time::sleep_until(start + offset.div_f64(factor)).await,
            Speed::Fast => tokio::task::yield_now().await,
        }
        if node.send_at(frame, recording.start + *offset).is_ok() {
            sent += 1;
        }
    }
    sent
}

/// Writes frames as a candump `-L` log, as `candump -L` would have printed them.
#[derive(Debug)]
pub struct Recorder<W: Write> {
    out: W,
    interface: String,
}

impl<W: Write> Recorder<W> {
    pub fn new(out: W, interface: &str) -> Self {
        Recorder { out, interface: interface.to_owned() }
    }

    pub fn record(&mut self, frame: &CanFrame, at: SystemTime) -> std::io::Result<()> {
        let timestamp_us = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        super::log::write_line(&mut self.out, timestamp_us, &self.interface, frame)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CanEvent, CanPort, MockCanBus};
    use super::*;

    const LOG: &str = "(1700000000.000000) can0 123#0102\n\
                       (1700000000.500000) can0 12345678#\n\
                       (1700000001.000000) can0 20000080#0000000000000000\n\
                       (1700000002.000000) can0 456##1AABB\n";

    #[test]
    fn logs_parse_to_offsets_and_skip_error_frames() {
        let recording = Recording::parse(LOG, "t.log").unwrap();
        let offsets: Vec<u128> = recording.frames.iter().map(|(offset, _)| offset.as_millis()).collect();
        assert_eq!(offsets, [0, 500, 2000]);
        assert!(recording.frames[2].1.is_fd());
        let error = Recording::parse("(1.0) can0 123#0\n", "bad.log").unwrap_err().to_string();
        assert!(error.starts_with("bad.log:1: "), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn real_time_replay_keeps_the_gaps() {
        let bus = MockCanBus::new("can0", true);
        let player = bus.open(&[]).unwrap();
        let mut listener = bus.open(&[]).unwrap();
        let recording = Recording::parse(LOG, "t.log").unwrap();
        let start = tokio::time::Instant::now();
        let playing = tokio::spawn(async move { play(&player, &recording, Speed::Scaled(2.0)).await });
        let mut seen = Vec::new();
        for _ in 0..3 {
            let CanEvent::Frame { frame, .. } = listener.recv().await.unwrap() else { panic!() };
            seen.push((frame.id(), start.elapsed().as_millis()));
        }
        assert_eq!(seen, [(0x123, 0), (0x1234_5678, 250), (0x456, 1000)]);
        assert_eq!(playing.await.unwrap(), 3);
    }

    #[test]
    fn recorded_frames_read_back() {
        let mut out = Vec::new();
        let mut recorder = Recorder::new(&mut out, "can0");
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        recorder.record(&CanFrame::classic(0x123, false, &[0xab]).unwrap(), at).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "(1700000000.123456) can0 123#AB\n");
        assert_eq!(Recording::parse(&text, "r.log").unwrap().frames[0].1.data(), &[0xab]);
    }
}
