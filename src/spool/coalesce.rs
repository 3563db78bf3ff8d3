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
//! Why a daily share: pacing alone cannot make every month last (an hourly cron needs at least
//! one request an hour, 744 in December, against the free plan's 200). Without a share, routine
//! mail runs until only the reserve is left, a week into the month, and is then refused with
//! `452` until the 1st; the sending MTA retries, but Postfix gives up after 5 days
//! (`maximal_queue_lifetime`) and bounces it. So while pacing is on, routine mail gets only
//! today's share of what is left ([`todays_share`]); past it, `452` until tomorrow. A refusal
//! of a day is one the MTA rides out, and its retries arrive together after midnight, where
//! they coalesce into a few requests. Its known limit: the share is first come, first served
//! across chats. On the free plan a request to a 5-member group costs most of a day's share
//! (about 6), and a chat that has mail every hour takes the share first after midnight, so in
//! `benches/month.rs` the group's flap alerts are refused day after day until the MTA bounces
//! them (BENCHMARKS.md, "A month of mail").
//!
//! Also here, for every job delivery stores: which chat a request belongs to ([`chat_key`],
//! what coalescing holds together) and what LINE counts for it ([`recipients`]). The spool
//! (`spool/mod.rs`) applies these decisions to held rows, sealing and the quota probe.

use std::time::Duration;

use sha2::Digest;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

use crate::line::request::Endpoint;

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
    /// While the month is used faster than the budget allows, routine mail beyond today's
    /// share of what is left gets `452` until tomorrow ([`admit`], [`todays_share`]).
    pub daily_share: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            coalesce: Duration::from_secs(10),
            pacing: true,
            max_coalesce: Duration::from_secs(3600),
            reserve: 10,
            monthly_budget: 0,
            daily_share: true,
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
    /// The month's use (`used`) at 00:00 Japan time today: what today's use is counted from
    /// against [`todays_share`]. The spool takes it at its first call of each Japan-time day
    /// (after a restart mid-day, at the restart: today's use before it is then not counted).
    pub used_at_day_start: u64,
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
    /// The month is being used faster than the budget allows and today's share of it is
    /// spent: routine mail gets `452 4.2.2` until `until_ms` (the next 00:00 Japan time).
    Rationed { until_ms: i64 },
}

/// Whether a mail (urgent or not) may be taken at `now_ms`.
///
/// What counts is `used + committed`: held mail is already promised a request, so routine mail
/// is refused as soon as the held mail's cost would eat into the reserve. Routine mail is taken
/// only while, after it and everything held has gone out, at least `reserve` messages are
/// left; urgent mail while it (and what is held) still fits in the budget.
///
/// With `daily_share`, while the month is being used faster than the budget allows
/// ([`over_pace`], what turns pacing on), routine mail is also held to today's share
/// ([`todays_share`]): it is refused ([`Admission::Rationed`], until the next 00:00 JST) once
/// today's use, counted from `used_at_day_start`, with what is held and what this mail adds,
/// would pass the share (the pace is judged with this mail counted, as the window is judged
/// with it held). Urgent mail ignores the share. A mail that joins held mail adds
/// nothing, so it is still taken while the held request fits in today's share. `Spent` and
/// `Reserved` come first: they say when the quota really comes back.
pub fn admit(quota: Quota, s: &Settings, urgent: bool, now_ms: i64) -> Admission {
    let Some(budget) = quota.budget(s) else { return Admission::Accept };
    let until_ms = month_bounds(now_ms).1;
    let after = quota.used.saturating_add(quota.committed.max(1));
    if quota.used >= budget || (urgent && after > budget) {
        Admission::Spent { until_ms }
    } else if urgent {
        Admission::Accept
    } else if after.saturating_add(s.reserve) > budget {
        Admission::Reserved { until_ms }
    } else if s.daily_share
        && over_pace(s, Quota { committed: quota.committed.max(1), ..quota }, now_ms)
        && todays_share(s, quota, now_ms).is_some_and(|share| after.saturating_sub(quota.used_at_day_start) > share)
    {
        Admission::Rationed { until_ms: day_bounds(now_ms).1 }
    } else {
        Admission::Accept
    }
}

