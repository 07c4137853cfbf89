//! Authentication over HTTP, on a real server with principals configured:
//! every route of the route table against every kind of caller; tenants
//! kept apart (execution, nonces, receipts, approvals); revocation without
//! a restart; one rate-limit bucket per principal whatever its addresses;
//! the principal's id in the entry, verified offline.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Utc;
use common::server::{self, TestServer};
use openexec::auth::{self, NewToken, Role};
use openexec::http::access::{Access, CHALLENGE};
use serde_json::{json, Value};

/// A principal's token and id.
struct Cred {
    token: String,
    id: String,
}

fn mint(data: &Path, role: Role, tenant: &str, actions: Option<&[&str]>, expired: bool) -> Cred {
    let new = NewToken {
        role,
        tenant: tenant.to_owned(),
        actions: actions.map(|a| a.iter().map(|s| (*s).to_owned()).collect()),
        label: None,
        expires_at: expired.then(|| Utc::now() - chrono::Duration::hours(1)),
    };
    let (token, record) = auth::store::create(data, new, Utc::now()).unwrap();
    Cred {
        token: token.reveal().to_owned(),
        id: record.id.to_string(),
    }
}

/// One request: status, `WWW-Authenticate`, body.
fn call(
    s: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Option<String>, Value) {
    let mut request = server::agent().request(method, &s.url(path));
    if let Some(t) = token {
        request = request.set("Authorization", &format!("Bearer {t}"));
    }
    let response = server::send(request, body);
    let status = response.status();
    let challenge = response.header("WWW-Authenticate").map(str::to_owned);
    let text = response.into_string().unwrap_or_default();
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn execute(s: &TestServer, token: &str, body: &Value) -> (u16, Value) {
    let (status, _, body) = call(s, "POST", "/execute", Some(token), Some(body));
    (status, body)
}

/// The entry of an `/execute` answer, parsed.
fn entry_of(answer: &Value) -> Value {
    serde_json::from_str(answer["receipt"]["entry"].as_str().unwrap()).unwrap()
}

fn metric(s: &TestServer, token: &str, line_start: &str) -> u64 {
    let (status, _, text) = call(s, "GET", "/metrics", Some(token), None);
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in {text}"))
}

/// A concrete request for a row of the route table.
fn request_for(path: &str, exec_id: &str, n: usize) -> (String, Option<Value>) {
    match path {
        "/execute" => (
            path.to_owned(),
            Some(json!({"action": "echo", "payload": {"n": n}, "nonce": format!("walk-{n}")})),
        ),
        "/receipts/verify" => (path.to_owned(), Some(json!({"receipt": {"not": "one"}}))),
        "/ledger/cosignatures" => (path.to_owned(), Some(json!("not a checkpoint"))),
        "/receipts/{exec_id}" => (format!("/receipts/{exec_id}"), None),
        "/ledger/entries" => ("/ledger/entries?start=0&end=1".to_owned(), None),
        "/ledger/entries/{index}" => ("/ledger/entries/0".to_owned(), None),
        "/ledger/proof/inclusion" => ("/ledger/proof/inclusion?index=0".to_owned(), None),
        "/ledger/proof/consistency" => ("/ledger/proof/consistency?from=1".to_owned(), None),
        "/ui/{asset}" => ("/ui/app.js".to_owned(), None),
        "/tile/entries/{index}*" => ("/tile/entries/000.p/1".to_owned(), None),
        "/tile/{level}/{index}*" => ("/tile/0/000.p/1".to_owned(), None),
        other => (other.to_owned(), None),
    }
}

/// Every route of the table × anonymous, malformed, unknown, wrong-secret,
/// revoked and expired credentials and each role: the status the table
/// says, refusals with exactly the refusal body (no content), the same
/// `401` whatever the reason, nothing recorded for a refusal, and every
/// refusal counted by reason.
#[test]
fn every_route_answers_every_caller_as_the_table_says() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = mint(&data, Role::Agent, "acme", None, false);
    let auditor = mint(&data, Role::Auditor, "acme", None, false);
    let admin = mint(&data, Role::Admin, "ops", None, false);
    let revoked = mint(&data, Role::Agent, "acme", None, false);
    auth::store::revoke(&data, revoked.id.parse().unwrap(), Utc::now()).unwrap();
    let expired = mint(&data, Role::Agent, "acme", None, true);
    let unknown = format!("oex1_0000000000000000_{}", &agent.token[22..]);
    let wrong_secret = format!("{}{}", &agent.token[..22], "A".repeat(43));
    let s = server::start_in(&data, &[]).unwrap();

    let (status, first) = execute(
        &s,
        &agent.token,
        &json!({"action": "echo", "payload": {"secret": "s3cr3t"}, "nonce": "first"}),
    );
    assert_eq!(status, 200, "{first}");
    let exec_id = first["exec_id"].as_str().unwrap().to_owned();

    let refused: [(&str, Option<&str>); 6] = [
        ("anonymous", None),
        ("malformed", Some("not-a-token")),
        ("unknown id", Some(&unknown)),
        ("wrong secret", Some(&wrong_secret)),
        ("revoked", Some(&revoked.token)),
        ("expired", Some(&expired.token)),
    ];
    let roles = [
        (Role::Agent, &agent.token),
        (Role::Auditor, &auditor.token),
        (Role::Admin, &admin.token),
    ];
    let unauthorized = json!({"detail": "invalid credentials", "code": "unauthorized"});
    let mut n = 0;
    let mut forbidden_count = 0;
    for (path, method, access) in openexec::http::ROUTES {
        for (who, token) in refused {
            n += 1;
            let (url, body) = request_for(path, &exec_id, n);
            let size = s.ledger_size();
            let (status, challenge, answer) = call(&s, method, &url, token, body.as_ref());
            if access == Access::Public {
                assert!(
                    ![401, 403].contains(&status),
                    "{method} {path} ({who}): {status} {answer}"
                );
                continue;
            }
            assert_eq!(status, 401, "{method} {path} ({who}): {answer}");
            assert_eq!(answer, unauthorized, "{method} {path} ({who})");
            assert_eq!(challenge.as_deref(), Some(CHALLENGE), "{method} {path}");
            assert_eq!(s.ledger_size(), size, "a refusal is not recorded");
        }
        for (role, token) in roles {
            n += 1;
            let (url, body) = request_for(path, &exec_id, n);
            let (status, _, answer) = call(&s, method, &url, Some(token), body.as_ref());
            if access.admits(role) {
                assert!(
                    ![401, 403, 404].contains(&status),
                    "{method} {path} ({role}): {status} {answer}"
                );
            } else {
                forbidden_count += 1;
                assert_eq!(status, 403, "{method} {path} ({role}): {answer}");
                assert_eq!(
                    answer
                        .as_object()
                        .map(|m| m.keys().cloned().collect::<Vec<_>>()),
                    Some(vec!["code".to_owned(), "detail".to_owned()]),
                    "{answer}"
                );
                assert_eq!(answer["code"], "forbidden");
                assert!(!answer.to_string().contains("s3cr3t"));
            }
        }
    }
    // Each kind of refusal is counted under its reason.
    let protected = openexec::http::ROUTES
        .iter()
        .filter(|r| r.2 != Access::Public)
        .count() as u64;
    for code in [
        "missing",
        "malformed",
        "unknown_id",
        "wrong_secret",
        "revoked",
        "expired",
    ] {
        let line = format!("openexec_auth_refusals_total{{code=\"{code}\"}} ");
        assert_eq!(metric(&s, &admin.token, &line), protected, "{code}");
    }
    let line = "openexec_auth_refusals_total{code=\"forbidden\"} ";
    assert_eq!(metric(&s, &auditor.token, line), forbidden_count);
}

