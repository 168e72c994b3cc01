//! What the management plane needs from the token service for clusters whose OIDC issuer wid hosts:
//! their signing keys, and the service-account tokens `aks get-token` mints with them. The token
//! service implements [`HostedIssuers`]; the trait lives here so the two services stay peers.

use uuid::Uuid;

use crate::model::Cluster;

/// Why a hosted issuer's key or token could not be had (always a server-side fault).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct IssuerError(pub String);

/// Signing keys and tokens of hosted cluster issuers.
pub trait HostedIssuers: Send + Sync {
    /// The kid of the cluster's current signing key; one is created (at `now`) if it has none.
    fn ensure_signing_key(&self, cluster_id: &Uuid, now: i64) -> Result<String, IssuerError>;

    /// Deletes every signing key of the cluster (its tokens stop verifying).
    fn remove_signing_keys(&self, cluster_id: &Uuid) -> Result<(), IssuerError>;

    /// A TokenRequest-style service-account token from the cluster's issuer, and its expiry (Unix
    /// seconds): what `kubectl create token` gives on that cluster.
    fn mint_service_account_token(
        &self,
        cluster: &Cluster,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
        lifetime: i64,
    ) -> Result<(String, i64), IssuerError>;
}
