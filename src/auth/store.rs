//! The records file (`<data dir>/principals.json`) and its reloading.
//!
//! The file is written whole: a temporary file in the same directory
//! (mode 0600), fsync, rename over the file, fsync of the directory. Its
//! writers (`openexec token`) take `principals.json.lock` first, so two of
//! them never lose each other's change.
//!
//! A running service holds a [`TokenStore`]: [`TokenStore::current`] is an
//! atomic load on the hot path and, at most once per second, a `stat` of
//! the file; when its inode, length or mtime changed it is read again, so
//! a revocation takes effect within about a second. A file that does not
//! parse is refused at start; on reload it is logged
//! (`tracing::error!`) and the last good set stays. A file that
//! disappears while principals are configured is treated the same way:
//! authentication is turned off by a restart, never by a missing file.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use chrono::{DateTime, Utc};

use super::token::{CertFingerprint, NewToken, Token, TokenRecord, TokenSet};
use super::PrincipalId;

/// Name of the records file in the data directory.
pub const FILE_NAME: &str = "principals.json";
/// How often a running service looks at the file, at most.
const CHECK_INTERVAL_MS: u64 = 1000;

/// Errors of the records file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading, writing or locking failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file does not parse or breaks a rule.
    #[error("{path}: malformed: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A change was refused (an empty tenant, say).
    #[error("{0}")]
    Refused(String),
    /// No principal has this id.
    #[error("no principal {0}")]
    UnknownPrincipal(PrincipalId),
}

/// What identifies one version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

/// The principals of a running service, reloaded when the file changes.
#[derive(Debug)]
pub struct TokenStore {
    path: PathBuf,
    current: RwLock<Arc<TokenSet>>,
    /// The version `current` was read from (`None`: no file); held while
    /// checking, so one thread checks at a time.
    stamp: Mutex<Option<FileStamp>>,
    /// Milliseconds since `epoch` at which the file is looked at next.
    next_check_ms: AtomicU64,
    epoch: Instant,
}

