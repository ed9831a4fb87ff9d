//! The plugin manifest: its schema, its validation and the typed [`Manifest`] built from it.
//!
//! Validation walks the JSON once and collects every problem with a dotted path
//! (`api.services.0.endpoints.1.path`; the root object's own problems use the path `""`), so a
//! plugin author sees all mistakes at once. A [`Manifest`] only exists for a manifest without
//! problems.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::{PluginId, ServiceName};
use crate::version::{Version, VersionRange};

/// Longest accepted plugin `name`, in characters.
pub const NAME_MAX_CHARS: usize = 100;
/// Longest accepted plugin `description`, in characters.
pub const DESCRIPTION_MAX_CHARS: usize = 1000;
/// Longest accepted `author`, in characters.
pub const AUTHOR_MAX_CHARS: usize = 200;
/// Longest accepted `license`, in characters.
pub const LICENSE_MAX_CHARS: usize = 50;
/// Longest accepted service `description`, in characters.
pub const SERVICE_DESCRIPTION_MAX_CHARS: usize = 500;
/// Longest accepted dependency `reason`, in characters.
pub const REASON_MAX_CHARS: usize = 500;
/// Longest accepted event name, in characters.
pub const EVENT_NAME_MAX_CHARS: usize = 200;

const TOP_LEVEL_FIELDS: &[&str] = &[
    "id",
    "name",
    "version",
    "description",
    "tags",
    "category",
    "author",
    "license",
    "homepage",
    "repository",
    "api",
    "translations",
    "config",
    "configuration",
    "permissions",
    "navigation",
    "backend",
    "frontend",
    "entryPoints",
    "dependencies",
    "lifecycle",
    "hooks",
    "metadata",
    "events",
    "runtime",
];
const API_FIELDS: &[&str] = &["services", "dependencies"];
const SERVICE_FIELDS: &[&str] = &[
    "name",
    "version",
    "baseUrl",
    "description",
    "endpoints",
    "metadata",
];
const DEPENDENCY_FIELDS: &[&str] = &["pluginId", "serviceName", "version", "required", "reason"];
const EVENTS_FIELDS: &[&str] = &["publishes", "subscribes"];
const FRONTEND_FIELDS: &[&str] = &[
    "remoteEntry",
    "scope",
    "exposedModules",
    "routes",
    "menu",
    "integrity",
];
const ROUTE_FIELDS: &[&str] = &["path", "module", "title"];
const MENU_FIELDS: &[&str] = &["label", "path", "icon", "order"];
const LIFECYCLE_FIELDS: &[&str] = &["install", "uninstall", "activate", "deactivate", "update"];
const HOOK_FIELDS: &[&str] = &[
    "onInstall",
    "onUninstall",
    "onEnable",
    "onDisable",
    "onUpdate",
];

/// Most tags a manifest may list.
pub const TAGS_MAX: usize = 20;
/// Longest tag, in characters.
pub const TAG_MAX_CHARS: usize = 32;

/// One problem found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestError {
    /// Dotted path to the offending value (`api.services.0.name`); `""` for the root object.
    pub path: String,
    /// What is wrong, in words meant for the plugin author.
    pub message: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ManifestError {}

/// An HTTP method an endpoint may declare; manifests spell it in upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl HttpMethod {
    /// Every method, in the order the schema lists them.
    pub const ALL: [HttpMethod; 5] = [
        HttpMethod::Get,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Patch,
        HttpMethod::Delete,
    ];

    /// Parses an upper-case method name; `get` is not accepted.
    pub fn parse(input: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|method| method.as_str() == input)
    }

    /// The upper-case name, e.g. `GET`.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

impl fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated plugin manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The plugin id, e.g. `plugin-crm`.
    pub id: PluginId,
    /// Display name, 1–100 characters.
    pub name: String,
    /// The plugin's own version.
    pub version: Version,
    /// Free-text description, at most 1000 characters.
    pub description: String,
    /// Search tags (`tags`): lower-case words of `a-z`, `0-9` and `-`; empty when absent.
    pub tags: Vec<String>,
    /// Optional marketplace category.
    pub category: Option<String>,
    /// Optional author, at most 200 characters.
    pub author: Option<String>,
    /// Optional license name, at most 50 characters.
    pub license: Option<String>,
    /// Optional http(s) homepage URL.
    pub homepage: Option<String>,
    /// Optional http(s) repository URL.
    pub repository: Option<String>,
    /// Services the plugin exposes to other plugins (`api.services`).
    pub services: Vec<ServiceSpec>,
    /// Services of other plugins this plugin calls (`api.dependencies`).
    pub dependencies: Vec<DependencySpec>,
    /// Permissions the plugin defines (`permissions`).
    pub permissions: Vec<PermissionSpec>,
    /// Events the plugin publishes and subscribes to; empty when `events` is absent.
    pub events: EventsSpec,
    /// The module-federation remote the web shell loads (`frontend` as an object); `None`
    /// when absent or given in the original's free-form string form.
    pub frontend: Option<FrontendSpec>,
}

