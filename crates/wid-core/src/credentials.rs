//! An identity's federated credentials, held so that an exchange finds its credential in constant
//! time however many the identity has (`--max-federated-credentials 0` lifts Entra's 20).
//!
//! Small sets are scanned: up to [`INDEX_FROM`] credentials a scan is as fast as a hash probe and
//! costs no memory beyond the list, which matters at 100,000 identities. From there on, an index
//! finds a credential by name (management writes) and by issuer and subject (exchanges).
//! Claims-matching expressions are parsed once, when the credential is added, and evaluated only
//! for tokens of their own issuer. Removing swaps the last credential into the hole, so every
//! change costs O(1) besides the expressions of the changed credential's issuer.

use std::collections::HashMap;

use crate::fic::{self, Expression, FederatedCredential, NoMatch, Presented};

/// From this many credentials on, an identity's credentials are indexed.
pub const INDEX_FROM: usize = 32;

/// An identity's federated credentials with the lookups an exchange needs.
#[derive(Debug, Clone, Default)]
pub struct CredentialSet {
    list: Vec<FederatedCredential>,
    /// Built from [`INDEX_FROM`] credentials on, or as soon as one has an expression.
    index: Option<Box<Index>>,
}

#[derive(Debug, Clone, Default)]
struct Index {
    /// Position in `list` by lower-case name.
    by_name: HashMap<String, usize>,
    /// Position by issuer and subject (unique per identity, as Entra requires).
    exact: HashMap<(String, String), usize>,
    /// Positions and compiled expressions of the claims-matching credentials, by issuer.
    patterns: HashMap<String, Vec<(usize, Expression)>>,
}

impl CredentialSet {
    /// The credentials, in no particular order.
    pub fn as_slice(&self) -> &[FederatedCredential] {
        &self.list
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Adds a credential, replacing one of the same name (case-insensitively).
    pub fn put(&mut self, credential: FederatedCredential) {
        self.remove(&credential.name);
        let needs_index = self.list.len() + 1 >= INDEX_FROM || credential.claims_matching_expression.is_some();
        if self.index.is_none() && needs_index {
            let mut index = Index::default();
            for (pos, c) in self.list.iter().enumerate() {
                index.insert(pos, c);
            }
            self.index = Some(Box::new(index));
        }
        if let Some(index) = &mut self.index {
            index.insert(self.list.len(), &credential);
        }
        // Exactly as many slots as credentials: most identities have one to three.
        self.list.reserve_exact(1);
        self.list.push(credential);
    }

    /// Removes a credential by name (case-insensitively).
    pub fn remove(&mut self, name: &str) -> Option<FederatedCredential> {
        let pos = match &self.index {
            Some(index) => *index.by_name.get(&name.to_ascii_lowercase())?,
            None => self.list.iter().position(|c| c.name.eq_ignore_ascii_case(name))?,
        };
        let last = self.list.len().checked_sub(1)?;
        if let Some(index) = &mut self.index {
            index.forget(pos, self.list.get(pos)?);
            if pos != last {
                index.moved(last, pos, self.list.get(last)?);
            }
        }
        Some(self.list.swap_remove(pos))
    }

    /// Releases spare capacity (after a bulk load).
    pub fn shrink_to_fit(&mut self) {
        self.list.shrink_to_fit();
    }

    /// The credential admitting the presented assertion. Exact subjects are a probe, expressions
    /// are evaluated for the token's issuer only; when nothing admits it, [`fic::find_match`]
    /// explains why over the whole set (the refusal path, bounded by the set's size).
    pub fn find(&self, p: &Presented<'_>) -> Result<&FederatedCredential, NoMatch> {
        let Some(index) = &self.index else { return fic::find_match(&self.list, p) };
        let audience_ok = |c: &FederatedCredential| c.audiences.iter().any(|a| p.audiences.contains(&a.as_str()));
        let exact = index.exact.get(&(p.issuer.to_string(), p.subject.to_string())).and_then(|&pos| self.list.get(pos));
        if let Some(c) = exact.filter(|c| audience_ok(c)) {
            return Ok(c);
        }
        let patterns = index.patterns.get(p.issuer).map(Vec::as_slice).unwrap_or_default();
        for (pos, expression) in patterns {
            if let Some(c) = self.list.get(*pos).filter(|c| audience_ok(c) && expression.matches(p.claims)) {
                return Ok(c);
            }
        }
        fic::find_match(&self.list, p)
    }
}

impl Index {
    fn insert(&mut self, pos: usize, c: &FederatedCredential) {
        self.by_name.insert(c.name.to_ascii_lowercase(), pos);
        if let Some(subject) = &c.subject {
            self.exact.insert((c.issuer.clone(), subject.clone()), pos);
        }
        // A stored expression was validated when written; one that no longer parses never matches.
        if let Some(e) = &c.claims_matching_expression
            && let Ok(expression) = Expression::parse(&e.value, e.language_version)
        {
            self.patterns.entry(c.issuer.clone()).or_default().push((pos, expression));
        }
    }

