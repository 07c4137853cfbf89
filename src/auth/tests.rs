use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone as _, Utc};
use proptest::prelude::*;

use super::token::{self, TOKEN_LEN};
use super::*;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap()
}

fn new_token(role: Role, tenant: &str) -> NewToken {
    NewToken {
        role,
        tenant: tenant.to_owned(),
        actions: Some(vec!["echo".to_owned()]),
        label: Some("ci runner".to_owned()),
        expires_at: None,
    }
}

/// A token's text split before and after the `_` that ends its id (the
/// secret may hold `_` as well).
fn split(text: &str) -> (&str, &str) {
    (&text[..21], &text[22..])
}

/// A set with one principal, and its token's text.
fn one(new: NewToken) -> (TokenSet, String, TokenRecord) {
    let mut set = TokenSet::default();
    let (token, record) = set.mint(new, t0()).unwrap();
    (set, token.reveal().to_owned(), record)
}

/// An authenticator over the records file in `dir`.
fn authenticator(dir: &std::path::Path) -> Authenticator {
    Authenticator::new(Arc::new(TokenStore::open(dir).unwrap()))
}

#[test]
fn a_minted_token_round_trips_to_its_principal() {
    let (set, text, record) = one(new_token(Role::Auditor, "acme"));
    assert_eq!(text.len(), TOKEN_LEN);
    assert!(text.starts_with(&format!("oex1_{}_", record.id)));
    let principal = set.verify(&text, t0()).unwrap();
    assert_eq!(principal, record.principal());
    assert_eq!(principal.role, Role::Auditor);
    assert_eq!(principal.tenant, "acme");
    assert!(principal.allows_action("echo"));
    assert!(!principal.allows_action("add"));
}

#[test]
fn tokens_and_ids_are_fresh_each_time() {
    let mut set = TokenSet::default();
    let (a, ra) = set.mint(new_token(Role::Agent, "t"), t0()).unwrap();
    let (b, rb) = set.mint(new_token(Role::Agent, "t"), t0()).unwrap();
    assert_ne!(a.reveal(), b.reveal());
    assert_ne!(ra.id, rb.id);
    assert_ne!(ra.secret_sha256, rb.secret_sha256);
}

#[test]
fn every_failure_kind_is_told_apart_and_displays_the_same() {
    let (mut set, text, record) = one(new_token(Role::Agent, "t"));
    let (id, secret) = split(&text);

    assert_eq!(set.verify("oex1_nope", t0()), Err(AuthError::Malformed));

    let other_id = if record.id.to_string() == "0000000000000000" {
        "1111111111111111"
    } else {
        "0000000000000000"
    };
    let unknown = format!("oex1_{other_id}_{secret}");
    assert_eq!(set.verify(&unknown, t0()), Err(AuthError::UnknownId));

    let mut flipped = secret.as_bytes().to_vec();
    flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
    let wrong = format!("{id}_{}", String::from_utf8(flipped).unwrap());
    assert_eq!(set.verify(&wrong, t0()), Err(AuthError::WrongSecret));

    set.revoke(record.id, t0()).unwrap();
    assert_eq!(set.verify(&text, t0()), Err(AuthError::Revoked));

    let mut expiring = new_token(Role::Agent, "t");
    expiring.expires_at = Some(t0());
    let (set, text, _) = one(expiring);
    assert_eq!(set.verify(&text, t0()), Err(AuthError::Expired));

    let all = [
        AuthError::Malformed,
        AuthError::UnknownId,
        AuthError::WrongSecret,
        AuthError::Revoked,
        AuthError::Expired,
    ];
    let codes: std::collections::HashSet<_> = all.iter().map(|e| e.code()).collect();
    assert_eq!(codes.len(), all.len());
    for e in all {
        assert_eq!(e.to_string(), AuthError::PUBLIC_MESSAGE);
    }
}

#[test]
fn a_revoked_token_with_a_wrong_secret_is_a_wrong_secret() {
    // Revocation and expiry are told only to a holder of the secret.
    let (mut set, text, record) = one(new_token(Role::Agent, "t"));
    set.revoke(record.id, t0()).unwrap();
    let (id, _) = split(&text);
    let wrong = format!("{id}_{}", "A".repeat(43));
    assert_eq!(set.verify(&wrong, t0()), Err(AuthError::WrongSecret));
}

#[test]
fn expiry_starts_at_the_expiry_instant() {
    let mut new = new_token(Role::Agent, "t");
    let at = t0() + Duration::hours(1);
    new.expires_at = Some(at);
    let (set, text, _) = one(new);
    assert!(set.verify(&text, at - Duration::nanoseconds(1)).is_ok());
    assert_eq!(set.verify(&text, at), Err(AuthError::Expired));
    assert_eq!(
        set.verify(&text, at + Duration::days(1)),
        Err(AuthError::Expired)
    );
}

