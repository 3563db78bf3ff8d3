//! `mail2line queue` end to end: the real binary serving in spool mode (the default), a real SMTP
//! client, the stand-in LINE API, and the `queue` CLI run as a separate process against the same
//! spool file *while the server runs* — the way an operator uses it.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cli::{self, Run};
use support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use support::standin::{Behaviour, StandIn};
use tokio::task::block_in_place;

/// One `mail2line queue …` run.
fn queue_at(config: &Path, args: &[&str]) -> Run {
    Run::of(&mut cli::mail2line(["queue"].iter().chain(args), config))
}

fn queue(gw: &GatewayProcess, args: &[&str]) -> Run {
    block_in_place(|| queue_at(&gw.config_path, args))
}

/// `queue list --json`, parsed.
fn jobs(gw: &GatewayProcess) -> Vec<Value> {
    let r = queue(gw, &["list", "--json"]);
    assert_eq!(r.code, 0, "queue list --json failed: {}", r.stderr);
    serde_json::from_str::<Value>(&r.stdout).expect("list --json is JSON").as_array().expect("an array").clone()
}

/// Polls `queue list --json` (the CLI, not the store) until `done` holds, for up to 10 s.
fn wait_for_jobs(gw: &GatewayProcess, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let js = jobs(gw);
        if done(&js) {
            return js;
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!("waited 10 s for {what}; `queue list --json` shows {js:#?}\ngateway logs:\n{}", gw.logs());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn setup(default: Behaviour, extra: &str) -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    line.set_default(default);
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, ..Default::default() }));
    (line, gw)
}

fn send(gw: &GatewayProcess, to: &str, subject: &str) {
    let mail = format!("From: cron@host.example\r\nTo: {}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n", addr(to));
    let resp = block_in_place(|| gw.send_raw("cron@host.example", &[&addr(to)], mail.as_bytes())).expect("SMTP send");
    assert!(resp.is_positive(), "{resp:?}");
}

