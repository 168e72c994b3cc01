//! The verification workload of the walkthrough (seed 003, "Deploy a verification pod"), in the role
//! of the upstream `ghcr.io/azure/azure-workload-identity/msal-go` sample image, written with the
//! official Rust SDK: reads `KEYVAULT_URL` and `SECRET_NAME` like the pod spec sets them, gets the
//! secret with `WorkloadIdentityCredential::new(None)` (the webhook's `AZURE_*` environment) and
//! `SecretClient` over the SDK's default transport, and logs what the sample logs:
//!
//! ```text
//! "successfully got secret" secret="Hello\\!"
//! ```
//!
//! (the value quoted and escaped, as klog does). On failure it logs the SDK's error on stderr — for a
//! service error also the status and the response body, as Go's `azcore.ResponseError` shows them —
//! and exits with 1. One attempt instead of the sample's 60-second loop.

use std::process::ExitCode;

use azure_core::error::ErrorKind;
use azure_identity::WorkloadIdentityCredential;
use azure_security_keyvault_secrets::SecretClient;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let keyvault_url = std::env::var("KEYVAULT_URL").unwrap_or_default();
    let secret_name = std::env::var("SECRET_NAME").unwrap_or_default();
    match get_secret(&keyvault_url, &secret_name).await {
        Ok(secret) => {
            println!("\"successfully got secret\" secret={secret:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\"failed to get secret from keyvault\" keyvault={keyvault_url:?} secretName={secret_name:?}");
            eprintln!("{}", describe(&e));
            ExitCode::from(1)
        }
    }
}

async fn get_secret(keyvault_url: &str, secret_name: &str) -> azure_core::Result<String> {
    let credential = WorkloadIdentityCredential::new(None)?;
    let client = SecretClient::new(keyvault_url, credential, None)?;
    let secret = client.get_secret(secret_name, None).await?.into_model()?;
    secret.value.ok_or_else(|| azure_core::Error::with_message(ErrorKind::DataConversion, "the secret has no value"))
}

/// The error, its sources, and for an HTTP error the status and body the service sent.
fn describe(e: &azure_core::Error) -> String {
    let mut out = format!("error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out.push_str(&format!("\ncaused by: {s}"));
        source = s.source();
    }
    if let ErrorKind::HttpResponse { status, error_code, raw_response } = e.kind() {
        out.push_str(&format!("\nRESPONSE {status}\nERROR CODE: {}", error_code.as_deref().unwrap_or("UNAVAILABLE")));
        if let Some(raw) = raw_response {
            out.push_str(&format!("\n{}", String::from_utf8_lossy(raw.body())));
        }
    }
    out
}
