//! What to do after an attempt: done, retry when, or give up. Pure, so every rule is tested.

use std::time::Duration;

use crate::line::outcome::{Outcome, RetryReason};

use super::store::{Job, Update};

/// LINE remembers an accepted `X-Line-Retry-Key` for 24 hours.
pub const RETRY_KEY_LIFETIME_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// First backoff; doubles per attempt.
    pub base: Duration,
    /// Backoff ceiling.
    pub max: Duration,
    /// A job older than this is given up (dead), never silently dropped.
    pub max_age: Duration,
    /// How long to wait before retrying a job that met an exhausted monthly quota.
    pub quota_probe: Duration,
}

/// Decides the update for `job` after an attempt started at `now` (unix ms) ended in `outcome`.
/// `jitter` in [0, 1) spreads retries so a LINE outage does not end in a thundering herd.
pub fn decide(job: &Job, outcome: &Outcome, now: i64, jitter: f64, p: &RetryPolicy) -> Update {
    match outcome {
        Outcome::Delivered { sent, .. } => Update::Done { sent: sent.clone() },
        Outcome::Permanent { status, message } => Update::Dead { error: format!("LINE rejected the request ({status}): {message}") },
        Outcome::Unauthorized { status, message } => Update::Dead {
            error: format!("LINE refused the channel access token ({status}): {message}; fix the token, then `mail2line queue retry`"),
        },
        Outcome::Retry { reason, detail, after } => {
            // Did this attempt perhaps reach LINE? Then only the retry key protects against a
            // duplicate, and only while LINE still remembers it.
            let ambiguous = reason.leaves_doubt();
            let first = job.first_attempt_at.unwrap_or(now);
            let age = Duration::from_millis((now - job.created_at).max(0) as u64);
            let attempts = job.attempts + 1;
            if age >= p.max_age {
                return Update::Dead { error: format!("gave up after {attempts} attempts over {}: {detail}", human(age)) };
            }
            if (ambiguous || job.ambiguous) && now - first >= RETRY_KEY_LIFETIME_MS {
                return Update::Dead {
                    error: format!(
                        "not retried: an attempt may have reached LINE and its retry key is older than 24 h, so a retry could duplicate the message ({detail}); check the chat, then `mail2line queue retry` or `drop`"
                    ),
                };
            }
            let wait = match reason {
                RetryReason::QuotaExhausted => p.quota_probe,
                _ => {
                    let exp = p.base.saturating_mul(1u32 << job.attempts.min(20)).min(p.max);
                    let jittered = exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0);
                    jittered.max(after.unwrap_or_default())
                }
            };
            let quota_exhausted = matches!(reason, RetryReason::QuotaExhausted);
            Update::Retry { next_at: now + wait.as_millis() as i64, error: detail.clone(), ambiguous, quota_exhausted }
        }
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86400 {
        format!("{:.1} days", s as f64 / 86400.0)
    } else if s >= 3600 {
        format!("{:.1} hours", s as f64 / 3600.0)
    } else {
        format!("{s} s")
    }
}

/// How often dead letters are looked for: a tenth of the retention, so one outlives it by at
/// most 10 %, but not more often than the scan and at least hourly.
pub fn purge_interval(dead_retention: Duration, scan_interval: Duration) -> Duration {
    (dead_retention / 10).clamp(scan_interval.min(Duration::from_secs(3600)), Duration::from_secs(3600))
}

/// How far ahead a gateway claims due jobs: what it can send in this long at its rate.
pub const CLAIM_AHEAD: Duration = Duration::from_secs(2);

/// The most due jobs one scan takes: memory stays bounded however long the backlog.
pub const MAX_SCAN: usize = 10_000;

/// The most jobs one claiming statement takes on PostgreSQL: the rows stay locked until the
/// statement commits, and a statement claiming thousands held them (and the workers finishing
/// theirs) for seconds. A scan that took a full batch asks again at once.
pub const CLAIM_BATCH: usize = 500;

