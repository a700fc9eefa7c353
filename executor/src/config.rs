//! `executor_config.json`: per-symbol lots and enablement, risk limits, broker and IPC settings.
//!
//! The file is walked by hand over a `serde_json::Value` instead of derived `Deserialize` so that
//! `executor check` can report *every* problem at once (serde stops at the first), each naming the
//! field and the fix. Two shapes are accepted for symbols, and may be mixed:
//! the seed's `{"EURUSD": {"lot_weak": 0.01, ...}}` at the top level, and a `"symbols": {...}` table.
//! Relative paths are resolved against the directory of the config file.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use protocol::{Mode, Symbol, Timeframe};
use serde_json::{Map, Value};

use crate::lots::LotMap;
use crate::secrets::{self, SecretError};

/// Replay rates `broker.paper.replay_bars_per_second` accepts. The lower bound keeps the period
/// (its inverse) a sane `Duration`: `1e-300` once made the executor panic at startup.
pub const MIN_REPLAY_RATE: f64 = 0.001;
pub const MAX_REPLAY_RATE: f64 = 10_000.0;

impl PaperConfig {
    /// Time between two replayed bars, whatever the rate holds (a config built in code is not
    /// validated): clamped to the accepted range.
    pub fn replay_period(&self) -> std::time::Duration {
        let rate = if self.replay_bars_per_second.is_finite() {
            self.replay_bars_per_second
                .clamp(MIN_REPLAY_RATE, MAX_REPLAY_RATE)
        } else {
            1.0
        };
        std::time::Duration::from_secs_f64(1.0 / rate)
    }
}

/// Default lots for a symbol that has a model but no config entry (the seed's defaults).
pub const DEFAULT_LOTS: LotMap = LotMap {
    weak: 0.01,
    moderate: 0.03,
    strong: 0.05,
};

/// One thing wrong with a config file: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.problem, self.fix)
    }
}

