//! Splits DBC text into tokens that remember their line and column.

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind<'a> {
    /// A keyword or name: letters, digits and `_`, not starting with a digit.
    Ident(&'a str),
    /// A decimal number, with an optional sign, fraction and exponent.
    Number(&'a str),
    /// A quoted string, unescaped; may span lines.
    Str(String),
    /// Any other character.
    Punct(char),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token<'a> {
    pub(crate) kind: Kind<'a>,
    /// Line number, from 1.
    pub(crate) line: usize,
    /// Column (bytes from 1).
    pub(crate) column: usize,
    /// The first token of its line.
    pub(crate) first_on_line: bool,
}

impl Token<'_> {
    pub(crate) fn ident(&self) -> Option<&str> {
        match &self.kind {
            Kind::Ident(text) => Some(text),
            _ => None,
        }
    }

    pub(crate) fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct(c)
    }

    /// How the token reads in a warning.
    pub(crate) fn describe(&self) -> String {
        match &self.kind {
            Kind::Ident(text) | Kind::Number(text) => format!("`{text}`"),
            Kind::Str(text) => format!("\"{text}\""),
            Kind::Punct(c) => format!("`{c}`"),
        }
    }
}

/// The tokens of `text`, and the lines of unterminated strings (each taken to end at its line's end).
pub(crate) fn tokenize(text: &str) -> (Vec<Token<'_>>, Vec<usize>) {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut unterminated = Vec::new();
    let mut pos = 0;
    let mut line = 1;
    let mut line_start = 0;
    let mut first_on_line = true;
    while pos < bytes.len() {
        let byte = bytes[pos];
        if byte == b'\n' {
            line += 1;
            pos += 1;
            line_start = pos;
            first_on_line = true;
            continue;
        }
        if byte.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        if bytes[pos..].starts_with(b"//") {
            // A comment to the end of the line, as some tools write them.
            pos = text[pos..].find('\n').map_or(text.len(), |offset| pos + offset);
            continue;
        }
        let column = pos - line_start + 1;
        let start = pos;
        let start_line = line;
        let kind = if byte == b'"' {
            let mut value = String::new();
            pos += 1;
            let mut closed = false;
            let mut chunk_start = pos;
            while pos < bytes.len() {
                match bytes[pos] {
                    b'"' => {
                        value.push_str(&text[chunk_start..pos]);
                        pos += 1;
                        closed = true;
                        break;
                    }
                    b'\\' if pos + 1 < bytes.len() && matches!(bytes[pos + 1], b'"' | b'\\') => {
                        value.push_str(&text[chunk_start..pos]);
                        value.push(bytes[pos + 1] as char);
                        pos += 2;
                        chunk_start = pos;
                    }
                    b'\n' => {
                        line += 1;
                        pos += 1;
                        line_start = pos;
                    }
                    _ => pos += 1,
                }
            }
            if !closed {
                // No closing quote until the end of the file: take the rest of the opening line only,
                // so that one stray quote does not swallow the file.
                let end = text[start..].find('\n').map_or(text.len(), |offset| start + offset);
                value = text[start + 1..end].trim_end_matches('\r').to_owned();
                unterminated.push(start_line);
                pos = end;
                line = start_line;
                line_start = text[..start].rfind('\n').map_or(0, |offset| offset + 1);
            }
            Kind::Str(value)
        } else if byte.is_ascii_alphabetic() || byte == b'_' {
            while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_') {
                pos += 1;
            }
            Kind::Ident(&text[start..pos])
        } else if starts_number(bytes, pos) {
            if matches!(byte, b'+' | b'-') {
                pos += 1;
            }
            let digits = |pos: &mut usize| {
                while *pos < bytes.len() && bytes[*pos].is_ascii_digit() {
                    *pos += 1;
                }
            };
            digits(&mut pos);
            if pos < bytes.len() && bytes[pos] == b'.' {
                pos += 1;
                digits(&mut pos);
            }
            if pos < bytes.len() && matches!(bytes[pos], b'e' | b'E') {
                let mut exponent = pos + 1;
                if exponent < bytes.len() && matches!(bytes[exponent], b'+' | b'-') {
                    exponent += 1;
                }
                if exponent < bytes.len() && bytes[exponent].is_ascii_digit() {
                    pos = exponent;
                    digits(&mut pos);
                }
            }
            Kind::Number(&text[start..pos])
        } else {
            let c = text[pos..].chars().next().unwrap_or('\u{FFFD}');
            pos += c.len_utf8();
            Kind::Punct(c)
        };
        tokens.push(Token { kind, line: start_line, column, first_on_line });
        first_on_line = false;
    }
    (tokens, unterminated)
}

/// A number starts with a digit, or with a sign or point followed by a digit; a sign right after a
/// digit or letter is an operator instead (`8-8` in `SG_MUL_VAL_` ranges).
fn starts_number(bytes: &[u8], pos: usize) -> bool {
    let digit_at = |index: usize| bytes.get(index).is_some_and(u8::is_ascii_digit);
    match bytes[pos] {
        b'0'..=b'9' => true,
        b'+' | b'-' => {
            let after_value = pos > 0 && (bytes[pos - 1].is_ascii_alphanumeric() || bytes[pos - 1] == b'_');
            !after_value && (digit_at(pos + 1) || (bytes.get(pos + 1) == Some(&b'.') && digit_at(pos + 2)))
        }
        b'.' => digit_at(pos + 1),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<Kind<'_>> {
        tokenize(text).0.into_iter().map(|token| token.kind).collect()
    }

    #[test]
    fn signal_line() {
        use Kind::*;
        assert_eq!(
            kinds(r#"SG_ A m2M : 7|8@0- (0.5,-40) [-3.4E+038|1e3] "°C" X"#),
            [
                Ident("SG_"),
                Ident("A"),
                Ident("m2M"),
                Punct(':'),
                Number("7"),
                Punct('|'),
                Number("8"),
                Punct('@'),
                Number("0"),
                Punct('-'),
                Punct('('),
                Number("0.5"),
                Punct(','),
                Number("-40"),
                Punct(')'),
                Punct('['),
                Number("-3.4E+038"),
                Punct('|'),
                Number("1e3"),
                Punct(']'),
                Str("°C".to_owned()),
                Ident("X"),
            ]
        );
    }

    #[test]
    fn line_comments_are_skipped() {
        use Kind::*;
        assert_eq!(kinds("// a \"comment\"\nCM_ \"//x\"; // more"), [Ident("CM_"), Str("//x".to_owned()), Punct(';')]);
    }

    #[test]
    fn ranges_are_not_negative_numbers() {
        use Kind::*;
        assert_eq!(
            kinds("8-8, 16-16"),
            [Number("8"), Punct('-'), Number("8"), Punct(','), Number("16"), Punct('-'), Number("16")]
        );
    }

    #[test]
    fn strings_span_lines_and_unescape() {
        let (tokens, unterminated) = tokenize("CM_ \"a \\\"b\\\"\nc\";\nX");
        assert_eq!(tokens[1].kind, Kind::Str("a \"b\"\nc".to_owned()));
        assert_eq!(tokens[2].line, 2);
        assert_eq!((tokens[3].line, tokens[3].first_on_line), (3, true));
        assert!(unterminated.is_empty());
    }

    #[test]
    fn unterminated_string_ends_at_its_line() {
        let (tokens, unterminated) = tokenize("CM_ \"abc\nBO_");
        assert_eq!(tokens[1].kind, Kind::Str("abc".to_owned()));
        assert_eq!((tokens[2].line, tokens[2].first_on_line), (2, true));
        assert_eq!(unterminated, [1]);
    }
}
