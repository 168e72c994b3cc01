//! Azure resource scopes (`/`, `/subscriptions/{id}`, `…/resourceGroups/{rg}`, `…/providers/{ns}/{type}/{name}…`).
//!
//! ARM compares ids case-insensitively and echoes `resourcegroups` in any casing, so a scope keeps the
//! text it was given (for display) and a lower-case key (for comparison). Ancestry is decided on whole
//! segments, never on string prefixes: `/…/resourceGroups/rg` does not enclose `/…/resourceGroups/rg2`.

use std::fmt;

/// Longest scope accepted (ARM ids are well below this).
pub const MAX_SCOPE_LEN: usize = 2048;

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The scope is empty or does not start with `/`.
    #[error("the scope '{0}' must start with '/'")]
    NotAbsolute(String),
    /// A segment is empty (`//`), `.` or `..`, or holds a control character or backslash.
    #[error("the scope '{0}' has an invalid segment")]
    BadSegment(String),
    /// Longer than [`MAX_SCOPE_LEN`].
    #[error("the scope is longer than {MAX_SCOPE_LEN} characters")]
    TooLong,
}

/// A validated scope: `/` or a sequence of non-empty segments.
#[derive(Clone)]
pub struct Scope {
    text: String,
    key: String,
}

impl Scope {
    /// The root scope `/`.
    pub fn root() -> Self {
        Self { text: "/".into(), key: "/".into() }
    }

    /// Parses a scope; a single trailing `/` is dropped (`/subscriptions/x/` = `/subscriptions/x`).
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        if s.len() > MAX_SCOPE_LEN {
            return Err(ScopeError::TooLong);
        }
        if !s.starts_with('/') {
            return Err(ScopeError::NotAbsolute(s.to_string()));
        }
        if s == "/" {
            return Ok(Self::root());
        }
        let trimmed = s.strip_suffix('/').unwrap_or(s);
        for seg in trimmed.get(1..).unwrap_or("").split('/') {
            let bad = seg.is_empty() || seg == "." || seg == ".." || seg.chars().any(|c| c.is_control() || c == '\\');
            if bad {
                return Err(ScopeError::BadSegment(s.to_string()));
            }
        }
        Ok(Self { text: trimmed.to_string(), key: trimmed.to_ascii_lowercase() })
    }

    /// The scope as given (trailing slash removed).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The lower-case comparison key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// True for `/`.
    pub fn is_root(&self) -> bool {
        self.key == "/"
    }

    /// This scope's segments (empty for the root).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.text.split('/').filter(|s| !s.is_empty())
    }

    /// The keys of this scope and every enclosing scope, innermost first, ending with `/`.
    pub fn ancestor_keys(&self) -> impl Iterator<Item = &str> {
        let key = self.key.as_str();
        let cuts = key.match_indices('/').map(|(i, _)| i).filter(|&i| i > 0).collect::<Vec<_>>();
        std::iter::once(key)
            .chain(cuts.into_iter().rev().filter_map(move |i| key.get(..i)))
            .chain(std::iter::once("/").filter(move |_| key != "/"))
    }

    /// True if `self` is `other` or lies inside it.
    pub fn is_within(&self, other: &Scope) -> bool {
        other.is_root()
            || self.key == other.key
            || (self.key.starts_with(&other.key) && self.key.as_bytes().get(other.key.len()) == Some(&b'/'))
    }

    /// The subscription id segment, if the scope is inside a subscription.
    pub fn subscription(&self) -> Option<&str> {
        let mut segs = self.segments();
        match (segs.next(), segs.next()) {
            (Some(s), Some(id)) if s.eq_ignore_ascii_case("subscriptions") => Some(id),
            _ => None,
        }
    }

    /// The resource group segment, if any.
    pub fn resource_group(&self) -> Option<&str> {
        let segs: Vec<&str> = self.segments().take(4).collect();
        match segs.as_slice() {
            [s, _, rg, name]
                if s.eq_ignore_ascii_case("subscriptions") && rg.eq_ignore_ascii_case("resourcegroups") =>
            {
                Some(name)
            }
            _ => None,
        }
    }
}

impl PartialEq for Scope {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Scope {}

impl std::hash::Hash for Scope {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({})", self.text)
    }
}

/// ARM ids of the resources wid manages (casing as ARM returns them).
pub mod ids {
    /// `/subscriptions/{sub}`
    pub fn subscription(sub: &str) -> String {
        format!("/subscriptions/{sub}")
    }
    /// `/subscriptions/{sub}/resourceGroups/{rg}`
    pub fn resource_group(sub: &str, rg: &str) -> String {
        format!("/subscriptions/{sub}/resourceGroups/{rg}")
    }
    /// A user-assigned identity; ARM spells the group segment `resourcegroups` here.
    pub fn identity(sub: &str, rg: &str, name: &str) -> String {
        format!(
            "/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
        )
    }
    /// A federated identity credential of an identity.
    pub fn federated_credential(sub: &str, rg: &str, identity: &str, name: &str) -> String {
        format!("{}/federatedIdentityCredentials/{name}", self::identity(sub, rg, identity))
    }
    /// A cluster registration (`managedClusters`, as AKS).
    pub fn cluster(sub: &str, rg: &str, name: &str) -> String {
        format!("/subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}")
    }
    /// A role definition as listed at a subscription.
    pub fn role_definition(sub: Option<&str>, guid: &str) -> String {
        match sub {
            Some(sub) => format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
            None => format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
        }
    }
    /// A role assignment at a scope.
    pub fn role_assignment(scope: &str, guid: &str) -> String {
        let scope = scope.trim_end_matches('/');
        format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{guid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_innermost_first() {
        let s = Scope::parse("/subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/v").unwrap();
        let a: Vec<&str> = s.ancestor_keys().collect();
        assert_eq!(
            a.first().copied(),
            Some("/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/v")
        );
        assert!(a.contains(&"/subscriptions/s/resourcegroups/rg"));
        assert!(a.contains(&"/subscriptions/s"));
        assert_eq!(a.last().copied(), Some("/"));
        assert_eq!(Scope::root().ancestor_keys().collect::<Vec<_>>(), vec!["/"]);
    }

    #[test]
    fn sibling_is_not_within() {
        let rg = Scope::parse("/subscriptions/s/resourceGroups/rg").unwrap();
        let rg2 = Scope::parse("/subscriptions/s/resourceGroups/rg2").unwrap();
        let inner = Scope::parse("/subscriptions/s/resourcegroups/RG/providers/x/y/z").unwrap();
        assert!(!rg2.is_within(&rg));
        assert!(inner.is_within(&rg));
        assert!(rg.is_within(&Scope::root()));
        assert!(!rg2.ancestor_keys().any(|k| k == rg.key()));
    }

    #[test]
    fn refuses_bad_scopes() {
        for bad in ["", "subscriptions/x", "//", "/a//b", "/a/../b", "/a/./b", "/a/b\\c", "/a/\u{0}"] {
            assert!(Scope::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Scope::parse(&format!("/{}", "a".repeat(MAX_SCOPE_LEN))).is_err());
        assert_eq!(Scope::parse("/subscriptions/x/").unwrap().as_str(), "/subscriptions/x");
        assert!(Scope::parse("/").unwrap().is_root());
    }

    #[test]
    fn parts() {
        let s = Scope::parse("/subscriptions/S1/resourcegroups/G/providers/p").unwrap();
        assert_eq!(s.subscription(), Some("S1"));
        assert_eq!(s.resource_group(), Some("G"));
        assert_eq!(Scope::root().subscription(), None);
    }
}
