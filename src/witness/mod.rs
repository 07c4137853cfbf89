//! `openexec witness`: a C2SP witness that follows logs and cosigns their
//! checkpoints.
//!
//! A checkpoint reaches the witness in one of two ways, and both end in
//! [`Witness::add_checkpoint`], the only function that releases a
//! cosignature:
//!
//! - the witness pulls it from a log it follows ([`follow`]): it reads the
//!   log's published checkpoint and a consistency proof from the last
//!   checkpoint it cosigned, and hands its cosignature back to the log
//!   (`POST /ledger/cosignatures`);
//! - a log pushes it (C2SP tlog-witness `POST /add-checkpoint`, [`server`]).
//!
//! [`Witness::add_checkpoint`] verifies the log's signature, applies the
//! consistency rule of [`crate::core::witness`], **persists** the new state
//! durably ([`state`]) and only then signs. The check and the update happen
//! under one lock, so two concurrent requests cannot both advance from the
//! same state (compare-and-swap). A refusal that proves misbehaviour (a
//! fork, a rollback) is logged at error level and both signed checkpoints
//! are kept as evidence. The witness never cosigns a checkpoint that is not
//! consistent with every checkpoint it cosigned before.

pub mod follow;
pub mod server;
pub mod state;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use crate::core::checkpoint::{CheckpointError, SignedCheckpoint};
use crate::core::cosignature::WitnessSigner;
use crate::core::hash::Hash;
use crate::core::signing::LogVerifier;
use crate::core::witness::{
    check_add_checkpoint, check_pulled, origin_of, AddCheckpoint, ProofNeeded, Refusal,
};

use state::{Evidence, StateDir};

/// Why the witness could not answer (not a refusal of the checkpoint).
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The checkpoint was refused (see [`Refusal::status`]).
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// State could not be read or persisted: nothing was cosigned.
    #[error("witness state: {0}")]
    Io(#[from] std::io::Error),
    /// Configuration refused at start.
    #[error("{0}")]
    Config(String),
}

/// A log this witness vouches for.
#[derive(Debug, Clone)]
pub struct WitnessedLog {
    /// The log's key (its name is the origin).
    pub key: LogVerifier,
    /// URLs to pull checkpoints from (none: push only).
    pub urls: Vec<String>,
}

/// A running witness: its key, its logs and its state.
pub struct Witness {
    signer: WitnessSigner,
    logs: HashMap<String, WitnessedLog>,
    state: StateDir,
    /// Latest cosigned checkpoint per origin; its lock is the CAS.
    latest: Mutex<HashMap<String, SignedCheckpoint>>,
}

impl Witness {
    /// Opens the state in `dir` for these logs, loading each log's latest
    /// cosigned checkpoint (which must verify against its key).
    pub fn open(
        dir: &Path,
        signer: WitnessSigner,
        logs: Vec<WitnessedLog>,
    ) -> Result<Self, WitnessError> {
        let state = StateDir::open(dir)?;
        let mut by_origin = HashMap::new();
        let mut latest = HashMap::new();
        for log in logs {
            let origin = log.key.name().to_owned();
            if let Some(note) = state.load(&origin)? {
                let cp = SignedCheckpoint::open(&note, &log.key)
                    .map_err(|e| WitnessError::Config(format!("stored state for {origin}: {e}")))?;
                latest.insert(origin.clone(), cp);
            }
            if by_origin.insert(origin.clone(), log).is_some() {
                return Err(WitnessError::Config(format!(
                    "log {origin} is configured twice (give one key with several URLs)"
                )));
            }
        }
        Ok(Self {
            signer,
            logs: by_origin,
            state,
            latest: Mutex::new(latest),
        })
    }

    /// The witness's key.
    #[must_use]
    pub fn signer(&self) -> &WitnessSigner {
        &self.signer
    }

    /// The logs it follows.
    pub fn logs(&self) -> impl Iterator<Item = &WitnessedLog> {
        self.logs.values()
    }

