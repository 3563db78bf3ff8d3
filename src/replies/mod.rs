//! Answers from LINE, mailed back to the mail's sender (issue #20): the outgoing side.
//!
//! * [`settings`]: the `[replies]` table, checked when the configuration is loaded (the relay
//!   URL, the addresses and `max_age` kept parsed).
//! * [`letter`]: pure; one follower's answer → the bytes of a threaded reply mail and its
//!   envelope (`From: "<name> via LINE"`, `Re:`, `In-Reply-To`/`References`, attachments).
//! * [`relay`]: the I/O; sends those bytes to `[replies] relay` over SMTP (plain, STARTTLS or
//!   implicit TLS, AUTH when a username is set), and probes it for `check-config --online`.
//!
//! Which address an answer goes to is decided elsewhere (the router, from what the gateway
//! itself pushed), never here and never from the answer's text: this module only writes and
//! sends the mail it is given.

pub mod letter;
pub mod relay;
pub mod settings;

pub use letter::{Attachment, Letter, LetterError};
pub use relay::{Relay, RelayError, SendError};
pub use settings::{RelayUrl, Security, Settings};
