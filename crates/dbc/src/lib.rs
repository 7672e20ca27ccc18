//! Lenient DBC (CAN database) parser, with an allocation-free decoder and a checked encoder.
//!
//! Written here rather than taken from crates.io because the `can-dbc` crate rejects a whole file at
//! its first statement it cannot parse, and users' DBC files are messy (tool-specific statements,
//! signals beyond their message, labels for signals that no longer exist); the other parsers found
//! (`dbc-rs`, a beta) are lenient only about signal boundaries.
//! Here an unknown or inconsistent statement is a [`Warning`] naming its line and the rest of the file
//! still loads; only an unreadable file is an error.
//!
//! Understood: `BO_` (bit 31 of the identifier = 29-bit identifier), `SG_` with simple and extended
//! multiplexing (`M`, `m<N>`, `m<N>M`, `SG_MUL_VAL_`), `CM_`, `BA_DEF_`/`BA_DEF_DEF_`/`BA_`
//! (`GenMsgCycleTime`, `VFrameFormat` for CAN FD, `GenSigStartValue` as the raw initial value), `VAL_`,
//! `VAL_TABLE_`, `SIG_VALTYPE_` (float32/float64), `BO_TX_BU_`, `BU_`.
//! Other known statements (`EV_`, `SIG_GROUP_`, relations, ...) are skipped silently; unknown ones
//! are warned about.
//!
//! Decoding agrees with cantools (the reference fixtures test it), with these choices:
//! - physical values are [`Physical::Int`] where cantools gives ints (integer signal, whole factor
//!   and offset), as an `i128` so that 64-bit signals keep every bit, else [`Physical::Float`];
//! - a frame shorter than the message gives the signals that fit, with [`DecodeError::Truncated`]
//!   when a signal within the declared length is missing (cantools refuses the whole frame);
//! - a multiplexer value that selects nothing gives the other signals (cantools refuses the frame).
//!
//! Decoding does not allocate once the output buffer has grown: messages are found by binary search
//! and each signal's byte span and shift are computed at load time (about 0.1 µs per frame).
//! Encoding ([`Message::encode`]) checks names, labels, ranges and multiplexer values, and lists the
//! signals it gave initial values to.
//!
//! ```
//! let (db, warnings) = dbc::Database::parse(r#"
//! BO_ 2147484011 Battery: 8 BMS
//!  SG_ Voltage : 7|16@0+ (0.01,0) [0|600] "V" Vector__XXX
//!  SG_ Current : 16|16@1- (0.1,0) [-1000|1000] "A" Vector__XXX
//! "#);
//! assert!(warnings.is_empty());
//! let battery = db.message(0x16B, true).unwrap();
//! let mut out = Vec::new();
//! battery.decode(&[0x9C, 0x40, 0x0A, 0x00, 0, 0, 0, 0], &mut out).unwrap();
//! assert_eq!((out[0].name(), out[0].physical.as_f64(), out[0].unit()), ("Voltage", 400.0, "V"));
//! assert_eq!((out[1].name(), out[1].physical.as_f64()), ("Current", 1.0));
//! ```

mod layout;
mod lexer;
mod message;
mod parser;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use thiserror::Error;

pub use message::{
    ByteOrder, DecodeError, Decoded, EncodeError, Encoded, MAX_MULTIPLEXERS, Message, MuxCondition, Physical, Raw,
    Signal, Value, ValueType,
};

/// A loaded DBC file, or several merged.
#[derive(Debug, Clone, Default)]
pub struct Database {
    /// The `VERSION` string.
    pub version: Option<String>,
    /// Node names (`BU_`).
    pub nodes: Vec<String>,
    /// Named value tables (`VAL_TABLE_`), each sorted by raw value.
    pub value_tables: BTreeMap<String, Vec<(i128, String)>>,
    messages: Vec<Message>,
    /// `(key, index)` sorted by key, where key is the identifier with bit 31 set for 29-bit identifiers.
    by_id: Vec<(u32, usize)>,
    by_name: HashMap<String, usize>,
}

/// Something in a DBC file that was ignored or taken in a particular way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The file, when loaded from one.
    pub file: Option<Arc<Path>>,
    /// Line number, from 1.
    pub line: usize,
    pub message: String,
}

