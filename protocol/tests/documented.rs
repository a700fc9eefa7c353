//! Every code the crate knows is in PROTOCOL.md's tables, and every code in the tables is known:
//! an ACK never carries a reason a reader cannot look up (an undocumented `INTERNAL` once did).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use protocol::{ErrorCode, Reason};

/// The codes in the first column of the table under the heading `## <section>`.
fn table_codes(section: &str) -> Vec<String> {
    let spec =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/PROTOCOL.md")).unwrap();
    let start = spec
        .find(&format!("## {section}"))
        .unwrap_or_else(|| panic!("no section {section:?} in PROTOCOL.md"));
    let body = &spec[start..];
    let body = &body[3..body[3..].find("\n## ").map_or(body.len() - 3, |i| i)];
    body.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(code, _)| code.to_string()))
        .collect()
}

#[test]
fn every_ack_reason_is_documented_and_every_documented_one_is_known() {
    let documented = table_codes("5. ACK reason codes");
    let known: Vec<String> = Reason::KNOWN
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    assert_eq!(documented, known, "PROTOCOL.md §5 and Reason::KNOWN differ");
}

#[test]
fn every_error_code_is_documented_and_every_documented_one_is_known() {
    let documented = table_codes("6. ERROR codes");
    let known: Vec<String> = ErrorCode::KNOWN
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    assert_eq!(
        documented, known,
        "PROTOCOL.md §6 and ErrorCode::KNOWN differ"
    );
}
