//! wid domain types and pure logic: ids, ARM resource ids and scopes, federated identity credential
//! rules and matching, RBAC role definitions and evaluation, the clock.
//!
//! No IO lives here (no tokio, HTTP or database): everything is a plain function over values, so it is
//! cheap to test exhaustively and to fuzz.

pub mod audit;
pub mod clock;
pub mod directory;
pub mod fic;
pub mod glob;
pub mod model;
pub mod rbac;
pub mod scope;

pub use clock::{Clock, FixedClock, SystemClock};
pub use scope::{Scope, ScopeError};
