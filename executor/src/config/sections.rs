//! The config's sections, one reader each: the top level, a symbol, `risk`, `broker` (`ctrader`,
//! `paper`) and `ipc`. Each names the field and the fix of every problem it finds.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use protocol::{Mode, Symbol, Timeframe};
use serde_json::{Map, Value};

use super::walker::{Walker, join, valid_lot, valid_pct};
use super::{
    BrokerConfig, ClockSource, CtraderConfig, DEFAULT_LOTS, ExecutorConfig, HttpConfig, IpcConfig,
    MAX_REPLAY_RATE, MIN_REPLAY_RATE, PaperConfig, QuoteConversion, RiskConfig, SymbolConfig,
    TOP_KEYS,
};
use crate::secrets;

impl Walker {
    pub(super) fn root(&mut self, v: &Value, path: &Path) -> Option<ExecutorConfig> {
        let m = self.object(v, "(root)")?;
        let default_timeframe = {
            let s = self.str_field(m, "", "timeframe");
            self.timeframe(s, "timeframe", Timeframe::M15)
        };
        let models_dir = self.path_field(m, "", "models_dir");
        let stale = self.u64_field(m, "", "stale_signal_max_age_secs", 60);
        if stale == 0 {
            self.problem(
                "stale_signal_max_age_secs",
                "0 would refuse every signal",
                "use a positive number of seconds, e.g. 60",
            );
        }
        let clock = match self.str_field(m, "", "clock") {
            None | Some("system") => ClockSource::System,
            Some("feed") => ClockSource::Feed,
            Some(other) => {
                self.problem(
                    "clock",
                    format!("{other:?} is not a clock source"),
                    "use \"system\" (production) or \"feed\" (replays, simulator)",
                );
                ClockSource::System
            }
        };
        let log_dir = self
            .path_field(m, "", "log_dir")
            .unwrap_or_else(|| self.resolve("var/log"));
        let state_dir = self
            .path_field(m, "", "state_dir")
            .unwrap_or_else(|| self.resolve("var/state"));

        let mut notes = Vec::new();
        let mut symbols = BTreeMap::new();
        let mut sym_entries: Vec<(String, String, &Value)> = Vec::new();
        for (k, val) in m {
            if TOP_KEYS.contains(&k.as_str()) {
                continue;
            }
            sym_entries.push((k.clone(), k.clone(), val));
        }
        if let Some(t) = m.get("symbols")
            && let Some(t) = self.object(t, "symbols")
        {
            for (k, val) in t {
                sym_entries.push((k.clone(), format!("symbols.{k}"), val));
            }
        }
        for (name, field, val) in sym_entries {
            let Ok(sym) = name.parse::<Symbol>() else {
                self.problem(
                    &field,
                    format!("{name:?} is neither a known setting nor a valid symbol"),
                    format!(
                        "symbols are 1-32 of A-Z 0-9 . _ -; settings are: {}",
                        TOP_KEYS.join(", ")
                    ),
                );
                continue;
            };
            if symbols.contains_key(&sym) {
                self.problem(
                    &field,
                    "symbol listed twice",
                    "keep one entry (top level or under \"symbols\")",
                );
                continue;
            }
            if let Some(sc) = self.symbol(val, &field, default_timeframe) {
                if sc.enabled_defaulted {
                    notes.push(format!(
                        "{field}: no \"enabled\" field, so it is disabled; add \"enabled\": true to trade it"
                    ));
                }
                symbols.insert(sym, sc);
            }
        }

        let risk = self.risk(m.get("risk"), &state_dir);
        let broker = self.broker(m.get("broker"));
        let ipc = self.ipc(m.get("ipc"));
        let http = self.http(m.get("http"));
        let hub = self.hub(m.get("hub"));
        notes.append(&mut self.notes);
        if clock == ClockSource::System
            && let Some(Some(Value::Object(b))) = m.get("broker").map(|b| b.get("paper"))
            && b.get("bars_dir").is_some_and(|v| !v.is_null())
        {
            notes.push(
                "clock is \"system\" but paper bars come from CSV files: historical bars make every signal STALE; use \"clock\": \"feed\" for replays".to_string(),
            );
        }

        Some(ExecutorConfig {
            path: path.to_path_buf(),
            symbols,
            default_timeframe,
            models_dir,
            stale_signal_max_age_secs: stale,
            clock,
            log_dir,
            state_dir,
            risk,
            broker: broker?,
            ipc: ipc?,
            http,
            hub,
            notes,
        })
    }

