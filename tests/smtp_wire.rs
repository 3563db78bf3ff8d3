//! SMTP on the wire: raw sockets against the real binary for what a polite client library
//! never does — pipelining everything at once, endless lines, a thousand idle sessions, a stalled
//! client, silence.

mod support;

use std::time::Duration;

use support::raw::Raw;
use support::gateway::{addr, user, GatewayProcess, Options};

fn dry_run(smtp_extra: &str) -> GatewayProcess {
    GatewayProcess::start(Options { dry_run: true, token: None, smtp_extra, ..Default::default() })
}

#[test]
fn everything_pipelined_in_one_write() {
    let gw = dry_run("");
    let mut c = Raw::connect(gw.smtp);
    let rcpt = addr(&user(1));
    c.send(
        format!(
            "EHLO client.example\r\nMAIL FROM:<a@example.com> SIZE=40\r\nRCPT TO:<nobody@gmail.com>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\nSubject: p\r\n\r\n..dots\r\n.\r\nNOOP\r\nQUIT\r\n"
        )
        .as_bytes(),
    );
    assert!(c.reply().starts_with("220 "));
    let ehlo = c.reply();
    for ext in ["250-PIPELINING", "250-SIZE 10485760", "250-8BITMIME", "250-SMTPUTF8", "ENHANCEDSTATUSCODES"] {
        assert!(ehlo.contains(ext), "{ehlo}");
    }
    assert_eq!(c.code(), 250);
    assert!(c.reply().starts_with("550 5.7.1"));
    assert_eq!(c.code(), 250);
    assert_eq!(c.code(), 354);
    assert_eq!(c.code(), 250);
    assert_eq!(c.code(), 250);
    assert!(c.reply().starts_with("221 "));
    assert!(gw.wait_for_log(r#"\".dots\""#, Duration::from_secs(5)) || gw.wait_for_log(".dots", Duration::from_secs(1)));
    assert!(!gw.logs().contains("..dots"), "dot-unstuffing");
}

#[test]
fn an_endless_line_costs_no_memory_and_the_session_goes_on() {
    let gw = dry_run("");
    let rss_before = rss_kib(gw.pid());
    let mut c = Raw::connect(gw.smtp);
    assert_eq!(c.code(), 220);
    let chunk = vec![b'A'; 1 << 20];
    for _ in 0..64 {
        c.send(&chunk);
    }
    c.send(b"\r\nNOOP\r\n");
    assert!(c.reply().starts_with("500 5.5.6"));
    assert_eq!(c.code(), 250);
    let rss_after = rss_kib(gw.pid());
    assert!(rss_after < rss_before + 32 * 1024, "RSS grew from {rss_before} KiB to {rss_after} KiB for a 64 MiB line");
}

#[test]
fn a_thousand_idle_sessions_and_a_stalled_one_do_not_block_a_mail() {
    // All from 127.0.0.1: lift the per-address cap, which this test is not about.
    let gw = dry_run("max_sessions_per_ip = 0");
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut c = Raw::connect(gw.smtp);
        assert_eq!(c.code(), 220);
        idle.push(c);
    }
    // One client stalls in the middle of DATA.
    let mut stalled = Raw::connect(gw.smtp);
    assert_eq!(stalled.code(), 220);
    stalled.send(format!("HELO s\r\nMAIL FROM:<s@x>\r\nRCPT TO:<{}>\r\nDATA\r\nSubject: stalled\r\n", addr(&user(2))).as_bytes());
    for want in [250, 250, 250, 354] {
        assert_eq!(stalled.code(), want);
    }
    // A normal mail still goes through with a real client.
    let resp = gw.send_raw("a@example.com", &[&addr(&user(3))], b"Subject: fine\r\n\r\nok\r\n").unwrap();
    assert!(resp.is_positive());
    // And the idle ones are still served.
    idle[999].send(b"NOOP\r\n");
    assert_eq!(idle[999].code(), 250);
}

#[test]
fn silent_clients_are_dropped_after_the_idle_timeout() {
    let gw = dry_run("idle_timeout_secs = 1");
    let mut c = Raw::connect(gw.smtp);
    assert_eq!(c.code(), 220);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(c.reply().starts_with("421 4.4.2"));
    assert!(c.closed(), "connection closed");
}

#[test]
fn smtputf8_and_8bit_senders_are_accepted() {
    let gw = dry_run("");
    let mut c = Raw::connect(gw.smtp);
    assert_eq!(c.code(), 220);
    c.send(format!("EHLO x\r\nMAIL FROM:<山田@例え.jp> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<{}>\r\nDATA\r\n", addr(&user(4))).as_bytes());
    c.reply();
    for want in [250, 250, 354] {
        assert_eq!(c.code(), want);
    }
    c.send("Subject: 件名\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n本文です\r\n.\r\n".as_bytes());
    assert_eq!(c.code(), 250);
    assert!(gw.wait_for_log("本文です", Duration::from_secs(5)), "{}", gw.logs());
}

#[test]
fn check_config_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[smtp]\ndomain = \"text.line.example.com\"\nmax_message_byte = 10\n\n[line]\nchannel_access_token = \"do-not-print-me\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mail2line")).args(["check-config", "--config"]).arg(&path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(text.contains("bad.toml:3: smtp.max_message_byte: unknown field"), "{text}");
    assert!(!text.contains("do-not-print-me"));

    std::fs::write(&path, "[smtp]\ndomain = \"text.line.example.com\"\n\n[line]\nchannel_access_token = \"do-not-print-me\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mail2line"))
        .arg("check-config")
        .env("MAIL2LINE_CONFIG", &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": ok"), "{text}");
    assert!(!text.contains("do-not-print-me"));

    // serve refuses to start on a bad file, naming the problem.
    std::fs::write(&path, "[smtp]\ndomain = \"\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mail2line")).args(["serve", "--config"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("smtp.domain: is required"));
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