/// docs/API.md lists every route of the table with its access.
#[test]
fn the_api_document_lists_the_route_table() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/API.md")).unwrap();
    for (path, method, access) in openexec::http::ROUTES {
        let row = format!("| `{method} {path}` | {} |", access.as_str());
        assert!(doc.contains(&row), "docs/API.md lacks the row {row}");
    }
}

/// With no principals configured, nothing changes: anonymous callers
/// execute and read everything, and entries name no principal.
#[test]
fn without_principals_every_route_is_open() {
    let s = server::start(&[]);
    let (status, r) = s.execute(&json!({"action": "echo", "payload": {}, "nonce": "open"}));
    assert_eq!(status, 200, "{r}");
    assert!(entry_of(&r).get("principal").is_none());
    assert_eq!(s.get("/metrics").0, 200);
    let exec_id = r["exec_id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/receipts/{exec_id}")).0, 200);
}

fn pem(key: &ed25519_dalek::SigningKey) -> String {
    use ed25519_dalek::pkcs8::EncodePublicKey as _;
    key.verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .unwrap()
}

/// A v2 approval of `echo` with `payload` and `nonce` for `tenant`.
fn approve(
    key: &ed25519_dalek::SigningKey,
    id: &str,
    tenant: &str,
    payload: &Value,
    nonce: &str,
) -> Value {
    let rh = openexec::core::canonical::request_hash("echo", payload, nonce, tenant).unwrap();
    let art = openexec::core::approval::mint_v2(
        key,
        id,
        tenant,
        &rh,
        Utc::now(),
        chrono::Duration::seconds(120),
    );
    serde_json::to_value(art.unwrap()).unwrap()
}

