//! A client assertion as the token endpoint receives it: compact JWS parsing, claim extraction,
//! verification against a fixed key, and federated-credential matching (including claims-matching
//! expressions). Must never panic, whatever the bytes.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wid_core::fic::{self, ClaimsMatchingExpression, FederatedCredential, Presented};
use wid_crypto::{SigningKey, VerifyingKey, parse_compact};

fn key() -> &'static VerifyingKey {
    static KEY: OnceLock<VerifyingKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let k = SigningKey::generate_ec(wid_crypto::EcCurve::P256).expect("key");
        VerifyingKey::from_jwk(&k.public_jwk()).expect("jwk")
    })
}

fn creds() -> Vec<FederatedCredential> {
    let mut exact = FederatedCredential {
        name: "exact".into(),
        issuer: "https://issuer.example/t/c/".into(),
        subject: Some("system:serviceaccount:ns:sa".into()),
        claims_matching_expression: None,
        audiences: vec![fic::DEFAULT_AUDIENCE.into()],
        description: None,
    };
    let mut flexible = exact.clone();
    flexible.name = "flexible".into();
    flexible.subject = None;
    flexible.claims_matching_expression = Some(ClaimsMatchingExpression {
        value: "claims['sub'] matches 'repo:*/app:ref:*' and claims['x'] eq 'y'".into(),
        language_version: 1,
    });
    exact.issuer.push('x');
    vec![exact, flexible]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(jws) = parse_compact(text, 64 * 1024) else { return };
    let _ = jws.verify(key());
    let _ = (jws.claim_i64("iat"), jws.claim_i64("exp"), jws.claim_i64("nbf"));
    let auds = jws.audiences();
    let presented = Presented {
        issuer: jws.claim_str("iss").unwrap_or(""),
        subject: jws.claim_str("sub").unwrap_or(""),
        audiences: &auds,
        claims: &jws.claims,
    };
    let _ = fic::find_match(&creds(), &presented);
});
