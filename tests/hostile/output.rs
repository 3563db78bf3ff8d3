//! Output an admin reads (issue 16): a sender who puts an ANSI "clear screen" and a forged
//! "ALL JOBS DELIVERED OK" line into the envelope sender and the subject must not reach the
//! operator's terminal through `mail2line queue list/show`; a follower who names themself
//! `=cmd|…` must not become a formula in the spreadsheet `followers export` is opened in.

use std::time::{Duration, Instant};

use mail2line::followers::{Kind, Registry};
use serde_json::json;
use tokio::task::block_in_place;

use crate::support::cli::{self, Run};
use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::raw::Raw;
use crate::support::standin::{Behaviour, StandIn};

const FORGED: &str = "\u{1b}[2J\u{1b}[H\u{9b}32mALL JOBS DELIVERED OK";

fn cli(gw: &GatewayProcess, args: &[&str]) -> String {
    let run = Run::of(&mut cli::mail2line(args, &gw.config_path));
    assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
    run.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_output_escapes_control_characters_from_senders_and_subjects() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    // LINE refuses the push, so the mail stays in the spool as a dead letter to be listed.
    line.push_behaviour(Behaviour::Status(400, json!({"message": "The request body has 1 error(s)"})));
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, ..Default::default() }));
    let to = addr(&user(1));
    block_in_place(|| {
        let mut c = Raw::greeted(gw.smtp);
        assert!(c.cmd("EHLO attacker.example").starts_with("250"));
        // A quoted local part carries the escape sequence in the envelope sender.
        let mail = c.cmd(&format!("MAIL FROM:<\"{FORGED}\"@attacker.example>"));
        assert!(mail.starts_with("250"), "{mail}");
        assert!(c.cmd(&format!("RCPT TO:<{to}>")).starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        let data = format!("From: x@attacker.example\r\nSubject: {FORGED}\r\n\r\n{FORGED}\r\n.\r\n");
        c.send(data.as_bytes());
        let reply = c.reply();
        assert!(reply.starts_with("250"), "{reply}");
        c.cmd("QUIT");
    });
    // A normal mail sent during the attack still reaches LINE.
    line.push_behaviour(Behaviour::Ok);
    block_in_place(|| gw.send_raw("normal@example.com", &[&to], b"Subject: normal\r\n\r\nhello\r\n")).unwrap();
    let start = Instant::now();
    let id = loop {
        let listed = block_in_place(|| cli(&gw, &["queue", "list", "--json"]));
        let jobs: serde_json::Value = serde_json::from_str(&listed).unwrap();
        if let Some(j) = jobs.as_array().unwrap().iter().find(|j| j["state"] == "dead") {
            assert!(j["sender"].as_str().unwrap().contains('\u{1b}'), "the raw sender is kept: {j}");
            break j["id"].as_i64().unwrap().to_string();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "no dead letter: {listed}\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let pushed = line.wait_for(2, Duration::from_secs(60)).await;
    assert!(pushed.iter().any(|r| r.status == 200 && r.body.to_string().contains("normal")), "{pushed:?}");
    for args in [vec!["queue", "list"], vec!["queue", "show", id.as_str()]] {
        let out = block_in_place(|| cli(&gw, &args));
        assert!(!out.contains('\u{1b}') && !out.contains('\u{9b}'), "{args:?} printed a raw escape:\n{out:?}");
        assert!(!out.lines().any(|l| l.trim_start().starts_with("ALL JOBS")), "{args:?} printed a forged line:\n{out}");
    }
    assert!(block_in_place(|| cli(&gw, &["queue", "show", &id])).contains("\u{FFFD}[2J"), "escaped, visibly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_export_neutralises_formulas_in_display_names() {
    let gw = block_in_place(|| GatewayProcess::start(Options { dry_run: true, ..Default::default() }));
    // As the webhook's profile lookup would store it (the registry is shared with the server).
    let reg = Registry::open_existing(&gw.dir.path().join("data")).unwrap();
    reg.follow(&user(1), Kind::User, Some("=cmd|' /C calc'!A0"), 1).unwrap();
    reg.follow(&user(2), Kind::User, Some("@SUM(1+1)*cmd|' /C calc'!A0"), 2).unwrap();
    let csv = block_in_place(|| cli(&gw, &["followers", "export"]));
    let names: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').nth(3).unwrap()).collect();
    assert_eq!(names, ["'=cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"], "{csv}");
}
