//! `submit::Error`: why the client side refuses before it talks to the gateway: a command line
//! it does not understand, a configuration that names no gateway to reach, a `--to` that is no
//! recipient, a mail that cannot be built. The commands turn each into its exit status
//! (`commands/send.rs`); what the gateway answers is a [`super::client::Report`] instead.

use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// sendmail's command line: an option mail2line does not know.
    #[error("unknown option {0}")]
    UnknownOption(String),
    /// `--config`/`-C` without a file name.
    #[error("{0} needs a file name")]
    NeedsFileName(&'static str),
    /// An option that takes a value came last.
    #[error("-{0} needs a value")]
    NeedsValue(char),
    /// A sendmail option mail2line does not do; the text says what to use instead.
    #[error("{0}")]
    Unsupported(String),
    /// `[sendmail] server` is not `host:port`.
    #[error("sendmail.server: {0}")]
    ServerAddress(super::settings::HostPortError),
    /// No `[sendmail] server`, and `smtp.listen` has no fixed port to submit to.
    #[error("smtp.listen is {0}: a port chosen at start, so there is no fixed address to submit to; set [sendmail] server = \"host:port\"")]
    NoFixedPort(SocketAddr),
    /// `sendmail.tls_ca_file` cannot be read.
    #[error("sendmail.tls_ca_file: cannot read {}: {reason}", file.display())]
    CaFileUnreadable { file: PathBuf, reason: String },
    /// `sendmail.tls_ca_file` holds no usable certificate.
    #[error("sendmail.tls_ca_file: {}: {reason}", file.display())]
    CaFileInvalid { file: PathBuf, reason: String },
    /// rustls refused the TLS settings.
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    /// `send --to`: neither a LINE id, an alias nor the followers address.
    #[error("{to:?}: not a LINE id (U, C or R + 32 lowercase hex), an alias from [aliases] ({aliases}), nor {followers:?} (every follower)")]
    UnknownTarget { to: String, aliases: String, followers: String },
    /// `send --to`: the address `<to>@<smtp.domain>` is not valid.
    #[error("{to:?}@{domain}: {reason}")]
    BadAddress { to: String, domain: String, reason: String },
    /// `send`: lettre could not build the mail.
    #[error("cannot build the mail: {0}")]
    Build(String),
}
