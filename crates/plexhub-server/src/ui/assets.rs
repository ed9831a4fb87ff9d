//! The dashboard's static files, embedded in the binary: htmx 2.0.11 and its SSE extension
//! 2.2.4, vendored from the npm registry (`assets/`, with their licenses), so nothing is fetched
//! from a CDN and the dashboard works offline.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// htmx, minified as published (`htmx.org@2.0.11`, `dist/htmx.min.js`).
const HTMX: &[u8] = include_bytes!("../../assets/htmx-2.0.11.min.js");
/// The SSE extension, minified as published (`htmx-ext-sse@2.2.4`, `dist/sse.min.js`).
const HTMX_SSE: &[u8] = include_bytes!("../../assets/htmx-ext-sse-2.2.4.min.js");

/// The URL of htmx (versioned, so it can be cached for good).
pub(crate) const HTMX_URL: &str = "/ui/assets/htmx-2.0.11.min.js";
/// The URL of the SSE extension.
pub(crate) const HTMX_SSE_URL: &str = "/ui/assets/htmx-ext-sse-2.2.4.min.js";

/// `GET /ui/assets/{file}`: one of the embedded files (no session needed).
pub(crate) async fn serve(Path(file): Path<String>) -> Response {
    let body = match file.as_str() {
        "htmx-2.0.11.min.js" => HTMX,
        "htmx-ext-sse-2.2.4.min.js" => HTMX_SSE,
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
