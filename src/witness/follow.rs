//! Pulling: the witness reads a log's published checkpoint and a
//! consistency proof over HTTP, and hands its cosignature back.
//!
//! One round for one URL is [`Follower::pull_once`]: `GET /ledger/checkpoint`, verify
//! it is the expected log's, refuse a rollback, `GET
//! /ledger/proof/consistency` from the last cosigned size, then
//! [`Witness::add_checkpoint`] (which checks, persists, and only then
//! signs), then `POST /ledger/cosignatures`. A log that is down or slow
//! costs this loop a timeout and nothing else: the log never waits on the
//! witness.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{now_secs, Witness, WitnessError, WitnessedLog};
use crate::core::hash::Hash;
use crate::core::witness::{AddCheckpoint, ProofNeeded, Refusal};

/// Longest checkpoint or proof response read from a log.
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pulled {
    /// A new checkpoint was cosigned and delivered (its size).
    Cosigned(u64),
    /// The checkpoint was already cosigned and delivered.
    Unchanged(u64),
}

/// Why a round failed.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The log could not be reached or answered badly.
    #[error("{url}: {reason}")]
    Http {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The witness refused the checkpoint or could not persist it.
    #[error("{0}")]
    Witness(#[from] WitnessError),
}

impl FollowError {
    /// Whether this round proved that the log misbehaved.
    #[must_use]
    pub fn is_misbehaviour(&self) -> bool {
        matches!(self, Self::Witness(WitnessError::Refused(r)) if r.is_misbehaviour())
    }
}

#[derive(Deserialize)]
struct ConsistencyBody {
    hashes: Vec<Hash>,
}

/// Follows one URL of one log: remembers which checkpoint it last
/// delivered there so an unchanged log costs one GET per round.
pub struct Follower {
    witness: Arc<Witness>,
    log: WitnessedLog,
    url: String,
    agent: ureq::Agent,
    delivered: HashMap<u64, Hash>,
}

impl Follower {
    /// A follower of `url` (a base URL of `log`).
    #[must_use]
    pub fn new(witness: Arc<Witness>, log: WitnessedLog, url: String, timeout: Duration) -> Self {
        Self {
            witness,
            log,
            url: url.trim_end_matches('/').to_owned(),
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
            delivered: HashMap::new(),
        }
    }

    /// The URL followed.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// One round: fetch, check, persist, cosign, deliver.
    pub fn pull_once(&mut self) -> Result<Pulled, FollowError> {
        let note = self.get_text("/ledger/checkpoint")?;
        let offered = self
            .witness
            .open_checkpoint(note.as_bytes())
            .map_err(WitnessError::from)?;
        if offered.origin() != self.log.key.name() {
            return Err(
                WitnessError::Refused(Refusal::UnknownLog(offered.origin().to_owned())).into(),
            );
        }
        if self.delivered.get(&offered.size()) == Some(&offered.root()) {
            return Ok(Pulled::Unchanged(offered.size()));
        }
        let (old_size, proof) = match self.witness.check_not_rolled_back(&offered, &self.url)? {
            ProofNeeded::No => (self.cosigned_size(offered.origin()), Vec::new()),
            ProofNeeded::From(old) => (old, self.consistency_proof(old, offered.size())?),
        };
        let request = AddCheckpoint {
            old_size,
            proof,
            checkpoint: note.clone().into_bytes(),
        };
        let line = self
            .witness
            .add_checkpoint(&request, &self.url, now_secs())?;
        self.deliver(&format!("{note}{line}"))?;
        self.delivered.clear();
        self.delivered.insert(offered.size(), offered.root());
        Ok(Pulled::Cosigned(offered.size()))
    }

    fn cosigned_size(&self, origin: &str) -> u64 {
        self.witness.latest(origin).map_or(0, |cp| cp.size())
    }

    fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash>, FollowError> {
        let body = self.get_text(&format!("/ledger/proof/consistency?from={from}&to={to}"))?;
        let parsed: ConsistencyBody =
            serde_json::from_str(&body).map_err(|e| self.http_error(format!("proof: {e}")))?;
        Ok(parsed.hashes)
    }

    fn deliver(&self, cosigned_note: &str) -> Result<(), FollowError> {
        let url = format!("{}/ledger/cosignatures", self.url);
        match self
            .agent
            .post(&url)
            .set("Content-Type", "text/plain; charset=utf-8")
            .send_string(cosigned_note)
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(status, response)) => {
                let detail = response.into_string().unwrap_or_default();
                Err(self.http_error(format!("cosignature refused ({status}): {detail}")))
            }
            Err(e) => Err(self.http_error(e.to_string())),
        }
    }

    fn get_text(&self, path: &str) -> Result<String, FollowError> {
        let url = format!("{}{path}", self.url);
        let response = self
            .agent
            .get(&url)
            .call()
            .map_err(|e| self.http_error(e.to_string()))?;
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(response.into_reader(), MAX_RESPONSE_BYTES),
            &mut text,
        )
        .map_err(|e| self.http_error(e.to_string()))?;
        Ok(text)
    }

    fn http_error(&self, reason: String) -> FollowError {
        FollowError::Http {
            url: self.url.clone(),
            reason,
        }
    }
}
