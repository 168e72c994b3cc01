//! wid domain types and pure logic: ids, ARM resource ids and scopes, federated identity credential
//! rules and matching, RBAC role definitions and evaluation, the clock and time formatting, verified
//! callers, Kubernetes names, flag durations, the interface between the management plane and hosted
//! issuers, and the CLI profile that the server writes and the client reads.
//!
//! No IO lives here (no tokio, HTTP or database; the CLI profile's atomic private file write is the
//! one exception): everything is a plain function over values, so it is
//! cheap to test exhaustively and to fuzz.

pub mod audit;
pub mod caller;
pub mod clock;
pub mod credentials;
pub mod directory;
pub mod duration;
pub mod expression;
pub mod fic;
pub mod glob;
pub mod issuer;
pub mod kube;
pub mod model;
pub mod profile;
pub mod rbac;
pub mod scope;

pub use caller::{Caller, VerifyError};
pub use clock::{Clock, FixedClock, SystemClock};
pub use scope::{Scope, ScopeError};

/// A small deterministic generator for the property tests of this crate.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut(usize) -> usize {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        usize::try_from(seed % n.max(1) as u64).unwrap_or(0)
    }
}
