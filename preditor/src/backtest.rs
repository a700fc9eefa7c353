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
    let a = v.abs();
    if (1e-4..1e16).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust's `{:e}` is shortest-roundtrip too: `1.5e-5` → Python `1.5e-05`.
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((mant, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mant}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

/// Writes decisions as CSV.
pub fn write_csv<W: Write>(mut w: W, decisions: &[Decision]) -> std::io::Result<()> {
    writeln!(w, "{CSV_HEADER}")?;
    for d in decisions {
        // `csv_row`'s fields, written straight into `w` (no String per row).
        writeln!(
            w,
            "{},{},{},{},{},{}",
            format_time(d.time),
            d.regime,
            ACTION_TABLE[usize::from(d.action)].0,
            d.direction,
            d.intensity,
            fmt_f64(d.realised_pnl)
        )?;
    }
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::fmt_f64;

    #[test]
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
        ] {
            assert_eq!(fmt_f64(v), py);
            assert_eq!(fmt_f64(v).parse::<f64>().unwrap(), v);
        }
    }
}
