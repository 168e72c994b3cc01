//! The data-plane operations. Each one: resolve the vault from the host (throttle), authorize the
//! caller's data action with RBAC at the vault or the secret, validate, act on the store, and shape
//! the reply. Every authorization decision goes to the audit trail; values never do.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use uuid::Uuid;
use wid_core::Caller;
use wid_core::Clock;
use wid_core::audit::{self, AuditEvent};
use wid_core::directory::Directory;
use wid_core::model::{SecretVersion, Vault, name_key};
use wid_core::rbac::{Action, Decision};
use wid_core::scope::Scope;
use wid_crypto::MasterKey;
use wid_store::{Store, StoreError};
use zeroize::Zeroizing;

use crate::backup::{Backup, BackupVersion};
use crate::error::{RbacDenial, VaultError};
use crate::request::{
    RestoreParams, SetParams, UpdateParams, VaultHost, check_name, decode_skiptoken, encode_skiptoken, page_size,
    parse_version,
};
use crate::shapes::{BackupResult, DeletedSecretBundle, DeletedSecretItem, ListPage, SecretBundle, SecretItem, Urls};
use crate::throttle::Throttle;
use wid_crypto::data_key as keys;

/// The RBAC data actions of the secrets data plane.
pub mod actions {
    pub const GET_SECRET: &str = "Microsoft.KeyVault/vaults/secrets/getSecret/action";
    pub const READ_METADATA: &str = "Microsoft.KeyVault/vaults/secrets/readMetadata/action";
    pub const SET_SECRET: &str = "Microsoft.KeyVault/vaults/secrets/setSecret/action";
    pub const UPDATE: &str = "Microsoft.KeyVault/vaults/secrets/update/action";
    pub const DELETE: &str = "Microsoft.KeyVault/vaults/secrets/delete";
    pub const RECOVER: &str = "Microsoft.KeyVault/vaults/secrets/recover/action";
    pub const BACKUP: &str = "Microsoft.KeyVault/vaults/secrets/backup/action";
    pub const RESTORE: &str = "Microsoft.KeyVault/vaults/secrets/restore/action";
    pub const PURGE: &str = "Microsoft.KeyVault/vaults/secrets/purge/action";
}

/// Settings of the data plane.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// The tenant (binds backups).
    pub tenant_id: Uuid,
    /// `vault.HOST[:PORT]`, host[:port] exactly as in the public URLs (no port when it is 443).
    pub dns_suffix: String,
    /// The Key Vault resource (token audience and challenge `resource`): `https://vault.HOST[:PORT]`.
    pub resource: String,
    /// Requests per 10 s per vault; `None` = unlimited.
    pub throttle_per_10s: Option<u32>,
    /// Also serve vaults as `{vault}.vault.azure.net`, for Azure's resource `https://vault.azure.net`.
    pub azure_hostnames: bool,
}

/// Azure's Key Vault DNS suffix and resource, answered with `azure_hostnames`.
pub const AZURE_DNS_SUFFIX: &str = "vault.azure.net";
pub const AZURE_RESOURCE: &str = "https://vault.azure.net";

/// Who is asking, through which host, under which request id and api-version.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub host: &'a VaultHost,
    pub caller: &'a Caller,
    /// The `x-ms-request-id` of the response (goes to the audit trail).
    pub request_id: &'a str,
    /// The request's api-version (validated by the caller; echoed in `nextLink`s).
    pub api_version: &'a str,
}

/// Raw paging parameters of a listing (`maxresults`, `$skiptoken`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Paging<'a> {
    pub maxresults: Option<&'a str>,
    pub skiptoken: Option<&'a str>,
}

/// The Key Vault secrets data plane.
pub struct VaultService {
    cfg: VaultConfig,
    store: Arc<dyn Store>,
    master: Arc<MasterKey>,
    directory: Arc<RwLock<Directory>>,
    clock: Arc<dyn Clock>,
    /// Unsealed data keys by vault id (a vault's key never changes).
    data_keys: RwLock<HashMap<Uuid, Arc<MasterKey>>>,
    throttle: Option<Throttle>,
}

impl VaultService {
    /// Builds the service.
    pub fn new(
        cfg: VaultConfig,
        store: Arc<dyn Store>,
        master: Arc<MasterKey>,
        directory: Arc<RwLock<Directory>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let throttle = cfg.throttle_per_10s.map(Throttle::new);
        VaultService { cfg, store, master, directory, clock, data_keys: RwLock::new(HashMap::new()), throttle }
    }

