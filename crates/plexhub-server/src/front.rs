//! The hub's front door: the gateway's two routes, its hot paths (the proxy and the seed's
//! `POST /api/plugin-gateway/call`), are served here directly; every other request goes through
//! the router and its middleware stack.
//!
//! Why by hand: each generic layer around the router (request id, trace span, panic guard, body
//! limit, error flattening, authentication, metrics) boxes and clones per request, and together
//! they cost the proxy more than its own work (`bench/gateway.sh`, the profiles in
//! `docs/OPERATIONS.md`). This path does the same things once, inline: the request id (kept or
//! made, echoed, visible to error bodies), authentication, the tenant scope, the body limit and
//! the seed's flat error shape for `/call`, the handler, metrics through handles made once, and a
//! panic turned into a 500. The routes stay in the router too (their OpenAPI entries, and the
//! `Router::oneshot` handler tests), with the same handlers.

use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use futures::FutureExt as _;
use http_body_util::Limited;
use tower::Service;

use crate::auth::{self, TenantScope};
use crate::error::{ApiError, ErrorReport, render_flat};
use crate::extract::{ApiJson, json_content_type};
use crate::metrics::{ACCESS_LOG, HOT_METHODS};
use crate::request_id::{self, REQUEST_ID_HEADER};
use crate::routes::compat::call;
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
        let path = request.uri().path();
        let hot = match hot_method {
            Some(method) if path.starts_with(proxy::PREFIX) => Some((Hot::Proxy, method)),
            Some(method) if request.method() == Method::POST && path == CALL_PATH => {
                Some((Hot::Call, method))
            }
            _ => None,
        };
        match hot {
            // Split here, once: the parts live in the outermost future and every layer below
            // borrows them (each by-value `Request` an async layer holds is 240 bytes of the
            // request's future, which is allocated and copied whole per request); and each route
            // gets a future of its own size (one type for both would be the larger one's size).
            Some((route, method)) => {
                let (parts, body) = request.into_parts();
                let state = self.state.clone();
                match route {
                    Hot::Proxy => Box::pin(
                        serve_hot(state, route, method, parts, body, proxy::forward).map(Ok),
                    ),
                    Hot::Call => {
                        Box::pin(serve_hot(state, route, method, parts, body, call_route).map(Ok))
                    }
                }
            }
            None => {
                let mut router = self.router.clone();
                Box::pin(async move { router.call(request).await })
            }
        }
    }
}

/// The seed's call route.
const CALL_PATH: &str = "/api/plugin-gateway/call";

/// The routes served here.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hot {
    /// `/api/v1/proxy/{serviceName}/{*path}`.
    Proxy,
    /// `POST /api/plugin-gateway/call`, whose errors take the seed's flat shape.
    Call,
}

/// A hot route, answered by `handle`, with what the router's layers would do around it.
///
/// Not an `async fn`: its arguments would be stored twice in its future (as arguments, and as
/// the locals they are moved into), and every byte of the future is copied per request. The
/// async block below keeps what it captures in one place.
fn serve_hot<H>(
    state: AppState,
    route: Hot,
    method: usize,
    mut parts: Parts,
    body: Body,
    handle: H,
) -> impl Future<Output = Response>
where
    H: AsyncFnOnce(TenantScope, &AppState, &Parts, Body) -> Result<Response, ApiError>,
{
    let started = Instant::now();
    let mut who = tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG)
        .then(|| (String::new(), String::new()));
    let id = request_id::assign_id(&mut parts.headers);
    async move {
        let handled = request_id::scope(id.clone(), async {
            let answer = AssertUnwindSafe(authenticated(&state, &parts, body, &mut who, handle))
                .catch_unwind()
                .await;
            let response = match answer {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => error.into_response(),
                Err(panic) => crate::routes::panic_response(panic),
            };
            match response.extensions().get::<ErrorReport>() {
                Some(report) if route == Hot::Call => render_flat(report),
                _ => response,
            }
        });
        let mut response = handled.await;
        request_id::echo(&mut response, id);
        let status = response.status();
        if status.is_server_error() {
            // What the router's trace layer logs for its routes.
            tracing::error!(
                status = status.as_u16(),
                request_id = ?response.headers().get(&REQUEST_ID_HEADER),
                latency_ms = started.elapsed().as_millis(),
                "response failed"
            );
        }
        if let Some((tenant, caller)) = who {
            tracing::debug!(
                target: ACCESS_LOG,
                method = HOT_METHODS[method].as_str(),
                route = match route {
                    Hot::Proxy => "/api/v1/proxy/{serviceName}/{*path}",
                    Hot::Call => CALL_PATH,
                },
                status = status.as_u16(),
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                request_id = ?response.headers().get(&REQUEST_ID_HEADER),
                tenant,
                caller,
                "request"
            );
        }
        let metrics = match route {
            Hot::Proxy => &state.proxy_metrics,
            Hot::Call => &state.call_metrics,
        };
        metrics.request(
            method,
            response.status().as_u16(),
            started.elapsed().as_secs_f64(),
        );
        response
    }
}

/// Authenticates the caller and scopes it to its tenant, then runs `handle`.
async fn authenticated<H>(
    state: &AppState,
    parts: &Parts,
    body: Body,
    who: &mut Option<(String, String)>,
    handle: H,
) -> Result<Response, ApiError>
where
    H: AsyncFnOnce(TenantScope, &AppState, &Parts, Body) -> Result<Response, ApiError>,
{
    let caller = auth::identify(state, &parts.headers).await?;
    if let Some(who) = who.as_mut() {
        *who = crate::metrics::who_is(Some(&caller), &parts.headers);
    }
    let scope = TenantScope::of(state, caller, &parts.headers).await?;
    handle(scope, state, parts, body).await
}

/// The seed's call route for the caller of `scope`: its JSON body, within the body limit the
/// router's layer would apply.
async fn call_route(
    scope: TenantScope,
    state: &AppState,
    parts: &Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let body = Body::new(Limited::new(body, state.max_body_bytes));
    let is_json = json_content_type(&parts.headers);
    let ApiJson(call) = ApiJson::from_body(is_json, Request::new(body), state).await?;
    let headers = parts.headers.clone();
    call::call_plugin(scope, State(state.clone()), headers, ApiJson(call)).await
}
