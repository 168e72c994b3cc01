//! `Microsoft.KeyVault/vaults` (management side): create/update, read, list, soft delete, the
//! deleted-vault listing and purge, and ARM's generic `…/resources` listing `az keyvault list` uses.
//!
//! Vault names are DNS labels (`{name}.vault.HOST`), so they are unique on the server, and a
//! soft-deleted vault keeps its name reserved until it is purged or recovered. Each vault gets its
//! own data key, sealed with the master key, when it is created; updates keep it.
//!
//! wid serves what the data plane enforces and refuses the rest with a reason, rather than
//! storing settings it would not honour: access is always decided by Azure RBAC (no access
//! policies), soft delete is always on, there is no network isolation, and no VM or template
//! deployment can read secrets.

use crate::Actor;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wid_core::audit::{self, AuditEvent};
use wid_core::model::{Tags, Vault};
use wid_core::scope::ids;
use wid_store::Written;

use crate::shapes::{self, VAULT_TYPE};
use crate::{ArmError, Management, Reply, Result, names, parse_body};

/// Retention of soft-deleted vaults and secrets when none is given, in days (Azure's default).
pub const DEFAULT_RETENTION_DAYS: i64 = 90;
const MIN_RETENTION_DAYS: i64 = 7;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Sku {
    family: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct NetworkAcls {
    default_action: Option<String>,
    ip_rules: Option<Vec<Value>>,
    virtual_network_rules: Option<Vec<Value>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct VaultProperties {
    tenant_id: Option<Uuid>,
    sku: Option<Sku>,
    access_policies: Option<Vec<Value>>,
    enabled_for_deployment: Option<bool>,
    enabled_for_disk_encryption: Option<bool>,
    enabled_for_template_deployment: Option<bool>,
    enable_soft_delete: Option<bool>,
    soft_delete_retention_in_days: Option<i64>,
    enable_rbac_authorization: Option<bool>,
    create_mode: Option<String>,
    enable_purge_protection: Option<bool>,
    network_acls: Option<NetworkAcls>,
    public_network_access: Option<String>,
}

#[derive(Deserialize)]
struct VaultBody {
    location: Option<String>,
    tags: Option<Tags>,
    properties: Option<VaultProperties>,
}

/// Locations compare without case and spaces (`East US` = `eastus`), as ARM normalises them.
fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
    norm(a) == norm(b)
}

fn deleted_vault_not_found(name: &str, location: &str) -> ArmError {
    ArmError::DeletedVaultNotFound(format!(
        "The deleted vault '{name}' was not found in location '{location}'. List soft-deleted vaults with `wid keyvault list-deleted`."
    ))
}

impl Management {
    fn vault_scope(&self, sub: &str, rg: &str, name: &str) -> String {
        format!("{}/providers/Microsoft.KeyVault/vaults/{name}", ids::resource_group(sub, rg))
    }

    fn vault_not_found(&self, sub: &str, rg: &str, name: &str) -> ArmError {
        match self.group(sub, rg) {
            Err(e) => e,
            Ok(_) => ArmError::ResourceNotFound {
                resource_type: VAULT_TYPE,
                name: name.to_string(),
                resource_group: rg.to_string(),
            },
        }
    }

    /// The active vault `name` of group `rg`, or ARM's 404.
    fn load_vault(&self, sub: &str, rg: &str, name: &str) -> Result<Vault> {
        match self.store.vault(name)? {
            Some(v)
                if v.deleted.is_none()
                    && v.subscription == self.cfg.subscription_id
                    && v.resource_group.eq_ignore_ascii_case(rg) =>
            {
                Ok(v)
            }
            _ => Err(self.vault_not_found(sub, rg, name)),
        }
    }

    /// Serialises writes to one vault name across replicas.
    fn exclusive_vault(&self, name: &str) -> Result<wid_store::LockGuard> {
        self.exclusive_name(&format!("vault/{}", wid_core::model::name_key(name)))
    }

    /// `PUT|PATCH …/providers/Microsoft.KeyVault/vaults/{name}`: creates a vault (201) or updates
    /// one (200), answering with the final state (no long-running operation to poll).
    pub fn put_vault(&self, caller: &Actor, sub: &str, rg: &str, name: &str, body: &[u8]) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        names::vault(name)?;
        let scope = self.vault_scope(&sub, rg, name);
        self.authorize(caller, "Microsoft.KeyVault/vaults/write", &scope)?;
        let body: VaultBody = parse_body(body)?;
        let group = self.group(&sub, rg)?;
        let props = body.properties.unwrap_or_default();
        let _exclusive = self.exclusive_vault(name)?;
        let existing = self.store.vault(name)?;

        if props.create_mode.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("recover")) {
            return self.recover_vault(caller, &sub, rg, name, existing, body.tags);
        }
        if let Some(m) = props.create_mode.as_deref().filter(|m| !m.eq_ignore_ascii_case("default")) {
            return Err(ArmError::BadRequest(format!(
                "The createMode '{m}' is not supported; use 'default' or 'recover'."
            )));
        }
        let current = match existing {
            Some(v) if v.deleted.is_some() => {
                return Err(ArmError::ConflictError(format!(
                    "A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault. The vault '{}' was deleted and its name stays reserved until it is purged (automatically on {}); recover it with createMode 'recover' (`wid keyvault recover -n {}`) or purge it (`wid keyvault purge -n {}`).",
                    v.name,
                    shapes::time(v.scheduled_purge().unwrap_or_default()),
                    v.name,
                    v.name
                )));
            }
            Some(v) if v.subscription != self.cfg.subscription_id || !v.resource_group.eq_ignore_ascii_case(rg) => {
                return Err(ArmError::VaultAlreadyExists(format!(
                    "The vault name '{name}' is already in use. Vault names are unique on this server (each is a host name under '{}'), so choose another name.",
                    self.cfg.vault_dns_suffix
                )));
            }
            other => other,
        };
        check_unsupported(&props)?;
        if let Some(t) = props.tenant_id
            && t != self.cfg.tenant_id
        {
            return Err(ArmError::BadRequest(format!(
                "The tenant '{t}' is not this server's tenant; vaults authenticate callers of tenant '{}'.",
                self.cfg.tenant_id
            )));
        }
        let sku = match props.sku.as_ref().and_then(|s| s.name.as_deref()) {
            Some(n) if n.eq_ignore_ascii_case("standard") => "standard".to_string(),
            Some(n) if n.eq_ignore_ascii_case("premium") => "premium".to_string(),
            Some(n) => {
                return Err(ArmError::BadRequest(format!(
                    "The SKU name '{n}' is invalid; use 'standard' or 'premium'."
                )));
            }
            None => current.as_ref().map_or_else(|| "standard".to_string(), |v| v.sku.clone()),
        };
        if let Some(f) = props.sku.as_ref().and_then(|s| s.family.as_deref())
            && !f.eq_ignore_ascii_case("A")
        {
            return Err(ArmError::BadRequest(format!("The SKU family '{f}' is invalid; use 'A'.")));
        }
        let retention = match (props.soft_delete_retention_in_days, &current) {
            (Some(d), _) if !(MIN_RETENTION_DAYS..=DEFAULT_RETENTION_DAYS).contains(&d) => {
                return Err(ArmError::BadRequest(format!(
                    "The value {d} of the property \"softDeleteRetentionInDays\" is invalid: it must be between {MIN_RETENTION_DAYS} and {DEFAULT_RETENTION_DAYS} days."
                )));
            }
            (Some(d), Some(v)) if d != v.soft_delete_retention_days => {
                return Err(ArmError::BadRequest(format!(
                    "The property \"softDeleteRetentionInDays\" has been set already and it can't be modified: vault '{}' keeps deleted objects for {} days.",
                    v.name, v.soft_delete_retention_days
                )));
            }
            (Some(d), _) => d,
            (None, Some(v)) => v.soft_delete_retention_days,
            (None, None) => DEFAULT_RETENTION_DAYS,
        };
        let was_protected = current.as_ref().is_some_and(|v| v.enable_purge_protection);
        let purge_protection = match props.enable_purge_protection {
            Some(false) if was_protected => {
                return Err(ArmError::BadRequest("The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge protection for a vault is an irreversible action: the vault and its deleted secrets can only be purged by expiry of the retention period.".into()));
            }
            Some(p) => p,
            None => was_protected,
        };
        let location = body
            .location
            .unwrap_or_else(|| current.as_ref().map_or_else(|| group.location.clone(), |v| v.location.clone()));
        names::location(&location)?;
        if let Some(v) = &current
            && !same_location(&v.location, &location)
        {
            return Err(ArmError::InvalidResourceLocation(format!(
                "The resource '{}' already exists in location '{}' in resource group '{}'. A resource with the same name cannot be created in location '{location}'. Please select a new resource name.",
                v.name, v.location, v.resource_group
            )));
        }
        let now = self.clock.now();
        let vault = match current {
            Some(old) => Vault {
                location: old.location.clone(),
                tags: body.tags.unwrap_or(old.tags.clone()),
                sku,
                enable_purge_protection: purge_protection,
                updated: now,
                ..old
            },
            None => {
                let vault_id = Uuid::new_v4();
                let sealed_data_key = wid_crypto::data_key::new_sealed_data_key(&self.master, &vault_id)
                    .map_err(|e| ArmError::Internal(format!("sealing a new vault key: {e}")))?;
                Vault {
                    subscription: self.cfg.subscription_id,
                    resource_group: group.name.clone(),
                    name: name.to_string(),
                    location,
                    tags: body.tags.unwrap_or_default(),
                    vault_id,
                    tenant_id: self.cfg.tenant_id,
                    sku,
                    enable_rbac_authorization: true,
                    enable_purge_protection: purge_protection,
                    soft_delete_retention_days: retention,
                    public_network_access: "Enabled".into(),
                    sealed_data_key,
                    created: now,
                    updated: now,
                    deleted: None,
                }
            }
        };
        let written = self.store.put_vault(&vault).map_err(|e| match e {
            wid_store::StoreError::Conflict(_) => {
                ArmError::VaultAlreadyExists(format!("The vault name '{name}' is already in use. Choose another name."))
            }
            other => other.into(),
        })?;
        let event = if written == Written::Created { "vault.created" } else { "vault.updated" };
        self.audit_write(caller, event, &vault.arm_id(), "written");
        Ok(Reply::written(written, shapes::vault(&self.cfg, &vault, caller.azure_names)))
    }

    /// `createMode: recover`: makes the soft-deleted vault of this group active again with its
    /// secrets, keys and settings (only its tags can change).
    fn recover_vault(
        &self,
        caller: &Actor,
        sub: &str,
        rg: &str,
        name: &str,
        existing: Option<Vault>,
        tags: Option<Tags>,
    ) -> Result<Reply> {
        let vault = match existing {
            Some(v)
                if v.deleted.is_some()
                    && v.subscription == self.cfg.subscription_id
                    && v.resource_group.eq_ignore_ascii_case(rg) =>
            {
                v
            }
            Some(v) if v.deleted.is_none() && v.resource_group.eq_ignore_ascii_case(rg) => {
                // Recovering an active vault is a no-op, as in Azure.
                return Ok(Reply::Ok(shapes::vault(&self.cfg, &v, caller.azure_names)));
            }
            _ => {
                return Err(ArmError::DeletedVaultNotFound(format!(
                    "There is no deleted vault '{name}' in resource group '{rg}' of subscription '{sub}' to recover."
                )));
            }
        };
        let recovered =
            Vault { deleted: None, updated: self.clock.now(), tags: tags.unwrap_or(vault.tags.clone()), ..vault };
        self.store.put_vault(&recovered)?;
        self.audit_write(caller, "vault.recovered", &recovered.arm_id(), "recovered");
        Ok(Reply::Ok(shapes::vault(&self.cfg, &recovered, caller.azure_names)))
    }

    /// `GET …/vaults/{name}`.
    pub fn get_vault(&self, caller: &Actor, sub: &str, rg: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, "Microsoft.KeyVault/vaults/read", &self.vault_scope(&sub, rg, name))?;
        let v = self.load_vault(&sub, rg, name)?;
        Ok(Reply::Ok(shapes::vault(&self.cfg, &v, caller.azure_names)))
    }

    /// `GET …/vaults` of a group or the subscription: the active vaults the caller can read.
    pub fn list_vaults(&self, caller: &Actor, sub: &str, rg: Option<&str>) -> Result<Reply> {
        let shape = |v: &Vault| shapes::vault(&self.cfg, v, caller.azure_names);
        self.list_in(
            caller,
            sub,
            rg,
            "Microsoft.KeyVault/vaults/read",
            |st, id, rg| st.vaults(id, rg),
            Vault::arm_id,
            shape,
        )
    }

    /// `DELETE …/vaults/{name}`: a soft delete. The vault leaves GET and lists, its name stays
    /// reserved and it shows in `deletedVaults` until purged (by hand, or when its retention
    /// ends). 200, or 204 if there was no such vault.
    pub fn delete_vault(&self, caller: &Actor, sub: &str, rg: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, "Microsoft.KeyVault/vaults/delete", &self.vault_scope(&sub, rg, name))?;
        let _exclusive = self.exclusive_vault(name)?;
        let v = match self.load_vault(&sub, rg, name) {
            Ok(v) => v,
            Err(ArmError::ResourceNotFound { .. }) => return Ok(Reply::NoContent),
            Err(e) => return Err(e),
        };
        let now = self.clock.now();
        let deleted = Vault { deleted: Some(now), updated: now, ..v };
        self.store.put_vault(&deleted)?;
        self.audit_write(
            caller,
            "vault.deleted",
            &deleted.arm_id(),
            &format!("scheduled purge {}", deleted.scheduled_purge().unwrap_or_default()),
        );
        Ok(Reply::Done)
    }

    /// `GET /subscriptions/{sub}/providers/Microsoft.KeyVault/deletedVaults`.
    pub fn list_deleted_vaults(&self, caller: &Actor, sub: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, "Microsoft.KeyVault/deletedVaults/read", &ids::subscription(&sub))?;
        let value: Vec<Value> =
            self.store.deleted_vaults(self.cfg.subscription_id)?.iter().map(shapes::deleted_vault).collect();
        Ok(Reply::Ok(json!({ "value": value })))
    }

    fn load_deleted_vault(&self, location: &str, name: &str) -> Result<Vault> {
        match self.store.vault(name)? {
            Some(v)
                if v.deleted.is_some()
                    && v.subscription == self.cfg.subscription_id
                    && same_location(&v.location, location) =>
            {
                Ok(v)
            }
            _ => Err(deleted_vault_not_found(name, location)),
        }
    }

    /// `GET …/locations/{location}/deletedVaults/{name}`.
    pub fn get_deleted_vault(&self, caller: &Actor, sub: &str, location: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let id = shapes::deleted_vault_id(&sub, location, name);
        self.authorize(caller, "Microsoft.KeyVault/deletedVaults/read", &id)?;
        Ok(Reply::Ok(shapes::deleted_vault(&self.load_deleted_vault(location, name)?)))
    }

    /// `POST …/locations/{location}/deletedVaults/{name}/purge`: removes a soft-deleted vault and
    /// everything in it for good. Refused while purge protection holds it (until its scheduled
    /// purge date).
    pub fn purge_deleted_vault(&self, caller: &Actor, sub: &str, location: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let id = shapes::deleted_vault_id(&sub, location, name);
        let action = "Microsoft.KeyVault/locations/deletedVaults/purge/action";
        self.authorize(caller, action, &id)?;
        let _exclusive = self.exclusive_vault(name)?;
        let v = self.load_deleted_vault(location, name)?;
        let now = self.clock.now();
        let scheduled = v.scheduled_purge().unwrap_or(now);
        if v.enable_purge_protection && now < scheduled {
            let reason = "purge protection is enabled";
            audit::record(&AuditEvent {
                request_id: &caller.request_id,
                principal: &caller.principal_id.to_string(),
                action,
                resource: &id,
                allowed: false,
                reason,
            });
            return Err(ArmError::PurgeProtected(format!(
                "Operation 'DeletedVaultPurge' is not allowed: purge protection is enabled for vault '{}', so it can only be purged when its {}-day retention ends; it will be purged automatically on {}.",
                v.name,
                v.soft_delete_retention_days,
                shapes::time(scheduled)
            )));
        }
        self.store.purge_vault(&v.name)?;
        self.audit_write(caller, "vault.purged", &v.arm_id(), "purged");
        self.drop_role_assignments_under(caller, &v.arm_id())?;
        Ok(Reply::Done)
    }

    /// Removes the role assignments at or below a resource that is gone for good, so that a new
    /// resource with the same id (e.g. a vault re-created under a purged name) starts with none.
    fn drop_role_assignments_under(&self, caller: &Actor, id: &str) -> Result<()> {
        let Ok(scope) = wid_core::Scope::parse(id) else { return Ok(()) };
        let stale: Vec<_> = self
            .store
            .role_assignments(None)?
            .into_iter()
            .filter(|ra| wid_core::Scope::parse(&ra.scope).is_ok_and(|s| s.is_within(&scope)))
            .collect();
        for ra in stale {
            if let Some(removed) = self.store.delete_role_assignment(ra.id)? {
                self.dir_mut().remove_role_assignment(&removed);
                self.audit(
                    caller,
                    "Microsoft.Authorization/roleAssignments/delete",
                    &ra.scope,
                    true,
                    "its resource was purged",
                );
            }
        }
        Ok(())
    }

    /// `GET …/managedHSMs` and `…/deletedManagedHSMs`: always empty (wid serves vaults only).
    pub fn list_managed_hsms(&self, sub: &str, rg: Option<&str>) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        if let Some(rg) = rg {
            self.group(&sub, rg)?;
        }
        Ok(Reply::Ok(json!({ "value": [] })))
    }

    /// `GET /subscriptions/{sub}[/resourceGroups/{rg}]/resources[?$filter=…]`: ARM's generic
    /// listing (what `az keyvault list` and `az keyvault show` without `-g` use). `$filter`
    /// accepts `resourceType eq '…'` and `name eq '…'` joined by `and`; `$top` limits.
    pub fn list_resources(
        &self,
        caller: &Actor,
        sub: &str,
        rg: Option<&str>,
        filter: Option<&str>,
        top: Option<&str>,
    ) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        if let Some(rg) = rg {
            self.group(&sub, rg)?;
        }
        let (type_filter, name_filter) = resource_filter(filter)?;
        let wants = |t: &str| type_filter.as_deref().is_none_or(|f| f.eq_ignore_ascii_case(t));
        let named = |n: &str| name_filter.as_deref().is_none_or(|f| f.eq_ignore_ascii_case(n));
        let mut value = Vec::new();
        if wants(VAULT_TYPE) {
            for v in self.store.vaults(self.cfg.subscription_id, rg)?.iter().filter(|v| named(&v.name)) {
                if self.allowed(caller, "Microsoft.KeyVault/vaults/read", &v.arm_id()) {
                    value.push(shapes::generic_resource(&v.arm_id(), &v.name, VAULT_TYPE, &v.location, &v.tags));
                }
            }
        }
        if wants(crate::IDENTITY_TYPE) {
            for i in self.store.identities(self.cfg.subscription_id, rg)?.iter().filter(|i| named(&i.name)) {
                if self.allowed(caller, "Microsoft.ManagedIdentity/userAssignedIdentities/read", &i.arm_id()) {
                    let r = shapes::generic_resource(&i.arm_id(), &i.name, crate::IDENTITY_TYPE, &i.location, &i.tags);
                    value.push(r);
                }
            }
        }
        if wants(crate::CLUSTER_TYPE) {
            for c in self.store.clusters(self.cfg.subscription_id, rg)?.iter().filter(|c| named(&c.name)) {
                if self.allowed(caller, "Microsoft.ContainerService/managedClusters/read", &c.arm_id()) {
                    value.push(shapes::generic_resource(
                        &c.arm_id(),
                        &c.name,
                        crate::CLUSTER_TYPE,
                        &c.location,
                        &c.tags,
                    ));
                }
            }
        }
        if let Some(top) = top {
            let n: usize = top.parse().map_err(|_| {
                ArmError::InvalidQueryParameterValue(format!("The value '{top}' of $top is not a number."))
            })?;
            value.truncate(n);
        }
        Ok(Reply::Ok(json!({ "value": value })))
    }
}

