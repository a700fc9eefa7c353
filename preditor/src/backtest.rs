//! Backtest: the twin over a whole bars series, from FLAT at the first decision bar.
//!
//! [`run`] is the series pass the twin also replays its history with ([`crate::series`]); [`run_traced`]
//! is the per-window reference path ([`crate::twin::step_with`]) with every intermediate value, which the
//! parity tests compare with the Python reference and `tests/series.rs` with [`run`], bit for bit.

use std::io::Write;

use crate::bars::{Bar, format_time};
use crate::model::{ACTION_TABLE, EnvSpec, InferenceError};
use crate::twin::{Decision, Inference, StepTrace, TwinState, Window, step_with};

/// Runs the twin over `bars` from `state`; one decision per bar `t ≥ W−1`.
pub fn run<I: Inference + ?Sized>(
    spec: &EnvSpec,
    inference: &I,
    bars: &[Bar],
    state: TwinState,
) -> Result<(Vec<Decision>, TwinState), InferenceError> {
    let mut out = Vec::with_capacity(bars.len().saturating_sub(spec.window - 1));
    let mut state = state;
    crate::series::run(spec, inference, bars, spec.window - 1, &mut state, &mut out)?;
    Ok((out, state))
}

/// Like [`run`] from FLAT but also keeps every intermediate value (for parity tests and debugging);
/// recomputes every window's emissions (the uncached reference path).
pub fn run_traced<I: Inference + ?Sized>(
    spec: &EnvSpec,
    inference: &I,
    bars: &[Bar],
) -> Result<Vec<(Decision, StepTrace)>, InferenceError> {
    let mut out = Vec::new();
    let mut state = TwinState::START;
    for end in spec.window..=bars.len() {
        let window = window_of(&bars[end - spec.window..end], spec);
        let (d, next, trace) = step_with(spec, inference, &window, &state)?;
        out.push((d, trace));
        state = next;
    }
    Ok(out)
}

fn window_of<'a>(bars: &'a [Bar], spec: &EnvSpec) -> Window<'a> {
    // The slice is cut to exactly W bars just above, so this cannot fail.
    match Window::new(bars, spec) {
        Ok(w) => w,
        Err(e) => unreachable!("{e}"),
    }
}

/// The backtest CSV header (same columns as `scripts/reference.py backtest`).
pub const CSV_HEADER: &str = "time,regime,action,position,intensity,virtual_pnl";

/// One CSV row: time, regime, action name, direction, intensity, `R` shortest-roundtrip.
pub fn csv_row(d: &Decision) -> String {
    format!(
        "{},{},{},{},{},{}",
        format_time(d.time),
        d.regime,
        ACTION_TABLE[usize::from(d.action)].0,
        d.direction,
        d.intensity,
        fmt_f64(d.realised_pnl)
    )
}

/// Shortest text that parses back to the same f64, in Python's `repr` style (the reference prints
/// with `repr`): plain decimal for 1e-4 ≤ |v| < 1e16, otherwise `1.5e-05` / `1e+16`.
///
/// The digits are ryu's: shortest, closest, and on an exact tie the even digit, as CPython's
/// `float_repr` (dtoa mode 0) chooses. Rust's `{}` rounds such a tie up: -814482538836389.25 is
/// `…389.3` there and `…389.2` in Python.
pub fn fmt_f64(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    if !v.is_finite() {
        return if v.is_nan() {
            "nan"
        } else if v > 0.0 {
            "inf"
        } else {
            "-inf"
        }
        .to_string();
    }
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v);
    if (1e-4..1e16).contains(&v.abs()) && !text.contains('e') {
        return text.to_string();
    }
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(u) => ("-", u),
        None => ("", text),
    };
    let (digits, exp) = digits_and_exponent(unsigned);
    let mant = match digits.split_at(1) {
        (first, "") => first.to_string(),
        (first, rest) => format!("{first}.{rest}"),
    };
    let exp_sign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mant}e{exp_sign}{:02}", exp.unsigned_abs())
}

