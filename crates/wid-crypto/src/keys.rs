//! Private signing keys for the tokens wid issues.
//!
//! The key material lives inside aws-lc `EVP_PKEY` objects; aws-lc's `OPENSSL_free`
//! cleanses every allocation it releases, so dropping a [`SigningKey`] wipes the private
//! key. Serialized forms we hand out ([`SigningKey::to_pkcs8_der`]) are `Zeroizing`.

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm, KeyPair as _, RsaEncoding, RsaKeyPair,
};
use zeroize::Zeroizing;

use crate::error::JoseError;
use crate::jose::{Alg, VerifyingKey};
use crate::jwk::{Jwk, PublicParts, kube_kid};
use crate::pem;

/// NIST curves for ECDSA keys (JWA `crv` values `P-256`, `P-384`, `P-521`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EcCurve {
    /// P-256, used with ES256.
    P256,
    /// P-384, used with ES384.
    P384,
    /// P-521, used with ES512.
    P521,
}

impl EcCurve {
    /// Every supported curve.
    pub const ALL: [EcCurve; 3] = [EcCurve::P256, EcCurve::P384, EcCurve::P521];

    /// The JWK `crv` name.
    #[must_use]
    pub fn jwk_crv(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
            EcCurve::P521 => "P-521",
        }
    }

    /// Parse a JWK `crv` name.
    #[must_use]
    pub fn from_jwk_crv(crv: &str) -> Option<EcCurve> {
        EcCurve::ALL.into_iter().find(|c| c.jwk_crv() == crv)
    }

    /// The one JWS algorithm defined for this curve.
    #[must_use]
    pub fn alg(self) -> Alg {
        match self {
            EcCurve::P256 => Alg::Es256,
            EcCurve::P384 => Alg::Es384,
            EcCurve::P521 => Alg::Es512,
        }
    }

    /// Length in bytes of one coordinate (and of `r`/`s` in a JWS signature).
    #[must_use]
    pub fn coordinate_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
            EcCurve::P521 => 66,
        }
    }

    /// JWS uses the fixed-size `r || s` signature encoding, not ASN.1.
    pub(crate) fn signing_alg(self) -> &'static EcdsaSigningAlgorithm {
        match self {
            EcCurve::P256 => &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            EcCurve::P384 => &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            EcCurve::P521 => &signature::ECDSA_P521_SHA512_FIXED_SIGNING,
        }
    }

    pub(crate) fn verification_alg(self) -> &'static EcdsaVerificationAlgorithm {
        match self {
            EcCurve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            EcCurve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
            EcCurve::P521 => &signature::ECDSA_P521_SHA512_FIXED,
        }
    }
}

/// Encodings a private key can arrive in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrivateKeyFormat {
    /// `PRIVATE KEY`: PKCS#8 / RFC 5208, RSA or EC.
    Pkcs8,
    /// `RSA PRIVATE KEY`: PKCS#1 / RFC 8017.
    Pkcs1Rsa,
    /// `EC PRIVATE KEY`: SEC1 / RFC 5915.
    Sec1Ec,
}

enum Inner {
    Rsa(RsaKeyPair),
    Ec { curve: EcCurve, pair: EcdsaKeyPair },
}

