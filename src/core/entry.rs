//! The ledger entry: one record per attempt, executed or not.
//!
//! An entry's *canonical bytes* (RFC 8785 JSON of [`Entry`]) are what is
//! hashed into the Merkle tree, signed by the log key and served verbatim.
//! Decoding is strict: the bytes must parse, carry a known version, and be
//! exactly the canonical encoding of what they parse to, so there is one
//! and only one byte string per entry.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::canonical::{to_canonical_bytes, CanonicalError};
use super::hash::{leaf_hash, Hash};

/// The only entry format version this code writes and reads.
pub const ENTRY_VERSION: u32 = 1;

/// Indices must stay exactly representable as an RFC 8785 number (IEEE
/// double), i.e. below 2^53.
pub const MAX_INDEX: u64 = (1 << 53) - 1;

/// What happened to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The handler ran and returned a result.
    Executed,
    /// The handler ran and failed (error or panic).
    Failed,
    /// A check refused the attempt, or (reason `internal_panic`) a contained
    /// panic stopped it before its nonce was won; nothing took effect.
    Rejected,
    /// A repeat of an already recorded request; no handler ran.
    Replayed,
    /// A reservation found pending at start-up (the process stopped between
    /// reserving the nonce and recording the outcome), or one whose attempt
    /// a contained panic stopped (reason `internal_panic`). Never re-run.
    Interrupted,
    /// An operator erased the kept content of the entry it names
    /// (`redacts`); its reason says why ([`RedactionReason`]).
    Redacted,
}

impl Outcome {
    /// The wire name (`executed`, `failed`, ...).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Executed => "executed",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Replayed => "replayed",
            Self::Interrupted => "interrupted",
            Self::Redacted => "redacted",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What running a handler may change besides its result, declared by each
/// handler and recorded in the entry of every attempt that reserved or
/// ran one. It decides when the handler may run and what a crash leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effects {
    /// Nothing: the result is a function of the payload. The handler may
    /// run before its nonce is won; a result whose nonce is not won is
    /// dropped and nothing happened.
    None,
    /// Something that must not happen twice (a message sent, a file
    /// written): the handler runs only once its nonce's reservation is
    /// durable, and an attempt a crash cut off is recorded `interrupted`
    /// and never run again.
    AtMostOnce,
    /// Something done through a system that deduplicates by the attempt's
    /// idempotency key (a payment API, a workflow engine): the handler
    /// runs once its reservation is durable; an attempt a crash cut off is
    /// recorded `interrupted` without completing its nonce, so the
    /// client's retry of the same request runs the handler again with the
    /// same key, and the downstream system applies it once.
    IdempotentDownstream,
}

impl Effects {
    /// The wire name (`none`, `at-most-once`, `idempotent-downstream`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::AtMostOnce => "at-most-once",
            Self::IdempotentDownstream => "idempotent-downstream",
        }
    }

    /// Whether the handler may run only after its nonce's reservation is
    /// durable.
    #[must_use]
    pub const fn needs_reservation(self) -> bool {
        !matches!(self, Self::None)
    }

    /// The one-byte code stored in a reservation record.
    #[must_use]
    pub const fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::AtMostOnce => 1,
            Self::IdempotentDownstream => 2,
        }
    }

    /// The class of a stored code.
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::AtMostOnce),
            2 => Some(Self::IdempotentDownstream),
            _ => None,
        }
    }
}

impl std::fmt::Display for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which kind of approval accompanied the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalKind {
    /// No approval artifact (demo mode, or a rejection for lack of one).
    None,
    /// An original ClawShield artifact.
    ClawshieldV1,
    /// An OpenExec v2 approval.
    OpenexecV2,
}

/// The part of an approval worth recording: enough to find it again, not
/// the signature itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSummary {
    /// Artifact kind.
    pub kind: ApprovalKind,
    /// The approval id, consumed single-use.
    pub id: Option<String>,
    /// The approver key that signed it (key id), when known.
    pub key_id: Option<String>,
    /// Its expiry as written in the artifact.
    pub expires_at: Option<String>,
}

