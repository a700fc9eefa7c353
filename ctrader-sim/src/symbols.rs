//! The simulator's symbol catalog: contract specifications in the Open API's units.
//!
//! Volumes are in cents of a unit (0.01 units), as the Open API sends them: EURUSD's lotSize
//! 10_000_000 is 100,000 units. The figures are typical of retail cTrader brokers, chosen to be
//! realistic, not copied from any one broker; digits, pip sizes, spreads and lot sizes agree with
//! `scripts/symbols.py` (the demo models' training_config), so the demo trades the contracts the
//! models were trained on. A bars file for a symbol the catalog does not know gets a forex-like
//! spec with digits taken from the data.

/// Asset class; decides the defaults for an unknown symbol and the symbol's maximum leverage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetClass {
    Forex,
    Metal,
    Index,
    Stock,
    Crypto,
}

impl AssetClass {
    /// The symbol category id sent in `ProtoOALightSymbol.symbolCategoryId`.
    pub fn category_id(self) -> i64 {
        match self {
            Self::Forex => 1,
            Self::Metal => 2,
            Self::Index => 3,
            Self::Stock => 4,
            Self::Crypto => 5,
        }
    }
}

/// Everything the simulator needs to quote, fill and margin one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolSpec {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub class: AssetClass,
    pub base_asset: String,
    pub quote_asset: String,
    pub digits: u32,
    pub pip_position: u32,
    /// Volume of one lot in cents of a unit.
    pub lot_size: i64,
    pub min_volume: i64,
    pub step_volume: i64,
    pub max_volume: i64,
    /// Modeled spread, in points (10^-digits).
    pub spread_points: i64,
    /// The symbol's own maximum leverage; the effective one is min(account, symbol).
    pub max_leverage: u32,
    /// The costs the demo model of this symbol was trained with, charged under `--model-costs`
    /// (`None` outside the catalog: the account's flat slippage, no commission).
    pub model_costs: Option<ModelCosts>,
}

/// A symbol's trading costs as its model's `training_config` states them (scripts/ENV.md §6):
/// adverse slippage per fill, and a round-turn commission per lot in the deposit currency.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ModelCosts {
    pub slippage_points: i64,
    pub commission_per_lot: f64,
}

impl SymbolSpec {
    /// One point (the smallest price increment).
    pub fn point(&self) -> f64 {
        10f64.powi(-(self.digits as i32))
    }

    /// Rounds a price to the symbol's digits.
    pub fn round_price(&self, price: f64) -> f64 {
        let scale = 10f64.powi(self.digits as i32);
        (price * scale).round() / scale
    }
}

#[rustfmt::skip]
struct Row(&'static str, i64, AssetClass, &'static str, &'static str, u32, u32, i64, i64, i64, i64, i64, u32, &'static str, i64, f64);

