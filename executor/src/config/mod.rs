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
use serde_json::Value;

use crate::desk::lots::LotMap;

mod hub;
mod sections;
mod walker;

pub use hub::HubConfig;

use walker::Walker;

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

/// The loopback `/healthz` + `/metrics` listener (docs/OPERATIONS.md, "Health and metrics").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    pub bind: SocketAddr,
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
    /// `None`: no health/metrics listener.
    pub http: Option<HttpConfig>,
    /// `None`: no hub link (docs/HUB.md §4).
    pub hub: Option<HubConfig>,
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
    "http",
    "hub",
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
