use std::path::Path;

use protocol::bars_file::{BarsReader, read_bars_csv};
use protocol::{Bar, BarLine, Symbol, Timeframe};

use super::*;

const T0: i64 = 1_770_112_800; // 2026-02-03T10:00:00Z

/// The replay as it was before it streamed: every file read whole and held (the reference the
/// streamed replay must equal, bar for bar).
struct WholeFileReplay {
    series: BTreeMap<Symbol, (Timeframe, usize, Vec<Bar>)>,
    next: BTreeMap<Symbol, usize>,
}

impl WholeFileReplay {
    fn load(dir: &Path, symbols: &[(Symbol, Timeframe, usize)], start_bar: usize) -> Self {
        let mut series = BTreeMap::new();
        let mut next = BTreeMap::new();
        for (sym, tf, digits) in symbols {
            let path = dir.join(format!("{}.csv", sym.as_str()));
            if !path.is_file() {
                continue;
            }
            let bars = read_bars_csv(&path).unwrap();
            next.insert(sym.clone(), start_bar.min(bars.len()));
            series.insert(sym.clone(), (*tf, *digits, bars));
        }
        WholeFileReplay { series, next }
    }

    fn line(sym: &Symbol, s: &(Timeframe, usize, Vec<Bar>), i: usize) -> Option<BarLine> {
        s.2.get(i)?.to_line(sym, s.0, s.1).ok()
    }

    fn step(&mut self) -> Vec<BarLine> {
        let earliest = self
            .series
            .iter()
            .filter_map(|(s, series)| series.2.get(*self.next.get(s)?).map(|b| b.time))
            .min();
        let Some(t) = earliest else { return Vec::new() };
        let mut out = Vec::new();
        for (s, series) in &self.series {
            let i = self.next.get_mut(s).unwrap();
            if series.2.get(*i).is_some_and(|b| b.time == t) {
                out.extend(Self::line(s, series, *i));
                *i += 1;
            }
        }
        out
    }

    fn history(&self, symbol: &Symbol, timeframe: Timeframe, count: usize) -> Option<Vec<BarLine>> {
        let series = self.series.get(symbol)?;
        if !series.2.is_empty() && series.0 != timeframe {
            return None;
        }
        let end = *self.next.get(symbol)?;
        Some(
            (end.saturating_sub(count)..end)
                .filter_map(|i| Self::line(symbol, series, i))
                .collect(),
        )
    }
}

fn demo_symbols(dir: &Path) -> Vec<(Symbol, Timeframe, usize)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .map(|p| {
            let digits = BarsReader::new().read(&p).unwrap().price_decimals as usize;
            let sym: Symbol = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            (sym, Timeframe::H1, digits)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    // One symbol the directory does not have, as a config can name.
    out.push(("XAGUSD".parse().unwrap(), Timeframe::H1, 3));
    out
}

/// The streamed replay publishes the demo data's bars exactly as the whole-file replay did: the
/// same bars in the same steps, the same WARMUP history wherever it is asked, at block sizes that
/// put block boundaries everywhere.
#[test]
fn the_streamed_replay_equals_the_whole_file_replay_on_the_demo_data() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/demo");
    let symbols = demo_symbols(&dir);
    assert_eq!(symbols.len(), 21, "data/demo has the 20 demo symbols");
    for (block, start_bar) in [(BLOCK, 1350), (7, 0), (1, 4990), (300, 6000)] {
        let mut old = WholeFileReplay::load(&dir, &symbols, start_bar);
        let mut new = CsvBarSource::load_in_blocks(&dir, &symbols, start_bar, block).unwrap();
        assert!(new.symbols().eq(old.series.keys()));
        let mut steps = 0;
        loop {
            if steps % 997 == 0 {
                for (sym, tf, _) in &symbols {
                    for count in [1, 350, 1350, 20_000] {
                        assert_eq!(
                            new.history(sym, *tf, count).unwrap(),
                            old.history(sym, *tf, count),
                            "{sym} history of {count} after {steps} steps (block {block}, start {start_bar})"
                        );
                    }
                    assert_eq!(
                        new.history(sym, Timeframe::M15, 5).unwrap(),
                        old.history(sym, Timeframe::M15, 5)
                    );
                }
            }
            let (a, b) = (new.step().unwrap(), old.step());
            assert_eq!(a, b, "step {steps} (block {block}, start {start_bar})");
            assert!(
                new.bars_held() <= 20 * block,
                "{} bars held",
                new.bars_held()
            );
            if b.is_empty() {
                break;
            }
            steps += 1;
        }
        assert!(new.is_finished());
        assert_eq!(
            steps,
            5000usize.saturating_sub(start_bar),
            "block {block}, start {start_bar}"
        );
    }
}

