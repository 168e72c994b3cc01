//! Who is calling one of wid's resources, as its access token proved, and why a token was refused.
//! The token service produces both; the management plane and the Key Vault data plane consume them,
//! so they live here and those services stay peers of the token service.

use uuid::Uuid;

/// The verified caller of one of wid's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal_id: Uuid,
    pub client_id: Uuid,
    pub issuer: String,
}

/// Why an access token was not accepted by a wid resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the access token is malformed: {0}")]
    Malformed(String),
    #[error("the access token's signature is invalid or its key ({0}) is unknown")]
    Signature(String),
    #[error("the access token's issuer '{0}' is not this server's")]
    Issuer(String),
    #[error("the access token's audience '{got}' is not '{want}'")]
    Audience { got: String, want: String },
    #[error("the access token's tenant is not this server's")]
    Tenant,
    #[error("the access token expired")]
    Expired,
    #[error("the access token is not yet valid")]
    NotYetValid,
}