/// A DBC file that could not be read.
#[derive(Debug, Error)]
pub enum DbcError {
    #[error("reading DBC file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{} line {}: {}", file.display(), self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

impl Database {
    /// Parses DBC text. Never fails: what cannot be used is skipped with a warning.
    pub fn parse(text: &str) -> (Database, Vec<Warning>) {
        parser::parse(text, None)
    }

    /// Reads and parses a DBC file; the warnings and messages name the file.
    ///
    /// The text may be UTF-8 or, as many DBC editors write it, Windows-1252.
    pub fn load(path: &Path) -> Result<(Database, Vec<Warning>), DbcError> {
        let bytes = std::fs::read(path).map_err(|source| DbcError::Read { path: path.to_owned(), source })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => windows_1252(error.as_bytes()),
        };
        Ok(parser::parse(&text, Some(Arc::from(path))))
    }

    /// Adds the messages of another database (another DBC file of the same bus).
    /// A message whose identifier or name is already taken is left out, with a warning.
    pub fn merge(&mut self, other: Database) -> Vec<Warning> {
        let mut warnings = Vec::new();
        for message in other.messages {
            let clash = self
                .message(message.id, message.extended)
                .map(|existing| ("identifier", existing))
                .or_else(|| self.message_by_name(&message.name).map(|existing| ("name", existing)));
            if let Some((what, existing)) = clash {
                let place = match &existing.file {
                    Some(file) => format!("{} line {}", file.display(), existing.line),
                    None => format!("line {}", existing.line),
                };
                warnings.push(Warning {
                    file: message.file.clone(),
                    line: message.line,
                    message: format!(
                        "message \"{}\" (0x{:X}) has the same {what} as message \"{}\" (0x{:X}) from {place}; ignored",
                        message.name, message.id, existing.name, existing.id
                    ),
                });
                continue;
            }
            self.messages.push(message);
            self.rebuild_index();
        }
        if self.version.is_none() {
            self.version = other.version;
        }
        for node in other.nodes {
            if !self.nodes.contains(&node) {
                self.nodes.push(node);
            }
        }
        for (name, table) in other.value_tables {
            self.value_tables.entry(name).or_insert(table);
        }
        warnings
    }

    /// The message with an identifier (without flags) and identifier kind.
    #[inline]
    pub fn message(&self, id: u32, extended: bool) -> Option<&Message> {
        self.lookup(id, extended).map(|(_, message)| message)
    }

    /// The message with an identifier and its index in [`Database::messages`] (stable until the next
    /// [`Database::merge`]), for state kept per message.
    #[inline]
    pub fn lookup(&self, id: u32, extended: bool) -> Option<(usize, &Message)> {
        let key = key(id, extended);
        let index = self.by_id.binary_search_by_key(&key, |(key, _)| *key).ok()?;
        let index = self.by_id[index].1;
        Some((index, &self.messages[index]))
    }

    /// The message at an index of [`Database::messages`].
    pub fn message_at(&self, index: usize) -> Option<&Message> {
        self.messages.get(index)
    }

    pub fn message_by_name(&self, name: &str) -> Option<&Message> {
        self.by_name.get(name).map(|&index| &self.messages[index])
    }

    /// The messages in file order (then merge order).
    pub fn messages(&self) -> impl ExactSizeIterator<Item = &Message> {
        self.messages.iter()
    }

    fn rebuild_index(&mut self) {
        self.by_id = self.messages.iter().enumerate().map(|(index, m)| (key(m.id, m.extended), index)).collect();
        self.by_id.sort_unstable();
        self.by_name = self.messages.iter().enumerate().map(|(index, m)| (m.name.clone(), index)).collect();
    }
}

fn key(id: u32, extended: bool) -> u32 {
    if extended { id | 0x8000_0000 } else { id }
}

/// Decodes Windows-1252 (Latin-1 with printable characters in 0x80 to 0x9F).
fn windows_1252(bytes: &[u8]) -> String {
    const HIGH: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž', '\u{8F}', '\u{90}', '‘',
        '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}', 'ž', 'Ÿ',
    ];
    bytes.iter().map(|&b| if (0x80..0xA0).contains(&b) { HIGH[usize::from(b - 0x80)] } else { char::from(b) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_1252_degree_and_euro() {
        assert_eq!(windows_1252(b"\xb0C \x80"), "°C €");
    }
}
