//! The dependency graph of a tenant as SVG: one node per installed plugin (and one, dashed, per
//! plugin depended on but not installed), an edge per dependency of the installed versions,
//! required solid and optional dashed, unmet and out-of-range edges marked. The edges and the
//! range rule are the resolver's: the catalog snapshot and installed versions the dependency
//! routes use, and `VersionRange::satisfies`.

use std::collections::BTreeMap;

use axum::extract::{Extension, Path};
use maud::{Markup, html};
use plexhub_core::tenant::TenantSlug;

use super::Ui;
use super::api::segment;
use super::layout::{Section, UiError, page, tenant_nav};
use super::session::Session;
use crate::error::{ApiError, ErrorCode};

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

/// Draws `nodes` (plugin id → label; `None` for a plugin that is not installed) and `edges`:
/// dependents above their dependencies, layer by longest path (cycles end after one round per
/// node).
pub(crate) fn draw(nodes: &BTreeMap<String, Option<String>>, edges: &[DrawnEdge]) -> Markup {
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
    let mut rows: Vec<Vec<&str>> = vec![Vec::new(); top + 1];
    for (id, level) in &layer {
        rows[top - level].push(id);
    }
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
            @for (id, label) in nodes {
                @if let Some((x, y)) = position.get(id.as_str()) {
                    g class={ "node " (if label.is_some() { "installed" } else { "missing" }) } data-plugin=(id) {
                        rect x=(x) y=(y) width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6"
                            fill=(if label.is_some() { "#eef4ff" } else { "#fff" })
                            stroke=(if label.is_some() { "#0b57d0" } else { "#b3261e" })
                            stroke-dasharray=(if label.is_some() { "none" } else { "5 3" }) {}
                        text x=(x + 8) y=(y + 18) font-size="13" font-weight="600" fill="#1b1f24" { (id) }
                        text x=(x + 8) y=(y + 35) font-size="12" fill="#4a535e" {
                            (label.as_deref().unwrap_or("not installed"))
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/tenants/{slug}/graph`.
pub(crate) async fn graph(
    Extension(ui): Extension<Ui>,
    Extension(session): Extension<Session>,
    Path(slug): Path<String>,
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
    let mut nodes: BTreeMap<String, Option<String>> = installed
        .iter()
        .map(|(id, version)| (id.to_string(), Some(version.to_string())))
        .collect();
    let mut edges = Vec::new();
    for (plugin, version) in &installed {
        for edge in catalog.edges(plugin, version) {
            let state = match installed.get(&edge.to) {
                None => EdgeState::Unmet,
                Some(at) if edge.range.satisfies(at) => EdgeState::Met,
                Some(_) => EdgeState::Conflicting,
            };
            nodes.entry(edge.to.to_string()).or_insert(None);
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
            @if installed.is_empty() { p { "Nothing installed." } }
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
            ("a".to_owned(), Some("1.0.0".to_owned())),
            ("b".to_owned(), Some("2.0.0".to_owned())),
            ("c".to_owned(), None),
        ]);
        let edges = [
            edge("a", "b", true, EdgeState::Conflicting),
            edge("a", "c", true, EdgeState::Unmet),
            edge("b", "c", false, EdgeState::Unmet),
        ];
        let svg = draw(&nodes, &edges).into_string();
        assert_eq!(svg.matches("class=\"node installed\"").count(), 2);
        assert_eq!(svg.matches("class=\"node missing\"").count(), 1);
        assert!(svg.contains("class=\"edge required conflicting\" data-from=\"a\" data-to=\"b\""));
        assert!(svg.contains("class=\"edge required unmet\" data-from=\"a\" data-to=\"c\""));
        assert!(svg.contains("class=\"edge optional unmet\" data-from=\"b\" data-to=\"c\""));
    }

    #[test]
    fn dependents_are_drawn_above_their_dependencies_and_cycles_end() {
        let nodes = BTreeMap::from([
            ("a".to_owned(), Some("1.0.0".to_owned())),
            ("b".to_owned(), Some("1.0.0".to_owned())),
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
}
