//! The hub's front door: the gateway's proxy route, its hot path, is served here directly; every
//! other request goes through the router and its middleware stack.
//!
//! Why by hand: each generic layer around the router (request id, trace span, panic guard, body
//! limit, error flattening, authentication, metrics) boxes and clones per request, and together
//! they cost the proxy more than its own work (`bench/gateway.sh`, the profiles in
//! `docs/OPERATIONS.md`). This path does the same things once, inline: the request id (kept or
//! made, echoed, visible to error bodies), authentication, the tenant scope, the forward, metrics
//! through handles made once, and a panic turned into a 500. The route stays in the router too
//! (its OpenAPI entry, and the `Router::oneshot` handler tests), with the same handler.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use tower::Service;

use crate::auth::{self, TenantScope};
use crate::error::ApiError;
use crate::metrics::HOT_METHODS;
use crate::request_id::{self, REQUEST_ID_HEADER};
use crate::routes::v1::proxy;
use crate::state::AppState;

/// The service `axum::serve` runs: the proxy route inline, the rest through `router`.
#[derive(Clone)]
pub struct Front {
    state: AppState,
    router: Router,
}

impl Front {
    /// The front door of `router`, whose state is `state`.
    pub fn new(state: AppState, router: Router) -> Self {
        Self { state, router }
    }
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let hot_method = HOT_METHODS
            .iter()
            .position(|method| method == request.method());
        match hot_method {
            Some(method) if request.uri().path().starts_with(proxy::PREFIX) => {
                Box::pin(serve_proxy(self.state.clone(), method, request).map(Ok))
            }
            _ => {
                let mut router = self.router.clone();
                Box::pin(async move { router.call(request).await })
            }
        }
    }
}

/// The proxy route with what the router's layers would do around it.
async fn serve_proxy(state: AppState, method: usize, mut request: Request) -> Response {
    let started = Instant::now();
    let id = request_id::of(&request);
    let id_header = HeaderValue::from_str(&id).expect("sane ids and UUIDs are valid headers");
    request
        .headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), id_header.clone());
    let answer = request_id::scope(
        id,
        AssertUnwindSafe(authenticated_proxy(&state, request)).catch_unwind(),
    )
    .await;
    let mut response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(panic) => crate::routes::panic_response(panic),
    };
    let status = response.status();
    if status.is_server_error() {
        // What the router's trace layer logs for its routes.
        tracing::error!(
            status = status.as_u16(),
            request_id = ?id_header,
            latency_ms = started.elapsed().as_millis(),
            "response failed"
        );
    }
    response
        .headers_mut()
        .insert(REQUEST_ID_HEADER.clone(), id_header);
    state.proxy_metrics.request(
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn authenticated_proxy(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let caller = auth::identify(state, request.headers()).await?;
    let scope = TenantScope::of(state, caller, request.headers()).await?;
    proxy::forward(scope, state.clone(), request).await
}
