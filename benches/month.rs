//! `cargo bench --bench month`: a month of a small office's mail replayed through the
//! coalescing and quota planner (`src/spool/coalesce.rs`), the very functions the spool will
//! ask. Prints mails, LINE messages with coalescing off, on, and on with pacing (no limit, and
//! a free-plan channel of 200 a month), the delays routine mail got, what happened to urgent
//! mail, and how much routine mail got `452` (deferred: the sending MTA retries) and from when.
//!
//! The trace (deterministic, seed fixed), as issue #17 describes it: cron at the top of every
//! hour, 5–15 jobs within seconds (each hour's jobs finish within a span of 5–8 s), to the
//! admin; a monitoring flap of 30 alerts in 2 minutes twice a week to the ops group (5 members,
//! so each request costs 5); the NAS's daily report at 03:00 to the admin; four urgent alerts a
//! month to the ops group. December 2026, Japan time.

use std::time::Duration;

use mail2line::spool::coalesce::{admit, chat_window, month_bounds, next, sent, window, Admission, Chat, Next, Quota, Settings};

const SEC: i64 = 1000;
const HOUR: i64 = 3600 * SEC;
const DAY: i64 = 24 * HOUR;
/// 2026-12-01 00:00 JST.
const MONTH_START: i64 = 1_796_050_800_000;
/// Mails one request can carry (5 bubbles of 5,000 UTF-16 units hold about 80 short notices).
const MAILS_PER_REQUEST: usize = 80;
/// How long a sending MTA keeps retrying a deferred mail before it bounces it (Postfix's
/// `maximal_queue_lifetime`, 5 days).
const MTA_QUEUE_LIFETIME: i64 = 5 * DAY;

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

#[derive(Default)]
struct Outcome {
    /// Requests to the admin and to the ops group.
    per_chat: [u64; 2],
    messages: u64,
    requests: u64,
    /// Routine mails answered 452 (only the reserve left) or refused as spent.
    refused_routine: usize,
    /// Of those, the ones an MTA keeping mail 5 days would bounce before the quota comes back.
    refused_past_queue_lifetime: usize,
    refused_urgent: usize,
    urgent_delays: Vec<i64>,
    delays: Vec<i64>,
    /// When routine mail was first refused (only the reserve left).
    reserve_reached_at: Option<i64>,
    /// The most the month's use (sent and committed) ever came to.
    peak_spent: u64,
    /// The most it came to just after routine mail was taken: never past the budget less the
    /// reserve, or held routine mail would spend what is kept for urgent mail.
    peak_after_routine: u64,
}

/// What the held mail of every chat will cost when it goes out.
fn committed(held: &[Vec<Mail>; 2]) -> u64 {
    (0..2).map(|c| held[c].len().div_ceil(MAILS_PER_REQUEST) as u64 * MEMBERS[c]).sum()
}

