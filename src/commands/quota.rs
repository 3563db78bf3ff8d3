//! `mail2line quota`: where the month's LINE messages go.
//!
//! LINE bills one message per recipient per accepted push or multicast request, and a plan's
//! month (Japan time) has a fixed number of them. This command shows the plan's limit, what is
//! used and left (LINE's figure at the gateway's last read, plus what the gateway counted since),
//! this month's mails against the LINE messages they cost (what coalescing saved), a forecast
//! for the month's end at the current rate, and the recipients and senders that cost most.
//!
//! Like `mail2line queue`, it reads the spool's SQLite file with a connection of its own (or,
//! with `[storage] url`, the PostgreSQL database the gateways share), so it works while
//! `mail2line serve` runs and never talks to LINE or to the server process.
//! Exit codes: 0 shown, 1 no spool / store error, 78 configuration errors.

use std::path::PathBuf;

use rusqlite::Connection;
use serde_json::{json, Value};

use super::output::{self, printable, rfc3339, table};
use super::{stores, Error};
use crate::config::{Config, Purpose};
use crate::spool::coalesce::month_bounds;
use crate::spool::store::{self, Store, UsageRow};

/// How many recipients and senders the tables show.
const TOP: usize = 10;

/// Entry point for `main.rs`; returns the exit status.
pub fn main(config_flag: Option<PathBuf>, channel: Option<String>, json: bool) -> u8 {
    let mut cfg = match output::load_config(config_flag.as_deref(), Purpose::DryRun, "mail2line") {
        Ok((_path, cfg)) => cfg,
        Err(status) => return status,
    };
    if let Err(e) = super::stores::select_channel(&mut cfg, channel.as_deref()) {
        eprintln!("mail2line quota: {e}");
        return e.exit_code();
    }
    match run(&cfg, json, store::now_ms()) {
        Ok(out) => output::print("mail2line quota", &out),
        Err(e) => {
            eprintln!("mail2line quota: {e}");
            e.exit_code()
        }
    }
}

/// The month's figures, as both outputs show them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub month_start: i64,
    pub month_end: i64,
    pub limit: Option<u64>,
    pub used: u64,
    /// When LINE's figure was last read (unix ms); None if never this month.
    pub probed_at: Option<i64>,
    pub budget: Option<u64>,
    pub reserve: u64,
    pub mails: u64,
    pub messages: u64,
    pub solo: u64,
    pub forecast: u64,
    pub recipients: Vec<UsageRow>,
    pub senders: Vec<UsageRow>,
}

impl Report {
    pub fn remaining(&self) -> Option<u64> {
        self.limit.map(|l| l.saturating_sub(self.used))
    }
}

/// What the report reads: the month's usage by kind and LINE's quota as last read, from the
/// spool's SQLite file or from PostgreSQL (`[storage] url`).
pub enum Source<'a> {
    Sqlite(&'a Connection),
    Postgres(&'a Store, &'a tokio::runtime::Runtime),
}

impl Source<'_> {
    fn usage(&self, month: i64, kind: &str) -> Result<Vec<UsageRow>, store::StoreError> {
        match self {
            Source::Sqlite(conn) => store::usage(conn, month, kind),
            Source::Postgres(s, rt) => rt.block_on(s.usage(month, kind)),
        }
    }

    fn quota(&self) -> Result<Option<store::QuotaRow>, store::StoreError> {
        match self {
            Source::Sqlite(conn) => store::quota(conn),
            Source::Postgres(s, rt) => rt.block_on(s.quota()),
        }
    }
}

/// Reads the month holding `now` (unix ms) from the spool of `cfg`.
pub fn report(conn: &Source<'_>, cfg: &Config, now: i64) -> Result<Report, Error> {
    let (start, end) = month_bounds(now);
    let err = |reason: store::StoreError| Error::Store { what: "spool", done: "read", reason };
    let recipients = conn.usage(start, "target").map_err(err)?;
    let senders = conn.usage(start, "sender").map_err(err)?;
    let messages: u64 = recipients.iter().map(|r| r.messages).sum();
    let solo: u64 = recipients.iter().map(|r| r.solo).sum();
    let mails: u64 = senders.iter().map(|r| r.mails).sum();
    let row = conn.quota().map_err(err)?.filter(|q| q.month == start);
    let (limit, used, probed_at) = match row {
        Some(q) => (q.limit, q.used, (q.probed_at > 0).then_some(q.probed_at)),
        None => (None, messages, None),
    };
    let budget = match (limit, cfg.quota.monthly_budget) {
        (None, 0) => None,
        (None, b) => Some(b),
        (Some(l), 0) => Some(l),
        (Some(l), b) => Some(l.min(b)),
    };
    let elapsed = (now - start).max(1) as f64;
    let forecast = (used as f64 * (end - start) as f64 / elapsed).round() as u64;
    let top = |mut v: Vec<UsageRow>| {
        v.retain(|r| r.messages > 0 || r.mails > 0);
        v.truncate(TOP);
        v
    };
    Ok(Report {
        month_start: start,
        month_end: end,
        limit,
        used,
        probed_at,
        budget,
        reserve: cfg.quota.reserve,
        mails,
        messages,
        solo,
        forecast,
        recipients: top(recipients),
        senders: top(senders),
    })
}