/// How many due jobs a scan may claim on PostgreSQL, with `in_flight` in hand and the limiters
/// at `per_second` requests a second: [`CLAIM_AHEAD`]'s worth less what is in hand, up to
/// [`MAX_SCAN`] (0: do not ask). A claim keeps its jobs from the other gateways for the lease; a
/// gateway that claimed a whole backlog would send it alone, at its share of the channel's
/// rate, while the others had nothing to send (a 10,000-job drain on three gateways took three
/// times as long). Two seconds' worth also covers slow answers: at the rate, that many requests
/// can be on their way at once.
pub fn claim_budget(per_second: u32, in_flight: usize) -> usize {
    let ahead = (u64::from(per_second) * CLAIM_AHEAD.as_millis() as u64 / 1000).clamp(1, MAX_SCAN as u64) as usize;
    ahead.saturating_sub(in_flight)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::store::State;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(3600),
            max_age: Duration::from_secs(3 * 86400),
            quota_probe: Duration::from_secs(300),
        }
    }

    fn job(attempts: u32, created_at: i64, first: Option<i64>, ambiguous: bool) -> Job {
        Job {
            id: 1,
            mail_id: "m".into(),
            path: "/v2/bot/message/push".into(),
            body: "{}".into(),
            retry_key: "k".into(),
            target: "U1".into(),
            sender: "s".into(),
            state: State::Pending,
            attempts,
            created_at,
            first_attempt_at: first,
            next_at: 0,
            ambiguous,
            last_error: String::new(),
            chat: String::new(),
            recipients: 1,
            mails: 1,
        }
    }

    fn retry(reason: RetryReason, after: Option<Duration>) -> Outcome {
        Outcome::Retry { reason, detail: "d".into(), after }
    }

    #[test]
    fn dead_letters_are_looked_for_a_tenth_of_the_retention_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(purge_interval(s(30 * 86400), s(1)), s(3600));
        assert_eq!(purge_interval(s(600), s(1)), s(60));
        assert_eq!(purge_interval(s(2), s(1)), s(1), "not more often than the scan");
        assert_eq!(purge_interval(s(1), s(7200)), s(3600));
    }

    #[test]
    fn delivered_and_duplicate_are_done() {
        let o = Outcome::Delivered { request_id: None, duplicate: true, sent: vec![] };
        assert!(matches!(decide(&job(3, 0, Some(0), true), &o, 10, 0.0, &policy()), Update::Done { .. }));
    }

    #[test]
    fn permanent_and_auth_errors_bury_with_reason() {
        let o = Outcome::Permanent { status: 400, message: "Invalid reply token".into() };
        let Update::Dead { error } = decide(&job(0, 0, None, false), &o, 10, 0.0, &policy()) else { panic!() };
        assert_eq!(error, "LINE rejected the request (400): Invalid reply token");
        let o = Outcome::Unauthorized { status: 403, message: "no".into() };
        assert!(matches!(decide(&job(0, 0, None, false), &o, 10, 0.0, &policy()), Update::Dead { .. }));
    }

    #[test]
    fn exponential_backoff_with_jitter_and_retry_after() {
        let p = policy();
        let at = |attempts, jitter, after| match decide(&job(attempts, 0, Some(0), false), &retry(RetryReason::RateLimited, after), 1000, jitter, &p) {
            Update::Retry { next_at, .. } => next_at - 1000,
            other => panic!("{other:?}"),
        };
        assert_eq!(at(0, 0.0, None), 500);
        assert_eq!(at(0, 0.999_999, None), 999);
        assert_eq!(at(3, 0.0, None), 4000);
        assert_eq!(at(30, 0.0, None), 1_800_000, "capped at max, then jittered");
        assert_eq!(at(0, 0.0, Some(Duration::from_secs(7))), 7000, "Retry-After wins when longer");
    }

    #[test]
    fn ambiguity_is_recorded_per_reason() {
        let p = policy();
        for (reason, amb) in [
            (RetryReason::Timeout, true),
            (RetryReason::ConnectionLost, true),
            (RetryReason::ServerError, true),
            (RetryReason::Unreachable, false),
            (RetryReason::RateLimited, false),
        ] {
            let Update::Retry { ambiguous, .. } = decide(&job(0, 0, None, false), &retry(reason, None), 10, 0.0, &p) else { panic!() };
            assert_eq!(ambiguous, amb, "{reason:?}");
        }
    }

    #[test]
    fn old_ambiguous_jobs_are_not_blindly_retried() {
        let p = policy();
        let day = RETRY_KEY_LIFETIME_MS;
        // Ambiguous earlier attempt, first attempt 24 h ago: dead, with an explanation.
        let d = decide(&job(5, 0, Some(0), true), &retry(RetryReason::RateLimited, None), day, 0.0, &p);
        assert!(matches!(&d, Update::Dead { error } if error.contains("older than 24 h")), "{d:?}");
        // Never ambiguous (only 429s and refused connections): keeps trying until max_age.
        let d = decide(&job(5, 0, Some(0), false), &retry(RetryReason::Unreachable, None), day, 0.0, &p);
        assert!(matches!(d, Update::Retry { .. }), "{d:?}");
        // Younger than 24 h: retried with the same key.
        let d = decide(&job(5, 0, Some(0), true), &retry(RetryReason::Timeout, None), day - 1, 0.0, &p);
        assert!(matches!(d, Update::Retry { .. }), "{d:?}");
    }

    #[test]
    fn max_age_buries_and_quota_waits_for_the_probe() {
        let p = policy();
        let three_days = 3 * 86400 * 1000;
        let d = decide(&job(40, 0, Some(0), false), &retry(RetryReason::Unreachable, None), three_days, 0.0, &p);
        assert!(matches!(&d, Update::Dead { error } if error.starts_with("gave up after 41 attempts over 3.0 days")), "{d:?}");
        let d = decide(&job(0, 0, None, false), &retry(RetryReason::QuotaExhausted, None), 1000, 0.0, &p);
        assert!(matches!(d, Update::Retry { next_at: 301_000, ambiguous: false, .. }), "{d:?}");
    }

    #[test]
    fn a_scan_claims_two_seconds_of_sending_less_what_is_in_hand() {
        assert_eq!(claim_budget(31, 0), 62);
        assert_eq!(claim_budget(31, 50), 12);
        assert_eq!(claim_budget(31, 62), 0, "enough in hand: no claim");
        assert_eq!(claim_budget(31, 500), 0);
        // At the floor (a gateway joining): one job at a time, not a backlog held for minutes.
        assert_eq!(claim_budget(1, 0), 2);
        assert_eq!(claim_budget(0, 0), 1);
        // Unthrottled: bounded as every scan is.
        assert_eq!(claim_budget(1_000_000, 0), MAX_SCAN);
    }
}
