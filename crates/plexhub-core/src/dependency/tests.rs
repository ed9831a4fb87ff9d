#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::manifest::DependencySpec;
use crate::version::VersionRange;

fn id(name: &str) -> PluginId {
    PluginId::parse(name).unwrap()
}

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

fn dep(to: &str, range: &str, required: bool) -> DependencySpec {
    DependencySpec {
        plugin_id: id(to),
        service_name: None,
        range: VersionRange::parse(range).unwrap(),
        required,
        reason: None,
    }
}

/// A catalog from `(plugin, version, dependencies)` rows.
fn catalog(rows: &[(&str, &str, Vec<DependencySpec>)]) -> Catalog {
    let mut catalog = Catalog::new();
    for (plugin, version, deps) in rows {
        catalog.add_version(&id(plugin), v(version), deps);
    }
    catalog
}

fn installed(rows: &[(&str, &str)]) -> InstalledVersions {
    rows.iter()
        .map(|(p, version)| (id(p), v(version)))
        .collect()
}

fn ids(names: &[&str]) -> Vec<PluginId> {
    names.iter().map(|name| id(name)).collect()
}

#[test]
fn resolution_orders_dependencies_first_like_the_original() {
    // From the original's dependency-resolution test: c -> b -> a, a and b installed.
    let catalog = catalog(&[
        ("plugin-a", "1.0.0", vec![]),
        ("plugin-b", "1.0.0", vec![dep("plugin-a", "^1.0.0", true)]),
        ("plugin-c", "1.0.0", vec![dep("plugin-b", "^1.0.0", true)]),
    ]);
    let installed = installed(&[("plugin-a", "1.0.0"), ("plugin-b", "1.0.0")]);
    let resolution = resolve(&catalog, &id("plugin-c"), &installed).unwrap();
    assert!(resolution.valid, "{resolution:?}");
    assert_eq!(
        resolution.install_order,
        ids(&["plugin-a", "plugin-b", "plugin-c"])
    );
}

#[test]
fn resolution_reports_cycles_missing_plugins_and_mismatches_in_the_original_words() {
    let cyclic = catalog(&[
        ("plugin-a", "1.0.0", vec![dep("plugin-b", "*", true)]),
        ("plugin-b", "1.0.0", vec![dep("plugin-a", "*", true)]),
        ("plugin-s", "1.0.0", vec![dep("plugin-s", "*", true)]),
    ]);
    let none = InstalledVersions::new();
    let resolution = resolve(&cyclic, &id("plugin-a"), &none).unwrap();
    assert_eq!(
        resolution.errors,
        ["Circular dependency detected: plugin-a -> plugin-b -> plugin-a"]
    );
    assert!(!resolution.valid && resolution.install_order.is_empty());
    let resolution = resolve(&cyclic, &id("plugin-s"), &none).unwrap();
    assert_eq!(
        resolution.errors,
        ["Circular dependency detected: plugin-s -> plugin-s"]
    );

    let catalog = catalog(&[
        ("plugin-crm", "1.0.0", vec![]),
        ("plugin-mail", "1.0.0", vec![]),
        (
            "plugin-analytics",
            "1.0.0",
            vec![
                dep("plugin-crm", "^2.0.0", true),
                dep("plugin-mail", "^1.0.0", true),
                dep("plugin-mail", "^1.0.0", true),
                dep("plugin-maps", "^1.0.0", false),
                dep("plugin-ghost", "^1.0.0", false),
            ],
        ),
        ("plugin-maps", "1.0.0", vec![]),
    ]);
    let tenant = installed(&[("plugin-crm", "1.0.0")]);
    let resolution = resolve(&catalog, &id("plugin-analytics"), &tenant).unwrap();
    assert_eq!(
        resolution.errors,
        [
            "Version mismatch for plugin-crm: requires ^2.0.0, installed 1.0.0",
            "Missing required plugin: plugin-mail",
        ]
    );
    assert_eq!(
        resolution.warnings,
        [
            "Optional plugin plugin-maps is not installed (optional dependency of plugin-analytics)",
            "Optional plugin plugin-ghost is not in the catalog (optional dependency of plugin-analytics)",
        ]
    );
    assert_eq!(
        resolve(&catalog, &id("plugin-nope"), &tenant),
        Err(UnknownPlugin(id("plugin-nope")))
    );
}

