//! `hub export-bars`: recorded candles as the bars CSV `preditor backtest`, the executor's paper
//! replay and ctrader-sim read (scripts/ENV.md §1), written by that file's own writer
//! ([`protocol::bars_file::write_bars_csv`]): header `time,open,high,low,close,volume`, the bar's
//! open time as `YYYY-MM-DDTHH:MM:SSZ`, strictly increasing, numbers in Rust's shortest round-trip
//! form (the reader parses them back to the same f64).

use std::path::Path;

use anyhow::Context;
use fleet::InstanceId;
use protocol::bars_file::write_bars_csv;
use protocol::{Symbol, Timeframe};

use crate::config::HubConfig;
use crate::store::Store;

pub fn run(
    config: &Path,
    instance: &InstanceId,
    symbol: &str,
    timeframe: &str,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let symbol = Symbol::new(symbol).with_context(|| format!("symbol {symbol:?}"))?;
    let tf: Timeframe = timeframe
        .parse()
        .with_context(|| format!("timeframe {timeframe:?}"))?;
    let cfg = HubConfig::load(config)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let candles = rt.block_on(async {
        let store = Store::open(&cfg.database).await?;
        let c = store.candles(instance, symbol.as_str(), tf.as_str()).await;
        store.close().await;
        c
    })?;
    if candles.is_empty() {
        anyhow::bail!("no recorded {symbol} {tf} bars from instance {instance}");
    }
    match out {
        Some(p) => {
            let mut f =
                std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?;
            write_bars_csv(&candles, &mut f)?;
            f.sync_all()?;
            eprintln!("hub: {} bars written to {}", candles.len(), p.display());
        }
        None => write_bars_csv(&candles, &mut std::io::stdout().lock())?,
    }
    Ok(())
}
