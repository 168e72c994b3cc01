//! `wid jwks --public-keys a.pub,b.pub [--output-file F]`: the JSON Web Key Set of a cluster's
//! service-account signing keys, byte for byte what `azwi jwks` (azure-workload-identity
//! `pkg/cmd/jwks`) writes, for self-managed clusters whose issuer is not publicly reachable:
//! upload it with `wid aks create --issuer-url URL --jwks-file F`.
//!
//! Each key becomes `{"use":"sig","kty","kid","alg","n","e"}` (EC: `crv`, `x`, `y`), `kid` derived
//! as kube-apiserver derives it (base64url(SHA-256(DER SubjectPublicKeyInfo))), so the `kid` in
//! the cluster's tokens finds its key. Files are read as k8s `keyutil.PublicKeysFromFile` reads
//! them: every PEM block of every file, private keys reduced to their public part, blocks that
//! hold no key (`EC PARAMETERS`, …) skipped. Unlike azwi, a key block that cannot be used is an
//! error with its reason (azwi drops it silently), RSA keys under 2048 bits are refused (wid's
//! token service would refuse them too), and certificates are refused with a hint.
//!
//! Output: 2-space-indented JSON (Go's `json.MarshalIndent`); `--output-file` gets exactly azwi's
//! bytes (no trailing newline) with mode 0600, stdout gets them plus a newline.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::error::CliError;
use crate::output::value::Val;
use crate::{Ctx, GlobalArgs, Outcome};

#[derive(Debug, Args)]
pub struct JwksArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// PEM files with the service-account keys to publish (public keys, or private keys, which
    /// are reduced to their public part): comma-separated and/or repeated.
    #[arg(long, value_name = "FILE", value_delimiter = ',', required = true)]
    pub public_keys: Vec<PathBuf>,
    /// Write the JWKS to this file (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,
}

/// PEM labels of the key forms wid-crypto reads (k8s keyutil tries the same forms).
const KEY_LABELS: [&str; 5] = ["PUBLIC KEY", "RSA PUBLIC KEY", "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

pub async fn run(a: JwksArgs, _ctx: &mut Ctx<'_>) -> Result<Outcome, CliError> {
    let set = jwks_from_files(&a.public_keys)?;
    let text = render(&set)?;
    match &a.output_file {
        Some(path) => {
            wid_core::profile::write_private(path, text.as_bytes())
                .map_err(|e| CliError::failed(format!("failed to write JWKS to file '{}': {e}", path.display())))?;
            Ok(Outcome::none())
        }
        None => {
            let value = Val::parse(&text).map_err(|e| CliError::failed(format!("cannot render the JWKS: {e}")))?;
            Ok(Outcome { result: Some(value), table: None, raw: Some(text) })
        }
    }
}

/// The JWKS as azwi prints it: `json.MarshalIndent(keySet, "", "  ")`, no trailing newline.
pub fn render(set: &wid_crypto::JwkSet) -> Result<String, CliError> {
    serde_json::to_string_pretty(set).map_err(|e| CliError::failed(format!("failed to marshal JSONWebKeySet: {e}")))
}

/// Every key of every file, in order.
pub fn jwks_from_files(paths: &[PathBuf]) -> Result<wid_crypto::JwkSet, CliError> {
    if paths.is_empty() {
        return Err(CliError::usage("no public keys provided"));
    }
    let mut keys = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path).map_err(|e| {
            CliError::failed(format!(
                "failed to read public key file: error reading public key file {}: {e}",
                path.display()
            ))
        })?;
        keys.extend(jwks_from_pem_text(path, &text)?);
    }
    Ok(wid_crypto::JwkSet { keys })
}

/// The keys of one PEM file.
fn jwks_from_pem_text(path: &Path, text: &str) -> Result<Vec<wid_crypto::Jwk>, CliError> {
    let file = path.display();
    let mut keys = Vec::new();
    for block in wid_crypto::pem::text_blocks(text) {
        if KEY_LABELS.contains(&block.label.as_str()) {
            let jwk = wid_crypto::jwk_from_public_pem(&block.text).map_err(|e| {
                CliError::failed(format!("failed to read public key file {file}: {} block: {e}", block.label))
            })?;
            keys.push(jwk);
        } else if block.label == "CERTIFICATE" {
            return Err(CliError::failed(format!(
                "{file} holds a certificate; give the key itself (openssl x509 -in {file} -pubkey -noout > sa.pub)"
            )));
        } else if block.label == "ENCRYPTED PRIVATE KEY" {
            return Err(CliError::failed(format!(
                "{file} holds an encrypted private key; give the public key (openssl pkey -in {file} -pubout > sa.pub)"
            )));
        }
        // Anything else (EC PARAMETERS, …) holds no key; keyutil skips it too.
    }
    if keys.is_empty() {
        return Err(CliError::failed(format!(
            "failed to read public key file: error reading public key file {file}: data does not contain any valid RSA or ECDSA public keys"
        )));
    }
    Ok(keys)
}