    /// The configuration.
    pub fn config(&self) -> &VaultConfig {
        &self.cfg
    }

    /// The vault a `Host` (or `:authority`) names, if it is `{vault}.{dns suffix}`.
    pub fn vault_host(&self, authority: &str) -> Option<VaultHost> {
        VaultHost::parse(authority, &self.cfg.dns_suffix).or_else(|| {
            let azure = VaultHost::parse(authority, AZURE_DNS_SUFFIX).filter(|_| self.cfg.azure_hostnames)?;
            Some(VaultHost { azure: true, ..azure })
        })
    }

    /// The Key Vault resource of a host (`VaultHost::azure`): the audience its tokens must carry and
    /// its challenge names.
    pub fn resource(&self, azure: bool) -> &str {
        if azure { AZURE_RESOURCE } else { &self.cfg.resource }
    }

    /// Purges soft-deleted secrets and vaults whose retention has passed, and drops the role
    /// assignments of purged vaults from the in-memory index too; returns how many secrets and vaults
    /// went.
    pub fn purge_expired(&self) -> Result<(usize, usize), VaultError> {
        let purged = self.store.purge_expired(self.clock.now())?;
        if !purged.role_assignments.is_empty() {
            let mut dir = self.directory.write().unwrap_or_else(|p| p.into_inner());
            for ra in &purged.role_assignments {
                dir.remove_role_assignment(ra);
            }
        }
        Ok((purged.secrets, purged.vaults.len()))
    }

    // ---- operations -----------------------------------------------------------------------------

