//! The time checks of an approval: parsing `issued_at` and `expires_at`,
//! the accepted years, and the skew and lifetime rules, all in checked
//! arithmetic (the times come from an unauthenticated request).

use std::ops::RangeInclusive;

use chrono::{DateTime, Datelike as _, NaiveDateTime, Utc};

use super::{ApprovalError, ApprovalPolicy};

/// The years, in UTC, that `issued_at` and `expires_at` may fall in: RFC
/// 3339's range. A time outside it is refused as
/// [`ApprovalError::TimeOutOfRange`] before any arithmetic is done with it.
pub const APPROVAL_YEARS: RangeInclusive<i32> = 0..=9999;

/// The time rules of [`super::verify`]; see docs/FORMATS.md, "Where
/// approvals are checked".
pub(super) fn check_times(
    issued: DateTime<Utc>,
    expires: DateTime<Utc>,
    policy: &ApprovalPolicy,
    now: DateTime<Utc>,
) -> Result<(), ApprovalError> {
    // Every step is checked: the times come from an unauthenticated
    // request (the signature is checked after them) and the allowances from
    // configuration, so none of them may overflow chrono's range.
    let expires = within_range(expires, "expires_at")?;
    let issued = within_range(issued, "issued_at")?;
    let latest = expires
        .checked_add_signed(policy.skew)
        .ok_or(ApprovalError::TimeOutOfRange("expires_at"))?;
    if now > latest {
        return Err(ApprovalError::Expired);
    }
    let earliest = issued
        .checked_sub_signed(policy.skew)
        .ok_or(ApprovalError::TimeOutOfRange("issued_at"))?;
    if earliest > now {
        return Err(ApprovalError::NotYetValid);
    }
    if expires <= issued {
        return Err(ApprovalError::BadExpiry);
    }
    // Any two chrono times are less than 600,000 years apart, well within
    // a `TimeDelta` (about 292 million years): this subtraction is exact.
    if expires.signed_duration_since(issued) > policy.max_lifetime {
        return Err(ApprovalError::LifetimeTooLong(
            policy.max_lifetime.num_seconds(),
        ));
    }
    Ok(())
}

/// `time` if its UTC year is in [`APPROVAL_YEARS`].
fn within_range(time: DateTime<Utc>, field: &'static str) -> Result<DateTime<Utc>, ApprovalError> {
    if APPROVAL_YEARS.contains(&time.year()) {
        Ok(time)
    } else {
        Err(ApprovalError::TimeOutOfRange(field))
    }
}

/// Python `datetime.fromisoformat` forms: naive (taken as UTC, as the
/// original compared with `utcnow()`) or with a zone, `T` or space.
pub(super) fn parse_v1_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    let normalized = text.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&normalized) {
        return Some(t.with_timezone(&Utc));
    }
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(&normalized, f).ok())
    .map(|t| t.and_utc())
}
