//! Claims-matching expressions (flexible federated identity credentials), language version 1, as
//! Microsoft Entra documents it: clauses `claims['NAME'] eq 'VALUE'` and `claims['NAME'] matches
//! 'PATTERN'` joined by ` and `, one space around each operator, values in single quotes; in a
//! pattern `*` stands for any run of characters and `?` for exactly one. Values compare
//! case-sensitively. The documentation defines no escape for a quote inside a value, so a value
//! cannot contain one.
//!
//! Beyond Entra, which allows expressions only for GitHub, GitLab and Terraform Cloud issuers, wid
//! accepts them for any issuer and lets a clause address nested claims by chaining names:
//! `claims['kubernetes.io']['serviceaccount']['uid'] eq '…'` pins a Kubernetes service account by
//! its immutable uid, so a deleted and re-created account of the same name is not trusted.
//!
//! An expression is parsed once, when its credential is written; matching then walks the clauses.
//! The first clause is its index key ([`Expression::key`]): an exchange evaluates only the
//! expressions whose first clause can hold for the token (see `credentials.rs`).

use serde_json::{Map, Value};

/// Longest expression accepted (Entra's limit for the subject, which an expression replaces).
pub const MAX_LEN: usize = 600;
/// Deepest claim path (`claims['a']['b']['c']['d']`).
pub const MAX_DEPTH: usize = 4;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expression {
    clauses: Vec<Clause>,
}

/// One `claims[…] OP 'value'` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    path: Vec<String>,
    op: Op,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Matches,
}

/// How an exchange can find an expression without evaluating it: by its first clause.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// The claim at `path` must equal the value.
    Equals(Vec<String>, String),
    /// The claim at `path` must start with this literal prefix (the pattern up to its first
    /// wildcard; empty for a pattern that starts with one).
    Prefix(Vec<String>, String),
}

impl Expression {
    /// Parses `src` as language `version` (only 1 exists).
    pub fn parse(src: &str, version: i64) -> Result<Self, String> {
        if version != 1 {
            return Err(format!("languageVersion {version} is not supported; use 1"));
        }
        if src.is_empty() {
            return Err("it is empty".into());
        }
        if src.chars().count() > MAX_LEN {
            return Err(format!("it is longer than {MAX_LEN} characters"));
        }
        let mut clauses = Vec::new();
        let mut rest = src;
        loop {
            let (clause, after) = parse_clause(rest)?;
            clauses.push(clause);
            if after.is_empty() {
                return Ok(Self { clauses });
            }
            rest = after.strip_prefix(" and ").ok_or_else(|| format!("expected ' and ' before '{after}'"))?;
        }
    }

    /// True if every clause holds for the claims (a missing or non-string claim holds none).
    pub fn matches(&self, claims: &Map<String, Value>) -> bool {
        self.clauses.iter().all(|c| c.holds(claims))
    }

    /// The first clause that does not hold, with the token's value, for a refusal; `None` if the
    /// expression matches.
    pub fn explain(&self, claims: &Map<String, Value>) -> Option<String> {
        let (i, c) = self.clauses.iter().enumerate().find(|(_, c)| !c.holds(claims))?;
        let found = match c.lookup(claims) {
            Some(v) => format!("the token's value is '{v}'"),
            None => format!("the token has no string claim {}", c.path_text()),
        };
        Some(format!("clause {} of {}, {c}, does not hold: {found}", i + 1, self.clauses.len()))
    }

    /// How many clauses hold (to name the closest expression in a refusal).
    pub fn holding(&self, claims: &Map<String, Value>) -> usize {
        self.clauses.iter().filter(|c| c.holds(claims)).count()
    }

    /// The index key: the first clause.
    pub fn key(&self) -> Key {
        match self.clauses.first() {
            Some(Clause { path, op: Op::Eq, value }) => Key::Equals(path.clone(), value.clone()),
            Some(Clause { path, op: Op::Matches, value }) => {
                let literal = value.find(['*', '?']).and_then(|end| value.get(..end)).unwrap_or(value);
                Key::Prefix(path.clone(), literal.to_string())
            }
            None => Key::Prefix(Vec::new(), String::new()),
        }
    }
}

impl Clause {
    fn lookup<'c>(&self, claims: &'c Map<String, Value>) -> Option<&'c str> {
        lookup(claims, &self.path)
    }

    fn holds(&self, claims: &Map<String, Value>) -> bool {
        let Some(v) = self.lookup(claims) else { return false };
        match self.op {
            Op::Eq => v == self.value,
            Op::Matches => wildcard(&self.value, v),
        }
    }

    fn path_text(&self) -> String {
        self.path.iter().map(|p| format!("['{p}']")).collect::<Vec<_>>().concat()
    }
}