    /// `PUT /secrets/{name}`: adds a version.
    pub fn set_secret(&self, ctx: &Ctx<'_>, name: &str, body: &[u8]) -> Result<SecretBundle, VaultError> {
        let vault = self.authorize(ctx, actions::SET_SECRET, Some(name))?;
        let (value, params) = SetParams::parse(body)?;
        let vk = name_key(&vault.name);
        // The first version fixes the name's casing.
        let stored_name = self.store.secret_version(&vk, name, None)?.map_or_else(|| name.to_string(), |v| v.name);
        let version = Uuid::new_v4().simple().to_string();
        let key = self.data_key(&vault)?;
        let sealed = key.seal(value.0.as_bytes(), &keys::value_aad(&vault.vault_id, &name_key(name), &version))?;
        let attrs = params.attributes.unwrap_or_default();
        let now = self.clock.now();
        let sv = SecretVersion {
            vault: vk.clone(),
            name: stored_name,
            version,
            sealed_value: sealed,
            content_type: params.content_type,
            tags: params.tags.unwrap_or_default(),
            enabled: attrs.enabled.unwrap_or(true),
            nbf: attrs.nbf,
            exp: attrs.exp,
            created: now,
            updated: now,
        };
        match self.store.insert_secret_version(&sv) {
            Ok(()) => Ok(SecretBundle::of(&sv, &vault, &urls(ctx), Some(value.0))),
            Err(StoreError::Conflict(c)) => {
                if self.store.deleted_secret(&vk, name)?.is_some() {
                    Err(VaultError::DeletedButRecoverable(name.to_string()))
                } else {
                    Err(VaultError::Internal(format!("secret version insert conflict: {c}")))
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `GET /secrets/{name}[/{version}]`: a version with its value (`None` = latest).
    pub fn get_secret(&self, ctx: &Ctx<'_>, name: &str, version: Option<&str>) -> Result<SecretBundle, VaultError> {
        let vault = self.authorize(ctx, actions::GET_SECRET, Some(name))?;
        let sv = self.find_version(&vault, name, version)?;
        if !sv.enabled {
            return Err(VaultError::SecretDisabled(name.to_string()));
        }
        let value = self.open_value(&vault, &sv)?;
        Ok(SecretBundle::of(&sv, &vault, &urls(ctx), Some(value)))
    }

    /// `PATCH /secrets/{name}[/{version}]`: replaces the attributes, content type or tags given.
    pub fn update_secret(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        version: Option<&str>,
        body: &[u8],
    ) -> Result<SecretBundle, VaultError> {
        let vault = self.authorize(ctx, actions::UPDATE, Some(name))?;
        let params = UpdateParams::parse(body)?;
        let mut sv = self.find_version(&vault, name, version)?;
        if let Some(ct) = params.content_type {
            sv.content_type = Some(ct);
        }
        if let Some(tags) = params.tags {
            sv.tags = tags;
        }
        if let Some(a) = params.attributes {
            sv.enabled = a.enabled.unwrap_or(sv.enabled);
            sv.nbf = a.nbf.or(sv.nbf);
            sv.exp = a.exp.or(sv.exp);
        }
        sv.updated = self.clock.now();
        if !self.store.update_secret_version(&sv)? {
            return Err(VaultError::SecretNotFound(name.to_string()));
        }
        Ok(SecretBundle::of(&sv, &vault, &urls(ctx), None))
    }

    /// `GET /secrets`: the latest version of every secret, without values.
    pub fn list_secrets(&self, ctx: &Ctx<'_>, paging: Paging<'_>) -> Result<ListPage<SecretItem>, VaultError> {
        let vault = self.authorize(ctx, actions::READ_METADATA, None)?;
        let (limit, after) = (page_size(paging.maxresults)?, decode_skiptoken(paging.skiptoken)?);
        let page = self.store.secrets(&name_key(&vault.name), after.as_deref(), limit)?;
        let u = urls(ctx);
        Ok(ListPage {
            value: page.items.iter().map(|v| SecretItem::of(v, &vault, &u, false)).collect(),
            next_link: page.next.map(|c| u.next_link("/secrets", ctx.api_version, &encode_skiptoken(&c), limit)),
        })
    }

    /// `GET /secrets/{name}/versions`: every version of a secret, oldest first, without values.
    pub fn list_versions(
        &self,
        ctx: &Ctx<'_>,
        name: &str,
        paging: Paging<'_>,
    ) -> Result<ListPage<SecretItem>, VaultError> {
        let vault = self.authorize(ctx, actions::READ_METADATA, Some(name))?;
        let (limit, after) = (page_size(paging.maxresults)?, decode_skiptoken(paging.skiptoken)?);
        let page = self.store.secret_versions(&name_key(&vault.name), name, after.as_deref(), limit)?;
        let u = urls(ctx);
        let path = format!("/secrets/{name}/versions");
        Ok(ListPage {
            value: page.items.iter().map(|v| SecretItem::of(v, &vault, &u, true)).collect(),
            next_link: page.next.map(|c| u.next_link(&path, ctx.api_version, &encode_skiptoken(&c), limit)),
        })
    }

    /// `DELETE /secrets/{name}`: soft-deletes every version.
    pub fn delete_secret(&self, ctx: &Ctx<'_>, name: &str) -> Result<DeletedSecretBundle, VaultError> {
        let vault = self.authorize(ctx, actions::DELETE, Some(name))?;
        let vk = name_key(&vault.name);
        let now = self.clock.now();
        let purge_at = now + vault.soft_delete_retention_days * 86400;
        if self.store.delete_secret(&vk, name, now, purge_at)?.is_none() {
            return Err(VaultError::SecretNotFound(name.to_string()));
        }
        let (d, v) =
            self.store.deleted_secret(&vk, name)?.ok_or_else(|| VaultError::SecretNotFound(name.to_string()))?;
        Ok(DeletedSecretBundle::of(&d, &v, &vault, &urls(ctx)))
    }

    /// `GET /deletedsecrets/{name}`.
    pub fn get_deleted(&self, ctx: &Ctx<'_>, name: &str) -> Result<DeletedSecretBundle, VaultError> {
        let vault = self.authorize(ctx, actions::GET_SECRET, Some(name))?;
        let (d, v) = self
            .store
            .deleted_secret(&name_key(&vault.name), name)?
            .ok_or_else(|| VaultError::DeletedSecretNotFound(name.to_string()))?;
        Ok(DeletedSecretBundle::of(&d, &v, &vault, &urls(ctx)))
    }

    /// `GET /deletedsecrets`.
    pub fn list_deleted(&self, ctx: &Ctx<'_>, paging: Paging<'_>) -> Result<ListPage<DeletedSecretItem>, VaultError> {
        let vault = self.authorize(ctx, actions::READ_METADATA, None)?;
        let (limit, after) = (page_size(paging.maxresults)?, decode_skiptoken(paging.skiptoken)?);
        let page = self.store.deleted_secrets(&name_key(&vault.name), after.as_deref(), limit)?;
        let u = urls(ctx);
        Ok(ListPage {
            value: page
                .items
                .iter()
                .map(|(d, v)| DeletedSecretItem {
                    recovery_id: u.recovery_id(&d.name),
                    deleted_date: d.deleted,
                    scheduled_purge_date: d.scheduled_purge,
                    item: SecretItem::of(v, &vault, &u, false),
                })
                .collect(),
            next_link: page.next.map(|c| u.next_link("/deletedsecrets", ctx.api_version, &encode_skiptoken(&c), limit)),
        })
    }

    /// `POST /deletedsecrets/{name}/recover`: brings back every version; replies with the latest.
    pub fn recover(&self, ctx: &Ctx<'_>, name: &str) -> Result<SecretBundle, VaultError> {
        let vault = self.authorize(ctx, actions::RECOVER, Some(name))?;
        let v = self
            .store
            .recover_secret(&name_key(&vault.name), name)?
            .ok_or_else(|| VaultError::DeletedSecretNotFound(name.to_string()))?;
        Ok(SecretBundle::of(&v, &vault, &urls(ctx), None))
    }

    /// `DELETE /deletedsecrets/{name}`: removes a soft-deleted secret for good (204).
    pub fn purge(&self, ctx: &Ctx<'_>, name: &str) -> Result<(), VaultError> {
        let vault = self.authorize(ctx, actions::PURGE, Some(name))?;
        let vk = name_key(&vault.name);
        if self.store.deleted_secret(&vk, name)?.is_none() {
            return Err(VaultError::DeletedSecretNotFound(name.to_string()));
        }
        if vault.enable_purge_protection {
            return Err(VaultError::PurgeProtected(name.to_string()));
        }
        if !self.store.purge_secret(&vk, name)? {
            return Err(VaultError::DeletedSecretNotFound(name.to_string()));
        }
        Ok(())
    }

    /// `POST /secrets/{name}/backup`: every version in one sealed blob.
    pub fn backup(&self, ctx: &Ctx<'_>, name: &str) -> Result<BackupResult, VaultError> {
        let vault = self.authorize(ctx, actions::BACKUP, Some(name))?;
        let vk = name_key(&vault.name);
        let mut versions = Vec::new();
        let mut stored_name = None;
        let mut after: Option<String> = None;
        loop {
            let page = self.store.secret_versions(&vk, name, after.as_deref(), 25)?;
            for v in &page.items {
                let value = self.open_value(&vault, v)?;
                stored_name.get_or_insert_with(|| v.name.clone());
                versions.push(BackupVersion {
                    version: v.version.clone(),
                    value: value.to_string(),
                    content_type: v.content_type.clone(),
                    tags: v.tags.clone(),
                    enabled: v.enabled,
                    nbf: v.nbf,
                    exp: v.exp,
                    created: v.created,
                    updated: v.updated,
                });
            }
            match page.next {
                Some(n) if !page.items.is_empty() => after = Some(n),
                _ => break,
            }
        }
        let Some(stored_name) = stored_name else { return Err(VaultError::SecretNotFound(name.to_string())) };
        let value = Backup::new(stored_name, versions).seal(&self.master, &self.cfg.tenant_id)?;
        Ok(BackupResult { value })
    }

    /// `POST /secrets/restore`: recreates a backed-up secret with all its versions (no value in
    /// the reply).
    pub fn restore(&self, ctx: &Ctx<'_>, body: &[u8]) -> Result<SecretBundle, VaultError> {
        let vault = self.authorize(ctx, actions::RESTORE, None)?;
        let blob = RestoreParams::parse(body)?;
        let backup = Backup::open(&blob, &self.master, &self.cfg.tenant_id)?;
        check_name(&backup.name)?;
        let vk = name_key(&vault.name);
        let key = self.data_key(&vault)?;
        let nk = name_key(&backup.name);
        let mut versions = Vec::with_capacity(backup.versions.len());
        for v in &backup.versions {
            let version = parse_version(&v.version)
                .ok_or_else(|| VaultError::BadParameter("backup blob is invalid or from another tenant".into()))?;
            let sealed = key.seal(v.value.as_bytes(), &keys::value_aad(&vault.vault_id, &nk, &version))?;
            versions.push(SecretVersion {
                vault: vk.clone(),
                name: backup.name.clone(),
                version,
                sealed_value: sealed,
                content_type: v.content_type.clone(),
                tags: v.tags.clone(),
                enabled: v.enabled,
                nbf: v.nbf,
                exp: v.exp,
                created: v.created,
                updated: v.updated,
            });
        }
        match self.store.restore_secret(&versions) {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(if self.store.deleted_secret(&vk, &backup.name)?.is_some() {
                    VaultError::DeletedButRecoverable(backup.name.clone())
                } else {
                    VaultError::SecretExists(backup.name.clone())
                });
            }
            Err(e) => return Err(e.into()),
        }
        let latest = versions.last().ok_or_else(|| VaultError::Internal("empty backup restored".into()))?;
        Ok(SecretBundle::of(latest, &vault, &urls(ctx), None))
    }

    // ---- helpers --------------------------------------------------------------------------------

    /// Resolves the vault, throttles, and decides `action` for the caller at the vault (`secret`
    /// `None`) or at one secret. Records the decision.
    fn authorize(&self, ctx: &Ctx<'_>, action: &'static str, secret: Option<&str>) -> Result<Vault, VaultError> {
        let principal = ctx.caller.principal_id.to_string();
        let refuse = |resource: &str, e: VaultError| {
            audit::record(&AuditEvent {
                request_id: ctx.request_id,
                principal: &principal,
                action,
                resource,
                allowed: false,
                reason: e.audit_reason(),
            });
            Err(e)
        };
        let vault = match self.store.vault(&ctx.host.vault)? {
            Some(v) if v.deleted.is_none() => v,
            _ => return refuse(&ctx.host.vault, VaultError::VaultNotFound(ctx.host.vault.clone())),
        };
        if let Some(t) = &self.throttle
            && let Err(retry_after) = t.admit(&vault.vault_id.to_string(), self.clock.now())
        {
            return Err(VaultError::Throttled { retry_after });
        }
        let vault_id = vault.arm_id();
        if let Some(name) = secret
            && let Err(e) = check_name(name)
        {
            return refuse(&vault_id, e);
        }
        let resource = match secret {
            Some(name) => format!("{vault_id}/secrets/{name}"),
            None => vault_id,
        };
        if !vault.enable_rbac_authorization {
            return refuse(&resource, VaultError::RbacNotEnabled(vault.name.clone()));
        }
        let scope = Scope::parse(&resource).map_err(|e| VaultError::Internal(format!("vault scope: {e}")))?;
        let decision = {
            let dir = self.directory.read().unwrap_or_else(|p| p.into_inner());
            dir.rbac().check(&ctx.caller.principal_id, Action::Data(action), &scope)
        };
        match decision {
            Decision::Allowed { assignment, role } => {
                audit::record(&AuditEvent {
                    request_id: ctx.request_id,
                    principal: &principal,
                    action,
                    resource: &resource,
                    allowed: true,
                    reason: &format!("assignment {assignment} ({role})"),
                });
                Ok(vault)
            }
            Decision::Denied => {
                let denial = RbacDenial {
                    appid: ctx.caller.client_id.to_string(),
                    oid: principal.clone(),
                    issuer: ctx.caller.issuer.clone(),
                    action: action.to_string(),
                    resource: resource.clone(),
                    vault: vault.name.clone(),
                    location: vault.location.clone(),
                };
                refuse(&resource, VaultError::ForbiddenByRbac(Box::new(denial)))
            }
        }
    }

    /// An active version (`None` = latest); an unparseable version id is simply not found.
    fn find_version(&self, vault: &Vault, name: &str, version: Option<&str>) -> Result<SecretVersion, VaultError> {
        let not_found =
            || VaultError::SecretNotFound(version.map_or_else(|| name.to_string(), |v| format!("{name}/{v}")));
        let version = match version {
            None => None,
            Some(v) => Some(parse_version(v).ok_or_else(not_found)?),
        };
        self.store.secret_version(&name_key(&vault.name), name, version.as_deref())?.ok_or_else(not_found)
    }

    /// The vault's unsealed data key (cached: it never changes for a vault id).
    fn data_key(&self, vault: &Vault) -> Result<Arc<MasterKey>, VaultError> {
        if let Some(k) = self.data_keys.read().unwrap_or_else(|p| p.into_inner()).get(&vault.vault_id) {
            return Ok(k.clone());
        }
        let key = Arc::new(keys::open_data_key(&self.master, &vault.vault_id, &vault.sealed_data_key)?);
        self.data_keys.write().unwrap_or_else(|p| p.into_inner()).insert(vault.vault_id, key.clone());
        Ok(key)
    }

    /// Opens a version's value.
    fn open_value(&self, vault: &Vault, v: &SecretVersion) -> Result<Zeroizing<String>, VaultError> {
        let key = self.data_key(vault)?;
        let bytes = key.open(&v.sealed_value, &keys::value_aad(&vault.vault_id, &name_key(&v.name), &v.version))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::Internal("secret value is not UTF-8".into()))?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

fn urls<'a>(ctx: &Ctx<'a>) -> Urls<'a> {
    Urls { authority: &ctx.host.authority }
}
