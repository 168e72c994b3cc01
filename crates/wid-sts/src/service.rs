//! The exchange itself, access-token verification for wid's own resources, and service-account
//! token minting for hosted cluster issuers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use uuid::Uuid;
use wid_core::directory::Directory;
use wid_core::fic::{self, NoMatch, Presented};
use wid_core::issuer::{HostedIssuers, IssuerError};
use wid_core::model::{Cluster, ClusterIssuer};
use wid_core::{Caller, Clock, VerifyError};
use wid_crypto::jwk::JwkSet;
use wid_crypto::keys::SigningKey;
use wid_crypto::{JoseError, Jws, parse_compact};

use crate::cache::{KeyParts, TokenCache, VerifiedTokens};
use crate::error::StsError;
use crate::issuer::{FetchConfig, IssuerCache, IssuerKey, LookupError, keys_from_jwks, select};
use crate::keys::{KeyRing, STS_PURPOSE, cluster_purpose};
use crate::request::{TokenRequest, resource_of};
use crate::tokens::{AccessSubject, access_claims, service_account_claims, sign};

/// The jwt-bearer assertion type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest assertion lifetime Entra accepts (1.01:00:00).
pub const MAX_ASSERTION_LIFETIME: i64 = 25 * 3600;

/// Settings of the token service.
#[derive(Debug, Clone)]
pub struct StsConfig {
    pub tenant_id: Uuid,
    /// `https://HOST[:PORT]`, no trailing slash.
    pub public_url: String,
    /// Resources tokens are issued for, without trailing slash (management API, Key Vault).
    pub resources: Vec<String>,
    /// Lifetime of managed-identity tokens (24 h by default, as Entra).
    pub token_lifetime_secs: i64,
    /// Lifetime of tokens for client-secret principals.
    pub app_token_lifetime_secs: i64,
    /// Allowed clock difference with assertion issuers.
    pub clock_skew_secs: i64,
    /// Largest assertion accepted.
    pub max_assertion_bytes: usize,
    /// Access tokens kept for warm exchanges (the same client, assertion and resource again); 0 turns
    /// the cache off. See [`crate::cache`].
    pub token_cache_entries: usize,
    pub fetch: FetchConfig,
}

impl StsConfig {
    /// The `iss` of access tokens (v1 style, trailing slash).
    pub fn access_issuer(&self) -> String {
        format!("{}/{}/", self.public_url, self.tenant_id)
    }
}

/// A successful exchange.
#[derive(Clone)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    /// Object id of the principal the token was issued to (for the audit trail).
    pub principal_id: Uuid,
    /// What admitted the client: `federated credential '{name}'` or `client secret`.
    pub admitted_by: String,
    /// The resource (audience) of the token.
    pub resource: String,
}

/// The token service.
pub struct TokenService {
    pub(crate) cfg: StsConfig,
    directory: Arc<RwLock<Directory>>,
    keys: Arc<KeyRing>,
    issuers: IssuerCache,
    uploaded: Mutex<HashMap<String, (String, Vec<IssuerKey>)>>,
    clock: Arc<dyn Clock>,
    cache: TokenCache,
    verified: VerifiedTokens,
}

pub(crate) struct Assertion {
    pub(crate) jws: Jws,
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: Vec<String>,
}

