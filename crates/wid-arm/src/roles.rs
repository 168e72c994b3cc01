//! `Microsoft.Authorization`: role definitions (the built-ins) and role assignments, both extension
//! resources readable under any scope (`/`, the subscription, a group, any resource — including a
//! vault or a single secret `…/vaults/{v}/secrets/{name}`).
//!
//! Semantics follow ARM (api-version 2022-04-01): assignment names are GUIDs; the same principal,
//! role and scope twice is `409 RoleAssignmentExists`; an unknown principal is `400
//! PrincipalNotFound`; `$filter=atScope()` lists assignments at or above the scope, no filter at,
//! above and below it, `principalId eq '…'`/`assignedTo('…')` narrow to one principal. A change is
//! written to the store and then to the in-memory directory, so it decides the very next request.

use crate::Actor;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wid_core::Scope;
use wid_core::audit::{self, AuditEvent};
use wid_core::model::{PrincipalType, RoleAssignment};
use wid_core::rbac::{Action, Decision, RoleDefinition, roles};

use crate::{ArmError, Management, Reply, Result, filter, parse_body, shapes};

const WRITE: &str = "Microsoft.Authorization/roleAssignments/write";
const DELETE: &str = "Microsoft.Authorization/roleAssignments/delete";
const READ: &str = "Microsoft.Authorization/roleAssignments/read";
const DEFINITIONS_READ: &str = "Microsoft.Authorization/roleDefinitions/read";

/// The roles a Key Vault Data Access Administrator may assign and remove (the ABAC condition of
/// that built-in role): the Key Vault data roles.
const KV_DATA_ROLES: [&str; 8] = [
    roles::KEY_VAULT_ADMINISTRATOR,
    "a4417e6f-fecd-4de8-b567-7b0420556985", // Key Vault Certificates Officer
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", // Key Vault Crypto Officer
    "e147488a-f6f5-4113-8e2d-b22465e65bf6", // Key Vault Crypto Service Encryption User
    "12338af0-0e69-4776-bea7-57ae8d297424", // Key Vault Crypto User
    roles::KEY_VAULT_READER,
    roles::KEY_VAULT_SECRETS_OFFICER,
    roles::KEY_VAULT_SECRETS_USER,
];

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct AssignmentProperties {
    role_definition_id: Option<String>,
    principal_id: Option<String>,
    principal_type: Option<String>,
    description: Option<String>,
    condition: Option<String>,
    condition_version: Option<String>,
    delegated_managed_identity_resource_id: Option<String>,
}

#[derive(Deserialize)]
struct AssignmentBody {
    properties: Option<AssignmentProperties>,
}

fn invalid_assignment_id(name: &str) -> ArmError {
    ArmError::InvalidRoleAssignmentId(format!(
        "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
    ))
}

fn parse_guid(s: &str) -> Option<Uuid> {
    // ARM spells GUIDs 8-4-4-4-12; braces, URNs and the 32-digit form are not ids.
    if s.len() == 36 { Uuid::parse_str(s).ok() } else { None }
}

/// What a role assignment list asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct AssignmentFilter {
    /// `atScope()`: only assignments at or above the scope.
    at_scope: bool,
    /// `principalId eq '…'` or `assignedTo('…')` (wid has no groups, so they mean the same).
    principal: Option<Uuid>,
}

fn parse_assignment_filter(f: Option<&str>) -> Result<AssignmentFilter> {
    let mut out = AssignmentFilter::default();
    let Some(f) = f.map(str::trim).filter(|f| !f.is_empty()) else { return Ok(out) };
    let bad = || {
        ArmError::UnsupportedQuery(format!(
            "The $filter '{f}' is not supported: use atScope(), principalId eq '{{objectId}}' or assignedTo('{{objectId}}'), optionally joined by 'and'."
        ))
    };
    for term in filter::split_and(f) {
        if let Some((name, arg)) = filter::call_term(term) {
            match (name, arg) {
                (n, None) if n.eq_ignore_ascii_case("atScope") => out.at_scope = true,
                (n, Some(id)) if n.eq_ignore_ascii_case("assignedTo") => {
                    out.principal = Some(parse_guid(&id).ok_or_else(bad)?);
                }
                _ => return Err(bad()),
            }
        } else if let Some((field, value)) = filter::eq_term(term)
            && field.eq_ignore_ascii_case("principalId")
        {
            out.principal = Some(parse_guid(&value).ok_or_else(bad)?);
        } else {
            return Err(bad());
        }
    }
    Ok(out)
}

