//! JWK / JWKS parsing and PEM → JWK conversion.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod common;

use common::{der_tlv, ec_key, rsa_key, to_pem};
use wid_crypto::{
    EcCurve, JoseError, Jwk, JwkSet, SigningKey, VerifyingKey, jwk_from_public_pem, jwks_from_pem, kube_kid,
};

/// The RSA-2048 public key from azure-workload-identity's `azwi jwks` test, and the JWK
/// values that tool (and kube-apiserver) derive from it.
const AZWI_PUBLIC_KEY: &str = "
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1QJE2YmLbvMLP6FtzcfP
zGbSDbHEEtA0mH6kwgrOrlKs83zj2vr6Y5k/ZcGdIbsdm5vDj2IxtSkE+pSDtgFM
2iq0sJ7xuE6RYmlrtBm+H2WHvXrP9RrG1EfO7iWs6Czj4A/Ddxg3kNUiQCtQEJww
H2pfrUkh8STQhST/T86pq5AIFCuQiQSrkfC80eD9bUFypV3CLB2M9Fa1hbvOWbzS
F93/I0toUK2+oPgVW6m2EwMyy8Fh/3KRixrAJO8g+D4d537C1fa1vJJRlMRFtLMA
/bo6k1fAtNsVQuQoML5CmRrvNT7ZpXRLaQy64OSFrVLD3Pb7wct7b4g2xQECixQo
dwIDAQAB
-----END PUBLIC KEY-----";
const AZWI_KID: &str = "2A3FPpix2keOV1SGPQiM0_wVemz4XOIgQyJJnpu5sPE";
const AZWI_N: &str = "1QJE2YmLbvMLP6FtzcfPzGbSDbHEEtA0mH6kwgrOrlKs83zj2vr6Y5k_ZcGdIbsdm5vDj2IxtSkE-pSDtgFM2iq0sJ7xuE6RYmlrtBm-H2WHvXrP9RrG1EfO7iWs6Czj4A_Ddxg3kNUiQCtQEJwwH2pfrUkh8STQhST_T86pq5AIFCuQiQSrkfC80eD9bUFypV3CLB2M9Fa1hbvOWbzSF93_I0toUK2-oPgVW6m2EwMyy8Fh_3KRixrAJO8g-D4d537C1fa1vJJRlMRFtLMA_bo6k1fAtNsVQuQoML5CmRrvNT7ZpXRLaQy64OSFrVLD3Pb7wct7b4g2xQECixQodw";

#[test]
fn kube_kid_test_vector() {
    let jwk = jwk_from_public_pem(AZWI_PUBLIC_KEY).unwrap();
    assert_eq!(jwk.kid.as_deref(), Some(AZWI_KID));
    assert_eq!(jwk.kty, "RSA");
    assert_eq!(jwk.use_.as_deref(), Some("sig"));
    assert_eq!(jwk.alg.as_deref(), Some("RS256"));
    assert_eq!(jwk.n.as_deref(), Some(AZWI_N));
    assert_eq!(jwk.e.as_deref(), Some("AQAB"));
    assert_eq!(
        serde_json::to_string(&jwk).unwrap(),
        format!(r#"{{"use":"sig","kty":"RSA","kid":"{AZWI_KID}","alg":"RS256","n":"{AZWI_N}","e":"AQAB"}}"#)
    );
    // kube_kid is over the DER SPKI exactly as it appears in the PEM.
    let der = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        AZWI_PUBLIC_KEY.lines().filter(|l| !l.starts_with("-----")).collect::<String>(),
    )
    .unwrap();
    assert_eq!(kube_kid(&der), AZWI_KID);
    assert!(VerifyingKey::from_jwk(&jwk).is_ok());
}

/// PKCS#1 RSAPrivateKey from inside a PKCS#8 PrivateKeyInfo.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    let (_, info, _) = der_tlv(pkcs8);
    let (_, _version, rest) = der_tlv(info);
    let (_, _alg, rest) = der_tlv(rest);
    let (tag, key, _) = der_tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

/// PKCS#1 RSAPublicKey from inside a SubjectPublicKeyInfo.
fn pkcs1_public_from_spki(spki: &[u8]) -> Vec<u8> {
    let (_, inner, _) = der_tlv(spki);
    let (_, _alg, rest) = der_tlv(inner);
    let (tag, bits, _) = der_tlv(rest);
    assert_eq!(tag, 0x03);
    bits[1..].to_vec()
}

/// SEC1 ECPrivateKey from inside a PKCS#8 PrivateKeyInfo.
fn sec1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
    pkcs1_from_pkcs8(pkcs8)
}

