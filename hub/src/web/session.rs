//! Login, logout, and the extractors that demand a session (and a CSRF token).

use std::sync::Arc;

use axum::Form;
use axum::extract::{FromRequestParts, OptionalFromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use serde::Deserialize;

use super::App;
use crate::auth::{Session, check_login, csrf_ok};
use crate::link::now_ms;

/// `__Host-` (RFC 6265bis §4.1.3.2): the browser only accepts it Secure, for this host, path `/`.
pub const SESSION_COOKIE: &str = "__Host-hub_session";
/// Without TLS anywhere (cookie_secure false), the prefix cannot be used.
const PLAIN_COOKIE: &str = "hub_session";

fn cookie_name(app: &App) -> &'static str {
    if app.cookie_secure {
        SESSION_COOKIE
    } else {
        PLAIN_COOKIE
    }
}

fn session_token(app: &App, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(app);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// A request with a live session.
#[derive(Debug, Clone)]
pub struct Authed {
    pub token: String,
    pub session: Session,
}

/// Why a request was refused (JSON for the API).
#[derive(Debug)]
pub struct Denied(pub StatusCode, pub &'static str);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        (self.0, axum::Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl FromRequestParts<Arc<App>> for Authed {
    type Rejection = Denied;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Denied> {
        let token = session_token(app, &parts.headers)
            .ok_or(Denied(StatusCode::UNAUTHORIZED, "log in first"))?;
        let session = app.sessions.get(&token, now_ms()).ok_or(Denied(
            StatusCode::UNAUTHORIZED,
            "session expired: log in again",
        ))?;
        Ok(Authed { token, session })
    }
}

impl OptionalFromRequestParts<Arc<App>> for Authed {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(
        parts: &mut Parts,
        app: &Arc<App>,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Authed as FromRequestParts<Arc<App>>>::from_request_parts(parts, app)
                .await
                .ok(),
        )
    }
}

/// `Origin`, when present, must be this host (a page of another site cannot post here even if it
/// somehow had the token).
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let forwarded = headers
        .get("x-forwarded-host")
        .and_then(|v| v.to_str().ok());
    let matches = |h: &str| origin == format!("http://{h}") || origin == format!("https://{h}");
    let ok = matches(host) || forwarded.is_some_and(matches);
    if !ok {
        // A proxy that rewrites Host without X-Forwarded-Host lands here: say what came.
        tracing::warn!(origin, host, forwarded, "cross-origin request refused");
    }
    ok
}

/// A session plus a valid CSRF token: required on every state-changing request.
#[derive(Debug, Clone)]
pub struct Csrf(pub Authed);

impl FromRequestParts<Arc<App>> for Csrf {
    type Rejection = Denied;
    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Self, Denied> {
        let authed = <Authed as FromRequestParts<Arc<App>>>::from_request_parts(parts, app).await?;
        if !same_origin(&parts.headers) {
            return Err(Denied(
                StatusCode::FORBIDDEN,
                "cross-origin request refused",
            ));
        }
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok());
        if !csrf_ok(&authed.session, given) {
            return Err(Denied(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token: reload the page",
            ));
        }
        Ok(Csrf(authed))
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    username: String,
    password: String,
}

pub async fn login(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !same_origin(&headers) {
        return Denied(StatusCode::FORBIDDEN, "cross-origin login refused").into_response();
    }
    let now = now_ms();
    if !app.sessions.may_try(now) {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins: wait a minute",
        )
            .into_response();
    }
    // argon2 is deliberately slow: off the async workers.
    let (user, hash) = (app.operator_user.clone(), app.operator_hash.clone());
    let ok = tokio::task::spawn_blocking(move || {
        check_login(&user, &hash, &form.username, &form.password)
    })
    .await
    .unwrap_or(false);
    if !ok {
        app.sessions.failed(now);
        tracing::warn!("failed operator login");
        return Redirect::to("/login?failed=1").into_response();
    }
    let (token, _) = app.sessions.create(now);
    let cookie = Cookie::build((cookie_name(&app), token))
        .path("/")
        .http_only(true)
        .secure(app.cookie_secure)
        .same_site(SameSite::Strict)
        .build();
    tracing::info!("operator logged in");
    (
        [(header::SET_COOKIE, cookie.to_string())],
        Redirect::to("/"),
    )
        .into_response()
}

pub async fn logout(State(app): State<Arc<App>>, Csrf(authed): Csrf) -> Response {
    app.sessions.remove(&authed.token);
    let cookie = Cookie::build((cookie_name(&app), ""))
        .path("/")
        .http_only(true)
        .secure(app.cookie_secure)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::ZERO)
        .build();
    (
        [(header::SET_COOKIE, cookie.to_string())],
        StatusCode::NO_CONTENT,
    )
        .into_response()
}
