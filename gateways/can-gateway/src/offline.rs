//! `can-gateway decode`: runs a candump log through the gateway's decoder and prints what the
//! gateway would publish for each frame, one JSON line per frame. Users check their DBC files
//! with it; tests compare it with cantools' decodes.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;

use crate::decoder::{self, Decoder, Lookup};

/// What a decode run saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub frames: u64,
    pub decoded: u64,
    pub unknown: u64,
    /// Frames of a known message that did not decode completely (e.g. too short).
    pub errors: u64,
    pub warnings: Vec<String>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        write!(
            f,
            "{} frames: {} decoded, {} not in the DBC, {} incomplete",
            self.frames, self.decoded, self.unknown, self.errors
        )
    }
}

/// Decodes `log` with `dbc` files, writing one JSON line per frame to `out`.
pub fn decode(dbc: &[PathBuf], log: &Path, bus: &str, mut out: impl Write) -> anyhow::Result<Summary> {
    let (decoder, warnings) = Decoder::load(bus, dbc)?;
    let text = std::fs::read_to_string(log).with_context(|| format!("reading {}", log.display()))?;
    let mut summary = Summary { warnings, ..Summary::default() };
    let mut payload = Vec::with_capacity(512);
    let mut decoded = Vec::new();
    let mut seq = vec![0u64; decoder.messages().len()];
    for line in buses::can::log::parse_log(&text) {
        let (_, line) = line.map_err(|error| {
            anyhow::anyhow!(
                "{}:{}: {:?} is not a candump -L line: {}",
                log.display(),
                error.line,
                error.text,
                error.reason
            )
        })?;
        let Some(&frame) = line.frame() else { continue };
        let at = UNIX_EPOCH + Duration::from_micros(line.timestamp_us);
        summary.frames += 1;
        match decoder.lookup(&frame) {
            Lookup::Message { index, message } => {
                if message.decode(frame.data(), &mut decoded).is_err() {
                    summary.errors += 1;
                }
                summary.decoded += 1;
                decoder::write_message(&mut payload, bus, message, &decoded, at, seq[index], frame.is_fd());
                seq[index] += 1;
            }
            Lookup::Unknown => {
                summary.unknown += 1;
                decoder::write_frame(&mut payload, bus, &frame, at);
            }
        }
        payload.push(b'\n');
        out.write_all(&payload).context("writing the decodes")?;
    }
    out.flush().context("writing the decodes")?;
    Ok(summary)
}
