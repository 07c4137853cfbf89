//! The admin listener: a Unix socket (mode 0600) beside the public one,
//! serving what agents must never reach — `POST /admin/redact`. Only a
//! process of the service's user (or root) can connect to it; the public
//! listener serves no `/admin` route at all (404).

use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, FileTypeExt as _, MetadataExt as _, PermissionsExt as _,
};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Deserialize;

use super::ApiError;
use crate::ledger::redact::{RedactError, RedactTarget};
use crate::ledger::Ledger;

/// The admin socket, bound and listening; removed from the file system
/// when dropped, if the socket at its path is still the one it bound.
pub struct AdminSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
    /// `(dev, inode)` of the bound socket: another service's socket
    /// renamed over `path` since is left in place on drop.
    bound: (u64, u64),
    /// The uid owning the socket: the service's.
    owner: u32,
}

impl AdminSocket {
    /// Binds `path` with mode 0600 before any client can connect: the
    /// socket is bound inside a fresh directory of mode 0700 beside `path`
    /// (no other user can reach it there, or swap a symlink in before its
    /// mode is set), its mode set, then renamed to `path`. A socket left
    /// at `path` by a process that is gone (connecting is refused) is
    /// replaced; one that answers, one that cannot be tried, and any other
    /// file are refused.
    pub fn bind(path: &Path) -> io::Result<Self> {
        clear_stale(path)?;
        let staging = StagingDir::create(path)?;
        let staged = staging.0.join("admin.sock");
        let listener = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&staged, path)?;
        let meta = std::fs::symlink_metadata(path)?;
        Ok(Self {
            listener: Some(listener),
            path: path.to_owned(),
            bound: (meta.dev(), meta.ino()),
            owner: meta.uid(),
        })
    }

    /// Where it is bound.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The admin server over this socket (one worker, no signal handling
    /// of its own: the caller stops it with its handle). Must be called
    /// inside the actix system.
    pub fn serve(&mut self, ledger: Arc<Ledger>) -> io::Result<actix_web::dev::Server> {
        let listener = self
            .listener
            .take()
            .ok_or_else(|| io::Error::other("the admin socket is already served"))?;
        let ledger = web::Data::from(ledger);
        let owner = Owner(self.owner);
        Ok(HttpServer::new(move || {
            App::new()
                .app_data(ledger.clone())
                .app_data(web::Data::new(owner))
                .route("/admin/redact", web::post().to(redact))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::not_found("Admin route"))
                }))
        })
        .on_connect(record_peer)
        .workers(1)
        .disable_signals()
        .shutdown_timeout(5)
        .listen_uds(listener)?
        .run())
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.bound);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The uid of the service, owning the admin socket.
#[derive(Debug, Clone, Copy)]
struct Owner(u32);

/// The uid of the process at the other end of a connection
/// (`SO_PEERCRED`), `None` when it cannot be read.
#[derive(Debug, Clone, Copy)]
struct PeerUid(Option<u32>);

fn record_peer(conn: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    let uid = conn
        .downcast_ref::<actix_web::rt::net::UnixStream>()
        .and_then(|stream| stream.peer_cred().ok())
        .map(|cred| cred.uid());
    data.insert(PeerUid(uid));
}

/// Only the service's user and root may redact, whatever the socket's
/// mode was made since it was bound: any other peer, or one whose
/// credentials cannot be read, is refused.
fn check_peer(req: &HttpRequest, owner: Owner) -> Result<(), ApiError> {
    match req.conn_data::<PeerUid>() {
        Some(PeerUid(Some(uid))) if *uid == owner.0 || *uid == 0 => Ok(()),
        Some(PeerUid(Some(uid))) => Err(ApiError::new(
            403,
            "forbidden_peer",
            format!(
                "uid {uid} may not use the admin socket: only the service's user ({}) and root may",
                owner.0
            ),
        )),
        _ => Err(ApiError::new(
            403,
            "forbidden_peer",
            "the admin socket could not read the credentials of this connection's process",
        )),
    }
}

