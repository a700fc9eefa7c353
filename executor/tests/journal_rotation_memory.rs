//! Rotating a full journal (8 MB, about 25,000 entries) must not hold the file in memory: the heap it
//! grew to stayed the process's RSS afterwards (glibc keeps freed small allocations), which is how the
//! executor's RSS rose in steps over a long run (7.4 → 15.6 → 25.5 MB in a 2,000-bar demo, issue 17).
//! The peak is read from this process's VmHWM: this file holds one test so nothing else runs beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

use executor::journal::{Entry, Journal, ROTATE_BYTES, pending_intents};
use executor::orders::{Book, Leg, Side};
use protocol::{Ack, Action, BarTime, Decimal, Symbol};

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn rotating_a_full_journal_does_not_read_it_into_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.jsonl");
    // A shadow run's mix, written one line at a time (so writing it costs no memory): per bar and
    // symbol an ACK in each book, and an order (intent + result) on one bar in four; a few intents
    // stay pending.
    let symbols = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500"];
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut bar = 0i64;
    let mut pending = Vec::new();
    let stamp = |s: &str| -> chrono::DateTime<chrono::Utc> { s.parse().unwrap() };
    let price: Decimal = "1.08542".parse().unwrap();
    while std::fs::metadata(&path).unwrap().len() + (out.buffer().len() as u64) < ROTATE_BYTES {
        bar += 1;
        let bar_time = BarTime::from_unix(1_770_112_800 + bar * 3600).unwrap();
        for (s, symbol) in symbols.iter().enumerate() {
            let symbol: Symbol = symbol.parse().unwrap();
            for book in [Book::Live, Book::Paper] {
                let mut entries = Vec::new();
                if (bar + s as i64) % 4 == 0 {
                    let coid = format!("OT-{symbol}-{bar}-1O-{book}");
                    entries.push(Entry::Intent {
                        t: stamp("2026-02-03T10:00:01.000Z"),
                        book,
                        coid: coid.clone(),
                        leg: Leg::Open,
                        symbol: symbol.clone(),
                        bar: bar_time,
                        action: Action::LongModerate,
                        side: Some(Side::Buy),
                        lots: 0.03,
                        position_id: None,
                    });
                    if bar % 997 == 0 {
                        pending.push(coid);
                    } else {
                        entries.push(Entry::Result {
                            t: stamp("2026-02-03T10:00:01.004Z"),
                            book,
                            coid,
                            ok: true,
                            position_id: Some(bar as u64),
                            price: Some(1.08542),
                            lots: Some(0.03),
                            error: None,
                            resolved_by: None,
                        });
                    }
                }
                entries.push(Entry::Ack {
                    t: stamp("2026-02-03T10:00:01.005Z"),
                    book,
                    symbol: symbol.clone(),
                    bar: bar_time,
                    line: Ack::ok(
                        symbol.clone(),
                        Action::LongModerate,
                        Some(bar as u64),
                        Some(price.clone()),
                    )
                    .with_bar_time(Some(bar_time)),
                });
                for e in entries {
                    out.write_all(&serde_json::to_vec(&e).unwrap()).unwrap();
                    out.write_all(b"\n").unwrap();
                }
            }
        }
    }
    out.flush().unwrap();
    drop(out);
    let mut journal = Journal::open(&path).unwrap();
    assert!(journal.len_bytes() >= ROTATE_BYTES);

    let before = vm_hwm_kib();
    let (_, kept) = journal.rotate(64, "20260203T100000.000Z").unwrap();
    let grew = vm_hwm_kib().saturating_sub(before);

    let now = Journal::read_all(&path).unwrap();
    assert_eq!(kept, now.len());
    assert_eq!(kept, symbols.len() * 2 * 64 + pending.len());
    let mut still: Vec<String> = [Book::Live, Book::Paper]
        .into_iter()
        .flat_map(|b| pending_intents(&now, b))
        .filter_map(|e| match e {
            Entry::Intent { coid, .. } => Some(coid.clone()),
            _ => None,
        })
        .collect();
    still.sort();
    pending.sort();
    assert_eq!(still, pending, "every pending intent survives the rotation");
    assert!(
        grew < 3 * 1024,
        "rotating an {} MB journal raised the peak RSS by {grew} KiB",
        ROTATE_BYTES >> 20
    );
}
