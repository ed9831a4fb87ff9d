//! Prometheus metrics: requests by route template, method and status, request latency,
//! gateway calls by route and status class, and the event bus (events by outcome, publish to
//! delivery latency, lag per subscription).
//! Labels are low-cardinality by construction: route templates, never raw paths or tenants.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    /// `proxy` or `call`.
    route: &'static str,
    /// `2xx` … `5xx`.
    status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    /// `published`, `delivered`, `failed` (an attempt) or `dead_lettered`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    /// The subscription's id (one per installation and declared pattern: bounded).
    subscription: String,
}

/// The class of an HTTP status, as gateway metrics label it.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The access log's target: one line per request at DEBUG (`--log-level …,plexhub::access=debug`).
pub const ACCESS_LOG: &str = "plexhub::access";

/// The tenant (slug) and the caller (`admin` or the plugin) of an authenticated request.
fn who(request: &Request) -> (String, String) {
    who_is(
        request.extensions().get::<crate::auth::Caller>(),
        request.headers(),
    )
}

/// The tenant (slug) and the caller (`admin` or the plugin) of `caller`.
pub fn who_is(
    caller: Option<&crate::auth::Caller>,
    headers: &axum::http::HeaderMap,
) -> (String, String) {
    match caller {
        Some(crate::auth::Caller::Plugin(plugin)) => {
            (plugin.tenant.slug.to_string(), plugin.plugin_id.to_string())
        }
        Some(crate::auth::Caller::Shell(shell)) => {
            (shell.tenant.slug.to_string(), "shell".to_owned())
        }
        Some(crate::auth::Caller::Admin) => (
            crate::auth::tenant_header(headers)
                .unwrap_or_default()
                .to_owned(),
            "admin".to_owned(),
        ),
        None => (String::new(), String::new()),
    }
}

/// Methods a hot route serves, in the order of [`RouteMetrics`]' handles.
pub const HOT_METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];
/// Status codes 0-599 have a counter handle each.
const STATUSES: usize = 600;

/// One route's metric handles, created on first use and kept: see [`Metrics::route`].
pub struct RouteMetrics {
    metrics: Arc<Metrics>,
    route: &'static str,
    gateway_kind: &'static str,
    latency: [OnceLock<Histogram>; HOT_METHODS.len()],
    requests: Box<[OnceLock<Counter>]>,
    gateway: [OnceLock<Histogram>; 5],
}

impl RouteMetrics {
    /// Records one request of method `HOT_METHODS[method]`: the HTTP request series.
    pub fn request(&self, method: usize, status: u16, seconds: f64) {
        let Some(name) = HOT_METHODS.get(method) else {
            return;
        };
        let labels = || RouteLabels {
            method: name.as_str().to_owned(),
            route: self.route.to_owned(),
        };
        self.latency[method]
            .get_or_init(|| self.metrics.latency.get_or_create(&labels()).clone())
            .observe(seconds);
        let status = usize::from(status).min(STATUSES - 1);
        self.requests[method * STATUSES + status]
            .get_or_init(|| {
                let labels = labels();
                self.metrics
                    .requests
                    .get_or_create(&RequestLabels {
                        method: labels.method,
                        route: labels.route,
                        status: status.to_string(),
                    })
                    .clone()
            })
            .inc();
    }

    /// Records one gateway call (the gateway series, by status class).
    pub fn gateway_call(&self, status: u16, seconds: f64) {
        let class = status_class(status);
        let index = usize::from(class.as_bytes()[0] - b'1').min(4);
        self.gateway[index]
            .get_or_init(|| {
                self.metrics
                    .gateway
                    .get_or_create(&GatewayLabels {
                        route: self.gateway_kind,
                        status_class: class,
                    })
                    .clone()
            })
            .observe(seconds);
    }
}

