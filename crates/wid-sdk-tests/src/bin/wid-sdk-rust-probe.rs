//! Gets one access token the way an unmodified application does: `WorkloadIdentityCredential::new(None)`
//! (client id, tenant, token file and authority host from the `AZURE_*` environment) over the SDK's
//! default transport (reqwest + rustls with the platform verifier, which on Linux honours
//! `SSL_CERT_FILE`). Prints the access token on stdout; on failure prints the SDK's error on stderr
//! and exits with 1.
//!
//! Usage: `wid-sdk-rust-probe SCOPE`

use std::process::ExitCode;

use azure_core::credentials::TokenCredential;
use azure_identity::WorkloadIdentityCredential;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let Some(scope) = std::env::args().nth(1) else {
        eprintln!("usage: wid-sdk-rust-probe SCOPE");
        return ExitCode::from(2);
    };
    let token = match WorkloadIdentityCredential::new(None) {
        Ok(credential) => credential.get_token(&[scope.as_str()], None).await,
        Err(e) => Err(e),
    };
    match token {
        Ok(t) => {
            println!("{}", t.token.secret());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
