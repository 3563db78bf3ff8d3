//! The fault campaign of issue #9: mails through the real binary while it is `kill -9`'d at
//! random intervals and restarted on the same storage, and the LINE stand-in fails a share of
//! the deliveries (500, 429, slow, late past the client's timeout, accepted-then-dropped).
//! At the end every SMTP transaction is matched with what the stand-in accepted.
//!
//! Owns the campaign: its [`Settings`], the SMTP load (several sessions of [`super::load`]'s
//! client, resending like an MTA), the killer, the drain, the accounting ([`tally`], pure) and the [`Report`].
//! `benches/chaos.rs` (`bench/chaos.sh`, 10,000 mails, release build) and `tests/chaos.rs`
//! (a few hundred mails, debug build) both call [`run`], so the short test runs the same code.
//!
//! Accounting is per SMTP *transaction*, not per mail, because a sender that sees no 250 sends
//! the mail again: every transaction carries `seq=<mail> try=<attempt>` in its subject (the
//! pushed text starts with the subject). Then
//! * a transaction answered 250 must be accepted (2xx) by LINE exactly once: never is *lost*,
//!   more than once is a *duplicate*;
//! * a transaction cut after its final `.` (the kill came before the answer) may be accepted
//!   once or not at all; once is reported separately — the gateway had stored it, the client
//!   could not know and resent it, so that mail reaches the chat twice. That is SMTP's own
//!   duplicate window (RFC 1047), not a spool duplicate; more than once is a duplicate;
//! * a transaction cut before its final `.`, or refused, must never be accepted.
//!
//! LINE's 409 for a reused retry key is its dedupe, not an acceptance.
//!
//! With [`Settings::nodes`] above one (issue #21, `--nodes 3 --store postgres`), that many
//! gateways share one PostgreSQL database (`[storage] url`, each its own `node`), every session
//! spreads its connections over them as a TCP load balancer would, and the killer picks a random
//! node each time. With [`Settings::rate_limit`] the channel's `max_requests_per_second` is set and
//! the campaign measures the nodes' combined request rate at the stand-in against it
//! ([`max_in_one_second`], [`Report::rate_allowed`]); the stand-in runs on a thread of its own at
//! a raised priority, so that its arrival stamps are not bunched by the gateways' load.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gateway::{GatewayProcess, Options, DOMAIN};
use super::load::Smtp;
use super::standin::{Fault, Faults, Recorded, StandIn};

/// The gateway's `[delivery]` for the campaign: the spool, with fast retries so a run takes
/// seconds, not hours. With [`Settings::coalesce`] a short window is added (issue #17): every
/// session mails its own chat, so mail is held, sealed into shared requests, and `kill -9`'d
/// while held; without it every mail is its own request, which draws many more faults.
pub fn delivery_config(coalesce: bool, rate_limit: Option<u32>) -> String {
    let limit = rate_limit.map(|l| format!("max_requests_per_second = {l}\n")).unwrap_or_default();
    let base = format!("[delivery]\nmode = \"spool\"\nretry_base_ms = 50\nretry_max_secs = 1\nscan_interval_ms = 50\n{limit}");
    if coalesce {
        format!("{base}coalesce_secs = 1\n\n[quota]\nmax_coalesce_secs = 4\n")
    } else {
        format!("{base}coalesce_secs = 0\n")
    }
}
/// The load comes from one address: per-address limits would refuse it.
pub const SMTP_CONFIG: &str = "max_sessions_per_ip = 0\nmax_mails_per_minute_per_ip = 0\n";
/// The gateway's LINE timeout in [`GatewayProcess`]'s config (`[line] timeout_secs`).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// A slow answer: within the client's timeout.
pub const SLOW: Duration = Duration::from_millis(500);
/// A late answer: past the client's timeout, so the client gives up on an accepted request.
pub const LATE: Duration = Duration::from_millis(3000);
/// A mail the gateway refuses this often with 4xx is given up (and the run fails).
const MAX_ATTEMPTS: u32 = 200;
/// How long one SMTP reply may take; a gateway that hangs shows up as cut transactions.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Settings {
    pub mails: u64,
    /// Concurrent SMTP sessions.
    pub sessions: usize,
    /// Mails per second over all sessions (`None`: as fast as the gateway takes them).
    pub rate: Option<f64>,
    /// Seeds the stand-in's faults and the killer's intervals.
    pub seed: u64,
    /// Share of delivery requests that fail.
    pub fault_rate: f64,
    /// The killer waits a random time in this range before each `kill -9`.
    pub kill_every: (Duration, Duration),
    /// The killer goes on after the load (into the drain) until it has killed this often, so a
    /// short run on a slow machine still sees several kills.
    pub min_kills: u32,
    /// How long to wait, after the load, for the spool to be empty.
    pub drain_timeout: Duration,
    /// `RUST_LOG` for the gateway (`None`: [`GatewayProcess`]'s default, `debug`).
    pub rust_log: Option<String>,
    /// Coalescing on (a 1 s window, stretched to at most 4 s) or off (see [`delivery_config`]).
    pub coalesce: bool,
    /// Gateways taking the load at once; more than one needs [`Settings::postgres`].
    pub nodes: usize,
    /// The store: PostgreSQL (`[storage] url` on a throwaway cluster from
    /// `support::postgres`) instead of SQLite in each gateway's `storage.dir`.
    pub postgres: bool,
    /// The channel's `[delivery] max_requests_per_second`, shared by the nodes (None: the
    /// gateway's default, which the campaign's load never reaches).
    pub rate_limit: Option<u32>,
}

