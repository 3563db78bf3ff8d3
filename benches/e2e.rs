//! End-to-end benchmark of the real `mail2line` binary: SMTP in, LINE push out.
//!
//! This file owns the measurement: the gateway's config, the load (sessions, pacing, the mails),
//! the RSS probe and the report. Its parts come from the one test harness, `tests/support`: the
//! in-process LINE stand-in that answers push/multicast 200 and timestamps every request
//! (`fastline`, the "sink"), the gateway launcher (`gateway`, here with the binary cargo built
//! for the bench, configured in a tempdir) and the pipelining SMTP client (`load`).
//! `bench/e2e.sh` runs the standard scenarios; `bench/README.md` explains the numbers.
//!
//! Usage (after `--`, simple `--key value` pairs; `cargo bench` adds `--bench`, which we skip):
//!
//! ```text
//! cargo bench --bench e2e -- --sessions 20 --mails 10000 --size 2048          # throughput
//! cargo bench --bench e2e -- --sessions 20 --rate 200 --duration 20           # latency
//! cargo bench --bench e2e -- --idle-sessions 1000 --sessions 5 --rate 100 --mails 1000
//! ```
//!
//! Options: `--sessions S` (20), `--mails M` (10000), `--size BYTES` body size (2048),
//! `--rate R` mails/s over all sessions (unpaced if absent), `--duration SECS` (with `--rate`:
//! mails = R × SECS), `--idle-sessions N` (0), `--mode spool|direct` (writes `[delivery]`; absent:
//! no section, the gateway's default), `--coalesce-secs N|default` (0: every mail its own request,
//! what this bench has always measured; coalescing holds a busy chat's mail on purpose, so a
//! throughput figure with it on measures the window, not the gateway; `default` writes nothing,
//! for builds older than the key), `--extra-config FILE` (appended to the config),
//! `--wait SECS` for stragglers (30), `--rust-log FILTER` for the gateway, `--gateway-bin PATH`,
//! `--store sqlite|postgres` (sqlite: `storage.dir`, as by default; postgres: `[storage] url` on a
//! throwaway PostgreSQL cluster that `tests/support/postgres.rs` starts) and `--nodes N` (1; more
//! than one needs `--store postgres`: N gateways on the one database, the sessions spread over
//! them round-robin, as behind a TCP load balancer or two MX records; issue #21).
//!
//! Nothing here asserts on timing: it prints numbers. The exit code is 1 when the run could not
//! be set up (gateway did not start, bad arguments) and 3 when a mail answered 250 never reached
//! the sink, because a lost mail makes every other number meaningless.

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "cli/args.rs"]
mod args;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::gateway::{GatewayProcess, Options};
use support::load::Smtp;

const DOMAIN: &str = "text.line.example.com";
const TOKEN: &str = "bench-token";
/// How long one SMTP reply may take before the session is declared broken. Generous because in
/// direct mode the final 250 waits for LINE, and a stalled gateway should show up as errors in
/// the summary rather than as a hung benchmark.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Arguments

#[derive(Debug, Clone)]
struct Args {
    sessions: usize,
    mails: u64,
    size: usize,
    rate: Option<f64>,
    idle_sessions: usize,
    mode: Option<String>,
    /// `[delivery] coalesce_secs`, or None to leave the gateway's default.
    coalesce_secs: Option<u64>,
    extra_config: Option<PathBuf>,
    wait: Duration,
    rust_log: String,
    gateway_bin: PathBuf,
    nodes: usize,
    postgres: bool,
}

const USAGE: &str = "usage: cargo bench --bench e2e -- [--sessions S] [--mails M] [--size BYTES] \
[--rate R [--duration SECS]] [--idle-sessions N] [--mode spool|direct] [--coalesce-secs N|default] [--extra-config FILE] \
[--wait SECS] [--rust-log FILTER] [--gateway-bin PATH] [--store sqlite|postgres] [--nodes N]";

