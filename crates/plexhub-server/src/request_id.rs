//! `X-Request-Id` on every response: the caller's when it is sane, else a fresh UUID. The id is
//! also available to the code handling the request (for error bodies and logs).

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the request id.
pub static REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: HeaderValue;
}

/// The id of the request being handled ("unknown" outside a request).
pub fn current() -> String {
    CURRENT
        .try_with(|id| id.to_str().unwrap_or("unknown").to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A caller-supplied id is kept if it is 1-128 characters of letters, digits, `-`, `_`, `.`, `:`.
fn is_sane(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A random (v4) UUID from the thread-local generator: no system call per request. Its text and
/// its reference count share one allocation, so the request's copies of the id (its scope, the
/// echo, the forwarded header) allocate nothing.
fn new_id() -> HeaderValue {
    let bytes: [u8; 16] = rand::random();
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text);
    HeaderValue::from_maybe_shared(Bytes::from_owner(text)).expect("a UUID is a valid header value")
}

/// The request's id: the caller's when it is sane (shared with the request's bytes, not
/// copied), else a new one.
fn of(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID_HEADER)
        .filter(|id| id.to_str().is_ok_and(is_sane))
        .cloned()
        .unwrap_or_else(new_id)
}

/// Picks the id of the request whose headers are `headers` and stores it there (the only
/// value); returns it, for [`scope`] and [`echo`].
pub fn assign_id(headers: &mut HeaderMap) -> HeaderValue {
    let id = of(headers);
    headers.insert(REQUEST_ID_HEADER.clone(), id.clone());
    id
}

/// Runs `handle` with `id` as the [`current`] id.
pub fn scope<Fut: Future>(id: HeaderValue, handle: Fut) -> impl Future<Output = Fut::Output> {
    CURRENT.scope(id, handle)
}

/// Echoes the request id (from [`assign_id`]) on the answer.
pub fn echo(response: &mut Response, header: HeaderValue) {
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), header);
}

/// Middleware: picks the request's id ([`assign_id`]), runs the rest of the stack with it as
/// the [`current`] id, and echoes it on the answer (the front door's hot paths do the same).
pub async fn assign(mut request: Request, next: Next) -> Response {
    let id = assign_id(request.headers_mut());
    let mut response = scope(id.clone(), next.run(request)).await;
    echo(&mut response, id);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_id_is_kept_and_any_other_replaced_by_a_uuid() {
        let mut headers = HeaderMap::new();
        headers.insert(&REQUEST_ID_HEADER, HeaderValue::from_static("req-1"));
        assert_eq!(assign_id(&mut headers), "req-1");
        headers.insert(&REQUEST_ID_HEADER, HeaderValue::from_static("not sane"));
        headers.append(&REQUEST_ID_HEADER, HeaderValue::from_static("second"));
        let id = assign_id(&mut headers);
        let text = id.to_str().expect("text");
        assert!(uuid::Uuid::parse_str(text).is_ok(), "{text}");
        assert_eq!(text.as_bytes()[14], b'4', "a v4 UUID: {text}");
        let stored: Vec<_> = headers.get_all(&REQUEST_ID_HEADER).iter().collect();
        assert_eq!(stored, [&id], "the id is the request's only one");
    }

    #[test]
    fn only_sane_ids_are_kept() {
        assert!(is_sane("abc-123_x.y:z"));
        assert!(!is_sane(""));
        assert!(!is_sane("has space"));
        assert!(!is_sane("quote\""));
        assert!(!is_sane(&"a".repeat(129)));
    }
}
