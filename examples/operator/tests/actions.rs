//! The operator's actions over HTTP, against the real binary: what each
//! does, that a replay never repeats it, what `GET /handlers` says of
//! them, that a refused payload has no effect, and that the binary's other
//! subcommands work on what it wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on broken invariants

mod common;

use std::process::Command;

use common::{email, parse_message, transfer, Site};
use serde_json::{json, Value};

#[test]
fn send_email_writes_one_rfc_5322_message_and_a_replay_writes_none() {
    let site = Site::new();
    let op = site.start("");
    let request = email("mail-1", "alice@example.org");
    let (status, r) = op.execute(&request);
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("executed")),
        "{r}"
    );
    let message_id = r["result"]["message_id"].as_str().unwrap().to_owned();
    let file = r["result"]["file"].as_str().unwrap().to_owned();
    assert_eq!(site.messages(), std::slice::from_ref(&file));

    let (headers, body) = parse_message(&site.outbox().root().join("new").join(&file));
    let header = |name: &str| {
        let values: Vec<&String> = headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(values.len(), 1, "one {name} field");
        values[0].clone()
    };
    assert_eq!(header("From"), "ops@example.org");
    assert_eq!(header("To"), "alice@example.org");
    assert_eq!(header("Subject"), "Quarterly report");
    assert_eq!(header("Message-ID"), format!("<{message_id}>"));
    assert_eq!(header("MIME-Version"), "1.0");
    assert_eq!(header("Content-Type"), "text/plain; charset=utf-8");
    assert!(chrono::DateTime::parse_from_rfc2822(&header("Date")).is_ok());
    assert_eq!(
        body,
        "Hello,\r\nthe report is attached.\r\n\r\n-- \r\nops\r\n"
    );
    // The Message-ID is the idempotency key at the sender's domain.
    let (key, domain) = message_id.split_once('@').unwrap();
    assert_eq!((key.len(), domain), (64, "example.org"));

    // The same nonce and request again: a replay, with the same result.
    let (status, again) = op.execute(&request);
    assert_eq!(
        (status, again["replayed"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    assert_eq!(again["result"], r["result"]);
    assert_eq!(site.messages().len(), 1);
    let entries = op.entries_of("mail-1");
    assert_eq!(entries[0]["outcome"], "executed");
    assert_eq!(entries[0]["effects"], "at-most-once");
    assert_eq!(entries[1]["outcome"], "replayed");
}

#[test]
fn transfer_moves_money_and_a_replay_moves_none() {
    let site = Site::new();
    let op = site.start("");
    let request = transfer("pay-1", "alice", "bob", 2500);
    let (status, r) = op.execute(&request);
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("executed")),
        "{r}"
    );
    let result = &r["result"];
    assert_eq!(
        (
            &result["from_balance"],
            &result["to_balance"],
            &result["already_applied"]
        ),
        (&json!(7500), &json!(2500), &json!(false))
    );
    let transfer_id = result["transfer_id"].as_str().unwrap().to_owned();
    assert_eq!(transfer_id.len(), 64);

    let (status, again) = op.execute(&request);
    assert_eq!(
        (status, again["replayed"].as_bool()),
        (200, Some(true)),
        "{again}"
    );
    assert_eq!(again["result"], r["result"]);

    // Another nonce is another transfer, with another key.
    let (_, second) = op.execute(&transfer("pay-2", "alice", "bob", 500));
    assert_eq!(second["result"]["from_balance"], 7000);
    assert_ne!(second["result"]["transfer_id"], transfer_id.as_str());

    // Insufficient funds: recorded failed, nothing moves.
    let (status, poor) = op.execute(&transfer("pay-3", "bob", "alice", 1_000_000));
    assert_eq!(
        (status, poor["outcome"].as_str()),
        (500, Some("failed")),
        "{poor}"
    );
    assert!(
        poor["detail"]
            .as_str()
            .unwrap()
            .contains("insufficient funds"),
        "{poor}"
    );
    assert_eq!(
        op.entries_of("pay-1")[0]["effects"],
        "idempotent-downstream"
    );

    op.stop();
    let bank = site.bank();
    assert_eq!(bank.balance("alice").unwrap(), Some(7000));
    assert_eq!(bank.balance("bob").unwrap(), Some(3000));
    assert_eq!(bank.transfer_count(), 3); // two applied, one refused
    assert!(bank.transfer(&transfer_id).unwrap().is_some());
}

