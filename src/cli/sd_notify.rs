//! The systemd readiness protocol (`sd_notify(3)`), for `Type=notify` units.
//!
//! A supervisor that sets `NOTIFY_SOCKET` learns from one datagram when the
//! service is ready (`READY=1`: the ledger is open and the listener bound,
//! so a connection made from then on is answered) and when it begins to
//! drain (`STOPPING=1`). Without `NOTIFY_SOCKET` nothing is sent, so the
//! same binary runs unchanged outside systemd. The protocol is a single
//! Unix datagram of `KEY=VALUE` lines; it needs no library.
//!
//! No watchdog: a stuck writer already shows as `/ready` 503 and in the
//! metrics, and a watchdog that killed a process waiting on a slow
//! `fdatasync` would turn a slow disk into a restart loop.

use std::ffi::OsString;
use std::io;
use std::os::unix::net::UnixDatagram;

/// The environment variable systemd sets for `Type=notify` services.
const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where the supervisor listens: a socket file, or a name in Linux's
/// abstract namespace (written with a leading `@`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum NotifyAddress {
    Path(OsString),
    Abstract(Vec<u8>),
}

impl NotifyAddress {
    /// The address `NOTIFY_SOCKET` names; `None` when it is empty.
    fn parse(value: OsString) -> Option<Self> {
        use std::os::unix::ffi::OsStrExt as _;
        match value.as_bytes() {
            [] => None,
            [b'@', name @ ..] => Some(Self::Abstract(name.to_vec())),
            _ => Some(Self::Path(value)),
        }
    }

    fn send(&self, message: &[u8]) -> io::Result<()> {
        let socket = UnixDatagram::unbound()?;
        let sent = match self {
            Self::Path(path) => socket.send_to(message, path)?,
            Self::Abstract(name) => send_abstract(&socket, name, message)?,
        };
        if sent == message.len() {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "the notification was truncated",
            ))
        }
    }
}

#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<usize> {
    use std::os::linux::net::SocketAddrExt as _;
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(message, &address)
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "abstract socket names exist on Linux only",
    ))
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to the
/// supervisor named by `NOTIFY_SOCKET`, if any. A failure is logged, not
/// returned: the service runs the same whether or not the supervisor
/// hears it (a `Type=notify` unit that never hears `READY=1` fails its
/// start by its own timeout).
pub fn notify(state: &str) {
    let Some(address) = std::env::var_os(NOTIFY_SOCKET).and_then(NotifyAddress::parse) else {
        return;
    };
    if let Err(e) = address.send(state.as_bytes()) {
        tracing::warn!(?address, error = %e, state, "sd_notify failed");
    }
}

#[cfg(test)]
mod tests {
    use super::NotifyAddress;

    #[test]
    fn notify_socket_names_a_path_or_an_abstract_name() {
        assert_eq!(NotifyAddress::parse("".into()), None);
        assert_eq!(
            NotifyAddress::parse("/run/systemd/notify".into()),
            Some(NotifyAddress::Path("/run/systemd/notify".into()))
        );
        assert_eq!(
            NotifyAddress::parse("@/org/freedesktop/systemd1/notify/42".into()),
            Some(NotifyAddress::Abstract(
                b"/org/freedesktop/systemd1/notify/42".to_vec()
            ))
        );
    }
}
