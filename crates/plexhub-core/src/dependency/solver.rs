//! Install plans: versions chosen by the PubGrub solver (the `pubgrub` crate), explained in
//! sentences and as facts when no choice works.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use pubgrub::{
    DefaultStringReporter, Dependencies, DependencyProvider, DerivationTree, External,
    PackageResolutionStatistics, PubGrubError, Ranges, Reporter, VersionSet,
};
use serde::Serialize;

use super::graph::Catalog;
use super::{InstalledVersions, UnknownPlugin};
use crate::ids::PluginId;
use crate::version::{Version, VersionRange};

/// What a plan does with one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepAction {
    /// Install this version.
    Install,
    /// Already installed at this version: keep it.
    Keep,
}

/// One step of an install plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanStep {
    /// The plugin.
    pub plugin_id: PluginId,
    /// The chosen (or installed) version.
    pub version: Version,
    /// Install or keep.
    pub action: StepAction,
}

/// One fact the solver's explanation rests on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Fact {
    /// Versions `versions` of `plugin_id` depend on `depends_on` within `range`.
    #[serde(rename_all = "camelCase")]
    Dependency {
        /// The depending plugin (`request` for what was asked).
        plugin_id: String,
        /// Its versions concerned.
        versions: String,
        /// The plugin depended on.
        depends_on: String,
        /// The accepted versions of it.
        range: String,
    },
    /// No published version of `plugin_id` lies in `versions`.
    #[serde(rename_all = "camelCase")]
    NoVersions {
        /// The plugin.
        plugin_id: String,
        /// The versions looked for.
        versions: String,
    },
    /// `version` of `plugin_id` is in the catalog but new installs may not pick it.
    #[serde(rename_all = "camelCase")]
    Unavailable {
        /// The plugin.
        plugin_id: String,
        /// The version.
        version: String,
        /// Why, in words: `yanked`, `pending review, not published yet`, `rejected by review`…
        reason: String,
    },
}

/// Why no plan exists: the solver's explanation in sentences, and the facts it uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// Plain sentences, PubGrub style.
    pub text: String,
    /// The external facts, each once.
    pub facts: Vec<Fact>,
}

/// Why an install plan could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The plugin to install is not in the catalog.
    #[error(transparent)]
    Unknown(#[from] UnknownPlugin),
    /// The plugin is installed at a version outside the requested range.
    #[error("{plugin_id} {installed} is installed; changing its version is an upgrade plan")]
    InstalledElsewhere {
        /// The plugin.
        plugin_id: PluginId,
        /// Its installed version.
        installed: Version,
    },
    /// No choice of versions satisfies every constraint.
    #[error("{}", .0.text)]
    NoSolution(Explanation),
    /// The chosen plugins require each other in a cycle, so no order installs them.
    #[error("Circular dependency detected: {}", .0.iter().map(PluginId::as_str).collect::<Vec<_>>().join(" -> "))]
    Cycle(Vec<PluginId>),
}

/// A package of the solve: the request itself, or a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Package {
    Request,
    Plugin(PluginId),
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request => f.write_str(REQUEST),
            Self::Plugin(id) => f.write_str(id.as_str()),
        }
    }
}

/// How the request pseudo-package reads in explanations.
const REQUEST: &str = "the request";

/// A set of catalog versions, shown as the range it was written as when it still is one.
#[derive(Debug, Clone)]
struct Constraint {
    set: Ranges<Version>,
    label: Option<Arc<str>>,
}

impl PartialEq for Constraint {
    fn eq(&self, other: &Self) -> bool {
        self.set == other.set
    }
}

impl Eq for Constraint {}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.label {
            Some(label) => f.write_str(label),
            None if self.set.is_empty() => f.write_str("no version"),
            None => write!(f, "{}", self.set),
        }
    }
}

impl VersionSet for Constraint {
    type V = Version;

    fn empty() -> Self {
        Self {
            set: Ranges::empty(),
            label: None,
        }
    }

    fn singleton(version: Version) -> Self {
        Self {
            set: Ranges::singleton(version),
            label: None,
        }
    }

    fn complement(&self) -> Self {
        Self {
            set: self.set.complement(),
            label: None,
        }
    }