/// Refuses settings wid would not enforce, each with the reason.
fn check_unsupported(p: &VaultProperties) -> Result<()> {
    if p.enable_rbac_authorization == Some(false) || p.access_policies.as_ref().is_some_and(|a| !a.is_empty()) {
        return Err(ArmError::BadRequest("wid authorizes Key Vault data-plane access with Azure RBAC only; access policies are not supported. Create the vault with \"enableRbacAuthorization\": true (the default; `wid keyvault create` without --enable-rbac-authorization false) and grant roles such as 'Key Vault Secrets User' with `wid role assignment create`.".into()));
    }
    if p.enable_soft_delete == Some(false) {
        return Err(ArmError::BadRequest(
            "The property \"enableSoftDelete\" cannot be set to false: soft delete is always on for key vaults.".into(),
        ));
    }
    let flags = [
        ("enabledForDeployment", p.enabled_for_deployment),
        ("enabledForDiskEncryption", p.enabled_for_disk_encryption),
        ("enabledForTemplateDeployment", p.enabled_for_template_deployment),
    ];
    if let Some((flag, _)) = flags.iter().find(|(_, v)| *v == Some(true)) {
        return Err(ArmError::BadRequest(format!(
            "The property \"{flag}\" cannot be true on wid: there are no virtual machines, disk encryption or template deployments that could read secrets. Leave it false."
        )));
    }
    let private_network = p.public_network_access.as_deref().is_some_and(|a| !a.eq_ignore_ascii_case("Enabled"))
        || p.network_acls.as_ref().is_some_and(|n| {
            n.default_action.as_deref().is_some_and(|a| !a.eq_ignore_ascii_case("Allow"))
                || n.ip_rules.as_ref().is_some_and(|r| !r.is_empty())
                || n.virtual_network_rules.as_ref().is_some_and(|r| !r.is_empty())
        });
    if private_network {
        return Err(ArmError::BadRequest("wid does not restrict vault access by network (publicNetworkAccess 'Disabled', networkAcls rules or defaultAction 'Deny'); every request is authorized by its token and RBAC. Restrict access with network policy in front of wid, and leave publicNetworkAccess 'Enabled' and networkAcls defaultAction 'Allow'.".into()));
    }
    Ok(())
}