#[test]
fn optional_dependencies_join_the_order_only_when_installed() {
    let catalog = catalog(&[
        ("plugin-maps", "1.0.0", vec![]),
        (
            "plugin-a",
            "1.0.0",
            vec![dep("plugin-maps", "^1.0.0", false)],
        ),
    ]);
    let without = resolve(&catalog, &id("plugin-a"), &InstalledVersions::new()).unwrap();
    assert_eq!(without.install_order, ids(&["plugin-a"]));
    let with = installed(&[("plugin-maps", "1.0.0")]);
    let resolution = resolve(&catalog, &id("plugin-a"), &with).unwrap();
    assert_eq!(resolution.install_order, ids(&["plugin-maps", "plugin-a"]));
    assert!(resolution.warnings.is_empty());
}

#[test]
fn listing_is_once_per_plugin_and_ends_on_cycles() {
    let mut catalog = catalog(&[
        ("plugin-a", "1.0.0", vec![dep("plugin-b", "*", true)]),
        ("plugin-a", "2.0.0", vec![dep("plugin-b", "^1.0.0", true)]),
        ("plugin-b", "1.0.0", vec![dep("plugin-c", "*", true)]),
        (
            "plugin-c",
            "1.0.0",
            vec![dep("plugin-a", "*", false), dep("plugin-b", "*", true)],
        ),
    ]);
    catalog.add_registered([Edge {
        from: id("plugin-a"),
        to: id("plugin-c"),
        range: VersionRange::parse("*").unwrap(),
        required: false,
        service_name: None,
        reason: None,
        source: EdgeSource::Registered,
    }]);
    let direct = catalog.dependencies(&id("plugin-a"), false);
    let pairs: Vec<(&str, &str, EdgeSource)> = direct
        .iter()
        .map(|e| (e.to.as_str(), e.range.as_str(), e.source))
        .collect();
    assert_eq!(
        pairs,
        [
            ("plugin-b", "^1.0.0", EdgeSource::Manifest),
            ("plugin-c", "*", EdgeSource::Registered)
        ]
    );
    let all: Vec<(&str, &str)> = catalog
        .dependencies(&id("plugin-a"), true)
        .iter()
        .map(|e| (e.from.as_str(), e.to.as_str()))
        .collect();
    assert_eq!(
        all,
        [
            ("plugin-a", "plugin-b"),
            ("plugin-a", "plugin-c"),
            ("plugin-c", "plugin-a")
        ]
    );
    assert_eq!(
        catalog.dependents(&id("plugin-b")),
        ids(&["plugin-a", "plugin-c"])
    );
    assert_eq!(catalog.dependents(&id("plugin-a")), ids(&["plugin-c"]));
    let cycles = find_cycles(&catalog);
    assert!(!cycles.is_empty());
}

#[test]
fn uninstall_is_blocked_by_required_dependents_only() {
    let catalog = catalog(&[
        ("plugin-crm", "1.0.0", vec![]),
        (
            "plugin-analytics",
            "1.0.0",
            vec![dep("plugin-crm", "^1.0.0", true)],
        ),
        (
            "plugin-reports",
            "1.0.0",
            vec![dep("plugin-analytics", "^1.0.0", true)],
        ),
        (
            "plugin-maps",
            "1.0.0",
            vec![dep("plugin-crm", "^1.0.0", false)],
        ),
    ]);
    let tenant = installed(&[
        ("plugin-crm", "1.0.0"),
        ("plugin-analytics", "1.0.0"),
        ("plugin-reports", "1.0.0"),
        ("plugin-maps", "1.0.0"),
    ]);
    let check = check_uninstall(&catalog, &id("plugin-crm"), &tenant);
    assert!(!check.can_uninstall);
    assert_eq!(check.blocked_by, ids(&["plugin-analytics"]));
    assert_eq!(check.details.len(), 2);
    assert_eq!(
        check.warnings,
        ["plugin-maps optionally depends on plugin-crm; it keeps working without it"]
    );
    assert_eq!(
        uninstall_order(&catalog, &id("plugin-crm"), &tenant),
        ids(&["plugin-reports", "plugin-analytics", "plugin-crm"])
    );
    assert!(check_uninstall(&catalog, &id("plugin-reports"), &tenant).can_uninstall);
}