    pub(super) fn symbol(
        &mut self,
        v: &Value,
        prefix: &str,
        tf: Timeframe,
    ) -> Option<SymbolConfig> {
        let m = self.object(v, prefix)?;
        self.unknown_keys(
            m,
            prefix,
            &[
                "enabled",
                "lot_weak",
                "lot_moderate",
                "lot_strong",
                "timeframe",
                "max_spread",
                "contract_size",
                "spread",
                "slippage",
                "commission_per_lot",
                "quote_to_account",
                "digits",
                "_comment",
            ],
        );
        let mut sc = SymbolConfig::defaults(tf);
        if let Some(b) = self.bool_field(m, prefix, "enabled") {
            sc.enabled = b;
            sc.enabled_defaulted = false;
        }
        let lot_rule = "a lot size > 0 and <= 1000, e.g. 0.01";
        sc.lots.weak = self.f64_field(
            m,
            prefix,
            "lot_weak",
            DEFAULT_LOTS.weak,
            valid_lot,
            lot_rule,
        );
        sc.lots.moderate = self.f64_field(
            m,
            prefix,
            "lot_moderate",
            DEFAULT_LOTS.moderate,
            valid_lot,
            lot_rule,
        );
        sc.lots.strong = self.f64_field(
            m,
            prefix,
            "lot_strong",
            DEFAULT_LOTS.strong,
            valid_lot,
            lot_rule,
        );
        let tfs = self.str_field(m, prefix, "timeframe");
        sc.timeframe = self.timeframe(tfs, &join(prefix, "timeframe"), tf);
        sc.max_spread = self.opt_f64_field(
            m,
            prefix,
            "max_spread",
            |x| x > 0.0,
            "a positive price difference, e.g. 0.0003",
        );
        sc.contract_size = self.f64_field(
            m,
            prefix,
            "contract_size",
            sc.contract_size,
            |x| x > 0.0,
            "units per lot > 0 (100000 FX, 100 XAUUSD, 1 indices)",
        );
        sc.spread = self.f64_field(m, prefix, "spread", 0.0, |x| x >= 0.0, "a price >= 0");
        sc.slippage = self.f64_field(m, prefix, "slippage", 0.0, |x| x >= 0.0, "a price >= 0");
        sc.commission_per_lot = self.f64_field(
            m,
            prefix,
            "commission_per_lot",
            0.0,
            |x| x >= 0.0,
            "an amount >= 0 in account currency per lot, round turn (e.g. 7 for FX)",
        );
        let digits = self.u64_field(m, prefix, "digits", 5);
        if digits > 10 {
            self.problem(
                &join(prefix, "digits"),
                format!("{digits} decimal places"),
                "use 0..10 (5 for EURUSD, 3 for USDJPY, 2 for XAUUSD)",
            );
        }
        sc.digits = digits.min(10) as usize;
        sc.quote_to_account = match m.get("quote_to_account") {
            None => QuoteConversion::Fixed(1.0),
            Some(Value::String(s)) if s == "inverse" => QuoteConversion::InversePrice,
            Some(Value::Number(n)) if n.as_f64().is_some_and(|x| x.is_finite() && x > 0.0) => {
                QuoteConversion::Fixed(n.as_f64().unwrap_or(1.0))
            }
            Some(other) => {
                self.problem(
                    &join(prefix, "quote_to_account"),
                    format!("{other} is not a conversion"),
                    "a positive rate (1.0 when the quote currency is the account's) or \"inverse\"",
                );
                QuoteConversion::Fixed(1.0)
            }
        };
        Some(sc)
    }

