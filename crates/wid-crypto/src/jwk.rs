//! JSON Web Keys (RFC 7517): the [`Jwk`]/[`JwkSet`] wire types, the Kubernetes `kid`
//! derivation, and PEM → JWK conversion (what `azwi jwks` does for a cluster's
//! service-account public key).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{ParsedPublicKey, RsaSubjectPublicKey};
use serde::{Deserialize, Serialize};

use crate::error::{JoseError, sanitize_for_message};
use crate::jose::Alg;
use crate::keys::{EcCurve, PrivateKeyFormat, SigningKey};
use crate::secret::{base64url, sha256};
use crate::{json, pem};

/// Smallest RSA modulus we accept anywhere (RFC 7518 §3.3 requires 2048).
pub(crate) const RSA_MIN_BITS: usize = 2048;
/// Largest RSA modulus aws-lc-rs verifies with.
pub(crate) const RSA_MAX_BITS: usize = 8192;

/// One JSON Web Key. Only the members needed for RSA and EC signature keys are kept;
/// unknown members are ignored when parsing. Field order is the serialization order
/// (`use, kty, kid, crv, alg, n, e, x, y, x5t, x5c`), so output is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `use`: intended use; we only accept `sig` (or absent) for verification.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// `kty`: key type, `RSA` or `EC` for keys we can use.
    pub kty: String,
    /// `kid`: key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// `crv`: EC curve (`P-256`, `P-384`, `P-521`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// `alg`: the one algorithm this key may be used with, if the issuer pinned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// `n`: RSA modulus, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// `e`: RSA public exponent, base64url big-endian.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// `x`: EC x coordinate, base64url, fixed length for the curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// `y`: EC y coordinate, base64url, fixed length for the curve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// `x5t`: SHA-1 thumbprint of the certificate (informational; Entra publishes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5t: Option<String>,
    /// `x5c`: certificate chain, standard base64 DER (informational, never trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x5c: Option<Vec<String>>,
}

/// A JWK Set (`{"keys":[...]}`) as served at an issuer's `jwks_uri`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys, in document order.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// Parse a JWKS document fetched from an issuer.
    ///
    /// Refuses documents over `max_bytes`, invalid JSON, duplicate member names, and a
    /// missing `keys` array. Within `keys`, entries of unknown key types are kept (so the
    /// set round-trips; [`crate::VerifyingKey::from_jwk`] refuses them later), while
    /// entries that are not even JWK-shaped (not an object, no string `kty`, a known
    /// member of the wrong JSON type) are skipped, so one odd key does not make an
    /// issuer's whole key set unusable.
    pub fn parse(bytes: &[u8], max_bytes: usize) -> Result<JwkSet, JoseError> {
        if bytes.len() > max_bytes {
            return Err(JoseError::TooLarge);
        }
        let mut doc = json::parse_object(bytes).map_err(|e| JoseError::Malformed(format!("JWKS: {e}")))?;
        let Some(serde_json::Value::Array(entries)) = doc.remove("keys") else {
            return Err(JoseError::Malformed("JWKS: missing \"keys\" array".to_owned()));
        };
        let keys = entries.into_iter().filter_map(|entry| serde_json::from_value::<Jwk>(entry).ok()).collect();
        Ok(JwkSet { keys })
    }

    /// The keys wid can verify signatures with, each beside its JWK; keys for another use (`use`
    /// other than `sig`, e.g. encryption) and unusable keys are skipped.
    pub fn signing_keys(&self) -> impl Iterator<Item = (&Jwk, crate::VerifyingKey)> {
        self.keys
            .iter()
            .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
            .filter_map(|k| crate::VerifyingKey::from_jwk(k).ok().map(|v| (k, v)))
    }

    /// The first key whose `kid` equals `kid`.
    #[must_use]
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
    }
}

/// The key id kube-apiserver assigns to a service-account signing key:
/// base64url-no-pad(SHA-256(DER SubjectPublicKeyInfo)).
#[must_use]
pub fn kube_kid(spki_der: &[u8]) -> String {
    base64url(&sha256(spki_der))
}

