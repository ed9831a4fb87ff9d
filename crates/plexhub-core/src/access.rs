//! Gateway access: which endpoint of a service a request path hits, and whether a caller may
//! call it. One decision function, used by every gateway route and by the explain route, which
//! evaluates every rule and reports each, so "why was this denied" has a complete answer.

use serde::Serialize;

use crate::ids::{PluginId, ServiceName};
use crate::installation::InstallationState;
use crate::manifest::{DependencySpec, EndpointSpec, HttpMethod};

/// How specific one template segment is: literal beats `:param` beats a trailing `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Specificity {
    Wildcard,
    Param,
    Literal,
}

/// Splits a request path into raw segments, refusing anything that could escape a template
/// once decoded by the target: `.`/`..` segments (also percent-encoded), an encoded `/`, NUL,
/// empty segments, or no leading `/`. `None` means no endpoint can match.
fn request_segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    if rest.is_empty() {
        return Some(Vec::new());
    }
    let segments: Vec<&str> = rest.split('/').collect();
    for segment in &segments {
        if segment.is_empty() {
            return None;
        }
        // Most segments hold no escape: they are checked as they are, without a copy.
        let escaped;
        let decoded = if segment.contains('%') {
            escaped = percent_decoded(segment)?;
            escaped.as_slice()
        } else {
            segment.as_bytes()
        };
        if decoded == b"." || decoded == b".." || decoded.contains(&b'/') || decoded.contains(&0) {
            return None;
        }
    }
    Some(segments)
}

/// Percent-decodes a segment's bytes; `None` for a malformed escape.
fn percent_decoded(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Whether a template matches the request's segments; `score` receives its specificity per
/// segment.
fn template_match(template: &str, request: &[&str], score: &mut Vec<Specificity>) -> bool {
    score.clear();
    let Some(rest) = template.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return request.is_empty();
    }
    let mut parts = rest.split('/').peekable();
    let mut index = 0;
    while let Some(part) = parts.next() {
        if part == "*" && parts.peek().is_none() {
            // A trailing `*` matches one or more remaining segments.
            if request.len() <= index {
                return false;
            }
            score.push(Specificity::Wildcard);
            return true;
        }
        let Some(segment) = request.get(index) else {
            return false;
        };
        if part.starts_with(':') && part.len() > 1 {
            score.push(Specificity::Param);
        } else if part == *segment {
            score.push(Specificity::Literal);
        } else {
            return false;
        }
        index += 1;
    }
    index == request.len()
}

/// The endpoint a request hits: among the service's endpoints of that method whose template
/// matches, an all-literal (exact) one first, then the most specific (literal segments before
/// parameters before a trailing `*`, compared left to right, then the longer template).
pub fn match_endpoint<'a>(
    endpoints: &'a [EndpointSpec],
    method: HttpMethod,
    path: &str,
) -> Option<&'a EndpointSpec> {
    let request = request_segments(path)?;
    // Two score buffers for the whole search: the best so far and the candidate's.
    let (mut best, mut best_score, mut score) = (None, Vec::new(), Vec::new());
    for endpoint in endpoints
        .iter()
        .filter(|endpoint| endpoint.method == method)
    {
        // Among equally specific templates the last wins.
        if template_match(&endpoint.path, &request, &mut score)
            && (best.is_none() || score >= best_score)
        {
            std::mem::swap(&mut best_score, &mut score);
            best = Some(endpoint);
        }
    }
    best
}

/// `"GET /contacts"`, as listed to a caller whose path matched nothing.
pub fn describe_endpoint(endpoint: &EndpointSpec) -> String {
    format!("{} {}", endpoint.method.as_str(), endpoint.path)
}

/// The target service as the gateway sees it.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The plugin that owns it.
    pub plugin_id: &'a PluginId,
    /// Its declared endpoints.
    pub endpoints: &'a [EndpointSpec],
    /// Whether a HEALTHY, UNKNOWN or DEGRADED replica exists.
    pub available: bool,
}

