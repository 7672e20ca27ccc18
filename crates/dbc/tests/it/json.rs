//! A minimal JSON reader for the expected-decode files (the crate does not depend on serde_json).

use std::collections::BTreeMap;

/// A JSON value; numbers keep their text so that integers and floats can be told apart exactly.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(BTreeMap<String, Json>),
}

impl Json {
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(map) => map.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(value) => Some(*value),
            _ => None,
        }
    }

    pub fn as_number(&self) -> Option<&str> {
        match self {
            Json::Number(text) => Some(text),
            _ => None,
        }
    }
}

/// Parses one JSON document (Python's `NaN`, `Infinity` and `-Infinity` included).
pub fn parse(text: &str) -> Result<Json, String> {
    let mut parser = Parser { bytes: text.as_bytes(), pos: 0 };
    let value = parser.value()?;
    parser.spaces();
    if parser.pos != parser.bytes.len() {
        return Err(format!("trailing text at {}", parser.pos));
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn spaces(&mut self) {
        while self.pos < self.bytes.len() && self.bytes[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, text: &str) -> bool {
        if self.bytes[self.pos..].starts_with(text.as_bytes()) {
            self.pos += text.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.spaces();
        let Some(&byte) = self.bytes.get(self.pos) else { return Err("unexpected end".into()) };
        match byte {
            b'{' => {
                self.pos += 1;
                let mut map = BTreeMap::new();
                self.spaces();
                if self.eat("}") {
                    return Ok(Json::Object(map));
                }
                loop {
                    self.spaces();
                    let Json::String(key) = self.value()? else { return Err(format!("key expected at {}", self.pos)) };
                    self.spaces();
                    if !self.eat(":") {
                        return Err(format!("`:` expected at {}", self.pos));
                    }
                    let value = self.value()?;
                    map.insert(key, value);
                    self.spaces();
                    if self.eat("}") {
                        return Ok(Json::Object(map));
                    }
                    if !self.eat(",") {
                        return Err(format!("`,` expected at {}", self.pos));
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                self.spaces();
                if self.eat("]") {
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value()?);
                    self.spaces();
                    if self.eat("]") {
                        return Ok(Json::Array(items));
                    }
                    if !self.eat(",") {
                        return Err(format!("`,` expected at {}", self.pos));
                    }
                }
            }
            b'"' => {
                self.pos += 1;
                let mut text = String::new();
                loop {
                    let Some(&byte) = self.bytes.get(self.pos) else { return Err("unterminated string".into()) };
                    self.pos += 1;
                    match byte {
                        b'"' => return Ok(Json::String(text)),
                        b'\\' => {
                            let escape = self.bytes.get(self.pos).copied().ok_or("bad escape")?;
                            self.pos += 1;
                            match escape {
                                b'n' => text.push('\n'),
                                b't' => text.push('\t'),
                                b'r' => text.push('\r'),
                                b'u' => {
                                    let hex = std::str::from_utf8(&self.bytes[self.pos..self.pos + 4])
                                        .map_err(|e| e.to_string())?;
                                    let code = u32::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
                                    text.push(char::from_u32(code).unwrap_or('\u{FFFD}'));
                                    self.pos += 4;
                                }
                                other => text.push(other as char),
                            }
                        }
                        _ => {
                            // Copy a whole UTF-8 sequence.
                            let start = self.pos - 1;
                            let mut end = self.pos;
                            while end < self.bytes.len() && (self.bytes[end] & 0xC0) == 0x80 {
                                end += 1;
                            }
                            text.push_str(std::str::from_utf8(&self.bytes[start..end]).map_err(|e| e.to_string())?);
                            self.pos = end;
                        }
                    }
                }
            }
            _ if self.eat("true") => Ok(Json::Bool(true)),
            _ if self.eat("false") => Ok(Json::Bool(false)),
            _ if self.eat("null") => Ok(Json::Null),
            _ if self.eat("NaN") => Ok(Json::Number("NaN".into())),
            _ if self.eat("Infinity") => Ok(Json::Number("inf".into())),
            _ if self.eat("-Infinity") => Ok(Json::Number("-inf".into())),
            _ => {
                let start = self.pos;
                while self.pos < self.bytes.len()
                    && matches!(self.bytes[self.pos], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E')
                {
                    self.pos += 1;
                }
                if start == self.pos {
                    return Err(format!("unexpected `{}` at {start}", byte as char));
                }
                Ok(Json::Number(String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned()))
            }
        }
    }
}