fn write_bars(path: &Path, rows: std::ops::Range<i64>) -> String {
    let mut text = String::from("time,open,high,low,close,volume\n");
    for i in rows {
        text.push_str(&format!("{},1.1,1.95,1.0,1.{i},1\n", T0 + i * 3600));
    }
    std::fs::write(path, &text).unwrap();
    text
}

fn eurusd() -> Vec<(Symbol, Timeframe, usize)> {
    vec![
        ("EURUSD".parse().unwrap(), Timeframe::H1, 5),
        ("GBPUSD".parse().unwrap(), Timeframe::H1, 5),
    ]
}

fn times(bars: &[BarLine]) -> Vec<i64> {
    bars.iter().map(|b| b.time.unix_seconds()).collect()
}

/// A line made malformed in the middle of a file while the replay runs: the step that needs it
/// fails naming the file, the line and the field, and publishes nothing (not even the other
/// symbol's bar of that time); everything before it was published.
#[test]
fn a_malformed_line_mid_stream_stops_the_step_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let eur = dir.path().join("EURUSD.csv");
    let text = write_bars(&eur, 0..10);
    write_bars(&dir.path().join("GBPUSD.csv"), 0..10);
    let mut src = CsvBarSource::load_in_blocks(dir.path(), &eurusd(), 0, 4).unwrap();
    for i in 0..4 {
        assert_eq!(times(&src.step().unwrap()), vec![T0 + i * 3600; 2]);
    }
    // Row 5 (line 7) is in the second block, not read yet.
    std::fs::write(
        &eur,
        text.replace("1.1,1.95,1.0,1.5,1", "1.1,1.95,1.0,1.5,x"),
    )
    .unwrap();
    let e = src.step().unwrap_err().to_string();
    assert!(
        e.contains("EURUSD.csv:7: volume: \"x\" is not a number"),
        "{e}"
    );
    assert!(
        e.contains("the file changed after the replay checked it"),
        "{e}"
    );
    assert!(src.step().is_err(), "still stopped at the same place");
    // Restored, the replay goes on from the bar it stopped at: nothing was lost or skipped.
    std::fs::write(&eur, &text).unwrap();
    assert_eq!(times(&src.step().unwrap()), vec![T0 + 4 * 3600; 2]);
    let h = src
        .history(&"EURUSD".parse().unwrap(), Timeframe::H1, 100)
        .unwrap()
        .unwrap();
    assert_eq!(times(&h), (0..5).map(|i| T0 + i * 3600).collect::<Vec<_>>());
}

/// A file truncated under the replay: the error names the file, where it now ends, and how many
/// bars it held.
#[test]
fn a_truncated_file_is_named_with_where_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let eur = dir.path().join("EURUSD.csv");
    let text = write_bars(&eur, 0..10);
    let mut src = CsvBarSource::load_in_blocks(dir.path(), &eurusd(), 2, 4).unwrap();
    assert_eq!(times(&src.step().unwrap()), vec![T0 + 2 * 3600]);
    let cut: String = text.lines().take(6).map(|l| format!("{l}\n")).collect();
    std::fs::write(&eur, cut).unwrap();
    // The next block (rows 4..8, lines 6..9) now ends after line 6.
    src.step().unwrap();
    let e = src.step().unwrap_err().to_string();
    assert!(
        e.contains("EURUSD.csv:7: the file ends here, but it held 10 bars"),
        "{e}"
    );
    // A history read crossing the cut fails the same way; one before it still reads.
    let sym: Symbol = "EURUSD".parse().unwrap();
    assert_eq!(
        src.history(&sym, Timeframe::H1, 2).unwrap().unwrap().len(),
        2
    );
    // Cut in the middle of a line: that line is named.
    let mid = &text[..text.find("1.3,1\n").unwrap() + 3];
    std::fs::write(&eur, mid).unwrap();
    let e = src.history(&sym, Timeframe::H1, 4).unwrap_err().to_string();
    assert!(e.contains("EURUSD.csv:5: row: 5 fields, expected 6"), "{e}");
}

