//! Events between plugins: topics and who owns them, subscription patterns and who may use
//! them, and the delivery backoff. Pure rules; the hub stores and delivers.
//!
//! Topics are dot-separated lower-case segments. `plugin.<name>.…` belongs to the plugin
//! `plugin-<name>`; `plexhub.…` and `core.…` (the platform's catalog events, such as
//! `core.plugin.published`) are the hub's own. A pattern matches topics segment by segment:
//! `*` matches one segment, a final `#` matches one or more.

use std::fmt;

use crate::ids::PluginId;
use crate::manifest::DependencySpec;

/// Longest topic or pattern, in characters.
pub const TOPIC_MAX_CHARS: usize = 200;

/// The first segment of the hub's own topics.
pub const HUB_TOPIC_ROOT: &str = "plexhub";

/// The first segment of the platform-wide topics the hub announces for the catalog
/// (`core.plugin.published`, `core.plugin.deprecated`, `core.plugin.yanked`).
pub const CORE_TOPIC_ROOT: &str = "core";

/// Whether a topic's (or pattern's) first segment is one of the hub's own roots.
fn is_hub_root(root: &str) -> bool {
    root == HUB_TOPIC_ROOT || root == CORE_TOPIC_ROOT
}

/// The first segment of plugins' topics.
pub const PLUGIN_TOPIC_ROOT: &str = "plugin";

/// Attempts of a delivery before its event goes to the dead letters, unless the subscription
/// says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;

/// Most attempts a subscription may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 20;

fn check_segment(segment: &str, what: &str) -> Result<(), String> {
    let valid = !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{what} segment {segment:?} must be lower-case letters, digits, '_' or '-'"
        ))
    }
}

fn check_length(text: &str, what: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars == 0 || chars > TOPIC_MAX_CHARS {
        return Err(format!(
            "{what} must be 1 to {TOPIC_MAX_CHARS} characters, got {chars}"
        ));
    }
    Ok(())
}

/// An event type (topic): `plugin.crm.contact.created`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(String);

impl Topic {
    /// Checks the syntax: at least two segments of `[a-z0-9_-]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        check_length(text, "an event type")?;
        let segments: Vec<&str> = text.split('.').collect();
        if segments.len() < 2 {
            return Err(format!(
                "event type {text:?} needs at least two dot-separated segments"
            ));
        }
        for segment in segments {
            check_segment(segment, "event type")?;
        }
        Ok(Self(text.to_owned()))
    }

    /// The topic's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The plugin that owns it (`plugin.crm.…` → `plugin-crm`), if it is a plugin topic.
    pub fn owner(&self) -> Option<String> {
        plugin_of(&self.0)
    }

    /// Whether it is one of the hub's own topics.
    pub fn is_hub_topic(&self) -> bool {
        self.0.split('.').next().is_some_and(is_hub_root)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `plugin.<name>.<more>` → `plugin-<name>`.
fn plugin_of(text: &str) -> Option<String> {
    let mut segments = text.split('.');
    let (root, name) = (segments.next()?, segments.next()?);
    (root == PLUGIN_TOPIC_ROOT && segments.next().is_some()).then(|| format!("plugin-{name}"))
}

/// Why a plugin may not publish an event type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishDenial {
    /// `plexhub.…` is the hub's own.
    HubTopic,
    /// Another plugin's topic, or no plugin topic at all.
    NotOwned {
        /// The only root the plugin may publish under.
        expected_prefix: String,
    },
}

impl fmt::Display for PublishDenial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HubTopic => write!(f, "plexhub.… and core.… event types are the hub's own"),
            Self::NotOwned { expected_prefix } => {
                write!(f, "this plugin publishes only under {expected_prefix}…")
            }
        }
    }
}

/// The prefix `plugin` publishes under: `plugin-crm` → `plugin.crm.`.
pub fn publish_prefix(plugin: &PluginId) -> String {
    let name = plugin
        .as_str()
        .strip_prefix("plugin-")
        .unwrap_or(plugin.as_str());
    format!("{PLUGIN_TOPIC_ROOT}.{name}.")
}

