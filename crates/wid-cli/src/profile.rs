//! The CLI profile (which server, which CA, the CLI principal's credential): the same type the
//! server writes on first start, defined in `wid_core::profile`.

pub use wid_core::profile::{Profile, ProfileError, default_path};
