//! Signing in with the admin token, the session cookie, CSRF checks and signing out.
//!
//! The cookie holds a random id; the store keeps only its SHA-256 with the session's CSRF token
//! and expiry, so every hub on the database knows the session. The admin token is read from
//! the sign-in form's body only: it never appears in a URL, a page or a log.

use std::sync::Mutex;

use axum::body::Body;
use axum::extract::{Extension, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use plexhub_core::credential::{SecretHash, tokens_match};
use plexhub_store::UiSession;
use serde::Deserialize;

use super::Ui;
use super::layout::{UiError, bare_page, with_status};
use crate::error::{ApiError, ErrorCode};

/// The session cookie's name.
pub(crate) const SESSION_COOKIE: &str = "plexhub_session";
/// The cookie that carries the sign-in form's CSRF token (there is no session yet).
const LOGIN_CSRF_COOKIE: &str = "plexhub_login_csrf";
/// The header htmx requests carry the CSRF token in.
const CSRF_HEADER: &str = "x-csrf-token";
/// Failed sign-ins a hub accepts per window before answering 429.
const MAX_FAILED_LOGINS: u32 = 10;
/// The window of [`MAX_FAILED_LOGINS`], in milliseconds.
const FAILED_LOGIN_WINDOW_MS: i64 = 60_000;
/// Largest form body checked for a CSRF field (a pasted manifest fits).
const MAX_FORM_BYTES: usize = 4 * 1024 * 1024;

/// A signed-in session, as handlers see it.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The token forms and htmx requests must carry.
    pub csrf_token: String,
    /// SHA-256 (hex) of the cookie's value.
    id_hash: String,
}

/// Counts failed sign-ins in fixed windows, so guessing the admin token through the form is
/// slowed down to [`MAX_FAILED_LOGINS`] a minute per hub.
#[derive(Default)]
pub(crate) struct LoginLimiter {
    /// (window start, failures in it). A plain mutex: held for two integer updates, never
    /// across an await.
    window: Mutex<(i64, u32)>,
}

impl LoginLimiter {
    /// `Err(seconds to wait)` while the window's failures are used up.
    fn check(&self, now_ms: i64) -> Result<(), i64> {
        let window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let (start, failures) = *window;
        if now_ms - start < FAILED_LOGIN_WINDOW_MS && failures >= MAX_FAILED_LOGINS {
            Err((start + FAILED_LOGIN_WINDOW_MS - now_ms + 999) / 1000)
        } else {
            Ok(())
        }
    }

    /// Counts one failure.
    fn failed(&self, now_ms: i64) {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if now_ms - window.0 >= FAILED_LOGIN_WINDOW_MS {
            *window = (now_ms, 0);
        }
        window.1 += 1;
    }
}

