//! I-JSON numbers (RFC 7493 §2.2): a number is accepted only if an IEEE
//! 754 double holds it exactly enough to write it back.
//!
//! RFC 8785 writes every number as the shortest text that reads back as the
//! same double, so two texts that round to one double (`9007199254740993`
//! and `9007199254740992`) canonicalize, and hash, alike. A number is
//! therefore accepted only when its decimal value is that of its own
//! canonical form, the text JCS writes for the double nearest to it: `1`,
//! `1.0`, `1e0`, `0.1`, `-0`, `1.5e300` and `18446744073709552000` (2^64
//! as JCS writes it) are accepted; `9007199254740993`,
//! `18446744073709551616` (2^64 in full, whose canonical form is another
//! number), `0.10000000000000001` and `1e-400` are refused. What a handler
//! receives is then the value read back from the canonical bytes
//! ([`super::canonical::canonical_value`]), so the value hashed, committed,
//! approved and run is one value.
//!
//! This module scans JSON *text* (the parsed value no longer knows how a
//! number was written); it expects text that has already parsed.

use super::canonical::to_canonical_string;

/// A number whose decimal value no IEEE double holds well enough to write
/// it back (its canonical form would be another number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("number {literal} is not exactly representable as an IEEE 754 double (it would read as {nearest}); send it as a string")]
pub struct InexactNumber {
    /// The number as written (its first 40 characters).
    pub literal: String,
    /// The canonical form of the double nearest to it.
    pub nearest: String,
}

/// Longest prefix of a number quoted back in an error.
const MAX_QUOTED_CHARS: usize = 40;

/// Checks every number of a JSON text (which must already have parsed):
/// the first one that does not round-trip is returned.
pub fn check_numbers(text: &[u8]) -> Result<(), InexactNumber> {
    let mut strings = JsonStrings::default();
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        if !strings.holds(b) && matches!(b, b'-' | b'0'..=b'9') {
            let len = text[i..]
                .iter()
                .take_while(|c| matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                .count();
            // A number token is ASCII; text that is not cannot have parsed.
            let literal = std::str::from_utf8(&text[i..i + len]).unwrap_or("");
            check_number(literal)?;
            i += len;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Follows a JSON text byte by byte and tells which bytes lie in a string
/// (its quotes and escapes included), for scans of text that has parsed.
#[derive(Debug, Default)]
pub(crate) struct JsonStrings {
    in_string: bool,
    escaped: bool,
}

impl JsonStrings {
    /// Whether `b`, the next byte of the text, is part of a string.
    pub(crate) fn holds(&mut self, b: u8) -> bool {
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            true
        } else {
            self.in_string = b == b'"';
            self.in_string
        }
    }
}

/// Checks one JSON number literal: its decimal value must be that of the
/// canonical form of its nearest double. Then the value read back from
/// the canonical bytes (an integer when it fits 64 bits, else that
/// double) writes back as the number that was sent, and no other text of
/// another value shares its canonical form.
pub fn check_number(literal: &str) -> Result<(), InexactNumber> {
    let nearest = literal
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite())
        .and_then(|d| to_canonical_string(&d).ok());
    match nearest {
        Some(canonical) if Decimal::of(literal) == Decimal::of(&canonical) => Ok(()),
        nearest => Err(InexactNumber {
            literal: literal.chars().take(MAX_QUOTED_CHARS).collect(),
            nearest: nearest.unwrap_or_else(|| "no finite double".into()),
        }),
    }
}

/// The exact decimal value of a JSON number literal, normalized: `0.d₁d₂…dₙ
/// × 10^exponent` with `d₁` and `dₙ` non-zero; zero (either sign) has no
/// digits. Two literals denote the same number iff their `Decimal`s are
/// equal.
#[derive(Debug, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    /// Normalizes `-? int (. frac)? ([eE] [+-]? exp)?`; exponents beyond
    /// ±10^15 saturate, far past any double.
    fn of(literal: &str) -> Self {
        let text = literal.as_bytes();
        let (negative, text) = match text.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, text),
        };
        let (mantissa, exp) = match text.iter().position(|c| matches!(c, b'e' | b'E')) {
            Some(at) => (&text[..at], parse_exponent(&text[at + 1..])),
            None => (text, 0),
        };
        let (int, frac) = match mantissa.iter().position(|&c| c == b'.') {
            Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
            None => (mantissa, &[][..]),
        };
        let all: Vec<u8> = int.iter().chain(frac).copied().collect();
        let leading = all.iter().take_while(|&&c| c == b'0').count();
        let trailing = all[leading..]
            .iter()
            .rev()
            .take_while(|&&c| c == b'0')
            .count();
        let digits = all[leading..all.len() - trailing].to_vec();
        if digits.is_empty() {
            return Self {
                negative: false,
                digits,
                exponent: 0,
            };
        }
        // value = 0.(all) × 10^(len(int) + exp); each leading zero moves
        // the point one place left.
        let point = count(int.len()) - count(leading);
        Self {
            negative,
            digits,
            exponent: point.saturating_add(exp),
        }
    }
}

