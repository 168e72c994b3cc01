//! Per-vault data keys (the management plane creates them with a vault, the data plane opens them). Each vault has its own AES-256-GCM key, sealed with the master key (AAD
//! `vault-key:{vault_id}`); secret values are sealed with the vault's key (AAD
//! `secret:{vault_id}/{name key}/{version}`), so a value cannot be moved to another vault, name or
//! version without failing to open.

use crate::{CryptoError, MasterKey};
use uuid::Uuid;
use zeroize::Zeroizing;

fn key_aad(vault_id: &Uuid) -> Vec<u8> {
    format!("vault-key:{vault_id}").into_bytes()
}

/// A new random data key for a vault, sealed with the master key (what `Vault::sealed_data_key` holds).
pub fn new_sealed_data_key(master: &MasterKey, vault_id: &Uuid) -> Result<Vec<u8>, CryptoError> {
    let key = MasterKey::generate()?;
    master.seal(key.expose_bytes(), &key_aad(vault_id))
}

/// Unseals a vault's data key.
pub fn open_data_key(master: &MasterKey, vault_id: &Uuid, sealed: &[u8]) -> Result<MasterKey, CryptoError> {
    let bytes: Zeroizing<Vec<u8>> = master.open(sealed, &key_aad(vault_id))?;
    MasterKey::from_bytes(&bytes)
}

/// The AAD that binds a sealed secret value to its vault, name and version.
pub fn value_aad(vault_id: &Uuid, name_key: &str, version: &str) -> Vec<u8> {
    format!("secret:{vault_id}/{name_key}/{version}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keys_are_bound_to_their_vault() {
        let master = MasterKey::generate().unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = new_sealed_data_key(&master, &a).unwrap();
        let key = open_data_key(&master, &a, &sealed).unwrap();
        assert!(open_data_key(&master, &b, &sealed).is_err());
        let blob = key.seal(b"hello", &value_aad(&a, "db", "v1")).unwrap();
        assert_eq!(&key.open(&blob, &value_aad(&a, "db", "v1")).unwrap()[..], b"hello");
        assert!(key.open(&blob, &value_aad(&a, "db", "v2")).is_err());
    }
}