// name, id, class, base, quote, digits, pipPosition, lotSize, min, step, max, spread pts, max lev,
// description, then the demo model's training costs (scripts/symbols.py): slippage pts per side,
// commission per lot round turn (USD)
#[rustfmt::skip]
const CATALOG: &[Row] = &[
    Row("EURUSD", 1, AssetClass::Forex, "EUR", "USD", 5, 4, 10_000_000, 100_000, 100_000, 10_000_000_000, 7, 500, "Euro vs US Dollar", 2, 7.0),
    Row("GBPUSD", 2, AssetClass::Forex, "GBP", "USD", 5, 4, 10_000_000, 100_000, 100_000, 10_000_000_000, 10, 500, "British Pound vs US Dollar", 2, 7.0),
    Row("EURJPY", 3, AssetClass::Forex, "EUR", "JPY", 3, 2, 10_000_000, 100_000, 100_000, 10_000_000_000, 14, 500, "Euro vs Japanese Yen", 2, 7.0),
    Row("USDJPY", 4, AssetClass::Forex, "USD", "JPY", 3, 2, 10_000_000, 100_000, 100_000, 10_000_000_000, 8, 500, "US Dollar vs Japanese Yen", 2, 7.0),
    Row("AUDUSD", 5, AssetClass::Forex, "AUD", "USD", 5, 4, 10_000_000, 100_000, 100_000, 10_000_000_000, 9, 500, "Australian Dollar vs US Dollar", 2, 7.0),
    Row("USDCHF", 6, AssetClass::Forex, "USD", "CHF", 5, 4, 10_000_000, 100_000, 100_000, 10_000_000_000, 12, 500, "US Dollar vs Swiss Franc", 2, 7.0),
    Row("GBPJPY", 7, AssetClass::Forex, "GBP", "JPY", 3, 2, 10_000_000, 100_000, 100_000, 10_000_000_000, 20, 500, "British Pound vs Japanese Yen", 2, 7.0),
    Row("USDCAD", 8, AssetClass::Forex, "USD", "CAD", 5, 4, 10_000_000, 100_000, 100_000, 10_000_000_000, 12, 500, "US Dollar vs Canadian Dollar", 2, 7.0),
    Row("EURGBP", 9, AssetClass::Forex, "EUR", "GBP", 5, 4, 10_000_000, 100_000, 100_000, 10_000_000_000, 12, 500, "Euro vs British Pound", 2, 7.0),
    Row("NZDUSD", 12, AssetClass::Forex, "NZD", "USD", 5, 4, 10_000_000, 100_000, 100_000, 10_000_000_000, 14, 500, "New Zealand Dollar vs US Dollar", 2, 7.0),
    Row("XAUUSD", 41, AssetClass::Metal, "XAU", "USD", 2, 1, 10_000, 100, 100, 10_000_000, 30, 100, "Gold vs US Dollar", 5, 7.0),
    Row("US500", 10_013, AssetClass::Index, "US500", "USD", 2, 0, 100, 10, 10, 10_000_000, 50, 20, "US 500 Index", 10, 0.0),
    Row("US30", 10_015, AssetClass::Index, "US30", "USD", 1, 0, 100, 10, 10, 10_000_000, 25, 20, "Wall Street 30 Index", 5, 0.0),
    Row("NAS100", 10_014, AssetClass::Index, "NAS100", "USD", 2, 0, 100, 10, 10, 10_000_000, 150, 20, "US Tech 100 Index", 20, 0.0),
    Row("GER40", 10_017, AssetClass::Index, "GER40", "EUR", 1, 0, 100, 10, 10, 10_000_000, 12, 20, "Germany 40 Index", 3, 0.0),
    Row("UK100", 10_018, AssetClass::Index, "UK100", "GBP", 1, 0, 100, 10, 10, 10_000_000, 10, 20, "UK 100 Index", 3, 0.0),
    Row("AAPL", 20_001, AssetClass::Stock, "AAPL", "USD", 2, 2, 100, 100, 100, 1_000_000, 4, 5, "Apple Inc. (CFD)", 1, 0.02),
    Row("MSFT", 20_002, AssetClass::Stock, "MSFT", "USD", 2, 2, 100, 100, 100, 1_000_000, 4, 5, "Microsoft Corp. (CFD)", 1, 0.02),
    Row("TSLA", 20_003, AssetClass::Stock, "TSLA", "USD", 2, 2, 100, 100, 100, 1_000_000, 10, 5, "Tesla Inc. (CFD)", 2, 0.02),
    Row("BTCUSD", 30_001, AssetClass::Crypto, "BTC", "USD", 2, 0, 100, 1, 1, 10_000, 150, 2, "Bitcoin vs US Dollar", 50, 0.0),
];

/// The catalog spec for `name`, if the simulator knows the symbol.
pub fn catalog_spec(name: &str) -> Option<SymbolSpec> {
    CATALOG
        .iter()
        .find(|r| r.0.eq_ignore_ascii_case(name))
        .map(|r| SymbolSpec {
            id: r.1,
            name: r.0.to_string(),
            description: r.13.to_string(),
            class: r.2,
            base_asset: r.3.to_string(),
            quote_asset: r.4.to_string(),
            digits: r.5,
            pip_position: r.6,
            lot_size: r.7,
            min_volume: r.8,
            step_volume: r.9,
            max_volume: r.10,
            spread_points: r.11,
            max_leverage: r.12,
            model_costs: Some(ModelCosts {
                slippage_points: r.14,
                commission_per_lot: r.15,
            }),
        })
}

/// A spec for a symbol outside the catalog: forex-like contract, digits from the data, a 1-pip spread,
/// and an id after the catalog's.
pub fn fallback_spec(name: &str, data_decimals: u32, ordinal: i64) -> SymbolSpec {
    let digits = data_decimals.clamp(0, 8);
    let (base, quote) = if name.len() == 6 && name.chars().all(|c| c.is_ascii_alphabetic()) {
        (name[..3].to_string(), name[3..].to_string())
    } else {
        (name.to_string(), "USD".to_string())
    };
    SymbolSpec {
        id: 50_000 + ordinal,
        name: name.to_string(),
        description: format!("{name} (simulated, not in the catalog)"),
        class: AssetClass::Forex,
        base_asset: base,
        quote_asset: quote,
        digits,
        pip_position: digits.saturating_sub(1),
        lot_size: 10_000_000,
        min_volume: 100_000,
        step_volume: 100_000,
        max_volume: 10_000_000_000,
        spread_points: 10,
        max_leverage: 100,
        model_costs: None,
    }
}