/// A private key that signs JWS tokens: RSA (2048–8192 bits; generated at 2048/3072/4096)
/// or ECDSA on P-256/P-384/P-521.
///
/// No `Clone` (share it behind an `Arc`) and a `Debug` that shows only `kid` and `alg`.
pub struct SigningKey {
    kid: String,
    public: PublicParts,
    inner: Inner,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.default_alg()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generate an RSA key of 2048, 3072 or 4096 bits.
    pub fn generate_rsa(bits: usize) -> Result<Self, JoseError> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            4096 => KeySize::Rsa4096,
            other => {
                return Err(JoseError::UnsupportedKey(format!("RSA key size {other} is not one of 2048, 3072, 4096")));
            }
        };
        let pair = RsaKeyPair::generate(size).map_err(|_| JoseError::Crypto("RSA key generation failed".to_owned()))?;
        Self::from_rsa(pair)
    }

    /// Generate an ECDSA key on `curve`.
    pub fn generate_ec(curve: EcCurve) -> Result<Self, JoseError> {
        let pair = EcdsaKeyPair::generate(curve.signing_alg())
            .map_err(|_| JoseError::Crypto("EC key generation failed".to_owned()))?;
        Self::from_ec(curve, pair)
    }

    /// Load a PKCS#8 (RFC 5208) DER private key, RSA or EC.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, JoseError> {
        Self::from_private_der(PrivateKeyFormat::Pkcs8, der)
    }

    /// Load the first private key of a PEM document: `PRIVATE KEY` (PKCS#8),
    /// `RSA PRIVATE KEY` (PKCS#1) or `EC PRIVATE KEY` (SEC1). Encrypted PEM is refused.
    pub fn from_pem(pem_text: &str) -> Result<Self, JoseError> {
        let blocks = pem::parse_all(pem_text).map_err(JoseError::Malformed)?;
        let block = blocks.first().ok_or_else(|| JoseError::Malformed("no PEM block found".to_owned()))?;
        let format = match block.label.as_str() {
            "PRIVATE KEY" => PrivateKeyFormat::Pkcs8,
            "RSA PRIVATE KEY" => PrivateKeyFormat::Pkcs1Rsa,
            "EC PRIVATE KEY" => PrivateKeyFormat::Sec1Ec,
            _ => {
                return Err(JoseError::UnsupportedKey("PEM block is not an unencrypted private key".to_owned()));
            }
        };
        Self::from_private_der(format, &block.der)
    }

    pub(crate) fn from_private_der(format: PrivateKeyFormat, der: &[u8]) -> Result<Self, JoseError> {
        let unsupported = || {
            JoseError::UnsupportedKey(
                "not a supported private key (RSA 2048-8192 bits, or EC P-256/P-384/P-521)".to_owned(),
            )
        };
        match format {
            PrivateKeyFormat::Pkcs8 => {
                if let Ok(pair) = RsaKeyPair::from_pkcs8(der) {
                    return Self::from_rsa(pair);
                }
                for curve in EcCurve::ALL {
                    if let Ok(pair) = EcdsaKeyPair::from_pkcs8(curve.signing_alg(), der) {
                        return Self::from_ec(curve, pair);
                    }
                }
                Err(unsupported())
            }
            PrivateKeyFormat::Pkcs1Rsa => {
                let pair = RsaKeyPair::from_der(der).map_err(|_| unsupported())?;
                Self::from_rsa(pair)
            }
            PrivateKeyFormat::Sec1Ec => {
                for curve in EcCurve::ALL {
                    if let Ok(pair) = EcdsaKeyPair::from_private_key_der(curve.signing_alg(), der) {
                        return Self::from_ec(curve, pair);
                    }
                }
                Err(unsupported())
            }
        }
    }

    fn from_rsa(pair: RsaKeyPair) -> Result<Self, JoseError> {
        let public = PublicParts::from_rsa(pair.public_key())?;
        Ok(SigningKey { kid: kube_kid(&public.spki), public, inner: Inner::Rsa(pair) })
    }

    fn from_ec(curve: EcCurve, pair: EcdsaKeyPair) -> Result<Self, JoseError> {
        let pk = pair.public_key();
        let spki =
            pk.as_der().map_err(|_| JoseError::Crypto("cannot encode EC public key".to_owned()))?.as_ref().to_vec();
        let public = PublicParts::from_ec(curve, spki, pk.as_ref().to_vec())?;
        Ok(SigningKey { kid: kube_kid(&public.spki), public, inner: Inner::Ec { curve, pair } })
    }

    /// The private key as PKCS#8 v1 DER, for storing (encrypted) at rest.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, JoseError> {
        let failed = || JoseError::Crypto("cannot serialize private key".to_owned());
        match &self.inner {
            Inner::Rsa(pair) => {
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = pair.as_der().map_err(|_| failed())?;
                Ok(Zeroizing::new(der.as_ref().to_vec()))
            }
            Inner::Ec { pair, .. } => {
                let doc = pair.to_pkcs8v1().map_err(|_| failed())?;
                Ok(Zeroizing::new(doc.as_ref().to_vec()))
            }
        }
    }

    /// The public key as a JWK with `kid`, `use: "sig"` and `alg` = [`Self::default_alg`].
    #[must_use]
    pub fn public_jwk(&self) -> Jwk {
        self.public.to_jwk()
    }

    /// A [`VerifyingKey`] for this key's public half.
    pub fn verifying_key(&self) -> Result<VerifyingKey, JoseError> {
        // Without `alg` so tests and callers can verify every algorithm the key supports.
        let jwk = Jwk { alg: None, ..self.public_jwk() };
        VerifyingKey::from_jwk(&jwk)
    }

    /// Key id: [`kube_kid`] of the public key, so it is stable across restarts and is what
    /// kube-apiserver would compute for the same key.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// DER SubjectPublicKeyInfo of the public key.
    #[must_use]
    pub fn spki_der(&self) -> &[u8] {
        &self.public.spki
    }

    /// RS256 for RSA, otherwise the curve's algorithm (ES256/ES384/ES512).
    #[must_use]
    pub fn default_alg(&self) -> Alg {
        self.public.default_alg()
    }

    /// Whether this key can sign with `alg`.
    #[must_use]
    pub fn supports(&self, alg: Alg) -> bool {
        match &self.inner {
            Inner::Rsa(_) => rsa_encoding(alg).is_some(),
            Inner::Ec { curve, .. } => curve.alg() == alg,
        }
    }

    /// Sign `message` (the JWS signing input) with `alg`. RSA keys sign RS256/384/512 and
    /// PS256/384/512; EC keys sign only their curve's ES* with the JWS `r || s` encoding.
    pub fn sign(&self, alg: Alg, message: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Rsa(pair) => {
                let encoding =
                    rsa_encoding(alg).ok_or_else(|| JoseError::KeyMismatch(format!("an RSA key cannot sign {alg}")))?;
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(encoding, &rng, message, &mut sig)
                    .map_err(|_| JoseError::Crypto("RSA signing failed".to_owned()))?;
                Ok(sig)
            }
            Inner::Ec { curve, pair } => {
                if curve.alg() != alg {
                    return Err(JoseError::KeyMismatch(format!("an EC {} key cannot sign {alg}", curve.jwk_crv())));
                }
                let sig = pair.sign(&rng, message).map_err(|_| JoseError::Crypto("ECDSA signing failed".to_owned()))?;
                Ok(sig.as_ref().to_vec())
            }
        }
    }

    pub(crate) fn public_parts(&self) -> &PublicParts {
        &self.public
    }
}

fn rsa_encoding(alg: Alg) -> Option<&'static dyn RsaEncoding> {
    match alg {
        Alg::Rs256 => Some(&signature::RSA_PKCS1_SHA256),
        Alg::Rs384 => Some(&signature::RSA_PKCS1_SHA384),
        Alg::Rs512 => Some(&signature::RSA_PKCS1_SHA512),
        Alg::Ps256 => Some(&signature::RSA_PSS_SHA256),
        Alg::Ps384 => Some(&signature::RSA_PSS_SHA384),
        Alg::Ps512 => Some(&signature::RSA_PSS_SHA512),
        Alg::Es256 | Alg::Es384 | Alg::Es512 => None,
    }
}
