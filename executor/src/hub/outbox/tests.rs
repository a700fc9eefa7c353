use std::sync::atomic::Ordering;

use fleet::{SignalRecord, Stream};

use super::*;

fn sig(n: u32) -> SignalRecord {
    SignalRecord {
        line: format!("SIGNAL|EURUSD|WAIT|0|0.00|B:2026-02-03T10:00:00Z|N:{n}"),
    }
}

fn drain(r: &mut Reader) -> Vec<Item> {
    let mut all = Vec::new();
    loop {
        let b = r.next_batch(7).unwrap();
        if b.is_empty() {
            return all;
        }
        all.extend(b);
    }
}

const TS: i64 = 1_767_225_600_000;

#[test]
fn records_come_back_in_order_with_their_seq_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r) = open(dir.path(), 1 << 20).unwrap();
    for n in 1..=5 {
        assert_eq!(
            w.append(Stream::Signals, TS, sig(n)),
            Appended::Queued(n as u64)
        );
    }
    assert_eq!(w.append(Stream::Acks, TS, sig(9)), Appended::Queued(1));
    let items = drain(&mut r);
    let seqs: Vec<(Stream, u64)> = items.iter().map(|i| (i.stream, i.seq)).collect();
    assert_eq!(seqs[..5], [1, 2, 3, 4, 5].map(|q| (Stream::Signals, q)));
    assert_eq!(seqs[5], (Stream::Acks, 1));
    // The payload is the record as published.
    let rec: fleet::Record<SignalRecord> = serde_json::from_slice(&items[2].payload).unwrap();
    assert_eq!(rec.seq, 3);
    assert_eq!(rec.body, sig(3));
    r.ack(&items[1]).unwrap();
    drop((w, r));
    // Nothing was acknowledged past the 2nd: a restart sends all of the segment again (the
    // hub's upsert ignores repeats) and numbering continues, never reused.
    let (mut w, mut r) = open(dir.path(), 1 << 20).unwrap();
    assert_eq!(w.append(Stream::Signals, TS, sig(6)), Appended::Queued(6));
    let again: Vec<u64> = drain(&mut r).iter().map(|i| i.seq).collect();
    assert_eq!(again, [1, 2, 3, 4, 5, 1, 6]);
}

#[test]
fn acknowledged_segments_are_deleted_and_the_seq_floor_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB cap -> 128 KiB segments.
    let (mut w, mut r) = open(dir.path(), 1 << 20).unwrap();
    let n = 3000;
    for i in 1..=n {
        w.append(Stream::Signals, TS, sig(i));
    }
    assert!(segments(dir.path()).unwrap().len() > 2);
    let items = drain(&mut r);
    assert_eq!(items.len(), n as usize);
    for i in &items {
        r.ack(i).unwrap();
    }
    let shared = r.shared();
    let left = segments(dir.path()).unwrap();
    assert_eq!(left.len(), 1, "only the writer's segment stays: {left:?}");
    let on_disk: u64 = left
        .iter()
        .map(|s| {
            std::fs::metadata(dir.path().join(seg_name(*s)))
                .unwrap()
                .len()
        })
        .sum();
    assert_eq!(shared.bytes.load(Ordering::Relaxed), on_disk);
    drop((w, r));
    // Even with every segment gone, the numbering goes on from counters.json.
    for s in segments(dir.path()).unwrap() {
        std::fs::remove_file(dir.path().join(seg_name(s))).unwrap();
    }
    let (mut w, _r) = open(dir.path(), 1 << 20).unwrap();
    // The floor is what was acked when the last segment was released (at least up to it).
    match w.append(Stream::Signals, TS, sig(0)) {
        Appended::Queued(q) => assert!(q > 2000, "seq went back to {q}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_torn_tail_is_cut_and_a_garbage_line_skipped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut w, _r) = open(dir.path(), 1 << 20).unwrap();
        for n in 1..=3 {
            w.append(Stream::Bars, TS, sig(n));
        }
    }
    let seg = dir.path().join(seg_name(1));
    let mut text = std::fs::read(&seg).unwrap();
    // A line in the middle overwritten with garbage, and a record cut mid-write at the end.
    let first_nl = text.iter().position(|b| *b == b'\n').unwrap();
    let mut garbage = b"bars {not json".to_vec();
    garbage.resize(first_nl, b'x');
    text.splice(0..first_nl, garbage);
    text.extend_from_slice(b"bars {\"v\":1,\"seq\":4,\"ts_");
    std::fs::write(&seg, &text).unwrap();
    let (mut w, mut r) = open(dir.path(), 1 << 20).unwrap();
    let seqs: Vec<u64> = drain(&mut r).iter().map(|i| i.seq).collect();
    assert_eq!(seqs, [2, 3]);
    // The torn record's seq (4) was never complete; numbering continues after the last whole one.
    assert_eq!(w.append(Stream::Bars, TS, sig(4)), Appended::Queued(4));
    let next: Vec<u64> = drain(&mut r).iter().map(|i| i.seq).collect();
    assert_eq!(next, [4], "the new record starts on a line of its own");
}

#[test]
fn at_the_cap_records_are_dropped_counted_and_leave_a_gap_telemetry_waits_for_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let (mut w, mut r) = open(dir.path(), 1 << 20).unwrap();
    let shared = w.shared();
    let tele = || fleet::SignalRecord { line: "x".into() };
    assert_eq!(w.append(Stream::Telemetry, TS, tele()), Appended::Skipped);
    shared.connected.store(true, Ordering::Relaxed);
    assert_eq!(w.append(Stream::Telemetry, TS, tele()), Appended::Queued(1));
    let mut dropped = Vec::new();
    for n in 1..=20_000 {
        if let Appended::Dropped(q) = w.append(Stream::Signals, TS, sig(n)) {
            dropped.push(q);
        }
    }
    assert!(!dropped.is_empty(), "a 1 MiB cap must fill");
    assert!(shared.bytes.load(Ordering::Relaxed) <= 1 << 20);
    assert_eq!(shared.dropped.load(Ordering::Relaxed), dropped.len() as u64);
    assert_eq!(shared.telemetry_skipped.load(Ordering::Relaxed), 1);
    // Space comes back once the broker took some: a later record's seq shows the gap.
    let items = drain(&mut r);
    for i in &items {
        r.ack(i).unwrap();
    }
    let last_dropped = *dropped.last().unwrap();
    assert_eq!(
        w.append(Stream::Signals, TS, sig(0)),
        Appended::Queued(last_dropped + 1)
    );
}

#[test]
fn status_seqs_are_reserved_in_pairs_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (_w, mut r) = open(dir.path(), 1 << 20).unwrap();
    assert_eq!(r.reserve_status().unwrap(), (1, 2));
    assert_eq!(r.reserve_status().unwrap(), (3, 4));
    assert_eq!(r.next_status().unwrap(), 5);
    drop(r);
    let (_w, mut r) = open(dir.path(), 1 << 20).unwrap();
    assert_eq!(r.reserve_status().unwrap(), (6, 7));
}
