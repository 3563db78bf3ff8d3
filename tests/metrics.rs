//! Monitoring end to end: `/metrics`, `/healthz`, `/readyz` and the log lines, from the real
//! binary with the stand-in LINE API and real SMTP clients (lettre, and the raw client for
//! refused recipients). `/metrics` is read with a Prometheus text-format parser
//! (`prometheus-parse`), and every check compares counts before and after something happened,
//! so the expected numbers come from what the test did, not from the gateway's output.

mod support;

use std::time::{Duration, Instant};

use prometheus_parse::{LineInfo, Scrape, Value};
use serde_json::json;
use support::gateway::{addr, code, user, GatewayProcess, Options, DOMAIN};
use support::raw::Raw;
use support::standin::{Behaviour, StandIn};
use tokio::task::block_in_place;

/// Fast retries and quota probes so the tests finish in seconds.
const FAST: &str = "[delivery]\nretry_base_ms = 50\nretry_max_secs = 1\nscan_interval_ms = 50\nquota_probe_secs = 1";

/// Generous: the machine may be busy with other test binaries. Never an assertion on speed.
const PATIENCE: Duration = Duration::from_secs(30);

fn start(line: &StandIn, extra: &'static str) -> GatewayProcess {
    let url = line.base_url();
    block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, extra, ..Default::default() }))
}

fn mail(n: usize) -> Vec<u8> {
    format!("Subject: metrics {n}\r\nMessage-ID: <metrics{n}@test>\r\n\r\nbody {n}\r\n").into_bytes()
}

/// `GET http://<[http] listen><path>`: status, content type and body.
async fn get(gw: &GatewayProcess, path: &str) -> (u16, String, String) {
    let url = format!("http://{}{path}", gw.http.expect("the gateway logs its HTTP address"));
    let resp = reqwest::get(&url).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, ct, resp.text().await.unwrap())
}

/// One parsed scrape of `/metrics`.
struct Metrics(Scrape);

impl Metrics {
    /// The value of counter/gauge `name` with (at least) these labels; panics when absent.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).unwrap_or_else(|| {
            let names: Vec<_> = self.0.samples.iter().map(|s| format!("{}{{{}}}", s.metric, s.labels)).collect();
            panic!("no sample {name} {labels:?}; there are: {names:#?}")
        })
    }

    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let s = self.0.samples.iter().find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))?;
        match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
            _ => panic!("{name} is not a counter or gauge: {:?}", s.value),
        }
    }

    /// Sum of every sample of `name` (all label values).
    fn total(&self, name: &str) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// Observations in histogram `name` (its `+Inf` bucket).
    fn observations(&self, name: &str) -> f64 {
        let s = self.0.samples.iter().find(|s| s.metric == name).unwrap_or_else(|| panic!("no histogram {name}"));
        let Value::Histogram(buckets) = &s.value else { panic!("{name} is not a histogram: {:?}", s.value) };
        buckets.iter().find(|b| b.less_than.is_infinite()).map(|b| b.count).expect("a +Inf bucket")
    }
}

/// Scrapes `/metrics`, insisting that every line is Prometheus text format.
async fn scrape(gw: &GatewayProcess) -> Metrics {
    let (status, ct, body) = get(gw, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content type {ct:?}");
    for line in body.lines() {
        assert!(!matches!(LineInfo::parse(line), LineInfo::Ignored), "not Prometheus text format: {line:?}");
    }
    Metrics(Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).expect("parses"))
}

