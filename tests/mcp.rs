//! `POST /mcp` on a real server, over raw HTTP: discovery, the tool list
//! (schemas, hints, order, allow-lists), `tools/call` as an `/execute`
//! attempt (nonce from `_meta`, replay, conflict, a recorded
//! `nonce_required`, a minted nonce), the approval round trip of
//! clawshield mode, routing headers, Origin, methods, malformed messages,
//! notifications and the 2025 handshake — every receipt verified.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::time::Duration;

use chrono::Utc;
use common::server::{self, TestServer};
use openexec::core::approval::mint_v2;
use openexec::core::entry::Entry;
use openexec::core::hash::Hash;
use openexec::core::receipt::{verify_receipt, Receipt};
use serde_json::{json, Value};

const V: &str = "2026-07-28";

/// One answer: status, headers of interest, body (Null when empty).
struct Answer {
    status: u16,
    allow: Option<String>,
    session: Option<String>,
    text: String,
    body: Value,
}

fn post(s: &TestServer, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = server::agent()
        .post(&s.url("/mcp"))
        .set("Content-Type", "application/json")
        .set("Accept", "application/json, text/event-stream");
    for (k, v) in headers {
        request = request.set(k, v);
    }
    let response = match request.send_string(body) {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST /mcp: {e}"),
    };
    answer(response)
}

fn answer(response: ureq::Response) -> Answer {
    let status = response.status();
    let allow = response.header("Allow").map(str::to_owned);
    let session = response.header("Mcp-Session-Id").map(str::to_owned);
    let text = response.into_string().unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        allow,
        session,
        text,
        body,
    }
}