/// A length as `i64` (lengths of a parsed text are far below 2^63).
fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `[+-]? digits`, saturating at ±10^15.
fn parse_exponent(text: &[u8]) -> i64 {
    const LIMIT: i64 = 1_000_000_000_000_000;
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let magnitude = digits.iter().fold(0i64, |acc, &d| {
        (acc * 10 + i64::from(d.wrapping_sub(b'0') % 10)).min(LIMIT)
    });
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_a_double_writes_back_are_accepted() {
        for literal in [
            "0",
            "-0",
            "0.0",
            "-0.0e5",
            "1",
            "1.0",
            "1e0",
            "10e-1",
            "1.000",
            "0.1",
            "-2.5",
            "100",
            "1e2",
            "1E+2",
            "9007199254740992",
            "9007199254740992.0",
            "-9007199254740992",
            "18446744073709552000",
            "-9223372036854776000",
            "1152921504606847000",
            "1e21",
            "1.5e300",
            "5e-324",
            "1.7976931348623157e308",
            "123456789012345680000",
            "0.000001",
            "1e-7",
        ] {
            assert_eq!(check_number(literal), Ok(()), "{literal}");
        }
    }

    #[test]
    fn numbers_no_double_holds_are_refused() {
        for (literal, nearest) in [
            ("9007199254740993", "9007199254740992"),
            ("-9007199254740993", "-9007199254740992"),
            ("18446744073709551615", "18446744073709552000"),
            ("9223372036854775807", "9223372036854776000"),
            ("18446744073709551617", "18446744073709552000"),
            // Exact doubles written in full whose canonical form is another
            // number: read back, they would be that other number.
            ("18446744073709551616", "18446744073709552000"),
            ("1152921504606846976", "1152921504606847000"),
            ("-9223372036854775808", "-9223372036854776000"),
            ("0.10000000000000001", "0.1"),
            ("3.141592653589793238462643383279", "3.141592653589793"),
            ("1e-400", "0"),
            ("123456789012345678901", "123456789012345680000"),
        ] {
            let e = check_number(literal).unwrap_err();
            assert_eq!(e.nearest, nearest, "{literal}");
            assert!(e.to_string().contains(literal), "{e}");
        }
        assert_eq!(
            check_number("1e400").unwrap_err().nearest,
            "no finite double"
        );
    }

    #[test]
    fn every_number_of_a_text_is_checked_and_strings_are_skipped() {
        assert!(
            check_numbers(br#"{"a":[1,2.5,{"b":-0}],"s":"9007199254740993","e":"\"1e-400"}"#)
                .is_ok()
        );
        let e = check_numbers(br#"{"a":[1,2.5,{"b":9007199254740993}]}"#).unwrap_err();
        assert_eq!(e.literal, "9007199254740993");
        let e = check_numbers(br#"{"s":"x\"","n":0.10000000000000001}"#).unwrap_err();
        assert_eq!(e.literal, "0.10000000000000001");
        let long = format!("[1{}1]", "0".repeat(400));
        assert_eq!(
            check_numbers(long.as_bytes()).unwrap_err().literal.len(),
            40
        );
    }

    #[test]
    fn decimals_compare_values_not_spellings() {
        assert_eq!(Decimal::of("1.50e1"), Decimal::of("15"));
        assert_eq!(Decimal::of("0.015e3"), Decimal::of("15"));
        assert_eq!(Decimal::of("-0"), Decimal::of("0e-99999999999999999999"));
        assert_ne!(Decimal::of("15"), Decimal::of("-15"));
        assert_ne!(Decimal::of("15"), Decimal::of("150"));
        // Exponents saturate far past any double: still refused, never equal
        // to a double's form.
        assert!(check_number("1e-99999999999999999999999").is_err());
        assert!(check_number("0e99999999999999999999999").is_ok());
    }
}