/// Removes a socket left at `path` by a service that is gone: only when
/// connecting to it is refused. Any other failure (a live socket of
/// another user answers EACCES) leaves it, and refuses to start.
fn clear_stale(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_socket() => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        )),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "{} is the admin socket of a running service",
                    path.display()
                ),
            )),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
            Err(e) => Err(io::Error::new(
                e.kind(),
                format!(
                    "{} is a socket that cannot be tried ({e}); remove it if no service uses it",
                    path.display()
                ),
            )),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A directory of mode 0700 created fresh beside the socket's path (its
/// creation fails if the name exists), removed with what is left in it
/// when dropped.
struct StagingDir(PathBuf);

impl StagingDir {
    fn create(path: &Path) -> io::Result<Self> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::other(format!("{} names no file", path.display())))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut dir = std::ffi::OsString::from(".");
        dir.push(name);
        dir.push(format!(".{}.{nanos:09}.d", std::process::id()));
        let dir = parent.join(dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `POST /admin/redact`: `{"index": N}` or `{"exec_id": "…"}`, and
/// `"reason"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedactBody {
    index: Option<u64>,
    exec_id: Option<String>,
    reason: String,
}

async fn redact(
    req: HttpRequest,
    owner: web::Data<Owner>,
    ledger: web::Data<Ledger>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    check_peer(&req, **owner)?;
    let body: RedactBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            400,
            "invalid_body",
            format!(
                "the body must be {{\"index\": N}} or {{\"exec_id\": \"…\"}} with \"reason\": {e}"
            ),
        )
    })?;
    let target = match (body.index, body.exec_id) {
        (Some(index), None) => RedactTarget::Index(index),
        (None, Some(exec_id)) => RedactTarget::ExecId(exec_id),
        _ => {
            return Err(ApiError::new(
                400,
                "invalid_target",
                "name the entry to redact by exactly one of \"index\" and \"exec_id\"",
            ))
        }
    };
    match ledger
        .into_inner()
        .redact_detached(target, body.reason)
        .await
    {
        Ok(done) => Ok(HttpResponse::Ok().json(done)),
        Err(e) => Err(refusal(e)),
    }
}

fn refusal(e: RedactError) -> ApiError {
    let detail = e.to_string();
    match e {
        RedactError::NotFound(_) => ApiError::new(404, "not_found", detail),
        RedactError::BadReason(_) => ApiError::new(422, "invalid_reason", detail),
        RedactError::Replay { .. } => ApiError::new(409, "replay_entry", detail),
        RedactError::NoContent { .. } => ApiError::new(409, "no_content", detail),
        RedactError::Retired { .. } => ApiError::new(409, "log_retired", detail),
        RedactError::Ledger(other) => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_entry(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn binds_through_a_private_directory_and_touches_no_predictable_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        // A file at the name a bind under `<path>.<pid>.tmp` would use
        // is someone else's: it is neither removed nor followed.
        let planted = dir
            .path()
            .join(format!("admin.sock.{}.tmp", std::process::id()));
        std::fs::write(&planted, b"not ours").unwrap();
        let socket = AdminSocket::bind(&path).unwrap();
        assert_eq!(std::fs::read(&planted).unwrap(), b"not ours");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let planted_name = format!("admin.sock.{}.tmp", std::process::id());
        assert_eq!(
            only_entry(dir.path()),
            vec!["admin.sock".to_owned(), planted_name]
        );
        drop(socket);
        assert!(!path.exists());
    }

    #[test]
    fn the_staging_directory_is_private_and_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let staging = StagingDir::create(&path).unwrap();
        let meta = std::fs::symlink_metadata(&staging.0).unwrap();
        assert!(meta.is_dir());
        assert_eq!(meta.permissions().mode() & 0o777, 0o700);
        assert!(std::fs::DirBuilder::new().create(&staging.0).is_err());
        let at = staging.0.clone();
        drop(staging);
        assert!(!at.exists());
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        // A std listener leaves its file behind when dropped: stale.
        drop(UnixListener::bind(&path).unwrap());
        let socket = AdminSocket::bind(&path).unwrap();
        let err = AdminSocket::bind(&path).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        drop(socket);
    }

    #[test]
    fn drop_leaves_a_socket_that_replaced_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let socket = AdminSocket::bind(&path).unwrap();
        let other = dir.path().join("other.sock");
        let _other = UnixListener::bind(&other).unwrap();
        std::fs::rename(&other, &path).unwrap();
        drop(socket);
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket());
        assert!(UnixStream::connect(&path).is_ok());
    }
}
