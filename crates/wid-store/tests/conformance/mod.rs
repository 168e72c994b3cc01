//! The conformance suite every [`Store`] backend must pass: the trait's contract as executable cases.
//!
//! Backend-agnostic: each case takes a fresh, empty store and uses only the trait. Each backend's test
//! target (`tests/sqlite.rs`, `tests/postgres.rs`) includes this module with `mod conformance;` and
//! runs the whole suite, one `#[test]` per case, with `conformance_tests!(fresh())`, where `fresh()`
//! yields `(guard, store)`: the guard (a temp dir, a test database handle, or `()`) lives as long as
//! the case.
//!
//! Beyond the trait's doc comments, the suite pins down what callers rely on: a put replaces the whole
//! record (casing included); lists are ordered bytewise by lower-case key (PostgreSQL: `COLLATE "C"`);
//! a client id, principal id or cluster id names one record; the issuer+subject pair of a credential is
//! unique per identity; concurrent calls are atomic.
//!
//! Key Vault: a vault name is unique in the store and a vault id names one vault; a put with the
//! same vault id in the same group is an update (setting or clearing `deleted` included), anything
//! else on a taken name is a `Conflict`, and a vault never moves; an update that leaves a vault
//! soft-deleted does not need its group (deleting a group soft-deletes its vaults, at the current
//! time, and returns the ones it soft-deleted; a vault written soft-deleted never needs its group). Versions are ordered by insertion, not by their
//! timestamps. Pages hold at least one item (a `limit` of 0 counts as 1), `next` is `None` on the
//! last page (no empty trailing page), and a versions cursor that is not one the store made yields
//! an empty last page. `purge_expired` counts secrets purged on their own schedule, not those that
//! go with a purged vault. A restore of no versions is a no-op; versions of different secrets in one
//! restore are a `Conflict`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, dead_code)] // test code

use std::collections::BTreeMap;

use uuid::Uuid;
use wid_core::fic::{ClaimsMatchingExpression, DEFAULT_AUDIENCE, FederatedCredential};
use wid_core::model::{
    AppPrincipal, Cluster, ClusterExtras, ClusterIssuer, DeletedSecret, Identity, IdentityBinding, PrincipalType,
    ResourceGroup, ResourceKey, RoleAssignment, SecretVersion, StoredCredential, Vault,
};

use wid_store::{Changed, Page, Record, SigningKeyRecord, Snapshot, Store, StoreError, Written};

/// Generates one `#[test]` per conformance case. The argument is an expression evaluated afresh for
/// each case that yields `(guard, store)`, where `store` implements [`Store`] and `guard`
/// is dropped after the case (e.g. the `TempDir` holding the database).
macro_rules! conformance_tests {
    ($make:expr) => {
        __conformance_cases!(
            $make;
            meta_get_missing_is_none,
            meta_insert_only_if_absent,
            meta_put_replaces,
            meta_values_are_opaque_bytes,
            signing_keys_upsert_and_delete,
            resource_group_create_then_update,
            resource_group_lookup_ignores_case_and_keeps_casing,
            resource_groups_per_subscription_ordered_by_key,
            identity_requires_resource_group,
            identity_create_update_and_lookup,
            identities_filtered_and_ordered,
            identity_ids_are_unique,
            delete_identity_returns_it_and_its_credentials_go,
            credential_requires_identity,
            credential_create_update_and_order,
            credential_issuer_subject_unique_per_identity,
            delete_credential_any_casing,
            cluster_requires_resource_group,
            cluster_create_update_and_lookup,
            clusters_filtered_and_ordered,
            cluster_id_is_unique,
            delete_cluster_returns_it,
            apps_upsert_by_client_id,
            role_assignment_insert_get_delete,
            role_assignment_conflicts,
            delete_resource_group_removes_everything_below,
            delete_resource_group_missing_is_none,
            failed_writes_change_nothing,
            snapshot_of_empty_store,
            snapshot_is_complete,
            concurrent_meta_insert_has_one_winner,
            concurrent_role_assignment_has_one_winner,
            concurrent_writes_and_reads,
            vault_requires_resource_group,
            vault_create_update_and_lookup,
            vaults_filtered_and_ordered,
            vault_names_are_unique_across_groups_and_subscriptions,
            soft_deleted_vault_reserves_its_name,
            purge_vault_removes_its_secrets,
            secret_versions_insert_and_latest,
            secret_names_ignore_case_and_keep_first_casing,
            update_secret_version_never_changes_the_value,
            sealed_values_round_trip_exactly,
            secrets_paging,
            secret_versions_paging,
            deleted_secret_is_hidden_and_reserves_its_name,
            recover_secret_restores_every_version,
            purge_secret_removes_every_version,
            deleted_secrets_paging,
            purge_expired_by_time,
            restore_secret_is_all_or_nothing,
            delete_resource_group_soft_deletes_its_vaults,
            concurrent_version_inserts_all_land,
            concurrent_restore_has_one_winner,
            app_by_client_id,
            change_log_follows_index_writes,
            change_log_pages_and_prunes,
            concurrent_change_log_has_no_gaps,
            locks_exclude_until_dropped,
            import_refuses_a_store_in_use,
        );
    };
}

/// Implementation detail of [`conformance_tests!`].
macro_rules! __conformance_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (_guard, store) = $make;
                crate::conformance::run(stringify!($case), &store);
            }
        )*

        #[test]
        fn conformance_suite_lists_every_case() {
            let listed: &[&str] = &[$(stringify!($case)),*];
            assert_eq!(listed, crate::conformance::case_names().as_slice());
        }
    };
}

type Case = fn(&dyn Store);

/// Every case, in the order [`conformance_tests!`] lists them.
const CASES: &[(&str, Case)] = &[
    ("meta_get_missing_is_none", meta_get_missing_is_none),
    ("meta_insert_only_if_absent", meta_insert_only_if_absent),
    ("meta_put_replaces", meta_put_replaces),
    ("meta_values_are_opaque_bytes", meta_values_are_opaque_bytes),
    ("signing_keys_upsert_and_delete", signing_keys_upsert_and_delete),
    ("resource_group_create_then_update", resource_group_create_then_update),
    ("resource_group_lookup_ignores_case_and_keeps_casing", resource_group_lookup_ignores_case_and_keeps_casing),
    ("resource_groups_per_subscription_ordered_by_key", resource_groups_per_subscription_ordered_by_key),
    ("identity_requires_resource_group", identity_requires_resource_group),
    ("identity_create_update_and_lookup", identity_create_update_and_lookup),
    ("identities_filtered_and_ordered", identities_filtered_and_ordered),
    ("identity_ids_are_unique", identity_ids_are_unique),
    ("delete_identity_returns_it_and_its_credentials_go", delete_identity_returns_it_and_its_credentials_go),
    ("credential_requires_identity", credential_requires_identity),
    ("credential_create_update_and_order", credential_create_update_and_order),
    ("credential_issuer_subject_unique_per_identity", credential_issuer_subject_unique_per_identity),
    ("delete_credential_any_casing", delete_credential_any_casing),
    ("cluster_requires_resource_group", cluster_requires_resource_group),
    ("cluster_create_update_and_lookup", cluster_create_update_and_lookup),
    ("clusters_filtered_and_ordered", clusters_filtered_and_ordered),
    ("cluster_id_is_unique", cluster_id_is_unique),
    ("delete_cluster_returns_it", delete_cluster_returns_it),
    ("apps_upsert_by_client_id", apps_upsert_by_client_id),
    ("role_assignment_insert_get_delete", role_assignment_insert_get_delete),
    ("role_assignment_conflicts", role_assignment_conflicts),
    ("delete_resource_group_removes_everything_below", delete_resource_group_removes_everything_below),
    ("delete_resource_group_missing_is_none", delete_resource_group_missing_is_none),
    ("failed_writes_change_nothing", failed_writes_change_nothing),
    ("snapshot_of_empty_store", snapshot_of_empty_store),
    ("snapshot_is_complete", snapshot_is_complete),
    ("concurrent_meta_insert_has_one_winner", concurrent_meta_insert_has_one_winner),
    ("concurrent_role_assignment_has_one_winner", concurrent_role_assignment_has_one_winner),
    ("concurrent_writes_and_reads", concurrent_writes_and_reads),
    ("vault_requires_resource_group", vault_requires_resource_group),
    ("vault_create_update_and_lookup", vault_create_update_and_lookup),
    ("vaults_filtered_and_ordered", vaults_filtered_and_ordered),
    ("vault_names_are_unique_across_groups_and_subscriptions", vault_names_are_unique_across_groups_and_subscriptions),
    ("soft_deleted_vault_reserves_its_name", soft_deleted_vault_reserves_its_name),
    ("purge_vault_removes_its_secrets", purge_vault_removes_its_secrets),
    ("secret_versions_insert_and_latest", secret_versions_insert_and_latest),
    ("secret_names_ignore_case_and_keep_first_casing", secret_names_ignore_case_and_keep_first_casing),
    ("update_secret_version_never_changes_the_value", update_secret_version_never_changes_the_value),
    ("sealed_values_round_trip_exactly", sealed_values_round_trip_exactly),
    ("secrets_paging", secrets_paging),
    ("secret_versions_paging", secret_versions_paging),
    ("deleted_secret_is_hidden_and_reserves_its_name", deleted_secret_is_hidden_and_reserves_its_name),
    ("recover_secret_restores_every_version", recover_secret_restores_every_version),
    ("purge_secret_removes_every_version", purge_secret_removes_every_version),
    ("deleted_secrets_paging", deleted_secrets_paging),
    ("purge_expired_by_time", purge_expired_by_time),
    ("restore_secret_is_all_or_nothing", restore_secret_is_all_or_nothing),
    ("delete_resource_group_soft_deletes_its_vaults", delete_resource_group_soft_deletes_its_vaults),
    ("concurrent_version_inserts_all_land", concurrent_version_inserts_all_land),
    ("concurrent_restore_has_one_winner", concurrent_restore_has_one_winner),
    ("app_by_client_id", app_by_client_id),
    ("change_log_follows_index_writes", change_log_follows_index_writes),
    ("change_log_pages_and_prunes", change_log_pages_and_prunes),
    ("concurrent_change_log_has_no_gaps", concurrent_change_log_has_no_gaps),
    ("locks_exclude_until_dropped", locks_exclude_until_dropped),
    ("import_refuses_a_store_in_use", import_refuses_a_store_in_use),
];

/// The names of every case.
pub fn case_names() -> Vec<&'static str> {
    CASES.iter().map(|(name, _)| *name).collect()
}

/// Runs one case against a fresh, empty store. Panics (fails the test) if the case fails or is unknown.
pub fn run(name: &str, store: &dyn Store) {
    let (_, case) = CASES.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no conformance case {name}"));
    case(store);
}

/// Runs every case, each on a store from `make` (for harnesses that cannot use the macro).
pub fn run_all(make: &dyn Fn() -> Box<dyn Store>) {
    for (_, case) in CASES {
        let store = make();
        case(store.as_ref());
    }
}

// ---------------------------------------------------------------------------------------------------
// Fixtures.

const SUB: Uuid = Uuid::from_u128(0x5ab5_0000_0000_4000_8000_0000_0000_0001);
const OTHER_SUB: Uuid = Uuid::from_u128(0x5ab5_0000_0000_4000_8000_0000_0000_0002);
const TENANT: Uuid = Uuid::from_u128(0x7e7a_0000_0000_4000_8000_0000_0000_0001);
const ISSUER: &str = "https://wid.example/oidc/tenant/cluster/";

/// A distinct GUID per `n` (within a case).
fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x1d00_0000_0000_4000_8000_0000_0000_0000 | n)
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn rg(sub: Uuid, name: &str) -> ResourceGroup {
    ResourceGroup {
        subscription: sub,
        name: name.into(),
        location: "westeurope".into(),
        tags: tags(&[("env", "test"), ("owner", "team \"ä\" <x>")]),
        created: 1_700_000_000,
    }
}

fn identity(sub: Uuid, group: &str, name: &str, n: u128) -> Identity {
    Identity {
        subscription: sub,
        resource_group: group.into(),
        name: name.into(),
        location: "westeurope".into(),
        tags: tags(&[("app", name)]),
        tenant_id: TENANT,
        client_id: id(0x1000 + n),
        principal_id: id(0x2000 + n),
        created: 1_700_000_100,
        updated: 1_700_000_200,
    }
}

fn fic(name: &str, subject: &str) -> FederatedCredential {
    FederatedCredential {
        name: name.into(),
        issuer: ISSUER.into(),
        subject: Some(subject.into()),
        claims_matching_expression: None,
        audiences: vec![DEFAULT_AUDIENCE.into()],
        description: None,
    }
}

