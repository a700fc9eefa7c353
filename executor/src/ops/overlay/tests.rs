#![allow(clippy::unwrap_used)]

use super::*;
use std::os::unix::fs::PermissionsExt;

fn config(dir: &Path) -> ExecutorConfig {
    std::fs::create_dir_all(dir.join("secrets")).unwrap();
    let tok = dir.join("secrets/ipc.token");
    std::fs::write(&tok, format!("{}\n", "ab".repeat(32))).unwrap();
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = r#"{
      "state_dir": "state",
      "ipc": { "token_file": "secrets/ipc.token" },
      "broker": { "mode": "paper" },
      "risk": { "max_daily_loss_pct": 4, "max_open_positions": 10 },
      "symbols": {
        "EURUSD": { "enabled": true, "lot_weak": 0.01, "lot_moderate": 0.02, "lot_strong": 0.03 },
        "GBPUSD": { "enabled": true }
      }
    }"#;
    ExecutorConfig::from_json_str(text, &dir.join("config.json")).unwrap()
}

fn id(n: u8) -> CommandId {
    CommandId::from_random([n; 16])
}

fn sym(s: &str) -> protocol::Symbol {
    s.parse().unwrap()
}

#[test]
fn commands_change_the_overlay_and_the_overlay_wins_over_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = config(dir.path());
    let mut o = Overlay::default();
    assert!(o.record(
        &id(1),
        &Command::SetLots {
            symbol: sym("EURUSD"),
            lot_weak: 0.02,
            lot_moderate: 0.04,
            lot_strong: 0.06
        },
        "t1"
    ));
    assert!(o.record(
        &id(2),
        &Command::SetEnabled {
            symbol: sym("GBPUSD"),
            enabled: false
        },
        "t2"
    ));
    assert!(o.record(
        &id(3),
        &Command::SetRiskLimits(RiskLimits {
            max_open_positions: Some(3),
            ..RiskLimits::default()
        }),
        "t3"
    ));
    // A second SetRiskLimits keeps the fields it does not name.
    assert!(o.record(
        &id(4),
        &Command::SetRiskLimits(RiskLimits {
            max_daily_loss_pct: Some(2.5),
            ..RiskLimits::default()
        }),
        "t4"
    ));
    assert!(o.record(&id(5), &Command::Pause, "t5"));
    assert!(!o.record(&id(6), &Command::Status, "t6"));
    assert_eq!(o.changes.len(), 5);

    let mut cfg = file.clone();
    assert!(o.apply_to(&mut cfg).is_empty());
    let eur = &cfg.symbols[&sym("EURUSD")];
    assert_eq!(
        (eur.lots.weak, eur.lots.moderate, eur.lots.strong),
        (0.02, 0.04, 0.06)
    );
    assert!(!cfg.symbols[&sym("GBPUSD")].enabled);
    assert_eq!(cfg.risk.max_open_positions, 3);
    assert_eq!(cfg.risk.max_daily_loss_pct, 2.5);
    // Not named by any command: the file's value.
    assert_eq!(cfg.risk.max_total_loss_pct, file.risk.max_total_loss_pct);

    let shown: Vec<String> = o
        .overrides(&file)
        .iter()
        .map(|x| format!("{} {} (file {})", x.field, x.overlay, x.config))
        .collect();
    assert_eq!(
        shown,
        [
            "paused true (file false)",
            "EURUSD.lot_weak 0.02 (file 0.01)",
            "EURUSD.lot_moderate 0.04 (file 0.02)",
            "EURUSD.lot_strong 0.06 (file 0.03)",
            "GBPUSD.enabled false (file true)",
            "risk.max_daily_loss_pct 2.5 (file 4)",
            "risk.max_open_positions 3 (file 10)",
        ]
    );
}

#[test]
fn the_overlay_survives_a_restart_and_a_resume_clears_the_pause() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    assert_eq!(Overlay::load(&state).unwrap(), Overlay::default());
    let mut o = Overlay::default();
    o.record(&id(1), &Command::Pause, "t1");
    o.record(
        &id(2),
        &Command::SetEnabled {
            symbol: sym("EURUSD"),
            enabled: false,
        },
        "t2",
    );
    o.save(&state).unwrap();
    let back = Overlay::load(&state).unwrap();
    assert_eq!(back, o);
    assert!(back.paused);
    let mut back = back;
    back.record(&id(3), &Command::Resume, "t3");
    assert!(!back.paused);
}

#[test]
fn a_symbol_gone_from_the_config_is_kept_but_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    let mut o = Overlay::default();
    o.record(
        &id(1),
        &Command::SetEnabled {
            symbol: sym("XAUUSD"),
            enabled: true,
        },
        "t",
    );
    let notes = o.apply_to(&mut cfg);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].contains("XAUUSD is not in the config"),
        "{notes:?}"
    );
    assert!(!cfg.symbols.contains_key(&sym("XAUUSD")));
}

#[test]
fn a_torn_or_out_of_range_file_refuses_to_load_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let p = path(dir.path());
    for (text, words) in [
        ("{\"v\":1,\"paused\":tr", "not valid state JSON"),
        ("{\"v\":2}", "version 2"),
        (
            "{\"v\":1,\"symbols\":{\"EURUSD\":{\"lot_weak\":0}}}",
            "symbols.EURUSD.lot_weak",
        ),
        (
            "{\"v\":1,\"risk\":{\"max_daily_loss_pct\":500}}",
            "max_daily_loss_pct",
        ),
        ("{\"v\":1,\"pause\":true}", "unknown field"),
    ] {
        std::fs::write(&p, text).unwrap();
        let e = Overlay::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains(words), "{text}: {e}");
        assert!(e.contains("restore it from a backup"), "{text}: {e}");
    }
}

#[test]
fn the_change_list_is_bounded() {
    let mut o = Overlay::default();
    for i in 0..(CHANGES_KEPT + 5) {
        o.record(&id(i as u8), &Command::Pause, "t");
    }
    assert_eq!(o.changes.len(), CHANGES_KEPT);
    assert_eq!(o.changes.last().unwrap().id, id((CHANGES_KEPT + 4) as u8));
}
