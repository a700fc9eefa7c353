//! The dashboard and the JSON API, served by the hub binary with its assets built in (no CDN:
//! it works offline). Loopback by default; docs/HUB.md shows a TLS proxy in front.
//!
//! Every page and every `/api/` route but `/api/health` needs a session; every state-changing
//! request also needs the session's CSRF token in `X-CSRF-Token` and, when the browser sends one,
//! an `Origin` equal to the host it asked.

mod api;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use fleet::ed25519_dalek::SigningKey;
use tokio::sync::broadcast;

use crate::auth::Sessions;
use crate::events::{HubEvent, Stats};
use crate::link::Publisher;
use crate::store::Store;

pub use session::SESSION_COOKIE;

/// Everything a request handler may touch.
#[derive(Debug)]
pub struct App {
    pub store: Store,
    pub sessions: Sessions,
    pub operator_user: String,
    pub operator_hash: String,
    pub cookie_secure: bool,
    pub key: SigningKey,
    pub command_ttl_ms: i64,
    pub publisher: Publisher,
    pub events: broadcast::Sender<HubEvent>,
    pub stats: Arc<Stats>,
    /// Turns true when the hub stops: open event streams end, so a graceful shutdown is not held
    /// up by a dashboard left open.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // same-origin, not no-referrer: under no-referrer Chromium sends `Origin: null` with the
    // page's own form posts, which the same-origin check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

struct Asset {
    name: &'static str,
    mime: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        mime: "text/css; charset=utf-8",
        body: include_str!("../../assets/app.css"),
    },
    Asset {
        name: "common.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/common.js"),
    },
    Asset {
        name: "fleet.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/fleet.js"),
    },
    Asset {
        name: "login.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/login.js"),
    },
    Asset {
        name: "instance.js",
        mime: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/instance.js"),
    },
];

const FLEET_HTML: &str = include_str!("../../assets/fleet.html");
const INSTANCE_HTML: &str = include_str!("../../assets/instance.html");
const LOGIN_HTML: &str = include_str!("../../assets/login.html");

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            a.body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn html(body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

async fn fleet_page(session: Option<session::Authed>) -> Response {
    match session {
        Some(_) => html(FLEET_HTML),
        None => Redirect::to("/login").into_response(),
    }
}

async fn instance_page(session: Option<session::Authed>, Path(id): Path<String>) -> Response {
    if fleet::InstanceId::new(&id).is_err() {
        return StatusCode::NOT_FOUND.into_response();
    }
    match session {
        Some(_) => html(INSTANCE_HTML),
        None => Redirect::to("/login").into_response(),
    }
}

async fn login_page() -> Response {
    html(LOGIN_HTML)
}

/// The router.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(fleet_page))
        .route("/instance/{id}", get(instance_page))
        .route("/login", get(login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/assets/{name}", get(asset))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .nest("/api", api::routes())
        .layer(axum::middleware::map_response(security_headers))
        // Nothing an operator sends is larger: a command is a few hundred bytes.
        .layer(DefaultBodyLimit::max(16 * 1024))
        .with_state(app)
}

/// The state type handlers see.
pub type AppState = State<Arc<App>>;
