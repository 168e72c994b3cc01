//! wid's mutating admission webhook, as pure decisions: an AdmissionReview (JSON bytes) and the pod's
//! ServiceAccount in, an AdmissionReview response (allowed + JSONPatch, or a denial) out. No IO, so
//! every behaviour is a unit test and the parser is fuzzed.
//!
//! The behaviour is azure-workload-identity v1.6.0's webhook (labels, annotations, environment
//! variables, paths, proxy containers, denial texts), with the improvements listed in [`mutate`]'s
//! module docs. The process around it (TLS, ServiceAccount cache, metrics), `wid webhook`, is the
//! [`server`] module, built with the `server` feature.
//!
//! ```
//! use wid_webhook::{Config, Review, ServiceAccount};
//! let body = br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1",
//!   "namespace":"default","object":{"metadata":{"name":"demo"},"spec":{"containers":[{"name":"app"}]}}}}"#;
//! let review = Review::parse(body).unwrap();
//! assert_eq!(review.service_account_name(), "default");
//! let sa = ServiceAccount { name: "default".into(), ..Default::default() };
//! let response = review.admit(&sa, &Config::new("tenant"));
//! assert!(response.allowed() && !response.patch().is_empty());
//! ```

pub mod config;
pub mod consts;
pub mod goparse;
pub mod mutate;
pub mod patch;
pub mod review;
#[cfg(feature = "server")]
pub mod server;

pub use config::{
    CaBundle, Config, ConfigError, CustomCa, CustomTokenEndpoint, CustomTokenEndpointSettings, ProxyConfig,
    TokenLayout, authority_host_for_environment, validate_authority_host,
};
pub use mutate::{ServiceAccount, service_account_not_found, service_account_unreadable, volume_name};
pub use patch::{Op, PatchError, PatchOp, apply};
pub use review::{Denial, MAX_REVIEW_BYTES, Response, Review, ReviewVersion};

/// One-shot decision: parse `body`, decide with the ServiceAccount (`None`: it does not exist),
/// answer. What the fuzz target and simple callers use; the process looks the ServiceAccount up
/// between [`Review::parse`] and [`Review::admit`].
pub fn mutate(body: &[u8], sa: Option<&ServiceAccount>, cfg: &Config) -> Response {
    let review = match Review::parse(body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    match sa {
        Some(sa) => review.admit(sa, cfg),
        None => review.deny(service_account_not_found(review.namespace(), review.service_account_name())),
    }
}

#[cfg(test)]
mod tests;
