//! What the crash test has seen (every acknowledged receipt, every
//! checkpoint served, the ledger as last read, each nonce as the clients
//! and as the ledger saw it) and the checks run against it after every
//! restart.

use std::collections::{HashMap, HashSet};

use openexec::core::checkpoint::SignedCheckpoint;
use openexec::core::entry::{Entry, Outcome};
use openexec::core::hash::Hash;
use openexec::core::proof::{verify_consistency, TreeSize};
use openexec::core::receipt::{verify_receipt, TrustedCheckpoint};
use openexec::core::signing::LogVerifier;
use serde_json::Value;

use super::load::{is_echo, Ack, Reply, Sent};
use super::{sample_of, Rng};
use crate::common::server::{agent, TestServer};

/// What the ledger says of one nonce.
#[derive(Debug, Default, Clone)]
pub struct LedgerNonce {
    pub executed: u32,
    pub failed: u32,
    pub interrupted: u32,
    /// (index, outcome, exec_id) of the terminal records.
    pub terminal: Vec<(u64, Outcome, String)>,
}

impl LedgerNonce {
    pub fn terminals(&self) -> u32 {
        self.executed + self.failed + self.interrupted
    }
}

/// What the clients saw of one nonce.
#[derive(Debug, Default)]
pub struct ClientNonce {
    pub sent: u32,
    pub acked: u32,
    pub lost: u32,
    /// exec_ids of acknowledged attempts that ran the handler (not replays).
    pub ran: Vec<(String, u64)>,
}

pub struct Seen {
    pub size: u64,
    pub root: Hash,
    pub text: String,
}

#[derive(Default)]
pub struct Harness {
    pub vkey: Option<String>,
    pub verifier: Option<LogVerifier>,
    /// Every acknowledged receipt, in order; `[..acks_checked]` were fully
    /// verified at least once after a restart.
    pub acks: Vec<(String, Ack)>,
    pub acks_checked: usize,
    /// Every distinct checkpoint ever served; `[..cps_checked]` were checked
    /// against some later head.
    pub cps: Vec<Seen>,
    pub cp_texts: HashSet<String>,
    pub cps_checked: usize,
    pub max_size_seen: u64,
    pub last_head: Option<(u64, Hash, String)>,
    /// The whole ledger as last read: (entry text, signature).
    pub mirror: Vec<(String, String)>,
    pub ledger_nonces: HashMap<String, LedgerNonce>,
    pub client_nonces: HashMap<String, ClientNonce>,
    pub interrupted_entries: u64,
    // figures
    pub requests: u64,
    pub lost: u64,
    pub refused: u64,
    pub bare: Vec<String>,
    pub receipts_reverified: u64,
    pub checkpoints_reverified: u64,
    pub responses_by_kind: HashMap<String, u64>,
}