/// What a role definition list asks for.
#[derive(Debug, Default, PartialEq, Eq)]
struct DefinitionFilter {
    role_name: Option<String>,
    /// `type eq 'BuiltInRole'` / `'CustomRole'`.
    built_in: Option<bool>,
}

fn parse_definition_filter(f: Option<&str>) -> Result<DefinitionFilter> {
    let mut out = DefinitionFilter::default();
    let Some(f) = f.map(str::trim).filter(|f| !f.is_empty()) else { return Ok(out) };
    for term in filter::split_and(f) {
        match filter::eq_term(term) {
            Some((field, v)) if field.eq_ignore_ascii_case("roleName") => out.role_name = Some(v),
            Some((field, v)) if field.eq_ignore_ascii_case("type") && v.eq_ignore_ascii_case("BuiltInRole") => {
                out.built_in = Some(true);
            }
            Some((field, v)) if field.eq_ignore_ascii_case("type") && v.eq_ignore_ascii_case("CustomRole") => {
                out.built_in = Some(false);
            }
            _ => {
                return Err(ArmError::UnsupportedQuery(format!(
                    "The $filter '{f}' is not supported: use roleName eq '{{name}}' and/or type eq 'BuiltInRole'."
                )));
            }
        }
    }
    Ok(out)
}

impl Management {
    /// Validates a scope of a role definition or assignment: `/`, or this server's subscription
    /// and anything under it. Returns the scope and its subscription (canonical spelling).
    fn authorization_scope(&self, scope: &str) -> Result<(Scope, Option<String>)> {
        let parsed = Scope::parse(scope).map_err(|e| ArmError::InvalidScope(format!("Invalid scope: {e}.")))?;
        if parsed.is_root() {
            return Ok((parsed, None));
        }
        let segs: Vec<&str> = parsed.segments().collect();
        let Some(sub) = parsed.subscription() else {
            return Err(ArmError::InvalidScope(format!(
                "The scope '{scope}' is not valid: use '/', '/subscriptions/{}', a resource group or a resource under it.",
                self.cfg.subscription_id
            )));
        };
        let sub = self.subscription(sub)?;
        let shape_ok = match segs.get(2) {
            None => true,
            Some(k) if k.eq_ignore_ascii_case("resourceGroups") => {
                segs.len() == 4 || segs.get(4).is_some_and(|p| p.eq_ignore_ascii_case("providers"))
            }
            Some(k) => k.eq_ignore_ascii_case("providers"),
        };
        if !shape_ok {
            return Err(ArmError::InvalidScope(format!(
                "The scope '{scope}' is not valid: after the subscription comes '/resourceGroups/{{name}}' or '/providers/{{namespace}}/{{type}}/{{name}}'."
            )));
        }
        Ok((parsed, Some(sub)))
    }

