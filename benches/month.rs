//! `cargo bench --bench month`: a month of a small office's mail replayed through the
//! coalescing and quota planner (`src/spool/coalesce.rs`), the very functions the spool will
//! ask. Prints, per setting and LINE limit: the LINE messages spent in December, the routine
//! mails answered `452` (at least once) and from which day, the median and worst delay of
//! routine mail from its arrival at the sending MTA to LINE (MTA retries included), the mails
//! the MTA bounced, what happened to urgent mail, and what was left of the month's budget.
//!
//! A mail answered `452` is offered again by the sending MTA on Postfix's default schedule
//! ([`mta_retry`]) and bounced once it has been queued for more than 5 days: that, not the
//! count of `452`s, is what "nothing is lost" depends on. The replay runs on past Dec 31
//! until every mail went out or bounced; LINE's count starts over on Jan 1 (no January mail of
//! its own is replayed, so January's part is the easy case).
//!
//! The trace (deterministic, seed fixed), as issue #17 describes it: cron at the top of every
//! hour, 5–15 jobs within seconds (each hour's jobs finish within a span of 5–8 s), to the
//! admin; a monitoring flap of 30 alerts in 2 minutes twice a week to the ops group (5 members,
//! so each request costs 5); the NAS's daily report at 03:00 to the admin; four urgent alerts a
//! month to the ops group. December 2026, Japan time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use mail2line::spool::coalesce::{admit, chat_window, day_bounds, month_bounds, next, sent, window, Admission, Chat, Next, Quota, Settings};

const SEC: i64 = 1000;
const HOUR: i64 = 3600 * SEC;
const DAY: i64 = 24 * HOUR;
/// 2026-12-01 00:00 JST.
const MONTH_START: i64 = 1_796_050_800_000;
/// Mails one request can carry (5 bubbles of 5,000 UTF-16 units hold about 80 short notices).
const MAILS_PER_REQUEST: usize = 80;

#[derive(Clone, Copy)]
struct Mail {
    at: i64,
    chat: usize,
    urgent: bool,
}

/// Chats: 0 the admin (1 member), 1 the ops group (5 members).
const MEMBERS: [u64; 2] = [1, 5];

/// The month's mail; each hour's cron jobs finish within `cron_span_ms` (a span drawn from
/// that range for every hour).
fn trace(cron_span_ms: std::ops::RangeInclusive<u64>) -> Vec<Mail> {
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let (start, end) = month_bounds(MONTH_START);
    let mut mails = Vec::new();
    let mut hour = start;
    while hour < end {
        // (A fixed span draws nothing, so 20_000..=20_000 replays the earlier trace exactly.)
        let (lo, hi) = (*cron_span_ms.start(), *cron_span_ms.end());
        let span = if hi > lo { lo + rand(hi - lo + 1) } else { lo };
        for _ in 0..5 + rand(11) {
            mails.push(Mail { at: hour + rand(span) as i64, chat: 0, urgent: false });
        }
        hour += HOUR;
    }
    for day in 0..31 {
        let midnight = start + day * DAY;
        mails.push(Mail { at: midnight + 3 * HOUR + rand(60_000) as i64, chat: 0, urgent: false });
        // Twice a week (days 1 and 4 of each week), a flap of 30 alerts in 2 minutes.
        if day % 7 == 1 || day % 7 == 4 {
            let at = midnight + (8 + rand(12) as i64) * HOUR;
            for _ in 0..30 {
                mails.push(Mail { at: at + rand(120_000) as i64, chat: 1, urgent: false });
            }
        }
    }
    for week in 0..4 {
        mails.push(Mail { at: start + week * 7 * DAY + 2 * DAY + rand(DAY as u64) as i64, chat: 1, urgent: true });
    }
    mails.sort_by_key(|m| m.at);
    mails
}

