//! The dependency graph of the catalog and the seed's checks over it.

use std::collections::{HashMap, HashSet, VecDeque};

use serde::Serialize;

use super::{InstalledVersions, UnknownPlugin};
use crate::ids::{PluginId, ServiceName};
use crate::manifest::DependencySpec;
use crate::version::{Version, VersionRange};

/// Where an edge comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeSource {
    /// A catalog version's manifest (`api.dependencies`); applies to that version.
    Manifest,
    /// Registered through `POST /dependencies`; applies to every version of the plugin.
    Registered,
}

/// One dependency of one plugin on another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The depending plugin.
    pub from: PluginId,
    /// The plugin depended on.
    pub to: PluginId,
    /// Accepted versions of `to`.
    pub range: VersionRange,
    /// Whether `from` cannot work without `to`.
    pub required: bool,
    /// The service of `to` that is needed, if the manifest names one.
    pub service_name: Option<ServiceName>,
    /// Why it is needed, as the manifest says.
    pub reason: Option<String>,
    /// Manifest or registered.
    pub source: EdgeSource,
}

impl Edge {
    /// The edge a manifest's dependency entry declares.
    pub fn from_manifest(from: &PluginId, spec: &DependencySpec) -> Self {
        Self {
            from: from.clone(),
            to: spec.plugin_id.clone(),
            range: spec.range.clone(),
            required: spec.required,
            service_name: spec.service_name.clone(),
            reason: spec.reason.clone(),
            source: EdgeSource::Manifest,
        }
    }
}

#[derive(Debug, Default)]
struct PluginEntry {
    /// Ascending by version, each with its manifest's edges.
    versions: Vec<(Version, Vec<Edge>)>,
    /// Versions that no new install may pick, with why in words ("yanked"…).
    unavailable: HashMap<Version, &'static str>,
    /// Registered edges, for every version.
    registered: Vec<Edge>,
}

/// A snapshot of the catalog as dependency resolution sees it: every catalog version with its
/// manifest's dependencies (installed versions keep their edges whatever their status), which
/// of them new installs may not pick, plus the registered edges.
#[derive(Debug, Default)]
pub struct Catalog {
    plugins: HashMap<PluginId, PluginEntry>,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a published version and the dependencies its manifest declares.
    pub fn add_version(
        &mut self,
        plugin_id: &PluginId,
        version: Version,
        dependencies: &[DependencySpec],
    ) {
        let edges = dependencies
            .iter()
            .map(|spec| Edge::from_manifest(plugin_id, spec))
            .collect();
        let entry = self.plugins.entry(plugin_id.clone()).or_default();
        let at = entry.versions.partition_point(|(v, _)| *v < version);
        if entry.versions.get(at).is_some_and(|(v, _)| *v == version) {
            entry.versions[at].1 = edges;
        } else {
            entry.versions.insert(at, (version, edges));
        }
    }

    /// Marks a version added with [`Catalog::add_version`] as one that no new install or plan
    /// may pick, with why in words (`"yanked"`, `"pending review, not published yet"`…);
    /// installations of it keep their edges.
    pub fn mark_unavailable(&mut self, plugin_id: &PluginId, version: Version, why: &'static str) {
        let entry = self.plugins.entry(plugin_id.clone()).or_default();
        entry.unavailable.insert(version, why);
    }

