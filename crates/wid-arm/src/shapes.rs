//! JSON shapes of ARM resources, as Azure returns them on the wire.

use serde_json::{Map, Value, json};
use wid_core::fic::FederatedCredential;
use wid_core::model::{Cluster, ClusterIssuer, Identity, ResourceGroup, RoleAssignment, Tags, Vault};
use wid_core::rbac::RoleDefinition;
use wid_core::scope::ids;

use crate::{ArmConfig, CLUSTER_TYPE, FIC_TYPE, IDENTITY_TYPE, RG_TYPE};

/// `Microsoft.KeyVault/vaults`
pub const VAULT_TYPE: &str = "Microsoft.KeyVault/vaults";
/// `Microsoft.KeyVault/deletedVaults`
pub const DELETED_VAULT_TYPE: &str = "Microsoft.KeyVault/deletedVaults";
/// `Microsoft.Authorization/roleDefinitions`
pub const ROLE_DEFINITION_TYPE: &str = "Microsoft.Authorization/roleDefinitions";
/// `Microsoft.Authorization/roleAssignments`
pub const ROLE_ASSIGNMENT_TYPE: &str = "Microsoft.Authorization/roleAssignments";

/// When the built-in role definitions are said to be created and updated (they are fixed).
const BUILTIN_ROLES_DATE: &str = "2015-02-02T21:55:09.8806423Z";

/// RFC 3339 UTC time of a Unix timestamp, as ARM prints times.
pub fn time(unix: i64) -> String {
    wid_core::clock::rfc3339(unix)
}

fn tags(t: &Tags) -> Value {
    json!(t)
}

pub fn subscription(cfg: &ArmConfig) -> Value {
    json!({
        "id": ids::subscription(&cfg.subscription_id.to_string()),
        "subscriptionId": cfg.subscription_id,
        "tenantId": cfg.tenant_id,
        "displayName": cfg.subscription_name,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "wid", "spendingLimit": "Off"},
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
    })
}

pub fn group(g: &ResourceGroup) -> Value {
    let mut v = json!({
        "id": ids::resource_group(&g.subscription.to_string(), &g.name),
        "name": g.name,
        "type": RG_TYPE,
        "location": g.location,
        "properties": {"provisioningState": "Succeeded"},
    });
    if !g.tags.is_empty()
        && let Some(o) = v.as_object_mut()
    {
        o.insert("tags".into(), tags(&g.tags));
    }
    v
}

pub fn identity(i: &Identity) -> Value {
    json!({
        "id": i.arm_id(),
        "name": i.name,
        "type": IDENTITY_TYPE,
        "location": i.location,
        "tags": tags(&i.tags),
        "properties": {
            "tenantId": i.tenant_id,
            "principalId": i.principal_id,
            "clientId": i.client_id,
            "isolationScope": "None",
        },
    })
}

pub fn credential(parent: &Identity, c: &FederatedCredential) -> Value {
    let mut props = json!({"issuer": c.issuer, "audiences": c.audiences});
    if let Some(o) = props.as_object_mut() {
        if let Some(s) = &c.subject {
            o.insert("subject".into(), json!(s));
        }
        if let Some(e) = &c.claims_matching_expression {
            o.insert("claimsMatchingExpression".into(), json!(e));
        }
        if let Some(d) = &c.description {
            o.insert("description".into(), json!(d));
        }
    }
    json!({
        "id": ids::federated_credential(&parent.subscription.to_string(), &parent.resource_group, &parent.name, &c.name),
        "name": c.name,
        "type": FIC_TYPE,
        "properties": props,
    })
}

pub fn cluster(c: &Cluster) -> Value {
    let (hosted, jwks_uploaded) = match &c.issuer {
        ClusterIssuer::Hosted { .. } => (true, false),
        ClusterIssuer::External { jwks, .. } => (false, jwks.is_some()),
    };
    // What the last create or update sent (agent pools, identity, …), then what wid computes.
    let mut kept: Map<String, Value> =
        c.extras.arm.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    let mut props = match kept.remove("properties") {
        Some(Value::Object(p)) => p,
        _ => Map::new(),
    };
    let mut security = match props.remove("securityProfile") {
        Some(Value::Object(s)) => s,
        _ => Map::new(),
    };
    security.insert("workloadIdentity".into(), json!({"enabled": c.workload_identity}));
    props.extend([
        ("provisioningState".into(), json!("Succeeded")),
        ("powerState".into(), json!({"code": "Running"})),
        ("clusterId".into(), json!(c.cluster_id)),
        ("oidcIssuerProfile".into(), json!({"enabled": true, "issuerURL": c.issuer.issuer_url()})),
        ("securityProfile".into(), Value::Object(security)),
        ("issuerHosting".into(), json!({"hostedByWid": hosted, "jwksUploaded": jwks_uploaded})),
    ]);
    if let Some(url) = &c.extras.api_server {
        props.insert("fqdn".into(), json!(host_of(url)));
        props.insert("apiServer".into(), json!({"url": url}));
    }
    let mut out = json!({
        "id": c.arm_id(),
        "name": c.name,
        "type": CLUSTER_TYPE,
        "location": c.location,
        "tags": tags(&c.tags),
        "properties": props,
    });
    if let Some(o) = out.as_object_mut() {
        o.extend(kept);
    }
    out
}

/// The host of an `https://HOST[:PORT][/…]` URL (an IPv6 literal keeps its brackets).
fn host_of(url: &str) -> &str {
    let authority = url.trim_start_matches("https://").split(['/', '?', '#']).next().unwrap_or_default();
    match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or(authority, |(h, _)| &authority[..h.len() + 2]),
        None => authority.split(':').next().unwrap_or_default(),
    }
}

