//! Key Vault data-plane routing from untrusted requests: any method and path below a vault's host.
//! Must never panic, and an operation is found only under the two collections.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wid_vault::route::route;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (method, path) = text.split_once(' ').unwrap_or(("GET", text));
    if route(method, path).is_ok() {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or_default().to_ascii_lowercase();
        assert!(first == "secrets" || first == "deletedsecrets", "{method} {path}");
    }
});