/// Replays `mails` through the planner with `settings` and a LINE limit of `limit`.
fn replay(mails: &[Mail], settings: &Settings, limit: Option<u64>) -> Outcome {
    let mut out = Outcome::default();
    let mut chats = [Chat::default(); 2];
    let mut held: [Vec<Mail>; 2] = [Vec::new(), Vec::new()];
    let mut wake: [Option<i64>; 2] = [None, None];
    let mut used = 0u64;
    let send = |c: usize, at: i64, waited: bool, chats: &mut [Chat; 2], held: &mut [Vec<Mail>; 2], used: &mut u64, out: &mut Outcome| {
        let batch = std::mem::take(&mut held[c]);
        let requests = batch.len().div_ceil(MAILS_PER_REQUEST) as u64;
        *used += requests * MEMBERS[c];
        out.messages += requests * MEMBERS[c];
        out.requests += requests;
        out.per_chat[c] += requests;
        for m in batch {
            if m.urgent { out.urgent_delays.push(at - m.at) } else { out.delays.push(at - m.at) }
        }
        chats[c] = sent(chats[c], at, waited);
    };
    for mail in mails {
        // Windows that end before this mail arrives go out first.
        loop {
            let due = (0..2).filter_map(|c| wake[c].filter(|&w| w <= mail.at).map(|w| (w, c))).min();
            let Some((at, c)) = due else { break };
            wake[c] = None;
            send(c, at, true, &mut chats, &mut held, &mut used, &mut out);
        }
        let c = mail.chat;
        // What taking this mail adds: a request to its chat, unless it joins held mail.
        let adds = if held[c].len() % MAILS_PER_REQUEST == 0 { MEMBERS[c] } else { 0 };
        let quota = Quota { limit, used, committed: committed(&held) + adds };
        match admit(quota, settings, mail.urgent, mail.at) {
            Admission::Accept => {}
            Admission::Reserved { until_ms } | Admission::Spent { until_ms } => {
                if mail.urgent {
                    out.refused_urgent += 1;
                } else {
                    out.refused_routine += 1;
                    out.reserve_reached_at.get_or_insert(mail.at);
                    if until_ms - mail.at > MTA_QUEUE_LIFETIME {
                        out.refused_past_queue_lifetime += 1;
                    }
                }
                continue;
            }
        }
        held[c].push(*mail);
        chats[c].held = true;
        chats[c].urgent_held |= mail.urgent;
        let quota = Quota { limit, used, committed: committed(&held) };
        out.peak_spent = out.peak_spent.max(used + quota.committed);
        if !mail.urgent {
            out.peak_after_routine = out.peak_after_routine.max(used + quota.committed);
        }
        let w = chat_window(window(settings, quota, mail.at), &chats[c], settings);
        match next(chats[c], w, mail.at) {
            Next::SendNow => {
                // At once: after a quiet spell (the streak ends), or urgent mail taking the
                // held mail along (still a busy chat).
                let busy = wake[c].is_some();
                wake[c] = None;
                send(c, mail.at, busy, &mut chats, &mut held, &mut used, &mut out);
            }
            // The window is asked again with every mail; a mail never moves the wake-up later.
            Next::WakeAt(at) => wake[c] = Some(wake[c].map_or(at, |w| w.min(at))),
            Next::Idle => {}
        }
    }
    for c in 0..2 {
        if let Some(at) = wake[c] {
            send(c, at, true, &mut chats, &mut held, &mut used, &mut out);
        }
    }
    out
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
    let urgent_held = o.urgent_delays.iter().filter(|&&d| d > 0).count();
    println!(
        "{label:<46} {:>8} {:>8} {:>6} {:>9} {:>9} {:>9}   {}/{}/{}",
        o.requests,
        o.messages,
        share,
        human(percentile(&mut o.delays, 0.5)),
        human(percentile(&mut o.delays, 0.99)),
        human(percentile(&mut o.delays, 1.0)),
        o.urgent_delays.len(),
        urgent_held,
        o.refused_urgent,
    );
    let mut notes = vec![format!("requests to the admin {}, to the ops group {}", o.per_chat[0], o.per_chat[1])];
    if let Some(l) = limit {
        let day = |t: i64| {
            let d = (t - MONTH_START) as f64 / DAY as f64;
            format!("Dec {} (day {d:.1})", d as i64 + 1)
        };
        let for_routine = l.saturating_sub(s.reserve);
        assert!(o.peak_after_routine <= for_routine, "routine mail reached into the reserve");
        notes.push(format!(
            "used + committed at most {} of {l}, after routine mail at most {} of {for_routine}",
            o.peak_spent, o.peak_after_routine
        ));
        match o.reserve_reached_at {
            None => notes.push("no routine mail refused".into()),
            Some(t) => notes.push(format!(
                "routine 452s: {} mails from {}, {} of them deferred > 5 days",
                o.refused_routine,
                day(t),
                o.refused_past_queue_lifetime
            )),
        }
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
    let off = Settings { coalesce: Duration::ZERO, ..Settings::default() };
    let on = Settings { pacing: false, ..Settings::default() };
    let defaults = Settings::default();
    println!();
    println!(
        "{:<46} {:>8} {:>8} {:>6} {:>9} {:>9} {:>9}   {}",
        "settings, LINE limit", "requests", "messages", "of off", "median", "p99", "worst", "urgent sent/held/refused"
    );
    println!("{:<6}(delays: routine mail that was delivered; a 452'd mail is counted once, not per retry)", "");
    let free = Some(200u64);
    let baseline = row("coalescing off", &mails, &off, None, None);
    row("coalescing off", &mails, &off, free, Some(baseline));
    row("coalesce 10 s, no pacing", &mails, &on, None, Some(baseline));
    row("coalesce 10 s, no pacing", &mails, &on, free, Some(baseline));
    row("defaults (10 s, pacing, max 1 h)", &mails, &defaults, None, Some(baseline));
    row("defaults (10 s, pacing, max 1 h)", &mails, &defaults, free, Some(baseline));
    row("defaults (10 s, pacing, max 1 h)", &mails, &defaults, Some(5_000), Some(baseline));
    let reserve20 = Settings { reserve: 20, ..Settings::default() };
    row("defaults but reserve = 20", &mails, &reserve20, free, Some(baseline));
    for hours in [6u64, 12, 24, 72] {
        let s = Settings { max_coalesce: Duration::from_secs(hours * 3600), ..Settings::default() };
        row(&format!("pacing, max_coalesce_secs = {}", hours * 3600), &mails, &s, free, Some(baseline));
    }
    println!();
    println!("how the share depends on how far apart each hour's cron jobs finish (defaults, no limit):");
    println!("{:<46} {:>8} {:>8} {:>6}", "spread of an hour's jobs", "off", "on", "of off");
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
        println!("{label:<46} {off_m:>8} {on_m:>8} {:>5.1}%", on_m as f64 * 100.0 / off_m as f64);
    }
}
