//! Reading the literal syntax an LM answers in: JSON and Python literals, leniently, the way
//! DSPy reads them (`json_repair`, then `ast.literal_eval`). Also reads the quoted strings of
//! `Literal["a", 'b']` annotations.
//!
//! Accepted: `null`/`None`, `true`/`false`/`True`/`False`, integers (`-7`, `+7`, `007`,
//! `1_000`, `0x10`, `0o17`, `0b101`), floats (`2.5`, `.5`, `5.`, `1e3`), strings in double or
//! single quotes with JSON and Python escapes, lists `[..]`, tuples `(..)` and sets `{..}` (all
//! read as lists), dicts `{key: value}` with quoted, bare or numeric keys, trailing commas, and
//! inside a container unquoted words (`[a, b]` is `["a", "b"]`). Nesting is bounded by
//! [`MAX_TEXT_NESTING`].

/// How deeply lists and dicts may nest in a text read as a typed value; deeper text is an error
/// (`TextProblem::TooDeep`), never a stack overflow.
pub const MAX_TEXT_NESTING: usize = 64;

/// A value in literal syntax.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Lit>),
    Dict(Vec<(String, Lit)>),
}

/// Why a text is not one literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LitError {
    /// Not literal syntax (callers then read the text as a plain string, as DSPy does).
    Syntax,
    /// Lists or dicts nested deeper than [`MAX_TEXT_NESTING`].
    TooDeep,
}

/// A quoted string that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QuoteError {
    /// No closing quote.
    Unterminated,
    /// A `\u` or `\x` escape without its hex digits, as written.
    BadEscape(String),
}

/// Reads `text` (surrounding whitespace aside) as exactly one literal.
pub(crate) fn parse(text: &str) -> Result<Lit, LitError> {
    let mut reader = Reader::new(text);
    reader.skip_ws();
    let value = reader.value(0, true)?;
    reader.skip_ws();
    if reader.at_end() {
        Ok(value)
    } else {
        Err(LitError::Syntax)
    }
}

