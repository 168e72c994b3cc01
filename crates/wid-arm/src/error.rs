//! ARM errors: `{"error":{"code","message"}}` with ARM's codes and statuses.

/// A refusal of the management API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    /// The subscription in the path is not this server's.
    #[error("subscription not found")]
    SubscriptionNotFound(String),
    /// The resource group does not exist.
    #[error("resource group not found")]
    ResourceGroupNotFound(String),
    /// The resource does not exist.
    #[error("resource not found")]
    ResourceNotFound { resource_type: &'static str, name: String, resource_group: String },
    /// Something addressed by the request does not exist; `code` is the resource provider's
    /// (e.g. `RoleAssignmentNotFound`, `RoleDefinitionDoesNotExist`, `DeletedVaultNotFound`).
    #[error("not found")]
    NotFound { code: &'static str, message: String },
    /// The caller's roles do not allow the action at the scope.
    #[error("authorization failed")]
    AuthorizationFailed { principal: String, action: String, scope: String },
    /// Refused for a reason other than a missing role (e.g. a role assignment condition) (403).
    #[error("forbidden")]
    Forbidden { code: &'static str, message: String },
    /// The request is invalid; `code` is ARM's (e.g. `InvalidRequestContent`, `LocationRequired`).
    #[error("bad request")]
    BadRequest { code: &'static str, message: String },
    /// The request conflicts with the current state (409).
    #[error("conflict")]
    Conflict { code: &'static str, message: String },
    /// Storage or signing failed; details are logged, not returned.
    #[error("internal")]
    Internal(String),
}

/// How an ARM error appears on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmWire {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ArmError {
    /// Shorthand for a 400.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ArmError::BadRequest { code, message: message.into() }
    }

    /// Maps to ARM's status, code and message.
    pub fn to_wire(&self) -> ArmWire {
        let (status, code, message) = match self {
            ArmError::SubscriptionNotFound(s) => {
                (404, "SubscriptionNotFound", format!("The subscription '{s}' could not be found."))
            }
            ArmError::ResourceGroupNotFound(rg) => {
                (404, "ResourceGroupNotFound", format!("Resource group '{rg}' could not be found."))
            }
            ArmError::ResourceNotFound { resource_type, name, resource_group } => (
                404,
                "ResourceNotFound",
                format!(
                    "The Resource '{resource_type}/{name}' under resource group '{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
                ),
            ),
            ArmError::AuthorizationFailed { principal, action, scope } => (
                403,
                "AuthorizationFailed",
                format!(
                    "The client '{principal}' with object id '{principal}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. Grant a role that allows it at this scope or above (e.g. `wid role assignment create --assignee-object-id {principal} --role Contributor --scope {scope}`); changes take effect immediately."
                ),
            ),
            ArmError::NotFound { code, message } => (404, *code, message.clone()),
            ArmError::Forbidden { code, message } => (403, *code, message.clone()),
            ArmError::BadRequest { code, message } => (400, *code, message.clone()),
            ArmError::Conflict { code, message } => (409, *code, message.clone()),
            ArmError::Internal(_) => (
                500,
                "InternalServerError",
                "The server encountered an internal error. Please retry the request.".to_string(),
            ),
        };
        ArmWire { status, code, message }
    }
}

impl From<wid_store::StoreError> for ArmError {
    fn from(e: wid_store::StoreError) -> Self {
        match e {
            wid_store::StoreError::Conflict(m) => ArmError::Conflict { code: "Conflict", message: m },
            wid_store::StoreError::MissingParent(m) => {
                ArmError::Conflict { code: "ParentResourceNotFound", message: m }
            }
            wid_store::StoreError::Busy(m) => ArmError::Conflict {
                code: "AnotherOperationInProgress",
                message: format!("Another operation on this resource is in progress ({m}); retry after it finishes."),
            },
            wid_store::StoreError::Backend(m) | wid_store::StoreError::Corrupt(m) => ArmError::Internal(m),
        }
    }
}
