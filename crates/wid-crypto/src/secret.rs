//! Client secrets for app principals, plus small shared helpers (randomness, SHA-256,
//! base64url).
//!
//! Client secrets are 240 bits of system randomness, so a plain SHA-256 is enough to store
//! them: a slow password KDF protects low-entropy human passwords against guessing, and
//! there is nothing to guess here. Comparison is constant-time regardless.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use zeroize::Zeroizing;

use crate::error::CryptoError;

/// Number of random bytes behind a client secret: 30 bytes = 240 bits = 40 base64url chars.
const CLIENT_SECRET_BYTES: usize = 30;

/// Fill a new buffer of `n` bytes from the system CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, CryptoError> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| CryptoError::Random)?;
    Ok(buf)
}

/// SHA-256 of `bytes`.
#[must_use]
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    // A SHA-256 digest is always 32 bytes; copy through an iterator to avoid panicking slices.
    for (o, d) in out.iter_mut().zip(digest.as_ref()) {
        *o = *d;
    }
    out
}

/// Base64url without padding (RFC 7515 §2), the encoding used throughout JOSE.
#[must_use]
pub fn base64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url decoding: no padding, no whitespace, no non-canonical trailing bits.
/// Returns `None` on any deviation.
#[must_use]
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// Generate a new client secret: 40 URL-safe characters carrying 240 bits of entropy.
pub fn generate_client_secret() -> Result<Zeroizing<String>, CryptoError> {
    let raw = Zeroizing::new(random_bytes(CLIENT_SECRET_BYTES)?);
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(raw.as_slice())))
}

/// Hash a client secret for storage. SHA-256 without salt or stretching is deliberate:
/// secrets are uniformly random with 240 bits of entropy (see the module docs).
#[must_use]
pub fn hash_client_secret(secret: &str) -> [u8; 32] {
    sha256(secret.as_bytes())
}

/// Check a presented secret against a stored hash in constant time.
#[must_use]
pub fn verify_client_secret(presented: &str, stored: &[u8]) -> bool {
    let hash = hash_client_secret(presented);
    // The length of `stored` is not secret (it's always 32 for a valid row), so an early
    // length mismatch inside verify_slices_are_equal leaks nothing useful.
    aws_lc_rs::constant_time::verify_slices_are_equal(&hash, stored).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_secret_shape() {
        let s = generate_client_secret().unwrap();
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let t = generate_client_secret().unwrap();
        assert_ne!(*s, *t);
    }

    #[test]
    fn client_secret_verify() {
        let s = generate_client_secret().unwrap();
        let stored = hash_client_secret(&s);
        assert!(verify_client_secret(&s, &stored));
        assert!(!verify_client_secret("wrong", &stored));
        assert!(!verify_client_secret(&s, &stored[..31]));
        assert!(!verify_client_secret(&s, &[]));
    }

    #[test]
    fn sha256_known_answer() {
        assert_eq!(base64url(&sha256(b"abc")), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    }

    #[test]
    fn base64url_strict() {
        assert_eq!(base64url_decode("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(base64url_decode("AQ=="), None);
        assert_eq!(base64url_decode("AQ"), Some(vec![1]));
        assert_eq!(base64url_decode("A+/B"), None);
        assert_eq!(base64url_decode("AR"), None, "non-canonical trailing bits");
    }
}