#[test]
fn upgrades_name_the_dependents_they_break() {
    let catalog = catalog(&[
        ("plugin-crm", "1.0.0", vec![]),
        (
            "plugin-crm",
            "2.0.0",
            vec![dep("plugin-mail", "^1.0.0", true)],
        ),
        (
            "plugin-analytics",
            "1.0.0",
            vec![dep("plugin-crm", "^1.0.0", true)],
        ),
    ]);
    let tenant = installed(&[("plugin-crm", "1.0.0"), ("plugin-analytics", "1.0.0")]);
    let check = check_upgrade(&catalog, &id("plugin-crm"), &v("2.0.0"), &tenant);
    assert!(!check.ok);
    assert_eq!(check.breaks.len(), 1);
    assert_eq!(check.breaks[0].plugin_id, id("plugin-analytics"));
    assert_eq!(check.unmet, ["Missing required plugin: plugin-mail"]);
    assert!(check_upgrade(&catalog, &id("plugin-crm"), &v("1.0.0"), &tenant).ok);
}

#[test]
fn plans_choose_the_highest_versions_that_fit_and_keep_what_is_installed() {
    let catalog = catalog(&[
        ("plugin-crm", "1.0.0", vec![]),
        ("plugin-crm", "1.4.0", vec![]),
        ("plugin-crm", "2.0.0", vec![]),
        ("plugin-crm", "2.1.0-beta.1", vec![]),
        ("plugin-mail", "1.0.0", vec![]),
        (
            "plugin-analytics",
            "1.0.0",
            vec![dep("plugin-crm", "^1.0.0", true)],
        ),
        (
            "plugin-analytics",
            "1.1.0",
            vec![
                dep("plugin-crm", "^1.2.0", true),
                dep("plugin-mail", "*", false),
            ],
        ),
    ]);
    let steps = plan_install(
        &catalog,
        &id("plugin-analytics"),
        None,
        &InstalledVersions::new(),
    );
    let steps: Vec<(String, String, StepAction)> = steps
        .unwrap()
        .into_iter()
        .map(|s| (s.plugin_id.to_string(), s.version.to_string(), s.action))
        .collect();
    assert_eq!(
        steps,
        [
            ("plugin-crm".into(), "1.4.0".into(), StepAction::Install),
            (
                "plugin-analytics".into(),
                "1.1.0".into(),
                StepAction::Install
            ),
        ]
    );
    // With CRM 1.0.0 installed, Analytics 1.1.0 (which needs ^1.2.0) is out; 1.0.0 fits.
    let tenant = installed(&[("plugin-crm", "1.0.0")]);
    let steps = plan_install(&catalog, &id("plugin-analytics"), None, &tenant).unwrap();
    assert_eq!(steps[0].action, StepAction::Keep);
    assert_eq!(steps[1].version, v("1.0.0"));
    let range = VersionRange::parse("^1.1.0").unwrap();
    let Err(PlanError::NoSolution(explanation)) =
        plan_install(&catalog, &id("plugin-analytics"), Some(&range), &tenant)
    else {
        panic!("no plan expected");
    };
    assert!(
        explanation
            .text
            .contains("plugin-analytics 1.1.0 depends on plugin-crm ^1.2.0"),
        "{}",
        explanation.text
    );
    assert!(
        explanation.text.contains("plugin-crm 1.0.0 (installed)"),
        "{}",
        explanation.text
    );
    assert!(explanation.facts.contains(&Fact::Dependency {
        plugin_id: "plugin-analytics".into(),
        versions: "1.1.0".into(),
        depends_on: "plugin-crm".into(),
        range: "^1.2.0".into(),
    }));
}