/// Tenant A's token executes as A whatever the approval or the body say;
/// it cannot use B's approvals, replay or conflict with B's nonces (its
/// own nonce space is separate), or read B's receipts, which answer as a
/// missing one does; an auditor reads both. A principal's allow-list
/// narrows the service's.
#[test]
fn tenants_are_kept_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = mint(&data, Role::Agent, "acme", None, false);
    let b = mint(&data, Role::Agent, "globex", None, false);
    let narrow = mint(&data, Role::Agent, "acme", Some(&["add"]), false);
    let auditor = mint(&data, Role::Auditor, "audit", None, false);
    let key = ed25519_dalek::SigningKey::from_bytes(&[41; 32]);
    let s = server::start_in(
        &data,
        &[
            ("OPENEXEC_MODE", "clawshield"),
            ("CLAWSHIELD_PUBLIC_KEY", &pem(&key)),
            // Configured, and ignored for authenticated agents.
            ("CLAWSHIELD_TENANT_ID", "configured"),
        ],
    )
    .unwrap();
    let p = json!({"m": 1});

    // B executes nonce n-1 with its approval.
    let art_b = approve(&key, "ap-b", "globex", &p, "n-1");
    let body_b =
        json!({"action": "echo", "payload": p, "nonce": "n-1", "approval_artifact": art_b});
    let (status, rb) = execute(&s, &b.token, &body_b);
    assert_eq!(status, 200, "{rb}");
    let entry_b = entry_of(&rb);
    assert_eq!(entry_b["tenant"], "globex");
    assert_eq!(entry_b["principal"], b.id.as_str());

    // A sending B's very request (B's approval and nonce): the approval
    // names another tenant; it is not a replay of B's attempt.
    let (status, r) = execute(&s, &a.token, &body_b);
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("tenant_mismatch")),
        "{r}"
    );
    assert_eq!(r["outcome"], "rejected");
    assert_eq!(entry_of(&r)["tenant"], "acme");
    assert_eq!(entry_of(&r)["principal"], a.id.as_str());

    // A's own approval for the same nonce: a new request in A's space.
    let art_a = approve(&key, "ap-a", "acme", &p, "n-1");
    let body_a =
        json!({"action": "echo", "payload": p, "nonce": "n-1", "approval_artifact": art_a});
    let (status, ra) = execute(&s, &a.token, &body_a);
    assert_eq!(status, 200, "{ra}");
    assert_eq!(ra["replayed"], false);
    assert_ne!(ra["exec_id"], rb["exec_id"]);
    assert_eq!(entry_of(&ra)["tenant"], "acme");

    // An approval minted for the configured tenant does not apply either.
    let art_c = approve(&key, "ap-c", "configured", &p, "n-2");
    let (status, r) = execute(
        &s,
        &a.token,
        &json!({"action": "echo", "payload": p, "nonce": "n-2", "approval_artifact": art_c}),
    );
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("tenant_mismatch")),
        "{r}"
    );

    // v1 approvals: the credential pins the tenant, so one naming A's
    // tenant runs and one naming the configured tenant does not.
    let v1 = |id: &str, tenant: &str| {
        let art = openexec::core::approval::mint_v1(
            &key,
            id,
            tenant,
            "echo",
            &p,
            Utc::now(),
            chrono::Duration::seconds(120),
        );
        serde_json::to_value(art).unwrap()
    };
    let (status, r) = execute(
        &s,
        &a.token,
        &json!({"action": "echo", "payload": p, "nonce": "n-v1", "approval_artifact": v1("v1-a", "acme")}),
    );
    assert_eq!(status, 200, "{r}");
    let (status, r) = execute(
        &s,
        &a.token,
        &json!({"action": "echo", "payload": p, "nonce": "n-v1b", "approval_artifact": v1("v1-c", "configured")}),
    );
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("tenant_mismatch")),
        "{r}"
    );

    // Receipts: B's is missing for A, exactly as an unknown id is.
    let b_receipt = format!("/receipts/{}", rb["exec_id"].as_str().unwrap());
    let a_receipt = format!("/receipts/{}", ra["exec_id"].as_str().unwrap());
    let (status, _, hidden) = call(&s, "GET", &b_receipt, Some(&a.token), None);
    let (missing_status, _, missing) =
        call(&s, "GET", "/receipts/no-such-id", Some(&a.token), None);
    assert_eq!((status, &hidden), (missing_status, &missing));
    assert_eq!(status, 404);
    assert_eq!(call(&s, "GET", &a_receipt, Some(&a.token), None).0, 200);
    for path in [&a_receipt, &b_receipt] {
        let (status, _, receipt) = call(&s, "GET", path, Some(&auditor.token), None);
        assert_eq!(status, 200);
        assert!(
            receipt["salts"].is_object(),
            "an auditor gets the salts: {receipt}"
        );
    }

    // The principal's allow-list: `echo` is not on it (recorded 403).
    let art = approve(&key, "ap-n", "acme", &p, "n-3");
    let size = s.ledger_size();
    let (status, r) = execute(
        &s,
        &narrow.token,
        &json!({"action": "echo", "payload": p, "nonce": "n-3", "approval_artifact": art}),
    );
    assert_eq!(
        (status, r["code"].as_str()),
        (403, Some("action_not_allowed")),
        "{r}"
    );
    assert_eq!(entry_of(&r)["principal"], narrow.id.as_str());
    assert_eq!(s.ledger_size(), size + 1);
}

