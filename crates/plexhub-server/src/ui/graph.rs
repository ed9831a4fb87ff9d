//! The dependency graph of a tenant as SVG: one node per installed plugin (and one, dashed, per
//! plugin depended on but not installed), an edge per dependency of the installed versions,
//! required solid and optional dashed, unmet and out-of-range edges marked; on request, the
//! API's install plan of another plugin drawn over it. The edges and the
//! range rule are the resolver's: the catalog snapshot and installed versions the dependency
//! routes use, and `VersionRange::satisfies`.

use std::collections::BTreeMap;

use axum::extract::{Extension, Path, Query};
use layout::adt::dag::NodeHandle;
use layout::core::base::Orientation;
use layout::core::format::{ClipHandle, RenderBackend};
use layout::core::geometry::Point;
use layout::core::style::StyleAttr;
use layout::std_shapes::shapes::{Arrow, Element, ShapeKind};
use layout::topo::layout::VisualGraph;
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

impl DrawnEdge {
    /// Merges another dependency between the same two plugins into this edge: required if
    /// either is, both ranges shown, the worse state.
    fn absorb(&mut self, other: DrawnEdge) {
        self.required |= other.required;
        if !self.range.split(" and ").any(|range| range == other.range) {
            self.range = format!("{} and {}", self.range, other.range);
        }
        let rank = |state: EdgeState| match state {
            EdgeState::Met => 0,
            EdgeState::Unmet => 1,
            EdgeState::Conflicting => 2,
        };
        if rank(other.state) > rank(self.state) {
            self.state = other.state;
        }
    }
}

/// Node size, in SVG units.
const NODE_WIDTH: f64 = 180.0;
const NODE_HEIGHT: f64 = 44.0;
/// Room around the drawing.
const MARGIN: f64 = 20.0;
/// Plugins drawn as a picture at most; a larger tenant gets its edges as a table (a picture of
/// hundreds of boxes is not readable, and the layout's cost grows with the cube of the nodes:
/// measured ~30 ms at 60 on this project's 2-core machine, ~350 ms at 150).
pub(crate) const MAX_DRAWN_NODES: usize = 60;

/// Where `layout-rs` put the nodes and routed the edges: a render backend that records the
/// geometry (each node and edge carries its index as its `properties`) instead of drawing, so
/// the page draws them itself, with its classes, colours and data attributes.
#[derive(Default)]
struct Placement {
    /// Top-left corner of each node, by index.
    nodes: BTreeMap<usize, Point>,
    /// Each edge's Bézier control points (an exit vector, then entry vectors) and whether its
    /// head is at the path's end (an edge reversed to break a cycle has it at the start).
    edges: BTreeMap<usize, (Vec<(Point, Point)>, bool)>,
}

impl RenderBackend for Placement {
    fn draw_rect(
        &mut self,
        xy: Point,
        _size: Point,
        _look: &StyleAttr,
        properties: Option<String>,
        _clip: Option<ClipHandle>,
    ) {
        if let Some(index) = properties.and_then(|index| index.parse().ok()) {
            self.nodes.insert(index, xy);
        }
    }

