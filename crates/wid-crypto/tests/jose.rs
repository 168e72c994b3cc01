//! JWS sign/parse/verify behaviour through the public API.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{b64url, ec_key, other_rsa_key, rsa_key};
use serde_json::json;
use wid_crypto::{Alg, EcCurve, JoseError, Jwk, SigningKey, VerifyingKey, encode_compact, parse_compact};

const MAX: usize = 16 * 1024;

fn claims() -> serde_json::Value {
    json!({
        "iss": "https://issuer.example",
        "sub": "system:serviceaccount:default:workload",
        "aud": ["api://AzureADTokenExchange"],
        "exp": 2_000_000_000_i64,
        "iat": 1_700_000_000_i64,
    })
}

/// Verifying key without a pinned `alg`, so every algorithm the key type supports works.
fn unpinned(key: &SigningKey) -> VerifyingKey {
    VerifyingKey::from_jwk(&Jwk { alg: None, ..key.public_jwk() }).unwrap()
}

fn keys_and_algs() -> Vec<(&'static SigningKey, Alg)> {
    vec![
        (rsa_key(), Alg::Rs256),
        (rsa_key(), Alg::Rs384),
        (rsa_key(), Alg::Rs512),
        (rsa_key(), Alg::Ps256),
        (rsa_key(), Alg::Ps384),
        (rsa_key(), Alg::Ps512),
        (ec_key(EcCurve::P256), Alg::Es256),
        (ec_key(EcCurve::P384), Alg::Es384),
        (ec_key(EcCurve::P521), Alg::Es512),
    ]
}

#[test]
fn round_trip_every_alg() {
    for (key, alg) in keys_and_algs() {
        let token = encode_compact(&json!({"typ": "JWT"}), &claims(), key, alg).unwrap();
        let jws = parse_compact(&token, MAX).unwrap();
        assert_eq!(jws.alg, alg);
        assert_eq!(jws.header.alg, alg.as_str());
        assert_eq!(jws.header.kid.as_deref(), Some(key.kid()));
        assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
        assert_eq!(jws.claim_str("sub"), Some("system:serviceaccount:default:workload"));
        jws.verify(&unpinned(key)).unwrap_or_else(|e| panic!("{alg}: {e}"));
        if alg == key.default_alg() {
            // The published JWK pins the default alg and verifies it.
            let pinned = VerifyingKey::from_jwk(&key.public_jwk()).unwrap();
            jws.verify(&pinned).unwrap();
            assert_eq!(pinned.kid(), Some(key.kid()));
        }
        if let Some(expected_len) = match alg {
            Alg::Es256 => Some(64),
            Alg::Es384 => Some(96),
            Alg::Es512 => Some(132),
            _ => None,
        } {
            assert_eq!(jws.signature().len(), expected_len, "{alg} must be fixed r||s");
        }
    }
}

#[test]
fn caller_kid_is_kept_and_alg_is_forced() {
    let key = ec_key(EcCurve::P256);
    let token = encode_compact(&json!({"kid": "custom", "alg": "none"}), &claims(), key, Alg::Es256).unwrap();
    let jws = parse_compact(&token, MAX).unwrap();
    assert_eq!(jws.header.kid.as_deref(), Some("custom"));
    assert_eq!(jws.alg, Alg::Es256);
}

#[test]
fn wrong_key_is_bad_signature() {
    let token = encode_compact(&json!({}), &claims(), rsa_key(), Alg::Rs256).unwrap();
    let jws = parse_compact(&token, MAX).unwrap();
    assert_eq!(jws.verify(&unpinned(other_rsa_key())), Err(JoseError::BadSignature));

    let other_ec = SigningKey::generate_ec(EcCurve::P256).unwrap();
    let token = encode_compact(&json!({}), &claims(), ec_key(EcCurve::P256), Alg::Es256).unwrap();
    let jws = parse_compact(&token, MAX).unwrap();
    assert_eq!(jws.verify(&unpinned(&other_ec)), Err(JoseError::BadSignature));
}