    fn intersection(&self, other: &Self) -> Self {
        let set = self.set.intersection(&other.set);
        let label = if set == self.set {
            self.label.clone()
        } else if set == other.set {
            other.label.clone()
        } else {
            None
        };
        Self { set, label }
    }

    fn contains(&self, version: &Version) -> bool {
        self.set.contains(version)
    }
}

/// The catalog and the tenant's installations, as the solver asks for them.
struct Provider<'a> {
    catalog: &'a Catalog,
    installed: &'a InstalledVersions,
    target: &'a PluginId,
    requested: Option<&'a VersionRange>,
    /// Installed plugins reachable from the target, pinned by the request.
    pinned: Vec<PluginId>,
}

impl Provider<'_> {
    /// The published (and installed) versions of `plugin_id` in `range`, labelled with it.
    fn constraint(&self, plugin_id: &PluginId, range: &VersionRange) -> Constraint {
        let mut set = Ranges::empty();
        let installed = self.installed.get(plugin_id);
        for version in self.catalog.versions(plugin_id).chain(installed) {
            if range.satisfies(version) {
                set = set.union(&Ranges::singleton(version.clone()));
            }
        }
        Constraint {
            set,
            label: Some(Arc::from(range.as_str())),
        }
    }

    fn add(constraints: &mut BTreeMap<Package, Constraint>, package: Package, c: Constraint) {
        let merged = match constraints.get(&package) {
            Some(existing) => {
                let mut both = existing.intersection(&c);
                if both.label.is_none()
                    && let (Some(a), Some(b)) = (&existing.label, &c.label)
                {
                    both.label = Some(Arc::from(format!("{a} and {b}")));
                }
                both
            }
            None => c,
        };
        constraints.insert(package, merged);
    }
}

impl DependencyProvider for Provider<'_> {
    type P = Package;
    type V = Version;
    type VS = Constraint;
    type Priority = (u8, Reverse<usize>);
    type M = String;
    type Err = Infallible;

    fn prioritize(
        &self,
        package: &Package,
        range: &Constraint,
        _statistics: &PackageResolutionStatistics,
    ) -> Self::Priority {
        match package {
            Package::Request => (2, Reverse(0)),
            Package::Plugin(id) if self.installed.contains_key(id) => (1, Reverse(1)),
            // Fewest matching versions first: conflicts show up early.
            Package::Plugin(id) => (
                0,
                Reverse(
                    self.catalog
                        .versions(id)
                        .filter(|v| range.contains(v))
                        .count(),
                ),
            ),
        }
    }

    fn choose_version(
        &self,
        package: &Package,
        range: &Constraint,
    ) -> Result<Option<Version>, Infallible> {
        Ok(match package {
            Package::Request => Some(request_version()),
            Package::Plugin(id) => match self.installed.get(id) {
                Some(version) => range.contains(version).then(|| version.clone()),
                None => {
                    let matching = || self.catalog.installable(id).filter(|v| range.contains(v));
                    // An unavailable version is tried only when nothing installable is left,
                    // so that the explanation names its status.
                    matching()
                        .filter(|v| !v.is_prerelease())
                        .max()
                        .or_else(|| matching().max())
                        .or_else(|| {
                            self.catalog
                                .versions(id)
                                .filter(|v| range.contains(v))
                                .max()
                        })
                        .cloned()
                }
            },
        })
    }

    fn get_dependencies(
        &self,
        package: &Package,
        version: &Version,
    ) -> Result<Dependencies<Package, Constraint, String>, Infallible> {
        let mut constraints = BTreeMap::new();
        match package {
            Package::Request => {
                let wanted = match self.requested {
                    Some(range) => self.constraint(self.target, range),
                    None => Constraint {
                        set: Ranges::full(),
                        label: Some(Arc::from("any version")),
                    },
                };
                constraints.insert(Package::Plugin(self.target.clone()), wanted);
                for id in &self.pinned {
                    if let Some(installed) = self.installed.get(id) {
                        let pin = Constraint {
                            set: Ranges::singleton(installed.clone()),
                            label: Some(Arc::from(format!("{installed} (installed)"))),
                        };
                        Self::add(&mut constraints, Package::Plugin(id.clone()), pin);
                    }
                }
            }
            Package::Plugin(id) => {
                if self.installed.get(id) != Some(version)
                    && let Some(why) = self.catalog.unavailable(id, version)
                {
                    return Ok(Dependencies::Unavailable(why.to_owned()));
                }
                for edge in self.catalog.edges(id, version) {
                    // An optional dependency binds only when its plugin is there.
                    if edge.to == *id || !(edge.required || self.installed.contains_key(&edge.to)) {
                        continue;
                    }
                    let constraint = self.constraint(&edge.to, &edge.range);
                    Self::add(
                        &mut constraints,
                        Package::Plugin(edge.to.clone()),
                        constraint,
                    );
                }
            }
        }
        Ok(Dependencies::Available(constraints.into_iter().collect()))
    }
}

