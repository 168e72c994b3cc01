//! Authentication of management-API callers: a handler that takes [`Authenticated`] cannot run
//! without a verified bearer token from wid's own token service.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use wid_sts::{Caller, VerifyError};

use super::{AppState, json};

/// A caller whose access token for the management API verified.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(value) = header else {
            return Err(unauthorized(
                st,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.",
            ));
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => {
                return Err(unauthorized(
                    st,
                    "AuthenticationFailedInvalidHeader",
                    "Authentication failed. The 'Authorization' header is provided in an invalid format.",
                ));
            }
        };
        match verify_for(st, token, st.management_audiences()) {
            Ok(caller) => Ok(Authenticated(caller)),
            Err(e) => {
                let code = match e {
                    VerifyError::Expired => "ExpiredAuthenticationToken",
                    VerifyError::Audience { .. } => "InvalidAuthenticationTokenAudience",
                    VerifyError::Malformed(_)
                    | VerifyError::Signature(_)
                    | VerifyError::Issuer(_)
                    | VerifyError::Tenant
                    | VerifyError::NotYetValid => "InvalidAuthenticationToken",
                };
                Err(unauthorized(
                    st,
                    code,
                    &format!("The access token is invalid: {e}. Get a new token for '{}'.", st.management_audience()),
                ))
            }
        }
    }
}

/// Verifies an access token for the first of `audiences` it is for; an error names the first one. A
/// token for another audience fails at the audience check, after the signature (whose result is
/// cached), so trying the next audience costs a comparison.
fn verify_for<'a>(
    st: &AppState,
    token: &str,
    audiences: impl Iterator<Item = &'a str> + Clone,
) -> Result<Caller, VerifyError> {
    let first = audiences.clone().next().unwrap_or_default();
    audiences
        .map(|audience| st.sts.verify_access_token(token, audience))
        .find(|r| !matches!(r, Err(VerifyError::Audience { .. })))
        .unwrap_or_else(|| st.sts.verify_access_token(token, first))
}

/// The caller of a request's bearer token for one of `audiences`; an error says why, in words.
pub fn bearer_for<'a>(
    st: &AppState,
    headers: &axum::http::HeaderMap,
    audiences: impl Iterator<Item = &'a str> + Clone,
) -> Result<Caller, String> {
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            verify_for(st, token.trim(), audiences).map_err(|e| format!("Access token validation failure: {e}."))
        }
        _ => Err("Access token is empty.".into()),
    }
}

fn unauthorized(st: &AppState, code: &str, message: &str) -> Response {
    let mut resp = json(401, &json!({"error": {"code": code, "message": message}}));
    let challenge = format!(
        "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"{code}\"",
        st.public_url, st.tenant_id
    );
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    st.metrics.request("arm", 401);
    resp.into_response()
}