/// The significant digits (no leading or trailing zeros) and decimal exponent of the first digit of
/// ryu's unsigned, non-zero text, plain (`0.00001`, `123.5`) or scientific (`1.5e-7`).
fn digits_and_exponent(text: &str) -> (String, i32) {
    let (mant, exp) = match text.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    let all: String = [int, frac].concat();
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all.trim_start_matches('0').trim_end_matches('0');
    // The first significant digit sits `int.len() - 1 - lead` places left of the units.
    let first = i32::try_from(int.len()).unwrap_or(0) - 1 - i32::try_from(lead).unwrap_or(0);
    let digits = if digits.is_empty() { "0" } else { digits };
    (digits.to_string(), first + exp)
}

/// Writes decisions as CSV, the same bytes as [`csv_row`] per row but without `core::fmt`: a
/// backtest writes one row per bar, and formatting through `format!` was ~10 % of its instructions.
pub fn write_csv<W: Write>(mut w: W, decisions: &[Decision]) -> std::io::Result<()> {
    w.write_all(CSV_HEADER.as_bytes())?;
    w.write_all(b"\n")?;
    let mut row = RowWriter::default();
    for d in decisions {
        row.line.clear();
        row.push(d);
        w.write_all(&row.line)?;
    }
    w.flush()
}

/// One row's text in a reused buffer, with the date part of the time kept per day (bars of one
/// day share it; chrono still renders every date, so the calendar is not ours).
#[derive(Default)]
struct RowWriter {
    line: Vec<u8>,
    day: Option<(i64, [u8; 11])>,
    ints: itoa::Buffer,
    floats: ryu::Buffer,
}

impl RowWriter {
    fn push(&mut self, d: &Decision) {
        self.push_time(d.time);
        self.line.push(b',');
        self.line
            .extend_from_slice(self.ints.format(d.regime).as_bytes());
        self.line.push(b',');
        self.line
            .extend_from_slice(ACTION_TABLE[usize::from(d.action)].0.as_bytes());
        self.line.push(b',');
        self.line
            .extend_from_slice(self.ints.format(d.direction).as_bytes());
        self.line.push(b',');
        self.line
            .extend_from_slice(self.ints.format(d.intensity).as_bytes());
        self.line.push(b',');
        self.push_f64(d.realised_pnl);
        self.line.push(b'\n');
    }