#[test]
fn plans_explain_incompatible_requirements() {
    let catalog = catalog(&[
        ("plugin-crm", "1.0.0", vec![]),
        ("plugin-crm", "2.0.0", vec![]),
        (
            "plugin-reports",
            "1.0.0",
            vec![dep("plugin-crm", "^1", true)],
        ),
        (
            "plugin-analytics",
            "2.0.0",
            vec![
                dep("plugin-crm", "^2", true),
                dep("plugin-reports", "1.x", true),
            ],
        ),
        (
            "plugin-broken",
            "1.0.0",
            vec![dep("plugin-ghost", "^1", true)],
        ),
    ]);
    let none = InstalledVersions::new();
    let Err(PlanError::NoSolution(explanation)) =
        plan_install(&catalog, &id("plugin-analytics"), None, &none)
    else {
        panic!("no plan expected");
    };
    assert!(
        explanation.text.contains("depends on plugin-crm ^2"),
        "{}",
        explanation.text
    );
    assert!(
        explanation.text.contains("depends on plugin-crm ^1"),
        "{}",
        explanation.text
    );
    let Err(PlanError::NoSolution(explanation)) =
        plan_install(&catalog, &id("plugin-broken"), None, &none)
    else {
        panic!("no plan expected");
    };
    assert!(
        explanation.text.contains("plugin-ghost"),
        "{}",
        explanation.text
    );
    assert!(matches!(
        plan_install(&catalog, &id("plugin-nope"), None, &none),
        Err(PlanError::Unknown(_))
    ));
}

#[test]
fn plans_skip_unavailable_versions_and_name_their_status() {
    let mut catalog = catalog(&[
        ("plugin-crm", "1.0.0", vec![]),
        ("plugin-crm", "1.1.0", vec![]),
        ("plugin-crm", "2.0.0", vec![]),
        (
            "plugin-analytics",
            "1.0.0",
            vec![dep("plugin-crm", "^1.1.0", true)],
        ),
        (
            "plugin-reports",
            "1.0.0",
            vec![dep("plugin-crm", "^2", true)],
        ),
    ]);
    catalog.mark_unavailable(&id("plugin-crm"), v("1.1.0"), "yanked");
    catalog.mark_unavailable(
        &id("plugin-crm"),
        v("2.0.0"),
        "pending review, not published yet",
    );
    let none = InstalledVersions::new();
    // The highest installable version is chosen, not the yanked 1.1.0 or the pending 2.0.0.
    let steps = plan_install(&catalog, &id("plugin-crm"), None, &none).unwrap();
    assert_eq!(steps[0].version, v("1.0.0"));
    let Err(PlanError::NoSolution(explanation)) =
        plan_install(&catalog, &id("plugin-analytics"), None, &none)
    else {
        panic!("no plan expected");
    };
    assert!(
        explanation.text.contains("plugin-crm 1.1.0 is yanked"),
        "{}",
        explanation.text
    );
    assert!(explanation.facts.contains(&Fact::Unavailable {
        plugin_id: "plugin-crm".into(),
        version: "1.1.0".into(),
        reason: "yanked".into(),
    }));
    let Err(PlanError::NoSolution(explanation)) =
        plan_install(&catalog, &id("plugin-reports"), None, &none)
    else {
        panic!("no plan expected");
    };
    assert!(
        explanation
            .text
            .contains("plugin-crm 2.0.0 is pending review, not published yet"),
        "{}",
        explanation.text
    );
    // An installed yanked version keeps working: plans keep it.
    let installed = installed(&[("plugin-crm", "1.1.0")]);
    let steps = plan_install(&catalog, &id("plugin-analytics"), None, &installed).unwrap();
    assert_eq!(steps[0].version, v("1.1.0"));
    assert_eq!(steps[0].action, StepAction::Keep);
    assert_eq!(catalog.latest(&id("plugin-crm")), Some(&v("1.0.0")));
    // An upgrade to the yanked 1.1.0 is offered the nearest installable version instead.
    catalog.add_version(&id("plugin-crm"), v("1.2.0"), &[]);
    let crm = id("plugin-crm");
    assert_eq!(
        catalog.nearest_installable(&crm, &v("1.1.0"), Some(&v("1.0.0"))),
        Some(&v("1.2.0"))
    );
    assert_eq!(
        catalog.nearest_installable(&crm, &v("2.0.0"), None),
        Some(&v("1.2.0"))
    );
}

