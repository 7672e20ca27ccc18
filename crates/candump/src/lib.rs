//! The candump `-L` log format of SocketCAN's can-utils: one frame per line.
//!
//! ```text
//! (1700000000.000898) can0 123#DEADBEEF          classic frame, 11-bit identifier (3 hex digits)
//! (1700000000.000898) can0 00123456#11           29-bit identifier (8 hex digits)
//! (1700000000.000898) can0 123#R                 remote frame; `123#R4` requests 4 bytes
//! (1700000000.000898) can0 123##1DEADBEEF        CAN FD frame: one flags digit (1 = BRS, 2 = ESI), then the data
//! (1700000000.000898) can0 20000080#0000000000000000   error frame (CAN_ERR_FLAG 0x20000000 in the identifier)
//! ```
//!
//! Error frames parse as frames with [`LogFrame::error`] set: `id` then holds the error class bits
//! (the identifier without `CAN_ERR_FLAG`) and `extended` is false, as in the kernel's `can_frame`.
//! The classic `_<dlc>` suffix for DLCs 9 to 15 (`123#1122334455667788_C`) is rejected with
//! [`ParseError::RawDlc`], and so is any text after the frame (such as candump `-x`'s direction).
//!
//! ```
//! let line = candump::parse_line("(1700000000.000898) can0 123#DEADBEEF").unwrap();
//! assert_eq!(line.frame.id, 0x123);
//! assert_eq!(line.frame.data, [0xDE, 0xAD, 0xBE, 0xEF]);
//! assert_eq!(line.to_string(), "(1700000000.000898) can0 123#DEADBEEF");
//! ```

use std::fmt;

use thiserror::Error;

/// `CAN_ERR_FLAG` of `linux/can.h`: marks an error frame.
pub const CAN_ERR_FLAG: u32 = 0x2000_0000;
/// The largest 11-bit identifier.
pub const MAX_STANDARD_ID: u32 = 0x7FF;
/// The largest 29-bit identifier.
pub const MAX_EXTENDED_ID: u32 = 0x1FFF_FFFF;
/// The data lengths a CAN FD frame can have.
pub const FD_LENGTHS: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64];

/// One CAN frame as candump logs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFrame {
    /// The identifier without flags (for an error frame, the error class bits).
    pub id: u32,
    /// 29-bit identifier (written with 8 hex digits).
    pub extended: bool,
    /// Remote transmission request: no data, `remote_len` bytes requested.
    pub rtr: bool,
    /// The length a remote frame requests (`123#R4`); `None` when the log gives none (`123#R`).
    pub remote_len: Option<u8>,
    /// Error frame (`CAN_ERR_FLAG` set in the identifier).
    pub error: bool,
    /// CAN FD frame (`##` in the log).
    pub fd: bool,
    /// CAN FD bit rate switch.
    pub brs: bool,
    /// CAN FD error state indicator.
    pub esi: bool,
    /// The payload: up to 8 bytes for classic CAN, a valid FD length up to 64 for CAN FD.
    pub data: Vec<u8>,
}

/// One line of a candump `-L` log.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogLine {
    /// Reception time in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    /// The interface name, such as `can0`.
    pub interface: String,
    /// The frame.
    pub frame: LogFrame,
}