/// Today's share of the month: what was left of the budget less the reserve at the start of
/// today (the month's use then being `used_at_day_start`), over the days left in the month,
/// today included (rounded down: the remainder stays for the days after, and the last day's
/// share is all that is left). `None` without a budget. [`admit`] applies it only while
/// [`over_pace`]: a busy day in a quiet month is not refused.
pub fn todays_share(s: &Settings, quota: Quota, now_ms: i64) -> Option<u64> {
    let budget = quota.budget(s)?;
    let day_start = day_bounds(now_ms).0;
    let days_left = ((month_bounds(now_ms).1 - day_start) / DAY_MS).max(1) as u64;
    Some(budget.saturating_sub(s.reserve).saturating_sub(quota.used_at_day_start) / days_left)
}

/// Whether the month is being used faster than the budget allows: the month's use so far (sent
/// and committed), carried on to month end at the rate it was used (taken over at least a day,
/// so that the month's first burst is not mistaken for its pace), spends more than the budget
/// less the reserve. (The same test, rearranged: is more used than an even spread of the budget
/// over the month gone by?) This turns pacing on ([`window`]) and the daily share ([`admit`]);
/// `false` without a budget. It does not look at `pacing` or `daily_share`.
pub fn over_pace(s: &Settings, quota: Quota, now_ms: i64) -> bool {
    let Some(budget) = quota.budget(s) else { return false };
    let (start, end) = month_bounds(now_ms);
    let elapsed = (now_ms - start).max(0) as f64;
    let remaining = (end - now_ms).max(0) as f64;
    let spent = quota.used.saturating_add(quota.committed) as f64;
    let allowed_more = budget.saturating_sub(s.reserve) as f64 - spent;
    let forecast_more = spent * remaining / elapsed.max(DAY_MS as f64);
    forecast_more > allowed_more
}

/// The coalescing window at `now_ms`: the base window, or `max_coalesce` while the month is
/// being used faster than the budget allows ([`over_pace`]). It is asked again with every
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
/// `max_coalesce`, and the daily share ([`admit`]) keeps the month's budget spread over its
/// days: routine mail past today's share waits (in the sending MTA) for tomorrow.
pub fn window(s: &Settings, quota: Quota, now_ms: i64) -> Duration {
    if s.coalesce.is_zero() || !s.pacing || !over_pace(s, quota, now_ms) {
        return s.coalesce;
    }
    s.max_coalesce.max(s.coalesce)
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

/// `now_ms` as a date and time in Japan.
fn jst(now_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(JST)
}

/// The day (Japan time) holding `now_ms`: its 00:00 and the next day's, in unix milliseconds.
pub fn day_bounds(now_ms: i64) -> (i64, i64) {
    let midnight = PrimitiveDateTime::new(jst(now_ms).date(), Time::MIDNIGHT).assume_offset(JST);
    let start = (midnight.unix_timestamp_nanos() / 1_000_000) as i64;
    // Japan keeps no daylight saving time: every day is 24 hours long.
    (start, start + DAY_MS)
}

/// The calendar month (Japan time) holding `now_ms`: its start and the start of the next, in
/// unix milliseconds.
pub fn month_bounds(now_ms: i64) -> (i64, i64) {
    let now = jst(now_ms);
    let first = |year: i32, month: Month| {
        let date = Date::from_calendar_date(year, month, 1).unwrap_or(Date::MIN);
        let at = PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_offset(JST);
        (at.unix_timestamp_nanos() / 1_000_000) as i64
    };
    let (year, month) = (now.year(), now.month());
    let (next_year, next_month) = if month == Month::December { (year + 1, Month::January) } else { (year, month.next()) };
    (first(year, month), first(next_year, next_month))
}

/// The chat a request goes to, for coalescing: one id, or one set of multicast ids (the same
/// followers@ or alias expands to the same set, and so coalesces).
pub fn chat_key(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Push { to } => format!("push:{to}"),
        Endpoint::Multicast { to } => {
            let mut ids: Vec<&str> = to.iter().map(String::as_str).collect();
            ids.sort_unstable();
            let mut h = sha2::Sha256::new();
            for id in ids {
                h.update(id.as_bytes());
                h.update(b",");
            }
            let d = h.finalize();
            format!("multicast:{}:{}", to.len(), d[..12].iter().map(|b| format!("{b:02x}")).collect::<String>())
        }
    }
}