#[test]
fn plans_refuse_required_cycles_among_new_plugins() {
    let catalog = catalog(&[
        ("plugin-a", "1.0.0", vec![dep("plugin-b", "*", true)]),
        ("plugin-b", "1.0.0", vec![dep("plugin-a", "*", true)]),
    ]);
    let plan = plan_install(&catalog, &id("plugin-a"), None, &InstalledVersions::new());
    assert_eq!(
        plan,
        Err(PlanError::Cycle(ids(&["plugin-a", "plugin-b", "plugin-a"])))
    );
}

#[test]
fn registration_refuses_duplicates_self_edges_and_unknown_plugins() {
    let catalog = catalog(&[("plugin-a", "1.0.0", vec![]), ("plugin-b", "1.0.0", vec![])]);
    let edge = |from: &str, to: &str| Edge {
        from: id(from),
        to: id(to),
        range: VersionRange::parse("*").unwrap(),
        required: true,
        service_name: None,
        reason: None,
        source: EdgeSource::Registered,
    };
    let batch = [
        edge("plugin-a", "plugin-b"),
        edge("plugin-a", "plugin-b"),
        edge("plugin-a", "plugin-a"),
        edge("plugin-a", "plugin-x"),
    ];
    let problems: Vec<usize> = check_registration(&batch, &catalog)
        .into_iter()
        .map(|(index, _)| index)
        .collect();
    assert_eq!(problems, [1, 2, 3]);
}

// ---- Properties on random graphs ----

const NAMES: [&str; 8] = [
    "plugin-a", "plugin-b", "plugin-c", "plugin-d", "plugin-e", "plugin-f", "plugin-g", "plugin-h",
];
const RANGES: [&str; 5] = ["*", "^1.0.0", "^2.0.0", ">=1.1.0", "~1.0.0"];
const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "2.0.0"];

/// A generated edge: (target, range index, required).
type GenEdge = (usize, usize, bool);

#[derive(Debug, Clone)]
struct World {
    /// (plugin, version index, edges)
    versions: Vec<(usize, usize, Vec<GenEdge>)>,
    installed: Vec<(usize, usize)>,
    root: usize,
}

fn world() -> impl Strategy<Value = World> {
    let edge = (0..NAMES.len(), 0..RANGES.len(), any::<bool>());
    let version = (
        0..NAMES.len(),
        0..VERSIONS.len(),
        prop::collection::vec(edge, 0..3),
    );
    (
        prop::collection::vec(version, 1..16),
        prop::collection::vec((0..NAMES.len(), 0..VERSIONS.len()), 0..4),
        0..NAMES.len(),
    )
        .prop_map(|(versions, installed, root)| World {
            versions,
            installed,
            root,
        })
}

impl World {
    fn catalog(&self) -> Catalog {
        let mut catalog = Catalog::new();
        for (plugin, version, edges) in &self.versions {
            let deps: Vec<DependencySpec> = edges
                .iter()
                .map(|(to, range, required)| dep(NAMES[*to], RANGES[*range], *required))
                .collect();
            catalog.add_version(&id(NAMES[*plugin]), v(VERSIONS[*version]), &deps);
        }
        catalog
    }

    /// Installed plugins, only those present in the catalog at that version.
    fn installed(&self, catalog: &Catalog) -> InstalledVersions {
        self.installed
            .iter()
            .map(|(plugin, version)| (id(NAMES[*plugin]), v(VERSIONS[*version])))
            .filter(|(plugin, version)| catalog.versions(plugin).any(|known| known == version))
            .collect()
    }
}

/// The graph resolution walks, built independently: node versions are installed or latest;
/// required edges and optional edges to installed plugins, to known plugins.
fn resolution_graph(
    catalog: &Catalog,
    root: &PluginId,
    installed: &InstalledVersions,
) -> HashMap<PluginId, HashSet<PluginId>> {
    let mut graph: HashMap<PluginId, HashSet<PluginId>> = HashMap::new();
    let mut todo = vec![root.clone()];
    while let Some(node) = todo.pop() {
        if graph.contains_key(&node) {
            continue;
        }
        let version = installed
            .get(&node)
            .or_else(|| catalog.latest(&node))
            .cloned();
        let next: HashSet<PluginId> = version
            .map(|version| {
                catalog
                    .edges(&node, &version)
                    .filter(|e| e.required || installed.contains_key(&e.to))
                    .filter(|e| catalog.contains(&e.to) || installed.contains_key(&e.to))
                    .map(|e| e.to.clone())
                    .collect()
            })
            .unwrap_or_default();
        todo.extend(next.iter().cloned());
        graph.insert(node, next);
    }
    graph
}

