//! Encryption at rest for secrets and private keys, under one master key.
//!
//! Blob format (version 1): `0x01 || nonce (12 bytes) || ciphertext || tag (16 bytes)`,
//! AES-256-GCM. The GCM associated data is `0x01 || aad`: the caller's `aad` binds a blob
//! to its place (e.g. the row id) so blobs cannot be swapped between rows, and the version
//! byte is authenticated so a blob cannot be reinterpreted under a future format.
//!
//! Nonces are random. With 96-bit random nonces the collision bound allows about 2^32
//! encryptions per master key, far beyond what a single wid instance writes.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use zeroize::Zeroizing;

use crate::error::CryptoError;

/// Length of a master key in bytes.
pub const MASTER_KEY_LEN: usize = 32;
/// First byte of every blob written by this version.
const VERSION_1: u8 = 0x01;
/// GCM tag length.
const TAG_LEN: usize = 16;

/// The 256-bit key that encrypts everything wid stores. Zeroized on drop; `Debug` shows
/// nothing of it.
pub struct MasterKey {
    bytes: Zeroizing<[u8; MASTER_KEY_LEN]>,
    // The expanded key schedule lives in aws-lc, whose free routine cleanses it.
    aead: LessSafeKey,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Generate a fresh random master key.
    pub fn generate() -> Result<MasterKey, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        aws_lc_rs::rand::fill(bytes.as_mut_slice()).map_err(|_| CryptoError::Random)?;
        Self::from_array(bytes)
    }

    /// Load a master key; it must be exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey, CryptoError> {
        let mut array = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        if bytes.len() != MASTER_KEY_LEN {
            return Err(CryptoError::InvalidKeyLength { expected: MASTER_KEY_LEN, actual: bytes.len() });
        }
        array.copy_from_slice(bytes);
        Self::from_array(array)
    }

    fn from_array(bytes: Zeroizing<[u8; MASTER_KEY_LEN]>) -> Result<MasterKey, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes.as_slice()).map_err(|_| CryptoError::Aead)?;
        Ok(MasterKey { bytes, aead: LessSafeKey::new(unbound) })
    }

    /// The raw key, for writing to a file with mode 0600. Handle with care.
    #[must_use]
    pub fn expose_bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.bytes
    }

    /// Encrypt `plaintext`, bound to `aad`. See the module docs for the format.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        // Encrypted in place, so this copy of the plaintext becomes ciphertext.
        let mut body = plaintext.to_vec();
        self.aead
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(full_aad(aad)), &mut body)
            .map_err(|_| CryptoError::Aead)?;
        let mut blob = Vec::with_capacity(1 + NONCE_LEN + body.len());
        blob.push(VERSION_1);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&body);
        Ok(blob)
    }

    /// Decrypt a blob produced by [`MasterKey::seal`] with the same `aad`.
    pub fn open(&self, blob: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let (&version, rest) = blob.split_first().ok_or(CryptoError::Truncated)?;
        if version != VERSION_1 {
            return Err(CryptoError::UnsupportedVersion(version));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError::Truncated);
        }
        let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or(CryptoError::Truncated)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Truncated)?;
        let mut buf = Zeroizing::new(sealed.to_vec());
        let plaintext_len = self
            .aead
            .open_in_place(nonce, Aad::from(full_aad(aad)), buf.as_mut_slice())
            .map_err(|_| CryptoError::DecryptFailed)?
            .len();
        buf.truncate(plaintext_len);
        Ok(buf)
    }
}

fn full_aad(aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(1 + aad.len());
    full.push(VERSION_1);
    full.extend_from_slice(aad);
    full
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let key = MasterKey::generate().unwrap();
        let blob = key.seal(b"top secret", b"secrets/row/42").unwrap();
        assert_eq!(blob[0], 0x01);
        assert_eq!(blob.len(), 1 + 12 + 10 + 16);
        let pt = key.open(&blob, b"secrets/row/42").unwrap();
        assert_eq!(pt.as_slice(), b"top secret");
        // Empty plaintext is fine too.
        let blob = key.seal(b"", b"").unwrap();
        assert!(key.open(&blob, b"").unwrap().is_empty());
    }

    #[test]
    fn nonces_differ() {
        let key = MasterKey::generate().unwrap();
        assert_ne!(key.seal(b"x", b"a").unwrap(), key.seal(b"x", b"a").unwrap());
    }

    #[test]
    fn wrong_aad_fails() {
        let key = MasterKey::generate().unwrap();
        let blob = key.seal(b"top secret", b"row-1").unwrap();
        assert!(matches!(key.open(&blob, b"row-2"), Err(CryptoError::DecryptFailed)));
        assert!(matches!(key.open(&blob, b""), Err(CryptoError::DecryptFailed)));
    }

    #[test]
    fn every_flipped_bit_fails() {
        let key = MasterKey::generate().unwrap();
        let blob = key.seal(b"top secret", b"row-1").unwrap();
        for i in 0..blob.len() * 8 {
            let mut tampered = blob.clone();
            tampered[i / 8] ^= 1 << (i % 8);
            assert!(key.open(&tampered, b"row-1").is_err(), "bit {i}");
        }
    }

    #[test]
    fn wrong_key_truncation_and_version() {
        let key = MasterKey::generate().unwrap();
        let other = MasterKey::generate().unwrap();
        let blob = key.seal(b"top secret", b"row-1").unwrap();
        assert!(matches!(other.open(&blob, b"row-1"), Err(CryptoError::DecryptFailed)));
        assert!(matches!(key.open(&[], b"row-1"), Err(CryptoError::Truncated)));
        assert!(matches!(key.open(&blob[..28], b"row-1"), Err(CryptoError::Truncated)));
        assert!(matches!(key.open(&blob[..29], b"row-1"), Err(CryptoError::DecryptFailed)));
        let mut v2 = blob.clone();
        v2[0] = 2;
        assert!(matches!(key.open(&v2, b"row-1"), Err(CryptoError::UnsupportedVersion(2))));
    }

    #[test]
    fn from_bytes_round_trip_and_length() {
        let key = MasterKey::generate().unwrap();
        let again = MasterKey::from_bytes(key.expose_bytes()).unwrap();
        let blob = key.seal(b"data", b"ctx").unwrap();
        assert_eq!(again.open(&blob, b"ctx").unwrap().as_slice(), b"data");
        assert!(matches!(
            MasterKey::from_bytes(&[0u8; 31]),
            Err(CryptoError::InvalidKeyLength { expected: 32, actual: 31 })
        ));
        assert!(MasterKey::from_bytes(&[0u8; 33]).is_err());
    }

    #[test]
    fn debug_hides_key() {
        let key = MasterKey::from_bytes(&[0xAB; 32]).unwrap();
        let s = format!("{key:?}");
        assert_eq!(s, "MasterKey(..)");
    }

    #[test]
    fn master_key_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MasterKey>();
    }
}
