//! Semantic versions and npm-style version ranges.
//!
//! Semantics (precedence, range matching, pre-release rules) come from `nodejs-semver`; this module
//! adds the strict front door: a [`Version`] is exactly `MAJOR.MINOR.PATCH[-pre][+build]`, and a
//! [`VersionRange`] is checked against the npm range grammar before the crate sees it, because the
//! crate's loose parser accepts trailing garbage (`^1.0.0 garbage`) and reads `1 2` as a union.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted version or range text, matching `nodejs-semver`'s own limit.
pub const MAX_VERSION_LEN: usize = nodejs_semver::MAX_LENGTH;

/// Why a version or a version range was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// The text is not a strict semantic version.
    #[error("invalid version {input:?}: {reason}")]
    Version {
        /// The rejected text.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The text is not a valid npm version range.
    #[error("invalid version range {input:?}: {reason}")]
    Range {
        /// The rejected text.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A strict semantic version such as `1.2.3` or `1.2.3-beta.1+build.5`.
///
/// Ordering follows semver precedence; build metadata is kept for display but ignored by
/// equality, hashing and ordering.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(nodejs_semver::Version);

impl Version {
    /// Parses `MAJOR.MINOR.PATCH` with optional `-prerelease` and `+build`; no `v` or `=` prefix,
    /// no whitespace, no leading zeros.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let fail = |reason: &str| VersionError::Version {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        check_strict_version(input).map_err(fail)?;
        let parsed = nodejs_semver::Version::parse(input)
            .map_err(|_| fail("numbers are too large to be a version"))?;
        // Guards the promise that Display gives back exactly what was accepted.
        if parsed.to_string() != input {
            return Err(fail("numeric identifiers are too large to be a version"));
        }
        Ok(Self(parsed))
    }

    /// The major version number.
    pub fn major(&self) -> u64 {
        self.0.major()
    }

    /// The minor version number.
    pub fn minor(&self) -> u64 {
        self.0.minor()
    }

    /// The patch version number.
    pub fn patch(&self) -> u64 {
        self.0.patch()
    }

    /// Whether the version has a pre-release part (`1.0.0-beta`).
    pub fn is_prerelease(&self) -> bool {
        self.0.is_prerelease()
    }

    /// The underlying `nodejs-semver` version.
    pub fn as_semver(&self) -> &nodejs_semver::Version {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Version {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

const VERSION_SHAPE: &str = "expected MAJOR.MINOR.PATCH with optional -prerelease and +build, like \"1.2.3\" or \"1.2.3-beta.1\"";

/// Checks the strict semver 2.0 shape, returning a human reason on failure.
fn check_strict_version(input: &str) -> Result<(), &'static str> {
    if input.is_empty() {
        return Err("version must not be empty");
    }
    if input.len() > MAX_VERSION_LEN {
        return Err("version is longer than 256 characters");
    }
    let (rest, build) = match input.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (input, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() != 3 || !numbers.iter().all(|n| is_digits(n)) {
        return Err(VERSION_SHAPE);
    }
    if numbers.iter().any(|n| has_leading_zero(n)) {
        return Err("MAJOR, MINOR and PATCH must not have leading zeros");
    }
    if let Some(pre) = pre {
        check_identifiers(pre, "pre-release")?;
        if pre
            .split('.')
            .any(|id| is_digits(id) && has_leading_zero(id))
        {
            return Err("numeric pre-release identifiers must not have leading zeros");
        }
    }
    if let Some(build) = build {
        check_identifiers(build, "build")?;
        // Semver allows `+001`, but nodejs-semver would print it as `+1`; rejecting it keeps
        // Display equal to the accepted text.
        if build
            .split('.')
            .any(|id| is_digits(id) && has_leading_zero(id))
        {
            return Err("numeric build identifiers must not have leading zeros");
        }
    }
    Ok(())
}

/// Checks dot-separated, non-empty identifiers of `[0-9A-Za-z-]`.
fn check_identifiers(part: &str, what: &'static str) -> Result<(), &'static str> {
    let ok = part
        .split('.')
        .all(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if ok {
        Ok(())
    } else if what == "build" {
        Err("build identifiers must be non-empty and contain only letters, digits and hyphens")
    } else {
        Err(
            "pre-release identifiers must be non-empty and contain only letters, digits and hyphens",
        )
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn has_leading_zero(digits: &str) -> bool {
    digits.len() > 1 && digits.starts_with('0')
}

/// An npm version range such as `^1.0.0`, `>=1.0.0 <2.0.0`, `1.x` or `^1.0.0 || ^2.0.0`.
///
/// Keeps the text it was parsed from (trimmed) for display and serialization.
#[derive(Clone, Debug)]
pub struct VersionRange {
    text: String,
    /// One satisfiable set per `||` alternative. Kept apart rather than folded into one
    /// `nodejs_semver::Range` because the crate has no union constructor, and re-parsing would
    /// hit its loose parser again.
    alternatives: Vec<nodejs_semver::Range>,
}

impl VersionRange {
    /// Parses a range in the full npm grammar: comparators (`<`, `<=`, `>`, `>=`, `=`), tilde
    /// (`~`, `~>`), caret (`^`), X-ranges (`1.x`, `1.2.*`, `*`), partial versions, hyphen ranges
    /// (`1.0.0 - 2.0.0`), space-separated intersections and `||` unions. Rejects empty text,
    /// empty alternatives and comparator sets that no version can satisfy.
    pub fn parse(input: &str) -> Result<Self, VersionError> {
        let fail = |reason: String| VersionError::Range {
            input: input.to_owned(),
            reason,
        };
        let text = input.trim();
        if text.is_empty() {
            return Err(fail("range must not be empty".to_owned()));
        }
        if text.len() > MAX_VERSION_LEN {
            return Err(fail("range is longer than 256 characters".to_owned()));
        }
        let alternatives = text
            .split("||")
            .map(parse_alternative)
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        Ok(Self {
            text: text.to_owned(),
            alternatives,
        })
    }

    /// The range as written (surrounding whitespace removed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `version` lies in the range, with npm's rule that a pre-release only matches a
    /// comparator set that names a pre-release of the same `MAJOR.MINOR.PATCH`.
    pub fn satisfies(&self, version: &Version) -> bool {
        self.alternatives
            .iter()
            .any(|range| range.satisfies(&version.0))
    }

    /// The highest of `versions` that satisfies the range, if any.
    pub fn max_satisfying<'a>(
        &self,
        versions: impl IntoIterator<Item = &'a Version>,
    ) -> Option<&'a Version> {
        versions.into_iter().filter(|v| self.satisfies(v)).max()
    }
}

impl PartialEq for VersionRange {
    /// Two ranges are equal when they were written the same way.
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for VersionRange {}

impl PartialOrd for VersionRange {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VersionRange {
    fn cmp(&self, other: &Self) -> Ordering {
        self.text.cmp(&other.text)
    }
}

impl std::hash::Hash for VersionRange {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for VersionRange {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for VersionRange {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for VersionRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// Operators that may prefix a partial version, longest first so `>=` wins over `>`.
const OPERATORS: [&str; 8] = ["<=", ">=", "~>", "<", ">", "=", "~", "^"];

/// Parses one `||` alternative: a hyphen range or a space-separated intersection.
fn parse_alternative(alternative: &str) -> Result<nodejs_semver::Range, String> {
    let tokens: Vec<&str> = alternative.split_ascii_whitespace().collect();
    if tokens.is_empty() {
        return Err("empty alternative next to \"||\"".to_owned());
    }
    if let [lower, "-", upper] = tokens.as_slice() {
        check_partial(lower)?;
        check_partial(upper)?;
        return crate_range(&format!("{lower} - {upper}"));
    }
    if tokens.contains(&"-") {
        return Err("a hyphen range must be exactly \"<version> - <version>\"".to_owned());
    }

    let mut comparators = Vec::new();
    let mut iter = tokens.into_iter();
    while let Some(token) = iter.next() {
        let operator = OPERATORS.iter().find(|op| token.starts_with(**op));
        let comparator = match operator {
            // npm allows a space between an operator and its version (`>= 1.0.0`).
            Some(op) if token.len() == op.len() => {
                let partial = iter
                    .next()
                    .ok_or_else(|| format!("operator {op:?} is not followed by a version"))?;
                check_partial(partial)?;
                format!("{op}{partial}")
            }
            Some(op) => {
                check_partial(&token[op.len()..])?;
                token.to_owned()
            }
            None => {
                check_partial(token)?;
                token.to_owned()
            }
        };
        comparators.push(comparator);
    }

    // Intersect comparator by comparator: the crate turns an empty intersection into a union
    // when given the whole set at once.
    let mut set = nodejs_semver::Range::any();
    for comparator in &comparators {
        set = set.intersect(&crate_range(comparator)?).ok_or_else(|| {
            format!(
                "no version can satisfy \"{}\" (the comparators contradict each other)",
                comparators.join(" ")
            )
        })?;
    }
    Ok(set)
}

fn crate_range(text: &str) -> Result<nodejs_semver::Range, String> {
    nodejs_semver::Range::parse(text).map_err(|_| format!("{text:?} is not a valid range"))
}

/// Checks a partial version: `xr ( . xr ( . xr qualifier? )? )?` where `xr` is a number, `x`,
/// `X` or `*`; a `-pre`/`+build` qualifier needs three numeric parts.
fn check_partial(partial: &str) -> Result<(), String> {
    let bad = || {
        format!(
            "{partial:?} is not a version, partial version (\"1.2\") or wildcard (\"1.x\", \"*\")"
        )
    };
    let qualifier_at = partial.find(['-', '+']);
    let core = qualifier_at.map_or(partial, |at| &partial[..at]);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(bad());
    }
    for part in &parts {
        let wildcard = matches!(*part, "x" | "X" | "*");
        if !wildcard && !is_digits(part) {
            return Err(bad());
        }
        if has_leading_zero(part) {
            return Err(format!("{partial:?} has a number with a leading zero"));
        }
    }
    if qualifier_at.is_some() {
        check_strict_version(partial).map_err(|reason| format!("{partial:?}: {reason}"))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn r(s: &str) -> VersionRange {
        VersionRange::parse(s).unwrap()
    }

    #[test]
    fn strict_versions_are_accepted_and_display_canonically() {
        for input in [
            "0.0.0",
            "1.0.0",
            "1.2.3",
            "10.20.30",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-0.3.7",
            "1.0.0-x.7.z.92",
            "1.0.0-x-y-z.--",
            "1.2.3-beta.1",
            "1.0.0+20130313144700",
            "1.0.0-beta+exp.sha.5114f85",
            "1.0.0+21AF26D3----117B344092BD",
            "1.0.0+0.1",
            "1.0.0+0a",
        ] {
            assert_eq!(v(input).to_string(), input, "input {input:?}");
        }
    }

    #[test]
    fn loose_or_malformed_versions_are_rejected() {
        for input in [
            "",
            " ",
            "1",
            "1.2",
            "v1.0",
            "v1.2.3",
            "=1.2.3",
            " 1.2.3",
            "1.2.3 ",
            "1.2.3.4",
            "01.2.3",
            "1.02.3",
            "1.2.03",
            "1.2.3-",
            "1.2.3+",
            "1.2.3-alpha..1",
            "1.2.3-01",
            "1.2.3-beta_1",
            "1.2.3+build..1",
            "1.2.3+build+2",
            "1.0.0+001",
            "a.b.c",
            "-1.2.3",
            "1.2.-3",
            "99999999999999999999.0.0",
            "latest",
        ] {
            let err = Version::parse(input).unwrap_err();
            assert!(
                matches!(err, VersionError::Version { .. }),
                "input {input:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn version_error_message_is_human() {
        assert_eq!(
            Version::parse("1.2").unwrap_err().to_string(),
            "invalid version \"1.2\": expected MAJOR.MINOR.PATCH with optional -prerelease and \
             +build, like \"1.2.3\" or \"1.2.3-beta.1\""
        );
        assert_eq!(
            Version::parse("01.2.3").unwrap_err().to_string(),
            "invalid version \"01.2.3\": MAJOR, MINOR and PATCH must not have leading zeros"
        );
    }

    #[test]
    fn ordering_follows_semver_precedence() {
        // The precedence example from semver.org, in ascending order.
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.1.0",
            "1.10.0",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0.0+a").cmp(&v("1.0.0+b")), Ordering::Equal);
        assert_eq!(v("1.0.0+a"), v("1.0.0"));
    }

    #[test]
    fn prerelease_flag_and_accessors() {
        assert!(v("1.0.0-beta").is_prerelease());
        assert!(!v("1.0.0").is_prerelease());
        assert!(!v("1.0.0+build").is_prerelease());
        let version = v("3.4.5");
        assert_eq!(
            (version.major(), version.minor(), version.patch()),
            (3, 4, 5)
        );
    }

    #[test]
    fn versions_serialize_as_strings() {
        assert_eq!(
            serde_json::to_string(&v("1.2.3-rc.1+b")).unwrap(),
            "\"1.2.3-rc.1+b\""
        );
        assert_eq!(
            serde_json::from_str::<Version>("\"1.2.3\"").unwrap(),
            v("1.2.3")
        );
        assert!(serde_json::from_str::<Version>("\"v1.2.3\"").is_err());
    }

    #[test]
    fn npm_ranges_are_accepted() {
        for input in [
            "^1.0.0",
            "~1.2",
            "~1.2.3",
            "~>1.2.3",
            ">=1.0.0 <2.0.0",
            ">= 1.0.0 < 2.0.0",
            ">1.0.0",
            "<=2",
            "=1.0.0",
            "1.0.0",
            "1.x",
            "1.2.x",
            "1.X",
            "1.*",
            "1",
            "*",
            "x",
            "1.0.0 - 2.0.0",
            "1 - 2.3",
            "^1.0.0 || ^2.0.0",
            "^1.0.0||^2.0.0",
            "1.2.7 || >=1.2.9 <2.0.0",
            "^1.2.3-beta.1",
            "1.0.0-rc.1 - 1.0.0",
            "  ^1.0.0  ",
        ] {
            let range = VersionRange::parse(input).unwrap();
            assert_eq!(range.to_string(), input.trim(), "input {input:?}");
        }
    }

    #[test]
    fn malformed_ranges_are_rejected() {
        for input in [
            "",
            "   ",
            ">>1",
            "abc",
            "latest",
            "^1.0.0 garbage",
            "^1.0.0 ||",
            "|| ^1.0.0",
            "||",
            "^1.0.0 | ^2.0.0",
            "v1.0.0",
            "^v1.0.0",
            "1.2.3.4",
            "01.0.0",
            "1..2",
            "^1.0.0-",
            "1.0.0 -",
            "- 1.0.0",
            "1.0.0 - 2.0.0 - 3.0.0",
            "^1.0.0 - 2.0.0",
            ">=",
            ">= ",
            "^*x",
            "1.x-beta",
            // Contradictory intersections: the crate alone would read these as unions.
            "1 2",
            "1.2.3 1.2.4",
            ">1.0.0 <=1.0.0",
            ">=2.0.0 <1.0.0",
        ] {
            let err = VersionRange::parse(input).unwrap_err();
            assert!(
                matches!(err, VersionError::Range { .. }),
                "input {input:?} gave {err:?}"
            );
        }
    }

    #[test]
    fn range_error_message_is_human() {
        assert_eq!(
            VersionRange::parse("").unwrap_err().to_string(),
            "invalid version range \"\": range must not be empty"
        );
        assert_eq!(
            VersionRange::parse("latest").unwrap_err().to_string(),
            "invalid version range \"latest\": \"latest\" is not a version, partial version \
             (\"1.2\") or wildcard (\"1.x\", \"*\")"
        );
    }

    #[test]
    fn satisfies_follows_npm_semantics() {
        let cases: &[(&str, &str, bool)] = &[
            ("^1.0.0", "1.0.0", true),
            ("^1.0.0", "1.9.9", true),
            ("^1.0.0", "2.0.0", false),
            ("^1.0.0", "0.9.9", false),
            ("^1.0.0", "2.0.0-rc.1", false),
            ("^1.0.0", "1.5.0-beta", false),
            ("^0.2.3", "0.2.9", true),
            ("^0.2.3", "0.3.0", false),
            ("^0.0.3", "0.0.4", false),
            ("~1.2", "1.2.9", true),
            ("~1.2", "1.3.0", false),
            ("~1.2.3", "1.2.2", false),
            (">=1.0.0 <2.0.0", "1.99.0", true),
            (">=1.0.0 <2.0.0", "2.0.0", false),
            ("1.x", "1.4.0", true),
            ("1.x", "2.0.0", false),
            ("*", "123.0.0", true),
            ("*", "1.0.0-beta", false),
            ("1.0.0 - 2.0.0", "2.0.0", true),
            ("1.0.0 - 2.0.0", "2.0.1", false),
            ("1.0.0 - 2", "2.9.0", true),
            ("^1.0.0 || ^2.0.0", "2.3.0", true),
            ("^1.0.0 || ^2.0.0", "3.0.0", false),
            ("=1.0.0", "1.0.0", true),
            ("1.0.0", "1.0.1", false),
            ("^1.2.3-beta.1", "1.2.3-beta.2", true),
            ("^1.2.3-beta.1", "1.2.4-beta.1", false),
            ("^1.2.3-beta.1", "1.2.3", true),
            ("<=1.2", "1.2.99", true),
            ("<=1.2", "1.3.0", false),
            (">=1.2.3 <=1.2.3", "1.2.3", true),
        ];
        for (range, version, expected) in cases {
            assert_eq!(
                r(range).satisfies(&v(version)),
                *expected,
                "{version} in {range}"
            );
        }
    }

    #[test]
    fn max_satisfying_picks_highest_match() {
        let versions: Vec<Version> = ["1.0.0", "1.4.2", "2.0.0", "1.5.0-beta", "0.9.0"]
            .into_iter()
            .map(v)
            .collect();
        assert_eq!(r("^1.0.0").max_satisfying(&versions), Some(&versions[1]));
        assert_eq!(r("*").max_satisfying(&versions), Some(&versions[2]));
        assert_eq!(r("^3.0.0").max_satisfying(&versions), None);
        assert_eq!(
            r("<1.0.0 || 1.0.0").max_satisfying(&versions),
            Some(&versions[0])
        );
        assert_eq!(r("^1.0.0").max_satisfying([]), None);
    }

    #[test]
    fn ranges_serialize_as_written() {
        let range = r("^1.0.0 || ^2.0.0");
        assert_eq!(
            serde_json::to_string(&range).unwrap(),
            "\"^1.0.0 || ^2.0.0\""
        );
        let back: VersionRange = serde_json::from_str("\"^1.0.0 || ^2.0.0\"").unwrap();
        assert_eq!(back, range);
        assert!(serde_json::from_str::<VersionRange>("\"abc\"").is_err());
    }
}