fn parse_args() -> Result<Args, String> {
    let mut kv = args::key_values(USAGE)?;
    fn num<T: std::str::FromStr>(
        kv: &mut HashMap<String, String>,
        key: &str,
        default: Option<T>,
    ) -> Result<Option<T>, String> {
        match kv.remove(key) {
            Some(v) => v.parse().map(Some).map_err(|_| format!("--{key}: not a number: {v:?}")),
            None => Ok(default),
        }
    }
    let sessions = num(&mut kv, "sessions", Some(20usize))?.unwrap_or(20);
    let size = num(&mut kv, "size", Some(2048usize))?.unwrap_or(2048);
    let rate: Option<f64> = num(&mut kv, "rate", None)?;
    let duration: Option<f64> = num(&mut kv, "duration", None)?;
    let mut mails = num(&mut kv, "mails", None::<u64>)?;
    if let Some(d) = duration {
        let r = rate.ok_or("--duration needs --rate")?;
        if mails.is_some() {
            return Err("give --mails or --duration, not both".into());
        }
        mails = Some((r * d).round() as u64);
    }
    let mails = mails.unwrap_or(10_000);
    let idle_sessions = num(&mut kv, "idle-sessions", Some(0usize))?.unwrap_or(0);
    let wait = Duration::from_secs_f64(num(&mut kv, "wait", Some(30.0f64))?.unwrap_or(30.0));
    let mode = kv.remove("mode");
    if let Some(m) = &mode {
        if m != "spool" && m != "direct" {
            return Err(format!("--mode must be spool or direct, not {m:?}"));
        }
    }
    let coalesce_secs = match kv.remove("coalesce-secs").as_deref() {
        None => Some(0),
        Some("default") => None,
        Some(v) => Some(v.parse().map_err(|_| format!("--coalesce-secs: not a number or \"default\": {v:?}"))?),
    };
    let extra_config = kv.remove("extra-config").map(PathBuf::from);
    // The gateway logs two info lines per mail; at 10,000 mails/s that formatting would be part
    // of what we measure. `warn` for everything except the crate root, whose info line
    // "SMTP listening on …" is how we learn the port (EnvFilter picks the most specific
    // directive, so `mail2line::delivery` etc. stay at warn).
    let rust_log = kv.remove("rust-log").unwrap_or_else(|| {
        "warn,mail2line=info,mail2line::delivery=warn,mail2line::smtp=warn,mail2line::line=warn,\
         mail2line::spool=warn,mail2line::compose=warn,mail2line::mail=warn"
            .into()
    });
    let gateway_bin =
        kv.remove("gateway-bin").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mail2line")));
    let nodes = num(&mut kv, "nodes", Some(1usize))?.unwrap_or(1);
    let postgres = match kv.remove("store").as_deref() {
        None | Some("sqlite") => false,
        Some("postgres") => true,
        Some(v) => return Err(format!("--store must be sqlite or postgres, not {v:?}")),
    };
    if nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if nodes > 1 && !postgres {
        return Err("--nodes above 1 needs --store postgres: gateways share work only through PostgreSQL".into());
    }
    if let Some(k) = kv.keys().next() {
        return Err(format!("unknown option --{k}\n{USAGE}"));
    }
    if sessions == 0 {
        return Err("--sessions must be at least 1".into());
    }
    if matches!(rate, Some(r) if r <= 0.0) {
        return Err("--rate must be positive".into());
    }
    Ok(Args { sessions, mails, size, rate, idle_sessions, mode, coalesce_secs, extra_config, wait, rust_log, gateway_bin, nodes, postgres })
}

// ---------------------------------------------------------------------------------------------
// Gateway process