fn request_version() -> Version {
    Version::parse("0.0.0").unwrap_or_else(|_| unreachable!("0.0.0 is a version"))
}

/// Installed plugins reachable from `target` through any catalog version's edges.
fn reachable_installed(
    catalog: &Catalog,
    target: &PluginId,
    installed: &InstalledVersions,
) -> Vec<PluginId> {
    let mut seen: HashSet<&PluginId> = HashSet::from([target]);
    let mut stack = vec![target];
    let mut found = Vec::new();
    while let Some(id) = stack.pop() {
        if installed.contains_key(id) && id != target {
            found.push(id.clone());
        }
        let versions: Vec<&Version> = match installed.get(id) {
            Some(version) => vec![version],
            None => catalog.versions(id).collect(),
        };
        for version in versions {
            for edge in catalog.edges(id, version) {
                if seen.insert(&edge.to) {
                    stack.push(&edge.to);
                }
            }
        }
    }
    found.sort();
    found
}

/// Plans installing `target` (in `requested`, else its highest release) into a tenant: the
/// highest versions that satisfy every constraint, keeping what is installed, in an order
/// that puts each plugin after what it requires. Optional dependencies are installed only if
/// they already are, and then must be within range.
pub fn plan_install(
    catalog: &Catalog,
    target: &PluginId,
    requested: Option<&VersionRange>,
    installed: &InstalledVersions,
) -> Result<Vec<PlanStep>, PlanError> {
    if !catalog.contains(target) && !installed.contains_key(target) {
        return Err(UnknownPlugin(target.clone()).into());
    }
    if let Some(version) = installed.get(target)
        && requested.is_some_and(|range| !range.satisfies(version))
    {
        return Err(PlanError::InstalledElsewhere {
            plugin_id: target.clone(),
            installed: version.clone(),
        });
    }
    let provider = Provider {
        catalog,
        installed,
        target,
        requested,
        pinned: reachable_installed(catalog, target, installed),
    };
    let chosen = match pubgrub::resolve(&provider, Package::Request, request_version()) {
        Ok(chosen) => chosen,
        Err(PubGrubError::NoSolution(mut tree)) => {
            tree.collapse_no_versions();
            return Err(PlanError::NoSolution(explain(&tree)));
        }
        Err(other) => unreachable!("the provider cannot fail: {other}"),
    };
    let versions: BTreeMap<PluginId, Version> = chosen
        .into_iter()
        .filter_map(|(package, version)| match package {
            Package::Plugin(id) => Some((id, version)),
            Package::Request => None,
        })
        .collect();
    // An installed plugin's optional dependency on a plugin the plan adds binds too.
    for (id, version) in installed {
        for edge in catalog.edges(id, version) {
            if let Some(chosen) = versions.get(&edge.to)
                && !installed.contains_key(&edge.to)
                && !edge.range.satisfies(chosen)
            {
                let text = format!(
                    "Because {id} {version} (installed) accepts {} {} as an optional dependency and the plan needs {} {chosen}, the plan is impossible.",
                    edge.to, edge.range, edge.to
                );
                return Err(PlanError::NoSolution(Explanation {
                    text,
                    facts: vec![Fact::Dependency {
                        plugin_id: id.to_string(),
                        versions: version.to_string(),
                        depends_on: edge.to.to_string(),
                        range: edge.range.to_string(),
                    }],
                }));
            }
        }
    }
    order_steps(catalog, target, &versions, installed)
}