fn cred(identity: &ResourceKey, credential: FederatedCredential) -> StoredCredential {
    StoredCredential { identity: identity.clone(), credential, created: 1_700_000_300, updated: 1_700_000_400 }
}

fn cluster(sub: Uuid, group: &str, name: &str, n: u128) -> Cluster {
    Cluster {
        subscription: sub,
        resource_group: group.into(),
        name: name.into(),
        location: "westeurope".into(),
        tags: tags(&[]),
        cluster_id: id(0x3000 + n),
        issuer: ClusterIssuer::Hosted {
            issuer_url: format!("https://wid.example/oidc/{TENANT}/{}/", id(0x3000 + n)),
            kid: format!("kid-{n}"),
        },
        workload_identity: true,
        extras: Default::default(),
        created: 1_700_000_500,
        updated: 1_700_000_600,
    }
}

fn app(n: u128, name: &str) -> AppPrincipal {
    AppPrincipal {
        client_id: id(0x4000 + n),
        principal_id: id(0x5000 + n),
        display_name: name.into(),
        secret_hash: vec![n as u8; 32],
        created: 1_700_000_700,
    }
}

fn ra(n: u128, scope: &str, principal: Uuid, role: Uuid) -> RoleAssignment {
    RoleAssignment {
        id: id(0x6000 + n),
        scope: scope.into(),
        role_definition_id: role,
        principal_id: principal,
        principal_type: PrincipalType::ServicePrincipal,
        description: Some(format!("assignment {n}")),
        created: 1_700_000_800,
        updated: 1_700_000_900,
        created_by: Some(id(0x7000)),
    }
}

fn signing_key(kid: &str, created: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        purpose: "sts".into(),
        sealed_pkcs8: vec![0, 1, 2, 0xff, 0xfe, kid.len() as u8],
        created,
        retired: None,
        expires: None,
    }
}

fn rg_scope(sub: Uuid, group: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{group}")
}

fn key(sub: Uuid, group: &str, name: &str) -> ResourceKey {
    ResourceKey::new(sub, group, name)
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: wid_store::Result<T>) {
    match r {
        Err(StoreError::Conflict(msg)) => assert!(!msg.is_empty()),
        other => panic!("expected Conflict, got {other:?}"),
    }
}

#[track_caller]
fn assert_missing_parent<T: std::fmt::Debug>(r: wid_store::Result<T>) {
    match r {
        Err(StoreError::MissingParent(msg)) => assert!(!msg.is_empty()),
        other => panic!("expected MissingParent, got {other:?}"),
    }
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| name(i).to_string()).collect()
}

fn sorted<T: Clone, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut v = items.to_vec();
    v.sort_by_key(key);
    v
}

// ---------------------------------------------------------------------------------------------------
// Metadata and signing keys.

fn meta_get_missing_is_none(s: &dyn Store) {
    assert_eq!(s.meta_get("tenant_id").unwrap(), None);
}

fn meta_insert_only_if_absent(s: &dyn Store) {
    assert!(s.meta_insert("tenant_id", b"first").unwrap());
    assert!(!s.meta_insert("tenant_id", b"second").unwrap());
    assert_eq!(s.meta_get("tenant_id").unwrap().as_deref(), Some(&b"first"[..]));
    // Keys are exact, not case-insensitive.
    assert!(s.meta_insert("Tenant_Id", b"other").unwrap());
    assert_eq!(s.meta_get("tenant_id").unwrap().as_deref(), Some(&b"first"[..]));
}

fn meta_put_replaces(s: &dyn Store) {
    s.meta_put("admin", b"one").unwrap();
    s.meta_put("admin", b"two").unwrap();
    assert_eq!(s.meta_get("admin").unwrap().as_deref(), Some(&b"two"[..]));
    assert!(!s.meta_insert("admin", b"three").unwrap());
    assert_eq!(s.meta_get("admin").unwrap().as_deref(), Some(&b"two"[..]));
}

fn meta_values_are_opaque_bytes(s: &dyn Store) {
    let blob: Vec<u8> = (0..=255u8).chain([0, 0, 0xff]).collect();
    s.meta_put("sealed", &blob).unwrap();
    assert_eq!(s.meta_get("sealed").unwrap(), Some(blob));
    s.meta_put("empty", b"").unwrap();
    assert_eq!(s.meta_get("empty").unwrap(), Some(Vec::new()));
}