impl ApprovalSummary {
    /// No approval at all.
    #[must_use]
    pub const fn none() -> Self {
        Self {
            kind: ApprovalKind::None,
            id: None,
            key_id: None,
            expires_at: None,
        }
    }

    /// The key under which this approval's single use is recorded, for an
    /// attempt of `tenant`: `v1 ‖ \n ‖ tenant ‖ \n ‖ id` for ClawShield v1
    /// (verified only when the tenant is configured and equal to the
    /// artifact's, see [`crate::core::approval`]), `v2 ‖ \n ‖ key_id ‖ \n ‖
    /// id` for v2 (a v2 id is scoped by its signer). `None` without an
    /// approval.
    ///
    /// One function for both sides of single use: the service consumes the
    /// key of the summary it writes into the entry, and the store confirms
    /// a consumed key against the entry that consumed it
    /// ([`entry_approval_key`]), so the two cannot disagree.
    #[must_use]
    pub fn consume_key(&self, tenant: &str) -> Option<String> {
        let id = self.id.as_deref()?;
        match self.kind {
            ApprovalKind::None => None,
            ApprovalKind::ClawshieldV1 => Some(format!("v1\n{tenant}\n{id}")),
            ApprovalKind::OpenexecV2 => Some(format!("v2\n{}\n{id}", self.key_id.as_deref()?)),
        }
    }
}

/// The entry a `replayed` entry repeats: the one that completed the
/// nonce, by position and leaf hash. A replay keeps no content of its own;
/// it repeats that entry's commitments, whose content is kept there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayOf {
    /// The original entry's index, below the replay's own.
    pub index: u64,
    /// The original entry's leaf hash.
    pub leaf_hash: Hash,
}

/// Everything the caller decides about an entry; the sequencer adds the
/// position (`index`, `prev`), the `time` and the `origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDraft {
    /// Execution id returned to the client.
    pub exec_id: String,
    /// Tenant the attempt belongs to ("" when no tenant is configured).
    pub tenant: String,
    /// Requested action name.
    pub action: String,
    /// Client nonce.
    pub nonce: String,
    /// [`super::canonical::request_hash`] of the request.
    pub request_hash: Hash,
    /// Salted commitment to the canonical payload.
    pub payload_commitment: Hash,
    /// Salted commitment to the canonical result, when there is one.
    pub result_commitment: Option<Hash>,
    /// Approval summary.
    pub approval: ApprovalSummary,
    /// Outcome.
    pub outcome: Outcome,
    /// Machine reason code, `[a-z0-9_]{1,64}` (e.g. `ok`, `approval_expired`).
    pub reason: String,
    /// For a `replayed` attempt: the entry it replays; for a `redacted`
    /// entry: the entry whose content it erases (the entry's `redacts`).
    /// `None` on every other entry.
    pub replay_of: Option<ReplayOf>,
    /// The effects class of the handler the attempt ran or reserved its
    /// nonce for (`executed`, `failed`, `interrupted`); never on a
    /// `rejected` or `replayed` entry.
    pub effects: Option<Effects>,
    /// The fingerprint of the handler registry of the service that wrote
    /// the entry (see `crate::action::Fingerprint`).
    pub registry: Option<Hash>,
    /// The public id of the principal that made the attempt (16 lowercase
    /// hex characters, see `crate::auth::PrincipalId`); none for an
    /// attempt made without credentials.
    pub principal: Option<String>,
}