    pub(super) fn risk(&mut self, v: Option<&Value>, state_dir: &Path) -> RiskConfig {
        let empty = Map::new();
        let m = match v {
            None => &empty,
            Some(v) => self.object(v, "risk").unwrap_or(&empty),
        };
        self.unknown_keys(
            m,
            "risk",
            &[
                "max_daily_loss_pct",
                "max_total_loss_pct",
                "initial_balance",
                "min_equity",
                "max_open_positions",
                "max_total_lots",
                "kill_switch_file",
                "day_start_hour_utc",
                "_comment",
            ],
        );
        let pct = "a percentage in (0, 100], e.g. 5";
        let hour = self.u64_field(m, "risk", "day_start_hour_utc", 0);
        if hour > 23 {
            self.problem(
                "risk.day_start_hour_utc",
                format!("{hour} is not an hour"),
                "use 0..23",
            );
        }
        RiskConfig {
            max_daily_loss_pct: self.f64_field(m, "risk", "max_daily_loss_pct", 5.0, valid_pct, pct),
            max_total_loss_pct: self.f64_field(m, "risk", "max_total_loss_pct", 10.0, valid_pct, pct),
            initial_balance: self.opt_f64_field(
                m,
                "risk",
                "initial_balance",
                |x| x > 0.0,
                "the account's starting balance > 0, or remove the key to use the first balance seen",
            ),
            min_equity: self.f64_field(m, "risk", "min_equity", 0.0, |x| x >= 0.0, "an amount >= 0"),
            max_open_positions: self.u64_field(m, "risk", "max_open_positions", 20) as usize,
            max_total_lots: self.f64_field(
                m,
                "risk",
                "max_total_lots",
                100.0,
                |x| x > 0.0,
                "a positive number of lots",
            ),
            kill_switch_file: self
                .path_field(m, "risk", "kill_switch_file")
                .unwrap_or_else(|| state_dir.join("KILL")),
            day_start_hour_utc: hour.min(23) as u32,
        }
    }

    pub(super) fn broker(&mut self, v: Option<&Value>) -> Option<BrokerConfig> {
        let empty = Map::new();
        // Whether real money is traded is never a default.
        let m = match v {
            None => {
                self.problem(
                    "broker",
                    "missing: the config does not say whether to trade real money",
                    "add \"broker\": { \"mode\": \"paper\" } for simulated fills, or mode \"live\"/\"shadow\" with broker.ctrader",
                );
                &empty
            }
            Some(v) => self.object(v, "broker").unwrap_or(&empty),
        };
        self.unknown_keys(m, "broker", &["mode", "ctrader", "paper", "_comment"]);
        if v.is_some() && !m.contains_key("mode") {
            self.problem(
                "broker.mode",
                "missing",
                "write \"mode\": \"paper\" (simulated fills), \"live\" (real orders) or \"shadow\" (both)",
            );
        }
        let mode = match self.str_field(m, "broker", "mode") {
            None | Some("paper") => Mode::Paper,
            Some("live") => Mode::Live,
            Some("shadow") => Mode::Shadow,
            Some(other) => {
                self.problem(
                    "broker.mode",
                    format!("{other:?} is not a mode"),
                    "use \"live\", \"paper\" or \"shadow\"",
                );
                Mode::Paper
            }
        };
        let ctrader = match m.get("ctrader") {
            None => {
                if mode != Mode::Paper {
                    self.problem(
                        "broker.ctrader",
                        "missing, but the mode needs a cTrader connection",
                        "add broker.ctrader {host, port, client_id, secret_file, token_file, account_id}, or use mode \"paper\"",
                    );
                }
                None
            }
            Some(v) => self.ctrader(v, mode != Mode::Paper),
        };
        let paper = self.paper(m.get("paper"), mode);
        Some(BrokerConfig {
            mode,
            ctrader,
            paper,
        })
    }