impl TokenStore {
    /// Loads `<data_dir>/principals.json`; no file means no principals.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::open_file(data_dir.join(FILE_NAME))
    }

    /// Loads the records file at `path`; no file means no principals.
    pub fn open_file(path: PathBuf) -> Result<Self, StoreError> {
        let (stamp, set) = read(&path)?;
        Ok(Self {
            current: RwLock::new(Arc::new(set)),
            stamp: Mutex::new(stamp),
            next_check_ms: AtomicU64::new(CHECK_INTERVAL_MS),
            epoch: Instant::now(),
            path,
        })
    }

    /// The records file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The principals now: reloads the file first when it changed, looking
    /// at most once per second.
    #[must_use]
    pub fn current(&self) -> Arc<TokenSet> {
        let now_ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        if now_ms >= self.next_check_ms.load(Ordering::Relaxed) {
            self.check(now_ms);
        }
        self.snapshot()
    }

    /// Looks at the file now and reloads it if it changed. `Ok(true)`: a
    /// new set is in use; an error leaves the last good set in use.
    pub fn reload(&self) -> Result<bool, StoreError> {
        let mut stamp = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        self.reload_locked(&mut stamp)
    }

    fn snapshot(&self) -> Arc<TokenSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// One periodic look: skipped if another thread is looking.
    fn check(&self, now_ms: u64) {
        let Ok(mut stamp) = self.stamp.try_lock() else {
            return;
        };
        self.next_check_ms
            .store(now_ms.saturating_add(CHECK_INTERVAL_MS), Ordering::Relaxed);
        if let Err(e) = self.reload_locked(&mut stamp) {
            tracing::error!(error = %e, "principals not reloaded; the last good set stays in use");
        }
    }

    fn reload_locked(&self, stamp: &mut Option<FileStamp>) -> Result<bool, StoreError> {
        let now = stat(&self.path)?;
        if now == *stamp {
            return Ok(false);
        }
        // The stamp moves on even when the new version is refused, so that
        // it is logged once, not every second.
        let previous = std::mem::replace(stamp, now);
        if now.is_none() {
            if previous.is_some() && !self.snapshot().is_empty() {
                return Err(StoreError::Malformed {
                    path: self.path.clone(),
                    reason: "the file disappeared; restart the service to turn authentication off"
                        .to_owned(),
                });
            }
            *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::default();
            return Ok(true);
        }
        let (read_stamp, set) = match read(&self.path) {
            Ok(read) => read,
            Err(e @ StoreError::Io { .. }) => {
                // Looked at again next time.
                *stamp = previous;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        *stamp = read_stamp;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(set);
        Ok(true)
    }
}

/// Reads the records file; a missing file is an empty set.
pub fn load(path: &Path) -> Result<TokenSet, StoreError> {
    read(path).map(|(_, set)| set)
}

/// Mints a token for `new` and adds its record to the file in `data_dir`
/// (created if need be). The token is returned once; only its hash is
/// written.
pub fn create(
    data_dir: &Path,
    new: NewToken,
    now: DateTime<Utc>,
) -> Result<(Token, TokenRecord), StoreError> {
    std::fs::create_dir_all(data_dir).map_err(io_error(data_dir))?;
    modify(&data_dir.join(FILE_NAME), |set| {
        set.mint(new, now).map_err(StoreError::Refused)
    })
}

/// Revokes principal `id` in the file in `data_dir` at `now` (a record
/// already revoked keeps its first time) and returns its record.
pub fn revoke(
    data_dir: &Path,
    id: PrincipalId,
    now: DateTime<Utc>,
) -> Result<TokenRecord, StoreError> {
    modify(&data_dir.join(FILE_NAME), |set| {
        set.revoke(id, now)
            .cloned()
            .ok_or(StoreError::UnknownPrincipal(id))
    })
}

/// Binds the client certificate of fingerprint `cert` to principal `id`.
pub fn bind_cert(
    data_dir: &Path,
    id: PrincipalId,
    cert: CertFingerprint,
) -> Result<TokenRecord, StoreError> {
    modify(&data_dir.join(FILE_NAME), |set| {
        if set.get(id).is_none() {
            return Err(StoreError::UnknownPrincipal(id));
        }
        set.bind_cert(id, cert)
            .cloned()
            .map_err(StoreError::Refused)
    })
}

/// Read, change and write the file at `path` under its lock file.
fn modify<T>(
    path: &Path,
    change: impl FnOnce(&mut TokenSet) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let lock_path = path.with_extension("json.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error(&lock_path))?;
    fs2::FileExt::lock_exclusive(&lock).map_err(io_error(&lock_path))?;
    let mut set = load(path)?;
    let out = change(&mut set)?;
    let bytes = set.to_json().map_err(StoreError::Refused)?;
    write_atomically(path, &bytes).map_err(io_error(path))?;
    Ok(out)
}

fn read(path: &Path) -> Result<(Option<FileStamp>, TokenSet), StoreError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok((None, TokenSet::default()))
        }
        Err(e) => return Err(io_error(path)(e)),
    };
    let metadata = file.metadata().map_err(io_error(path))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io_error(path))?;
    let set = TokenSet::from_json(&bytes).map_err(|reason| StoreError::Malformed {
        path: path.to_owned(),
        reason,
    })?;
    Ok((Some(stamp_of(&metadata)), set))
}

fn stat(path: &Path) -> Result<Option<FileStamp>, StoreError> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(Some(stamp_of(&metadata))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn stamp_of(metadata: &std::fs::Metadata) -> FileStamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(metadata);
    #[cfg(not(unix))]
    let inode = 0;
    FileStamp {
        inode,
        len: metadata.len(),
        modified: metadata.modified().ok(),
    }
}

