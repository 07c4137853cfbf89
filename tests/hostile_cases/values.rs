//! Rows about JSON values: duplicate keys at any depth (serde_json alone
//! would keep the last one), and numbers: out of range, beyond u64 and
//! i64, extreme floats, `add` overflowing to infinity, NaN and Infinity
//! literals, leading zeros, hex, a number as the nonce or the payload.

use super::{
    case, ok, req, Case,
    Fate::{Recorded, Refused},
    ECHO,
};

/// This part of the table, in order.
pub fn cases() -> Vec<Case> {
    let echo = ECHO;
    vec![
        // --- duplicate keys (serde_json alone would keep the last one)
        case(
            "\"action\" twice at the top level",
            r#"{"action":"sha256","nonce":"t-dup1","action":"echo"}"#,
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "\"nonce\" twice at the top level",
            r#"{"action":"echo","nonce":"t-dup2","nonce":"t-dup3"}"#,
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "\"payload\" twice at the top level",
            r#"{"action":"echo","nonce":"t-dup4","payload":{},"payload":{"a":1}}"#,
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key inside the payload",
            req(echo, "\"t-dup5\"", r#"{"a":1,"b":2,"a":3}"#),
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key deep inside the payload",
            req(echo, "\"t-dup6\"", r#"{"x":[{"y":{"a":1,"a":1}}]}"#),
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key spelled differently (\"a\" and \"\\u0061\")",
            req(echo, "\"t-dup7\"", r#"{"a":1,"\u0061":2}"#),
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key inside a payload string",
            req(echo, "\"t-dup8\"", r#""{\"a\":1,\"a\":2}""#),
            422,
            Some("duplicate_key"),
            Refused,
        ),
        case(
            "duplicate key inside approval_artifact",
            r#"{"action":"echo","nonce":"t-dup9","approval_artifact":{"approval_id":"a","approval_id":"b"}}"#,
            422,
            Some("duplicate_key"),
            Refused,
        ),
        ok(
            "same key in sibling objects is not a duplicate",
            "t-siblings",
            r#"{"a":{"k":1},"b":{"k":1}}"#,
        ),
        // --- numbers
        case(
            "1e400 in the payload (out of f64 range)",
            req(echo, "\"t\"", r#"{"n":1e400}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "-1e400 in the payload",
            req(echo, "\"t\"", r#"{"n":-1e400}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "a 400-digit integer in the payload",
            req(echo, "\"t\"", &format!(r#"{{"n":{}}}"#, "9".repeat(400))),
            422,
            Some("invalid_json"),
            Refused,
        ),
        ok(
            "2^64 as JCS writes it (becomes the float 1.8446744073709552e19)",
            "t-2p64",
            r#"{"n":18446744073709552000}"#,
        ),
        case(
            "2^64 in full (its canonical form is another number: not I-JSON)",
            req(echo, "\"t-2p64-full\"", r#"{"n":18446744073709551616}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "u64::MAX in the payload (no double holds it: not I-JSON)",
            req(echo, "\"t-u64max\"", r#"{"n":18446744073709551615}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "-2^63-1 in the payload (not I-JSON)",
            req(echo, "\"t-m2p63\"", r#"{"n":-9223372036854775809}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "2^53+1 in the payload (not I-JSON)",
            req(echo, "\"t-2p53\"", r#"{"n":9007199254740993}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "2^53+1 in a payload string (not I-JSON)",
            req(echo, "\"t-2p53s\"", r#""{\"n\":9007199254740993}""#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "1e-400 in the payload (underflows to 0: not I-JSON)",
            req(echo, "\"t-tiny\"", r#"{"n":1e-400}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        case(
            "-2^63 in full (its canonical form is -9223372036854776000: not I-JSON)",
            req(echo, "\"t-m2p63-full\"", r#"{"n":-9223372036854775808}"#),
            422,
            Some("inexact_number"),
            Refused,
        ),
        ok(
            "-2^63 as JCS writes it (a float)",
            "t-m2p63-jcs",
            r#"{"n":-9223372036854776000}"#,
        ),
        ok(
            "largest finite floats in the payload",
            "t-fmax",
            r#"{"n":1.7976931348623157e308,"m":-1.7976931348623157e308}"#,
        ),
        ok(
            "-0.0 and 5e-324 in the payload",
            "t-odd-floats",
            r#"{"z":-0.0,"d":5e-324}"#,
        ),
        case(
            "add: 2^64 + 1 (floats)",
            req(
                r#""add""#,
                "\"t-add-big\"",
                r#"{"a":18446744073709552000,"b":1}"#,
            ),
            200,
            None,
            Recorded,
        ),
        case(
            "add: f64::MAX + f64::MAX overflows to infinity (handler error, by design)",
            req(
                r#""add""#,
                "\"t-add-inf\"",
                r#"{"a":1.7976931348623157e308,"b":1.7976931348623157e308}"#,
            ),
            500,
            Some("handler_error"),
            Recorded,
        ),
        case(
            "NaN literal",
            req(echo, "\"t\"", r#"{"n":NaN}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "Infinity literal",
            req(echo, "\"t\"", r#"{"n":Infinity}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "-Infinity literal",
            req(echo, "\"t\"", r#"{"n":-Infinity}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "leading zeros (012)",
            req(echo, "\"t\"", r#"{"n":012}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "hex number (0x10)",
            req(echo, "\"t\"", r#"{"n":0x10}"#),
            422,
            Some("invalid_json"),
            Refused,
        ),
        case(
            "number as the nonce",
            r#"{"action":"echo","nonce":5}"#,
            422,
            Some("invalid_field"),
            Refused,
        ),
        case(
            "number as the payload",
            req(echo, "\"t\"", "1e400"),
            422,
            Some("invalid_json"),
            Refused,
        ),
    ]
}
