//! The benchmark's Kubernetes cluster, as far as tokens go: an RSA-2048 service-account signing key
//! (as kube-apiserver's), tokens shaped like TokenRequest's, and the public key as a JWKS (for wid's
//! uploaded-JWKS cluster registration) and as a PEM (for OpenBao's `jwt_validation_pubkeys`). Both
//! verify the very same tokens with the very same key.

use std::sync::Arc;

use anyhow::Context;
use base64::Engine;
use serde_json::{Value, json};
use wid_crypto::{Alg, SigningKey, encode_compact};

pub const ISSUER: &str = "https://bench-cluster.example/issuer/";
pub const AUDIENCE: &str = "api://AzureADTokenExchange";
pub const NAMESPACE: &str = "bench";

/// The subject of bench identity `i`'s service account.
pub fn subject(i: usize) -> String {
    format!("system:serviceaccount:{NAMESPACE}:sa-{i}")
}

pub struct Cluster {
    key: SigningKey,
}

impl Cluster {
    pub fn new() -> anyhow::Result<Self> {
        Ok(Self { key: SigningKey::generate_rsa(2048).context("RSA key")? })
    }

    /// The JWKS wid gets at registration.
    pub fn jwks(&self) -> Value {
        json!({"keys": [self.key.public_jwk()]})
    }

    /// The public key as PEM (`PUBLIC KEY`, SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(self.key.spki_der());
        let lines: Vec<&str> = b64.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
    }

    /// A service-account token for bench identity `i` (valid 1 h from now, unique `jti`).
    pub fn token(&self, i: usize, now: i64) -> anyhow::Result<String> {
        let claims = json!({
            "aud": [AUDIENCE],
            "exp": now + 3600,
            "iat": now,
            "iss": ISSUER,
            "jti": uuid::Uuid::new_v4().to_string(),
            "kubernetes.io": {"namespace": NAMESPACE, "serviceaccount": {"name": format!("sa-{i}"), "uid": uuid::Uuid::new_v4().to_string()}},
            "nbf": now,
            "sub": subject(i),
        });
        encode_compact(&json!({"alg": "RS256", "kid": self.key.kid()}), &claims, &self.key, Alg::Rs256)
            .context("signing a service-account token")
    }

    /// `count` one-use tokens for identities `0..identities` round robin, signed on every core.
    pub fn token_pool(
        self: &Arc<Self>,
        identities: usize,
        count: usize,
        now: i64,
    ) -> anyhow::Result<Vec<(usize, String)>> {
        let threads = std::thread::available_parallelism().map_or(2, usize::from).max(1);
        let per = count.div_ceil(threads);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let me = self.clone();
                std::thread::spawn(move || -> anyhow::Result<Vec<(usize, String)>> {
                    let lo = t * per;
                    let hi = (lo + per).min(count);
                    (lo..hi).map(|n| Ok((n % identities, me.token(n % identities, now)?))).collect()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(count);
        for h in handles {
            let part = h.join().map_err(|_| anyhow::anyhow!("token signer panicked"))??;
            out.extend(part);
        }
        Ok(out)
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