    /// Why new installs may not pick this version, or `None` when they may.
    pub fn unavailable(&self, plugin_id: &PluginId, version: &Version) -> Option<&'static str> {
        self.plugins
            .get(plugin_id)
            .and_then(|entry| entry.unavailable.get(version).copied())
    }

    /// The versions of a plugin new installs may pick, ascending.
    pub fn installable(&self, plugin_id: &PluginId) -> impl Iterator<Item = &Version> {
        self.versions(plugin_id)
            .filter(move |version| self.unavailable(plugin_id, version).is_none())
    }

    /// The installable version nearest to `wanted` other than `except` (the installed one):
    /// the highest below it, else the lowest above it. What an upgrade plan proposes when
    /// `wanted` is yanked or unpublished.
    pub fn nearest_installable(
        &self,
        plugin_id: &PluginId,
        wanted: &Version,
        except: Option<&Version>,
    ) -> Option<&Version> {
        let candidates = || {
            self.installable(plugin_id)
                .filter(move |version| Some(*version) != except && *version != wanted)
        };
        candidates()
            .filter(|version| *version < wanted)
            .max()
            .or_else(|| candidates().filter(|version| *version > wanted).min())
    }

    /// Adds registered edges (each applies to every version of its `from` plugin).
    pub fn add_registered(&mut self, edges: impl IntoIterator<Item = Edge>) {
        for edge in edges {
            let entry = self.plugins.entry(edge.from.clone()).or_default();
            entry.registered.push(edge);
        }
    }

    /// Whether the catalog holds at least one version of the plugin (installable or not).
    pub fn contains(&self, plugin_id: &PluginId) -> bool {
        self.plugins
            .get(plugin_id)
            .is_some_and(|entry| !entry.versions.is_empty())
    }

    /// Every catalog version of a plugin (installable or not), ascending.
    pub fn versions(&self, plugin_id: &PluginId) -> impl Iterator<Item = &Version> {
        self.plugins
            .get(plugin_id)
            .into_iter()
            .flat_map(|entry| entry.versions.iter().map(|(version, _)| version))
    }

    /// The version listings describe: the highest installable release, else the highest
    /// installable pre-release; when none is installable, the same among every version.
    pub fn latest(&self, plugin_id: &PluginId) -> Option<&Version> {
        let entry = self.plugins.get(plugin_id)?;
        crate::catalog::latest(
            &entry.versions,
            |(version, _)| version,
            |(version, _)| !entry.unavailable.contains_key(version),
        )
        .map(|(version, _)| version)
    }

    /// The edges of one version: its manifest's, then the registered ones.
    pub fn edges<'a>(
        &'a self,
        plugin_id: &PluginId,
        version: &Version,
    ) -> impl Iterator<Item = &'a Edge> + 'a {
        let entry = self.plugins.get(plugin_id);
        let manifest = entry
            .and_then(|entry| {
                let at = entry.versions.binary_search_by(|(v, _)| v.cmp(version));
                at.ok().map(|at| entry.versions[at].1.as_slice())
            })
            .unwrap_or_default();
        let registered = entry.map(|entry| entry.registered.as_slice());
        manifest.iter().chain(registered.unwrap_or_default())
    }

    /// The edges of the latest version (see [`Catalog::latest`]).
    pub fn latest_edges<'a>(&'a self, plugin_id: &PluginId) -> Vec<&'a Edge> {
        match self.latest(plugin_id) {
            Some(version) => self.edges(plugin_id, version).collect(),
            None => self
                .plugins
                .get(plugin_id)
                .map(|entry| entry.registered.iter().collect())
                .unwrap_or_default(),
        }
    }

    /// The latest version's dependencies; with `recursive`, also theirs, breadth first, each
    /// depended-on plugin listed once (the first edge that reaches it), ending on cycles.
    pub fn dependencies<'a>(&'a self, plugin_id: &PluginId, recursive: bool) -> Vec<&'a Edge> {
        if !recursive {
            return self.latest_edges(plugin_id);
        }
        let mut listed = Vec::new();
        let mut reached: HashSet<&PluginId> = HashSet::new();
        let mut expanded: HashSet<PluginId> = HashSet::from([plugin_id.clone()]);
        let mut queue = VecDeque::from([plugin_id.clone()]);
        while let Some(current) = queue.pop_front() {
            for edge in self.latest_edges(&current) {
                if reached.insert(&edge.to) {
                    listed.push(edge);
                }
                if expanded.insert(edge.to.clone()) {
                    queue.push_back(edge.to.clone());
                }
            }
        }
        listed
    }

    /// Plugins whose latest version or registered edges depend on `plugin_id`, sorted.
    pub fn dependents(&self, plugin_id: &PluginId) -> Vec<PluginId> {
        let mut dependents: Vec<PluginId> = self
            .plugins
            .keys()
            .filter(|from| {
                self.latest_edges(from)
                    .iter()
                    .any(|edge| edge.to == *plugin_id)
            })
            .cloned()
            .collect();
        dependents.sort();
        dependents
    }

    /// Every plugin id with a published version or registered edges.
    pub fn plugin_ids(&self) -> impl Iterator<Item = &PluginId> {
        self.plugins.keys()
    }
}

