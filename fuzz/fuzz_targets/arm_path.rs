//! Management request paths, scopes, OData `$filter`s and claims-matching expressions: routing must never panic and
//! never yield a segment that could change the path's meaning.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wid_arm::route::{self, ArmRoute};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ArmRoute::Group { rg, .. } | ArmRoute::Identity { rg, .. } | ArmRoute::Cluster { rg, .. }) = route::parse(text) {
        assert!(!rg.contains('/') && rg != ".." && rg != ".");
    }
    if let Ok(scope) = wid_core::Scope::parse(text) {
        assert!(scope.ancestor_keys().count() >= 1);
    }
    let _ = wid_core::fic::Expression::parse(text, 1);
    for term in wid_arm::filter::split_and(text) {
        let _ = wid_arm::filter::eq_term(term);
        let _ = wid_arm::filter::call_term(term);
    }
});
