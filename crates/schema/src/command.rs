//! Strict command parsing. A command that is too large, not JSON, of the wrong shape, or whose
//! arguments do not fit the device's command spec is refused with a [`CommandError`] naming the
//! field, what was expected and what came; it never reaches the bus.

use std::collections::BTreeMap;

use device::{CommandSpec, Description, ParamKind, Value};
use serde_json::{Map, Value as Json};

use crate::payload::{ErrorKind, ReplyError, Version};

/// Largest command payload accepted, in bytes.
pub const MAX_COMMAND_BYTES: usize = 4096;

/// Longest `id` and `action`.
const MAX_NAME_CHARS: usize = 64;

/// A command that passed the envelope checks; its arguments are checked with [`Command::args_for`].
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    pub id: Option<String>,
    pub action: String,
    pub args: Map<String, Json>,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    pub kind: ErrorKind,
    pub message: String,
    pub field: Option<String>,
    pub expected: Option<String>,
    pub got: Option<String>,
    /// The id, when it could be read before the error, so the reply can carry it.
    pub id: Option<String>,
    /// The action, when it could be read before the error.
    pub action: Option<String>,
}

impl CommandError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), field: None, expected: None, got: None, id: None, action: None }
    }

    fn field(kind: ErrorKind, field: &str, expected: impl Into<String>, got: impl Into<String>) -> Self {
        let (expected, got) = (expected.into(), got.into());
        Self {
            kind,
            message: format!("field `{field}`: expected {expected}, got {got}"),
            field: Some(field.to_owned()),
            expected: Some(expected),
            got: Some(got),
            id: None,
            action: None,
        }
    }

    /// An error about a command that was read, carrying its id and action for the reply.
    pub fn about(command: &Command, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { id: command.id.clone(), action: Some(command.action.clone()), ..Self::new(kind, message) }
    }

    /// A command that was read but cannot run now (the bus is busy, its thread or task has
    /// stopped), for the command with this id and action.
    pub fn unavailable(id: Option<String>, action: String, message: impl Into<String>) -> Self {
        Self { id, action: Some(action), ..Self::new(ErrorKind::Unavailable, message) }
    }

    /// A command published with the retain flag would run again at every gateway restart and
    /// resubscription, so it is refused.
    pub fn check_not_retained(command: &Command, retain: bool) -> Result<(), CommandError> {
        if !retain {
            return Ok(());
        }
        Err(CommandError {
            expected: Some("retain = false".into()),
            got: Some("retain = true".into()),
            ..Self::about(command, ErrorKind::InvalidCommand, "commands must not be published with the retain flag")
        })
    }

    /// The error part of the reply.
    pub fn to_reply_error(&self) -> ReplyError {
        ReplyError {
            kind: self.kind,
            message: self.message.clone(),
            field: self.field.clone(),
            expected: self.expected.clone(),
            got: self.got.clone(),
        }
    }
}

/// A short description of a JSON value for error messages: its type and, if short, its text.
fn describe(value: &Json) -> String {
    let text = value.to_string();
    let kind = match value {
        Json::Null => return "null".into(),
        Json::Bool(_) => "boolean",
        Json::Number(n) if n.is_f64() => "number",
        Json::Number(_) => "integer",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    };
    if text.len() <= 40 { format!("{kind} {text}") } else { format!("{kind} of {} bytes", text.len()) }
}

fn name_field(object: &Map<String, Json>, field: &str, required: bool) -> Result<Option<String>, CommandError> {
    match object.get(field) {
        None if required => Err(CommandError::field(ErrorKind::InvalidCommand, field, "a string", "nothing")),
        None => Ok(None),
        Some(Json::String(s))
            if !s.is_empty() && s.chars().count() <= MAX_NAME_CHARS && !s.chars().any(char::is_control) =>
        {
            Ok(Some(s.clone()))
        }
        Some(other) => Err(CommandError::field(
            ErrorKind::InvalidCommand,
            field,
            format!("a string of 1 to {MAX_NAME_CHARS} printable characters"),
            describe(other),
        )),
    }
}

