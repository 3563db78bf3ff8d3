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
//! the month's use so far (sent, and committed to held mail), carried on at the same rate,
//! would spend the budget before the month ends, the window stretches to `max_coalesce`, so
//! fewer, fuller requests make the rest last; once the month is back on course it returns to
//! the base window. Urgent mail is never held and never paced; the last `reserve` messages of
//! the month are kept for it, and held routine mail counts against the budget from the moment
//! it is taken, so it cannot spend the reserve when it goes out later.
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

/// What is known of this month's quota: LINE's limit (`None`: no limit, as LINE's `type: none`),
/// the messages used so far (LINE's count plus what was sent since it was read), and what mail
/// already taken will cost when it goes out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub limit: Option<u64>,
    pub used: u64,
    /// Messages that mail taken but not sent yet will cost: for every chat with held mail, the
    /// requests it needs × the chat's recipients (a group counts its members), plus sealed
    /// requests LINE has not accepted yet. When asking [`admit`] about a new mail, add what
    /// taking it would add: its recipients, unless it joins mail already held for its chat
    /// (then it rides in that request). [`admit`] assumes at least 1 (the mail asked about
    /// costs something), so `0` means "nothing held, a 1-recipient mail".
    pub committed: u64,
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

/// Whether a mail (urgent or not) may be taken at `now_ms`.
///
/// What counts is `used + committed`: held mail is already promised a request, so routine mail
/// is refused as soon as the held mail's cost would eat into the reserve. Routine mail is taken
/// only while, after it and everything held has gone out, at least `reserve` messages are
/// left; urgent mail while it (and what is held) still fits in the budget.
pub fn admit(quota: Quota, s: &Settings, urgent: bool, now_ms: i64) -> Admission {
    let Some(budget) = quota.budget(s) else { return Admission::Accept };
    let until_ms = month_bounds(now_ms).1;
    let after = quota.used.saturating_add(quota.committed.max(1));
    if quota.used >= budget || (urgent && after > budget) {
        Admission::Spent { until_ms }
    } else if !urgent && after.saturating_add(s.reserve) > budget {
        Admission::Reserved { until_ms }
    } else {
        Admission::Accept
    }
}

/// The coalescing window at `now_ms`: the base window, or `max_coalesce` while the month is
/// being used faster than the budget allows.
///
/// The forecast is the month's use so far (sent and committed) carried on to month end at the
/// rate it was used, the rate taken over at least a day so that the month's first burst is not
/// mistaken for its pace. If the forecast spends more than the budget less the reserve, the
/// window is `max_coalesce`; otherwise the base window. (The same test, rearranged: is more
/// used than an even spread of the budget over the month gone by?) It is asked again with every
/// mail, so pacing stops by itself as soon as the month is back on course.
///
/// Why all the way to `max_coalesce` rather than in proportion to the overrun: the cost of
/// periodic mail is a step function of the window, not inversely proportional to it. An hourly
/// cron costs two requests an hour with a 10 s window and still two with a 20 min one; only a
/// window near the hour (with [`chat_window`]'s doubling, about half of it) merges the bursts. Proportional stretches (to the time left over
/// the messages left, or to that times the overrun) were tried on `benches/month.rs`: with a
/// 24 h `max_coalesce` they ran the free plan out 1.5–2 days earlier than this and refused
/// more routine mail (1,297–1,464 mails against 908); with 6 h or 12 h they did no better.
///
/// When even `max_coalesce` cannot make the budget last (an hourly cron needs at least one
/// request an hour, 744 in December, against the free plan's 200), the window stays at
/// `max_coalesce` and routine mail gets 452 once only the reserve is left ([`admit`]).
pub fn window(s: &Settings, quota: Quota, now_ms: i64) -> Duration {
    if s.coalesce.is_zero() || !s.pacing {
        return s.coalesce;
    }
    let Some(budget) = quota.budget(s) else { return s.coalesce };
    let cap = s.max_coalesce.max(s.coalesce);
    let (start, end) = month_bounds(now_ms);
    let elapsed = (now_ms - start).max(0) as f64;
    let remaining = (end - now_ms).max(0) as f64;
    let spent = quota.used.saturating_add(quota.committed) as f64;
    let allowed_more = budget.saturating_sub(s.reserve) as f64 - spent;
    let forecast_more = spent * remaining / elapsed.max(DAY_MS as f64);
    if forecast_more <= allowed_more {
        return s.coalesce;
    }
    cap
}

