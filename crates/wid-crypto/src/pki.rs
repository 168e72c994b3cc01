//! A local certificate authority for wid's own TLS: one long-lived ECDSA P-256 CA and
//! short-lived server certificates for names like `vault.localhost` and
//! `*.vault.localhost`, built with rcgen on the aws-lc backend.

use std::fmt;
use std::net::IpAddr;

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PublicKeyData as _, SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use zeroize::{Zeroize as _, Zeroizing};

use crate::error::CryptoError;
use crate::pem;
use crate::secret::random_bytes;

/// CA lifetime: long, because the CA is distributed to clients' trust stores once.
const CA_VALIDITY_DAYS: i64 = 3650;
/// Backdating of `notBefore`, to tolerate clock skew between wid and its clients.
const BACKDATE: Duration = Duration::minutes(5);
/// Upper bound on a server certificate's requested lifetime.
const MAX_LEAF_VALIDITY_DAYS: u32 = 3650;

/// A local CA: its certificate and (zeroizing) private key, both PEM.
pub struct LocalCa {
    cert_pem: String,
    key_pem: Zeroizing<String>,
    not_after_unix: i64,
}

impl fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalCa").field("not_after_unix", &self.not_after_unix).finish_non_exhaustive()
    }
}

/// rcgen keeps a plain copy of the private key DER; wipe it when we are done.
struct KeyGuard(KeyPair);

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

fn cert_err(context: &'static str) -> impl FnOnce(rcgen::Error) -> CryptoError {
    move |source| CryptoError::Certificate { context, source }
}

impl LocalCa {
    /// Create a new CA: ECDSA P-256, `CA:true, pathlen:0`, key usage `keyCertSign` and
    /// `cRLSign`, valid for 10 years.
    pub fn generate(common_name: &str) -> Result<LocalCa, CryptoError> {
        let key = KeyGuard(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err("generating the CA key"))?);
        let now = OffsetDateTime::now_utc();
        let not_after = now + Duration::days(CA_VALIDITY_DAYS);
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key.0).map_err(cert_err("self-signing the CA certificate"))?;
        Ok(LocalCa {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.0.serialize_pem()),
            not_after_unix: not_after.unix_timestamp(),
        })
    }

    /// Load a CA from PEM. The certificate must be a CA (`basicConstraints CA:true`) and
    /// the private key (`PRIVATE KEY`, or `EC`/`RSA PRIVATE KEY`) must belong to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<LocalCa, CryptoError> {
        let cert_der = first_certificate_der(cert_pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|_| CryptoError::InvalidCa("certificate is not valid X.509 DER".to_owned()))?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|_| CryptoError::InvalidCa("certificate has invalid basicConstraints".to_owned()))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(CryptoError::InvalidCa(
                "certificate is not a CA (basicConstraints CA:true missing)".to_owned(),
            ));
        }
        let key = KeyGuard(
            KeyPair::from_pem(key_pem)
                .map_err(|e| CryptoError::InvalidCa(format!("cannot read CA private key: {e}")))?,
        );
        if key.0.subject_public_key_info() != cert.public_key().raw {
            return Err(CryptoError::InvalidCa("private key does not match the CA certificate".to_owned()));
        }
        // Make sure issuance will be able to rebuild the issuer from this certificate.
        Issuer::from_ca_cert_der(&cert_der.as_slice().into(), &key.0)
            .map_err(|e| CryptoError::InvalidCa(format!("cannot use certificate as issuer: {e}")))?;
        Ok(LocalCa {
            cert_pem: cert_pem.to_owned(),
            key_pem: Zeroizing::new(key_pem.to_owned()),
            not_after_unix: cert.validity().not_after.timestamp(),
        })
    }

    /// The CA certificate, PEM. This is what clients add to their trust store.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key, PKCS#8 PEM, for persisting (encrypted or with 0600 mode).
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// When the CA certificate expires, as Unix seconds.
    #[must_use]
    pub fn not_after_unix(&self) -> i64 {
        self.not_after_unix
    }

    /// Issue a server certificate with a fresh ECDSA P-256 key.
    ///
    /// SANs are exactly `dns_names` (wildcards such as `*.vault.localhost` allowed) and
    /// `ips`; key usage `digitalSignature`, extended key usage `serverAuth`, valid for
    /// `validity_days` (1–3650, never past the CA's own expiry). Returns the leaf
    /// certificate PEM and its PKCS#8 private key PEM.
    pub fn issue_server_cert(
        &self,
        dns_names: &[String],
        ips: &[IpAddr],
        validity_days: u32,
    ) -> Result<(String, Zeroizing<String>), CryptoError> {
        if dns_names.is_empty() && ips.is_empty() {
            return Err(CryptoError::InvalidCertRequest("at least one DNS name or IP address is required".to_owned()));
        }
        if validity_days == 0 || validity_days > MAX_LEAF_VALIDITY_DAYS {
            return Err(CryptoError::InvalidCertRequest(format!(
                "validity must be 1 to {MAX_LEAF_VALIDITY_DAYS} days"
            )));
        }
        let mut sans = Vec::with_capacity(dns_names.len() + ips.len());
        for name in dns_names {
            check_dns_name(name)?;
            let ia5 = Ia5String::try_from(name.as_str())
                .map_err(|_| CryptoError::InvalidCertRequest(format!("DNS name {name:?} is not ASCII")))?;
            sans.push(SanType::DnsName(ia5));
        }
        sans.extend(ips.iter().copied().map(SanType::IpAddress));

        let ca_key = KeyGuard(KeyPair::from_pem(&self.key_pem).map_err(cert_err("loading the CA key"))?);
        let issuer =
            Issuer::from_ca_cert_pem(&self.cert_pem, &ca_key.0).map_err(cert_err("loading the CA certificate"))?;

        let now = OffsetDateTime::now_utc();
        let ca_not_after = OffsetDateTime::from_unix_timestamp(self.not_after_unix)
            .map_err(|_| CryptoError::InvalidCa("CA expiry is out of range".to_owned()))?;
        let not_after = (now + Duration::days(i64::from(validity_days))).min(ca_not_after);

        let common_name =
            dns_names.first().cloned().or_else(|| ips.first().map(ToString::to_string)).unwrap_or_default();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.subject_alt_names = sans;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - BACKDATE;
        params.not_after = not_after;
        params.serial_number = Some(random_serial()?);

        let leaf_key =
            KeyGuard(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(cert_err("generating the server key"))?);
        let cert = params.signed_by(&leaf_key.0, &issuer).map_err(cert_err("signing the server certificate"))?;
        Ok((cert.pem(), Zeroizing::new(leaf_key.0.serialize_pem())))
    }
}

