//! The lenient statement parser: builds a [`Database`] from tokens, turning every statement it cannot
//! use into a [`Warning`] naming its line.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use crate::layout::Layout;
use crate::lexer::{Kind, Token, tokenize};
use crate::message::{MAX_MULTIPLEXERS, MuxCondition};
use crate::{ByteOrder, Database, Message, Raw, Signal, ValueType, Warning};

/// DBC keywords that start a statement. Those not handled below are skipped silently.
const KEYWORDS: &[&str] = &[
    "VERSION",
    "NS_",
    "NS_DESC_",
    "BS_",
    "BU_",
    "BO_",
    "SG_",
    "EV_",
    "ENVVAR_DATA_",
    "SGTYPE_",
    "SGTYPE_VAL_",
    "SIGTYPE_VALTYPE_",
    "BA_DEF_SGTYPE_",
    "BA_SGTYPE_",
    "SIG_TYPE_REF_",
    "CM_",
    "BA_DEF_",
    "BA_DEF_DEF_",
    "BA_",
    "BA_DEF_REL_",
    "BA_DEF_DEF_REL_",
    "BA_REL_",
    "VAL_",
    "VAL_TABLE_",
    "SIG_GROUP_",
    "SIG_VALTYPE_",
    "SG_MUL_VAL_",
    "BO_TX_BU_",
    "BU_SG_REL_",
    "BU_EV_REL_",
    "BU_BO_REL_",
    "CAT_DEF_",
    "CAT_",
    "FILTER",
];

/// The pseudo-message Vector tools use to hold signals that belong to no message.
const INDEPENDENT_SIGNALS_ID: u32 = 0xC000_0000;
/// The DBC node name meaning "no node".
const NO_NODE: &str = "Vector__XXX";

/// What a `CM_` or `BA_` statement is about.
#[derive(Debug, Clone)]
enum Target {
    Database,
    Node,
    Message(u32),
    Signal(u32, String),
    Other,
}

/// An attribute value as written.
#[derive(Debug, Clone)]
enum AttributeValue {
    Number(f64, String),
    Text(String),
}

/// The multiplexer indicator of an `SG_` line.
#[derive(Debug, Clone, Copy)]
struct Indicator {
    multiplexer: bool,
    value: Option<u64>,
}

/// The multiplexer's name and value ranges of an `SG_MUL_VAL_` statement.
type MuxRanges = (String, Vec<(u64, u64)>);

/// A statement about a signal, applied once all messages are known.
struct SignalStatement<T> {
    line: usize,
    /// The DBC identifier of the message.
    id: u32,
    signal: String,
    content: T,
}

struct Builder<'a> {
    tokens: Vec<Token<'a>>,
    file: Option<Arc<Path>>,
    warnings: Vec<Warning>,
    database: Database,
    /// Messages by their DBC identifier (bit 31 = extended).
    by_dbc_id: HashMap<u32, usize>,
    /// The multiplexer indicators of each message's signals.
    indicators: Vec<Vec<Indicator>>,
    comments: Vec<(usize, Target, String)>,
    /// Enumerated attribute definitions: name → values.
    enums: HashMap<String, Vec<String>>,
    defaults: HashMap<String, AttributeValue>,
    attributes: Vec<(usize, String, Target, AttributeValue)>,
    value_labels: Vec<SignalStatement<Vec<(i128, String)>>>,
    value_types: Vec<(usize, u32, String, u32)>,
    /// `SG_MUL_VAL_`: the multiplexer's name and the value ranges.
    mux_ranges: Vec<SignalStatement<MuxRanges>>,
    transmitters: Vec<(usize, u32, Vec<String>)>,
}

/// A statement's tokens after its keyword, read front to back.
struct Statement<'t, 'a> {
    keyword: &'static str,
    tokens: &'t [Token<'a>],
    pos: usize,
}

/// Why a statement could not be read: what was expected where.
struct Malformed {
    keyword: &'static str,
    expected: &'static str,
    found: String,
}

