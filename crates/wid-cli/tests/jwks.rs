//! `wid jwks`: azwi's output for azwi's own test vector, every key form, the refusals; and the
//! self-managed cluster path end to end: a key pair → `wid jwks` → `wid aks create --issuer-url
//! --jwks-file` → a token signed with that key is exchanged at an in-process server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use serde_json::{Value, json};
use wid_crypto::{Alg, EcCurve, SigningKey, encode_compact};
use wid_testkit::TestServer;

/// The RSA-2048 public key of azure-workload-identity's `pkg/cmd/jwks/root_test.go` (also in
/// wid-crypto's tests) and the JWKS azwi writes for it.
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
const AZWI_JWKS: &str = r#"{
  "keys": [
    {
      "use": "sig",
      "kty": "RSA",
      "kid": "2A3FPpix2keOV1SGPQiM0_wVemz4XOIgQyJJnpu5sPE",
      "alg": "RS256",
      "n": "1QJE2YmLbvMLP6FtzcfPzGbSDbHEEtA0mH6kwgrOrlKs83zj2vr6Y5k_ZcGdIbsdm5vDj2IxtSkE-pSDtgFM2iq0sJ7xuE6RYmlrtBm-H2WHvXrP9RrG1EfO7iWs6Czj4A_Ddxg3kNUiQCtQEJwwH2pfrUkh8STQhST_T86pq5AIFCuQiQSrkfC80eD9bUFypV3CLB2M9Fa1hbvOWbzSF93_I0toUK2-oPgVW6m2EwMyy8Fh_3KRixrAJO8g-D4d537C1fa1vJJRlMRFtLMA_bo6k1fAtNsVQuQoML5CmRrvNT7ZpXRLaQy64OSFrVLD3Pb7wct7b4g2xQECixQodw",
      "e": "AQAB"
    }
  ]
}"#;

const AUD: &str = "api://AzureADTokenExchange";

async fn wid(args: &[&str], env: &HashMap<String, String>) -> (i32, String, String) {
    let argv = std::iter::once("wid").chain(args.iter().copied()).map(String::from).collect();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = wid_cli::run(argv, env.clone(), &mut out, &mut err).await;
    (code, String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap())
}

async fn ok(args: &[&str], env: &HashMap<String, String>) -> String {
    let (code, out, err) = wid(args, env).await;
    assert_eq!(code, 0, "wid {args:?}\nstdout: {out}\nstderr: {err}");
    out
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn azwi_test_vector_on_stdout_and_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("public.key");
    std::fs::write(&key, AZWI_PUBLIC_KEY).unwrap();
    let env = HashMap::new();

    // stdout: azwi's bytes and a newline.
    let out = ok(&["jwks", "--public-keys", path_str(&key)], &env).await;
    assert_eq!(out, format!("{AZWI_JWKS}\n"));

    // --output-file: exactly azwi's bytes (json.MarshalIndent, no newline), mode 0600.
    let file = dir.path().join("jwks.json");
    let out = ok(&["jwks", "--public-keys", path_str(&key), "--output-file", path_str(&file)], &env).await;
    assert_eq!(out, "");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), AZWI_JWKS);
    assert_eq!(mode(&file), 0o600);

    // Like every wid command, --query works on the result.
    let out = ok(&["jwks", "--public-keys", path_str(&key), "--query", "keys[0].kid", "-o", "tsv"], &env).await;
    assert_eq!(out, "2A3FPpix2keOV1SGPQiM0_wVemz4XOIgQyJJnpu5sPE\n");
}