/// Parses the `$filter` of `…/resources`: `resourceType eq '…'` and `name eq '…'` joined by `and`.
fn resource_filter(filter: Option<&str>) -> Result<(Option<String>, Option<String>)> {
    let mut rtype = None;
    let mut name = None;
    let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) else { return Ok((None, None)) };
    for term in crate::filter::split_and(filter) {
        match crate::filter::eq_term(term) {
            Some((field, value)) if field.eq_ignore_ascii_case("resourceType") => rtype = Some(value),
            Some((field, value)) if field.eq_ignore_ascii_case("name") => name = Some(value),
            _ => {
                return Err(ArmError::InvalidFilterInQueryString(format!(
                    "The $filter '{filter}' is not supported: use resourceType eq '…' and/or name eq '…' joined by 'and'."
                )));
            }
        }
    }
    Ok((rtype, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_compare_like_arm() {
        assert!(same_location("East US", "eastus"));
        assert!(!same_location("westus", "eastus"));
    }

    #[test]
    fn resource_filters() {
        let (t, n) = resource_filter(Some("resourceType eq 'Microsoft.KeyVault/vaults' and name eq 'kv1'")).unwrap();
        assert_eq!((t.as_deref(), n.as_deref()), (Some("Microsoft.KeyVault/vaults"), Some("kv1")));
        assert_eq!(resource_filter(None).unwrap(), (None, None));
        assert!(resource_filter(Some("location eq 'x'")).is_err());
        assert!(resource_filter(Some("resourceType eq 'x' or name eq 'y'")).is_err());
    }
}