    /// [`format_time`]'s text: `YYYY-MM-DDT` from chrono once per day, then `HH:MM:SSZ`.
    fn push_time(&mut self, unix: i64) {
        let (day, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
        let date = match self.day {
            Some((cached, date)) if cached == day => date,
            _ => {
                let text = format_time(unix);
                let b = text.as_bytes();
                // Only the canonical four-digit-year form is cached; any other (`@<unix>`, a
                // five-digit year) is written as chrono rendered it.
                if b.len() != 20 || b[10] != b'T' {
                    self.day = None;
                    self.line.extend_from_slice(b);
                    return;
                }
                let mut date = [0u8; 11];
                date.copy_from_slice(&b[..11]);
                self.day = Some((day, date));
                date
            }
        };
        self.line.extend_from_slice(&date);
        let two = |v: i64| [b'0' + (v / 10) as u8, b'0' + (v % 10) as u8];
        let (h, m, s) = (two(secs / 3600), two(secs / 60 % 60), two(secs % 60));
        self.line
            .extend_from_slice(&[h[0], h[1], b':', m[0], m[1], b':', s[0], s[1], b'Z']);
    }

    /// [`fmt_f64`]'s text, its plain-decimal case (1e-4 ≤ |v| < 1e16) without the `String`.
    fn push_f64(&mut self, v: f64) {
        if v != 0.0 && (1e-4..1e16).contains(&v.abs()) {
            let text = self.floats.format_finite(v).as_bytes();
            if !text.contains(&b'e') {
                self.line.extend_from_slice(text);
                return;
            }
        }
        self.line.extend_from_slice(fmt_f64(v).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::{RowWriter, csv_row, fmt_f64};
    use crate::twin::Decision;
    use proptest::prelude::*;

    /// The fast writer's row against [`csv_row`] (`format!` through chrono and `fmt_f64`).
    fn same_row(d: &Decision, w: &mut RowWriter) {
        w.line.clear();
        w.push(d);
        let fast = String::from_utf8(w.line.clone()).unwrap();
        assert_eq!(fast, format!("{}\n", csv_row(d)), "{d:?}");
        let v = d.realised_pnl;
        if !v.is_nan() {
            let back: f64 = fmt_f64(v).parse().unwrap();
            assert_eq!(back.to_bits(), v.to_bits(), "{v:?} → {}", fmt_f64(v));
        }
    }

    fn decision(time: i64, action: u8, direction: i8, realised_pnl: f64) -> Decision {
        Decision {
            time,
            regime: (time.rem_euclid(7)) as u16,
            action,
            direction,
            intensity: action % 4,
            realised_pnl,
            held: 0,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        // One writer over many rows, so its per-day date cache is exercised across days, going
        // back in time and across year ends; any f64 bit pattern (NaN, ±inf, subnormals, ±0).
        #[test]
        fn fast_rows_are_csv_row(rows in proptest::collection::vec(
            (-70_000_000_000i64..260_000_000_000, 0u8..7, -1i8..=1, any::<u64>()), 1..40)) {
            let mut w = RowWriter::default();
            for (time, action, direction, bits) in rows {
                same_row(&decision(time, action, direction, f64::from_bits(bits)), &mut w);
            }
        }

        #[test]
        fn fast_rows_are_csv_row_hourly(start in 0i64..4_000_000_000, pnl in -1e6f64..1e6, n in 1usize..200) {
            let mut w = RowWriter::default();
            for i in 0..n {
                let pnl = pnl * (i as f64 + 1.0) / 7.0;
                same_row(&decision(start + 3600 * i as i64, (i % 7) as u8, 1, pnl), &mut w);
            }
        }
    }

    #[test]
    fn fast_rows_at_the_edges() {
        let mut w = RowWriter::default();
        for t in [
            i64::MIN,
            i64::MAX,
            -1,
            0,
            86_399,
            86_400,
            253_402_300_799,
            253_402_300_800,
        ] {
            for v in [
                0.0,
                -0.0,
                1e-4,
                9.999999999999999e-5,
                1e16,
                9999999999999998.0,
                1e15,
                0.1,
            ] {
                same_row(&decision(t, 3, -1, v), &mut w);
            }
        }
    }

    #[test]
    // The ties are written as their exact binary values, which is the point of those cases.
    #[allow(clippy::excessive_precision)]
    fn floats_print_like_python_repr() {
        for (v, py) in [
            (0.0, "0.0"),
            (-0.8999999999991624, "-0.8999999999991624"),
            (37.380000000021624, "37.380000000021624"),
            (12.0, "12.0"),
            (1e-5, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (1e16, "1e+16"),
            (0.0001, "0.0001"),
            (1.5e-7, "1.5e-07"),
            (1.2345e100, "1.2345e+100"),
            (-1.7976931348623157e308, "-1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (1.5e16, "1.5e+16"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e15, "1000000000000000.0"),
            (1.234e-5, "1.234e-05"),
            (9.999999999999999e-5, "9.999999999999999e-05"),
            // Exact ties between two shortest candidates (texts from CPython 3 `repr`): the even
            // digit, down or up; Rust's `{}` gives …389.3 and …456.3 for the first two.
            (-814482538836389.25, "-814482538836389.2"),
            (1328361632712456.25, "1328361632712456.2"),
            (875615519601118.75, "875615519601118.8"),
        ] {
            assert_eq!(fmt_f64(v), py);
            assert_eq!(fmt_f64(v).parse::<f64>().unwrap(), v);
        }
    }
}
