//! Coalescing and quota decisions (issue #17): when a chat's held mail goes out, how long the
//! coalescing window is, and whether a new mail may be taken while the month's LINE quota runs
//! low. Pure, with the clock passed in, like `policy.rs`: the spool asks, this answers; a
//! simulated month (`benches/month.rs`) runs exactly these functions.
//!
//! Why coalesce: LINE counts one message per recipient per accepted push or multicast, whether
//! the request carries 1 or 5 message objects. Ten cron jobs finishing within seconds cost ten
//! messages one by one, one message together. The first mail to a chat after a quiet spell goes
//! out at once (a lone mail never waits); mail that follows within the window is held and goes
//! out together when the window ends.
//!
//! Why pace: on the free plan (200 a month) a month of routine mail may still be too much. When
//! the month's use so far, carried on at the same rate, would spend the budget before the month
//! ends, the window grows in proportion, up to `max_coalesce`, so fewer, fuller requests make
//! the rest last. Urgent mail is never held and never paced; the last `reserve` messages of the
//! month are kept for it.
//!
//! Not wired into the spool yet: that (held mails and sealed batches as rows, the `[quota]`
//! keys, the probe, `mail2line quota`) is the rest of issue #17.

use std::time::Duration;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// The coalescing and quota settings (`[delivery] coalesce_secs`, `[quota]`).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The base window after a push to a chat; zero turns coalescing off.
    pub coalesce: Duration,
    /// Stretch the window when the forecast says the budget runs out early.
    pub pacing: bool,
    /// How far pacing may stretch the window.
    pub max_coalesce: Duration,
    /// The last messages of the month, kept for urgent mail.
    pub reserve: u64,
    /// A cap below LINE's own limit (other tools share the channel); 0: LINE's limit.
    pub monthly_budget: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            coalesce: Duration::from_secs(10),
            pacing: true,
            max_coalesce: Duration::from_secs(3600),
            reserve: 10,
            monthly_budget: 0,
        }
    }
}

/// What is known of this month's quota: LINE's limit (`None`: no limit, as LINE's `type: none`)
/// and the messages used so far, LINE's count plus what was sent since it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: Option<u64>,
    pub used: u64,
}

impl Quota {
    /// The budget the gateway keeps to: LINE's limit or `monthly_budget`, whichever is lower.
    pub fn budget(&self, s: &Settings) -> Option<u64> {
        match (self.limit, s.monthly_budget) {
            (None, 0) => None,
            (None, b) => Some(b),
            (Some(l), 0) => Some(l),
            (Some(l), b) => Some(l.min(b)),
        }
    }
}

/// Whether a new mail may be taken (decided before DATA is answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accept,
    /// Only the reserve is left: routine mail gets `452 4.2.2`; the quota comes back at
    /// `until_ms` (the start of the next month in Japan time).
    Reserved { until_ms: i64 },
    /// Nothing is left, not even for urgent mail.
    Spent { until_ms: i64 },
}

/// Whether a mail (urgent or not) may be taken at `now_ms` with `quota` used.
pub fn admit(quota: Quota, s: &Settings, urgent: bool, now_ms: i64) -> Admission {
    let Some(budget) = quota.budget(s) else { return Admission::Accept };
    let until_ms = month_bounds(now_ms).1;
    let left = budget.saturating_sub(quota.used);
    if left == 0 {
        Admission::Spent { until_ms }
    } else if left <= s.reserve && !urgent {
        Admission::Reserved { until_ms }
    } else {
        Admission::Accept
    }
}

/// The coalescing window at `now_ms`: the base window, or, with pacing, stretched by how much
/// faster than the budget allows the month is being used.
///
/// The forecast is the month's use so far carried on at the same rate. If it would spend the
/// budget (less the reserve) before the month ends, the window is multiplied by the ratio of
/// the forecast's further use to what is left: a window `f` times longer turns a steady stream
/// of mail to a chat into `f` times fewer requests. The rate is measured again at every call,
/// so the stretch follows the month as it goes.
pub fn window(s: &Settings, quota: Quota, now_ms: i64) -> Duration {
    if s.coalesce.is_zero() || !s.pacing {
        return s.coalesce;
    }
    let Some(budget) = quota.budget(s) else { return s.coalesce };
    let (start, end) = month_bounds(now_ms);
    let elapsed = (now_ms - start).max(1) as f64;
    let remaining_time = (end - now_ms).max(0) as f64;
    let allowed_more = budget.saturating_sub(s.reserve).saturating_sub(quota.used) as f64;
    let forecast_more = quota.used as f64 / elapsed * remaining_time;
    if forecast_more <= allowed_more {
        return s.coalesce;
    }
    let factor = forecast_more / allowed_more.max(1.0);
    s.coalesce.mul_f64(factor).min(s.max_coalesce.max(s.coalesce))
}