/// Azure's Key Vault DNS suffix, for replies to requests under Azure's names.
const AZURE_VAULT_DNS_SUFFIX: &str = "vault.azure.net";

/// The data-plane URL of a vault: `https://{name}.{suffix}/` (lower-case: it is a host name).
pub fn vault_uri(cfg: &ArmConfig, name: &str, azure_names: bool) -> String {
    let suffix = if azure_names { AZURE_VAULT_DNS_SUFFIX } else { &cfg.vault_dns_suffix };
    format!("https://{}.{suffix}/", name.to_ascii_lowercase())
}

/// A vault as `Microsoft.KeyVault/vaults` returns it (2023-07-01 and later): soft delete always
/// on, RBAC authorization, `enablePurgeProtection` only when on (Azure omits it otherwise).
pub fn vault(cfg: &ArmConfig, v: &Vault, azure_names: bool) -> Value {
    let mut props = json!({
        "sku": {"family": "A", "name": v.sku},
        "tenantId": v.tenant_id,
        "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow", "ipRules": [], "virtualNetworkRules": []},
        "accessPolicies": [],
        "enabledForDeployment": false,
        "enabledForDiskEncryption": false,
        "enabledForTemplateDeployment": false,
        "enableSoftDelete": true,
        "softDeleteRetentionInDays": v.soft_delete_retention_days,
        "enableRbacAuthorization": v.enable_rbac_authorization,
        "vaultUri": vault_uri(cfg, &v.name, azure_names),
        "provisioningState": "Succeeded",
        "publicNetworkAccess": v.public_network_access,
    });
    if v.enable_purge_protection
        && let Some(o) = props.as_object_mut()
    {
        o.insert("enablePurgeProtection".into(), json!(true));
    }
    json!({
        "id": v.arm_id(),
        "name": v.name,
        "type": VAULT_TYPE,
        "location": v.location,
        "tags": tags(&v.tags),
        "systemData": {"createdAt": time(v.created), "lastModifiedAt": time(v.updated)},
        "properties": props,
    })
}

/// The id of a soft-deleted vault.
pub fn deleted_vault_id(sub: &str, location: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/providers/Microsoft.KeyVault/locations/{location}/deletedVaults/{name}")
}

/// A soft-deleted vault (`Microsoft.KeyVault/deletedVaults`).
pub fn deleted_vault(v: &Vault) -> Value {
    let deleted = v.deleted.unwrap_or(v.updated);
    json!({
        "id": deleted_vault_id(&v.subscription.to_string(), &v.location, &v.name),
        "name": v.name,
        "type": DELETED_VAULT_TYPE,
        "properties": {
            "vaultId": v.arm_id(),
            "location": v.location,
            "deletionDate": time(deleted),
            "scheduledPurgeDate": time(v.scheduled_purge().unwrap_or(deleted)),
            "tags": tags(&v.tags),
            "purgeProtectionEnabled": v.enable_purge_protection,
        },
    })
}

/// An entry of `GET …/resources` (ARM's generic `GenericResource` listing).
pub fn generic_resource(id: &str, name: &str, resource_type: &str, location: &str, t: &Tags) -> Value {
    json!({"id": id, "name": name, "type": resource_type, "location": location, "tags": tags(t)})
}

/// The id of a role definition: subscription-prefixed when read at a subscription scope or
/// below, `/providers/…` at `/` (as ARM returns built-ins).
pub fn role_definition_id(sub: Option<&str>, role: &uuid::Uuid) -> String {
    ids::role_definition(sub, &role.to_string())
}

/// A role definition (`Microsoft.Authorization/roleDefinitions`).
pub fn role_definition(sub: Option<&str>, r: &RoleDefinition) -> Value {
    let permissions: Vec<Value> = r
        .permissions
        .iter()
        .map(|p| {
            json!({
                "actions": p.actions,
                "notActions": p.not_actions,
                "dataActions": p.data_actions,
                "notDataActions": p.not_data_actions,
            })
        })
        .collect();
    json!({
        "id": role_definition_id(sub, &r.id),
        "type": ROLE_DEFINITION_TYPE,
        "name": r.id,
        "properties": {
            "roleName": r.name,
            "type": if r.built_in { "BuiltInRole" } else { "CustomRole" },
            "description": r.description,
            "assignableScopes": r.assignable_scopes,
            "permissions": permissions,
            "createdOn": BUILTIN_ROLES_DATE,
            "updatedOn": BUILTIN_ROLES_DATE,
            "createdBy": null,
            "updatedBy": null,
        },
    })
}

/// A role assignment (`Microsoft.Authorization/roleAssignments`, api-version 2022-04-01).
pub fn role_assignment(ra: &RoleAssignment) -> Value {
    let scope = wid_core::Scope::parse(&ra.scope).ok();
    let sub = scope.as_ref().and_then(|s| s.subscription().map(str::to_string));
    let by = ra.created_by.map(|u| u.to_string());
    json!({
        "properties": {
            "roleDefinitionId": role_definition_id(sub.as_deref(), &ra.role_definition_id),
            "principalId": ra.principal_id,
            "principalType": ra.principal_type.as_str(),
            "scope": ra.scope,
            "condition": null,
            "conditionVersion": null,
            "createdOn": time(ra.created),
            "updatedOn": time(ra.updated),
            "createdBy": by,
            "updatedBy": by,
            "delegatedManagedIdentityResourceId": null,
            "description": ra.description,
        },
        "id": ids::role_assignment(&ra.scope, &ra.id.to_string()),
        "type": ROLE_ASSIGNMENT_TYPE,
        "name": ra.id,
    })
}
