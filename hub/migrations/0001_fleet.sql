-- The hub's schema, one text for SQLite and PostgreSQL (plain SQL types both accept; booleans as
-- BIGINT 0/1 so the Any driver reads them alike). Times are Unix milliseconds unless named _time.

-- The latest known state of each instance (derived from its records).
CREATE TABLE instances (
    instance       TEXT PRIMARY KEY,
    first_seen_ms  BIGINT NOT NULL,
    -- The hub's clock when the last accepted record of any stream arrived (the heartbeat).
    last_seen_ms   BIGINT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'unknown',
    status_seq     BIGINT NOT NULL DEFAULT 0,
    status_ms      BIGINT NOT NULL DEFAULT 0,
    mode           TEXT,
    version        TEXT,
    started_ms     BIGINT,
    telemetry_seq  BIGINT NOT NULL DEFAULT 0,
    telemetry_ms   BIGINT NOT NULL DEFAULT 0,
    telemetry      TEXT,
    -- Payloads refused from this instance (malformed, oversized, invalid) and the last reason.
    rejected       BIGINT NOT NULL DEFAULT 0,
    last_rejection TEXT
);

-- Every accepted record, once: (instance, stream, seq) is the instance's own numbering, so a
-- replay after an outage inserts nothing.
CREATE TABLE records (
    instance    TEXT NOT NULL,
    stream      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    ts_ms       BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    -- The symbol a record is about, and a short tag: a signal's action, an ACK's outcome/reason,
    -- a command result's kind, a status's state.
    symbol      TEXT,
    tag         TEXT,
    body        TEXT NOT NULL,
    PRIMARY KEY (instance, stream, seq)
);

-- The recorder: closed bars, unique per bar. open_time is Unix seconds (the bar's open).
CREATE TABLE candles (
    instance  TEXT NOT NULL,
    symbol    TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    open_time BIGINT NOT NULL,
    open      DOUBLE PRECISION NOT NULL,
    high      DOUBLE PRECISION NOT NULL,
    low       DOUBLE PRECISION NOT NULL,
    close     DOUBLE PRECISION NOT NULL,
    volume    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (instance, symbol, timeframe, open_time)
);

-- Commands the hub signed and sent, and the instance's answer.
CREATE TABLE commands (
    id          TEXT PRIMARY KEY,
    instance    TEXT NOT NULL,
    op          TEXT NOT NULL,
    command     TEXT NOT NULL,
    confirm     TEXT,
    issued_ms   BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL,
    result_kind TEXT,
    result      TEXT,
    answered_ms BIGINT
);
CREATE INDEX commands_by_instance ON commands (instance, issued_ms);
