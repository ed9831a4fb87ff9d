//! Installations: a catalog version of a plugin installed for one tenant, its lifecycle and the
//! rules checked at install time.

use std::fmt;

use serde::Serialize;

use crate::ids::PluginId;
use crate::manifest::{DependencySpec, Manifest};
use crate::tenant::TenantId;
use crate::version::{Version, VersionRange};

/// A catalog version of a plugin installed for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installation {
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// The installed plugin.
    pub plugin_id: PluginId,
    /// The installed catalog version.
    pub version: Version,
    /// Lifecycle state.
    pub state: InstallationState,
    /// Where the plugin is reachable, as set by the operator; `None` for a plugin that exposes
    /// no service (it calls others and is never called).
    pub base_url: Option<BaseUrl>,
    /// Browser origins allowed to reach the plugin through the hub.
    pub allowed_origins: Vec<String>,
    /// Permissions granted to this installation when it calls other plugins.
    pub grants: Vec<String>,
    /// Install time, epoch milliseconds.
    pub installed_at_ms: i64,
    /// Last state change, epoch milliseconds.
    pub updated_at_ms: i64,
    /// How forwarded requests to it are signed; `None`: the hub's default scheme.
    pub signing: Option<crate::signing::SigningScheme>,
}

/// Lifecycle state of an installation. Uninstalling removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InstallationState {
    /// Installed, never activated: it cannot call or be called.
    Installed,
    /// Running: may call and be called.
    Active,
    /// Switched off by the operator; can be activated again.
    Disabled,
}

/// An operator's request to change an installation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleAction {
    /// INSTALLED or DISABLED → ACTIVE.
    Activate,
    /// ACTIVE → DISABLED.
    Deactivate,
}

impl fmt::Display for LifecycleAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Activate => "activate",
            Self::Deactivate => "deactivate",
        })
    }
}

impl InstallationState {
    /// The stored and wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Installed => "INSTALLED",
            Self::Active => "ACTIVE",
            Self::Disabled => "DISABLED",
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "INSTALLED" => Some(Self::Installed),
            "ACTIVE" => Some(Self::Active),
            "DISABLED" => Some(Self::Disabled),
            _ => None,
        }
    }

    /// The state after `action`. Repeating the action that led to the current state is a no-op
    /// (as in the original); anything else not in INSTALLED → ACTIVE ⇄ DISABLED is refused.
    pub fn apply(self, action: LifecycleAction) -> Result<Self, InvalidTransition> {
        use InstallationState::*;
        match (self, action) {
            (Installed | Active | Disabled, LifecycleAction::Activate) => Ok(Active),
            (Active | Disabled, LifecycleAction::Deactivate) => Ok(Disabled),
            (Installed, LifecycleAction::Deactivate) => {
                Err(InvalidTransition { from: self, action })
            }
        }
    }
}

/// A lifecycle action that the current state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} an installation in state {}", from.as_str())]
pub struct InvalidTransition {
    /// The state the installation is in.
    pub from: InstallationState,
    /// The refused action.
    pub action: LifecycleAction,
}

/// Where an installed plugin lives, as set by the operator: an absolute `http` or `https` URL
/// without credentials, query or fragment. Stored without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Parses and normalises a base URL.
    pub fn parse(text: &str) -> Result<Self, InstallationError> {
        let invalid = |why: &str| InstallationError::InvalidBaseUrl(format!("{text:?}: {why}"));
        let url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("a host is required"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials in the URL are not allowed"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment is not allowed"));
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    /// The normalised URL text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin (`scheme://host[:port]`), as browsers and the origin allow-list spell it.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.0)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

impl Installation {
    /// Origins plugins of this installation may register services at: the configured
    /// `allowedOrigins`, or by default the origin of the installation's `baseUrl` (none without
    /// one).
    pub fn allowed_origins(&self) -> Vec<String> {
        if self.allowed_origins.is_empty() {
            self.base_url.iter().map(BaseUrl::origin).collect()
        } else {
            self.allowed_origins.clone()
        }
    }

    /// Whether this installation may register a service at `url` (see [`Self::allowed_origins`]).
    pub fn allows_origin_of(&self, url: &BaseUrl) -> bool {
        self.allowed_origins().contains(&url.origin())
    }
}

