//! Where a follower's answer is mailed, and when a failed attempt is tried again: pure
//! decisions, the store's findings and the clock passed in.
//!
//! The order is the issue's: the mail the answer quotes, else the last mail pushed to that chat
//! within `[replies] window_hours`, else `[replies] to`, else nowhere (logged and counted). Every
//! address comes from a mail the gateway itself pushed to the same chat, or from the config:
//! nothing in the follower's text can choose it, so the gateway is no relay for anyone.

use std::time::Duration;

use crate::spool::answers::Thread;

/// Where an answer goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Back to the mail it answers: its Reply-To (else From), threaded under its Message-ID.
    Thread(Thread),
    /// To `[replies] to`, unthreaded: the answer belongs to no mail the gateway knows.
    Fallback(String),
    /// Nowhere: logged and counted.
    Nowhere,
}

impl Destination {
    /// The address it is mailed to, if any.
    pub fn address(&self) -> Option<&str> {
        match self {
            Destination::Thread(t) => Some(&t.reply_to),
            Destination::Fallback(to) => Some(to),
            Destination::Nowhere => None,
        }
    }
}

/// Picks the destination from what the store found: the quoted mail, the chat's last mail
/// within the window, and `[replies] to` ("" when unset). A mail that left no address to answer
/// to (no Reply-To or From) is passed over like a missing one. `usable` says whether an address
/// can be mailed at all (a syntactically valid mailbox); it is the caller's, so this stays pure.
pub fn route(quoted: Option<Thread>, last: Option<Thread>, fallback: &str, usable: impl Fn(&str) -> bool) -> Destination {
    for thread in [quoted, last].into_iter().flatten() {
        if !thread.reply_to.is_empty() && usable(&thread.reply_to) {
            return Destination::Thread(thread);
        }
    }
    if !fallback.is_empty() && usable(fallback) {
        return Destination::Fallback(fallback.to_owned());
    }
    Destination::Nowhere
}

/// When to try again after `attempts` failed tries: 30 s, doubling, at most 10 minutes. A relay
/// that is down for an hour is tried about a dozen times, and a mail waits at most 10 minutes
/// after it is back.
pub fn backoff(attempts: u32) -> Duration {
    let secs = 30u64.saturating_mul(1u64 << attempts.min(10));
    Duration::from_secs(secs.min(600))
}

/// Whether an answer stored at `created_at` is past `[replies] max_age` at `now`: its next
/// failure is final (the relay), or its missing files are given up on (the content API).
pub fn expired(created_at: i64, now: i64, max_age: Duration) -> bool {
    now.saturating_sub(created_at) >= max_age.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(to: &str) -> Thread {
        Thread { message_id: format!("{to}-id"), reply_to: to.into(), subject: "s".into() }
    }

    fn ok(_: &str) -> bool {
        true
    }

    #[test]
    fn the_quoted_mail_wins_then_the_last_mail_then_the_fallback() {
        let (q, l) = (Some(thread("q@example.com")), Some(thread("l@example.com")));
        assert_eq!(route(q.clone(), l.clone(), "to@example.com", ok), Destination::Thread(thread("q@example.com")));
        assert_eq!(route(None, l.clone(), "to@example.com", ok), Destination::Thread(thread("l@example.com")));
        assert_eq!(route(None, None, "to@example.com", ok), Destination::Fallback("to@example.com".into()));
        assert_eq!(route(None, None, "", ok), Destination::Nowhere);
        assert_eq!(route(None, None, "", ok).address(), None);
        assert_eq!(route(q, l, "", ok).address(), Some("q@example.com"));
    }

    #[test]
    fn a_mail_without_a_usable_address_is_passed_over() {
        let none = Some(thread(""));
        let bad = Some(thread("not an address"));
        let usable = |a: &str| !a.contains(' ');
        assert_eq!(route(none.clone(), Some(thread("l@example.com")), "", usable), Destination::Thread(thread("l@example.com")));
        assert_eq!(route(bad, none, "to@example.com", usable), Destination::Fallback("to@example.com".into()));
        assert_eq!(route(None, None, "bad fallback", usable), Destination::Nowhere);
    }

    #[test]
    fn backoff_doubles_to_ten_minutes_and_max_age_is_inclusive() {
        let secs: Vec<u64> = (0..7).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 600, 600]);
        assert_eq!(backoff(u32::MAX).as_secs(), 600);
        let day = Duration::from_secs(86_400);
        assert!(!expired(0, 86_399_999, day));
        assert!(expired(0, 86_400_000, day));
        assert!(!expired(10, 0, day), "a clock that went back is not expiry");
    }
}
