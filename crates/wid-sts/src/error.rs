//! The token service's errors, each with Entra's AADSTS code, OAuth `error` and HTTP status.
//!
//! Descriptions tell the caller what was wrong and what to change. The server renders them in Entra's
//! JSON shape (with trace id, correlation id and timestamp); this module decides only the content.

use wid_core::clock::rfc3339;

/// A refusal of the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsError {
    /// The tenant in the path is not this server's.
    #[error("tenant")]
    UnknownTenant(String),
    /// Instance discovery was asked about an authority host this server does not answer for.
    #[error("unknown instance")]
    UnknownInstance { asked: String, server: String },
    /// A required form parameter is missing.
    #[error("missing parameter")]
    MissingParameter(&'static str),
    /// The request body is not a valid form or holds an invalid value.
    #[error("invalid request")]
    InvalidRequest(String),
    /// `grant_type` is not `client_credentials`.
    #[error("unsupported grant type")]
    UnsupportedGrantType(String),
    /// The scope is not `{resource}/.default`.
    #[error("invalid scope")]
    InvalidScope(String),
    /// The scope names a resource this server does not issue tokens for.
    #[error("unknown resource")]
    UnknownResource(String),
    /// Neither a client assertion nor a client secret was presented.
    #[error("no client credential")]
    NoClientCredential,
    /// `client_assertion_type` is not the jwt-bearer URN.
    #[error("bad assertion type")]
    BadAssertionType(String),
    /// The client id is unknown in this tenant.
    #[error("unknown client")]
    UnknownClient(String),
    /// The client secret is wrong, or the client cannot use one.
    #[error("invalid client secret")]
    InvalidClientSecret(String),
    /// The assertion is not a well-formed JWT.
    #[error("malformed assertion")]
    MalformedAssertion(String),
    /// The assertion lives longer than 25 hours.
    #[error("assertion lifetime")]
    AssertionLifetime { iat: i64, exp: i64 },
    /// The assertion is expired or not yet valid.
    #[error("assertion time")]
    AssertionTime { now: i64, nbf: i64, exp: i64 },
    /// The identity has no federated credentials.
    #[error("no credentials")]
    NoFederatedCredentials { client_id: String },
    /// No credential names the assertion's issuer.
    #[error("issuer mismatch")]
    IssuerMismatch { issuer: String, hint: String },
    /// No credential of that issuer names the assertion's subject.
    #[error("subject mismatch")]
    SubjectMismatch { subject: String, case_only: bool, hint: String },
    /// The assertion is not for the credential's audience.
    #[error("audience mismatch")]
    AudienceMismatch { audiences: Vec<String>, hint: String },
    /// The issuer's keys could not be obtained.
    #[error("issuer unreachable")]
    IssuerUnavailable { issuer: String, reason: String },
    /// No key of the issuer has the assertion's `kid`.
    #[error("unknown key")]
    UnknownKey { kid: String, issuer: String },
    /// The signature does not verify, or the algorithm is refused.
    #[error("bad signature")]
    BadSignature(String),
    /// Token proxy: the cluster of the assertion's issuer binds no such identity, or names no API
    /// server to ask.
    #[error("no identity binding")]
    NoBinding(String),
    /// Token proxy: the cluster's Kubernetes RBAC does not let the service account use the identity.
    #[error("not allowed by the cluster")]
    NotAllowedByCluster { service_account: String, client_id: String, cluster: String },
    /// Token proxy: the cluster's API server could not be asked.
    #[error("access review failed")]
    AccessReviewFailed { cluster: String, reason: String },
    /// An internal failure (storage, signing); the details are logged, not returned.
    #[error("internal error")]
    Internal(String),
}

/// How a refusal appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub status: u16,
    pub error: &'static str,
    pub code: u32,
    pub description: String,
}

const DOCS: &str = "https://learn.microsoft.com/entra/workload-id/workload-identity-federation";

