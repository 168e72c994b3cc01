//! ARM errors: `{"error":{"code","message"}}` with ARM's codes and statuses.

/// A refusal of the management API. Each variant is one ARM error code with its status (see
/// [`ArmError::to_wire`]); the message says what was wrong and how to fix it.
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
    /// The caller's roles do not allow the action at the scope.
    #[error("authorization failed")]
    AuthorizationFailed { principal: String, action: String, scope: String },
    /// A value the resource provider refuses (ARM's generic code).
    #[error("BadRequest")]
    BadRequest(String),
    /// The body is not valid JSON of the resource's shape.
    #[error("InvalidRequestContent")]
    InvalidRequestContent(String),
    /// The body is larger than the management API accepts.
    #[error("RequestBodyTooLarge")]
    RequestBodyTooLarge(String),
    /// The HTTP method is not served for this resource.
    #[error("MethodNotAllowed")]
    MethodNotAllowed(String),
    /// The path names a resource type wid does not serve.
    #[error("InvalidResourceType")]
    InvalidResourceType(String),
    /// A resource name (or path segment) is not valid.
    #[error("InvalidResourceName")]
    InvalidResourceName(String),
    /// A resource group name is not valid.
    #[error("InvalidResourceGroupName")]
    InvalidResourceGroupName(String),
    /// A key vault name is not valid.
    #[error("VaultNameNotValid")]
    VaultNameNotValid(String),
    /// A create without `location`.
    #[error("LocationRequired")]
    LocationRequired(String),
    /// A resource cannot move to another location.
    #[error("InvalidResourceLocation")]
    InvalidResourceLocation(String),
    /// The location is not one wid serves.
    #[error("LocationNotAvailableForResourceType")]
    LocationNotAvailableForResourceType(String),
    /// A scope is not a valid ARM scope.
    #[error("InvalidScope")]
    InvalidScope(String),
    /// `$filter` is malformed.
    #[error("InvalidFilterInQueryString")]
    InvalidFilterInQueryString(String),
    /// `$filter` asks for what the resource provider does not filter by.
    #[error("UnsupportedQuery")]
    UnsupportedQuery(String),
    /// A query parameter (e.g. `$top`) has an invalid value.
    #[error("InvalidQueryParameterValue")]
    InvalidQueryParameterValue(String),
    /// A role definition id is not a role definition's id.
    #[error("InvalidRoleDefinitionId")]
    InvalidRoleDefinitionId(String),
    /// A role assignment names a role definition that does not exist (ARM says so with 400).
    #[error("RoleDefinitionDoesNotExist")]
    UnknownRoleDefinition(String),
    /// A role assignment name is not a GUID.
    #[error("InvalidRoleAssignmentId")]
    InvalidRoleAssignmentId(String),
    /// A role assignment body is incomplete or inconsistent.
    #[error("InvalidRoleAssignmentRequest")]
    InvalidRoleAssignmentRequest(String),
    /// A role assignment's principal, role or scope cannot change.
    #[error("RoleAssignmentUpdateNotPermitted")]
    RoleAssignmentUpdateNotPermitted(String),
    /// A principal id is not a GUID.
    #[error("InvalidPrincipalId")]
    InvalidPrincipalId(String),
    /// `principalType` is not one ARM knows.
    #[error("InvalidPrincipalType")]
    InvalidPrincipalType(String),
    /// `principalType` is not the principal's type.
    #[error("UnmatchedPrincipalType")]
    UnmatchedPrincipalType(String),
    /// The principal of a role assignment does not exist.
    #[error("PrincipalNotFound")]
    PrincipalNotFound(String),
    /// Allowed only through a role whose condition excludes this request (Key Vault Data Access Administrator).
    #[error("AuthorizationFailed")]
    OutsideRoleCondition(String),
    /// A role definition addressed by its id does not exist.
    #[error("RoleDefinitionDoesNotExist")]
    RoleDefinitionDoesNotExist(String),
    /// A role assignment addressed by its name does not exist.
    #[error("RoleAssignmentNotFound")]
    RoleAssignmentNotFound(String),
    /// No soft-deleted vault of that name (recover, purge, get deleted).
    #[error("DeletedVaultNotFound")]
    DeletedVaultNotFound(String),
    /// The write conflicts with stored state.
    #[error("Conflict")]
    Conflict(String),
    /// The resource's parent went away during the write.
    #[error("ParentResourceNotFound")]
    ParentResourceNotFound(String),
    /// Another write holds the resource's lock; retry.
    #[error("AnotherOperationInProgress")]
    AnotherOperationInProgress(String),
    /// Another federated-credential write on the same identity is in progress (Entra's code).
    #[error("ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity")]
    ConcurrentCredentialWrites(String),
    /// A soft-deleted vault holds the name.
    #[error("ConflictError")]
    ConflictError(String),
    /// Another vault holds the name.
    #[error("VaultAlreadyExists")]
    VaultAlreadyExists(String),
    /// Another cluster registration holds the issuer URL.
    #[error("IssuerAlreadyRegistered")]
    IssuerAlreadyRegistered(String),
    /// The principal already holds the role at the scope.
    #[error("RoleAssignmentExists")]
    RoleAssignmentExists(String),
    /// A purge-protected vault cannot be purged before its retention ends.
    #[error("MethodNotAllowed")]
    PurgeProtected(String),
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
            ArmError::BadRequest(m) => (400, "BadRequest", m.clone()),
            ArmError::InvalidRequestContent(m) => (400, "InvalidRequestContent", m.clone()),
            ArmError::RequestBodyTooLarge(m) => (400, "RequestBodyTooLarge", m.clone()),
            ArmError::MethodNotAllowed(m) => (400, "MethodNotAllowed", m.clone()),
            ArmError::InvalidResourceType(m) => (400, "InvalidResourceType", m.clone()),
            ArmError::InvalidResourceName(m) => (400, "InvalidResourceName", m.clone()),
            ArmError::InvalidResourceGroupName(m) => (400, "InvalidResourceGroupName", m.clone()),
            ArmError::VaultNameNotValid(m) => (400, "VaultNameNotValid", m.clone()),
            ArmError::LocationRequired(m) => (400, "LocationRequired", m.clone()),
            ArmError::InvalidResourceLocation(m) => (400, "InvalidResourceLocation", m.clone()),
            ArmError::LocationNotAvailableForResourceType(m) => (400, "LocationNotAvailableForResourceType", m.clone()),
            ArmError::InvalidScope(m) => (400, "InvalidScope", m.clone()),
            ArmError::InvalidFilterInQueryString(m) => (400, "InvalidFilterInQueryString", m.clone()),
            ArmError::UnsupportedQuery(m) => (400, "UnsupportedQuery", m.clone()),
            ArmError::InvalidQueryParameterValue(m) => (400, "InvalidQueryParameterValue", m.clone()),
            ArmError::InvalidRoleDefinitionId(m) => (400, "InvalidRoleDefinitionId", m.clone()),
            ArmError::UnknownRoleDefinition(m) => (400, "RoleDefinitionDoesNotExist", m.clone()),
            ArmError::InvalidRoleAssignmentId(m) => (400, "InvalidRoleAssignmentId", m.clone()),
            ArmError::InvalidRoleAssignmentRequest(m) => (400, "InvalidRoleAssignmentRequest", m.clone()),
            ArmError::RoleAssignmentUpdateNotPermitted(m) => (400, "RoleAssignmentUpdateNotPermitted", m.clone()),
            ArmError::InvalidPrincipalId(m) => (400, "InvalidPrincipalId", m.clone()),
            ArmError::InvalidPrincipalType(m) => (400, "InvalidPrincipalType", m.clone()),
            ArmError::UnmatchedPrincipalType(m) => (400, "UnmatchedPrincipalType", m.clone()),
            ArmError::PrincipalNotFound(m) => (400, "PrincipalNotFound", m.clone()),
            ArmError::OutsideRoleCondition(m) => (403, "AuthorizationFailed", m.clone()),
            ArmError::RoleDefinitionDoesNotExist(m) => (404, "RoleDefinitionDoesNotExist", m.clone()),
            ArmError::RoleAssignmentNotFound(m) => (404, "RoleAssignmentNotFound", m.clone()),
            ArmError::DeletedVaultNotFound(m) => (404, "DeletedVaultNotFound", m.clone()),
            ArmError::Conflict(m) => (409, "Conflict", m.clone()),
            ArmError::ParentResourceNotFound(m) => (409, "ParentResourceNotFound", m.clone()),
            ArmError::AnotherOperationInProgress(m) => (409, "AnotherOperationInProgress", m.clone()),
            ArmError::ConcurrentCredentialWrites(m) => {
                (409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity", m.clone())
            }
            ArmError::ConflictError(m) => (409, "ConflictError", m.clone()),
            ArmError::VaultAlreadyExists(m) => (409, "VaultAlreadyExists", m.clone()),
            ArmError::IssuerAlreadyRegistered(m) => (409, "IssuerAlreadyRegistered", m.clone()),
            ArmError::RoleAssignmentExists(m) => (409, "RoleAssignmentExists", m.clone()),
            ArmError::PurgeProtected(m) => (409, "MethodNotAllowed", m.clone()),
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
            wid_store::StoreError::Conflict(m) => ArmError::Conflict(m),
            wid_store::StoreError::MissingParent(m) => ArmError::ParentResourceNotFound(m),
            wid_store::StoreError::Busy(m) => ArmError::AnotherOperationInProgress(format!(
                "Another operation on this resource is in progress ({m}); retry after it finishes."
            )),
            wid_store::StoreError::Backend(m) | wid_store::StoreError::Corrupt(m) => ArmError::Internal(m),
        }
    }
}