/// A ledger entry, as hashed and signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Format version, always [`ENTRY_VERSION`].
    pub v: u32,
    /// The log's origin line (its checkpoint and key name).
    pub origin: String,
    /// Position in the log, from 0.
    pub index: u64,
    /// Leaf hash of the previous entry; all zero bytes for entry 0.
    pub prev: Hash,
    /// When the sequencer recorded the entry (UTC, microseconds).
    #[serde(serialize_with = "ser_time", deserialize_with = "de_time")]
    pub time: DateTime<Utc>,
    /// See [`EntryDraft`].
    pub exec_id: String,
    /// See [`EntryDraft`].
    pub tenant: String,
    /// See [`EntryDraft`].
    pub action: String,
    /// See [`EntryDraft`].
    pub nonce: String,
    /// See [`EntryDraft`].
    pub request_hash: Hash,
    /// See [`EntryDraft`].
    pub payload_commitment: Hash,
    /// See [`EntryDraft`].
    pub result_commitment: Option<Hash>,
    /// See [`EntryDraft`].
    pub approval: ApprovalSummary,
    /// See [`EntryDraft`].
    pub outcome: Outcome,
    /// See [`EntryDraft`].
    pub reason: String,
    /// See [`EntryDraft`]. Present exactly on `replayed` entries; omitted
    /// (never `null`) on the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<ReplayOf>,
    /// See [`EntryDraft`]; omitted (never `null`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effects: Option<Effects>,
    /// See [`EntryDraft`]; omitted (never `null`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<Hash>,
    /// See [`EntryDraft`]; omitted (never `null`) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The entry whose kept content a `redacted` entry erases, by position
    /// and leaf hash. Present exactly on `redacted` entries; omitted (never
    /// `null`) on the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacts: Option<ReplayOf>,
}