/// A 2026-07-28 request: `_meta` revision and the matching headers.
fn rpc(s: &TestServer, method: &str, mut params: Value) -> Answer {
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(V);
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let mut headers = vec![("MCP-Protocol-Version", V), ("Mcp-Method", method)];
    let name = params["name"].as_str().map(str::to_owned);
    if let Some(n) = &name {
        headers.push(("Mcp-Name", n));
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    post(s, &headers, &body.to_string())
}

/// A `tools/call` with `meta` (nonce, approval) merged into `_meta`.
fn call(s: &TestServer, name: &str, arguments: Value, meta: Value) -> Answer {
    rpc(
        s,
        "tools/call",
        json!({"name": name, "arguments": arguments, "_meta": meta}),
    )
}

/// The verified entry of a `/execute` answer's receipt.
fn verified(s: &TestServer, execute: &Value) -> Entry {
    let receipt: Receipt = serde_json::from_value(execute["receipt"].clone()).unwrap();
    verify_receipt(&receipt, &s.verifier(), None).expect("receipt verifies");
    Entry::from_canonical_bytes(receipt.entry.as_bytes()).unwrap()
}

fn structured(a: &Answer) -> &Value {
    assert_eq!(a.status, 200, "{}", a.text);
    &a.body["result"]["structuredContent"]
}

fn error_code(a: &Answer) -> i64 {
    a.body["error"]["code"].as_i64().unwrap_or(0)
}

#[test]
fn discover_and_the_tool_list() {
    let s = server::start(&[]);
    let d = rpc(&s, "server/discover", json!({}));
    assert_eq!(d.status, 200, "{}", d.text);
    let r = &d.body["result"];
    assert!(r["supportedVersions"]
        .as_array()
        .unwrap()
        .contains(&json!(V)));
    assert_eq!(r["capabilities"]["tools"], json!({"listChanged": false}));
    assert_eq!(
        r["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "openexec"
    );
    assert!(r["ttlMs"].as_u64().unwrap() > 0);
    assert_eq!(r["cacheScope"], "public");
    assert!(d.session.is_none());

    let l = rpc(&s, "tools/list", json!({}));
    assert_eq!(l.status, 200, "{}", l.text);
    let tools = l.body["result"]["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["add", "counter", "echo", "sha256"]);
    assert_eq!(l.body["result"]["cacheScope"], "public");
    assert!(l.body["result"]["ttlMs"].as_u64().unwrap() > 0);
    let (_, handlers) = s.get_json("/handlers");
    for (tool, handler) in tools.iter().zip(handlers["handlers"].as_array().unwrap()) {
        assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
        assert_eq!(
            tool["inputSchema"]["properties"], handler["input_schema"]["properties"],
            "{tool}"
        );
        assert_eq!(tool["outputSchema"]["type"], "object");
        assert_eq!(
            tool["outputSchema"]["properties"]["result"]["properties"],
            handler["output_schema"]["properties"]
        );
        assert_eq!(tool["title"], handler["title"]);
        assert_eq!(tool["_meta"]["dev.openexec/effects"], handler["effects"]);
    }
    let counter = &tools[1]["annotations"];
    assert_eq!(
        (
            counter["readOnlyHint"].as_bool(),
            counter["destructiveHint"].as_bool(),
            counter["idempotentHint"].as_bool()
        ),
        (Some(false), Some(true), Some(false)),
        "{counter}"
    );
    let echo = &tools[2]["annotations"];
    assert_eq!(
        (
            echo["readOnlyHint"].as_bool(),
            echo["destructiveHint"].as_bool()
        ),
        (Some(true), Some(false)),
        "{echo}"
    );
    // The listing is the same every time.
    assert_eq!(
        rpc(&s, "tools/list", json!({})).body["result"],
        l.body["result"]
    );
}

#[test]
fn the_service_allow_list_narrows_the_tools() {
    let s = server::start(&[("OPENEXEC_ALLOWED_ACTIONS", "echo,counter")]);
    let l = rpc(&s, "tools/list", json!({}));
    let names: Vec<&str> = l.body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["counter", "echo"]);
    // A tool outside it is a recorded rejection.
    let a = call(
        &s,
        "add",
        json!({"a": 1}),
        json!({"dev.openexec/nonce": "al-1"}),
    );
    let sc = structured(&a);
    assert_eq!(a.body["result"]["isError"], true);
    assert_eq!(sc["code"], "action_not_allowed");
    assert_eq!(verified(&s, sc).reason, "action_not_allowed");
}

#[test]
fn the_credential_allow_list_narrows_the_tools() {
    use openexec::auth::{self, NewToken, Role};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let new = NewToken {
        role: Role::Agent,
        tenant: "acme".into(),
        actions: Some(vec!["echo".into()]),
        label: None,
        expires_at: None,
    };
    let (token, _) = auth::store::create(&data, new, Utc::now()).unwrap();
    let s = server::start_in(&data, &[]).unwrap();
    let bearer = format!("Bearer {}", token.reveal());
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": V}}});
    let headers = [
        ("Authorization", bearer.as_str()),
        ("MCP-Protocol-Version", V),
        ("Mcp-Method", "tools/list"),
    ];
    let l = post(&s, &headers, &body.to_string());
    assert_eq!(l.status, 200, "{}", l.text);
    let tools = l.body["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 1);
    assert_eq!(tools[0]["name"], "echo");
    assert_eq!(l.body["result"]["cacheScope"], "private");
    // Without credentials: refused before the route.
    let anonymous = post(&s, &headers[1..], &body.to_string());
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);
}

#[test]
fn a_call_runs_once_per_nonce_and_every_attempt_is_recorded() {
    let s = server::start(&[]);
    let nonce = json!({"dev.openexec/nonce": "mcp-n1"});
    let first = call(&s, "counter", json!({"name": "c"}), nonce.clone());
    let sc = structured(&first).clone();
    assert_eq!(first.body["result"]["isError"], false, "{}", first.text);
    assert_eq!(first.body["result"]["resultType"], "complete");
    assert_eq!(
        (sc["outcome"].as_str(), sc["result"]["value"].as_i64()),
        (Some("executed"), Some(1))
    );
    let content: Value =
        serde_json::from_str(first.body["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(content, sc);
    let entry = verified(&s, &sc);
    assert_eq!(
        (entry.nonce.as_str(), entry.reason.as_str()),
        ("mcp-n1", "ok")
    );

    // The same call again (a new JSON-RPC id is irrelevant): a replay.
    let again = call(&s, "counter", json!({"name": "c"}), nonce.clone());
    let sc2 = structured(&again);
    assert_eq!(again.body["result"]["isError"], false);
    assert_eq!(
        (sc2["outcome"].as_str(), sc2["replayed"].as_bool()),
        (Some("replayed"), Some(true))
    );
    assert_eq!(sc2["result"]["value"], 1, "not run again");
    assert_eq!(sc2["exec_id"], sc["exec_id"]);
    assert_eq!(verified(&s, sc2).reason, "replay_of_executed");

    // The same nonce with other arguments: a recorded conflict.
    let other = call(&s, "counter", json!({"name": "d"}), nonce);
    let sc3 = structured(&other);
    assert_eq!(other.body["result"]["isError"], true);
    assert_eq!(sc3["code"], "nonce_conflict");
    assert_eq!(other.body["result"]["_meta"]["dev.openexec/status"], 422);
    assert_eq!(verified(&s, sc3).reason, "nonce_conflict");

    // The same attempt over /execute is the same nonce.
    let (status, r) =
        s.execute(&json!({"action": "counter", "payload": {"name": "c"}, "nonce": "mcp-n1"}));
    assert_eq!((status, r["outcome"].as_str()), (200, Some("replayed")));
}

#[test]
fn a_nonce_is_required_for_effects_and_minted_for_none() {
    let s = server::start(&[]);
    let before = s.ledger_size();
    let a = call(&s, "counter", json!({"name": "c"}), json!({}));
    let sc = structured(&a);
    assert_eq!(a.body["result"]["isError"], true);
    assert_eq!(
        (sc["outcome"].as_str(), sc["code"].as_str()),
        (Some("rejected"), Some("nonce_required"))
    );
    let entry = verified(&s, sc);
    assert_eq!(entry.reason, "nonce_required");
    assert_eq!(s.ledger_size(), before + 1, "the refusal is recorded");
    // Nothing ran: the counter is still at zero.
    let one = call(
        &s,
        "counter",
        json!({"name": "c"}),
        json!({"dev.openexec/nonce": "nr-1"}),
    );
    assert_eq!(structured(&one)["result"]["value"], 1);

    let echo = call(&s, "echo", json!({"m": 1}), json!({}));
    let sc = structured(&echo);
    assert_eq!(echo.body["result"]["isError"], false);
    assert_eq!(sc["result"], json!({"echo": {"m": 1}}));
    let entry = verified(&s, sc);
    assert!(entry.nonce.starts_with("mcp-"), "{}", entry.nonce);
}

#[test]
fn an_unknown_tool_is_a_protocol_error_and_recorded() {
    let s = server::start(&[]);
    let a = call(&s, "nope", json!({}), json!({"dev.openexec/nonce": "u-1"}));
    assert_eq!((a.status, error_code(&a)), (400, -32602), "{}", a.text);
    let data = &a.body["error"]["data"];
    assert_eq!(data["code"], "unknown_action");
    assert_eq!(verified(&s, data).reason, "unknown_action");
}

/// A v2 approval of `action` with `arguments` for the round an
/// `input_required` answer names.
fn approval_for(key: &ed25519_dalek::SigningKey, id: &str, request: &Value) -> String {
    let hash = Hash::from_base64(request["request_hash"].as_str().unwrap()).unwrap();
    let artifact = mint_v2(
        key,
        id,
        request["tenant"].as_str().unwrap(),
        &hash,
        Utc::now(),
        chrono::Duration::seconds(120),
    )
    .unwrap();
    serde_json::to_string(&artifact).unwrap()
}

#[test]
fn clawshield_asks_for_the_approval_and_the_retry_completes_the_call() {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&[31; 32]);
    let pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap();
    let s = server::start(&[
        ("OPENEXEC_MODE", "clawshield"),
        ("CLAWSHIELD_PUBLIC_KEY", &pem),
        ("CLAWSHIELD_TENANT_ID", "acme"),
    ]);
    let before = s.ledger_size();
    let args = json!({"name": "approved"});
    let nonce = json!({"dev.openexec/nonce": "ap-1"});
    let asked = call(&s, "counter", args.clone(), nonce.clone());
    assert_eq!(asked.status, 200, "{}", asked.text);
    let r = &asked.body["result"];
    assert_eq!(r["resultType"], "input_required", "{r}");
    let elicit = &r["inputRequests"]["approval"];
    assert_eq!(elicit["method"], "elicitation/create");
    assert_eq!(elicit["params"]["mode"], "form");
    let request = &r["_meta"]["dev.openexec/request"];
    assert_eq!(
        (
            request["action"].as_str(),
            request["nonce"].as_str(),
            request["tenant"].as_str()
        ),
        (Some("counter"), Some("ap-1"), Some("acme"))
    );
    let message = elicit["params"]["message"].as_str().unwrap();
    assert!(
        message.contains(request["request_hash"].as_str().unwrap()),
        "{message}"
    );
    let state = r["requestState"].as_str().unwrap().to_owned();
    assert_eq!(s.ledger_size(), before, "asking records nothing");

    let artifact = approval_for(&key, "mcp-ap-1", request);
    let responses =
        json!({"approval": {"action": "accept", "content": {"approval_artifact": artifact}}});
    // The state does not carry over to other arguments.
    let swapped = rpc(
        &s,
        "tools/call",
        json!({"name": "counter", "arguments": {"name": "other"},
        "_meta": nonce, "inputResponses": responses, "requestState": state}),
    );
    assert_eq!(
        (swapped.status, error_code(&swapped)),
        (400, -32602),
        "{}",
        swapped.text
    );
    // An altered state is refused.
    let forged = rpc(
        &s,
        "tools/call",
        json!({"name": "counter", "arguments": args,
        "_meta": nonce, "inputResponses": responses, "requestState": format!("x{state}")}),
    );
    assert_eq!(error_code(&forged), -32602, "{}", forged.text);

    let done = rpc(
        &s,
        "tools/call",
        json!({"name": "counter", "arguments": args,
        "_meta": nonce, "inputResponses": responses, "requestState": state}),
    );
    let sc = structured(&done);
    assert_eq!(done.body["result"]["isError"], false, "{}", done.text);
    assert_eq!(
        (sc["outcome"].as_str(), sc["result"]["value"].as_i64()),
        (Some("executed"), Some(1))
    );
    let entry = verified(&s, sc);
    assert_eq!(entry.approval.id.as_deref(), Some("mcp-ap-1"));

    // Declining records the attempt as refused.
    let declined = rpc(
        &s,
        "tools/call",
        json!({"name": "counter", "arguments": args,
        "_meta": {"dev.openexec/nonce": "ap-2"}, "inputResponses": {"approval": {"action": "decline"}}}),
    );
    let sc = structured(&declined);
    assert_eq!(declined.body["result"]["isError"], true);
    assert_eq!(verified(&s, sc).reason, "approval_missing");

    // A tool without effects: the minted nonce travels in the state.
    let asked = call(&s, "echo", json!({"m": 2}), json!({}));
    let r = &asked.body["result"];
    let request = &r["_meta"]["dev.openexec/request"];
    assert!(request["nonce"].as_str().unwrap().starts_with("mcp-"));
    let artifact = approval_for(&key, "mcp-ap-3", request);
    let done = rpc(
        &s,
        "tools/call",
        json!({"name": "echo", "arguments": {"m": 2},
        "inputResponses": {"approval": {"action": "accept", "content": {"approval_artifact": artifact}}},
        "requestState": r["requestState"]}),
    );
    let sc = structured(&done);
    assert_eq!(sc["outcome"], "executed", "{}", done.text);
    assert_eq!(verified(&s, sc).nonce, request["nonce"].as_str().unwrap());

    // A 2025 client is not asked (it would not know input_required): the
    // attempt runs without an approval and is refused, recorded.
    let legacy = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "echo", "arguments": {}, "_meta": {"dev.openexec/nonce": "ap-5"}}});
    let a = post(
        &s,
        &[("MCP-Protocol-Version", "2025-06-18")],
        &legacy.to_string(),
    );
    assert_eq!(a.body["result"]["isError"], true, "{}", a.text);
    assert_eq!(verified(&s, structured(&a)).reason, "approval_missing");

    // The approval in _meta directly: no round trip.
    let request = json!({"request_hash": openexec::core::canonical::request_hash("echo", &json!({"m": 3}), "ap-4", "acme").unwrap().to_base64(), "tenant": "acme"});
    let artifact = approval_for(&key, "mcp-ap-4", &request);
    let direct = call(
        &s,
        "echo",
        json!({"m": 3}),
        json!({"dev.openexec/nonce": "ap-4", "dev.openexec/approval": serde_json::from_str::<Value>(&artifact).unwrap()}),
    );
    assert_eq!(
        structured(&direct)["outcome"],
        "executed",
        "{}",
        direct.text
    );
}