/// What is wrong with a log line; `column` counts characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("column {column}: expected {expected}, found {found:?}")]
    Expected { column: usize, expected: &'static str, found: String },
    #[error("column {column}: timestamp {text:?} is not `(seconds.microseconds)` with 1 to 6 fraction digits")]
    Timestamp { column: usize, text: String },
    #[error("column {column}: identifier {text:?} has {digits} hex digits; expected 3 (11-bit) or 8 (29-bit)")]
    IdLength { column: usize, text: String, digits: usize },
    #[error("column {column}: identifier {text:?} is not hexadecimal")]
    IdNotHex { column: usize, text: String },
    #[error("column {column}: identifier 0x{id:X} is out of range (at most 0x{max:X})")]
    IdRange { column: usize, id: u32, max: u32 },
    #[error("column {column}: {text:?} is not hexadecimal data")]
    DataNotHex { column: usize, text: String },
    #[error("column {column}: data {text:?} has an odd number of hex digits")]
    OddHex { column: usize, text: String },
    #[error("column {column}: {len} data bytes in a classic CAN frame; at most 8")]
    ClassicTooLong { column: usize, len: usize },
    #[error("column {column}: {len} data bytes in a CAN FD frame; at most 64")]
    FdTooLong { column: usize, len: usize },
    #[error("column {column}: {len} data bytes is not a CAN FD length (0 to 8, 12, 16, 20, 24, 32, 48 or 64)")]
    FdLength { column: usize, len: usize },
    #[error("column {column}: CAN FD flags {text:?} are not one hex digit of BRS (1), ESI (2) and FDF (4)")]
    FdFlags { column: usize, text: String },
    #[error("column {column}: remote frame length {text:?} is not a digit 0 to 8")]
    RemoteLength { column: usize, text: String },
    #[error("column {column}: the raw DLC suffix {text:?} (classic DLC 9 to 15) is not supported")]
    RawDlc { column: usize, text: String },
    #[error("column {column}: unexpected text {text:?} after the frame")]
    Trailing { column: usize, text: String },
}

/// A malformed line of a log: its number (from 1) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}: {error}")]
pub struct LineError {
    pub line: usize,
    #[source]
    pub error: ParseError,
}

/// Parses one line (without its line break; surrounding white space is ignored).
pub fn parse_line(line: &str) -> Result<LogLine, ParseError> {
    let mut cursor = Cursor { text: line, pos: 0 };
    cursor.skip_spaces();
    let timestamp_us = cursor.timestamp()?;
    if !cursor.skip_spaces() {
        return Err(cursor.expected("a space after the timestamp"));
    }
    let interface = cursor.word();
    if interface.is_empty() {
        return Err(cursor.expected("an interface name"));
    }
    let interface = interface.to_owned();
    if !cursor.skip_spaces() {
        return Err(cursor.expected("a space after the interface name"));
    }
    let frame = cursor.frame()?;
    cursor.skip_spaces();
    if cursor.pos < cursor.text.len() {
        return Err(ParseError::Trailing { column: cursor.column(), text: cursor.rest().to_owned() });
    }
    Ok(LogLine { timestamp_us, interface, frame })
}

/// Parses a whole log, giving each frame with its line number (from 1); blank lines are skipped.
///
/// ```
/// let log = "(1.000001) can0 123#01\n\n(2.000000) can0 12#01\n";
/// let lines: Vec<_> = candump::parse_log(log).collect();
/// assert_eq!(lines[0].as_ref().unwrap().0, 1);
/// assert_eq!(lines[1].as_ref().unwrap_err().line, 3);
/// ```
pub fn parse_log(text: &str) -> impl Iterator<Item = Result<(usize, LogLine), LineError>> + '_ {
    text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()).map(|(index, line)| {
        parse_line(line).map(|parsed| (index + 1, parsed)).map_err(|error| LineError { line: index + 1, error })
    })
}

/// Writes a line exactly as `candump -L` does (uppercase hex, six fraction digits).
pub fn format_line(line: &LogLine) -> String {
    line.to_string()
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "({}.{:06}) {} {}",
            self.timestamp_us / 1_000_000,
            self.timestamp_us % 1_000_000,
            self.interface,
            self.frame
        )
    }
}