/// One chat's coalescing state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Chat {
    /// When the last request to this chat went out.
    pub last_push_ms: Option<i64>,
    /// Whether mail is held for this chat.
    pub held: bool,
    /// Whether an urgent mail is among it.
    pub urgent_held: bool,
    /// Windows in a row that ended with mail held: each doubles the next (see [`chat_window`]).
    pub streak: u32,
}

/// The window for `chat`: `base` (from [`window`]) doubled for every window in a row that
/// ended with mail held, up to `max_coalesce`. A flap of alerts keeps a chat busy for minutes;
/// with a fixed 10 s window it costs a request every 10 s, with a doubling one a handful. The
/// first quiet window resets it, so the next lone mail goes at once again.
pub fn chat_window(base: Duration, chat: &Chat, s: &Settings) -> Duration {
    let cap = s.max_coalesce.max(base);
    base.saturating_mul(1u32 << chat.streak.min(16)).min(cap)
}

/// `chat` after its held mail went out at `at_ms`; `waited` when the mail had been held for a
/// window (the chat is busy: the streak grows), not sent at once after a quiet spell (it ends).
pub fn sent(chat: Chat, at_ms: i64, waited: bool) -> Chat {
    Chat { last_push_ms: Some(at_ms), held: false, urgent_held: false, streak: if waited { chat.streak.saturating_add(1) } else { 0 } }
}

/// What to do with a chat's held mail now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing is held.
    Idle,
    /// Seal what is held into one request and send it.
    SendNow,
    /// Hold it until this time.
    WakeAt(i64),
}

/// The decision for `chat` at `now_ms` with the window `window` (from [`chat_window`]). Mail to a chat that has been
/// quiet for a window goes at once; urgent mail goes at once and takes what is held along, at
/// no extra cost (one request either way).
pub fn next(chat: Chat, window: Duration, now_ms: i64) -> Next {
    if !chat.held {
        return Next::Idle;
    }
    let open_at = chat.last_push_ms.map(|t| t.saturating_add(window.as_millis() as i64));
    match open_at {
        _ if chat.urgent_held => Next::SendNow,
        Some(at) if now_ms < at => Next::WakeAt(at),
        _ => Next::SendNow,
    }
}