impl TokenService {
    /// Builds the service.
    pub fn new(
        cfg: StsConfig,
        directory: Arc<RwLock<Directory>>,
        keys: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let issuers = IssuerCache::new(cfg.fetch.clone())?;
        let cache = TokenCache::new(cfg.token_cache_entries);
        Ok(Self {
            cfg,
            directory,
            keys,
            issuers,
            uploaded: Mutex::new(HashMap::new()),
            clock,
            cache,
            verified: VerifiedTokens::new(VerifiedTokens::CAPACITY),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &StsConfig {
        &self.cfg
    }

    /// The key ring.
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    pub(crate) fn read_dir(&self) -> std::sync::RwLockReadGuard<'_, Directory> {
        self.directory.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The checks every token request passes first (the token endpoint's and the token proxy's):
    /// the tenant, the grant, and the client id and resource it names.
    pub(crate) fn check_request<'r>(&self, tenant: &str, req: &'r TokenRequest) -> Result<(&'r str, String), StsError> {
        if !tenant.eq_ignore_ascii_case(&self.cfg.tenant_id.to_string()) {
            return Err(StsError::UnknownTenant(tenant.to_string()));
        }
        let grant = req.grant_type.as_deref().ok_or(StsError::MissingParameter("grant_type"))?;
        if grant != "client_credentials" {
            return Err(StsError::UnsupportedGrantType(grant.to_string()));
        }
        let client = req.client_id.as_deref().ok_or(StsError::MissingParameter("client_id"))?;
        let scope = req.scope.as_deref().ok_or(StsError::MissingParameter("scope"))?;
        let resource = resource_of(scope)?;
        if !self.cfg.resources.iter().any(|r| r.eq_ignore_ascii_case(&resource)) {
            return Err(StsError::UnknownResource(resource));
        }
        Ok((client, resource))
    }

    /// Handles `POST /{tenant}/oauth2/v2.0/token`.
    pub async fn exchange(&self, tenant: &str, req: TokenRequest) -> Result<TokenResponse, StsError> {
        let (client, resource) = self.check_request(tenant, &req)?;
        let client_id = Uuid::parse_str(client.trim()).map_err(|_| StsError::UnknownClient(client.to_string()))?;
        let cp1 = req.claims.as_deref().is_some_and(|c| c.to_ascii_lowercase().contains("cp1"));
        match (&req.client_assertion, &req.client_secret) {
            (Some(assertion), _) => {
                match req.client_assertion_type.as_deref() {
                    None => return Err(StsError::MissingParameter("client_assertion_type")),
                    Some(JWT_BEARER) => {}
                    Some(other) => return Err(StsError::BadAssertionType(other.to_string())),
                }
                self.exchange_assertion(client_id, assertion, &resource, cp1).await
            }
            (None, Some(secret)) => self.exchange_secret(client_id, secret, &resource, cp1),
            (None, None) => Err(StsError::NoClientCredential),
        }
    }

    fn exchange_secret(
        &self,
        client_id: Uuid,
        secret: &str,
        resource: &str,
        cp1: bool,
    ) -> Result<TokenResponse, StsError> {
        let principal = {
            let dir = self.read_dir();
            match dir.app_by_client(&client_id) {
                Some(app) if wid_crypto::secret::verify_client_secret(secret, &app.secret_hash) => app.principal_id,
                Some(_) => return Err(StsError::InvalidClientSecret(client_id.to_string())),
                None if dir.identity_by_client(&client_id).is_some() => {
                    return Err(StsError::InvalidClientSecret(client_id.to_string()));
                }
                None => return Err(StsError::UnknownClient(client_id.to_string())),
            }
        };
        let subject = AccessSubject { client_id, principal_id: principal, mirid: None, appidacr: "1", cp1 };
        self.mint(resource, &subject, self.cfg.app_token_lifetime_secs, "client secret".into())
    }

    async fn exchange_assertion(
        &self,
        client_id: Uuid,
        raw: &str,
        resource: &str,
        cp1: bool,
    ) -> Result<TokenResponse, StsError> {
        {
            let dir = self.read_dir();
            if dir.identity_by_client(&client_id).is_none() {
                return Err(match dir.app_by_client(&client_id) {
                    Some(_) => StsError::NoFederatedCredentials { client_id: client_id.to_string() },
                    None => StsError::UnknownClient(client_id.to_string()),
                });
            }
        }
        let a = self.parse_assertion(raw)?;
        self.check_times(&a.jws)?;
        // Decide against the credentials under the read lock (no copy of them per exchange); the
        // outcome of the subject/audience match is kept and revealed only after the signature.
        let (principal_id, mirid, matched) = {
            let dir = self.read_dir();
            let Some(e) = dir.identity_by_client(&client_id) else {
                return Err(StsError::UnknownClient(client_id.to_string()));
            };
            let creds = &e.credentials;
            if creds.is_empty() {
                return Err(StsError::NoFederatedCredentials { client_id: client_id.to_string() });
            }
            let auds: Vec<&str> = a.aud.iter().map(String::as_str).collect();
            let presented = Presented { issuer: &a.iss, subject: &a.sub, audiences: &auds, claims: &a.jws.claims };
            let matched = match creds.find(&presented) {
                Ok(c) => Ok(c.name.clone()),
                // No credential names the token's issuer: refused before its signature is checked
                // (an issuer no credential names is never fetched).
                Err(why @ NoMatch::Issuer { .. }) => return Err(no_match(why, &a)),
                Err(why) => Err(no_match(why, &a)),
            };
            (e.identity.principal_id, e.identity.arm_id(), matched)
        };
        // Only a token genuinely signed by a trusted issuer learns which subject/audience is expected.
        self.verify_signature(&a).await?;
        let matched = matched?;
        let admitted_by = format!("federated credential '{matched}'");
        let subject = AccessSubject { client_id, principal_id, mirid: Some(&mirid), appidacr: "2", cp1 };
        let key = self.keys.signer(STS_PURPOSE).ok_or_else(|| StsError::Internal("no active signing key".into()))?;
        // Everything above ran against the current configuration; the cache only saves the signature.
        let cache_key = self.cache.enabled().then(|| {
            KeyParts {
                client_id: &client_id,
                principal_id: &principal_id,
                mirid: &mirid,
                resource,
                cp1,
                kid: key.kid(),
                credential: &matched,
                assertion: raw,
            }
            .key()
        });
        let now = self.clock.now();
        if let Some(hit) = cache_key.as_ref().and_then(|k| self.cache.get(k, now)) {
            return Ok(TokenResponse {
                access_token: hit.token,
                expires_in: hit.remaining,
                principal_id,
                admitted_by: format!("{admitted_by} (token reused)"),
                resource: resource.to_string(),
            });
        }
        let lifetime = self.cfg.token_lifetime_secs;
        let resp = self.mint_with(&key, now, resource, &subject, lifetime, admitted_by)?;
        if let Some(k) = cache_key {
            self.cache.put(k, &resp.access_token, now, now.saturating_add(lifetime));
        }
        Ok(resp)
    }

    pub(crate) fn parse_assertion(&self, raw: &str) -> Result<Assertion, StsError> {
        let jws = parse_compact(raw, self.cfg.max_assertion_bytes).map_err(|e| match e {
            JoseError::UnsupportedAlgorithm(alg) => StsError::BadSignature(format!(
                "the algorithm '{alg}' is not accepted (RS256/384/512, PS256/384/512 and ES256/384/512 are)"
            )),
            other => StsError::MalformedAssertion(other.to_string()),
        })?;
        let text = |name: &str| {
            jws.claim_str(name)
                .map(str::to_string)
                .ok_or_else(|| StsError::MalformedAssertion(format!("the '{name}' claim is missing or not a string")))
        };
        let (iss, sub) = (text("iss")?, text("sub")?);
        let aud: Vec<String> = jws.audiences().into_iter().map(str::to_string).collect();
        if aud.is_empty() {
            return Err(StsError::MalformedAssertion("the 'aud' claim is missing".into()));
        }
        Ok(Assertion { jws, iss, sub, aud })
    }

    pub(crate) fn check_times(&self, jws: &Jws) -> Result<(), StsError> {
        let num = |name: &str| {
            jws.claim_i64(name)
                .ok_or_else(|| StsError::MalformedAssertion(format!("the '{name}' claim is missing or not a number")))
        };
        let (iat, exp) = (num("iat")?, num("exp")?);
        if jws.claims.contains_key("nbf") && jws.claim_i64("nbf").is_none() {
            return Err(StsError::MalformedAssertion("the 'nbf' claim is not a number".into()));
        }
        let nbf = jws.claim_i64("nbf").unwrap_or(iat);
        if exp.saturating_sub(iat) > MAX_ASSERTION_LIFETIME {
            return Err(StsError::AssertionLifetime { iat, exp });
        }
        let now = self.clock.now();
        let skew = self.cfg.clock_skew_secs;
        if now.saturating_add(skew) < nbf.max(iat) || now.saturating_sub(skew) >= exp {
            return Err(StsError::AssertionTime { now, nbf, exp });
        }
        Ok(())
    }

    pub(crate) async fn verify_signature(&self, a: &Assertion) -> Result<(), StsError> {
        let kid = a.jws.header.kid.as_deref();
        let keys = self.issuer_keys(&a.iss, kid).await?;
        let mut last = None;
        for k in &keys {
            match a.jws.verify(&k.key) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        let why = last.map(|e| e.to_string()).unwrap_or_else(|| "no usable key".into());
        Err(StsError::BadSignature(why))
    }

    async fn issuer_keys(&self, iss: &str, kid: Option<&str>) -> Result<Vec<IssuerKey>, StsError> {
        let unknown = || StsError::UnknownKey { kid: kid.unwrap_or("(none)").to_string(), issuer: iss.to_string() };
        let registered = self.read_dir().cluster_by_issuer(iss).map(|c| (c.issuer.clone(), c.cluster_id));
        match registered {
            Some((ClusterIssuer::Hosted { .. }, cluster_id)) => {
                let purpose = cluster_purpose(&cluster_id);
                let keys: Vec<IssuerKey> = match kid {
                    Some(kid) => self.keys.verifier(&purpose, kid).into_iter().collect::<Vec<_>>(),
                    None => self.keys.verifiers(&purpose),
                }
                .into_iter()
                .map(|key| IssuerKey { kid: kid.map(str::to_string), x5t: None, key })
                .collect();
                if keys.is_empty() { Err(unknown()) } else { Ok(keys) }
            }
            Some((ClusterIssuer::External { jwks: Some(jwks), .. }, _)) => {
                let mut cache = self.uploaded.lock().unwrap_or_else(|p| p.into_inner());
                let stale = cache.get(iss).is_none_or(|(src, _)| *src != jwks);
                if stale {
                    let set = JwkSet::parse(jwks.as_bytes(), usize::MAX).map_err(|e| StsError::IssuerUnavailable {
                        issuer: iss.to_string(),
                        reason: format!("the uploaded JWKS is invalid: {e}"),
                    })?;
                    cache.insert(iss.to_string(), (jwks.clone(), keys_from_jwks(&set)));
                }
                let keys = cache.get(iss).map(|(_, k)| select(k, kid)).unwrap_or_default();
                if keys.is_empty() { Err(unknown()) } else { Ok(keys) }
            }
            Some((ClusterIssuer::External { jwks: None, .. }, _)) | None => {
                match self.issuers.keys(iss, kid, self.clock.now()).await {
                    Ok(keys) => Ok(keys),
                    Err(LookupError::UnknownKey) => Err(unknown()),
                    Err(LookupError::Unavailable(reason)) => {
                        Err(StsError::IssuerUnavailable { issuer: iss.to_string(), reason })
                    }
                }
            }
        }
    }

    pub(crate) fn mint(
        &self,
        resource: &str,
        subject: &AccessSubject<'_>,
        lifetime: i64,
        admitted_by: String,
    ) -> Result<TokenResponse, StsError> {
        let key = self.keys.signer(STS_PURPOSE).ok_or_else(|| StsError::Internal("no active signing key".into()))?;
        self.mint_with(&key, self.clock.now(), resource, subject, lifetime, admitted_by)
    }

    fn mint_with(
        &self,
        key: &SigningKey,
        now: i64,
        resource: &str,
        subject: &AccessSubject<'_>,
        lifetime: i64,
        admitted_by: String,
    ) -> Result<TokenResponse, StsError> {
        let claims = access_claims(&self.cfg.access_issuer(), &self.cfg.tenant_id, resource, subject, now, lifetime);
        let access_token = sign(key, &claims, true).map_err(|e| StsError::Internal(e.to_string()))?;
        Ok(TokenResponse {
            access_token,
            expires_in: lifetime,
            principal_id: subject.principal_id,
            admitted_by,
            resource: resource.to_string(),
        })
    }

    /// Verifies an access token that wid issued, for one of wid's resources (`audience` without
    /// trailing slash; a token whose `aud` has one is accepted too).
    pub fn verify_access_token(&self, token: &str, audience: &str) -> Result<Caller, VerifyError> {
        let jws = parse_compact(token, 16 * 1024).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let kid = jws.header.kid.clone().unwrap_or_default();
        let key = self.keys.verifier(STS_PURPOSE, &kid).ok_or_else(|| VerifyError::Signature(kid.clone()))?;
        let seen = VerifiedTokens::key(token);
        if !self.verified.verified(&seen, &key) {
            jws.verify(&key).map_err(|_| VerifyError::Signature(kid.clone()))?;
            self.verified.put(seen, &key);
        }
        let iss = jws.claim_str("iss").unwrap_or_default();
        if iss != self.cfg.access_issuer() {
            return Err(VerifyError::Issuer(iss.to_string()));
        }
        let aud = jws.claim_str("aud").unwrap_or_default();
        if !aud.trim_end_matches('/').eq_ignore_ascii_case(audience.trim_end_matches('/')) {
            return Err(VerifyError::Audience { got: aud.to_string(), want: audience.to_string() });
        }
        if jws.claim_str("tid") != Some(self.cfg.tenant_id.to_string().as_str()) {
            return Err(VerifyError::Tenant);
        }
        let now = self.clock.now();
        let exp = jws.claim_i64("exp").ok_or(VerifyError::Expired)?;
        if now >= exp {
            return Err(VerifyError::Expired);
        }
        if jws.claim_i64("nbf").is_some_and(|nbf| nbf > now + 300) {
            return Err(VerifyError::NotYetValid);
        }
        let id = |name: &str| {
            jws.claim_str(name)
                .and_then(|s| Uuid::parse_str(s).ok())
                .ok_or_else(|| VerifyError::Malformed(format!("'{name}' is missing or not a GUID")))
        };
        Ok(Caller { principal_id: id("oid")?, client_id: id("appid")?, issuer: iss.to_string() })
    }
}

impl HostedIssuers for TokenService {
    fn ensure_signing_key(&self, cluster_id: &Uuid, now: i64) -> Result<String, IssuerError> {
        let purpose = cluster_purpose(cluster_id);
        match self.keys.signer(&purpose) {
            Some(k) => Ok(k.kid().to_string()),
            None => self.keys.create(&purpose, now).map_err(|e| IssuerError(e.to_string())),
        }
    }

    fn remove_signing_keys(&self, cluster_id: &Uuid) -> Result<(), IssuerError> {
        self.keys.remove(&cluster_purpose(cluster_id)).map_err(|e| IssuerError(e.to_string()))
    }

    fn mint_service_account_token(
        &self,
        cluster: &Cluster,
        namespace: &str,
        service_account: &str,
        audiences: &[String],
        lifetime: i64,
    ) -> Result<(String, i64), IssuerError> {
        let key = self
            .keys
            .signer(&cluster_purpose(&cluster.cluster_id))
            .ok_or_else(|| IssuerError(format!("cluster {} has no signing key", cluster.cluster_id)))?;
        let now = self.clock.now();
        let claims = service_account_claims(
            cluster.issuer.issuer_url(),
            &cluster.cluster_id,
            namespace,
            service_account,
            audiences,
            now,
            lifetime,
        );
        let token = sign(&key, &claims, false).map_err(|e| IssuerError(e.to_string()))?;
        Ok((token, now + lifetime))
    }
}

fn no_match(why: NoMatch, a: &Assertion) -> StsError {
    let hint = |c: Option<fic::Closest>| {
        c.map(|c| format!("The closest federated credential is '{}': {}. ", c.name, c.reason)).unwrap_or_default()
    };
    match why {
        NoMatch::NoCredentials => StsError::Internal("no credentials after check".into()),
        NoMatch::Issuer { closest } => StsError::IssuerMismatch { issuer: a.iss.clone(), hint: hint(closest) },
        NoMatch::Subject { case_only, closest } => {
            StsError::SubjectMismatch { subject: a.sub.clone(), case_only, hint: hint(closest) }
        }
        NoMatch::Audience { closest } => StsError::AudienceMismatch { audiences: a.aud.clone(), hint: hint(closest) },
    }
}
