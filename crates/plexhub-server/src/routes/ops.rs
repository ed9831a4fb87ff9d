//! Unauthenticated operational endpoints: liveness, readiness, metrics, and the public keys
//! plugins verify the hub's request signatures with.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// How long readiness waits for each dependency.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// Routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(signing_keys))
}

/// Liveness answer.
#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    status: &'static str,
}

/// Readiness answer: overall status and each dependency's.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, `not ready`, or `draining` (the hub is stopping; dependencies not checked).
    status: &'static str,
    /// `ok` or the failure.
    database: String,
    /// `ok`, `not configured`, or the failure.
    redis: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The database (and Redis, when configured) answer, and the hub is not stopping.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    if state.draining.is_cancelled() {
        let skipped = || "not checked: draining".to_owned();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "draining",
                database: skipped(),
                redis: skipped(),
            }),
        );
    }
    let database = match tokio::time::timeout(READINESS_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => format!("unavailable: {error}"),
        Err(_) => "unavailable: no answer in time".to_owned(),
    };
    let redis = match &state.redis {
        None => "not configured".to_owned(),
        Some(redis) => match redis.ping(READINESS_TIMEOUT).await {
            Ok(()) => "ok".to_owned(),
            Err(error) => error.to_string(),
        },
    };
    let ready = database == "ok" && (redis == "ok" || redis == "not configured");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Readiness {
            status: if ready { "ready" } else { "not ready" },
            database,
            redis,
        }),
    )
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// The hub's public signing keys.
#[derive(Serialize, ToSchema)]
pub struct SigningKeys {
    /// `{keyId, algorithm: "Ed25519", publicKey}`; the first signs, the others still verify.
    #[schema(value_type = Vec<Object>)]
    keys: Vec<plexhub_core::signing::PublicKey>,
}

/// The public keys that verify `X-Plexhub-Signature` on requests the hub forwards.
#[utoipa::path(get, path = "/.well-known/plexhub-keys", tag = "operations",
    responses((status = 200, body = SigningKeys)))]
async fn signing_keys(State(state): State<AppState>) -> Json<SigningKeys> {
    Json(SigningKeys {
        keys: state.gateway.public_keys(),
    })
}