#[test]
fn every_pem_form_gives_the_same_jwk() {
    let key = rsa_key();
    let expected = key.public_jwk();
    let pkcs8 = key.to_pkcs8_der().unwrap();
    let forms = [
        to_pem("PUBLIC KEY", key.spki_der()),
        to_pem("RSA PUBLIC KEY", &pkcs1_public_from_spki(key.spki_der())),
        to_pem("PRIVATE KEY", &pkcs8),
        to_pem("RSA PRIVATE KEY", &pkcs1_from_pkcs8(&pkcs8)),
    ];
    for pem in &forms {
        assert_eq!(jwk_from_public_pem(pem).unwrap(), expected, "{pem}");
    }
    assert_eq!(SigningKey::from_pem(&forms[3]).unwrap().kid(), key.kid());

    for curve in EcCurve::ALL {
        let key = ec_key(curve);
        let expected = key.public_jwk();
        assert_eq!(expected.alg.as_deref(), Some(curve.alg().as_str()));
        assert_eq!(expected.crv.as_deref(), Some(curve.jwk_crv()));
        let pkcs8 = key.to_pkcs8_der().unwrap();
        let forms = [
            to_pem("PUBLIC KEY", key.spki_der()),
            to_pem("PRIVATE KEY", &pkcs8),
            to_pem("EC PRIVATE KEY", &sec1_from_pkcs8(&pkcs8)),
        ];
        for pem in &forms {
            assert_eq!(jwk_from_public_pem(pem).unwrap(), expected, "{pem}");
        }
        assert_eq!(SigningKey::from_pem(&forms[2]).unwrap().kid(), key.kid());
    }
}

#[test]
fn pem_bundle_and_refusals() {
    let bundle = format!(
        "# cluster keys\n{}{}",
        to_pem("PUBLIC KEY", rsa_key().spki_der()),
        to_pem("PUBLIC KEY", ec_key(EcCurve::P256).spki_der())
    );
    let set = jwks_from_pem(&bundle).unwrap();
    assert_eq!(set.keys.len(), 2);
    assert_eq!(set.find(rsa_key().kid()), Some(&rsa_key().public_jwk()));
    assert_eq!(set.find(ec_key(EcCurve::P256).kid()), Some(&ec_key(EcCurve::P256).public_jwk()));

    assert!(matches!(jwk_from_public_pem(""), Err(JoseError::Malformed(_))));
    assert!(matches!(jwks_from_pem("nothing"), Err(JoseError::Malformed(_))));
    assert!(matches!(jwk_from_public_pem(&to_pem("CERTIFICATE", b"\x30\x00")), Err(JoseError::UnsupportedKey(_))));
    assert!(matches!(
        jwk_from_public_pem(&to_pem("PUBLIC KEY", b"\x30\x03\x02\x01\x00")),
        Err(JoseError::UnsupportedKey(_))
    ));
    let encrypted = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
    assert!(matches!(jwk_from_public_pem(encrypted), Err(JoseError::Malformed(_))));
}

#[test]
fn jwks_parse_is_tolerant_of_unknown_keys() {
    let rsa = rsa_key().public_jwk();
    let doc = serde_json::json!({
        "keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", "kid": "ed"},
            {"kid": "no-kty"},
            {"kty": "RSA", "kid": "bad-types", "x5c": "not-an-array"},
            "not an object",
            rsa,
            {"kty": "RSA", "kid": "entra-like", "use": "sig", "n": rsa.n, "e": "AQAB",
             "x5t": "abc", "x5c": ["MIIB"], "issuer": "https://login.microsoftonline.com/{tenantid}/v2.0",
             "cloud_instance_name": "microsoftonline.com"}
        ],
        "extra": true
    });
    let bytes = serde_json::to_vec(&doc).unwrap();
    let set = JwkSet::parse(&bytes, 64 * 1024).unwrap();
    let kids: Vec<_> = set.keys.iter().map(|k| k.kid.as_deref().unwrap()).collect();
    assert_eq!(kids, vec!["ed", rsa_key().kid(), "entra-like"]);
    assert!(matches!(VerifyingKey::from_jwk(set.find("ed").unwrap()), Err(JoseError::UnsupportedKey(_))));
    let entra = set.find("entra-like").unwrap();
    assert_eq!(entra.x5c.as_deref(), Some(&["MIIB".to_owned()][..]));
    assert!(VerifyingKey::from_jwk(entra).is_ok());

    // Round trip through our own serialization.
    let again = JwkSet::parse(&serde_json::to_vec(&set).unwrap(), 64 * 1024).unwrap();
    assert_eq!(again, set);
}

#[test]
fn jwks_parse_refusals() {
    let ok = br#"{"keys":[]}"#;
    assert!(JwkSet::parse(ok, ok.len()).unwrap().keys.is_empty());
    assert_eq!(JwkSet::parse(ok, ok.len() - 1).unwrap_err(), JoseError::TooLarge);
    for bad in [
        &b""[..],
        b"[]",
        b"{}",
        b"{\"keys\":{}}",
        b"{\"keys\":null}",
        b"{\"keys\":[],\"keys\":[]}",
        b"{\"keys\":[{\"kty\":\"RSA\",\"kty\":\"EC\"}]}",
        b"{\"keys\":[]} x",
        b"\xff\xfe",
    ] {
        assert!(matches!(JwkSet::parse(bad, 1024), Err(JoseError::Malformed(_))), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn jwk_unknown_members_ignored_and_optional_skipped() {
    let jwk: Jwk = serde_json::from_str(r#"{"kty":"EC","crv":"P-256","d":"secret","key_ops":["verify"]}"#).unwrap();
    assert_eq!(jwk.kty, "EC");
    assert_eq!(serde_json::to_string(&jwk).unwrap(), r#"{"kty":"EC","crv":"P-256"}"#);
}