#[test]
fn routing_headers_must_match_the_body() {
    let s = server::start(&[]);
    let params = json!({"name": "echo", "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": V, "dev.openexec/nonce": "h-1"}});
    let body =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}).to_string();
    for (what, headers) in [
        (
            "method",
            vec![
                ("MCP-Protocol-Version", V),
                ("Mcp-Method", "tools/list"),
                ("Mcp-Name", "echo"),
            ],
        ),
        (
            "no method",
            vec![("MCP-Protocol-Version", V), ("Mcp-Name", "echo")],
        ),
        (
            "name",
            vec![
                ("MCP-Protocol-Version", V),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "add"),
            ],
        ),
        (
            "no name",
            vec![("MCP-Protocol-Version", V), ("Mcp-Method", "tools/call")],
        ),
        (
            "version",
            vec![
                ("MCP-Protocol-Version", "2025-06-18"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "echo"),
            ],
        ),
        (
            "no version",
            vec![("Mcp-Method", "tools/call"), ("Mcp-Name", "echo")],
        ),
    ] {
        let before = s.ledger_size();
        let a = post(&s, &headers, &body);
        assert_eq!(
            (a.status, error_code(&a)),
            (400, -32020),
            "{what}: {}",
            a.text
        );
        assert_eq!(a.body["id"], 1);
        assert_eq!(s.ledger_size(), before, "{what}: nothing recorded");
    }
    // Base64-wrapped names decode.
    let ok = post(
        &s,
        &[
            ("MCP-Protocol-Version", V),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "=?base64?ZWNobw==?="),
        ],
        &body,
    );
    assert_eq!(ok.status, 200, "{}", ok.text);
    // An unknown revision in _meta.
    let future = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}}});
    let a = post(
        &s,
        &[
            ("MCP-Protocol-Version", "2099-01-01"),
            ("Mcp-Method", "tools/list"),
        ],
        &future.to_string(),
    );
    assert_eq!((a.status, error_code(&a)), (400, -32022), "{}", a.text);
    assert_eq!(a.body["error"]["data"]["supported"], json!([V]));
    // A revision this server does not speak, in the header alone.
    let old = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}).to_string();
    let a = post(&s, &[("MCP-Protocol-Version", "2024-01-01")], &old);
    assert_eq!((a.status, error_code(&a)), (400, -32022), "{}", a.text);
    // A 2025 client sends no Mcp-Method and no _meta revision: accepted.
    let legacy = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"x": 1}, "_meta": {"dev.openexec/nonce": "h-2"}}});
    let a = post(
        &s,
        &[("MCP-Protocol-Version", "2025-06-18")],
        &legacy.to_string(),
    );
    assert_eq!(structured(&a)["outcome"], "executed", "{}", a.text);
}