fn invalid_to() -> Behaviour {
    Behaviour::Status(400, json!({"message": "Invalid to"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_job_is_listed_shown_and_retried_while_the_server_runs() {
    let (line, gw) = setup(invalid_to(), "").await;
    let to = user(1);
    send(&gw, &to, "Disk full");
    let js = wait_for_jobs(&gw, "the job to go dead", |js| js.iter().any(|j| j["state"] == "dead"));
    assert_eq!(js.len(), 1, "{js:#?}");
    let job = &js[0];
    let id = job["id"].as_i64().unwrap().to_string();
    assert_eq!(job["endpoint"], "push");
    assert_eq!(job["target"], to.as_str());
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["next_at"], Value::Null, "a dead job has no next attempt");
    assert!(job["last_error"].as_str().unwrap().contains("Invalid to"), "{job}");
    assert!(job.get("body").is_none(), "list --json leaves the body out");
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'), "{job}");

    // The table: header, one row, footer.
    let r = queue(&gw, &["list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    for col in ["ID", "STATE", "ATTEMPTS", "AGE", "NEXT", "ENDPOINT", "TARGET", "LAST ERROR"] {
        assert!(lines[0].contains(col), "missing column {col}: {}", lines[0]);
    }
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&row[..3], &[id.as_str(), "dead", "1"], "{}", lines[1]);
    assert_eq!(&row[4..7], &["-", "push", to.as_str()], "{}", lines[1]);
    assert!(lines[1].contains("Invalid to"), "{}", lines[1]);
    assert_eq!(lines[2], "0 pending, 1 dead");
    let r = queue(&gw, &["list", "--pending"]);
    assert_eq!(r.stdout, "No pending jobs.\n0 pending, 1 dead\n");
    let r = queue(&gw, &["list", "--dead"]);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    assert!(r.stdout.lines().nth(1).unwrap().starts_with(&format!("{id} ")), "{}", r.stdout);

    // `show`: every field, the exact body (pretty) and LINE's message.
    let pushed = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushed.len(), 1);
    let r = queue(&gw, &["show", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("LINE rejected the request (400): Invalid to"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("\"to\": \"{to}\"")), "body pretty-printed: {}", r.stdout);
    assert!(r.stdout.contains("Disk full"), "{}", r.stdout);
    assert!(r.stdout.contains(pushed[0].header("x-line-retry-key").unwrap()), "{}", r.stdout);
    assert!(r.stdout.contains("cron@host.example"), "{}", r.stdout);
    assert!(r.stdout.contains("Z (now)") || r.stdout.contains(" ago)"), "relative age: {}", r.stdout);
    let body_at = r.stdout.find("\"to\":").unwrap();
    assert!(body_at < r.stdout.find("\"messages\":").unwrap(), "keys keep the POSTed order: {}", r.stdout);
    let shown: Value = serde_json::from_str(&queue(&gw, &["show", &id, "--json"]).stdout).unwrap();
    assert_eq!(shown["body"], pushed[0].body, "show --json carries the exact body that was POSTed");

    // Fix LINE's side, retry while the server runs: the scanner picks it up.
    line.set_default(Behaviour::Ok);
    let r = queue(&gw, &["retry", &id]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&format!("job {id}: dead → pending, due now")), "{}", r.stdout);
    let reqs = line.wait_for(2, Duration::from_secs(10)).await;
    let again = &reqs[1];
    assert_eq!(again.path, "/v2/bot/message/push");
    assert_eq!(again.status, 200);
    assert_eq!(again.body, pushed[0].body);
    assert_eq!(again.header("x-line-retry-key"), pushed[0].header("x-line-retry-key"), "a recent job keeps its retry key");
    wait_for_jobs(&gw, "the delivered job to leave the spool", |js| js.is_empty());
    assert_eq!(queue(&gw, &["list"]).stdout, "The spool is empty.\n0 pending, 0 dead\n");
    line.assert_all_valid();
    assert!(!gw.logs().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_removes_a_job_and_unknown_ids_exit_1() {
    let (line, gw) = setup(invalid_to(), "").await;
    send(&gw, &user(2), "one");
    send(&gw, &user(3), "two");
    let js = wait_for_jobs(&gw, "two dead jobs", |js| js.len() == 2 && js.iter().all(|j| j["state"] == "dead"));
    let (first, second) = (js[0]["id"].as_i64().unwrap().to_string(), js[1]["id"].as_i64().unwrap().to_string());

    let r = queue(&gw, &["drop", &first]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.starts_with(&format!("job {first} dropped (dead, push to {}", user(2))), "{}", r.stdout);
    let left = jobs(&gw);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"].as_i64().unwrap().to_string(), second);
    assert!(queue(&gw, &["list"]).stdout.ends_with("0 pending, 1 dead\n"));

    // The dropped id is now unknown to every subcommand: a clear message, exit 1, nothing on stdout.
    for args in [vec!["drop", first.as_str()], vec!["show", first.as_str()], vec!["retry", first.as_str()], vec!["show", "999999"]] {
        let r = queue(&gw, &args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
        assert!(r.stderr.contains("no job") && r.stderr.contains("queue list"), "{args:?}: {}", r.stderr);
    }
    // Nothing was re-sent by any of that.
    assert_eq!(line.requests_to("/v2/bot/message/push").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_all_dead_sends_every_dead_job() {
    let (line, gw) = setup(invalid_to(), "").await;
    send(&gw, &user(4), "a");
    send(&gw, &user(5), "b");
    wait_for_jobs(&gw, "two dead jobs", |js| js.len() == 2 && js.iter().all(|j| j["state"] == "dead"));
    line.set_default(Behaviour::Ok);
    let r = queue(&gw, &["retry", "--all-dead"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("2 dead job(s) made pending"), "{}", r.stdout);
    line.wait_for(4, Duration::from_secs(10)).await;
    wait_for_jobs(&gw, "both jobs delivered", |js| js.is_empty());
    assert_eq!(line.accepted().len(), 2);
    assert_eq!(queue(&gw, &["retry", "--all-dead"]).stdout, "No dead jobs to retry.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_waiting_for_its_retry_shows_as_pending() {
    let (_line, gw) = setup(Behaviour::Status(500, json!({"message": "Internal error"})), "[delivery]\nretry_base_ms = 600000").await;
    let to = user(6);
    send(&gw, &to, "later");
    let js = wait_for_jobs(&gw, "a failed attempt", |js| js.len() == 1 && js[0]["attempts"].as_u64().unwrap_or(0) >= 1);
    assert_eq!(js[0]["state"], "pending");
    assert!(js[0]["next_at"].is_string(), "{}", js[0]);
    let r = queue(&gw, &["list", "--pending"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(row[1], "pending", "{}", r.stdout);
    assert!(row[2].parse::<u32>().unwrap() >= 1, "{}", r.stdout);
    // Retry in 5–10 min (base 600 s, jittered down to half): NEXT is "in <minutes>m".
    assert!(row[4] == "in" && row[5].ends_with('m'), "NEXT column: {}", r.stdout);
    assert_eq!(*lines.last().unwrap(), "1 pending, 0 dead");
    assert_eq!(queue(&gw, &["list", "--dead"]).stdout, "No dead jobs.\n1 pending, 0 dead\n");
    let r = queue(&gw, &["show", js[0]["id"].as_i64().unwrap().to_string().as_str()]);
    assert!(r.stdout.contains("Internal error"), "{}", r.stdout);
    assert!(r.stdout.contains("(in "), "next attempt relative: {}", r.stdout);
}

#[test]
fn no_spool_exits_1_and_config_errors_exit_78() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, format!("[smtp]\ndomain = \"x.example\"\n\n[storage]\ndir = \"{}\"\n", dir.path().join("data").display())).unwrap();
    let r = queue_at(&config, &["list"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no spool at") && r.stderr.contains("mail2line serve"), "{}", r.stderr);
    assert!(r.stdout.is_empty());

    let r = queue_at(&dir.path().join("missing.toml"), &["list"]);
    assert_eq!(r.code, 78, "{}", r.stderr);
    assert!(r.stderr.contains("cannot read the configuration"), "{}", r.stderr);
}

/// Senders, subjects and LINE's error texts are outside text: `queue list` and `queue show` must
/// not hand their control characters (an ANSI "clear screen" and a forged line) to the terminal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_show_escape_control_characters_from_mail_and_line() {
    let forged = "\u{1b}[2J\u{1b}[H\rALL JOBS DELIVERED OK\n\u{9b}32m";
    let (_line, gw) = setup(Behaviour::Status(400, json!({ "message": forged })), "").await;
    // U+009B (CSI) survives JSON escaping; ESC is escaped in the body but not in the error.
    let subject = format!("=?UTF-8?B?{}?=", base64_encode(forged.as_bytes()));
    send(&gw, &user(1), &subject);
    let js = wait_for_jobs(&gw, "the job to go dead", |js| js.iter().any(|j| j["state"] == "dead"));
    assert!(js[0]["last_error"].as_str().unwrap().contains('\u{1b}'), "the raw error is kept (in JSON): {js:#?}");
    let id = js[0]["id"].as_i64().unwrap().to_string();
    for args in [vec!["list"], vec!["list", "--dead"], vec!["show", id.as_str()]] {
        let r = queue(&gw, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!r.stdout.chars().any(|c| c.is_control() && c != '\n'), "queue {args:?} printed a control character:\n{:?}", r.stdout);
        assert!(!r.stdout.lines().any(|l| l.starts_with("ALL JOBS")), "a forged line: {}", r.stdout);
        assert!(r.stdout.contains('\u{FFFD}'), "escaped, not dropped: {}", r.stdout);
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