fn signing_keys_upsert_and_delete(s: &dyn Store) {
    assert!(s.signing_keys().unwrap().is_empty());
    let a = signing_key("kid-a", 100);
    let b = SigningKeyRecord { purpose: format!("cluster:{}", id(1)), ..signing_key("kid-b", 200) };
    s.put_signing_key(&a).unwrap();
    s.put_signing_key(&b).unwrap();
    let mut all = s.signing_keys().unwrap();
    all.sort_by(|x, y| x.kid.cmp(&y.kid));
    assert_eq!(all, vec![a.clone(), b.clone()]);

    // Replacing by kid: retire and set expiry.
    let retired = SigningKeyRecord { retired: Some(300), expires: Some(400), ..a.clone() };
    s.put_signing_key(&retired).unwrap();
    let mut all = s.signing_keys().unwrap();
    all.sort_by(|x, y| x.kid.cmp(&y.kid));
    assert_eq!(all, vec![retired, b.clone()]);

    s.delete_signing_key("kid-a").unwrap();
    assert_eq!(s.signing_keys().unwrap(), vec![b]);
    // Deleting what is not there is not an error.
    s.delete_signing_key("kid-a").unwrap();
    s.delete_signing_key("never").unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Resource groups.

fn resource_group_create_then_update(s: &dyn Store) {
    let g = rg(SUB, "Team");
    assert_eq!(s.put_resource_group(&g).unwrap(), Written::Created);
    assert_eq!(s.resource_group(SUB, "Team").unwrap(), Some(g.clone()));
    let changed = ResourceGroup { location: "northeurope".into(), tags: tags(&[("k", "v")]), ..g };
    assert_eq!(s.put_resource_group(&changed).unwrap(), Written::Updated);
    assert_eq!(s.resource_group(SUB, "team").unwrap(), Some(changed));
    assert_eq!(s.resource_groups(SUB).unwrap().len(), 1);
}

fn resource_group_lookup_ignores_case_and_keeps_casing(s: &dyn Store) {
    let g = rg(SUB, "MyGroup-01");
    s.put_resource_group(&g).unwrap();
    for casing in ["MyGroup-01", "mygroup-01", "MYGROUP-01", "myGROUP-01"] {
        assert_eq!(s.resource_group(SUB, casing).unwrap(), Some(g.clone()), "{casing}");
    }
    assert_eq!(s.resource_group(OTHER_SUB, "MyGroup-01").unwrap(), None);
    assert_eq!(s.resource_group(SUB, "MyGroup-0").unwrap(), None);
    // A put in another casing is the same group; it replaces the record, casing included.
    let recased = ResourceGroup { name: "MYGROUP-01".into(), ..g };
    assert_eq!(s.put_resource_group(&recased).unwrap(), Written::Updated);
    assert_eq!(s.resource_groups(SUB).unwrap(), vec![recased]);
}

fn resource_groups_per_subscription_ordered_by_key(s: &dyn Store) {
    assert!(s.resource_groups(SUB).unwrap().is_empty());
    for name in ["Zeta", "alpha", "Mid", "a_b", "a0", "a-z", "Alpha2"] {
        s.put_resource_group(&rg(SUB, name)).unwrap();
    }
    s.put_resource_group(&rg(OTHER_SUB, "Beta")).unwrap();
    // Bytewise order of the lower-case keys: '-' < '0' < '_' < letters.
    let listed = s.resource_groups(SUB).unwrap();
    assert_eq!(names(&listed, |g| &g.name), ["a-z", "a0", "a_b", "alpha", "Alpha2", "Mid", "Zeta"]);
    assert!(listed.iter().all(|g| g.subscription == SUB));
    assert_eq!(names(&s.resource_groups(OTHER_SUB).unwrap(), |g| &g.name), ["Beta"]);
}

// ---------------------------------------------------------------------------------------------------
// Identities.

fn identity_requires_resource_group(s: &dyn Store) {
    assert_missing_parent(s.put_identity(&identity(SUB, "nope", "id1", 1)));
    // The group must exist in the same subscription.
    s.put_resource_group(&rg(OTHER_SUB, "Team")).unwrap();
    assert_missing_parent(s.put_identity(&identity(SUB, "Team", "id1", 1)));
    assert!(s.identities(SUB, None).unwrap().is_empty());
}

fn identity_create_update_and_lookup(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let i = identity(SUB, "Team", "Web-App", 1);
    assert_eq!(s.put_identity(&i).unwrap(), Written::Created);
    for (g, n) in [("Team", "Web-App"), ("team", "web-app"), ("TEAM", "WEB-APP")] {
        assert_eq!(s.identity(&key(SUB, g, n)).unwrap(), Some(i.clone()), "{g}/{n}");
    }
    assert_eq!(s.identity(&key(OTHER_SUB, "Team", "Web-App")).unwrap(), None);
    assert_eq!(s.identity(&key(SUB, "Team", "Web")).unwrap(), None);
    // The identity keeps its own spelling of the group, whatever the group's.
    let updated =
        Identity { resource_group: "TEAM".into(), tags: tags(&[("v", "2")]), updated: 1_800_000_000, ..i.clone() };
    assert_eq!(s.put_identity(&updated).unwrap(), Written::Updated);
    assert_eq!(s.identity(&i.key()).unwrap(), Some(updated.clone()));
    assert_eq!(s.identities(SUB, None).unwrap(), vec![updated]);
}

fn identities_filtered_and_ordered(s: &dyn Store) {
    for g in ["B-Team", "a-team"] {
        s.put_resource_group(&rg(SUB, g)).unwrap();
    }
    s.put_resource_group(&rg(OTHER_SUB, "a-team")).unwrap();
    let mut n = 0;
    for (g, name) in [("B-Team", "zed"), ("a-team", "Yak"), ("B-Team", "Ant"), ("a-team", "bee"), ("a-team", "B_2")] {
        n += 1;
        s.put_identity(&identity(SUB, g, name, n)).unwrap();
    }
    s.put_identity(&identity(OTHER_SUB, "a-team", "elsewhere", 99)).unwrap();

    let all = s.identities(SUB, None).unwrap();
    let pairs: Vec<(String, String)> = all.iter().map(|i| (i.resource_group.clone(), i.name.clone())).collect();
    let expect = [("a-team", "B_2"), ("a-team", "bee"), ("a-team", "Yak"), ("B-Team", "Ant"), ("B-Team", "zed")];
    assert_eq!(pairs, expect.map(|(g, n)| (g.to_string(), n.to_string())));
    assert_eq!(names(&s.identities(SUB, Some("b-team")).unwrap(), |i| &i.name), ["Ant", "zed"]);
    assert_eq!(names(&s.identities(SUB, Some("A-TEAM")).unwrap(), |i| &i.name), ["B_2", "bee", "Yak"]);
    assert!(s.identities(SUB, Some("c-team")).unwrap().is_empty());
    assert_eq!(names(&s.identities(OTHER_SUB, None).unwrap(), |i| &i.name), ["elsewhere"]);
}

fn identity_ids_are_unique(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    s.put_resource_group(&rg(OTHER_SUB, "Team")).unwrap();
    let a = identity(SUB, "Team", "a", 1);
    s.put_identity(&a).unwrap();
    // Another identity with a's client id or principal id, even in another subscription.
    let same_client = Identity { principal_id: id(0xaaa), ..identity(OTHER_SUB, "Team", "b", 2) };
    assert_conflict(s.put_identity(&Identity { client_id: a.client_id, ..same_client }));
    let same_principal = identity(SUB, "Team", "c", 3);
    assert_conflict(s.put_identity(&Identity { principal_id: a.principal_id, ..same_principal }));
    // Replacing an identity with its own ids is fine.
    assert_eq!(s.put_identity(&a).unwrap(), Written::Updated);
    assert_eq!(s.identities(SUB, None).unwrap(), vec![a]);
    assert!(s.identities(OTHER_SUB, None).unwrap().is_empty());
}

fn delete_identity_returns_it_and_its_credentials_go(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let a = identity(SUB, "Team", "App", 1);
    let b = identity(SUB, "Team", "Other", 2);
    s.put_identity(&a).unwrap();
    s.put_identity(&b).unwrap();
    s.put_credential(&cred(&a.key(), fic("fic-1", "system:serviceaccount:ns:a"))).unwrap();
    s.put_credential(&cred(&a.key(), fic("fic-2", "system:serviceaccount:ns:b"))).unwrap();
    let kept = cred(&b.key(), fic("fic-1", "system:serviceaccount:ns:a"));
    s.put_credential(&kept).unwrap();

    assert_eq!(s.delete_identity(&key(SUB, "TEAM", "app")).unwrap(), Some(a.clone()));
    assert_eq!(s.identity(&a.key()).unwrap(), None);
    assert!(s.credentials(&a.key()).unwrap().is_empty());
    assert_eq!(s.snapshot().unwrap().credentials, vec![kept.clone()]);
    assert_eq!(s.delete_identity(&a.key()).unwrap(), None);
    // A new identity with the same name starts without credentials.
    s.put_identity(&a).unwrap();
    assert!(s.credentials(&a.key()).unwrap().is_empty());
    assert_eq!(s.credentials(&b.key()).unwrap(), vec![kept]);
}

// ---------------------------------------------------------------------------------------------------
// Federated credentials.

fn credential_requires_identity(s: &dyn Store) {
    let k = key(SUB, "Team", "App");
    assert_missing_parent(s.put_credential(&cred(&k, fic("fic-1", "s"))));
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    assert_missing_parent(s.put_credential(&cred(&k, fic("fic-1", "s"))));
    s.put_identity(&identity(SUB, "Team", "App", 1)).unwrap();
    assert_eq!(s.put_credential(&cred(&k, fic("fic-1", "s"))).unwrap(), Written::Created);
}

fn credential_create_update_and_order(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let i = identity(SUB, "Team", "App", 1);
    s.put_identity(&i).unwrap();
    let k = key(SUB, "TEAM", "APP");
    let expression = FederatedCredential {
        subject: None,
        claims_matching_expression: Some(ClaimsMatchingExpression {
            value: "claims['sub'] matches 'repo:contoso/*'".into(),
            language_version: 1,
        }),
        description: Some("flexible, \"quoted\" ü".into()),
        ..fic("Flex_1", "unused")
    };
    for c in [fic("zz-last", "s1"), fic("Fic-One", "s2"), expression.clone(), fic("a-first", "s3")] {
        assert_eq!(s.put_credential(&cred(&k, c)).unwrap(), Written::Created);
    }
    let listed = s.credentials(&i.key()).unwrap();
    assert_eq!(names(&listed, |c| &c.credential.name), ["a-first", "Fic-One", "Flex_1", "zz-last"]);
    assert!(listed.iter().all(|c| c.identity == i.key()));
    assert_eq!(listed[2], cred(&i.key(), expression));

    // Same name in another casing replaces the credential, name casing included.
    let replaced = StoredCredential {
        updated: 1_900_000_000,
        ..cred(&k, FederatedCredential { audiences: vec!["api://other".into()], ..fic("FIC-ONE", "s2-new") })
    };
    assert_eq!(s.put_credential(&replaced).unwrap(), Written::Updated);
    let listed = s.credentials(&k).unwrap();
    assert_eq!(listed.len(), 4);
    assert_eq!(listed[1].credential, replaced.credential);
    assert_eq!(listed[1].updated, 1_900_000_000);

    // One by name in any casing, and the count, without listing.
    assert_eq!(s.credential(&key(SUB, "TEAM", "app"), "fic-one").unwrap(), Some(listed[1].clone()));
    assert_eq!(s.credential(&k, "nope").unwrap(), None);
    assert_eq!(s.credential_count(&k).unwrap(), 4);
    assert_eq!(s.credential_count(&key(SUB, "Team", "nobody")).unwrap(), 0);
}

fn credential_issuer_subject_unique_per_identity(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let a = identity(SUB, "Team", "a", 1);
    let b = identity(SUB, "Team", "b", 2);
    s.put_identity(&a).unwrap();
    s.put_identity(&b).unwrap();
    let subject = "system:serviceaccount:ns:sa";
    s.put_credential(&cred(&a.key(), fic("one", subject))).unwrap();
    assert_conflict(s.put_credential(&cred(&a.key(), fic("two", subject))));
    // Another identity may trust the same subject; the subject is case-sensitive.
    s.put_credential(&cred(&b.key(), fic("one", subject))).unwrap();
    s.put_credential(&cred(&a.key(), fic("upper", &subject.to_uppercase()))).unwrap();
    // Expression credentials have no subject and do not collide.
    let expr = |name: &str| FederatedCredential {
        subject: None,
        claims_matching_expression: Some(ClaimsMatchingExpression {
            value: "claims['sub'] eq 'x'".into(),
            language_version: 1,
        }),
        ..fic(name, "")
    };
    s.put_credential(&cred(&a.key(), expr("expr-1"))).unwrap();
    s.put_credential(&cred(&a.key(), expr("expr-2"))).unwrap();
    assert_eq!(names(&s.credentials(&a.key()).unwrap(), |c| &c.credential.name), ["expr-1", "expr-2", "one", "upper"]);
}

fn delete_credential_any_casing(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let i = identity(SUB, "Team", "App", 1);
    s.put_identity(&i).unwrap();
    let c = cred(&i.key(), fic("My-Fic", "s"));
    s.put_credential(&c).unwrap();
    s.put_credential(&cred(&i.key(), fic("other", "t"))).unwrap();
    assert_eq!(s.delete_credential(&key(SUB, "TEAM", "APP"), "MY-FIC").unwrap(), Some(c));
    assert_eq!(s.delete_credential(&i.key(), "my-fic").unwrap(), None);
    assert_eq!(s.delete_credential(&key(SUB, "Team", "nobody"), "other").unwrap(), None);
    assert_eq!(names(&s.credentials(&i.key()).unwrap(), |c| &c.credential.name), ["other"]);
}

// ---------------------------------------------------------------------------------------------------
// Clusters.

fn cluster_requires_resource_group(s: &dyn Store) {
    assert_missing_parent(s.put_cluster(&cluster(SUB, "Team", "c1", 1)));
    assert!(s.clusters(SUB, None).unwrap().is_empty());
}

fn cluster_create_update_and_lookup(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let hosted = cluster(SUB, "Team", "Prod-AKS", 1);
    assert_eq!(s.put_cluster(&hosted).unwrap(), Written::Created);
    assert_eq!(s.cluster(&key(SUB, "team", "prod-aks")).unwrap(), Some(hosted.clone()));
    let external = Cluster {
        issuer: ClusterIssuer::External {
            issuer_url: "https://oidc.eks.example/id/ABC".into(),
            jwks: Some(r#"{"keys":[{"kty":"RSA","kid":"k"}]}"#.into()),
        },
        workload_identity: false,
        extras: ClusterExtras {
            api_server: Some("https://10.0.0.1:6443".into()),
            api_server_ca: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
            arm: Some(r#"{"properties":{"agentPoolProfiles":[{"name":"nodepool1","count":3}]}}"#.into()),
            identity_bindings: vec![IdentityBinding {
                name: "Web-Binding".into(),
                identity: key(SUB, "Team", "web-id"),
                client_id: id(0xb1),
                created: 1_700_000_000,
                updated: 1_800_000_000,
            }],
        },
        updated: 1_800_000_000,
        ..hosted.clone()
    };
    assert_eq!(s.put_cluster(&external).unwrap(), Written::Updated);
    assert_eq!(s.cluster(&hosted.key()).unwrap(), Some(external.clone()));
    let discovered = Cluster {
        issuer: ClusterIssuer::External { issuer_url: "https://container.googleapis.example/x".into(), jwks: None },
        ..cluster(SUB, "Team", "gke", 2)
    };
    s.put_cluster(&discovered).unwrap();
    assert_eq!(s.cluster(&discovered.key()).unwrap(), Some(discovered));
    assert_eq!(s.cluster(&key(SUB, "Team", "nope")).unwrap(), None);
}

fn clusters_filtered_and_ordered(s: &dyn Store) {
    for g in ["B-Team", "a-team"] {
        s.put_resource_group(&rg(SUB, g)).unwrap();
    }
    s.put_resource_group(&rg(OTHER_SUB, "a-team")).unwrap();
    let mut n = 0;
    for (g, name) in [("B-Team", "Zed"), ("a-team", "yak"), ("B-Team", "ant"), ("a-team", "Bee")] {
        n += 1;
        s.put_cluster(&cluster(SUB, g, name, n)).unwrap();
    }
    s.put_cluster(&cluster(OTHER_SUB, "a-team", "elsewhere", 99)).unwrap();
    assert_eq!(names(&s.clusters(SUB, None).unwrap(), |c| &c.name), ["Bee", "yak", "ant", "Zed"]);
    assert_eq!(names(&s.clusters(SUB, Some("B-TEAM")).unwrap(), |c| &c.name), ["ant", "Zed"]);
    assert!(s.clusters(SUB, Some("nope")).unwrap().is_empty());
    assert_eq!(names(&s.clusters(OTHER_SUB, None).unwrap(), |c| &c.name), ["elsewhere"]);
}

fn cluster_id_is_unique(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let a = cluster(SUB, "Team", "a", 1);
    s.put_cluster(&a).unwrap();
    assert_conflict(s.put_cluster(&Cluster { cluster_id: a.cluster_id, ..cluster(SUB, "Team", "b", 2) }));
    assert_eq!(s.clusters(SUB, None).unwrap(), vec![a]);
}

fn delete_cluster_returns_it(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let a = cluster(SUB, "Team", "Prod", 1);
    let b = cluster(SUB, "Team", "Dev", 2);
    s.put_cluster(&a).unwrap();
    s.put_cluster(&b).unwrap();
    assert_eq!(s.delete_cluster(&key(SUB, "TEAM", "PROD")).unwrap(), Some(a.clone()));
    assert_eq!(s.delete_cluster(&a.key()).unwrap(), None);
    assert_eq!(s.clusters(SUB, None).unwrap(), vec![b]);
}

// ---------------------------------------------------------------------------------------------------
// Applications.

fn apps_upsert_by_client_id(s: &dyn Store) {
    let a = app(1, "bootstrap-admin");
    let b = app(2, "ci");
    s.put_app(&a).unwrap();
    s.put_app(&b).unwrap();
    let rotated = AppPrincipal { secret_hash: vec![9; 32], display_name: "admin".into(), ..a.clone() };
    s.put_app(&rotated).unwrap();
    let apps = sorted(&s.snapshot().unwrap().apps, |a| a.client_id);
    assert_eq!(apps, sorted(&[rotated, b.clone()], |a| a.client_id));
    // A principal id names one application.
    assert_conflict(s.put_app(&AppPrincipal { principal_id: b.principal_id, ..app(3, "dup") }));
    assert_eq!(s.snapshot().unwrap().apps.len(), 2);
}

// ---------------------------------------------------------------------------------------------------
// Role assignments.

fn role_assignment_insert_get_delete(s: &dyn Store) {
    let a = ra(1, &rg_scope(SUB, "Team"), id(1), id(2));
    let b = RoleAssignment {
        description: None,
        created_by: None,
        principal_type: PrincipalType::Group,
        ..ra(2, "/", id(1), id(2))
    };
    s.insert_role_assignment(&a).unwrap();
    s.insert_role_assignment(&b).unwrap();
    assert_eq!(s.role_assignment(a.id).unwrap(), Some(a.clone()));
    assert_eq!(s.role_assignment(b.id).unwrap(), Some(b.clone()));
    assert_eq!(s.role_assignment(id(0x999)).unwrap(), None);
    let c = ra(3, "/", id(5), id(2));
    s.insert_role_assignment(&c).unwrap();
    // Listed by (scope key, id): "/" sorts before "/subscriptions/…".
    assert_eq!(s.role_assignments(None).unwrap(), vec![b.clone(), c.clone(), a.clone()]);
    assert_eq!(s.role_assignments(Some(id(1))).unwrap(), vec![b.clone(), a.clone()]);
    assert_eq!(s.role_assignments(Some(id(0x999))).unwrap(), vec![]);
    assert_eq!(s.delete_role_assignment(c.id).unwrap(), Some(c));
    assert_eq!(s.delete_role_assignment(a.id).unwrap(), Some(a.clone()));
    assert_eq!(s.delete_role_assignment(a.id).unwrap(), None);
    assert_eq!(s.role_assignment(a.id).unwrap(), None);
    assert_eq!(s.snapshot().unwrap().role_assignments, vec![b]);
    // The same assignment may be made again once deleted.
    s.insert_role_assignment(&a).unwrap();
}

fn role_assignment_conflicts(s: &dyn Store) {
    let (principal, role) = (id(1), id(2));
    let scope = format!("/subscriptions/{SUB}/resourceGroups/Team");
    let a = ra(1, &scope, principal, role);
    s.insert_role_assignment(&a).unwrap();
    // Same id, whatever else.
    assert_conflict(s.insert_role_assignment(&ra(1, "/", id(3), id(4))));
    // Same (principal, role, scope key): scope casing and a trailing '/' do not make it different.
    let upper = format!("/SUBSCRIPTIONS/{}/resourcegroups/TEAM/", SUB.to_string().to_uppercase());
    assert_conflict(s.insert_role_assignment(&ra(2, &upper, principal, role)));
    // Any difference is a new assignment.
    s.insert_role_assignment(&ra(3, &scope, principal, id(5))).unwrap();
    s.insert_role_assignment(&ra(4, &scope, id(6), role)).unwrap();
    s.insert_role_assignment(&ra(5, &format!("{scope}2"), principal, role)).unwrap();
    s.insert_role_assignment(&ra(6, &format!("{scope}/providers/x/y/z"), principal, role)).unwrap();
    assert_eq!(s.snapshot().unwrap().role_assignments.len(), 5);
    assert_eq!(s.role_assignment(a.id).unwrap(), Some(a));
}

// ---------------------------------------------------------------------------------------------------
// Deleting a resource group.

fn delete_resource_group_removes_everything_below(s: &dyn Store) {
    // "Team" is deleted; "Team2" (a string-prefix sibling), the subscription and OTHER_SUB's "Team" stay.
    for (sub, g) in [(SUB, "Team"), (SUB, "Team2"), (OTHER_SUB, "Team")] {
        s.put_resource_group(&rg(sub, g)).unwrap();
    }
    let gone_ids = [identity(SUB, "Team", "web", 1), identity(SUB, "team", "Api", 2)];
    let kept_ids = [identity(SUB, "Team2", "web", 3), identity(OTHER_SUB, "Team", "web", 4)];
    for i in gone_ids.iter().chain(&kept_ids) {
        s.put_identity(i).unwrap();
        s.put_credential(&cred(&i.key(), fic("fic", "system:serviceaccount:ns:sa"))).unwrap();
    }
    let gone_clusters = [cluster(SUB, "TEAM", "aks", 1)];
    let kept_clusters = [cluster(SUB, "Team2", "aks", 2), cluster(OTHER_SUB, "Team", "aks", 3)];
    for c in gone_clusters.iter().chain(&kept_clusters) {
        s.put_cluster(c).unwrap();
    }
    let p = id(0xabc);
    let sub_upper = SUB.to_string().to_uppercase();
    let gone_ras = [
        ra(1, &rg_scope(SUB, "Team"), p, id(1)),
        ra(2, &format!("/subscriptions/{sub_upper}/RESOURCEGROUPS/team/"), p, id(2)),
        ra(3, &format!("{}/providers/Microsoft.KeyVault/vaults/v1", rg_scope(SUB, "Team")), p, id(3)),
        ra(4, &gone_ids[0].arm_id(), p, id(4)),
    ];
    let kept_ras = [
        ra(5, "/", p, id(5)),
        ra(6, &format!("/subscriptions/{SUB}"), p, id(6)),
        ra(7, &rg_scope(SUB, "Team2"), p, id(7)),
        ra(8, &kept_ids[0].arm_id(), p, id(8)),
        ra(9, &rg_scope(OTHER_SUB, "Team"), p, id(9)),
        ra(10, &format!("/subscriptions/{SUB}/resourceGroups/Team-x/providers/a/b/c"), p, id(10)),
    ];
    for r in gone_ras.iter().chain(&kept_ras) {
        s.insert_role_assignment(r).unwrap();
    }

    let removed = s.delete_resource_group(SUB, "tEAM").unwrap().expect("the group existed");
    assert_eq!(sorted(&removed.identities, |i| i.key()), sorted(&gone_ids, |i| i.key()));
    assert_eq!(sorted(&removed.clusters, |c| c.key()), sorted(&gone_clusters, |c| c.key()));
    assert_eq!(sorted(&removed.role_assignments, |r| r.id), sorted(&gone_ras, |r| r.id));

    assert_eq!(s.resource_group(SUB, "Team").unwrap(), None);
    assert_eq!(names(&s.resource_groups(SUB).unwrap(), |g| &g.name), ["Team2"]);
    for i in &gone_ids {
        assert_eq!(s.identity(&i.key()).unwrap(), None);
        assert!(s.credentials(&i.key()).unwrap().is_empty());
    }
    let snap = s.snapshot().unwrap();
    assert_eq!(sorted(&snap.identities, |i| i.key()), sorted(&kept_ids, |i| i.key()));
    let cred_owners: Vec<ResourceKey> =
        sorted(&snap.credentials, |c| c.identity.clone()).into_iter().map(|c| c.identity).collect();
    assert_eq!(cred_owners, sorted(&kept_ids, |i| i.key()).iter().map(Identity::key).collect::<Vec<_>>());
    assert_eq!(sorted(&snap.clusters, |c| c.key()), sorted(&kept_clusters, |c| c.key()));
    assert_eq!(sorted(&snap.role_assignments, |r| r.id), sorted(&kept_ras, |r| r.id));

    // Gone for good: deleting again finds nothing, and a new group of that name starts empty.
    assert!(s.delete_resource_group(SUB, "Team").unwrap().is_none());
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    assert!(s.identities(SUB, Some("Team")).unwrap().is_empty());
    s.put_identity(&gone_ids[0]).unwrap();
    assert!(s.credentials(&gone_ids[0].key()).unwrap().is_empty());
}

fn delete_resource_group_missing_is_none(s: &dyn Store) {
    assert!(s.delete_resource_group(SUB, "nope").unwrap().is_none());
    s.put_resource_group(&rg(OTHER_SUB, "Team")).unwrap();
    assert!(s.delete_resource_group(SUB, "Team").unwrap().is_none());
    assert!(s.resource_group(OTHER_SUB, "Team").unwrap().is_some());
    // An empty group is removed with nothing else.
    s.put_resource_group(&rg(SUB, "Empty")).unwrap();
    let removed = s.delete_resource_group(SUB, "empty").unwrap().unwrap();
    assert!(removed.identities.is_empty() && removed.clusters.is_empty() && removed.role_assignments.is_empty());
}

fn failed_writes_change_nothing(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let a = identity(SUB, "Team", "a", 1);
    s.put_identity(&a).unwrap();
    let before = s.snapshot().unwrap();
    assert!(s.put_identity(&Identity { client_id: a.client_id, ..identity(SUB, "Team", "b", 2) }).is_err());
    assert!(s.put_credential(&cred(&key(SUB, "Team", "b"), fic("fic", "s"))).is_err());
    assert!(s.put_cluster(&cluster(SUB, "nope", "c", 1)).is_err());
    // Nor do they leave change-log entries.
    assert!(changes_after(s, before.change_head).is_empty());
    let r = ra(1, "/", id(1), id(2));
    s.insert_role_assignment(&r).unwrap();
    assert!(s.insert_role_assignment(&RoleAssignment { id: id(0x77), ..r.clone() }).is_err());
    s.delete_role_assignment(r.id).unwrap();
    let after = s.snapshot().unwrap();
    assert_eq!(changes_after(s, before.change_head).len(), 2);
    assert_eq!(
        format!("{:?}", Snapshot { change_head: 0, ..after }),
        format!("{:?}", Snapshot { change_head: 0, ..before })
    );
}

// ---------------------------------------------------------------------------------------------------
// Snapshot.

fn snapshot_of_empty_store(s: &dyn Store) {
    let snap = s.snapshot().unwrap();
    assert!(snap.identities.is_empty());
    assert!(snap.credentials.is_empty());
    assert!(snap.clusters.is_empty());
    assert!(snap.apps.is_empty());
    assert!(snap.role_assignments.is_empty());
}

fn snapshot_is_complete(s: &dyn Store) {
    let mut ids = Vec::new();
    let mut creds = Vec::new();
    let mut clusters = Vec::new();
    let mut ras = Vec::new();
    let mut n = 0;
    for sub in [SUB, OTHER_SUB] {
        for g in ["One", "two"] {
            s.put_resource_group(&rg(sub, g)).unwrap();
            for name in ["X", "y"] {
                n += 1;
                let i = identity(sub, g, name, n);
                s.put_identity(&i).unwrap();
                for c in ["c1", "C2"] {
                    let c = cred(&i.key(), fic(c, &format!("sub-{c}")));
                    s.put_credential(&c).unwrap();
                    creds.push(c);
                }
                let c = cluster(sub, g, name, n);
                s.put_cluster(&c).unwrap();
                clusters.push(c);
                let r = ra(n, &i.arm_id(), i.principal_id, id(0xbeef));
                s.insert_role_assignment(&r).unwrap();
                ras.push(r);
                ids.push(i);
            }
        }
    }
    let apps = vec![app(1, "admin"), app(2, "ci")];
    for a in &apps {
        s.put_app(a).unwrap();
    }
    // Records that must not appear: deleted ones.
    let doomed = identity(SUB, "One", "doomed", 999);
    s.put_identity(&doomed).unwrap();
    s.put_credential(&cred(&doomed.key(), fic("fic", "s"))).unwrap();
    s.delete_identity(&doomed.key()).unwrap();

    let snap = s.snapshot().unwrap();
    assert_eq!(sorted(&snap.identities, |i| i.key()), sorted(&ids, |i| i.key()));
    let cred_key = |c: &StoredCredential| (c.identity.clone(), c.credential.name.to_ascii_lowercase());
    assert_eq!(sorted(&snap.credentials, cred_key), sorted(&creds, cred_key));
    assert_eq!(sorted(&snap.clusters, |c| c.key()), sorted(&clusters, |c| c.key()));
    assert_eq!(sorted(&snap.apps, |a| a.client_id), sorted(&apps, |a| a.client_id));
    assert_eq!(sorted(&snap.role_assignments, |r| r.id), sorted(&ras, |r| r.id));
}

// ---------------------------------------------------------------------------------------------------
// Concurrency: every call is atomic, whatever the interleaving.

fn concurrent_meta_insert_has_one_winner(s: &dyn Store) {
    let winners = std::thread::scope(|scope| {
        let handles: Vec<_> =
            (0..8u8).map(|i| scope.spawn(move || s.meta_insert("tenant_id", &[i]).unwrap())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).filter(|won| *won).count()
    });
    assert_eq!(winners, 1);
    assert_eq!(s.meta_get("tenant_id").unwrap().map(|v| v.len()), Some(1));
}

fn concurrent_role_assignment_has_one_winner(s: &dyn Store) {
    let scope_text = rg_scope(SUB, "Team");
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u128)
            .map(|n| {
                let r = ra(n, &scope_text, id(1), id(2));
                scope.spawn(move || s.insert_role_assignment(&r))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict(_)))), "{results:?}");
    assert_eq!(s.snapshot().unwrap().role_assignments.len(), 1);
}

