//! The witness's on-disk state: one file per log holding the latest
//! checkpoint it cosigned, and an evidence directory.
//!
//! ```text
//! <dir>/witness.key                  private key (0600)
//! <dir>/lock                         held (flock) while a witness runs here
//! <dir>/state/<sha256(origin)>.note  latest cosigned checkpoint of that log
//! <dir>/evidence/…                   refused checkpoints that prove misbehaviour
//! ```
//!
//! Every write is atomic and durable before it returns (write a temporary
//! file, fsync it, rename it over the old one, fsync the directory): the
//! witness releases a cosignature only after [`StateDir::store`] returned,
//! so a crash can never make it forget a tree it vouched for. This module
//! never decides anything; it keeps bytes.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::core::hash::Hash;
use crate::core::witness::Refusal;

/// The state directory, locked for this process.
pub struct StateDir {
    dir: PathBuf,
    /// Held for the life of the witness: two witnesses on one state could
    /// each cosign a different view.
    _lock: File,
}

/// What a piece of evidence records.
pub struct Evidence<'a> {
    /// The log's origin.
    pub origin: &'a str,
    /// Why the checkpoint was refused.
    pub refusal: &'a Refusal,
    /// The checkpoint this witness had cosigned (its state), if any.
    pub cosigned: Option<&'a str>,
    /// The checkpoint it refused, verbatim.
    pub offered: &'a [u8],
    /// The consistency proof it was given, if any.
    pub proof: &'a [Hash],
    /// Where the checkpoint came from (a URL, or "add-checkpoint").
    pub source: &'a str,
}

impl StateDir {
    /// Opens (creating) the directory and takes its lock; refuses if another
    /// process holds it.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir.join("state"))?;
        std::fs::create_dir_all(dir.join("evidence"))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        fs2::FileExt::try_lock_exclusive(&lock).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!("another witness is running on {}", dir.display()),
            )
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            _lock: lock,
        })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The cosigned checkpoint stored for `origin`, if any.
    pub fn load(&self, origin: &str) -> std::io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.state_path(origin)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Replaces the cosigned checkpoint of `origin`, durably.
    pub fn store(&self, origin: &str, note: &[u8]) -> std::io::Result<()> {
        write_atomically(&self.state_path(origin), note)
    }

    /// Writes one piece of evidence (named by its content hash, so the same
    /// evidence seen again is written once) and returns its path.
    pub fn keep_evidence(&self, evidence: &Evidence<'_>) -> std::io::Result<PathBuf> {
        let text = evidence_text(evidence);
        let digest = hex::encode(&Sha256::digest(text.as_bytes())[..8]);
        let name = format!(
            "{}-{}-{digest}.txt",
            &origin_key(evidence.origin)[..16],
            evidence.refusal.code()
        );
        let path = self.dir.join("evidence").join(name);
        if !path.exists() {
            write_atomically(&path, text.as_bytes())?;
        }
        Ok(path)
    }

    fn state_path(&self, origin: &str) -> PathBuf {
        self.dir
            .join("state")
            .join(format!("{}.note", origin_key(origin)))
    }
}

/// Lowercase hex SHA-256 of the origin (as tlog-witness names logs in URLs).
#[must_use]
pub fn origin_key(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

fn evidence_text(e: &Evidence<'_>) -> String {
    let mut text = format!(
        "openexec witness evidence\nkind: {}\ndetail: {}\norigin: {}\nsource: {}\n",
        e.refusal.code(),
        e.refusal,
        e.origin,
        e.source
    );
    text.push_str("\n--- checkpoint this witness had cosigned\n");
    text.push_str(e.cosigned.unwrap_or("(none)\n"));
    text.push_str("\n--- checkpoint refused\n");
    text.push_str(&String::from_utf8_lossy(e.offered));
    text.push_str("\n--- consistency proof given\n");
    for hash in e.proof {
        text.push_str(&hash.to_base64());
        text.push('\n');
    }
    text
}

/// Write to a temporary file, fsync, rename over `path`, fsync the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_reopen_and_the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        assert_eq!(state.load("example.com/log").unwrap(), None);
        state.store("example.com/log", b"one\n").unwrap();
        state.store("example.com/log", b"two\n").unwrap();
        assert!(
            StateDir::open(dir.path()).is_err(),
            "a second witness is refused"
        );
        drop(state);
        let again = StateDir::open(dir.path()).unwrap();
        assert_eq!(again.load("example.com/log").unwrap().unwrap(), b"two\n");
    }

    #[test]
    fn evidence_is_written_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let refusal = Refusal::SameSizeOtherRoot { size: 3 };
        let evidence = Evidence {
            origin: "example.com/log",
            refusal: &refusal,
            cosigned: Some("a\n"),
            offered: b"b\n",
            proof: &[],
            source: "test",
        };
        let first = state.keep_evidence(&evidence).unwrap();
        let second = state.keep_evidence(&evidence).unwrap();
        assert_eq!(first, second);
        let text = std::fs::read_to_string(&first).unwrap();
        assert!(text.contains("kind: fork_same_size"));
        assert!(text.contains("a\n") && text.contains("b\n"));
    }
}