/// Convert the first key in a PEM document to a public JWK with `use: "sig"`, `kid` =
/// [`kube_kid`], and `alg` RS256 / ES256 / ES384 / ES512 by key type.
///
/// Accepts `PUBLIC KEY` (PKIX), `RSA PUBLIC KEY` (PKCS#1), and the private forms
/// `PRIVATE KEY` (PKCS#8), `RSA PRIVATE KEY`, `EC PRIVATE KEY` (reduced to their public
/// half). RSA keys must be at least 2048 bits.
pub fn jwk_from_public_pem(pem: &str) -> Result<Jwk, JoseError> {
    let blocks = pem::parse_all(pem).map_err(JoseError::Malformed)?;
    let first = blocks.first().ok_or_else(|| JoseError::Malformed("no PEM block found".to_owned()))?;
    Ok(public_parts_from_pem_block(first)?.to_jwk())
}

/// Like [`jwk_from_public_pem`] for every block of a PEM bundle (kube-apiserver accepts
/// several `--service-account-key-file` keys; all must be published).
pub fn jwks_from_pem(pem: &str) -> Result<JwkSet, JoseError> {
    let blocks = pem::parse_all(pem).map_err(JoseError::Malformed)?;
    if blocks.is_empty() {
        return Err(JoseError::Malformed("no PEM block found".to_owned()));
    }
    let keys =
        blocks.iter().map(|b| public_parts_from_pem_block(b).map(|p| p.to_jwk())).collect::<Result<Vec<_>, _>>()?;
    Ok(JwkSet { keys })
}

fn public_parts_from_pem_block(block: &pem::PemBlock) -> Result<PublicParts, JoseError> {
    match block.label.as_str() {
        "PUBLIC KEY" => public_parts_from_spki(&block.der),
        "RSA PUBLIC KEY" => {
            let key = RsaSubjectPublicKey::from_der(&block.der)
                .map_err(|e| JoseError::UnsupportedKey(format!("invalid PKCS#1 RSA public key: {e}")))?;
            PublicParts::from_rsa(&key)
        }
        "PRIVATE KEY" => Ok(SigningKey::from_private_der(PrivateKeyFormat::Pkcs8, &block.der)?.public_parts().clone()),
        "RSA PRIVATE KEY" => {
            Ok(SigningKey::from_private_der(PrivateKeyFormat::Pkcs1Rsa, &block.der)?.public_parts().clone())
        }
        "EC PRIVATE KEY" => {
            Ok(SigningKey::from_private_der(PrivateKeyFormat::Sec1Ec, &block.der)?.public_parts().clone())
        }
        other => Err(JoseError::UnsupportedKey(format!(
            "PEM block \"{}\" is not a supported key type",
            sanitize_for_message(other, 40)
        ))),
    }
}

/// Public key from a DER SubjectPublicKeyInfo (RSA or EC).
fn public_parts_from_spki(der: &[u8]) -> Result<PublicParts, JoseError> {
    if let Ok(rsa) = RsaSubjectPublicKey::from_der(der) {
        return PublicParts::from_rsa(&rsa);
    }
    for curve in EcCurve::ALL {
        if let Ok(parsed) = ParsedPublicKey::new(curve.verification_alg(), der) {
            // Re-marshal so the kid is computed over the canonical (uncompressed) SPKI, as
            // Go's x509.MarshalPKIXPublicKey in kube-apiserver does.
            let spki = parsed
                .as_der()
                .map_err(|_| JoseError::UnsupportedKey("cannot encode EC public key".to_owned()))?
                .as_ref()
                .to_vec();
            let point_len = 1 + 2 * curve.coordinate_len();
            let point = spki
                .len()
                .checked_sub(point_len)
                .and_then(|start| spki.get(start..))
                .ok_or_else(|| JoseError::UnsupportedKey("truncated EC public key".to_owned()))?
                .to_vec();
            return PublicParts::from_ec(curve, spki, point);
        }
    }
    Err(JoseError::UnsupportedKey("PUBLIC KEY is neither RSA nor EC P-256/P-384/P-521".to_owned()))
}

