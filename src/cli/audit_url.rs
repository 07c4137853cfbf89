//! `openexec audit --url`: audits a running log through its C2SP
//! `tlog-tiles` alone, as any monitor could. A thin shell: it fetches the
//! checkpoint, every hash tile and every entry bundle, and hands the bytes
//! to [`crate::core::tile_audit`], which does every check. Tiles are read
//! one level-0 tile at a time, so memory does not grow with the log
//! (beyond 32 bytes per 256 entries, see the core module).
//!
//! Exit codes: 0 the log verifies, 1 a finding (the tiles contradict the
//! signed checkpoint, the checkpoint does not verify, the log rolled back
//! or forked since `--state`), 2 a usage or network error (nothing was
//! learnt about the log).

use std::io::Read as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use fs2::FileExt as _;
use rand_core::{OsRng, RngCore as _};

use crate::core::checkpoint::SignedCheckpoint;
use crate::core::entry::ReplayOf;
use crate::core::hash::{leaf_hash, Hash};
use crate::core::signing::LogVerifier;
use crate::core::tile_audit::chain::{check_replay, EntryChain};
use crate::core::tile_audit::{
    bundle_entries, max_tile_bytes, partial_from_full, TileFinding, TreeAudit, TreeSummary,
};
use crate::core::tile_path::{TileKind, TilePath, TILE_WIDTH};

/// The largest checkpoint read: the limit [`SignedCheckpoint::open`]
/// applies to a note.
const MAX_CHECKPOINT_BYTES: u64 = 1_000_000;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What `openexec audit --url` needs.
#[derive(Debug, Clone)]
pub struct UrlAudit<'a> {
    /// Base URL of the log (`http://host:port`, the tiles under it).
    pub url: &'a str,
    /// The log's verifier key, or a file holding it.
    pub key: &'a str,
    /// The file holding the last checkpoint audited, if any.
    pub state: Option<&'a Path>,
    /// Progress goes to stderr every this many level-0 tiles.
    pub progress_every: u64,
}

/// Why the audit did not end in OK.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// The log contradicts itself or what was seen before.
    #[error("{0}")]
    Finding(String),
    /// Bad arguments, an unreadable state file, a network failure.
    #[error("{0}")]
    Usage(String),
}

impl From<TileFinding> for Failure {
    fn from(f: TileFinding) -> Self {
        match f {
            TileFinding::OutOfOrder(_) => Self::Usage(f.to_string()),
            other => Self::Finding(other.to_string()),
        }
    }
}

/// Runs the audit; prints one line on stdout; exits 0, 1 or 2.
#[must_use]
pub fn run(args: &UrlAudit<'_>) -> ExitCode {
    match audit(args) {
        Ok(line) => {
            println!("OK: {line}");
            ExitCode::SUCCESS
        }
        Err(Failure::Finding(line)) => {
            println!("FAILED: {line}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(line)) => {
            println!("ERROR: {line}");
            ExitCode::from(2)
        }
    }
}

fn audit(args: &UrlAudit<'_>) -> Result<String, Failure> {
    let verifier = LogVerifier::from_vkey(&read_key(args.key)?)
        .map_err(|e| Failure::Usage(format!("verifier key: {e}")))?;
    let saved = args
        .state
        .map(|p| SavedState::read(p, &verifier))
        .transpose()?;
    let older = saved.as_ref().and_then(|s| s.checkpoint.as_ref());
    let tiles = Tiles::new(args.url)?;
    let note = match tiles.get("checkpoint", MAX_CHECKPOINT_BYTES)? {
        Fetched::Body(note) => note,
        Fetched::NotFound(url) => {
            return Err(Failure::Usage(format!(
                "{url}: 404, no tlog-tiles log here"
            )))
        }
    };
    let current = SignedCheckpoint::open(&note, &verifier)
        .map_err(|e| Failure::Finding(format!("{}/checkpoint: {e}", tiles.base)))?;
    let mut audit = TreeAudit::new(&current, older)?;
    let mut walk = Walk {
        tiles: &tiles,
        chain: EntryChain::new(verifier.name()),
        earlier: None,
    };
    let mut level0 = 0u64;
    while let Some(tile) = audit.next_level0() {
        walk.level0(&mut audit, &tile)?;
        while let Some(up) = audit.due() {
            audit.accept_upper(&tiles.tile(&up)?)?;
        }
        level0 += 1;
        if args.progress_every > 0 && level0 % args.progress_every == 0 {
            eprintln!(
                "audit: {}/{} entries checked",
                audit.entries_done(),
                audit.size()
            );
        }
    }
    let summary = audit.finish()?;
    eprintln!(
        "audit: {}/{} entries checked",
        summary.entries, summary.entries
    );
    if let Some(saved) = &saved {
        saved.replace(current.note_text().as_bytes())?;
    }
    Ok(describe(
        &current,
        &summary,
        walk.chain.replays(),
        args.state,
    ))
}

fn describe(
    current: &SignedCheckpoint,
    s: &TreeSummary,
    replays: u64,
    state: Option<&Path>,
) -> String {
    let mut line = format!(
        "{} entries of {} verified through {} hash tiles and {} entry bundles against the signed root {} ({replays} replays checked)",
        s.entries,
        current.origin(),
        s.hash_tiles,
        s.bundles,
        current.root(),
    );
    if let Some(old) = s.consistent_with {
        line.push_str(&format!(
            "; consistent with the earlier checkpoint of {old} entries"
        ));
    }
    if let Some(path) = state {
        line.push_str(&format!("; checkpoint saved to {}", path.display()));
    }
    line
}

/// The reading of the level-0 tiles and what their entries show.
struct Walk<'t> {
    tiles: &'t Tiles,
    chain: EntryChain,
    /// The earlier full bundle last read again (and proven) for a replay.
    earlier: Option<(u64, Vec<u8>)>,
}

