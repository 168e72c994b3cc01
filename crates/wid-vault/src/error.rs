//! Key Vault errors: `{"error":{"code","message","innererror"?}}` with Key Vault's statuses and codes.
//! [`VaultError::to_wire`] is the one mapping; it has no catch-all arm, so a new variant forces a
//! decision about how it looks on the wire.

use serde_json::{Value, json};
use wid_core::VerifyError;

/// Longest piece of caller input echoed back in a message.
const ECHO_MAX: usize = 128;

fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(ECHO_MAX).collect();
    if s.chars().count() > ECHO_MAX {
        out.push('…');
    }
    out
}

/// Why an access token was not accepted (each maps to an `AKV…` message; every one answers 401 with
/// the challenge).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization: Bearer …` header (the first request of every SDK).
    Missing,
    /// The token did not verify (parse, signature, issuer, audience, tenant, lifetime).
    Invalid(VerifyError),
}

/// The caller whose request was refused by RBAC, and what was refused (the parts of Azure's
/// `ForbiddenByRbac` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacDenial {
    pub appid: String,
    pub oid: String,
    pub issuer: String,
    pub action: String,
    /// The authorization resource (vault id, or vault id + `/secrets/{name}`).
    pub resource: String,
    pub vault: String,
    pub location: String,
}

/// A refusal (or failure) of the Key Vault data plane.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// 401: no or no valid bearer token. The HTTP layer adds the challenge header.
    #[error("unauthenticated")]
    Unauthorized(AuthFailure),
    /// 400: an invalid name, value, parameter, query or body; the message says which.
    #[error("bad parameter: {0}")]
    BadParameter(String),
    /// 404: the vault named by the host does not exist (or is soft-deleted).
    #[error("vault not found")]
    VaultNotFound(String),
    /// 403: the vault uses the access-policy permission model, which wid does not implement.
    #[error("vault does not use RBAC")]
    RbacNotEnabled(String),
    /// 403: no role assignment of the caller grants the data action at the resource or above.
    #[error("forbidden by RBAC")]
    ForbiddenByRbac(Box<RbacDenial>),
    /// 404: no such (active) secret, or version of it; the string is `name` or `name/version`.
    #[error("secret not found")]
    SecretNotFound(String),
    /// 404: no such soft-deleted secret.
    #[error("deleted secret not found")]
    DeletedSecretNotFound(String),
    /// 403: `get` of a disabled secret version.
    #[error("secret disabled")]
    SecretDisabled(String),
    /// 409: the name is soft-deleted; it can only be recovered or purged.
    #[error("secret is deleted but recoverable")]
    DeletedButRecoverable(String),
    /// 409: a restore names a secret that exists.
    #[error("secret exists")]
    SecretExists(String),
    /// 403: purge while the vault has purge protection.
    #[error("purge protection")]
    PurgeProtected(String),
    /// 429: over the per-vault request rate; retry after this many seconds.
    #[error("throttled")]
    Throttled { retry_after: u64 },
    /// 404: no operation at this path.
    #[error("no such operation")]
    UnknownPath(String),
    /// 405: a known path with a method it does not take.
    #[error("method not allowed")]
    MethodNotAllowed { method: String, path: String },
    /// 413: the request body exceeds the limit.
    #[error("request body too large")]
    BodyTooLarge(usize),
    /// 500: storage or crypto failed. The cause is logged by the HTTP layer, never returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// How a [`VaultError`] appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    pub status: u16,
    pub code: &'static str,
    pub inner: Option<&'static str>,
    pub message: String,
    /// `Retry-After` seconds (429 only).
    pub retry_after: Option<u64>,
}

impl WireError {
    /// The Key Vault error body.
    pub fn body(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(inner), Some(obj)) = (self.inner, error.as_object_mut()) {
            obj.insert("innererror".into(), json!({"code": inner}));
        }
        json!({ "error": error })
    }
}

const NOT_FOUND_HELP: &str = "If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182";