impl fmt::Display for LogFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.error {
            write!(f, "{:08X}#", self.id | CAN_ERR_FLAG)?;
        } else if self.extended {
            write!(f, "{:08X}#", self.id)?;
        } else {
            write!(f, "{:03X}#", self.id)?;
        }
        if self.rtr {
            f.write_str("R")?;
            if let Some(len) = self.remote_len {
                write!(f, "{len}")?;
            }
            return Ok(());
        }
        if self.fd {
            let flags = u8::from(self.brs) | (u8::from(self.esi) << 1);
            write!(f, "#{flags:X}")?;
        }
        for byte in &self.data {
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl LogFrame {
    /// A classic data frame with an 11-bit (`extended` false) or 29-bit identifier.
    pub fn classic(id: u32, extended: bool, data: &[u8]) -> Self {
        Self { id, extended, data: data.to_vec(), ..Self::default() }
    }

    /// A CAN FD data frame.
    pub fn fd(id: u32, extended: bool, brs: bool, esi: bool, data: &[u8]) -> Self {
        Self { id, extended, fd: true, brs, esi, data: data.to_vec(), ..Self::default() }
    }
}

/// A position in the line being parsed.
struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    /// The 1-based character column of the current position.
    fn column(&self) -> usize {
        self.column_of(self.pos)
    }

    fn column_of(&self, pos: usize) -> usize {
        self.text[..pos].chars().count() + 1
    }

    fn expected(&self, expected: &'static str) -> ParseError {
        let found = self.rest().chars().take(12).collect::<String>();
        ParseError::Expected { column: self.column(), expected, found }
    }

    /// Skips spaces and tabs; tells whether there were any.
    fn skip_spaces(&mut self) -> bool {
        let start = self.pos;
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start_matches([' ', '\t']).len();
        self.pos > start
    }

    /// Takes everything up to the next white space.
    fn word(&mut self) -> &'a str {
        let rest = self.rest();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn timestamp(&mut self) -> Result<u64, ParseError> {
        if !self.eat('(') {
            return Err(self.expected("`(` starting the timestamp"));
        }
        let column = self.column();
        let rest = self.rest();
        let Some(end) = rest.find(')') else {
            return Err(ParseError::Timestamp { column, text: rest.to_owned() });
        };
        let text = &rest[..end];
        let invalid = || ParseError::Timestamp { column, text: text.to_owned() };
        let (seconds, fraction) = text.split_once('.').ok_or_else(invalid)?;
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(seconds) || !all_digits(fraction) || fraction.len() > 6 {
            return Err(invalid());
        }
        let seconds: u64 = seconds.parse().map_err(|_| invalid())?;
        let micros: u64 = fraction.parse::<u64>().map_err(|_| invalid())? * 10u64.pow(6 - fraction.len() as u32);
        let timestamp = seconds.checked_mul(1_000_000).and_then(|s| s.checked_add(micros)).ok_or_else(invalid)?;
        self.pos += end + 1;
        Ok(timestamp)
    }

    fn frame(&mut self) -> Result<LogFrame, ParseError> {
        let column = self.column();
        let rest = self.rest();
        let Some(hash) = rest.find('#') else {
            return Err(self.expected("`ID#DATA`"));
        };
        let id_text = &rest[..hash];
        if !id_text.bytes().all(|b| b.is_ascii_hexdigit()) || id_text.is_empty() {
            if id_text.contains(char::is_whitespace) || id_text.is_empty() {
                return Err(self.expected("`ID#DATA`"));
            }
            return Err(ParseError::IdNotHex { column, text: id_text.to_owned() });
        }
        let mut frame = LogFrame::default();
        let value =
            u32::from_str_radix(id_text, 16).map_err(|_| ParseError::IdNotHex { column, text: id_text.to_owned() });
        match id_text.len() {
            3 => {
                let id = value?;
                if id > MAX_STANDARD_ID {
                    return Err(ParseError::IdRange { column, id, max: MAX_STANDARD_ID });
                }
                frame.id = id;
            }
            8 => {
                let id = value?;
                if id & CAN_ERR_FLAG != 0 && id & !(CAN_ERR_FLAG | MAX_EXTENDED_ID) == 0 {
                    frame.error = true;
                    frame.id = id & MAX_EXTENDED_ID;
                } else if id > MAX_EXTENDED_ID {
                    return Err(ParseError::IdRange { column, id, max: MAX_EXTENDED_ID });
                } else {
                    frame.extended = true;
                    frame.id = id;
                }
            }
            digits => return Err(ParseError::IdLength { column, text: id_text.to_owned(), digits }),
        }
        self.pos += hash + 1;

        if self.eat('#') {
            frame.fd = true;
            let column = self.column();
            let flags = self.rest().chars().next().filter(|c| !c.is_whitespace());
            let Some(flags) = flags else {
                return Err(ParseError::FdFlags { column, text: String::new() });
            };
            let value = flags.to_digit(16).filter(|v| *v < 8);
            let Some(value) = value else {
                return Err(ParseError::FdFlags { column, text: flags.to_string() });
            };
            frame.brs = value & 1 != 0;
            frame.esi = value & 2 != 0;
            self.pos += flags.len_utf8();
        } else if self.rest().starts_with(['R', 'r']) {
            self.pos += 1;
            frame.rtr = true;
            let column = self.column();
            let length = self.word();
            if !length.is_empty() {
                match length.parse::<u8>() {
                    Ok(len) if len <= 8 && length.len() == 1 => frame.remote_len = Some(len),
                    _ => return Err(ParseError::RemoteLength { column, text: length.to_owned() }),
                }
            }
            return Ok(frame);
        }

        let column = self.column();
        let data_text = self.word();
        let (hex, suffix) = match data_text.split_once('_') {
            Some((hex, suffix)) => (hex, Some(suffix)),
            None => (data_text, None),
        };
        let mut digits = Vec::with_capacity(hex.len());
        for (offset, c) in hex.char_indices() {
            match c.to_digit(16) {
                Some(digit) => digits.push(digit as u8),
                // candump accepts dots between bytes.
                None if c == '.' && digits.len() % 2 == 0 => {}
                None => {
                    let column = column + hex[..offset].chars().count();
                    return Err(ParseError::DataNotHex { column, text: hex.to_owned() });
                }
            }
        }
        if digits.len() % 2 != 0 {
            return Err(ParseError::OddHex { column, text: hex.to_owned() });
        }
        frame.data = digits.chunks(2).map(|pair| pair[0] << 4 | pair[1]).collect();
        let len = frame.data.len();
        if let Some(suffix) = suffix {
            return Err(ParseError::RawDlc {
                column: self.column_of(self.pos - suffix.len() - 1),
                text: suffix.to_owned(),
            });
        }
        if frame.fd {
            if len > 64 {
                return Err(ParseError::FdTooLong { column, len });
            }
            if !FD_LENGTHS.contains(&len) {
                return Err(ParseError::FdLength { column, len });
            }
        } else if len > 8 {
            return Err(ParseError::ClassicTooLong { column, len });
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

    use super::*;

    #[track_caller]
    fn round_trip(text: &str, frame: LogFrame) {
        let line = parse_line(text).unwrap();
        assert_eq!(line.frame, frame);
        assert_eq!(format_line(&line), text);
        assert_eq!(parse_line(&format_line(&line)).unwrap(), line);
    }

    #[track_caller]
    fn check_error(text: &str, expected: &str) {
        let error = parse_line(text).unwrap_err();
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn classic_standard() {
        round_trip("(1700000000.000898) can0 123#DEADBEEF", LogFrame::classic(0x123, false, &[0xDE, 0xAD, 0xBE, 0xEF]));
    }

    #[test]
    fn classic_empty() {
        round_trip("(0.000000) vcan0 7FF#", LogFrame::classic(0x7FF, false, &[]));
    }

    #[test]
    fn classic_extended() {
        round_trip("(1700000000.000898) can0 00123456#11", LogFrame::classic(0x123456, true, &[0x11]));
        round_trip(
            "(1.000001) can1 1FFFFFFF#0102030405060708",
            LogFrame::classic(0x1FFF_FFFF, true, &[1, 2, 3, 4, 5, 6, 7, 8]),
        );
    }

    #[test]
    fn remote_frames() {
        round_trip("(1.000000) can0 123#R", LogFrame { id: 0x123, rtr: true, ..LogFrame::default() });
        round_trip(
            "(1.000000) can0 00000123#R4",
            LogFrame { id: 0x123, extended: true, rtr: true, remote_len: Some(4), ..LogFrame::default() },
        );
    }

    #[test]
    fn fd_frames() {
        round_trip(
            "(1.000000) can0 123##1DEADBEEF",
            LogFrame::fd(0x123, false, true, false, &[0xDE, 0xAD, 0xBE, 0xEF]),
        );
        round_trip("(1.000000) can0 00000123##2", LogFrame::fd(0x123, true, false, true, &[]));
        round_trip("(1.000000) can0 123##3".to_owned().as_str(), LogFrame::fd(0x123, false, true, true, &[]));
        let data: Vec<u8> = (0..64).collect();
        let text = format!("(1.000000) can0 123##0{}", data.iter().map(|b| format!("{b:02X}")).collect::<String>());
        round_trip(&text, LogFrame::fd(0x123, false, false, false, &data));
    }

    #[test]
    fn error_frames() {
        let frame = LogFrame { id: 0x80, error: true, data: vec![0; 8], ..LogFrame::default() };
        round_trip("(1.000000) can0 20000080#0000000000000000", frame);
    }

    #[test]
    fn lowercase_and_dots_are_accepted() {
        let line = parse_line("  (1.5) can0 1ab#de.ad  ").unwrap();
        assert_eq!(line.timestamp_us, 1_500_000);
        assert_eq!(line.frame, LogFrame::classic(0x1AB, false, &[0xDE, 0xAD]));
        assert_eq!(line.to_string(), "(1.500000) can0 1AB#DEAD");
    }

    #[test]
    fn malformed_lines() {
        check_error(
            "(1.000000) can0 1234#11",
            "column 17: identifier \"1234\" has 4 hex digits; expected 3 (11-bit) or 8 (29-bit)",
        );
        check_error("(1.000000) can0 800#11", "column 17: identifier 0x800 is out of range (at most 0x7FF)");
        check_error(
            "(1.000000) can0 40000000#11",
            "column 17: identifier 0x40000000 is out of range (at most 0x1FFFFFFF)",
        );
        check_error("(1.000000) can0 12G#11", "column 17: identifier \"12G\" is not hexadecimal");
        check_error("(1.000000) can0 123#123", "column 21: data \"123\" has an odd number of hex digits");
        check_error("(1.000000) can0 123#11ZZ", "column 23: \"11ZZ\" is not hexadecimal data");
        check_error(
            "(1.000000) can0 123#112233445566778899",
            "column 21: 9 data bytes in a classic CAN frame; at most 8",
        );
        check_error(
            "(1.000000) can0 123##0112233445566778899",
            "column 23: 9 data bytes is not a CAN FD length (0 to 8, 12, 16, 20, 24, 32, 48 or 64)",
        );
        let long = format!("(1.000000) can0 123##0{}", "00".repeat(65));
        check_error(&long, "column 23: 65 data bytes in a CAN FD frame; at most 64");
        check_error(
            "(1.000000) can0 123##",
            "column 22: CAN FD flags \"\" are not one hex digit of BRS (1), ESI (2) and FDF (4)",
        );
        check_error(
            "(1.000000) can0 123#1122334455667788_C",
            "column 37: the raw DLC suffix \"C\" (classic DLC 9 to 15) is not supported",
        );
        check_error("(1.000000) can0 123#R9", "column 22: remote frame length \"9\" is not a digit 0 to 8");
        check_error("1.000000 can0 123#11", "column 1: expected `(` starting the timestamp, found \"1.000000 can\"");
        check_error(
            "(1.0000000) can0 123#11",
            "column 2: timestamp \"1.0000000\" is not `(seconds.microseconds)` with 1 to 6 fraction digits",
        );
        check_error("(1.000000) can0", "column 16: expected a space after the interface name, found \"\"");
        check_error("(1.000000) can0 123#11 R", "column 24: unexpected text \"R\" after the frame");
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
                let _ = parse_line(&line[..cut]);
                for replacement in ["#", "(", ")", " ", "R", "_", ".", "é", "##", "9"] {
                    let mut damaged = line.to_owned();
                    let end = cut + line[cut..].chars().next().map_or(0, char::len_utf8);
                    damaged.replace_range(cut..end, replacement);
                    let _ = parse_line(&damaged);
                }
            }
        }
    }

    #[test]
    fn log_numbers_lines_and_skips_blank_ones() {
        let log = "(1.000000) can0 123#11\n\n   \n(2.000000) can0 123#1\n(3.000000) can0 124#\n";
        let results: Vec<_> = parse_log(log).collect();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].as_ref().unwrap().0, 1);
        assert_eq!(
            results[1].as_ref().unwrap_err().to_string(),
            "line 4: column 21: data \"1\" has an odd number of hex digits"
        );
        assert_eq!(results[2].as_ref().unwrap().0, 5);
    }
}
