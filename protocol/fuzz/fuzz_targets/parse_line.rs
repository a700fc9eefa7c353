//! Any bytes (as lossy UTF-8, then as one WebSocket message) must parse or be refused without a
//! panic, and every line that parses must format back to text that parses to the same value and
//! formats identically again (the canonical form is a fixed point).
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::{Line, parse_message};

fn check(line: &Line) {
    let text = line.to_string();
    let again: Line = match text.parse() {
        Ok(l) => l,
        Err(e) => panic!("canonical text {text:?} of {line:?} does not parse: {e}"),
    };
    assert_eq!(&again, line, "round trip changed the value of {text:?}");
    assert_eq!(
        again.to_string(),
        text,
        "display is not stable for {text:?}"
    );
    let _ = line.redacted().to_string();
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match text.parse::<Line>() {
        Ok(line) => check(&line),
        Err(e) => {
            // The ERROR reply built from a parse error is itself a valid, canonical line.
            let reply = Line::Error(e.to_error_line());
            check(&reply);
        }
    }
    for line in parse_message(&text).flatten() {
        check(&line);
    }
});
