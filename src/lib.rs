//! mail2line: an SMTP gateway that turns e-mail into LINE Messaging API messages.
//!
//! The modules follow the path of a mail:
//! `smtp` (session + listener) → `mail` (MIME → [`mail::Notice`]) → `compose`
//! (notice → LINE messages and requests) → `delivery` (direct today, spool next) → `line`
//! (HTTP client). `config` loads and validates the one typed configuration; `logging` and
//! `metrics` own the log output and the Prometheus series (`http::monitor` serves them);
//! `main.rs` wires.

pub mod compose;
pub mod envelope;
pub mod followers;
pub mod http;
pub mod mail;
pub mod queue;
pub mod config;
pub mod delivery;
pub mod line;
pub mod logging;
pub mod metrics;
pub mod secret;
pub mod smtp;
pub mod spool;
