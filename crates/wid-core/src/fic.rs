//! Federated identity credentials: Entra's rules for creating them and the matching of a presented
//! assertion (`iss`, `sub`, `aud`) against an identity's credentials.
//!
//! Matching is exact, as in Entra: the issuer byte for byte (a trailing `/` counts), the subject
//! case-sensitively, the audience as one of the token's `aud` values. When nothing matches, the result
//! names the credential that came closest and why it did not match, so the operator can fix it.

use serde::{Deserialize, Serialize};

pub use crate::expression::Expression;

/// The audience Entra recommends and the CLI uses by default.
pub const DEFAULT_AUDIENCE: &str = "api://AzureADTokenExchange";
/// Longest issuer, subject or audience Entra accepts.
pub const MAX_FIELD_LEN: usize = 600;
/// Credentials per identity unless configured otherwise (Entra's fixed limit).
pub const DEFAULT_MAX_PER_IDENTITY: usize = 20;

/// A flexible credential's claims-matching expression (`languageVersion` 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsMatchingExpression {
    pub value: String,
    pub language_version: i64,
}

/// A federated identity credential: tokens from `issuer` about `subject` for `audiences` may act as
/// the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederatedCredential {
    /// Name as created (unique per identity, case-insensitively).
    pub name: String,
    pub issuer: String,
    pub subject: Option<String>,
    pub claims_matching_expression: Option<ClaimsMatchingExpression>,
    pub audiences: Vec<String>,
    pub description: Option<String>,
}

/// Why a credential was refused at creation (ARM 400 `BadRequest`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FicError {
    #[error(
        "The federated identity credential name '{0}' is invalid: it must be 3-120 characters, start with a letter or digit, and contain only letters, digits, '-' and '_'."
    )]
    InvalidName(String),
    #[error("Federated identity credentials must have exactly one audience.")]
    AudienceCount,
    #[error("The {0} must not be empty.")]
    Empty(&'static str),
    #[error("The {0} must be at most 600 characters.")]
    TooLong(&'static str),
    #[error("The issuer '{0}' is not a valid https URL (for example https://issuer.example/tenant/cluster/).")]
    InvalidIssuer(String),
    #[error("The {0} must not start or end with whitespace; Entra compares it byte for byte.")]
    Whitespace(&'static str),
    #[error("Exactly one of subject and claimsMatchingExpression must be set.")]
    SubjectOrExpression,
    #[error("The claims matching expression is invalid: {0}")]
    InvalidExpression(String),
    #[error("Issuer and subject combination already exists for this Managed Identity.")]
    Duplicate,
    #[error(
        "The identity already has {0} federated identity credentials, the most allowed; delete one or raise the server's limit."
    )]
    TooMany(usize),
}

/// Checks a credential name against Entra's rule `^[a-zA-Z0-9][a-zA-Z0-9-_]{2,119}$`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    (3..=120).contains(&name.len()) && first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl FederatedCredential {
    /// Validates a credential on its own (uniqueness and the per-identity limit are [`check_siblings`]).
    pub fn validate(&self) -> Result<(), FicError> {
        if !valid_name(&self.name) {
            return Err(FicError::InvalidName(self.name.clone()));
        }
        check_field("issuer", &self.issuer)?;
        let rest = self.issuer.strip_prefix("https://").ok_or_else(|| FicError::InvalidIssuer(self.issuer.clone()))?;
        let host = rest.split('/').next().unwrap_or("");
        if host.is_empty() || rest.contains(['?', '#', ' ']) {
            return Err(FicError::InvalidIssuer(self.issuer.clone()));
        }
        match (&self.subject, &self.claims_matching_expression) {
            (Some(subject), None) => check_field("subject", subject)?,
            (None, Some(expr)) => {
                Expression::parse(&expr.value, expr.language_version).map_err(FicError::InvalidExpression)?;
            }
            _ => return Err(FicError::SubjectOrExpression),
        }
        match self.audiences.as_slice() {
            [aud] => check_field("audience", aud),
            _ => Err(FicError::AudienceCount),
        }
    }
}

fn check_field(what: &'static str, value: &str) -> Result<(), FicError> {
    if value.is_empty() {
        Err(FicError::Empty(what))
    } else if value.chars().count() > MAX_FIELD_LEN {
        Err(FicError::TooLong(what))
    } else if value.trim() != value {
        Err(FicError::Whitespace(what))
    } else {
        Ok(())
    }
}