/// The sending MTA's retry schedule for a mail answered `452`: Postfix's defaults. After each
/// deferral a mail waits as long as it has been queued, at least `minimal_backoff_time` and at
/// most `maximal_backoff_time` (so 300 s, 300 s, 600 s, 1200 s, 2400 s, then 4000 s), and is
/// retried at the first scan of the deferred queue after that (every `queue_run_delay`).
/// A mail refused when it has been queued longer than `maximal_queue_lifetime` is bounced.
/// (Postfix's `qmgr_active_done_3_generic`: "delay = event_time() - message->create_time",
/// clamped to the two backoff times.)
const MTA_MIN_BACKOFF: i64 = 300 * SEC;
const MTA_MAX_BACKOFF: i64 = 4000 * SEC;
const MTA_QUEUE_RUN: i64 = 300 * SEC;
const MTA_QUEUE_LIFETIME: i64 = 5 * DAY;

/// When the MTA offers a mail first queued at `queued` again, after a `452` at `now`; `None`:
/// it bounces.
fn mta_retry(queued: i64, now: i64) -> Option<i64> {
    let age = now - queued;
    if age > MTA_QUEUE_LIFETIME {
        return None;
    }
    let due = now + age.clamp(MTA_MIN_BACKOFF, MTA_MAX_BACKOFF);
    Some((due + MTA_QUEUE_RUN - 1).div_euclid(MTA_QUEUE_RUN) * MTA_QUEUE_RUN)
}

#[derive(Default)]
struct Outcome {
    /// Requests to the admin and to the ops group.
    per_chat: [u64; 2],
    /// LINE messages spent in December, and in January on December's mail (deferred mail the
    /// MTA offers again after the month turned, held mail whose window ends in January).
    messages: u64,
    messages_january: u64,
    requests: u64,
    /// What December's count came to (used), against the budget.
    used_december: u64,
    /// Routine mails answered 452 at least once (each counted once, however often retried).
    routine_deferred: usize,
    /// 452 answers in all (every retry counts), by reason: today's share, only the reserve
    /// left, nothing left.
    answers_rationed: usize,
    answers_reserved: usize,
    answers_spent: usize,
    /// Mails the MTA gave up on after 5 days of 452s.
    bounced_routine: usize,
    bounced_urgent: usize,
    /// Bounced routine mails by chat (admin, ops group).
    bounced_per_chat: [usize; 2],
    /// Routine mails delivered in January.
    routine_in_january: usize,
    /// Urgent mail: sent the moment it came, held (taken but sent later), refused (452 at
    /// least once).
    urgent_at_once: usize,
    urgent_held: usize,
    urgent_refused: usize,
    /// From the mail's first arrival at the MTA to its request going out, MTA retries included.
    delays: Vec<i64>,
    /// When routine mail was first answered 452, and why.
    first_deferral: Option<(i64, &'static str)>,
    /// The most the month's use (sent and committed) came to just after routine mail was
    /// taken: never past the budget less the reserve.
    peak_after_routine: u64,
}

/// What the held mail of every chat will cost when it goes out.
fn committed(held: &[Vec<usize>; 2]) -> u64 {
    (0..2).map(|c| held[c].len().div_ceil(MAILS_PER_REQUEST) as u64 * MEMBERS[c]).sum()
}

/// The planner's state through the replay.
struct Gateway<'a> {
    mails: &'a [Mail],
    chats: [Chat; 2],
    /// Indices of the mails held for each chat.
    held: [Vec<usize>; 2],
    wake: [Option<i64>; 2],
    /// The month's use as LINE counts it (reset when the month turns).
    used: u64,
    january: bool,
    /// The spool's snapshot: the day (its 00:00) and `used` at its first admission call.
    day: (i64, u64),
    out: Outcome,
}

