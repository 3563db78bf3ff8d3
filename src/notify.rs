//! sd_notify: tells systemd (`Type=notify`) when the gateway is ready, reloading and stopping,
//! and what it is doing (`STATUS=`, shown by `systemctl status`).
//!
//! The protocol is one datagram of `KEY=value` lines sent to the Unix socket named by
//! `$NOTIFY_SOCKET`: a path, or an abstract name written with a leading `@`. That is a few lines
//! over std's `UnixDatagram`, so no crate (the `sd-notify` crate would add nothing but a
//! dependency; `libsystemd` pulls in nix and more). Without `$NOTIFY_SOCKET` — not started by
//! systemd, or `Type=simple` — every call does nothing. A failed send is logged at debug level
//! and otherwise ignored: telling systemd must never stop the gateway.
//!
//! What the gateway sends (see `commands/serve.rs`): `READY=1` once every listener is bound; around a
//! SIGHUP reload `RELOADING=1` with `MONOTONIC_USEC=` (what `Type=notify-reload`, systemd 253+,
//! requires) and then `READY=1` again; on SIGTERM `STOPPING=1` with `EXTEND_TIMEOUT_USEC=` so a
//! configured shutdown grace longer than the unit's `TimeoutStopSec=` is still honoured.

use std::ffi::OsStr;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tracing::debug;

/// The environment variable systemd sets for `Type=notify` services.
pub const SOCKET_ENV: &str = "NOTIFY_SOCKET";

/// Sends notifications to systemd; cheap to clone, a no-op when not under systemd.
#[derive(Clone, Default)]
pub struct Notifier {
    target: Option<Arc<Target>>,
}

struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
}

/// Why `$NOTIFY_SOCKET` cannot be used; the gateway runs on, without telling systemd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("$NOTIFY_SOCKET={value}: {why}; systemd will not hear that the gateway is ready")]
    Address { value: String, why: AddressError },
    #[error("cannot create a socket for $NOTIFY_SOCKET: {0}")]
    Socket(std::io::Error),
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` asks for; an unusable value is an error the caller logs
    /// (the gateway runs on without notifications).
    pub fn from_env() -> Result<Notifier, Error> {
        Notifier::to(std::env::var_os(SOCKET_ENV).as_deref())
    }

    /// A notifier for the socket `name` (`$NOTIFY_SOCKET`'s syntax); `None` or empty: no-op.
    pub fn to(name: Option<&OsStr>) -> Result<Notifier, Error> {
        let Some(name) = name.filter(|n| !n.is_empty()) else { return Ok(Notifier::default()) };
        let addr = parse_address(name.as_encoded_bytes())
            .map_err(|why| Error::Address { value: name.to_string_lossy().into_owned(), why })?;
        let socket = UnixDatagram::unbound().map_err(Error::Socket)?;
        Ok(Notifier { target: Some(Arc::new(Target { socket, addr })) })
    }

    /// Whether notifications go anywhere.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Startup or a reload is complete.
    pub fn ready(&self, status: &str) {
        self.send(&message(&[("READY", "1"), ("STATUS", status)]));
    }

    /// A reload (SIGHUP) begins; `READY=1` must follow when it is done.
    pub fn reloading(&self) {
        let now = monotonic_usec().to_string();
        self.send(&message(&[("RELOADING", "1"), ("MONOTONIC_USEC", &now), ("STATUS", "reloading the TLS certificate")]));
    }

    /// Shutdown begins and may take up to `longest` more.
    pub fn stopping(&self, status: &str, longest: Duration) {
        let extend = longest.as_micros().to_string();
        self.send(&message(&[("STOPPING", "1"), ("STATUS", status), ("EXTEND_TIMEOUT_USEC", &extend)]));
    }

    /// What the gateway is doing now, for `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&message(&[("STATUS", status)]));
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        if let Err(e) = target.socket.send_to_addr(message.as_bytes(), &target.addr) {
            debug!("cannot notify systemd ({}): {e}", message.lines().next().unwrap_or(""));
        }
    }
}

/// Why `$NOTIFY_SOCKET`'s value is not a socket address.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("not a usable abstract socket name: {0}")]
    Abstract(std::io::Error),
    #[error("not a usable socket path: {0}")]
    Path(std::io::Error),
    #[error("is neither an absolute path nor an abstract socket name (@…)")]
    Neither,
}

/// `$NOTIFY_SOCKET`'s value as an address: an absolute path, or `@name` for the abstract
/// namespace (the `@` stands for the leading NUL byte).
fn parse_address(name: &[u8]) -> Result<SocketAddr, AddressError> {
    match name.first() {
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&name[1..]).map_err(AddressError::Abstract)
        }
        Some(b'/') => {
            use std::os::unix::ffi::OsStrExt;
            let path = std::path::Path::new(OsStr::from_bytes(name));
            SocketAddr::from_pathname(path).map_err(AddressError::Path)
        }
        _ => Err(AddressError::Neither),
    }
}

/// Builds the datagram: one `KEY=value` line per field. A value cannot span lines (a line break
/// would start a new assignment), so line breaks in it become spaces.
fn message(fields: &[(&str, &str)]) -> String {
    fields.iter().map(|(k, v)| format!("{k}={}\n", v.replace(['\n', '\r'], " "))).collect()
}

/// `CLOCK_MONOTONIC` in microseconds: the clock systemd compares `MONOTONIC_USEC=` with.
/// std's `Instant` uses this clock but does not expose its value.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime only writes into it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000).saturating_add(ts.tv_nsec as u64 / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_key_value_lines() {
        assert_eq!(message(&[("READY", "1"), ("STATUS", "two\nlines")]), "READY=1\nSTATUS=two lines\n");
    }

    #[test]
    fn no_socket_no_notifier_and_bad_names_are_explained() {
        assert!(!Notifier::to(None).unwrap().is_active());
        assert!(!Notifier::to(Some(OsStr::new(""))).unwrap().is_active());
        let e = Notifier::to(Some(OsStr::new("relative/sock"))).err().unwrap().to_string();
        assert!(e.contains("$NOTIFY_SOCKET=relative/sock: is neither an absolute path"), "{e}");
    }

    #[test]
    fn reaches_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        Notifier::to(Some(path.as_os_str())).unwrap().ready("up");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up\n");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("mail2line-test-{}", std::process::id());
        let server = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let notifier = Notifier::to(Some(OsStr::new(&format!("@{name}")))).unwrap();
        notifier.reloading();
        let n = server.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let usec: u64 = text.lines().find_map(|l| l.strip_prefix("MONOTONIC_USEC=")).unwrap().parse().unwrap();
        assert!(text.starts_with("RELOADING=1\n") && usec > 0, "{text}");
        notifier.stopping("bye", Duration::from_secs(90));
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\nSTATUS=bye\nEXTEND_TIMEOUT_USEC=90000000\n");
    }
}
