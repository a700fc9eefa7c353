//! Bars (ENV.md §1): the twin's only input. The bar, its rules, the bar-time parser and the bars
//! CSV reader are the workspace's one set (`protocol::bar`, `protocol::bars_file`), so a file the
//! backtest accepts is one the executor's paper replay and the simulator accept too.

pub use protocol::bar::{
    Bar, BarError, CLOCK_SLACK_SECS, MAX_PRICE, check_bar_time, format_time, parse_time,
};
pub use protocol::bars_file::{BarsFileError, BarsReader, parse_bars_csv, read_bars_csv};
