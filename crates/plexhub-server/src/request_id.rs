//! `X-Request-Id` on every response: the caller's when it is sane, else a fresh UUID. The id is
//! also available to the code handling the request (for error bodies and logs).

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
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
fn of(headers: &HeaderMap) -> String {
    headers
        .get(&REQUEST_ID_HEADER)
        .and_then(|value| value.to_str().ok())
        .filter(|id| is_sane(id))
        .map_or_else(new_id, str::to_owned)
}

/// Picks the id of the request whose headers are `headers` and stores it there; returns the
/// id and the header value that [`echo`] puts on the answer.
pub fn assign_id(headers: &mut HeaderMap) -> (String, HeaderValue) {
    let id = of(headers);
    let header = HeaderValue::from_str(&id).expect("sane ids and UUIDs are valid header values");
    headers.insert(REQUEST_ID_HEADER.clone(), header.clone());
    (id, header)
}

/// Runs `handle` with `id` as the [`current`] id.
pub fn scope<Fut: Future>(id: String, handle: Fut) -> impl Future<Output = Fut::Output> {
    CURRENT.scope(id, handle)
}

/// Echoes the request id (`header`, from [`assign_id`]) on the answer.
pub fn echo(response: &mut Response, header: HeaderValue) {
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), header);
}

/// Middleware: picks the request's id ([`assign_id`]), runs the rest of the stack with it as
/// the [`current`] id, and echoes it on the answer (the front door's hot paths do the same).
pub async fn assign(mut request: Request, next: Next) -> Response {
    let (id, header) = assign_id(request.headers_mut());
    let mut response = scope(id, next.run(request)).await;
    echo(&mut response, header);
    response
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