/// The calling plugin's installation as the gateway sees it.
#[derive(Debug, Clone, Copy)]
pub struct CallerInstallation<'a> {
    /// The caller.
    pub plugin_id: &'a PluginId,
    /// Its lifecycle state in the tenant.
    pub state: InstallationState,
    /// The dependencies its installed version's manifest declares.
    pub dependencies: &'a [DependencySpec],
    /// The permissions granted to it at install.
    pub grants: &'a [String],
}

/// One gateway request to decide.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The caller.
    pub caller: CallerInstallation<'a>,
    /// The service asked for.
    pub service_name: &'a ServiceName,
    /// The discoverable service of that name in the caller's tenant, if any (a service of a
    /// plugin that is not ACTIVE is not discoverable).
    pub target: Option<Target<'a>>,
    /// The plugin the caller expects to own the service (the seed's `targetPluginId`).
    pub expected_plugin: Option<&'a PluginId>,
    /// Method and path on the target.
    pub method: HttpMethod,
    /// Path on the target, raw (percent-encoding kept).
    pub path: &'a str,
}

/// Why a call is refused; each maps to one stable error code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Denial {
    /// No discoverable service of that name.
    ServiceNotFound,
    /// The service belongs to another plugin than the one named.
    PluginMismatch,
    /// The caller's installation is not ACTIVE.
    CallerNotActive,
    /// The caller's manifest declares no dependency on the target plugin (or service).
    AccessDenied,
    /// No endpoint of the service matches; the ones it has.
    #[serde(rename_all = "camelCase")]
    EndpointNotFound {
        /// `"GET /contacts"`…
        available_endpoints: Vec<String>,
    },
    /// The caller lacks permissions the endpoint requires.
    PermissionDenied {
        /// The missing permissions.
        missing: Vec<String>,
    },
    /// No HEALTHY, UNKNOWN or DEGRADED replica.
    ServiceUnavailable,
}

/// One rule and how it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// A stable rule name.
    pub rule: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// What was compared, in words.
    pub detail: String,
}

/// The decision: allowed (with the matched endpoint) or the first denial, and every check.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision<'a> {
    /// The matched endpoint when allowed.
    #[serde(skip)]
    pub endpoint: Option<&'a EndpointSpec>,
    /// The first rule that failed, in the order rules are listed; `None` when allowed.
    pub denial: Option<Denial>,
    /// Every rule evaluated, in order.
    pub checks: Vec<Check>,
}

impl Decision<'_> {
    /// Whether the call may go through.
    pub fn allowed(&self) -> bool {
        self.denial.is_none()
    }
}

/// Decides a gateway call, deny by default. Rules, in order (the first failure is the answer;
/// availability comes last, so a caller without access learns nothing about health):
/// service exists → it belongs to the expected plugin → caller ACTIVE → caller declares a
/// dependency on the target plugin (and on the service, if the dependency names one) → an
/// endpoint matches → the caller holds every permission it lists → a replica is available.
pub fn decide<'a>(request: &AccessRequest<'a>) -> Decision<'a> {
    evaluate(request, false)
}

/// [`decide`], with every check's `detail` written out (for the explain route; `decide`
/// leaves them empty so the hot path formats no text).
pub fn explain<'a>(request: &AccessRequest<'a>) -> Decision<'a> {
    evaluate(request, true)
}

