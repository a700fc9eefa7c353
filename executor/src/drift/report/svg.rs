//! Inline SVG charts for the HTML drift report: step charts (every series in a drift log is a step
//! function: a value holds until the next signal changes it) and horizontal bar charts.
//!
//! Each chart carries its data next to its drawing: the plot box and axis domain as `data-*`
//! attributes of the `<svg>`, and every series' change points as `data-x` (Unix seconds) and
//! `data-y` on its `<polyline>`, so a test (or a curious reader) can check the picture against the
//! CSV without parsing pixels.

use std::fmt::Write as _;

pub const WIDTH: f64 = 920.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 20.0;
const BOTTOM: f64 = 22.0;

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// A number as data: at most 6 decimals, no trailing zeros, no `-0`.
pub fn num(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// One series: change points `(x, y)` in time order; `y` holds from `x` until the next point.
#[derive(Debug, Clone)]
pub struct Series {
    /// `virtual`, `live`, `paper`: also the CSS class of its colour.
    pub name: &'static str,
    pub points: Vec<(i64, f64)>,
}

impl Series {
    pub fn new(name: &'static str) -> Self {
        Series {
            name,
            points: Vec::new(),
        }
    }

    /// Sets the value at `x`: a later value at the same `x` replaces the earlier one; a value equal
    /// to the one holding adds no point (the step function is unchanged).
    pub fn set(&mut self, x: i64, y: f64) {
        if let Some(last) = self.points.last_mut()
            && last.0 == x
        {
            last.1 = y;
            let n = self.points.len();
            if n >= 2 && self.points[n - 2].1 == y {
                self.points.pop();
            }
            return;
        }
        if self.points.last().is_some_and(|p| p.1 == y) {
            return;
        }
        self.points.push((x, y));
    }
}

/// The y domain over every series, widened to include 0 and never empty.
fn domain(series: &[&Series], include_zero: bool) -> (f64, f64) {
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (mut lo, mut hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
        (a.min(y), b.max(y))
    });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 0.0);
    }
    if include_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if hi - lo < 1e-9 {
        lo -= 1.0;
        hi += 1.0;
    }
    (lo, hi)
}

fn date(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map_or(String::new(), |d| d.format("%Y-%m-%d %H:%M").to_string())
}

/// Options of one step chart.
#[derive(Debug, Clone)]
pub struct StepChart<'a> {
    /// `data-*` attributes that identify the chart, e.g. `data-kind="equity" data-book="live"`.
    pub attrs: String,
    pub title: &'a str,
    pub unit: &'a str,
    pub x_range: (i64, i64),
    /// Share one y domain across several charts (stacked equity curves); `None`: from the data.
    pub y_domain: Option<(f64, f64)>,
    pub height: f64,
}

/// The y domain several charts share.
pub fn shared_domain(series: &[&Series]) -> (f64, f64) {
    domain(series, true)
}

pub fn step_chart(c: &StepChart<'_>, series: &[&Series]) -> String {
    let (y0, y1) = c.y_domain.unwrap_or_else(|| domain(series, true));
    let (x0, x1) = c.x_range;
    let pw = WIDTH - LEFT - RIGHT;
    let ph = c.height - TOP - BOTTOM;
    let sx = |x: i64| {
        if x1 > x0 {
            LEFT + pw * (x - x0) as f64 / (x1 - x0) as f64
        } else {
            LEFT + pw / 2.0
        }
    };
    let sy = |y: f64| TOP + ph * (y1 - y) / (y1 - y0);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="chart" {} viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}" data-x0="{x0}" data-x1="{x1}" data-y0="{}" data-y1="{}" data-left="{LEFT}" data-top="{TOP}" data-width="{pw}" data-height="{ph}" role="img" aria-label="{t}">"#,
        c.attrs,
        num(y0),
        num(y1),
        h = c.height,
        t = esc(c.title),
    );
    let _ = write!(
        o,
        r#"<text class="title" x="{LEFT}" y="14">{} <tspan class="unit">({})</tspan></text>"#,
        esc(c.title),
        esc(c.unit)
    );
    let _ = write!(
        o,
        r#"<rect class="plot" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>"#
    );
    if y0 < 0.0 && y1 > 0.0 {
        let z = sy(0.0);
        let _ = write!(
            o,
            r#"<line class="zero" x1="{LEFT}" x2="{}" y1="{z:.2}" y2="{z:.2}"/>"#,
            LEFT + pw
        );
    }
    for (v, anchor) in [(y1, "hanging"), (y0, "auto")] {
        let _ = write!(
            o,
            r#"<text class="tick" x="{}" y="{:.2}" text-anchor="end" dominant-baseline="{anchor}">{}</text>"#,
            LEFT - 4.0,
            sy(v),
            esc(&tick(v))
        );
    }
    // The 0 label only where it does not overlap the min or max label.
    if y0 < 0.0 && y1 > 0.0 && sy(0.0) - sy(y1) > 14.0 && sy(y0) - sy(0.0) > 14.0 {
        let _ = write!(
            o,
            r#"<text class="tick" x="{}" y="{:.2}" text-anchor="end" dominant-baseline="middle">0</text>"#,
            LEFT - 4.0,
            sy(0.0)
        );
    }
    for (x, anchor) in [(x0, "start"), (x1, "end")] {
        let _ = write!(
            o,
            r#"<text class="tick" x="{:.2}" y="{:.2}" text-anchor="{anchor}">{}</text>"#,
            sx(x),
            c.height - 6.0,
            date(x)
        );
    }
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let mut pts = String::new();
        let mut prev: Option<f64> = None;
        for &(x, y) in &s.points {
            if let Some(py) = prev {
                let _ = write!(pts, "{:.2},{:.2} ", sx(x), sy(py));
            }
            let _ = write!(pts, "{:.2},{:.2} ", sx(x), sy(y));
            prev = Some(y);
        }
        if let (Some(py), Some(&(lx, _))) = (prev, s.points.last())
            && x1 > lx
        {
            let _ = write!(pts, "{:.2},{:.2}", sx(x1), sy(py));
        }
        let xs: Vec<String> = s.points.iter().map(|p| p.0.to_string()).collect();
        let ys: Vec<String> = s.points.iter().map(|p| num(p.1)).collect();
        let _ = write!(
            o,
            r#"<polyline class="s-{n}" data-series="{n}" data-x="{}" data-y="{}" points="{}"/>"#,
            xs.join(" "),
            ys.join(" "),
            pts.trim_end(),
            n = s.name,
        );
    }
    let _ = write!(o, r#"<g class="legend">"#);
    for (i, s) in series.iter().enumerate() {
        let x = WIDTH - RIGHT - 80.0 * (series.len() - i) as f64;
        let _ = write!(
            o,
            r#"<line class="s-{n}" x1="{x}" x2="{}" y1="10" y2="10"/><text class="tick" x="{}" y="14">{n}</text>"#,
            x + 16.0,
            x + 20.0,
            n = s.name
        );
    }
    o.push_str("</g></svg>");
    o
}

