//! Errors: a field-level [`ValueError`] and the line-level [`ParseError`] that wraps it with the line
//! type and the field name, so a log line says exactly what to fix.

use std::fmt;

use crate::codes::ErrorCode;
use crate::lines::ErrorLine;

/// How much of an offending value an error message quotes; a 4 KiB garbage field helps nobody.
const QUOTE_LIMIT: usize = 48;

/// A single value (symbol, price, time, ...) that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {got:?}")]
pub struct ValueError {
    expected: &'static str,
    got: String,
}

impl ValueError {
    pub(crate) fn new(expected: &'static str, got: &str) -> Self {
        Self {
            expected,
            got: quote(got),
        }
    }

    /// What the grammar wanted, in words (e.g. "a timeframe: M1 M2 ... MN1").
    pub fn expected(&self) -> &'static str {
        self.expected
    }

    /// The offending text, cut to a readable length.
    pub fn got(&self) -> &str {
        &self.got
    }
}

fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LIMIT) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_owned(),
    }
}

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The line is longer than [`crate::MAX_LINE_LEN`] bytes.
    TooLong { len: usize },
    /// The line is empty.
    EmptyLine,
    /// A control character (`\r`, `\n`, tab, ...) inside the line.
    ForbiddenChar(char),
    /// The first field is not a known line type.
    UnknownType(String),
    /// A positional field is absent.
    Missing,
    /// A field is present but empty (`||`).
    Empty,
    /// A field starts or ends with whitespace.
    Whitespace,
    /// A field does not follow its grammar.
    Invalid(ValueError),
    /// A known extension key appears twice.
    DuplicateKey(&'static str),
    /// A known extension key that this line (or this ACK outcome) does not allow.
    KeyNotAllowed(&'static str),
}

impl fmt::Display for ParseErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len } => {
                write!(f, "{len} bytes, the limit is {} bytes", crate::MAX_LINE_LEN)
            }
            Self::EmptyLine => f.write_str("empty (nothing between two \\n)"),
            Self::ForbiddenChar('\r') => f.write_str(
                "carriage return (\\r) is not allowed: lines are separated by a bare \\n",
            ),
            Self::ForbiddenChar(c) => write!(
                f,
                "control character U+{:04X} is not allowed in a line",
                u32::from(*c)
            ),
            Self::UnknownType(t) => write!(
                f,
                "{:?} is not a line type; expected one of {}",
                quote(t),
                crate::lines::LINE_TYPES.join(" ")
            ),
            Self::Missing => f.write_str("missing"),
            Self::Empty => f.write_str("empty (two '|' in a row or a trailing '|')"),
            Self::Whitespace => f.write_str("leading or trailing whitespace is not allowed"),
            Self::Invalid(e) => e.fmt(f),
            Self::DuplicateKey(k) => write!(f, "extension key {k}: given more than once"),
            Self::KeyNotAllowed(k) => write!(f, "extension key {k}: not allowed here"),
        }
    }
}

/// A line that could not be accepted. Names the line type (when known), the field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    line_type: Option<&'static str>,
    field: &'static str,
    kind: ParseErrorKind,
}

impl ParseError {
    pub(crate) fn new(
        line_type: Option<&'static str>,
        field: &'static str,
        kind: ParseErrorKind,
    ) -> Self {
        Self {
            line_type,
            field,
            kind,
        }
    }

    /// The line type keyword (`"SIGNAL"`, ...) when the first field was recognised.
    pub fn line_type(&self) -> Option<&'static str> {
        self.line_type
    }

    /// The field at fault, by its name in PROTOCOL.md (`"symbol"`, `"bar_time"`, ...). Whole-line
    /// problems use `"line"`, an unknown line type uses `"type"`, a malformed `KEY:VALUE` uses
    /// `"extension"`.
    pub fn field(&self) -> &'static str {
        self.field
    }

    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The `ERROR` code a receiver answers this with.
    pub fn error_code(&self) -> ErrorCode {
        match self.kind {
            ParseErrorKind::TooLong { .. } => ErrorCode::TooLong,
            ParseErrorKind::UnknownType(_) => ErrorCode::UnknownType,
            _ => ErrorCode::Malformed,
        }
    }

    /// The `ERROR|<CODE>|<text>` line a receiver sends back (the connection stays up).
    pub fn to_error_line(&self) -> ErrorLine {
        ErrorLine::new(self.error_code(), self.to_string())
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_type {
            Some(t) => write!(f, "{t} line, field {}: {}", self.field, self.kind),
            // No known type: the problem is the whole line or its type field.
            None if self.field == "type" => write!(f, "line type: {}", self.kind),
            None => write!(f, "line: {}", self.kind),
        }
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ParseErrorKind::Invalid(e) => Some(e),
            _ => None,
        }
    }
}