/// A plugin's UI as a module-federation remote (`frontend`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendSpec {
    /// The remote's entry script: an `https://` URL.
    pub remote_entry: String,
    /// The federation container's name (default: the plugin id with `_` for `-`).
    pub scope: String,
    /// Exposed module → its source path (`"./ContactsPage": "./src/pages/Contacts.tsx"`),
    /// sorted by name; empty when `exposedModules` is absent.
    pub exposed_modules: std::collections::BTreeMap<String, String>,
    /// Shell routes, each rendering an exposed module.
    pub routes: Vec<FrontendRoute>,
    /// Menu entries, each opening one of the routes.
    pub menu: Vec<MenuEntry>,
    /// Subresource integrity of the remote entry (`sha384-<base64>`), when pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
}

/// A shell route of a plugin's UI (`frontend.routes[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FrontendRoute {
    /// The shell path, e.g. `/crm/contacts`.
    pub path: String,
    /// The exposed module it renders, e.g. `./ContactsPage`.
    pub module: String,
    /// Optional page title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// A menu entry of a plugin's UI (`frontend.menu[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MenuEntry {
    /// What the menu shows, 1–100 characters.
    pub label: String,
    /// The route it opens (one of `routes[].path`).
    pub path: String,
    /// Optional icon name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    /// Position among the shell's entries (lower first; default 0).
    pub order: i64,
}

/// A service exposed by a plugin (`api.services[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// The service name, e.g. `crm.contacts`.
    pub name: ServiceName,
    /// The service's version.
    pub version: Version,
    /// Optional http(s) base URL the service is reached at.
    pub base_url: Option<String>,
    /// Optional description, at most 500 characters.
    pub description: Option<String>,
    /// The endpoints, at least one, no two with the same method and path.
    pub endpoints: Vec<EndpointSpec>,
    /// Free-form metadata; empty when absent.
    pub metadata: Map<String, Value>,
}

/// One endpoint of a service (`api.services[].endpoints[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSpec {
    /// The HTTP method.
    pub method: HttpMethod,
    /// The path template, e.g. `/contacts/:id`.
    pub path: String,
    /// Optional description.
    pub description: Option<String>,
    /// Permissions a caller needs; empty when absent.
    pub permissions: Vec<String>,
    /// Free-form metadata; empty when absent.
    pub metadata: Map<String, Value>,
}

/// A dependency on another plugin's service (`api.dependencies[]`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencySpec {
    /// The plugin depended on.
    pub plugin_id: PluginId,
    /// The service depended on; `None` means the plugin as a whole.
    pub service_name: Option<ServiceName>,
    /// Accepted versions, written as `version` in the manifest.
    #[serde(rename = "version")]
    pub range: VersionRange,
    /// Whether installation must fail when the dependency is missing.
    pub required: bool,
    /// Optional explanation, at most 500 characters.
    pub reason: Option<String>,
}

/// A permission the plugin defines (`permissions[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PermissionSpec {
    /// The resource, e.g. `contacts`.
    pub resource: String,
    /// The action, e.g. `read`.
    pub action: String,
    /// Human description.
    pub description: String,
}

/// Event names the plugin publishes and subscribes to (`events`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventsSpec {
    /// Events the plugin emits.
    pub publishes: Vec<String>,
    /// Event names the plugin listens to, as plain strings (the original's informational
    /// form; nothing is delivered for them).
    pub subscribes: Vec<String>,
    /// Subscriptions the hub delivers (`subscribes` entries that are objects).
    pub subscriptions: Vec<SubscriptionDecl>,
}

/// A subscription a manifest declares: `{pattern, endpoint, maxAttempts?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionDecl {
    /// Event types to receive (`plugin.crm.contact.*`).
    pub pattern: String,
    /// Path on the installation's base URL the hub POSTs each event to.
    pub endpoint: String,
    /// Attempts before an event goes to the dead letters.
    pub max_attempts: u32,
}

const SUBSCRIPTION_FIELDS: &[&str] = &["pattern", "endpoint", "maxAttempts"];