/// Cycles in a directed graph, found by depth-first search from each node in `order`; each
/// back edge yields the cycle it closes, as `[a, b, …, a]`. Iterative, so deep graphs cannot
/// overflow the stack.
fn cycles_in<'a>(
    order: &[&'a PluginId],
    successors: &HashMap<&'a PluginId, Vec<&'a PluginId>>,
) -> Vec<Vec<PluginId>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        OnPath,
        Done,
    }
    let mut marks: HashMap<&PluginId, Mark> = HashMap::new();
    let mut cycles = Vec::new();
    for &start in order {
        if marks.contains_key(start) {
            continue;
        }
        // The current path, each node with the index of its next successor to visit.
        let mut path: Vec<(&PluginId, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::OnPath);
        while let Some((node, next)) = path.last_mut() {
            let node: &PluginId = node;
            let children = successors.get(node).map(Vec::as_slice).unwrap_or_default();
            let Some(&child) = children.get(*next) else {
                marks.insert(node, Mark::Done);
                path.pop();
                continue;
            };
            *next += 1;
            match marks.get(child) {
                None => {
                    marks.insert(child, Mark::OnPath);
                    path.push((child, 0));
                }
                Some(Mark::OnPath) => {
                    let from = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                    let mut cycle: Vec<PluginId> =
                        path[from..].iter().map(|(n, _)| (*n).clone()).collect();
                    cycle.push(child.clone());
                    cycles.push(cycle);
                }
                Some(Mark::Done) => {}
            }
        }
    }
    cycles
}

/// Every cycle over the latest versions' edges (required and optional) of the whole catalog.
pub fn find_cycles(catalog: &Catalog) -> Vec<Vec<PluginId>> {
    let mut order: Vec<&PluginId> = catalog.plugin_ids().collect();
    order.sort();
    let successors = order
        .iter()
        .map(|&id| {
            let next = catalog.latest_edges(id).into_iter().map(|edge| &edge.to);
            (id, next.collect())
        })
        .collect();
    cycles_in(&order, &successors)
}

/// The seed's resolution of one plugin for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// No errors.
    pub valid: bool,
    /// Cycles, missing required plugins, version mismatches (the original's messages).
    pub errors: Vec<String>,
    /// Optional dependencies that are missing, unknown or out of range.
    pub warnings: Vec<String>,
    /// Every plugin of the graph after its dependencies, the root last (empty when invalid).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub install_order: Vec<PluginId>,
}

fn joined(path: &[PluginId]) -> String {
    path.iter()
        .map(PluginId::as_str)
        .collect::<Vec<_>>()
        .join(" -> ")
}

fn push_once(list: &mut Vec<String>, message: String) {
    if !list.contains(&message) {
        list.push(message);
    }
}

