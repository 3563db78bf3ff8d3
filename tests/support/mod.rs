//! Shared test support for mail2line's integration tests.
//!
//! Owns nothing but the module list: `spec` (validation against LINE's
//! official OpenAPI documents), `standin` (a fake LINE API server that
//! uses `spec` to police every request the gateway makes), `gateway` (the
//! real binary), `keys` (RSA key pairs for v2.1 tokens), `raw` (a bare SMTP client),
//! `tls` (certificates and logins), `images` (pictures to decode), `mime` (mails with attachments), `readme` (the README's tested blocks), `sink` (a
//! recording SMTP server for the client commands `sendmail` and `send`) and `chaos` (the fault
//! campaign, also run by `benches/chaos.rs`).
//!
//! Each integration test binary compiles this module on its own and usually
//! needs only part of it, hence the blanket `dead_code` allowance.
#![allow(dead_code)]

pub mod chaos;
pub mod gateway;
pub mod images;
pub mod keys;
pub mod mime;
pub mod raw;
pub mod readme;
pub mod sink;
pub mod spec;
pub mod standin;
pub mod tls;