impl Gateway<'_> {
    fn send(&mut self, c: usize, at: i64, waited: bool) {
        let batch = std::mem::take(&mut self.held[c]);
        let requests = batch.len().div_ceil(MAILS_PER_REQUEST) as u64;
        self.used += requests * MEMBERS[c];
        if self.january {
            self.out.messages_january += requests * MEMBERS[c];
        } else {
            self.out.messages += requests * MEMBERS[c];
        }
        self.out.requests += requests;
        self.out.per_chat[c] += requests;
        for i in batch {
            let m = self.mails[i];
            if !m.urgent {
                self.out.delays.push(at - m.at);
                self.out.routine_in_january += usize::from(self.january);
            }
        }
        self.chats[c] = sent(self.chats[c], at, waited);
    }
}

/// Replays `mails` through the planner with `settings` and a LINE limit of `limit`, with the
/// sending MTA offering every `452`'d mail again on Postfix's schedule, until every mail went
/// out or bounced (into January if need be: LINE's count starts over on Jan 1, and no January
/// mail of its own is replayed).
fn replay(mails: &[Mail], settings: &Settings, limit: Option<u64>) -> Outcome {
    let month_end = month_bounds(MONTH_START).1;
    let mut g = Gateway {
        mails,
        chats: [Chat::default(); 2],
        held: [Vec::new(), Vec::new()],
        wake: [None, None],
        used: 0,
        january: false,
        day: (i64::MIN, 0),
        out: Outcome::default(),
    };
    // The MTA's offers: (when, mail), the first at the mail's arrival.
    let mut offers: BinaryHeap<Reverse<(i64, usize)>> = mails.iter().enumerate().map(|(i, m)| Reverse((m.at, i))).collect();
    let mut deferred = vec![false; mails.len()];
    loop {
        let due = (0..2).filter_map(|c| g.wake[c].map(|w| (w, c))).min();
        let offer = offers.peek().map(|r| r.0);
        // Windows that end before (or as) the next mail arrives go out first.
        let now = match (due, offer) {
            (None, None) => break,
            (Some((w, _)), Some((t, _))) => w.min(t),
            (Some((w, _)), None) => w,
            (None, Some((t, _))) => t,
        };
        if now >= month_end && !g.january {
            g.out.used_december = g.used;
            g.used = 0;
            g.january = true;
        }
        if let Some((w, c)) = due.filter(|&(w, _)| w == now) {
            g.wake[c] = None;
            g.send(c, w, true);
            continue;
        }
        let Some(Reverse((now, i))) = offers.pop() else { break };
        let mail = mails[i];
        let c = mail.chat;
        if day_bounds(now).0 != g.day.0 {
            g.day = (day_bounds(now).0, g.used);
        }
        // What taking this mail adds: a request to its chat, unless it joins held mail.
        let adds = if g.held[c].len() % MAILS_PER_REQUEST == 0 { MEMBERS[c] } else { 0 };
        let quota = Quota { limit, used: g.used, committed: committed(&g.held) + adds, used_at_day_start: g.day.1 };
        let refusal = match admit(quota, settings, mail.urgent, now) {
            Admission::Accept => None,
            Admission::Rationed { .. } => Some("today's share"),
            Admission::Reserved { .. } => Some("reserve"),
            Admission::Spent { .. } => Some("spent"),
        };
        if let Some(why) = refusal {
            match why {
                "today's share" => g.out.answers_rationed += 1,
                "reserve" => g.out.answers_reserved += 1,
                _ => g.out.answers_spent += 1,
            }
            if !deferred[i] {
                deferred[i] = true;
                if mail.urgent {
                    g.out.urgent_refused += 1;
                } else {
                    g.out.routine_deferred += 1;
                    g.out.first_deferral.get_or_insert((now, why));
                }
            }
            match mta_retry(mail.at, now) {
                Some(at) => offers.push(Reverse((at, i))),
                None if mail.urgent => g.out.bounced_urgent += 1,
                None => {
                    g.out.bounced_routine += 1;
                    g.out.bounced_per_chat[c] += 1;
                }
            }
            continue;
        }
        g.held[c].push(i);
        g.chats[c].held = true;
        g.chats[c].urgent_held |= mail.urgent;
        let quota = Quota { limit, used: g.used, committed: committed(&g.held), used_at_day_start: g.day.1 };
        if !mail.urgent && !g.january {
            g.out.peak_after_routine = g.out.peak_after_routine.max(g.used + quota.committed);
        }
        let w = chat_window(window(settings, quota, now), &g.chats[c], settings);
        match next(g.chats[c], w, now) {
            Next::SendNow => {
                // At once: after a quiet spell (the streak ends), or urgent mail taking the
                // held mail along (still a busy chat).
                let busy = g.wake[c].is_some();
                g.wake[c] = None;
                if mail.urgent && !deferred[i] {
                    g.out.urgent_at_once += 1;
                }
                g.send(c, now, busy);
            }
            // The window is asked again with every mail; a mail never moves the wake-up later.
            Next::WakeAt(at) => {
                if mail.urgent && !deferred[i] {
                    g.out.urgent_held += 1;
                }
                g.wake[c] = Some(g.wake[c].map_or(at, |w| w.min(at)));
            }
            Next::Idle => {}
        }
    }
    if !g.january {
        g.out.used_december = g.used;
    }
    g.out
}

