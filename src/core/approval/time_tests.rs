//! Approval times at the edges: every date and duration computation on
//! `issued_at` and `expires_at` is checked, and a time outside
//! [`APPROVAL_YEARS`] is refused as [`ApprovalError::TimeOutOfRange`]
//! before any arithmetic, for v1 and v2, naive and zoned, at both ends.
//! A property test compares [`verify`] with a model in 128-bit
//! nanoseconds over times, skews, lifetimes and clocks across chrono's
//! whole range.

use base64::Engine as _;
use chrono::Datelike as _;
use proptest::prelude::*;
use serde_json::json;

use super::*;

/// A fixed clock, well inside the range.
fn noon() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn policy(skew: Duration, max_lifetime: Duration) -> ApprovalPolicy {
    ApprovalPolicy {
        keys: vec![ApproverKey::new(
            SigningKey::from_bytes(&[9; 32]).verifying_key(),
        )],
        tenant: Some("t".into()),
        max_lifetime,
        skew,
    }
}

fn default_policy() -> ApprovalPolicy {
    policy(Duration::seconds(30), Duration::hours(1))
}

/// The request every artifact here names.
struct Request {
    payload: Value,
    hash: Hash,
}

impl Request {
    fn new() -> Self {
        Self {
            payload: json!({"msg": "times"}),
            hash: Hash::sha256(b"the request"),
        }
    }

    fn as_ref(&self) -> RequestRef<'_> {
        RequestRef {
            action: "echo",
            payload: &self.payload,
            request_hash: &self.hash,
            tenant: Some("t"),
        }
    }

    /// A v1 artifact for this request with the given times and a signature
    /// that verifies under no key.
    fn v1(&self, issued_at: &str, expires_at: &str) -> Artifact {
        Artifact::V1(V1Artifact {
            approval_id: "ap".into(),
            tenant_id: "t".into(),
            action_hash: v1_action_hash("echo", &self.payload),
            issued_at: issued_at.into(),
            expires_at: expires_at.into(),
            signature: STANDARD.encode([7u8; 64]),
        })
    }

    /// A v2 artifact for this request, likewise.
    fn v2(&self, issued_at: &str, expires_at: &str) -> Artifact {
        Artifact::V2(V2Artifact {
            format: V2_FORMAT.into(),
            approval_id: "ap".into(),
            tenant: "t".into(),
            request_hash: self.hash.to_base64(),
            key_id: "0000000000000000".into(),
            issued_at: issued_at.into(),
            expires_at: expires_at.into(),
            signature: STANDARD.encode([7u8; 64]),
        })
    }
}

