//! Dependency resolution on generated catalogs: an install plan for a plugin with a deep
//! dependency tree, and cycle detection over the whole graph, at growing sizes.
//!
//! Each plugin has 5 versions of about 3 dependencies each (15 edges per plugin). Plugin `i`
//! depends on `i + 1` (a chain, so the tree of plugin 0 is as deep as the catalog) and on two
//! plugins a little further on, with a mix of ranges that the solver has to reconcile.
//! Run: `cargo bench -p plexhub-core --bench dependencies`.

#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use plexhub_core::dependency::{Catalog, InstalledVersions, find_cycles, plan_install};
use plexhub_core::ids::PluginId;
use plexhub_core::manifest::DependencySpec;
use plexhub_core::version::{Version, VersionRange};

const VERSIONS: [&str; 5] = ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"];
const RANGES: [&str; 4] = ["^1.0.0", ">=1.1.0 <2.0.0", "^1.2.0", "*"];

fn plugin(i: usize) -> PluginId {
    PluginId::parse(&format!("plugin-p{i}")).unwrap()
}

/// A catalog of `plugins` plugins, each with 5 versions of 3 dependencies (the last plugins
/// have fewer, as their dependencies would fall off the end).
fn generated(plugins: usize) -> (Catalog, usize) {
    let ranges: Vec<VersionRange> = RANGES
        .iter()
        .map(|r| VersionRange::parse(r).unwrap())
        .collect();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut catalog = Catalog::new();
    let mut edges = 0;
    for i in 0..plugins {
        for (v, version) in VERSIONS.iter().enumerate() {
            let mut targets = vec![i + 1];
            for _ in 0..2 {
                targets.push(i + 2 + (next() % 40) as usize);
            }
            targets.sort_unstable();
            targets.dedup();
            let deps: Vec<DependencySpec> = targets
                .into_iter()
                .filter(|t| *t < plugins)
                .map(|t| DependencySpec {
                    plugin_id: plugin(t),
                    service_name: None,
                    // Newer versions ask for newer dependencies.
                    range: ranges[(v + t) % ranges.len()].clone(),
                    required: true,
                    reason: None,
                })
                .collect();
            edges += deps.len();
            catalog.add_version(&plugin(i), Version::parse(version).unwrap(), &deps);
        }
    }
    (catalog, edges)
}

fn plans(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan_install_deep_tree");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for plugins in [67, 667, 6_667, 10_000] {
        let (catalog, edges) = generated(plugins);
        let none = InstalledVersions::new();
        // Depth 50 below the root (its tree reaches about 50 to 90 plugins)...
        let root = plugin(plugins - 50);
        assert!(plan_install(&catalog, &root, None, &none).is_ok());
        group.bench_with_input(BenchmarkId::new("depth_50", edges), &root, |b, root| {
            b.iter(|| plan_install(&catalog, black_box(root), None, &none).unwrap());
        });
        // ...and the whole catalog below plugin 0.
        if plugins <= 6_667 {
            let root = plugin(0);
            assert!(plan_install(&catalog, &root, None, &none).is_ok());
            group.bench_with_input(
                BenchmarkId::new("whole_catalog", edges),
                &root,
                |b, root| {
                    b.iter(|| plan_install(&catalog, black_box(root), None, &none).unwrap());
                },
            );
        }
    }
    group.finish();
}

fn cycles(c: &mut Criterion) {
    let mut group = c.benchmark_group("find_cycles_whole_graph");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for plugins in [67, 667, 6_667, 10_000] {
        let (catalog, edges) = generated(plugins);
        group.bench_function(BenchmarkId::from_parameter(edges), |b| {
            b.iter(|| black_box(find_cycles(&catalog)));
        });
    }
    group.finish();
}

criterion_group!(benches, plans, cycles);
criterion_main!(benches);
