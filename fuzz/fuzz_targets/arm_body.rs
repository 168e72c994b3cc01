//! ARM JSON request bodies as the management plane receives them from an authenticated caller (the
//! bootstrap admin, Owner at `/`): resource groups, identities, federated credentials (claims-
//! matching expressions), cluster registrations (issuer URL, uploaded JWKS), key vaults (access
//! policies, network rules, retention), role assignments (conditions, principal types) and service-
//! account token requests, against an in-memory store. The first byte picks the operation, the rest
//! is the body. Must never panic, and any refusal must be a 4xx with an ARM error code (never a 5xx:
//! a 5xx here would be a bug that reached the store with unchecked input).
#![no_main]

use std::sync::{Arc, OnceLock, RwLock};

use libfuzzer_sys::fuzz_target;
use uuid::Uuid;
use wid_arm::{Actor, ArmConfig, Management};
use wid_core::directory::Directory;
use wid_core::model::{PrincipalType, RoleAssignment};
use wid_core::{Clock, FixedClock};
use wid_crypto::MasterKey;
use wid_store::{SqliteStore, Store};
use wid_sts::issuer::FetchConfig;
use wid_sts::keys::KeyRing;
use wid_sts::{Caller, StsConfig, TokenService};

const NOW: i64 = 1_700_000_000;
const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";

struct World {
    arm: Management,
    admin: Actor,
    sub: String,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let clock: Arc<dyn Clock> = Arc::new(FixedClock::new(NOW));
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().expect("store"));
        let master = Arc::new(MasterKey::generate().expect("master key"));
        let keys = Arc::new(KeyRing::load(store.clone(), master.clone(), NOW).expect("key ring"));
        let (tenant, sub) = (Uuid::new_v4(), Uuid::new_v4());
        let admin_id = Uuid::new_v4();
        let directory = Arc::new(RwLock::new(Directory::default()));
        directory.write().expect("lock").put_role_assignment(&RoleAssignment {
            id: Uuid::new_v4(),
            scope: "/".into(),
            role_definition_id: OWNER.parse().expect("guid"),
            principal_id: admin_id,
            principal_type: PrincipalType::ServicePrincipal,
            description: None,
            created: NOW,
            updated: NOW,
            created_by: None,
        });
        let public_url = "https://localhost:8443".to_string();
        let sts_cfg = StsConfig {
            tenant_id: tenant,
            public_url: public_url.clone(),
            resources: vec![public_url.clone(), "https://vault.localhost:8443".into()],
            token_lifetime_secs: 86400,
            app_token_lifetime_secs: 3600,
            clock_skew_secs: 300,
            max_assertion_bytes: 32 * 1024,
            token_cache_entries: 0,
            fetch: FetchConfig::default(),
        };
        let sts = Arc::new(TokenService::new(sts_cfg, directory.clone(), keys, clock.clone()).expect("sts"));
        let cfg = ArmConfig {
            tenant_id: tenant,
            subscription_id: sub,
            subscription_name: "wid".into(),
            public_url,
            vault_dns_suffix: "vault.localhost:8443".into(),
            max_credentials_per_identity: 20,
        };
        let arm = Management::new(cfg, store, directory, sts, clock, master);
        let admin = Actor {
            caller: Caller { principal_id: admin_id, client_id: Uuid::new_v4(), issuer: String::new() },
            request_id: "fuzz".into(),
            azure_names: false,
        };
        let sub = sub.to_string();
        // Parents the bodies below refer to.
        let ok = |r: Result<wid_arm::Reply, wid_arm::ArmError>| assert!(r.is_ok(), "{:?}", r.err());
        ok(arm.put_group(&admin, &sub, "rg", br#"{"location":"eastus"}"#));
        ok(arm.put_identity(&admin, &sub, "rg", "ident", b"{}"));
        ok(arm.put_cluster(&admin, &sub, "rg", "clu", b"{}"));
        World { arm, admin, sub }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((op, body)) = data.split_first() else { return };
    let w = world();
    let (arm, a, sub) = (&w.arm, &w.admin, w.sub.as_str());
    let rg_scope = format!("/subscriptions/{sub}/resourceGroups/rg");
    let result = match op % 8 {
        0 => arm.put_group(a, sub, "rg2", body),
        1 => arm.put_identity(a, sub, "rg", "ident2", body),
        2 => arm.put_credential(a, sub, "rg", "ident", "fic", body),
        3 => arm.put_cluster(a, sub, "rg", "clu2", body),
        4 => arm.put_vault(a, sub, "rg", "kv-fuzz", body),
        5 => arm.put_role_assignment(a, &rg_scope, "0b5e7d2c-7f3e-4a59-9d4b-1c1f0e8c2a11", body),
        6 => arm.service_account_token(a, sub, "rg", "clu", body),
        _ => arm.put_identity(a, sub, "rg", "ident", body),
    };
    if let Err(e) = result {
        let wire = e.to_wire();
        assert!((400..500).contains(&wire.status), "a body yields a {} {}: {}", wire.status, wire.code, wire.message);
    }
});