/// Why a config could not be loaded. `Invalid` carries every problem found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source} (fix: check the path given to --config)")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "config file {path} is not valid JSON: {source} (fix: correct the JSON syntax at the given line/column)"
    )]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("config file {path} has {} problem(s):\n{}", problems.len(), render(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

fn render(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How the paper book converts a PnL in the quote currency into the account currency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum QuoteConversion {
    /// Multiply by a fixed rate (1.0 when the quote currency is the account currency).
    Fixed(f64),
    /// Divide by the price (the base currency is the account currency, e.g. USDJPY on a USD account).
    InversePrice,
}

/// Everything the executor knows about one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolConfig {
    pub enabled: bool,
    pub lots: LotMap,
    pub timeframe: Timeframe,
    /// Largest spread (price units) at which a position may be opened; `None` = no limit.
    pub max_spread: Option<f64>,
    /// Units of the base per 1 lot (100 000 for FX, 100 for XAUUSD, 1 for indices/stocks/crypto CFDs).
    pub contract_size: f64,
    /// Paper fills: modeled spread and slippage in price units.
    pub spread: f64,
    pub slippage: f64,
    /// Paper closes: round-turn commission per lot, account currency (the model's
    /// `training_config.commission_per_lot`, so the paper book pays what the twin charges).
    pub commission_per_lot: f64,
    pub quote_to_account: QuoteConversion,
    /// Decimal places of the symbol's prices (ACK `P:` and paper fills).
    pub digits: usize,
    /// `enabled` was not written in the file (reported by `check` as a note).
    pub enabled_defaulted: bool,
}

impl SymbolConfig {
    /// The entry a symbol gets when it has a model but no config entry: disabled, default lots.
    pub fn defaults(timeframe: Timeframe) -> Self {
        SymbolConfig {
            enabled: false,
            lots: DEFAULT_LOTS,
            timeframe,
            max_spread: None,
            contract_size: 100_000.0,
            spread: 0.0,
            slippage: 0.0,
            commission_per_lot: 0.0,
            quote_to_account: QuoteConversion::Fixed(1.0),
            digits: 5,
            enabled_defaulted: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RiskConfig {
    /// Prop-firm daily limit: loss since the day's starting equity, as % of the initial balance.
    pub max_daily_loss_pct: f64,
    /// Prop-firm total limit: loss below the initial balance, as % of the initial balance.
    pub max_total_loss_pct: f64,
    /// The account's initial balance; `None` = the balance seen at the first start (persisted).
    pub initial_balance: Option<f64>,
    pub min_equity: f64,
    pub max_open_positions: usize,
    /// Sum of open lots over all symbols after the new order.
    pub max_total_lots: f64,
    pub kill_switch_file: PathBuf,
    /// The trading day starts at this UTC hour (prop firms often use 0 or 22).
    pub day_start_hour_utc: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtraderConfig {
    pub host: String,
    pub port: u16,
    pub ca_file: Option<PathBuf>,
    pub client_id: String,
    pub secret_file: PathBuf,
    pub token_file: PathBuf,
    pub account_id: i64,
    pub request_timeout_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaperConfig {
    pub initial_balance: f64,
    pub leverage: f64,
    /// `<SYMBOL>.csv` files (`time,open,high,low,close,volume`): the bar source when there is no cTrader.
    pub bars_dir: Option<PathBuf>,
    pub replay_bars_per_second: f64,
    /// Bars before this index are history (answer WARMUP); replay starts here.
    pub start_bar: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    pub mode: Mode,
    pub ctrader: Option<CtraderConfig>,
    pub paper: PaperConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcConfig {
    pub bind: SocketAddr,
    pub token_file: PathBuf,
    /// Seconds a new connection has to send HELLO.
    pub hello_timeout_secs: u64,
}

/// Which clock decides staleness and bar closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSource {
    /// The machine's (NTP-synchronised) clock: production.
    System,
    /// The market data's own time (latest bar/spot time plus elapsed wall time): replays and the simulator.
    Feed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExecutorConfig {
    pub path: PathBuf,
    pub symbols: BTreeMap<Symbol, SymbolConfig>,
    pub default_timeframe: Timeframe,
    pub models_dir: Option<PathBuf>,
    pub stale_signal_max_age_secs: u64,
    pub clock: ClockSource,
    pub log_dir: PathBuf,
    pub state_dir: PathBuf,
    pub risk: RiskConfig,
    pub broker: BrokerConfig,
    pub ipc: IpcConfig,
    /// Notes that are not errors (e.g. `enabled` defaulted to false).
    pub notes: Vec<String>,
}

/// How the shipped example configs mark a value the user must fill in.
const PLACEHOLDER: &str = "REPLACE_WITH";

const TOP_KEYS: &[&str] = &[
    "symbols",
    "timeframe",
    "models_dir",
    "stale_signal_max_age_secs",
    "clock",
    "log_dir",
    "state_dir",
    "risk",
    "broker",
    "ipc",
    "_comment",
];

impl ExecutorConfig {
    /// Reads, parses and validates a config file; secrets files are checked (existence, 0600) too.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates config text; `path` names the file in messages and anchors relative paths.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|source| ConfigError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = Walker::new(path);
        // JSON lets a key repeat and keeps the last one: a second `"enabled": true` further down
        // would silently win over the first. Refused, naming each repeated key.
        for field in crate::json_keys::repeated_keys(text) {
            w.problem(
                &field,
                "given more than once (JSON would keep only the last)",
                "keep one of them",
            );
        }
        w.placeholders(&value, "");
        let cfg = w.root(&value, path);
        match cfg {
            Some(cfg) if w.problems.is_empty() => Ok(cfg),
            _ => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: w.problems,
            }),
        }
    }

    /// `broker.ctrader` alone, for `executor auth` and `executor accounts`: they run before the
    /// token file exists and before the account id is known, so neither is required (the secret
    /// and token files are read, with their own errors, when used). Placeholders are refused.
    pub fn load_ctrader(path: &Path) -> Result<CtraderConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let value: Value = serde_json::from_str(&text).map_err(|source| ConfigError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let mut w = Walker::new(path);
        let section = value.get("broker").and_then(|b| b.get("ctrader"));
        let ct = match section {
            Some(v) => {
                w.placeholders(v, "broker.ctrader");
                w.ctrader(v, false)
            }
            None => {
                w.problem(
                    "broker.ctrader",
                    "missing",
                    "add broker.ctrader {host, port, client_id, secret_file, token_file} (see systemd/executor-live.example.json)",
                );
                None
            }
        };
        w.problems
            .retain(|p| p.field != "broker.ctrader.account_id");
        match ct {
            Some(ct) if w.problems.is_empty() => Ok(ct),
            _ => Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                problems: w.problems,
            }),
        }
    }

    /// The rules for a symbol: its entry, or the disabled defaults when only a model exists.
    pub fn symbol(&self, symbol: &Symbol) -> Option<&SymbolConfig> {
        self.symbols.get(symbol)
    }

    /// Symbols that have a model zip (`<SYMBOL>_<TF>.zip`) in `models_dir`.
    pub fn model_symbols(&self) -> BTreeSet<Symbol> {
        let mut out = BTreeSet::new();
        let Some(dir) = &self.models_dir else {
            return out;
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(stem) = name.strip_suffix(".zip") else {
                continue;
            };
            if let Some((sym, tf)) = stem.rsplit_once('_')
                && tf.parse::<Timeframe>().is_ok()
                && let Ok(sym) = sym.parse::<Symbol>()
            {
                out.insert(sym);
            }
        }
        out
    }

    /// Adds disabled default entries for symbols that have a model but no entry.
    pub fn with_model_defaults(mut self) -> Self {
        for sym in self.model_symbols() {
            if !self.symbols.contains_key(&sym) {
                self.notes.push(format!(
                    "{sym}: has a model but no entry; using enabled=false and default lots 0.01/0.03/0.05"
                ));
                self.symbols
                    .insert(sym, SymbolConfig::defaults(self.default_timeframe));
            }
        }
        self
    }
}

struct Walker {
    problems: Vec<ConfigProblem>,
    notes: Vec<String>,
    base: PathBuf,
}

impl Walker {
    /// Relative paths are resolved against the config file's directory.
    fn new(path: &Path) -> Self {
        Walker {
            problems: Vec::new(),
            notes: Vec::new(),
            base: path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        }
    }

    fn problem(&mut self, field: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(ConfigProblem {
            field: field.to_string(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    fn object<'a>(&mut self, v: &'a Value, field: &str) -> Option<&'a Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.problem(
                    field,
                    format!("expected an object, found {}", kind(other)),
                    "write a JSON object { ... }",
                );
                None
            }
        }
    }

    fn unknown_keys(&mut self, m: &Map<String, Value>, prefix: &str, allowed: &[&str]) {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                self.problem(
                    &join(prefix, k),
                    "unknown key",
                    format!("remove it or use one of: {}", allowed.join(", ")),
                );
            }
        }
    }

    fn f64_field(
        &mut self,
        m: &Map<String, Value>,
        prefix: &str,
        key: &str,
        default: f64,
        check: fn(f64) -> bool,
        rule: &str,
    ) -> f64 {
        let field = join(prefix, key);
        match m.get(key) {
            None => default,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if x.is_finite() && check(x) => x,
                _ => {
                    self.problem(&field, format!("{n} is out of range"), rule.to_string());
                    default
                }
            },
            Some(other) => {
                self.problem(
                    &field,
                    format!("expected a number, found {}", kind(other)),
                    rule.to_string(),
                );
                default
            }
        }
    }

    fn opt_f64_field(
        &mut self,
        m: &Map<String, Value>,
        prefix: &str,
        key: &str,
        check: fn(f64) -> bool,
        rule: &str,
    ) -> Option<f64> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(_) => Some(self.f64_field(m, prefix, key, 0.0, check, rule)),
        }
    }

    fn u64_field(&mut self, m: &Map<String, Value>, prefix: &str, key: &str, default: u64) -> u64 {
        let field = join(prefix, key);
        match m.get(key) {
            None => default,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64().unwrap_or(default),
            Some(other) => {
                self.problem(
                    &field,
                    format!("expected a non-negative integer, found {other}"),
                    "write a whole number such as 60",
                );
                default
            }
        }
    }

    fn bool_field(&mut self, m: &Map<String, Value>, prefix: &str, key: &str) -> Option<bool> {
        match m.get(key) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                self.problem(
                    &join(prefix, key),
                    format!("expected true or false, found {}", kind(other)),
                    "write true or false (no quotes)",
                );
                None
            }
        }
    }

    fn str_field<'a>(
        &mut self,
        m: &'a Map<String, Value>,
        prefix: &str,
        key: &str,
    ) -> Option<&'a str> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(other) => {
                self.problem(
                    &join(prefix, key),
                    format!("expected a string, found {}", kind(other)),
                    "write a quoted string",
                );
                None
            }
        }
    }

    fn path_field(&mut self, m: &Map<String, Value>, prefix: &str, key: &str) -> Option<PathBuf> {
        self.str_field(m, prefix, key).map(|s| self.resolve(s))
    }

    fn resolve(&self, s: &str) -> PathBuf {
        let p = PathBuf::from(s);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    fn timeframe(&mut self, s: Option<&str>, field: &str, default: Timeframe) -> Timeframe {
        let Some(s) = s else { return default };
        match s.parse::<Timeframe>() {
            Ok(tf) if tf.duration_secs().is_some() => tf,
            Ok(_) => {
                self.problem(
                    field,
                    format!("{s} has no fixed length: the live bar builder (and the CSV replay) close bars by a fixed period"),
                    "use M1..W1",
                );
                default
            }
            Err(_) => {
                self.problem(
                    field,
                    format!("{s:?} is not a timeframe"),
                    "use one of M1 M2 M3 M4 M5 M10 M15 M30 H1 H4 H12 D1 W1",
                );
                default
            }
        }
    }

    /// Values still holding a shipped example's placeholder (`REPLACE_WITH_…`, as in
    /// systemd/*.example.json): a config that looks complete but would be refused by the broker.
    fn placeholders(&mut self, v: &Value, field: &str) {
        match v {
            Value::String(s) if s.to_ascii_uppercase().starts_with(PLACEHOLDER) => {
                let fix = match field {
                    "broker.ctrader.client_id" => "the Client ID of your Open API application (openapi.ctrader.com/apps, \"Credentials\"); see docs/OPERATIONS.md, \"From the demo to a cTrader demo account\"".to_string(),
                    _ => format!("replace {s:?} with your own value"),
                };
                self.problem(field, format!("{s:?} is the example's placeholder"), fix);
            }
            Value::Object(m) => {
                for (k, v) in m {
                    if k != "_comment" {
                        self.placeholders(v, &join(field, k));
                    }
                }
            }
            Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    self.placeholders(v, &format!("{field}[{i}]"));
                }
            }
            _ => {}
        }
    }

    /// A secret file: must exist and be 0600 (or stricter).
    fn secret_file(&mut self, field: &str, path: &Path) {
        if let Err(e) = secrets::check_secret_file(path) {
            self.secret_problem(field, path, &e);
        }
    }

    fn secret_problem(&mut self, field: &str, path: &Path, e: &SecretError) {
        let fix = match e {
            SecretError::LoosePermissions { .. } => format!("chmod 600 {}", path.display()),
            SecretError::Empty { .. } => format!("write the secret into {}", path.display()),
            SecretError::Read { .. } => {
                format!("create {} with the secret and chmod 600 it", path.display())
            }
            SecretError::NotAFile { .. } => {
                format!("point {field} at the file holding the secret")
            }
            SecretError::TooLarge { .. } => {
                format!("put only the secret in {}", path.display())
            }
        };
        self.problem(field, e.to_string(), fix);
    }

    fn root(&mut self, v: &Value, path: &Path) -> Option<ExecutorConfig> {
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
            notes,
        })
    }

    fn symbol(&mut self, v: &Value, prefix: &str, tf: Timeframe) -> Option<SymbolConfig> {
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

    fn risk(&mut self, v: Option<&Value>, state_dir: &Path) -> RiskConfig {
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

    fn broker(&mut self, v: Option<&Value>) -> Option<BrokerConfig> {
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

    fn ctrader(&mut self, v: &Value, needed: bool) -> Option<CtraderConfig> {
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

    fn paper(&mut self, v: Option<&Value>, mode: Mode) -> PaperConfig {
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

    fn ipc(&mut self, v: Option<&Value>) -> Option<IpcConfig> {
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

fn valid_lot(x: f64) -> bool {
    x > 0.0 && x <= 1000.0
}

fn valid_pct(x: f64) -> bool {
    x > 0.0 && x <= 100.0
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