#[tokio::test]
async fn every_key_form_and_several_files() {
    let dir = tempfile::tempdir().unwrap();
    let rsa = SigningKey::generate_rsa(2048).unwrap();
    let p256 = SigningKey::generate_ec(EcCurve::P256).unwrap();
    let p384 = SigningKey::generate_ec(EcCurve::P384).unwrap();
    let p521 = SigningKey::generate_ec(EcCurve::P521).unwrap();

    // A private RSA key (reduced to its public part), two keys in one file with a non-key block
    // (`openssl ecparam -genkey` writes EC PARAMETERS first), public EC keys.
    let rsa_file = dir.path().join("sa.key");
    std::fs::write(&rsa_file, pem("PRIVATE KEY", &rsa.to_pkcs8_der().unwrap())).unwrap();
    let ec_file = dir.path().join("ec.pem");
    std::fs::write(
        &ec_file,
        format!(
            "{}{}{}",
            pem("EC PARAMETERS", &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
            pem("PRIVATE KEY", &p256.to_pkcs8_der().unwrap()),
            pem("PUBLIC KEY", p384.spki_der())
        ),
    )
    .unwrap();
    let p521_file = dir.path().join("p521.pub");
    std::fs::write(&p521_file, pem("PUBLIC KEY", p521.spki_der())).unwrap();

    let list = format!("{},{}", path_str(&rsa_file), path_str(&ec_file));
    let out = ok(&["jwks", "--public-keys", &list, "--public-keys", path_str(&p521_file)], &HashMap::new()).await;
    let jwks: Value = serde_json::from_str(&out).unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let got: Vec<(&str, &str, &str)> = keys
        .iter()
        .map(|k| (k["kty"].as_str().unwrap(), k["alg"].as_str().unwrap(), k["kid"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("RSA", "RS256", rsa.kid()),
            ("EC", "ES256", p256.kid()),
            ("EC", "ES384", p384.kid()),
            ("EC", "ES512", p521.kid()),
        ]
    );
    // go-jose's member order; no private members.
    let kid_at = out.find(p256.kid()).unwrap();
    let ec_text = &out[out[..kid_at].rfind('{').unwrap()..];
    let ec_text = &ec_text[..ec_text.find('}').unwrap()];
    let at = |m: &str| ec_text.find(&format!("\"{m}\":")).unwrap_or_else(|| panic!("{m} in {ec_text}"));
    let order = ["use", "kty", "kid", "crv", "alg", "x", "y"].map(at);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{ec_text}");
    assert_eq!(keys[3]["crv"], "P-521");
    assert!(keys.iter().all(|k| k.get("d").is_none() && k["use"] == "sig"));
    // The stdout form is the pretty JSON azwi prints.
    assert!(out.starts_with("{\n  \"keys\": [\n    {\n      \"use\": \"sig\",\n"), "{out}");
}

#[tokio::test]
async fn refusals_name_the_file_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let env = HashMap::new();
    let missing = dir.path().join("nope.pub");
    let (code, _, err) = wid(&["jwks", "--public-keys", path_str(&missing)], &env).await;
    assert_eq!(code, 1);
    assert!(err.starts_with("ERROR: failed to read public key file: error reading public key file"), "{err}");

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a key\n").unwrap();
    let (code, _, err) = wid(&["jwks", "--public-keys", path_str(&junk)], &env).await;
    assert_eq!(code, 1);
    assert!(err.contains("data does not contain any valid RSA or ECDSA public keys"), "{err}");

    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, pem("CERTIFICATE", &[0x30, 0x00])).unwrap();
    let (code, _, err) = wid(&["jwks", "--public-keys", path_str(&cert)], &env).await;
    assert_eq!(code, 1);
    assert!(err.contains("holds a certificate") && err.contains("openssl x509"), "{err}");

    let broken = dir.path().join("broken.pub");
    std::fs::write(&broken, pem("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01, 0x00])).unwrap();
    let (code, _, err) = wid(&["jwks", "--public-keys", path_str(&broken)], &env).await;
    assert_eq!(code, 1);
    assert!(err.contains("broken.pub") && err.contains("PUBLIC KEY block"), "{err}");

    let (code, _, err) = wid(&["jwks"], &env).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--public-keys"), "{err}");
}

/// A self-managed cluster: its key pair, its JWKS made by `wid jwks`, registered with `wid aks
/// create --issuer-url --jwks-file`; a token it signs is exchanged; one signed by another key is not.
#[tokio::test]
async fn self_managed_cluster_tokens_are_exchanged() {
    let s = TestServer::start().await;
    let mut env = HashMap::new();
    env.insert("WID_CONFIG".to_owned(), s.dir.path().join("profile.json").display().to_string());
    let issuer = "https://oidc.cluster.example/self-managed-1/";
    let subject = "system:serviceaccount:apps:worker";

    // What kube-apiserver would hold: --service-account-signing-key-file / --service-account-key-file.
    let key = SigningKey::generate_rsa(2048).unwrap();
    let sa_key = s.dir.path().join("sa.key");
    std::fs::write(&sa_key, pem("PRIVATE KEY", &key.to_pkcs8_der().unwrap())).unwrap();
    let jwks_file = s.dir.path().join("jwks.json");
    ok(&["jwks", "--public-keys", path_str(&sa_key), "--output-file", path_str(&jwks_file)], &env).await;

    ok(&["group", "create", "-n", "rg", "-l", "eastus", "-o", "none"], &env).await;
    let cluster: Value = serde_json::from_str(
        &ok(
            &["aks", "create", "-n", "onprem", "-g", "rg", "--issuer-url", issuer, "--jwks-file", path_str(&jwks_file)],
            &env,
        )
        .await,
    )
    .unwrap();
    assert_eq!(cluster["oidcIssuerProfile"]["issuerUrl"], issuer);
    ok(&["identity", "create", "-n", "worker", "-g", "rg", "-o", "none"], &env).await;
    ok(
        &[
            "identity",
            "federated-credential",
            "create",
            "--name",
            "onprem-worker",
            "--identity-name",
            "worker",
            "-g",
            "rg",
            "--issuer",
            issuer,
            "--subject",
            subject,
            "--audience",
            AUD,
            "-o",
            "none",
        ],
        &env,
    )
    .await;
    let client_id =
        ok(&["identity", "show", "-n", "worker", "-g", "rg", "--query", "clientId", "-o", "tsv"], &env).await;
    let client_id = client_id.trim();

    // A token as kube-apiserver signs it: RS256, kid derived from the key.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({
        "iss": issuer, "sub": subject, "aud": [AUD], "iat": now, "nbf": now, "exp": now + 3600,
        "kubernetes.io": {"namespace": "apps", "serviceaccount": {"name": "worker", "uid": "0f6a4e2c-1c1f-4c3e-9d51-1d0d7a3f0b6e"}},
    });
    let assertion = encode_compact(&json!({"typ": "JWT"}), &claims, &key, Alg::Rs256).unwrap();
    let exchange = |assertion: String| {
        let s = &s;
        let client_id = client_id.to_owned();
        async move {
            let scope = format!("{}/.default", s.profile.key_vault_resource.as_deref().unwrap());
            s.token(
                &s.tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &client_id),
                    ("client_assertion", &assertion),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("scope", &scope),
                ],
            )
            .await
        }
    };
    let (status, body) = exchange(assertion).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");

    // Another key, even with the registered key's kid, is refused.
    let other = SigningKey::generate_rsa(2048).unwrap();
    let forged = encode_compact(&json!({"typ": "JWT", "kid": key.kid()}), &claims, &other, Alg::Rs256).unwrap();
    let (status, body) = exchange(forged).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error_description"].as_str().unwrap().starts_with("AADSTS700027:"), "{body}");
}