    fn draw_line(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_circle(&mut self, _: Point, _: Point, _: &StyleAttr, _: Option<String>) {}

    fn draw_text(&mut self, _: Point, _: &str, _: &StyleAttr) {}

    fn draw_arrow(
        &mut self,
        path: &[(Point, Point)],
        _dashed: bool,
        head: (bool, bool),
        _look: &StyleAttr,
        properties: Option<String>,
        _text: &str,
    ) {
        if let Some(index) = properties.and_then(|index| index.parse().ok()) {
            self.edges.insert(index, (path.to_vec(), head.1));
        }
    }

    fn create_clip(&mut self, _: Point, _: Point, _: usize) -> ClipHandle {
        0
    }
}

/// Lays `nodes` and `edges` out with `layout-rs` (layered, top to bottom, crossings
/// reduced): dependents above their dependencies; a cycle is drawn with one edge reversed.
fn place(nodes: &BTreeMap<String, Node>, edges: &[DrawnEdge]) -> Placement {
    let mut graph = VisualGraph::new(Orientation::TopToBottom);
    let handles: BTreeMap<&str, NodeHandle> = nodes
        .keys()
        .enumerate()
        .map(|(index, id)| {
            let element = Element::create_with_properties(
                ShapeKind::new_box(id),
                StyleAttr::simple(),
                Orientation::TopToBottom,
                Point::new(NODE_WIDTH, NODE_HEIGHT),
                index.to_string(),
            );
            (id.as_str(), graph.add_node(element))
        })
        .collect();
    for (index, edge) in edges.iter().enumerate() {
        if let (Some(from), Some(to)) = (
            handles.get(edge.from.as_str()),
            handles.get(edge.to.as_str()),
        ) && from != to
        {
            graph.add_edge(
                Arrow::simple_with_properties(&edge.range, index.to_string()),
                *from,
                *to,
            );
        }
    }
    let mut placement = Placement::default();
    if graph.num_nodes() > 0 {
        graph.do_it(false, false, false, &mut placement);
    }
    placement
}

/// An SVG path through Bézier control points, as `layout-rs` routes edges.
fn curve(path: &[(Point, Point)], shift: Point) -> String {
    let at = |point: Point| (point.x - shift.x, point.y - shift.y);
    let mut d = String::new();
    if let [(start, exit), (entry, end), rest @ ..] = path {
        let (start, exit, entry, end) = (at(*start), at(*exit), at(*entry), at(*end));
        d = format!(
            "M {:.1} {:.1} C {:.1} {:.1}, {:.1} {:.1}, {:.1} {:.1}",
            start.0, start.1, exit.0, exit.1, entry.0, entry.1, end.0, end.1
        );
        for (entry, end) in rest {
            let (entry, end) = (at(*entry), at(*end));
            d.push_str(&format!(
                " S {:.1} {:.1}, {:.1} {:.1}",
                entry.0, entry.1, end.0, end.1
            ));
        }
    }
    d
}

/// Draws `nodes` and `edges` as SVG, laid out by [`place`]; `None` above [`MAX_DRAWN_NODES`]
/// or if the layout fails (the crate asserts its invariants by panicking).
pub(crate) fn draw(nodes: &BTreeMap<String, Node>, edges: &[DrawnEdge]) -> Option<Markup> {
    if nodes.len() > MAX_DRAWN_NODES {
        return None;
    }
    let placement =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| place(nodes, edges))).ok()?;
    // The drawing's extent: every node and every control point, plus a margin.
    let points = placement
        .nodes
        .values()
        .flat_map(|at| [*at, Point::new(at.x + NODE_WIDTH, at.y + NODE_HEIGHT)])
        .chain(
            placement
                .edges
                .values()
                .flat_map(|(path, _)| path.iter().flat_map(|(a, b)| [*a, *b])),
        );
    let (mut low, mut high) = (
        Point::new(f64::MAX, f64::MAX),
        Point::new(f64::MIN, f64::MIN),
    );
    for point in points {
        low = Point::new(low.x.min(point.x), low.y.min(point.y));
        high = Point::new(high.x.max(point.x), high.y.max(point.y));
    }
    if low.x > high.x {
        (low, high) = (Point::zero(), Point::zero());
    }
    let shift = Point::new(low.x - MARGIN, low.y - MARGIN);
    let (width, height) = (
        (high.x - low.x + 2.0 * MARGIN).ceil(),
        (high.y - low.y + 2.0 * MARGIN).ceil(),
    );
    Some(html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" aria-labelledby="graph-title"
            viewBox={ "0 0 " (width) " " (height) } width=(width) height=(height) {
            title #graph-title { "Dependency graph: " (nodes.len()) " plugins, " (edges.len()) " dependencies" }
            defs {
                marker #arrow viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse" {
                    path d="M 0 0 L 10 5 L 0 10 z" fill="#4a535e" {}
                }
            }
            @for (index, edge) in edges.iter().enumerate() {
                @if let Some((path, head_at_end)) = placement.edges.get(&index) {
                    @let (color, word) = match edge.state {
                        EdgeState::Met => ("#4a535e", ""),
                        EdgeState::Unmet => ("#b3261e", "unmet "),
                        EdgeState::Conflicting => ("#b3261e", "conflicting "),
                    };
                    g class={ "edge " (if edge.required { "required" } else { "optional" }) " " (format!("{:?}", edge.state).to_lowercase()) }
                        data-from=(edge.from) data-to=(edge.to) {
                        path id={ "edge-" (index) } d=(curve(path, shift)) fill="none" stroke=(color) stroke-width="2"
                            stroke-dasharray=(if edge.required { "none" } else { "6 4" })
                            marker-end=[head_at_end.then_some("url(#arrow)")]
                            marker-start=[(!head_at_end).then_some("url(#arrow)")] {}
                        @if let Some((_, middle)) = path.get(path.len() / 2) {
                            text x=(format!("{:.1}", middle.x - shift.x + 6.0)) y=(format!("{:.1}", middle.y - shift.y)) font-size="12" fill=(color) {
                                (word) (if edge.required { "" } else { "optional " }) (edge.range)
                            }
                        }
                    }
                }
            }
            @for (index, (id, node)) in nodes.iter().enumerate() {
                @if let Some(at) = placement.nodes.get(&index) {
                    @let (class, fill, stroke, dash, second) = node.look();
                    @let (x, y) = (at.x - shift.x, at.y - shift.y);
                    g class={ "node " (class) } data-plugin=(id) {
                        rect x=(x) y=(y) width=(NODE_WIDTH) height=(NODE_HEIGHT) rx="6"
                            fill=(fill) stroke=(stroke) stroke-dasharray=(dash) {}
                        text x=(x + 8.0) y=(y + 18.0) font-size="13" font-weight="600" fill="#1b1f24" { (id) }
                        text x=(x + 8.0) y=(y + 35.0) font-size="12" fill="#4a535e" { (second) }
                    }
                }
            }
        }
    })
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
            let drawn = DrawnEdge {
                from: plugin.to_string(),
                to: edge.to.to_string(),
                range: edge.range.as_str().to_owned(),
                required: edge.required,
                state,
            };
            // A plugin depending on two services of another is one arrow between the two.
            match edges
                .iter_mut()
                .find(|known: &&mut DrawnEdge| known.from == drawn.from && known.to == drawn.to)
            {
                Some(known) => known.absorb(drawn),
                None => edges.push(drawn),
            }
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
            @match draw(&nodes, &edges) {
                Some(picture) => { div.table { (picture) } }
                None => {
                    p { (nodes.len()) " plugins: listed instead of drawn (a picture holds " (MAX_DRAWN_NODES) " at most); their dependencies:" }
                    div.table { table {
                        thead { tr { th scope="col" { "Plugin" } th scope="col" { "Depends on" } th scope="col" { "Range" } th scope="col" { "State" } } }
                        tbody { @for edge in &edges {
                            tr {
                                td { (edge.from) } td { (edge.to) } td.mono { (edge.range) }
                                td { (if edge.required { "required" } else { "optional" }) ", "
                                    (match edge.state { EdgeState::Met => "met", EdgeState::Unmet => "not installed", EdgeState::Conflicting => "out of range" }) }
                            }
                        } }
                    } }
                }
            }
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

    fn drawn(nodes: &BTreeMap<String, Node>, edges: &[DrawnEdge]) -> String {
        draw(nodes, edges)
            .expect("small enough to draw")
            .into_string()
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
        let svg = drawn(&nodes, &edges);
        assert_eq!(svg.matches("class=\"node installed\"").count(), 1);
        assert_eq!(svg.matches("class=\"node planned\"").count(), 1);
        assert_eq!(svg.matches("class=\"node missing\"").count(), 1);
        assert!(svg.contains("class=\"edge required conflicting\" data-from=\"a\" data-to=\"b\""));
        assert!(svg.contains("class=\"edge required unmet\" data-from=\"a\" data-to=\"c\""));
        assert!(svg.contains("class=\"edge optional unmet\" data-from=\"b\" data-to=\"c\""));
        assert_eq!(
            svg.matches(" id=\"edge-").count(),
            3,
            "every edge routed: {svg}"
        );
    }

    /// The `y` of a node's box in a drawing.
    fn y(svg: &str, id: &str) -> f64 {
        let node = svg.find(&format!("data-plugin=\"{id}\"")).expect("node");
        let rest = &svg[node..];
        let start = rest.find(" y=\"").expect("y") + 4;
        rest[start..]
            .split('"')
            .next()
            .expect("value")
            .parse()
            .expect("number")
    }

    #[test]
    fn dependents_are_drawn_above_their_dependencies_and_cycles_end() {
        let nodes: BTreeMap<String, Node> = ["a", "b", "c"]
            .map(|id| (id.to_owned(), Node::Installed("1.0.0".to_owned())))
            .into();
        let chain = drawn(
            &nodes,
            &[
                edge("a", "b", true, EdgeState::Met),
                edge("b", "c", true, EdgeState::Met),
            ],
        );
        assert!(
            y(&chain, "a") < y(&chain, "b") && y(&chain, "b") < y(&chain, "c"),
            "{chain}"
        );
        assert!(
            !chain.contains("marker-start"),
            "every head at the dependency"
        );
        let cycle = [
            edge("a", "b", true, EdgeState::Met),
            edge("b", "a", true, EdgeState::Met),
        ];
        let drawn_cycle = drawn(&nodes, &cycle);
        assert_eq!(
            drawn_cycle.matches(" id=\"edge-").count(),
            2,
            "{drawn_cycle}"
        );
    }

    #[test]
    fn two_dependencies_between_two_plugins_are_one_edge() {
        let mut merged = edge("a", "b", false, EdgeState::Met);
        merged.absorb(edge("a", "b", true, EdgeState::Met));
        assert!(merged.required);
        assert_eq!(merged.range, "^1.0.0");
        let mut other = edge("a", "b", true, EdgeState::Conflicting);
        other.range = "^2.0.0".to_owned();
        merged.absorb(other);
        assert_eq!(merged.range, "^1.0.0 and ^2.0.0");
        assert_eq!(merged.state, EdgeState::Conflicting);
    }

    #[test]
    fn a_large_tenant_is_not_drawn() {
        let nodes: BTreeMap<String, Node> = (0..=MAX_DRAWN_NODES)
            .map(|n| (format!("p{n:03}"), Node::Installed("1.0.0".to_owned())))
            .collect();
        assert!(draw(&nodes, &[]).is_none());
        let mut fewer = nodes;
        fewer.pop_first();
        let svg = draw(&fewer, &[]).expect("drawn").into_string();
        assert_eq!(
            svg.matches("class=\"node installed\"").count(),
            MAX_DRAWN_NODES
        );
    }
}
