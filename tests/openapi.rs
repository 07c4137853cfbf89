//! `GET /openapi.json` lists every route, and real responses carry every
//! field the document marks required, with the declared JSON type.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use serde_json::{json, Value};

/// Checks `value` against a component schema: required fields present,
/// declared types respected (recursing into `$ref`s).
fn conforms(doc: &Value, schema: &Value, value: &Value, path: &str) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], value, path);
    }
    if let Some(one_of) = schema.get("oneOf").and_then(Value::as_array) {
        // utoipa renders Option<T> of a $ref as oneOf [null, T].
        if value.is_null() {
            return;
        }
        let non_null: Vec<_> = one_of.iter().filter(|s| s["type"] != "null").collect();
        return conforms(doc, non_null[0], value, path);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        assert!(ok, "{path}: {actual} is not {types:?}");
    }
    for field in schema["required"].as_array().into_iter().flatten() {
        let field = field.as_str().unwrap();
        assert!(
            value.get(field).is_some(),
            "{path}: required field {field} missing in {value}"
        );
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), value.as_object()) {
        for (k, v) in obj {
            if let Some(s) = props.get(k) {
                conforms(doc, s, v, &format!("{path}.{k}"));
            }
        }
    }
}

fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    &doc["components"]["schemas"][name]
}

#[test]
fn the_document_lists_every_route_and_responses_conform() {
    let s = common::server::start(&[]);
    let (status, doc) = s.get_json("/openapi.json");
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/",
        "/health",
        "/ready",
        "/version",
        "/metrics",
        "/execute",
        "/mcp",
        "/receipts/verify",
        "/receipts/{exec_id}",
        "/ledger/checkpoint",
        "/ledger/key",
        "/ledger/entries",
        "/ledger/entries/{index}",
        "/ledger/proof/inclusion",
        "/ledger/proof/consistency",
        "/openapi.json",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }
    // The idempotency conventions are declared.
    let execute = &doc["paths"]["/execute"]["post"];
    assert!(
        execute["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
        "{execute}"
    );
    assert!(execute["responses"]["409"]["headers"]
        .get("Retry-After")
        .is_some());
    assert!(execute["responses"]["200"]["headers"]
        .get("Idempotent-Replayed")
        .is_some());
    let (_, ok) = s.execute(&json!({"action": "echo", "payload": {"m": 1}, "nonce": "o1"}));
    conforms(&doc, component(&doc, "ExecuteResponse"), &ok, "execute 200");
    let (_, rejected) = s.execute(&json!({"action": "nope", "nonce": "o2"}));
    conforms(
        &doc,
        component(&doc, "ExecuteResponse"),
        &rejected,
        "execute 400",
    );
    let (_, refused) = s.execute(&json!({"action": "echo"}));
    conforms(&doc, component(&doc, "ErrorBody"), &refused, "execute 422");
    for (path, name) in [
        ("/", "RootResponse"),
        ("/health", "HealthResponse"),
        ("/ready", "ReadyResponse"),
        ("/version", "VersionResponse"),
        ("/ledger/entries/0", "EntryResponse"),
        ("/ledger/entries?start=0&end=2", "EntriesResponse"),
        (
            "/ledger/proof/inclusion?index=0&tree_size=2",
            "InclusionResponse",
        ),
        (
            "/ledger/proof/consistency?from=1&to=2",
            "ConsistencyResponse",
        ),
        (
            &format!("/receipts/{}", ok["id"].as_str().unwrap()),
            "ReceiptDoc",
        ),
        ("/ledger/entries/99", "ErrorBody"),
    ] {
        let (_, body) = s.get_json(path);
        conforms(&doc, component(&doc, name), &body, path);
    }
    let (_, v) = s.post_json("/receipts/verify", &json!({"receipt": ok["receipt"]}));
    conforms(&doc, component(&doc, "VerifyResponse"), &v, "verify");
}

#[test]
fn every_refusal_is_json_with_a_code() {
    let s = common::server::start(&[]);
    for (method, path, status, code) in [
        ("GET", "/execute", 405, "method_not_allowed"),
        ("DELETE", "/health", 405, "method_not_allowed"),
        ("GET", "/nowhere", 404, "not_found"),
        ("GET", "/ledger/entries/abc", 400, "invalid_query"),
        ("GET", "/ledger/entries?start=5", 400, "invalid_query"),
        (
            "GET",
            "/ledger/proof/inclusion?index=0&tree_size=0",
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/ledger/proof/consistency?from=3&to=9",
            404,
            "not_found",
        ),
    ] {
        let resp = ureq::request(method, &s.url(path)).call();
        let (st, body) = match resp {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        };
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert_eq!(
            (st, body["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {body}"
        );
        assert!(body["detail"].is_string());
    }
}