#[test]
fn origin_methods_and_malformed_messages() {
    let s = server::start(&[]);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    let evil = post(&s, &[("Origin", "http://evil.example")], &list);
    assert_eq!(evil.status, 403, "{}", evil.text);
    let rebound = post(
        &s,
        &[(
            "Origin",
            &format!("http://rebound.example:{}", s.addr().port()),
        )],
        &list,
    );
    assert_eq!(rebound.status, 403);
    let local = post(
        &s,
        &[("Origin", &format!("http://localhost:{}", s.addr().port()))],
        &list,
    );
    assert_eq!(local.status, 200, "{}", local.text);

    for method in ["GET", "DELETE"] {
        let a = answer(server::send(
            server::agent().request(method, &s.url("/mcp")),
            None,
        ));
        assert_eq!(
            (a.status, a.allow.as_deref()),
            (405, Some("POST")),
            "{method}"
        );
    }

    for (body, status, code) in [
        ("not json", 400, -32700),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"x"}"#,
            400,
            -32700,
        ),
        ("[]", 400, -32600),
        (r#"{"id":1,"method":"tools/list"}"#, 400, -32600),
        (
            r#"{"jsonrpc":"2.0","id":{},"method":"tools/list"}"#,
            400,
            -32600,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":[1]}"#,
            400,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/list"}"#,
            404,
            -32601,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{}}}"#,
            400,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":[1]}}"#,
            400,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","_meta":{"dev.openexec/nonce":"has space"}}}"#,
            400,
            -32602,
        ),
    ] {
        let a = post(&s, &[], body);
        assert_eq!(
            (a.status, error_code(&a)),
            (status, code),
            "{body}: {}",
            a.text
        );
    }
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(post(&s, &[], &big).status, 413);
    let ping = post(&s, &[], r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#);
    assert_eq!((ping.status, &ping.body["result"]), (200, &json!({})));
}