fn evaluate<'a>(request: &AccessRequest<'a>, verbose: bool) -> Decision<'a> {
    // Details are written only when explaining.
    macro_rules! text {
        ($($args:tt)*) => {
            if verbose { format!($($args)*) } else { String::new() }
        };
    }
    let mut checks = Vec::new();
    let mut denial = None;
    let mut check = |rule: &'static str, failure: Option<Denial>, detail: String| {
        checks.push(Check {
            rule,
            passed: failure.is_none(),
            detail,
        });
        if denial.is_none() {
            denial = failure;
        }
    };
    let caller = request.caller;
    let service = request.service_name;

    let Some(target) = request.target else {
        check(
            "service_exists",
            Some(Denial::ServiceNotFound),
            text!("no discoverable service {service} in this tenant"),
        );
        return Decision {
            endpoint: None,
            denial,
            checks,
        };
    };
    check(
        "service_exists",
        None,
        text!("{service} belongs to {}", target.plugin_id),
    );
    if let Some(expected) = request.expected_plugin {
        let matches = expected == target.plugin_id;
        check(
            "target_plugin_matches",
            (!matches).then_some(Denial::PluginMismatch),
            text!(
                "the request names {expected}; {service} belongs to {}",
                target.plugin_id
            ),
        );
    }
    let active = caller.state == InstallationState::Active;
    check(
        "caller_active",
        (!active).then_some(Denial::CallerNotActive),
        text!("{} is {}", caller.plugin_id, caller.state.as_str()),
    );
    let on_plugin: Vec<&DependencySpec> = caller
        .dependencies
        .iter()
        .filter(|dependency| dependency.plugin_id == *target.plugin_id)
        .collect();
    let declared = on_plugin.iter().any(|dependency| {
        dependency
            .service_name
            .as_ref()
            .is_none_or(|named| named == service)
    });
    let detail = if declared {
        text!(
            "{} declares a dependency on {} covering {service}",
            caller.plugin_id,
            target.plugin_id
        )
    } else if on_plugin.is_empty() {
        text!(
            "{} declares no dependency on {} in its manifest",
            caller.plugin_id,
            target.plugin_id
        )
    } else {
        let named: Vec<String> = on_plugin
            .iter()
            .filter_map(|dependency| dependency.service_name.as_ref().map(ToString::to_string))
            .collect();
        text!(
            "{} depends on {} only for {}, not {service}",
            caller.plugin_id,
            target.plugin_id,
            named.join(", ")
        )
    };
    check(
        "dependency_declared",
        (!declared).then_some(Denial::AccessDenied),
        detail,
    );
    let endpoint = match_endpoint(target.endpoints, request.method, request.path);
    match endpoint {
        Some(endpoint) => {
            check(
                "endpoint_matches",
                None,
                text!(
                    "{} {} matches {}",
                    request.method.as_str(),
                    request.path,
                    describe_endpoint(endpoint)
                ),
            );
            let missing: Vec<String> = endpoint
                .permissions
                .iter()
                .filter(|permission| !caller.grants.contains(permission))
                .cloned()
                .collect();
            let detail = if endpoint.permissions.is_empty() {
                text!("the endpoint requires no permission")
            } else if missing.is_empty() {
                text!("granted: {}", endpoint.permissions.join(", "))
            } else {
                text!("not granted: {}", missing.join(", "))
            };
            check(
                "permissions_granted",
                (!missing.is_empty()).then_some(Denial::PermissionDenied { missing }),
                detail,
            );
        }
        None => {
            let available_endpoints: Vec<String> =
                target.endpoints.iter().map(describe_endpoint).collect();
            check(
                "endpoint_matches",
                Some(Denial::EndpointNotFound {
                    available_endpoints,
                }),
                text!(
                    "no endpoint of {service} matches {} {}",
                    request.method.as_str(),
                    request.path
                ),
            );
        }
    }
    check(
        "replica_available",
        (!target.available).then_some(Denial::ServiceUnavailable),
        if target.available {
            text!("{service} has a HEALTHY, UNKNOWN or DEGRADED replica")
        } else {
            text!("{service} has no HEALTHY, UNKNOWN or DEGRADED replica")
        },
    );
    Decision {
        endpoint: if denial.is_none() { endpoint } else { None },
        denial,
        checks,
    }
}

#[cfg(test)]
mod tests;