fn concurrent_writes_and_reads(s: &dyn Store) {
    const WRITERS: u128 = 4;
    const EACH: u128 = 15;
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    std::thread::scope(|scope| {
        for w in 0..WRITERS {
            scope.spawn(move || {
                for i in 0..EACH {
                    let n = w * 100 + i;
                    let ident = identity(SUB, "Team", &format!("id-{n}"), n);
                    assert_eq!(s.put_identity(&ident).unwrap(), Written::Created);
                    // A reader on any connection sees an acknowledged write.
                    assert_eq!(s.identity(&ident.key()).unwrap(), Some(ident.clone()));
                    s.put_credential(&cred(&ident.key(), fic("fic", "s"))).unwrap();
                }
            });
        }
        scope.spawn(|| {
            let mut last = 0;
            for _ in 0..50 {
                // Counts only grow, and a snapshot never shows a credential without its identity.
                let snap = s.snapshot().unwrap();
                assert!(snap.identities.len() >= last);
                last = snap.identities.len();
                let keys: Vec<ResourceKey> = snap.identities.iter().map(Identity::key).collect();
                assert!(snap.credentials.iter().all(|c| keys.contains(&c.identity)));
                let _ = s.identities(SUB, Some("team")).unwrap();
            }
        });
    });
    assert_eq!(s.identities(SUB, None).unwrap().len() as u128, WRITERS * EACH);
    assert_eq!(s.snapshot().unwrap().credentials.len() as u128, WRITERS * EACH);
}

// ---------------------------------------------------------------------------------------------------
// Key Vault fixtures.

const DAY: i64 = 86_400;

fn vault(sub: Uuid, group: &str, name: &str, n: u128) -> Vault {
    Vault {
        subscription: sub,
        resource_group: group.into(),
        name: name.into(),
        location: "westeurope".into(),
        tags: tags(&[("kv", name)]),
        vault_id: id(0x8000 + n),
        tenant_id: TENANT,
        sku: "standard".into(),
        enable_rbac_authorization: true,
        enable_purge_protection: false,
        soft_delete_retention_days: 7,
        public_network_access: "Enabled".into(),
        sealed_data_key: vec![0xd0, n as u8, 0, 0xff, 0],
        created: 1_700_001_000,
        updated: 1_700_001_100,
        deleted: None,
    }
}

