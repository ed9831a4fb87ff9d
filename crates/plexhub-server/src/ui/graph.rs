//! The dependency graph of a tenant as SVG: one node per installed plugin (and one, dashed, per
//! plugin depended on but not installed), an edge per dependency of the installed versions,
//! required solid and optional dashed, unmet and out-of-range edges marked; on request, the
//! API's install plan of another plugin drawn over it. The edges and the
//! range rule are the resolver's: the catalog snapshot and installed versions the dependency
//! routes use, and `VersionRange::satisfies`.

use std::collections::BTreeMap;

use axum::extract::{Extension, Path, Query};
use maud::{Markup, html};
use plexhub_core::ids::PluginId;
use plexhub_core::tenant::TenantSlug;
use plexhub_core::version::Version;
use serde::Deserialize;

use super::Ui;
use super::api::segment;
use super::layout::{Section, UiError, page, tenant_nav};
use super::session::Session;
use crate::error::{ApiError, ErrorCode};

/// A plugin as drawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// Installed at this version.
    Installed(String),
    /// Installed at this version by the install plan being drawn.
    Planned(String),
    /// Depended on, not installed.
    Missing,
}

impl Node {
    /// The node's class, fill, stroke, dash pattern and second line.
    fn look(
        &self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        String,
    ) {
        match self {
            Self::Installed(version) => {
                ("installed", "#eef4ff", "#0b57d0", "none", version.clone())
            }
            Self::Planned(version) => (
                "planned",
                "#e8f5ec",
                "#146c2e",
                "5 3",
                format!("{version} (to install)"),
            ),
            Self::Missing => (
                "missing",
                "#fff",
                "#b3261e",
                "5 3",
                "not installed".to_owned(),
            ),
        }
    }
}

/// How an edge stands against the tenant's installations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum EdgeState {
    /// The dependency is installed within the range.
    Met,
    /// The dependency is not installed.
    Unmet,
    /// The dependency is installed at a version outside the range.
    Conflicting,
}

/// One dependency edge as drawn.
#[derive(Clone, Debug)]
pub(crate) struct DrawnEdge {
    /// The depending plugin.
    pub from: String,
    /// The plugin depended on.
    pub to: String,
    /// The accepted versions.
    pub range: String,
    /// Required (solid) or optional (dashed).
    pub required: bool,
    /// Met, unmet or conflicting.
    pub state: EdgeState,
}

/// Node size and spacing, in SVG units.
const NODE_WIDTH: usize = 180;
const NODE_HEIGHT: usize = 44;
const COLUMN_GAP: usize = 40;
const ROW_GAP: usize = 70;
const MARGIN: usize = 20;
/// Nodes per row at most.
const MAX_COLUMNS: usize = 6;

/// Draws `nodes` and `edges`:
/// dependents above their dependencies, layer by longest path (cycles end after one round per
/// node), at most [`MAX_COLUMNS`] nodes a row.
pub(crate) fn draw(nodes: &BTreeMap<String, Node>, edges: &[DrawnEdge]) -> Markup {
    let mut layer: BTreeMap<&str, usize> = nodes.keys().map(|id| (id.as_str(), 0)).collect();
    for _ in 0..nodes.len() {
        let mut changed = false;
        for edge in edges {
            let below = layer.get(edge.to.as_str()).copied().unwrap_or(0);
            if let Some(above) = layer.get_mut(edge.from.as_str())
                && *above < below + 1
                && below < nodes.len()
            {
                *above = below + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let top = layer.values().copied().max().unwrap_or(0);
    let mut layers: Vec<Vec<&str>> = vec![Vec::new(); top + 1];
    for (id, level) in &layer {
        layers[top - level].push(id);
    }
    // A wide layer (a thousand plugins on one dependency) wraps into rows.
    let rows: Vec<Vec<&str>> = layers
        .iter()
        .flat_map(|ids| ids.chunks(MAX_COLUMNS).map(<[&str]>::to_vec))
        .collect();
    let widest = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let width = 2 * MARGIN + widest * NODE_WIDTH + (widest - 1) * COLUMN_GAP;
    let height = 2 * MARGIN + rows.len() * NODE_HEIGHT + rows.len().saturating_sub(1) * ROW_GAP;
    let mut position: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (row, ids) in rows.iter().enumerate() {
        let offset = (widest - ids.len()) * (NODE_WIDTH + COLUMN_GAP) / 2;
        for (column, id) in ids.iter().enumerate() {
            let x = MARGIN + offset + column * (NODE_WIDTH + COLUMN_GAP);
            let y = MARGIN + row * (NODE_HEIGHT + ROW_GAP);
            position.insert(id, (x, y));
        }
    }
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="graph-title"
            viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) {
            title #graph-title { "Dependency graph: " (nodes.len()) " plugins, " (edges.len()) " dependencies" }
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#4a535e" {}
                }
            }
            @for edge in edges {
                @if let (Some((x1, y1)), Some((x2, y2))) = (position.get(edge.from.as_str()), position.get(edge.to.as_str())) {
                    @let (color, word) = match edge.state {
                        EdgeState::Met => ("#4a535e", ""),
                        EdgeState::Unmet => ("#b3261e", "unmet "),
                        EdgeState::Conflicting => ("#b3261e", "conflicting "),
                    };
                    @let (sx, sy, ex, ey) = (x1 + NODE_WIDTH / 2, y1 + NODE_HEIGHT, x2 + NODE_WIDTH / 2, *y2);
                    g class={ "edge " (if edge.required { "required" } else { "optional" }) " " (format!("{:?}", edge.state).to_lowercase()) }
                        data-from=(edge.from) data-to=(edge.to) {
                        line x1=(sx) y1=(sy) x2=(ex) y2=(ey) stroke=(color) stroke-width="2"
                            stroke-dasharray=(if edge.required { "none" } else { "6 4" }) marker-end="url(#arrow)" {}
                        text x=((sx + ex) / 2 + 4) y=((sy + ey) / 2) font-size="12" fill=(color) {
                            (word) (if edge.required { "" } else { "optional " }) (edge.range)
                        }
                    }
                }
            }
            @for (id, node) in nodes {
                @if let Some((x, y)) = position.get(id.as_str()) {
                    @let (class, fill, stroke, dash, second) = node.look();
                    g class={ "node " (class) } data-plugin=(id) {
                        rect x=(x) y=(y) width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6"
                            fill=(fill) stroke=(stroke) stroke-dasharray=(dash) {}
                        text x=(x + 8) y=(y + 18) font-size="13" font-weight="600" fill="#1b1f24" { (id) }
                        text x=(x + 8) y=(y + 35) font-size="12" fill="#4a535e" { (second) }
                    }
                }
            }
        }
    }
}