/// The gateway's config: the sink as LINE, no per-address limits, `args`' `[delivery]` keys
/// merged with `--extra-config`.
fn config(args: &Args, sink_port: u16, dir: &std::path::Path, storage: &str) -> Result<String, String> {
    let mut config = format!(
        "[smtp]\nlisten = \"127.0.0.1:0\"\ndomain = \"{DOMAIN}\"\nmax_sessions = 5000\n\
         # The load comes from one address: per-address limits would measure themselves.\n\
         max_sessions_per_ip = 0\nmax_mails_per_minute_per_ip = 0\n\n\
         [line]\napi_base_url = \"http://127.0.0.1:{sink_port}\"\nchannel_access_token = \"{TOKEN}\"\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndir = \"{}\"\n{storage}",
        dir.join("data").display()
    );
    // Our `[delivery]` keys; merged into the extra config's own `[delivery]` if it has one
    // (TOML allows a table once), where its keys win.
    let extra = match &args.extra_config {
        Some(path) => std::fs::read_to_string(path).map_err(|e| format!("--extra-config {}: {e}", path.display()))?,
        None => String::new(),
    };
    let mut delivery = String::new();
    if let Some(mode) = args.mode.as_ref().filter(|_| !extra.contains("mode =")) {
        delivery.push_str(&format!("mode = \"{mode}\"\n"));
    }
    if let Some(secs) = args.coalesce_secs.filter(|_| !extra.contains("coalesce_secs")) {
        delivery.push_str(&format!("coalesce_secs = {secs}\n"));
    }
    let header = extra.lines().position(|l| l.trim() == "[delivery]");
    match header {
        Some(at) => {
            let mut lines: Vec<&str> = extra.lines().collect();
            lines.insert(at + 1, delivery.trim_end());
            config.push('\n');
            config.push_str(&lines.join("\n"));
            config.push('\n');
        }
        None => {
            if !delivery.is_empty() {
                config.push_str(&format!("\n[delivery]\n{delivery}"));
            }
            config.push('\n');
            config.push_str(&extra);
            config.push('\n');
        }
    }
    Ok(config)
}

/// Starts gateway `node` (killed on drop, so a panicking bench never leaves it running). With
/// `db`, its store is that PostgreSQL database, under its own node id.
fn start_gateway(args: &Args, sink_port: u16, node: usize, db: Option<&support::postgres::TestDb>) -> Result<GatewayProcess, String> {
    let dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let storage = match db {
        Some(db) => format!("url = \"{}\"\nnode = \"bench-{node}\"\n", db.url),
        None => String::new(),
    };
    let config = config(args, sink_port, dir.path(), &storage)?;
    let password = db.map(|db| db.password.expose().to_owned()).unwrap_or_default();
    let mut env = vec![("RUST_LOG", args.rust_log.as_str())];
    if db.is_some() {
        env.push(("MAIL2LINE_STORAGE_PASSWORD", password.as_str()));
    }
    let opts = Options { env: &env, bin: Some(&args.gateway_bin), ..Default::default() };
    GatewayProcess::launch(dir, &config, &opts).map_err(|e| format!("{e}\nconfig:\n{config}"))
}

/// What the gateway logged: its line count and its WARN/ERROR lines (a warning during a
/// benchmark usually explains a bad number).
fn warnings(logs: &str) -> (usize, Vec<&str>) {
    let warnings = logs.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).collect();
    (logs.lines().count(), warnings)
}

/// (VmHWM, VmRSS) in KiB from /proc/<pid>/status.
fn proc_mem(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmHWM:")?, field("VmRSS:")?))
}