/// Parses a browser origin (`scheme://host[:port]`) allowed to reach a plugin.
pub fn parse_origin(text: &str) -> Result<String, InstallationError> {
    let invalid = || {
        InstallationError::InvalidOrigin(format!(
            "{text:?}: expected scheme://host[:port] with no path"
        ))
    };
    let url = url::Url::parse(text).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.path() != "/" || text.ends_with('/') {
        return Err(invalid());
    }
    match url.origin() {
        url::Origin::Tuple(..) => Ok(url.origin().ascii_serialization()),
        url::Origin::Opaque(_) => Err(invalid()),
    }
}

/// Checks that a plugin's UI remote (`frontend.remoteEntry`) is served from an origin the
/// installation allows: one of `allowed_origins`, or without any, the origin of its `baseUrl`.
/// The refusal says which origins would do.
pub fn check_remote_origin(
    remote_entry: &str,
    allowed_origins: &[String],
    base_url: Option<&BaseUrl>,
) -> Result<(), String> {
    let origin = url::Url::parse(remote_entry)
        .map(|url| url.origin().ascii_serialization())
        .map_err(|_| format!("{remote_entry:?} is not a URL"))?;
    let allowed: Vec<String> = if allowed_origins.is_empty() {
        base_url.map(BaseUrl::origin).into_iter().collect()
    } else {
        allowed_origins.to_vec()
    };
    if allowed.contains(&origin) {
        Ok(())
    } else if allowed.is_empty() {
        Err(format!(
            "the remote entry's origin {origin} is not allowed: the installation has no allowed \
             origins and no baseUrl"
        ))
    } else {
        Err(format!(
            "the remote entry's origin {origin} is not one of the installation's allowed origins ({})",
            allowed.join(", ")
        ))
    }
}

/// Checks a permission grant: 1-200 characters of letters, digits, `.`, `:`, `_`, `-`, `*`.
pub fn validate_grant(grant: &str) -> Result<(), InstallationError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || ".:_-*".contains(c);
    if (1..=200).contains(&grant.len()) && grant.chars().all(allowed) {
        Ok(())
    } else {
        Err(InstallationError::InvalidGrant(grant.to_owned()))
    }
}

/// Why installation input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstallationError {
    /// The base URL is not an acceptable absolute http(s) URL.
    #[error("invalid baseUrl {0}")]
    InvalidBaseUrl(String),
    /// An allowed origin is not a bare origin.
    #[error("invalid allowed origin {0}")]
    InvalidOrigin(String),
    /// A grant is empty, too long or has characters outside the permission alphabet.
    #[error("invalid grant {0:?}: use 1-200 letters, digits or . : _ - *")]
    InvalidGrant(String),
}

/// The version to install: the highest match of `requested`, or without a request the highest
/// release (falling back to the highest pre-release when only pre-releases exist).
pub fn choose_version<'a>(
    available: &'a [Version],
    requested: Option<&VersionRange>,
) -> Option<&'a Version> {
    match requested {
        Some(range) => range.max_satisfying(available.iter()),
        None => available
            .iter()
            .filter(|v| !v.is_prerelease())
            .max()
            .or_else(|| available.iter().max()),
    }
}

/// What is wrong with one declared dependency at install time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UnmetDependency {
    /// The plugin depended on.
    pub plugin_id: PluginId,
    /// The declared range.
    pub range: String,
    /// Whether the manifest marks it required.
    pub required: bool,
    /// The installed version, when the plugin is installed at a version outside the range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed_version: Option<String>,
    /// The manifest's `reason`, so the operator learns why it is needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A sentence an operator can act on.
    pub message: String,
}

/// Checks declared dependencies against the tenant's installed plugins. A required dependency
/// must be installed within its range; an optional one, when installed, must be within range too.
pub fn unmet_dependencies(
    declared: &[DependencySpec],
    installed: &[(PluginId, Version)],
) -> Vec<UnmetDependency> {
    // A manifest may depend on the same plugin once per service; report each plugin and range once.
    let is_first = |i: usize, dep: &DependencySpec| {
        !declared[..i]
            .iter()
            .any(|earlier| earlier.plugin_id == dep.plugin_id && earlier.range == dep.range)
    };
    declared
        .iter()
        .enumerate()
        .filter(|(i, dep)| is_first(*i, dep))
        .filter_map(|(_, dep)| {
            let found = installed.iter().find(|(id, _)| *id == dep.plugin_id);
            let (installed_version, message) = match found {
                None if dep.required => (
                    None,
                    format!(
                        "{} {} is required but not installed for this tenant: install it first",
                        dep.plugin_id, dep.range
                    ),
                ),
                None => return None,
                Some((_, version)) if dep.range.satisfies(version) => return None,
                Some((_, version)) => (
                    Some(version.to_string()),
                    format!(
                        "{} is installed at {version}, outside the required range {}: install a matching version",
                        dep.plugin_id, dep.range
                    ),
                ),
            };
            Some(UnmetDependency {
                plugin_id: dep.plugin_id.clone(),
                range: dep.range.to_string(),
                required: dep.required,
                installed_version,
                reason: dep.reason.clone(),
                message,
            })
        })
        .collect()
}