/// Waits until the logs contain `needle` at least `n` times.
async fn wait_count(gw: &GatewayProcess, needle: &str, n: usize) {
    let start = Instant::now();
    while gw.logs().matches(needle).count() < n {
        assert!(start.elapsed() < PATIENCE, "waited for {n}× {needle:?}; logs:\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Scrapes until `ok` holds for the scrape (state that settles after the event, such as a
/// session closing); returns that scrape.
async fn scrape_until(gw: &GatewayProcess, what: &str, ok: impl Fn(&Metrics) -> bool) -> Metrics {
    let start = Instant::now();
    loop {
        let m = scrape(gw).await;
        if ok(&m) {
            return m;
        }
        assert!(start.elapsed() < PATIENCE, "waited for {what}; logs:\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /readyz` until it answers `status`; returns the body.
async fn readyz_until(gw: &GatewayProcess, status: u16) -> String {
    let start = Instant::now();
    loop {
        let (got, _, body) = get(gw, "/readyz").await;
        if got == status {
            return body;
        }
        assert!(start.elapsed() < PATIENCE, "/readyz still {got}: {body}\nlogs:\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The mail id from a "250 2.0.0 Ok: queued as <id>" reply.
fn queued_id(reply: &lettre::transport::smtp::response::Response) -> String {
    let text: String = reply.message().collect::<Vec<_>>().join(" ");
    text.rsplit("queued as ").next().unwrap_or("").trim().to_owned()
}

const SERIES: [&str; 14] = [
    "mail2line_smtp_sessions_total",
    "mail2line_smtp_sessions_active",
    "mail2line_smtp_sessions_refused_total",
    "mail2line_smtp_auth_failures_total",
    "mail2line_mails_accepted_total",
    "mail2line_mails_rejected_total",
    "mail2line_line_pushes_total",
    "mail2line_delivery_retries_total",
    "mail2line_delivery_latency_seconds",
    "mail2line_queue_depth",
    "mail2line_dead_jobs",
    "mail2line_quota_paused",
    "mail2line_line_token_valid",
    "mail2line_build_info",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_exactly_what_happened() {
    let line = StandIn::start().await;
    let gw = start(&line, FAST);
    let before = scrape(&gw).await;
    for name in SERIES.iter().filter(|n| **n != "mail2line_line_pushes_total") {
        assert!(before.0.docs.get(*name).is_some_and(|h| !h.is_empty()), "{name} has no HELP text");
    }
    assert_eq!(before.get("mail2line_mails_accepted_total", &[]), 0.0);
    assert_eq!(before.total("mail2line_mails_rejected_total"), 0.0);

    // One mail, one push.
    let reply = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(1))], &mail(1))).unwrap();
    let id = queued_id(&reply);
    assert!(!id.is_empty(), "{reply:?}");
    wait_count(&gw, "mail delivered", 1).await;
    // The session closes and the spool records the delivery just after the log line.
    let after = scrape_until(&gw, "the session to close and the job to be done", |m| {
        m.get("mail2line_smtp_sessions_active", &[]) == 0.0 && m.get("mail2line_queue_depth", &[]) == 0.0
    })
    .await;
    assert_eq!(after.get("mail2line_mails_accepted_total", &[]), 1.0);
    assert_eq!(after.get("mail2line_smtp_sessions_total", &[]), 1.0);
    assert_eq!(after.get("mail2line_line_pushes_total", &[("endpoint", "push"), ("status", "200")]), 1.0);
    assert_eq!(after.total("mail2line_line_pushes_total"), 1.0);
    assert_eq!(after.observations("mail2line_delivery_latency_seconds"), 1.0);
    assert_eq!(after.total("mail2line_mails_rejected_total"), 0.0);
    assert_eq!(after.get("mail2line_dead_jobs", &[]), 0.0);
    assert_eq!(after.get("mail2line_line_token_valid", &[]), 1.0);
    // The delivered line carries the mail id from the 250 and LINE's request id.
    let pushes = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushes.len(), 1);
    let logs = gw.logs();
    let delivered = logs.lines().find(|l| l.contains("mail delivered")).unwrap();
    assert!(delivered.contains(&format!("mail={id}")), "{delivered}");
    assert!(delivered.contains(&format!("line_request_id=\"{}\"", pushes[0].request_id)), "{delivered}");
    let accepted = logs.lines().find(|l| l.contains("mail accepted")).unwrap();
    assert!(accepted.contains(&format!("mail={id}")) && accepted.contains("peer=127.0.0.1:"), "{accepted}");

    // Refused recipients: one line and one count each, by reason.
    let mut c = block_in_place(|| Raw::greeted(gw.smtp));
    block_in_place(|| {
        assert!(c.cmd("EHLO client.example").starts_with("250"));
        assert!(c.cmd("MAIL FROM:<a@example.com>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<x@gmail.com>").starts_with("550"));
        assert!(c.cmd(&format!("RCPT TO:<nobody@{DOMAIN}>")).starts_with("550"));
        assert!(c.cmd("QUIT").starts_with("221"));
    });
    let m = scrape_until(&gw, "the session to close", |m| m.get("mail2line_smtp_sessions_active", &[]) == 0.0).await;
    assert_eq!(m.get("mail2line_mails_rejected_total", &[("reason", "relay_denied")]), 1.0);
    assert_eq!(m.get("mail2line_mails_rejected_total", &[("reason", "unknown_recipient")]), 1.0);
    assert_eq!(m.total("mail2line_mails_rejected_total"), 2.0);
    assert_eq!(m.get("mail2line_mails_accepted_total", &[]), 1.0);
    assert_eq!(m.get("mail2line_smtp_sessions_total", &[]), 2.0);
    let logs = gw.logs();
    let refused: Vec<&str> = logs.lines().filter(|l| l.contains("recipient rejected")).collect();
    assert_eq!(refused.len(), 2, "{logs}");
    assert!(refused[0].contains("reason=relay_denied") && refused[0].contains("rcpt=\"x@gmail.com\"") && refused[0].contains("peer="), "{}", refused[0]);

    // A 500 then success: one retry; a 400: a dead job.
    line.push_behaviour(Behaviour::Status(500, json!({"message": "Internal error"})));
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(2))], &mail(2))).unwrap().is_positive());
    wait_count(&gw, "mail delivered", 2).await;
    line.push_behaviour(Behaviour::Status(400, json!({"message": "The request body has 1 error(s)"})));
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(3))], &mail(3))).unwrap().is_positive());
    wait_count(&gw, "mail dead", 1).await;
    let m = scrape_until(&gw, "the dead job and the delivery to be recorded", |m| {
        m.get("mail2line_dead_jobs", &[]) == 1.0 && m.get("mail2line_queue_depth", &[]) == 0.0
    })
    .await;
    assert_eq!(m.get("mail2line_delivery_retries_total", &[]), 1.0);
    assert_eq!(m.get("mail2line_line_pushes_total", &[("endpoint", "push"), ("status", "500")]), 1.0);
    assert_eq!(m.get("mail2line_line_pushes_total", &[("endpoint", "push"), ("status", "200")]), 2.0);
    assert_eq!(m.get("mail2line_line_pushes_total", &[("endpoint", "push"), ("status", "400")]), 1.0);
    assert_eq!(m.observations("mail2line_delivery_latency_seconds"), 2.0);
    assert_eq!(m.get("mail2line_mails_accepted_total", &[]), 3.0);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_quota_and_healthz_the_process() {
    let line = StandIn::start().await;
    // The gateway reads the quota at start and finds room, so it takes the mail; LINE then
    // refuses the push (the quota ran out meanwhile, e.g. another tool on the channel).
    line.set_quota(Some(1000), 0);
    line.push_behaviour(Behaviour::Status(429, json!({"message": "You have reached your monthly limit."})));
    let gw = start(&line, FAST);
    assert_eq!(get(&gw, "/healthz").await, (200, "text/plain; charset=utf-8".to_owned(), "ok\n".to_owned()));
    let (status, _, body) = get(&gw, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\nstore: ok\ntoken: ok\nquota: ok\n"));

    line.wait_for_quota_reads(1, PATIENCE).await;
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(5))], &mail(1))).unwrap().is_positive());
    line.set_quota(Some(1000), 1000);
    wait_count(&gw, "quota exhausted", 1).await;
    let body = readyz_until(&gw, 503).await;
    assert!(body.starts_with("not ready\nstore: ok\ntoken: ok\nquota: LINE's monthly message quota is used up"), "{body}");
    assert!(body.contains("wait for the next month"), "says what to do: {body}");
    assert_eq!(get(&gw, "/healthz").await.0, 200, "still alive");
    let m = scrape(&gw).await;
    assert_eq!(m.get("mail2line_quota_paused", &[]), 1.0);
    assert_eq!(m.get("mail2line_queue_depth", &[]), 1.0, "the first mail waits in the spool");
    let rejected = m.get("mail2line_mails_rejected_total", &[("reason", "quota")]);

    let err = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(5))], &mail(2))).unwrap_err();
    assert_eq!(code(&err), Some(452));
    let m = scrape(&gw).await;
    assert_eq!(m.get("mail2line_mails_rejected_total", &[("reason", "quota")]), rejected + 1.0);
    let logs = gw.logs();
    let line_452 = logs.lines().find(|l| l.contains("mail rejected")).expect("the 452 is logged");
    assert!(line_452.contains("reason=quota") && line_452.contains("mail=") && line_452.contains("peer="), "{line_452}");

    // Room again: the probe resumes deliveries and the gateway is ready.
    line.set_quota(Some(1000), 10);
    readyz_until(&gw, 200).await;
    wait_count(&gw, "mail delivered", 1).await;
    let m = scrape(&gw).await;
    assert_eq!(m.get("mail2line_quota_paused", &[]), 0.0);
    assert_eq!(m.get("mail2line_line_pushes_total", &[("endpoint", "push"), ("status", "429")]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_makes_the_gateway_unready_until_a_push_goes_through() {
    let line = StandIn::start().await;
    line.push_behaviour(Behaviour::Status(401, json!({"message": "Authentication failed"})));
    let gw = start(&line, FAST);
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(6))], &mail(1))).unwrap().is_positive());
    wait_count(&gw, "mail dead", 1).await;
    let body = readyz_until(&gw, 503).await;
    assert!(body.contains("token: LINE refused the long-lived channel access token"), "{body}");
    let m = scrape_until(&gw, "the dead job to be recorded", |m| m.get("mail2line_dead_jobs", &[]) == 1.0).await;
    assert_eq!(m.get("mail2line_line_token_valid", &[]), 0.0);
    assert_eq!(m.get("mail2line_line_pushes_total", &[("endpoint", "push"), ("status", "401")]), 1.0);
    // The token works again (fixed at LINE's side): the next push clears it.
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(6))], &mail(2))).unwrap().is_positive());
    wait_count(&gw, "mail delivered", 1).await;
    readyz_until(&gw, 200).await;
    assert_eq!(scrape(&gw).await.get("mail2line_line_token_valid", &[]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_says_when_the_disk_is_full() {
    let line = StandIn::start().await;
    // LINE is slow, so jobs pile up in the spool until the file hits the size limit.
    line.set_default(Behaviour::Delay(Duration::from_millis(300)));
    let url = line.base_url();
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { api_base_url: &url, extra: FAST, fsize_limit_kib: Some(1024), ..Default::default() })
    });
    readyz_until(&gw, 200).await;
    let big = "x".repeat(30 * 1024);
    let mut refused = 0;
    for s in 0..200 {
        let m = format!("Subject: seq {s}\r\n\r\n{big}\r\n");
        if let Err(e) = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(4))], m.as_bytes())) {
            assert_eq!(code(&e), Some(452), "{e}");
            refused += 1;
            break;
        }
    }
    assert_eq!(refused, 1, "the spool never filled up");
    let body = readyz_until(&gw, 503).await;
    assert!(body.contains("store: the spool cannot store mail") && body.contains("free disk space"), "{body}");
    let m = scrape(&gw).await;
    assert_eq!(m.get("mail2line_mails_rejected_total", &[("reason", "storage")]), 1.0);
    // LINE catches up and the spool empties: a mail is stored again, and the gateway is ready.
    line.set_default(Behaviour::Ok);
    let start = Instant::now();
    while block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(4))], b"Subject: small\r\n\r\nx\r\n")).is_err() {
        assert!(start.elapsed() < PATIENCE, "the spool never took mail again; logs:\n{}", gw.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    readyz_until(&gw, 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_tie_a_mail_to_its_line_request_id() {
    let line = StandIn::start().await;
    let gw = start(&line, "[delivery]\nscan_interval_ms = 50\n\n[log]\nformat = \"json\"\n");
    let reply = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(8))], &mail(1))).unwrap();
    let id = queued_id(&reply);
    let err = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(8)), "x@gmail.com"], &mail(2))).unwrap_err();
    assert_eq!(code(&err), Some(550), "lettre gives up at the first refused recipient");
    wait_count(&gw, "mail delivered", 1).await;
    let logs = gw.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    for l in &lines {
        for key in ["timestamp", "level", "target", "message"] {
            assert!(l.get(key).is_some(), "no {key}: {l}");
        }
    }
    let find = |message: &str| -> Vec<&serde_json::Value> { lines.iter().filter(|l| l["message"] == message).collect() };
    let accepted = find("mail accepted");
    assert_eq!(accepted.len(), 1, "{logs}");
    assert_eq!(accepted[0]["mail"], id.as_str());
    assert_eq!(accepted[0]["from"], "a@example.com");
    assert!(accepted[0]["peer"].as_str().unwrap().starts_with("127.0.0.1:"), "{}", accepted[0]);
    let delivered = find("mail delivered");
    assert_eq!(delivered.len(), 1, "{logs}");
    assert_eq!(delivered[0]["mail"], id.as_str());
    let pushes = line.requests_to("/v2/bot/message/push");
    assert_eq!(pushes.len(), 1);
    assert_eq!(delivered[0]["line_request_id"], pushes[0].request_id.as_str());
    let refused = find("recipient rejected");
    assert_eq!(refused.len(), 1, "{logs}");
    assert_eq!((refused[0]["reason"].as_str(), refused[0]["rcpt"].as_str()), (Some("relay_denied"), Some("x@gmail.com")));
    assert!(lines.iter().any(|l| l["message"].as_str().is_some_and(|m| m.starts_with("SMTP listening on "))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_is_ready_and_counts_what_it_accepts() {
    let gw = block_in_place(|| GatewayProcess::start(Options { dry_run: true, token: None, ..Default::default() }));
    let (status, _, body) = get(&gw, "/readyz").await;
    assert_eq!((status, body.as_str()), (200, "ready\nstore: ok\ntoken: ok\nquota: ok\n"));
    assert!(block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(9))], &mail(1))).unwrap().is_positive());
    let m = scrape(&gw).await;
    assert_eq!(m.get("mail2line_mails_accepted_total", &[]), 1.0);
    assert_eq!(m.total("mail2line_line_pushes_total"), 0.0, "nothing is sent in a dry run");
    assert!(gw.logs().lines().any(|l| l.contains("mail accepted") && l.contains("mode=dry_run")), "{}", gw.logs());
}