#[test]
fn notifications_and_the_legacy_handshake() {
    let s = server::start(&[]);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let a = post(&s, &[], &init.to_string());
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(a.body["result"]["serverInfo"]["name"], "openexec");
    assert!(a.body["result"]["capabilities"]["tools"].is_object());
    assert!(a.session.is_none(), "no session");
    let unknown = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "1999-01-01"}});
    assert_eq!(
        post(&s, &[], &unknown.to_string()).body["result"]["protocolVersion"],
        "2025-11-25"
    );

    let before = s.ledger_size();
    let note = post(
        &s,
        &[("MCP-Protocol-Version", "2025-06-18")],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!((note.status, note.text.as_str()), (202, ""));
    assert_eq!(s.ledger_size(), before);

    let listed = post(
        &s,
        &[("MCP-Protocol-Version", "2025-06-18")],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    );
    assert_eq!(listed.body["result"]["tools"].as_array().unwrap().len(), 4);
}

/// `/execute` takes its nonce from `Idempotency-Key`, and says when an
/// answer is a replay.
#[test]
fn execute_follows_the_idempotency_key_conventions() {
    let s = server::start(&[]);
    let send = |key: Option<&str>, body: &Value| {
        let mut request = server::agent().post(&s.url("/execute"));
        if let Some(k) = key {
            request = request.set("Idempotency-Key", k);
        }
        server::send(request, Some(body))
    };
    let body = json!({"action": "counter", "payload": {"name": "ik"}});
    let first = send(Some("ik-1"), &body);
    assert_eq!(first.status(), 200);
    assert!(first.header("Idempotent-Replayed").is_none());
    let first: Value = first.into_json().unwrap();
    assert_eq!(verified(&s, &first).nonce, "ik-1");
    // The structured-field form names the same key.
    let again = send(Some("\"ik-1\""), &body);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    let again: Value = again.into_json().unwrap();
    assert_eq!(
        (again["outcome"].as_str(), again["result"]["value"].as_i64()),
        (Some("replayed"), Some(1))
    );
    // Equal in both places: fine; different: refused, not recorded.
    let same = send(
        Some("ik-1"),
        &json!({"action": "counter", "payload": {"name": "ik"}, "nonce": "ik-1"}),
    );
    assert_eq!(same.status(), 200);
    let before = s.ledger_size();
    let differ = send(
        Some("ik-2"),
        &json!({"action": "counter", "payload": {"name": "ik"}, "nonce": "ik-1"}),
    );
    assert_eq!(differ.status(), 422);
    let differ: Value = differ.into_json().unwrap();
    assert_eq!(differ["code"], "idempotency_key_mismatch");
    assert_eq!(s.ledger_size(), before);
    let bad = send(Some("has space"), &body);
    assert_eq!(bad.status(), 422);
    let bad: Value = bad.into_json().unwrap();
    assert_eq!(bad["code"], "invalid_nonce");
    // Without the header, a body without a nonce is still refused.
    let none = send(None, &body);
    assert_eq!(none.status(), 422);
}