    fn forget(&mut self, pos: usize, c: &FederatedCredential) {
        self.by_name.remove(&c.name.to_ascii_lowercase());
        if let Some(subject) = &c.subject {
            self.exact.remove(&(c.issuer.clone(), subject.clone()));
        }
        if let Some(list) = self.patterns.get_mut(&c.issuer) {
            list.retain(|(p, _)| *p != pos);
            if list.is_empty() {
                self.patterns.remove(&c.issuer);
            }
        }
    }

    /// The credential at `from` now sits at `to`.
    fn moved(&mut self, from: usize, to: usize, c: &FederatedCredential) {
        self.by_name.insert(c.name.to_ascii_lowercase(), to);
        if let Some(subject) = &c.subject {
            self.exact.insert((c.issuer.clone(), subject.clone()), to);
        }
        if let Some(list) = self.patterns.get_mut(&c.issuer) {
            list.iter_mut().filter(|(p, _)| *p == from).for_each(|(p, _)| *p = to);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use super::*;
    use crate::fic::{ClaimsMatchingExpression, DEFAULT_AUDIENCE};

    fn cred(name: &str, iss: &str, sub: &str) -> FederatedCredential {
        FederatedCredential {
            name: name.into(),
            issuer: iss.into(),
            subject: Some(sub.into()),
            claims_matching_expression: None,
            audiences: vec![DEFAULT_AUDIENCE.into()],
            description: None,
        }
    }

    fn pattern(name: &str, iss: &str, expr: &str) -> FederatedCredential {
        FederatedCredential {
            subject: None,
            claims_matching_expression: Some(ClaimsMatchingExpression { value: expr.into(), language_version: 1 }),
            ..cred(name, iss, "")
        }
    }

    fn find<'s>(set: &'s CredentialSet, iss: &str, claims: &Map<String, Value>) -> Option<&'s str> {
        let p = Presented {
            issuer: iss,
            subject: claims.get("sub").and_then(Value::as_str).unwrap_or(""),
            audiences: &[DEFAULT_AUDIENCE],
            claims,
        };
        set.find(&p).ok().map(|c| c.name.as_str())
    }

    fn claims(sub: &str) -> Map<String, Value> {
        json!({"sub": sub}).as_object().cloned().unwrap_or_default()
    }

    /// The index agrees with a scan of the list through every put and remove, small and large.
    #[test]
    fn indexed_lookups_agree_with_a_scan() {
        let mut set = CredentialSet::default();
        let mut names = Vec::new();
        for i in 0..100 {
            set.put(cred(&format!("c{i}"), &format!("https://i{}/", i % 3), &format!("s{i}")));
            names.push(i);
            if i % 7 == 3 {
                let gone = names.remove(names.len() / 2);
                assert!(set.remove(&format!("C{gone}")).is_some(), "names are case-insensitive");
            }
            for &j in &names {
                assert_eq!(
                    find(&set, &format!("https://i{}/", j % 3), &claims(&format!("s{j}"))),
                    Some(&*format!("c{j}"))
                );
            }
            assert_eq!(set.len(), names.len());
            assert!(set.len() < INDEX_FROM || set.index.is_some());
        }
        assert_eq!(find(&set, "https://i0/", &claims("s1")), None, "s1 is another issuer's");
        set.put(cred("c99", "https://i0/", "replaced"));
        assert_eq!(find(&set, "https://i0/", &claims("replaced")), Some("c99"));
        assert_eq!(find(&set, "https://i0/", &claims("s99")), None);
    }

    #[test]
    fn expressions_are_evaluated_for_their_issuer_only() {
        let mut set = CredentialSet::default();
        set.put(cred("exact", "https://gh/", "repo:o/r:ref:refs/heads/main"));
        set.put(pattern("prs", "https://gh/", "claims['sub'] matches 'repo:o/r:pull_request'"));
        set.put(pattern("any-branch", "https://gh/", "claims['sub'] matches 'repo:o/r:ref:refs/heads/*'"));
        assert!(set.index.is_some(), "an expression indexes even a small set");
        assert_eq!(find(&set, "https://gh/", &claims("repo:o/r:ref:refs/heads/main")), Some("exact"));
        assert_eq!(find(&set, "https://gh/", &claims("repo:o/r:ref:refs/heads/dev")), Some("any-branch"));
        assert_eq!(find(&set, "https://other/", &claims("repo:o/r:ref:refs/heads/dev")), None);
        set.remove("any-branch");
        assert_eq!(find(&set, "https://gh/", &claims("repo:o/r:ref:refs/heads/dev")), None);
        assert_eq!(find(&set, "https://gh/", &claims("repo:o/r:pull_request")), Some("prs"));
    }
}