/// Samples VmRSS every 100 ms until told to stop; VmHWM alone would hide *when* the peak was.
fn start_rss_sampler(pid: u32) -> (Arc<AtomicBool>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let max = Arc::new(AtomicU64::new(0));
    let (s, m) = (stop.clone(), max.clone());
    let handle = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            if let Some((_, rss)) = proc_mem(pid) {
                m.fetch_max(rss, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    (stop, max, handle)
}

// ---------------------------------------------------------------------------------------------
// SMTP load generator

/// What happened to one mail, by seq.
#[derive(Debug, Clone)]
struct MailRecord {
    seq: u64,
    /// When MAIL FROM was written.
    started: Instant,
    /// How far behind its pacing slot the mail started (zero when unpaced).
    lag: Duration,
    /// When the final "." was written (None if the transaction never got to DATA).
    data_end: Option<Instant>,
    /// When the final reply arrived.
    replied: Option<Instant>,
    /// Final reply code (or the refusal before DATA); None after an I/O error.
    code: Option<u16>,
}

#[derive(Default)]
struct SessionResult {
    records: Vec<MailRecord>,
    error: Option<String>,
}

struct Load {
    /// Every gateway's SMTP address; session `i` uses `at[i % len]`.
    at: Vec<SocketAddr>,
    next: AtomicU64,
    mails: u64,
    rate: Option<f64>,
    body: String,
    run_id: String,
}

/// The RFC 5322 message for one seq. The subject carries `seq=<n>` (the sink finds it in the
/// pushed text); the Message-ID is unique so a deduplicating spool does not merge mails.
fn message(load: &Load, seq: u64, rcpt: &str) -> Vec<u8> {
    let mut m = format!(
        "From: Bench <bench@sender.example>\r\nTo: <{rcpt}>\r\nSubject: bench seq={seq}\r\n\
         Date: Mon, 24 Nov 2025 12:00:00 +0000\r\nMessage-ID: <{seq}.{}@bench.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n",
        load.run_id
    );
    m.push_str(&load.body);
    m.push_str(".\r\n");
    m.into_bytes()
}

/// `size` bytes of plain text in 78-byte CRLF lines. No line starts with "." (so no dot
/// stuffing) and nothing contains "seq=".
fn make_body(size: usize) -> String {
    let pattern = "The quick brown fox jumps over the lazy dog; mail2line bench body text 0123456789 ";
    let mut body = String::with_capacity(size + 80);
    let mut line = String::new();
    let mut chars = pattern.chars().cycle();
    while body.len() + line.len() + 2 < size {
        line.push(chars.next().unwrap());
        if line.len() == 76 {
            body.push_str(&line);
            body.push_str("\r\n");
            line.clear();
        }
    }
    body.push_str(&line);
    body.push_str("\r\n");
    body
}

async fn session(
    load: Arc<Load>,
    index: usize,
    start: Arc<tokio::sync::Barrier>,
    mut t0: tokio::sync::watch::Receiver<Option<Instant>>,
) -> SessionResult {
    let mut res = SessionResult::default();
    let rcpt = format!("U{:032x}@{DOMAIN}", 0xbe_0000_u64 + index as u64);
    let ready = Smtp::open(load.at[index % load.at.len()], REPLY_TIMEOUT, "bench.example").await;
    // Every session waits here, even a failed one, so the barrier cannot deadlock.
    start.wait().await;
    let mut c = match ready {
        Ok(c) => c,
        Err(e) => {
            res.error = Some(format!("session {index} setup: {e}"));
            return res;
        }
    };
    let t0 = match t0.wait_for(|t| t.is_some()).await {
        Ok(t) => t.expect("checked by wait_for"),
        Err(_) => return res,
    };
    let size = load.body.len() + 512;
    let envelope = format!("MAIL FROM:<bench@sender.example> SIZE={size}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n");
    loop {
        let seq = load.next.fetch_add(1, Ordering::Relaxed);
        if seq >= load.mails {
            break;
        }
        let mut lag = Duration::ZERO;
        if let Some(rate) = load.rate {
            let slot = t0 + Duration::from_secs_f64(seq as f64 / rate);
            tokio::time::sleep_until(slot.into()).await;
            lag = Instant::now().saturating_duration_since(slot);
        }
        let data = message(&load, seq, &rcpt);
        let mut rec = MailRecord { seq, started: Instant::now(), lag, data_end: None, replied: None, code: None };
        let outcome: std::io::Result<bool> = async {
            // PIPELINING is advertised: the whole envelope goes out in one segment.
            let [mail, rcpt_code, data_code] = c.envelope(envelope.as_bytes()).await?;
            if data_code != 354 {
                rec.replied = Some(Instant::now());
                rec.code = Some(if mail != 250 {
                    mail
                } else if rcpt_code != 250 {
                    rcpt_code
                } else {
                    data_code
                });
                if [mail, rcpt_code, data_code].contains(&421) {
                    return Ok(false);
                }
                c.send(b"RSET\r\n").await?;
                c.reply().await?;
                return Ok(true);
            }
            // Stamped before the write: the gateway cannot see the "." before this instant, so
            // the latency is never under-counted by our own task being descheduled after it.
            rec.data_end = Some(Instant::now());
            c.send(&data).await?;
            let code = c.reply().await?;
            rec.replied = Some(Instant::now());
            rec.code = Some(code);
            Ok(code != 421)
        }
        .await;
        res.records.push(rec);
        match outcome {
            Ok(true) => {}
            Ok(false) => {
                res.error = Some(format!("session {index}: server closed with 421"));
                return res;
            }
            Err(e) => {
                res.error = Some(format!("session {index}: {e}"));
                return res;
            }
        }
    }
    let _ = c.send(b"QUIT\r\n").await;
    let _ = c.reply().await;
    res
}

/// Opens `n` sessions that read the greeting and then sit idle. Connects at most 64 at a time so
/// the gateway's accept backlog is not what we measure.
async fn open_idle(at: SocketAddr, n: usize) -> (Vec<Smtp>, Vec<String>) {
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let gate = gate.clone();
        tasks.spawn(async move {
            let _permit = gate.acquire().await;
            let mut c = Smtp::connect(at, REPLY_TIMEOUT).await.map_err(|e| format!("connect: {e}"))?;
            match c.reply().await {
                Ok(220) => Ok(c),
                Ok(code) => Err(format!("greeting {code}")),
                Err(e) => Err(format!("greeting: {e}")),
            }
        });
    }
    let (mut ok, mut failed) = (Vec::new(), Vec::new());
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(c)) => ok.push(c),
            Ok(Err(e)) => failed.push(e),
            Err(e) => failed.push(e.to_string()),
        }
    }
    (ok, failed)
}