impl Settings {
    pub fn describe(&self) -> String {
        let rate = self.rate.map(|r| format!("{r}/s")).unwrap_or_else(|| "unpaced".into());
        let at_least = if self.min_kills > 0 { format!(" (at least {})", self.min_kills) } else { String::new() };
        let limit = self.rate_limit.map(|l| format!(" rate-limit={l}/s")).unwrap_or_default();
        format!(
            "mails={} sessions={} rate={rate} seed={} fault-rate={} kill every {:.1}-{:.1} s{at_least} coalescing={} nodes={} store={}{limit}",
            self.mails,
            self.sessions,
            self.seed,
            self.fault_rate,
            self.kill_every.0.as_secs_f64(),
            self.kill_every.1.as_secs_f64(),
            if self.coalesce { "on" } else { "off" },
            self.nodes,
            if self.postgres { "postgres" } else { "sqlite" }
        )
    }
}

/// A seed from the clock, for runs that do not give one.
pub fn clock_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) % 1_000_000_007
}

// ---------------------------------------------------------------------------------------------
// What the client saw and what LINE accepted

/// How one SMTP transaction ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The end of DATA was answered with this code.
    Answered(u16),
    /// MAIL, RCPT or DATA was refused with this code; no message was sent.
    RefusedEarly(u16),
    /// The connection broke before the final `.` was written: the gateway cannot have the mail.
    CutBeforeEnd,
    /// The message was written and no answer came: the gateway may or may not have stored it.
    CutAfterEnd,
}

/// One SMTP transaction: mail `seq`, the client's `attempt` (1, 2, …) at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transaction {
    pub seq: u64,
    pub attempt: u32,
    pub ending: Ending,
}

/// `(seq, attempt)` named by a pushed text (`"… seq=12 try=2 …"`).
pub fn transaction_in(text: &str) -> Option<(u64, u32)> {
    transactions_in(text).into_iter().next()
}

/// Every transaction in a pushed text, in order: a coalesced request carries several mails,
/// each starting with its own subject line.
pub fn transactions_in(text: &str) -> Vec<(u64, u32)> {
    let num = |rest: &str| -> Option<u64> {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    };
    let mut out = Vec::new();
    for (at, _) in text.match_indices("seq=") {
        let rest = &text[at + 4..];
        let Some(seq) = num(rest) else { continue };
        let Some(t) = rest.find(" try=").filter(|&t| rest[..t].chars().all(|c| c.is_ascii_digit())) else { continue };
        if let Some(attempt) = num(&rest[t + 5..]).and_then(|a| u32::try_from(a).ok()) {
            out.push((seq, attempt));
        }
    }
    out
}