/// Validates a manifest, returning the typed [`Manifest`] or every problem found.
pub fn validate_manifest(value: &Value) -> Result<Manifest, Vec<ManifestError>> {
    let mut checker = Checker::default();
    let manifest = checker.manifest(value);
    match manifest {
        Some(manifest) if checker.errors.is_empty() => Ok(manifest),
        _ => {
            if checker.errors.is_empty() {
                // Unreachable by construction: every `None` above comes with an error.
                checker.error("manifest is invalid");
            }
            Err(checker.errors)
        }
    }
}

/// Walks the manifest, carrying the current path and collecting errors.
///
/// Every check returns `None` only after recording an error, so a `Some` everywhere with no
/// errors means the manifest is valid.
#[derive(Default)]
struct Checker {
    path: Vec<String>,
    errors: Vec<ManifestError>,
}

/// `(method, path)` of an endpoint, for spotting duplicates.
type EndpointKey<'v> = (&'v str, &'v str);

impl Checker {
    // ----- path and error plumbing -----

    fn current_path(&self) -> String {
        self.path.join(".")
    }

    /// The path of a child of the current value.
    fn child_path(&self, segment: impl fmt::Display) -> String {
        if self.path.is_empty() {
            segment.to_string()
        } else {
            format!("{}.{segment}", self.current_path())
        }
    }

    fn error(&mut self, message: impl Into<String>) {
        let path = self.current_path();
        self.errors.push(ManifestError {
            path,
            message: message.into(),
        });
    }

    /// Runs `check` with `segment` appended to the current path.
    fn at<R>(&mut self, segment: impl fmt::Display, check: impl FnOnce(&mut Self) -> R) -> R {
        self.path.push(segment.to_string());
        let result = check(self);
        self.path.pop();
        result
    }

    // ----- fields -----

