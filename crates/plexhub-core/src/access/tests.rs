#![allow(clippy::unwrap_used)]

use serde_json::Map;

use super::*;
use crate::version::VersionRange;

fn endpoint(method: HttpMethod, path: &str, permissions: &[&str]) -> EndpointSpec {
    EndpointSpec {
        method,
        path: path.to_owned(),
        description: None,
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        metadata: Map::new(),
    }
}

fn crm_endpoints() -> Vec<EndpointSpec> {
    vec![
        endpoint(HttpMethod::Get, "/contacts", &["plugin.crm.contacts.read"]),
        endpoint(
            HttpMethod::Get,
            "/contacts/:id",
            &["plugin.crm.contacts.read"],
        ),
        endpoint(HttpMethod::Get, "/contacts/search", &[]),
        endpoint(HttpMethod::Get, "/files.json", &[]),
        endpoint(HttpMethod::Get, "/files/*", &[]),
        endpoint(
            HttpMethod::Post,
            "/contacts",
            &["plugin.crm.contacts.write"],
        ),
    ]
}

fn matched(method: HttpMethod, path: &str) -> Option<String> {
    let endpoints = crm_endpoints();
    match_endpoint(&endpoints, method, path).map(describe_endpoint)
}

#[test]
fn literal_segments_beat_parameters_and_parameters_beat_wildcards() {
    assert_eq!(
        matched(HttpMethod::Get, "/contacts").as_deref(),
        Some("GET /contacts")
    );
    assert_eq!(
        matched(HttpMethod::Get, "/contacts/search").as_deref(),
        Some("GET /contacts/search")
    );
    assert_eq!(
        matched(HttpMethod::Get, "/contacts/42").as_deref(),
        Some("GET /contacts/:id")
    );
    assert_eq!(
        matched(HttpMethod::Get, "/files/a/b.txt").as_deref(),
        Some("GET /files/*")
    );
    assert_eq!(
        matched(HttpMethod::Post, "/contacts").as_deref(),
        Some("POST /contacts")
    );
    assert_eq!(matched(HttpMethod::Delete, "/contacts"), None);
    assert_eq!(
        matched(HttpMethod::Get, "/files"),
        None,
        "* needs at least one segment"
    );
}

#[test]
fn paths_that_could_escape_a_template_match_nothing() {
    for path in [
        "/contacts/..",
        "/contacts/.",
        "/contacts/%2e%2e",
        "/contacts/%2E%2e",
        "/contacts/1%2fx",
        "/contacts/1%2Fx",
        "/contacts/a%00",
        "/contacts/%zz",
        "/contacts//",
        "/contacts/",
        "contacts",
        "/filesXjson",
        "/files%2ejson",
        "/files/../contacts",
    ] {
        assert_eq!(matched(HttpMethod::Get, path), None, "{path}");
    }
    assert_eq!(
        matched(HttpMethod::Get, "/files.json").as_deref(),
        Some("GET /files.json")
    );
    assert_eq!(
        matched(HttpMethod::Get, "/contacts/a%20b").as_deref(),
        Some("GET /contacts/:id")
    );
}

fn analytics_dependencies(service: Option<&str>) -> Vec<DependencySpec> {
    vec![DependencySpec {
        plugin_id: PluginId::parse("plugin-crm").unwrap(),
        service_name: service.map(|s| ServiceName::parse(s).unwrap()),
        range: VersionRange::parse("^1.0.0").unwrap(),
        required: true,
        reason: None,
    }]
}

struct Fixture {
    caller: PluginId,
    owner: PluginId,
    service: ServiceName,
    endpoints: Vec<EndpointSpec>,
    grants: Vec<String>,
}

impl Fixture {
    fn new() -> Self {
        Self {
            caller: PluginId::parse("plugin-analytics").unwrap(),
            owner: PluginId::parse("plugin-crm").unwrap(),
            service: ServiceName::parse("crm.contacts").unwrap(),
            endpoints: crm_endpoints(),
            grants: vec!["plugin.crm.contacts.read".to_owned()],
        }
    }