/// The parts of a presented assertion that matching looks at.
pub struct Presented<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub audiences: &'a [&'a str],
    /// All claims, for claims-matching expressions.
    pub claims: &'a serde_json::Map<String, serde_json::Value>,
}

/// Why no credential matched, with the closest candidate for the error description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatch {
    /// The identity has no federated credentials at all.
    NoCredentials,
    /// No credential names the token's issuer.
    Issuer { closest: Option<Closest> },
    /// Credentials name the issuer, but none the subject.
    Subject { case_only: bool, closest: Option<Closest> },
    /// Issuer and subject match, but the token is not for the credential's audience.
    Audience { closest: Option<Closest> },
}

/// The credential that came closest to matching, and what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closest {
    pub name: String,
    pub reason: String,
}

/// Finds the credential that admits the presented assertion.
pub fn find_match<'c>(creds: &'c [FederatedCredential], p: &Presented<'_>) -> Result<&'c FederatedCredential, NoMatch> {
    if creds.is_empty() {
        return Err(NoMatch::NoCredentials);
    }
    let by_issuer: Vec<&FederatedCredential> = creds.iter().filter(|c| c.issuer == p.issuer).collect();
    if by_issuer.is_empty() {
        return Err(NoMatch::Issuer { closest: closest_issuer(creds, p.issuer) });
    }
    let by_subject: Vec<&FederatedCredential> = by_issuer.iter().copied().filter(|c| subject_matches(c, p)).collect();
    if by_subject.is_empty() {
        let case_twin =
            by_issuer.iter().find(|c| c.subject.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(p.subject)));
        let closest_subject = || {
            by_issuer
                .iter()
                .copied()
                .filter_map(|c| c.subject.as_deref().map(|s| (c, s)))
                .max_by_key(|(_, s)| common_prefix(s, p.subject))
                .map(|(c, s)| Closest { name: c.name.clone(), reason: format!("its subject is '{s}'") })
        };
        let closest = match case_twin {
            Some(c) => Some(Closest {
                name: c.name.clone(),
                reason: format!(
                    "its subject '{}' differs from the token's only in letter case; subjects are case-sensitive",
                    c.subject.as_deref().unwrap_or_default()
                ),
            }),
            // The expression with the most clauses holding, and the first that does not, before
            // the exact subject sharing the longest prefix.
            None => closest_expression(&by_issuer, p).or_else(closest_subject),
        };
        return Err(NoMatch::Subject { case_only: case_twin.is_some(), closest });
    }
    if let Some(c) = by_subject.iter().find(|c| c.audiences.iter().any(|a| p.audiences.contains(&a.as_str()))) {
        return Ok(c);
    }
    let closest = by_subject.first().map(|c| Closest {
        name: c.name.clone(),
        reason: format!(
            "it expects the audience '{}' but the token's aud is '{}'",
            c.audiences.join("', '"),
            p.audiences.join("', '")
        ),
    });
    Err(NoMatch::Audience { closest })
}

fn subject_matches(c: &FederatedCredential, p: &Presented<'_>) -> bool {
    match (&c.subject, &c.claims_matching_expression) {
        (Some(s), _) => s == p.subject,
        (None, Some(e)) => Expression::parse(&e.value, e.language_version).is_ok_and(|e| e.matches(p.claims)),
        (None, None) => false,
    }
}

/// Of the expression credentials, the one with the most clauses holding for the token, and why it
/// does not match (the first clause that fails).
fn closest_expression(creds: &[&FederatedCredential], p: &Presented<'_>) -> Option<Closest> {
    let parsed = creds.iter().filter_map(|c| {
        let e = c.claims_matching_expression.as_ref()?;
        Some((c, Expression::parse(&e.value, e.language_version).ok()?))
    });
    let (c, e) = parsed.max_by_key(|(_, e)| e.holding(p.claims))?;
    let why = e.explain(p.claims)?;
    Some(Closest { name: c.name.clone(), reason: format!("its claims matching expression: {why}") })
}

fn closest_issuer(creds: &[FederatedCredential], iss: &str) -> Option<Closest> {
    let norm = |s: &str| s.trim().trim_end_matches('/').to_ascii_lowercase();
    if let Some(c) = creds.iter().find(|c| norm(&c.issuer) == norm(iss)) {
        let why = if c.issuer.trim_end_matches('/') == iss.trim_end_matches('/') {
            "differs from the token's only by a trailing '/'; issuers are compared exactly"
        } else if c.issuer.trim() != c.issuer || iss.trim() != iss {
            "differs from the token's only by surrounding whitespace; issuers are compared exactly"
        } else {
            "differs from the token's only in letter case; issuers are compared exactly"
        };
        return Some(Closest { name: c.name.clone(), reason: format!("its issuer '{}' {why}", c.issuer) });
    }
    creds
        .iter()
        .max_by_key(|c| common_prefix(&c.issuer, iss))
        .map(|c| Closest { name: c.name.clone(), reason: format!("its issuer is '{}'", c.issuer) })
}

