//! An approval binds exactly what the handler runs with: the payload that
//! is hashed, committed, approved and handed to the handler is one value.
//! A number that no IEEE double holds is refused before recording (422
//! `inexact_number`); every other payload reaches the handler as the value
//! read back from its RFC 8785 bytes, so two payloads with one request
//! hash (v2) or one v1 `action_hash` are one handler input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use chrono::{Duration, Utc};
use ed25519_dalek::SigningKey;
use openexec::core::approval::{mint_v1, mint_v2, v1_action_hash, ApprovalPolicy, ApproverKey};
use openexec::core::canonical::{canonical_value, request_hash, to_canonical_bytes};
use openexec::core::entry::Entry;
use openexec::core::receipt::{opens_commitment, Content, Receipt};
use openexec::core::request::{parse_execute, Limits};
use openexec::exec::{Boundary, Mode, Response};
use proptest::prelude::*;
use serde_json::{json, Value};

const TENANT: &str = "acme";

fn boundary(dir: &std::path::Path, mode: Mode) -> Boundary {
    let approvals = ApprovalPolicy {
        keys: vec![ApproverKey::new(approver().verifying_key())],
        tenant: Some(TENANT.into()),
        max_lifetime: Duration::hours(1),
        skew: Duration::seconds(30),
    };
    common::boundary(dir, mode, approvals)
}

fn approver() -> SigningKey {
    SigningKey::from_bytes(&[41; 32])
}

/// A v2 approval of `action` with `payload` (a JSON text) on `nonce`.
fn v2(id: &str, action: &str, payload: &str, nonce: &str) -> Value {
    let payload: Value = serde_json::from_str(payload).unwrap();
    let rh = request_hash(action, &payload, nonce, TENANT).unwrap();
    let a = mint_v2(
        &approver(),
        id,
        TENANT,
        &rh,
        Utc::now(),
        Duration::seconds(120),
    )
    .unwrap();
    serde_json::to_value(a).unwrap()
}

/// A v1 approval of `action` with `payload` (a JSON text, hashed as Python
/// reads it).
fn v1(id: &str, action: &str, payload: &str) -> Value {
    let payload: Value = serde_json::from_str(payload).unwrap();
    let a = mint_v1(
        &approver(),
        id,
        TENANT,
        action,
        &payload,
        Utc::now(),
        Duration::seconds(120),
    );
    serde_json::to_value(a).unwrap()
}

