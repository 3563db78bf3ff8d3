//! Answers from LINE, mailed back to the mail's sender (issue #20): the outgoing side.
//!
//! * [`settings`]: the `[replies]` table, checked when the configuration is loaded (the relay
//!   URL, the addresses and `max_age` kept parsed).
//! * [`letter`]: pure; one follower's answer → the bytes of a threaded reply mail and its
//!   envelope (`From: "<name> via LINE"`, `Re:`, `In-Reply-To`/`References`, attachments).
//! * [`relay`]: the I/O; sends those bytes to `[replies] relay` over SMTP (plain, STARTTLS or
//!   implicit TLS, AUTH when a username is set), and probes it for `check-config --online`.
//!
//! * [`route`]: pure; where an answer goes (the quoted mail, the chat's last mail, `[replies]
//!   to`, nowhere) and when a failed attempt is tried again.
//! * [`outbox`]: the worker that takes the answers the webhook stored (`spool::answers`) and
//!   mails them: route, display name, files from LINE's content API, letter, relay, outcome.
//!
//! The address an answer goes to only ever comes from a mail the gateway itself pushed to the
//! same chat, or from `[replies] to`: never from the answer's text.

pub mod letter;
pub mod outbox;
pub mod relay;
pub mod route;
pub mod settings;

pub use letter::{Attachment, Letter, LetterError};
pub use relay::{Relay, RelayError, SendError};
pub use settings::{RelayUrl, Security, Settings};