/// A cursor over a text.
pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    pub(crate) fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    /// Consumes `c` if it comes next.
    pub(crate) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// Reads up to (not including) the first char of `stops`, or to the end; trimmed.
    pub(crate) fn token(&mut self, stops: &[char]) -> &'a str {
        let rest = self.rest();
        let len = rest.find(|c| stops.contains(&c)).unwrap_or(rest.len());
        self.pos += len;
        rest[..len].trim()
    }

    /// Reads a string in single or double quotes, the reader being at the opening quote.
    /// Escapes are JSON's and Python's; an unknown escape keeps its backslash, as Python does.
    pub(crate) fn quoted(&mut self) -> Result<String, QuoteError> {
        let Some(quote) = self.bump() else {
            return Err(QuoteError::Unterminated);
        };
        let mut out = String::new();
        loop {
            match self.bump().ok_or(QuoteError::Unterminated)? {
                c if c == quote => return Ok(out),
                '\\' => self.escape(&mut out)?,
                c => out.push(c),
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), QuoteError> {
        let c = self.bump().ok_or(QuoteError::Unterminated)?;
        match c {
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            '0' => out.push('\0'),
            '/' => out.push('/'),
            '\\' | '\'' | '"' => out.push(c),
            'u' => {
                let code = self.hex(4, 'u')?;
                out.push(self.code_point(code)?);
            }
            'x' => {
                let code = self.hex(2, 'x')?;
                out.push(
                    char::from_u32(code).ok_or(QuoteError::BadEscape(format!("\\x{code:02x}")))?,
                );
            }
            other => {
                out.push('\\');
                out.push(other);
            }
        }
        Ok(())
    }

    /// `count` hex digits after `\{kind}`.
    fn hex(&mut self, count: usize, kind: char) -> Result<u32, QuoteError> {
        let digits: String = self
            .rest()
            .chars()
            .take(count)
            .take_while(char::is_ascii_hexdigit)
            .collect();
        match u32::from_str_radix(&digits, 16) {
            Ok(code) if digits.len() == count => {
                self.pos += count;
                Ok(code)
            }
            _ => Err(QuoteError::BadEscape(format!("\\{kind}{digits}"))),
        }
    }

    /// The char of a `\uXXXX` escape, joining a UTF-16 surrogate pair written as two escapes.
    fn code_point(&mut self, code: u32) -> Result<char, QuoteError> {
        if let Some(c) = char::from_u32(code) {
            return Ok(c);
        }
        let bad = || QuoteError::BadEscape(format!("\\u{code:04x}"));
        if !(0xD800..0xDC00).contains(&code) || !self.rest().starts_with("\\u") {
            return Err(bad());
        }
        self.pos += 2;
        let low = self.hex(4, 'u')?;
        if !(0xDC00..0xE000).contains(&low) {
            return Err(bad());
        }
        char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)).ok_or_else(bad)
    }

    /// One value. `top`: the whole remaining text is this value (no bare words there).
    fn value(&mut self, depth: usize, top: bool) -> Result<Lit, LitError> {
        match self.peek() {
            Some('"' | '\'') => self.quoted().map(Lit::Str).map_err(|_| LitError::Syntax),
            Some('[') => self.sequence(depth, ']'),
            Some('(') => self.sequence(depth, ')'),
            Some('{') => self.braces(depth),
            Some(_) => {
                let token = if top {
                    self.token(&[])
                } else {
                    self.token(&[',', ']', ')', '}', ':'])
                };
                match word(token) {
                    Some(lit) => Ok(lit),
                    None if !top && !token.is_empty() => Ok(Lit::Str(token.to_owned())),
                    None => Err(LitError::Syntax),
                }
            }
            None => Err(LitError::Syntax),
        }
    }

    fn enter(&mut self, depth: usize) -> Result<usize, LitError> {
        self.bump();
        if depth >= MAX_TEXT_NESTING {
            return Err(LitError::TooDeep);
        }
        Ok(depth + 1)
    }

    /// `[a, b]` or `(a, b)`, trailing comma allowed.
    fn sequence(&mut self, depth: usize, close: char) -> Result<Lit, LitError> {
        let depth = self.enter(depth)?;
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(close) {
                return Ok(Lit::List(items));
            }
            items.push(self.value(depth, false)?);
            self.skip_ws();
            if !self.eat(',') && self.peek() != Some(close) {
                return Err(LitError::Syntax);
            }
        }
    }

    /// `{key: value, ..}` (a dict) or `{a, b}` (a set, read as a list).
    fn braces(&mut self, depth: usize) -> Result<Lit, LitError> {
        let depth = self.enter(depth)?;
        let mut entries = Vec::new();
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            if self.eat('}') {
                return Ok(if items.is_empty() {
                    Lit::Dict(entries)
                } else {
                    Lit::List(items)
                });
            }
            let start = self.pos;
            let first = self.value(depth, false)?;
            self.skip_ws();
            if self.eat(':') {
                if !items.is_empty() {
                    return Err(LitError::Syntax);
                }
                let key = match first {
                    Lit::Str(s) => s,
                    Lit::Int(_) | Lit::Float(_) => self.text[start..self.pos - 1].trim().to_owned(),
                    _ => return Err(LitError::Syntax),
                };
                self.skip_ws();
                entries.push((key, self.value(depth, false)?));
            } else if entries.is_empty() {
                items.push(first);
            } else {
                return Err(LitError::Syntax);
            }
            self.skip_ws();
            if !self.eat(',') && self.peek() != Some('}') {
                return Err(LitError::Syntax);
            }
        }
    }
}

/// A keyword or a number, if `token` is one.
fn word(token: &str) -> Option<Lit> {
    match token {
        "null" | "None" => Some(Lit::Null),
        "true" | "True" => Some(Lit::Bool(true)),
        "false" | "False" => Some(Lit::Bool(false)),
        _ => number(token),
    }
}