/// The hub's metric registry.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram>,
    gateway: Family<GatewayLabels, Histogram>,
    events: Family<EventLabels, Counter>,
    delivery_latency: Histogram,
    lag: Family<SubscriptionLabels, Gauge>,
    audit_queued: Gauge,
    audit_write: Histogram,
}

impl Metrics {
    /// Creates and registers the HTTP metrics.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("plexhub");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ])
        });
        registry.register(
            "http_requests",
            "HTTP requests by method, route template and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by method and route template",
            latency.clone(),
        );
        let gateway = Family::<GatewayLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ])
        });
        registry.register(
            "gateway_call_duration_seconds",
            "Plugin-to-plugin calls through the gateway by route (proxy, call) and status class, until the answer's head",
            gateway.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        registry.register(
            "events",
            "Events by outcome: published, delivered, failed (one attempt), dead_lettered",
            events.clone(),
        );
        let delivery_latency = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0, 300.0,
        ]);
        registry.register(
            "event_delivery_latency_seconds",
            "From an event's publication to its acknowledgement by a subscriber",
            delivery_latency.clone(),
        );
        let lag = Family::<SubscriptionLabels, Gauge>::default();
        registry.register(
            "event_subscription_lag",
            "Deliveries waiting per subscription",
            lag.clone(),
        );
        let audit_queued = Gauge::default();
        registry.register(
            "audit_queued_calls",
            "Gateway calls waiting in the audit queue (requests wait while it is full)",
            audit_queued.clone(),
        );
        let audit_write = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
        ]);
        registry.register(
            "audit_write_duration_seconds",
            "Time to write one batch of the gateway's audit log",
            audit_write.clone(),
        );
        Arc::new(Self {
            registry,
            audit_queued,
            audit_write,
            requests,
            latency,
            gateway,
            events,
            delivery_latency,
            lag,
        })
    }

    /// Handles of one route's series, for a hot path: recording a request then touches no
    /// label map and allocates nothing. The series are the same as [`record`]'s.
    pub fn route(
        self: &Arc<Self>,
        route: &'static str,
        gateway_kind: &'static str,
    ) -> RouteMetrics {
        RouteMetrics {
            metrics: self.clone(),
            route,
            gateway_kind,
            latency: std::array::from_fn(|_| OnceLock::new()),
            requests: (0..HOT_METHODS.len() * STATUSES)
                .map(|_| OnceLock::new())
                .collect(),
            gateway: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// The audit queue's depth, and how long the batch just written took.
    pub fn audit_batch(&self, queued: usize, seconds: f64) {
        self.audit_queued
            .set(i64::try_from(queued).unwrap_or(i64::MAX));
        self.audit_write.observe(seconds);
    }

    /// Counts events with an outcome (`published`, `delivered`, `failed`, `dead_lettered`).
    pub fn events(&self, outcome: &'static str, count: u64) {
        self.events
            .get_or_create(&EventLabels { outcome })
            .inc_by(count);
    }

    /// Observes the time from an event's publication to its acknowledgement.
    pub fn event_delivered_after(&self, seconds: f64) {
        self.delivery_latency.observe(seconds);
    }

    /// Sets the lag of every subscription (those gone are dropped).
    pub fn subscription_lag(&self, lags: &[(String, i64)]) {
        self.lag.clear();
        for (subscription, pending) in lags {
            self.lag
                .get_or_create(&SubscriptionLabels {
                    subscription: subscription.clone(),
                })
                .set(*pending);
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Route-layer middleware: records every routed request.
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    // Who calls, for the access log (only when its level is on: no work per request otherwise).
    let access =
        tracing::enabled!(target: ACCESS_LOG, tracing::Level::DEBUG).then(|| who(&request));
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let response = next.run(request).await;
    if let Some((tenant, caller)) = access {
        tracing::debug!(
            target: ACCESS_LOG,
            %method,
            %route,
            status = response.status().as_u16(),
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            tenant,
            caller,
            "request"
        );
    }
    let status = response.status().as_str().to_owned();
    metrics
        .latency
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status,
        })
        .inc();
    response
}