/// Kahn's algorithm: whether the graph has a cycle.
fn has_cycle(graph: &HashMap<PluginId, HashSet<PluginId>>) -> bool {
    let mut indegree: HashMap<&PluginId, usize> = graph.keys().map(|k| (k, 0)).collect();
    for targets in graph.values() {
        for target in targets {
            *indegree.entry(target).or_default() += 1;
        }
    }
    let mut ready: Vec<&PluginId> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut removed = 0;
    while let Some(node) = ready.pop() {
        removed += 1;
        for target in graph.get(node).into_iter().flatten() {
            let degree = indegree.get_mut(target).unwrap();
            *degree -= 1;
            if *degree == 0 {
                ready.push(target);
            }
        }
    }
    removed < indegree.len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resolution_orders_and_cycles_hold_on_random_graphs(world in world()) {
        let catalog = world.catalog();
        let installed = world.installed(&catalog);
        let root = id(NAMES[world.root]);
        let Ok(resolution) = resolve(&catalog, &root, &installed) else {
            prop_assert!(!catalog.contains(&root));
            return Ok(());
        };
        let graph = resolution_graph(&catalog, &root, &installed);
        let cycles: Vec<&String> = resolution
            .errors
            .iter()
            .filter(|e| e.starts_with("Circular dependency detected: "))
            .collect();
        prop_assert_eq!(!cycles.is_empty(), has_cycle(&graph));
        for message in cycles {
            let path: Vec<&str> = message["Circular dependency detected: ".len()..].split(" -> ").collect();
            prop_assert!(path.len() >= 2 && path[0] == path[path.len() - 1], "{}", message);
            for pair in path.windows(2) {
                prop_assert!(graph[&id(pair[0])].contains(&id(pair[1])), "{} is not a cycle", message);
            }
        }
        if resolution.valid {
            let order = &resolution.install_order;
            prop_assert_eq!(order.last(), Some(&root));
            for (at, plugin) in order.iter().enumerate() {
                for dependency in &graph[plugin] {
                    let before = order[..at].contains(dependency);
                    prop_assert!(before, "{} comes before its dependency {}", plugin, dependency);
                }
            }
        }
    }

    #[test]
    fn plans_satisfy_every_constraint_on_random_graphs(world in world()) {
        let catalog = world.catalog();
        let installed = world.installed(&catalog);
        let root = id(NAMES[world.root]);
        let Ok(steps) = plan_install(&catalog, &root, None, &installed) else {
            return Ok(());
        };
        prop_assert_eq!(&steps.last().unwrap().plugin_id, &root);
        let chosen: HashMap<&PluginId, &Version> = steps.iter().map(|s| (&s.plugin_id, &s.version)).collect();
        for (at, step) in steps.iter().enumerate() {
            if let Some(version) = installed.get(&step.plugin_id) {
                prop_assert_eq!(version, &step.version);
                prop_assert_eq!(step.action, StepAction::Keep);
            }
            for edge in catalog.edges(&step.plugin_id, &step.version) {
                if edge.to == step.plugin_id {
                    continue;
                }
                if edge.required {
                    let version = chosen.get(&edge.to).copied().or_else(|| installed.get(&edge.to));
                    prop_assert!(version.is_some_and(|version| edge.range.satisfies(version)));
                    let placed_before = steps[..at].iter().any(|s| s.plugin_id == edge.to)
                        || installed.contains_key(&edge.to);
                    prop_assert!(placed_before, "{} before {}", edge.to, step.plugin_id);
                } else if let Some(version) = installed.get(&edge.to) {
                    prop_assert!(edge.range.satisfies(version));
                }
            }
        }
    }
}