/// `openexec token revoke` on a running service: the token is refused
/// within about two seconds, without a restart.
#[test]
fn a_revoked_token_stops_working_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = mint(&data, Role::Agent, "acme", None, false);
    let s = server::start_in(&data, &[]).unwrap();
    let body = |n: u32| json!({"action": "echo", "payload": {}, "nonce": format!("r-{n}")});
    assert_eq!(execute(&s, &agent.token, &body(0)).0, 200);
    let out = std::process::Command::new(common::binary())
        .args([
            "token",
            "revoke",
            "--data",
            data.to_str().unwrap(),
            &agent.id,
        ])
        .env_remove("OPENEXEC_DB_URL")
        .env_remove("OPENEXEC_DATA_DIR")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let revoked_at = Instant::now();
    let mut n = 1;
    loop {
        let (status, r) = execute(&s, &agent.token, &body(n));
        if status == 401 {
            break;
        }
        assert_eq!(status, 200, "{r}");
        assert!(
            revoked_at.elapsed() < Duration::from_millis(2500),
            "the revoked token still works"
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("refused {:?} after the revocation", revoked_at.elapsed());
}

/// One HTTP/1.1 `POST /execute` from `source` with `token`, on its own
/// connection: the status.
async fn post_from(source: IpAddr, server: SocketAddr, token: Option<&str>, body: &Value) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let body = body.to_string();
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!(
        "POST /execute HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n\
         {authorization}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8(answer).unwrap();
    text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap()
}

/// Rejections from one principal spread over 20 loopback addresses draw
/// from its one bucket: its burst and rate are recorded, the rest answered
/// 429; anonymous attempts from the same addresses are all 401 and none
/// is recorded.
#[test]
fn one_principal_over_many_addresses_has_one_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = mint(&data, Role::Agent, "acme", None, false);
    let s = server::start_in(
        &data,
        &[
            ("OPENEXEC_REJECT_RATE", "2"),
            ("OPENEXEC_REJECT_BURST", "10"),
            ("OPENEXEC_REJECT_GLOBAL_RATE", "1000"),
            ("OPENEXEC_REJECT_GLOBAL_BURST", "10000"),
        ],
    )
    .unwrap();
    let server = s.addr();
    let size = s.ledger_size();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let flood = |token: Option<String>| {
        runtime.block_on(async {
            let tasks: Vec<_> = (0..20u8)
                .map(|a| {
                    let token = token.clone();
                    tokio::spawn(async move {
                        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + a));
                        let mut got = Vec::new();
                        for i in 0..5 {
                            let reject = json!({"action": "nope", "nonce": format!("p-{a}-{i}")});
                            got.push(post_from(source, server, token.as_deref(), &reject).await);
                        }
                        got
                    })
                })
                .collect();
            let mut all = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            all
        })
    };
    let started = Instant::now();
    let answers = flood(Some(agent.token.clone()));
    let elapsed = started.elapsed();
    let recorded = answers.iter().filter(|s| **s == 400).count() as u64;
    let limited = answers.iter().filter(|s| **s == 429).count() as u64;
    assert_eq!(recorded + limited, 100, "{answers:?}");
    let bound = 10 + (2.0 * elapsed.as_secs_f64()).ceil() as u64;
    eprintln!("{recorded} recorded, {limited} limited in {elapsed:?} (bound {bound})");
    assert!(
        recorded >= 10 && recorded <= bound,
        "{recorded} recorded, bound {bound}"
    );
    assert_eq!(s.ledger_size() - size, recorded);

    let answers = flood(None);
    assert!(answers.iter().all(|s| *s == 401), "{answers:?}");
    assert_eq!(s.ledger_size() - size, recorded, "no 401 is recorded");
}