/// `OPENEXEC_MCP_ALLOWED_ORIGINS` admits exactly the origins it names; a
/// value that is not an origin stops the server from starting.
#[test]
fn configured_origins_are_admitted() {
    let s = server::start(&[(
        "OPENEXEC_MCP_ALLOWED_ORIGINS",
        "https://app.example, http://ui.example:8080",
    )]);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    for (origin, status) in [
        ("https://app.example", 200),
        ("http://ui.example:8080", 200),
        ("http://127.0.0.1:9", 200),
        ("http://app.example", 403),
        ("https://ui.example:8080", 403),
    ] {
        assert_eq!(
            post(&s, &[("Origin", origin)], &list).status,
            status,
            "{origin}"
        );
    }
    let refused = server::refuses(&[("OPENEXEC_MCP_ALLOWED_ORIGINS", "https://app.example/path")]);
    assert!(
        refused.contains("OPENEXEC_MCP_ALLOWED_ORIGINS"),
        "{refused}"
    );
}

/// Rejections through `/mcp` draw on the same recording limit as
/// `/execute`'s: past it, a JSON-RPC error with `Retry-After`, not recorded.
#[test]
fn rate_limits_apply_to_calls() {
    let s = server::start(&[
        ("OPENEXEC_REJECT_RATE", "0.01"),
        ("OPENEXEC_REJECT_BURST", "1"),
    ]);
    let first = call(&s, "nope", json!({}), json!({"dev.openexec/nonce": "rl-1"}));
    assert_eq!(first.body["error"]["data"]["code"], "unknown_action");
    let size = s.ledger_size();
    let response = server::send(
        server::agent()
            .post(&s.url("/mcp"))
            .set("MCP-Protocol-Version", "2025-06-18"),
        Some(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "counter", "arguments": {}, "_meta": {"dev.openexec/nonce": "rl-2"}}})),
    );
    assert_eq!(response.status(), 429);
    assert!(response.header("Retry-After").is_some());
    let body: Value = response.into_json().unwrap();
    assert_eq!(
        (
            body["error"]["code"].as_i64(),
            body["error"]["data"]["code"].as_str()
        ),
        (Some(-32000), Some("rate_limited")),
        "{body}"
    );
    assert_eq!(s.ledger_size(), size, "not recorded");
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Nothing {}