/// A 32-hex-digit version id, distinct per `n`.
fn ver(n: u128) -> String {
    format!("{:032x}", 0xabc0_0000_0000_0000_0000_0000_0000_0000 | n)
}

/// Sealed bytes distinct per `n`, with NULs and high bytes.
fn sealed(n: u128) -> Vec<u8> {
    let mut v = vec![0, 0xff, 0x80, 0];
    v.extend_from_slice(&n.to_le_bytes());
    v
}

/// Version `n` of secret `name` in the vault with key `vault`.
fn secret(vault: &str, name: &str, n: u128) -> SecretVersion {
    SecretVersion {
        vault: vault.into(),
        name: name.into(),
        version: ver(n),
        sealed_value: sealed(n),
        content_type: Some("text/plain".into()),
        tags: tags(&[("n", &n.to_string())]),
        enabled: true,
        nbf: None,
        exp: None,
        created: 1_700_002_000 + n as i64,
        updated: 1_700_002_000 + n as i64,
    }
}

/// A group "Team" in SUB with vault "kv1" (key "kv1").
fn kv_setup(s: &dyn Store) -> Vault {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let v = vault(SUB, "Team", "kv1", 1);
    s.put_vault(&v).unwrap();
    v
}

/// The same version as stored under the name `name` (the first version's casing).
fn named(v: &SecretVersion, name: &str) -> SecretVersion {
    SecretVersion { name: name.into(), ..v.clone() }
}

fn versions_of(p: &Page<SecretVersion>) -> Vec<String> {
    p.items.iter().map(|v| v.version.clone()).collect()
}

/// Every page of a listing, following `next` until `None`.
fn all_pages<T>(mut get: impl FnMut(Option<&str>) -> Page<T>) -> Vec<Vec<T>> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = get(after.as_deref());
        after = page.next.clone();
        pages.push(page.items);
        if after.is_none() {
            return pages;
        }
        assert!(pages.len() < 1000, "paging does not end");
    }
}

// ---------------------------------------------------------------------------------------------------
// Vaults.

fn vault_requires_resource_group(s: &dyn Store) {
    assert_missing_parent(s.put_vault(&vault(SUB, "nope", "kv1", 1)));
    s.put_resource_group(&rg(OTHER_SUB, "Team")).unwrap();
    assert_missing_parent(s.put_vault(&vault(SUB, "Team", "kv1", 1)));
    assert_eq!(s.vault("kv1").unwrap(), None);
    assert!(s.vaults(SUB, None).unwrap().is_empty());
}

fn vault_create_update_and_lookup(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let v = vault(SUB, "Team", "My-Vault", 1);
    assert_eq!(s.put_vault(&v).unwrap(), Written::Created);
    for casing in ["My-Vault", "my-vault", "MY-VAULT"] {
        assert_eq!(s.vault(casing).unwrap(), Some(v.clone()), "{casing}");
    }
    assert_eq!(s.vault("my-vaul").unwrap(), None);
    // A put with the same vault id replaces the record, casing included.
    let changed = Vault {
        name: "MY-vault".into(),
        resource_group: "TEAM".into(),
        tags: tags(&[("v", "2")]),
        enable_purge_protection: true,
        soft_delete_retention_days: 90,
        sealed_data_key: vec![1, 2, 3],
        updated: 1_800_000_000,
        ..v.clone()
    };
    assert_eq!(s.put_vault(&changed).unwrap(), Written::Updated);
    assert_eq!(s.vault("my-vault").unwrap(), Some(changed.clone()));
    assert_eq!(s.vaults(SUB, None).unwrap(), vec![changed.clone()]);
    assert_eq!(s.vaults(SUB, Some("team")).unwrap(), vec![changed]);
    assert!(s.deleted_vaults(SUB).unwrap().is_empty());
}

fn vaults_filtered_and_ordered(s: &dyn Store) {
    for (sub, g) in [(SUB, "B-Team"), (SUB, "a-team"), (OTHER_SUB, "a-team")] {
        s.put_resource_group(&rg(sub, g)).unwrap();
    }
    let mut n = 0;
    for (g, name) in [("B-Team", "zed"), ("a-team", "Yak"), ("B-Team", "Ant"), ("a-team", "bee-1"), ("a-team", "B0")] {
        n += 1;
        s.put_vault(&vault(SUB, g, name, n)).unwrap();
    }
    s.put_vault(&vault(OTHER_SUB, "a-team", "elsewhere", 99)).unwrap();
    // Ordered by name key, across groups.
    assert_eq!(names(&s.vaults(SUB, None).unwrap(), |v| &v.name), ["Ant", "B0", "bee-1", "Yak", "zed"]);
    assert_eq!(names(&s.vaults(SUB, Some("B-TEAM")).unwrap(), |v| &v.name), ["Ant", "zed"]);
    assert_eq!(names(&s.vaults(SUB, Some("a-team")).unwrap(), |v| &v.name), ["B0", "bee-1", "Yak"]);
    assert!(s.vaults(SUB, Some("c-team")).unwrap().is_empty());
    assert_eq!(names(&s.vaults(OTHER_SUB, None).unwrap(), |v| &v.name), ["elsewhere"]);
    // Soft-deleted vaults leave the listings and appear in the deleted one, per subscription.
    for (name, n) in [("Yak", 2), ("Ant", 3)] {
        let v = s.vault(name).unwrap().unwrap();
        assert_eq!(v.vault_id, id(0x8000 + n));
        s.put_vault(&Vault { deleted: Some(1_700_005_000), ..v }).unwrap();
    }
    assert_eq!(names(&s.vaults(SUB, None).unwrap(), |v| &v.name), ["B0", "bee-1", "zed"]);
    assert_eq!(names(&s.vaults(SUB, Some("a-team")).unwrap(), |v| &v.name), ["B0", "bee-1"]);
    let deleted = s.deleted_vaults(SUB).unwrap();
    assert_eq!(names(&deleted, |v| &v.name), ["Ant", "Yak"]);
    assert!(deleted.iter().all(|v| v.deleted == Some(1_700_005_000)));
    assert!(s.deleted_vaults(OTHER_SUB).unwrap().is_empty());
}

fn vault_names_are_unique_across_groups_and_subscriptions(s: &dyn Store) {
    for (sub, g) in [(SUB, "Team"), (SUB, "Other"), (OTHER_SUB, "Team")] {
        s.put_resource_group(&rg(sub, g)).unwrap();
    }
    let v = vault(SUB, "Team", "kv1", 1);
    s.put_vault(&v).unwrap();
    // Another vault (another vault id) with that name, in any casing, anywhere.
    assert_conflict(s.put_vault(&vault(SUB, "Other", "kv1", 2)));
    assert_conflict(s.put_vault(&vault(OTHER_SUB, "Team", "KV1", 2)));
    assert_conflict(s.put_vault(&vault(SUB, "Team", "Kv1", 2)));
    // The same vault cannot move to another group or subscription.
    assert_conflict(s.put_vault(&Vault { resource_group: "Other".into(), ..v.clone() }));
    assert_conflict(s.put_vault(&Vault { subscription: OTHER_SUB, ..v.clone() }));
    // A vault id names one vault.
    assert_conflict(s.put_vault(&Vault { vault_id: v.vault_id, ..vault(SUB, "Other", "kv2", 2) }));
    assert_eq!(s.vault("kv1").unwrap(), Some(v.clone()));
    assert_eq!(s.vault("kv2").unwrap(), None);
    assert!(s.vaults(SUB, Some("Other")).unwrap().is_empty());
    assert!(s.vaults(OTHER_SUB, None).unwrap().is_empty());
    assert_eq!(s.put_vault(&v).unwrap(), Written::Updated);
}

fn soft_deleted_vault_reserves_its_name(s: &dyn Store) {
    let v = kv_setup(s);
    s.put_resource_group(&rg(SUB, "Other")).unwrap();
    let deleted = Vault { deleted: Some(1_700_009_000), ..v.clone() };
    assert_eq!(s.put_vault(&deleted).unwrap(), Written::Updated);
    assert_eq!(s.vault("KV1").unwrap(), Some(deleted.clone()));
    assert!(s.vaults(SUB, None).unwrap().is_empty());
    assert_eq!(s.deleted_vaults(SUB).unwrap(), vec![deleted.clone()]);
    // Its name is taken until it is purged, in its group and elsewhere.
    assert_conflict(s.put_vault(&vault(SUB, "Team", "kv1", 2)));
    assert_conflict(s.put_vault(&vault(SUB, "Other", "KV1", 3)));
    // The same vault may be recovered (same vault id, `deleted` cleared).
    assert_eq!(s.put_vault(&v).unwrap(), Written::Updated);
    assert_eq!(s.vaults(SUB, None).unwrap(), vec![v.clone()]);
    assert!(s.deleted_vaults(SUB).unwrap().is_empty());
    // Once purged, the name is free for a new vault.
    s.put_vault(&deleted).unwrap();
    assert_eq!(s.purge_vault("Kv1").unwrap(), Some(deleted));
    assert_eq!(s.vault("kv1").unwrap(), None);
    assert!(s.deleted_vaults(SUB).unwrap().is_empty());
    assert_eq!(s.put_vault(&vault(SUB, "Other", "kv1", 3)).unwrap(), Written::Created);
}

fn purge_vault_removes_its_secrets(s: &dyn Store) {
    let v = kv_setup(s);
    let other = vault(SUB, "Team", "kv2", 2);
    s.put_vault(&other).unwrap();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        s.insert_secret_version(&secret("kv1", name, i as u128)).unwrap();
        s.insert_secret_version(&secret("kv2", name, i as u128)).unwrap();
    }
    s.delete_secret("kv1", "b", 10, 20).unwrap().unwrap();
    assert_eq!(s.purge_vault("KV1").unwrap(), Some(v.clone()));
    assert_eq!(s.purge_vault("kv1").unwrap(), None);
    assert_eq!(s.purge_vault("never").unwrap(), None);
    assert_eq!(s.vault("kv1").unwrap(), None);
    assert!(s.secrets("kv1", None, 25).unwrap().items.is_empty());
    assert!(s.deleted_secrets("kv1", None, 25).unwrap().items.is_empty());
    assert_eq!(s.deleted_secret("kv1", "b").unwrap(), None);
    // A new vault with the name starts empty; the old version ids are free again.
    s.put_vault(&vault(SUB, "Team", "kv1", 3)).unwrap();
    assert!(s.secrets("kv1", None, 25).unwrap().items.is_empty());
    s.insert_secret_version(&secret("kv1", "b", 1)).unwrap();
    // The other vault is untouched.
    assert_eq!(s.secrets("kv2", None, 25).unwrap().items.len(), 3);
}

// ---------------------------------------------------------------------------------------------------
// Secret versions.

fn secret_versions_insert_and_latest(s: &dyn Store) {
    kv_setup(s);
    assert_missing_parent(s.insert_secret_version(&secret("nope", "db", 1)));
    let mut inserted = Vec::new();
    // Timestamps go backwards: "latest" is the last inserted, whatever the times say.
    for (n, created) in [(3, 300), (1, 200), (2, 100)] {
        let v = SecretVersion { created, updated: created, ..secret("kv1", "db", n) };
        s.insert_secret_version(&v).unwrap();
        assert_eq!(s.secret_version("kv1", "db", None).unwrap(), Some(v.clone()));
        inserted.push(v);
    }
    for v in &inserted {
        assert_eq!(s.secret_version("kv1", "db", Some(&v.version)).unwrap(), Some(v.clone()));
    }
    assert_eq!(s.secret_version("kv1", "db", Some(&ver(9))).unwrap(), None);
    assert_eq!(s.secret_version("kv1", "other", None).unwrap(), None);
    assert_eq!(s.secret_version("kv2", "db", None).unwrap(), None);
    // A version id is unique in its vault: not again, not under another name.
    assert_conflict(s.insert_secret_version(&secret("kv1", "db", 1)));
    assert_conflict(s.insert_secret_version(&secret("kv1", "other", 2)));
    assert_eq!(s.secret_version("kv1", "other", None).unwrap(), None);
    // Another vault may use the same version id.
    s.put_vault(&vault(SUB, "Team", "kv2", 2)).unwrap();
    s.insert_secret_version(&secret("kv2", "db", 1)).unwrap();
    let page = s.secret_versions("kv1", "db", None, 25).unwrap();
    assert_eq!(page.items, inserted);
    assert_eq!(page.next, None);
    // A version is found only under its own secret.
    s.insert_secret_version(&secret("kv1", "other", 7)).unwrap();
    assert_eq!(s.secret_version("kv1", "other", Some(&ver(1))).unwrap(), None);
}