/// 32 random bytes as hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether the browser reached the hub over https (a TLS-terminating proxy in front says so
/// with `X-Forwarded-Proto`); the cookies are then `Secure`.
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|proto| proto.eq_ignore_ascii_case("https"))
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/ui`, `Secure` over TLS.
fn set_cookie(name: &str, value: &str, max_age_seconds: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_seconds}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The sign-in form, with `message` above it when given.
fn login_page(csrf_token: &str, message: Option<&str>) -> Markup {
    bare_page(
        "Sign in",
        html! {
            @if let Some(message) = message {
                div.problem role="alert" { p { (message) } }
            }
            form method="post" action="/ui/login" {
                input type="hidden" name="csrf" value=(csrf_token);
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required autofocus;
                p { button type="submit" { "Sign in" } }
            }
        },
    )
}

/// The sign-in form and the cookie holding its CSRF token.
fn login_response(status: StatusCode, headers: &HeaderMap, message: Option<&str>) -> Response {
    let csrf_token = random_token();
    let mut response = with_status(status, login_page(&csrf_token, message));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, &csrf_token, 3600, over_tls(headers)),
    );
    response
}

/// `GET /ui/login`.
pub(crate) async fn login_form(headers: HeaderMap) -> Response {
    login_response(StatusCode::OK, &headers, None)
}

/// The sign-in form's fields.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    csrf: String,
}

/// `POST /ui/login`: a session for the right admin token (303 to the overview), the form again
/// with a message otherwise (401; 429 once the failed sign-ins of the minute are used up).
pub(crate) async fn login(
    Extension(ui): Extension<Ui>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Result<Response, UiError> {
    let expected_csrf = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    if expected_csrf.is_empty() || !tokens_match(&form.csrf, expected_csrf) {
        return Ok(login_response(
            StatusCode::FORBIDDEN,
            &headers,
            Some("The form expired; please sign in again."),
        ));
    }
    let now = ui.state.clock.now_ms();
    if let Err(seconds) = ui.login_failures.check(now) {
        let limited = ApiError::new(ErrorCode::RateLimited, "too many failed sign-ins");
        let mut response = login_response(
            limited.code().status(),
            &headers,
            Some(&format!(
                "Too many failed sign-ins; try again in {seconds} s."
            )),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        return Ok(response);
    }
    if !tokens_match(&form.token, ui.state.admin_token.expose()) {
        ui.login_failures.failed(now);
        tracing::warn!("dashboard sign-in with a wrong admin token");
        return Ok(login_response(
            ErrorCode::Unauthenticated.status(),
            &headers,
            Some("That is not the admin token."),
        ));
    }
    let id = random_token();
    let ttl_ms = i64::try_from(ui.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = UiSession {
        id_hash: SecretHash::of(&id).to_hex(),
        csrf_token: random_token(),
        created_at_ms: now,
        expires_at_ms: now.saturating_add(ttl_ms),
    };
    ui.state.store.create_ui_session(&session, now).await?;
    let mut response = Redirect::to("/ui").into_response();
    let secure = over_tls(&headers);
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, &id, ui.session_ttl.as_secs(), secure),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(LOGIN_CSRF_COOKIE, "", 0, secure),
    );
    Ok(response)
}

/// `POST /ui/logout`: ends the session everywhere, 303 to the sign-in form.
pub(crate) async fn logout(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
) -> Result<Response, UiError> {
    ui.state.store.delete_ui_session(&session.id_hash).await?;
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", 0, over_tls(&headers)),
    );
    Ok(response)
}

/// Middleware of every signed-in route: 303 to the sign-in form without a live session; 403
/// for anything but GET/HEAD without the session's CSRF token (header `X-CSRF-Token`, as htmx
/// sends it, or form field `csrf`).
pub(crate) async fn require_session(
    Extension(ui): Extension<Ui>,
    request: Request,
    next: Next,
) -> Result<Response, UiError> {
    let Some(id) = cookie(request.headers(), SESSION_COOKIE).filter(|id| !id.is_empty()) else {
        return Ok(Redirect::to("/ui/login").into_response());
    };
    let id_hash = SecretHash::of(id).to_hex();
    let now = ui.state.clock.now_ms();
    let Some(stored) = ui.state.store.ui_session(&id_hash, now).await? else {
        return Ok(Redirect::to("/ui/login").into_response());
    };
    let session = Session {
        csrf_token: stored.csrf_token,
        id_hash,
    };
    let mut request = if matches!(*request.method(), Method::GET | Method::HEAD) {
        request
    } else {
        checked_csrf(request, &session.csrf_token).await?
    };
    request.extensions_mut().insert(session);
    Ok(next.run(request).await)
}

/// The request again if it carries `expected` (header, or the `csrf` field of a form body,
/// which is read and put back); 403 `FORBIDDEN` otherwise.
async fn checked_csrf(request: Request, expected: &str) -> Result<Request, UiError> {
    let refused = || ApiError::new(ErrorCode::Forbidden, "missing or wrong CSRF token");
    if let Some(sent) = request.headers().get(CSRF_HEADER) {
        let sent = sent.to_str().unwrap_or_default();
        return if tokens_match(sent, expected) {
            Ok(request)
        } else {
            Err(refused().into())
        };
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| ApiError::new(ErrorCode::PayloadTooLarge, "the form is too large"))?;
    let sent = url::form_urlencoded::parse(&bytes)
        .find(|(name, _)| name == "csrf")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    if !tokens_match(&sent, expected) {
        return Err(refused().into());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}
