//! One storage suite, run against SQLite (a temp file) and a private PostgreSQL cluster: upserts by
//! (instance, stream, seq), derived state that only moves forward, unique candles, command results
//! bound to the instance that owns the command, refusals counted per instance.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use fleet::{
    BarRecord, CommandId, CommandOutcome, CommandResult, InstanceId, Origin, Record, Status,
    Stream, stream_topic,
};
use hub::ingest::{Classified, classify};
use hub::store::{Accepted, NewCommand, Store};
use protocol::{Mode, Symbol, Timeframe};

const T0: i64 = 1_767_225_600_000;

fn id(s: &str) -> InstanceId {
    InstanceId::new(s).unwrap()
}

fn accepted<B: serde::Serialize>(inst: &str, stream: Stream, seq: u64, body: B) -> Accepted {
    let payload = Record::new(seq, T0 + seq as i64, body).to_bytes();
    match classify(
        &stream_topic(&id(inst), stream),
        &payload,
        T0 + 1000 + seq as i64,
    ) {
        Classified::Accepted(a) => *a,
        other => panic!("{other:?}"),
    }
}

fn bar(open_time: i64, close: f64) -> BarRecord {
    BarRecord {
        symbol: Symbol::new("EURUSD").unwrap(),
        timeframe: Timeframe::M15,
        open_time: protocol::BarTime::from_unix(open_time).unwrap(),
        open: 1.08512,
        high: close.max(1.08512) + 0.0001,
        low: close.min(1.08512) - 0.0001,
        close,
        volume: 42.0,
    }
}

fn online(version: &str) -> Status {
    Status::Online {
        mode: Mode::Shadow,
        version: version.into(),
        started_ms: T0,
    }
}