/// Why bytes are not a valid entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Not JSON of the entry's shape.
    #[error("entry is not valid JSON of the entry shape: {0}")]
    Malformed(String),
    /// A version this code does not know.
    #[error("unknown entry version {0}")]
    UnknownVersion(u32),
    /// Valid JSON, but not its RFC 8785 canonical encoding.
    #[error("entry bytes are not canonical")]
    NonCanonical,
    /// A field violates its documented constraint.
    #[error("invalid entry field `{0}`")]
    InvalidField(&'static str),
    /// The value cannot be canonicalized.
    #[error(transparent)]
    Canonical(#[from] CanonicalError),
}

impl Entry {
    /// Places a draft at `index` after the entry whose leaf hash is `prev`.
    pub fn from_draft(
        draft: EntryDraft,
        origin: &str,
        index: u64,
        prev: Hash,
        time: DateTime<Utc>,
    ) -> Self {
        Self {
            v: ENTRY_VERSION,
            origin: origin.to_owned(),
            index,
            prev,
            time: truncate_to_micros(time),
            exec_id: draft.exec_id,
            tenant: draft.tenant,
            action: draft.action,
            nonce: draft.nonce,
            request_hash: draft.request_hash,
            payload_commitment: draft.payload_commitment,
            result_commitment: draft.result_commitment,
            approval: draft.approval,
            outcome: draft.outcome,
            reason: draft.reason,
            replay_of: draft
                .replay_of
                .filter(|_| draft.outcome != Outcome::Redacted),
            effects: draft.effects,
            registry: draft.registry,
            principal: draft.principal,
            redacts: draft
                .replay_of
                .filter(|_| draft.outcome == Outcome::Redacted),
        }
    }

    /// The canonical bytes: the exact text that is hashed, signed and served.
    ///
    /// Written as the key-ordered text ([`Self::key_ordered_bytes`]), which
    /// for a valid entry *is* the RFC 8785 text (the property test
    /// `key_ordered_text_is_the_canonical_text`), at a fraction of the RFC
    /// 8785 library's cost — this runs on the log's single writer thread,
    /// where the library would take ~15% of its time. Debug builds (every test)
    /// check each one against the library.
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>, EntryError> {
        self.validate()?;
        let Some(bytes) = self.key_ordered_bytes() else {
            return self.rfc8785_bytes();
        };
        debug_assert_eq!(
            Some(&bytes),
            self.rfc8785_bytes().ok().as_ref(),
            "the key-ordered text of an entry is not its RFC 8785 text"
        );
        Ok(bytes)
    }

    /// The RFC 8785 library's text of the entry.
    fn rfc8785_bytes(&self) -> Result<Vec<u8>, EntryError> {
        Ok(to_canonical_bytes(self)?)
    }

    /// Strict decoding: known version, valid fields, and `bytes` must be the
    /// canonical encoding of the result.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self, EntryError> {
        let entry: Self =
            serde_json::from_slice(bytes).map_err(|e| EntryError::Malformed(e.to_string()))?;
        if entry.v != ENTRY_VERSION {
            return Err(EntryError::UnknownVersion(entry.v));
        }
        entry.validate()?;
        // The cheap check first (a verifier runs this for every receipt);
        // the RFC 8785 library decides whenever it does not match.
        if entry.key_ordered_bytes().as_deref() == Some(bytes) {
            return Ok(entry);
        }
        if entry.rfc8785_bytes()? != bytes {
            return Err(EntryError::NonCanonical);
        }
        Ok(entry)
    }

    /// serde_json's compact text of the entry's fields in RFC 8785 key
    /// order. For the values an entry holds — strings (serde_json escapes
    /// exactly the characters RFC 8785 does, with the same short forms and
    /// lowercase `\u00xx`), integers below 2^53 (`validate`), `null`,
    /// nested objects with fixed keys — that is the RFC 8785 text itself
    /// (the property test `key_ordered_text_is_the_canonical_text` holds
    /// it to that over arbitrary strings).
    fn key_ordered_bytes(&self) -> Option<Vec<u8>> {
        let a = &self.approval;
        serde_json::to_vec(&KeyOrdered {
            action: &self.action,
            effects: self.effects,
            approval: KeyOrderedApproval {
                expires_at: a.expires_at.as_deref(),
                id: a.id.as_deref(),
                key_id: a.key_id.as_deref(),
                kind: a.kind,
            },
            exec_id: &self.exec_id,
            index: self.index,
            nonce: &self.nonce,
            origin: &self.origin,
            outcome: self.outcome,
            payload_commitment: &self.payload_commitment,
            prev: &self.prev,
            principal: self.principal.as_deref(),
            reason: &self.reason,
            redacts: self.redacts.as_ref(),
            registry: self.registry.as_ref(),
            replay_of: self.replay_of.as_ref(),
            request_hash: &self.request_hash,
            result_commitment: self.result_commitment.as_ref(),
            tenant: &self.tenant,
            time: self.time.to_rfc3339_opts(SecondsFormat::Micros, true),
            v: self.v,
        })
        .ok()
    }

    /// RFC 6962 leaf hash of the canonical bytes.
    pub fn leaf_hash(&self) -> Result<Hash, EntryError> {
        Ok(leaf_hash(&self.to_canonical_bytes()?))
    }

    fn validate(&self) -> Result<(), EntryError> {
        if self.index > MAX_INDEX {
            return Err(EntryError::InvalidField("index"));
        }
        if !is_reason_code(&self.reason) {
            return Err(EntryError::InvalidField("reason"));
        }
        if self.origin.is_empty() {
            return Err(EntryError::InvalidField("origin"));
        }
        if self.index == 0 && self.prev != GENESIS_PREV {
            return Err(EntryError::InvalidField("prev"));
        }
        if self.replay_of.is_some_and(|r| r.index >= self.index) {
            return Err(EntryError::InvalidField("replay_of"));
        }
        if self.redacts.is_some_and(|r| r.index >= self.index) {
            return Err(EntryError::InvalidField("redacts"));
        }
        check_replay_of(self.outcome, self.replay_of.as_ref())?;
        check_redacts(self.outcome, self.redacts.as_ref(), &self.reason)?;
        check_principal(self.principal.as_deref())?;
        check_effects(self.outcome, self.effects)
    }
}