impl std::fmt::Display for Clause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            Op::Eq => "eq",
            Op::Matches => "matches",
        };
        write!(f, "claims{} {op} '{}'", self.path_text(), self.value)
    }
}

/// The string claim at `path` (nested objects for longer paths).
pub fn lookup<'c>(claims: &'c Map<String, Value>, path: &[String]) -> Option<&'c str> {
    let (first, rest) = path.split_first()?;
    let mut v = claims.get(first)?;
    for name in rest {
        v = v.as_object()?.get(name)?;
    }
    v.as_str()
}

fn parse_clause(s: &str) -> Result<(Clause, &str), String> {
    let mut rest = s.strip_prefix("claims").ok_or_else(|| format!("expected claims['name'] at '{s}'"))?;
    let mut path = Vec::new();
    while let Some(r) = rest.strip_prefix("['") {
        let end = r.find("']").ok_or("a claim name is not closed with ']")?;
        let (name, after) = (r.get(..end).unwrap_or_default(), r.get(end + 2..).unwrap_or_default());
        if name.is_empty() || name.contains('\'') {
            return Err(format!("the claim name '{name}' is empty or contains a quote"));
        }
        path.push(name.to_string());
        rest = after;
    }
    if path.is_empty() {
        return Err(format!("expected claims['name'] at '{s}'"));
    }
    if path.len() > MAX_DEPTH {
        return Err(format!("a claim path has at most {MAX_DEPTH} names"));
    }
    let shown = path.iter().map(|p| format!("['{p}']")).collect::<String>();
    let (op, rest) = if let Some(r) = rest.strip_prefix(" eq '") {
        (Op::Eq, r)
    } else if let Some(r) = rest.strip_prefix(" matches '") {
        (Op::Matches, r)
    } else {
        return Err(format!("expected ' eq ' or ' matches ' after claims{shown}"));
    };
    let end = rest.find('\'').ok_or_else(|| format!("the value after claims{shown} is not closed with '"))?;
    let (value, rest) = (rest.get(..end).unwrap_or_default(), rest.get(end + 1..).unwrap_or_default());
    Ok((Clause { path, op, value: value.to_string() }, rest))
}