    pub(super) fn ctrader(&mut self, v: &Value, needed: bool) -> Option<CtraderConfig> {
        let p = "broker.ctrader";
        let m = self.object(v, p)?;
        self.unknown_keys(
            m,
            p,
            &[
                "host",
                "port",
                "ca_file",
                "client_id",
                "secret_file",
                "token_file",
                "account_id",
                "request_timeout_ms",
                "_comment",
            ],
        );
        let host = self.str_field(m, p, "host").unwrap_or_default().to_string();
        if host.is_empty() {
            self.problem(
                "broker.ctrader.host",
                "missing",
                "demo.ctraderapi.com / live.ctraderapi.com, or 127.0.0.1 for ctrader-sim",
            );
        }
        let port = self.u64_field(m, p, "port", 5035);
        if port == 0 || port > u64::from(u16::MAX) {
            self.problem(
                "broker.ctrader.port",
                format!("{port} is not a port"),
                "use 1..65535 (5035 for Spotware)",
            );
        }
        let ca_file = self.path_field(m, p, "ca_file");
        if let Some(ca) = &ca_file
            && needed
            && !ca.is_file()
        {
            self.problem(
                "broker.ctrader.ca_file",
                format!("{} does not exist", ca.display()),
                "start ctrader-sim with --cert-out at that path first, or remove the key for the real servers",
            );
        }
        let client_id = self
            .str_field(m, p, "client_id")
            .unwrap_or_default()
            .to_string();
        if client_id.is_empty() {
            self.problem(
                "broker.ctrader.client_id",
                "missing",
                "the Open API application's client id",
            );
        }
        let secret_file = self.path_field(m, p, "secret_file");
        let token_file = self.path_field(m, p, "token_file");
        for (key, f) in [("secret_file", &secret_file), ("token_file", &token_file)] {
            let field = format!("{p}.{key}");
            match f {
                None => self.problem(&field, "missing", "a path to a 0600 file holding the value"),
                Some(f) if needed => self.secret_file(&field, f),
                Some(_) => {}
            }
        }
        let account_id = match m.get("account_id") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|x| x > 0) => n.as_i64().unwrap_or(0),
            other => {
                self.problem(
                    "broker.ctrader.account_id",
                    format!(
                        "expected a positive integer, found {}",
                        other.map_or("nothing".into(), |v| v.to_string())
                    ),
                    "the ctidTraderAccountId of the account to trade: `executor accounts --config <this file>` lists the accounts your access token can reach",
                );
                0
            }
        };
        let request_timeout_ms = self.u64_field(m, p, "request_timeout_ms", 5000);
        Some(CtraderConfig {
            host,
            port: u16::try_from(port).unwrap_or(5035),
            ca_file,
            client_id,
            secret_file: secret_file.unwrap_or_default(),
            token_file: token_file.unwrap_or_default(),
            account_id,
            request_timeout_ms,
        })
    }

    pub(super) fn paper(&mut self, v: Option<&Value>, mode: Mode) -> PaperConfig {
        let p = "broker.paper";
        let empty = Map::new();
        let m = match v {
            None => &empty,
            Some(v) => self.object(v, p).unwrap_or(&empty),
        };
        self.unknown_keys(
            m,
            p,
            &[
                "initial_balance",
                "leverage",
                "bars_dir",
                "replay_bars_per_second",
                "start_bar",
                "_comment",
            ],
        );
        let bars_dir = self.path_field(m, p, "bars_dir");
        match (&bars_dir, mode) {
            (None, Mode::Paper) => self.notes.push(
                "broker.paper.bars_dir is not set: paper mode then has no bars and no prices, so every open is refused MARKET_CLOSED; point it at a directory of <SYMBOL>.csv files".to_string(),
            ),
            (Some(d), _) if !d.is_dir() => self.problem(
                "broker.paper.bars_dir",
                format!("{} is not a directory", d.display()),
                "create it or point at the directory holding <SYMBOL>.csv",
            ),
            _ => {}
        }
        PaperConfig {
            initial_balance: self.f64_field(
                m,
                p,
                "initial_balance",
                100_000.0,
                |x| x > 0.0,
                "a positive amount",
            ),
            leverage: self.f64_field(
                m,
                p,
                "leverage",
                30.0,
                |x| x >= 1.0,
                "a leverage >= 1, e.g. 30",
            ),
            bars_dir,
            replay_bars_per_second: self.f64_field(
                m,
                p,
                "replay_bars_per_second",
                1.0,
                |x| (MIN_REPLAY_RATE..=MAX_REPLAY_RATE).contains(&x),
                "bars per second from 0.001 (one bar every 1000 s) to 10000",
            ),
            start_bar: self.u64_field(m, p, "start_bar", 700) as usize,
        }
    }

    /// `http.bind`, like `ipc.bind`: loopback only.
    pub(super) fn http(&mut self, v: Option<&Value>) -> Option<HttpConfig> {
        let m = self.object(v?, "http")?;
        self.unknown_keys(m, "http", &["bind", "_comment"]);
        let Some(bind_s) = self.str_field(m, "http", "bind") else {
            self.problem(
                "http.bind",
                "missing",
                "write \"bind\": \"127.0.0.1:9101\", or remove the http section for no health/metrics listener",
            );
            return None;
        };
        match bind_s.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => Some(HttpConfig { bind: a }),
            Ok(a) => {
                self.problem(
                    "http.bind",
                    format!("{a} is not a loopback address; health and metrics never leave the machine"),
                    "use 127.0.0.1:PORT (a local Prometheus or node_exporter-style proxy scrapes it)",
                );
                None
            }
            Err(_) => {
                self.problem(
                    "http.bind",
                    format!("{bind_s:?} is not an address:port"),
                    "use 127.0.0.1:9101",
                );
                None
            }
        }
    }

    pub(super) fn ipc(&mut self, v: Option<&Value>) -> Option<IpcConfig> {
        let p = "ipc";
        let empty = Map::new();
        let m = match v {
            None => &empty,
            Some(v) => self.object(v, p).unwrap_or(&empty),
        };
        self.unknown_keys(
            m,
            p,
            &["bind", "token_file", "hello_timeout_secs", "_comment"],
        );
        let bind_s = self.str_field(m, p, "bind").unwrap_or("127.0.0.1:8765");
        let bind = match bind_s.parse::<SocketAddr>() {
            Ok(a) if a.ip().is_loopback() => a,
            Ok(a) => {
                self.problem(
                    "ipc.bind",
                    format!("{a} is not a loopback address; the IPC must never leave the machine"),
                    "use 127.0.0.1:PORT or [::1]:PORT",
                );
                a
            }
            Err(_) => {
                self.problem(
                    "ipc.bind",
                    format!("{bind_s:?} is not an address:port"),
                    "use 127.0.0.1:8765",
                );
                SocketAddr::from(([127, 0, 0, 1], 8765))
            }
        };
        let token_file = self
            .path_field(m, p, "token_file")
            .unwrap_or_else(|| self.resolve("secrets/ipc.token"));
        self.secret_file("ipc.token_file", &token_file.clone());
        // The handshake's rule (PROTOCOL.md §7): `run` refuses what `check` must not accept.
        if let Ok(token) = secrets::read_secret(&token_file)
            && let Err(e) = protocol::handshake::check_token(&token)
        {
            self.problem(
                "ipc.token_file",
                e.to_string(),
                format!(
                    "write 32 random bytes as hex: od -An -N32 -tx1 /dev/urandom | tr -d ' \\n' > {}",
                    token_file.display()
                ),
            );
        }
        let hello_timeout_secs = self.u64_field(m, p, "hello_timeout_secs", 10).max(1);
        Some(IpcConfig {
            bind,
            token_file,
            hello_timeout_secs,
        })
    }
}