/// A JSON or Python number: `-7`, `+7`, `007`, `1_000`, `0x10`, `2.5`, `.5`, `5.`, `1e3`.
/// An integer beyond `i64` reads as a float.
pub(crate) fn number(token: &str) -> Option<Lit> {
    let (negative, body) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let digits = without_underscores(body)?;
    let radix = match digits.get(..2) {
        Some("0x" | "0X") => Some(16),
        Some("0o" | "0O") => Some(8),
        Some("0b" | "0B") => Some(2),
        _ => None,
    };
    if let Some(radix) = radix {
        let magnitude = i64::from_str_radix(&digits[2..], radix).ok()?;
        return Some(Lit::Int(if negative { -magnitude } else { magnitude }));
    }
    if !digits
        .bytes()
        .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
        || !digits.bytes().any(|b| b.is_ascii_digit())
        || !digits.as_bytes()[0].is_ascii_digit() && digits.as_bytes()[0] != b'.'
    {
        return None;
    }
    let signed = if negative {
        format!("-{digits}")
    } else {
        digits
    };
    if signed.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Some(match signed.parse::<i64>() {
            Ok(i) => Lit::Int(i),
            Err(_) => Lit::Float(signed.parse().ok()?),
        });
    }
    signed.parse::<f64>().ok().map(Lit::Float)
}

/// `body` without the `_` separators Python allows between digits; `None` if one is misplaced.
fn without_underscores(body: &str) -> Option<String> {
    let bytes = body.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'_' {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j));
            let after = bytes.get(i + 1);
            if !before.is_some_and(u8::is_ascii_alphanumeric)
                || !after.is_some_and(u8::is_ascii_alphanumeric)
            {
                return None;
            }
        }
    }
    Some(body.replace('_', ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(text: &str) -> Lit {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e:?}"))
    }

    fn s(text: &str) -> Lit {
        Lit::Str(text.to_owned())
    }

    #[test]
    fn scalars() {
        assert_eq!(lit(" 3 "), Lit::Int(3));
        assert_eq!(lit("+7"), Lit::Int(7));
        assert_eq!(lit("-007"), Lit::Int(-7));
        assert_eq!(lit("1_000"), Lit::Int(1000));
        assert_eq!(lit("0x10"), Lit::Int(16));
        assert_eq!(lit("-0b101"), Lit::Int(-5));
        assert_eq!(lit("2.5"), Lit::Float(2.5));
        assert_eq!(lit(".5"), Lit::Float(0.5));
        assert_eq!(lit("5."), Lit::Float(5.0));
        assert_eq!(lit("1e3"), Lit::Float(1000.0));
        assert_eq!(lit("99999999999999999999"), Lit::Float(1e20));
        assert_eq!(lit("True"), Lit::Bool(true));
        assert_eq!(lit("null"), Lit::Null);
        assert_eq!(lit("'it\\'s'"), s("it's"));
        assert_eq!(lit(r#""\u00e9\n\ud83d\ude00""#), s("é\n😀"));
        for bad in [
            "",
            "five",
            "42 apples",
            "1_",
            "_1",
            "e5",
            "1__0",
            "'open",
            "\"\\u12\"",
        ] {
            assert_eq!(parse(bad), Err(LitError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn containers() {
        assert_eq!(
            lit("[1, 'a', [true], ]"),
            Lit::List(vec![Lit::Int(1), s("a"), Lit::List(vec![Lit::Bool(true)])])
        );
        assert_eq!(lit("(a, b c)"), Lit::List(vec![s("a"), s("b c")]));
        assert_eq!(lit("{'x'}"), Lit::List(vec![s("x")]));
        assert_eq!(
            lit("{a: 1, \"b\": None, 2: [x]}"),
            Lit::Dict(vec![
                ("a".into(), Lit::Int(1)),
                ("b".into(), Lit::Null),
                ("2".into(), Lit::List(vec![s("x")])),
            ])
        );
        assert_eq!(lit("{}"), Lit::Dict(vec![]));
        for bad in [
            "[1 2",
            "[1, 2] x",
            "{a: 1, b}",
            "{a, b: 1}",
            "[,]",
            "{[1]: 2}",
        ] {
            assert_eq!(parse(bad), Err(LitError::Syntax), "{bad:?}");
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let at_limit = format!(
            "{}{}",
            "[".repeat(MAX_TEXT_NESTING),
            "]".repeat(MAX_TEXT_NESTING)
        );
        assert!(parse(&at_limit).is_ok());
        let over = format!("[{at_limit}]");
        assert_eq!(parse(&over), Err(LitError::TooDeep));
        // Far over the limit: an error, not a stack overflow.
        assert_eq!(parse(&"{a: [".repeat(100_000)), Err(LitError::TooDeep));
    }
}
