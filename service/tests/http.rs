//! The health/metrics listener over a real socket: 503 with the reason until the daemon is ready and
//! progressing, 200 after, 503 again once progress stops; `/metrics` in the text format's content
//! type; a non-loopback or squatted address refused at bind time.
#![cfg(feature = "http")]
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use service::Liveness;
use service::http::{HttpError, Listener, METRICS_CONTENT_TYPE};

fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status: u16 = text.split(' ').nth(1).unwrap().parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[test]
fn healthz_follows_progress_and_metrics_is_the_text_format() {
    let l = Listener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = l.local_addr().unwrap();
    let live = Liveness::new(Duration::from_millis(300));
    l.spawn(
        live.clone(),
        Arc::new(|| "# HELP x y\n# TYPE x gauge\nx 1\n".to_string()),
    )
    .unwrap();
    let (code, _, body) = get(addr, "/healthz");
    assert_eq!(code, 503);
    assert!(body.contains("starting"), "{body}");
    live.ready(Instant::now());
    live.status("mode paper, CSV replay");
    live.progress(Instant::now());
    let (code, _, body) = get(addr, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok: mode paper, CSV replay\n"));
    std::thread::sleep(Duration::from_millis(350));
    let (code, _, body) = get(addr, "/healthz");
    assert_eq!(code, 503);
    assert!(body.contains("(watchdog interval 0.3 s)"), "{body}");
    assert!(body.contains("status: mode paper, CSV replay"), "{body}");
    let (code, head, body) = get(addr, "/metrics");
    assert_eq!(code, 200);
    assert!(
        head.contains(&format!("content-type: {METRICS_CONTENT_TYPE}")),
        "{head}"
    );
    assert_eq!(body, "# HELP x y\n# TYPE x gauge\nx 1\n");
    assert_eq!(get(addr, "/").0, 404);
}

#[test]
fn only_loopback_and_a_free_port() {
    assert!(matches!(
        Listener::bind("0.0.0.0:0".parse().unwrap()),
        Err(HttpError::NotLoopback { .. })
    ));
    let squat = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let e = Listener::bind(squat.local_addr().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("binding the health/metrics listener") && e.contains("choose another"),
        "{e}"
    );
}
