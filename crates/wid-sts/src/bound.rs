//! The token proxy of identity bindings: what AKS's proxy does for `WorkloadIdentityCredential`
//! with `enable_azure_proxy` (the SDK sends its usual token request to
//! `$AZURE_KUBERNETES_TOKEN_PROXY/{tenant}/oauth2/v2.0/token`).
//!
//! The pod's service-account token (audience `api://AKSIdentityBinding`) is verified with its
//! cluster's keys like any assertion; the cluster must bind the identity (`identityBindings`);
//! then the cluster itself decides: a `SelfSubjectAccessReview` sent to the registration's API
//! server **with the pod's own token** asks whether the service account may `use-managed-identity`
//! on `cid.wi.aks.azure.com/<client id>`. wid holds no credential for the cluster; the API server
//! must accept the binding audience (`--api-audiences`). Only when it says yes is a token minted,
//! so removing a RoleBinding takes effect at the next request.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::StsError;
use crate::request::TokenRequest;
use crate::service::{JWT_BEARER, TokenResponse, TokenService};
use crate::tokens::AccessSubject;

/// The audience of the service-account tokens projected for identity bindings.
pub const BINDING_AUDIENCE: &str = "api://AKSIdentityBinding";
/// The RBAC verb and API group a binding's users need on the identity's client id.
pub const RBAC_VERB: &str = "use-managed-identity";
pub const RBAC_GROUP: &str = "cid.wi.aks.azure.com";
/// Bounds of the access review.
const REVIEW_TIMEOUT: Duration = Duration::from_secs(5);
const REVIEW_MAX_BYTES: usize = 64 * 1024;

impl TokenService {
    /// Handles `POST /identitybinding/{tenant}/oauth2/v2.0/token`.
    pub async fn exchange_bound(&self, tenant: &str, req: TokenRequest) -> Result<TokenResponse, StsError> {
        let (client, resource) = self.check_request(tenant, &req)?;
        let raw = req.client_assertion.as_deref().ok_or(StsError::NoClientCredential)?;
        match req.client_assertion_type.as_deref() {
            Some(JWT_BEARER) => {}
            None => return Err(StsError::MissingParameter("client_assertion_type")),
            Some(other) => return Err(StsError::BadAssertionType(other.to_string())),
        }
        let client_id = Uuid::parse_str(client.trim()).map_err(|_| StsError::UnknownClient(client.to_string()))?;
        let a = self.parse_assertion(raw)?;
        self.check_times(&a.jws)?;
        let (principal_id, mirid, cluster, api_server, ca) = {
            let dir = self.read_dir();
            let e = dir.identity_by_client(&client_id).ok_or_else(|| StsError::UnknownClient(client.to_string()))?;
            let c = dir
                .cluster_by_issuer(&a.iss)
                .ok_or_else(|| StsError::NoBinding(format!("no registered cluster has the issuer '{}'", a.iss)))?;
            if !c.extras.identity_bindings.iter().any(|b| b.client_id == client_id) {
                return Err(StsError::NoBinding(format!(
                    "cluster '{}' has no identity binding for the identity {client_id} (az aks identity-binding create)",
                    c.name
                )));
            }
            let (Some(server), Some(ca)) = (c.extras.api_server.clone(), c.extras.api_server_ca.clone()) else {
                return Err(StsError::NoBinding(format!(
                    "cluster '{}' names no API server to ask (wid aks update --api-server URL --api-server-ca-file CA)",
                    c.name
                )));
            };
            (e.identity.principal_id, e.identity.arm_id(), c.name.clone(), server, ca)
        };
        if !a.aud.iter().any(|x| x == BINDING_AUDIENCE) {
            return Err(StsError::AudienceMismatch {
                audiences: a.aud.clone(),
                hint: format!("The token proxy of identity bindings takes tokens for '{BINDING_AUDIENCE}'. "),
            });
        }
        self.verify_signature(&a).await?;
        // Asked in the service account's namespace, so a RoleBinding there counts (and a
        // ClusterRoleBinding everywhere).
        let namespace = a.sub.strip_prefix("system:serviceaccount:").and_then(|r| r.split(':').next()).unwrap_or("");
        let allowed = review(&api_server, &ca, raw, namespace, &client_id.to_string())
            .await
            .map_err(|reason| StsError::AccessReviewFailed { cluster: cluster.clone(), reason })?;
        if !allowed {
            return Err(StsError::NotAllowedByCluster {
                service_account: a.sub.clone(),
                client_id: client_id.to_string(),
                cluster,
            });
        }
        let cp1 = req.claims.as_deref().is_some_and(|c| c.to_ascii_lowercase().contains("cp1"));
        let subject = AccessSubject { client_id, principal_id, mirid: Some(&mirid), appidacr: "2", cp1 };
        let lifetime = self.cfg.token_lifetime_secs;
        self.mint(&resource, &subject, lifetime, format!("identity binding on cluster '{cluster}' for {}", a.sub))
    }
}

/// Asks the API server, as the pod, whether it may use the identity (`SelfSubjectAccessReview`).
async fn review(server: &str, ca_pem: &str, token: &str, namespace: &str, client_id: &str) -> Result<bool, String> {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).map_err(|e| format!("its CA: {e}"))?;
    let mut builder = reqwest::Client::builder().timeout(REVIEW_TIMEOUT).tls_certs_only(certs);
    builder = builder.redirect(reqwest::redirect::Policy::none());
    let http = builder.build().map_err(|e| e.to_string())?;
    let body = json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {
            "namespace": namespace, "group": RBAC_GROUP, "resource": client_id, "verb": RBAC_VERB,
        }},
    });
    let url = format!("{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", server.trim_end_matches('/'));
    let resp = http.post(url).bearer_auth(token).json(&body).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| e.to_string())?;
    if bytes.len() > REVIEW_MAX_BYTES {
        return Err(format!("its answer is larger than {REVIEW_MAX_BYTES} bytes"));
    }
    if status.as_u16() == 401 {
        return Err(format!(
            "it did not accept the pod's token (add {BINDING_AUDIENCE} to the API server's --api-audiences)"
        ));
    }
    if !status.is_success() {
        return Err(format!("it answered {status}"));
    }
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| format!("its answer is not JSON: {e}"))?;
    Ok(v.pointer("/status/allowed").and_then(Value::as_bool).unwrap_or(false))
}
