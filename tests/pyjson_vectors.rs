//! `core::pyjson` against 400 outputs of CPython's json module
//! (tests/vectors/pyjson/gen_pyjson_vectors.py): the byte-exact Python JSON
//! that ClawShield v1 `action_hash` and the legacy receipt hash depend on.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

use openexec::core::pyjson::{dumps_sorted, Separators};
use serde_json::Value;

#[test]
fn matches_cpython_json_dumps() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/pyjson/cases.json"
    );
    let cases: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(cases.len(), 400);
    let mut mismatches = Vec::new();
    for case in &cases {
        let value: Value = serde_json::from_str(case["input"].as_str().unwrap()).unwrap();
        for (sep, key) in [
            (Separators::Compact, "compact"),
            (Separators::Default, "default"),
        ] {
            let ours = dumps_sorted(&value, sep);
            if ours != case[key].as_str().unwrap() {
                mismatches.push(format!("{key}: ours {ours}\n  python {}", case[key]));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first:\n{}",
        mismatches.len(),
        mismatches[0]
    );
}
