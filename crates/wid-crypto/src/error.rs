//! Error types, one per boundary: [`JoseError`] for tokens and keys, [`CryptoError`] for
//! encryption at rest and the local CA.
//!
//! Messages are written to be shown to a caller (they end up in AADSTS error descriptions),
//! so they say what was wrong and never contain key material or secret bytes.

/// Why a JWS/JWT or a JWK was refused, or why signing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    /// The token or key is not well-formed; the string says what exactly.
    #[error("malformed: {0}")]
    Malformed(String),
    /// The input is larger than the caller's limit; nothing was parsed.
    #[error("input exceeds the maximum allowed size")]
    TooLarge,
    /// The `alg` is not one we accept. `none` and the HMAC family land here on purpose:
    /// a public-key verifier must never be tricked into a MAC check.
    #[error("unsupported or refused signing algorithm '{0}'")]
    UnsupportedAlgorithm(String),
    /// The key cannot verify or produce this algorithm (wrong key type, curve, or the
    /// key's own `alg` differs from the token's).
    #[error("key does not fit the algorithm: {0}")]
    KeyMismatch(String),
    /// The signature does not verify with the given key.
    #[error("signature verification failed")]
    BadSignature,
    /// The key is of an unsupported type, too small, or its parameters are invalid.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// The crypto library failed while producing something (signing, key generation).
    #[error("cryptographic operation failed: {0}")]
    Crypto(String),
}

/// Failures of envelope encryption, randomness, and the local CA.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A master key was not exactly the required length.
    #[error("master key must be {expected} bytes, got {actual}")]
    InvalidKeyLength {
        /// Required length in bytes.
        expected: usize,
        /// Length that was supplied.
        actual: usize,
    },
    /// The system random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// The AEAD primitive refused to operate (key setup or sealing).
    #[error("authenticated encryption failed")]
    Aead,
    /// An encrypted blob is shorter than the envelope header plus tag.
    #[error("encrypted blob is truncated")]
    Truncated,
    /// An encrypted blob starts with a version byte we do not know.
    #[error("encrypted blob has unsupported format version {0}")]
    UnsupportedVersion(u8),
    /// Authentication failed: wrong master key, wrong associated data, or a tampered blob.
    #[error("decryption failed: wrong key, wrong context, or tampered data")]
    DecryptFailed,
    /// A PEM document could not be read; the string says why.
    #[error("invalid PEM: {0}")]
    InvalidPem(String),
    /// A CA certificate/key pair is unusable (not a CA, key does not match, unparsable).
    #[error("invalid CA: {0}")]
    InvalidCa(String),
    /// A certificate request was invalid (bad DNS name, no names, bad validity).
    #[error("invalid certificate request: {0}")]
    InvalidCertRequest(String),
    /// rcgen failed to generate a key or certificate.
    #[error("certificate generation failed while {context}")]
    Certificate {
        /// What we were doing.
        context: &'static str,
        /// The underlying rcgen error.
        #[source]
        source: rcgen::Error,
    },
}

/// Make an attacker-supplied string safe and short enough to echo in an error message.
pub(crate) fn sanitize_for_message(s: &str, max_chars: usize) -> String {
    let mut out: String =
        s.chars().take(max_chars).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect();
    if s.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}