/// The entry names the principal, and `openexec verify` checks the
/// receipt holding it.
#[test]
fn the_principal_is_in_the_entry_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = mint(&data, Role::Agent, "acme", None, false);
    let s = server::start_in(&data, &[]).unwrap();
    let (status, r) = execute(
        &s,
        &agent.token,
        &json!({"action": "add", "payload": {"a": 1, "b": 2}, "nonce": "v-1"}),
    );
    assert_eq!(status, 200, "{r}");
    let entry = entry_of(&r);
    assert_eq!(entry["principal"], agent.id.as_str());
    assert_eq!(entry["tenant"], "acme");
    let receipt = dir.path().join("receipt.json");
    std::fs::write(&receipt, r.to_string()).unwrap();
    let (_, vkey) = s.get("/ledger/key");
    let out = std::process::Command::new(common::binary())
        .args(["verify", "--key", vkey.trim()])
        .arg(&receipt)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{line}");
    assert!(line.starts_with("OK: entry 0 (add executed"), "{line}");
}

/// `/openapi.json` declares the bearer scheme, and exactly the routes that
/// are not public name it.
#[test]
fn the_openapi_document_marks_the_protected_operations() {
    let s = server::start(&[]);
    let (status, doc) = s.get_json("/openapi.json");
    assert_eq!(status, 200);
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    for (path, method, access) in openexec::http::ROUTES {
        let operation = &doc["paths"][path][method.to_ascii_lowercase()];
        assert!(operation.is_object(), "{method} {path}");
        let secured = operation["security"] == json!([{"bearer": []}]);
        assert_eq!(
            secured,
            access != Access::Public,
            "{method} {path}: {operation}"
        );
    }
}

/// The Python agent example sends its token (`OPENEXEC_TOKEN`) and runs;
/// without it, it is refused.
#[test]
fn the_python_agent_passes_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let agent = mint(&data, Role::Agent, "acme", None, false);
    let s = server::start_in(&data, &[]).unwrap();
    let run = |token: Option<&str>| {
        let mut cmd = std::process::Command::new("python3");
        cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/agent.py"))
            .args(["--url", &s.base, "--out"])
            .arg(dir.path().join("receipt.json"))
            .env_remove("OPENEXEC_TOKEN");
        if let Some(t) = token {
            cmd.env("OPENEXEC_TOKEN", t);
        }
        cmd.output().expect("python3 runs")
    };
    let refused = run(None);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("401 unauthorized"),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    let out = run(Some(&agent.token));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("the action ran once"), "{stdout}");
}