    fn request<'a>(
        &'a self,
        dependencies: &'a [DependencySpec],
        state: InstallationState,
        available: bool,
        path: &'a str,
    ) -> AccessRequest<'a> {
        AccessRequest {
            caller: CallerInstallation {
                plugin_id: &self.caller,
                state,
                dependencies,
                grants: &self.grants,
            },
            service_name: &self.service,
            target: Some(Target {
                plugin_id: &self.owner,
                endpoints: &self.endpoints,
                available,
            }),
            expected_plugin: None,
            method: HttpMethod::Get,
            path,
        }
    }
}

#[test]
fn an_active_dependent_with_its_grants_is_allowed() {
    let fixture = Fixture::new();
    let dependencies = analytics_dependencies(Some("crm.contacts"));
    let request = fixture.request(
        &dependencies,
        InstallationState::Active,
        true,
        "/contacts/7",
    );
    let decision = decide(&request);
    assert!(decision.allowed(), "{decision:?}");
    assert_eq!(
        decision.endpoint.map(describe_endpoint).as_deref(),
        Some("GET /contacts/:id")
    );
    assert!(decision.checks.iter().all(|check| check.passed));
    assert_eq!(decision.checks.len(), 6);
    assert!(decision.checks.iter().all(|check| check.detail.is_empty()));
    let explained = explain(&request);
    assert_eq!(explained.denial, None);
    assert!(
        explained
            .checks
            .iter()
            .all(|check| !check.detail.is_empty())
    );
    assert_eq!(
        explained.checks[2].detail,
        "plugin-analytics declares a dependency on plugin-crm covering crm.contacts"
    );
}

#[test]
fn each_rule_denies_with_its_own_code_and_every_rule_is_reported() {
    let fixture = Fixture::new();
    let on_crm = analytics_dependencies(None);
    let other_service = analytics_dependencies(Some("crm.deals"));
    let none: Vec<DependencySpec> = Vec::new();
    let cases = [
        (
            &on_crm,
            InstallationState::Disabled,
            true,
            "/contacts",
            Denial::CallerNotActive,
        ),
        (
            &none,
            InstallationState::Active,
            true,
            "/contacts",
            Denial::AccessDenied,
        ),
        (
            &other_service,
            InstallationState::Active,
            true,
            "/contacts",
            Denial::AccessDenied,
        ),
        (
            &on_crm,
            InstallationState::Active,
            false,
            "/contacts",
            Denial::ServiceUnavailable,
        ),
    ];
    for (dependencies, state, available, path, expected) in cases {
        let request = fixture.request(dependencies, state, available, path);
        let decision = decide(&request);
        assert_eq!(decision.denial, Some(expected.clone()));
        assert!(decision.endpoint.is_none());
        assert_eq!(
            decision.checks.iter().filter(|c| !c.passed).count(),
            1,
            "{decision:?}"
        );
    }

    let mut fixture = Fixture::new();
    fixture.grants.clear();
    let request = fixture.request(&on_crm, InstallationState::Active, true, "/contacts");
    assert_eq!(
        decide(&request).denial,
        Some(Denial::PermissionDenied {
            missing: vec!["plugin.crm.contacts.read".to_owned()]
        })
    );
    let request = fixture.request(&on_crm, InstallationState::Active, true, "/contacts/..");
    let Some(Denial::EndpointNotFound {
        available_endpoints,
    }) = decide(&request).denial
    else {
        panic!("endpoint not found expected");
    };
    assert_eq!(available_endpoints[0], "GET /contacts");

    // Without access, an unavailable service still answers ACCESS_DENIED first.
    let request = fixture.request(&none, InstallationState::Active, false, "/contacts");
    let decision = decide(&request);
    assert_eq!(decision.denial, Some(Denial::AccessDenied));
    assert_eq!(decision.checks.iter().filter(|c| !c.passed).count(), 3);

    let mut request = fixture.request(&on_crm, InstallationState::Active, true, "/contacts");
    let someone_else = PluginId::parse("plugin-erp").unwrap();
    request.expected_plugin = Some(&someone_else);
    assert_eq!(decide(&request).denial, Some(Denial::PluginMismatch));
    request.target = None;
    let decision = decide(&request);
    assert_eq!(decision.denial, Some(Denial::ServiceNotFound));
    assert_eq!(decision.checks.len(), 1);
}