/// The counts of a campaign; see the module docs for the rules.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub transactions: usize,
    /// Accepted requests that carried more than one mail (coalescing).
    pub coalesced_requests: usize,
    /// Accepted requests that carried at least one known mail.
    pub accepted_requests: HashSet<String>,
    /// Distinct mails with a transaction answered 250.
    pub mails_answered_250: usize,
    pub answered_250: usize,
    pub refused_4xx: usize,
    pub refused_5xx: usize,
    pub cut_before_end: usize,
    pub cut_after_end: usize,
    /// Transactions answered 250 and accepted by LINE exactly once.
    pub accepted_once: usize,
    /// Transactions answered 250 that LINE never accepted.
    pub lost: Vec<(u64, u32)>,
    /// Transactions LINE accepted more than once, with how often.
    pub duplicated: Vec<((u64, u32), usize)>,
    /// Cut after the final `.` and accepted once: stored, but the 250 was lost in a kill.
    pub answer_lost_delivered: usize,
    /// Mails that reached LINE through two transactions (each the other's resend).
    pub mails_delivered_twice: usize,
    /// Transactions that should never reach LINE (cut before the end, refused) but did.
    pub unexpected: Vec<((u64, u32), Ending)>,
    /// Accepted requests naming a transaction the client never made, or none.
    pub unattributed: usize,
    /// Transactions whose requests carried more than one retry key.
    pub key_changed: Vec<(u64, u32)>,
    /// LINE's dedupe: a retry key it had already accepted.
    pub conflicts_409: usize,
    /// Delivery requests in all.
    pub requests: usize,
    /// Recorded requests by the fault they got (a slow answer cut by a kill is not recorded).
    pub faults: BTreeMap<Fault, usize>,
    pub spec_errors: Vec<String>,
}