/// Japan time, where LINE's months begin and end.
const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// The calendar month (Japan time) holding `now_ms`: its start and the start of the next, in
/// unix milliseconds.
pub fn month_bounds(now_ms: i64) -> (i64, i64) {
    let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(JST);
    let first = |year: i32, month: Month| {
        let date = Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN);
        let at = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(JST);
        (at.unix_timestamp_nanos() / 1_000_000) as i64
    };
    let (year, month) = (now.year(), now.month());
    let (next_year, next_month) = if month == Month::December { (year + 1, Month::January) } else { (year, month.next()) };
    (first(year, month), first(next_year, next_month))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1000;
    /// 2026-12-10 03:00 UTC = 12:00 JST.
    const T0: i64 = 1_796_871_600_000;

    fn s() -> Settings {
        Settings::default()
    }

    #[test]
    fn months_are_calendar_months_in_japan_time() {
        // 2026-11-30 14:59:59 UTC is still November in Japan; a second later it is December.
        let nov_last = 1_796_050_799_000;
        let dec_first = nov_last + SEC;
        assert_eq!(month_bounds(nov_last).1, dec_first);
        assert_eq!(month_bounds(dec_first).0, dec_first);
        let (start, end) = month_bounds(T0);
        assert_eq!((start, end - start), (dec_first, 31 * 24 * 3600 * SEC));
        // December → January of the next year.
        assert_eq!(month_bounds(end).0, end);
    }

    #[test]
    fn a_lone_mail_goes_at_once_and_a_burst_is_held_for_the_window() {
        let w = Duration::from_secs(10);
        let quiet = Chat { held: true, ..Chat::default() };
        assert_eq!(next(quiet, w, T0), Next::SendNow, "first mail ever");
        let after_push = Chat { last_push_ms: Some(T0), held: true, urgent_held: false, streak: 0 };
        assert_eq!(next(after_push, w, T0 + 2 * SEC), Next::WakeAt(T0 + 10 * SEC));
        assert_eq!(next(after_push, w, T0 + 10 * SEC), Next::SendNow);
        assert_eq!(next(after_push, w, T0 + 3600 * SEC), Next::SendNow, "a quiet spell: at once");
        assert_eq!(next(Chat { held: false, ..after_push }, w, T0), Next::Idle);
        // Urgent mail never waits, and takes the held mail along.
        assert_eq!(next(Chat { urgent_held: true, ..after_push }, w, T0 + SEC), Next::SendNow);
        // Coalescing off: a zero window never holds.
        assert_eq!(next(after_push, Duration::ZERO, T0), Next::SendNow);
    }

    #[test]
    fn a_busy_chat_waits_longer_each_window_and_a_quiet_one_starts_over() {
        let base = Duration::from_secs(10);
        let mut chat = Chat::default();
        // A lone mail goes at once: no streak.
        chat = sent(chat, T0, false);
        assert_eq!(chat_window(base, &chat, &s()), base);
        // Mail held through a window: the next window is twice as long, and so on.
        chat = sent(chat, T0 + 10 * SEC, true);
        assert_eq!(chat_window(base, &chat, &s()), Duration::from_secs(20));
        chat = sent(chat, T0 + 30 * SEC, true);
        assert_eq!(chat_window(base, &chat, &s()), Duration::from_secs(40));
        // Capped at max_coalesce however long the flap.
        let long = Chat { streak: 40, ..chat };
        assert_eq!(chat_window(base, &long, &s()), Duration::from_secs(3600));
        // A mail after a quiet spell is sent at once and the streak ends.
        chat = sent(chat, T0 + 3600 * SEC, false);
        assert_eq!((chat.streak, chat_window(base, &chat, &s())), (0, base));
    }

    #[test]
    fn the_reserve_is_for_urgent_mail_and_a_spent_month_refuses_all() {
        let free = Quota { limit: Some(200), used: 150 };
        let next_month = month_bounds(T0).1;
        assert_eq!(admit(free, &s(), false, T0), Admission::Accept);
        let low = Quota { used: 190, ..free };
        assert_eq!(admit(low, &s(), false, T0), Admission::Reserved { until_ms: next_month });
        assert_eq!(admit(low, &s(), true, T0), Admission::Accept);
        let spent = Quota { used: 200, ..free };
        assert_eq!(admit(spent, &s(), true, T0), Admission::Spent { until_ms: next_month });
        // No limit at LINE, no budget: always taken. A budget below LINE's limit counts.
        assert_eq!(admit(Quota { limit: None, used: 1_000_000 }, &s(), false, T0), Admission::Accept);
        let capped = Settings { monthly_budget: 100, ..s() };
        assert_eq!(admit(free, &capped, true, T0), Admission::Spent { until_ms: next_month });
        assert_eq!(Quota { limit: None, used: 0 }.budget(&capped), Some(100));
    }

    #[test]
    fn pacing_stretches_the_window_only_when_the_month_would_run_out() {
        let (start, end) = month_bounds(T0);
        let mid = start + (end - start) / 2;
        // Half the month gone, half the budget (less the reserve) used: on course.
        assert_eq!(window(&s(), Quota { limit: Some(210), used: 100 }, mid), Duration::from_secs(10));
        // Half the month gone, 150 of 200 used: the rest at this rate would be another 150,
        // with 40 allowed: the window grows 3.75 times.
        let w = window(&s(), Quota { limit: Some(200), used: 150 }, mid);
        assert_eq!(w, Duration::from_secs_f64(37.5));
        // Far over: clamped at max_coalesce.
        assert_eq!(window(&s(), Quota { limit: Some(200), used: 189 }, start + 3600 * SEC), Duration::from_secs(3600));
        // Off: pacing = false, no limit, or coalescing off.
        assert_eq!(window(&Settings { pacing: false, ..s() }, Quota { limit: Some(200), used: 150 }, mid), Duration::from_secs(10));
        assert_eq!(window(&s(), Quota { limit: None, used: 150 }, mid), Duration::from_secs(10));
        let off = Settings { coalesce: Duration::ZERO, ..s() };
        assert_eq!(window(&off, Quota { limit: Some(200), used: 150 }, mid), Duration::ZERO);
    }
}