#[test]
fn the_secret_hash_is_compared_in_constant_time() {
    // By construction: `SecretHash::matches` is `subtle::ConstantTimeEq`
    // over the 32 bytes, and it is the only comparison `verify` makes.
    let a = token::SecretHash::of(b"a");
    assert!(a.matches(&token::SecretHash::of(b"a")));
    assert!(!a.matches(&token::SecretHash::of(b"b")));
    let source = include_str!("token.rs");
    assert!(source.contains("self.0.ct_eq(&other.0).into()"));
    assert!(source.contains("if !self.secret_sha256.matches(presented)"));
    assert!(!source.contains("secret_sha256 =="));
    assert!(!source.contains("secret_sha256 !="));
}

#[test]
fn parsing_refuses_near_misses() {
    let (set, text, _) = one(new_token(Role::Agent, "t"));
    let (head, secret) = split(&text);
    let cases = [
        String::new(),
        text.to_uppercase(),
        text.replacen("oex1_", "oex2_", 1),
        format!("{text}A"),
        text[..TOKEN_LEN - 1].to_owned(),
        text.replacen('_', "-", 1),
        format!("{head}.{secret}"),
        format!(" {text}"),
        // The last character carries 4 unused bits: a non-canonical
        // encoding of the same secret is refused.
        format!(
            "{head}_{}{}",
            &secret[..42],
            if secret.ends_with('B') { 'C' } else { 'B' }
        ),
        // Multi-byte characters where the id's ASCII is expected.
        format!("oex1_é{}", &text[7..]),
    ];
    for case in cases {
        assert!(token::parse(&case).is_none() || case == text, "{case:?}");
        assert!(set.verify(&case, t0()).is_err(), "{case:?}");
    }
}

proptest! {
    #[test]
    fn verify_never_panics(text in "\\PC{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let (set, _, _) = one(new_token(Role::Agent, "t"));
        let _ = set.verify(&text, t0());
        let _ = bearer_token(&bytes);
        let lossy = String::from_utf8_lossy(&bytes);
        let _ = set.verify(&lossy, t0());
    }

    #[test]
    fn tokens_shaped_right_but_random_never_panic(id in "[0-9a-f]{16}", secret in "[A-Za-z0-9_-]{43}") {
        let (set, _, _) = one(new_token(Role::Agent, "t"));
        let result = set.verify(&format!("oex1_{id}_{secret}"), t0());
        prop_assert!(result.is_err());
    }
}

#[test]
fn debug_output_holds_no_secret_or_hash() {
    let (set, text, record) = one(new_token(Role::Admin, "t"));
    let secret = split(&text).1;
    let hash = hex::encode(Sha256Hex::of(secret));
    let mut set_for_token = TokenSet::default();
    let (token, _) = set_for_token
        .mint(new_token(Role::Admin, "t"), t0())
        .unwrap();
    let debugs = [
        format!("{record:?}"),
        format!("{:?}", record.principal()),
        format!("{set:?}"),
        format!("{token:?}"),
        format!("{:?}", record.secret_sha256),
    ];
    for debug in debugs {
        assert!(!debug.contains(secret), "{debug}");
        assert!(!debug.contains(&hash[..16]), "{debug}");
        assert!(!debug.contains(&token.reveal()[22..]), "{debug}");
    }
}

/// The hex of the SHA-256 the file stores, computed independently.
struct Sha256Hex;

impl Sha256Hex {
    fn of(secret_text: &str) -> [u8; 32] {
        use base64::Engine as _;
        use sha2::Digest as _;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(secret_text)
            .unwrap();
        sha2::Sha256::digest(secret).into()
    }
}

#[test]
fn the_file_holds_the_hash_of_the_secret() {
    let (set, text, record) = one(new_token(Role::Agent, "t"));
    let json = String::from_utf8(set.to_json().unwrap()).unwrap();
    let secret = split(&text).1;
    assert!(json.contains(&hex::encode(Sha256Hex::of(secret))));
    assert!(!json.contains(secret));
    let back = TokenSet::from_json(json.as_bytes()).unwrap();
    assert_eq!(back.get(record.id), Some(&record));
    assert!(back.verify(&text, t0()).is_ok());
}

#[test]
fn files_breaking_a_rule_are_refused() {
    let (set, _, _) = one(new_token(Role::Agent, "t"));
    let good = String::from_utf8(set.to_json().unwrap()).unwrap();
    let value: serde_json::Value = serde_json::from_str(&good).unwrap();
    let record = value["principals"][0].clone();
    let cases = [
        serde_json::json!({"version": 2, "principals": []}),
        serde_json::json!({"version": 1, "principals": [record.clone(), record.clone()]}),
        serde_json::json!({"version": 1, "principals": [], "extra": 1}),
        {
            let mut r = record.clone();
            r["tenant"] = "".into();
            serde_json::json!({"version": 1, "principals": [r]})
        },
        {
            let mut r = record.clone();
            r["role"] = "root".into();
            serde_json::json!({"version": 1, "principals": [r]})
        },
        {
            let mut r = record;
            r["secret_sha256"] = "abcd".into();
            serde_json::json!({"version": 1, "principals": [r]})
        },
    ];
    for case in cases {
        assert!(
            TokenSet::from_json(case.to_string().as_bytes()).is_err(),
            "{case}"
        );
    }
}

