//! The twins' cost models, read from the models' `training_config` (the zip comment's JSON
//! metadata, ENV.md §7), so the report can say what the model charges itself per trade.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use super::attribution::TwinCosts;

/// A model file larger than this is not read (a model zip is tens of kB; this bounds memory).
const MAX_MODEL_BYTES: u64 = 64 << 20;

/// `training_config` of every `*.zip` in `dir`, by symbol name. A zip that is not a model (or
/// holds no usable training_config) is listed in the second map with why, and left out.
pub fn load_twin_costs(dir: &Path) -> (BTreeMap<String, TwinCosts>, BTreeMap<String, String>) {
    let mut out = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        skipped.insert(
            dir.display().to_string(),
            "cannot read the directory".into(),
        );
        return (out, skipped);
    };
    let mut paths: Vec<_> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    paths.sort();
    for p in paths {
        match read_one(&p) {
            Ok((sym, c)) => {
                out.insert(sym, c);
            }
            Err(why) => {
                skipped.insert(p.display().to_string(), why);
            }
        }
    }
    (out, skipped)
}

fn read_one(path: &Path) -> Result<(String, TwinCosts), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut bytes = Vec::new();
    f.take(MAX_MODEL_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(format!("larger than {MAX_MODEL_BYTES} bytes"));
    }
    let archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a zip archive: {e}"))?;
    let meta: serde_json::Value = serde_json::from_slice(archive.comment())
        .map_err(|e| format!("zip comment is not JSON metadata: {e}"))?;
    let sym = meta
        .pointer("/symbol/name")
        .and_then(|v| v.as_str())
        .ok_or("no symbol.name")?
        .to_string();
    let tc = meta.get("training_config").ok_or("no training_config")?;
    let num = |k: &str| -> Result<f64, String> {
        tc.get(k)
            .and_then(|v| v.as_f64())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or(format!("training_config.{k} missing or not a number >= 0"))
    };
    let pip_size = num("pip_size")?;
    if pip_size <= 0.0 {
        return Err("training_config.pip_size must be > 0".into());
    }
    let lots: Vec<f64> = tc
        .get("lot_sizes")
        .and_then(|v| v.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let lot_sizes: [f64; 4] = lots
        .try_into()
        .map_err(|_| "training_config.lot_sizes must hold 4 numbers".to_string())?;
    Ok((
        sym,
        TwinCosts {
            point: num("point")?,
            value_per_price: num("pip_value")? / pip_size,
            spread_points: num("spread_points")?,
            slippage_points: num("slippage_points")?,
            commission_per_lot: num("commission_per_lot")?,
            lot_sizes,
        },
    ))
}
