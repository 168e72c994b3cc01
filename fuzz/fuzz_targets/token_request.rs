//! The token endpoint's form body and scope handling. Must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wid_sts::TokenRequest;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = TokenRequest::parse(data) {
        let _ = format!("{req:?}");
    }
});
