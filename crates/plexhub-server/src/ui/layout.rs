//! The frame every dashboard page shares (head, navigation, styles) and the error page.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::api::ApiFailure;
use super::assets::{HTMX_SSE_URL, HTMX_URL};
use super::session::Session;
use crate::error::ApiError;

/// Styles: system fonts, WCAG AA contrast, visible focus, one column on a phone.
const STYLE: &str = r#"
:root{--fg:#1b1f24;--muted:#4a535e;--bg:#fff;--line:#c9d1d9;--accent:#0b57d0;--bad:#b3261e;--good:#146c2e;--warn:#7a4d00}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
a:focus,button:focus,input:focus,select:focus,textarea:focus,summary:focus{outline:3px solid #f9ab00;outline-offset:2px}
header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;padding:.75rem 1rem;border-bottom:1px solid var(--line);background:#f6f8fa}
header nav{display:flex;flex-wrap:wrap;gap:.25rem 1rem}
header .brand{font-weight:700;text-decoration:none;color:var(--fg)}
header form{margin-left:auto}
main{padding:1rem;max-width:72rem;margin:0 auto}
h1{font-size:1.5rem;margin:.5rem 0 1rem}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
.table{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .6rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(10rem,1fr));gap:.75rem}
.card{border:1px solid var(--line);border-radius:.5rem;padding:.75rem}
.card .value{font-size:1.6rem;font-weight:700}
.card .label{color:var(--muted)}
.bad{color:var(--bad);font-weight:600}.good{color:var(--good);font-weight:600}.warn{color:var(--warn);font-weight:600}
.notice{border:2px solid var(--accent);border-radius:.5rem;padding:.75rem;margin:1rem 0}
.problem{border:2px solid var(--bad);border-radius:.5rem;padding:.75rem;margin:1rem 0}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}
input,select,textarea{font:inherit;padding:.4rem;border:1px solid var(--muted);border-radius:.25rem;max-width:100%}
textarea{width:100%;min-height:12rem;font-family:ui-monospace,monospace}
button{font:inherit;padding:.4rem .9rem;border-radius:.25rem;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}
button.danger{background:var(--bad);border-color:var(--bad)}
.inline{display:inline}
.row{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end}
code,.mono{font-family:ui-monospace,monospace;word-break:break-all}
.subnav{display:flex;flex-wrap:wrap;gap:.25rem 1rem;margin-bottom:1rem}
[aria-current=page]{font-weight:700}
"#;

/// htmx swaps every answer but 204, errors included, so a refused form shows why.
const HTMX_CONFIG: &str = r#"{"responseHandling":[{"code":"204","swap":false},{"code":"[23]..","swap":true},{"code":"[45]..","swap":true,"error":true}]}"#;

/// The top-level sections, for the navigation's current marker.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// The overview.
    Overview,
    /// Tenants and everything under a tenant.
    Tenants,
    /// The plugin catalog.
    Catalog,
    /// The audit log.
    Calls,
}

/// `<head>` with the vendored scripts.
fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            // Boosted forms show refusals too (a manifest's problems come with 400).
            meta name="htmx-config" content=(HTMX_CONFIG);
            title { (title) " · plexhub" }
            style { (PreEscaped(STYLE)) }
            script src=(HTMX_URL) defer {}
            script src=(HTMX_SSE_URL) defer {}
        }
    }
}

/// A signed-in page: navigation, sign-out, and the session's CSRF token sent on every htmx
/// request (`hx-headers`) and in every form.
pub(crate) fn page(title: &str, session: &Session, section: Section, content: Markup) -> Markup {
    let csrf_header = serde_json::json!({ "X-CSRF-Token": session.csrf_token }).to_string();
    let link = |href: &str, label: &str, this: Section| {
        html! {
            @if this == section {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body hx-boost="true" hx-headers=(csrf_header) {
                header {
                    a.brand href="/ui" { "plexhub" }
                    nav aria-label="Sections" {
                        (link("/ui", "Overview", Section::Overview))
                        (link("/ui/tenants", "Tenants", Section::Tenants))
                        (link("/ui/catalog", "Catalog", Section::Catalog))
                        (link("/ui/calls", "Calls", Section::Calls))
                    }
                    form method="post" action="/ui/logout" {
                        (csrf_field(session))
                        button.secondary type="submit" { "Sign out" }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in a form.
pub(crate) fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf_token); }
}

/// A page without a session (sign-in, errors).
pub(crate) fn bare_page(title: &str, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                header { a.brand href="/ui" { "plexhub" } }
                main id="main" {
                    h1 { (title) }
                    (content)
                }
            }
        }
    }
}

/// The navigation inside one tenant.
pub(crate) fn tenant_nav(slug: &str, current: &str) -> Markup {
    let base = format!("/ui/tenants/{}", super::api::segment(slug));
    let items = [
        ("", "Installations"),
        ("/services", "Services"),
        ("/graph", "Dependency graph"),
        ("/access", "Access explain"),
        ("/events", "Events"),
    ];
    html! {
        nav.subnav aria-label="Tenant" {
            @for (suffix, label) in items {
                @if *label == *current {
                    a href={(base) (suffix)} aria-current="page" { (label) }
                } @else {
                    a href={(base) (suffix)} { (label) }
                }
            }
            a href={ "/ui/calls?tenant=" (slug) } { "Calls" }
        }
    }
}

/// Why a dashboard request failed: what the API answered, or a failure of the hub itself.
#[derive(Debug)]
pub(crate) enum UiError {
    /// The API refused or failed (its status is kept: 404 for an unknown tenant…).
    Api(ApiFailure),
    /// The hub failed before reaching the API (the store, a malformed request).
    Hub(ApiError),
}

impl From<ApiFailure> for UiError {
    fn from(failure: ApiFailure) -> Self {
        Self::Api(failure)
    }
}

impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        Self::Hub(error)
    }
}

impl From<plexhub_store::StoreError> for UiError {
    fn from(error: plexhub_store::StoreError) -> Self {
        Self::Hub(error.into())
    }
}

impl UiError {
    /// The status, error code and message to show.
    pub(crate) fn summary(self) -> (StatusCode, String, String) {
        match self {
            Self::Api(failure) => (failure.status, failure.code, failure.message),
            Self::Hub(error) => {
                let code = serde_json::to_value(error.code())
                    .ok()
                    .and_then(|code| code.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let message = if error.code() == crate::error::ErrorCode::Internal {
                    format!(
                        "internal error (request id {})",
                        crate::request_id::current()
                    )
                } else {
                    error.message().to_owned()
                };
                (error.code().status(), code, message)
            }
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.summary();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = bare_page(
            title,
            html! {
                div.problem role="alert" {
                    p { strong { (code) } ": " (message) }
                }
                p { a href="/ui" { "Back to the overview" } }
            },
        );
        (status, body).into_response()
    }
}

/// An HTML answer with a status other than 200.
pub(crate) fn with_status(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}