fn secret_names_ignore_case_and_keep_first_casing(s: &dyn Store) {
    kv_setup(s);
    let first = secret("kv1", "My-Secret", 1);
    s.insert_secret_version(&first).unwrap();
    s.insert_secret_version(&secret("kv1", "MY-SECRET", 2)).unwrap();
    s.insert_secret_version(&secret("kv1", "my-secret", 3)).unwrap();
    let expect: Vec<SecretVersion> = (1..=3).map(|n| named(&secret("kv1", "x", n), "My-Secret")).collect();
    for (vault, name) in [("kv1", "My-Secret"), ("KV1", "my-secret"), ("Kv1", "MY-SECRET")] {
        assert_eq!(s.secret_version(vault, name, None).unwrap(), Some(expect[2].clone()), "{vault}/{name}");
        assert_eq!(s.secret_version(vault, name, Some(&ver(1))).unwrap(), Some(expect[0].clone()));
        assert_eq!(s.secret_versions(vault, name, None, 25).unwrap().items, expect);
    }
    assert_eq!(s.secrets("KV1", None, 25).unwrap().items, vec![expect[2].clone()]);
    // Deleting in another casing reports and keeps the secret's own.
    let d = s.delete_secret("KV1", "MY-secret", 10, 20).unwrap().unwrap();
    assert_eq!(d, DeletedSecret { vault: "kv1".into(), name: "My-Secret".into(), deleted: 10, scheduled_purge: 20 });
    assert_eq!(s.deleted_secret("kv1", "my-SECRET").unwrap(), Some((d, expect[2].clone())));
}

fn update_secret_version_never_changes_the_value(s: &dyn Store) {
    kv_setup(s);
    let v1 = secret("kv1", "Db", 1);
    let v2 = secret("kv1", "Db", 2);
    s.insert_secret_version(&v1).unwrap();
    s.insert_secret_version(&v2).unwrap();
    let update = SecretVersion {
        name: "DB".into(),
        sealed_value: b"attacker-chosen".to_vec(),
        content_type: None,
        tags: tags(&[("new", "tag")]),
        enabled: false,
        nbf: Some(1_700_000_000),
        exp: Some(1_900_000_000),
        created: 1,
        updated: 1_800_000_000,
        ..v1.clone()
    };
    assert!(s.update_secret_version(&update).unwrap());
    // Attributes replaced; value, name and creation time kept.
    let expect = SecretVersion {
        content_type: None,
        tags: tags(&[("new", "tag")]),
        enabled: false,
        nbf: Some(1_700_000_000),
        exp: Some(1_900_000_000),
        updated: 1_800_000_000,
        ..v1.clone()
    };
    assert_eq!(s.secret_version("kv1", "db", Some(&v1.version)).unwrap(), Some(expect.clone()));
    // Updating an older version does not make it the latest.
    assert_eq!(s.secret_version("kv1", "db", None).unwrap(), Some(v2.clone()));
    // No such version: false, nothing changes.
    assert!(!s.update_secret_version(&SecretVersion { version: ver(9), ..update.clone() }).unwrap());
    assert!(!s.update_secret_version(&SecretVersion { name: "other".into(), ..update.clone() }).unwrap());
    assert!(!s.update_secret_version(&SecretVersion { vault: "kv2".into(), ..update.clone() }).unwrap());
    // A soft-deleted secret's versions cannot be updated.
    s.delete_secret("kv1", "db", 10, 20).unwrap().unwrap();
    assert!(!s.update_secret_version(&SecretVersion { enabled: true, ..update }).unwrap());
    assert_eq!(s.recover_secret("kv1", "db").unwrap(), Some(v2));
    assert_eq!(s.secret_version("kv1", "db", Some(&v1.version)).unwrap(), Some(expect));
}

fn sealed_values_round_trip_exactly(s: &dyn Store) {
    kv_setup(s);
    let every_byte: Vec<u8> = (0..=255u8).rev().chain([0, 0, 0]).collect();
    let large: Vec<u8> = (0..40_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let cases =
        [("every-byte", every_byte), ("empty", Vec::new()), ("large", large), ("utf8-invalid", vec![0xc3, 0x28])];
    for (n, (name, value)) in cases.iter().enumerate() {
        let v = SecretVersion { sealed_value: value.clone(), ..secret("kv1", name, n as u128) };
        s.insert_secret_version(&v).unwrap();
        assert_eq!(s.secret_version("kv1", name, None).unwrap().unwrap().sealed_value, *value, "{name}");
    }
    let listed = s.secrets("kv1", None, 25).unwrap().items;
    for (name, value) in &cases {
        assert_eq!(&listed.iter().find(|v| v.name == *name).unwrap().sealed_value, value, "{name}");
    }
}

fn secrets_paging(s: &dyn Store) {
    kv_setup(s);
    s.put_vault(&vault(SUB, "Team", "kv2", 2)).unwrap();
    // 60 secrets inserted out of order, each with two versions; plus one soft-deleted secret and one in
    // another vault, neither of which may appear.
    let mut n = 0;
    let mut latest = BTreeMap::new();
    for i in (0..60).rev() {
        let name = format!("Secret-{i:02}");
        for _ in 0..2 {
            n += 1;
            let v = secret("kv1", &name, n);
            s.insert_secret_version(&v).unwrap();
            latest.insert(name.to_ascii_lowercase(), v);
        }
    }
    s.insert_secret_version(&secret("kv1", "secret-30-deleted", 500)).unwrap();
    s.delete_secret("kv1", "secret-30-deleted", 10, 20).unwrap().unwrap();
    s.insert_secret_version(&secret("kv2", "secret-00", 501)).unwrap();

    let pages = all_pages(|after| s.secrets("kv1", after, 25).unwrap());
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [25, 25, 10]);
    let listed: Vec<SecretVersion> = pages.into_iter().flatten().collect();
    assert_eq!(listed, latest.values().cloned().collect::<Vec<_>>());

    // The cursor is the position after the last item; `next` is None exactly on the last page.
    let first = s.secrets("kv1", None, 25).unwrap();
    let second = s.secrets("kv1", first.next.as_deref(), 25).unwrap();
    assert_eq!(second.items.first().map(|v| v.name.as_str()), Some("Secret-25"));
    let whole = s.secrets("kv1", None, 60).unwrap();
    assert_eq!((whole.items.len(), whole.next), (60, None));
    let short = s.secrets("kv1", None, 59).unwrap();
    assert_eq!(short.items.len(), 59);
    let rest = s.secrets("kv1", short.next.as_deref(), 59).unwrap();
    assert_eq!((names(&rest.items, |v| &v.name), rest.next), (vec!["Secret-59".to_string()], None));
    // A page of at least one; an empty vault is one empty page.
    assert_eq!(s.secrets("kv1", None, 0).unwrap().items.len(), 1);
    assert_eq!(s.secrets("kv3", None, 25).unwrap(), Page { items: Vec::new(), next: None });
}

fn secret_versions_paging(s: &dyn Store) {
    kv_setup(s);
    // Seven versions of "db", interleaved with versions of other secrets.
    let mut expect = Vec::new();
    for n in 1..=7 {
        let v = secret("kv1", "db", n);
        s.insert_secret_version(&v).unwrap();
        expect.push(v.version);
        s.insert_secret_version(&secret("kv1", &format!("other-{n}"), 100 + n)).unwrap();
    }
    let pages = all_pages(|after| s.secret_versions("kv1", "DB", after, 3).unwrap());
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let listed: Vec<String> = pages.into_iter().flatten().map(|v| v.version).collect();
    assert_eq!(listed, expect);
    let exact = s.secret_versions("kv1", "db", None, 7).unwrap();
    assert_eq!((versions_of(&exact), exact.next), (expect.clone(), None));
    // A version inserted between pages shows up at the end, after the cursor.
    let first = s.secret_versions("kv1", "db", None, 4).unwrap();
    s.insert_secret_version(&secret("kv1", "db", 8)).unwrap();
    let second = s.secret_versions("kv1", "db", first.next.as_deref(), 4).unwrap();
    assert_eq!(versions_of(&second), [expect[4].clone(), expect[5].clone(), expect[6].clone(), ver(8)]);
    assert_eq!(second.next, None);
    // A cursor the store did not make ends the listing.
    assert_eq!(
        s.secret_versions("kv1", "db", Some("not-a-cursor"), 3).unwrap(),
        Page { items: Vec::new(), next: None }
    );
    assert!(s.secret_versions("kv1", "missing", None, 3).unwrap().items.is_empty());
}

fn deleted_secret_is_hidden_and_reserves_its_name(s: &dyn Store) {
    kv_setup(s);
    let v1 = secret("kv1", "Db-Password", 1);
    let v2 = secret("kv1", "Db-Password", 2);
    let kept = secret("kv1", "kept", 3);
    for v in [&v1, &v2, &kept] {
        s.insert_secret_version(v).unwrap();
    }
    let d = s.delete_secret("kv1", "db-password", 1_700_100_000, 1_700_100_000 + 7 * DAY).unwrap().unwrap();
    assert_eq!(
        d,
        DeletedSecret {
            vault: "kv1".into(),
            name: "Db-Password".into(),
            deleted: 1_700_100_000,
            scheduled_purge: 1_700_100_000 + 7 * DAY
        }
    );
    // Hidden from every active read.
    assert_eq!(s.secret_version("kv1", "db-password", None).unwrap(), None);
    assert_eq!(s.secret_version("kv1", "db-password", Some(&v1.version)).unwrap(), None);
    assert!(s.secret_versions("kv1", "db-password", None, 25).unwrap().items.is_empty());
    assert_eq!(s.secrets("kv1", None, 25).unwrap().items, vec![kept.clone()]);
    // Visible as deleted, with its latest version.
    assert_eq!(s.deleted_secret("kv1", "DB-PASSWORD").unwrap(), Some((d.clone(), v2.clone())));
    assert_eq!(s.deleted_secrets("kv1", None, 25).unwrap(), Page { items: vec![(d.clone(), v2)], next: None });
    assert_eq!(s.deleted_secret("kv1", "kept").unwrap(), None);
    // Deleting again, or what does not exist, finds nothing.
    assert_eq!(s.delete_secret("kv1", "db-password", 1, 2).unwrap(), None);
    assert_eq!(s.delete_secret("kv1", "never", 1, 2).unwrap(), None);
    assert_eq!(s.delete_secret("kv2", "kept", 1, 2).unwrap(), None);
    // The name is reserved, in any casing; the version ids stay taken.
    assert_conflict(s.insert_secret_version(&secret("kv1", "DB-password", 4)));
    assert_conflict(s.insert_secret_version(&secret("kv1", "new", 1)));
    assert_eq!(s.deleted_secret("kv1", "db-password").unwrap().map(|(d, _)| d.deleted), Some(1_700_100_000));
}

fn recover_secret_restores_every_version(s: &dyn Store) {
    kv_setup(s);
    let versions: Vec<SecretVersion> = (1..=3).map(|n| secret("kv1", "Db", n)).collect();
    for v in &versions {
        s.insert_secret_version(v).unwrap();
    }
    s.delete_secret("kv1", "db", 10, 20).unwrap().unwrap();
    assert_eq!(s.recover_secret("kv1", "DB").unwrap(), Some(versions[2].clone()));
    assert_eq!(s.secret_versions("kv1", "db", None, 25).unwrap().items, versions);
    assert_eq!(s.secret_version("kv1", "db", None).unwrap(), Some(versions[2].clone()));
    assert_eq!(s.deleted_secret("kv1", "db").unwrap(), None);
    assert!(s.deleted_secrets("kv1", None, 25).unwrap().items.is_empty());
    // Only a deleted secret can be recovered.
    assert_eq!(s.recover_secret("kv1", "db").unwrap(), None);
    assert_eq!(s.recover_secret("kv1", "never").unwrap(), None);
    // It is an ordinary secret again.
    s.insert_secret_version(&secret("kv1", "db", 4)).unwrap();
    assert_eq!(s.secret_version("kv1", "db", None).unwrap(), Some(named(&secret("kv1", "x", 4), "Db")));
}