impl<'t, 'a> Statement<'t, 'a> {
    fn new(keyword: &'static str, tokens: &'t [Token<'a>]) -> Self {
        Self { keyword, tokens, pos: 0 }
    }

    fn peek(&self) -> Option<&'t Token<'a>> {
        self.tokens.get(self.pos)
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }

    fn malformed(&self, expected: &'static str) -> Malformed {
        let found = self.peek().map_or_else(|| "the end of the statement".to_owned(), Token::describe);
        Malformed { keyword: self.keyword, expected, found }
    }

    fn ident(&mut self, expected: &'static str) -> Result<&'a str, Malformed> {
        match self.peek().map(|token| &token.kind) {
            Some(Kind::Ident(text)) => {
                self.pos += 1;
                Ok(text)
            }
            _ => Err(self.malformed(expected)),
        }
    }

    fn number_text(&mut self, expected: &'static str) -> Result<&'a str, Malformed> {
        match self.peek().map(|token| &token.kind) {
            Some(Kind::Number(text)) => {
                self.pos += 1;
                Ok(text)
            }
            _ => Err(self.malformed(expected)),
        }
    }

    fn float(&mut self, expected: &'static str) -> Result<f64, Malformed> {
        let start = self.pos;
        let text = self.number_text(expected)?;
        text.parse().map_err(|_| {
            self.pos = start;
            self.malformed(expected)
        })
    }

    fn unsigned(&mut self, expected: &'static str) -> Result<u64, Malformed> {
        let start = self.pos;
        let text = self.number_text(expected)?;
        text.trim_start_matches('+').parse().map_err(|_| {
            self.pos = start;
            self.malformed(expected)
        })
    }

    fn integer(&mut self, expected: &'static str) -> Result<i128, Malformed> {
        let start = self.pos;
        let text = self.number_text(expected)?;
        parse_integer(text).ok_or_else(|| {
            self.pos = start;
            self.malformed(expected)
        })
    }

    fn id(&mut self) -> Result<u32, Malformed> {
        let start = self.pos;
        let value = self.unsigned("a message identifier")?;
        u32::try_from(value).map_err(|_| {
            self.pos = start;
            self.malformed("a message identifier")
        })
    }

    fn string(&mut self, expected: &'static str) -> Result<String, Malformed> {
        match self.peek().map(|token| &token.kind) {
            Some(Kind::Str(text)) => {
                self.pos += 1;
                Ok(text.clone())
            }
            _ => Err(self.malformed(expected)),
        }
    }

    fn punct(&mut self, c: char, expected: &'static str) -> Result<(), Malformed> {
        if self.peek().is_some_and(|token| token.is_punct(c)) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.malformed(expected))
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        self.punct(c, "").is_ok()
    }

    fn eat_ident(&mut self, word: &str) -> bool {
        if self.peek().and_then(Token::ident) == Some(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
}

/// Parses DBC text; see [`Database::parse`].
pub(crate) fn parse(text: &str, file: Option<Arc<Path>>) -> (Database, Vec<Warning>) {
    // A byte order mark and Windows line ends would otherwise end up in names and comments.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let normalized;
    let text = if text.contains('\r') {
        normalized = text.replace("\r\n", "\n");
        normalized.as_str()
    } else {
        text
    };
    let (tokens, unterminated) = tokenize(text);
    let mut builder = Builder {
        tokens,
        file: file.clone(),
        warnings: Vec::new(),
        database: Database::default(),
        by_dbc_id: HashMap::new(),
        indicators: Vec::new(),
        comments: Vec::new(),
        enums: HashMap::new(),
        defaults: HashMap::new(),
        attributes: Vec::new(),
        value_labels: Vec::new(),
        value_types: Vec::new(),
        mux_ranges: Vec::new(),
        transmitters: Vec::new(),
    };
    for line in unterminated {
        builder.warn(line, "string without a closing quote; taken to end at the end of its line".to_owned());
    }
    builder.statements();
    builder.finish();
    let Builder { mut warnings, mut database, .. } = builder;
    warnings.sort_by_key(|warning| warning.line);
    database.rebuild_index();
    (database, warnings)
}

impl<'a> Builder<'a> {
    fn warn(&mut self, line: usize, message: String) {
        self.warnings.push(Warning { file: self.file.clone(), line, message });
    }

    fn warn_malformed(&mut self, line: usize, malformed: Malformed) {
        let Malformed { keyword, expected, found } = malformed;
        self.warn(line, format!("malformed {keyword} statement: expected {expected}, found {found}; ignored"));
    }

    /// The index of the `;` ending the statement whose keyword is at `pos`, or, when a keyword starts
    /// a line before any `;`, the index of that keyword (the `;` is missing).
    fn statement_end(tokens: &[Token<'_>], pos: usize) -> (usize, bool) {
        let mut end = pos + 1;
        while end < tokens.len() {
            let token = &tokens[end];
            if token.is_punct(';') {
                return (end, true);
            }
            if token.first_on_line && token.ident().is_some_and(|word| KEYWORDS.contains(&word)) {
                return (end, false);
            }
            end += 1;
        }
        (end, false)
    }

    fn statements(&mut self) {
        let tokens = std::mem::take(&mut self.tokens);
        let tokens = tokens.as_slice();
        let mut pos = 0;
        // The message the following SG_ lines belong to; `Some(None)` after a BO_ that was ignored.
        let mut current: Option<Option<usize>> = None;
        while pos < tokens.len() {
            let token = &tokens[pos];
            let line = token.line;
            let Some(word) = token.ident() else {
                let description = token.describe();
                self.warn(line, format!("unexpected {description}; line ignored"));
                pos = line_end(tokens, pos);
                continue;
            };
            let Some(&keyword) = KEYWORDS.iter().find(|keyword| **keyword == word) else {
                let end = line_end(tokens, pos);
                self.warn(line, format!("unknown statement `{word}`; ignored"));
                pos = end;
                continue;
            };
            if keyword != "SG_" {
                current = None;
            }
            match keyword {
                "VERSION" => {
                    if let Some(Kind::Str(version)) = tokens.get(pos + 1).map(|token| &token.kind) {
                        self.database.version = Some(version.clone());
                    }
                    pos = line_end(tokens, pos);
                }
                "BS_" => pos = line_end(tokens, pos),
                "NS_" => pos = Self::skip_new_symbols(tokens, pos),
                "BU_" => {
                    let end = line_end(tokens, pos);
                    let nodes = tokens[pos + 1..end].iter().filter_map(Token::ident).map(str::to_owned);
                    let nodes: Vec<String> = nodes.collect();
                    self.database.nodes.extend(nodes);
                    pos = end;
                }
                "BO_" => {
                    let end = line_end(tokens, pos);
                    current = Some(self.message(tokens, pos, end));
                    pos = end;
                }
                "SG_" => {
                    let end = line_end(tokens, pos);
                    match current {
                        Some(Some(index)) => self.signal(tokens, pos, end, index),
                        Some(None) => {}
                        None => {
                            let name = tokens.get(pos + 1).and_then(Token::ident).unwrap_or("");
                            self.warn(line, format!("signal \"{name}\" outside a BO_ message; ignored"));
                        }
                    }
                    pos = end;
                }
                _ => {
                    let (end, terminated) = Self::statement_end(tokens, pos);
                    if !terminated {
                        self.warn(line, format!("{keyword} statement is not terminated by `;`"));
                    }
                    self.terminated_statement(tokens, keyword, pos, end);
                    pos = if terminated { end + 1 } else { end };
                }
            }
        }
    }

    /// Skips `NS_ :` and the indented list of new symbols after it.
    fn skip_new_symbols(tokens: &[Token<'_>], pos: usize) -> usize {
        let mut end = line_end(tokens, pos);
        while end < tokens.len() && tokens[end].column > 1 && tokens[end].ident().is_some() {
            end = line_end(tokens, end);
        }
        end
    }

    /// `BO_ id name : size transmitter`; gives the message's index, or `None` if it was ignored.
    fn message(&mut self, tokens: &[Token<'_>], pos: usize, end: usize) -> Option<usize> {
        let line = tokens[pos].line;
        let tokens = &tokens[pos + 1..end];
        let mut statement = Statement::new("BO_", tokens);
        let parsed = (|| {
            let id = statement.id()?;
            let name = statement.ident("a message name")?;
            statement.punct(':', "`:`")?;
            let size = statement.unsigned("the message length")?;
            let sender = statement.ident("a transmitter").unwrap_or(NO_NODE);
            Ok((id, name, size, sender))
        })();
        let (dbc_id, name, size, sender) = match parsed {
            Ok(parsed) => parsed,
            Err(malformed) => {
                self.warn_malformed(line, malformed);
                return None;
            }
        };
        if dbc_id == INDEPENDENT_SIGNALS_ID {
            return None;
        }
        let extended = dbc_id & 0x8000_0000 != 0;
        let id = dbc_id & 0x7FFF_FFFF;
        if (extended && id > 0x1FFF_FFFF) || (!extended && id > 0x7FF) {
            let bits = if extended { 29 } else { 11 };
            self.warn(line, format!("message \"{name}\": identifier 0x{id:X} does not fit in {bits} bits; ignored"));
            return None;
        }
        if size > 64 {
            self.warn(line, format!("message \"{name}\" has length {size}, more than 64 bytes; ignored"));
            return None;
        }
        if let Some(&other) = self.by_dbc_id.get(&dbc_id) {
            let other = &self.database.messages[other];
            let message = format!(
                "message \"{name}\" has the same identifier 0x{id:X} as message \"{}\" (line {}); ignored",
                other.name, other.line
            );
            self.warn(line, message);
            return None;
        }
        if let Some(other) = self.database.messages.iter().find(|message| message.name == name) {
            let message = format!(
                "message name \"{name}\" (0x{id:X}) is already used by the message on line {} (0x{:X}); ignored",
                other.line, other.id
            );
            self.warn(line, message);
            return None;
        }
        let index = self.database.messages.len();
        self.by_dbc_id.insert(dbc_id, index);
        self.indicators.push(Vec::new());
        self.database.messages.push(Message {
            id,
            extended,
            name: name.to_owned(),
            size: size as usize,
            fd: size > 8,
            cycle_time_ms: None,
            senders: if sender == NO_NODE { Vec::new() } else { vec![sender.to_owned()] },
            comment: None,
            signals: Vec::new(),
            file: self.file.clone(),
            line,
            decode_order: Vec::new(),
        });
        Some(index)
    }

    /// `SG_ name [M|m<N>|m<N>M] : start|size@order sign (factor,offset) [min|max] "unit" receivers`.
    fn signal(&mut self, tokens: &[Token<'_>], pos: usize, end: usize, message: usize) {
        let line = tokens[pos].line;
        let tokens = &tokens[pos + 1..end];
        let mut statement = Statement::new("SG_", tokens);
        let mut bad_indicator = None;
        let parsed = (|| {
            let name = statement.ident("a signal name")?;
            let mut indicator = Indicator { multiplexer: false, value: None };
            if let Some(Kind::Ident(text)) = statement.peek().map(|token| &token.kind) {
                statement.pos += 1;
                match parse_indicator(text) {
                    Some(parsed) => indicator = parsed,
                    None => bad_indicator = Some(*text),
                }
            }
            statement.punct(':', "`:`")?;
            let start = statement.unsigned("the start bit")?;
            statement.punct('|', "`|`")?;
            let size = statement.unsigned("the signal length")?;
            statement.punct('@', "`@`")?;
            let byte_order = match statement.number_text("`0` or `1` (byte order)")? {
                "0" => ByteOrder::BigEndian,
                "1" => ByteOrder::LittleEndian,
                _ => {
                    statement.pos -= 1;
                    return Err(statement.malformed("`0` or `1` (byte order)"));
                }
            };
            let value_type = if statement.eat_punct('+') {
                ValueType::Unsigned
            } else if statement.eat_punct('-') {
                ValueType::Signed
            } else {
                return Err(statement.malformed("`+` or `-` (signedness)"));
            };
            statement.punct('(', "`(`")?;
            let factor = statement.float("the factor")?;
            statement.punct(',', "`,`")?;
            let offset = statement.float("the offset")?;
            statement.punct(')', "`)`")?;
            statement.punct('[', "`[`")?;
            let minimum = statement.float("the minimum")?;
            statement.punct('|', "`|`")?;
            let maximum = statement.float("the maximum")?;
            statement.punct(']', "`]`")?;
            let unit = statement.string("the unit")?;
            let mut receivers = Vec::new();
            while !statement.at_end() {
                if let Ok(receiver) = statement.ident("") {
                    if receiver != NO_NODE {
                        receivers.push(receiver.to_owned());
                    }
                } else {
                    statement.pos += 1;
                }
            }
            Ok((
                name, indicator, start, size, byte_order, value_type, factor, offset, minimum, maximum, unit, receivers,
            ))
        })();
        let (name, indicator, start, size, byte_order, value_type, factor, offset, minimum, maximum, unit, receivers) =
            match parsed {
                Ok(parsed) => parsed,
                Err(malformed) => {
                    self.warn_malformed(line, malformed);
                    return;
                }
            };
        if let Some(text) = bad_indicator {
            self.warn(line, format!("signal \"{name}\": multiplexer indicator `{text}` is not M, m<number> or m<number>M; taken as a plain signal"));
        }
        let message_name = self.database.messages[message].name.clone();
        if !(1..=64).contains(&size) {
            self.warn(line, format!("signal \"{name}\" of message \"{message_name}\" has length {size}; it must be 1 to 64 bits; ignored"));
            return;
        }
        if start >= 64 * 8 {
            self.warn(
                line,
                format!(
                    "signal \"{name}\" of message \"{message_name}\" starts at bit {start}, beyond 64 bytes; ignored"
                ),
            );
            return;
        }
        if let Some(other) = self.database.messages[message].signals.iter().find(|signal| signal.name == name) {
            let other_line = other.line;
            self.warn(
                line,
                format!("message \"{message_name}\" already has a signal \"{name}\" (line {other_line}); ignored"),
            );
            return;
        }
        let layout = Layout::new(start as u32, size as u32, byte_order);
        let message_size = self.database.messages[message].size;
        if layout.end() > message_size || (byte_order == ByteOrder::LittleEndian && start + size > 64 * 8) {
            self.warn(
                line,
                format!(
                    "signal \"{name}\" of message \"{message_name}\" needs {} bytes, more than the message's {message_size}",
                    layout.end()
                ),
            );
        }
        self.indicators[message].push(indicator);
        self.database.messages[message].signals.push(Signal {
            name: name.to_owned(),
            start_bit: start as u32,
            size: size as u32,
            byte_order,
            value_type,
            factor,
            offset,
            minimum,
            maximum,
            unit,
            receivers,
            initial_raw: None,
            labels: Vec::new(),
            is_multiplexer: indicator.multiplexer,
            multiplexed_by: None,
            comment: None,
            line,
            layout,
            integer_scaling: None,
            mux_slot: None,
        });
    }

    /// A statement ending with `;`: the tokens between the keyword at `pos` and `end`.
    fn terminated_statement(&mut self, tokens: &[Token<'_>], keyword: &'static str, pos: usize, end: usize) {
        let line = tokens[pos].line;
        let tokens = &tokens[pos + 1..end];
        let mut statement = Statement::new(keyword, tokens);
        let result = match keyword {
            "CM_" => self.comment(&mut statement, line),
            "BA_DEF_" => self.attribute_definition(&mut statement),
            "BA_DEF_DEF_" => self.attribute_default(&mut statement),
            "BA_" => self.attribute(&mut statement, line),
            "VAL_" => self.value_labels(&mut statement, line),
            "VAL_TABLE_" => self.value_table(&mut statement),
            "SIG_VALTYPE_" => self.value_type(&mut statement, line),
            "SG_MUL_VAL_" => self.mux_values(&mut statement, line),
            "BO_TX_BU_" => self.transmitters(&mut statement, line),
            // Environment variables, signal types and groups, relations, categories: not on the bus.
            _ => Ok(()),
        };
        if let Err(malformed) = result {
            self.warn_malformed(line, malformed);
        }
    }

    fn target(statement: &mut Statement<'_, '_>) -> Result<Target, Malformed> {
        if statement.eat_ident("BU_") || statement.eat_ident("EV_") {
            statement.ident("a name")?;
            return Ok(Target::Node);
        }
        if statement.eat_ident("BO_") {
            return Ok(Target::Message(statement.id()?));
        }
        if statement.eat_ident("SG_") {
            let id = statement.id()?;
            let name = statement.ident("a signal name")?;
            return Ok(Target::Signal(id, name.to_owned()));
        }
        if statement.peek().and_then(Token::ident).is_some() {
            // BA_ on relations and other object kinds.
            return Ok(Target::Other);
        }
        Ok(Target::Database)
    }

    fn comment(&mut self, statement: &mut Statement<'_, '_>, line: usize) -> Result<(), Malformed> {
        let target = Self::target(statement)?;
        let text = statement.string("the comment string")?;
        self.comments.push((line, target, text));
        Ok(())
    }

    fn attribute_definition(&mut self, statement: &mut Statement<'_, '_>) -> Result<(), Malformed> {
        for kind in ["BU_", "BO_", "SG_", "EV_"] {
            if statement.eat_ident(kind) {
                break;
            }
        }
        let name = statement.string("the attribute name")?;
        let kind = statement.ident("the attribute type")?;
        if kind == "ENUM" {
            let mut values = Vec::new();
            while !statement.at_end() {
                if statement.eat_punct(',') {
                    continue;
                }
                values.push(statement.string("an enumeration value")?);
            }
            self.enums.insert(name, values);
        }
        Ok(())
    }

    fn attribute_value(statement: &mut Statement<'_, '_>) -> Result<AttributeValue, Malformed> {
        if let Some(Kind::Number(text)) = statement.peek().map(|token| &token.kind) {
            let text = text.to_string();
            let value = statement.float("an attribute value")?;
            return Ok(AttributeValue::Number(value, text));
        }
        Ok(AttributeValue::Text(statement.string("an attribute value")?))
    }

    fn attribute_default(&mut self, statement: &mut Statement<'_, '_>) -> Result<(), Malformed> {
        let name = statement.string("the attribute name")?;
        let value = Self::attribute_value(statement)?;
        self.defaults.insert(name, value);
        Ok(())
    }

    fn attribute(&mut self, statement: &mut Statement<'_, '_>, line: usize) -> Result<(), Malformed> {
        let name = statement.string("the attribute name")?;
        let target = Self::target(statement)?;
        if matches!(target, Target::Other) {
            return Ok(());
        }
        let value = Self::attribute_value(statement)?;
        self.attributes.push((line, name, target, value));
        Ok(())
    }

    fn labels(statement: &mut Statement<'_, '_>) -> Result<Vec<(i128, String)>, Malformed> {
        let mut labels = Vec::new();
        while !statement.at_end() {
            let value = statement.integer("a raw value")?;
            let label = statement.string("a value label")?;
            labels.push((value, label));
        }
        Ok(labels)
    }

    fn value_labels(&mut self, statement: &mut Statement<'_, '_>, line: usize) -> Result<(), Malformed> {
        if statement.peek().and_then(Token::ident).is_some() {
            // Labels of an environment variable.
            return Ok(());
        }
        let id = statement.id()?;
        let signal = statement.ident("a signal name")?;
        let labels = Self::labels(statement)?;
        self.value_labels.push(SignalStatement { line, id, signal: signal.to_owned(), content: labels });
        Ok(())
    }

    fn value_table(&mut self, statement: &mut Statement<'_, '_>) -> Result<(), Malformed> {
        let name = statement.ident("a value table name")?;
        let mut labels = Self::labels(statement)?;
        labels.sort_by_key(|(value, _)| *value);
        self.database.value_tables.insert(name.to_owned(), labels);
        Ok(())
    }

    fn value_type(&mut self, statement: &mut Statement<'_, '_>, line: usize) -> Result<(), Malformed> {
        let id = statement.id()?;
        let signal = statement.ident("a signal name")?;
        statement.eat_punct(':');
        let kind = statement.unsigned("0, 1 or 2")?;
        self.value_types.push((line, id, signal.to_owned(), kind as u32));
        Ok(())
    }

    fn mux_values(&mut self, statement: &mut Statement<'_, '_>, line: usize) -> Result<(), Malformed> {
        let id = statement.id()?;
        let signal = statement.ident("a signal name")?;
        let multiplexer = statement.ident("a multiplexer signal name")?;
        let mut ranges = Vec::new();
        while !statement.at_end() {
            if statement.eat_punct(',') {
                continue;
            }
            let low = statement.unsigned("a multiplexer value")?;
            statement.punct('-', "`-`")?;
            let high = statement.unsigned("a multiplexer value")?;
            ranges.push((low, high));
        }
        self.mux_ranges.push(SignalStatement {
            line,
            id,
            signal: signal.to_owned(),
            content: (multiplexer.to_owned(), ranges),
        });
        Ok(())
    }

    fn transmitters(&mut self, statement: &mut Statement<'_, '_>, line: usize) -> Result<(), Malformed> {
        let id = statement.id()?;
        statement.punct(':', "`:`")?;
        let mut nodes = Vec::new();
        while !statement.at_end() {
            if statement.eat_punct(',') {
                continue;
            }
            nodes.push(statement.ident("a node name")?.to_owned());
        }
        self.transmitters.push((line, id, nodes));
        Ok(())
    }

    /// Finds the message with a DBC identifier, warning when there is none.
    fn find_message(&mut self, line: usize, what: &str, id: u32) -> Option<usize> {
        let found = self.by_dbc_id.get(&id).copied();
        if found.is_none() && id != INDEPENDENT_SIGNALS_ID {
            self.warn(line, format!("{what} for unknown message {id}; ignored"));
        }
        found
    }

    /// Finds a signal, warning when there is none.
    fn find_signal(&mut self, line: usize, what: &str, id: u32, name: &str) -> Option<(usize, usize)> {
        let message = self.find_message(line, what, id)?;
        let found = self.database.messages[message].signals.iter().position(|signal| signal.name == name);
        if found.is_none() {
            let message_name = &self.database.messages[message].name;
            let text = format!("{what} for unknown signal \"{name}\" of message \"{message_name}\"; ignored");
            self.warn(line, text);
        }
        Some((message, found?))
    }

    /// Applies the statements that refer to messages and signals, and resolves multiplexing.
    fn finish(&mut self) {
        for (line, id, name, kind) in std::mem::take(&mut self.value_types) {
            let Some((message, index)) = self.find_signal(line, "SIG_VALTYPE_", id, &name) else { continue };
            let signal = &mut self.database.messages[message].signals[index];
            let (value_type, bits) = match kind {
                0 => (
                    if signal.value_type == ValueType::Signed { ValueType::Signed } else { ValueType::Unsigned },
                    signal.size,
                ),
                1 => (ValueType::Float32, 32),
                2 => (ValueType::Float64, 64),
                _ => {
                    self.warn(line, format!("SIG_VALTYPE_ for signal \"{name}\": unknown value type {kind}; ignored"));
                    continue;
                }
            };
            if signal.size != bits {
                let size = signal.size;
                let text = format!(
                    "SIG_VALTYPE_ for signal \"{name}\": a float of type {kind} needs {bits} bits, the signal has {size}; ignored"
                );
                self.warn(line, text);
                continue;
            }
            signal.value_type = value_type;
        }
        for SignalStatement { line, id, signal: name, content: mut labels } in std::mem::take(&mut self.value_labels) {
            let Some((message, index)) = self.find_signal(line, "VAL_", id, &name) else { continue };
            labels.sort_by_key(|(value, _)| *value);
            labels.dedup_by_key(|(value, _)| *value);
            self.database.messages[message].signals[index].labels = labels;
        }
        for (line, target, text) in std::mem::take(&mut self.comments) {
            match target {
                Target::Message(id) => {
                    if let Some(message) = self.find_message(line, "CM_", id) {
                        self.database.messages[message].comment = Some(text);
                    }
                }
                Target::Signal(id, name) => {
                    if let Some((message, index)) = self.find_signal(line, "CM_", id, &name) {
                        self.database.messages[message].signals[index].comment = Some(text);
                    }
                }
                Target::Database | Target::Node | Target::Other => {}
            }
        }
        for (line, id, nodes) in std::mem::take(&mut self.transmitters) {
            if let Some(message) = self.find_message(line, "BO_TX_BU_", id) {
                let senders = &mut self.database.messages[message].senders;
                for node in nodes {
                    if node != NO_NODE && !senders.contains(&node) {
                        senders.push(node);
                    }
                }
            }
        }
        self.apply_attributes();
        for SignalStatement { line, id, signal: name, content: (multiplexer, ranges) } in
            std::mem::take(&mut self.mux_ranges)
        {
            let Some((message, index)) = self.find_signal(line, "SG_MUL_VAL_", id, &name) else { continue };
            let signals = &self.database.messages[message].signals;
            let Some(mux_index) = signals.iter().position(|signal| signal.name == multiplexer && signal.is_multiplexer)
            else {
                let message_name = &self.database.messages[message].name;
                let text = format!(
                    "SG_MUL_VAL_ for signal \"{name}\": \"{multiplexer}\" is not a multiplexer signal of message \"{message_name}\"; ignored"
                );
                self.warn(line, text);
                continue;
            };
            self.database.messages[message].signals[index].multiplexed_by =
                Some(MuxCondition { multiplexer, ranges, index: mux_index, slot: 0 });
        }
        for message in 0..self.database.messages.len() {
            self.resolve_multiplexing(message);
            for signal in &mut self.database.messages[message].signals {
                signal.integer_scaling = integer_scaling(signal);
            }
        }
    }

    fn apply_attributes(&mut self) {
        let frame_format_default = match self.defaults.get("VFrameFormat") {
            Some(AttributeValue::Text(text)) => Some(text.clone()),
            _ => None,
        };
        let cycle_time_default = match self.defaults.get("GenMsgCycleTime") {
            Some(AttributeValue::Number(value, _)) => Some(*value),
            _ => None,
        };
        let mut frame_formats: HashMap<usize, String> = HashMap::new();
        let mut cycle_times: HashMap<usize, f64> = HashMap::new();
        for (line, name, target, value) in std::mem::take(&mut self.attributes) {
            match (name.as_str(), target) {
                ("VFrameFormat", Target::Message(id)) => {
                    let Some(message) = self.find_message(line, "BA_ \"VFrameFormat\"", id) else { continue };
                    let format = match value {
                        AttributeValue::Text(text) => Some(text),
                        AttributeValue::Number(index, _) => {
                            self.enums.get("VFrameFormat").and_then(|values| values.get(index as usize)).cloned()
                        }
                    };
                    match format {
                        Some(format) => {
                            frame_formats.insert(message, format);
                        }
                        None => self.warn(
                            line,
                            "BA_ \"VFrameFormat\": the value is not one of the BA_DEF_ enumeration; ignored".to_owned(),
                        ),
                    }
                }
                ("GenMsgCycleTime", Target::Message(id)) => {
                    let Some(message) = self.find_message(line, "BA_ \"GenMsgCycleTime\"", id) else { continue };
                    if let AttributeValue::Number(value, _) = value {
                        cycle_times.insert(message, value);
                    }
                }
                ("GenSigStartValue", Target::Signal(id, signal_name)) => {
                    let what = "BA_ \"GenSigStartValue\"";
                    let Some((message, index)) = self.find_signal(line, what, id, &signal_name) else { continue };
                    let signal = &mut self.database.messages[message].signals[index];
                    let AttributeValue::Number(value, text) = value else { continue };
                    match initial_raw(signal, value, &text) {
                        Some(raw) => signal.initial_raw = Some(raw),
                        None => {
                            let size = signal.size;
                            let text =
                                format!("{what}: {text} does not fit signal \"{signal_name}\" ({size} bits); ignored");
                            self.warn(line, text);
                        }
                    }
                }
                (_, Target::Message(id)) => {
                    self.find_message(line, "BA_", id);
                }
                (_, Target::Signal(id, signal_name)) => {
                    self.find_signal(line, "BA_", id, &signal_name);
                }
                _ => {}
            }
        }
        for (index, message) in self.database.messages.iter_mut().enumerate() {
            let format = frame_formats.get(&index).or(frame_format_default.as_ref());
            if format.is_some_and(|format| format == "StandardCAN_FD" || format == "ExtendedCAN_FD") {
                message.fd = true;
            }
            let cycle_time = cycle_times.get(&index).copied().or(cycle_time_default);
            message.cycle_time_ms =
                cycle_time.filter(|time| *time > 0.0 && *time <= f64::from(u32::MAX)).map(|time| time as u32);
        }
    }

    /// Links multiplexed signals to their multiplexer, orders decoding (multiplexers first) and
    /// numbers the multiplexers.
    fn resolve_multiplexing(&mut self, message_index: usize) {
        let indicators = std::mem::take(&mut self.indicators[message_index]);
        let mut warnings = Vec::new();
        let message = &mut self.database.messages[message_index];
        let multiplexers: Vec<usize> =
            (0..message.signals.len()).filter(|&i| message.signals[i].is_multiplexer).collect();
        for (index, indicator) in indicators.iter().enumerate() {
            let Some(value) = indicator.value else { continue };
            if message.signals[index].multiplexed_by.is_some() {
                // SG_MUL_VAL_ gave the multiplexer and values.
                continue;
            }
            let candidates: Vec<usize> = multiplexers.iter().copied().filter(|&m| m != index).collect();
            let signal = &message.signals[index];
            match candidates.as_slice() {
                [] => warnings.push((
                    signal.line,
                    format!(
                        "signal \"{}\" is multiplexed (m{value}) but message \"{}\" has no multiplexer signal; taken as always present",
                        signal.name, message.name
                    ),
                )),
                [mux, rest @ ..] => {
                    if !rest.is_empty() {
                        warnings.push((
                            signal.line,
                            format!(
                                "signal \"{}\" (m{value}) has no SG_MUL_VAL_ and message \"{}\" has several multiplexers; taken as selected by \"{}\"",
                                signal.name, message.name, message.signals[*mux].name
                            ),
                        ));
                    }
                    let multiplexer = message.signals[*mux].name.clone();
                    message.signals[index].multiplexed_by =
                        Some(MuxCondition { multiplexer, ranges: vec![(value, value)], index: *mux, slot: 0 });
                }
            }
        }
        // Order: each signal after its multiplexer; break cycles.
        let count = message.signals.len();
        let mut order = Vec::with_capacity(count);
        let mut state = vec![0u8; count]; // 0 = new, 1 = in progress, 2 = done
        for start in 0..count {
            let mut chain = Vec::new();
            let mut current = start;
            while state[current] == 0 {
                state[current] = 1;
                chain.push(current);
                match &message.signals[current].multiplexed_by {
                    Some(condition) => {
                        let next = condition.index;
                        if state[next] == 1 {
                            let signal = &message.signals[current];
                            warnings.push((
                                signal.line,
                                format!(
                                    "signal \"{}\": its multiplexer \"{}\" depends on it; taken as always present",
                                    signal.name, condition.multiplexer
                                ),
                            ));
                            message.signals[current].multiplexed_by = None;
                            break;
                        }
                        current = next;
                    }
                    None => break,
                }
            }
            for &index in chain.iter().rev() {
                state[index] = 2;
                order.push(index);
            }
        }
        // Number the multiplexers that select something.
        let mut slots: HashMap<usize, usize> = HashMap::new();
        let mut dropped = HashSet::new();
        for index in order.clone() {
            let Some(condition) = &message.signals[index].multiplexed_by else { continue };
            let mux = condition.index;
            let next = slots.len();
            let slot = match slots.get(&mux) {
                Some(&slot) => slot,
                None if next < MAX_MULTIPLEXERS => {
                    slots.insert(mux, next);
                    next
                }
                None => {
                    if dropped.insert(mux) {
                        let signal = &message.signals[mux];
                        warnings.push((
                            signal.line,
                            format!(
                                "message \"{}\" has more than {MAX_MULTIPLEXERS} multiplexers; \"{}\" is taken as a plain signal",
                                message.name, signal.name
                            ),
                        ));
                    }
                    message.signals[index].multiplexed_by = None;
                    continue;
                }
            };
            if let Some(condition) = &mut message.signals[index].multiplexed_by {
                condition.slot = slot;
            }
        }
        for (&mux, &slot) in &slots {
            message.signals[mux].mux_slot = Some(slot);
        }
        message.decode_order = order;
        for (line, text) in warnings {
            self.warn(line, text);
        }
    }
}

/// `M` → multiplexer, `m3` → multiplexed by value 3, `m3M` → both.
fn parse_indicator(text: &str) -> Option<Indicator> {
    if text == "M" {
        return Some(Indicator { multiplexer: true, value: None });
    }
    let rest = text.strip_prefix('m')?;
    let (digits, multiplexer) = match rest.strip_suffix('M') {
        Some(digits) => (digits, true),
        None => (rest, false),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Indicator { multiplexer, value: Some(digits.parse().ok()?) })
}

/// An integer written in decimal, possibly as `12.0` or `1E3`.
fn parse_integer(text: &str) -> Option<i128> {
    if let Ok(value) = text.trim_start_matches('+').parse::<i128>() {
        return Some(value);
    }
    let value: f64 = text.parse().ok()?;
    (value.fract() == 0.0 && value.abs() < 1e38).then_some(value as i128)
}

/// `GenSigStartValue` as a raw value of the signal's type, `None` if it does not fit.
fn initial_raw(signal: &Signal, value: f64, text: &str) -> Option<Raw> {
    match signal.value_type {
        ValueType::Float32 | ValueType::Float64 => Some(Raw::Float(value)),
        ValueType::Unsigned => {
            let raw = parse_integer(text)?;
            let max = if signal.size >= 64 { i128::from(u64::MAX) } else { (1i128 << signal.size) - 1 };
            (0..=max).contains(&raw).then_some(Raw::Unsigned(raw as u64))
        }
        ValueType::Signed => {
            let raw = parse_integer(text)?;
            let half = 1i128 << (signal.size - 1);
            // Some tools write the unsigned bit pattern of a negative start value.
            let raw = if raw >= half && raw < 2 * half { raw - 2 * half } else { raw };
            (-half..half).contains(&raw).then_some(Raw::Signed(raw as i64))
        }
    }
}

/// Factor and offset as integers when the signal decodes to whole numbers (as cantools decides).
fn integer_scaling(signal: &Signal) -> Option<(i128, i128)> {
    let whole = |value: f64| value.is_finite() && value.fract() == 0.0 && value.abs() < 1e30;
    let integer_type = matches!(signal.value_type, ValueType::Unsigned | ValueType::Signed);
    (integer_type && whole(signal.factor) && whole(signal.offset))
        .then_some((signal.factor as i128, signal.offset as i128))
}

/// The index of the first token of the line after the one of token `pos`.
fn line_end(tokens: &[Token<'_>], pos: usize) -> usize {
    let mut end = pos + 1;
    while end < tokens.len() && !tokens[end].first_on_line {
        end += 1;
    }
    end
}
