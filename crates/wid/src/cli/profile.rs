//! The CLI profile (which server, which CA, the CLI principal's credential): the same type the
//! server writes on first start, defined in `wid_server::profile`.

pub use wid_server::profile::{Profile, ProfileError, default_path};