/// Rows rewritten with other, well-formed values are refused: the replay never publishes bars
/// it did not check at start.
#[test]
fn a_rewritten_file_is_refused_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let eur = dir.path().join("EURUSD.csv");
    let text = write_bars(&eur, 0..10);
    let mut src = CsvBarSource::load_in_blocks(dir.path(), &eurusd(), 0, 4).unwrap();
    src.step().unwrap();
    std::fs::write(
        &eur,
        text.replace("1.1,1.95,1.0,1.6,1", "1.1,1.95,1.0,1.45,1"),
    )
    .unwrap();
    for _ in 1..4 {
        src.step().unwrap(); // the first block was read before the change
    }
    let e = src.step().unwrap_err().to_string();
    assert!(
        e.contains("EURUSD.csv:6-9: these lines no longer hold the bars the replay checked"),
        "{e}"
    );
}

/// A file renamed over the replay's (a new file at the same path) is not read: the replay goes
/// on with the file it checked, to the end, exactly.
#[test]
fn a_file_renamed_over_the_replays_is_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let eur = dir.path().join("EURUSD.csv");
    write_bars(&eur, 0..10);
    let mut old = WholeFileReplay::load(dir.path(), &eurusd(), 3);
    let mut src = CsvBarSource::load_in_blocks(dir.path(), &eurusd(), 3, 4).unwrap();
    let other = dir.path().join("new.csv");
    std::fs::write(&other, "time,open,high,low,close,volume\nnonsense\n").unwrap();
    std::fs::rename(&other, &eur).unwrap();
    loop {
        let (a, b) = (src.step().unwrap(), old.step());
        assert_eq!(a, b);
        if b.is_empty() {
            break;
        }
    }
    let sym: Symbol = "EURUSD".parse().unwrap();
    assert_eq!(
        src.history(&sym, Timeframe::H1, 50).unwrap(),
        old.history(&sym, Timeframe::H1, 50)
    );
}

#[test]
fn csv_source_replays_in_time_order_and_serves_only_the_past() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = String::from("time,open,high,low,close,volume\n");
    for i in 0..5 {
        a.push_str(&format!("{},1.1,1.5,1.0,1.{i},1\n", T0 + i * 3600));
    }
    std::fs::write(dir.path().join("EURUSD.csv"), &a).unwrap();
    std::fs::write(
        dir.path().join("US500.csv"),
        format!(
            "time,open,high,low,close,volume\n{},5000,5001,4999,5000,1\n",
            T0 + 3 * 3600
        ),
    )
    .unwrap();
    let syms = vec![
        ("EURUSD".parse().unwrap(), Timeframe::H1, 5),
        ("US500".parse().unwrap(), Timeframe::H1, 2),
    ];
    let mut src = CsvBarSource::load(dir.path(), &syms, 2).unwrap();
    let eur: Symbol = "EURUSD".parse().unwrap();
    assert_eq!(
        src.history(&eur, Timeframe::H1, 10).unwrap().unwrap().len(),
        2
    );
    let s1 = src.step().unwrap();
    assert_eq!(s1.len(), 1);
    assert_eq!(s1[0].time.unix_seconds(), T0 + 2 * 3600);
    let s2 = src.step().unwrap();
    assert_eq!(
        s2.len(),
        1,
        "US500's only bar is history (start_bar 2 > its length)"
    );
    assert_eq!(
        src.history(&eur, Timeframe::H1, 2)
            .unwrap()
            .unwrap()
            .last()
            .unwrap()
            .time
            .unix_seconds(),
        T0 + 3 * 3600
    );
    src.step().unwrap();
    assert!(src.is_finished());
    assert!(src.step().unwrap().is_empty());
}