fn common_prefix(a: &str, b: &str) -> usize {
    a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn cred(name: &str, iss: &str, sub: &str, aud: &str) -> FederatedCredential {
        FederatedCredential {
            name: name.into(),
            issuer: iss.into(),
            subject: Some(sub.into()),
            claims_matching_expression: None,
            audiences: vec![aud.into()],
            description: None,
        }
    }

    fn present<'a>(
        iss: &'a str,
        sub: &'a str,
        aud: &'a [&'a str],
        claims: &'a Map<String, serde_json::Value>,
    ) -> Presented<'a> {
        Presented { issuer: iss, subject: sub, audiences: aud, claims }
    }

    const ISS: &str = "https://wid.example/oidc/t/c/";

    #[test]
    fn exact_match() {
        let creds = vec![cred("a1x", ISS, "system:serviceaccount:ns:sa", DEFAULT_AUDIENCE)];
        let claims = Map::new();
        let m = find_match(&creds, &present(ISS, "system:serviceaccount:ns:sa", &[DEFAULT_AUDIENCE, "other"], &claims));
        assert_eq!(m.unwrap().name, "a1x");
    }

    #[test]
    fn trailing_slash_is_an_issuer_mismatch_and_is_explained() {
        let creds = vec![cred("fic", ISS, "s", DEFAULT_AUDIENCE)];
        let claims = Map::new();
        let err =
            find_match(&creds, &present(ISS.trim_end_matches('/'), "s", &[DEFAULT_AUDIENCE], &claims)).unwrap_err();
        match err {
            NoMatch::Issuer { closest: Some(c) } => assert!(c.reason.contains("trailing '/'"), "{}", c.reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn subject_is_case_sensitive() {
        let creds = vec![cred("fic", ISS, "system:serviceaccount:ns:SA", DEFAULT_AUDIENCE)];
        let claims = Map::new();
        let err =
            find_match(&creds, &present(ISS, "system:serviceaccount:ns:sa", &[DEFAULT_AUDIENCE], &claims)).unwrap_err();
        assert!(matches!(err, NoMatch::Subject { case_only: true, closest: Some(_) }));
        let err = find_match(&creds, &present(ISS, "system:serviceaccount:other:x", &[DEFAULT_AUDIENCE], &claims))
            .unwrap_err();
        assert!(matches!(err, NoMatch::Subject { case_only: false, closest: Some(_) }));
    }

    #[test]
    fn audience_must_be_in_aud() {
        let creds = vec![cred("fic", ISS, "s", DEFAULT_AUDIENCE)];
        let claims = Map::new();
        let err = find_match(&creds, &present(ISS, "s", &["https://kubernetes.default.svc"], &claims)).unwrap_err();
        assert!(matches!(err, NoMatch::Audience { closest: Some(_) }));
        assert_eq!(find_match(&[], &present(ISS, "s", &[], &claims)), Err(NoMatch::NoCredentials));
    }

    #[test]
    fn validation_rules() {
        let ok = cred("good-name_1", ISS, "s", DEFAULT_AUDIENCE);
        assert_eq!(ok.validate(), Ok(()));
        for name in ["ab", "-abc", "a b", "ä12", &"a".repeat(121)] {
            assert!(matches!(
                FederatedCredential { name: name.into(), ..ok.clone() }.validate(),
                Err(FicError::InvalidName(_))
            ));
        }
        let two = FederatedCredential { audiences: vec!["a".into(), "b".into()], ..ok.clone() };
        assert_eq!(two.validate(), Err(FicError::AudienceCount));
        let http = FederatedCredential { issuer: "http://x/".into(), ..ok.clone() };
        assert!(matches!(http.validate(), Err(FicError::InvalidIssuer(_))));
        let long = FederatedCredential { subject: Some("s".repeat(601)), ..ok.clone() };
        assert_eq!(long.validate(), Err(FicError::TooLong("subject")));
        let ws = FederatedCredential { subject: Some(" s".into()), ..ok.clone() };
        assert_eq!(ws.validate(), Err(FicError::Whitespace("subject")));
    }
}