    /// Decides a role assignment write or delete for `role`, honouring the condition of the Key
    /// Vault Data Access Administrator role (it may only manage the Key Vault data roles).
    fn decide_assignment_change(&self, caller: &Actor, action: &str, scope: &Scope, role: &Uuid) -> Result<Decision> {
        let Decision::Allowed { assignment, role: granted_by } = self.decision(caller, action, scope) else {
            return Err(self.denied(caller, action, scope.as_str(), "no role assignment allows it"));
        };
        let kvdaa = Uuid::parse_str(roles::KEY_VAULT_DATA_ACCESS_ADMINISTRATOR).unwrap_or_default();
        let kvdaa_name = self.dir().rbac().role(&kvdaa).map(|r| r.name.clone()).unwrap_or_default();
        let kv_role = KV_DATA_ROLES.iter().any(|r| Uuid::parse_str(r).ok().as_ref() == Some(role));
        if granted_by != kvdaa_name || kv_role {
            return Ok(self.granted(caller, action, scope, assignment, granted_by));
        }
        // The first grant found is the conditional one; look for another that allows it outright.
        let mine: Vec<RoleAssignment> = self.store.role_assignments(Some(caller.principal_id))?;
        let dir = self.dir();
        let other = mine.iter().find(|ra| {
            ra.role_definition_id != kvdaa
                && Scope::parse(&ra.scope).is_ok_and(|s| scope.is_within(&s))
                && dir.rbac().role(&ra.role_definition_id).is_some_and(|r| r.allows(Action::Control(action)))
        });
        if let Some(ra) = other {
            let name = dir.rbac().role(&ra.role_definition_id).map(|r| r.name.clone()).unwrap_or_default();
            drop(dir);
            return Ok(self.granted(caller, action, scope, ra.id, name));
        }
        drop(dir);
        let reason = "Key Vault Data Access Administrator may only manage Key Vault data roles";
        self.audit(caller, action, scope.as_str(), false, reason);
        Err(ArmError::OutsideRoleCondition(format!(
            "The client '{}' with object id '{}' has authorization to perform action '{action}' over scope '{}' only through the 'Key Vault Data Access Administrator' role, whose condition limits it to the Key Vault data roles (Key Vault Administrator, Certificates Officer, Crypto Officer, Crypto Service Encryption User, Crypto User, Reader, Secrets Officer, Secrets User); role '{role}' is not one of them.",
            caller.principal_id,
            caller.principal_id,
            scope.as_str()
        )))
    }

    pub(crate) fn audit(&self, caller: &Actor, action: &str, resource: &str, allowed: bool, reason: &str) {
        audit::record(&AuditEvent {
            request_id: &caller.request_id,
            principal: &caller.principal_id.to_string(),
            action,
            resource,
            allowed,
            reason,
        });
    }

    fn load_role(&self, id: &Uuid) -> Option<RoleDefinition> {
        self.dir().rbac().role(id).cloned()
    }

    /// Parses `roleDefinitionId`: a full id (`/subscriptions/{sub}/providers/…/roleDefinitions/{guid}`
    /// or `/providers/…/roleDefinitions/{guid}`) or a bare GUID.
    fn role_definition_ref(&self, id: &str) -> Result<Uuid> {
        let invalid = || ArmError::InvalidRoleDefinitionId(format!("The role definition ID '{id}' is not valid."));
        let trimmed = id.trim_end_matches('/');
        let guid = match trimmed.rsplit_once('/') {
            None => trimmed,
            Some((prefix, guid)) => {
                let lower = prefix.to_ascii_lowercase();
                let root = "/providers/microsoft.authorization/roledefinitions";
                let ok = lower == root
                    || lower
                        .strip_suffix(root)
                        .and_then(|s| s.strip_prefix("/subscriptions/"))
                        .is_some_and(|sub| !sub.is_empty() && !sub.contains('/'));
                if !ok {
                    return Err(invalid());
                }
                if let Some(sub) = lower.strip_suffix(root).and_then(|s| s.strip_prefix("/subscriptions/"))
                    && !sub.eq_ignore_ascii_case(&self.cfg.subscription_id.to_string())
                {
                    return Err(role_missing(guid));
                }
                guid
            }
        };
        let role = parse_guid(guid).ok_or_else(invalid)?;
        if self.load_role(&role).is_none() {
            return Err(role_missing(guid));
        }
        Ok(role)
    }

    // ---- role definitions ------------------------------------------------------------------------

