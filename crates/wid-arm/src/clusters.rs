//! Cluster registrations (`Microsoft.ContainerService/managedClusters`): OIDC issuers wid hosts or
//! trusts, and the service-account tokens of hosted ones.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;
use wid_core::clock::rfc3339;
use wid_core::fic::{self, FederatedCredential};
use wid_core::kube;
use wid_core::model::{Cluster, ClusterExtras, ClusterIssuer, Identity, ResourceGroup, ResourceKey, Tags};
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

/// wid's extension: the cluster's API server, for the kubeconfig of `listClusterUserCredential`
/// (`wid aks create|update --api-server URL --api-server-ca-file FILE`). Absent keeps what is
/// stored, an empty `url` forgets it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ApiServer {
    url: Option<String>,
    /// Base64 of the PEM CA bundle, as a kubeconfig's `certificate-authority-data`.
    certificate_authority_data: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ClusterProperties {
    oidc_issuer_profile: Option<OidcIssuerProfile>,
    security_profile: Option<SecurityProfile>,
    api_server: Option<ApiServer>,
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
        let raw: Value = parse_body(body)?;
        let body = ClusterBody::deserialize(&raw).map_err(|e| {
            ArmError::InvalidRequestContent(format!(
                "The request content was invalid and could not be deserialized: {e}"
            ))
        })?;
        let _exclusive = self.exclusive("cluster", &ResourceKey::new(self.cfg.subscription_id, rg, name))?;
        let group = self.group(&sub, rg)?;
        let props = body.properties.unwrap_or_default();
        let kept = kept_arm_fields(&raw);
        let oidc = props.oidc_issuer_profile.unwrap_or_default();
        let jwks = oidc.jwks.map(|j| validate_jwks(&j)).transpose()?;
        let wi = props.security_profile.and_then(|s| s.workload_identity).and_then(|w| w.enabled);
        let key = ResourceKey::new(self.cfg.subscription_id, rg, name);
        let now = self.clock.now();
        let existing = self.store.cluster(&key)?;
        let creating = existing.is_none();
        let stored_api_server = existing.as_ref().and_then(|c| c.extras.api_server.as_deref());
        let api_server = match props.api_server {
            Some(a) => api_server_change(a, stored_api_server)?,
            None => ApiServerChange::Keep,
        };
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
                let extras = merge_extras(old.extras.clone(), api_server, kept)?;
                Cluster {
                    location,
                    tags: body.tags.unwrap_or(old.tags.clone()),
                    issuer,
                    workload_identity: wi.unwrap_or(old.workload_identity),
                    extras,
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
                    extras: merge_extras(ClusterExtras::default(), api_server, kept)?,
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
        let mut cluster = self.ensure_cluster_key(cluster)?;
        if creating && wants_kubelet_identity(&raw) {
            let node_group = raw.pointer("/properties/nodeResourceGroup").and_then(Value::as_str);
            let (node_group, kubelet) = self.ensure_kubelet_identity(caller, &group, &cluster, node_group)?;
            cluster.extras.arm = Some(with_kubelet_identity(cluster.extras.arm.as_deref(), &node_group, &kubelet));
        }
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

    pub(crate) fn load_cluster(&self, sub: &str, rg: &str, name: &str) -> Result<Cluster> {
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
                self.delete_node_group(caller, &c)?;
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

/// The application id of AKS's Entra server app ("Azure Kubernetes Service AAD Server"): the
/// audience kubelogin asks tokens for (`--server-id`), which the cluster's API server accepts.
pub const AKS_SERVER_APP_ID: &str = "6dae42f8-4368-4678-94ff-3960e28e3630";
/// The public client kubelogin signs users in with (its `--client-id` in AKS's kubeconfigs).
const AKS_CLIENT_APP_ID: &str = "80faf920-1908-4b52-b5ef-a8e7bedfc67a";

impl Management {
    /// `POST …/managedClusters/{name}/listClusterUserCredential` (and the admin and monitoring
    /// variants): the kubeconfig AKS gives for a cluster with Entra ID integration — the API server
    /// the registration names, its CA, and kubelogin for credentials (tokens for
    /// [`AKS_SERVER_APP_ID`] from this tenant). wid holds no cluster credentials, so the static
    /// admin and monitoring kubeconfigs are refused as AKS refuses them with local accounts off.
    pub fn cluster_credential(
        &self,
        caller: &Actor,
        sub: &str,
        rg: &str,
        name: &str,
        action: &str,
        format: Option<&str>,
    ) -> Result<Reply> {
        let sub = self.subscription(sub)?;
        let id = ids::cluster(&sub, rg, name);
        self.authorize(caller, &format!("Microsoft.ContainerService/managedClusters/{action}/action"), &id)?;
        let cluster = self.load_cluster(&sub, rg, name)?;
        if !action.eq_ignore_ascii_case("listClusterUserCredential") {
            return Err(ArmError::BadRequest(format!(
                "Getting static credentials ({action}) is not allowed: wid keeps no cluster credentials, as an AKS cluster with local accounts disabled. Use the user credential (az aks get-credentials without --admin), which signs in with Entra ID through kubelogin."
            )));
        }
        if format.is_some_and(|f| !f.eq_ignore_ascii_case("exec")) {
            return Err(ArmError::BadRequest(
                "wid writes kubeconfigs in the 'exec' format only (kubelogin); the 'azure' auth provider was removed from kubectl 1.26.".into(),
            ));
        }
        let (Some(server), Some(ca)) = (&cluster.extras.api_server, &cluster.extras.api_server_ca) else {
            return Err(ArmError::BadRequest(format!(
                "The registration of cluster '{name}' names no API server, so wid cannot write a kubeconfig for it. Name it with 'wid aks update -n {name} -g {rg} --api-server https://HOST:PORT --api-server-ca-file CA.pem'."
            )));
        };
        let kubeconfig = user_kubeconfig(&cluster, server, ca, &self.cfg.tenant_id.to_string());
        let value = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
        Ok(Reply::Ok(json!({"kubeconfigs": [{"name": "clusterUser", "value": value}]})))
    }
}

/// A kubeconfig as AKS writes the user's for an Entra-integrated cluster: the cluster under its
/// name, user `clusterUser_{group}_{name}`, and kubelogin's device-code login (which az converts to
/// its own sign-in when kubelogin is installed). Scalars are JSON strings, which YAML reads as
/// double-quoted scalars, so no name needs YAML escaping rules of its own.
fn user_kubeconfig(c: &Cluster, server: &str, ca_pem: &str, tenant: &str) -> String {
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let name = q(&c.name);
    let user = q(&format!("clusterUser_{}_{}", c.resource_group, c.name));
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let args = [
        "get-token",
        "--environment",
        "AzurePublicCloud",
        "--server-id",
        AKS_SERVER_APP_ID,
        "--client-id",
        AKS_CLIENT_APP_ID,
        "--tenant-id",
        tenant,
        "--login",
        "devicecode",
    ];
    let args: String = args.iter().map(|a| format!("      - {}\n", q(a))).collect();
    format!(
        "apiVersion: v1\n\
         clusters:\n\
         - cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {name}\n\
         contexts:\n\
         - context:\n    cluster: {name}\n    user: {user}\n  name: {name}\n\
         current-context: {name}\n\
         kind: Config\n\
         preferences: {{}}\n\
         users:\n\
         - name: {user}\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      args:\n{args}      command: kubelogin\n      env: null\n      installHint: {hint}\n      interactiveMode: IfAvailable\n      provideClusterInfo: false\n",
        server = q(server),
        hint = q(
            "This cluster signs users in with Entra ID through kubelogin: install it (az aks install-cli) and run kubelogin convert-kubeconfig -l azurecli."
        ),
    )
}

/// AKS's tags on the node resource group it makes for a cluster; wid deletes that group with the
/// cluster only when both name the cluster.
const NODE_GROUP_CLUSTER_TAG: &str = "aks-managed-cluster-name";
const NODE_GROUP_RG_TAG: &str = "aks-managed-cluster-rg";

impl Management {
    /// What AKS makes for a cluster with a managed identity: the node resource group
    /// (`nodeResourceGroup`, default `MC_{group}_{cluster}_{location}`) and in it the kubelet's
    /// user-assigned identity `{cluster}-agentpool` — a real identity of wid's, which az needs (its
    /// update reads the kubelet identity of every managed-identity cluster) and which roles can be
    /// given to, though no kubelet of wid's signs in with it. Both are kept if they exist.
    fn ensure_kubelet_identity(
        &self,
        caller: &Actor,
        group: &ResourceGroup,
        cluster: &Cluster,
        node_group: Option<&str>,
    ) -> Result<(String, Identity)> {
        let sub = self.cfg.subscription_id;
        let node_group =
            node_group.map_or_else(|| format!("MC_{}_{}_{}", group.name, cluster.name, cluster.location), String::from);
        names::resource_group(&node_group)?;
        let node_group = match self.store.resource_group(sub, &node_group)? {
            Some(g) => g.name,
            None => {
                let tags = Tags::from([
                    (NODE_GROUP_CLUSTER_TAG.to_string(), cluster.name.clone()),
                    (NODE_GROUP_RG_TAG.to_string(), group.name.clone()),
                ]);
                let now = self.clock.now();
                let g = ResourceGroup {
                    subscription: sub,
                    name: node_group,
                    location: cluster.location.clone(),
                    tags,
                    created: now,
                };
                self.store.put_resource_group(&g)?;
                self.audit_write(
                    caller,
                    "group.written",
                    &ids::resource_group(&sub.to_string(), &g.name),
                    "node resource group of a cluster",
                );
                g.name
            }
        };
        let name = format!("{}-agentpool", cluster.name);
        names::identity(&name)?;
        let key = ResourceKey::new(sub, &node_group, &name);
        let _exclusive = self.exclusive("identity", &key)?;
        let identity = match self.store.identity(&key)? {
            Some(i) => i,
            None => {
                let now = self.clock.now();
                let i = Identity {
                    subscription: sub,
                    resource_group: node_group.clone(),
                    name,
                    location: cluster.location.clone(),
                    tags: Tags::new(),
                    tenant_id: self.cfg.tenant_id,
                    client_id: Uuid::new_v4(),
                    principal_id: Uuid::new_v4(),
                    created: now,
                    updated: now,
                };
                self.store.put_identity(&i)?;
                self.dir_mut().put_identity(i.clone());
                self.audit_write(caller, "identity.written", &i.arm_id(), "kubelet identity of a cluster");
                i
            }
        };
        Ok((node_group, identity))
    }

    /// Deletes the node resource group wid made for `cluster` (AKS deletes it with the cluster).
    fn delete_node_group(&self, caller: &Actor, cluster: &Cluster) -> Result<()> {
        let kept: Value = cluster.extras.arm.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
        let Some(node_group) = kept.pointer("/properties/nodeResourceGroup").and_then(Value::as_str) else {
            return Ok(());
        };
        let sub = self.cfg.subscription_id;
        let ours = self.store.resource_group(sub, node_group)?.is_some_and(|g| {
            g.tags.get(NODE_GROUP_CLUSTER_TAG) == Some(&cluster.name)
                && g.tags.get(NODE_GROUP_RG_TAG).is_some_and(|rg| rg.eq_ignore_ascii_case(&cluster.resource_group))
        });
        if ours && let Some(removed) = self.store.delete_resource_group(sub, node_group)? {
            self.forget_removed(caller, &removed);
        }
        Ok(())
    }
}

/// A create naming a managed identity (`SystemAssigned`/`UserAssigned`) and no kubelet identity.
fn wants_kubelet_identity(raw: &Value) -> bool {
    let managed = raw
        .pointer("/identity/type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("SystemAssigned") || t.eq_ignore_ascii_case("UserAssigned"));
    managed && raw.pointer("/properties/identityProfile/kubeletidentity").is_none()
}

/// The kept ARM fields with the node resource group and the kubelet identity AKS reports.
fn with_kubelet_identity(kept: Option<&str>, node_group: &str, kubelet: &Identity) -> String {
    let mut kept: serde_json::Map<String, Value> = kept.and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    let props = kept.entry("properties").or_insert_with(|| json!({}));
    if !props.is_object() {
        *props = json!({});
    }
    if let Some(props) = props.as_object_mut() {
        props.insert("nodeResourceGroup".into(), json!(node_group));
        let kubelet =
            json!({"resourceId": kubelet.arm_id(), "clientId": kubelet.client_id, "objectId": kubelet.principal_id});
        props.insert("identityProfile".into(), json!({ "kubeletidentity": kubelet }));
    }
    Value::Object(kept).to_string()
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

/// Properties wid computes (or reads as its own input): never kept from a body, always written by
/// [`shapes::cluster`].
pub(crate) const COMPUTED_PROPERTIES: &[&str] =
    &["provisioningState", "powerState", "clusterId", "oidcIssuerProfile", "issuerHosting", "fqdn", "apiServer"];
/// The top-level fields kept as sent besides `properties`.
pub(crate) const KEPT_TOP_LEVEL: &[&str] = &["identity", "sku", "kind"];
/// The most a registration keeps of what clients sent.
const MAX_KEPT_BYTES: usize = 64 * 1024;

/// What a create or update sent that wid keeps without acting on it: `properties` less
/// [`COMPUTED_PROPERTIES`], and [`KEPT_TOP_LEVEL`] fields; `None` for each part the body lacks.
struct Kept {
    properties: Option<Value>,
    top: serde_json::Map<String, Value>,
}

fn kept_arm_fields(raw: &Value) -> Kept {
    let properties = raw.get("properties").and_then(Value::as_object).map(|p| {
        let kept = p.iter().filter(|(k, _)| !COMPUTED_PROPERTIES.contains(&k.as_str()));
        Value::Object(kept.map(|(k, v)| (k.clone(), v.clone())).collect())
    });
    let top = KEPT_TOP_LEVEL.iter().filter_map(|k| raw.get(*k).map(|v| (k.to_string(), v.clone()))).collect();
    Kept { properties, top }
}

/// The new extras: parts the body sent replace the stored ones, parts it lacks are kept (a PATCH
/// of tags, or az's update without wid's extension fields, loses nothing).
fn merge_extras(old: ClusterExtras, api_server: ApiServerChange, kept: Kept) -> Result<ClusterExtras> {
    let mut arm: serde_json::Map<String, Value> =
        old.arm.as_deref().and_then(|t| serde_json::from_str(t).ok()).unwrap_or_default();
    if let Some(p) = kept.properties {
        arm.insert("properties".into(), p);
    }
    arm.extend(kept.top);
    let arm = (!arm.is_empty()).then(|| Value::Object(arm).to_string());
    if arm.as_ref().is_some_and(|t| t.len() > MAX_KEPT_BYTES) {
        return Err(ArmError::BadRequest(format!(
            "The cluster's properties, identity, sku and kind take more than {} KiB; wid keeps at most that.",
            MAX_KEPT_BYTES / 1024
        )));
    }
    let (api_server, api_server_ca) = match api_server {
        ApiServerChange::Keep => (old.api_server, old.api_server_ca),
        ApiServerChange::Forget => (None, None),
        ApiServerChange::Set { url, ca_pem } => (Some(url), Some(ca_pem)),
    };
    // Bindings are child resources: a PUT of the cluster leaves them as they are.
    Ok(ClusterExtras { api_server, api_server_ca, arm, identity_bindings: old.identity_bindings })
}

/// What a body does to the stored API server.
enum ApiServerChange {
    /// Absent, or the URL a GET returned sent back without a CA (clients update by GET then PUT).
    Keep,
    /// An empty `url`.
    Forget,
    /// An `https` URL and its PEM CA bundle (sent as base64, kept as PEM).
    Set { url: String, ca_pem: String },
}

/// Checks `properties.apiServer` against the stored URL.
fn api_server_change(a: ApiServer, stored: Option<&str>) -> Result<ApiServerChange> {
    let url = a.url.unwrap_or_default();
    if url.is_empty() {
        return Ok(ApiServerChange::Forget);
    }
    if a.certificate_authority_data.is_none() && stored == Some(url.trim_end_matches('/')) {
        return Ok(ApiServerChange::Keep);
    }
    let bad = |why: &str| ArmError::BadRequest(format!("properties.apiServer: {why}"));
    let rest = url.strip_prefix("https://").ok_or_else(|| bad("url must be an https URL (https://HOST:PORT)."))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("url must be an https URL (https://HOST:PORT)."));
    }
    let data = a.certificate_authority_data.ok_or_else(|| {
        bad("certificateAuthorityData (base64 of the PEM CA bundle that verifies the API server) is required with url.")
    })?;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|p| p.len() <= MAX_KEPT_BYTES)
        .ok_or_else(|| bad("certificateAuthorityData must be base64 of a PEM CA bundle of at most 64 KiB."))?;
    wid_crypto::pki::cert_not_after_unix(&pem)
        .map_err(|e| bad(&format!("certificateAuthorityData holds no usable certificate ({e}).")))?;
    Ok(ApiServerChange::Set { url: url.trim_end_matches('/').to_string(), ca_pem: pem })
}
