//! Dependencies between plugins: the graph that catalog manifests and registered edges form,
//! the seed's checks over it (listing, dependents, resolution, can-uninstall) and install,
//! uninstall and upgrade plans, with versions chosen by the PubGrub solver.
//!
//! Everything here works on a [`Catalog`] snapshot and the tenant's installed versions, so it
//! is pure and the same on every backend.

mod graph;
mod solver;
#[cfg(test)]
mod tests;

pub use graph::{
    Blocker, Catalog, Edge, EdgeSource, Resolution, UninstallCheck, UpgradeBreak, UpgradeCheck,
    check_uninstall, check_upgrade, find_cycles, resolve, uninstall_order,
};
pub use solver::{Explanation, Fact, PlanError, PlanStep, StepAction, plan_install};

use std::collections::BTreeMap;

use crate::ids::PluginId;
use crate::version::Version;

/// The plugins a tenant has installed, with their versions.
pub type InstalledVersions = BTreeMap<PluginId, Version>;

/// The root of a resolution is not in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("plugin {0} is not in the catalog")]
pub struct UnknownPlugin(pub PluginId);

/// Why a batch of registered dependencies was refused (nothing of it is stored).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The same pair appears twice in the batch.
    #[error("{0} -> {1} appears more than once in the batch")]
    Duplicate(PluginId, PluginId),
    /// A plugin names itself.
    #[error("{0} cannot depend on itself")]
    SelfDependency(PluginId),
    /// A plugin of the pair is not in the catalog.
    #[error("plugin {0} is not in the catalog")]
    Unknown(PluginId),
}

/// Checks a batch of registered edges: no duplicate pair, no self-dependency, both ends in the
/// catalog. Returns the first problem of each edge, in batch order.
pub fn check_registration(edges: &[Edge], catalog: &Catalog) -> Vec<(usize, RegistrationError)> {
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (index, edge) in edges.iter().enumerate() {
        let problem = if edge.from == edge.to {
            Some(RegistrationError::SelfDependency(edge.from.clone()))
        } else if !catalog.contains(&edge.from) {
            Some(RegistrationError::Unknown(edge.from.clone()))
        } else if !catalog.contains(&edge.to) {
            Some(RegistrationError::Unknown(edge.to.clone()))
        } else if !seen.insert((&edge.from, &edge.to)) {
            Some(RegistrationError::Duplicate(
                edge.from.clone(),
                edge.to.clone(),
            ))
        } else {
            None
        };
        problems.extend(problem.map(|problem| (index, problem)));
    }
    problems
}
