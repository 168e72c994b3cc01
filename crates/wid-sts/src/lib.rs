//! wid token service: the Entra-compatible `client_credentials` exchange (federated assertion or
//! client secret), the key ring, external issuers' key cache, access-token minting and verification,
//! and service-account tokens of hosted cluster issuers.
//!
//! Walk of an exchange: tenant → client id (in-memory directory) → credentials naming the assertion's
//! issuer → that issuer's keys (hosted: key ring; uploaded JWKS; external: discovery + JWKS cache) →
//! signature → subject and audience → sign an access token. No storage access, no write.

mod bound;
mod cache;
pub mod error;
pub mod issuer;
pub mod keys;
mod request;
mod service;
pub mod tokens;

pub use error::{StsError, WireError};
pub use request::TokenRequest;
pub use service::{JWT_BEARER, StsConfig, TokenResponse, TokenService};
pub use wid_core::{Caller, VerifyError};
