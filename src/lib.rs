//! mail2line: an SMTP gateway that turns e-mail into LINE Messaging API messages.
//!
//! The path of a mail, one module after the other (ARCHITECTURE.md draws it):
//! [`smtp`] (the sans-IO session and its listener) hands the finished mail to the
//! [`smtp::Deliver`] trait, which [`delivery::Gateway`] implements by calling, once each and in
//! this order, [`mail`] (MIME → [`mail::Notice`]), [`media::host`] (the attachments → image
//! files and download links LINE fetches),
//! [`compose`] (notice → [`compose::Outbound`], LINE's messages and requests within its limits),
//! [`spool`] (durable jobs, coalescing, the month's quota) and [`line`](mod@line) (LINE's types, the HTTP
//! client, each answer → [`line::Outcome`]).
//!
//! Beside the path: [`http`] (webhook, metrics, health, media), [`followers`] (the registry)
//! and [`replies`] (answers from LINE mailed back to the sender: the reply mail and the relay);
//! [`pg`] is the PostgreSQL pool the stores share when `[storage] url` is set (several gateways);
//! [`config`] reads the TOML and gathers each module's own settings; [`submit`] is the client
//! side that `send` and `sendmail` use; [`commands`] has one file per subcommand (`serve` wires
//! the parts), and `main.rs` only dispatches. Underneath all: [`clock`], [`secret`],
//! [`envelope`], [`storage`], [`metrics`], [`credentials`], [`notify`], [`logging`].
//!
//! A module uses only modules of a lower layer (ARCHITECTURE.md's table, held by
//! `tests/architecture.rs`).

pub mod clock;
pub mod commands;
pub mod compose;
pub mod config;
pub mod credentials;
pub mod delivery;
pub mod envelope;
pub mod followers;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod line;
pub mod logging;
pub mod mail;
pub mod media;
pub mod metrics;
pub mod notify;
pub mod pg;
pub mod replies;
pub mod secret;
pub mod smtp;
pub mod spool;
pub mod storage;
pub mod submit;