#[test]
fn principal_ids_are_16_lowercase_hex() {
    let id = PrincipalId::random();
    assert_eq!(PrincipalId::parse(&id.to_string()), Some(id));
    assert_eq!(id.to_string().len(), 16);
    for bad in [
        "",
        "0123456789ABCDEF",
        "0123456789abcde",
        "0123456789abcdef0",
        "0123456789abcdeg",
    ] {
        assert_eq!(PrincipalId::parse(bad), None, "{bad}");
    }
    assert_eq!(
        serde_json::to_string(&Role::Auditor).unwrap(),
        "\"auditor\""
    );
    assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
    assert!("Admin".parse::<Role>().is_err());
}

#[test]
fn bearer_headers_are_read_case_insensitively() {
    assert_eq!(bearer_token(b"Bearer abc"), Some("abc"));
    assert_eq!(bearer_token(b"bearer   abc "), Some("abc"));
    assert_eq!(bearer_token(b"BEARER abc"), Some("abc"));
    assert_eq!(bearer_token(b"Basic abc"), None);
    assert_eq!(bearer_token(b"Bearer"), None);
    assert_eq!(bearer_token(b"Bearer "), None);
    assert_eq!(bearer_token(b"Bearerabc"), None);
    assert_eq!(bearer_token(b"Bearer \xff"), None);
}

#[test]
fn the_authenticator_reads_the_header_against_the_store() {
    let dir = tempfile::tempdir().unwrap();
    assert!(!authenticator(dir.path()).is_enabled());
    assert_eq!(authenticator(dir.path()).authenticate(None, t0()), Ok(None));

    let (token, record) = store::create(dir.path(), new_token(Role::Agent, "acme"), t0()).unwrap();
    let auth = authenticator(dir.path());
    assert!(auth.is_enabled());
    let header = format!("Bearer {}", token.reveal());
    let principal = auth
        .authenticate(Some(header.as_bytes()), t0())
        .unwrap()
        .unwrap();
    assert_eq!(principal.id, record.id);
    assert_eq!(auth.authenticate(None, t0()), Ok(None));
    assert_eq!(
        auth.authenticate(Some(token.reveal().as_bytes()), t0()),
        Err(AuthError::Malformed)
    );

    store::revoke(dir.path(), record.id, t0()).unwrap();
    assert!(auth.store().reload().unwrap());
    assert_eq!(
        auth.authenticate(Some(header.as_bytes()), t0()),
        Err(AuthError::Revoked)
    );
    // A revoked last token leaves authentication on.
    assert!(auth.is_enabled());
}

#[test]
fn a_bound_certificate_authenticates_its_principal_while_it_stands() {
    let (mut set, _, record) = one(new_token(Role::Agent, "acme"));
    let cert = CertFingerprint::of(b"client certificate DER");
    let other = CertFingerprint::of(b"another certificate DER");
    assert_eq!(set.verify_cert(&cert, t0()), Err(AuthError::UnknownId));
    set.bind_cert(record.id, cert).unwrap();
    assert_eq!(set.verify_cert(&cert, t0()), Ok(record.principal()));
    assert_eq!(set.verify_cert(&other, t0()), Err(AuthError::UnknownId));
    // The fingerprint round-trips through the file as 64 lowercase hex.
    let json = String::from_utf8(set.to_json().unwrap()).unwrap();
    assert!(
        json.contains(&format!("\"cert_sha256\": \"{cert}\"")),
        "{json}"
    );
    let reread = TokenSet::from_json(json.as_bytes()).unwrap();
    assert_eq!(reread.verify_cert(&cert, t0()), Ok(record.principal()));
    let upper = json.replace(&cert.to_string(), &cert.to_string().to_uppercase());
    assert!(TokenSet::from_json(upper.as_bytes()).is_err());
    // One certificate for one principal.
    let (_, second) = set.mint(new_token(Role::Agent, "acme"), t0()).unwrap();
    assert!(set.bind_cert(second.id, cert).is_err());
    set.revoke(record.id, t0());
    assert_eq!(set.verify_cert(&cert, t0()), Err(AuthError::Revoked));
}

#[test]
fn a_record_without_a_certificate_writes_no_field() {
    let (set, _, _) = one(new_token(Role::Agent, "acme"));
    let json = String::from_utf8(set.to_json().unwrap()).unwrap();
    assert!(!json.contains("cert_sha256"), "{json}");
}
