//! wid cryptography: signing keys, JWS sign/verify, JWKS, envelope encryption, local CA.
//!
//! One crypto stack, aws-lc-rs (plus rcgen on its aws-lc backend for certificates, and x509-parser
//! to read them back). The
//! modules, by trust boundary:
//!
//! - [`jose`]: parse and verify untrusted compact JWS/JWT ([`parse_compact`],
//!   [`VerifyingKey`]) and sign our own ([`encode_compact`]).
//! - [`jwk`]: JWK/JWKS wire types, kube-apiserver's `kid` derivation, PEM → JWK.
//! - [`keys`]: private [`SigningKey`]s (RSA, ECDSA), zeroized on drop.
//! - [`envelope`]: AES-256-GCM encryption at rest under a [`MasterKey`].
//! - [`data_key`]: per-vault data keys sealed with the master key, and what binds a secret value.
//! - [`pki`]: a local CA ([`LocalCa`]) issuing server certificates.
//! - [`pem`]: the one PEM reader (strict for our own files, Go's leniency for key files).
//! - [`secret`]: client secrets and small helpers (randomness, SHA-256, base64url).
//!
//! Everything that parses untrusted input returns an error instead of panicking, and no
//! error message carries key material.

pub mod data_key;
pub mod envelope;
mod error;
pub mod jose;
mod json;
pub mod jwk;
pub mod keys;
pub mod pem;
pub mod pki;
pub mod secret;

pub use envelope::MasterKey;
pub use error::{CryptoError, JoseError};
pub use jose::{Alg, Jws, JwsHeader, VerifyingKey, encode_compact, parse_compact};
pub use jwk::{Jwk, JwkSet, jwk_from_public_pem, jwks_from_pem, kube_kid};
pub use keys::{EcCurve, SigningKey};
pub use pki::{LocalCa, cert_not_after_unix};
