//! `redacted` entries: `redacts` written exactly on them, after `reason`,
//! naming an earlier entry, with one of the redaction reasons.

use super::tests::sample_draft;
use super::*;

fn time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
}

fn redaction(index: u64, of: u64, reason: &str) -> EntryDraft {
    EntryDraft {
        outcome: Outcome::Redacted,
        reason: reason.into(),
        replay_of: Some(ReplayOf {
            index: of,
            leaf_hash: Hash::sha256(b"redacted"),
        }),
        effects: None,
        ..sample_draft(index)
    }
}

#[test]
fn a_redaction_names_an_earlier_entry_under_redacts_and_is_not_indexed() {
    let entry = Entry::from_draft(
        redaction(5, 2, "personal_data"),
        "o",
        5,
        Hash::sha256(b"p"),
        time(),
    );
    assert_eq!(entry.replay_of, None);
    assert_eq!(entry.redacts.map(|r| r.index), Some(2));
    let bytes = entry.to_canonical_bytes().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains(r#""reason":"personal_data","redacts":{"index":2,"leaf_hash":""#),
        "{text}"
    );
    assert!(text.contains(r#""outcome":"redacted""#), "{text}");
    assert_eq!(Entry::from_canonical_bytes(&bytes).unwrap(), entry);
    assert_eq!(
        indexed_exec_id(&bytes),
        None,
        "the redacted attempt keeps its exec_id"
    );
    assert_eq!(replayed_index(&bytes), None);
    assert!(redaction(5, 2, "legal").check().is_ok());
}

#[test]
fn redacts_is_refused_where_it_does_not_belong() {
    let entry = Entry::from_draft(
        redaction(5, 2, "leaked_secret"),
        "o",
        5,
        Hash::sha256(b"p"),
        time(),
    );
    let text = String::from_utf8(entry.to_canonical_bytes().unwrap()).unwrap();
    // A reason outside the four, a later entry, itself.
    for (from, to) in [
        (r#""reason":"leaked_secret""#, r#""reason":"because""#),
        (r#""redacts":{"index":2,"#, r#""redacts":{"index":7,"#),
        (r#""redacts":{"index":2,"#, r#""redacts":{"index":5,"#),
    ] {
        let bad = text.replacen(from, to, 1);
        assert!(
            matches!(
                Entry::from_canonical_bytes(bad.as_bytes()),
                Err(EntryError::InvalidField(_))
            ),
            "{bad}"
        );
    }
    // Without redacts, or on another outcome.
    let start = text.find(r#","redacts":"#).unwrap();
    let end = start + text[start..].find('}').unwrap() + 1;
    let without = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(
        Entry::from_canonical_bytes(without.as_bytes()),
        Err(EntryError::InvalidField("redacts"))
    );
    let executed = text.replacen(r#""outcome":"redacted""#, r#""outcome":"executed""#, 1);
    assert_eq!(
        Entry::from_canonical_bytes(executed.as_bytes()),
        Err(EntryError::InvalidField("redacts"))
    );
    // A draft with a bad reason or without the entry it redacts.
    assert!(redaction(5, 2, "whim").check().is_err());
    let nameless = EntryDraft {
        replay_of: None,
        ..redaction(5, 2, "other")
    };
    assert_eq!(nameless.check(), Err(EntryError::InvalidField("redacts")));
    let with_effects = EntryDraft {
        effects: Some(Effects::None),
        ..redaction(5, 2, "other")
    };
    assert_eq!(
        with_effects.check(),
        Err(EntryError::InvalidField("effects"))
    );
}

#[test]
fn redaction_reasons_are_four_codes() {
    for reason in RedactionReason::ALL {
        assert_eq!(RedactionReason::parse(reason.as_str()), Some(reason));
        assert!(is_reason_code(reason.as_str()));
    }
    assert_eq!(RedactionReason::parse("Legal"), None);
    assert_eq!(RedactionReason::parse(""), None);
}