#[test]
fn handlers_lists_both_actions_with_their_effects_class_and_schema() {
    let site = Site::new();
    let op = site.start("");
    let (status, h) = op.get("/handlers");
    assert_eq!(status, 200);
    assert_eq!(h["binary"]["name"], "openexec-example-operator");
    // Base64 SHA-256, as every hash on the wire.
    assert_eq!(h["fingerprint"].as_str().unwrap().len(), 44);
    let handler = |name: &str| -> Value {
        h["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))
            .clone()
    };
    let send = handler("send_email");
    assert_eq!(send["effects"], "at-most-once");
    let props = &send["input_schema"]["properties"];
    assert!(props["to"].is_object() && props["subject"].is_object() && props["body"].is_object());
    assert_eq!(send["input_schema"]["additionalProperties"], false);
    assert!(send["output_schema"]["properties"]["message_id"].is_object());
    let pay = handler("transfer");
    assert_eq!(pay["effects"], "idempotent-downstream");
    assert_eq!(
        pay["input_schema"]["properties"]["amount_cents"]["type"],
        "integer"
    );
    assert_eq!(
        pay["input_schema"]["required"],
        json!(["from", "to", "amount_cents"])
    );
    // The demo actions are there too.
    assert_eq!(handler("counter")["effects"], "at-most-once");
    assert_eq!(handler("echo")["effects"], "none");
}

#[test]
fn an_invalid_payload_is_refused_400_and_has_no_effect() {
    let site = Site::new();
    let op = site.start("");
    let mail = |to: &str, subject: &str, body: &str| {
        json!({"action": "send_email", "nonce": "bad-mail",
               "payload": {"to": to, "subject": subject, "body": body}})
    };
    let refused = [
        mail("alice@example.org", "Hi\r\nBcc: everyone@example.org", "x"),
        mail("alice@example.org", "Hi\nBcc: everyone@example.org", "x"),
        mail("alice@example.org\r\nBcc: everyone@example.org", "Hi", "x"),
        mail("not an address", "Hi", "x"),
        mail("alice@example.org", "Hi", &"x\n".repeat(20_000)),
        json!({"action": "send_email", "nonce": "bad-mail", "payload": {"to": "alice@example.org", "subject": "Hi"}}),
        json!({"action": "send_email", "nonce": "bad-mail",
               "payload": {"to": "alice@example.org", "subject": "Hi", "body": "x", "bcc": "eve@example.org"}}),
        transfer("bad-pay", "alice", "bob", 0),
        transfer("bad-pay", "alice", "alice", 5),
        transfer("bad-pay", "alice", "bob\nmallory", 5),
        json!({"action": "transfer", "nonce": "bad-pay", "payload": {"from": "alice", "to": "bob", "amount_cents": -5}}),
    ];
    for request in &refused {
        let (status, r) = op.execute(request);
        assert_eq!(
            (status, r["code"].as_str()),
            (400, Some("invalid_payload")),
            "{request} -> {r}"
        );
    }
    assert_eq!(site.messages(), Vec::<String>::new());
    // The nonce stays free for the corrected request.
    let (status, r) = op.execute(&transfer("bad-pay", "alice", "bob", 5));
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("executed")),
        "{r}"
    );
    op.stop();
    assert_eq!(site.bank().transfer_count(), 1);
}

#[test]
fn the_operators_verify_and_audit_subcommands_work_on_what_it_wrote() {
    let site = Site::new();
    let op = site.start("");
    let (_, r) = op.execute(&email("mail-v", "bob@example.org"));
    let response = site.dir.path().join("response.json");
    std::fs::write(&response, r.to_string()).unwrap();
    let key = op.get_text("/ledger/key");
    op.stop();
    let bin = env!("CARGO_BIN_EXE_openexec-operator");
    let verify = Command::new(bin)
        .args(["verify", "--key", key.trim()])
        .arg(&response)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success() && stdout.starts_with("OK:"),
        "{stdout}"
    );
    let audit = Command::new(bin)
        .arg("audit")
        .arg("--data")
        .arg(site.data())
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "{}{}",
        String::from_utf8_lossy(&audit.stdout),
        String::from_utf8_lossy(&audit.stderr)
    );
}
