//! An external issuer's OIDC discovery document and JWKS as wid fetches them: the discovery
//! document must name the issuer exactly and point at an `https://` JWKS (never another scheme),
//! and the JWKS yields only signature keys wid can verify with. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wid_sts::issuer::{jwks_uri_of, keys_from_jwks, select};

const ISSUER: &str = "https://issuer.example/cluster/";
const URL: &str = "https://issuer.example/cluster/.well-known/openid-configuration";

fuzz_target!(|data: &[u8]| {
    if let Ok(uri) = jwks_uri_of(data, ISSUER, URL) {
        assert!(uri.starts_with("https://"), "non-https jwks_uri accepted: {uri}");
    }
    // The same bytes as the JWKS the discovery document points at.
    if let Ok(set) = wid_crypto::JwkSet::parse(data, 256 * 1024) {
        let keys = keys_from_jwks(&set);
        let first = keys.first().and_then(|k| k.kid.clone());
        let _ = select(&keys, first.as_deref());
        let _ = select(&keys, None);
    }
});