impl Walk<'_> {
    /// Reads level-0 tile `tile` and its bundle, checks them, then each
    /// entry in order.
    fn level0(&mut self, audit: &mut TreeAudit, tile: &TilePath) -> Result<(), Failure> {
        let bundle_path = TilePath::new(TileKind::Entries, tile.index(), tile.width())
            .ok_or_else(|| Failure::Usage("no bundle for the tile".into()))?;
        let hashes = self.tiles.tile(tile)?;
        let bundle = self.tiles.tile(&bundle_path)?;
        let entries = audit.accept_level0(&hashes, &bundle)?;
        let first = tile.first_position().unwrap_or(u64::MAX);
        for (offset, (bytes, leaf)) in (0u64..).zip(&entries) {
            let index = first.saturating_add(offset);
            let entry_finding =
                |reason: String| Failure::Finding(format!("entry {index}: {reason}"));
            let Some((replay, of)) = self.chain.next(bytes, *leaf).map_err(entry_finding)? else {
                continue;
            };
            let (original, original_leaf) = match of.index.checked_sub(first) {
                Some(at) => usize::try_from(at)
                    .ok()
                    .and_then(|at| entries.get(at))
                    .map(|(b, h)| (b.to_vec(), *h))
                    .ok_or_else(|| entry_finding("names an entry after itself".into()))?,
                None => self.earlier_entry(audit, of)?,
            };
            check_replay(&replay, of, &original, original_leaf).map_err(entry_finding)?;
        }
        Ok(())
    }

    /// The entry `of` names, in an earlier level-0 tile: that tile and its
    /// bundle read again and proven to be the ones audited (once per tile
    /// read again; the last one is kept for the replays that follow).
    fn earlier_entry(
        &mut self,
        audit: &TreeAudit,
        of: ReplayOf,
    ) -> Result<(Vec<u8>, Hash), Failure> {
        let k = of.index / u64::from(TILE_WIDTH);
        let tile = TilePath::new(TileKind::Hashes { level: 0 }, k, TILE_WIDTH);
        let bundle_path = TilePath::new(TileKind::Entries, k, TILE_WIDTH);
        let (Some(tile), Some(bundle_path)) = (tile, bundle_path) else {
            return Err(Failure::Usage(format!("no tile {k}")));
        };
        if self.earlier.as_ref().map(|e| e.0) != Some(k) {
            let hashes = self.tiles.tile(&tile)?;
            let bundle = self.tiles.tile(&bundle_path)?;
            audit.recheck_level0(k, &hashes, &bundle)?;
            self.earlier = Some((k, bundle));
        }
        let Some((_, bundle)) = &self.earlier else {
            return Err(Failure::Usage("no earlier tile".into()));
        };
        let at = usize::try_from(of.index % u64::from(TILE_WIDTH)).unwrap_or(usize::MAX);
        bundle_entries(&bundle_path, bundle)?
            .get(at)
            .map(|b| (b.to_vec(), leaf_hash(b)))
            .ok_or_else(|| Failure::Usage(format!("entry {} not in its bundle", of.index)))
    }
}

/// The log's resources under one base URL.
struct Tiles {
    agent: ureq::Agent,
    base: String,
}

impl Tiles {
    fn new(url: &str) -> Result<Self, Failure> {
        let base = url.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            return Err(Failure::Usage(format!(
                "--url {url:?}: give an http:// base URL (this client speaks plain HTTP; read an https:// log through a local TLS proxy)"
            )));
        }
        Ok(Self {
            agent: ureq::AgentBuilder::new().timeout(REQUEST_TIMEOUT).build(),
            base,
        })
    }

    /// A hash tile or entry bundle. A partial one the log no longer
    /// serves is cut from the full tile, as tlog-tiles allows; a tile
    /// missing both ways is a finding (the signed tree holds it).
    fn tile(&self, t: &TilePath) -> Result<Vec<u8>, Failure> {
        let missing =
            |url: String| Failure::Finding(format!("{url}: 404, but the signed tree holds it"));
        match self.get(&t.to_path(), max_tile_bytes(t))? {
            Fetched::Body(bytes) => Ok(bytes),
            Fetched::NotFound(url) if t.is_full() => Err(missing(url)),
            Fetched::NotFound(url) => {
                let full = TilePath::new(t.kind(), t.index(), TILE_WIDTH)
                    .ok_or_else(|| missing(url.clone()))?;
                match self.get(&full.to_path(), max_tile_bytes(&full))? {
                    Fetched::Body(bytes) => Ok(partial_from_full(t, &bytes)?.to_vec()),
                    Fetched::NotFound(_) => Err(missing(url)),
                }
            }
        }
    }

    /// GETs `path` (no leading `/`), reading at most `cap` bytes (after
    /// decompression). A 404 is the caller's to judge; other failures are
    /// network errors.
    fn get(&self, path: &str, cap: u64) -> Result<Fetched, Failure> {
        let url = format!("{}/{path}", self.base);
        let response = match self.agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(404, _)) => return Ok(Fetched::NotFound(url)),
            Err(e) => return Err(Failure::Usage(format!("GET {url}: {e}"))),
        };
        let mut body = Vec::new();
        response
            .into_reader()
            .take(cap.saturating_add(1))
            .read_to_end(&mut body)
            .map_err(|e| Failure::Usage(format!("GET {url}: {e}")))?;
        if body.len() as u64 > cap {
            return Err(Failure::Finding(format!(
                "{url}: more than {cap} bytes, more than the resource can hold"
            )));
        }
        Ok(Fetched::Body(body))
    }
}

