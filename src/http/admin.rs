//! The admin listener: a Unix socket (mode 0600) beside the public one,
//! serving what agents must never reach — `POST /admin/redact`. Only a
//! process of the service's user (or root) can connect to it; the public
//! listener serves no `/admin` route at all (404).

use std::io;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt as _};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use actix_web::{web, App, HttpResponse, HttpServer};
use serde::Deserialize;

use super::ApiError;
use crate::ledger::redact::{RedactError, RedactTarget};
use crate::ledger::Ledger;

/// The admin socket, bound and listening; removed from the file system
/// when dropped.
pub struct AdminSocket {
    listener: Option<UnixListener>,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds `path` with mode 0600 before any client can connect: the
    /// socket is bound under a temporary name in the same directory, its
    /// mode set, then renamed to `path`. A socket left at `path` by a
    /// process that is gone is replaced; one that answers, or any other
    /// file, is refused.
    pub fn bind(path: &Path) -> io::Result<Self> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a socket", path.display()),
                ))
            }
            Ok(_) if UnixStream::connect(path).is_ok() => {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{} is the admin socket of a running service",
                        path.display()
                    ),
                ))
            }
            Ok(_) => std::fs::remove_file(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = PathBuf::from(temporary);
        let _ = std::fs::remove_file(&temporary);
        let listener = UnixListener::bind(&temporary)?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&temporary, path)?;
        Ok(Self {
            listener: Some(listener),
            path: path.to_owned(),
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
        Ok(HttpServer::new(move || {
            App::new()
                .app_data(ledger.clone())
                .route("/admin/redact", web::post().to(redact))
                .default_service(web::to(|| async {
                    Err::<HttpResponse, _>(ApiError::not_found("Admin route"))
                }))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(5)
        .listen_uds(listener)?
        .run())
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
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

async fn redact(ledger: web::Data<Ledger>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
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
    match ledger.redact(target, &body.reason).await {
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
