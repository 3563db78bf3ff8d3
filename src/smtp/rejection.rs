//! Why a mail or one of its recipients was refused: the `reason` of the "mail rejected" and
//! "recipient rejected" log lines and of `mail2line_mails_rejected_total{reason}`.
//!
//! One closed list, so a dashboard's label values and a log search stay valid from one release
//! to the next; the reply text (which may change) is logged beside it.

use std::fmt;

/// A reason label. [`Reason::as_str`] is the stable, snake_case value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A malformed `MAIL FROM:`/`RCPT TO:` argument or an unknown parameter.
    Syntax,
    /// `[smtp] require_tls` and the client has not done STARTTLS (530).
    TlsRequired,
    /// The client must AUTH before MAIL (530).
    AuthRequired,
    /// Larger than `[smtp] max_message_bytes` (552), by SIZE= or by the data itself.
    Size,
    /// MAIL FROM not in `[smtp] allowed_senders` (550 5.7.1).
    SenderNotAllowed,
    /// `[smtp] max_mails_per_minute_per_ip` reached (450 4.7.1).
    RateLimited,
    /// A recipient outside `smtp.domain`: we are not a relay (550 5.7.1).
    RelayDenied,
    /// Our domain, but neither a LINE id nor an alias (550 5.1.1).
    UnknownRecipient,
    /// `[smtp] require_follower` and the user does not follow the bot (550 5.1.1).
    NotFollower,
    /// `followers@` while nobody follows the bot (550 5.1.1).
    NoFollowers,
    /// `followers@` or a protected alias, and the sender is neither in its senders nor logged
    /// in as one of its users (550 5.7.1).
    BroadcastNotAllowed,
    /// `[[channels]]`: the recipient's domain is served only to other AUTH logins (550 5.7.1).
    ChannelNotAllowed,
    /// The follower registry could not be read (451 4.3.0).
    FollowersUnavailable,
    /// More than `[smtp] max_recipients` (452 4.5.3).
    TooManyRecipients,
    /// DATA without one accepted recipient (554 5.5.1).
    NoRecipients,
    /// The LINE monthly message quota is used up (452 4.2.2).
    Quota,
    /// The spool could not store the mail, e.g. a full disk (452 4.3.1).
    Storage,
    /// Direct mode: LINE could not be reached or asked us to wait (451).
    LineUnavailable,
    /// Direct mode: LINE refused the channel access token (451 4.3.5).
    LineTokenRefused,
    /// Direct mode: LINE refused the message itself (550 5.6.0).
    LineRejected,
    /// The gateway failed itself (cannot encode a request); a bug worth reporting.
    Internal,
}

impl Reason {
    pub const ALL: [Reason; 21] = [
        Reason::Syntax,
        Reason::TlsRequired,
        Reason::AuthRequired,
        Reason::Size,
        Reason::SenderNotAllowed,
        Reason::RateLimited,
        Reason::RelayDenied,
        Reason::UnknownRecipient,
        Reason::NotFollower,
        Reason::NoFollowers,
        Reason::BroadcastNotAllowed,
        Reason::ChannelNotAllowed,
        Reason::FollowersUnavailable,
        Reason::TooManyRecipients,
        Reason::NoRecipients,
        Reason::Quota,
        Reason::Storage,
        Reason::LineUnavailable,
        Reason::LineTokenRefused,
        Reason::LineRejected,
        Reason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Syntax => "syntax",
            Reason::TlsRequired => "tls_required",
            Reason::AuthRequired => "auth_required",
            Reason::Size => "size",
            Reason::SenderNotAllowed => "sender_not_allowed",
            Reason::RateLimited => "rate_limited",
            Reason::RelayDenied => "relay_denied",
            Reason::UnknownRecipient => "unknown_recipient",
            Reason::NotFollower => "not_follower",
            Reason::NoFollowers => "no_followers",
            Reason::BroadcastNotAllowed => "broadcast_not_allowed",
            Reason::ChannelNotAllowed => "channel_not_allowed",
            Reason::FollowersUnavailable => "followers_unavailable",
            Reason::TooManyRecipients => "too_many_recipients",
            Reason::NoRecipients => "no_recipients",
            Reason::Quota => "quota",
            Reason::Storage => "storage",
            Reason::LineUnavailable => "line_unavailable",
            Reason::LineTokenRefused => "line_token_refused",
            Reason::LineRejected => "line_rejected",
            Reason::Internal => "internal",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal the session decided, for the driver to log and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: Reason,
    /// The reverse path of the transaction (may be empty: `<>`, or MAIL itself was refused).
    pub from: String,
    /// The refused recipient, for a refusal at RCPT; `None` when the whole mail was refused.
    pub rcpt: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{s}");
            assert!(seen.insert(s), "{s} twice");
            assert_eq!(r.to_string(), s);
        }
    }
}
