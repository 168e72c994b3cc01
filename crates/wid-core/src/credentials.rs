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

use crate::expression::{self, Expression, Key};
use crate::fic::{self, FederatedCredential, NoMatch, Presented};

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
    /// The claims-matching credentials, compiled, by issuer.
    patterns: HashMap<String, Patterns>,
}

/// An issuer's expressions, found by their first clause ([`Expression::key`]): an `eq` by the
/// token's value at its claim path, a `matches` by the literal prefix of its pattern, looked up
/// for each prefix length in use. Only the candidates found are evaluated in full, so an exchange
/// costs a probe per distinct claim path and prefix length, not one per expression (patterns that
/// start with a wildcard share the empty prefix and are all evaluated).
#[derive(Debug, Clone, Default)]
struct Patterns {
    /// By claim path, then the value the first clause requires.
    equals: HashMap<Vec<String>, HashMap<String, Vec<Compiled>>>,
    /// By claim path: the literal prefixes of first clauses, and their lengths in bytes.
    prefixes: HashMap<Vec<String>, Prefixes>,
}

#[derive(Debug, Clone, Default)]
struct Prefixes {
    by_prefix: HashMap<String, Vec<Compiled>>,
    lengths: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Compiled {
    pos: usize,
    expression: Expression,
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
        match self.admit(p) {
            Some(c) => Ok(c),
            // Explains the refusal; it would also admit what the index missed, which the tests
            // check never happens.
            None => fic::find_match(&self.list, p),
        }
    }