/// Takes its time, so that a second attempt finds its nonce in flight; it
/// only adds, so it declares itself not destructive.
struct Slow;
impl openexec::action::Action for Slow {
    const NAME: &'static str = "slow";
    const EFFECTS: openexec::action::Effects = openexec::action::Effects::AtMostOnce;
    const DESTRUCTIVE: bool = false;
    type Payload = Nothing;
    type Output = String;
    async fn run(
        &self,
        _: openexec::action::Context,
        _: Nothing,
    ) -> Result<String, openexec::action::ActionError> {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok("done".into())
    }
}

/// A nonce in flight: `/execute` answers `409` with `Retry-After`, `/mcp`
/// a recorded tool error; a declared non-destructive action is listed so.
#[test]
fn a_nonce_in_flight_says_when_to_retry() {
    let registry = openexec::action::Registry::builder("mcp-test", "0.0.1")
        .register(Slow)
        .build()
        .unwrap();
    let server = common::in_process::InProcess::start(registry, 2);
    let base = server.base.clone();
    let execute = |nonce: &str| {
        server::send(
            server::agent().post(&format!("{base}/execute")),
            Some(&json!({"action": "slow", "nonce": nonce})),
        )
    };
    let mcp = |body: &Value| {
        let r = server::send(server::agent().post(&format!("{base}/mcp")), Some(body));
        r.into_json::<Value>().unwrap()
    };
    let listed = mcp(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
    let hints = &listed["result"]["tools"][0]["annotations"];
    assert_eq!(
        (
            hints["readOnlyHint"].as_bool(),
            hints["destructiveHint"].as_bool()
        ),
        (Some(false), Some(false)),
        "{listed}"
    );

    std::thread::scope(|scope| {
        let first = scope.spawn(|| execute("if-1"));
        std::thread::sleep(Duration::from_millis(400));
        let second = execute("if-1");
        assert_eq!(second.status(), 409);
        assert_eq!(second.header("Retry-After"), Some("1"));
        let via_mcp = mcp(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "slow", "_meta": {"dev.openexec/nonce": "if-1"}}}));
        assert_eq!(via_mcp["result"]["isError"], true, "{via_mcp}");
        assert_eq!(
            via_mcp["result"]["structuredContent"]["code"],
            "nonce_in_flight"
        );
        assert_eq!(via_mcp["result"]["_meta"]["dev.openexec/status"], 409);
        assert_eq!(first.join().unwrap().status(), 200);
    });
    let replay = execute("if-1");
    assert_eq!(replay.header("Idempotent-Replayed"), Some("true"));
    drop(server);
}