/// `*` matches any run of characters, `?` exactly one character (not one byte); everything else
/// itself. Linear time with one backtrack point, so hostile patterns cannot blow up.
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let (pat, txt) = (pattern.as_bytes(), text.as_bytes());
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    let char_len = |i: usize| text.get(i..).and_then(|s| s.chars().next()).map_or(1, char::len_utf8);
    while let Some(&tc) = txt.get(t) {
        match pat.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(b'?') => {
                p += 1;
                t += char_len(t);
            }
            Some(&c) if c == tc => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Retry after the star with one more character of the text consumed by it.
                Some((sp, st)) => {
                    let next = st + char_len(st);
                    p = sp + 1;
                    t = next;
                    star = Some((sp, next));
                }
                None => return false,
            },
        }
    }
    pat.get(p..).is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn documented_forms() {
        let c = claims(json!({"sub": "repo:contoso/app:ref:refs/heads/main", "repository_owner_id": "123"}));
        for (src, ok) in [
            ("claims['sub'] eq 'repo:contoso/app:ref:refs/heads/main'", true),
            ("claims['sub'] matches 'repo:contoso/*'", true),
            ("claims['sub'] matches 'repo:contoso/app:ref:refs/heads/ma??'", true),
            ("claims['sub'] matches 'repo:contoso/*' and claims['repository_owner_id'] eq '123'", true),
            ("claims['sub'] matches 'repo:contoso/*' and claims['repository_owner_id'] eq '124'", false),
            ("claims['sub'] matches 'REPO:contoso/*'", false),
            ("claims['missing'] matches '*'", false),
        ] {
            assert_eq!(Expression::parse(src, 1).unwrap().matches(&c), ok, "{src}");
        }
    }

    #[test]
    fn refused_forms_say_why() {
        for (src, why) in [
            ("", "empty"),
            ("claims['sub'] eq 'x'  and claims['a'] eq 'b'", "' and '"),
            ("claims['sub'] == 'x'", "' eq ' or ' matches '"),
            ("claims['sub'] eq 'x", "not closed"),
            ("claims[sub] eq 'x'", "claims['name']"),
            ("claims[''] eq 'x'", "empty"),
            ("claims['a']['b']['c']['d']['e'] eq 'x'", "at most 4"),
            ("claims['sub'] eq 'x' or claims['a'] eq 'b'", "' and '"),
            ("claims['sub'] EQ 'x'", "' eq ' or ' matches '"),
        ] {
            let err = Expression::parse(src, 1).unwrap_err();
            assert!(err.contains(why), "{src:?}: {err}");
        }
        assert!(Expression::parse(&format!("claims['sub'] eq '{}'", "x".repeat(600)), 1).is_err());
        assert!(Expression::parse("claims['sub'] eq 'x'", 2).unwrap_err().contains("languageVersion 2"));
    }

    #[test]
    fn nested_kubernetes_claims_and_the_failing_clause() {
        let token = claims(json!({
            "sub": "system:serviceaccount:apps:web",
            "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": "web", "uid": "0c9b-uid"}},
        }));
        let pinned = "claims['sub'] eq 'system:serviceaccount:apps:web' and claims['kubernetes.io']['serviceaccount']['uid'] eq '0c9b-uid'";
        assert!(Expression::parse(pinned, 1).unwrap().matches(&token));
        let recreated = claims(json!({
            "sub": "system:serviceaccount:apps:web",
            "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": "web", "uid": "ffff-new"}},
        }));
        let e = Expression::parse(pinned, 1).unwrap();
        assert!(!e.matches(&recreated));
        assert_eq!(e.holding(&recreated), 1);
        let why = e.explain(&recreated).unwrap();
        assert!(
            why.starts_with("clause 2 of 2, claims['kubernetes.io']['serviceaccount']['uid'] eq '0c9b-uid'"),
            "{why}"
        );
        assert!(why.ends_with("the token's value is 'ffff-new'"), "{why}");
        let why =
            Expression::parse("claims['kubernetes.io']['pod']['name'] matches 'web-*'", 1).unwrap().explain(&token);
        assert!(why.unwrap().ends_with("no string claim ['kubernetes.io']['pod']['name']"));
    }

    #[test]
    fn wildcards_count_characters() {
        assert!(wildcard("r?d", "röd"));
        assert!(!wildcard("r?d", "rööd"));
        assert!(wildcard("*ö*", "aöb"));
        assert!(wildcard("a*", "a"));
        assert!(!wildcard("a", "ab"));
        assert!(wildcard("*", ""));
        assert!(!wildcard("?", ""));
    }

    #[test]
    fn keys_are_the_first_clause() {
        let k = |s: &str| Expression::parse(s, 1).unwrap().key();
        let sub = vec!["sub".to_string()];
        assert_eq!(k("claims['sub'] eq 'a' and claims['x'] eq 'b'"), Key::Equals(sub.clone(), "a".into()));
        assert_eq!(k("claims['sub'] matches 'repo:o/*:x'"), Key::Prefix(sub.clone(), "repo:o/".into()));
        assert_eq!(k("claims['sub'] matches '?x'"), Key::Prefix(sub, String::new()));
    }

    /// The matcher agrees with a naive reference (regex-free recursion over characters) on
    /// generated patterns and texts.
    #[test]
    fn wildcard_agrees_with_a_reference() {
        fn reference(p: &[char], t: &[char]) -> bool {
            match (p.split_first(), t.split_first()) {
                (None, _) => t.is_empty(),
                (Some(('*', pr)), _) => reference(pr, t) || (!t.is_empty() && reference(p, &t[1..])),
                (Some(('?', pr)), Some((_, tr))) => reference(pr, tr),
                (Some((pc, pr)), Some((tc, tr))) => pc == tc && reference(pr, tr),
                (Some(_), None) => false,
            }
        }
        let alphabet = ['a', 'b', 'é', '*', '?'];
        let mut next = crate::xorshift(0x2545_f491_4f6c_dd1d_u64);
        for _ in 0..20_000 {
            let p: String = (0..next(7)).map(|_| alphabet[next(5)]).collect();
            let t: String = (0..next(7)).map(|_| alphabet[next(3)]).collect();
            let (pc, tc): (Vec<char>, Vec<char>) = (p.chars().collect(), t.chars().collect());
            assert_eq!(wildcard(&p, &t), reference(&pc, &tc), "pattern {p:?} text {t:?}");
        }
    }
}