/// The report on the spool of `cfg` as text or JSON; `now` is unix ms.
pub fn run(cfg: &Config, json: bool, now: i64) -> Result<String, Error> {
    let r = if cfg.storage.is_postgres() {
        let runtime = stores::cli_runtime()?;
        let store = runtime.block_on(async {
            let db = stores::cli_connect(cfg).await?.ok_or_else(|| Error::NoStore("storage.url is not set".into()))?;
            stores::cli_spool_store(cfg, &db).await
        })?;
        report(&Source::Postgres(&store, &runtime), cfg, now)?
    } else {
        let conn = store::open_existing(&cfg.storage.dir, false).map_err(|e| Error::NoStore(e.to_string()))?;
        report(&Source::Sqlite(&conn), cfg, now)?
    };
    Ok(if json { to_json(&r) } else { to_text(&r, now) })
}

fn rows_json(rows: &[UsageRow], key: &str) -> Value {
    Value::Array(rows.iter().map(|r| json!({ key: r.key, "messages": r.messages, "mails": r.mails })).collect())
}

pub fn to_json(r: &Report) -> String {
    let v = json!({
        "month_start": rfc3339(r.month_start),
        "month_end": rfc3339(r.month_end),
        "limit": r.limit,
        "used": r.used,
        "remaining": r.remaining(),
        "budget": r.budget,
        "reserve": r.reserve,
        "probed_at": r.probed_at.map(rfc3339),
        "mails": r.mails,
        "messages": r.messages,
        "messages_without_coalescing": r.solo,
        "forecast": r.forecast,
        "top_recipients": rows_json(&r.recipients, "id"),
        "top_senders": rows_json(&r.senders, "sender"),
    });
    output::json(&v)
}

fn to_text(r: &Report, now: i64) -> String {
    let mut out = String::new();
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<22}{v}\n"));
    out.push_str(&format!("LINE messages this month ({} to {}, Japan time)\n", jst_day(r.month_start), jst_day(r.month_end - 1)));
    line(&mut out, "plan limit", r.limit.map_or_else(|| "none (LINE reports no limit)".into(), |l| l.to_string()));
    let source = match r.probed_at {
        Some(at) => format!("LINE's figure at {} plus what was sent since", rfc3339(at)),
        None => "counted by this gateway; LINE's figure not read yet this month".into(),
    };
    line(&mut out, "used", format!("{} ({source})", r.used));
    if let Some(left) = r.remaining() {
        line(&mut out, "remaining", left.to_string());
    }
    if let Some(b) = r.budget {
        line(&mut out, "budget", format!("{b}, of which the last {} are kept for urgent mail", r.reserve));
    }
    line(&mut out, "mails", r.mails.to_string());
    let saved = r.solo.saturating_sub(r.messages);
    line(&mut out, "sent as LINE messages", format!("{} (one request per mail would have cost {}; coalescing saved {saved})", r.messages, r.solo));
    let forecast = match r.budget {
        Some(b) if r.forecast > b => {
            let rate = r.used as f64 / (now - r.month_start).max(1) as f64;
            let out_at = r.month_start + (b as f64 / rate.max(f64::MIN_POSITIVE)) as i64;
            format!("{} at this rate: the budget runs out around {}", r.forecast, jst_day(out_at))
        }
        Some(_) => format!("{} at this rate: the budget lasts the month", r.forecast),
        None => format!("{} at this rate", r.forecast),
    };
    line(&mut out, "forecast for the month", forecast);
    for (title, rows, head) in [("Top recipients", &r.recipients, "RECIPIENT"), ("Top senders", &r.senders, "SENDER")] {
        out.push_str(&format!("\n{title} by LINE messages\n"));
        if rows.is_empty() {
            out.push_str("  none yet\n");
            continue;
        }
        let t: Vec<[String; 3]> = rows.iter().map(|u| [printable(&u.key), u.messages.to_string(), u.mails.to_string()]).collect();
        out.push_str(&table(&[head, "LINE MESSAGES", "MAILS"], &t));
    }
    out
}

/// `2026-12-01`: the day (Japan time) holding `ms`.
fn jst_day(ms: i64) -> String {
    rfc3339(ms + 9 * 3600 * 1000)[..10].to_owned()
}
