//! The token service on a temp SQLite store, a fixed clock and an in-memory directory, with no
//! server around it: a hosted cluster's service-account token exchanged for an access token, the
//! refusals that depend on time, subject and audience, the warm-exchange cache, and the access
//! token's own verification over time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::sync::{Arc, RwLock};

use uuid::Uuid;
use wid_core::directory::Directory;
use wid_core::fic::{DEFAULT_AUDIENCE, FederatedCredential};
use wid_core::issuer::HostedIssuers;
use wid_core::model::{Cluster, ClusterIssuer, Identity, Tags};
use wid_core::{FixedClock, VerifyError};
use wid_crypto::MasterKey;
use wid_store::{SqliteStore, Store};
use wid_sts::issuer::FetchConfig;
use wid_sts::keys::{KeyRing, STS_PURPOSE};

use wid_sts::{JWT_BEARER, StsConfig, StsError, TokenRequest, TokenResponse, TokenService};

const T0: i64 = 1_700_000_000;
const URL: &str = "https://localhost:8443";
const RESOURCE: &str = "https://vault.localhost:8443";
const SUBJECT: &str = "system:serviceaccount:default:workload-identity-sa";
const LIFETIME: i64 = 86_400;

struct Env {
    sts: TokenService,
    clock: Arc<FixedClock>,
    cluster: Cluster,
    tenant: Uuid,
    client_id: Uuid,
    principal_id: Uuid,
}

/// A token service with one hosted cluster and one identity federated with its
/// `workload-identity-sa` service account.
fn env() -> Env {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
    let master = Arc::new(MasterKey::generate().unwrap());
    let clock = Arc::new(FixedClock::new(T0));
    let keys = Arc::new(KeyRing::load(store, master, T0).unwrap());
    keys.create(STS_PURPOSE, T0).unwrap();
    let tenant = Uuid::new_v4();
    let sub = Uuid::new_v4();
    let cfg = StsConfig {
        tenant_id: tenant,
        public_url: URL.into(),
        resources: vec![URL.into(), RESOURCE.into()],
        token_lifetime_secs: LIFETIME,
        app_token_lifetime_secs: 3_600,
        clock_skew_secs: 300,
        max_assertion_bytes: 32 * 1024,
        token_cache_entries: 100,
        fetch: FetchConfig::default(),
    };
    let directory = Arc::new(RwLock::new(Directory::default()));
    let sts = TokenService::new(cfg, directory.clone(), keys, clock.clone()).unwrap();

    let cluster_id = Uuid::new_v4();
    let kid = sts.ensure_signing_key(&cluster_id, T0).unwrap();
    let cluster = Cluster {
        subscription: sub,
        resource_group: "rg".into(),
        name: "c".into(),
        location: "eastus".into(),
        tags: Tags::new(),
        cluster_id,
        issuer: ClusterIssuer::Hosted { issuer_url: format!("{URL}/oidc/{tenant}/{cluster_id}/"), kid },
        workload_identity: true,
        extras: Default::default(),
        created: T0,
        updated: T0,
    };
    let (client_id, principal_id) = (Uuid::new_v4(), Uuid::new_v4());
    let identity = Identity {
        subscription: sub,
        resource_group: "rg".into(),
        name: "id".into(),
        location: "eastus".into(),
        tags: Tags::new(),
        tenant_id: tenant,
        client_id,
        principal_id,
        created: T0,
        updated: T0,
    };
    let key = identity.key();
    let credential = FederatedCredential {
        name: "fic".into(),
        issuer: cluster.issuer.issuer_url().into(),
        subject: Some(SUBJECT.into()),
        claims_matching_expression: None,
        audiences: vec![DEFAULT_AUDIENCE.into()],
        description: None,
    };
    {
        let mut dir = directory.write().unwrap();
        dir.put_cluster(cluster.clone());
        dir.put_identity(identity);
        dir.put_credential(&key, credential);
    }
    Env { sts, clock, cluster, tenant, client_id, principal_id }
}