/// The public half of a key in the forms JWKs and kids need, computed once.
#[derive(Debug, Clone)]
pub(crate) struct PublicParts {
    /// DER SubjectPublicKeyInfo, the input of [`kube_kid`].
    pub(crate) spki: Vec<u8>,
    pub(crate) kind: PublicKind,
}

#[derive(Debug, Clone)]
pub(crate) enum PublicKind {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: EcCurve, x: Vec<u8>, y: Vec<u8> },
}

impl PublicParts {
    pub(crate) fn from_rsa(key: &RsaSubjectPublicKey) -> Result<Self, JoseError> {
        let n = key.modulus().big_endian_without_leading_zero().to_vec();
        let e = key.exponent().big_endian_without_leading_zero().to_vec();
        check_rsa_modulus_bits(&n)?;
        let spki = key
            .as_der()
            .map_err(|_| JoseError::UnsupportedKey("cannot encode RSA public key".to_owned()))?
            .as_ref()
            .to_vec();
        Ok(PublicParts { spki, kind: PublicKind::Rsa { n, e } })
    }

    /// `point` is the uncompressed SEC1 point `0x04 || x || y`.
    pub(crate) fn from_ec(curve: EcCurve, spki: Vec<u8>, point: Vec<u8>) -> Result<Self, JoseError> {
        let bad = || JoseError::UnsupportedKey("EC public key is not an uncompressed point".to_owned());
        let (&tag, coords) = point.split_first().ok_or_else(bad)?;
        if tag != 0x04 || coords.len() != 2 * curve.coordinate_len() {
            return Err(bad());
        }
        let (x, y) = coords.split_at_checked(curve.coordinate_len()).ok_or_else(bad)?;
        Ok(PublicParts { spki, kind: PublicKind::Ec { curve, x: x.to_vec(), y: y.to_vec() } })
    }

    pub(crate) fn default_alg(&self) -> Alg {
        match &self.kind {
            PublicKind::Rsa { .. } => Alg::Rs256,
            PublicKind::Ec { curve, .. } => curve.alg(),
        }
    }

    pub(crate) fn to_jwk(&self) -> Jwk {
        let common = Jwk {
            use_: Some("sig".to_owned()),
            kid: Some(kube_kid(&self.spki)),
            alg: Some(self.default_alg().as_str().to_owned()),
            ..Jwk::default()
        };
        match &self.kind {
            PublicKind::Rsa { n, e } => {
                Jwk { kty: "RSA".to_owned(), n: Some(base64url(n)), e: Some(base64url(e)), ..common }
            }
            PublicKind::Ec { curve, x, y } => Jwk {
                kty: "EC".to_owned(),
                crv: Some(curve.jwk_crv().to_owned()),
                x: Some(base64url(x)),
                y: Some(base64url(y)),
                ..common
            },
        }
    }
}

/// Bit length of a big-endian unsigned integer with leading zero bytes already removed.
pub(crate) fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        None => 0,
        Some(&first) => (be.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// Refuse RSA moduli outside 2048..=8192 bits with a reason a caller can act on.
pub(crate) fn check_rsa_modulus_bits(n: &[u8]) -> Result<usize, JoseError> {
    let bits = bit_len(n);
    if bits < RSA_MIN_BITS {
        return Err(JoseError::UnsupportedKey(format!(
            "RSA key of {bits} bits is below the {RSA_MIN_BITS}-bit minimum"
        )));
    }
    if bits > RSA_MAX_BITS {
        return Err(JoseError::UnsupportedKey(format!(
            "RSA key of {bits} bits is above the {RSA_MAX_BITS}-bit maximum"
        )));
    }
    Ok(bits)
}
