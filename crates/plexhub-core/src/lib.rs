//! plexhub-core: the domain of the plugin communication hub, with no I/O.
//!
//! Owns names and ids, the plugin manifest schema and its validation, version ranges, tenant and
//! installation rules, credentials, and the domain errors. Invariant: this crate never imports
//! axum, sqlx, redis, reqwest or tokio, and never touches the network or the disk.

pub mod access;
pub mod catalog;
pub mod credential;
pub mod data;
pub mod dependency;
pub mod events;
pub mod ids;
pub mod installation;
pub mod manifest;
pub mod registry;
pub mod signing;
pub mod tenant;
pub mod text;
pub mod version;