    /// `GET {scope}/providers/Microsoft.Authorization/roleDefinitions[?$filter=…]`.
    pub fn list_role_definitions(&self, caller: &Actor, scope: &str, filter: Option<&str>) -> Result<Reply> {
        let (scope, sub) = self.authorization_scope(scope)?;
        let f = parse_definition_filter(filter)?;
        self.authorize_at(caller, DEFINITIONS_READ, &scope)?;
        let mut defs: Vec<RoleDefinition> = self
            .dir()
            .rbac()
            .roles()
            .filter(|r| f.role_name.as_ref().is_none_or(|n| r.name.eq_ignore_ascii_case(n)))
            .filter(|r| f.built_in.is_none_or(|b| r.built_in == b))
            .cloned()
            .collect();
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        let value: Vec<Value> = defs.iter().map(|r| shapes::role_definition(sub.as_deref(), r)).collect();
        Ok(Reply::Ok(json!({ "value": value })))
    }

    /// `GET {scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}`.
    pub fn get_role_definition(&self, caller: &Actor, scope: &str, name: &str) -> Result<Reply> {
        let (scope, sub) = self.authorization_scope(scope)?;
        self.authorize_at(caller, DEFINITIONS_READ, &scope)?;
        let role = parse_guid(name).and_then(|g| self.load_role(&g)).ok_or_else(|| {
            ArmError::RoleDefinitionDoesNotExist(format!(
                "The role definition '{name}' could not be found. List the roles with `wid role definition list`."
            ))
        })?;
        Ok(Reply::Ok(shapes::role_definition(sub.as_deref(), &role)))
    }

    // ---- role assignments ------------------------------------------------------------------------