fn tick(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One bar of a bar chart.
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    /// `data-*` attributes of the bar, e.g. `data-book="live" data-reason="MARGIN"`.
    pub attrs: String,
    pub class: &'static str,
    pub count: usize,
}

/// Horizontal bars, widths proportional to the counts (the largest spans the plot).
pub fn bar_chart(attrs: &str, title: &str, bars: &[Bar]) -> String {
    let row = 18.0;
    let h = TOP + row * bars.len().max(1) as f64 + 8.0;
    let label_w = 260.0;
    let pw = WIDTH - label_w - RIGHT - 60.0;
    let max = bars.iter().map(|b| b.count).max().unwrap_or(0).max(1);
    let mut o = String::new();
    let _ = write!(
        o,
        r#"<svg class="bars" {attrs} viewBox="0 0 {WIDTH} {h}" width="{WIDTH}" height="{h}" data-max="{max}" data-width="{pw}" role="img" aria-label="{t}"><text class="title" x="{LEFT}" y="14">{t}</text>"#,
        t = esc(title)
    );
    if bars.is_empty() {
        let _ = write!(
            o,
            r#"<text class="tick none" x="{label_w}" y="{}">none: every signal was followed</text>"#,
            TOP + 13.0
        );
    }
    for (i, b) in bars.iter().enumerate() {
        let y = TOP + row * i as f64;
        let w = pw * b.count as f64 / max as f64;
        let _ = write!(
            o,
            r#"<text class="tick" x="{}" y="{}" text-anchor="end">{}</text><rect class="{}" {} data-count="{}" x="{label_w}" y="{}" width="{w:.2}" height="{}"/><text class="tick" x="{:.2}" y="{}">{}</text>"#,
            label_w - 6.0,
            y + 13.0,
            esc(&b.label),
            b.class,
            b.attrs,
            b.count,
            y + 2.0,
            row - 4.0,
            label_w + w + 4.0,
            y + 13.0,
            b.count
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_series_keeps_only_change_points() {
        let mut s = Series::new("live");
        s.set(1, 0.0);
        s.set(2, 0.0);
        s.set(3, 5.0);
        s.set(3, 6.0); // same x: the later value wins
        s.set(4, 6.0);
        s.set(5, 2.0);
        s.set(5, 6.0); // back to the holding value: no change at 5
        assert_eq!(s.points, vec![(1, 0.0), (3, 6.0)]);
    }

    #[test]
    fn numbers_and_text_are_safe_for_html() {
        assert_eq!(num(-0.0000001), "0");
        assert_eq!(num(12.5), "12.5");
        assert_eq!(num(-3.0), "-3");
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_drawn_points_map_back_to_the_data() {
        let mut s = Series::new("paper");
        s.set(0, 0.0);
        s.set(50, 10.0);
        let svg = step_chart(
            &StepChart {
                attrs: String::new(),
                title: "t",
                unit: "u",
                x_range: (0, 100),
                y_domain: None,
                height: 140.0,
            },
            &[&s],
        );
        // plot: x from 78 over 830, y from 20 over 98; domain 0..10
        assert!(
            svg.contains(r#"points="78.00,118.00 493.00,118.00 493.00,20.00 908.00,20.00""#),
            "{svg}"
        );
        assert!(svg.contains(r#"data-x="0 50" data-y="0 10""#), "{svg}");
    }
}
