//! Drives `conformance.txt`: every case must parse (and format back exactly) or be refused with an
//! error naming the expected field.
#![allow(clippy::unwrap_used)]

use protocol::Line;

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            other => panic!("bad escape \\{other:?} in conformance.txt"),
        }
    }
    out
}

#[test]
fn conformance_file() {
    let text = include_str!("conformance.txt");
    let (mut oks, mut canons, mut errs) = (0, 0, 0);
    let mut failures = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let (verb, rest) = raw.split_once(' ').unwrap_or((raw, ""));
        match verb {
            "ok" => {
                oks += 1;
                let line = unescape(rest);
                match line.parse::<Line>() {
                    Ok(parsed) if parsed.to_string() == line => {}
                    Ok(parsed) => {
                        failures.push(format!("{n}: {line:?} formats as {:?}", parsed.to_string()))
                    }
                    Err(e) => failures.push(format!("{n}: {line:?} refused: {e}")),
                }
            }
            "canon" => {
                canons += 1;
                let (input, want) = rest.split_once(" ==> ").unwrap();
                let (input, want) = (unescape(input), unescape(want));
                match input.parse::<Line>() {
                    Ok(parsed) if parsed.to_string() == want => {
                        // The canonical form is itself canonical.
                        let again: Line = want.parse().unwrap();
                        assert_eq!(again, parsed, "line {n}");
                    }
                    Ok(parsed) => failures.push(format!(
                        "{n}: {input:?} formats as {:?}, want {want:?}",
                        parsed.to_string()
                    )),
                    Err(e) => failures.push(format!("{n}: {input:?} refused: {e}")),
                }
            }
            "err" => {
                errs += 1;
                let (field, line) = rest.split_once(' ').unwrap_or((rest, ""));
                let line = unescape(line);
                match line.parse::<Line>() {
                    Ok(parsed) => failures.push(format!(
                        "{n}: {line:?} accepted as {parsed:?}, want error on {field}"
                    )),
                    Err(e) if e.field() == field => {}
                    Err(e) => failures.push(format!(
                        "{n}: {line:?}: error names field {:?}, want {field:?}: {e}",
                        e.field()
                    )),
                }
            }
            _ => panic!("conformance.txt line {n}: unknown verb {verb:?}"),
        }
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Guard against the file silently losing its cases.
    assert!(
        oks >= 40 && canons >= 5 && errs >= 80,
        "only {oks} ok, {canons} canon, {errs} err cases"
    );
    println!("conformance: {oks} ok, {canons} canon, {errs} err cases passed");
}