/// Write to a temporary file (mode 0600) in the same directory, fsync,
/// rename over `path`, fsync the directory.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let tmp = path.with_extension("json.tmp");
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp)?;
    // A temporary file left by an earlier run keeps its mode: set it.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::auth::{AuthError, Role};

    fn new_token(tenant: &str) -> NewToken {
        NewToken {
            role: Role::Agent,
            tenant: tenant.to_owned(),
            actions: None,
            label: None,
            expires_at: None,
        }
    }

    /// Makes the next `current()` look at the file.
    fn due(store: &TokenStore) {
        store.next_check_ms.store(0, Ordering::Relaxed);
    }

    #[test]
    fn a_missing_file_is_no_principals() {
        let dir = tempfile::tempdir().unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        assert!(store.current().is_empty());
        assert!(!dir.path().join(FILE_NAME).exists());
    }

    #[test]
    fn the_file_is_mode_0600_and_holds_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let (token, _) = create(dir.path(), new_token("t"), Utc::now()).unwrap();
        let path = dir.path().join(FILE_NAME);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let secret = &token.reveal()[22..];
        assert!(!text.contains(secret));
        assert!(!dir.path().join("principals.json.tmp").exists());
    }

    #[test]
    fn a_malformed_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let err = TokenStore::open(dir.path()).unwrap_err();
        assert!(matches!(err, StoreError::Malformed { .. }), "{err}");
    }

    #[test]
    fn reload_picks_up_a_revocation_and_a_new_token() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (token, record) = create(dir.path(), new_token("t"), now).unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        assert!(store.current().verify(token.reveal(), now).is_ok());

        revoke(dir.path(), record.id, now).unwrap();
        // Not looked at before the interval is over.
        assert!(store.current().verify(token.reveal(), now).is_ok());
        due(&store);
        assert_eq!(
            store.current().verify(token.reveal(), now),
            Err(AuthError::Revoked)
        );

        let (second, _) = create(dir.path(), new_token("u"), now).unwrap();
        assert!(store.reload().unwrap());
        assert_eq!(
            store.current().verify(second.reveal(), now).unwrap().tenant,
            "u"
        );
        assert!(!store.reload().unwrap());
    }

    #[test]
    fn revocation_is_seen_within_about_a_second_of_real_time() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (token, record) = create(dir.path(), new_token("t"), now).unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let _ = store.current();
        revoke(dir.path(), record.id, now).unwrap();
        let start = Instant::now();
        while store.current().verify(token.reveal(), now).is_ok() {
            assert!(
                start.elapsed() < Duration::from_millis(2500),
                "revocation not seen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_malformed_file_on_reload_keeps_the_last_good_set() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (token, _) = create(dir.path(), new_token("t"), now).unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        let path = dir.path().join(FILE_NAME);
        write_atomically(&path, b"{\"version\":1,\"principals\":[{}]}").unwrap();
        assert!(matches!(store.reload(), Err(StoreError::Malformed { .. })));
        assert!(store.current().verify(token.reveal(), now).is_ok());
        // Logged once: the same bad version is not reported again.
        assert!(!store.reload().unwrap());
        due(&store);
        assert!(store.current().verify(token.reveal(), now).is_ok());
    }

    #[test]
    fn a_file_that_disappears_keeps_the_principals() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let (token, _) = create(dir.path(), new_token("t"), now).unwrap();
        let store = TokenStore::open(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        assert!(store.reload().is_err());
        assert!(!store.current().is_empty());
        assert!(store.current().verify(token.reveal(), now).is_ok());
    }

    #[test]
    fn revoking_an_unknown_id_is_an_error_and_twice_keeps_the_first_time() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Utc::now();
        let (_, record) = create(dir.path(), new_token("t"), t0).unwrap();
        let unknown = PrincipalId::parse("0123456789abcdef").unwrap();
        assert!(matches!(
            revoke(dir.path(), unknown, t0),
            Err(StoreError::UnknownPrincipal(_))
        ));
        let first = revoke(dir.path(), record.id, t0).unwrap();
        let later = t0 + chrono::Duration::seconds(5);
        let second = revoke(dir.path(), record.id, later).unwrap();
        assert_eq!(first.revoked_at, Some(t0));
        assert_eq!(second.revoked_at, Some(t0));
    }

    #[test]
    fn concurrent_creators_lose_no_record() {
        let dir = tempfile::tempdir().unwrap();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || {
                    for _ in 0..5 {
                        create(&dir, new_token(&format!("t{i}")), Utc::now()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(load(&dir.path().join(FILE_NAME)).unwrap().len(), 20);
    }
}
