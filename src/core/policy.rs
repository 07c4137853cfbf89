//! C2SP tlog-policy: which logs and witnesses a verifier trusts, and the
//! quorum of witnesses a checkpoint needs.
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> all|any|<k> <member>...
//! quorum <name>|none
//! ```
//!
//! [`Policy::parse`] enforces the spec's rules (names defined before use,
//! each member listed once, 1 ≤ k ≤ n, no duplicate keys, exactly one
//! quorum line) and [`Policy::check`] accepts a checkpoint only when one
//! policy log signed it and the witnesses whose cosignatures verify satisfy
//! the quorum. A cosignature from a listed witness that fails to verify
//! refuses the whole checkpoint (as signed-note verification does);
//! cosignatures from unlisted keys are ignored. Pure: no I/O.

use std::collections::{BTreeSet, HashMap};

use super::checkpoint::{CheckpointError, SignedCheckpoint};
use super::cosignature::{cosignatures_on, CosignedNoteError, WitnessVerifier};
use super::receipt::{verify_receipt, Receipt, ReceiptError, TrustedCheckpoint, VerifiedReceipt};
use super::signing::{KeyError, LogVerifier};
use super::witness::parse_decimal;

/// Implementation limit on logs, witnesses and groups (each); the spec
/// recommends supporting at least 32.
pub const MAX_ITEMS: usize = 256;

/// A policy file that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A line that breaks the syntax or the rules (line number, 1-based).
    #[error("policy line {line}: {reason}")]
    Line {
        /// Line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// No `quorum` line.
    #[error("policy has no quorum line")]
    NoQuorum,
    /// A checkpoint was refused: not signed by a policy log.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// The origin of the checkpoint is not a policy log.
    #[error("checkpoint origin {0:?} is not a log of the policy")]
    UnknownLog(String),
    /// A listed witness's cosignature does not verify.
    #[error("a cosignature from a policy witness is invalid")]
    BadCosignature,
    /// The verified cosignatures do not meet the quorum.
    #[error("quorum not met: cosigned by {have:?}")]
    QuorumNotMet {
        /// Names of the policy witnesses whose cosignatures verified.
        have: Vec<String>,
    },
}

/// A log of the policy.
#[derive(Debug, Clone)]
pub struct PolicyLog {
    /// The log's key (its name is the origin).
    pub key: LogVerifier,
    /// Optional URL.
    pub url: Option<String>,
}

/// A witness of the policy.
#[derive(Debug, Clone)]
pub struct PolicyWitness {
    /// The witness's name in the policy (not its key name).
    pub name: String,
    /// Its cosigning key.
    pub key: WitnessVerifier,
    /// Optional URL (its tlog-witness submission prefix).
    pub url: Option<String>,
}

#[derive(Debug, Clone)]
struct Group {
    threshold: usize,
    members: Vec<String>,
}

#[derive(Debug, Clone)]
enum Quorum {
    None,
    Name(String),
}

/// A parsed policy.
#[derive(Debug, Clone)]
pub struct Policy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: HashMap<String, Group>,
    quorum: Quorum,
}

/// What [`Policy::check`] established.
#[derive(Debug, Clone)]
pub struct PolicyOk {
    /// The checkpoint, verified against a policy log key.
    pub checkpoint: SignedCheckpoint,
    /// Policy names of the witnesses whose cosignatures verified.
    pub witnesses: Vec<String>,
}

