//! One integration-test binary: every test starts a real hub on a random port and speaks HTTP
//! to it; storage-touching tests run on SQLite and on PostgreSQL.

mod helpers;

mod auth;
mod catalog;
mod cli;
mod data;
mod demo;
mod dependencies;
mod docs;
mod events;
mod gateway;
mod grants;
mod http;
mod installations;
mod lifecycle;
mod operations;
mod registry;
mod remotes;
mod scaffold;
mod shutdown;
mod signing;
mod tenants;
mod tls;
mod ui;
mod ui_browser;
mod walkthrough;
