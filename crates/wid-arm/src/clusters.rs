//! Cluster registrations (`Microsoft.ContainerService/managedClusters`): OIDC issuers wid hosts or
//! trusts, and the service-account tokens of hosted ones.

use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wid_core::clock::rfc3339;
use wid_core::fic::{self, FederatedCredential};
use wid_core::kube;
use wid_core::model::{Cluster, ClusterIssuer, ResourceKey, Tags};
use wid_core::scope::ids;

use crate::{Actor, ArmError, CLUSTER_TYPE, Management, Reply, Result, names, parse_body, shapes};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OidcIssuerProfile {
    #[serde(rename = "issuerURL", alias = "issuerUrl")]
    issuer_url: Option<String>,
    jwks: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct WorkloadIdentityProfile {
    enabled: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SecurityProfile {
    workload_identity: Option<WorkloadIdentityProfile>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ClusterProperties {
    oidc_issuer_profile: Option<OidcIssuerProfile>,
    security_profile: Option<SecurityProfile>,
}

#[derive(Deserialize)]
struct ClusterBody {
    location: Option<String>,
    tags: Option<Tags>,
    properties: Option<ClusterProperties>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenBody {
    namespace: Option<String>,
    service_account_name: Option<String>,
    audiences: Option<Vec<String>>,
    expiration_seconds: Option<i64>,
}

/// Shortest and longest service-account token lifetimes (kube-apiserver's minimum; two days).
const SA_TOKEN_MIN_SECS: i64 = 600;
const SA_TOKEN_MAX_SECS: i64 = 48 * 3600;

impl Management {
    /// The issuer URL of a hosted cluster.
    pub fn hosted_issuer_url(&self, cluster_id: &Uuid) -> String {
        format!("{}/oidc/{}/{cluster_id}/", self.cfg.public_url, self.cfg.tenant_id)
    }

    /// `PUT …/managedClusters/{name}`: registers a cluster (hosted issuer unless `issuerURL` is given).
    pub fn put_cluster(&self, caller: &Actor, sub: &str, rg: &str, name: &str, body: &[u8]) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        names::cluster(name)?;
        self.authorize(caller, "Microsoft.ContainerService/managedClusters/write", &ids::cluster(&sub, rg, name))?;
        let body: ClusterBody = parse_body(body)?;
        let _exclusive = self.exclusive("cluster", &ResourceKey::new(self.cfg.subscription_id, rg, name))?;
        let group = self.group(&sub, rg)?;
        let props = body.properties.unwrap_or_default();
        let oidc = props.oidc_issuer_profile.unwrap_or_default();
        let jwks = oidc.jwks.map(|j| validate_jwks(&j)).transpose()?;
        let wi = props.security_profile.and_then(|s| s.workload_identity).and_then(|w| w.enabled);
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        let now = self.clock.now();
        let existing = self.store.cluster(&key)?;
        let location =
            body.location.or_else(|| existing.as_ref().map(|c| c.location.clone())).unwrap_or(group.location.clone());
        names::location(&location)?;
        let cluster = match existing {
            Some(old) => {
                let issuer = match (&old.issuer, oidc.issuer_url) {
                    (ClusterIssuer::Hosted { .. }, Some(url)) if url != old.issuer.issuer_url() => {
                        return Err(ArmError::BadRequest("The issuer of a cluster whose issuer wid hosts cannot be changed; delete and re-create the cluster registration.".into()));
                    }
                    (ClusterIssuer::Hosted { .. }, _) => old.issuer.clone(),
                    (ClusterIssuer::External { issuer_url, jwks: old_jwks }, url) => ClusterIssuer::External {
                        issuer_url: url.map(|u| validate_issuer_url(&u)).transpose()?.unwrap_or(issuer_url.clone()),
                        jwks: jwks.or(old_jwks.clone()),
                    },
                };
                Cluster {
                    location,
                    tags: body.tags.unwrap_or(old.tags.clone()),
                    issuer,
                    workload_identity: wi.unwrap_or(old.workload_identity),
                    updated: now,
                    ..old
                }
            }
            None => {
                let cluster_id = Uuid::new_v4();
                let issuer = match oidc.issuer_url {
                    Some(url) => ClusterIssuer::External { issuer_url: validate_issuer_url(&url)?, jwks },
                    None if jwks.is_some() => {
                        return Err(ArmError::BadRequest("A JWKS can only be uploaded for an external issuer: give oidcIssuerProfile.issuerURL (wid aks create --issuer-url).".into()));
                    }
                    None => {
                        ClusterIssuer::Hosted { issuer_url: self.hosted_issuer_url(&cluster_id), kid: String::new() }
                    }
                };
                Cluster {
                    subscription: self.cfg.subscription_id,
                    resource_group: group.name.clone(),
                    name: name.to_string(),
                    location,
                    tags: body.tags.unwrap_or_default(),
                    cluster_id,
                    issuer,
                    workload_identity: wi.unwrap_or(true),
                    created: now,
                    updated: now,
                }
            }
        };
        if let Some(other) = self.dir().cluster_by_issuer(cluster.issuer.issuer_url())
            && other.key() != key
        {
            return Err(ArmError::IssuerAlreadyRegistered(format!(
                "The issuer '{}' is already registered by cluster '{}' in resource group '{}'.",
                cluster.issuer.issuer_url(),
                other.name,
                other.resource_group
            )));
        }
        let cluster = self.ensure_cluster_key(cluster)?;
        let written = self.store.put_cluster(&cluster)?;
        self.dir_mut().put_cluster(cluster.clone());
        self.audit_write(caller, "cluster.written", &cluster.arm_id(), "written");
        Ok(Reply::written(written, shapes::cluster(&cluster)))
    }

    fn ensure_cluster_key(&self, cluster: Cluster) -> Result<Cluster> {
        let ClusterIssuer::Hosted { issuer_url, .. } = &cluster.issuer else { return Ok(cluster) };
        let kid = self
            .issuers
            .ensure_signing_key(&cluster.cluster_id, self.clock.now())
            .map_err(|e| ArmError::Internal(e.to_string()))?;
        let issuer = ClusterIssuer::Hosted { issuer_url: issuer_url.clone(), kid };
        Ok(Cluster { issuer, ..cluster })
    }

    pub(crate) fn drop_cluster_keys(&self, cluster: &Cluster) {
        if matches!(cluster.issuer, ClusterIssuer::Hosted { .. })
            && let Err(e) = self.issuers.remove_signing_keys(&cluster.cluster_id)
        {
            tracing::warn!(error = %e, cluster = %cluster.cluster_id, "could not delete a cluster's signing keys");
        }
    }

    fn load_cluster(&self, sub: &str, rg: &str, name: &str) -> Result<Cluster> {
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        match self.store.cluster(&key)? {
            Some(c) => Ok(c),
            None => {
                self.group(sub, rg)?;
                Err(ArmError::ResourceNotFound {
                    resource_type: CLUSTER_TYPE,
                    name: name.to_string(),
                    resource_group: rg.to_string(),
                })
            }
        }
    }

    /// `GET …/managedClusters/{name}`.
    pub fn get_cluster(&self, caller: &Actor, sub: &str, rg: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, "Microsoft.ContainerService/managedClusters/read", &ids::cluster(&sub, rg, name))?;
        Ok(Reply::Ok(shapes::cluster(&self.load_cluster(&sub, rg, name)?)))
    }

    /// `GET …/managedClusters` in a group or the subscription.
    pub fn list_clusters(&self, caller: &Actor, sub: &str, rg: Option<&str>) -> Result<Reply> {
        let action = "Microsoft.ContainerService/managedClusters/read";
        self.list_in(caller, sub, rg, action, |st, id, rg| st.clusters(id, rg), Cluster::arm_id, shapes::cluster)
    }

    /// `DELETE …/managedClusters/{name}` (204 if absent); a hosted issuer's keys go with it.
    pub fn delete_cluster(&self, caller: &Actor, sub: &str, rg: &str, name: &str) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        self.authorize(caller, "Microsoft.ContainerService/managedClusters/delete", &ids::cluster(&sub, rg, name))?;
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        let _exclusive = self.exclusive("cluster", &key)?;
        match self.store.delete_cluster(&key)? {
            Some(c) => {
                self.dir_mut().remove_cluster(&key);
                self.drop_cluster_keys(&c);
                self.audit_write(caller, "cluster.deleted", &c.arm_id(), "deleted");
                Ok(Reply::Done)
            }
            None => Ok(Reply::NoContent),
        }
    }

    /// `POST …/managedClusters/{name}/serviceAccountToken`: a TokenRequest-style token from a hosted
    /// issuer (what `kubectl create token` would give on that cluster).
    pub fn service_account_token(&self, caller: &Actor, sub: &str, rg: &str, name: &str, body: &[u8]) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let action = "Microsoft.ContainerService/managedClusters/serviceAccountToken/action";
        self.authorize(caller, action, &ids::cluster(&sub, rg, name))?;
        let body: TokenBody = parse_body(body)?;
        let cluster = self.load_cluster(&sub, rg, name)?;
        if !matches!(cluster.issuer, ClusterIssuer::Hosted { .. }) {
            return Err(ArmError::BadRequest("This cluster's issuer is external, so wid holds no key for it; get a token from the cluster itself (kubectl create token).".into()));
        }
        let ns = body.namespace.unwrap_or_else(|| "default".into());
        let sa =
            body.service_account_name.ok_or_else(|| ArmError::BadRequest("serviceAccountName is required.".into()))?;
        if !kube::is_dns1123_label(&ns) {
            return Err(ArmError::BadRequest(format!(
                "The namespace '{ns}' is not a valid Kubernetes namespace name."
            )));
        }
        if !kube::is_dns1123_subdomain(&sa) {
            return Err(ArmError::BadRequest(format!(
                "The service account name '{sa}' is not a valid Kubernetes name."
            )));
        }
        let audiences =
            body.audiences.filter(|a| !a.is_empty()).unwrap_or_else(|| vec![fic::DEFAULT_AUDIENCE.to_string()]);
        if audiences.iter().any(|a| a.is_empty() || a.len() > fic::MAX_FIELD_LEN) {
            return Err(ArmError::BadRequest("Audiences must be non-empty and at most 600 characters.".into()));
        }
        let lifetime = body.expiration_seconds.unwrap_or(3600);
        if !(SA_TOKEN_MIN_SECS..=SA_TOKEN_MAX_SECS).contains(&lifetime) {
            return Err(ArmError::BadRequest(format!(
                "expirationSeconds must be between {SA_TOKEN_MIN_SECS} and {SA_TOKEN_MAX_SECS}."
            )));
        }
        let (token, exp) = self
            .issuers
            .mint_service_account_token(&cluster, &ns, &sa, &audiences, lifetime)
            .map_err(|e| ArmError::Internal(e.to_string()))?;
        self.audit_write(caller, "cluster.token", &cluster.arm_id(), &format!("system:serviceaccount:{ns}:{sa}"));
        Ok(Reply::Ok(json!({"token": token, "expirationTimestamp": rfc3339(exp)})))
    }
}

fn validate_issuer_url(url: &str) -> Result<String> {
    let probe = FederatedCredential {
        name: "probe".into(),
        issuer: url.to_string(),
        subject: Some("s".into()),
        claims_matching_expression: None,
        audiences: vec![fic::DEFAULT_AUDIENCE.into()],
        description: None,
    };
    match probe.validate() {
        Ok(()) => Ok(url.to_string()),
        Err(e) => Err(ArmError::BadRequest(format!("oidcIssuerProfile.issuerURL: {e}"))),
    }
}

/// Checks an uploaded JWKS: a JSON object with at least one usable signing key; returns it as text.
fn validate_jwks(jwks: &Value) -> Result<String> {
    let text = jwks.to_string();
    let set = wid_crypto::jwk::JwkSet::parse(text.as_bytes(), 256 * 1024)
        .map_err(|e| ArmError::BadRequest(format!("The uploaded JWKS is invalid: {e}")))?;
    if set.signing_keys().next().is_none() {
        return Err(ArmError::BadRequest(
            "The uploaded JWKS holds no usable signing key (RSA ≥ 2048 bits, EC P-256/P-384/P-521).".into(),
        ));
    }
    Ok(text)
}