    /// The latest checkpoint cosigned for `origin`.
    #[must_use]
    pub fn latest(&self, origin: &str) -> Option<SignedCheckpoint> {
        self.lock_latest().get(origin).cloned()
    }

    /// Checks a checkpoint with its consistency proof, persists it, and
    /// returns this witness's cosignature line. `source` names where it came
    /// from (kept with any evidence); `now` is the cosignature time (POSIX
    /// seconds).
    pub fn add_checkpoint(
        &self,
        request: &AddCheckpoint,
        source: &str,
        now: u64,
    ) -> Result<String, WitnessError> {
        let offered = self.open_checkpoint(&request.checkpoint)?;
        let origin = offered.origin().to_owned();
        let mut latest = self.lock_latest();
        let previous = latest.get(&origin).cloned();
        if let Err(refusal) = check_add_checkpoint(
            previous.as_ref(),
            request.old_size,
            &request.proof,
            &offered,
        ) {
            let cosigned = previous.as_ref();
            self.report(
                &refusal,
                cosigned,
                &request.checkpoint,
                &request.proof,
                source,
            )?;
            return Err(refusal.into());
        }
        if previous.is_none_or(|p| p.size() < offered.size()) {
            self.state.store(&origin, &request.checkpoint)?;
            latest.insert(origin, offered.clone());
        }
        drop(latest);
        self.signer
            .cosign(offered.body().as_bytes(), now)
            .map_err(|e| WitnessError::Config(e.to_string()))
    }

    /// Refuses a pulled checkpoint smaller than the cosigned one (a
    /// rollback), keeping the evidence; otherwise says from which size a
    /// consistency proof is needed.
    pub fn check_not_rolled_back(
        &self,
        offered: &SignedCheckpoint,
        source: &str,
    ) -> Result<ProofNeeded, WitnessError> {
        let latest = self.lock_latest();
        let previous = latest.get(offered.origin());
        match check_pulled(previous, offered) {
            Ok(needed) => Ok(needed),
            Err(refusal) => {
                self.report(
                    &refusal,
                    previous,
                    offered.note_text().as_bytes(),
                    &[],
                    source,
                )?;
                Err(refusal.into())
            }
        }
    }

    /// The offered note, verified against the key of the log it names.
    pub fn open_checkpoint(&self, note: &[u8]) -> Result<SignedCheckpoint, Refusal> {
        let origin = origin_of(note)?;
        let log = self
            .logs
            .get(origin)
            .ok_or_else(|| Refusal::UnknownLog(origin.to_owned()))?;
        SignedCheckpoint::open(note, &log.key).map_err(|e| match e {
            CheckpointError::MalformedNote | CheckpointError::MalformedBody => {
                Refusal::Malformed("not a checkpoint note")
            }
            CheckpointError::WrongOrigin { found, .. } => Refusal::UnknownLog(found),
            _ => Refusal::Unsigned,
        })
    }

    /// Logs a refusal; one that proves misbehaviour is logged at error
    /// level and kept as evidence with both signed checkpoints.
    fn report(
        &self,
        refusal: &Refusal,
        cosigned: Option<&SignedCheckpoint>,
        offered: &[u8],
        proof: &[Hash],
        source: &str,
    ) -> std::io::Result<()> {
        if !refusal.is_misbehaviour() {
            tracing::info!(%source, code = refusal.code(), "checkpoint not cosigned: {refusal}");
            return Ok(());
        }
        let origin = origin_of(offered).unwrap_or("(unknown)");
        let path = self.state.keep_evidence(&Evidence {
            origin,
            refusal,
            cosigned: cosigned.map(SignedCheckpoint::note_text),
            offered,
            proof,
            source,
        })?;
        tracing::error!(
            %source,
            origin,
            code = refusal.code(),
            evidence = %path.display(),
            "LOG MISBEHAVIOUR: {refusal}; both signed checkpoints kept as evidence"
        );
        Ok(())
    }

    fn lock_latest(&self) -> std::sync::MutexGuard<'_, HashMap<String, SignedCheckpoint>> {
        self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The current time in POSIX seconds (cosignature timestamps).
#[must_use]
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