/// Whether `plugin` may publish `topic`: only under its own `plugin.<name>.…`.
pub fn check_publish(plugin: &PluginId, topic: &Topic) -> Result<(), PublishDenial> {
    if topic.is_hub_topic() {
        return Err(PublishDenial::HubTopic);
    }
    if topic.owner().as_deref() == Some(plugin.as_str()) {
        Ok(())
    } else {
        Err(PublishDenial::NotOwned {
            expected_prefix: publish_prefix(plugin),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

/// A subscription pattern: `plugin.crm.contact.*`, `plexhub.plugin.#`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Checks the syntax: segments of `[a-z0-9_-]`, `*`, or a final `#`.
    pub fn parse(text: &str) -> Result<Self, String> {
        check_length(text, "a pattern")?;
        let parts: Vec<&str> = text.split('.').collect();
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            segments.push(match *part {
                "*" => Segment::One,
                "#" if index + 1 == parts.len() => Segment::Rest,
                "#" => return Err(format!("in pattern {text:?}, '#' may only end it")),
                literal => {
                    check_segment(literal, "pattern")?;
                    Segment::Literal(literal.to_owned())
                }
            });
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern's text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        let mut parts = topic.split('.');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return parts.next().is_some(),
                Segment::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(literal) => {
                    if parts.next() != Some(literal.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }

    /// The topics it can match: the hub's, one plugin's, or unbounded (a wildcard in the
    /// first two segments).
    fn scope(&self) -> Scope {
        match self.segments.as_slice() {
            [Segment::Literal(root), ..] if is_hub_root(root) => Scope::Hub,
            [Segment::Literal(root), Segment::Literal(name), _, ..]
                if root == PLUGIN_TOPIC_ROOT =>
            {
                Scope::Plugin(format!("plugin-{name}"))
            }
            _ => Scope::Unbounded,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

enum Scope {
    Hub,
    Plugin(String),
    Unbounded,
}

/// Whether `reader` may read the topics of `owner`: its own, or a plugin its manifest declares
/// a dependency on.
fn may_read_plugin(reader: &PluginId, dependencies: &[DependencySpec], owner: &str) -> bool {
    reader.as_str() == owner
        || dependencies
            .iter()
            .any(|dependency| dependency.plugin_id.as_str() == owner)
}

/// Whether a plugin (`subscriber`, with its manifest's `dependencies`) may subscribe to
/// `pattern`: the hub's topics, its own, and those of plugins it declares a dependency on.
/// The refusal says why.
pub fn check_subscription(
    subscriber: &PluginId,
    dependencies: &[DependencySpec],
    pattern: &Pattern,
) -> Result<(), String> {
    match pattern.scope() {
        Scope::Hub => Ok(()),
        Scope::Plugin(owner) if may_read_plugin(subscriber, dependencies, &owner) => Ok(()),
        Scope::Plugin(owner) => Err(format!(
            "{subscriber} may not subscribe to {pattern}: it declares no dependency on {owner}"
        )),
        Scope::Unbounded => Err(format!(
            "{subscriber} may not subscribe to {pattern}: a pattern must start with plexhub., core. \
             or plugin.<name>. (a wildcard there would read other plugins' events)"
        )),
    }
}

/// Whether a plugin may read an event of `topic` (the pull stream applies the rule of
/// [`check_subscription`] to each event).
pub fn may_read(reader: &PluginId, dependencies: &[DependencySpec], topic: &str) -> bool {
    if topic.split('.').next().is_some_and(is_hub_root) {
        return true;
    }
    plugin_of(topic).is_some_and(|owner| may_read_plugin(reader, dependencies, &owner))
}

/// Wait before retry number `attempt` (1 = the first retry): `base_ms` doubled each time,
/// at most `max_ms`.
pub fn backoff_ms(attempt: u32, base_ms: i64, max_ms: i64) -> i64 {
    let doublings = attempt.saturating_sub(1).min(30);
    base_ms.saturating_mul(1_i64 << doublings).min(max_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::VersionRange;

    fn plugin(id: &str) -> PluginId {
        PluginId::parse(id).expect("plugin id")
    }

    fn depends_on(id: &str) -> DependencySpec {
        DependencySpec {
            plugin_id: plugin(id),
            service_name: None,
            range: VersionRange::parse("^1.0.0").expect("range"),
            required: true,
            reason: None,
        }
    }

    #[test]
    fn topics_need_two_clean_segments() {
        assert!(Topic::parse("plugin.crm.contact.created").is_ok());
        for bad in [
            "",
            "single",
            "plugin..x",
            "Plugin.crm.x",
            "plugin.crm.*",
            "a.b c",
        ] {
            assert!(Topic::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Topic::parse(&format!("a.{}", "b".repeat(200))).is_err());
    }

    #[test]
    fn plugins_publish_only_their_own_topics() {
        let crm = plugin("plugin-crm");
        let topic = |text| Topic::parse(text).expect("topic");
        assert_eq!(
            check_publish(&crm, &topic("plugin.crm.contact.created")),
            Ok(())
        );
        assert_eq!(
            check_publish(&crm, &topic("plexhub.plugin.installed")),
            Err(PublishDenial::HubTopic)
        );
        assert_eq!(
            check_publish(&crm, &topic("core.plugin.published")),
            Err(PublishDenial::HubTopic)
        );
        let denial = check_publish(&crm, &topic("plugin.analytics.report.ready"));
        assert_eq!(
            denial,
            Err(PublishDenial::NotOwned {
                expected_prefix: "plugin.crm.".into()
            })
        );
        // `plugin.crm` alone names no entity: not a plugin topic.
        assert!(check_publish(&crm, &topic("plugin.crm")).is_err());
        assert!(check_publish(&plugin("plugin-crm-pro"), &topic("plugin.crm.x")).is_err());
    }

    #[test]
    fn patterns_match_segment_by_segment() {
        let pattern = |text| Pattern::parse(text).expect("pattern");
        assert!(pattern("plugin.crm.contact.*").matches("plugin.crm.contact.created"));
        assert!(!pattern("plugin.crm.contact.*").matches("plugin.crm.contact"));
        assert!(!pattern("plugin.crm.contact.*").matches("plugin.crm.contact.a.b"));
        assert!(pattern("plugin.crm.#").matches("plugin.crm.deal.stage.changed"));
        assert!(!pattern("plugin.crm.#").matches("plugin.crm"));
        assert!(pattern("plexhub.*.installed").matches("plexhub.plugin.installed"));
        assert!(pattern("plugin.crm.deal.updated").matches("plugin.crm.deal.updated"));
        assert!(!pattern("plugin.crm.deal.updated").matches("plugin.crm.deal.updated2"));
        assert!(Pattern::parse("plugin.#.x").is_err());
        assert!(Pattern::parse("plugin.cr*m.x").is_err());
    }

    #[test]
    fn subscriptions_reach_the_hub_own_and_declared_plugins() {
        let analytics = plugin("plugin-analytics");
        let deps = [depends_on("plugin-crm")];
        let check =
            |text| check_subscription(&analytics, &deps, &Pattern::parse(text).expect("pattern"));
        assert!(check("plugin.crm.contact.*").is_ok());
        assert!(check("plexhub.#").is_ok());
        assert!(check("core.plugin.*").is_ok());
        assert!(check("plugin.analytics.#").is_ok());
        let refused = check("plugin.billing.#").expect_err("no dependency on billing");
        assert!(refused.contains("plugin-billing"), "{refused}");
        assert!(check("plugin.*.contact.created").is_err());
        assert!(check("#").is_err());
        assert!(check("plugin.crm").is_err());
        assert!(may_read(&analytics, &deps, "plugin.crm.deal.updated"));
        assert!(may_read(&analytics, &deps, "plexhub.service.registered"));
        assert!(may_read(&analytics, &deps, "core.plugin.yanked"));
        assert!(!may_read(&analytics, &deps, "plugin.billing.invoice.paid"));
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        assert_eq!(backoff_ms(1, 100, 10_000), 100);
        assert_eq!(backoff_ms(2, 100, 10_000), 200);
        assert_eq!(backoff_ms(4, 100, 10_000), 800);
        assert_eq!(backoff_ms(40, 100, 10_000), 10_000);
    }
}