    /// `PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}` → 201.
    pub fn put_role_assignment(&self, caller: &Actor, scope: &str, name: &str, body: &[u8]) -> Result<Reply> {
        let (scope, _) = self.authorization_scope(scope)?;
        let id = parse_guid(name).ok_or_else(|| invalid_assignment_id(name))?;
        self.authorize_at(caller, WRITE, &scope)?;
        let body: AssignmentBody = parse_body(body)?;
        let props = body.properties.ok_or_else(|| {
            ArmError::InvalidRequestContent(
                "The request content must contain 'properties' with 'roleDefinitionId' and 'principalId'.".into(),
            )
        })?;
        let role_ref = props.role_definition_id.as_deref().ok_or_else(|| {
            ArmError::InvalidRequestContent("The request content must contain 'properties.roleDefinitionId'.".into())
        })?;
        let role = self.role_definition_ref(role_ref)?;
        let decision = self.decide_assignment_change(caller, WRITE, &scope, &role)?;
        if props.condition.as_deref().is_some_and(|c| !c.is_empty())
            || props.condition_version.as_deref().is_some_and(|c| !c.is_empty())
        {
            return Err(ArmError::InvalidRoleAssignmentRequest("wid does not evaluate role assignment conditions (ABAC); an assignment with a condition would grant more than intended. Create it without 'condition' (and narrow the scope instead, e.g. to one secret).".into()));
        }
        if props.delegated_managed_identity_resource_id.as_deref().is_some_and(|d| !d.is_empty()) {
            return Err(ArmError::InvalidRoleAssignmentRequest(
                "'delegatedManagedIdentityResourceId' is not supported by wid.".into(),
            ));
        }
        let principal_text = props.principal_id.as_deref().unwrap_or("");
        let principal = parse_guid(principal_text).ok_or_else(|| {
            ArmError::InvalidPrincipalId(format!(
                "The principal ID '{principal_text}' is not valid. The principal ID must be a GUID (an object id)."
            ))
        })?;
        if !self.dir().principal_exists(&principal) {
            return Err(ArmError::PrincipalNotFound(format!(
                "Principal {} does not exist in the directory {}. Check that you have the correct principal ID: the object id of a managed identity (`wid identity show --query principalId`) or of an application principal of this server, not a client id. wid has no replication delay, so a principal that exists is found immediately.",
                principal.simple(),
                self.cfg.tenant_id
            )));
        }
        // Every wid principal (managed identity or application) is a service principal.
        let principal_type = match props.principal_type.as_deref() {
            None => PrincipalType::ServicePrincipal,
            Some(t) => match PrincipalType::parse(t) {
                Some(PrincipalType::ServicePrincipal) => PrincipalType::ServicePrincipal,
                Some(other) => {
                    return Err(ArmError::UnmatchedPrincipalType(format!(
                        "The PrincipalId '{}' has type 'ServicePrincipal', which is different from specified PrincipalType '{}'.",
                        principal.simple(),
                        other.as_str()
                    )));
                }
                None => {
                    return Err(ArmError::InvalidPrincipalType(format!(
                        "The principal type '{t}' is not valid: use User, Group, ServicePrincipal, ForeignGroup or Device."
                    )));
                }
            },
        };
        if let Some(rg) = scope.resource_group() {
            self.group(&self.cfg.subscription_id.to_string(), rg)?;
        }
        let now = self.clock.now();
        let ra = RoleAssignment {
            id,
            scope: scope.as_str().to_string(),
            role_definition_id: role,
            principal_id: principal,
            principal_type,
            description: props.description.filter(|d| !d.is_empty()),
            created: now,
            updated: now,
            created_by: Some(caller.principal_id),
        };
        if let Some(existing) = self.store.role_assignment(id)? {
            let same = Scope::parse(&existing.scope).is_ok_and(|s| s == scope)
                && existing.principal_id == ra.principal_id
                && existing.role_definition_id == ra.role_definition_id
                && (ra.description.is_none() || existing.description == ra.description);
            if same {
                return Ok(Reply::Ok(shapes::role_assignment(&existing)));
            }
            return Err(ArmError::RoleAssignmentUpdateNotPermitted(format!(
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated. Role assignment '{id}' already exists with other properties; delete it first or use a new GUID."
            )));
        }
        let role_name = self.load_role(&role).map(|r| r.name).unwrap_or_default();
        match self.store.insert_role_assignment(&ra) {
            Ok(()) => {}
            Err(wid_store::StoreError::Conflict(_)) => {
                return Err(ArmError::RoleAssignmentExists(format!(
                    "The role assignment already exists. Principal {principal} already holds role '{role_name}' at scope '{}'.",
                    scope.as_str()
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.dir_mut().put_role_assignment(&ra);
        let reason = match decision {
            Decision::Allowed { assignment, role } => format!("allowed by role assignment {assignment} ({role})"),
            Decision::Denied => String::new(),
        };
        self.audit(
            caller,
            WRITE,
            &wid_core::scope::ids::role_assignment(&ra.scope, &id.to_string()),
            true,
            &format!("{reason}; granted '{role_name}' to {principal}"),
        );
        Ok(Reply::Created(shapes::role_assignment(&ra)))
    }

    fn load_assignment(&self, scope: &Scope, name: &str) -> Result<Option<RoleAssignment>> {
        let Some(id) = parse_guid(name) else { return Ok(None) };
        Ok(self.store.role_assignment(id)?.filter(|ra| Scope::parse(&ra.scope).is_ok_and(|s| s == *scope)))
    }

    /// `GET {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}`.
    pub fn get_role_assignment(&self, caller: &Actor, scope: &str, name: &str) -> Result<Reply> {
        let (scope, _) = self.authorization_scope(scope)?;
        self.authorize_at(caller, READ, &scope)?;
        let ra = self.load_assignment(&scope, name)?.ok_or_else(|| {
            ArmError::RoleAssignmentNotFound(format!(
                "The role assignment '{name}' is not found at scope '{}'.",
                scope.as_str()
            ))
        })?;
        Ok(Reply::Ok(shapes::role_assignment(&ra)))
    }

    /// `DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}`: 200 with the
    /// removed assignment, 204 if there was none. The access it gave ends with this response.
    pub fn delete_role_assignment(&self, caller: &Actor, scope: &str, name: &str) -> Result<Reply> {
        let (scope, _) = self.authorization_scope(scope)?;
        self.authorize_at(caller, DELETE, &scope)?;
        let Some(ra) = self.load_assignment(&scope, name)? else { return Ok(Reply::NoContent) };
        let decision = self.decide_assignment_change(caller, DELETE, &scope, &ra.role_definition_id)?;
        let Some(removed) = self.store.delete_role_assignment(ra.id)? else { return Ok(Reply::NoContent) };
        self.dir_mut().remove_role_assignment(&removed);
        let role_name = self.load_role(&removed.role_definition_id).map(|r| r.name).unwrap_or_default();
        let reason = match decision {
            Decision::Allowed { assignment, role } => format!("allowed by role assignment {assignment} ({role})"),
            Decision::Denied => String::new(),
        };
        self.audit(
            caller,
            DELETE,
            &wid_core::scope::ids::role_assignment(&removed.scope, &removed.id.to_string()),
            true,
            &format!("{reason}; revoked '{role_name}' from {}", removed.principal_id),
        );
        Ok(Reply::Ok(shapes::role_assignment(&removed)))
    }

    /// `GET {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=…]`.
    pub fn list_role_assignments(&self, caller: &Actor, scope: &str, filter: Option<&str>) -> Result<Reply> {
        let (scope, _) = self.authorization_scope(scope)?;
        let f = parse_assignment_filter(filter)?;
        self.authorize_at(caller, READ, &scope)?;
        // Listing is a management read; the hot paths use the directory's per-principal index.
        let mut items: Vec<RoleAssignment> = self
            .store
            .role_assignments(f.principal)?
            .into_iter()
            .filter(|ra| {
                let Ok(s) = Scope::parse(&ra.scope) else { return false };
                scope.is_within(&s) || (!f.at_scope && s.is_within(&scope))
            })
            .collect();
        items.sort_by(|a, b| {
            (a.scope.to_ascii_lowercase(), a.created, a.id).cmp(&(b.scope.to_ascii_lowercase(), b.created, b.id))
        });
        let value: Vec<Value> = items.iter().map(shapes::role_assignment).collect();
        Ok(Reply::Ok(json!({ "value": value })))
    }
}

fn role_missing(id: &str) -> ArmError {
    ArmError::UnknownRoleDefinition(format!(
        "The specified role definition with ID '{id}' does not exist. List the roles with `wid role definition list`."
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_filters() {
        let p = "5f8b0c2e-2f6a-4c1b-9a8e-0c3d7f1e2a4b";
        assert_eq!(parse_assignment_filter(None).unwrap(), AssignmentFilter::default());
        assert_eq!(
            parse_assignment_filter(Some("atScope()")).unwrap(),
            AssignmentFilter { at_scope: true, principal: None }
        );
        let f = parse_assignment_filter(Some(&format!("atScope() and assignedTo('{p}')"))).unwrap();
        assert!(f.at_scope && f.principal == Uuid::parse_str(p).ok());
        let f = parse_assignment_filter(Some(&format!("principalId eq '{p}'"))).unwrap();
        assert!(!f.at_scope && f.principal == Uuid::parse_str(p).ok());
        for bad in ["atScope", "roleDefinitionId eq 'x'", "principalId eq 'not-a-guid'", "assignedTo()"] {
            assert!(parse_assignment_filter(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn definition_filters() {
        let f = parse_definition_filter(Some("roleName eq 'Key Vault Secrets User'")).unwrap();
        assert_eq!(f.role_name.as_deref(), Some("Key Vault Secrets User"));
        let f = parse_definition_filter(Some("type eq 'BuiltInRole' and roleName eq 'Reader'")).unwrap();
        assert_eq!((f.built_in, f.role_name.as_deref()), (Some(true), Some("Reader")));
        assert!(parse_definition_filter(Some("description eq 'x'")).is_err());
    }

    #[test]
    fn guids_are_arm_spelled() {
        assert!(parse_guid("8e3af657-a8ff-443c-a75c-2fe8c4bcb635").is_some());
        assert!(parse_guid("8e3af657a8ff443ca75c2fe8c4bcb635").is_none());
        assert!(parse_guid("{8e3af657-a8ff-443c-a75c-2fe8c4bcb635}").is_none());
        assert!(parse_guid("not-a-guid").is_none());
    }
}
