//! `cargo bench --bench month` (or `bash bench/month.sh`): a month of a small office's mail
//! replayed through the coalescing and quota planner (`src/spool/coalesce.rs`), the very
//! functions the spool will ask. Prints mails, LINE messages with coalescing off, on, and on
//! with pacing, the delays routine mail got, and how a free-plan channel (200 a month) fares.
//!
//! The trace (deterministic, seed fixed): cron at the top of every hour (5–15 jobs within 20 s)
//! to the admin; a monitoring flap of 30 alerts in 2 minutes twice a week to the ops group
//! (5 members, so each request costs 5); the NAS's daily report at 03:00 to the admin; four
//! urgent alerts a month to the ops group. December 2026, Japan time.

use std::time::Duration;

use mail2line::spool::coalesce::{admit, chat_window, month_bounds, next, sent, window, Admission, Chat, Next, Quota, Settings};

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

fn trace() -> Vec<Mail> {
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
        for _ in 0..5 + rand(11) {
            mails.push(Mail { at: hour + rand(20_000) as i64, chat: 0, urgent: false });
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
    refused_routine: usize,
    refused_urgent: usize,
    urgent_delays: Vec<i64>,
    delays: Vec<i64>,
    /// When routine mail was first refused (only the reserve left).
    reserve_reached_at: Option<i64>,
}

/// Replays `mails` through the planner with `settings` and a LINE limit of `limit`.
fn replay(mails: &[Mail], settings: &Settings, limit: Option<u64>) -> Outcome {
    let mut out = Outcome::default();
    let mut chats = [Chat::default(); 2];
    let mut held: [Vec<Mail>; 2] = [Vec::new(), Vec::new()];
    let mut wake: [Option<i64>; 2] = [None, None];
    let mut quota = Quota { limit, used: 0 };
    let send = |c: usize, at: i64, waited: bool, chats: &mut [Chat; 2], held: &mut [Vec<Mail>; 2], quota: &mut Quota, out: &mut Outcome| {
        let batch = std::mem::take(&mut held[c]);
        let requests = batch.len().div_ceil(MAILS_PER_REQUEST) as u64;
        quota.used += requests * MEMBERS[c];
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
            send(c, at, true, &mut chats, &mut held, &mut quota, &mut out);
        }
        match admit(quota, settings, mail.urgent, mail.at) {
            Admission::Accept => {}
            _ if mail.urgent => {
                out.refused_urgent += 1;
                continue;
            }
            _ => {
                out.refused_routine += 1;
                out.reserve_reached_at.get_or_insert(mail.at);
                continue;
            }
        }
        let c = mail.chat;
        held[c].push(*mail);
        chats[c].held = true;
        chats[c].urgent_held |= mail.urgent;
        let w = chat_window(window(settings, quota, mail.at), &chats[c], settings);
        match next(chats[c], w, mail.at) {
            Next::SendNow => {
                // At once: after a quiet spell (the streak ends), or urgent mail taking the
                // held mail along (still a busy chat).
                let busy = wake[c].is_some();
                wake[c] = None;
                send(c, mail.at, busy, &mut chats, &mut held, &mut quota, &mut out);
            }
            Next::WakeAt(at) => wake[c] = Some(wake[c].map_or(at, |w| w.min(at))),
            Next::Idle => {}
        }
    }
    for c in 0..2 {
        if let Some(at) = wake[c] {
            send(c, at, true, &mut chats, &mut held, &mut quota, &mut out);
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

fn main() {
    let mails = trace();
    let urgent = mails.iter().filter(|m| m.urgent).count();
    println!("mail2line month: {} mails in December 2026 (JST), {urgent} urgent; admin 1 member, ops group 5", mails.len());
    let off = Settings { coalesce: Duration::ZERO, ..Settings::default() };
    let on = Settings { pacing: false, ..Settings::default() };
    let paced = Settings::default();
    println!();
    println!("{:<44} {:>9} {:>9} {:>10} {:>10} {:>10} {:>9}", "settings, LINE limit", "requests", "messages", "median s", "p99 s", "worst s", "452s");
    for (name, s) in [("coalescing off", &off), ("coalesce_secs = 10", &on), ("coalesce_secs = 10, pacing", &paced)] {
        for limit in [None, Some(200u64)] {
            let mut o = replay(&mails, s, limit);
            let label = format!("{name}, {}", limit.map_or("no limit".to_owned(), |l| format!("limit {l}")));
            let refused = o.refused_routine + o.refused_urgent;
            println!(
                "{label:<44} {:>9} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>9}",
                o.requests,
                o.messages,
                percentile(&mut o.delays, 0.5),
                percentile(&mut o.delays, 0.99),
                percentile(&mut o.delays, 1.0),
                refused
            );
            if limit.is_none() {
                println!("{:<44} requests to the admin {}, to the ops group {}", "", o.per_chat[0], o.per_chat[1]);
            }
            if limit.is_some() {
                let day = o.reserve_reached_at.map(|t| format!("day {:.1}", (t - MONTH_START) as f64 / DAY as f64)).unwrap_or_else(|| "never".into());
                let worst_urgent = o.urgent_delays.iter().max().copied().unwrap_or(0);
                println!(
                    "{:<44} routine mail refused from {day}; urgent: {} sent (worst delay {:.1} s), {} refused",
                    "", o.urgent_delays.len(), worst_urgent as f64 / 1000.0, o.refused_urgent
                );
            }
        }
    }
}