const DAY_MS: i64 = 24 * 3600 * 1000;

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
        let free = Quota { limit: Some(200), used: 150, committed: 0 };
        let next_month = month_bounds(T0).1;
        assert_eq!(admit(free, &s(), false, T0), Admission::Accept);
        // 189 used: a 1-recipient mail leaves 10, the reserve: still taken. At 190 it would not.
        assert_eq!(admit(Quota { used: 189, ..free }, &s(), false, T0), Admission::Accept);
        let low = Quota { used: 190, ..free };
        assert_eq!(admit(low, &s(), false, T0), Admission::Reserved { until_ms: next_month });
        assert_eq!(admit(low, &s(), true, T0), Admission::Accept);
        let spent = Quota { used: 200, ..free };
        assert_eq!(admit(spent, &s(), true, T0), Admission::Spent { until_ms: next_month });
        assert_eq!(admit(spent, &s(), false, T0), Admission::Spent { until_ms: next_month });
        // No limit at LINE, no budget: always taken. A budget below LINE's limit counts.
        assert_eq!(admit(Quota { limit: None, used: 1_000_000, committed: 50 }, &s(), false, T0), Admission::Accept);
        let capped = Settings { monthly_budget: 100, ..s() };
        assert_eq!(admit(free, &capped, true, T0), Admission::Spent { until_ms: next_month });
        assert_eq!(Quota { limit: None, ..Quota::default() }.budget(&capped), Some(100));
    }

    #[test]
    fn held_mail_counts_against_the_budget_so_it_cannot_spend_the_reserve() {
        let next_month = month_bounds(T0).1;
        let reserved = Admission::Reserved { until_ms: next_month };
        // 186 used; a flap's mail is held for a 5-member group (it will cost 5), and a mail
        // to a 1-member chat comes in: 186 + 5 + 1 = 192 would leave 8 < 10 after it all goes
        // out. Refused, although 14 are left today.
        let q = Quota { limit: Some(200), used: 186, committed: 5 + 1 };
        assert_eq!(admit(q, &s(), false, T0), reserved);
        // Counting only what was sent, it would have been taken, and once it and the held
        // request had gone out, 192 used would leave 8 of the reserve's 10.
        assert_eq!(admit(Quota { committed: 0, ..q }, &s(), false, T0), Admission::Accept);
        // Another mail for the group joins the held request: it adds nothing and is taken.
        assert_eq!(admit(Quota { limit: Some(200), used: 185, committed: 5 }, &s(), false, T0), Admission::Accept);
        // Urgent mail passes while it (and what is held) fits in the whole budget: joining the
        // held request at 195 + 5, yes; a new request to the group at 196 + 5, no.
        assert_eq!(admit(Quota { limit: Some(200), used: 195, committed: 5 }, &s(), true, T0), Admission::Accept);
        assert_eq!(admit(Quota { limit: Some(200), used: 196, committed: 5 }, &s(), true, T0), Admission::Spent { until_ms: next_month });

        // A month's end played through: routine mail to a 5-member group (held until its
        // window ends) and to the admin (sent at once), with every admission asked as the spool will
        // ask it. However it goes, what routine mail takes never reaches into the reserve, and
        // two urgent alerts to the group still go out afterwards.
        let (limit, members) = (Some(200), [1u64, 5]);
        let (mut used, mut held_group) = (170u64, false);
        let mut taken = 0;
        for i in 0..200 {
            let to_group = i % 3 != 0;
            let adds = if to_group && held_group { 0 } else { members[usize::from(to_group)] };
            let committed = if held_group { 5 } else { 0 };
            let q = Quota { limit, used, committed: committed + adds };
            if admit(q, &s(), false, T0) != Admission::Accept {
                continue;
            }
            taken += 1;
            if to_group {
                held_group = true;
            } else {
                used += 1;
            }
            assert!(used + if held_group { 5 } else { 0 } <= 190, "routine mail reached into the reserve");
            if i % 10 == 9 && held_group {
                used += 5; // the group's window ends: its held mail goes out
                held_group = false;
            }
        }
        assert!(taken > 0 && taken < 200, "some routine mail taken, the rest refused: {taken}");
        for _ in 0..2 {
            let committed = if held_group { 5 } else { 0 };
            let adds = if held_group { 0 } else { 5 };
            assert_eq!(admit(Quota { limit, used, committed: committed + adds }, &s(), true, T0), Admission::Accept);
            used += 5; // the alert goes at once, taking the held mail along
            held_group = false;
        }
        assert!(used <= 200);
    }

    /// Requests a chat gets from `hours` hourly bursts of 5 mails within 5 s, with `base` as
    /// the window: the decisions the spool takes, mail by mail.
    fn hourly_cron_requests(base: Duration, hours: i64) -> u32 {
        let (mut chat, mut wake, mut requests) = (Chat::default(), None::<i64>, 0);
        for h in 0..hours {
            for j in 0..5 {
                let now = T0 + h * 3600 * SEC + j * SEC;
                if let Some(at) = wake.filter(|&at| at <= now) {
                    (chat, wake, requests) = (sent(chat, at, true), None, requests + 1);
                }
                chat.held = true;
                match next(chat, chat_window(base, &chat, &s()), now) {
                    Next::SendNow => (chat, wake, requests) = (sent(chat, now, wake.is_some()), None, requests + 1),
                    Next::WakeAt(at) => wake = Some(wake.map_or(at, |w| w.min(at))),
                    Next::Idle => unreachable!("mail is held"),
                }
            }
        }
        requests + u32::from(wake.is_some())
    }

    #[test]
    fn an_hourly_cron_costs_the_same_until_the_window_nears_the_hour() {
        // Why pacing goes straight to max_coalesce: a stretch short of the bursts' spacing
        // buys nothing. Two requests an hour (the first mail at once, the rest at the window's
        // end) with a 10 s window and with a 20 min one; about one an hour once the window,
        // doubled by the busy streak, reaches the hour.
        assert_eq!(hourly_cron_requests(Duration::from_secs(10), 24), 48);
        assert_eq!(hourly_cron_requests(Duration::from_secs(1200), 24), 48);
        assert!(hourly_cron_requests(Duration::from_secs(3600), 24) <= 25);
        assert!(hourly_cron_requests(Duration::from_secs(2400), 24) <= 25);
    }

    #[test]
    fn pacing_stretches_the_window_to_the_max_while_the_month_would_run_out() {
        let (start, end) = month_bounds(T0);
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(3600);
        let free = |used, committed| Quota { limit: Some(200), used, committed };
        // Half the month gone: on course while no more than half of the 190 (200 less the
        // reserve) is used; past that, the window is max_coalesce.
        let mid = start + (end - start) / 2;
        assert_eq!(window(&s(), free(95, 0), mid), base);
        assert_eq!(window(&s(), free(96, 0), mid), max);
        // Held mail counts: 90 sent and 10 committed to held mail is 100, past the course.
        assert_eq!(window(&s(), free(90, 5), mid), base);
        assert_eq!(window(&s(), free(90, 10), mid), max);
        // Three quarters gone: the rest of the month is a third of what went by, so pacing
        // stops as soon as use is back to 142.5 of 190, and starts again past it.
        let three_quarters = start + (end - start) / 4 * 3;
        assert_eq!(window(&s(), free(142, 0), three_quarters), base);
        assert_eq!(window(&s(), free(143, 0), three_quarters), max);
        // The first hours of the month: the rate is taken over a whole day, so a first burst is
        // not a month's pace. An hour in, 5 used forecasts 5 × 743 / 24 = 154.8 more, under
        // the 185 left; 6 forecasts 185.75 against 184.
        let hour_in = start + 3600 * SEC;
        assert_eq!(window(&s(), free(5, 0), hour_in), base);
        assert_eq!(window(&s(), free(6, 0), hour_in), max);
        // On the Light plan 20 messages in the first ten minutes are nothing to pace.
        assert_eq!(window(&s(), Quota { limit: Some(5000), used: 20, committed: 0 }, start + 600 * SEC), base);
        // Only the reserve left (or less): max_coalesce, up to the last minute of the month.
        assert_eq!(window(&s(), free(190, 0), end - 60 * SEC), max);
        assert_eq!(window(&s(), free(200, 0), mid), max);
        // max_coalesce is the bound, whatever it is; never below the base window.
        let day = Settings { max_coalesce: Duration::from_secs(86_400), ..s() };
        assert_eq!(window(&day, free(150, 0), mid), Duration::from_secs(86_400));
        let tight = Settings { max_coalesce: Duration::from_secs(1), ..s() };
        assert_eq!(window(&tight, free(150, 0), mid), base);
        // Off: pacing = false, no limit, or coalescing off.
        assert_eq!(window(&Settings { pacing: false, ..s() }, free(150, 0), mid), base);
        assert_eq!(window(&s(), Quota { limit: None, used: 150, committed: 0 }, mid), base);
        let off = Settings { coalesce: Duration::ZERO, ..s() };
        assert_eq!(window(&off, free(150, 0), mid), Duration::ZERO);
    }
}
