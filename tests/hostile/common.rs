//! What several attacks share: the gateway's peak memory from /proc, the scale of an attack
//! (CI size, or full size under `bench/hostile.sh`), and a normal mail sent during one.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::gateway::{addr, code, GatewayProcess};
use crate::support::standin::StandIn;

/// The peak resident set (VmHWM) of process `pid`, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:") * 1024
}

/// The resident set (VmRSS) of process `pid` now, in bytes.
pub fn rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:") * 1024
}

fn status_kib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("{key} line"));
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number of kB")
}

/// `MAIL2LINE_HOSTILE_FULL=1` (set by `bench/hostile.sh`): the attack at the size the issue
/// states instead of the size CI can afford.
pub fn full_size() -> bool {
    std::env::var_os("MAIL2LINE_HOSTILE_FULL").is_some_and(|v| v == "1")
}

/// `ci` normally, `full` under `bench/hostile.sh`.
pub fn scale(ci: usize, full: usize) -> usize {
    if full_size() {
        full
    } else {
        ci
    }
}

/// One figure for `bench/hostile.sh` to collect (`HOSTILE <attack> <name> <value>`).
pub fn report(attack: &str, name: &str, value: impl std::fmt::Display) {
    eprintln!("HOSTILE {attack} {name} {value}");
}

pub const MIB: u64 = 1024 * 1024;

/// Bytes of every file under `dir`.
pub fn disk_used(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => disk_used(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// What became of a normal mail sent during an attack.
#[derive(Debug)]
pub enum Normal {
    /// 250, and the push reached the stand-in.
    Delivered { latency: Duration },
    /// A 4xx: the sender retries later; nothing is lost.
    Deferred(u16),
}

/// Sends a normal mail to `id` with the real client and waits (up to a minute) for its push
/// at the stand-in; a 5xx or a lost mail fails the test.
pub async fn normal_mail(gw: &GatewayProcess, line: &StandIn, id: &str, subject: &str) -> Normal {
    let data = format!("From: cron@example.com\r\nTo: {}\r\nSubject: {subject}\r\n\r\nnightly backup finished\r\n", addr(id));
    let started = Instant::now();
    let sent = tokio::task::block_in_place(|| gw.send_raw("cron@example.com", &[&addr(id)], data.as_bytes()));
    match sent {
        Ok(_) => {}
        Err(e) => match code(&e) {
            Some(c) if (400..500).contains(&c) => return Normal::Deferred(c),
            other => panic!("a normal mail during the attack got {other:?}: {e}"),
        },
    }
    loop {
        let arrived = line.requests_to("/v2/bot/message/push").iter().any(|r| {
            r.body["to"] == id && r.body["messages"][0]["text"].as_str().is_some_and(|t| t.starts_with(subject))
        });
        if arrived {
            return Normal::Delivered { latency: started.elapsed() };
        }
        assert!(started.elapsed() < Duration::from_secs(60), "a normal mail answered 250 during the attack never reached LINE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
