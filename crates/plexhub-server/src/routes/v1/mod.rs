//! The native API under `/api/v1`.

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub use proxy::calling_plugin;

mod data;
mod events;
mod installations;
mod plans;
mod plugins;
pub(crate) mod proxy;
mod remotes;
mod services;
mod shell;
mod tenants;
mod whoami;

/// Every `/api/v1` route.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(tenants::router())
        .merge(installations::router())
        .merge(plans::router())
        .merge(proxy::router())
        .merge(plugins::router())
        .merge(services::router())
        .merge(data::router())
        .merge(events::router())
        .merge(whoami::router())
        .merge(remotes::router())
        .merge(shell::router())
}
