//! The fault campaign of issue #9, full size: `bench/chaos.sh` runs it; `tests/chaos.rs` runs a
//! short one. The campaign itself (stand-in faults, SMTP load, killer, accounting) is
//! `tests/support/chaos.rs`, shared with the test; this file parses options, runs it on the
//! release build and prints the summary.
//!
//! ```text
//! cargo bench --bench chaos -- --mails 10000 --seed 42 --fault-rate 0.2 --kill-min-ms 500 --kill-max-ms 3000
//! ```
//!
//! Options (`--key value`): `--mails` (10000), `--sessions` (10), `--rate` mails/s over all
//! sessions (200; 0 = unpaced), `--seed` (from the clock), `--fault-rate` (0.2),
//! `--kill-min-ms` (500), `--kill-max-ms` (3000), `--drain-timeout` seconds (300),
//! `--rust-log` for the gateway (`info`), `--coalesce on|off` (on), `--nodes N` (1) and
//! `--store sqlite|postgres` (sqlite; more than one node needs postgres: the gateways share one
//! throwaway PostgreSQL database, issue #21), `--rate-limit N` (the channel's
//! `max_requests_per_second`; the campaign checks the nodes' combined rate against it).
//!
//! Exit status: 0 when nothing was lost or duplicated (and every check passed), 4 when the
//! campaign found a problem, 1 on bad arguments.

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "cli/args.rs"]
mod args;

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use support::chaos::{clock_seed, run, Settings};

const USAGE: &str = "usage: cargo bench --bench chaos -- [--mails N] [--sessions S] [--rate R] [--seed N] \
[--fault-rate F] [--kill-min-ms MS] [--kill-max-ms MS] [--drain-timeout SECS] [--rust-log FILTER] [--coalesce on|off] \
[--nodes N] [--store sqlite|postgres] [--rate-limit N]";

fn parse_args() -> Result<Settings, String> {
    let mut kv = args::key_values(USAGE)?;
    fn num<T: std::str::FromStr>(kv: &mut HashMap<String, String>, key: &str, default: T) -> Result<T, String> {
        match kv.remove(key) {
            Some(v) => v.parse().map_err(|_| format!("--{key}: not a number: {v:?}")),
            None => Ok(default),
        }
    }
    let mails = num(&mut kv, "mails", 10_000u64)?;
    let sessions = num(&mut kv, "sessions", 10usize)?;
    let rate = num(&mut kv, "rate", 200.0f64)?;
    let seed = num(&mut kv, "seed", clock_seed())?;
    let fault_rate = num(&mut kv, "fault-rate", 0.2f64)?;
    let kill_min = num(&mut kv, "kill-min-ms", 500u64)?;
    let kill_max = num(&mut kv, "kill-max-ms", 3000u64)?;
    let drain = num(&mut kv, "drain-timeout", 300u64)?;
    let rust_log = kv.remove("rust-log").unwrap_or_else(|| "info".into());
    let coalesce = match kv.remove("coalesce").as_deref() {
        None | Some("on") => true,
        Some("off") => false,
        Some(v) => return Err(format!("--coalesce must be on or off, not {v:?}")),
    };
    let nodes = num(&mut kv, "nodes", 1usize)?;
    let postgres = match kv.remove("store").as_deref() {
        None | Some("sqlite") => false,
        Some("postgres") => true,
        Some(v) => return Err(format!("--store must be sqlite or postgres, not {v:?}")),
    };
    let rate_limit = num(&mut kv, "rate-limit", 0u32)?;
    if nodes == 0 || (nodes > 1 && !postgres) {
        return Err("--nodes must be at least 1, and above 1 needs --store postgres (nodes share work only through PostgreSQL)".into());
    }
    if let Some(k) = kv.keys().next() {
        return Err(format!("unknown option --{k}\n{USAGE}"));
    }
    if sessions == 0 || mails == 0 {
        return Err("--sessions and --mails must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&fault_rate) {
        return Err("--fault-rate must be between 0 and 1".into());
    }
    if kill_min == 0 || kill_max < kill_min {
        return Err("--kill-min-ms must be at least 1 and at most --kill-max-ms".into());
    }
    if rate < 0.0 {
        return Err("--rate must not be negative".into());
    }
    Ok(Settings {
        mails,
        sessions,
        rate: (rate > 0.0).then_some(rate),
        seed,
        fault_rate,
        kill_every: (Duration::from_millis(kill_min), Duration::from_millis(kill_max)),
        min_kills: 0,
        drain_timeout: Duration::from_secs(drain),
        rust_log: Some(rust_log),
        coalesce,
        nodes,
        postgres,
        rate_limit: (rate_limit > 0).then_some(rate_limit),
    })
}

fn main() -> ExitCode {
    let settings = match parse_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("chaos: {}", settings.describe());
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("chaos: cannot start a runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let report = rt.block_on(run(settings));
    println!();
    print!("{}", report.summary());
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(4)
    }
}
