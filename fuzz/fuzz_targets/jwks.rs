//! JWKS documents (from external issuers or uploaded by operators): parsing and key import must
//! never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(set) = wid_crypto::JwkSet::parse(data, 256 * 1024) {
        for k in &set.keys {
            let _ = wid_crypto::VerifyingKey::from_jwk(k);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = wid_crypto::jwk_from_public_pem(text);
    }
});