fn percentile(v: &mut [i64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

/// A delay in seconds, shown in the unit that reads best.
fn human(secs: f64) -> String {
    if secs < 120.0 {
        format!("{secs:.1} s")
    } else if secs < 2.0 * 3600.0 {
        format!("{:.1} min", secs / 60.0)
    } else {
        format!("{:.1} h", secs / 3600.0)
    }
}

fn row(name: &str, mails: &[Mail], s: &Settings, limit: Option<u64>, baseline: Option<u64>) -> u64 {
    let mut o = replay(mails, s, limit);
    let label = format!("{name}, {}", limit.map_or("no limit".to_owned(), |l| format!("limit {l}")));
    // The share of coalescing off's cost means something only where no limit cut the month short.
    let share = match (limit, baseline) {
        (Some(_), _) => "-".to_owned(),
        (None, None) => "100%".to_owned(),
        (None, Some(b)) => format!("{:.1}%", o.messages as f64 * 100.0 / b as f64),
    };
    let day = |t: i64| format!("Dec {}", (t - MONTH_START).div_euclid(DAY) + 1);
    println!(
        "{label:<48} {:>8} {:>6} {:>8} {:>9} {:>9} {:>7} {:>9}   {}/{}/{}",
        o.messages,
        share,
        o.routine_deferred,
        human(percentile(&mut o.delays, 0.5)),
        human(percentile(&mut o.delays, 1.0)),
        o.bounced_routine,
        o.first_deferral.map_or("-".to_owned(), |(t, _)| day(t)),
        o.urgent_at_once,
        o.urgent_held,
        o.urgent_refused,
    );
    let mut notes = vec![format!("requests {} (admin {}, ops group {})", o.requests, o.per_chat[0], o.per_chat[1])];
    if let Some(l) = limit {
        let for_routine = l.saturating_sub(s.reserve);
        assert!(o.peak_after_routine <= for_routine, "routine mail reached into the reserve");
        assert!(o.used_december <= l, "December used {} of {l}", o.used_december);
        notes.push(format!(
            "December used {} of {l}, {} left unused at month end",
            o.used_december,
            l - o.used_december
        ));
        if let Some((t, why)) = o.first_deferral {
            let hour = (t - MONTH_START).rem_euclid(DAY) / HOUR;
            notes.push(format!(
                "first routine 452 {} {hour:02}:xx ({why}); 452 answers {} (share {}, reserve {}, spent {})",
                day(t),
                o.answers_rationed + o.answers_reserved + o.answers_spent,
                o.answers_rationed,
                o.answers_reserved,
                o.answers_spent
            ));
        }
    }
    if o.routine_in_january > 0 || o.messages_january > 0 {
        notes.push(format!("{} routine mails went out in January, costing {} of January's messages", o.routine_in_january, o.messages_january));
    }
    if o.bounced_routine > 0 {
        notes.push(format!("bounced: {} to the admin, {} to the ops group", o.bounced_per_chat[0], o.bounced_per_chat[1]));
    }
    if o.bounced_urgent > 0 {
        notes.push(format!("{} URGENT mails bounced", o.bounced_urgent));
    }
    println!("{:<6}{}", "", notes.join("; "));
    o.messages
}

fn main() {
    let mails = trace(5_000..=8_000);
    let urgent = mails.iter().filter(|m| m.urgent).count();
    println!(
        "mail2line month: {} mails in December 2026 (JST), {urgent} urgent; cron bursts within 5-8 s; admin 1 member, ops group 5",
        mails.len()
    );
    println!("a 452'd mail is offered again on Postfix's schedule (300 s doubling to 4000 s, deferred queue scanned every 300 s) and bounced after 5 days");
    let off = Settings { coalesce: Duration::ZERO, ..Settings::default() };
    let on = Settings { pacing: false, ..Settings::default() };
    let defaults = Settings::default();
    let no_share = Settings { daily_share: false, ..Settings::default() };
    println!();
    println!(
        "{:<48} {:>8} {:>6} {:>8} {:>9} {:>9} {:>7} {:>9}   {}",
        "settings, LINE limit", "messages", "of off", "deferred", "median", "worst", "bounced", "452 from", "urgent at once/held/refused"
    );
    println!(
        "{:<6}(messages: LINE messages spent in December; deferred: routine mails answered 452 at least once; median, worst: delay of routine mail from its arrival at the MTA to LINE, retries included)",
        ""
    );
    let free = Some(200u64);
    let baseline = row("coalescing off", &mails, &off, None, None);
    row("defaults (10 s, pacing to 1 h, share)", &mails, &defaults, None, Some(baseline));
    row("defaults", &mails, &defaults, Some(5_000), Some(baseline));
    row("defaults", &mails, &defaults, free, Some(baseline));
    row("defaults but daily_share = false", &mails, &no_share, free, Some(baseline));
    row("coalescing off", &mails, &off, free, Some(baseline));
    row("coalescing off, no share", &mails, &Settings { daily_share: false, ..off.clone() }, free, Some(baseline));
    row("coalesce 10 s, pacing = false", &mails, &on, free, Some(baseline));
    row("defaults but reserve = 20", &mails, &Settings { reserve: 20, ..Settings::default() }, free, Some(baseline));
    for hours in [6u64, 24] {
        let max_coalesce = Duration::from_secs(hours * 3600);
        row(&format!("max_coalesce_secs = {}", hours * 3600), &mails, &Settings { max_coalesce, ..Settings::default() }, free, Some(baseline));
        row(
            &format!("max_coalesce_secs = {}, no share", hours * 3600),
            &mails,
            &Settings { max_coalesce, daily_share: false, ..Settings::default() },
            free,
            Some(baseline),
        );
    }
    println!();
    println!("how the share depends on how far apart each hour's cron jobs finish (defaults, no limit):");
    println!("{:<48} {:>8} {:>8} {:>6}", "spread of an hour's jobs", "off", "on", "of off");
    let spreads = [
        ("2-5 s", 2_000..=5_000),
        ("5-8 s (the trace above)", 5_000..=8_000),
        ("8-12 s", 8_000..=12_000),
        ("20 s (the earlier trace)", 20_000..=20_000),
        ("30-60 s", 30_000..=60_000),
    ];
    for (label, spread) in spreads {
        let t = trace(spread);
        let (off_m, on_m) = (replay(&t, &off, None).messages, replay(&t, &defaults, None).messages);
        println!("{label:<48} {off_m:>8} {on_m:>8} {:>5.1}%", on_m as f64 * 100.0 / off_m as f64);
    }
}