#[test]
fn tampering_is_bad_signature() {
    for (key, alg) in keys_and_algs() {
        let token = encode_compact(&json!({}), &claims(), key, alg).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64url(serde_json::to_string(&json!({"sub": "attacker"})).unwrap().as_bytes());
        let forged = parts.join(".");
        let jws = parse_compact(&forged, MAX).unwrap();
        assert_eq!(jws.verify(&unpinned(key)), Err(JoseError::BadSignature), "{alg}");

        // Truncated signature.
        let sig = common::b64url(&parse_compact(&token, MAX).unwrap().signature()[1..]);
        let parts: Vec<&str> = token.split('.').collect();
        let short = format!("{}.{}.{}", parts[0], parts[1], sig);
        let jws = parse_compact(&short, MAX).unwrap();
        assert_eq!(jws.verify(&unpinned(key)), Err(JoseError::BadSignature), "{alg}");
    }
}

#[test]
fn alg_and_key_kind_must_fit() {
    let rs = parse_compact(&encode_compact(&json!({}), &claims(), rsa_key(), Alg::Rs256).unwrap(), MAX).unwrap();
    let es256 =
        parse_compact(&encode_compact(&json!({}), &claims(), ec_key(EcCurve::P256), Alg::Es256).unwrap(), MAX).unwrap();
    let ps384 = parse_compact(&encode_compact(&json!({}), &claims(), rsa_key(), Alg::Ps384).unwrap(), MAX).unwrap();

    assert!(matches!(rs.verify(&unpinned(ec_key(EcCurve::P256))), Err(JoseError::KeyMismatch(_))));
    assert!(matches!(es256.verify(&unpinned(rsa_key())), Err(JoseError::KeyMismatch(_))));
    assert!(matches!(es256.verify(&unpinned(ec_key(EcCurve::P384))), Err(JoseError::KeyMismatch(_))));
    // The JWK pins RS256: a PS384 token signed by the very same key is refused.
    let pinned = VerifyingKey::from_jwk(&rsa_key().public_jwk()).unwrap();
    assert!(matches!(ps384.verify(&pinned), Err(JoseError::KeyMismatch(_))));
    assert!(!pinned.supports(Alg::Ps384));
    assert!(pinned.supports(Alg::Rs256));

    // Signing side refuses mismatches too.
    assert!(matches!(ec_key(EcCurve::P256).sign(Alg::Es384, b"x"), Err(JoseError::KeyMismatch(_))));
    assert!(matches!(rsa_key().sign(Alg::Es256, b"x"), Err(JoseError::KeyMismatch(_))));
    assert!(matches!(encode_compact(&json!({}), &claims(), rsa_key(), Alg::Es256), Err(JoseError::KeyMismatch(_))));
}

