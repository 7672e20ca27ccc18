//! The candump `-L` log format of SocketCAN's can-utils, read and written by the socketcan
//! crate's `dump` module; this adapter turns its records into [`CanFrame`]s, numbers lines for
//! errors, and adds the one check socketcan lacks.
//!
//! ```text
//! (1700000000.000898) can0 123#DEADBEEF          classic frame, 11-bit identifier (3 hex digits)
//! (1700000000.000898) can0 00123456#11           29-bit identifier (8 hex digits)
//! (1700000000.000898) can0 123#R                 remote frame; `123#R4` requests 4 bytes
//! (1700000000.000898) can0 123##5DEADBEEF        CAN FD frame: one flags digit (1 BRS, 2 ESI, 4 FDF), then the data
//! (1700000000.000898) can0 20000080#0000000000000000   error frame (CAN_ERR_FLAG 0x20000000 in the identifier)
//! ```
//!
//! FD frames are written with FDF (4) in the flags digit, as candump prints them on current
//! kernels; a flags digit without it reads the same. socketcan also accepts candump `-x`'s
//! direction after the frame.

use std::io;

use socketcan::dump::Reader;
use socketcan::id::FdFlags;
use socketcan::{CanAnyFrame, CanDataFrame, CanFdFrame, CanRemoteFrame, EmbeddedFrame, Frame as _};

use super::{CanFrame, FD_LENGTHS};

/// One line of a candump `-L` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Reception time in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// The interface name, such as `can0`.
    pub interface: String,
    pub entry: Logged,
}

/// What a line holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logged {
    Frame(CanFrame),
    /// An error frame: its error class bits (the identifier without `CAN_ERR_FLAG`). Not
    /// traffic: replay and the offline decoder skip it.
    Error {
        class: u32,
    },
}

impl LogLine {
    /// The frame, unless the line is an error frame.
    pub fn frame(&self) -> Option<&CanFrame> {
        match &self.entry {
            Logged::Frame(frame) => Some(frame),
            Logged::Error { .. } => None,
        }
    }
}

/// A line that is not a candump `-L` line: its number (from 1), its text and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {text:?} is not a candump -L line: {reason}")]
pub struct LineError {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

/// Parses one line (without its line break; surrounding white space is ignored); `line` is its
/// number, for the error.
pub fn parse_line(text: &str, line: usize) -> Result<LogLine, LineError> {
    let error = |reason: String| LineError { line, text: text.trim().to_owned(), reason };
    let record = Reader::from_reader(text.trim().as_bytes())
        .next_record()
        .map_err(|e| error(e.to_string().to_lowercase()))?
        .ok_or_else(|| error("empty".to_owned()))?;
    let entry = match &record.frame {
        CanAnyFrame::Error(frame) => Logged::Error { class: frame.error_bits() },
        CanAnyFrame::Fd(_) if !fd_length_is_valid(text) => {
            return Err(error(format!("the data is not a CAN FD length ({FD_LENGTHS:?} bytes)")));
        }
        frame => Logged::Frame(from_socketcan(frame).map_err(|e| error(e.to_string()))?),
    };
    Ok(LogLine { timestamp_us: record.t_us, interface: record.device, entry })
}

/// Parses a whole log, giving each line with its number (from 1); blank lines are skipped.
pub fn parse_log(text: &str) -> impl Iterator<Item = Result<(usize, LogLine), LineError>> + '_ {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| parse_line(line, index + 1).map(|parsed| (index + 1, parsed)))
}

/// Writes a frame as a line of `candump -L` (uppercase hex, six fraction digits); allocates
/// nothing.
pub fn write_line(out: &mut impl io::Write, timestamp_us: u64, interface: &str, frame: &CanFrame) -> io::Result<()> {
    let Some(frame) = to_socketcan(frame) else {
        return Err(io::Error::other(format!("socketcan refuses the frame {frame:?}")));
    };
    let (seconds, micros) = (timestamp_us / 1_000_000, timestamp_us % 1_000_000);
    writeln!(out, "({seconds}.{micros:06}) {interface} {frame:X}")
}

