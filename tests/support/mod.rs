//! The one test harness, for the integration tests, the benchmarks and the fault campaign:
//! `tests/*.rs` declare `mod support;`, `benches/e2e.rs` and `benches/chaos.rs` include this
//! same module by path. The SMTP clients, the gateway launcher and the LINE stand-ins live here
//! and nowhere else.
//!
//! Owns nothing but the module list: `spec` (validation against LINE's
//! official OpenAPI documents), `standin` (a fake LINE API server that
//! uses `spec` to police every request the gateway makes), `fastline` (a LINE stand-in that
//! only counts and timestamps, for throughput), `gateway` (the real binary, started and
//! stopped), `keys` (RSA key pairs for v2.1 tokens), `raw` (a bare blocking SMTP client),
//! `load` (the async pipelining SMTP client that sends load), `tls` (certificates and logins),
//! `images` (pictures to decode), `mime` (mails with attachments), `numbered` ("seq N" mails and their deliveries), `readme` (the README's tested
//! blocks), `sink` (a recording SMTP server for the client commands `sendmail` and `send`) and
//! `chaos` (the fault campaign, also run by `benches/chaos.rs`), `cli` (the gateway's own
//! commands, run as an admin runs them).
//!
//! Each test or bench binary compiles this module on its own and usually
//! needs only part of it, hence the blanket `dead_code` allowance.
#![allow(dead_code)]

pub mod chaos;
pub mod cli;
pub mod fastline;
pub mod gateway;
pub mod images;
pub mod keys;
pub mod load;
pub mod mime;
pub mod numbered;
pub mod postgres;
pub mod raw;
pub mod readme;
pub mod sink;
pub mod spec;
pub mod standin;
pub mod tls;
pub mod webhook;
