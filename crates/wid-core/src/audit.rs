//! The audit trail: one structured event per access decision, on the `wid::audit` tracing target.
//!
//! The server routes that target to the log and, optionally, to a JSON-lines file. Events carry who,
//! what, on which resource, the decision and why, and the request id — never a secret value, a
//! client secret or a token.

/// One access decision.
#[derive(Debug, Clone, Copy)]
pub struct AuditEvent<'a> {
    /// The request id returned to the client (`x-ms-request-id`), if any.
    pub request_id: &'a str,
    /// Object id of the caller (or the client id when no principal is known yet).
    pub principal: &'a str,
    /// The operation: an RBAC action (`Microsoft.KeyVault/vaults/secrets/getSecret/action`) or an
    /// event name (`token.issued`).
    pub action: &'a str,
    /// The resource: an ARM id or scope, or the token's audience.
    pub resource: &'a str,
    pub allowed: bool,
    /// Why: the role assignment that allowed it, or the refusal reason / error code.
    pub reason: &'a str,
}

/// The tracing target of audit events.
pub const TARGET: &str = "wid::audit";

/// Records an access decision.
pub fn record(e: &AuditEvent<'_>) {
    tracing::info!(
        target: "wid::audit",
        request_id = e.request_id,
        principal = e.principal,
        action = e.action,
        resource = e.resource,
        decision = if e.allowed { "allowed" } else { "denied" },
        reason = e.reason,
    );
}
