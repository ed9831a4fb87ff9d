//! Extractors whose rejections are [`ApiError`]s, so malformed input gets the hub's envelope
//! and a stable code instead of axum's plain-text defaults.

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::ApiError;

/// A JSON body; syntax errors, schema mismatches, wrong content type and oversize bodies map to
/// `MALFORMED_JSON`, `INVALID_BODY`, `UNSUPPORTED_MEDIA_TYPE` and `PAYLOAD_TOO_LARGE`.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// Path parameters; a mismatch is `INVALID_PARAMETER`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Query parameters; a mismatch is `INVALID_PARAMETER`.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);