impl EntryDraft {
    /// The checks of [`Entry`]'s encoding that depend on the draft alone
    /// (the reason's syntax, `replay_of` exactly on a replay), so that a
    /// draft that could not be encoded is refused before it reaches the
    /// writer. The writer checks the rest: a replay's original must precede
    /// it.
    pub fn check(&self) -> Result<(), EntryError> {
        if !is_reason_code(&self.reason) {
            return Err(EntryError::InvalidField("reason"));
        }
        if self.outcome == Outcome::Redacted {
            check_redacts(self.outcome, self.replay_of.as_ref(), &self.reason)?;
        } else {
            check_replay_of(self.outcome, self.replay_of.as_ref())?;
        }
        check_principal(self.principal.as_deref())?;
        check_effects(self.outcome, self.effects)
    }
}

/// A principal id is 16 lowercase hex characters.
fn check_principal(principal: Option<&str>) -> Result<(), EntryError> {
    match principal {
        Some(id)
            if id.len() != PRINCIPAL_ID_LEN
                || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
        {
            Err(EntryError::InvalidField("principal"))
        }
        _ => Ok(()),
    }
}

/// No handler ran for a `rejected` or `replayed` attempt, nor was a nonce
/// reserved for one: such an entry names no effects class.
fn check_effects(outcome: Outcome, effects: Option<Effects>) -> Result<(), EntryError> {
    match (outcome, effects) {
        (Outcome::Rejected | Outcome::Replayed | Outcome::Redacted, Some(_)) => {
            Err(EntryError::InvalidField("effects"))
        }
        _ => Ok(()),
    }
}

/// A `replayed` entry names the entry it replays; no other entry does.
fn check_replay_of(outcome: Outcome, replay_of: Option<&ReplayOf>) -> Result<(), EntryError> {
    if replay_of.is_some() == (outcome == Outcome::Replayed) {
        Ok(())
    } else {
        Err(EntryError::InvalidField("replay_of"))
    }
}

/// A `redacted` entry names the entry it erases and gives one of the
/// [`RedactionReason`]s; no other entry names one.
fn check_redacts(
    outcome: Outcome,
    redacts: Option<&ReplayOf>,
    reason: &str,
) -> Result<(), EntryError> {
    let redacted = outcome == Outcome::Redacted;
    if redacts.is_some() != redacted {
        return Err(EntryError::InvalidField("redacts"));
    }
    if redacted && RedactionReason::parse(reason).is_none() {
        return Err(EntryError::InvalidField("reason"));
    }
    Ok(())
}

/// Why an operator erased an entry's content: the reason of a `redacted`
/// entry, one of a fixed set so that a log's redactions can be counted and
/// reviewed by cause (the free text stays with the operator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedactionReason {
    /// The content held a person's data (a data-protection request).
    PersonalData,
    /// The content held a credential or secret that must not be kept.
    LeakedSecret,
    /// A legal obligation (a court order, a takedown).
    Legal,
    /// Any other cause.
    Other,
}

impl RedactionReason {
    /// Every reason, in the order the documentation lists them.
    pub const ALL: [Self; 4] = [
        Self::PersonalData,
        Self::LeakedSecret,
        Self::Legal,
        Self::Other,
    ];

    /// The reason code written in the entry.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PersonalData => "personal_data",
            Self::LeakedSecret => "leaked_secret",
            Self::Legal => "legal",
            Self::Other => "other",
        }
    }

    /// The reason a code names, if it is one of [`Self::ALL`].
    #[must_use]
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

/// [`Entry`]'s fields with their keys in RFC 8785 (sorted) order.
#[derive(Serialize)]
struct KeyOrdered<'a> {
    action: &'a str,
    approval: KeyOrderedApproval<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    effects: Option<Effects>,
    exec_id: &'a str,
    index: u64,
    nonce: &'a str,
    origin: &'a str,
    outcome: Outcome,
    payload_commitment: &'a Hash,
    prev: &'a Hash,
    #[serde(skip_serializing_if = "Option::is_none")]
    principal: Option<&'a str>,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    redacts: Option<&'a ReplayOf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    registry: Option<&'a Hash>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_of: Option<&'a ReplayOf>,
    request_hash: &'a Hash,
    result_commitment: Option<&'a Hash>,
    tenant: &'a str,
    time: String,
    v: u32,
}