    /// Checks a field that must be present.
    fn required<'v, T>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        check: impl FnOnce(&mut Self, &'v Value) -> Option<T>,
    ) -> Option<T> {
        match map.get(key) {
            Some(value) => self.at(key, |c| check(c, value)),
            None => {
                self.at(key, |c| {
                    c.error(format!("missing required field \"{key}\""))
                });
                None
            }
        }
    }

    /// Checks a field if it is present; `None` when absent or invalid.
    fn optional<'v, T>(
        &mut self,
        map: &'v Map<String, Value>,
        key: &str,
        check: impl FnOnce(&mut Self, &'v Value) -> Option<T>,
    ) -> Option<T> {
        let value = map.get(key)?;
        self.at(key, |c| check(c, value))
    }

    /// Reports every key of `map` not in `allowed` (strict objects).
    fn unknown_fields(&mut self, map: &Map<String, Value>, allowed: &[&str]) {
        let mut unknown: Vec<&String> = map
            .keys()
            .filter(|key| !allowed.contains(&key.as_str()))
            .collect();
        // Sorted so the report does not depend on serde_json's map ordering feature.
        unknown.sort();
        for key in unknown {
            self.error(format!("unknown field \"{key}\""));
        }
    }

    // ----- JSON types -----

    fn type_error(&mut self, expected: &str, found: &Value) {
        self.error(format!("expected {expected}, found {}", describe(found)));
    }

    fn object<'v>(&mut self, value: &'v Value) -> Option<&'v Map<String, Value>> {
        let map = value.as_object();
        if map.is_none() {
            self.type_error("an object", value);
        }
        map
    }

    fn array<'v>(&mut self, value: &'v Value) -> Option<&'v [Value]> {
        let items = value.as_array().map(Vec::as_slice);
        if items.is_none() {
            self.type_error("an array", value);
        }
        items
    }

    fn string<'v>(&mut self, value: &'v Value) -> Option<&'v str> {
        let text = value.as_str();
        if text.is_none() {
            self.type_error("a string", value);
        }
        text
    }

    fn boolean(&mut self, value: &Value) -> Option<bool> {
        let flag = value.as_bool();
        if flag.is_none() {
            self.type_error("a boolean", value);
        }
        flag
    }

    /// Any object; its content is free-form.
    fn any_object(&mut self, value: &Value) -> Option<Map<String, Value>> {
        self.object(value).cloned()
    }

    fn owned_string(&mut self, value: &Value) -> Option<String> {
        self.string(value).map(str::to_owned)
    }

    /// A string of `min..=max` characters.
    fn text(&mut self, value: &Value, min: usize, max: usize) -> Option<String> {
        let text = self.string(value)?;
        let chars = text.chars().count();
        if chars < min {
            self.error(format!("must be at least {min} character(s) long"));
            return None;
        }
        if chars > max {
            self.error(format!(
                "must be at most {max} characters long, got {chars}"
            ));
            return None;
        }
        Some(text.to_owned())
    }

    /// A string turned into a domain type by `parse`, whose error becomes the message.
    fn parsed<T, E: fmt::Display>(
        &mut self,
        value: &Value,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let text = self.string(value)?;
        parse(text).map_err(|err| self.error(err.to_string())).ok()
    }

    fn url(&mut self, value: &Value) -> Option<String> {
        self.parsed(value, |text| check_http_url(text).map(|()| text.to_owned()))
    }

    /// An array of strings.
    fn strings(&mut self, value: &Value) -> Option<Vec<String>> {
        let items = self.array(value)?;
        let mut out = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if let Some(text) = self.at(index, |c| c.owned_string(item)) {
                out.push(text);
            }
        }
        Some(out)
    }

    /// Search tags: at most [`TAGS_MAX`], each 1–[`TAG_MAX_CHARS`] of `a-z0-9-`, no repeats.
    fn tags(&mut self, value: &Value) -> Option<Vec<String>> {
        let items = self.array(value)?;
        if items.len() > TAGS_MAX {
            self.error(format!("at most {TAGS_MAX} tags, got {}", items.len()));
            return None;
        }
        let mut tags: Vec<String> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let tag = self.at(index, |c| {
                c.parsed(item, |text| {
                    let valid = (1..=TAG_MAX_CHARS).contains(&text.chars().count())
                        && text
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                    if !valid {
                        Err(format!(
                            "a tag is 1-{TAG_MAX_CHARS} characters of a-z, 0-9 and -, got \"{text}\""
                        ))
                    } else if tags.iter().any(|known| known == text) {
                        Err(format!("duplicate tag \"{text}\""))
                    } else {
                        Ok(text.to_owned())
                    }
                })
            });
            tags.extend(tag);
        }
        Some(tags)
    }

    /// An array whose items are objects with free-form content.
    fn array_of_objects(&mut self, value: &Value) -> Option<()> {
        let items = self.array(value)?;
        for (index, item) in items.iter().enumerate() {
            self.at(index, |c| c.object(item));
        }
        Some(())
    }

    /// An object whose values are all strings (`dependencies`: npm package → version).
    fn string_record(&mut self, value: &Value) -> Option<()> {
        let map = self.object(value)?;
        for (key, item) in map {
            self.at(key, |c| c.string(item));
        }
        Some(())
    }

    /// An object whose `known` fields, when present, are strings; other keys are ignored.
    fn string_fields(&mut self, value: &Value, known: &[&str]) -> Option<()> {
        let map = self.object(value)?;
        for key in known {
            self.optional(map, key, Self::string);
        }
        Some(())
    }

    // ----- manifest sections -----

    fn manifest(&mut self, value: &Value) -> Option<Manifest> {
        let map = self.object(value)?;
        self.unknown_fields(map, TOP_LEVEL_FIELDS);

        let id = self.required(map, "id", |c, v| c.parsed(v, PluginId::parse));
        let name = self.required(map, "name", |c, v| c.text(v, 1, NAME_MAX_CHARS));
        let version = self.required(map, "version", |c, v| c.parsed(v, Version::parse));
        let description = self.required(map, "description", |c, v| {
            c.text(v, 0, DESCRIPTION_MAX_CHARS)
        });
        let tags = self.optional(map, "tags", Self::tags).unwrap_or_default();
        let category = self.optional(map, "category", Self::owned_string);
        let author = self.optional(map, "author", |c, v| c.text(v, 0, AUTHOR_MAX_CHARS));
        let license = self.optional(map, "license", |c, v| c.text(v, 0, LICENSE_MAX_CHARS));
        let homepage = self.optional(map, "homepage", Self::url);
        let repository = self.optional(map, "repository", Self::url);
        let (services, dependencies) = self.optional(map, "api", Self::api).unwrap_or_default();
        self.optional(map, "translations", Self::any_object);
        self.optional(map, "config", Self::array_of_objects);
        self.optional(map, "configuration", Self::array_of_objects);
        let permissions = self
            .optional(map, "permissions", Self::permissions)
            .unwrap_or_default();
        self.optional(map, "navigation", Self::array_of_objects);
        // `backend` may be anything; `frontend` a string (the original's free form) or the
        // remote the shell loads.
        let frontend = match map.get("frontend") {
            Some(Value::String(_)) | None => None,
            Some(_) => self.optional(map, "frontend", |c, v| c.frontend(v, id.as_ref())),
        };
        self.optional(map, "entryPoints", Self::any_object);
        self.optional(map, "dependencies", Self::string_record);
        self.optional(map, "lifecycle", |c, v| {
            c.string_fields(v, LIFECYCLE_FIELDS)
        });
        self.optional(map, "hooks", |c, v| c.string_fields(v, HOOK_FIELDS));
        self.optional(map, "metadata", Self::any_object);
        self.optional(map, "runtime", Self::any_object);
        let events = self
            .optional(map, "events", Self::events)
            .unwrap_or_default();

        Some(Manifest {
            id: id?,
            name: name?,
            version: version?,
            description: description?,
            tags,
            category,
            author,
            license,
            homepage,
            repository,
            services,
            dependencies,
            permissions,
            events,
            frontend,
        })
    }

    fn frontend(&mut self, value: &Value, plugin: Option<&PluginId>) -> Option<FrontendSpec> {
        let map = self.object(value)?;
        self.unknown_fields(map, FRONTEND_FIELDS);
        let remote_entry = self.required(map, "remoteEntry", |c, v| {
            c.parsed(v, |text| check_https_url(text).map(|()| text.to_owned()))
        });
        let scope = self.optional(map, "scope", |c, v| {
            c.parsed(v, |text| {
                let mut chars = text.chars();
                let valid = text.len() <= 100
                    && chars
                        .next()
                        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
                if valid {
                    Ok(text.to_owned())
                } else {
                    Err(format!(
                        "a scope is a JavaScript identifier (letters, digits, _), got \"{text}\""
                    ))
                }
            })
        });
        let exposed = self.optional(map, "exposedModules", Self::exposed_modules);
        let routes = self
            .optional(map, "routes", |c, v| c.frontend_routes(v, exposed.as_ref()))
            .unwrap_or_default();
        let menu = self
            .optional(map, "menu", |c, v| c.menu(v, &routes))
            .unwrap_or_default();
        let integrity = self.optional(map, "integrity", |c, v| c.parsed(v, check_integrity));
        Some(FrontendSpec {
            remote_entry: remote_entry?,
            scope: scope.or_else(|| plugin.map(|id| id.as_str().replace('-', "_")))?,
            exposed_modules: exposed.unwrap_or_default(),
            routes,
            menu,
            integrity,
        })
    }

    /// `{"./Name": "./src/…"}`: at least one, each name `./` and a path-like word.
    fn exposed_modules(
        &mut self,
        value: &Value,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let map = self.object(value)?;
        if map.is_empty() {
            self.error("expose at least one module");
            return None;
        }
        let mut modules = std::collections::BTreeMap::new();
        for (name, source) in map {
            self.at(name, |c| {
                let valid_name = name.len() > 2
                    && name.len() <= 200
                    && name.starts_with("./")
                    && name[2..]
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_./".contains(ch));
                if !valid_name {
                    c.error(format!(
                        "an exposed module is named ./ and letters, digits, - _ . /, got \"{name}\""
                    ));
                    return;
                }
                if let Some(source) = c.text(source, 1, 500) {
                    modules.insert(name.clone(), source);
                }
            });
        }
        Some(modules)
    }

    fn frontend_routes(
        &mut self,
        value: &Value,
        exposed: Option<&std::collections::BTreeMap<String, String>>,
    ) -> Option<Vec<FrontendRoute>> {
        let items = self.array(value)?;
        let mut routes: Vec<FrontendRoute> = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let route = self.at(index, |c| {
                let map = c.object(item)?;
                c.unknown_fields(map, ROUTE_FIELDS);
                let path = c.required(map, "path", |c, v| c.parsed(v, check_shell_path));
                let module = c.required(map, "module", |c, v| {
                    c.parsed(v, |text| match exposed {
                        Some(modules) if !modules.contains_key(text) => Err(format!(
                            "\"{text}\" is not one of exposedModules ({})",
                            modules.keys().cloned().collect::<Vec<_>>().join(", ")
                        )),
                        _ => Ok(text.to_owned()),
                    })
                });
                let title = c.optional(map, "title", |c, v| c.text(v, 1, NAME_MAX_CHARS));
                let path = path?;
                if routes.iter().any(|known| known.path == path) {
                    c.at("path", |c| c.error(format!("duplicate route \"{path}\"")));
                    return None;
                }
                Some(FrontendRoute {
                    path,
                    module: module?,
                    title,
                })
            });
            routes.extend(route);
        }
        Some(routes)
    }

    fn menu(&mut self, value: &Value, routes: &[FrontendRoute]) -> Option<Vec<MenuEntry>> {
        let items = self.array(value)?;
        let mut entries = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let entry = self.at(index, |c| {
                let map = c.object(item)?;
                c.unknown_fields(map, MENU_FIELDS);
                let label = c.required(map, "label", |c, v| c.text(v, 1, NAME_MAX_CHARS));
                let path = c.required(map, "path", |c, v| {
                    c.parsed(v, |text| {
                        if routes.iter().any(|route| route.path == text) {
                            Ok(text.to_owned())
                        } else {
                            Err(format!(
                                "\"{text}\" is not the path of one of frontend.routes"
                            ))
                        }
                    })
                });
                let icon = c.optional(map, "icon", |c, v| c.text(v, 1, 100));
                let order = c.optional(map, "order", |c, v| {
                    let order = v.as_i64();
                    if order.is_none() {
                        c.type_error("an integer", v);
                    }
                    order
                });
                Some(MenuEntry {
                    label: label?,
                    path: path?,
                    icon,
                    order: order.unwrap_or(0),
                })
            });
            entries.extend(entry);
        }
        Some(entries)
    }

    fn api(&mut self, value: &Value) -> Option<(Vec<ServiceSpec>, Vec<DependencySpec>)> {
        let map = self.object(value)?;
        self.unknown_fields(map, API_FIELDS);
        let services = self
            .optional(map, "services", Self::services)
            .unwrap_or_default();
        let dependencies = self
            .optional(map, "dependencies", Self::dependencies)
            .unwrap_or_default();
        Some((services, dependencies))
    }

    fn services(&mut self, value: &Value) -> Option<Vec<ServiceSpec>> {
        let items = self.array(value)?;
        let mut services = Vec::with_capacity(items.len());
        let mut first_index: HashMap<&str, usize> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            if let Some(service) = self.at(index, |c| c.service(item)) {
                services.push(service);
            }
            // Looked up in the raw item so a duplicate is reported even when the service has
            // other problems.
            let Some(name) = raw_str(item, "name").filter(|n| ServiceName::parse(n).is_ok()) else {
                continue;
            };
            match first_index.entry(name) {
                Entry::Vacant(slot) => {
                    slot.insert(index);
                }
                Entry::Occupied(first) => {
                    let first = self.child_path(first.get());
                    self.at(index, |c| {
                        c.at("name", |c| {
                            c.error(format!(
                                "duplicate service name \"{name}\", already declared at {first}"
                            ));
                        });
                    });
                }
            }
        }
        Some(services)
    }

    fn service(&mut self, value: &Value) -> Option<ServiceSpec> {
        let map = self.object(value)?;
        self.unknown_fields(map, SERVICE_FIELDS);
        let name = self.required(map, "name", |c, v| c.parsed(v, ServiceName::parse));
        let version = self.required(map, "version", |c, v| c.parsed(v, Version::parse));
        let base_url = self.optional(map, "baseUrl", Self::url);
        let description = self.optional(map, "description", |c, v| {
            c.text(v, 0, SERVICE_DESCRIPTION_MAX_CHARS)
        });
        let endpoints = self.required(map, "endpoints", Self::endpoints);
        let metadata = self
            .optional(map, "metadata", Self::any_object)
            .unwrap_or_default();
        Some(ServiceSpec {
            name: name?,
            version: version?,
            base_url,
            description,
            endpoints: endpoints?,
            metadata,
        })
    }

    fn endpoints(&mut self, value: &Value) -> Option<Vec<EndpointSpec>> {
        let items = self.array(value)?;
        if items.is_empty() {
            self.error("a service must declare at least one endpoint");
            return None;
        }
        let mut endpoints = Vec::with_capacity(items.len());
        let mut first_index: HashMap<EndpointKey<'_>, usize> = HashMap::new();
        for (index, item) in items.iter().enumerate() {
            if let Some(endpoint) = self.at(index, |c| c.endpoint(item)) {
                endpoints.push(endpoint);
            }
            let method = raw_str(item, "method").filter(|m| HttpMethod::parse(m).is_some());
            let path = raw_str(item, "path").filter(|p| check_endpoint_path(p).is_ok());
            let (Some(method), Some(path)) = (method, path) else {
                continue;
            };
            match first_index.entry((method, path)) {
                Entry::Vacant(slot) => {
                    slot.insert(index);
                }
                Entry::Occupied(first) => {
                    let first = self.child_path(first.get());
                    self.at(index, |c| {
                        c.error(format!(
                            "duplicate endpoint \"{method} {path}\", already declared at {first}"
                        ));
                    });
                }
            }
        }
        Some(endpoints)
    }

    /// Endpoints are not strict: unknown keys are ignored, known ones are type-checked.
    fn endpoint(&mut self, value: &Value) -> Option<EndpointSpec> {
        let map = self.object(value)?;
        let method = self.required(map, "method", |c, v| {
            c.parsed(v, |text| {
                HttpMethod::parse(text).ok_or_else(|| {
                    format!(
                        "method must be one of GET, POST, PUT, PATCH, DELETE (upper case), got \"{text}\""
                    )
                })
            })
        });
        let path = self.required(map, "path", |c, v| {
            c.parsed(v, |text| {
                check_endpoint_path(text).map(|()| text.to_owned())
            })
        });
        let description = self.optional(map, "description", Self::owned_string);
        let permissions = self
            .optional(map, "permissions", Self::strings)
            .unwrap_or_default();
        let metadata = self
            .optional(map, "metadata", Self::any_object)
            .unwrap_or_default();
        Some(EndpointSpec {
            method: method?,
            path: path?,
            description,
            permissions,
            metadata,
        })
    }

    fn dependencies(&mut self, value: &Value) -> Option<Vec<DependencySpec>> {
        let items = self.array(value)?;
        let mut dependencies = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if let Some(dependency) = self.at(index, |c| c.dependency(item)) {
                dependencies.push(dependency);
            }
        }
        Some(dependencies)
    }

    fn dependency(&mut self, value: &Value) -> Option<DependencySpec> {
        let map = self.object(value)?;
        self.unknown_fields(map, DEPENDENCY_FIELDS);
        let plugin_id = self.required(map, "pluginId", |c, v| c.parsed(v, PluginId::parse));
        let service_name =
            self.optional(map, "serviceName", |c, v| c.parsed(v, ServiceName::parse));
        let range = self.required(map, "version", |c, v| c.parsed(v, VersionRange::parse));
        let required = self.required(map, "required", Self::boolean);
        let reason = self.optional(map, "reason", |c, v| c.text(v, 0, REASON_MAX_CHARS));
        Some(DependencySpec {
            plugin_id: plugin_id?,
            service_name,
            range: range?,
            required: required?,
            reason,
        })
    }

    fn permissions(&mut self, value: &Value) -> Option<Vec<PermissionSpec>> {
        let items = self.array(value)?;
        let mut permissions = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if let Some(permission) = self.at(index, |c| c.permission(item)) {
                permissions.push(permission);
            }
        }
        Some(permissions)
    }

    fn permission(&mut self, value: &Value) -> Option<PermissionSpec> {
        let map = self.object(value)?;
        let resource = self.required(map, "resource", Self::owned_string);
        let action = self.required(map, "action", Self::owned_string);
        let description = self.required(map, "description", Self::owned_string);
        Some(PermissionSpec {
            resource: resource?,
            action: action?,
            description: description?,
        })
    }

    fn events(&mut self, value: &Value) -> Option<EventsSpec> {
        let map = self.object(value)?;
        self.unknown_fields(map, EVENTS_FIELDS);
        let publishes = self
            .optional(map, "publishes", Self::event_names)
            .unwrap_or_default();
        let (subscribes, subscriptions) = self
            .optional(map, "subscribes", Self::subscribes)
            .unwrap_or_default();
        Some(EventsSpec {
            publishes,
            subscribes,
            subscriptions,
        })
    }

    /// `subscribes`: plain event names, or subscription objects.
    fn subscribes(&mut self, value: &Value) -> Option<(Vec<String>, Vec<SubscriptionDecl>)> {
        let items = self.array(value)?;
        let (mut names, mut subscriptions) = (Vec::new(), Vec::new());
        for (index, item) in items.iter().enumerate() {
            if item.is_object() {
                subscriptions.extend(self.at(index, |c| c.subscription(item)));
            } else {
                names.extend(self.at(index, |c| {
                    c.parsed(item, |text| {
                        check_event_name(text).map(|()| text.to_owned())
                    })
                }));
            }
        }
        Some((names, subscriptions))
    }

    fn subscription(&mut self, value: &Value) -> Option<SubscriptionDecl> {
        let map = self.object(value)?;
        self.unknown_fields(map, SUBSCRIPTION_FIELDS);
        let pattern = self.required(map, "pattern", |c, v| {
            c.parsed(v, |text| {
                crate::events::Pattern::parse(text).map(|_| text.to_owned())
            })
        });
        let endpoint = self.required(map, "endpoint", |c, v| {
            c.parsed(v, |text| {
                check_delivery_path(text).map(|()| text.to_owned())
            })
        });
        let max_attempts = match map.get("maxAttempts") {
            None => Some(crate::events::DEFAULT_MAX_ATTEMPTS),
            Some(value) => self.at("maxAttempts", |c| {
                let attempts = value
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| (1..=crate::events::MAX_ATTEMPTS_LIMIT).contains(n));
                if attempts.is_none() {
                    c.error(format!(
                        "must be a whole number from 1 to {}",
                        crate::events::MAX_ATTEMPTS_LIMIT
                    ));
                }
                attempts
            }),
        };
        Some(SubscriptionDecl {
            pattern: pattern?,
            endpoint: endpoint?,
            max_attempts: max_attempts?,
        })
    }

    fn event_names(&mut self, value: &Value) -> Option<Vec<String>> {
        let items = self.array(value)?;
        let mut names = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let name = self.at(index, |c| {
                c.parsed(item, |text| {
                    check_event_name(text).map(|()| text.to_owned())
                })
            });
            names.extend(name);
        }
        Some(names)
    }
}