impl Command {
    /// Parses a command payload strictly: size, JSON, version, known fields and their types.
    pub fn parse(payload: &[u8]) -> Result<Command, CommandError> {
        if payload.len() > MAX_COMMAND_BYTES {
            return Err(CommandError {
                expected: Some(format!("at most {MAX_COMMAND_BYTES} bytes")),
                got: Some(format!("{} bytes", payload.len())),
                ..CommandError::new(
                    ErrorKind::TooLarge,
                    format!("command of {} bytes is larger than the limit of {MAX_COMMAND_BYTES} bytes", payload.len()),
                )
            });
        }
        let json: Json = serde_json::from_slice(payload).map_err(|error| {
            CommandError::new(ErrorKind::InvalidJson, format!("the command is not valid JSON: {error}"))
        })?;
        let Json::Object(mut object) = json else {
            return Err(CommandError::field(ErrorKind::InvalidCommand, "(payload)", "a JSON object", describe(&json)));
        };
        // Read id and action first so that later errors can still be correlated.
        let id = name_field(&object, "id", false)?;
        let with_id = |mut error: CommandError| {
            error.id.clone_from(&id);
            error
        };
        let action = name_field(&object, "action", true).map_err(with_id)?;
        let with_both = |mut error: CommandError| {
            error.id.clone_from(&id);
            error.action.clone_from(&action);
            error
        };
        match object.get("v") {
            Some(Json::Number(n)) if n.as_u64() == Some(Version::NUMBER) => {}
            Some(other) => {
                return Err(with_both(CommandError::field(ErrorKind::InvalidCommand, "v", "1", describe(other))));
            }
            None => return Err(with_both(CommandError::field(ErrorKind::InvalidCommand, "v", "1", "nothing"))),
        }
        if let Some(unknown) = object.keys().find(|k| !["v", "id", "action", "args"].contains(&k.as_str())) {
            return Err(with_both(CommandError::field(
                ErrorKind::InvalidCommand,
                unknown,
                "no such field (fields are v, id, action, args)",
                describe(&object[unknown.as_str()]),
            )));
        }
        let args = match object.remove("args") {
            None => Map::new(),
            Some(Json::Object(args)) => args,
            Some(other) => {
                return Err(with_both(CommandError::field(
                    ErrorKind::InvalidCommand,
                    "args",
                    "an object of named arguments",
                    describe(&other),
                )));
            }
        };
        Ok(Command { id, action: action.unwrap_or_default(), args })
    }

    /// Checks the action and arguments against the device's description and converts them.
    pub fn args_for(&self, description: &Description) -> Result<device::Args, CommandError> {
        let with_ids = |mut error: CommandError| {
            error.id.clone_from(&self.id);
            error.action = Some(self.action.clone());
            error
        };
        let Some(spec) = description.command(&self.action) else {
            let known: Vec<&str> = description.commands.iter().map(|c| c.action).collect();
            let expected = if known.is_empty() {
                "nothing: this device takes no commands".to_owned()
            } else {
                format!("one of {}", known.join(", "))
            };
            return Err(with_ids(CommandError {
                kind: ErrorKind::UnknownAction,
                message: format!("{} has no action {:?}; expected {expected}", description.model, self.action),
                field: Some("action".into()),
                expected: Some(expected),
                got: Some(format!("{:?}", self.action)),
                id: None,
                action: None,
            }));
        };
        check_args(spec, &self.args).map_err(with_ids)
    }
}

fn check_args(spec: &CommandSpec, args: &Map<String, Json>) -> Result<device::Args, CommandError> {
    if let Some((name, value)) = args.iter().find(|(name, _)| !spec.params.iter().any(|p| p.name == name.as_str())) {
        let known: Vec<&str> = spec.params.iter().map(|p| p.name).collect();
        let expected = if known.is_empty() {
            format!("no arguments for {}", spec.action)
        } else {
            format!("no such argument ({} takes {})", spec.action, known.join(", "))
        };
        return Err(CommandError::field(
            ErrorKind::InvalidArgument,
            &format!("args.{name}"),
            expected,
            describe(value),
        ));
    }
    let mut out = BTreeMap::new();
    for param in &spec.params {
        let field = format!("args.{}", param.name);
        let Some(json) = args.get(param.name) else {
            if param.required {
                return Err(CommandError::field(ErrorKind::InvalidArgument, &field, param.kind.to_string(), "nothing"));
            }
            continue;
        };
        let wrong = || CommandError::field(ErrorKind::InvalidArgument, &field, param.kind.to_string(), describe(json));
        let value = match (&param.kind, json) {
            (ParamKind::Bool, Json::Bool(b)) => Value::Bool(*b),
            (ParamKind::Int { min, max }, Json::Number(n)) => {
                let i = n.as_i64().ok_or_else(wrong)?;
                if i < *min || i > *max {
                    return Err(wrong());
                }
                Value::Int(i)
            }
            (ParamKind::Float { min, max }, Json::Number(n)) => {
                let f = n.as_f64().ok_or_else(wrong)?;
                if !f.is_finite() || f < *min || f > *max {
                    return Err(wrong());
                }
                Value::Float(f)
            }
            (ParamKind::Choice(words), Json::String(s)) if words.contains(&s.as_str()) => Value::Text(s.clone()),
            (ParamKind::Text { max_chars }, Json::String(s)) => {
                let count = s.chars().count();
                if count == 0 || count > *max_chars || s.chars().any(char::is_control) {
                    return Err(wrong());
                }
                Value::Text(s.clone())
            }
            (ParamKind::Hex { max_bytes }, Json::String(s)) => {
                let bytes = parse_hex(s).ok_or_else(wrong)?;
                if bytes.is_empty() || bytes.len() > *max_bytes {
                    return Err(wrong());
                }
                Value::Bytes(bytes)
            }
            _ => return Err(wrong()),
        };
        out.insert(param.name.to_owned(), value);
    }
    Ok(device::Args(out))
}

/// Parses a hex string (`"9f00"`, `"9F 00"`); `None` for anything else.
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b' ').collect();
    // from_str_radix alone would also take a sign ("+f").
    if !digits.len().is_multiple_of(2) || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}
