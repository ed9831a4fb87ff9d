//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the hub's envelope
//! and a stable code instead of axum's plain-text defaults.
//!
//! They are also where text that no backend can store is refused: a NUL character (PostgreSQL
//! rejects it in any text column, SQLite would keep it) in a JSON body, a query parameter or a
//! path parameter is 400 `INVALID_PARAMETER` (`INVALID_BODY` in a body) naming the field, the
//! same answer on both backends.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

/// A JSON body; syntax errors, schema mismatches, wrong content type and oversize bodies map to
/// `MALFORMED_JSON`, `INVALID_BODY`, `UNSUPPORTED_MEDIA_TYPE` and `PAYLOAD_TOO_LARGE`; a NUL
/// character in any string is `INVALID_BODY` with its JSON path.
pub struct ApiJson<T>(pub T);

/// Path parameters; a mismatch, or a NUL character, is `INVALID_PARAMETER`.
pub struct ApiPath<T>(pub T);

/// Query parameters; a mismatch, or a NUL character, is `INVALID_PARAMETER`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = json_content_type(request.headers());
        Self::from_body(is_json, request, state).await
    }
}

impl<T: DeserializeOwned> ApiJson<T> {
    /// The JSON body of `request` (its body and extensions are read; `is_json`: whether its
    /// headers say JSON, [`json_content_type`]): the extractor, and the front door's hot path,
    /// which keeps the headers apart from the body.
    pub async fn from_body<S: Send + Sync>(
        is_json: bool,
        request: Request,
        state: &S,
    ) -> Result<Self, ApiError> {
        // Checked first, as axum's `Json` does, so the body is read only for JSON.
        if !is_json {
            return Err(JsonRejection::MissingJsonContentType(Default::default()).into());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
                } else {
                    ApiError::new(ErrorCode::InvalidBody, rejection.body_text())
                }
            })?;
        // A NUL can only be written `\u0000` in JSON: most bodies are refused or let through on
        // that test alone; the others are parsed once more to name the field.
        if contains_escaped_nul(&bytes)
            && let Ok(value) = serde_json::from_slice::<Value>(&bytes)
            && let Some(path) = nul_in(&value, "$")
        {
            return Err(ApiError::new(
                ErrorCode::InvalidBody,
                format!("{path} contains a NUL character, which cannot be stored"),
            )
            .with_details(serde_json::json!({ "field": path })));
        }
        // Most bodies are valid: parse them plainly; only a refused one is parsed again,
        // tracking paths, so that the error names the field.
        if let Ok(value) = serde_json::from_slice::<T>(&bytes) {
            return Ok(Self(value));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`,
/// parameters allowed), as axum's `Json` requires.
pub fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(essence) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.split(';').next())
    else {
        return false;
    };
    let Some((kind, subtype)) = essence.trim().split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application") && (subtype == "json" || subtype.ends_with("+json"))
}

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.path().contains("%00")
            && let Ok(raw) = RawPathParams::from_request_parts(parts, state).await
            && let Some((name, _)) = raw.iter().find(|(_, value)| value.contains('\0'))
        {
            return Err(nul_parameter(name));
        }
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if query.contains("%00")
            && let Some((name, _)) = url::form_urlencoded::parse(query.as_bytes())
                .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(nul_parameter(&name));
        }
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

fn nul_parameter(name: &str) -> ApiError {
    let name = name.replace('\0', "\\0");
    ApiError::new(
        ErrorCode::InvalidParameter,
        format!("{name} contains a NUL character, which cannot be stored"),
    )
    .with_details(serde_json::json!({ "field": name }))
}

/// Whether `bytes` contains a JSON `\u0000` escape (either case of hex digits).
fn contains_escaped_nul(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|window| {
        window[0] == b'\\' && window[1] == b'u' && window[2..].iter().all(|b| *b == b'0')
    })
}

/// The JSON path (`$.a.b[2]`) of the first string, or object key, holding a NUL.
fn nul_in(value: &Value, at: &str) -> Option<String> {
    match value {
        Value::String(text) => text.contains('\0').then(|| at.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_in(item, &format!("{at}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            if key.contains('\0') {
                return Some(format!("{at}.{}", key.replace('\0', "\\0")));
            }
            nul_in(item, &format!("{at}.{key}"))
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_is_found_with_its_path() {
        let body = br#"{"name":"ok","events":[{"id":"a"},{"id":"b\u0000c"}]}"#;
        assert!(contains_escaped_nul(body));
        let value: Value = serde_json::from_slice(body).expect("json");
        assert_eq!(nul_in(&value, "$").as_deref(), Some("$.events[1].id"));
        let clean = br#"{"name":"\\u0000 is only text here"}"#;
        let value: Value = serde_json::from_slice(clean).expect("json");
        assert_eq!(nul_in(&value, "$"), None);
    }
}