/// Names defined so far (witnesses and groups share one namespace).
#[derive(Default)]
struct Builder {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: HashMap<String, Group>,
    quorum: Option<Quorum>,
    log_keys: BTreeSet<[u8; 32]>,
    witness_keys: BTreeSet<[u8; 32]>,
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let mut builder = Builder::default();
        for (number, raw) in text.split('\n').enumerate() {
            let line = number + 1;
            builder
                .line(raw)
                .map_err(|reason| PolicyError::Line { line, reason })?;
        }
        let quorum = builder.quorum.ok_or(PolicyError::NoQuorum)?;
        Ok(Self {
            logs: builder.logs,
            witnesses: builder.witnesses,
            groups: builder.groups,
            quorum,
        })
    }

    /// The policy's logs.
    #[must_use]
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The policy's witnesses.
    #[must_use]
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The log key for `origin`, if the policy lists that log.
    #[must_use]
    pub fn log_for(&self, origin: &str) -> Option<&LogVerifier> {
        self.logs
            .iter()
            .map(|l| &l.key)
            .find(|k| k.name() == origin)
    }

    /// Accepts `note` if a policy log signed it and its verified
    /// cosignatures meet the quorum.
    pub fn check(&self, note: &[u8]) -> Result<PolicyOk, PolicyError> {
        let origin = super::witness::origin_of(note)
            .map_err(|_| PolicyError::Checkpoint(CheckpointError::MalformedNote))?;
        let log = self
            .log_for(origin)
            .ok_or_else(|| PolicyError::UnknownLog(origin.to_owned()))?;
        let checkpoint = SignedCheckpoint::open(note, log).map_err(PolicyError::Checkpoint)?;
        self.check_opened(checkpoint)
    }

    /// [`Policy::check`] of a checkpoint whose log signature was already
    /// verified against this policy's key for its origin (by
    /// [`verify_receipt`], say), so that it is not verified twice.
    fn check_opened(&self, checkpoint: SignedCheckpoint) -> Result<PolicyOk, PolicyError> {
        let witnesses = self.verified_witnesses(&checkpoint)?;
        if self.satisfied(&witnesses) {
            Ok(PolicyOk {
                checkpoint,
                witnesses: witnesses.into_iter().collect(),
            })
        } else {
            Err(PolicyError::QuorumNotMet {
                have: witnesses.into_iter().collect(),
            })
        }
    }

    /// Policy names of the witnesses with a valid cosignature on the
    /// (already opened) checkpoint.
    fn verified_witnesses(
        &self,
        checkpoint: &SignedCheckpoint,
    ) -> Result<BTreeSet<String>, PolicyError> {
        let keys: Vec<WitnessVerifier> = self.witnesses.iter().map(|w| w.key.clone()).collect();
        let verified = cosignatures_on(checkpoint, &keys).map_err(|e| match e {
            CosignedNoteError::BadSignature => PolicyError::BadCosignature,
            CosignedNoteError::Malformed => PolicyError::Checkpoint(CheckpointError::MalformedNote),
            CosignedNoteError::NoLogSignature => PolicyError::Checkpoint(CheckpointError::Unsigned),
        })?;
        Ok(verified
            .iter()
            .filter_map(|sig| {
                self.witnesses
                    .iter()
                    .find(|w| w.key.name() == sig.name() && w.key.key_id() == sig.id())
                    .map(|w| w.name.clone())
            })
            .collect())
    }

    fn satisfied(&self, cosigned: &BTreeSet<String>) -> bool {
        match &self.quorum {
            Quorum::None => true,
            Quorum::Name(name) => self.witnessed(name, cosigned),
        }
    }

    /// Whether the witness or group `name` witnessed the checkpoint. Groups
    /// only refer to earlier names, so the recursion ends.
    fn witnessed(&self, name: &str, cosigned: &BTreeSet<String>) -> bool {
        match self.groups.get(name) {
            Some(group) => {
                group
                    .members
                    .iter()
                    .filter(|m| self.witnessed(m, cosigned))
                    .count()
                    >= group.threshold
            }
            None => cosigned.contains(name),
        }
    }
}

/// Why a receipt failed under a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyReceiptError {
    /// The receipt's checkpoint names a log the policy does not list.
    #[error("the receipt's log {0:?} is not in the policy")]
    UnknownLog(String),
    /// The receipt itself failed (signature, proof, consistency…).
    #[error("{0}")]
    Receipt(#[from] ReceiptError),
    /// Neither the receipt's checkpoint nor the trusted later one meets the quorum.
    #[error("{0}")]
    Policy(PolicyError),
}