async fn suite(store: Store) {
    // A batch, then the same batch again (a replay after an outage): nothing new the second time.
    let batch = vec![
        accepted("a", Stream::Status, 3, online("1.0")),
        accepted("a", Stream::Bars, 1, bar(1_767_225_600, 1.08601)),
        accepted("a", Stream::Bars, 2, bar(1_767_226_500, 0.1 + 0.2)),
        accepted(
            "a",
            Stream::Signals,
            1,
            fleet::SignalRecord {
                line: "SIGNAL|EURUSD|LONG_WEAK|3|0.00|B:2026-01-01T00:00:00Z|N:1".into(),
            },
        ),
        accepted(
            "a",
            Stream::Acks,
            1,
            fleet::AckRecord {
                book: fleet::Book::Live,
                line: "ACK|EURUSD|LONG_WEAK|FAIL|MARKET_CLOSED|B:2026-01-01T00:00:00Z".into(),
            },
        ),
        accepted(
            "a",
            Stream::Acks,
            2,
            fleet::AckRecord {
                book: fleet::Book::Paper,
                line: "ACK|EURUSD|LONG_WEAK|OK|T:1|P:1.08512".into(),
            },
        ),
    ];
    assert_eq!(store.write(&batch).await.unwrap(), vec![true; batch.len()]);
    assert_eq!(store.write(&batch).await.unwrap(), vec![false; batch.len()]);

    // The same bar under another seq (a restarted instance re-sending it) is still one candle,
    // and the first value stays.
    let dup = accepted("a", Stream::Bars, 3, bar(1_767_225_600, 9.0));
    assert_eq!(store.write(&[dup]).await.unwrap(), vec![true]);
    let candles = store.candles(&id("a"), "EURUSD", "M15").await.unwrap();
    assert_eq!(candles.len(), 2);
    assert_eq!(candles[0].time, 1_767_225_600);
    assert_eq!(
        candles[0].volume, 42,
        "the tick volume through the database"
    );
    assert_eq!(candles[0].close, 1.08601, "exact f64 through the database");
    assert_eq!(
        candles[1].close,
        0.1 + 0.2,
        "exact f64 through the database"
    );
    assert_eq!(candles[0].open, 1.08512);

    // Out of order: a late offline with an older seq does not undo the newer online.
    store
        .write(&[accepted("a", Stream::Status, 2, Status::Offline)])
        .await
        .unwrap();
    let a = store.instance(&id("a")).await.unwrap().unwrap();
    assert_eq!((a.status.as_str(), a.status_seq), ("online", 3));
    assert_eq!(a.mode.as_deref(), Some("shadow"));
    assert_eq!(a.version.as_deref(), Some("1.0"));
    store
        .write(&[accepted("a", Stream::Status, 4, Status::Offline)])
        .await
        .unwrap();
    let a = store.instance(&id("a")).await.unwrap().unwrap();
    assert_eq!((a.status.as_str(), a.status_seq), ("offline", 4));
    assert_eq!(
        a.mode.as_deref(),
        Some("shadow"),
        "offline keeps the last mode"
    );

    // Records newest first; tags counted.
    let acks = store
        .records(&id("a"), Stream::Acks, 10, None)
        .await
        .unwrap();
    assert_eq!(acks.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![2, 1]);
    assert_eq!(acks[1].tag.as_deref(), Some("MARKET_CLOSED"));
    assert_eq!(acks[1].symbol.as_deref(), Some("EURUSD"));
    let older = store
        .records(&id("a"), Stream::Acks, 10, Some(2))
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    let tags = store.tag_counts(&id("a"), Stream::Acks).await.unwrap();
    assert_eq!(
        tags,
        vec![("MARKET_CLOSED".to_string(), 1), ("OK".to_string(), 1)]
    );

    // A command to a, answered first by b (a compromised instance), then by a.
    let cid = CommandId::from_random([5; 16]);
    store
        .insert_command(&NewCommand {
            id: cid.to_string(),
            instance: id("a"),
            op: "pause".into(),
            command: r#"{"op":"pause"}"#.into(),
            confirm: None,
            issued_ms: T0,
            expires_ms: T0 + 60_000,
        })
        .await
        .unwrap();
    let answer = |detail: &str| CommandOutcome {
        command_id: Some(cid.clone()),
        origin: Origin::Hub,
        op: Some("pause".into()),
        result: CommandResult::Ok {
            detail: Some(detail.into()),
        },
    };
    store
        .write(&[accepted(
            "b",
            Stream::CommandResults,
            1,
            answer("forged by b"),
        )])
        .await
        .unwrap();
    let c = store.command(cid.as_str()).await.unwrap().unwrap();
    assert_eq!(c.result_kind, None, "b must not answer a's command");
    store
        .write(&[accepted("a", Stream::CommandResults, 1, answer("paused"))])
        .await
        .unwrap();
    let c = store.command(cid.as_str()).await.unwrap().unwrap();
    assert_eq!(c.result_kind.as_deref(), Some("ok"));
    assert_eq!(c.result.unwrap()["detail"], "paused");
    assert_eq!(store.commands(&id("a"), 10).await.unwrap().len(), 1);
    assert!(store.commands(&id("b"), 10).await.unwrap().is_empty());

    // Refusals are counted against the sender only.
    store
        .reject(&id("b"), &"x".repeat(10_000), T0)
        .await
        .unwrap();
    store.reject(&id("b"), "bad", T0).await.unwrap();
    let b = store.instance(&id("b")).await.unwrap().unwrap();
    assert_eq!(b.rejected, 2);
    assert_eq!(b.last_rejection.as_deref(), Some("bad"));
    let a = store.instance(&id("a")).await.unwrap().unwrap();
    assert_eq!(a.rejected, 0);
    let all = store.instances().await.unwrap();
    assert_eq!(
        all.iter().map(|i| i.instance.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_passes_the_storage_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.db").display());
    let store = Store::open(&url).await.unwrap();
    assert!(!store.hypertables);
    suite(store).await;
    // Reopening runs no migration twice and keeps the data.
    let again = Store::open(&url).await.unwrap();
    assert_eq!(again.instances().await.unwrap().len(), 2);
}

#[test]
fn postgres_passes_the_storage_suite() {
    let pg = support::Postgres::start();
    let url = pg.database("hub_suite");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        // This image's PostgreSQL has no TimescaleDB: the plain-table path.
        assert!(!store.hypertables);
        suite(store).await;
        let again = Store::open(&url).await.unwrap();
        assert_eq!(again.instances().await.unwrap().len(), 2);
        again.close().await;
    });
}
