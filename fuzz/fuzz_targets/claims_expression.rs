//! Claims-matching expressions as the management API receives them, then evaluated against claims
//! made of the same bytes: parsing must refuse or succeed without panicking, a parsed expression
//! must print back clauses it can explain, and matching must agree with its own explanation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wid_core::expression::Expression;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The first line is the expression, the rest the token's claims (JSON).
    let (src, claims) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(e) = Expression::parse(src, 1) else { return };
    let claims: serde_json::Map<String, serde_json::Value> = serde_json::from_str(claims).unwrap_or_default();
    let matches = e.matches(&claims);
    assert_eq!(matches, e.explain(&claims).is_none(), "matches and explain disagree on {src:?}");
    let _ = e.key();
});