/// Verifies a receipt under a policy: the receipt must verify against the
/// key of the policy log it names, and the witness quorum must be met by
/// its own checkpoint or by the trusted later checkpoint (to which the
/// receipt's checkpoint is then proven consistent). Returns which
/// checkpoint met the quorum.
pub fn verify_receipt_with_policy(
    receipt: &Receipt,
    policy: &Policy,
    trusted: Option<&TrustedCheckpoint<'_>>,
) -> Result<(VerifiedReceipt, PolicyOk), PolicyReceiptError> {
    let origin = super::witness::origin_of(receipt.checkpoint.as_bytes())
        .map_err(|_| ReceiptError::Checkpoint(CheckpointError::MalformedNote))?;
    let log = policy
        .log_for(origin)
        .ok_or_else(|| PolicyReceiptError::UnknownLog(origin.to_owned()))?;
    let verified = verify_receipt(receipt, log, trusted)?;
    // The receipt's checkpoint was opened with the policy's key for its
    // origin just above: only its cosignatures are left to check.
    let own = policy.check_opened(verified.checkpoint.clone());
    let met = match (own, trusted) {
        (Ok(ok), _) => ok,
        (Err(own_error), Some(later)) => {
            policy
                .check(later.checkpoint)
                .map_err(|later_error| match later_error {
                    PolicyError::QuorumNotMet { .. } => PolicyReceiptError::Policy(own_error),
                    other => PolicyReceiptError::Policy(other),
                })?
        }
        (Err(own_error), None) => return Err(PolicyReceiptError::Policy(own_error)),
    };
    Ok((verified, met))
}

impl Builder {
    fn line(&mut self, raw: &str) -> Result<(), String> {
        if raw.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err("control character".into());
        }
        let words: Vec<&str> = raw.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
        match words.as_slice() {
            [] => Ok(()),
            [first, ..] if first.starts_with('#') => Ok(()),
            ["log", vkey, rest @ ..] if rest.len() <= 1 => self.log(vkey, rest.first()),
            ["witness", name, vkey, rest @ ..] if rest.len() <= 1 => {
                self.witness(name, vkey, rest.first())
            }
            ["group", name, threshold, members @ ..] if !members.is_empty() => {
                self.group(name, threshold, members)
            }
            ["quorum", name] => self.quorum(name),
            _ => Err(format!("not a policy line: {raw:?}")),
        }
    }

    fn log(&mut self, vkey: &str, url: Option<&&str>) -> Result<(), String> {
        let key = LogVerifier::from_vkey(vkey).map_err(|e| key_error("log", &e))?;
        if !self.log_keys.insert(key.public_key()) {
            return Err("duplicate log key".into());
        }
        self.check_count(self.logs.len())?;
        self.logs.push(PolicyLog {
            key,
            url: url.map(|u| (*u).to_owned()),
        });
        Ok(())
    }

    fn witness(&mut self, name: &str, vkey: &str, url: Option<&&str>) -> Result<(), String> {
        self.check_new_name(name)?;
        let key = WitnessVerifier::from_vkey(vkey).map_err(|e| key_error("witness", &e))?;
        if !self.witness_keys.insert(key.public_key()) {
            return Err("duplicate witness key".into());
        }
        self.check_count(self.witnesses.len())?;
        self.witnesses.push(PolicyWitness {
            name: name.to_owned(),
            key,
            url: url.map(|u| (*u).to_owned()),
        });
        Ok(())
    }

    fn group(&mut self, name: &str, threshold: &str, members: &[&str]) -> Result<(), String> {
        self.check_new_name(name)?;
        self.check_count(self.groups.len())?;
        let mut seen = BTreeSet::new();
        for member in members {
            if !self.is_defined(member) {
                return Err(format!("group member {member:?} is not defined above"));
            }
            if !seen.insert(*member) {
                return Err(format!("group member {member:?} is listed twice"));
            }
        }
        let n = members.len();
        let threshold = match threshold {
            "all" => n,
            "any" => 1,
            k => parse_decimal(k.as_bytes())
                .and_then(|k| usize::try_from(k).ok())
                .filter(|k| (1..=n).contains(k))
                .ok_or_else(|| format!("group threshold must be all, any or 1..={n}, not {k:?}"))?,
        };
        self.groups.insert(
            name.to_owned(),
            Group {
                threshold,
                members: members.iter().map(|m| (*m).to_owned()).collect(),
            },
        );
        Ok(())
    }

    fn quorum(&mut self, name: &str) -> Result<(), String> {
        if self.quorum.is_some() {
            return Err("a second quorum line".into());
        }
        let quorum = if name == "none" {
            Quorum::None
        } else if self.is_defined(name) {
            Quorum::Name(name.to_owned())
        } else {
            return Err(format!("quorum {name:?} is not defined above"));
        };
        self.quorum = Some(quorum);
        Ok(())
    }

    fn is_defined(&self, name: &str) -> bool {
        self.groups.contains_key(name) || self.witnesses.iter().any(|w| w.name == name)
    }

    fn check_new_name(&self, name: &str) -> Result<(), String> {
        if name == "none" {
            return Err("the name `none` is reserved".into());
        }
        if self.is_defined(name) {
            return Err(format!("name {name:?} is defined twice"));
        }
        Ok(())
    }

    fn check_count(&self, count: usize) -> Result<(), String> {
        if count >= MAX_ITEMS {
            return Err(format!("more than {MAX_ITEMS} of one kind"));
        }
        Ok(())
    }
}