pub fn get_text(agent: &ureq::Agent, url: &str) -> String {
    match agent.get(url).call() {
        Ok(r) => r.into_string().unwrap(),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

pub fn get_json(agent: &ureq::Agent, url: &str) -> Value {
    serde_json::from_str(&get_text(agent, url)).unwrap()
}

impl Harness {
    pub fn verifier(&self) -> &LogVerifier {
        self.verifier.as_ref().unwrap()
    }

    pub fn note_checkpoint(&mut self, text: &str, context: &str) {
        if self.cp_texts.contains(text) {
            return;
        }
        let cp = SignedCheckpoint::open(text.as_bytes(), self.verifier()).unwrap_or_else(|e| {
            panic!("{context}: a served checkpoint does not verify: {e}\n{text}")
        });
        self.max_size_seen = self.max_size_seen.max(cp.size());
        self.cp_texts.insert(text.to_owned());
        self.cps.push(Seen {
            size: cp.size(),
            root: cp.root(),
            text: text.to_owned(),
        });
    }

    /// Records what one cycle's clients and watcher saw.
    pub fn absorb(&mut self, cycle: usize, sent: Vec<Sent>, watched: Vec<String>) {
        let mut last_size = 0;
        for text in &watched {
            self.note_checkpoint(text, "watcher");
            let size = SignedCheckpoint::open(text.as_bytes(), self.verifier())
                .unwrap()
                .size();
            assert!(
                size >= last_size,
                "cycle {cycle}: GET /ledger/checkpoint went backwards from {last_size} to {size}"
            );
            last_size = size;
        }
        for s in sent {
            self.requests += 1;
            let view = self.client_nonces.entry(s.nonce.clone()).or_default();
            view.sent += 1;
            match s.reply {
                Reply::Unknown { refused } => {
                    view.lost += 1;
                    self.lost += 1;
                    self.refused += u64::from(refused);
                }
                Reply::Bare { status, body } => {
                    self.bare
                        .push(format!("cycle {}: {} -> {status} {body}", s.cycle, s.nonce));
                }
                Reply::Acked(ack) => {
                    view.acked += 1;
                    let kind = format!(
                        "{} {}{}",
                        ack.status,
                        ack.outcome,
                        ack.original_outcome
                            .as_deref()
                            .or(ack.code.as_deref())
                            .map(|c| format!(" ({c})"))
                            .unwrap_or_default()
                    );
                    *self.responses_by_kind.entry(kind.clone()).or_default() += 1;
                    // The only answers a request can get here; an executed
                    // counter of a fresh name is 1, an echo its nonce.
                    let result_ok = if is_echo(&s.nonce) {
                        ack.echoed.as_deref() == Some(s.nonce.as_str())
                    } else {
                        ack.value == Some(1)
                    };
                    let ok = match (ack.status, ack.outcome.as_str()) {
                        (200, "executed") => result_ok,
                        (200, "replayed") => {
                            ack.original_outcome.as_deref() == Some("executed") && result_ok
                        }
                        (409, "rejected") => ack.code.as_deref() == Some("nonce_in_flight"),
                        (500, "replayed") => matches!(
                            ack.original_outcome.as_deref(),
                            Some("interrupted" | "failed")
                        ),
                        _ => false,
                    };
                    assert!(
                        ok,
                        "cycle {}: unexpected answer for nonce {}: {kind}, counter value {:?}, \
                         echo {:?} (an executed counter of a fresh name must be 1)",
                        s.cycle, s.nonce, ack.value, ack.echoed
                    );
                    if ack.outcome == "executed" || ack.outcome == "failed" {
                        view.ran.push((ack.exec_id.clone(), ack.receipt.leaf_index));
                    }
                    let text = ack.receipt.checkpoint.clone();
                    self.note_checkpoint(&text, "receipt");
                    self.acks.push((s.nonce, *ack));
                }
            }
        }
    }

    /// Everything checked after a restart, before any new load.
    pub fn check_after_restart(
        &mut self,
        server: &TestServer,
        label: &str,
        sample: usize,
        rng: &mut Rng,
    ) {
        let agent = agent();
        let url = |p: &str| server.url(p);

        // The same log key.
        let vkey = get_text(&agent, &url("/ledger/key")).trim().to_owned();
        match &self.vkey {
            None => {
                self.verifier = Some(LogVerifier::from_vkey(&vkey).unwrap());
                self.vkey = Some(vkey);
            }
            Some(k) => assert_eq!(k, &vkey, "{label}: the log key changed"),
        }

        // The new head; sizes never go backwards.
        let head_text = get_text(&agent, &url("/ledger/checkpoint"));
        let head = SignedCheckpoint::open(head_text.as_bytes(), self.verifier())
            .unwrap_or_else(|e| panic!("{label}: head checkpoint: {e}"));
        let (head_size, head_root) = (head.size(), head.root());
        assert!(
            head_size >= self.max_size_seen,
            "{label}: the log went backwards: head {head_size} after a checkpoint of size {} was served",
            self.max_size_seen
        );

        // Consistency proofs to the head, one per size.
        let mut proofs: HashMap<u64, Vec<Hash>> = HashMap::new();
        let mut proof_to_head = |size: u64| -> Vec<Hash> {
            proofs
                .entry(size)
                .or_insert_with(|| {
                    let v = get_json(
                        &agent,
                        &url(&format!(
                            "/ledger/proof/consistency?from={size}&to={head_size}"
                        )),
                    );
                    serde_json::from_value(v["hashes"].clone()).unwrap_or_else(|e| {
                        panic!("{label}: consistency proof {size}->{head_size}: {e}: {v}")
                    })
                })
                .clone()
        };

        // Check 2: every checkpoint served is a prefix of the head. New ones
        // and the previous head always; a sample of older ones (all at the end).
        let mut idx: Vec<usize> = (self.cps_checked..self.cps.len()).collect();
        idx.extend(sample_of(self.cps_checked, sample, rng));
        for i in idx {
            let cp = &self.cps[i];
            let proof = proof_to_head(cp.size);
            verify_consistency(
                &proof,
                TreeSize(cp.size),
                TreeSize(head_size),
                &cp.root,
                &head_root,
            )
            .unwrap_or_else(|e| {
                panic!(
                    "{label}: FORK: checkpoint of size {} is not consistent with the head of size \
                     {head_size}: {e}\n--- served ---\n{}--- head ---\n{head_text}",
                    cp.size, cp.text
                )
            });
            self.checkpoints_reverified += 1;
        }
        self.cps_checked = self.cps.len();
        if let Some((size, root, text)) = &self.last_head {
            let proof = proof_to_head(*size);
            verify_consistency(
                &proof,
                TreeSize(*size),
                TreeSize(head_size),
                root,
                &head_root,
            )
            .unwrap_or_else(|e| {
                panic!("{label}: FORK from the previous head {size}: {e}\n{text}\n{head_text}")
            });
        }
        self.last_head = Some((head_size, head_root, head_text.clone()));
        self.note_checkpoint(&head_text, "head");
        self.cps_checked = self.cps.len();

        // The whole ledger, in pages: nothing already read has changed.
        let mut fresh: Vec<(String, String)> = Vec::with_capacity(head_size as usize);
        let mut start = 0u64;
        while start < head_size {
            let end = (start + 1000).min(head_size);
            let page = get_json(
                &agent,
                &url(&format!("/ledger/entries?start={start}&end={end}")),
            );
            let list = page["entries"]
                .as_array()
                .unwrap_or_else(|| panic!("{label}: page {start}: {page}"));
            assert_eq!(
                list.len() as u64,
                end - start,
                "{label}: short page at {start}"
            );
            for (k, e) in list.iter().enumerate() {
                assert_eq!(e["index"].as_u64(), Some(start + k as u64));
                fresh.push((
                    e["entry"].as_str().unwrap().to_owned(),
                    e["entry_signature"].as_str().unwrap().to_owned(),
                ));
            }
            start = end;
        }
        for (i, old) in self.mirror.iter().enumerate() {
            assert_eq!(old, &fresh[i], "{label}: entry {i} was rewritten");
        }
        for (i, (text, _)) in fresh.iter().enumerate().skip(self.mirror.len()) {
            let entry = Entry::from_canonical_bytes(text.as_bytes())
                .unwrap_or_else(|e| panic!("{label}: entry {i}: {e}"));
            assert_eq!(entry.index, i as u64);
            let n = self.ledger_nonces.entry(entry.nonce.clone()).or_default();
            match entry.outcome {
                Outcome::Executed => n.executed += 1,
                Outcome::Failed => n.failed += 1,
                Outcome::Interrupted => {
                    n.interrupted += 1;
                    self.interrupted_entries += 1;
                }
                Outcome::Rejected | Outcome::Replayed | Outcome::Redacted => continue,
            }
            n.terminal
                .push((i as u64, entry.outcome, entry.exec_id.clone()));
        }
        self.mirror = fresh;

        // Check 1: every acknowledged receipt is still served byte for byte
        // (all of them, from the pages above) ...
        for (nonce, ack) in &self.acks {
            let r = &ack.receipt;
            let served = self.mirror.get(r.leaf_index as usize).unwrap_or_else(|| {
                panic!(
                    "{label}: LOST: acknowledged entry {} (nonce {nonce}, {} {}) is beyond the head {head_size}",
                    r.leaf_index, ack.status, ack.outcome
                )
            });
            assert!(
                served.0 == r.entry && served.1 == r.entry_signature,
                "{label}: entry {} (nonce {nonce}) differs from its receipt\nserved:  {}\nreceipt: {}",
                r.leaf_index,
                served.0,
                r.entry
            );
        }
        // ... and the new ones plus a sample of older ones (all at the end)
        // are fully re-verified: GET /ledger/entries/{i}, entry signature,
        // inclusion in their checkpoint, and that checkpoint's consistency
        // with the head.
        let mut idx: Vec<usize> = (self.acks_checked..self.acks.len()).collect();
        idx.extend(sample_of(self.acks_checked, sample, rng));
        for i in idx {
            let (nonce, ack) = &self.acks[i];
            let r = &ack.receipt;
            let e = get_json(&agent, &url(&format!("/ledger/entries/{}", r.leaf_index)));
            assert_eq!(
                e["entry"].as_str(),
                Some(r.entry.as_str()),
                "{label}: GET /ledger/entries/{} (nonce {nonce}) differs from the receipt",
                r.leaf_index
            );
            let proof = proof_to_head(r.inclusion_proof.tree_size);
            let trusted = TrustedCheckpoint {
                checkpoint: head_text.as_bytes(),
                consistency_proof: &proof,
            };
            verify_receipt(r, self.verifier(), Some(&trusted)).unwrap_or_else(|e| {
                panic!(
                    "{label}: receipt of entry {} (nonce {nonce}) fails: {e}",
                    r.leaf_index
                )
            });
            self.receipts_reverified += 1;
        }
        self.acks_checked = self.acks.len();

        self.check_nonces(label);
    }

    /// Check 3 (and the ledger half of check 4): terminal records per nonce.
    pub fn check_nonces(&self, label: &str) {
        let none = LedgerNonce::default();
        for (nonce, view) in &self.client_nonces {
            let l = self.ledger_nonces.get(nonce).unwrap_or(&none);
            assert!(
                l.terminals() <= 1 && l.executed <= 1,
                "{label}: nonce {nonce} has {} terminal records ({} executed): {:?}; client view {view:?}",
                l.terminals(),
                l.executed,
                l.terminal
            );
            if l.interrupted > 0 {
                // The attempt that held the reservation was never answered.
                assert!(
                    view.lost > 0,
                    "{label}: nonce {nonce} was recorded interrupted, but no client lost an answer for it; client view {view:?}"
                );
            }
            if view.acked > 0 {
                // An answer was recorded after the reservation (or after the
                // final record): the reservation is durable, so after a
                // restart the nonce has its one terminal record.
                assert_eq!(
                    l.terminals(),
                    1,
                    "{label}: acknowledged nonce {nonce} has no terminal record; client view {view:?}"
                );
            }
            for (exec_id, index) in &view.ran {
                assert!(
                    l.terminal
                        .iter()
                        .any(|(i, o, x)| i == index && x == exec_id && *o != Outcome::Interrupted),
                    "{label}: nonce {nonce}: acknowledged run {exec_id} at {index} is not its terminal record {:?}",
                    l.terminal
                );
            }
        }
        for (nonce, l) in &self.ledger_nonces {
            if l.terminals() > 0 && !nonce.starts_with("q-") {
                assert!(
                    self.client_nonces.contains_key(nonce),
                    "{label}: the ledger holds a terminal record for nonce {nonce} that no client sent"
                );
            }
        }
    }
}
