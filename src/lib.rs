//! mail2line: an SMTP gateway that turns e-mail into LINE Messaging API messages.
//!
//! The modules follow the path of a mail:
//! `smtp` (session + listener) → `mail` (MIME → [`mail::Notice`]) → `compose`
//! (notice → LINE messages and requests) → `delivery` (spool, direct or dry run) → `spool`
//! (durable queue, coalescing, the month's quota) → `line` (HTTP client). `submit` is the other side: the SMTP client that
//! hands mail to the gateway. `config` loads and validates the one typed configuration;
//! `credentials` and `notify` are the gateway's side of systemd; `logging` and `metrics` own the
//! log output and the Prometheus series (`http::monitor` serves them). `commands` holds one file
//! per subcommand (`serve` wires the parts together), and `main.rs` only dispatches to them.

pub mod compose;
pub mod envelope;
pub mod followers;
pub mod http;
pub mod mail;
pub mod clock;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod delivery;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod line;
pub mod notify;
pub mod logging;
pub mod media;
pub mod metrics;
pub mod secret;
pub mod smtp;
pub mod spool;
pub mod storage;
pub mod submit;
