//! Resource groups (`Microsoft.Resources/resourceGroups`).

use wid_core::model::ResourceGroup;
use wid_core::scope::ids;
use wid_store::Removed;

use crate::{Actor, ArmError, Management, Reply, Result, TrackedBody, names, parse_body, shapes};

impl Management {
    /// `PUT /subscriptions/{sub}/resourcegroups/{rg}`.
    pub fn put_group(&self, caller: &Actor, sub: &str, rg: &str, body: &[u8]) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        names::resource_group(rg)?;
        let scope = ids::resource_group(&sub, rg);
        self.authorize(caller, "Microsoft.Resources/subscriptions/resourceGroups/write", &scope)?;
        let body: TrackedBody = parse_body(body)?;
        let location = body.location.ok_or_else(|| {
            ArmError::LocationRequired("The location property is required for this definition.".into())
        })?;
        names::location(&location)?;
        let existing = self.store.resource_group(self.cfg.subscription_id, rg)?;
        let group = ResourceGroup {
            subscription: self.cfg.subscription_id,
            // The name keeps the casing it was created with.
            name: existing.as_ref().map_or_else(|| rg.to_string(), |g| g.name.clone()),
            location,
            tags: body.tags.unwrap_or_default(),
            created: existing.as_ref().map_or_else(|| self.clock.now(), |g| g.created),
        };
        let written = self.store.put_resource_group(&group)?;
        Ok(Reply::written(written, shapes::group(&group)))
    }

    /// `GET /subscriptions/{sub}/resourcegroups/{rg}`.
    pub fn get_group(&self, caller: &Actor, sub: &str, rg: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(
            caller,
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            &ids::resource_group(&sub, rg),
        )?;
        Ok(Reply::Ok(shapes::group(&self.group(&sub, rg)?)))
    }

    /// `GET /subscriptions/{sub}/resourcegroups`: the groups the caller can read.
    pub fn list_groups(&self, caller: &Actor, sub: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let items = self.store.resource_groups(self.cfg.subscription_id)?;
        let id = |g: &ResourceGroup| ids::resource_group(&sub, &g.name);
        Ok(self.visible(caller, "Microsoft.Resources/subscriptions/resourceGroups/read", &items, id, shapes::group))
    }

    /// `DELETE /subscriptions/{sub}/resourcegroups/{rg}`: the group and everything in it.
    pub fn delete_group(&self, caller: &Actor, sub: &str, rg: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(
            caller,
            "Microsoft.Resources/subscriptions/resourceGroups/delete",
            &ids::resource_group(&sub, rg),
        )?;
        let removed = self.store.delete_resource_group(self.cfg.subscription_id, rg)?;
        let Some(removed) = removed else { return Err(ArmError::ResourceGroupNotFound(rg.to_string())) };
        self.forget_removed(caller, &removed);
        Ok(Reply::Done)
    }

    /// Drops from memory (and audits) what deleting a group removed from the store.
    pub(crate) fn forget_removed(&self, caller: &Actor, removed: &Removed) {
        for c in &removed.clusters {
            self.drop_cluster_keys(c);
        }
        let mut dir = self.dir_mut();
        for i in &removed.identities {
            dir.remove_identity(&i.key());
        }
        for c in &removed.clusters {
            dir.remove_cluster(&c.key());
        }
        for ra in &removed.role_assignments {
            dir.remove_role_assignment(ra);
        }
        drop(dir);
        for v in &removed.vaults {
            self.audit_write(caller, "vault.deleted", &v.arm_id(), "resource group deleted");
        }
    }
}
