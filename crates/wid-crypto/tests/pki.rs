//! Local CA and server certificates, checked with rustls' webpki verifier.

// Test helpers outside #[test] fns are not covered by clippy.toml's allow-*-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use wid_crypto::{CryptoError, LocalCa, cert_not_after_unix};

fn verifier(ca: &LocalCa) -> Arc<WebPkiServerVerifier> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap()).unwrap();
    WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .unwrap()
}

fn verifies(verifier: &WebPkiServerVerifier, leaf_pem: &str, name: &str) -> bool {
    let leaf = CertificateDer::from_pem_slice(leaf_pem.as_bytes()).unwrap();
    let server_name = ServerName::try_from(name.to_owned()).unwrap();
    verifier.verify_server_cert(&leaf, &[], &server_name, &[], UnixTime::now()).is_ok()
}

fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn server_cert_chains_to_ca() {
    let ca = LocalCa::generate("wid local CA").unwrap();
    let (leaf_pem, key_pem) = ca
        .issue_server_cert(
            &["vault.localhost".to_owned(), "*.vault.localhost".to_owned(), "localhost".to_owned()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)],
            90,
        )
        .unwrap();
    assert!(PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).is_ok());

    let v = verifier(&ca);
    for name in ["vault.localhost", "myvault.vault.localhost", "localhost", "127.0.0.1", "::1"] {
        assert!(verifies(&v, &leaf_pem, name), "{name} should verify");
    }
    for name in ["other.localhost", "a.b.vault.localhost", "example.com", "10.0.0.1"] {
        assert!(!verifies(&v, &leaf_pem, name), "{name} must not verify");
    }

    // A different CA does not vouch for this certificate.
    let other = LocalCa::generate("other").unwrap();
    assert!(!verifies(&verifier(&other), &leaf_pem, "localhost"));

    // Expiry is what we asked for (within a minute of slack).
    let not_after = cert_not_after_unix(&leaf_pem).unwrap();
    assert!((not_after - (now_unix() + 90 * 86_400)).abs() < 60, "{not_after}");
    let ca_not_after = cert_not_after_unix(ca.cert_pem()).unwrap();
    assert_eq!(ca_not_after, ca.not_after_unix());
    assert!((ca_not_after - (now_unix() + 3650 * 86_400)).abs() < 60);
}

#[test]
fn ca_reloads_from_pem() {
    let ca = LocalCa::generate("wid local CA").unwrap();
    let reloaded = LocalCa::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
    assert_eq!(reloaded.not_after_unix(), ca.not_after_unix());
    let (leaf, _) = reloaded.issue_server_cert(&["vault.localhost".to_owned()], &[], 1).unwrap();
    assert!(verifies(&verifier(&ca), &leaf, "vault.localhost"));

    let debug = format!("{ca:?}");
    assert!(!debug.contains("PRIVATE"), "{debug}");
}

#[test]
fn ca_refusals() {
    let ca = LocalCa::generate("a").unwrap();
    let other = LocalCa::generate("b").unwrap();
    assert!(matches!(LocalCa::from_pem(ca.cert_pem(), other.key_pem()), Err(CryptoError::InvalidCa(_))));
    let (leaf, leaf_key) = ca.issue_server_cert(&["localhost".to_owned()], &[], 1).unwrap();
    assert!(matches!(LocalCa::from_pem(&leaf, &leaf_key), Err(CryptoError::InvalidCa(_))));
    assert!(matches!(LocalCa::from_pem("garbage", ca.key_pem()), Err(CryptoError::InvalidPem(_))));
    assert!(LocalCa::from_pem(ca.cert_pem(), "garbage").is_err());
}

#[test]
fn issue_refusals() {
    let ca = LocalCa::generate("a").unwrap();
    let bad = |names: &[&str], ips: &[IpAddr], days: u32| {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        matches!(ca.issue_server_cert(&names, ips, days), Err(CryptoError::InvalidCertRequest(_)))
    };
    assert!(bad(&[], &[], 30));
    assert!(bad(&["localhost"], &[], 0));
    assert!(bad(&["localhost"], &[], 3651));
    assert!(bad(&["*"], &[], 30));
    assert!(bad(&["a..b"], &[], 30));
    assert!(bad(&["a.*.b"], &[], 30));
    assert!(bad(&["bad name"], &[], 30));
    assert!(bad(&["ünicode.example"], &[], 30));
    assert!(bad(&[""], &[], 30));
    // IP-only certificates are fine.
    let (leaf, _) = ca.issue_server_cert(&[], &[IpAddr::V4(Ipv4Addr::LOCALHOST)], 30).unwrap();
    assert!(verifies(&verifier(&ca), &leaf, "127.0.0.1"));
}