fn purge_secret_removes_every_version(s: &dyn Store) {
    kv_setup(s);
    for n in 1..=3 {
        s.insert_secret_version(&secret("kv1", "Db", n)).unwrap();
    }
    s.insert_secret_version(&secret("kv1", "kept", 4)).unwrap();
    // Only a soft-deleted secret can be purged.
    assert!(!s.purge_secret("kv1", "db").unwrap());
    assert!(!s.purge_secret("kv1", "never").unwrap());
    assert!(s.secret_version("kv1", "db", None).unwrap().is_some());
    s.delete_secret("kv1", "db", 10, 20).unwrap().unwrap();
    assert!(s.purge_secret("kv1", "DB").unwrap());
    assert!(!s.purge_secret("kv1", "db").unwrap());
    assert_eq!(s.deleted_secret("kv1", "db").unwrap(), None);
    assert_eq!(s.recover_secret("kv1", "db").unwrap(), None);
    assert!(s.secret_versions("kv1", "db", None, 25).unwrap().items.is_empty());
    // Name and version ids are free again; the new secret takes the new casing.
    s.insert_secret_version(&secret("kv1", "DB", 1)).unwrap();
    let page = s.secret_versions("kv1", "db", None, 25).unwrap();
    assert_eq!(page.items, vec![secret("kv1", "DB", 1)]);
    assert_eq!(names(&s.secrets("kv1", None, 25).unwrap().items, |v| &v.name), ["DB", "kept"]);
}

fn deleted_secrets_paging(s: &dyn Store) {
    kv_setup(s);
    for i in (0..30u128).rev() {
        let name = format!("Gone-{i:02}");
        s.insert_secret_version(&secret("kv1", &name, i * 2)).unwrap();
        s.insert_secret_version(&secret("kv1", &name, i * 2 + 1)).unwrap();
        s.delete_secret("kv1", &name, 100 + i as i64, 200 + i as i64).unwrap().unwrap();
    }
    s.insert_secret_version(&secret("kv1", "active", 1000)).unwrap();
    let pages = all_pages(|after| s.deleted_secrets("kv1", after, 25).unwrap());
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [25, 5]);
    let listed: Vec<(DeletedSecret, SecretVersion)> = pages.into_iter().flatten().collect();
    for (i, (d, latest)) in listed.iter().enumerate() {
        let name = format!("Gone-{i:02}");
        assert_eq!(
            d,
            &DeletedSecret {
                vault: "kv1".into(),
                name: name.clone(),
                deleted: 100 + i as i64,
                scheduled_purge: 200 + i as i64
            }
        );
        assert_eq!(latest, &secret("kv1", &name, i as u128 * 2 + 1));
    }
    let exact = s.deleted_secrets("kv1", None, 30).unwrap();
    assert_eq!((exact.items.len(), exact.next), (30, None));
}

fn counts(p: wid_store::Purged) -> (usize, usize) {
    (p.secrets, p.vaults.len())
}

fn purge_expired_by_time(s: &dyn Store) {
    kv_setup(s);
    for (name, n) in [("early", 1), ("late", 2), ("active", 3)] {
        s.insert_secret_version(&secret("kv1", name, n)).unwrap();
        s.insert_secret_version(&secret("kv1", name, n + 10)).unwrap();
    }
    s.delete_secret("kv1", "early", 1_000, 5_000).unwrap().unwrap();
    s.delete_secret("kv1", "late", 1_000, 9_000).unwrap().unwrap();
    // Vaults: "old" (deleted at 0, 7 days) and "new" (deleted at 2 days, 7 days), "live" not deleted.
    for (name, n, deleted) in [("old", 2, Some(0)), ("new", 3, Some(2 * DAY)), ("live", 4, None)] {
        s.put_vault(&Vault { deleted, ..vault(SUB, "Team", name, n) }).unwrap();
        s.insert_secret_version(&secret(name, "in-vault", 100 + n)).unwrap();
    }
    s.insert_secret_version(&secret("old", "gone-before", 200)).unwrap();
    // Grants on the "old" vault and one of its secrets go with it; one on "live" stays.
    let old_vault = Vault { deleted: Some(0), ..vault(SUB, "Team", "old", 2) }.arm_id();
    let on_old = [ra(40, &old_vault, id(7), id(8)), ra(41, &format!("{old_vault}/secrets/in-vault"), id(7), id(8))];
    let on_live = ra(42, &vault(SUB, "Team", "live", 4).arm_id(), id(7), id(8));
    for r in on_old.iter().chain([&on_live]) {
        s.insert_role_assignment(r).unwrap();
    }
    s.delete_secret("old", "gone-before", 1, 2 * DAY).unwrap().unwrap();

    assert_eq!(counts(s.purge_expired(4_999).unwrap()), (0, 0));
    assert!(s.deleted_secret("kv1", "early").unwrap().is_some());
    // At the scheduled time, not only after it.
    assert_eq!(counts(s.purge_expired(5_000).unwrap()), (1, 0));
    assert_eq!(s.deleted_secret("kv1", "early").unwrap(), None);
    assert_eq!(s.recover_secret("kv1", "early").unwrap(), None);
    s.insert_secret_version(&secret("kv1", "early", 1)).unwrap(); // name and version ids free again
    assert!(s.deleted_secret("kv1", "late").unwrap().is_some());
    assert_eq!(counts(s.purge_expired(9_000).unwrap()), (1, 0));
    assert_eq!(s.deleted_secrets("kv1", None, 25).unwrap().items, Vec::new());
    // "gone-before" in "old" expires with its own schedule and is counted; the vault follows at 7 days.
    assert_eq!(counts(s.purge_expired(7 * DAY - 1).unwrap()), (1, 0));
    let purged = s.purge_expired(7 * DAY).unwrap();
    assert_eq!(counts(purged.clone()), (0, 1));
    assert_eq!(purged.vaults.first().map(|v| v.name.as_str()), Some("old"));
    assert_eq!(sorted(&purged.role_assignments, |r| r.id), sorted(&on_old, |r| r.id));
    assert_eq!(s.role_assignments(Some(id(7))).unwrap(), vec![on_live.clone()]);
    assert_eq!(s.vault("old").unwrap(), None);
    assert_eq!(s.secret_version("old", "in-vault", None).unwrap(), None);
    assert_eq!(names(&s.deleted_vaults(SUB).unwrap(), |v| &v.name), ["new"]);
    assert_eq!(counts(s.purge_expired(9 * DAY).unwrap()), (0, 1));
    assert!(s.deleted_vaults(SUB).unwrap().is_empty());
    assert_eq!(counts(s.purge_expired(i64::MAX / 2).unwrap()), (0, 0));
    // Active secrets and vaults never expire.
    assert_eq!(names(&s.vaults(SUB, None).unwrap(), |v| &v.name), ["kv1", "live"]);
    assert_eq!(names(&s.secrets("kv1", None, 25).unwrap().items, |v| &v.name), ["active", "early"]);
    assert_eq!(s.secret_versions("kv1", "active", None, 25).unwrap().items.len(), 2);
    assert!(s.secret_version("live", "in-vault", None).unwrap().is_some());
}

fn restore_secret_is_all_or_nothing(s: &dyn Store) {
    kv_setup(s);
    let backup: Vec<SecretVersion> = [3, 1, 2].map(|n| secret("kv1", "Restored", n)).to_vec();
    assert_missing_parent(s.restore_secret(
        &backup.iter().map(|v| SecretVersion { vault: "nope".into(), ..v.clone() }).collect::<Vec<_>>(),
    ));
    // One version id already taken in the vault (by another secret): nothing is restored.
    s.insert_secret_version(&secret("kv1", "other", 2)).unwrap();
    assert_conflict(s.restore_secret(&backup));
    assert_eq!(s.secret_version("kv1", "restored", None).unwrap(), None);
    assert!(s.secret_versions("kv1", "restored", None, 25).unwrap().items.is_empty());
    // Duplicates within the backup: nothing either.
    let dup = [secret("kv1", "Restored", 5), secret("kv1", "Restored", 6), secret("kv1", "Restored", 5)];
    assert_conflict(s.restore_secret(&dup));
    assert_eq!(s.secret_version("kv1", "restored", None).unwrap(), None);
    // Versions of two secrets in one restore.
    assert_conflict(s.restore_secret(&[secret("kv1", "Restored", 5), secret("kv1", "else", 6)]));
    assert_eq!(s.secret_version("kv1", "restored", None).unwrap(), None);

    s.purge_secret("kv1", "other").unwrap();
    s.delete_secret("kv1", "other", 1, 2).unwrap().unwrap();
    s.purge_secret("kv1", "other").unwrap();
    // Every version, in the given order (the last is the latest), under the first version's casing.
    let recased: Vec<SecretVersion> =
        backup.iter().enumerate().map(|(i, v)| if i == 1 { named(v, "RESTORED") } else { v.clone() }).collect();
    s.restore_secret(&recased).unwrap();
    assert_eq!(s.secret_versions("kv1", "restored", None, 25).unwrap().items, backup);
    assert_eq!(s.secret_version("kv1", "RESTORED", None).unwrap(), Some(backup[2].clone()));
    // The name exists now: active, then soft-deleted.
    let fresh: Vec<SecretVersion> = [7, 8].map(|n| secret("kv1", "restored", n)).to_vec();
    assert_conflict(s.restore_secret(&fresh));
    s.delete_secret("kv1", "restored", 10, 20).unwrap().unwrap();
    assert_conflict(s.restore_secret(&fresh));
    assert_eq!(s.recover_secret("kv1", "restored").unwrap(), Some(backup[2].clone()));
    assert_eq!(s.secret_versions("kv1", "restored", None, 25).unwrap().items, backup);
    // Nothing to restore is nothing done.
    s.restore_secret(&[]).unwrap();
}

fn delete_resource_group_soft_deletes_its_vaults(s: &dyn Store) {
    for g in ["Team", "Team2"] {
        s.put_resource_group(&rg(SUB, g)).unwrap();
    }
    let a = vault(SUB, "Team", "kv-a", 1);
    let b = vault(SUB, "TEAM", "kv-b", 2);
    let earlier = Vault { deleted: Some(123), ..vault(SUB, "Team", "kv-c", 3) };
    let kept = vault(SUB, "Team2", "kv-d", 4);
    for v in [&a, &b, &earlier, &kept] {
        s.put_vault(v).unwrap();
    }
    s.insert_secret_version(&secret("kv-a", "db", 1)).unwrap();

    let before = now();
    let removed = s.delete_resource_group(SUB, "team").unwrap().unwrap();
    let after = now();
    // The active vaults, soft-deleted now; the one deleted earlier keeps its time and is not reported.
    assert_eq!(names(&removed.vaults, |v| &v.name), ["kv-a", "kv-b"]);
    let when = removed.vaults[0].deleted.unwrap();
    assert!((before..=after).contains(&when), "{before} <= {when} <= {after}");
    assert_eq!(
        removed.vaults,
        vec![Vault { deleted: Some(when), ..a.clone() }, Vault { deleted: Some(when), ..b.clone() }]
    );
    assert_eq!(s.vaults(SUB, None).unwrap(), vec![kept]);
    assert_eq!(
        s.deleted_vaults(SUB).unwrap(),
        vec![removed.vaults[0].clone(), removed.vaults[1].clone(), earlier.clone()]
    );
    assert_eq!(s.vault("kv-c").unwrap(), Some(earlier));
    // Their names stay reserved; their secrets stay for a recovery.
    assert_conflict(s.put_vault(&vault(SUB, "Team2", "kv-a", 9)));
    assert!(s.secret_version("kv-a", "db", None).unwrap().is_some());
    // A soft-deleted vault may be updated without its group, but not recovered into a missing one.
    let touched = Vault { tags: tags(&[("x", "y")]), ..removed.vaults[1].clone() };
    assert_eq!(s.put_vault(&touched).unwrap(), Written::Updated);
    assert_missing_parent(s.put_vault(&a));
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    assert_eq!(s.put_vault(&a).unwrap(), Written::Updated);
    assert_eq!(names(&s.vaults(SUB, Some("team")).unwrap(), |v| &v.name), ["kv-a"]);
    assert_eq!(s.secret_version("kv-a", "db", None).unwrap(), Some(secret("kv-a", "db", 1)));
    // Deleting the group again soft-deletes the recovered vault again.
    let removed = s.delete_resource_group(SUB, "Team").unwrap().unwrap();
    assert_eq!(names(&removed.vaults, |v| &v.name), ["kv-a"]);
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

// ---------------------------------------------------------------------------------------------------
// Key Vault concurrency.

fn concurrent_version_inserts_all_land(s: &dyn Store) {
    kv_setup(s);
    std::thread::scope(|scope| {
        for t in 0..4u128 {
            scope.spawn(move || {
                for i in 0..10 {
                    s.insert_secret_version(&secret("kv1", "shared", t * 100 + i)).unwrap();
                    assert!(s.secret_version("kv1", "shared", None).unwrap().is_some());
                }
            });
        }
    });
    let pages = all_pages(|after| s.secret_versions("kv1", "shared", after, 7).unwrap());
    let mut listed: Vec<String> = pages.into_iter().flatten().map(|v| v.version).collect();
    assert_eq!(listed.len(), 40);
    listed.sort();
    listed.dedup();
    assert_eq!(listed.len(), 40);
}

fn concurrent_restore_has_one_winner(s: &dyn Store) {
    kv_setup(s);
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6u128)
            .map(|t| {
                let backup: Vec<SecretVersion> = (0..3).map(|i| secret("kv1", "raced", t * 10 + i)).collect();
                scope.spawn(move || s.restore_secret(&backup))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect::<Vec<_>>()
    });
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results.iter().all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict(_)))), "{results:?}");
    let page = s.secret_versions("kv1", "raced", None, 25).unwrap();
    assert_eq!(page.items.len(), 3);
    // All three from the same backup.
    let first = &page.items[0].version;
    assert!(page.items.iter().all(|v| v.version[..31] == first[..31]));
}

