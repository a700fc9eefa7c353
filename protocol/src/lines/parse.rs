//! The strict parser of a line (`impl FromStr for Line`). It walks the fields once with a private
//! [`Fields`] cursor, so every error knows the line type and the field name it was reading.

use std::str::FromStr;

use super::*;
use crate::MAX_LINE_LEN;
use crate::error::{ParseError, ParseErrorKind, ValueError};
use crate::values::parse_uint;

/// Cursor over the `|`-separated fields of one line.
struct Fields<'a> {
    line_type: &'static str,
    rest: std::str::Split<'a, char>,
}

impl<'a> Fields<'a> {
    fn err(&self, field: &'static str, kind: ParseErrorKind) -> ParseError {
        ParseError::new(Some(self.line_type), field, kind)
    }

    /// The next positional field's raw text, checked for presence, emptiness and edge whitespace.
    fn raw(&mut self, field: &'static str) -> Result<&'a str, ParseError> {
        let s = self
            .rest
            .next()
            .ok_or_else(|| self.err(field, ParseErrorKind::Missing))?;
        check_field_text(s).map_err(|kind| self.err(field, kind))
    }

    /// The next positional field parsed with `parse`.
    fn value<T>(
        &mut self,
        field: &'static str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<T, ParseError> {
        let s = self.raw(field)?;
        parse(s).map_err(|e| self.err(field, ParseErrorKind::Invalid(e)))
    }

    fn next<T: FromStr<Err = ValueError>>(&mut self, field: &'static str) -> Result<T, ParseError> {
        self.value(field, str::parse)
    }

    /// Consumes the remaining fields as `KEY:VALUE` extensions. `known` lists (key, field name)
    /// pairs; the result holds each known key's value in the same order. Unknown keys are checked
    /// for form and dropped. Keys in `forbidden` are known to the line type but not allowed here.
    fn extensions<const N: usize>(
        &mut self,
        known: [(&'static str, &'static str); N],
        forbidden: &[(&'static str, &'static str)],
    ) -> Result<[Option<&'a str>; N], ParseError> {
        let mut found = [None; N];
        while let Some(s) = self.rest.next() {
            let s = check_field_text(s).map_err(|kind| self.err("extension", kind))?;
            let (key, value) = split_extension(s).ok_or_else(|| {
                self.err(
                    "extension",
                    ParseErrorKind::Invalid(ValueError::new(EXT_EXPECTED, s)),
                )
            })?;
            if let Some(i) = known.iter().position(|(k, _)| *k == key) {
                let (k, field) = known[i];
                if found[i].is_some() {
                    return Err(self.err(field, ParseErrorKind::DuplicateKey(k)));
                }
                found[i] = Some(value);
            } else if let Some((k, field)) = forbidden.iter().find(|(k, _)| *k == key) {
                return Err(self.err(field, ParseErrorKind::KeyNotAllowed(k)));
            }
        }
        Ok(found)
    }

    fn ext_value<T>(
        &self,
        field: &'static str,
        raw: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Result<Option<T>, ParseError> {
        raw.map(parse)
            .transpose()
            .map_err(|e| self.err(field, ParseErrorKind::Invalid(e)))
    }
}

const EXT_EXPECTED: &str = "an extension KEY:VALUE with KEY of 1..=16 characters from A-Z 0-9 _ and a non-empty VALUE without edge whitespace";

fn check_field_text(s: &str) -> Result<&str, ParseErrorKind> {
    if s.is_empty() {
        Err(ParseErrorKind::Empty)
    } else if s.trim() != s {
        Err(ParseErrorKind::Whitespace)
    } else {
        Ok(s)
    }
}

fn split_extension(s: &str) -> Option<(&str, &str)> {
    let (key, value) = s.split_once(':')?;
    let key_ok = (1..=16).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    let value_ok = !value.is_empty() && value.trim() == value;
    (key_ok && value_ok).then_some((key, value))
}

fn uint<T: FromStr>(expected: &'static str) -> impl FnOnce(&str) -> Result<T, ValueError> {
    move |s| parse_uint(s, expected)
}

fn positive_u32(expected: &'static str) -> impl FnOnce(&str) -> Result<u32, ValueError> {
    move |s| match parse_uint::<u32>(s, expected)? {
        0 => Err(ValueError::new(expected, s)),
        n => Ok(n),
    }
}

fn pnl(s: &str) -> Result<Decimal, ValueError> {
    let d: Decimal = s.parse()?;
    if d.decimals() == Signal::PNL_DECIMALS {
        Ok(d)
    } else {
        Err(ValueError::new(
            "a PnL with exactly 2 decimal places, like 0.00 or -15.30",
            s,
        ))
    }
}

impl FromStr for Line {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let whole = |kind| ParseError::new(None, "line", kind);
        if line.len() > MAX_LINE_LEN {
            return Err(whole(ParseErrorKind::TooLong { len: line.len() }));
        }
        if line.is_empty() {
            return Err(whole(ParseErrorKind::EmptyLine));
        }
        if let Some(c) = line.chars().find(|c| c.is_control()) {
            return Err(whole(ParseErrorKind::ForbiddenChar(c)));
        }
        let (type_text, _) = line.split_once('|').unwrap_or((line, ""));
        let Some(line_type) = LINE_TYPES.into_iter().find(|t| *t == type_text) else {
            return Err(ParseError::new(
                None,
                "type",
                ParseErrorKind::UnknownType(type_text.to_owned()),
            ));
        };
        if line_type == "ERROR" {
            return parse_error_line(line);
        }
        let mut rest = line.split('|');
        rest.next(); // the type, matched above
        let mut f = Fields { line_type, rest };
        Ok(match line_type {
            "HELLO" => Line::Hello(parse_hello(f)?),
            "AUTH" => {
                let proof = f.next("proof")?;
                f.extensions([], &[])?;
                Line::Auth(Auth { proof })
            }
            "BAR" => Line::Bar(parse_bar(f)?),
            "WARMUP" => {
                let symbol = f.next("symbol")?;
                let timeframe = f.next("timeframe")?;
                let count = f.value("count", positive_u32("a bar count 1..=4294967295"))?;
                f.extensions([], &[])?;
                Line::Warmup(Warmup {
                    symbol,
                    timeframe,
                    count,
                })
            }
            "HISTORY" => {
                let symbol = f.next("symbol")?;
                let timeframe = f.next("timeframe")?;
                let count = f.value("count", uint("a bar count 0..=4294967295"))?;
                f.extensions([], &[])?;
                Line::History(History {
                    symbol,
                    timeframe,
                    count,
                })
            }
            "HISTORY_END" => {
                let symbol = f.next("symbol")?;
                let timeframe = f.next("timeframe")?;
                f.extensions([], &[])?;
                Line::HistoryEnd(HistoryEnd { symbol, timeframe })
            }
            "SIGNAL" => Line::Signal(parse_signal(f)?),
            _ => Line::Ack(parse_ack(f)?),
        })
    }
}

fn parse_hello(mut f: Fields<'_>) -> Result<Hello, ParseError> {
    let role = f.value("role", |s| match s {
        "preditor" | "executor" => Ok(s == "preditor"),
        _ => Err(ValueError::new("a role: preditor executor", s)),
    })?;
    let version = f.value("version", parse_version)?;
    let hello = if role {
        Hello::Preditor {
            version,
            nonce: f.next("nonce")?,
        }
    } else {
        Hello::Executor {
            version,
            mode: f.next("mode")?,
            nonce: f.next("nonce")?,
            proof: f.next("proof")?,
        }
    };
    f.extensions([], &[])?;
    Ok(hello)
}

fn parse_bar(mut f: Fields<'_>) -> Result<BarLine, ParseError> {
    let bar = BarLine {
        symbol: f.next("symbol")?,
        timeframe: f.next("timeframe")?,
        time: f.next("time")?,
        open: f.next("open")?,
        high: f.next("high")?,
        low: f.next("low")?,
        close: f.next("close")?,
        volume: f.value("volume", uint("a tick volume 0..=18446744073709551615"))?,
    };
    // A bar whose prices contradict each other is corrupt data; feeding it to features would poison
    // the twin silently.
    let (o, h, l, c) = (
        bar.open.to_f64(),
        bar.high.to_f64(),
        bar.low.to_f64(),
        bar.close.to_f64(),
    );
    let inconsistent = if l > h {
        Some(("low", &bar.low, "low <= high"))
    } else if !(l..=h).contains(&o) {
        Some(("open", &bar.open, "open between low and high"))
    } else if !(l..=h).contains(&c) {
        Some(("close", &bar.close, "close between low and high"))
    } else {
        None
    };
    if let Some((field, value, expected)) = inconsistent {
        return Err(f.err(
            field,
            ParseErrorKind::Invalid(ValueError::new(expected, value.as_str())),
        ));
    }
    f.extensions([], &[])?;
    Ok(bar)
}

fn parse_signal(mut f: Fields<'_>) -> Result<Signal, ParseError> {
    let symbol = f.next("symbol")?;
    let action = f.next("action")?;
    let regime = f.value("regime", uint("an HMM regime index 0..=65535"))?;
    let virtual_pnl = f.value("virtual_pnl", pnl)?;
    let [b, n] = f.extensions([("B", "bar_time"), ("N", "held")], &[])?;
    Ok(Signal {
        symbol,
        action,
        regime,
        virtual_pnl,
        bar_time: f.ext_value("bar_time", b, str::parse)?,
        held: f.ext_value("held", n, positive_u32("bars held 1..=4294967295"))?,
    })
}

fn parse_ack(mut f: Fields<'_>) -> Result<Ack, ParseError> {
    let symbol = f.next("symbol")?;
    let action = f.next("action")?;
    let outcome = f.value("outcome", |s| match s {
        "OK" => Ok("OK"),
        "FAIL" => Ok("FAIL"),
        "WAIT_SYNC" => Ok("WAIT_SYNC"),
        _ => Err(ValueError::new("an outcome: OK FAIL WAIT_SYNC", s)),
    })?;
    const T: (&str, &str) = ("T", "position_id");
    const P: (&str, &str) = ("P", "price");
    const B: (&str, &str) = ("B", "bar_time");
    let (outcome, b) = match outcome {
        "OK" => {
            let [t, p, b] = f.extensions([T, P, B], &[])?;
            let position_id = f.ext_value(
                "position_id",
                t,
                uint("a position id 0..=18446744073709551615"),
            )?;
            let price = f.ext_value("price", p, str::parse)?;
            (AckOutcome::Ok { position_id, price }, b)
        }
        fail_or_wait => {
            let reason = f.next("reason")?;
            let [b] = f.extensions([B], &[T, P])?;
            if fail_or_wait == "FAIL" {
                (AckOutcome::Fail(reason), b)
            } else {
                (AckOutcome::WaitSync(reason), b)
            }
        }
    };
    Ok(Ack {
        symbol,
        action,
        outcome,
        bar_time: f.ext_value("bar_time", b, str::parse)?,
    })
}

fn parse_error_line(line: &str) -> Result<Line, ParseError> {
    let mut parts = line.splitn(3, '|');
    parts.next(); // "ERROR"
    let f = Fields {
        line_type: "ERROR",
        rest: "".split('|'),
    };
    let code_text = parts
        .next()
        .ok_or_else(|| f.err("code", ParseErrorKind::Missing))?;
    let code = check_field_text(code_text)
        .map_err(|kind| f.err("code", kind))?
        .parse::<ErrorCode>()
        .map_err(|e| f.err("code", ParseErrorKind::Invalid(e)))?;
    let text = parts
        .next()
        .ok_or_else(|| f.err("text", ParseErrorKind::Missing))?;
    let text = check_field_text(text).map_err(|kind| f.err("text", kind))?;
    // Control characters and the length were checked for the whole line already.
    Ok(Line::Error(ErrorLine {
        code,
        text: text.to_owned(),
    }))
}