/// Orders the chosen plugins reachable from `target` so that each comes after the plugins its
/// chosen version depends on (required, or optional and chosen).
fn order_steps(
    catalog: &Catalog,
    target: &PluginId,
    versions: &BTreeMap<PluginId, Version>,
    installed: &InstalledVersions,
) -> Result<Vec<PlanStep>, PlanError> {
    let successors: HashMap<&PluginId, Vec<&PluginId>> = versions
        .iter()
        .map(|(id, version)| {
            let mut next: Vec<&PluginId> = catalog
                .edges(id, version)
                .filter(|edge| edge.to != *id && versions.contains_key(&edge.to))
                .filter(|edge| edge.required || installed.contains_key(&edge.to))
                .map(|edge| &edge.to)
                .collect();
            next.sort();
            next.dedup();
            (id, next)
        })
        .collect();
    let Some((root, _)) = versions.get_key_value(target) else {
        unreachable!("the solution contains the requested plugin")
    };
    // Depth-first, post-order: a plugin is placed once everything it needs is placed.
    let mut placed: HashSet<&PluginId> = HashSet::new();
    let mut steps = Vec::new();
    let mut path: Vec<(&PluginId, usize)> = vec![(root, 0)];
    let mut on_path: HashSet<&PluginId> = HashSet::from([root]);
    while let Some((node, next)) = path.last_mut() {
        let node: &PluginId = node;
        let children = successors.get(node).map(Vec::as_slice).unwrap_or_default();
        if let Some(&child) = children.get(*next) {
            *next += 1;
            if placed.contains(child) {
                continue;
            }
            if on_path.contains(child) {
                // Installed plugins already coexist; a cycle among plugins to install cannot.
                if !(installed.contains_key(child) && installed.contains_key(node)) {
                    let at = path.iter().position(|(n, _)| *n == child).unwrap_or(0);
                    let mut cycle: Vec<PluginId> =
                        path[at..].iter().map(|(n, _)| (*n).clone()).collect();
                    cycle.push(child.clone());
                    return Err(PlanError::Cycle(cycle));
                }
                continue;
            }
            on_path.insert(child);
            path.push((child, 0));
            continue;
        }
        on_path.remove(node);
        if placed.insert(node) {
            let version = versions[node].clone();
            let action = if installed.contains_key(node) {
                StepAction::Keep
            } else {
                StepAction::Install
            };
            steps.push(PlanStep {
                plugin_id: node.clone(),
                version,
                action,
            });
        }
        path.pop();
    }
    Ok(steps)
}

/// The solver's explanation, with the request pseudo-package worded as such and each version
/// new installs may not pick named with its status ("plugin-crm 2.0.0 is yanked").
fn explain(tree: &DerivationTree<Package, Constraint, String>) -> Explanation {
    let mut text = DefaultStringReporter::report(tree)
        .replace(&format!("{REQUEST} 0.0.0"), REQUEST)
        .replace(
            &format!("{REQUEST} is forbidden"),
            &format!("{REQUEST} cannot be satisfied"),
        );
    let mut facts = Vec::new();
    collect_facts(tree, &mut facts);
    for fact in &facts {
        if let Fact::Unavailable {
            plugin_id,
            version,
            reason,
        } = fact
        {
            text = text.replace(
                &format!(
                    "dependencies of {plugin_id} at version {version} are unavailable {reason}"
                ),
                &format!("{plugin_id} {version} is {reason}"),
            );
        }
    }
    Explanation { text, facts }
}

fn collect_facts(tree: &DerivationTree<Package, Constraint, String>, facts: &mut Vec<Fact>) {
    let fact = match tree {
        DerivationTree::Derived(derived) => {
            collect_facts(&derived.cause1, facts);
            collect_facts(&derived.cause2, facts);
            return;
        }
        DerivationTree::External(External::FromDependencyOf(p, versions, dep, range)) => {
            let versions = match p {
                Package::Request => String::new(),
                Package::Plugin(_) => versions.to_string(),
            };
            Fact::Dependency {
                plugin_id: p.to_string(),
                versions,
                depends_on: dep.to_string(),
                range: range.to_string(),
            }
        }
        DerivationTree::External(External::NoVersions(p, versions)) => Fact::NoVersions {
            plugin_id: p.to_string(),
            versions: versions.to_string(),
        },
        DerivationTree::External(External::Custom(p, versions, reason)) => Fact::Unavailable {
            plugin_id: p.to_string(),
            version: versions.to_string(),
            reason: reason.clone(),
        },
        DerivationTree::External(External::NotRoot(..)) => return,
    };
    if !facts.contains(&fact) {
        facts.push(fact);
    }
}