fn naive(t: DateTime<Utc>) -> String {
    t.naive_utc().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The review's input: a v1 `expires_at` near chrono's largest date, with
/// any signature, overflowed when the skew was added to it.
#[test]
fn an_expiry_near_the_largest_date_is_out_of_range_not_a_panic() {
    let r = Request::new();
    let a = r.v1("2026-11-21T11:59:00", "+262142-12-31T23:59:59");
    assert_eq!(
        verify(&a, r.as_ref(), &default_policy(), noon()),
        Err(ApprovalError::TimeOutOfRange("expires_at"))
    );
    assert_eq!(
        ApprovalError::TimeOutOfRange("expires_at").code(),
        "approval_time_out_of_range"
    );
}

/// Both ends of chrono's range and both ends of the accepted years, naive
/// (v1) and zoned (v1 and v2), in either field.
#[test]
fn times_outside_the_accepted_years_are_refused_in_either_field_at_both_ends() {
    let r = Request::new();
    let fine_issued = "2026-11-21T11:59:00Z";
    let fine_expires = "2026-11-21T12:01:00Z";
    let zoned = [
        // 9999-12-31T23:59:59 one minute west of UTC is 10000-01-01 in UTC.
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:30:00-23:59",
        // 0000-01-01T00:00 east of UTC is year -1 in UTC.
        "0000-01-01T00:00:00+00:01",
        "0000-01-01T12:00:00+23:59",
    ];
    let naive_times = [
        naive(DateTime::<Utc>::MAX_UTC),
        naive(DateTime::<Utc>::MIN_UTC),
        "+262142-12-31T23:59:59".to_owned(),
        "+10000-01-01T00:00:00".to_owned(),
        "-0001-12-31T23:59:59".to_owned(),
    ];
    for skew in [Duration::zero(), Duration::seconds(30), Duration::MAX] {
        let p = policy(skew, Duration::hours(1));
        for text in zoned {
            for make in [Request::v1, Request::v2] {
                assert_eq!(
                    verify(&make(&r, fine_issued, text), r.as_ref(), &p, noon()),
                    Err(ApprovalError::TimeOutOfRange("expires_at")),
                    "expires_at {text}"
                );
                assert_eq!(
                    verify(&make(&r, text, fine_expires), r.as_ref(), &p, noon()),
                    Err(ApprovalError::TimeOutOfRange("issued_at")),
                    "issued_at {text}"
                );
            }
        }
        for text in &naive_times {
            assert_eq!(
                verify(&r.v1("2026-11-21T11:59:00", text), r.as_ref(), &p, noon()),
                Err(ApprovalError::TimeOutOfRange("expires_at")),
                "expires_at {text}"
            );
            assert_eq!(
                verify(&r.v1(text, "2026-11-21T12:01:00"), r.as_ref(), &p, noon()),
                Err(ApprovalError::TimeOutOfRange("issued_at")),
                "issued_at {text}"
            );
        }
    }
    // The first and last instants of the accepted years are in range: they
    // reach the ordinary checks.
    let p = default_policy();
    for (issued, expires, want) in [
        (
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:30:00Z",
            ApprovalError::Expired,
        ),
        (
            "9999-12-31T23:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            ApprovalError::NotYetValid,
        ),
        (
            "9999-12-31T23:59:59+00:00",
            "9999-12-31T23:59:59Z",
            ApprovalError::NotYetValid,
        ),
    ] {
        for make in [Request::v1, Request::v2] {
            assert_eq!(
                verify(&make(&r, issued, expires), r.as_ref(), &p, noon()),
                Err(want.clone()),
                "{issued} {expires}"
            );
        }
    }
}

/// A skew that carries an in-range time out of chrono's range is refused
/// the same way, with a clock at either end of the range.
#[test]
fn allowances_that_leave_chronos_range_are_refused_not_a_panic() {
    let r = Request::new();
    let a = r.v2("2026-11-21T11:59:00Z", "2026-11-21T12:01:00Z");
    for now in [noon(), DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MIN_UTC] {
        for skew in [Duration::MAX, Duration::MIN] {
            for lifetime in [Duration::MAX, Duration::MIN, Duration::zero()] {
                let got = verify(&a, r.as_ref(), &policy(skew, lifetime), now);
                assert!(
                    matches!(got, Err(ApprovalError::TimeOutOfRange(_))),
                    "{skew} {lifetime} {now}: {got:?}"
                );
            }
        }
    }
}

/// How an artifact kind reads its times.
type TimeParser = fn(&str) -> Option<DateTime<Utc>>;

/// Nanoseconds since the epoch, exactly.
fn nanos(t: DateTime<Utc>) -> i128 {
    i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
}

fn duration_nanos(d: Duration) -> i128 {
    i128::from(d.num_seconds()) * 1_000_000_000 + i128::from(d.subsec_nanos())
}

/// What `check_times` must decide, computed in 128-bit nanoseconds where
/// nothing overflows.
fn model(
    issued: DateTime<Utc>,
    expires: DateTime<Utc>,
    policy: &ApprovalPolicy,
    now: DateTime<Utc>,
) -> Result<(), ApprovalError> {
    let representable =
        |n: i128| (nanos(DateTime::<Utc>::MIN_UTC)..=nanos(DateTime::<Utc>::MAX_UTC)).contains(&n);
    for (t, field) in [(expires, "expires_at"), (issued, "issued_at")] {
        if !(0..=9999).contains(&t.year()) {
            return Err(ApprovalError::TimeOutOfRange(field));
        }
    }
    let skew = duration_nanos(policy.skew);
    let latest = nanos(expires) + skew;
    if !representable(latest) {
        return Err(ApprovalError::TimeOutOfRange("expires_at"));
    }
    if nanos(now) > latest {
        return Err(ApprovalError::Expired);
    }
    let earliest = nanos(issued) - skew;
    if !representable(earliest) {
        return Err(ApprovalError::TimeOutOfRange("issued_at"));
    }
    if earliest > nanos(now) {
        return Err(ApprovalError::NotYetValid);
    }
    if nanos(expires) <= nanos(issued) {
        return Err(ApprovalError::BadExpiry);
    }
    if nanos(expires) - nanos(issued) > duration_nanos(policy.max_lifetime) {
        return Err(ApprovalError::LifetimeTooLong(
            policy.max_lifetime.num_seconds(),
        ));
    }
    Ok(())
}

/// Any instant chrono holds.
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (
        DateTime::<Utc>::MIN_UTC.timestamp(),
        DateTime::<Utc>::MAX_UTC.timestamp(),
    );
    prop_oneof![
        Just(noon()),
        Just(DateTime::<Utc>::MIN_UTC),
        Just(DateTime::<Utc>::MAX_UTC),
        (min..=max, 0u32..1_000_000_000)
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap_or(DateTime::UNIX_EPOCH)),
    ]
}