/// A string field of a raw JSON object, if present and a string.
fn raw_str<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
}

/// Names a JSON value's type for error messages.
fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An endpoint path template: `/`, or `/`-separated non-empty segments of letters, digits, `-`,
/// `_`, `:`, `*` and `.`, where no segment is `.` or `..`.
pub fn check_endpoint_path(path: &str) -> Result<(), String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err("path must start with \"/\"".to_owned());
    };
    if rest.is_empty() {
        return Ok(());
    }
    for segment in rest.split('/') {
        if segment.is_empty() {
            return Err(
                "path must not contain empty segments (\"//\" or a trailing \"/\")".to_owned(),
            );
        }
        if segment == "." || segment == ".." {
            return Err(format!("path must not contain a \"{segment}\" segment"));
        }
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '*' | '.');
        if let Some(found) = segment.chars().find(|&c| !allowed(c)) {
            return Err(format!(
                "path contains {found:?}; only letters, digits, '-', '_', ':', '*', '.' and '/' are allowed"
            ));
        }
    }
    Ok(())
}

/// A simple http(s) URL check: scheme, a non-empty host, no whitespace or control characters.
fn check_http_url(url: &str) -> Result<(), String> {
    const EXPECTED: &str = "must be an http:// or https:// URL with a host";
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(EXPECTED)?;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("URL must not contain whitespace or control characters".to_owned());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(EXPECTED.to_owned());
    }
    Ok(())
}

