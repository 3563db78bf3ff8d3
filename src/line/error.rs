//! Why a call to LINE other than a message request failed: building the client, the token
//! check for `/readyz`, and the GETs (quota, member counts, profiles and member names). A message request never
//! fails this way; its answer is an [`Outcome`](super::Outcome) the spool or the gateway decides
//! on. Each message says what happened and, where there is something to do, what; none holds a
//! token (tokens travel only in a header).

use super::token::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The TLS or HTTP setup of reqwest failed (no usable TLS roots, for one).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// LINE refused the token on the last message request, or none could be issued.
    #[error(
        "LINE refused the {kind} channel access token on the last request (or none could be issued); check the [line] token settings, then restart"
    )]
    TokenRefused { kind: &'static str },
    /// A token should be issued now and could not be.
    #[error("cannot get a channel access token: {0}")]
    NoToken(TokenError),
    /// A passive read (no token is issued for it) found none yet.
    #[error("GET {path}: no channel access token yet (the first push gets one)")]
    NoTokenYet { path: String },
    /// A GET needed a token and none could be had.
    #[error("GET {path}: {why}")]
    Token { path: String, why: TokenError },
    /// No HTTP answer.
    #[error("GET {path}: {}", if *.timed_out { "timed out" } else { "connection failed" })]
    Transport { path: String, timed_out: bool },
    /// An HTTP error status.
    #[error("GET {path}: LINE answered {status}")]
    Status { path: String, status: u16 },
    /// 2xx, but not what the API reference describes.
    #[error("GET {path}: unexpected answer: {detail}")]
    Answer { path: String, detail: String },
    /// Not an id that may go into a URL path.
    #[error("{0:?} is not a LINE user id")]
    NotAUserId(String),
    /// Not a group (`C…`), room (`R…`) or user (`U…`) id that may go into a URL path.
    #[error("{0:?} is not a LINE chat id (a user, group or room id: U…, C… or R…)")]
    NotAChatId(String),
}