/// Seconds of skew or lifetime, small, huge, or at the ends of `TimeDelta`.
fn any_allowance() -> impl Strategy<Value = Duration> {
    let max = Duration::MAX.num_seconds();
    prop_oneof![
        (0i64..120).prop_map(Duration::seconds),
        (0i64..=86_400 * 366 * 20_000).prop_map(Duration::seconds),
        (-max..=max).prop_map(|s| Duration::try_seconds(s).unwrap_or(Duration::zero())),
        Just(Duration::MAX),
        Just(Duration::MIN),
    ]
}

/// Time texts: near the clock, at the edges of the accepted years and of
/// chrono's range, or anywhere; naive or zoned, `T` or space.
fn any_time_text() -> impl Strategy<Value = String> {
    let year = prop_oneof![
        2_020i32..2_030,
        -3i32..3,
        9_997i32..10_003,
        262_140i32..262_145,
        -262_146i32..-262_140,
        -300_000i32..300_000,
    ];
    let zone = prop_oneof![
        Just(String::new()),
        Just("Z".to_owned()),
        (any::<bool>(), 0u32..24, 0u32..60)
            .prop_map(|(west, h, m)| format!("{}{h:02}:{m:02}", if west { '-' } else { '+' })),
    ];
    let parts = (
        year,
        (1u32..=12, 1u32..=28),
        (0u32..24, 0u32..60, 0u32..60),
        proptest::option::of(0u32..1_000_000),
        zone,
        any::<bool>(),
    )
        .prop_map(|(y, (mo, d), (h, mi, s), frac, zone, space)| {
            let year = if (0..=9999).contains(&y) {
                format!("{y:04}")
            } else {
                format!("{y:+}")
            };
            let frac = frac.map(|f| format!(".{f:06}")).unwrap_or_default();
            let sep = if space { ' ' } else { 'T' };
            format!("{year}-{mo:02}-{d:02}{sep}{h:02}:{mi:02}:{s:02}{frac}{zone}")
        });
    let near_noon = (-7_200i64..7_200, any::<bool>()).prop_map(|(offset, zoned)| {
        let t = noon() + Duration::seconds(offset);
        if zoned {
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        } else {
            naive(t)
        }
    });
    prop_oneof![parts, near_noon, ".{0,30}"]
}

proptest! {
    /// An answer, never a panic, and the answer the model gives: v1 and v2
    /// artifacts whose hash matches, with any times, any allowances and
    /// any clock. Their signatures verify under no key, so whatever passes
    /// the time checks ends as `approval_signature_invalid`.
    #[test]
    fn time_checks_answer_as_the_model_for_any_times_allowances_and_clock(
        issued in any_time_text(),
        expires in any_time_text(),
        skew in any_allowance(),
        lifetime in any_allowance(),
        now in any_instant(),
    ) {
        let r = Request::new();
        let p = policy(skew, lifetime);
        let cases: [(Artifact, TimeParser); 2] = [
            (r.v1(&issued, &expires), parse_v1_time),
            (r.v2(&issued, &expires), |t| {
                DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc))
            }),
        ];
        for (artifact, parse) in cases {
            let want = if expires.is_empty() && matches!(artifact, Artifact::V1(_)) {
                Err(ApprovalError::MissingExpiry)
            } else {
                match (parse(&expires), parse(&issued)) {
                    (None, _) => Err(ApprovalError::BadExpiry),
                    (Some(_), None) => Err(ApprovalError::BadIssuedAt),
                    (Some(e), Some(i)) => {
                        model(i, e, &p, now).and(Err(ApprovalError::BadSignature))
                    }
                }
            };
            let got = verify(&artifact, r.as_ref(), &p, now).map(|_| ());
            prop_assert_eq!(got, want, "{:?} {:?}", issued, expires);
        }
    }
}