/// A remote entry: `https://` only (the shell runs the script in every tenant's browser).
fn check_https_url(url: &str) -> Result<(), String> {
    if !url.starts_with("https://") {
        return Err(format!(
            "must be an https:// URL (the shell loads it into the browser), got \"{url}\""
        ));
    }
    check_http_url(url)
}

/// A shell route: `/` and segments of letters, digits, `-`, `_`, `:` (parameters) or `*`.
fn check_shell_path(path: &str) -> Result<String, String> {
    let valid = path.starts_with('/')
        && path.len() <= 200
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_/:*".contains(c))
        && !path.contains("//");
    if valid {
        Ok(path.to_owned())
    } else {
        Err(format!(
            "a route path starts with / and has letters, digits, - _ : * between slashes, got \"{path}\""
        ))
    }
}

/// Subresource integrity of the remote entry: `sha384-` and the base64 of 48 bytes.
fn check_integrity(text: &str) -> Result<String, String> {
    use base64::Engine as _;
    let digest = text
        .strip_prefix("sha384-")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok());
    match digest {
        Some(bytes) if bytes.len() == 48 => Ok(text.to_owned()),
        _ => Err(format!(
            "integrity must be sha384- and the base64 of a SHA-384 digest, got \"{text}\""
        )),
    }
}

/// A delivery endpoint: an endpoint path without parameters or wildcards.
fn check_delivery_path(path: &str) -> Result<(), String> {
    check_endpoint_path(path)?;
    if path.contains([':', '*']) {
        return Err("a delivery endpoint is a plain path, without :params or *".to_owned());
    }
    Ok(())
}

/// An event name: 1–200 characters of `[a-z0-9._*-]`.
fn check_event_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("event name must not be empty".to_owned());
    }
    let chars = name.chars().count();
    if chars > EVENT_NAME_MAX_CHARS {
        return Err(format!(
            "event name must be at most {EVENT_NAME_MAX_CHARS} characters long, got {chars}"
        ));
    }
    let allowed = |c: char| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '*' | '-')
    };
    if let Some(found) = name.chars().find(|&c| !allowed(c)) {
        return Err(format!(
            "event name contains {found:?}; only lowercase letters, digits, '.', '_', '*' and '-' are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
