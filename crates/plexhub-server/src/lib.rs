//! plexhub-server: the HTTP layer of the hub (axum).
//!
//! Owns authentication, routes (which only translate HTTP to domain and store calls and back),
//! the error mapping, request ids, caches, background jobs, metrics and the OpenAPI document.
//! It must not contain domain rules (those live in plexhub-core) or SQL (plexhub-store).

mod app;
mod audit;
mod auth;
#[cfg(feature = "bench")]
pub mod bench;
mod cache;
mod caller_body;
mod cold;
mod connections;
mod data;
mod dependencies;
pub mod error;
mod events;
mod extract;
mod front;
mod gateway;
mod keepalive;
mod metrics;
mod quota;
mod registry;
mod request_id;
mod resilience;
mod routes;
pub mod settings;
mod state;
mod sweep;
mod ui;
mod upstream_tls;
mod watch;
mod writer;

pub use app::{Application, StartError, Stop};
pub use connections::{ConnectionLimits, listen};
pub use routes::{DOCUMENTED_ELSEWHERE, served_routes};
pub use settings::{EventSettings, GatewaySettings, Secret, Settings};
pub use state::Clock;
pub use upstream_tls::{TlsSetupError, UpstreamTls};