    /// The admitting credential through the index (a scan for small sets).
    fn admit(&self, p: &Presented<'_>) -> Option<&FederatedCredential> {
        let Some(index) = &self.index else { return fic::find_match(&self.list, p).ok() };
        let audience_ok = |c: &FederatedCredential| c.audiences.iter().any(|a| p.audiences.contains(&a.as_str()));
        let exact = index.exact.get(&(p.issuer.to_string(), p.subject.to_string())).and_then(|&pos| self.list.get(pos));
        if let Some(c) = exact.filter(|c| audience_ok(c)) {
            return Some(c);
        }
        let patterns = index.patterns.get(p.issuer)?;
        patterns.candidates(p.claims).find_map(|candidate| {
            let admits = candidate.expression.matches(p.claims);
            self.list.get(candidate.pos).filter(|c| admits && audience_ok(c))
        })
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
            self.patterns.entry(c.issuer.clone()).or_default().insert(Compiled { pos, expression });
        }
    }

    fn forget(&mut self, pos: usize, c: &FederatedCredential) {
        self.by_name.remove(&c.name.to_ascii_lowercase());
        if let Some(subject) = &c.subject {
            self.exact.remove(&(c.issuer.clone(), subject.clone()));
        }
        if let Some(patterns) = self.patterns.get_mut(&c.issuer) {
            patterns.remove(pos);
            if patterns.is_empty() {
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
        if let Some(patterns) = self.patterns.get_mut(&c.issuer) {
            patterns.moved(from, to);
        }
    }
}

impl Patterns {
    fn insert(&mut self, compiled: Compiled) {
        match compiled.expression.key() {
            Key::Equals(path, value) => {
                self.equals.entry(path).or_default().entry(value).or_default().push(compiled);
            }
            Key::Prefix(path, prefix) => {
                let p = self.prefixes.entry(path).or_default();
                if !p.lengths.contains(&prefix.len()) {
                    p.lengths.push(prefix.len());
                }
                p.by_prefix.entry(prefix).or_default().push(compiled);
            }
        }
    }

    /// Forgets the expression at `pos` (its issuer's expressions are scanned: removal is rare).
    fn remove(&mut self, pos: usize) {
        for values in self.equals.values_mut() {
            values.values_mut().for_each(|b| b.retain(|c| c.pos != pos));
            values.retain(|_, b| !b.is_empty());
        }
        self.equals.retain(|_, v| !v.is_empty());
        for p in self.prefixes.values_mut() {
            p.by_prefix.values_mut().for_each(|b| b.retain(|c| c.pos != pos));
            p.by_prefix.retain(|_, b| !b.is_empty());
            let in_use: Vec<usize> = p.by_prefix.keys().map(String::len).collect();
            p.lengths.retain(|l| in_use.contains(l));
        }
        self.prefixes.retain(|_, p| !p.by_prefix.is_empty());
    }

    fn moved(&mut self, from: usize, to: usize) {
        let buckets = self.equals.values_mut().flat_map(|v| v.values_mut());
        let buckets = buckets.chain(self.prefixes.values_mut().flat_map(|p| p.by_prefix.values_mut()));
        for bucket in buckets {
            bucket.iter_mut().filter(|c| c.pos == from).for_each(|c| c.pos = to);
        }
    }

    fn is_empty(&self) -> bool {
        self.equals.is_empty() && self.prefixes.is_empty()
    }

    /// The expressions whose first clause can hold for these claims.
    fn candidates<'p>(
        &'p self,
        claims: &'p serde_json::Map<String, serde_json::Value>,
    ) -> impl Iterator<Item = &'p Compiled> {
        let equals = self.equals.iter().filter_map(|(path, values)| values.get(expression::lookup(claims, path)?));
        let prefixes = self.prefixes.iter().flat_map(move |(path, p)| {
            let value = expression::lookup(claims, path).unwrap_or_default();
            p.lengths.iter().filter_map(move |&l| p.by_prefix.get(value.get(..l)?))
        });
        equals.chain(prefixes).flatten()
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

    /// What the set admits, checked against a scan of it.
    fn find<'s>(set: &'s CredentialSet, iss: &str, claims: &Map<String, Value>) -> Option<&'s str> {
        let p = Presented {
            issuer: iss,
            subject: claims.get("sub").and_then(Value::as_str).unwrap_or(""),
            audiences: &[DEFAULT_AUDIENCE],
            claims,
        };
        let admitted = set.admit(&p);
        assert_eq!(admitted.map(|c| &c.name), fic::find_match(set.as_slice(), &p).ok().map(|c| &c.name));
        admitted.map(|c| c.name.as_str())
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

    /// With expressions of every shape (eq, prefixes of several lengths, leading wildcards, two
    /// clauses), the indexed lookup admits exactly what a scan of the list admits, through removals.
    #[test]
    fn expression_candidates_agree_with_a_scan() {
        let mut next = crate::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        let words = ["a", "ab", "abc", "b", "ba", "é"];
        let mut set = CredentialSet::default();
        let mut list: Vec<FederatedCredential> = Vec::new();
        for i in 0..300 {
            let w = |k: usize| words[k % words.len()];
            let expr = match next(5) {
                0 => format!("claims['sub'] eq '{}{}'", w(next(6)), w(next(6))),
                1 => format!("claims['sub'] matches '{}*'", w(next(6))),
                2 => format!("claims['sub'] matches '*{}'", w(next(6))),
                3 => format!("claims['sub'] matches '{}?{}'", w(next(6)), w(next(6))),
                _ => format!("claims['sub'] matches '{}*' and claims['x'] eq '{}'", w(next(6)), w(next(6))),
            };
            let c = pattern(&format!("p{i}"), "https://gh/", &expr);
            list.retain(|o| !o.name.eq_ignore_ascii_case(&c.name));
            list.push(c.clone());
            set.put(c);
            if next(4) == 0 && !list.is_empty() {
                let gone = list.remove(next(list.len())).name;
                set.remove(&gone);
            }
            for _ in 0..20 {
                let claims = json!({"sub": format!("{}{}", words[next(6)], words[next(6)]), "x": words[next(6)]});
                let claims = claims.as_object().cloned().unwrap_or_default();
                let p =
                    Presented { issuer: "https://gh/", subject: "", audiences: &[DEFAULT_AUDIENCE], claims: &claims };
                assert!(set.index.is_some());
                let indexed = set.admit(&p).is_some();
                let scanned = fic::find_match(&list, &p).is_ok();
                assert_eq!(indexed, scanned, "{claims:?}");
            }
        }
    }
}