/// Resolves `root` against the tenant's installations, as the seed's `/resolve` does, with its
/// messages: each node is taken at its installed version, else at the catalog's latest;
/// required edges are followed, optional ones only to installed plugins. Cycles are reported
/// first (and stop the check); then every required dependency must be installed within its
/// range. Optional dependencies never fail a resolution: they come back as warnings.
pub fn resolve(
    catalog: &Catalog,
    root: &PluginId,
    installed: &InstalledVersions,
) -> Result<Resolution, UnknownPlugin> {
    if !catalog.contains(root) && !installed.contains_key(root) {
        return Err(UnknownPlugin(root.clone()));
    }
    let version_of = |id: &PluginId| installed.get(id).or_else(|| catalog.latest(id)).cloned();
    let mut order: Vec<&PluginId> = vec![root];
    let mut successors: HashMap<&PluginId, Vec<&PluginId>> = HashMap::new();
    let mut node_edges: Vec<Vec<&Edge>> = Vec::new();
    let mut warnings = Vec::new();
    let mut next = 0;
    while next < order.len() {
        let node = order[next];
        next += 1;
        let edges: Vec<&Edge> = match version_of(node) {
            Some(version) => catalog.edges(node, &version).collect(),
            None => Vec::new(),
        };
        let mut followed = Vec::new();
        for edge in &edges {
            let known = catalog.contains(&edge.to) || installed.contains_key(&edge.to);
            if !edge.required && !installed.contains_key(&edge.to) {
                let why = if known {
                    "is not installed"
                } else {
                    "is not in the catalog"
                };
                push_once(
                    &mut warnings,
                    format!(
                        "Optional plugin {} {why} (optional dependency of {})",
                        edge.to, edge.from
                    ),
                );
                continue;
            }
            if known && !followed.contains(&&edge.to) {
                followed.push(&edge.to);
                if !order.contains(&&edge.to) {
                    order.push(&edge.to);
                }
            }
        }
        successors.insert(node, followed);
        node_edges.push(edges);
    }

    let mut errors = Vec::new();
    for cycle in cycles_in(&order, &successors) {
        push_once(
            &mut errors,
            format!("Circular dependency detected: {}", joined(&cycle)),
        );
    }
    if !errors.is_empty() {
        return Ok(Resolution {
            valid: false,
            errors,
            warnings,
            install_order: Vec::new(),
        });
    }
    for edge in node_edges.iter().flatten() {
        match (installed.get(&edge.to), edge.required) {
            (None, true) => push_once(&mut errors, format!("Missing required plugin: {}", edge.to)),
            (Some(version), required) if !edge.range.satisfies(version) => {
                let message = format!(
                    "Version mismatch for {}: requires {}, installed {version}",
                    edge.to, edge.range
                );
                if required {
                    push_once(&mut errors, message);
                } else {
                    push_once(&mut warnings, format!("Optional plugin: {message}"));
                }
            }
            _ => {}
        }
    }
    let install_order = if errors.is_empty() {
        dependencies_first(&order, &successors)
    } else {
        Vec::new()
    };
    Ok(Resolution {
        valid: errors.is_empty(),
        errors,
        warnings,
        install_order,
    })
}

/// Post-order depth-first search from each node of `order` in turn: each node comes after its
/// successors (on an acyclic graph), so a first node that reaches all others comes last.
/// Iterative.
fn dependencies_first<'a>(
    order: &[&'a PluginId],
    successors: &HashMap<&'a PluginId, Vec<&'a PluginId>>,
) -> Vec<PluginId> {
    let mut emitted: HashSet<&PluginId> = HashSet::new();
    let mut out = Vec::new();
    for &start in order {
        if emitted.contains(start) {
            continue;
        }
        let mut stack: Vec<(&PluginId, usize)> = vec![(start, 0)];
        let mut on_stack: HashSet<&PluginId> = HashSet::from([start]);
        while let Some((node, next)) = stack.last_mut() {
            let node: &PluginId = node;
            let children = successors.get(node).map(Vec::as_slice).unwrap_or_default();
            match children.get(*next) {
                Some(&child) => {
                    *next += 1;
                    if !emitted.contains(child) && on_stack.insert(child) {
                        stack.push((child, 0));
                    }
                }
                None => {
                    if emitted.insert(node) {
                        out.push(node.clone());
                    }
                    stack.pop();
                }
            }
        }
    }
    out
}

/// An installed plugin that depends on the one to uninstall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocker {
    /// The dependent plugin.
    pub plugin_id: PluginId,
    /// Whether it requires the plugin (and so blocks the uninstall).
    pub required: bool,
    /// Why it depends on it.
    pub reason: String,
}

/// Whether a plugin can be uninstalled from a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UninstallCheck {
    /// No installed plugin requires it.
    pub can_uninstall: bool,
    /// The installed plugins that require it, sorted.
    pub blocked_by: Vec<PluginId>,
    /// Every installed dependent, required or optional.
    pub details: Vec<Blocker>,
    /// Optional dependents, which keep working without it.
    pub warnings: Vec<String>,
}

