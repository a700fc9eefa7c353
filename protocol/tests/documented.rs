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

/// The codes of a table and of the enum, each sorted: the table may order them by topic.
fn same(mut documented: Vec<String>, known: &[&str], what: &str) {
    let mut known: Vec<String> = known.iter().map(|s| s.to_string()).collect();
    documented.sort();
    known.sort();
    assert_eq!(documented, known, "{what}");
}

#[test]
fn every_ack_reason_is_documented_and_every_documented_one_is_known() {
    let known: Vec<&str> = Reason::KNOWN.iter().map(Reason::as_str).collect();
    same(
        table_codes("5. ACK reason codes"),
        &known,
        "PROTOCOL.md §5 and Reason::KNOWN differ",
    );
}

#[test]
fn every_error_code_is_documented_and_every_documented_one_is_known() {
    let known: Vec<&str> = ErrorCode::KNOWN.iter().map(ErrorCode::as_str).collect();
    same(
        table_codes("6. ERROR codes"),
        &known,
        "PROTOCOL.md §6 and ErrorCode::KNOWN differ",
    );
}
