//! Registered dependencies on both backends: concurrent replacements of one plugin's edges
//! queue instead of failing on the key the other one inserted.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use plexhub_core::dependency::{Edge, EdgeSource};
use plexhub_core::ids::PluginId;
use plexhub_core::version::VersionRange;
use plexhub_store::Store;

mod common;

use common::NOW;

fn edges(from: &PluginId, targets: &[&str]) -> Vec<Edge> {
    targets
        .iter()
        .map(|to| Edge {
            from: from.clone(),
            to: PluginId::parse(to).unwrap(),
            range: VersionRange::parse("^1.0.0").unwrap(),
            required: true,
            service_name: None,
            reason: None,
            source: EdgeSource::Registered,
        })
        .collect()
}

async fn concurrent_replacements_queue(store: Arc<dyn Store>) {
    let plugin = PluginId::parse("plugin-analytics").unwrap();
    let sets: Vec<Vec<&str>> = vec![
        vec!["plugin-crm", "plugin-billing"],
        vec!["plugin-crm", "plugin-mail"],
        vec!["plugin-crm"],
        vec!["plugin-billing", "plugin-mail", "plugin-crm"],
    ];
    for round in 0..10 {
        let writers = (0..8).map(|n| {
            let store = store.clone();
            let edges = edges(&plugin, &sets[(n + round) % sets.len()]);
            let plugin = plugin.clone();
            tokio::spawn(async move {
                store
                    .replace_registered_dependencies(std::slice::from_ref(&plugin), &edges, NOW)
                    .await
            })
        });
        for writer in writers {
            writer
                .await
                .unwrap()
                .expect("a concurrent replacement succeeds");
        }
        let mut stored: Vec<String> = store
            .registered_dependencies()
            .await
            .unwrap()
            .into_iter()
            .map(|edge| edge.to.to_string())
            .collect();
        stored.sort();
        let whole_set = sets.iter().any(|set| {
            let mut set: Vec<String> = set.iter().map(|s| (*s).to_owned()).collect();
            set.sort();
            set == stored
        });
        assert!(
            whole_set,
            "round {round}: {stored:?} is no one replacement's set"
        );
    }
}

common::on_both_backends!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_replacements_on_sqlite, concurrent_replacements_on_postgres => concurrent_replacements_queue
);