/// `notAfter` of the first certificate in `pem`, as Unix seconds (for renewal decisions).
pub fn cert_not_after_unix(pem: &str) -> Result<i64, CryptoError> {
    let der = first_certificate_der(pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|_| CryptoError::InvalidPem("certificate is not valid X.509 DER".to_owned()))?;
    Ok(cert.validity().not_after.timestamp())
}

fn first_certificate_der(pem_text: &str) -> Result<Vec<u8>, CryptoError> {
    let blocks = pem::parse_all(pem_text).map_err(CryptoError::InvalidPem)?;
    blocks
        .into_iter()
        .find(|b| b.label == "CERTIFICATE")
        .map(|b| b.der.to_vec())
        .ok_or_else(|| CryptoError::InvalidPem("no CERTIFICATE block found".to_owned()))
}

/// 16 random bytes, positive, without a leading zero byte (RFC 5280 §4.1.2.2).
fn random_serial() -> Result<SerialNumber, CryptoError> {
    let mut bytes = random_bytes(16)?;
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    Ok(SerialNumber::from_slice(&bytes))
}

/// Light syntax check of a SAN DNS name: labels of letters, digits, `-`, `_`, at most 63
/// bytes each, 253 in total; only the leftmost label may be the wildcard `*`.
fn check_dns_name(name: &str) -> Result<(), CryptoError> {
    let bad = |why: &str| CryptoError::InvalidCertRequest(format!("DNS name {name:?} {why}"));
    if name.is_empty() || name.len() > 253 {
        return Err(bad("must be 1 to 253 characters"));
    }
    for (i, label) in name.split('.').enumerate() {
        if i == 0 && label == "*" {
            continue;
        }
        if label.is_empty() || label.len() > 63 {
            return Err(bad("has an empty or over-long label"));
        }
        if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(bad("contains characters not allowed in a host name"));
        }
    }
    if name == "*" {
        return Err(bad("is a bare wildcard"));
    }
    Ok(())
}