/// The graph page's query: a plugin whose install plan to draw.
#[derive(Deserialize, Default)]
pub(crate) struct GraphQuery {
    plan: Option<String>,
}

/// `GET /ui/tenants/{slug}/graph[?plan=<pluginId>]`.
pub(crate) async fn graph(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path(slug): Path<String>,
    Query(query): Query<GraphQuery>,
) -> Result<Markup, UiError> {
    ui.api
        .get(&format!("/api/v1/tenants/{}", segment(&slug)), None)
        .await?;
    let not_found = || {
        ApiError::new(
            ErrorCode::TenantNotFound,
            format!("tenant \"{slug}\" not found"),
        )
    };
    let parsed = TenantSlug::parse(&slug).map_err(|_| not_found())?;
    let tenant = ui
        .state
        .store
        .tenant_by_slug(&parsed)
        .await?
        .ok_or_else(not_found)?;
    let catalog = crate::dependencies::catalog(&ui.state).await?;
    let installed = crate::dependencies::installed_versions(&ui.state, tenant.id).await?;
    let mut nodes: BTreeMap<String, Node> = installed
        .iter()
        .map(|(id, version)| (id.to_string(), Node::Installed(version.to_string())))
        .collect();
    // The install plan of a plugin, as the API makes it, drawn over what is installed.
    let plan = match query.plan.as_deref().filter(|plan| !plan.is_empty()) {
        None => None,
        Some(plugin) => Some(
            ui.api
                .post(
                    &format!("/api/v1/tenants/{}/plans/install", segment(&slug)),
                    serde_json::json!({ "pluginId": plugin }),
                )
                .await,
        ),
    };
    let mut versions = installed.clone();
    if let Some(Ok(plan)) = &plan {
        for step in plan["steps"].as_array().into_iter().flatten() {
            let parsed = (
                PluginId::parse(step["pluginId"].as_str().unwrap_or_default()),
                Version::parse(step["version"].as_str().unwrap_or_default()),
            );
            if step["action"] == "install"
                && let (Ok(plugin), Ok(version)) = parsed
            {
                nodes.insert(plugin.to_string(), Node::Planned(version.to_string()));
                versions.insert(plugin, version);
            }
        }
    }
    let mut not_installed: Vec<String> = catalog
        .plugin_ids()
        .filter(|plugin| !installed.contains_key(*plugin))
        .map(ToString::to_string)
        .collect();
    not_installed.sort();
    let mut edges = Vec::new();
    for (plugin, version) in &versions {
        for edge in catalog.edges(plugin, version) {
            let state = match versions.get(&edge.to) {
                None => EdgeState::Unmet,
                Some(at) if edge.range.satisfies(at) => EdgeState::Met,
                Some(_) => EdgeState::Conflicting,
            };
            nodes.entry(edge.to.to_string()).or_insert(Node::Missing);
            edges.push(DrawnEdge {
                from: plugin.to_string(),
                to: edge.to.to_string(),
                range: edge.range.as_str().to_owned(),
                required: edge.required,
                state,
            });
        }
    }
    let problems: Vec<&DrawnEdge> = edges
        .iter()
        .filter(|edge| edge.state != EdgeState::Met && edge.required)
        .collect();
    Ok(page(
        &format!("Dependency graph of {slug}"),
        &session,
        Section::Tenants,
        html! {
            (tenant_nav(&slug, "Dependency graph"))
            p { "Arrows point from a plugin to what it depends on; solid: required, dashed: optional; red: unmet or out of range." }
            form method="get" {
                div.row {
                    div {
                        label for="plan" { "Draw the install plan of" }
                        select #plan name="plan" {
                            option value="" { "(nothing)" }
                            @for id in &not_installed {
                                option value=(id) selected[query.plan.as_deref() == Some(id.as_str())] { (id) }
                            }
                        }
                    }
                    div { button type="submit" { "Draw" } }
                }
            }
            @match &plan {
                Some(Ok(_)) => { p { "Green dashed: what the plan installs." } }
                Some(Err(failure)) => { div.problem role="alert" { p { strong { (failure.code) } ": " (failure.message) } } }
                None => {}
            }
            @if nodes.is_empty() { p { "Nothing installed." } }
            div.table { (draw(&nodes, &edges)) }
            @if !problems.is_empty() {
                h2 { "Problems" }
                ul { @for edge in problems {
                    li.bad { (edge.from) " requires " (edge.to) " " (edge.range) ": "
                        (if edge.state == EdgeState::Unmet { "not installed" } else { "installed at a version out of range" }) }
                } }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: &str, to: &str, required: bool, state: EdgeState) -> DrawnEdge {
        DrawnEdge {
            from: from.to_owned(),
            to: to.to_owned(),
            range: "^1.0.0".to_owned(),
            required,
            state,
        }
    }

    #[test]
    fn marks_unmet_conflicting_and_optional_edges_and_missing_nodes() {
        let nodes = BTreeMap::from([
            ("a".to_owned(), Node::Installed("1.0.0".to_owned())),
            ("b".to_owned(), Node::Planned("2.0.0".to_owned())),
            ("c".to_owned(), Node::Missing),
        ]);
        let edges = [
            edge("a", "b", true, EdgeState::Conflicting),
            edge("a", "c", true, EdgeState::Unmet),
            edge("b", "c", false, EdgeState::Unmet),
        ];
        let svg = draw(&nodes, &edges).into_string();
        assert_eq!(svg.matches("class=\"node installed\"").count(), 1);
        assert_eq!(svg.matches("class=\"node planned\"").count(), 1);
        assert_eq!(svg.matches("class=\"node missing\"").count(), 1);
        assert!(svg.contains("class=\"edge required conflicting\" data-from=\"a\" data-to=\"b\""));
        assert!(svg.contains("class=\"edge required unmet\" data-from=\"a\" data-to=\"c\""));
        assert!(svg.contains("class=\"edge optional unmet\" data-from=\"b\" data-to=\"c\""));
    }

    #[test]
    fn dependents_are_drawn_above_their_dependencies_and_cycles_end() {
        let nodes = BTreeMap::from([
            ("a".to_owned(), Node::Installed("1.0.0".to_owned())),
            ("b".to_owned(), Node::Installed("1.0.0".to_owned())),
        ]);
        let chain = draw(&nodes, &[edge("a", "b", true, EdgeState::Met)]).into_string();
        let y = |id: &str| {
            let node = chain.find(&format!("data-plugin=\"{id}\"")).expect("node");
            let rest = &chain[node..];
            let start = rest.find(" y=\"").expect("y") + 4;
            rest[start..]
                .split('"')
                .next()
                .expect("value")
                .parse::<usize>()
                .expect("number")
        };
        assert!(y("a") < y("b"), "{chain}");
        let cycle = [
            edge("a", "b", true, EdgeState::Met),
            edge("b", "a", true, EdgeState::Met),
        ];
        assert!(draw(&nodes, &cycle).into_string().contains("<svg"));
    }

    #[test]
    fn a_wide_layer_wraps_into_rows() {
        let nodes: BTreeMap<String, Node> = (0..20)
            .map(|n| (format!("p{n:02}"), Node::Installed("1.0.0".to_owned())))
            .collect();
        let svg = draw(&nodes, &[]).into_string();
        let width = NODE_WIDTH * MAX_COLUMNS + COLUMN_GAP * (MAX_COLUMNS - 1) + 2 * MARGIN;
        assert!(svg.contains(&format!("width=\"{width}\"")), "{svg}");
        assert_eq!(svg.matches("class=\"node installed\"").count(), 20);
    }
}