/// What grants may name for a plugin with `dependencies`: the permissions required by the
/// endpoints of the services it depends on, over `candidates` (catalog manifests of the plugins
/// depended on; those outside a dependency's range are ignored). Sorted, without duplicates.
pub fn grantable_permissions<'a>(
    dependencies: &[DependencySpec],
    candidates: impl IntoIterator<Item = &'a Manifest>,
) -> Vec<String> {
    let mut grantable = std::collections::BTreeSet::new();
    for manifest in candidates {
        for dependency in dependencies.iter().filter(|dependency| {
            dependency.plugin_id == manifest.id && dependency.range.satisfies(&manifest.version)
        }) {
            let services = manifest.services.iter().filter(|service| {
                dependency
                    .service_name
                    .as_ref()
                    .is_none_or(|name| *name == service.name)
            });
            for endpoint in services.flat_map(|service| &service.endpoints) {
                grantable.extend(endpoint.permissions.iter().cloned());
            }
        }
    }
    grantable.into_iter().collect()
}

/// The grants of `grants` that are not in `grantable` (see [`grantable_permissions`]).
pub fn ungrantable<'a>(grants: &'a [String], grantable: &[String]) -> Vec<&'a str> {
    grants
        .iter()
        .filter(|grant| grantable.binary_search(grant).is_err())
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).expect("test version")
    }

    #[test]
    fn lifecycle_follows_installed_active_disabled() {
        use InstallationState::*;
        assert_eq!(Installed.apply(LifecycleAction::Activate), Ok(Active));
        assert_eq!(Active.apply(LifecycleAction::Deactivate), Ok(Disabled));
        assert_eq!(Disabled.apply(LifecycleAction::Activate), Ok(Active));
        assert_eq!(Active.apply(LifecycleAction::Activate), Ok(Active));
        assert_eq!(Disabled.apply(LifecycleAction::Deactivate), Ok(Disabled));
        assert!(Installed.apply(LifecycleAction::Deactivate).is_err());
    }

    #[test]
    fn base_urls_are_http_without_secrets() {
        assert_eq!(
            BaseUrl::parse("http://crm:3100/").map(|u| u.as_str().to_owned()),
            Ok("http://crm:3100".to_owned())
        );
        assert!(BaseUrl::parse("https://crm.example/api").is_ok());
        for bad in [
            "ftp://crm",
            "crm:3100",
            "http://user:pw@crm",
            "http://crm/?a=1",
            "",
            "http://",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn origins_are_bare() {
        assert_eq!(
            parse_origin("https://app.example:8443"),
            Ok("https://app.example:8443".to_owned())
        );
        assert!(parse_origin("https://app.example/path").is_err());
        assert!(parse_origin("app.example").is_err());
    }

    #[test]
    fn latest_release_is_preferred_over_prereleases() {
        let versions = [v("1.0.0"), v("1.2.0"), v("2.0.0-beta.1")];
        assert_eq!(choose_version(&versions, None), Some(&versions[1]));
        let only_pre = [v("0.1.0-alpha")];
        assert_eq!(choose_version(&only_pre, None), Some(&only_pre[0]));
        let range = VersionRange::parse("~1.0").expect("range");
        assert_eq!(choose_version(&versions, Some(&range)), Some(&versions[0]));
        let none = VersionRange::parse(">=3").expect("range");
        assert_eq!(choose_version(&versions, Some(&none)), None);
    }

    #[test]
    fn dependencies_are_checked_against_installed_versions() {
        let dep = |id: &str, range: &str, required: bool| DependencySpec {
            plugin_id: PluginId::parse(id).expect("id"),
            service_name: None,
            range: VersionRange::parse(range).expect("range"),
            required,
            reason: Some("needs data".to_owned()),
        };
        let declared = [
            dep("plugin-crm", "^1.0.0", true),
            dep("plugin-mail", "^2.0.0", true),
            dep("plugin-mail", "^2.0.0", true),
            dep("plugin-maps", "^1.0.0", false),
            dep("plugin-chat", "^1.0.0", false),
        ];
        let installed = [
            (PluginId::parse("plugin-crm").expect("id"), v("1.4.0")),
            (PluginId::parse("plugin-chat").expect("id"), v("2.0.0")),
        ];
        let unmet = unmet_dependencies(&declared, &installed);
        let ids: Vec<_> = unmet.iter().map(|u| u.plugin_id.as_str()).collect();
        assert_eq!(ids, ["plugin-mail", "plugin-chat"]);
        assert_eq!(unmet[0].installed_version, None);
        assert_eq!(unmet[0].reason.as_deref(), Some("needs data"));
        assert_eq!(unmet[1].installed_version.as_deref(), Some("2.0.0"));
    }

    fn manifest(id: &str, version: &str, services: serde_json::Value) -> Manifest {
        crate::manifest::validate_manifest(&serde_json::json!({
            "id": id, "name": id, "version": version, "description": "a plugin",
            "author": "someone", "license": "MIT", "api": { "services": services },
        }))
        .expect("valid manifest")
    }

    fn service(name: &str, permission: &str) -> serde_json::Value {
        serde_json::json!({ "name": name, "version": "1.0.0", "endpoints": [
            { "method": "GET", "path": "/items", "permissions": [permission] },
        ]})
    }

    #[test]
    fn grantable_permissions_come_from_the_depended_services_in_range() {
        let crm_1 = manifest(
            "plugin-crm",
            "1.0.0",
            serde_json::json!([
                service("crm.contacts", "plugin.crm.contacts.read"),
                service("crm.deals", "plugin.crm.deals.read"),
            ]),
        );
        let crm_2 = manifest(
            "plugin-crm",
            "2.0.0",
            serde_json::json!([service("crm.contacts", "plugin.crm.v2.read")]),
        );
        let other = manifest(
            "plugin-other",
            "1.0.0",
            serde_json::json!([service("other.things", "plugin.other.read")]),
        );
        let depends_on_contacts = DependencySpec {
            plugin_id: PluginId::parse("plugin-crm").expect("valid"),
            service_name: Some(crate::ids::ServiceName::parse("crm.contacts").expect("valid")),
            range: VersionRange::parse("^1.0.0").expect("valid"),
            required: true,
            reason: None,
        };
        let grantable = grantable_permissions(
            std::slice::from_ref(&depends_on_contacts),
            [&crm_1, &crm_2, &other],
        );
        assert_eq!(grantable, vec!["plugin.crm.contacts.read".to_owned()]);
        let whole_plugin = DependencySpec {
            service_name: None,
            range: VersionRange::parse(">=1.0.0").expect("valid"),
            ..depends_on_contacts
        };
        let grantable = grantable_permissions(&[whole_plugin], [&crm_1, &crm_2, &other]);
        assert_eq!(
            grantable,
            [
                "plugin.crm.contacts.read",
                "plugin.crm.deals.read",
                "plugin.crm.v2.read"
            ]
        );
        let grants = vec![
            "plugin.crm.deals.read".to_owned(),
            "plugin.other.read".to_owned(),
        ];
        assert_eq!(ungrantable(&grants, &grantable), ["plugin.other.read"]);
    }

    #[test]
    fn remotes_come_from_allowed_origins_or_the_base_url() {
        let base = BaseUrl::parse("https://crm.example.com/api").expect("base URL");
        let entry = "https://crm.example.com/ui/remoteEntry.js";
        assert!(check_remote_origin(entry, &[], Some(&base)).is_ok());
        let cdn = vec!["https://cdn.example.com".to_owned()];
        let refused = check_remote_origin(entry, &cdn, Some(&base)).expect_err("not allowed");
        assert!(refused.contains("https://cdn.example.com"), "{refused}");
        assert!(check_remote_origin("https://cdn.example.com/r.js", &cdn, None).is_ok());
        assert!(check_remote_origin("https://cdn.example.com:8443/r.js", &cdn, None).is_err());
        assert!(check_remote_origin(entry, &[], None).is_err());
    }
}
