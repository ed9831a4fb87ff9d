//! plexhub-sdk: what a plugin written in Rust needs to talk to the hub.
//!
//! - [`Client`]: calls to other plugins through the gateway ([`Client::call`],
//!   [`Client::get_json`]), shared data ([`Client::data_get`], [`Client::data_set`],
//!   [`Client::data_update`] which retries on a revision conflict), with the hub's error codes
//!   as [`HubError`] with an [`ErrorCode`].
//! - [`Client::keep_registered`]: the plugin's replicas registered at start-up and kept alive by
//!   background heartbeats that register again whatever the hub forgot ([`Heartbeats`]).
//! - [`Client::discovery`]: discovery answers cached until the registry's watch stream says the
//!   service changed ([`Discovery`]).
//! - [`serve`]: runs the plugin's axum router for all its [`Installations`] (one credential per
//!   tenant), registered and beating until [`RunningPlugin::stop`].
//! - Events: [`Client::publish`] (the plugin's own `plugin.<name>.…` types), and
//!   [`EventRouter`] for the plugin's server, which receives its subscriptions' deliveries and
//!   dispatches them by pattern.
//! - [`HubRequest`]: an axum extractor for the plugin's own server that accepts only requests
//!   the hub signed, and tells the handler the tenant, the calling plugin and the request id.
//!
//! ```no_run
//! # async fn example() -> Result<(), plexhub_sdk::Error> {
//! // PLEXHUB_URL and PLEXHUB_TOKEN (the plugin's credential) come from the environment.
//! let hub = plexhub_sdk::Client::from_env()?;
//! let contacts: serde_json::Value = hub.get_json("crm.contacts", "/contacts?limit=5").await?;
//! hub.data_set("analytics.cache", "contacts", &contacts, Some(300)).await?;
//! # Ok(()) }
//! ```

mod client;
mod codes;
mod discovery;
mod events;
mod plugin;
mod registration;
mod verify;

pub use client::{Client, ClientBuilder, DataEntry, Error, HubError};
pub use codes::ErrorCode;
pub use discovery::Discovery;
pub use events::{Event, EventRouter, OutgoingEvent, Published};
pub use plugin::{Identity, Installations, RunningPlugin, ServeOptions, serve};
pub use registration::{Heartbeats, ServiceSpec, manifest_services};
pub use verify::{HubRequest, Refused, Verifier};