/// The frame as socketcan's; `None` for an identifier out of range (which [`CanFrame`]'s
/// constructors already refuse).
pub(crate) fn to_socketcan(frame: &CanFrame) -> Option<CanAnyFrame> {
    let id: embedded_can::Id = if frame.is_extended() {
        embedded_can::ExtendedId::new(frame.id())?.into()
    } else {
        embedded_can::StandardId::new(u16::try_from(frame.id()).ok()?)?.into()
    };
    if frame.is_fd() {
        let mut flags = FdFlags::empty();
        flags.set(FdFlags::BRS, frame.brs());
        flags.set(FdFlags::ESI, frame.esi());
        CanFdFrame::with_flags(id, frame.data(), flags).map(Into::into)
    } else if frame.is_remote() {
        CanRemoteFrame::new_remote(id, usize::from(frame.dlc())).map(Into::into)
    } else {
        CanDataFrame::new(id, frame.data()).map(Into::into)
    }
}

fn from_socketcan(frame: &CanAnyFrame) -> Result<CanFrame, super::FrameError> {
    let (id, extended) = (frame.raw_id(), frame.is_extended());
    match frame {
        CanAnyFrame::Fd(fd) => {
            let mut built = CanFrame::fd(id, extended, fd.is_brs(), fd.data())?;
            built.set_esi(fd.is_esi());
            Ok(built)
        }
        CanAnyFrame::Remote(remote) => CanFrame::remote(id, extended, remote.dlc() as u8),
        _ => CanFrame::classic(id, extended, frame.data()),
    }
}