/// The most push requests that arrived at the stand-in within any one second (a sliding
/// window over their arrival times): what LINE's per-channel rate limit counts. Pure.
pub fn max_in_one_second(requests: &[Recorded]) -> usize {
    let mut at: Vec<Instant> =
        requests.iter().filter(|r| r.method == "POST" && r.path == "/v2/bot/message/push").map(|r| r.received).collect();
    at.sort_unstable();
    let (mut best, mut start) = (0, 0);
    for end in 0..at.len() {
        while at[end] - at[start] >= Duration::from_secs(1) {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

/// Matches the client's transactions with the stand-in's delivery requests. Pure.
pub fn tally(transactions: &[Transaction], requests: &[Recorded]) -> Tally {
    let mut t = Tally { transactions: transactions.len(), ..Tally::default() };
    let mut accepted: HashMap<(u64, u32), usize> = HashMap::new();
    let mut keys: HashMap<(u64, u32), HashSet<String>> = HashMap::new();
    let known: HashMap<(u64, u32), Ending> = transactions.iter().map(|x| ((x.seq, x.attempt), x.ending)).collect();
    for r in requests {
        t.spec_errors.extend(r.spec_errors.iter().map(|e| format!("{} {}: {e}", r.method, r.path)));
        if !r.path.starts_with("/v2/bot/message/") || r.method != "POST" {
            continue;
        }
        t.requests += 1;
        if let Some(f) = r.fault {
            *t.faults.entry(f).or_default() += 1;
        }
        if r.status == 409 {
            t.conflicts_409 += 1;
        }
        // Counted per mail, not per request: a coalesced request carries several.
        let mut ids: Vec<(u64, u32)> = Vec::new();
        for m in r.body["messages"].as_array().into_iter().flatten() {
            for id in transactions_in(m["text"].as_str().unwrap_or("")) {
                if known.contains_key(&id) && !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        if ids.len() > 1 && r.is_accepted() {
            t.coalesced_requests += 1;
        }
        if ids.is_empty() && r.is_accepted() {
            t.unattributed += 1;
        }
        for id in ids {
            if let Some(key) = r.header("x-line-retry-key") {
                keys.entry(id).or_default().insert(key.to_owned());
            }
            if r.is_accepted() {
                *accepted.entry(id).or_default() += 1;
                t.accepted_requests.insert(r.request_id.clone());
            }
        }
    }
    let mut answered_mails = HashSet::new();
    let mut delivered_by: HashMap<u64, usize> = HashMap::new();
    for x in transactions {
        let id = (x.seq, x.attempt);
        let n = accepted.get(&id).copied().unwrap_or(0);
        if n > 0 {
            *delivered_by.entry(x.seq).or_default() += 1;
        }
        if n > 1 {
            t.duplicated.push((id, n));
        }
        match x.ending {
            Ending::Answered(250) => {
                t.answered_250 += 1;
                answered_mails.insert(x.seq);
                match n {
                    0 => t.lost.push(id),
                    1 => t.accepted_once += 1,
                    _ => {}
                }
            }
            Ending::CutAfterEnd => {
                t.cut_after_end += 1;
                if n == 1 {
                    t.answer_lost_delivered += 1;
                }
            }
            Ending::CutBeforeEnd | Ending::Answered(_) | Ending::RefusedEarly(_) => {
                match x.ending {
                    Ending::CutBeforeEnd => t.cut_before_end += 1,
                    Ending::Answered(c) | Ending::RefusedEarly(c) if c >= 500 => t.refused_5xx += 1,
                    _ => t.refused_4xx += 1,
                }
                if n > 0 {
                    t.unexpected.push((id, x.ending));
                }
            }
        }
    }
    t.mails_answered_250 = answered_mails.len();
    t.mails_delivered_twice = delivered_by.values().filter(|&&n| n > 1).count();
    t.key_changed = keys.into_iter().filter(|(_, k)| k.len() > 1).map(|(id, _)| id).collect();
    t.lost.sort_unstable();
    t.duplicated.sort_unstable();
    t.key_changed.sort_unstable();
    t
}

// ---------------------------------------------------------------------------------------------
// The report

#[derive(Debug)]
pub struct Report {
    pub settings: Settings,
    pub tally: Tally,
    /// Mails whose every attempt was refused or cut until [`MAX_ATTEMPTS`], or the run aborted.
    pub gave_up: u64,
    pub kills: u32,
    /// Time from each `kill -9` to the restarted gateway's "SMTP listening" line.
    pub restarts: Vec<Duration>,
    pub killer_error: Option<String>,
    /// Jobs left in the spool when the drain ended (0 when it emptied).
    pub pending_at_end: i64,
    pub dead_at_end: i64,
    pub gateway_panics: usize,
    /// Deliveries that drew from the stand-in's fault mix, and the faults drawn by kind.
    pub fault_draws: u64,
    pub faults_injected: BTreeMap<Fault, u64>,
    /// [`max_in_one_second`] over the whole run.
    pub max_per_second: usize,
    /// Whether the stand-in had LINE's OpenAPI spec to check bodies against.
    pub spec_checked: bool,
    pub load: Duration,
    pub drain: Duration,
    pub total: Duration,
}

impl Report {
    /// 0 lost, 0 duplicated, every body spec-valid, nothing delivered that should not be, the
    /// spool empty and every mail answered 250 in the end.
    pub fn passed(&self) -> bool {
        let t = &self.tally;
        t.lost.is_empty()
            && t.duplicated.is_empty()
            && t.spec_errors.is_empty()
            && t.unexpected.is_empty()
            && t.unattributed == 0
            && t.key_changed.is_empty()
            && t.refused_5xx == 0
            && self.gave_up == 0
            && self.killer_error.is_none()
            && self.pending_at_end == 0
            && self.dead_at_end == 0
            && self.gateway_panics == 0
            && self.rate_allowed().is_none_or(|allowed| self.max_per_second <= allowed)
    }

    /// The most requests any one second may carry with [`Settings::rate_limit`] set.
    ///
    /// Several nodes: the limit itself. Each node's limiter lets no more than its share into
    /// any second of its sends, stalls included (`spool/limiter.rs`); the shares add up to 19/20
    /// of the limit; a node joining, or restarted, sends at 1/s until the others have counted
    /// it and 2 s have passed (`spool/share.rs`).
    ///
    /// One node: the limit, plus its limiter's first slots (1/20 of the limit, at least one)
    /// once more for a restart within that second. A gateway alone does not wait when it starts,
    /// and the process killed a moment before may have sent its whole second; LINE answers the
    /// excess 429, which the spool retries.
    pub fn rate_allowed(&self) -> Option<usize> {
        let limit = self.settings.rate_limit? as usize;
        Some(match self.settings.nodes {
            0 | 1 => limit + 2 * (limit / 20).max(1),
            _ => limit,
        })
    }

    pub fn summary(&self) -> String {
        let t = &self.tally;
        let s = &self.settings;
        let mut out = String::new();
        let mut line = |l: String| {
            out.push_str(&l);
            out.push('\n');
        };
        line(format!("mail2line fault campaign: {}", s.describe()));
        line(format!(
            "  gateway: [delivery] mode=spool retry_base_ms=50 retry_max_secs=1 scan_interval_ms=50 {}; [line] timeout_secs={}",
            if s.coalesce { "coalesce_secs=1; [quota] max_coalesce_secs=4" } else { "coalesce_secs=0" },
            CLIENT_TIMEOUT.as_secs()
        ));
        line(format!(
            "  mails answered 250: {} of {}   pushes accepted once: {}   duplicates: {}   lost: {}",
            t.mails_answered_250,
            s.mails,
            t.accepted_once,
            t.duplicated.len(),
            t.lost.len()
        ));
        line(format!(
            "  counted per mail: LINE accepted {} requests for them, {} of those carried several mails (coalesced)",
            t.accepted_requests.len(),
            t.coalesced_requests
        ));
        line(format!(
            "  smtp transactions: {}  answered 250: {}  refused 4xx: {}  refused 5xx: {}  cut before end of DATA: {}  cut after end of DATA (answer lost): {}",
            t.transactions, t.answered_250, t.refused_4xx, t.refused_5xx, t.cut_before_end, t.cut_after_end
        ));
        line(format!(
            "  answer lost in a kill but delivered once: {}  (so {} mails reached LINE twice: the client resent them, SMTP's duplicate window, not a spool duplicate)",
            t.answer_lost_delivered, t.mails_delivered_twice
        ));
        let restart = |f: fn(&[Duration]) -> Duration| f(&self.restarts).as_secs_f64() * 1e3;
        line(format!(
            "  kills (kill -9): {}   restart to listening: mean {:.0} ms, max {:.0} ms",
            self.kills,
            restart(|d| if d.is_empty() { Duration::ZERO } else { d.iter().sum::<Duration>() / d.len() as u32 }),
            restart(|d| d.iter().max().copied().unwrap_or_default())
        ));
        let injected: u64 = self.faults_injected.values().sum();
        let kinds: Vec<String> =
            Fault::ALL.iter().map(|f| format!("{} {}", f.name(), self.faults_injected.get(f).copied().unwrap_or(0))).collect();
        line(format!("  LINE delivery requests: {}   409 (retry key already accepted, LINE's dedupe): {}", t.requests, t.conflicts_409));
        // A 409 is answered before any fault is drawn.
        line(format!(
            "  faults injected: {injected} of {} requests not answered 409 ({:.1}%): {}",
            self.fault_draws,
            if self.fault_draws > 0 { injected as f64 * 100.0 / self.fault_draws as f64 } else { 0.0 },
            kinds.join(", ")
        ));
        let spec = if self.spec_checked { format!("{} failing", t.spec_errors.len()) } else { "NOT CHECKED (spec not found)".into() };
        line(format!(
            "  request bodies against LINE's OpenAPI spec: {spec}   spool at end: {} pending, {} dead   gateway panics: {}",
            self.pending_at_end,
            self.dead_at_end,
            self.gateway_panics
        ));
        let allowed = match (self.settings.rate_limit, self.rate_allowed()) {
            (Some(limit), Some(allowed)) if allowed == limit as usize => format!(" (channel limit {limit}/s over {} nodes: at most {allowed} allowed)", s.nodes),
            (Some(limit), Some(allowed)) => format!(" (channel limit {limit}/s, one node: at most {allowed} allowed with a restart's first slots)"),
            _ => " (no rate limit set)".to_owned(),
        };
        line(format!("  LINE push requests in the busiest second, all nodes together: {}{allowed}", self.max_per_second));
        line(format!(
            "  elapsed: load {:.1} s, drain {:.1} s, total {:.1} s",
            self.load.as_secs_f64(),
            self.drain.as_secs_f64(),
            self.total.as_secs_f64()
        ));
        let mut problems = Vec::new();
        if !t.lost.is_empty() {
            problems.push(format!("lost (seq, try): {:?}", first(&t.lost)));
        }
        if !t.duplicated.is_empty() {
            problems.push(format!("duplicated ((seq, try), times): {:?}", first(&t.duplicated)));
        }
        if !t.unexpected.is_empty() {
            problems.push(format!("delivered but never completed or refused: {:?}", first(&t.unexpected)));
        }
        if t.unattributed > 0 {
            problems.push(format!("accepted requests naming no transaction: {}", t.unattributed));
        }
        if !t.key_changed.is_empty() {
            problems.push(format!("retry key changed between attempts: {:?}", first(&t.key_changed)));
        }
        if !t.spec_errors.is_empty() {
            problems.push(format!("spec errors: {:?}", first(&t.spec_errors)));
        }
        if self.gave_up > 0 {
            problems.push(format!("mails given up by the client: {}", self.gave_up));
        }
        if let Some(e) = &self.killer_error {
            problems.push(format!("killer: {e}"));
        }
        if let Some(allowed) = self.rate_allowed().filter(|&a| self.max_per_second > a) {
            problems.push(format!("the nodes together sent {} requests in one second, above {allowed}", self.max_per_second));
        }
        for p in problems {
            line(format!("  PROBLEM {p}"));
        }
        line(format!("  result: {}", if self.passed() { "PASS (0 lost, 0 duplicated)" } else { "FAIL" }));
        out
    }
}

fn first<T: Clone>(v: &[T]) -> Vec<T> {
    v.iter().take(10).cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// Randomness

/// xorshift64*, seeded through splitmix64. Quality is irrelevant; reproducibility is not.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    /// In [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

// ---------------------------------------------------------------------------------------------
// The run

/// A restart slower than this prints the gateway's start-up log (to find out why).
const SLOW_RESTART: Duration = Duration::from_secs(5);

/// Where each gateway listens now (new port after each restart) and whether to give up.
struct Shared {
    smtp: Mutex<Vec<SocketAddr>>,
    /// Set when the killer could not restart the gateway: the sessions stop.
    abort: AtomicBool,
    /// Set when the load is over: the killer stops (leaving the gateway running).
    load_done: AtomicBool,
    next_seq: AtomicU64,
    gave_up: AtomicU64,
}

/// Runs a campaign. Needs a multi-threaded tokio runtime.
pub async fn run(settings: Settings) -> Report {
    let started = Instant::now();
    // Its own thread at a raised priority: the busiest second is read from its arrival stamps,
    // which on a machine the gateways saturate would otherwise bunch (see `start_prioritised`).
    let line = StandIn::start_prioritised().await;
    line.set_faults(Some(Faults { rate: settings.fault_rate, seed: settings.seed, slow: SLOW, late: LATE }));
    let url = line.base_url();
    // A throwaway PostgreSQL cluster (stopped when this process ends), or none for SQLite.
    let db = if settings.postgres {
        match super::postgres::database().await {
            Some(db) => Some(db),
            None => panic!("the campaign on PostgreSQL needs a PostgreSQL server (see the SKIPPED notice above)"),
        }
    } else {
        None
    };
    let mut gateways = Vec::new();
    for node in 0..settings.nodes.max(1) {
        let rust_log = settings.rust_log.clone();
        // `[storage]` keys come first: `extra` continues the generated config's `[storage]` table.
        let storage = db.as_ref().map(|db| format!("url = \"{}\"\nnode = \"chaos-{node}\"\n", db.url)).unwrap_or_default();
        let extra = format!("{storage}{}", delivery_config(settings.coalesce, settings.rate_limit));
        let password = db.as_ref().map(|db| db.password.expose().to_owned());
        let url = url.clone();
        let gw = tokio::task::spawn_blocking(move || {
            let mut env: Vec<(&str, &str)> = rust_log.as_deref().map(|l| vec![("RUST_LOG", l)]).unwrap_or_default();
            if let Some(p) = password.as_deref() {
                env.push(("MAIL2LINE_STORAGE_PASSWORD", p));
            }
            GatewayProcess::start(Options { api_base_url: &url, smtp_extra: SMTP_CONFIG, extra: &extra, env: &env, ..Default::default() })
        })
        .await
        .expect("gateway start task");
        gateways.push(gw);
    }
    let data_dir: PathBuf = gateways[0].dir.path().join("data");
    let shared = Arc::new(Shared {
        smtp: Mutex::new(gateways.iter().map(|g| g.smtp).collect()),
        abort: AtomicBool::new(false),
        load_done: AtomicBool::new(false),
        next_seq: AtomicU64::new(0),
        gave_up: AtomicU64::new(0),
    });

    let killer = {
        let shared = shared.clone();
        let (lo, hi) = settings.kill_every;
        let (seed, min_kills) = (settings.seed ^ 0x6b69_6c6c, settings.min_kills);
        std::thread::spawn(move || killer(gateways, shared, lo, hi.max(lo), min_kills, seed))
    };

    let run_id = format!("{}.{}", std::process::id(), clock_seed());
    let t0 = Instant::now();
    let sessions: Vec<_> = (0..settings.sessions.max(1))
        .map(|i| tokio::spawn(session(shared.clone(), i, settings.mails, settings.rate, t0, run_id.clone())))
        .collect();
    let mut transactions = Vec::new();
    for s in sessions {
        transactions.extend(s.await.expect("SMTP session task"));
    }
    let load = t0.elapsed();
    shared.load_done.store(true, Ordering::SeqCst);
    let (mut gateways, kills, restarts, killer_error) =
        tokio::task::spawn_blocking(move || killer.join().expect("killer thread")).await.expect("join killer");

    // Drain: everything answered 250 is in the spool; wait until the spool is empty.
    let drain_start = Instant::now();
    let (mut pending, mut dead) = (-1, -1);
    let admin = match &db {
        Some(db) => Some(db.admin().await),
        None => None,
    };
    while drain_start.elapsed() < settings.drain_timeout {
        let counts = match &admin {
            // Held (coalescing) counts as pending, as in the SQLite store's counts.
            Some(admin) => admin
                .query_one("SELECT COUNT(*) FILTER (WHERE state <> 'dead'), COUNT(*) FILTER (WHERE state = 'dead') FROM jobs", &[])
                .await
                .ok()
                .map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1))),
            None => mail2line::spool::store::open_existing(&data_dir, false)
                .ok()
                .and_then(|conn| mail2line::spool::store::counts(&conn).ok()),
        };
        if let Some((p, d)) = counts {
            (pending, dead) = (p, d);
            if p == 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = drain_start.elapsed();
    // Nothing pending means nothing more can be sent; a moment more shows any straggler anyway.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests = line.requests();
    let (fault_draws, faults_injected) = line.faults_drawn();
    let logs: String = gateways.iter().map(|g| g.logs()).collect();
    tokio::task::spawn_blocking(move || {
        for gw in &mut gateways {
            gw.terminate();
        }
    })
    .await
    .expect("stop gateways");
    Report {
        tally: tally(&transactions, &requests),
        max_per_second: max_in_one_second(&requests),
        settings,
        gave_up: shared.gave_up.load(Ordering::SeqCst),
        kills,
        restarts,
        killer_error,
        pending_at_end: pending,
        dead_at_end: dead,
        gateway_panics: logs.matches("panicked at").count(),
        spec_checked: line.spec_checked(),
        fault_draws,
        faults_injected,
        load,
        drain,
        total: started.elapsed(),
    }
}

/// `kill -9` of a random gateway at random intervals until the load is done and `min_kills` are
/// reached, restarting it each time on the same config and storage. Returns the gateways
/// (running), the kills and each restart's duration.
fn killer(
    mut gateways: Vec<GatewayProcess>,
    shared: Arc<Shared>,
    lo: Duration,
    hi: Duration,
    min_kills: u32,
    seed: u64,
) -> (Vec<GatewayProcess>, u32, Vec<Duration>, Option<String>) {
    let mut rng = Rng::new(seed);
    let mut kills = 0;
    let mut restarts = Vec::new();
    loop {
        let wait = lo + (hi - lo).mul_f64(rng.unit());
        let until = Instant::now() + wait;
        let over = |kills| shared.load_done.load(Ordering::SeqCst) && kills >= min_kills;
        while Instant::now() < until && !over(kills) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if over(kills) {
            return (gateways, kills, restarts, None);
        }
        let node = ((rng.unit() * gateways.len() as f64) as usize).min(gateways.len() - 1);
        let gw = &mut gateways[node];
        gw.kill9();
        kills += 1;
        let down = Instant::now();
        if let Err(e) = gw.try_restart() {
            shared.abort.store(true, Ordering::SeqCst);
            return (gateways, kills, restarts, Some(format!("gateway {node} did not restart after kill {kills}: {e}")));
        }
        let took = down.elapsed();
        restarts.push(took);
        if took >= SLOW_RESTART {
            // What the gateway did while it started: its start-up log since the restart.
            let logs = gw.logs();
            let since = logs.rfind("---- restart ----").map_or("", |i| &logs[i..]);
            eprintln!("chaos: gateway {node} took {took:?} to listen after kill {kills}; its start-up log:\n{since}");
        }
        shared.smtp.lock().unwrap()[node] = gw.smtp;
    }
}

/// One transaction; returns how it ended and whether the connection is still usable.
async fn transaction(c: &mut Smtp, rcpt: &str, message: &[u8]) -> (Ending, bool) {
    // PIPELINING: the envelope in one write, then three replies.
    let envelope = format!("MAIL FROM:<chaos@sender.example>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
    let Ok(codes) = c.envelope(envelope.as_bytes()).await else {
        return (Ending::CutBeforeEnd, false);
    };
    if codes[2] != 354 {
        let refused = codes.into_iter().find(|&x| x != 250).unwrap_or(codes[2]);
        let usable = refused != 421 && c.send(b"RSET\r\n").await.is_ok() && c.reply().await.is_ok();
        return (Ending::RefusedEarly(refused), usable);
    }
    // The final "." is in the last bytes of this write: if it fails, the gateway has no mail.
    if c.send(message).await.is_err() {
        return (Ending::CutBeforeEnd, false);
    }
    match c.reply().await {
        Ok(code) => (Ending::Answered(code), code != 421),
        Err(_) => (Ending::CutAfterEnd, false),
    }
}

/// The message of one transaction; the subject names it (`seq=… try=…`), the Message-ID is the
/// mail's, the same for every attempt as from a real MTA.
fn message(seq: u64, attempt: u32, rcpt: &str, run_id: &str) -> Vec<u8> {
    format!(
        "From: Chaos <chaos@sender.example>\r\nTo: <{rcpt}>\r\nSubject: chaos seq={seq} try={attempt}\r\n\
         Date: Tue, 24 Nov 2026 12:00:00 +0000\r\nMessage-ID: <{seq}.{run_id}@chaos.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Mail {seq} of the fault campaign, attempt {attempt}.\r\n.\r\n"
    )
    .into_bytes()
}

/// A sender: takes the next mail, sends it until it is answered 250 (reconnecting and resending
/// after a refusal or a broken connection, as an MTA would), and so on until all are sent.
async fn session(shared: Arc<Shared>, index: usize, mails: u64, rate: Option<f64>, t0: Instant, run_id: String) -> Vec<Transaction> {
    let rcpt = format!("U{:032x}@{DOMAIN}", 0xc4a0_5000_u64 + index as u64);
    let mut done = Vec::new();
    let mut conn: Option<Smtp> = None;
    // Each new connection goes to the next gateway, as through a TCP load balancer.
    let mut connections = index;
    'mails: loop {
        let seq = shared.next_seq.fetch_add(1, Ordering::SeqCst);
        if seq >= mails {
            break;
        }
        if let Some(rate) = rate {
            tokio::time::sleep_until((t0 + Duration::from_secs_f64(seq as f64 / rate)).into()).await;
        }
        let mut attempt = 0;
        loop {
            if shared.abort.load(Ordering::SeqCst) || attempt >= MAX_ATTEMPTS {
                shared.gave_up.fetch_add(1, Ordering::SeqCst);
                if shared.abort.load(Ordering::SeqCst) {
                    break 'mails;
                }
                continue 'mails;
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => {
                    let at = {
                        let nodes = shared.smtp.lock().unwrap();
                        connections += 1;
                        nodes[connections % nodes.len()]
                    };
                    match Smtp::open(at, REPLY_TIMEOUT, "chaos.example").await {
                        Ok(c) => conn.insert(c),
                        Err(_) => {
                            // Down (killed, not yet restarted): try again soon, like an MTA's queue.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            continue;
                        }
                    }
                }
            };
            attempt += 1;
            let (ending, usable) = transaction(c, &rcpt, &message(seq, attempt, &rcpt, &run_id)).await;
            done.push(Transaction { seq, attempt, ending });
            if !usable {
                conn = None;
            }
            match ending {
                Ending::Answered(250) => continue 'mails,
                Ending::Answered(c) | Ending::RefusedEarly(c) if c >= 500 => continue 'mails,
                Ending::Answered(_) | Ending::RefusedEarly(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Ending::CutBeforeEnd | Ending::CutAfterEnd => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
    if let Some(mut c) = conn {
        let _ = c.send(b"QUIT\r\n").await;
    }
    done
}