fn key_error(what: &str, error: &KeyError) -> String {
    format!("{what} key: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::cosignature::WitnessSigner;
    use crate::core::hash::Hash;
    use crate::core::signing::LogSigner;

    struct Fixture {
        log: LogSigner,
        witnesses: Vec<WitnessSigner>,
    }

    fn fixture() -> Fixture {
        Fixture {
            log: LogSigner::from_seed("example.com/log", [1; 32]).unwrap(),
            witnesses: (0..3u8)
                .map(|i| WitnessSigner::from_seed(&format!("w{i}.example"), [10 + i; 32]).unwrap())
                .collect(),
        }
    }

    impl Fixture {
        fn policy(&self, tail: &str) -> String {
            let mut text = format!(
                "# test policy\nlog {} https://log.example\n\n",
                self.log.verifier().vkey()
            );
            for (i, w) in self.witnesses.iter().enumerate() {
                text.push_str(&format!("witness W{i}\t{}\n", w.verifier().vkey()));
            }
            text.push_str(tail);
            text
        }

        /// The log's checkpoint cosigned by the witnesses `by`.
        fn note(&self, by: &[usize]) -> String {
            let cp = SignedCheckpoint::sign(&self.log, 7, Hash::sha256(b"root")).unwrap();
            let text = cp.note_text();
            let body = &text[..text.find("\n\n").unwrap() + 1];
            let mut note = text.to_owned();
            for &i in by {
                note.push_str(
                    &self.witnesses[i]
                        .cosign(body.as_bytes(), 1_700_000_000)
                        .unwrap(),
                );
            }
            note
        }
    }

    #[test]
    fn two_of_three() {
        let f = fixture();
        let policy = Policy::parse(&f.policy("group G 2 W0 W1 W2\nquorum G\n")).unwrap();
        assert_eq!(policy.logs()[0].url.as_deref(), Some("https://log.example"));
        let ok = policy.check(f.note(&[0, 2]).as_bytes()).unwrap();
        assert_eq!(ok.witnesses, vec!["W0", "W2"]);
        assert_eq!(ok.checkpoint.size(), 7);
        assert_eq!(
            policy.check(f.note(&[1]).as_bytes()).unwrap_err(),
            PolicyError::QuorumNotMet {
                have: vec!["W1".into()]
            }
        );
        // A repeated cosignature from one witness counts once.
        assert!(policy.check(f.note(&[1, 1]).as_bytes()).is_err());
        assert!(policy.check(f.note(&[0, 1, 2]).as_bytes()).is_ok());
    }

    #[test]
    fn nested_groups_and_none() {
        let f = fixture();
        let nested = "group A any W0 W1\ngroup B all A W2\nquorum B\n";
        let policy = Policy::parse(&f.policy(nested)).unwrap();
        assert!(policy.check(f.note(&[1, 2]).as_bytes()).is_ok());
        assert!(policy.check(f.note(&[0, 1]).as_bytes()).is_err());
        let none = Policy::parse(&f.policy("quorum none\n")).unwrap();
        assert!(none.check(f.note(&[]).as_bytes()).is_ok());
        let single = Policy::parse(&f.policy("quorum W1\n")).unwrap();
        assert!(single.check(f.note(&[1]).as_bytes()).is_ok());
        assert!(single.check(f.note(&[0]).as_bytes()).is_err());
    }

    #[test]
    fn a_bad_cosignature_from_a_listed_witness_refuses() {
        let f = fixture();
        let policy = Policy::parse(&f.policy("quorum W0\n")).unwrap();
        let note = f.note(&[0]);
        // Flip one base64 character inside the cosignature.
        let pos = note.rfind(' ').unwrap() + 20;
        let mut bytes = note.into_bytes();
        bytes[pos] = if bytes[pos] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            policy.check(&bytes).unwrap_err(),
            PolicyError::BadCosignature
        );
        // Another log's checkpoint is refused.
        let other = LogSigner::from_seed("other.example/log", [2; 32]).unwrap();
        let cp = SignedCheckpoint::sign(&other, 1, Hash::sha256(b"r")).unwrap();
        assert!(matches!(
            policy.check(cp.note_text().as_bytes()),
            Err(PolicyError::UnknownLog(_))
        ));
    }

    #[test]
    fn rules_of_the_file_format() {
        let f = fixture();
        for (tail, why) in [
            ("", "no quorum"),
            ("quorum X\n", "undefined quorum"),
            ("group G 2 W0 X\nquorum G\n", "undefined member"),
            ("group G 2 W0 W0\nquorum G\n", "member twice"),
            ("group G 4 W0 W1 W2\nquorum G\n", "k > n"),
            ("group G 0 W0\nquorum G\n", "k = 0"),
            ("group G 01 W0\nquorum G\n", "leading zero"),
            ("group W0 any W1\nquorum W0\n", "name twice"),
            ("group none any W1\nquorum none\n", "reserved name"),
            ("quorum none\nquorum none\n", "two quorums"),
            ("quorum W0\nquorum G\n", "second quorum"),
            ("frobnicate x\nquorum none\n", "unknown keyword"),
            ("quorum none\x0b\n", "control character"),
        ] {
            assert!(Policy::parse(&f.policy(tail)).is_err(), "{why}");
        }
        // A duplicate witness key under another name.
        let dup = format!(
            "witness W9 {}\nquorum none\n",
            f.witnesses[0].verifier().vkey()
        );
        assert!(Policy::parse(&f.policy(&dup)).is_err());
        // A log key given as a witness key (wrong signature type).
        let wrong = format!("witness W9 {}\nquorum none\n", f.log.verifier().vkey());
        assert!(Policy::parse(&f.policy(&wrong)).is_err());
        // Comments, blank lines, tabs and CRLF-free text are fine.
        assert!(Policy::parse(&f.policy("  # comment\n\t\ngroup G any W0\nquorum G\n")).is_ok());
    }
}