impl StsError {
    /// Maps the refusal to Entra's status, `error`, AADSTS code and description.
    pub fn to_wire(&self, tenant: &str) -> WireError {
        let (status, error, code, description) = match self {
            StsError::UnknownTenant(t) => (
                400,
                "invalid_request",
                90002,
                format!(
                    "AADSTS90002: Tenant '{t}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. The tenant of this server is shown by `wid account show --query tenantId -o tsv`."
                ),
            ),
            StsError::UnknownInstance { asked, server } => (
                400,
                "invalid_instance",
                50049,
                format!(
                    "AADSTS50049: Unknown or invalid instance. The authority host '{asked}' is not this server; set AZURE_AUTHORITY_HOST to {server}/ (or to https://login.microsoftonline.com/ when wid serve runs with --azure-hostnames)."
                ),
            ),
            StsError::MissingParameter(p) => (
                400,
                "invalid_request",
                900144,
                format!("AADSTS900144: The request body must contain the following parameter: '{p}'."),
            ),
            StsError::InvalidRequest(why) => (400, "invalid_request", 900144, format!("AADSTS900144: {why}")),
            StsError::UnsupportedGrantType(g) => (
                400,
                "unsupported_grant_type",
                70003,
                format!(
                    "AADSTS70003: The app requested an unsupported grant type '{g}'. This server supports 'client_credentials' (with a client assertion or a client secret)."
                ),
            ),
            StsError::InvalidScope(s) => (
                400,
                "invalid_scope",
                1002012,
                format!(
                    "AADSTS1002012: The provided value for scope '{s}' is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI), for example 'https://vault.example/.default'."
                ),
            ),
            StsError::UnknownResource(r) => (
                400,
                "invalid_resource",
                500011,
                format!(
                    "AADSTS500011: The resource principal named {r} was not found in the tenant named {tenant}. This server issues tokens for its management API and its Key Vault resource; check the scope."
                ),
            ),
            StsError::NoClientCredential => (
                400,
                "invalid_request",
                7000216,
                "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.".to_string(),
            ),
            StsError::BadAssertionType(t) => (
                400,
                "invalid_request",
                700002,
                format!(
                    "AADSTS700002: The client_assertion_type '{t}' is not supported; use 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'."
                ),
            ),
            StsError::UnknownClient(c) => (
                400,
                "unauthorized_client",
                700016,
                format!(
                    "AADSTS700016: Application with identifier '{c}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant. For a managed identity, use its clientId (`wid identity show --query clientId -o tsv`)."
                ),
            ),
            StsError::InvalidClientSecret(c) => (
                401,
                "invalid_client",
                7000215,
                format!(
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{c}'."
                ),
            ),
            StsError::MalformedAssertion(why) => {
                (400, "invalid_request", 50027, format!("AADSTS50027: JWT token is invalid or malformed: {why}."))
            }
            StsError::AssertionLifetime { iat, exp } => (
                400,
                "invalid_request",
                70023,
                format!(
                    "AADSTS70023: External OIDC Provider token must have a lifetime of less than or equal to 1.01:00:00. Token issued at {}. Token expires on {}.",
                    rfc3339(*iat),
                    rfc3339(*exp)
                ),
            ),
            StsError::AssertionTime { now, nbf, exp } => (
                401,
                "invalid_client",
                700024,
                format!(
                    "AADSTS700024: Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
                    rfc3339(*now),
                    rfc3339(*nbf),
                    rfc3339(*exp)
                ),
            ),
            StsError::NoFederatedCredentials { client_id } => (
                400,
                "invalid_request",
                70025,
                format!(
                    "AADSTS70025: The client '{client_id}' has no configured federated identity credentials. Create one with `wid identity federated-credential create`."
                ),
            ),
            StsError::IssuerMismatch { issuer, hint } => (
                401,
                "invalid_client",
                700211,
                format!(
                    "AADSTS700211: No matching federated identity record found for presented assertion issuer '{issuer}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. {hint}{DOCS}"
                ),
            ),
            StsError::SubjectMismatch { subject, case_only, hint } => {
                let code = if *case_only { 7002138 } else { 700213 };
                (
                    401,
                    "invalid_client",
                    code,
                    format!(
                        "AADSTS{code}: No matching federated identity record found for presented assertion subject '{subject}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. {hint}{DOCS}"
                    ),
                )
            }
            StsError::AudienceMismatch { audiences, hint } => (
                401,
                "invalid_client",
                700212,
                format!(
                    "AADSTS700212: No matching federated identity record found for presented assertion audience '{}'. Please check your federated identity credential Subject, Audience and Issuer against the presented assertion. {hint}{DOCS}",
                    audiences.join("', '")
                ),
            ),
            StsError::IssuerUnavailable { issuer, reason } => (
                400,
                "invalid_request",
                90061,
                format!(
                    "AADSTS90061: Request to External OIDC endpoint failed. Could not obtain the signing keys of issuer '{issuer}': {reason}. For a private issuer, upload its JWKS with `wid aks update --jwks-file`."
                ),
            ),
            StsError::UnknownKey { kid, issuer } => (
                401,
                "invalid_client",
                7000272,
                format!(
                    "AADSTS7000272: The certificate with identifier {kid} used to sign the federated credential could not be found in the metadata of identity provider {issuer}. Please validate that your Identity Provider's metadata exposes the key used to sign the incoming token."
                ),
            ),
            StsError::BadSignature(why) => (
                401,
                "invalid_client",
                700027,
                format!("AADSTS700027: Client assertion failed signature validation: {why}."),
            ),
            StsError::NoBinding(why) => (
                401,
                "invalid_client",
                700213,
                format!("AADSTS700213: No identity binding admits the presented assertion: {why}."),
            ),
            // Entra's code for a principal that is not assigned to the application.
            StsError::NotAllowedByCluster { service_account, client_id, cluster } => (
                403,
                "unauthorized_client",
                50105,
                format!(
                    "AADSTS50105: Kubernetes RBAC of cluster '{cluster}' does not allow {service_account} to use the managed identity {client_id} (verb use-managed-identity on resource {client_id} in API group cid.wi.aks.azure.com). Grant it with a ClusterRole whose rule has verbs [use-managed-identity], apiGroups [cid.wi.aks.azure.com] and resources [{client_id}] (kubectl apply; kubectl create clusterrole refuses resources the API server does not serve), bound to the service account: kubectl create rolebinding NAME --clusterrole=ROLE --serviceaccount=NAMESPACE:NAME."
                ),
            ),
            StsError::AccessReviewFailed { cluster, reason } => (
                503,
                "temporarily_unavailable",
                50000,
                format!(
                    "AADSTS50000: The API server of cluster '{cluster}' could not be asked whether the service account may use the identity: {reason}. Check the registration's API server (wid aks update --api-server URL --api-server-ca-file CA)."
                ),
            ),
            StsError::Internal(_) => (
                500,
                "temporarily_unavailable",
                50000,
                "AADSTS50000: There was an error issuing a token. Try again; if it persists, check the server log.".to_string(),
            ),
        };
        WireError { status, error, code, description: plain(&description) }
    }
}

/// Makes a description safe for clients that read `error_description` as a borrowed JSON string
/// (the Rust SDK fails on any escape sequence): quotes, backslashes and control characters that came
/// from the assertion are replaced.
fn plain(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_oauth_error() {
        let cases = [
            StsError::UnknownTenant("x".into()),
            StsError::MissingParameter("scope"),
            StsError::UnknownClient("c".into()),
            StsError::BadSignature("x".into()),
            StsError::AssertionTime { now: 0, nbf: 0, exp: 0 },
        ];
        for e in cases {
            let w = e.to_wire("t");
            let want = match w.error {
                "invalid_client" => 401,
                _ => 400,
            };
            assert_eq!(w.status, want, "{e:?}");
            assert!(w.description.starts_with(&format!("AADSTS{}:", w.code)), "{}", w.description);
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn descriptions_need_no_json_escaping() {
        let e = StsError::SubjectMismatch { subject: "a\"b\\c\n".into(), case_only: false, hint: String::new() };
        let d = e.to_wire("t").description;
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json.len(), d.len() + 2, "{json}");
    }
}