/// A GET's outcome the caller judges.
enum Fetched {
    Body(Vec<u8>),
    /// 404, at this URL.
    NotFound(String),
}

/// `--key` is the key itself or a file holding it (as `openexec verify
/// --key`).
fn read_key(arg: &str) -> Result<String, Failure> {
    if arg.contains('+') {
        return Ok(arg.trim().to_owned());
    }
    std::fs::read_to_string(arg)
        .map(|t| t.trim().to_owned())
        .map_err(|e| Failure::Usage(format!("reading --key {arg}: {e}")))
}

/// The `--state` file as this audit read it at the start.
struct SavedState<'p> {
    path: &'p Path,
    /// Its bytes, `None` when it did not exist.
    bytes: Option<Vec<u8>>,
    /// The checkpoint they hold.
    checkpoint: Option<SignedCheckpoint>,
}

impl<'p> SavedState<'p> {
    /// The checkpoint audited last time, if the state file exists. No lock
    /// is needed: the file is only ever replaced whole by a rename.
    fn read(path: &'p Path, verifier: &LogVerifier) -> Result<Self, Failure> {
        let bytes = read_if_present(path)
            .map_err(|e| Failure::Usage(format!("reading {}: {e}", path.display())))?;
        let checkpoint = bytes
            .as_deref()
            .map(|b| SignedCheckpoint::open(b, verifier))
            .transpose()
            .map_err(|e| {
                Failure::Usage(format!(
                    "{} does not hold a checkpoint of this log: {e}",
                    path.display()
                ))
            })?;
        Ok(Self {
            path,
            bytes,
            checkpoint,
        })
    }

    /// Saves `note` in place of the checkpoint read at the start, holding
    /// an exclusive lock on `<state>.lock` so that concurrent audits take
    /// turns. A state another audit changed meanwhile (to another
    /// checkpoint than `note`) is kept, and the audit exits 2: it proved
    /// its tree consistent with the checkpoint it read, not with the one
    /// saved since, so overwriting could replace a newer checkpoint with
    /// an older one or save a fork of it.
    fn replace(&self, note: &[u8]) -> Result<(), Failure> {
        let shown = self.path.display();
        let failed = |what: &str, e: std::io::Error| {
            Failure::Usage(format!("the log verifies, but {what} {shown}: {e}"))
        };
        let _lock = lock_beside(self.path).map_err(|e| failed("locking", e))?;
        let now = read_if_present(self.path).map_err(|e| failed("reading again", e))?;
        if now.as_deref() == Some(note) {
            return Ok(());
        }
        if now != self.bytes {
            return Err(Failure::Usage(format!(
                "the log verifies, but {shown} changed while this audit ran (another audit saved another checkpoint there); it is kept, as this audit checked the log only against the checkpoint it read first: run the audit again"
            )));
        }
        write_atomically(self.path, note).map_err(|e| failed("writing", e))
    }
}

/// A file's bytes, `None` if it does not exist.
fn read_if_present(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `path` with `suffix` added to its file name.
fn beside(path: &Path, suffix: &str) -> std::io::Result<PathBuf> {
    let mut name = path
        .file_name()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"))?
        .to_os_string();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

/// An exclusive lock on `<path>.lock`, held until the file is dropped.
/// The lock file stays: removing it would let two audits lock two files.
fn lock_beside(path: &Path) -> std::io::Result<std::fs::File> {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(beside(path, ".lock")?)?;
    lock.lock_exclusive()?;
    Ok(lock)
}

/// Writes a new temporary file beside `path` (its name this process's own,
/// created only if absent, so it is neither another writer's nor the
/// target of a symlink), syncs it, renames it over `path` and syncs the
/// directory, so a crash leaves the old checkpoint or the new one, never
/// a torn file.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = beside(
        path,
        &format!(".{}-{:016x}.tmp", std::process::id(), OsRng.next_u64()),
    )?;
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        // Best effort: the temporary file is this process's alone.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}