/// The installed dependents of `target` (by their installed versions' edges): the ones that
/// require it block its removal; optional ones are warnings.
pub fn check_uninstall(
    catalog: &Catalog,
    target: &PluginId,
    installed: &InstalledVersions,
) -> UninstallCheck {
    let mut details: Vec<Blocker> = Vec::new();
    for (plugin_id, version) in installed {
        if plugin_id == target {
            continue;
        }
        let edges: Vec<&Edge> = catalog
            .edges(plugin_id, version)
            .filter(|edge| edge.to == *target)
            .collect();
        if edges.is_empty() {
            continue;
        }
        let required = edges.iter().any(|edge| edge.required);
        let reason = edges
            .iter()
            .filter(|edge| edge.required == required)
            .find_map(|edge| edge.reason.clone())
            .unwrap_or_else(|| {
                if required {
                    "Required dependency".to_owned()
                } else {
                    "Optional dependency".to_owned()
                }
            });
        details.push(Blocker {
            plugin_id: plugin_id.clone(),
            required,
            reason,
        });
    }
    let blocked_by: Vec<PluginId> = details
        .iter()
        .filter(|detail| detail.required)
        .map(|detail| detail.plugin_id.clone())
        .collect();
    let warnings = details
        .iter()
        .filter(|detail| !detail.required)
        .map(|detail| {
            format!(
                "{} optionally depends on {target}; it keeps working without it",
                detail.plugin_id
            )
        })
        .collect();
    UninstallCheck {
        can_uninstall: blocked_by.is_empty(),
        blocked_by,
        details,
        warnings,
    }
}

/// The order in which to remove `target` and every installed plugin that requires it,
/// directly or not: dependents before what they depend on, `target` last.
pub fn uninstall_order(
    catalog: &Catalog,
    target: &PluginId,
    installed: &InstalledVersions,
) -> Vec<PluginId> {
    // Who requires whom, among installed plugins.
    let mut required_by: HashMap<&PluginId, Vec<&PluginId>> = HashMap::new();
    for (plugin_id, version) in installed {
        for edge in catalog.edges(plugin_id, version) {
            if edge.required && edge.to != *plugin_id {
                required_by.entry(&edge.to).or_default().push(plugin_id);
            }
        }
    }
    for dependents in required_by.values_mut() {
        dependents.sort();
        dependents.dedup();
    }
    dependencies_first(&[target], &required_by)
}

/// An installed dependent whose range the new version falls outside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeBreak {
    /// The dependent plugin.
    pub plugin_id: PluginId,
    /// Its installed version.
    pub version: Version,
    /// The range it accepts.
    pub range: VersionRange,
    /// Whether it requires the upgraded plugin.
    pub required: bool,
}

/// What moving an installed plugin to another version would break.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeCheck {
    /// Nothing breaks and every required dependency of the new version is met.
    pub ok: bool,
    /// Installed dependents whose ranges exclude the new version.
    pub breaks: Vec<UpgradeBreak>,
    /// Dependencies of the new version that the tenant does not meet (the seed's messages).
    pub unmet: Vec<String>,
}

/// Checks an upgrade (or downgrade) of `target` to `to` against the tenant's installations.
pub fn check_upgrade(
    catalog: &Catalog,
    target: &PluginId,
    to: &Version,
    installed: &InstalledVersions,
) -> UpgradeCheck {
    let mut breaks = Vec::new();
    for (plugin_id, version) in installed {
        if plugin_id == target {
            continue;
        }
        for edge in catalog.edges(plugin_id, version) {
            if edge.to == *target && !edge.range.satisfies(to) {
                let broken = UpgradeBreak {
                    plugin_id: plugin_id.clone(),
                    version: version.clone(),
                    range: edge.range.clone(),
                    required: edge.required,
                };
                if !breaks.contains(&broken) {
                    breaks.push(broken);
                }
            }
        }
    }
    let mut unmet = Vec::new();
    for edge in catalog.edges(target, to) {
        match installed.get(&edge.to) {
            None if edge.required => {
                push_once(&mut unmet, format!("Missing required plugin: {}", edge.to))
            }
            Some(version) if edge.required && !edge.range.satisfies(version) => push_once(
                &mut unmet,
                format!(
                    "Version mismatch for {}: requires {}, installed {version}",
                    edge.to, edge.range
                ),
            ),
            _ => {}
        }
    }
    UpgradeCheck {
        ok: unmet.is_empty() && !breaks.iter().any(|b| b.required),
        breaks,
        unmet,
    }
}