// ---------------------------------------------------------------------------------------------------
// Replicas: the change log, named locks, export and import.

fn app_by_client_id(s: &dyn Store) {
    let a = app(1, "admin");
    s.put_app(&a).unwrap();
    assert_eq!(s.app(a.client_id).unwrap(), Some(a));
    assert_eq!(s.app(id(0xdead)).unwrap(), None);
}

/// Every change-log entry after `seq`, in order.
fn changes_after(s: &dyn Store, seq: i64) -> Vec<Changed> {
    let batch = s.changes_since(seq, 1000).unwrap();
    assert!(!batch.resync);
    batch.changes.into_iter().map(|(_, c)| c).collect()
}

fn change_log_follows_index_writes(s: &dyn Store) {
    assert_eq!(s.snapshot().unwrap().change_head, 0);
    assert!(changes_after(s, 0).is_empty());
    let v = kv_setup(s);
    let i = identity(SUB, "Team", "Id", 1);
    let c = cluster(SUB, "Team", "Aks", 1);
    let a = app(1, "admin");
    let r = ra(1, &i.arm_id(), i.principal_id, id(0xbeef));
    let k = signing_key("k1", 1);
    s.put_identity(&i).unwrap();
    s.put_credential(&cred(&i.key(), fic("F", "s"))).unwrap();
    s.put_cluster(&c).unwrap();
    s.put_app(&a).unwrap();
    s.insert_role_assignment(&r).unwrap();
    s.put_signing_key(&k).unwrap();
    // Records no index holds write no entry.
    s.meta_put("m", b"v").unwrap();
    s.put_vault(&Vault { tags: tags(&[]), ..v }).unwrap();
    s.insert_secret_version(&secret("kv1", "db", 1)).unwrap();
    s.delete_secret("kv1", "db", 1, 2).unwrap();
    // Deletes of what is not there write none either.
    assert!(s.delete_role_assignment(id(0xdead)).unwrap().is_none());
    s.delete_signing_key("nope").unwrap();
    assert!(s.delete_credential(&i.key(), "nope").unwrap().is_none());
    let written = vec![
        Changed::Identity(i.key()),
        Changed::Identity(i.key()),
        Changed::Cluster(c.key()),
        Changed::App(a.client_id),
        Changed::RoleAssignment { id: r.id, principal: r.principal_id },
        Changed::SigningKeys("sts".into()),
    ];
    assert_eq!(changes_after(s, 0), written);
    let head = s.snapshot().unwrap().change_head;
    assert!(head > 0);
    assert!(changes_after(s, head).is_empty());

    s.delete_credential(&i.key(), "f").unwrap();
    s.delete_signing_key("k1").unwrap();
    s.delete_role_assignment(r.id).unwrap();
    s.delete_cluster(&c.key()).unwrap();
    s.delete_identity(&i.key()).unwrap();
    let i2 = identity(SUB, "Team", "Id2", 2);
    let r2 = ra(2, &rg_scope(SUB, "Team"), i2.principal_id, id(0xbeef));
    s.put_identity(&i2).unwrap();
    s.put_cluster(&c).unwrap();
    s.insert_role_assignment(&r2).unwrap();
    s.delete_resource_group(SUB, "team").unwrap().unwrap();
    assert_eq!(
        changes_after(s, head),
        vec![
            Changed::Identity(i.key()),
            Changed::SigningKeys("sts".into()),
            Changed::RoleAssignment { id: r.id, principal: r.principal_id },
            Changed::Cluster(c.key()),
            Changed::Identity(i.key()),
            Changed::Identity(i2.key()),
            Changed::Cluster(c.key()),
            Changed::RoleAssignment { id: r2.id, principal: r2.principal_id },
            // The group delete: what it removed.
            Changed::Identity(i2.key()),
            Changed::Cluster(c.key()),
            Changed::RoleAssignment { id: r2.id, principal: r2.principal_id },
        ]
    );
    // Sequence numbers only grow.
    let seqs: Vec<i64> = s.changes_since(0, 1000).unwrap().changes.iter().map(|(q, _)| *q).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

fn change_log_pages_and_prunes(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    for n in 0..5 {
        s.put_app(&app(n, "a")).unwrap();
    }
    let first = s.changes_since(0, 2).unwrap();
    assert_eq!(first.changes.len(), 2);
    let rest = s.changes_since(first.changes[1].0, 0).unwrap();
    assert_eq!(rest.changes.len(), 1, "a limit of 0 counts as 1");
    assert_eq!(rest.changes[0].1, Changed::App(app(2, "a").client_id));
    let head = s.snapshot().unwrap().change_head;
    // Nothing is older than a past cutoff.
    assert_eq!(s.prune_changes(0).unwrap(), 0);
    assert!(!s.changes_since(0, 10).unwrap().resync);
    // A future cutoff drops all but the newest entry; followers behind it must resync.
    assert_eq!(s.prune_changes(now() + 3600).unwrap(), 4);
    assert!(s.changes_since(0, 10).unwrap().resync);
    assert!(s.changes_since(head - 2, 10).unwrap().resync);
    let at_head = s.changes_since(head - 1, 10).unwrap();
    assert!(!at_head.resync);
    assert_eq!(at_head.changes, vec![(head, Changed::App(app(4, "a").client_id))]);
    assert!(!s.changes_since(head, 10).unwrap().resync);
    // New entries keep counting up from there.
    s.put_app(&app(9, "a")).unwrap();
    assert_eq!(changes_after(s, head), vec![Changed::App(app(9, "a").client_id)]);
    assert!(s.snapshot().unwrap().change_head > head);
}

fn concurrent_change_log_has_no_gaps(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let head = s.snapshot().unwrap().change_head;
    // A follower polling while writers commit never skips an entry: what it saw, in order, is
    // exactly the log once the writers are done.
    let seen = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..4u128)
            .map(|t| {
                scope.spawn(move || {
                    for n in 0..25 {
                        s.put_app(&app(t * 100 + n, "w")).unwrap();
                    }
                })
            })
            .collect();
        let follower = scope.spawn(move || {
            let (mut last, mut seen) = (head, Vec::new());
            for _ in 0..100_000 {
                for (seq, c) in s.changes_since(last, 7).unwrap().changes {
                    last = seq;
                    seen.push((seq, c));
                }
                if seen.len() == 100 {
                    break;
                }
            }
            seen
        });
        for w in writers {
            w.join().unwrap();
        }
        follower.join().unwrap()
    });
    assert_eq!(seen, s.changes_since(head, 1000).unwrap().changes);
    assert_eq!(seen.len(), 100);
}

fn locks_exclude_until_dropped(s: &dyn Store) {
    use std::time::Duration;
    let a = s.lock("identity/a", Duration::ZERO).unwrap();
    assert!(matches!(s.lock("identity/a", Duration::ZERO), Err(StoreError::Busy(_))));
    assert!(matches!(s.lock("identity/a", Duration::from_millis(50)), Err(StoreError::Busy(_))));
    let b = s.lock("identity/b", Duration::ZERO).unwrap();
    drop(a);
    let a = s.lock("identity/a", Duration::ZERO).unwrap();
    // A waiter gets the lock once the holder lets go.
    std::thread::scope(|scope| {
        let waiter = scope.spawn(|| s.lock("identity/a", Duration::from_secs(10)).map(drop));
        std::thread::sleep(Duration::from_millis(100));
        drop(a);
        waiter.join().unwrap().unwrap();
    });
    drop(b);
    s.lock("identity/b", Duration::ZERO).unwrap();
}

fn import_refuses_a_store_in_use(s: &dyn Store) {
    s.put_resource_group(&rg(SUB, "Team")).unwrap();
    let mut records = vec![Ok(Record::App(app(1, "a")))].into_iter();
    assert_conflict(s.import(&mut records).map(drop));
    assert_eq!(s.app(app(1, "a").client_id).unwrap(), None);
}

/// Fills a store with one of everything (active and soft-deleted), for export tests.
pub fn populate(s: &dyn Store) {
    s.meta_put("tenant_id", b"t").unwrap();
    s.put_signing_key(&signing_key("k1", 1)).unwrap();
    s.put_signing_key(&SigningKeyRecord { retired: Some(2), expires: Some(3), ..signing_key("k0", 0) }).unwrap();
    kv_setup(s);
    s.put_resource_group(&rg(OTHER_SUB, "Other")).unwrap();
    let i = identity(SUB, "Team", "Id", 1);
    s.put_identity(&i).unwrap();
    s.put_credential(&cred(&i.key(), fic("F", "s"))).unwrap();
    let mut expression = fic("expr", "unused");
    expression.subject = None;
    expression.claims_matching_expression =
        Some(ClaimsMatchingExpression { value: "claims['sub'] startswith 'x'".into(), language_version: 1 });
    s.put_credential(&cred(&i.key(), expression)).unwrap();
    s.put_cluster(&cluster(SUB, "Team", "Aks", 1)).unwrap();
    s.put_cluster(&Cluster {
        issuer: ClusterIssuer::External { issuer_url: "https://k/".into(), jwks: Some("{\"keys\":[]}".into()) },
        ..cluster(SUB, "Team", "Ext", 2)
    })
    .unwrap();
    s.put_app(&app(1, "admin")).unwrap();
    s.insert_role_assignment(&ra(1, "/", app(1, "admin").principal_id, id(0xbeef))).unwrap();
    s.insert_role_assignment(&ra(2, &i.arm_id(), i.principal_id, id(0xbeef))).unwrap();
    // Versions interleaved across secrets: the export keeps insertion order.
    for (name, n) in [("b", 1), ("A", 2), ("b", 3), ("gone", 4), ("a", 5)] {
        s.insert_secret_version(&secret("kv1", name, n)).unwrap();
    }
    s.delete_secret("kv1", "gone", 10, 20).unwrap();
    let dead = Vault { deleted: Some(5), ..vault(OTHER_SUB, "Other", "kv-dead", 2) };
    s.put_vault(&vault(OTHER_SUB, "Other", "kv-dead", 2)).unwrap();
    s.insert_secret_version(&secret("kv-dead", "x", 6)).unwrap();
    s.put_vault(&dead).unwrap();
    s.delete_resource_group(OTHER_SUB, "Other").unwrap();
}

/// Everything a store exports.
pub fn export_all(s: &dyn Store) -> Vec<Record> {
    let mut out = Vec::new();
    s.export(&mut |r| {
        out.push(r);
        Ok(())
    })
    .unwrap();
    out
}

/// Export from `from` (populated here), import into the empty `to`: the same records come back out,
/// and every read agrees.
pub fn export_import_round_trip(from: &dyn Store, to: &dyn Store) {
    populate(from);
    let records = export_all(from);
    let kinds: std::collections::BTreeSet<&str> = records.iter().map(Record::kind).collect();
    assert_eq!(kinds.len(), 11, "every kind of record is exported: {kinds:?}");
    // Through the JSON a file would hold.
    let lines: Vec<String> = records.iter().map(|r| serde_json::to_string(r).unwrap()).collect();
    let mut parsed =
        lines.iter().map(|l| serde_json::from_str::<Record>(l).map_err(|e| StoreError::Corrupt(e.to_string())));
    assert_eq!(to.import(&mut parsed).unwrap(), records.len() as u64);
    assert_eq!(export_all(to), records);
    assert_eq!(to.secret_version("kv1", "B", None).unwrap(), Some(named(&secret("kv1", "b", 3), "b")));
    assert_eq!(to.secret_version("kv1", "a", None).unwrap(), Some(named(&secret("kv1", "A", 5), "A")));
    assert!(to.deleted_secret("kv1", "gone").unwrap().is_some());
    assert_eq!(to.vault("kv-dead").unwrap().unwrap().deleted, Some(5));
    let (a, b) = (from.snapshot().unwrap(), to.snapshot().unwrap());
    assert_eq!(
        (a.identities, a.credentials, a.clusters, a.role_assignments),
        (b.identities, b.credentials, b.clusters, b.role_assignments)
    );
    // A second import is refused: the store is in use now.
    let mut again = records.into_iter().map(Ok);
    assert_conflict(to.import(&mut again).map(drop));
}
