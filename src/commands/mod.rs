//! The commands' wing: one file per `mail2line` subcommand, each owning what the command does
//! and prints, on top of the library below it. `main.rs` parses the command line (`cli.rs`) and
//! calls the `main` function of one of these; each returns the exit status.
//!
//! * `serve` (`serve.rs`): wires the gateway's parts together and runs them; without a
//!   configuration file, `serve --dry-run` runs on built-in defaults;
//! * `check-config` (`check_config.rs`), `queue` (`queue.rs`), `quota` (`quota.rs`), `followers`
//!   (`followers.rs`): read the configuration, the spool or the registry, and report;
//! * `send` and `sendmail` (`send.rs`): the command side of [`crate::submit`];
//! * `hash-password` (`hash_password.rs`).
//!
//! `stores.rs` opens the spool's store and the follower registry from the configuration (SQLite
//! in `storage.dir`, or PostgreSQL with `[storage] url`) for `serve` and the CLI alike.
//!
//! They share `output.rs` (exit statuses, "load the configuration or exit 78", tables, JSON and
//! times) and this file's [`Error`], which every command's failure becomes.

pub mod check_config;
pub mod followers;
pub mod hash_password;
pub mod output;
pub mod queue;
pub mod quota;
pub mod send;
pub mod serve;
pub mod stores;

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::spool::store::JobId;
use crate::storage::DbError;

/// Why a command failed. Each message says what went wrong and, where the fix is not obvious
/// from that, what to do next. Every variant exits with [`output::EX_FAILURE`]; configuration
/// errors never get here (they exit with [`output::EX_CONFIG`] as soon as the file is loaded).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spool or the follower registry is missing, or SQLite refused to open it; the text
    /// names the file and what to check or run.
    #[error("{0}")]
    NoStore(String),
    /// The spool or the registry was opened, but reading or changing it failed.
    #[error("the {what} could not be {done}: {reason}")]
    Store { what: &'static str, done: &'static str, reason: DbError },
    /// `queue show|retry|drop ID` names a job the spool does not hold.
    #[error("no job {id} in the spool at {place} (delivered, dropped, or never existed); `mail2line queue list` shows the jobs there are")]
    NoSuchJob { id: JobId, place: String },
    /// `serve`: a part of the gateway could not start; its own message says why and what to fix.
    #[error("{0}")]
    Start(String),
    /// `--channel NAME` names no channel of the configuration; says which there are.
    #[error("{0}")]
    NoSuchChannel(String),
    /// `serve`: the spool or the registry under `storage.dir` could not be opened or created.
    #[error("{reason} (storage.dir = {})", dir.display())]
    StorageDir { reason: String, dir: PathBuf },
    /// `serve`: a listening socket could not be bound.
    #[error("cannot listen on {addr} ({key}): {source}{}", listen_hint(source, key))]
    Listen { addr: SocketAddr, key: &'static str, source: std::io::Error },
    /// `serve`: the operating system would not tell the address a socket is bound to, or would
    /// not let the gateway handle a signal.
    #[error("{what}: {source}")]
    System { what: &'static str, source: std::io::Error },
    /// `sendmail`, `send -`: stdin could not be read (sysexits' EX_IOERR).
    #[error("cannot read {what} from stdin: {source}")]
    Stdin { what: &'static str, source: std::io::Error },
    /// `send -`: the text is in another encoding (EX_DATAERR).
    #[error("the text on stdin is not UTF-8; convert it first, e.g. with iconv -t UTF-8")]
    NotUtf8,
    /// `sendmail`: more than the gateway takes (EX_DATAERR).
    #[error("the mail is larger than smtp.max_message_bytes ({limit} bytes), so the gateway would refuse it; nothing was sent")]
    TooLarge { limit: usize },
}

impl Error {
    /// The status the command exits with: sendmail's sysexits for what `sendmail` and `send`
    /// read, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Stdin { .. } => output::EX_IOERR,
            Error::NotUtf8 | Error::TooLarge { .. } => output::EX_DATAERR,
            Error::NoSuchChannel(_) => output::EX_USAGE,
            _ => output::EX_FAILURE,
        }
    }
}

/// What to do when a port cannot be bound, for the two usual causes.
fn listen_hint(e: &std::io::Error, key: &str) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!("; another program holds it: stop it, or choose another port in {key}"),
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need root or CAP_NET_BIND_SERVICE (the systemd unit grants it)".to_owned()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_errors_say_what_to_do() {
        let e = Error::Listen {
            addr: "127.0.0.1:25".parse().unwrap(),
            key: "smtp.listen",
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        let text = e.to_string();
        assert!(text.starts_with("cannot listen on 127.0.0.1:25 (smtp.listen): "), "{text}");
        assert!(text.ends_with("; another program holds it: stop it, or choose another port in smtp.listen"), "{text}");
        let e = Error::Listen {
            addr: "0.0.0.0:25".parse().unwrap(),
            key: "smtp.listen",
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(e.to_string().contains("CAP_NET_BIND_SERVICE"), "{e}");
        assert_eq!(e.exit_code(), output::EX_FAILURE);
    }
}
