//! The token request form. Unknown fields (msal telemetry, `client_info`, `claims`…) are ignored.

use crate::error::StsError;

/// The fields of `POST /{tenant}/oauth2/v2.0/token` that matter.
#[derive(Default, Clone)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub client_id: Option<String>,
    pub scope: Option<String>,
    pub client_assertion: Option<String>,
    pub client_assertion_type: Option<String>,
    pub client_secret: Option<String>,
    pub claims: Option<String>,
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequest")
            .field("grant_type", &self.grant_type)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenRequest {
    /// Parses an `application/x-www-form-urlencoded` body. A parameter given twice is refused (it
    /// would be ambiguous which one was checked).
    pub fn parse(body: &[u8]) -> Result<Self, StsError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|_| {
            StsError::InvalidRequest("The request body is not a valid form (application/x-www-form-urlencoded).".into())
        })?;
        let mut req = TokenRequest::default();
        for (k, v) in pairs {
            let slot = match k.as_str() {
                "grant_type" => &mut req.grant_type,
                "client_id" => &mut req.client_id,
                "scope" => &mut req.scope,
                "client_assertion" => &mut req.client_assertion,
                "client_assertion_type" => &mut req.client_assertion_type,
                "client_secret" => &mut req.client_secret,
                "claims" => &mut req.claims,
                _ => continue,
            };
            if slot.is_some() {
                return Err(StsError::InvalidRequest(format!("The parameter '{k}' is given more than once.")));
            }
            *slot = Some(v);
        }
        Ok(req)
    }
}

/// Scopes MSAL adds that carry no resource.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];

/// Extracts the resource of a `{resource}/.default` scope, dropping OIDC scopes and a trailing `/`.
pub(crate) fn resource_of(scope: &str) -> Result<String, StsError> {
    let mut rest = scope.split_whitespace().filter(|s| !OIDC_SCOPES.contains(&s.to_ascii_lowercase().as_str()));
    let (Some(one), None) = (rest.next(), rest.next()) else {
        return Err(StsError::InvalidScope(scope.to_string()));
    };
    let resource = one.strip_suffix("/.default").ok_or_else(|| StsError::InvalidScope(scope.to_string()))?;
    let resource = resource.strip_suffix('/').unwrap_or(resource);
    if resource.is_empty() {
        return Err(StsError::InvalidScope(scope.to_string()));
    }
    Ok(resource.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msal_junk_is_ignored() {
        let body = b"client_id=c&grant_type=client_credentials&x-client-SKU=msal.js.node&client_info=1&scope=https%3A%2F%2Fvault.x%2F.default+openid+offline_access+profile&client_assertion=a.b.c&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&claims=%7B%7D";
        let r = TokenRequest::parse(body).unwrap();
        assert_eq!(r.client_id.as_deref(), Some("c"));
        assert_eq!(resource_of(r.scope.as_deref().unwrap()).unwrap(), "https://vault.x");
    }

    /// What MSAL.NET (4.79 and later) sends for Key Vault: `client_info=2` and the CP1 capability.
    #[test]
    fn msal_net_form_is_read() {
        let body = b"client_id=c&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c&scope=https%3A%2F%2Fvault.x%2F.default&grant_type=client_credentials&client_info=2&claims=%7B%22access_token%22%3A%7B%22xms_cc%22%3A%7B%22values%22%3A%5B%22CP1%22%5D%7D%7D%7D";
        let r = TokenRequest::parse(body).unwrap();
        assert_eq!((r.client_id.as_deref(), r.grant_type.as_deref()), (Some("c"), Some("client_credentials")));
        assert_eq!(resource_of(r.scope.as_deref().unwrap()).unwrap(), "https://vault.x");
    }

    #[test]
    fn scopes() {
        assert_eq!(resource_of("https://vault.x//.default").unwrap(), "https://vault.x");
        assert!(resource_of("https://vault.x").is_err());
        assert!(resource_of("a/.default b/.default").is_err());
        assert!(resource_of("openid").is_err());
        assert!(resource_of("/.default").is_err());
    }

    #[test]
    fn duplicates_and_garbage() {
        assert!(TokenRequest::parse(b"client_id=a&client_id=b").is_err());
        // Invalid UTF-8 is decoded lossily (as browsers do); it can never name a known field.
        let r = TokenRequest::parse(&[0xff, 0xfe, b'=', b'1', b'&', b's', b'c', b'o', b'p', b'e', b'=', 0xff]).unwrap();
        assert_eq!(r.scope.as_deref(), Some("\u{fffd}"));
        assert!(r.client_id.is_none() && r.grant_type.is_none());
    }
}