/// What LINE counts for one request to `endpoint`; 0 for a group or room (its member count is
/// asked when the request is delivered).
pub fn recipients(endpoint: &Endpoint) -> u32 {
    match endpoint {
        Endpoint::Push { to } if to.starts_with('U') => 1,
        Endpoint::Push { .. } => 0,
        Endpoint::Multicast { to } => to.len() as u32,
    }
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

    /// The defaults without the daily share: the reserve and the budget alone. (On Dec 10 a
    /// month with 150 or more of 200 used is far past its pace, and today's share would refuse
    /// routine mail before the reserve does.)
    fn reserve_only() -> Settings {
        Settings { daily_share: false, ..s() }
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
        let free = Quota { limit: Some(200), used: 150, committed: 0, used_at_day_start: 0 };
        let next_month = month_bounds(T0).1;
        assert_eq!(admit(free, &reserve_only(), false, T0), Admission::Accept);
        // 189 used: a 1-recipient mail leaves 10, the reserve: still taken. At 190 it would not.
        assert_eq!(admit(Quota { used: 189, ..free }, &reserve_only(), false, T0), Admission::Accept);
        let low = Quota { used: 190, ..free };
        assert_eq!(admit(low, &reserve_only(), false, T0), Admission::Reserved { until_ms: next_month });
        assert_eq!(admit(low, &reserve_only(), true, T0), Admission::Accept);
        let spent = Quota { used: 200, ..free };
        assert_eq!(admit(spent, &reserve_only(), true, T0), Admission::Spent { until_ms: next_month });
        assert_eq!(admit(spent, &reserve_only(), false, T0), Admission::Spent { until_ms: next_month });
        // No limit at LINE, no budget: always taken. A budget below LINE's limit counts.
        assert_eq!(admit(Quota { limit: None, used: 1_000_000, committed: 50, used_at_day_start: 0 }, &reserve_only(), false, T0), Admission::Accept);
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
        let q = Quota { limit: Some(200), used: 186, committed: 5 + 1, used_at_day_start: 0 };
        assert_eq!(admit(q, &reserve_only(), false, T0), reserved);
        // Counting only what was sent, it would have been taken, and once it and the held
        // request had gone out, 192 used would leave 8 of the reserve's 10.
        assert_eq!(admit(Quota { committed: 0, ..q }, &reserve_only(), false, T0), Admission::Accept);
        // Another mail for the group joins the held request: it adds nothing and is taken.
        assert_eq!(admit(Quota { limit: Some(200), used: 185, committed: 5, used_at_day_start: 0 }, &reserve_only(), false, T0), Admission::Accept);
        // Urgent mail passes while it (and what is held) fits in the whole budget: joining the
        // held request at 195 + 5, yes; a new request to the group at 196 + 5, no.
        assert_eq!(admit(Quota { limit: Some(200), used: 195, committed: 5, used_at_day_start: 0 }, &reserve_only(), true, T0), Admission::Accept);
        assert_eq!(admit(Quota { limit: Some(200), used: 196, committed: 5, used_at_day_start: 0 }, &reserve_only(), true, T0), Admission::Spent { until_ms: next_month });

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
            let q = Quota { limit, used, committed: committed + adds, used_at_day_start: 0 };
            if admit(q, &reserve_only(), false, T0) != Admission::Accept {
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
            assert_eq!(admit(Quota { limit, used, committed: committed + adds, used_at_day_start: 0 }, &reserve_only(), true, T0), Admission::Accept);
            used += 5; // the alert goes at once, taking the held mail along
            held_group = false;
        }
        assert!(used <= 200);
    }

    const DAY: i64 = 24 * 3600 * SEC;
    /// 00:00 JST on these days of December 2026 (computed apart from `day_bounds`).
    const DEC_1: i64 = 1_796_050_800_000;
    const DEC_10: i64 = 1_796_828_400_000;
    const DEC_17: i64 = 1_797_433_200_000;
    const DEC_31: i64 = 1_798_642_800_000;
    const JAN_1: i64 = 1_798_729_200_000;
    /// 2026-11-01 00:00 JST.
    const NOV_1: i64 = 1_793_458_800_000;

    fn free(used: u64, committed: u64, used_at_day_start: u64) -> Quota {
        Quota { limit: Some(200), used, committed, used_at_day_start }
    }

    #[test]
    fn days_are_calendar_days_in_japan_time() {
        // 00:00 JST is 15:00 UTC the day before.
        assert_eq!(day_bounds(DEC_10), (DEC_10, DEC_10 + DAY));
        assert_eq!(day_bounds(DEC_10 - 1), (DEC_10 - DAY, DEC_10));
        assert_eq!(day_bounds(DEC_10 + DAY - 1), (DEC_10, DEC_10 + DAY));
        assert_eq!(day_bounds(T0), (DEC_10, DEC_10 + DAY), "12:00 JST");
        // 2026-12-10 00:00 UTC is 09:00 JST, the middle of Dec 10 in Japan.
        assert_eq!(day_bounds(1_796_860_800_000), (DEC_10, DEC_10 + DAY));
        // The month's first and last days, and the turn of the year.
        assert_eq!(day_bounds(DEC_1), (DEC_1, DEC_1 + DAY));
        assert_eq!(day_bounds(JAN_1 - 1), (DEC_31, JAN_1));
        assert_eq!(day_bounds(JAN_1), (JAN_1, JAN_1 + DAY));
        assert_eq!(month_bounds(JAN_1 - 1).1, day_bounds(JAN_1 - 1).1);
    }

    #[test]
    fn todays_share_is_what_was_left_at_midnight_over_the_days_left() {
        // 200 less the reserve of 10 is 190 for routine mail.
        // Dec 1: 190 over 31 days is 6.13, so 6, at any hour of the day.
        assert_eq!(todays_share(&s(), free(0, 0, 0), DEC_1), Some(6));
        assert_eq!(todays_share(&s(), free(40, 3, 0), DEC_1 + DAY - 1), Some(6), "only the use at midnight counts");
        // Dec 10, 12:00: 22 days left with today; 150 used at midnight leaves 40: 1.8, so 1.
        assert_eq!(todays_share(&s(), free(150, 0, 150), T0), Some(1));
        // Dec 16, mid-month: 16 days left; 100 used at midnight leaves 90: 5.6, so 5.
        let dec_16_noon = DEC_17 - DAY / 2;
        assert_eq!(todays_share(&s(), free(100, 0, 100), dec_16_noon), Some(5));
        // Dec 31: the last day's share is all that is left of the 190.
        assert_eq!(todays_share(&s(), free(180, 0, 180), DEC_31), Some(10));
        assert_eq!(todays_share(&s(), free(180, 0, 180), JAN_1 - 1), Some(10));
        // Nothing left outside the reserve, or more used than that: 0.
        assert_eq!(todays_share(&s(), free(195, 0, 195), T0), Some(0));
        // The month's length counts: on Light (5,000) Dec 1 gets 4,990 / 31 = 160.97, Nov 1
        // 4,990 / 30 = 166.3.
        let light = Quota { limit: Some(5000), ..Quota::default() };
        assert_eq!(todays_share(&s(), light, DEC_1), Some(160));
        assert_eq!(todays_share(&s(), light, NOV_1), Some(166));
        // A budget below LINE's limit is the budget: (100 - 10) / 31 = 2.9.
        let capped = Settings { monthly_budget: 100, ..s() };
        assert_eq!(todays_share(&capped, light, DEC_1), Some(2));
        // No limit, no budget: no share.
        assert_eq!(todays_share(&s(), Quota::default(), DEC_1), None);
    }

    #[test]
    fn the_share_applies_only_while_the_month_is_used_too_fast() {
        let dec_16_noon = DEC_17 - DAY / 2;
        let tomorrow = Admission::Rationed { until_ms: DEC_17 };
        // Half the month gone, the even spread of 190 is 95. 94 used, 60 of them before today:
        // today's 34 (35 with this mail) are far past today's share of (190 - 60) / 16 = 8,
        // but the month is on course, so a busy day is not refused.
        assert!(!over_pace(&s(), free(95, 0, 60), dec_16_noon));
        assert_eq!(admit(free(94, 0, 60), &s(), false, dec_16_noon), Admission::Accept);
        // One more and the month is past its pace (96 with this mail): today's share applies.
        assert_eq!(admit(free(95, 0, 60), &s(), false, dec_16_noon), tomorrow);
        // At 90 used at midnight the share is (190 - 90) / 16 = 6.25: 6 today (with this mail)
        // is within it, 7 is not. At 88, 6.4, and 8 today is past it.
        assert_eq!(admit(free(95, 0, 90), &s(), false, dec_16_noon), Admission::Accept);
        assert_eq!(admit(free(95, 0, 89), &s(), false, dec_16_noon), tomorrow);
        assert_eq!(admit(free(95, 0, 88), &s(), false, dec_16_noon), tomorrow);
        // Off with daily_share = false; on with pacing = false (the share follows the month's
        // pace, not the window's setting).
        assert_eq!(admit(free(95, 0, 60), &Settings { daily_share: false, ..s() }, false, dec_16_noon), Admission::Accept);
        assert_eq!(admit(free(95, 0, 60), &Settings { pacing: false, ..s() }, false, dec_16_noon), tomorrow);
        // No limit: nothing to share.
        assert_eq!(admit(Quota { limit: None, ..free(95, 0, 0) }, &s(), false, dec_16_noon), Admission::Accept);

        // Dec 10, 12:00: the even spread is 190 × 9.5 / 31 = 58.2, so 60 is past it; the share
        // from 58 at midnight is (190 - 58) / 22 = 6. Held mail counts: a mail that joins a
        // request held for the 5-member group adds nothing and is taken (58 + 5 = 63, 5 today);
        // one that needs a new request to the group would make 10 today, and waits.
        let next_day = Admission::Rationed { until_ms: DEC_10 + DAY };
        assert!(over_pace(&s(), free(58, 5, 58), T0));
        assert_eq!(admit(free(58, 5, 58), &s(), false, T0), Admission::Accept);
        assert_eq!(admit(free(58, 5 + 5, 58), &s(), false, T0), next_day);
        assert_eq!(admit(free(60, 1, 58), &s(), false, T0), Admission::Accept);
        assert_eq!(admit(free(62, 0, 58), &s(), false, T0), Admission::Accept, "committed 0: the mail costs 1, 5 today");
        assert_eq!(admit(free(63, 1, 58), &s(), false, T0), Admission::Accept, "6 today: the whole share");
        assert_eq!(admit(free(64, 1, 58), &s(), false, T0), next_day);
    }

    #[test]
    fn urgent_mail_ignores_the_share_and_the_reserve_and_budget_come_first() {
        let next_month = month_bounds(T0).1;
        // Past the pace and past today's share: routine mail waits for tomorrow, urgent goes.
        let q = free(80, 5, 60);
        assert_eq!(admit(q, &s(), false, T0), Admission::Rationed { until_ms: DEC_10 + DAY });
        assert_eq!(admit(q, &s(), true, T0), Admission::Accept);
        // Urgent mail is still bound by the whole budget.
        assert_eq!(admit(free(196, 5, 180), &s(), true, T0), Admission::Spent { until_ms: next_month });
        assert_eq!(admit(free(195, 5, 180), &s(), true, T0), Admission::Accept);
        // Only the reserve left: `Reserved` (until the month turns), not `Rationed` (until
        // tomorrow, when it would be refused again); nothing left: `Spent`.
        assert_eq!(admit(free(190, 0, 190), &s(), false, T0), Admission::Reserved { until_ms: next_month });
        assert_eq!(admit(free(186, 5, 150), &s(), false, T0), Admission::Reserved { until_ms: next_month });
        assert_eq!(admit(free(200, 0, 190), &s(), false, T0), Admission::Spent { until_ms: next_month });
        // Just outside the reserve, past the pace, with a share of (190 - 185) / 22 = 0.
        assert_eq!(admit(free(185, 0, 185), &s(), false, T0), Admission::Rationed { until_ms: DEC_10 + DAY });
    }

    #[test]
    fn the_share_starts_over_each_day_in_japan_time() {
        // Dec 16, 23:59:59: 105 used at midnight, a share of (190 - 105) / 16 = 5.3; 110 used
        // now, so a sixth message today waits until 00:00 JST.
        let last_second = DEC_17 - SEC;
        assert!(over_pace(&s(), free(111, 0, 105), last_second));
        assert_eq!(admit(free(110, 0, 105), &s(), false, last_second), Admission::Rationed { until_ms: DEC_17 });
        // Dec 17, 00:00: still past the pace (the spread is 190 × 16 / 31 = 98), but a new day.
        // Until the spool takes the new day's snapshot, the old count would still refuse; with
        // it (110 used at midnight, a share of 80 / 15 = 5.3), the mail is taken.
        assert!(over_pace(&s(), free(111, 0, 110), DEC_17));
        assert_eq!(admit(free(110, 0, 105), &s(), false, DEC_17), Admission::Rationed { until_ms: DEC_17 + DAY });
        assert_eq!(admit(free(110, 0, 110), &s(), false, DEC_17), Admission::Accept);
        // Five more sent on Dec 17: the sixth waits for Dec 18.
        assert_eq!(admit(free(114, 0, 110), &s(), false, DEC_17 + 3600 * SEC), Admission::Accept);
        assert_eq!(admit(free(115, 0, 110), &s(), false, DEC_17 + 3600 * SEC), Admission::Rationed { until_ms: DEC_17 + DAY });

        // A month in which routine mail would need 24 messages a day, each asked for as the
        // spool asks (the snapshot taken at the first call of each day): the share lets mail
        // through on every day of the month, reaches the reserve on the last day at the
        // earliest, and leaves at most a few of the 190 unused.
        let mut used = 0;
        let mut day_start = (i64::MIN, 0);
        let mut per_day = Vec::new();
        for hour in 0..31 * 24 {
            let now = DEC_1 + hour * 3600 * SEC + 60 * SEC;
            if day_bounds(now).0 != day_start.0 {
                day_start = (day_bounds(now).0, used);
                per_day.push(0);
            }
            match admit(free(used, 0, day_start.1), &s(), false, now) {
                Admission::Accept => {
                    used += 1;
                    *per_day.last_mut().unwrap() += 1;
                }
                Admission::Rationed { until_ms } => assert_eq!(until_ms, day_bounds(now).1),
                // The last day may use all that is left; only then is the reserve reached.
                Admission::Reserved { .. } => assert_eq!(day_bounds(now).0, DEC_31, "hour {hour}"),
                other => panic!("hour {hour}: {other:?}"),
            }
        }
        assert_eq!(per_day.len(), 31);
        assert!(per_day.iter().all(|&n| (5..=7).contains(&n)), "{per_day:?}");
        assert!((185..=190).contains(&used), "{used} of 190");
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
        let free = |used, committed| Quota { limit: Some(200), used, committed, used_at_day_start: 0 };
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
        assert_eq!(window(&s(), Quota { limit: Some(5000), used: 20, committed: 0, used_at_day_start: 0 }, start + 600 * SEC), base);
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
        assert_eq!(window(&s(), Quota { limit: None, used: 150, committed: 0, used_at_day_start: 0 }, mid), base);
        let off = Settings { coalesce: Duration::ZERO, ..s() };
        assert_eq!(window(&off, free(150, 0), mid), Duration::ZERO);
    }

    #[test]
    fn the_same_recipients_are_the_same_chat_in_any_order() {
        let (a, b) = (format!("U{}", "a".repeat(32)), format!("U{}", "b".repeat(32)));
        let key = |to: Vec<String>| chat_key(&Endpoint::Multicast { to });
        assert_eq!(key(vec![a.clone(), b.clone()]), key(vec![b.clone(), a.clone()]));
        assert_ne!(key(vec![a.clone(), b.clone()]), key(vec![a.clone()]));
        assert_eq!(chat_key(&Endpoint::Push { to: a.clone() }), format!("push:{a}"));
        assert_eq!(recipients(&Endpoint::Push { to: a.clone() }), 1);
        assert_eq!(recipients(&Endpoint::Push { to: format!("C{}", "c".repeat(32)) }), 0, "a group: its members, asked");
        assert_eq!(recipients(&Endpoint::Multicast { to: vec![a, b] }), 2);
    }
}
