//! Storage through sqlx's Any driver: one code path and one migration set for SQLite (the embedded
//! default) and PostgreSQL. On PostgreSQL with the TimescaleDB extension available, `candles`
//! becomes a hypertable (plain tables otherwise).
//!
//! Every write of a batch of records runs in one transaction; `records` is keyed by
//! (instance, stream, seq) and inserted with `ON CONFLICT DO NOTHING` (SQLite >= 3.24 and
//! PostgreSQL both have it), so a replay changes nothing and the derived state only moves forward.

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use fleet::InstanceId;
use protocol::Bar;
use protocol::bar::{VolumeError, tick_volume};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database url {0:?}: expected sqlite:PATH or postgres://…")]
    Url(String),
    /// A candle stored before the hub refused fractional volumes.
    #[error("stored candle at {time} (Unix s): volume {volume} {why}")]
    Volume {
        time: i64,
        volume: f64,
        why: VolumeError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a record changes besides its own row.
#[derive(Debug, Clone, PartialEq)]
pub enum Derived {
    None,
    Status {
        state: &'static str,
        mode: Option<String>,
        version: Option<String>,
        started_ms: Option<i64>,
    },
    Telemetry,
    Candle {
        symbol: String,
        timeframe: String,
        bar: Bar,
    },
    CommandResult {
        command_id: String,
        kind: &'static str,
    },
}

/// One accepted record, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub instance: InstanceId,
    pub stream: fleet::Stream,
    pub seq: i64,
    pub ts_ms: i64,
    pub received_ms: i64,
    pub symbol: Option<String>,
    pub tag: Option<String>,
    pub body: String,
    pub derived: Derived,
}

