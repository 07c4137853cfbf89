use super::*;

pub(crate) fn sample_draft(n: u64) -> EntryDraft {
    EntryDraft {
        exec_id: format!("exec-{n}"),
        tenant: "tenant-001".into(),
        action: "echo".into(),
        nonce: format!("nonce-{n}"),
        request_hash: Hash::sha256(b"request"),
        payload_commitment: Hash::sha256(b"payload"),
        result_commitment: Some(Hash::sha256(b"result")),
        approval: ApprovalSummary::none(),
        outcome: Outcome::Executed,
        reason: "ok".into(),
        replay_of: None,
        effects: None,
        registry: None,
        principal: None,
    }
}

fn sample_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T23:40:00.123456Z")
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn round_trip_is_exact() {
    let e = Entry::from_draft(
        sample_draft(0),
        "example.com/log",
        0,
        GENESIS_PREV,
        sample_time(),
    );
    let bytes = e.to_canonical_bytes().unwrap();
    assert_eq!(Entry::from_canonical_bytes(&bytes).unwrap(), e);
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.starts_with(r#"{"action":"echo","approval":{"expires_at":null,"id":null,"key_id":null,"kind":"none"},"exec_id":"exec-0","index":0,"#), "{text}");
    assert!(text.contains(r#""time":"2026-11-21T23:40:00.123456Z""#));
}

/// The store confirms a consumed approval with `entry_approval_key`
/// over the entry's bytes; the service consumed `consume_key` of the
/// summary it put in the entry. They must agree for every kind.
#[test]
fn an_entrys_approval_key_is_the_consume_key_of_its_summary() {
    let approvals = [
        (ApprovalKind::None, None, None),
        (ApprovalKind::ClawshieldV1, Some("ap-1"), Some("k1")),
        (ApprovalKind::OpenexecV2, Some("ap-2"), Some("k2")),
        (ApprovalKind::OpenexecV2, Some("ap-3"), None),
    ];
    for (kind, id, key_id) in approvals {
        let approval = ApprovalSummary {
            kind,
            id: id.map(str::to_owned),
            key_id: key_id.map(str::to_owned),
            expires_at: Some("2026-11-22T00:00:00Z".into()),
        };
        let draft = EntryDraft {
            approval: approval.clone(),
            ..sample_draft(1)
        };
        let e = Entry::from_draft(draft, "example.com/log", 1, GENESIS_PREV, sample_time());
        let bytes = e.to_canonical_bytes().unwrap();
        let expected = approval.consume_key("tenant-001");
        assert_eq!(entry_approval_key(&bytes), expected, "{kind:?}");
        assert_eq!(
            expected.is_some(),
            kind != ApprovalKind::None && key_id.is_some()
        );
    }
    assert_eq!(entry_approval_key(b"not an entry"), None);
}

#[test]
fn non_canonical_unknown_and_trailing_are_refused() {
    let e = Entry::from_draft(sample_draft(1), "o", 1, Hash::sha256(b"p"), sample_time());
    let text = String::from_utf8(e.to_canonical_bytes().unwrap()).unwrap();
    let spaced = text.replacen(':', ": ", 1);
    assert_eq!(
        Entry::from_canonical_bytes(spaced.as_bytes()),
        Err(EntryError::NonCanonical)
    );
    let trailing = format!("{text}\n");
    assert_eq!(
        Entry::from_canonical_bytes(trailing.as_bytes()),
        Err(EntryError::NonCanonical)
    );
    let v2 = text.replace(r#""v":1"#, r#""v":2"#);
    assert_eq!(
        Entry::from_canonical_bytes(v2.as_bytes()),
        Err(EntryError::UnknownVersion(2))
    );
    let extra = text.replacen('{', r#"{"zz":1,"#, 1);
    assert!(matches!(
        Entry::from_canonical_bytes(extra.as_bytes()),
        Err(EntryError::Malformed(_))
    ));
    let tz = text.replace("23:40:00.123456Z", "23:40:00.123456+00:00");
    assert_eq!(
        Entry::from_canonical_bytes(tz.as_bytes()),
        Err(EntryError::NonCanonical)
    );
}

proptest::proptest! {
    #[test]
    fn key_ordered_text_is_the_canonical_text(
        texts in proptest::collection::vec(".{0,12}|[\\x00-\\x1f\"\\\\\u{7f}\u{2028}\u{fffd}é😀/]{0,6}", 8),
        hashes in proptest::collection::vec(proptest::prelude::any::<[u8; 32]>(), 4),
        index in 1..=MAX_INDEX,
        optional in proptest::prelude::any::<[bool; 4]>(),
        micros in 0i64..4_102_444_800_000_000,
        replayed in proptest::prelude::any::<Option<u64>>(),
    ) {
        let some = |on: bool, text: &String| on.then(|| text.clone());
        let draft = EntryDraft {
            exec_id: texts[0].clone(),
            tenant: texts[1].clone(),
            action: texts[2].clone(),
            nonce: texts[3].clone(),
            request_hash: Hash::from_bytes(hashes[0]),
            payload_commitment: Hash::from_bytes(hashes[1]),
            result_commitment: optional[0].then(|| Hash::from_bytes(hashes[2])),
            approval: ApprovalSummary {
                kind: ApprovalKind::OpenexecV2,
                id: some(optional[1], &texts[4]),
                key_id: some(optional[2], &texts[5]),
                expires_at: some(optional[3], &texts[6]),
            },
            outcome: if replayed.is_some() { Outcome::Replayed } else { Outcome::Rejected },
            reason: "approval_expired".into(),
            replay_of: replayed.map(|r| ReplayOf {
                index: r % index,
                leaf_hash: Hash::from_bytes(hashes[2]),
            }),
            effects: None,
            registry: optional[1].then(|| Hash::from_bytes(hashes[0])),
            principal: optional[2].then(|| hex::encode(&hashes[1][..8])),
        };
        let origin = format!("o{}", texts[7]);
        let time = DateTime::from_timestamp_micros(micros).unwrap();
        let entry = Entry::from_draft(draft, &origin, index, Hash::from_bytes(hashes[3]), time);
        // The RFC 8785 library's text, which the written text must be.
        let canonical = entry.rfc8785_bytes().unwrap();
        proptest::prop_assert_eq!(entry.key_ordered_bytes(), Some(canonical.clone()));
        proptest::prop_assert_eq!(entry.to_canonical_bytes().unwrap(), canonical.clone());
        proptest::prop_assert_eq!(Entry::from_canonical_bytes(&canonical).unwrap(), entry);
    }
}

fn sample_replay(index: u64, of: u64) -> Entry {
    let draft = EntryDraft {
        outcome: Outcome::Replayed,
        reason: "replay_of_executed".into(),
        replay_of: Some(ReplayOf {
            index: of,
            leaf_hash: Hash::sha256(b"original"),
        }),
        ..sample_draft(index)
    };
    Entry::from_draft(draft, "o", index, Hash::sha256(b"p"), sample_time())
}

/// `replay_of` is written exactly on a replay, after `reason`, and read
/// back; an entry with it where it does not belong, without it on a
/// replay, pointing at itself or later, or spelled `null`, is refused.
#[test]
fn a_replay_names_an_earlier_entry_and_no_other_entry_names_one() {
    let replay = sample_replay(5, 3);
    let bytes = replay.to_canonical_bytes().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(r#""reason":"replay_of_executed","replay_of":{"index":3,"leaf_hash":""#),
        "{text}"
    );
    assert_eq!(Entry::from_canonical_bytes(&bytes).unwrap(), replay);
    assert_eq!(replayed_index(&bytes), Some(3));
    assert_eq!(indexed_exec_id(&bytes), None);

    let plain = Entry::from_draft(sample_draft(5), "o", 5, Hash::sha256(b"p"), sample_time());
    let plain_bytes = plain.to_canonical_bytes().unwrap();
    assert!(!String::from_utf8_lossy(&plain_bytes).contains("replay_of"));
    assert_eq!(replayed_index(&plain_bytes), None);

    let invalid = Some(EntryError::InvalidField("replay_of"));
    let mut without = replay.clone();
    without.replay_of = None;
    assert_eq!(without.to_canonical_bytes().err(), invalid);
    let mut stray = plain.clone();
    stray.replay_of = replay.replay_of;
    assert_eq!(stray.to_canonical_bytes().err(), invalid);
    for of in [5, 6, MAX_INDEX] {
        assert_eq!(
            sample_replay(5, of).to_canonical_bytes().err(),
            invalid,
            "{of}"
        );
    }
    // The same checks when the bytes are read.
    let plain_text = String::from_utf8(plain_bytes).unwrap();
    let outcome_only = plain_text.replace(r#""outcome":"executed""#, r#""outcome":"replayed""#);
    assert_eq!(
        Entry::from_canonical_bytes(outcome_only.as_bytes()).err(),
        invalid
    );
    let pointer = r#""replay_of":{"index":3,"#;
    let stray_text = text.replace(r#""outcome":"replayed""#, r#""outcome":"executed""#);
    assert!(stray_text.contains(pointer));
    assert_eq!(
        Entry::from_canonical_bytes(stray_text.as_bytes()).err(),
        invalid
    );
    let later = text.replace(pointer, r#""replay_of":{"index":9,"#);
    assert_eq!(Entry::from_canonical_bytes(later.as_bytes()).err(), invalid);
    let null = plain_text.replace(r#""request_hash""#, r#""replay_of":null,"request_hash""#);
    assert_eq!(
        Entry::from_canonical_bytes(null.as_bytes()),
        Err(EntryError::NonCanonical)
    );
    let extra = text.replace(pointer, r#""replay_of":{"exec_id":"x","index":3,"#);
    assert!(matches!(
        Entry::from_canonical_bytes(extra.as_bytes()),
        Err(EntryError::Malformed(_))
    ));

    // A draft is held to the checks it can be held to alone.
    assert_eq!(sample_draft(1).check(), Ok(()));
    let replay_draft = EntryDraft {
        outcome: Outcome::Replayed,
        ..sample_draft(1)
    };
    assert_eq!(replay_draft.check().err(), invalid);
}

/// `principal` is written between `prev` and `reason` when present,
/// omitted (never `null`) when absent, and must be 16 lowercase hex.
#[test]
fn a_principal_is_an_id_written_in_key_order() {
    let draft = EntryDraft {
        principal: Some("0123456789abcdef".into()),
        ..sample_draft(2)
    };
    let e = Entry::from_draft(draft, "o", 2, Hash::sha256(b"p"), sample_time());
    let bytes = e.to_canonical_bytes().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(r#"","principal":"0123456789abcdef","reason":"ok","#),
        "{text}"
    );
    assert_eq!(Entry::from_canonical_bytes(&bytes).unwrap(), e);
    let plain = Entry::from_draft(sample_draft(2), "o", 2, Hash::sha256(b"p"), sample_time());
    let plain_text = String::from_utf8(plain.to_canonical_bytes().unwrap()).unwrap();
    assert!(!plain_text.contains("principal"));
    let null = plain_text.replace(r#""reason""#, r#""principal":null,"reason""#);
    assert_eq!(
        Entry::from_canonical_bytes(null.as_bytes()),
        Err(EntryError::NonCanonical)
    );
    for bad in [
        "0123456789ABCDEF",
        "0123456789abcde",
        "",
        "0123456789abcdefa",
    ] {
        let d = EntryDraft {
            principal: Some(bad.into()),
            ..sample_draft(2)
        };
        assert_eq!(
            d.check(),
            Err(EntryError::InvalidField("principal")),
            "{bad}"
        );
        let e = Entry::from_draft(d, "o", 2, Hash::sha256(b"p"), sample_time());
        assert_eq!(
            e.to_canonical_bytes(),
            Err(EntryError::InvalidField("principal"))
        );
        let forged = text.replace("0123456789abcdef", bad);
        assert!(
            Entry::from_canonical_bytes(forged.as_bytes()).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn reason_codes_are_constrained() {
    assert!(is_reason_code("approval_expired"));
    assert!(!is_reason_code(""));
    assert!(!is_reason_code("Bad Code"));
    let mut d = sample_draft(0);
    d.reason = "NO".into();
    let e = Entry::from_draft(d, "o", 0, GENESIS_PREV, sample_time());
    assert_eq!(
        e.to_canonical_bytes(),
        Err(EntryError::InvalidField("reason"))
    );
}