/// Asset ids for `ProtoOALightSymbol.baseAssetId/quoteAssetId` and the trader's `depositAssetId`.
/// Stable: a hash-free, order-independent id from the asset's name.
pub fn asset_id(asset: &str) -> i64 {
    const KNOWN: &[&str] = &[
        "USD", "EUR", "GBP", "JPY", "AUD", "CHF", "CAD", "NZD", "XAU", "BTC",
    ];
    if let Some(i) = KNOWN.iter().position(|a| a.eq_ignore_ascii_case(asset)) {
        return i as i64 + 1;
    }
    // Spread the rest deterministically above the known ones.
    1_000
        + asset
            .bytes()
            .fold(0i64, |acc, b| (acc * 31 + i64::from(b)) % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eurusd_matches_the_open_api_units() {
        let s = catalog_spec("eurusd").unwrap();
        assert_eq!((s.digits, s.pip_position, s.lot_size), (5, 4, 10_000_000));
        assert_eq!(s.min_volume % s.step_volume, 0);
        assert!((s.point() - 0.00001).abs() < 1e-15);
        assert!((s.round_price(1.123456) - 1.12346).abs() < 1e-12);
    }

    #[test]
    fn catalog_is_consistent() {
        let mut ids = std::collections::HashSet::new();
        for r in CATALOG {
            let s = catalog_spec(r.0).unwrap();
            assert!(ids.insert(s.id), "duplicate id {}", s.id);
            assert!(s.pip_position <= s.digits, "{}", s.name);
            assert!(
                s.min_volume >= s.step_volume && s.min_volume % s.step_volume == 0,
                "{}",
                s.name
            );
            assert!(
                s.max_volume > s.min_volume && s.lot_size >= s.min_volume,
                "{}",
                s.name
            );
            assert!(s.spread_points > 0 && s.max_leverage > 0, "{}", s.name);
        }
        assert_eq!(ids.len(), 20);
    }

    /// The catalog's spread and model costs are the demo models' training costs, as
    /// scripts/symbols.py (which writes each model's training_config) states them.
    #[test]
    fn catalog_costs_are_the_demo_models_training_costs() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/symbols.py");
        let text = std::fs::read_to_string(path).unwrap();
        let mut seen = 0;
        for line in text.lines().map(str::trim) {
            let args = |rest: &str| -> Vec<String> {
                rest.trim_end_matches("),")
                    .split(',')
                    .map(|a| a.trim().trim_matches('"').to_string())
                    .collect()
            };
            // _fx(name, level, offset, pip_value, spread[, jpy]): slippage 2, commission 7.0.
            let (name, spread, slip, comm) = if let Some(rest) = line.strip_prefix("_fx(") {
                let a = args(rest);
                (a[0].clone(), a[4].parse::<i64>().unwrap(), 2, 7.0)
            } else if let Some(rest) = line.strip_prefix("SymbolSpec(\"") {
                // SymbolSpec(name, point, pip_size, pip_value, digits, spread, slippage, commission, …)
                let a = args(&format!("\"{rest}"));
                let n = |i: usize| a[i].parse::<f64>().unwrap();
                (a[0].clone(), n(5) as i64, n(6) as i64, n(7))
            } else {
                continue;
            };
            let s = catalog_spec(&name).unwrap_or_else(|| panic!("{name} not in the catalog"));
            let c = s.model_costs.unwrap();
            assert_eq!(
                (s.spread_points, c.slippage_points, c.commission_per_lot),
                (spread, slip, comm),
                "{name}: catalog (spread, slippage, commission) vs scripts/symbols.py"
            );
            seen += 1;
        }
        assert_eq!(seen, 20, "every demo symbol of scripts/symbols.py");
    }

    #[test]
    fn unknown_symbol_gets_digits_from_data() {
        let s = fallback_spec("SEKNOK", 4, 3);
        assert_eq!(
            (s.digits, s.base_asset.as_str(), s.quote_asset.as_str()),
            (4, "SEK", "NOK")
        );
        assert!(catalog_spec("SEKNOK").is_none());
        assert_ne!(asset_id("SEK"), asset_id("NOK"));
        assert_eq!(asset_id("USD"), 1);
    }
}