impl VaultError {
    /// Maps to Key Vault's status, code, inner code and message.
    pub fn to_wire(&self) -> WireError {
        let w = |status, code, inner, message: String| WireError { status, code, inner, message, retry_after: None };
        match self {
            VaultError::Unauthorized(f) => w(401, "Unauthorized", None, auth_message(f)),
            VaultError::BadParameter(m) => w(400, "BadParameter", None, m.clone()),
            VaultError::VaultNotFound(v) => w(
                404,
                "VaultNotFound",
                None,
                format!(
                    "The vault '{}' does not exist on this server. Create it first (wid keyvault create -g <group> -n <name>); a deleted vault must be recovered before use.",
                    echo(v)
                ),
            ),
            VaultError::RbacNotEnabled(v) => w(
                403,
                "Forbidden",
                Some("AccessDenied"),
                format!(
                    "The vault '{v}' uses the access-policy permission model (enableRbacAuthorization is false); wid supports only the Azure RBAC permission model. Set properties.enableRbacAuthorization to true on the vault and assign a Key Vault role (e.g. Key Vault Secrets User) to the caller."
                ),
            ),
            VaultError::ForbiddenByRbac(d) => w(
                403,
                "Forbidden",
                Some("ForbiddenByRbac"),
                format!(
                    "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid={};oid={};iss={}\r\nAction: '{}'\r\nResource: '{}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: {};location={}\r\n",
                    d.appid,
                    d.oid,
                    d.issuer,
                    d.action,
                    d.resource.to_ascii_lowercase(),
                    d.vault,
                    d.location
                ),
            ),
            VaultError::SecretNotFound(n) => w(
                404,
                "SecretNotFound",
                None,
                format!("A secret with (name/id) {} was not found in this key vault. {NOT_FOUND_HELP}", echo(n)),
            ),
            VaultError::DeletedSecretNotFound(n) => w(
                404,
                "SecretNotFound",
                None,
                format!("A deleted secret with (name/id) {} was not found in this key vault.", echo(n)),
            ),
            VaultError::SecretDisabled(_) => w(
                403,
                "Forbidden",
                Some("SecretDisabled"),
                "Operation get is not allowed on a disabled secret.".to_string(),
            ),
            VaultError::DeletedButRecoverable(n) => w(
                409,
                "Conflict",
                Some("ObjectIsDeletedButRecoverable"),
                format!(
                    "Secret {n} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged."
                ),
            ),
            VaultError::SecretExists(n) => w(
                409,
                "Conflict",
                None,
                format!("Secret {n} already exists in this key vault; a backup can only be restored under a free name."),
            ),
            VaultError::PurgeProtected(n) => w(
                403,
                "Forbidden",
                None,
                format!(
                    "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed. (secret: {n})"
                ),
            ),
            VaultError::Throttled { retry_after } => WireError {
                status: 429,
                code: "Throttled",
                inner: None,
                message: format!(
                    "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached. Retry after {retry_after} seconds."
                ),
                retry_after: Some(*retry_after),
            },
            VaultError::UnknownPath(p) => w(
                404,
                "NotFound",
                None,
                format!(
                    "No Key Vault operation at '{}'; wid serves /secrets and /deletedsecrets.",
                    echo(p)
                ),
            ),
            VaultError::MethodNotAllowed { method, path } => w(
                405,
                "MethodNotAllowed",
                None,
                format!("The method '{}' is not supported at '{}'.", echo(method), echo(path)),
            ),
            VaultError::BodyTooLarge(limit) => w(
                413,
                "RequestEntityTooLarge",
                None,
                format!("The request body is larger than {limit} bytes."),
            ),
            VaultError::Internal(_) => w(
                500,
                "InternalServerError",
                None,
                "The server encountered an internal error; the x-ms-request-id of this response identifies it in the server log.".to_string(),
            ),
        }
    }

    /// The code recorded as the reason in the audit trail.
    pub fn audit_reason(&self) -> &'static str {
        let w = self.to_wire();
        w.inner.unwrap_or(w.code)
    }
}

/// Key Vault's `AKV…` texts. AKV10000, AKV10022 and AKV10032 are Azure's; the others are wid's,
/// in the same style.
fn auth_message(f: &AuthFailure) -> String {
    match f {
        AuthFailure::Missing => "AKV10000: Request is missing a Bearer or PoP token.".to_string(),
        AuthFailure::Invalid(e) => match e {
            VerifyError::Audience { got, want } => {
                format!("AKV10022: Invalid audience. Expected {want}, found: {}.", echo(got))
            }
            VerifyError::Issuer(got) => {
                format!("AKV10032: Invalid issuer. Found {}, which is not this server's token issuer.", echo(got))
            }
            VerifyError::Tenant => "AKV10032: Invalid issuer. The token was issued for another tenant.".to_string(),
            VerifyError::Expired => "AKV10044: The token is expired. Get a new token.".to_string(),
            VerifyError::NotYetValid => "AKV10045: The token is not yet valid; check the clocks.".to_string(),
            VerifyError::Malformed(m) => format!("AKV10001: The token is malformed: {m}."),
            VerifyError::Signature(_) => {
                "AKV10003: The token signature is invalid or was made with an unknown key.".to_string()
            }
        },
    }
}

impl From<wid_store::StoreError> for VaultError {
    fn from(e: wid_store::StoreError) -> Self {
        VaultError::Internal(format!("storage: {e}"))
    }
}

impl From<wid_crypto::CryptoError> for VaultError {
    fn from(e: wid_crypto::CryptoError) -> Self {
        VaultError::Internal(format!("crypto: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_message_and_forbidden_shape() {
        let w = VaultError::Unauthorized(AuthFailure::Missing).to_wire();
        assert_eq!(w.status, 401);
        assert_eq!(
            w.body(),
            json!({"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}})
        );
        let d = RbacDenial {
            appid: "a".into(),
            oid: "o".into(),
            issuer: "https://h/t/".into(),
            action: "Microsoft.KeyVault/vaults/secrets/getSecret/action".into(),
            resource: "/subscriptions/S/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/V/secrets/X".into(),
            vault: "V".into(),
            location: "eastus".into(),
        };
        let w = VaultError::ForbiddenByRbac(Box::new(d)).to_wire();
        assert_eq!((w.status, w.code, w.inner), (403, "Forbidden", Some("ForbiddenByRbac")));
        assert!(w.message.contains("\r\nCaller: appid=a;oid=o;iss=https://h/t/\r\n"));
        assert!(w.message.contains(
            "Resource: '/subscriptions/s/resourcegroups/rg/providers/microsoft.keyvault/vaults/v/secrets/x'"
        ));
        assert!(w.message.ends_with("DecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: V;location=eastus\r\n"));
        assert_eq!(w.body()["error"]["innererror"]["code"], "ForbiddenByRbac");
    }

    #[test]
    fn internal_is_opaque() {
        let w = VaultError::Internal("disk on fire at /var/lib/wid".into()).to_wire();
        assert_eq!(w.status, 500);
        assert!(!w.message.contains("disk"));
    }
}