/// Whether an FD line's data has a CAN FD length. socketcan pads a payload to the next valid
/// length instead (`123##0112233445566778899`, 9 bytes, reads as 12), and candump never writes
/// such a line, so the adapter refuses it.
fn fd_length_is_valid(text: &str) -> bool {
    let Some((_, after)) = text.split_once("##") else { return true };
    let data = after.get(1..).unwrap_or("").split_whitespace().next().unwrap_or("");
    FD_LENGTHS.contains(&(data.len() / 2))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

    use super::*;

    /// Reads `text`, expects `frame`, and writes the same line back.
    #[track_caller]
    fn round_trip(text: &str, entry: Logged) {
        let line = parse_line(text, 1).unwrap();
        assert_eq!(line.entry, entry);
        if let Logged::Frame(frame) = entry {
            let mut written = Vec::new();
            write_line(&mut written, line.timestamp_us, &line.interface, &frame).unwrap();
            assert_eq!(String::from_utf8(written).unwrap(), format!("{text}\n"));
        }
    }

    #[track_caller]
    fn check_error(text: &str, reason: &str) {
        let error = parse_line(text, 7).unwrap_err();
        assert_eq!((error.line, error.reason.as_str()), (7, reason), "{error}");
    }

    fn frame(frame: Result<CanFrame, super::super::FrameError>) -> Logged {
        Logged::Frame(frame.unwrap())
    }

    #[test]
    fn classic_frames() {
        round_trip(
            "(1700000000.000898) can0 123#DEADBEEF",
            frame(CanFrame::classic(0x123, false, &[0xDE, 0xAD, 0xBE, 0xEF])),
        );
        round_trip("(0.000000) vcan0 7FF#", frame(CanFrame::classic(0x7FF, false, &[])));
        round_trip("(1700000000.000898) can0 00123456#11", frame(CanFrame::classic(0x123456, true, &[0x11])));
        round_trip(
            "(1.000001) can1 1FFFFFFF#0102030405060708",
            frame(CanFrame::classic(0x1FFF_FFFF, true, &[1, 2, 3, 4, 5, 6, 7, 8])),
        );
        // Lowercase reads, uppercase is written.
        assert_eq!(
            parse_line("(1.000000) can0 1ab#dead", 1).unwrap().entry,
            frame(CanFrame::classic(0x1AB, false, &[0xDE, 0xAD]))
        );
    }

    #[test]
    fn remote_frames() {
        round_trip("(1.000000) can0 123#R", frame(CanFrame::remote(0x123, false, 0)));
        round_trip("(1.000000) can0 00000123#R4", frame(CanFrame::remote(0x123, true, 4)));
    }

    #[test]
    fn fd_frames_keep_their_flags() {
        let brs = CanFrame::fd(0x123, false, true, &[0xDE, 0xAD, 0xBE, 0xEF]).unwrap();
        round_trip("(1.000000) can0 123##5DEADBEEF", Logged::Frame(brs));
        // A flags digit without FDF, as older kernels log it, reads the same frame.
        assert_eq!(parse_line("(1.000000) can0 123##1DEADBEEF", 1).unwrap().entry, Logged::Frame(brs));
        let mut esi = CanFrame::fd(0x123, true, false, &[]).unwrap();
        esi.set_esi(true);
        round_trip("(1.000000) can0 00000123##6", Logged::Frame(esi));
        let mut both = CanFrame::fd(0x123, false, true, &[]).unwrap();
        both.set_esi(true);
        round_trip("(1.000000) can0 123##7", Logged::Frame(both));
        let data: Vec<u8> = (0..64).collect();
        let text = format!("(1.000000) can0 123##4{}", data.iter().map(|b| format!("{b:02X}")).collect::<String>());
        round_trip(&text, frame(CanFrame::fd(0x123, false, false, &data)));
    }

    #[test]
    fn error_frames() {
        round_trip("(1.000000) can0 20000080#0000000000000000", Logged::Error { class: 0x80 });
    }

    /// socketcan pads an FD payload of an invalid length; the adapter refuses the line.
    #[test]
    fn an_fd_payload_of_no_fd_length_is_refused() {
        let text = "(1.000000) can0 123##0112233445566778899";
        let record = Reader::from_reader(text.as_bytes()).next_record().unwrap().unwrap();
        assert_eq!(record.frame.data().len(), 12, "socketcan alone reads 9 bytes as 12");
        check_error(text, &format!("the data is not a CAN FD length ({FD_LENGTHS:?} bytes)"));
    }

    #[test]
    fn malformed_lines() {
        for text in [
            "(1.000000) can0 1234#11",
            "(1.000000) can0 800#11",
            "(1.000000) can0 40000000#11",
            "(1.000000) can0 12G#11",
            "(1.000000) can0 123#123",
            "(1.000000) can0 123#11ZZ",
            "(1.000000) can0 123#112233445566778899",
            "(1.000000) can0 123##",
            "(1.000000) can0 123#1122334455667788_C",
            "(1.000000) can0 123#R9",
        ] {
            check_error(text, "invalid can frame");
        }
        for text in ["1.000000 can0 123#11", "(1.0000000) can0 123#11"] {
            check_error(text, "invalid timestamp");
        }
        check_error("(1.000000) can0", "unexpected end of line");
        // After the frame only candump -x's direction may follow.
        check_error("(1.000000) can0 123#11 X", "invalid frame direction");
        assert!(parse_line("(1.000000) can0 123#11 R", 1).is_ok());
    }

    /// candump -L always writes six fraction digits and no dots between bytes; hand-written
    /// lines with fewer digits or dots, which the project's own parser accepted, are refused.
    #[test]
    fn only_what_candump_writes_is_read() {
        check_error("(1.5) can0 123#DEAD", "invalid timestamp");
        check_error("(1.500000) can0 123#DE.AD", "invalid can frame");
    }

    #[test]
    fn damaged_lines_never_panic() {
        let lines = [
            "(1700000000.000898) can0 123#DEADBEEF",
            "(1.000000) can0 00000123##1DEADBEEF",
            "(1.000000) can0 123#R4",
            "(1.000000) can0 123#1122334455667788_C",
            "(1.000000) cän0 20000080#00",
        ];
        for line in lines {
            for (cut, _) in line.char_indices() {
                let _ = parse_line(&line[..cut], 1);
                for replacement in ["#", "(", ")", " ", "R", "_", ".", "é", "##", "9"] {
                    let mut damaged = line.to_owned();
                    let end = cut + line[cut..].chars().next().map_or(0, char::len_utf8);
                    damaged.replace_range(cut..end, replacement);
                    let _ = parse_line(&damaged, 1);
                }
            }
        }
    }

    /// Recording is on the gateway's receive path, which allocates nothing per frame.
    #[test]
    fn writing_a_line_does_not_allocate() {
        let frames = [
            CanFrame::classic(0x123, false, &[1, 2, 3]).unwrap(),
            CanFrame::fd(0x1234, true, true, &[7; 64]).unwrap(),
            CanFrame::remote(0x7ff, false, 2).unwrap(),
        ];
        let mut out = Vec::with_capacity(64 * 1024);
        let info = allocation_counter::measure(|| {
            for (index, frame) in frames.iter().cycle().take(300).enumerate() {
                write_line(&mut out, index as u64 * 1000, "can0", frame).unwrap();
            }
        });
        assert_eq!(info.count_total, 0, "{info:?}");
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 300);
    }

    #[test]
    fn a_log_numbers_lines_and_skips_blank_ones() {
        let log = "(1.000000) can0 123#11\n\n   \n(2.000000) can0 123#1\n(3.000000) can0 124#\n";
        let results: Vec<_> = parse_log(log).collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap().0, 1);
        assert_eq!(results[1].as_ref().unwrap_err().line, 4);
        assert_eq!(results[2].as_ref().unwrap().0, 5);
    }
}
