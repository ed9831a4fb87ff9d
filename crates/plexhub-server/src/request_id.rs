//! `X-Request-Id` on every response: the caller's when it is sane, else a fresh UUID. The id is
//! also available to the code handling the request (for error bodies and logs).

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the request id.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being handled ("unknown" outside a request).
pub fn current() -> String {
    CURRENT
        .try_with(Clone::clone)
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A caller-supplied id is kept if it is 1-128 characters of letters, digits, `-`, `_`, `.`, `:`.
fn is_sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A random (v4) UUID from the thread-local generator: no system call per request.
fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// The request's id: the caller's when it is sane, else a new one.
fn of(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(new_id, str::to_owned)
}

/// Picks the request's id, stores it on the request, runs `handle` with it as the [`current`]
/// id, and echoes it on the answer (the router's middleware, and the front door's hot paths).
pub async fn with_id<F, Fut>(mut request: Request, handle: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = of(&request);
    let header = HeaderValue::from_str(&id).expect("sane ids and UUIDs are valid header values");
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), header.clone());
    let mut response = CURRENT.scope(id, handle(request)).await;
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), header);
    response
}

/// Middleware: [`with_id`] around the rest of the stack.
pub async fn assign(request: Request, next: Next) -> Response {
    with_id(request, |request| next.run(request)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sane_ids_are_kept() {
        assert!(is_sane("abc-123_x.y:z"));
        assert!(!is_sane(""));
        assert!(!is_sane("has space"));
        assert!(!is_sane("quote\""));
        assert!(!is_sane(&"a".repeat(129)));
    }
}