/// An instance's row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InstanceRow {
    pub instance: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub status: String,
    pub status_seq: i64,
    pub status_ms: i64,
    pub mode: Option<String>,
    pub version: Option<String>,
    pub started_ms: Option<i64>,
    pub telemetry_seq: i64,
    pub telemetry_ms: i64,
    /// The latest telemetry body (JSON).
    pub telemetry: Option<serde_json::Value>,
    pub rejected: i64,
    pub last_rejection: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordRow {
    pub stream: String,
    pub seq: i64,
    pub ts_ms: i64,
    pub received_ms: i64,
    pub symbol: Option<String>,
    pub tag: Option<String>,
    pub body: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CommandRow {
    pub id: String,
    pub instance: String,
    pub op: String,
    pub command: serde_json::Value,
    pub confirm: Option<String>,
    pub issued_ms: i64,
    pub expires_ms: i64,
    pub result_kind: Option<String>,
    pub result: Option<serde_json::Value>,
    pub answered_ms: Option<i64>,
}

fn json(text: Option<String>) -> Option<serde_json::Value> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

const INSTANCE_COLS: &str = "instance, first_seen_ms, last_seen_ms, status, status_seq, status_ms, mode, version, started_ms, telemetry_seq, telemetry_ms, telemetry, rejected, last_rejection";

fn instance_row(r: &AnyRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(InstanceRow {
        instance: r.try_get("instance")?,
        first_seen_ms: r.try_get("first_seen_ms")?,
        last_seen_ms: r.try_get("last_seen_ms")?,
        status: r.try_get("status")?,
        status_seq: r.try_get("status_seq")?,
        status_ms: r.try_get("status_ms")?,
        mode: r.try_get("mode")?,
        version: r.try_get("version")?,
        started_ms: r.try_get("started_ms")?,
        telemetry_seq: r.try_get("telemetry_seq")?,
        telemetry_ms: r.try_get("telemetry_ms")?,
        telemetry: json(r.try_get("telemetry")?),
        rejected: r.try_get("rejected")?,
        last_rejection: r.try_get("last_rejection")?,
    })
}

const COMMAND_COLS: &str =
    "id, instance, op, command, confirm, issued_ms, expires_ms, result_kind, result, answered_ms";

fn command_row(r: &AnyRow) -> Result<CommandRow, sqlx::Error> {
    Ok(CommandRow {
        id: r.try_get("id")?,
        instance: r.try_get("instance")?,
        op: r.try_get("op")?,
        command: json(r.try_get("command")?).unwrap_or(serde_json::Value::Null),
        confirm: r.try_get("confirm")?,
        issued_ms: r.try_get("issued_ms")?,
        expires_ms: r.try_get("expires_ms")?,
        result_kind: r.try_get("result_kind")?,
        result: json(r.try_get("result")?),
        answered_ms: r.try_get("answered_ms")?,
    })
}

/// A command the hub is about to send.
#[derive(Debug, Clone)]
pub struct NewCommand {
    pub id: String,
    pub instance: InstanceId,
    pub op: String,
    pub command: String,
    pub confirm: Option<String>,
    pub issued_ms: i64,
    pub expires_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    pub backend: Backend,
    /// `candles` is a TimescaleDB hypertable.
    pub hypertables: bool,
}

impl Store {
    /// Connects, applies the migrations, and on PostgreSQL makes `candles` a hypertable when the
    /// TimescaleDB extension is available.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            // mode=rwc: create the file on first start.
            let sep = if path.contains('?') { '&' } else { '?' };
            (Backend::Sqlite, format!("sqlite://{path}{sep}mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(StoreError::Url(url.to_string()));
        };
        let max = if backend == Backend::Sqlite { 4 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers (the dashboard) never block the writer (ingest).
                        // synchronous=NORMAL in WAL mode loses no committed transaction on an
                        // application crash, only possibly the last ones on power loss
                        // (sqlite.org/pragma.html#pragma_synchronous).
                        sqlx::query("PRAGMA journal_mode=WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous=NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout=5000")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let mut store = Store {
            pool,
            backend,
            hypertables: false,
        };
        if backend == Backend::Postgres {
            store.hypertables = store.try_hypertables().await?;
        }
        Ok(store)
    }

    /// TimescaleDB, when the server has it (docs.timescale.com, create_hypertable): `candles` is
    /// partitioned by open_time (integer seconds, 30-day chunks). Its primary key includes
    /// open_time, as a hypertable's unique indexes must.
    async fn try_hypertables(&self) -> Result<bool, StoreError> {
        let available: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM pg_available_extensions WHERE name = 'timescaledb'",
        )
        .fetch_one(&self.pool)
        .await?
        .try_get("n")?;
        if available == 0 {
            tracing::info!("PostgreSQL without TimescaleDB: plain tables");
            return Ok(false);
        }
        sqlx::query("CREATE EXTENSION IF NOT EXISTS timescaledb")
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "SELECT create_hypertable('candles', 'open_time', chunk_time_interval => 2592000, if_not_exists => TRUE, migrate_data => TRUE)",
        )
        .execute(&self.pool)
        .await?;
        tracing::info!("TimescaleDB: candles is a hypertable");
        Ok(true)
    }

    /// Writes a batch in one transaction. Returns, per record, whether it was new.
    pub async fn write(&self, batch: &[Accepted]) -> Result<Vec<bool>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut fresh = Vec::with_capacity(batch.len());
        for a in batch {
            let id = a.instance.as_str();
            sqlx::query(
                "INSERT INTO instances (instance, first_seen_ms, last_seen_ms) VALUES ($1, $2, $2)
                 ON CONFLICT (instance) DO UPDATE SET last_seen_ms = CASE WHEN instances.last_seen_ms > excluded.last_seen_ms THEN instances.last_seen_ms ELSE excluded.last_seen_ms END",
            )
            .bind(id)
            .bind(a.received_ms)
            .execute(&mut *tx)
            .await?;
            let inserted = sqlx::query(
                "INSERT INTO records (instance, stream, seq, ts_ms, received_ms, symbol, tag, body)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (instance, stream, seq) DO NOTHING",
            )
            .bind(id)
            .bind(a.stream.as_str())
            .bind(a.seq)
            .bind(a.ts_ms)
            .bind(a.received_ms)
            .bind(a.symbol.clone())
            .bind(a.tag.clone())
            .bind(a.body.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            fresh.push(inserted);
            if !inserted {
                continue;
            }
            match &a.derived {
                Derived::None => {}
                // Only a newer seq moves the state: an old record replayed late cannot bring a
                // dead instance back online or rewind its figures.
                Derived::Status {
                    state,
                    mode,
                    version,
                    started_ms,
                } => {
                    sqlx::query(
                        "UPDATE instances SET status = $2, status_seq = $3, status_ms = $4,
                         mode = COALESCE($5, mode), version = COALESCE($6, version), started_ms = COALESCE($7, started_ms)
                         WHERE instance = $1 AND status_seq < $3",
                    )
                    .bind(id)
                    .bind(*state)
                    .bind(a.seq)
                    .bind(a.received_ms)
                    .bind(mode.clone())
                    .bind(version.clone())
                    .bind(*started_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                Derived::Telemetry => {
                    sqlx::query(
                        "UPDATE instances SET telemetry = $2, telemetry_seq = $3, telemetry_ms = $4
                         WHERE instance = $1 AND telemetry_seq < $3",
                    )
                    .bind(id)
                    .bind(a.body.clone())
                    .bind(a.seq)
                    .bind(a.ts_ms)
                    .execute(&mut *tx)
                    .await?;
                }
                Derived::Candle {
                    symbol,
                    timeframe,
                    bar,
                } => {
                    sqlx::query(
                        "INSERT INTO candles (instance, symbol, timeframe, open_time, open, high, low, close, volume)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                         ON CONFLICT (instance, symbol, timeframe, open_time) DO NOTHING",
                    )
                    .bind(id)
                    .bind(symbol.clone())
                    .bind(timeframe.clone())
                    .bind(bar.time)
                    .bind(bar.open)
                    .bind(bar.high)
                    .bind(bar.low)
                    .bind(bar.close)
                    // The column is a double; a tick count below 2^53 is exact in it.
                    .bind(bar.volume as f64)
                    .execute(&mut *tx)
                    .await?;
                }
                // The instance in the topic must own the command: instance B cannot answer (or
                // overwrite the answer to) a command sent to A.
                Derived::CommandResult { command_id, kind } => {
                    sqlx::query(
                        "UPDATE commands SET result_kind = $3, result = $4, answered_ms = $5
                         WHERE id = $1 AND instance = $2",
                    )
                    .bind(command_id.clone())
                    .bind(id)
                    .bind(*kind)
                    .bind(a.body.clone())
                    .bind(a.received_ms)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(fresh)
    }

    /// Counts a refused payload against the instance named by its topic (the broker authenticated
    /// that name), with the reason, bounded.
    pub async fn reject(
        &self,
        instance: &InstanceId,
        reason: &str,
        received_ms: i64,
    ) -> Result<(), StoreError> {
        let mut reason = reason.to_string();
        if reason.len() > 300 {
            let mut end = 300;
            while !reason.is_char_boundary(end) {
                end -= 1;
            }
            reason.truncate(end);
        }
        sqlx::query(
            "INSERT INTO instances (instance, first_seen_ms, last_seen_ms, rejected, last_rejection) VALUES ($1, $2, $2, 1, $3)
             ON CONFLICT (instance) DO UPDATE SET rejected = instances.rejected + 1, last_rejection = excluded.last_rejection",
        )
        .bind(instance.as_str())
        .bind(received_ms)
        .bind(reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INSTANCE_COLS} FROM instances ORDER BY instance"
        )))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(instance_row).collect::<Result<_, _>>()?)
    }

    pub async fn instance(&self, id: &InstanceId) -> Result<Option<InstanceRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INSTANCE_COLS} FROM instances WHERE instance = $1"
        )))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(instance_row).transpose()?)
    }

    /// The latest `limit` records of a stream, newest first (`before_seq`: page further back).
    pub async fn records(
        &self,
        id: &InstanceId,
        stream: fleet::Stream,
        limit: i64,
        before_seq: Option<i64>,
    ) -> Result<Vec<RecordRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT stream, seq, ts_ms, received_ms, symbol, tag, body FROM records
             WHERE instance = $1 AND stream = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4",
        )
        .bind(id.as_str())
        .bind(stream.as_str())
        .bind(before_seq.unwrap_or(i64::MAX))
        .bind(limit.clamp(1, 5000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RecordRow {
                    stream: r.try_get("stream")?,
                    seq: r.try_get("seq")?,
                    ts_ms: r.try_get("ts_ms")?,
                    received_ms: r.try_get("received_ms")?,
                    symbol: r.try_get("symbol")?,
                    tag: r.try_get("tag")?,
                    body: json(r.try_get("body")?).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Counts per tag of one stream (e.g. ACK refusals by reason).
    pub async fn tag_counts(
        &self,
        id: &InstanceId,
        stream: fleet::Stream,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tag, COUNT(*) AS n FROM records WHERE instance = $1 AND stream = $2 AND tag IS NOT NULL
             GROUP BY tag ORDER BY n DESC, tag",
        )
        .bind(id.as_str())
        .bind(stream.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tag")?, r.try_get("n")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Recorded bars, oldest first.
    pub async fn candles(
        &self,
        id: &InstanceId,
        symbol: &str,
        timeframe: &str,
    ) -> Result<Vec<Bar>, StoreError> {
        let rows = sqlx::query(
            "SELECT open_time, open, high, low, close, volume FROM candles
             WHERE instance = $1 AND symbol = $2 AND timeframe = $3 ORDER BY open_time",
        )
        .bind(id.as_str())
        .bind(symbol)
        .bind(timeframe)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let time: i64 = r.try_get("open_time")?;
                let volume: f64 = r.try_get("volume")?;
                Ok(Bar {
                    time,
                    open: r.try_get("open")?,
                    high: r.try_get("high")?,
                    low: r.try_get("low")?,
                    close: r.try_get("close")?,
                    volume: tick_volume(volume).map_err(|why| StoreError::Volume {
                        time,
                        volume,
                        why,
                    })?,
                })
            })
            .collect()
    }

    pub async fn insert_command(&self, c: &NewCommand) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO commands (id, instance, op, command, confirm, issued_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(c.id.clone())
        .bind(c.instance.as_str())
        .bind(c.op.clone())
        .bind(c.command.clone())
        .bind(c.confirm.clone())
        .bind(c.issued_ms)
        .bind(c.expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn commands(
        &self,
        id: &InstanceId,
        limit: i64,
    ) -> Result<Vec<CommandRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COMMAND_COLS} FROM commands WHERE instance = $1 ORDER BY issued_ms DESC, id LIMIT $2"
        )))
        .bind(id.as_str())
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(command_row).collect::<Result<_, _>>()?)
    }

    pub async fn command(&self, id: &str) -> Result<Option<CommandRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COMMAND_COLS} FROM commands WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(command_row).transpose()?)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