/// [`ApprovalSummary`]'s fields with their keys in sorted order.
#[derive(Serialize)]
struct KeyOrderedApproval<'a> {
    expires_at: Option<&'a str>,
    id: Option<&'a str>,
    key_id: Option<&'a str>,
    kind: ApprovalKind,
}

/// Length of a principal id's text in an entry.
pub const PRINCIPAL_ID_LEN: usize = 16;

/// `prev` of entry 0.
pub const GENESIS_PREV: Hash = Hash::from_bytes([0; 32]);

/// The exec_id the store indexes an entry's bytes under: the entry's own,
/// except for a replay, which carries the original attempt's exec_id and
/// must leave it pointing at the original. `None` for bytes that are not an
/// entry. Reads only the two fields (the store calls it for every entry when
/// it rebuilds its exec_id table, and on each lookup to check a candidate).
#[must_use]
pub fn indexed_exec_id(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Indexed {
        exec_id: String,
        outcome: Outcome,
    }
    let fields: Indexed = serde_json::from_slice(bytes).ok()?;
    is_indexed(fields.outcome).then_some(fields.exec_id)
}

/// Whether an entry of `outcome` is indexed under its exec_id: all but a
/// replay and a redaction, which carry the exec_id of the entry they name
/// and must leave it pointing there.
#[must_use]
pub fn is_indexed(outcome: Outcome) -> bool {
    !matches!(outcome, Outcome::Replayed | Outcome::Redacted)
}

/// The index of the entry that the entry whose bytes these are replays;
/// `None` for an entry that is not a replay, or bytes that are not an
/// entry. Reads only that field (a replay's receipt carries the salts kept
/// with its original, whose commitments it repeats).
#[must_use]
pub fn replayed_index(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Replaying {
        replay_of: Option<ReplayOf>,
    }
    let fields: Replaying = serde_json::from_slice(bytes).ok()?;
    fields.replay_of.map(|r| r.index)
}

/// The key a nonce is known by in its tenant's scope: tenant ‖ 0x00 ‖
/// nonce.
#[must_use]
pub fn nonce_key(tenant: &str, nonce: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(tenant.len() + 1 + nonce.len());
    key.extend_from_slice(tenant.as_bytes());
    key.push(0);
    key.extend_from_slice(nonce.as_bytes());
    key
}

/// The [`nonce_key`] of the attempt an entry's bytes record; `None` for
/// bytes that are not an entry. Reads only the two fields (the store calls
/// it to check a done-nonce candidate against the entry, and for every
/// completing entry when it rebuilds its table of done nonces).
#[must_use]
pub fn entry_nonce_key(bytes: &[u8]) -> Option<Vec<u8>> {
    #[derive(Deserialize)]
    struct Scoped<'a> {
        #[serde(borrow)]
        tenant: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        nonce: std::borrow::Cow<'a, str>,
    }
    let fields: Scoped<'_> = serde_json::from_slice(bytes).ok()?;
    Some(nonce_key(&fields.tenant, &fields.nonce))
}

/// The [`ApprovalSummary::consume_key`] of the approval an entry's bytes
/// name, for the entry's tenant; `None` for an entry without one or bytes
/// that are not an entry. Reads only the two fields (the store calls it to
/// check a consumed-approval candidate against the entry, and for every
/// completing entry when it rebuilds its table of consumed approvals).
#[must_use]
pub fn entry_approval_key(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Approved {
        tenant: String,
        approval: ApprovalSummary,
    }
    let fields: Approved = serde_json::from_slice(bytes).ok()?;
    fields.approval.consume_key(&fields.tenant)
}

/// Reason codes are short machine identifiers: `[a-z0-9_]{1,64}`.
#[must_use]
pub fn is_reason_code(code: &str) -> bool {
    (1..=64).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    let micros = time.timestamp_micros();
    DateTime::from_timestamp_micros(micros).unwrap_or(time)
}

fn ser_time<S: Serializer>(time: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Micros, true))
}

fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod redaction_tests;

#[cfg(test)]
pub(crate) mod tests;
