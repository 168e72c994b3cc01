//! Fuzz-like robustness checks: thousands of deterministic pseudo-random and mutated
//! inputs into every untrusted-input parser. They must return, never panic, and a
//! mutated token must never verify.
//!
//! This is a cheap smoke test that runs in every `cargo test`; it does not replace
//! coverage-guided fuzzing.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{XorShift, ec_key, rsa_key, to_pem};
use serde_json::json;
use wid_crypto::{
    Alg, EcCurve, Jwk, JwkSet, SigningKey, VerifyingKey, encode_compact, jwk_from_public_pem, parse_compact,
};

const ROUNDS: usize = 4000;

/// Characters that matter to the token grammar, so mutations hit interesting paths.
const INTERESTING: &[u8] = b"...===+/-_ \n\t{}[]\":,\\0Aa\xff\x00";

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let i = rng.below(out.len() + 1);
                out.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            3 if !out.is_empty() => {
                let i = rng.below(out.len());
                out.remove(i);
            }
            4 => {
                let i = rng.below(out.len() + 1);
                out.truncate(i);
            }
            _ => {
                let i = rng.below(out.len() + 1);
                let n = rng.below(8);
                let junk = rng.bytes(n);
                out.splice(i..i, junk);
            }
        }
    }
    out
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for _ in 0..ROUNDS {
        let len = rng.below(400);
        let bytes = rng.bytes(len);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_compact(&text, 8192);
        let _ = JwkSet::parse(&bytes, 8192);
        let _ = jwk_from_public_pem(&text);
        // Random base64url-alphabet parts joined with dots reach the JSON layer.
        let parts: Vec<String> = (0..=rng.below(4))
            .map(|_| {
                let n = rng.below(60);
                common::b64url(&rng.bytes(n))
            })
            .collect();
        let _ = parse_compact(&parts.join("."), 8192);
    }
}

#[test]
fn mutated_tokens_never_panic_or_verify() {
    let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
    let claims = json!({"sub": "s", "aud": ["a"], "exp": 1, "nested": {"k": [1, 2.5, null]}});
    let cases: Vec<(&SigningKey, Alg)> = vec![
        (rsa_key(), Alg::Rs256),
        (rsa_key(), Alg::Ps256),
        (ec_key(EcCurve::P256), Alg::Es256),
        (ec_key(EcCurve::P384), Alg::Es384),
    ];
    for (key, alg) in cases {
        let verifying = VerifyingKey::from_jwk(&Jwk { alg: None, ..key.public_jwk() }).unwrap();
        let token = encode_compact(&json!({"typ": "JWT"}), &claims, key, alg).unwrap();
        for _ in 0..ROUNDS / 4 {
            let mutated = mutate(&mut rng, token.as_bytes());
            let text = String::from_utf8_lossy(&mutated);
            if let Ok(jws) = parse_compact(&text, 8192) {
                if jws.verify(&verifying).is_ok() {
                    // Only whitespace around the original may survive verification.
                    assert_eq!(text.trim_ascii(), token, "a modified token verified");
                }
                let _ = jws.claim_i64("exp");
                let _ = jws.audiences();
            }
        }
    }
}

#[test]
fn mutated_jwks_and_pem_never_panic() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let set = JwkSet {
        keys: vec![rsa_key().public_jwk(), ec_key(EcCurve::P256).public_jwk(), ec_key(EcCurve::P521).public_jwk()],
    };
    let doc = serde_json::to_vec(&set).unwrap();
    for _ in 0..ROUNDS {
        let mutated = mutate(&mut rng, &doc);
        if let Ok(parsed) = JwkSet::parse(&mutated, 64 * 1024) {
            for jwk in &parsed.keys {
                let _ = VerifyingKey::from_jwk(jwk);
            }
        }
    }

    let pems = [
        to_pem("PUBLIC KEY", rsa_key().spki_der()),
        to_pem("PUBLIC KEY", ec_key(EcCurve::P384).spki_der()),
        to_pem("PRIVATE KEY", &ec_key(EcCurve::P256).to_pkcs8_der().unwrap()),
    ];
    for pem in &pems {
        for _ in 0..ROUNDS / 8 {
            let mutated = mutate(&mut rng, pem.as_bytes());
            let text = String::from_utf8_lossy(&mutated);
            let _ = jwk_from_public_pem(&text);
            let _ = SigningKey::from_pem(&text);
        }
    }
}