impl Env {
    /// A token of the hosted cluster's service account `service_account` in `default`, issued now.
    fn sa_token(&self, service_account: &str, audience: &str, lifetime: i64) -> String {
        self.sts
            .mint_service_account_token(&self.cluster, "default", service_account, &[audience.into()], lifetime)
            .unwrap()
            .0
    }

    async fn exchange(&self, assertion: &str) -> Result<TokenResponse, StsError> {
        let body = serde_urlencoded::to_string([
            ("grant_type", "client_credentials"),
            ("client_id", &self.client_id.to_string()),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
            ("scope", &format!("{RESOURCE}/.default")),
        ])
        .unwrap();
        self.sts.exchange(&self.tenant.to_string(), TokenRequest::parse(body.as_bytes()).unwrap()).await
    }
}

fn aadsts(e: &StsError) -> u32 {
    e.to_wire("t").code
}

#[tokio::test]
async fn a_hosted_clusters_token_buys_an_access_token_that_verifies_until_it_expires() {
    let e = env();
    let issued = e.exchange(&e.sa_token("workload-identity-sa", DEFAULT_AUDIENCE, 3600)).await.unwrap();
    assert_eq!(issued.expires_in, LIFETIME);
    assert_eq!(issued.principal_id, e.principal_id);
    assert_eq!(issued.admitted_by, "federated credential 'fic'");
    let caller = e.sts.verify_access_token(&issued.access_token, RESOURCE).unwrap();
    assert_eq!((caller.principal_id, caller.client_id), (e.principal_id, e.client_id));
    assert!(matches!(e.sts.verify_access_token(&issued.access_token, URL), Err(VerifyError::Audience { .. })));
    e.clock.advance(LIFETIME);
    assert_eq!(e.sts.verify_access_token(&issued.access_token, RESOURCE), Err(VerifyError::Expired));
}

#[tokio::test]
async fn an_expired_assertion_is_refused_only_past_the_clock_skew() {
    let e = env();
    let assertion = e.sa_token("workload-identity-sa", DEFAULT_AUDIENCE, 600);
    e.clock.advance(600 + 299);
    assert!(e.exchange(&assertion).await.is_ok(), "within the 5-minute skew");
    e.clock.advance(2);
    let refused = e.exchange(&assertion).await.err().expect("refused");
    assert_eq!(aadsts(&refused), 700_024, "{refused:?}");
}

#[tokio::test]
async fn subject_and_audience_must_match_the_credential() {
    let e = env();
    let other_sa = e.exchange(&e.sa_token("other-sa", DEFAULT_AUDIENCE, 3600)).await.err().expect("refused");
    assert_eq!(aadsts(&other_sa), 700_213, "{other_sa:?}");
    let description = other_sa.to_wire("t").description;
    assert!(description.contains("'fic'"), "the closest credential is named: {description}");
    let other_aud = e.exchange(&e.sa_token("workload-identity-sa", "api://other", 3600)).await.err().expect("refused");
    assert_eq!(aadsts(&other_aud), 700_212, "{other_aud:?}");
}

#[tokio::test]
async fn a_warm_exchange_returns_the_same_token_with_its_remaining_lifetime() {
    let e = env();
    let assertion = e.sa_token("workload-identity-sa", DEFAULT_AUDIENCE, 24 * 3600);
    let first = e.exchange(&assertion).await.unwrap();
    e.clock.advance(60);
    let again = e.exchange(&assertion).await.unwrap();
    assert_eq!(again.access_token, first.access_token);
    assert_eq!(again.expires_in, first.expires_in - 60);
    // Once it has lost 10 % of its lifetime the cached token is no longer handed out.
    e.clock.advance(LIFETIME / 10);
    let fresh = e.exchange(&assertion).await.unwrap();
    assert_ne!(fresh.access_token, first.access_token);
    assert_eq!(fresh.expires_in, LIFETIME);
}