/// A body with the payload written as given (not re-serialized).
fn body(action: &str, payload: &str, nonce: &str, artifact: Option<&Value>) -> Vec<u8> {
    let artifact = artifact.map_or(String::new(), |a| format!(r#","approval_artifact":{a}"#));
    format!(r#"{{"action":"{action}","payload":{payload},"nonce":"{nonce}"{artifact}}}"#)
        .into_bytes()
}

/// The entry of an answer's receipt.
fn entry(r: &Response) -> Entry {
    let receipt: Receipt = serde_json::from_value(r.body["receipt"].clone()).unwrap();
    Entry::from_canonical_bytes(receipt.entry.as_bytes()).unwrap()
}

/// The stored content of an answer's entry opens its payload commitment
/// with exactly the canonical bytes of `payload`.
fn assert_commits_to(b: &Boundary, r: &Response, payload: &Value) {
    let e = entry(r);
    let content = b
        .ledger()
        .store()
        .unwrap()
        .content(e.index)
        .unwrap()
        .unwrap();
    let content: Content = serde_json::from_slice(&content).unwrap();
    assert_eq!(&content.payload, payload);
    let bytes = to_canonical_bytes(payload).unwrap();
    assert!(opens_commitment(
        &e.payload_commitment,
        &content.salts.payload,
        &bytes
    ));
}

/// The review's case: a v2 approval minted for `a = 2^53` cannot run
/// `add` with `a = 2^53 + 1` (the same request hash under RFC 8785): that
/// body is refused before recording, the approved one runs with the
/// approved value, and resending it is a replay of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_approval_runs_only_the_value_it_approved() {
    let dir = tempfile::tempdir().unwrap();
    let b = boundary(dir.path(), Mode::Clawshield);
    let approved = r#"{"a":9007199254740992,"b":0}"#;
    let art = v2("ap-1", "add", approved, "n-1");

    let sneaky = body("add", r#"{"a":9007199254740993,"b":0}"#, "n-1", Some(&art));
    let r = b.execute(&sneaky, None, None).await;
    assert_eq!(
        (r.status, r.body["code"].as_str()),
        (422, Some("inexact_number")),
        "{}",
        r.body
    );
    assert!(r.body["detail"]
        .as_str()
        .unwrap()
        .contains("9007199254740993"));
    assert!(r.body.get("receipt").is_none(), "refused before recording");
    assert_eq!(b.ledger().head().size, 0);

    let r = b
        .execute(&body("add", approved, "n-1", Some(&art)), None, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["result"], json!({"sum": 9_007_199_254_740_992_u64}));
    assert_commits_to(&b, &r, &json!({"a": 9_007_199_254_740_992_u64, "b": 0}));
    let again = b
        .execute(&body("add", approved, "n-1", Some(&art)), None, None)
        .await;
    assert_eq!(again.body["outcome"], json!("replayed"), "{}", again.body);
    assert_eq!(again.body["result"], r.body["result"]);
}

/// A result is answered, stored and committed as one value: `add` of two
/// exact doubles whose sum (2^53 + 1) no double holds answers the sum's
/// canonical value, and the result commitment opens to exactly that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_answered_is_the_result_committed() {
    let dir = tempfile::tempdir().unwrap();
    let b = boundary(dir.path(), Mode::Demo);
    let r = b
        .execute(
            &body(
                "add",
                r#"{"a":4503599627370497,"b":4503599627370496}"#,
                "n-sum",
                None,
            ),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answered = r.body["result"].clone();
    assert_eq!(
        to_canonical_bytes(&answered).unwrap(),
        serde_json::to_vec(&answered).unwrap(),
        "the answer is in canonical form: {answered}"
    );
    let e = entry(&r);
    let content = b
        .ledger()
        .store()
        .unwrap()
        .content(e.index)
        .unwrap()
        .unwrap();
    let content: Content = serde_json::from_slice(&content).unwrap();
    assert_eq!(content.result.as_ref(), Some(&answered));
    assert!(opens_commitment(
        &e.result_commitment.unwrap(),
        content.salts.result.as_ref().unwrap(),
        &to_canonical_bytes(&answered).unwrap()
    ));
}

/// `{"a":1}`, `{"a":1.0}` and `{"a":1e0}` are one request under RFC 8785:
/// each runs as the integer 1, so one v2 approval of any of them approves
/// exactly the value that runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spellings_of_one_number_are_one_handler_input() {
    let dir = tempfile::tempdir().unwrap();
    let b = boundary(dir.path(), Mode::Clawshield);
    let mut hashes = Vec::new();
    for (i, (approved, sent)) in [
        (r#"{"a":1}"#, r#"{"a":1.0}"#),
        (r#"{"a":1.0}"#, r#"{"a":1e0}"#),
        (r#"{"a":1e0}"#, r#"{"a":1}"#),
    ]
    .into_iter()
    .enumerate()
    {
        let nonce = format!("n-{i}");
        let art = v2(&format!("ap-{i}"), "add", approved, &nonce);
        let r = b
            .execute(&body("add", sent, &nonce, Some(&art)), None, None)
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        // The handler saw the integer 1 (an f64 would sum to 1.0).
        assert!(r.body["result"]["sum"].is_u64(), "{}", r.body);
        assert_commits_to(&b, &r, &json!({"a": 1}));
        hashes.push(entry(&r).request_hash);
    }
    // Same payload value, three nonces: three hashes; each equals the hash
    // of the canonical payload.
    for (i, h) in hashes.iter().enumerate() {
        let want = request_hash("add", &json!({"a": 1}), &format!("n-{i}"), TENANT).unwrap();
        assert_eq!(*h, want);
    }
}

/// v1 hashes the payload as Python reads it (`1.0` stays a float), and the
/// handler runs on the canonical value of that payload: one v1 hash, one
/// handler input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_approval_runs_the_canonical_value_of_what_it_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let b = boundary(dir.path(), Mode::Clawshield);
    let art = v1("v1-1", "add", r#"{"a":2.0,"b":0.5}"#);
    // Another spelling is another Python value, so another v1 hash.
    let r = b
        .execute(
            &body("add", r#"{"a":2,"b":0.5}"#, "v1-n0", Some(&art)),
            None,
            None,
        )
        .await;
    assert_eq!(
        r.body["code"],
        json!("approval_hash_mismatch"),
        "{}",
        r.body
    );
    let r = b
        .execute(
            &body("add", r#"{"a":2.0,"b":0.5}"#, "v1-n1", Some(&art)),
            None,
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["result"], json!({"sum": 2.5}));
    assert_commits_to(&b, &r, &json!({"a": 2, "b": 0.5}));
    // The v1 hash of an inexact number can be minted, but the body is
    // refused before its approval is looked at.
    let art = v1("v1-2", "add", r#"{"a":9007199254740993}"#);
    let r = b
        .execute(
            &body("add", r#"{"a":9007199254740993}"#, "v1-n2", Some(&art)),
            None,
            None,
        )
        .await;
    assert_eq!(r.body["code"], json!("inexact_number"), "{}", r.body);
}

/// What the `echo` handler received, from its answer.
fn echoed(r: &Response) -> &Value {
    &r.body["result"]["echo"]
}

// ---------------------------------------------------------------------------
// Property tests over payload texts with numbers written many ways.

/// A decimal `±digits × 10^exp` (digits without leading zeros).
#[derive(Debug, Clone)]
struct Dec {
    negative: bool,
    digits: String,
    exp: i32,
}

/// Numbers: exact doubles, integers around 2^53, 2^63 and 2^64, random
/// digit strings (mostly not doubles), zeros and underflows.
fn dec() -> impl Strategy<Value = Dec> {
    let from_f64 = any::<f64>()
        .prop_filter("finite", |f| f.is_finite())
        .prop_map(|f| {
            let sci = format!("{f:e}");
            let (m, e) = sci.split_once('e').unwrap();
            let negative = m.starts_with('-');
            let digits: String = m.chars().filter(char::is_ascii_digit).collect();
            let exp = e.parse::<i32>().unwrap() - (i32::try_from(digits.len()).unwrap() - 1);
            Dec {
                negative,
                digits,
                exp,
            }
        });
    let near = |base: u128| {
        (-3i64..=3, any::<bool>()).prop_map(move |(k, negative)| Dec {
            negative,
            digits: (base as i128 + i128::from(k)).to_string(),
            exp: 0,
        })
    };
    let random =
        ("[1-9][0-9]{0,24}", -30i32..30, any::<bool>()).prop_map(|(digits, exp, negative)| Dec {
            negative,
            digits,
            exp,
        });
    let small = (0i64..1000, -3i32..3, any::<bool>()).prop_map(|(n, exp, negative)| Dec {
        negative,
        digits: n.to_string(),
        exp,
    });
    prop_oneof![
        from_f64,
        near(1 << 53),
        near(1 << 63),
        near(1 << 64),
        random,
        small,
        Just(Dec {
            negative: true,
            digits: "0".into(),
            exp: 0
        }),
        Just(Dec {
            negative: false,
            digits: "1".into(),
            exp: -400
        }),
    ]
}

/// Writes `d` in one of several JSON spellings of the same value.
fn spell(d: &Dec, style: u8) -> String {
    let sign = if d.negative { "-" } else { "" };
    let digits = &d.digits;
    let len = i32::try_from(digits.len()).unwrap();
    match style % 5 {
        // Positional (only for modest exponents), e.g. 12300 or 1.23.
        0 if (-40..40).contains(&d.exp) => {
            if d.exp >= 0 {
                format!(
                    "{sign}{digits}{}",
                    "0".repeat(usize::try_from(d.exp).unwrap())
                )
            } else {
                let point = len + d.exp;
                if point > 0 {
                    let (i, f) = digits.split_at(usize::try_from(point).unwrap());
                    format!("{sign}{i}.{f}")
                } else {
                    format!(
                        "{sign}0.{}{digits}",
                        "0".repeat(usize::try_from(-point).unwrap())
                    )
                }
            }
        }
        // Integer mantissa with an exponent, e.g. 123e2.
        1 => format!("{sign}{digits}e{}", d.exp),
        // Scientific with a trailing zero and a plus sign, e.g. 1.230E+4.
        2 => {
            let (first, rest) = digits.split_at(1);
            let e = d.exp + len - 1;
            let e = if e < 0 {
                e.to_string()
            } else {
                format!("+{e}")
            };
            format!("{sign}{first}.{rest}0E{e}")
        }
        // Leading zeros after the point, e.g. 0.00123e7.
        3 => format!("{sign}0.00{digits}e{}", d.exp + len + 2),
        _ => format!("{sign}{digits}.000e{}", d.exp),
    }
}

/// A payload skeleton: numbers are [`Dec`]s, rendered later.
#[derive(Debug, Clone)]
enum Tree {
    Num(Dec),
    Str(String),
    Arr(Vec<Tree>),
    Obj(Vec<(String, Tree)>),
}

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        3 => dec().prop_map(Tree::Num),
        1 => any::<String>().prop_map(Tree::Str),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Tree::Arr),
            proptest::collection::btree_map("[a-z\u{e9}\u{1f600}]{0,3}", inner, 0..4)
                .prop_map(|m| Tree::Obj(m.into_iter().collect())),
        ]
    })
}

/// The payload text of `tree` (always an object), spelling each number
/// with the style drawn from `styles`.
fn render(tree: &Tree, styles: &mut impl Iterator<Item = u8>) -> String {
    fn go(t: &Tree, styles: &mut dyn Iterator<Item = u8>, out: &mut String) {
        match t {
            Tree::Num(d) => out.push_str(&spell(d, styles.next().unwrap_or(0))),
            Tree::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            Tree::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go(item, styles, out);
                }
                out.push(']');
            }
            Tree::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).unwrap());
                    out.push(':');
                    go(v, styles, out);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::from(r#"{"p":"#);
    go(tree, styles, &mut out);
    out.push('}');
    out
}

/// Whether a double holds `d` exactly enough to write it back, decided
/// from Rust's own shortest float formatting (not the code under test).
fn is_ijson(d: &Dec) -> bool {
    let plain = spell(d, 1);
    let Ok(f) = plain.parse::<f64>() else {
        return false;
    };
    if !f.is_finite() {
        return false;
    }
    let strip = |digits: &str, exp: i64| -> (String, i64) {
        let kept = digits.trim_end_matches('0');
        let exp = exp + i64::try_from(digits.len() - kept.len()).unwrap();
        (kept.to_owned(), exp)
    };
    let (want, want_exp) = strip(&d.digits, i64::from(d.exp));
    if want.is_empty() || f == 0.0 {
        return want.is_empty() && f == 0.0;
    }
    let sci = format!("{:e}", f.abs());
    let (m, e) = sci.split_once('e').unwrap();
    let digits: String = m.chars().filter(char::is_ascii_digit).collect();
    let exp = e.parse::<i64>().unwrap() - i64::try_from(digits.len() - 1).unwrap();
    strip(&digits, exp) == (want, want_exp) && f.is_sign_negative() == d.negative
}

fn numbers(t: &Tree, out: &mut Vec<Dec>) {
    match t {
        Tree::Num(d) => out.push(d.clone()),
        Tree::Str(_) => {}
        Tree::Arr(items) => items.iter().for_each(|i| numbers(i, out)),
        Tree::Obj(members) => members.iter().for_each(|(_, v)| numbers(v, out)),
    }
}

/// Parses the body of an `echo` of `payload`: the payload handed to the
/// handler, its request hash and its v1 action hash, or the refusal code.
fn parsed(payload: &str) -> Result<(Value, openexec::core::hash::Hash, String), &'static str> {
    let r =
        parse_execute(&body("echo", payload, "n", None), &Limits::default()).map_err(|e| e.code)?;
    let h = request_hash("echo", &r.payload, "n", TENANT).unwrap();
    Ok((
        r.payload.clone(),
        h,
        v1_action_hash("echo", &r.payload_as_sent),
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// For payloads with numbers spelled two ways (the same values) and a
    /// third with one number moved to a neighbour: a payload is accepted
    /// iff every number is I-JSON; what the handler receives
    /// re-canonicalizes to the bytes that were hashed and is its own
    /// canonical value; one value spelled two ways is one handler input
    /// with one hash; and equal request hashes (or equal v1 hashes) mean
    /// equal handler inputs.
    #[test]
    fn the_value_hashed_is_the_value_the_handler_receives(
        t in tree(),
        styles in proptest::collection::vec(any::<u8>(), 64),
        other_styles in proptest::collection::vec(any::<u8>(), 64),
        bump in any::<prop::sample::Index>(),
    ) {
        let a = render(&t, &mut styles.iter().copied());
        let b = render(&t, &mut other_styles.iter().copied());
        let mut nums = Vec::new();
        numbers(&t, &mut nums);
        let ijson = nums.iter().all(is_ijson);
        let (pa, pb) = (parsed(&a), parsed(&b));
        prop_assert_eq!(pa.is_ok(), ijson, "{} -> {:?}", a, pa);
        prop_assert_eq!(pa.is_ok(), pb.is_ok(), "{} / {}", a, b);
        if let Err(code) = pa {
            prop_assert_eq!(code, "inexact_number");
        }
        if let (Ok((va, ha, v1a)), Ok((vb, hb, _))) = (&pa, &pb) {
            let direct: Value = serde_json::from_str(&a).unwrap();
            prop_assert_eq!(&to_canonical_bytes(va).unwrap(), &to_canonical_bytes(&direct).unwrap());
            prop_assert_eq!(&canonical_value(va).unwrap(), va);
            prop_assert_eq!(va, vb);
            prop_assert_eq!(ha, hb);
            // A neighbour: one number with its last digit changed.
            let mut moved = t.clone();
            bump_one(&mut moved, bump.index(nums.len().max(1)));
            if let Ok((vc, hc, v1c)) = parsed(&render(&moved, &mut styles.iter().copied())) {
                prop_assert_eq!(ha == &hc, va == &vc);
                if *v1a == v1c {
                    prop_assert_eq!(va, &vc);
                }
            }
        }
    }
}

/// Changes the last digit of the `n`-th number of `t`.
fn bump_one(t: &mut Tree, n: usize) {
    fn go(t: &mut Tree, n: &mut usize) -> bool {
        match t {
            Tree::Num(d) => {
                if *n == 0 {
                    let last = d.digits.pop().unwrap_or('0');
                    let next = if last == '9' {
                        '8'
                    } else {
                        char::from(last as u8 + 1)
                    };
                    d.digits.push(next);
                    return true;
                }
                *n -= 1;
                false
            }
            Tree::Str(_) => false,
            Tree::Arr(items) => items.iter_mut().any(|i| go(i, n)),
            Tree::Obj(members) => members.iter_mut().any(|(_, v)| go(v, n)),
        }
    }
    let mut n = n;
    go(t, &mut n);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// End to end through the boundary and the ledger, for one payload
    /// spelled two ways and a neighbour: what `echo` received (its result)
    /// is the value of the recorded request hash and payload commitment;
    /// both spellings reach it as one value; and a neighbour with the same
    /// request hash reaches it as that value too.
    #[test]
    fn what_echo_received_is_what_the_entry_hashed_and_committed(
        t in tree(),
        styles in proptest::collection::vec(any::<u8>(), 64),
        other_styles in proptest::collection::vec(any::<u8>(), 64),
        bump in any::<prop::sample::Index>(),
    ) {
        let mut nums = Vec::new();
        numbers(&t, &mut nums);
        let mut moved = t.clone();
        bump_one(&mut moved, bump.index(nums.len().max(1)));
        let payloads = [
            render(&t, &mut styles.iter().copied()),
            render(&t, &mut other_styles.iter().copied()),
            render(&moved, &mut styles.iter().copied()),
        ];
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let b = boundary(dir.path(), Mode::Demo);
        let mut received = Vec::new();
        for (i, payload) in payloads.iter().enumerate() {
            let nonce = format!("n-{i}");
            let r = rt.block_on(b.execute(&body("echo", payload, &nonce, None), None, None));
            if r.status == 422 {
                prop_assert_eq!(r.body["code"].as_str(), Some("inexact_number"));
                received.push(None);
                continue;
            }
            prop_assert_eq!(r.status, 200, "{}", r.body);
            let value = echoed(&r).clone();
            prop_assert_eq!(entry(&r).request_hash, request_hash("echo", &value, &nonce, TENANT).unwrap());
            assert_commits_to(&b, &r, &value);
            received.push(Some(value));
        }
        prop_assert_eq!(received[0].is_some(), received[1].is_some());
        if let (Some(a), Some(b)) = (&received[0], &received[1]) {
            prop_assert_eq!(a, b, "{} / {}", &payloads[0], &payloads[1]);
        }
        if let (Some(a), Some(c)) = (&received[0], &received[2]) {
            let same_hash = request_hash("echo", a, "n", TENANT).unwrap()
                == request_hash("echo", c, "n", TENANT).unwrap();
            prop_assert_eq!(same_hash, a == c, "{} / {}", &payloads[0], &payloads[2]);
        }
        b.ledger().shutdown();
    }
}