// ---------------------------------------------------------------------------------------------
// Report

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank: the smallest value with at least p% of the samples at or below it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn latency_line(label: &str, mut ms: Vec<f64>) -> String {
    if ms.is_empty() {
        return format!("  latency {label}: no samples");
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    format!(
        "  latency {label}: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  (n={})",
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms[ms.len() - 1],
        ms.len()
    )
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rate(count: usize, from: Instant, to: Option<Instant>) -> String {
    match to {
        Some(to) if to > from && count > 0 => format!("{:.1} mails/s", count as f64 / (to - from).as_secs_f64()),
        _ => "n/a".into(),
    }
}

// ---------------------------------------------------------------------------------------------

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("e2e: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Args) -> Result<ExitCode, String> {
    let (sink, sink_port, sink_rt) = support::fastline::start(TOKEN)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("smtp-load")
        .enable_all()
        .build()
        .map_err(|e| format!("load runtime: {e}"))?;
    // A throwaway cluster, stopped when this process ends (tests/support/postgres.rs).
    let db = if args.postgres {
        Some(rt.block_on(support::postgres::database()).ok_or("--store postgres: PostgreSQL cannot run here (see the notice above)")?)
    } else {
        None
    };
    let mut gateways = Vec::new();
    for node in 0..args.nodes {
        gateways.push(start_gateway(&args, sink_port, node, db.as_ref())?);
    }
    // Memory is sampled on the first gateway; the others run the same code.
    let pid = gateways[0].pid();
    let rss_start = proc_mem(pid).map(|(_, rss)| rss);
    let (stop_sampler, max_rss, sampler) = start_rss_sampler(pid);

    let load = Arc::new(Load {
        at: gateways.iter().map(|g| g.smtp).collect(),
        next: AtomicU64::new(0),
        mails: args.mails,
        rate: args.rate,
        body: make_body(args.size),
        run_id: format!(
            "{}.{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
        ),
    });

    let (idle, idle_failed, rss_idle) = if args.idle_sessions > 0 {
        let (idle, failed) = rt.block_on(open_idle(gateways[0].smtp, args.idle_sessions));
        // Give the gateway a moment to settle the accepted sessions before reading its RSS.
        std::thread::sleep(Duration::from_millis(300));
        (idle, failed, proc_mem(pid).map(|(_, rss)| rss))
    } else {
        (Vec::new(), Vec::new(), None)
    };

    // All sessions connect and EHLO first; the clock starts when the last one is ready, so
    // connection setup is not part of the mail rate.
    let barrier = Arc::new(tokio::sync::Barrier::new(args.sessions + 1));
    let (t0_tx, t0_rx) = tokio::sync::watch::channel(None::<Instant>);
    let results: Vec<SessionResult> = rt.block_on(async {
        let handles: Vec<_> = (0..args.sessions)
            .map(|i| tokio::spawn(session(load.clone(), i, barrier.clone(), t0_rx.clone())))
            .collect();
        // The barrier opens when every session has connected and said EHLO; only then does the
        // clock (and the pacing schedule) start. Sessions wait for t0 on the watch channel.
        barrier.wait().await;
        let _ = t0_tx.send(Some(Instant::now()));
        let mut out = Vec::new();
        for h in handles {
            out.push(
                h.await.unwrap_or_else(|e| SessionResult { records: Vec::new(), error: Some(format!("panic: {e}")) }),
            );
        }
        out
    });
    let load_done = Instant::now();

    let mut records: Vec<MailRecord> = results.iter().flat_map(|r| r.records.iter().cloned()).collect();
    records.sort_by_key(|r| r.seq);
    let session_errors: Vec<&String> = results.iter().filter_map(|r| r.error.as_ref()).collect();
    let accepted: Vec<&MailRecord> = records.iter().filter(|r| r.code == Some(250)).collect();

    // Wait for stragglers: everything answered 250 should reach the sink (in spool mode a 250
    // comes before the push, so this wait is part of the normal run).
    let deadline = load_done + args.wait;
    loop {
        let pending = {
            let log = sink.lock().unwrap();
            accepted.iter().filter(|r| !log.first.contains_key(&r.seq)).count()
        };
        if pending == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // A spool might still push a duplicate shortly after; a short grace keeps that visible.
    std::thread::sleep(Duration::from_millis(200));

    let mem_end = proc_mem(pid);
    stop_sampler.store(true, Ordering::Relaxed);
    let _ = sampler.join();
    let idle_open = idle.len();
    drop(idle);
    for gw in &mut gateways {
        gw.stop(Duration::from_secs(10));
    }
    drop(sink_rt);

    // ---- numbers
    let log = sink.lock().unwrap();
    let first_sent = records.iter().map(|r| r.started).min();
    let refused = records.iter().filter(|r| matches!(r.code, Some(c) if c != 250)).count();
    let io_errors = records.iter().filter(|r| r.code.is_none()).count() as u64;
    let never_sent = args.mails.saturating_sub(records.len() as u64);
    let mut refused_codes: BTreeMap<u16, u64> = BTreeMap::new();
    for r in &records {
        if let Some(c) = r.code.filter(|&c| c != 250) {
            *refused_codes.entry(c).or_default() += 1;
        }
    }
    let missing = accepted.iter().filter(|r| !log.first.contains_key(&r.seq)).count();
    // By seq, not by index: a session that died leaves gaps in `records`.
    let accepted_seqs: std::collections::HashSet<u64> = accepted.iter().map(|r| r.seq).collect();
    let pushed_not_accepted = log.first.keys().filter(|s| !accepted_seqs.contains(s)).count();
    let pushed = log.first.len();
    let last_push = log.first.values().max().copied();
    let last_accept = accepted.iter().filter_map(|r| r.replied).max();
    let push_latency: Vec<f64> = accepted
        .iter()
        .filter_map(|r| Some((*log.first.get(&r.seq)?).saturating_duration_since(r.data_end?).as_secs_f64() * 1e3))
        .collect();
    let reply_latency: Vec<f64> = accepted
        .iter()
        .filter_map(|r| Some(r.replied?.saturating_duration_since(r.data_end?).as_secs_f64() * 1e3))
        .collect();

    // ---- summary
    let mode = args.mode.clone().unwrap_or_else(|| "default".into());
    let coalesce = args.coalesce_secs.map_or_else(|| "default".into(), |s| s.to_string());
    let pacing = match args.rate {
        Some(r) => format!("rate={r}/s"),
        None => "rate=unpaced".into(),
    };
    println!();
    println!(
        "mail2line e2e: mode={mode} coalesce_secs={coalesce} sessions={} mails={} size={} {pacing} idle-sessions={} store={} nodes={}",
        args.sessions,
        args.mails,
        args.size,
        args.idle_sessions,
        if args.postgres { "postgres" } else { "sqlite" },
        args.nodes
    );
    println!(
        "  accepted (250): {}   refused: {refused}   pushes received: {pushed}   duplicates: {}   missing: {missing}",
        accepted.len(),
        log.duplicates
    );
    if !refused_codes.is_empty()
        || io_errors > 0
        || never_sent > 0
        || pushed_not_accepted > 0
        || log.unparsed > 0
        || log.unexpected > 0
    {
        let codes: Vec<String> = refused_codes.iter().map(|(c, n)| format!("{c}×{n}")).collect();
        println!(
            "  problems: refused codes [{}]  i/o errors: {io_errors}  never sent: {never_sent}  pushed without 250: {pushed_not_accepted}  \
             sink requests without seq: {}  unexpected sink requests: {}",
            codes.join(" "),
            log.unparsed,
            log.unexpected
        );
    }
    if let Some(first) = first_sent {
        println!(
            "  end-to-end: {}   smtp accept: {}   (first MAIL → last push {:.2} s)",
            rate(pushed, first, last_push),
            rate(accepted.len(), first, last_accept),
            last_push.map(|l| l.saturating_duration_since(first).as_secs_f64()).unwrap_or(f64::NAN)
        );
        let requests = match last_push {
            Some(last) if last > first => format!("{:.1} requests/s", log.requests as f64 / (last - first).as_secs_f64()),
            _ => "n/a".into(),
        };
        println!("  LINE requests: {} ({requests})", log.requests);
        if let (Some(r), Some(last_end)) = (args.rate, records.iter().filter_map(|r| r.data_end).max()) {
            let late = records.iter().filter(|r| r.lag > Duration::from_millis(5)).count();
            let max_lag = records.iter().map(|r| r.lag).max().unwrap_or_default();
            println!(
                "  pacing: target {r}/s, offered {}; started >5 ms late: {late} (max {:.1} ms late)",
                rate(records.len(), first, Some(last_end)),
                max_lag.as_secs_f64() * 1e3
            );
        }
    }
    println!("{}", latency_line("DATA-end → push", push_latency));
    println!("{}", latency_line("DATA-end → 250 ", reply_latency));
    let fmt = |k: Option<u64>| k.map(|k| format!("{:.1} MiB", mib(k))).unwrap_or_else(|| "n/a".into());
    let idle_part = if args.idle_sessions > 0 {
        format!("   with {idle_open} idle sessions: {}", fmt(rss_idle))
    } else {
        String::new()
    };
    println!(
        "  gateway{} peak RSS: {} (VmHWM)   max sampled VmRSS: {}   at start: {}{idle_part}   at end: {}",
        if args.nodes > 1 { " 1" } else { "" },
        fmt(mem_end.map(|m| m.0)),
        fmt(Some(max_rss.load(Ordering::Relaxed)).filter(|&k| k > 0)),
        fmt(rss_start),
        fmt(mem_end.map(|m| m.1)),
    );
    if !idle_failed.is_empty() {
        println!("  idle sessions that failed to open: {} (first: {})", idle_failed.len(), idle_failed[0]);
    }
    if !session_errors.is_empty() {
        println!("  session errors: {} (first: {})", session_errors.len(), session_errors[0]);
    }
    let logs: String = gateways.iter().map(|g| g.logs()).collect();
    let (lines, warnings) = warnings(&logs);
    println!("  gateway log: {lines} lines, {} WARN/ERROR", warnings.len());
    for w in warnings.iter().take(5) {
        println!("    {w}");
    }
    Ok(if missing > 0 { ExitCode::from(3) } else { ExitCode::SUCCESS })
}
