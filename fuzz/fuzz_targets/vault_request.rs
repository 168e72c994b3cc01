//! Key Vault data-plane inputs from untrusted clients: the Host authority, api-version, secret
//! names and versions, paging parameters, JSON bodies of set/update/restore, and backup blobs.
//! Must never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use wid_crypto::MasterKey;
use wid_vault::request::{self, RestoreParams, SetParams, UpdateParams};

fn master() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(|| MasterKey::generate().expect("key"))
}

fuzz_target!(|data: &[u8]| {
    let _ = SetParams::parse(data);
    let _ = UpdateParams::parse(data);
    let _ = RestoreParams::parse(data);
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = wid_vault::VaultHost::parse(text, "vault.localhost:8443");
    let _ = wid_vault::VaultHost::parse(text, "vault.example");
    let _ = request::valid_api_version(text);
    let _ = request::check_name(text);
    let _ = request::parse_version(text);
    let _ = request::page_size(Some(text));
    let _ = request::decode_skiptoken(Some(text));
    let _ = wid_vault::backup::Backup::open(text, master(), &uuid::Uuid::nil());
});