fn raw_token(header: &serde_json::Value, claims: &serde_json::Value, sig: &[u8]) -> String {
    format!("{}.{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()), b64url(sig))
}

#[test]
fn none_and_hmac_are_refused() {
    let none = format!("{}.{}.", b64url(br#"{"alg":"none"}"#), b64url(claims().to_string().as_bytes()));
    assert_eq!(parse_compact(&none, MAX).unwrap_err(), JoseError::UnsupportedAlgorithm("none".to_owned()));

    // The classic key-confusion attack: HMAC over the signing input keyed with the
    // issuer's RSA public key. It must be refused on `alg` alone.
    let jwk = rsa_key().public_jwk();
    let public_pem = common::to_pem("PUBLIC KEY", rsa_key().spki_der());
    let header = b64url(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, rsa_key().kid()).as_bytes());
    let payload = b64url(claims().to_string().as_bytes());
    let signing_input = format!("{header}.{payload}");
    let mac_key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, public_pem.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&mac_key, signing_input.as_bytes());
    let forged = format!("{signing_input}.{}", b64url(tag.as_ref()));
    assert_eq!(parse_compact(&forged, MAX).unwrap_err(), JoseError::UnsupportedAlgorithm("HS256".to_owned()));
    assert!(VerifyingKey::from_jwk(&jwk).is_ok());

    for alg in ["HS256", "HS384", "HS512", "none", "None", "NONE", "rs256", "RS256 ", "EdDSA", "ES256K", ""] {
        let token = raw_token(&json!({"alg": alg}), &claims(), b"sig");
        assert!(matches!(parse_compact(&token, MAX), Err(JoseError::UnsupportedAlgorithm(_))), "{alg:?}");
        assert!(matches!(Alg::parse(alg), Err(JoseError::UnsupportedAlgorithm(_))));
    }
    // A JWK that names an HMAC alg is not a verifying key either.
    let hmac_jwk = Jwk { alg: Some("HS256".to_owned()), ..rsa_key().public_jwk() };
    assert!(matches!(VerifyingKey::from_jwk(&hmac_jwk), Err(JoseError::UnsupportedKey(_))));
}

#[test]
fn alg_names_round_trip() {
    for alg in Alg::ALL {
        assert_eq!(Alg::parse(alg.as_str()).unwrap(), alg);
        assert_eq!(alg.to_string(), alg.as_str());
    }
}

fn malformed(token: &str) -> String {
    match parse_compact(token, MAX) {
        Err(JoseError::Malformed(reason)) => reason,
        other => panic!("expected Malformed for {token:?}, got {other:?}"),
    }
}

#[test]
fn malformed_inputs() {
    let good = encode_compact(&json!({}), &claims(), ec_key(EcCurve::P256), Alg::Es256).unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let (h, c, s) = (parts[0], parts[1], parts[2]);

    malformed("");
    malformed("   \n\t ");
    malformed(&format!("{h}.{c}"));
    malformed(&format!("{h}.{c}.{s}.{s}"));
    malformed(&format!("{h}.{c}.{s}."));
    malformed(&format!("{h}..{s}"));
    malformed(&format!(".{c}.{s}"));
    malformed(&format!("{h}.{c}."));
    // Padding and foreign alphabets.
    malformed(&format!("{h}=.{c}.{s}"));
    malformed(&format!("{h}.{c}==.{s}"));
    malformed(&format!("{h}.{c}.{s}="));
    malformed(&format!("{}.{c}.{s}", h.replace('-', "+").replace('_', "/") + "+"));
    // Unicode and whitespace inside.
    malformed(&format!("{h}.{c}é.{s}"));
    malformed("ключ.ключ.ключ");
    malformed(&format!("{h}.{c} .{s}"));
    malformed(&format!("{h}\n.{c}.{s}"));
    // Not JSON / not objects.
    malformed(&format!("{}.{c}.{s}", b64url(b"not json")));
    malformed(&format!("{h}.{}.{s}", b64url(b"not json")));
    malformed(&format!("{h}.{}.{s}", b64url(b"[1,2,3]")));
    malformed(&format!("{h}.{}.{s}", b64url(b"\"sub\"")));
    malformed(&format!("{}.{c}.{s}", b64url(b"[\"ES256\"]")));
    malformed(&format!("{h}.{}.{s}", b64url(b"{\"a\":1} trailing")));
    // Duplicate members.
    let reason = malformed(&format!("{h}.{}.{s}", b64url(br#"{"sub":"victim","aud":"x","sub":"attacker"}"#)));
    assert!(reason.contains("duplicate"), "{reason}");
    malformed(&format!("{}.{c}.{s}", b64url(br#"{"alg":"ES256","alg":"ES256"}"#)));
    malformed(&format!("{}.{c}.{s}", b64url(br#"{"alg":"ES256","kid":"a","kid":"b"}"#)));
    // Header field shapes.
    malformed(&format!("{}.{c}.{s}", b64url(br#"{"kid":"a"}"#)));
    malformed(&format!("{}.{c}.{s}", b64url(br#"{"alg":256}"#)));
    malformed(&format!("{}.{c}.{s}", b64url(br#"{"alg":"ES256","kid":1}"#)));
    malformed(&format!("{}.{c}.{s}", b64url(br#"{"alg":"ES256","typ":null}"#)));
    let reason = malformed(&format!("{}.{c}.{s}", b64url(br#"{"alg":"ES256","crit":["exp"],"exp":1}"#)));
    assert!(reason.contains("crit"), "{reason}");
}

#[test]
fn size_limit_and_whitespace() {
    let good = encode_compact(&json!({}), &claims(), ec_key(EcCurve::P256), Alg::Es256).unwrap();
    assert_eq!(parse_compact(&good, good.len() - 1).unwrap_err(), JoseError::TooLarge);
    assert!(parse_compact(&good, good.len()).is_ok());
    let huge = "a".repeat(10 * 1024 * 1024);
    assert_eq!(parse_compact(&huge, MAX).unwrap_err(), JoseError::TooLarge);

    let padded = format!(" \r\n\t{good}\n ");
    let jws = parse_compact(&padded, good.len()).unwrap();
    jws.verify(&unpinned(ec_key(EcCurve::P256))).unwrap();
    assert_eq!(jws.signing_input(), good.rsplit_once('.').unwrap().0);
}

#[test]
fn key_pointing_headers_are_ignored() {
    // A token may carry jwk/jku/x5u/x5c, but verification uses only the key we pass in.
    let attacker = SigningKey::generate_ec(EcCurve::P256).unwrap();
    let header = json!({
        "jwk": attacker.public_jwk(),
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert",
        "x5t": "thumb",
    });
    let token = encode_compact(&header, &claims(), &attacker, Alg::Es256).unwrap();
    let jws = parse_compact(&token, MAX).unwrap();
    assert_eq!(jws.header.x5t.as_deref(), Some("thumb"));
    assert_eq!(jws.verify(&unpinned(ec_key(EcCurve::P256))), Err(JoseError::BadSignature));
}

#[test]
fn claim_helpers() {
    let key = ec_key(EcCurve::P256);
    let claims = json!({
        "sub": "s",
        "exp": 1.7e9,
        "nbf": 1_700_000_000.0,
        "iat": 1_700_000_000_i64,
        "frac": 1.5,
        "str": "123",
        "big": u64::MAX,
        "neg": -5,
        "huge": 1e300,
        "aud": "single",
    });
    let jws = parse_compact(&encode_compact(&json!({}), &claims, key, Alg::Es256).unwrap(), MAX).unwrap();
    assert_eq!(jws.claim_i64("exp"), Some(1_700_000_000));
    assert_eq!(jws.claim_i64("nbf"), Some(1_700_000_000));
    assert_eq!(jws.claim_i64("iat"), Some(1_700_000_000));
    assert_eq!(jws.claim_i64("neg"), Some(-5));
    assert_eq!(jws.claim_i64("frac"), None);
    assert_eq!(jws.claim_i64("str"), None);
    assert_eq!(jws.claim_i64("big"), None);
    assert_eq!(jws.claim_i64("huge"), None);
    assert_eq!(jws.claim_i64("missing"), None);
    assert_eq!(jws.claim_str("sub"), Some("s"));
    assert_eq!(jws.claim_str("exp"), None);
    assert_eq!(jws.audiences(), vec!["single"]);

    let claims = json!({"aud": ["a", 1, "b", null]});
    let jws = parse_compact(&encode_compact(&json!({}), &claims, key, Alg::Es256).unwrap(), MAX).unwrap();
    assert_eq!(jws.audiences(), vec!["a", "b"]);
    let claims = json!({"aud": 5});
    let jws = parse_compact(&encode_compact(&json!({}), &claims, key, Alg::Es256).unwrap(), MAX).unwrap();
    assert!(jws.audiences().is_empty());
}

#[test]
fn encode_refuses_non_objects() {
    let key = ec_key(EcCurve::P256);
    assert!(matches!(encode_compact(&json!([]), &claims(), key, Alg::Es256), Err(JoseError::Malformed(_))));
    assert!(matches!(encode_compact(&json!({}), &json!("x"), key, Alg::Es256), Err(JoseError::Malformed(_))));
}

#[test]
fn verifying_key_refusals() {
    let good = rsa_key().public_jwk();
    let unsupported = |jwk: &Jwk| match VerifyingKey::from_jwk(jwk) {
        Err(JoseError::UnsupportedKey(reason)) => reason,
        other => panic!("expected UnsupportedKey, got {other:?}"),
    };

    // RSA below 2048 bits.
    let small = Jwk { n: Some(b64url(&[0xC1; 128])), ..good.clone() };
    assert!(unsupported(&small).contains("1024"));
    // Leading zero on n is tolerated.
    let n = common::b64url(
        &[&[0u8][..], &wid_crypto::secret::base64url_decode(good.n.as_ref().unwrap()).unwrap()].concat(),
    );
    let padded = Jwk { n: Some(n), ..good.clone() };
    assert!(VerifyingKey::from_jwk(&padded).is_ok());
    // Wrong use, missing members, bad base64, unknown kty, alg that does not fit.
    unsupported(&Jwk { use_: Some("enc".into()), ..good.clone() });
    unsupported(&Jwk { n: None, ..good.clone() });
    unsupported(&Jwk { e: Some("AQAB=".into()), ..good.clone() });
    unsupported(&Jwk { kty: "oct".into(), ..good.clone() });
    unsupported(&Jwk { kty: "OKP".into(), ..good.clone() });
    unsupported(&Jwk { alg: Some("ES256".into()), ..good.clone() });
    unsupported(&Jwk { alg: Some("RSA-OAEP".into()), ..good.clone() });

    let ec = ec_key(EcCurve::P256).public_jwk();
    assert!(VerifyingKey::from_jwk(&ec).is_ok());
    unsupported(&Jwk { crv: Some("P-384".into()), ..ec.clone() });
    unsupported(&Jwk { crv: Some("secp256k1".into()), ..ec.clone() });
    unsupported(&Jwk { crv: None, ..ec.clone() });
    unsupported(&Jwk { x: Some(b64url(&[1; 31])), ..ec.clone() });
    unsupported(&Jwk { alg: Some("ES384".into()), ..ec.clone() });
    // Off-curve point.
    unsupported(&Jwk { x: Some(b64url(&[1; 32])), y: Some(b64url(&[1; 32])), ..ec.clone() });
    // Absent `use` is fine.
    assert!(VerifyingKey::from_jwk(&Jwk { use_: None, ..ec }).is_ok());
}

#[test]
fn signing_key_serialization_and_debug() {
    for key in [rsa_key(), ec_key(EcCurve::P256), ec_key(EcCurve::P384), ec_key(EcCurve::P521)] {
        let der = key.to_pkcs8_der().unwrap();
        let again = SigningKey::from_pkcs8_der(&der).unwrap();
        assert_eq!(again.kid(), key.kid());
        assert_eq!(again.public_jwk(), key.public_jwk());
        let pem = common::to_pem("PRIVATE KEY", &der);
        assert_eq!(SigningKey::from_pem(&pem).unwrap().kid(), key.kid());

        let debug = format!("{key:?}");
        assert!(debug.contains(key.kid()), "{debug}");
        assert!(!debug.contains(&common::b64url(&der[..16])), "{debug}");
    }
    assert_eq!(rsa_key().default_alg(), Alg::Rs256);
    assert_eq!(ec_key(EcCurve::P384).default_alg(), Alg::Es384);
    assert!(matches!(SigningKey::generate_rsa(1024), Err(JoseError::UnsupportedKey(_))));
    assert!(matches!(SigningKey::generate_rsa(2047), Err(JoseError::UnsupportedKey(_))));
    assert!(SigningKey::from_pkcs8_der(b"garbage").is_err());
    assert!(SigningKey::from_pem("no pem here").is_err());
    assert!(SigningKey::from_pem(&common::to_pem("PUBLIC KEY", rsa_key().spki_der())).is_err());
}

#[test]
fn generate_rsa_3072() {
    let key = SigningKey::generate_rsa(3072).unwrap();
    let token = encode_compact(&json!({}), &claims(), &key, Alg::Ps512).unwrap();
    parse_compact(&token, MAX).unwrap().verify(&key.verifying_key().unwrap()).unwrap();
}

#[test]
fn public_jwk_shape() {
    let rsa = serde_json::to_string(&rsa_key().public_jwk()).unwrap();
    let keys: Vec<&str> = ["\"use\"", "\"kty\"", "\"kid\"", "\"alg\"", "\"n\"", "\"e\""].to_vec();
    let positions: Vec<usize> = keys.iter().map(|k| rsa.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{rsa}");

    let ec = serde_json::to_string(&ec_key(EcCurve::P384).public_jwk()).unwrap();
    let keys = ["\"use\"", "\"kty\"", "\"kid\"", "\"crv\"", "\"alg\"", "\"x\"", "\"y\""];
    let positions: Vec<usize> = keys.iter().map(|k| ec.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{ec}");
    assert!(ec.contains(r#""crv":"P-384""#) && ec.contains(r#""alg":"ES384""#));
}

#[test]
fn jws_debug_does_not_leak_the_token() {
    let token = encode_compact(&json!({}), &claims(), ec_key(EcCurve::P256), Alg::Es256).unwrap();
    let jws = parse_compact(&token, MAX).unwrap();
    let debug = format!("{jws:?}");
    let (_, sig) = token.rsplit_once('.').unwrap();
    assert!(!debug.contains(sig), "{debug}");
    assert!(debug.contains("system:serviceaccount:default:workload"), "{debug}");
}
