//! AUTH as a memory bomb (issue 16, hole 3): many sessions each send one `AUTH PLAIN` with a
//! wrong password at the same moment, before any login. Each check is an argon2 hash holding
//! 19 MiB; unbounded, 500 of them took the gateway to 9.4 GiB. With `max_auth_checks` (one per
//! core) and `max_auth_queue` (64) the rest are told `454 4.7.0` at once, the peak memory stays
//! small, and a normal mail sent during the burst still gets its 250 and reaches LINE.
//!
//! Loopback stands in for many source addresses: the per-address limits (sessions, mails a
//! minute, the failure delay) are lifted, so only the global bound is at work.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::sync::Barrier;
use tokio::task::block_in_place;

use crate::common::{peak_rss, report, scale};
use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::load::Smtp;
use crate::support::standin::StandIn;
use crate::support::tls::hash_password;

const PASSWORD: &str = "correct-horse-0a6e-battery";
/// The stated budget for the burst. Unbounded, 200 concurrent checks would need ~3.8 GiB.
const BUDGET: u64 = 256 * 1024 * 1024;

/// How long one reply may take: far longer than any argon2 check, so only a hung gateway
/// reaches it (and its sessions count as closed).
const REPLY_TIMEOUT: Duration = Duration::from_secs(300);

/// One reply's last line (the one with the code and a space), or "closed".
async fn reply(c: &mut Smtp) -> String {
    match c.reply().await {
        Ok(_) => c.last_line().to_owned(),
        Err(_) => "closed".into(),
    }
}

/// Opens a session, says EHLO, waits for everyone, then sends one AUTH PLAIN; returns its reply.
async fn guess(at: SocketAddr, user: &str, password: &str, start: Arc<Barrier>) -> String {
    let mut c = Smtp::connect(at, REPLY_TIMEOUT).await.expect("connect");
    assert!(reply(&mut c).await.starts_with("220"));
    c.send(b"EHLO burst.example\r\n").await.unwrap();
    let ehlo = reply(&mut c).await;
    assert!(ehlo.starts_with("250"), "{ehlo}");
    start.wait().await;
    let response = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
    c.send(format!("AUTH PLAIN {response}\r\n").as_bytes()).await.unwrap();
    let answer = reply(&mut c).await;
    let _ = c.send(b"QUIT\r\n").await;
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_wrong_passwords_is_bounded_and_mail_still_flows() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let hash = block_in_place(|| hash_password(PASSWORD));
    let smtp = format!(
        "auth = \"optional\"\nallow_plaintext_auth_on_loopback = true\nmax_sessions_per_ip = 0\nmax_mails_per_minute_per_ip = 0\nauth_failure_delay_ms = 0\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"{hash}\"\n"
    );
    let url = line.base_url();
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { api_base_url: &url, smtp_extra: &smtp, extra: "[delivery]\nmode = \"direct\"", ..Default::default() })
    });

    // 200 in CI; the 500 under bench/hostile.sh.
    let sessions = scale(200, 500);
    let idle = peak_rss(gw.pid());
    let start = Arc::new(Barrier::new(sessions + 1));
    let guesses: Vec<_> = (0..sessions)
        .map(|i| tokio::spawn(guess(gw.smtp, if i % 2 == 0 { "cms" } else { "admin" }, "wrong-password", start.clone())))
        .collect();
    start.wait().await;
    // A normal mail (no login needed with auth = "optional" from an allowed client) during the
    // burst: the password checks must not hold it up or starve it.
    let to = addr(&user(16));
    let body = b"From: cron@example.com\r\nSubject: during the burst\r\n\r\nnightly backup done\r\n";
    let normal_started = std::time::Instant::now();
    let normal = tokio::task::spawn_blocking({
        let (smtp, to) = (gw.smtp, to.clone());
        move || {
            let envelope = lettre::address::Envelope::new(Some("cron@example.com".parse().unwrap()), vec![to.parse().unwrap()]).unwrap();
            use lettre::Transport;
            let sent = lettre::SmtpTransport::builder_dangerous(smtp.ip().to_string()).port(smtp.port()).build().send_raw(&envelope, body);
            (sent, normal_started.elapsed())
        }
    });

    let mut answers = Vec::new();
    for g in guesses {
        answers.push(g.await.expect("session task"));
    }
    let (normal, normal_latency) = normal.await.unwrap();
    // Direct mode: the 250 comes after LINE's answer, so this is the latency to LINE.
    let normal = normal.unwrap_or_else(|e| panic!("normal mail during the burst: {e}\n{}", gw.logs()));
    assert_eq!(normal.code().to_string(), "250", "{normal:?}");

    let busy = answers.iter().filter(|a| a.starts_with("454 4.7.0 Too many logins being checked")).count();
    let refused = answers.iter().filter(|a| a.starts_with("535 5.7.8")).count();
    let odd: Vec<&String> = answers.iter().filter(|a| !a.starts_with("454 4.7.0") && !a.starts_with("535 5.7.8")).collect();
    assert!(odd.is_empty(), "every guess gets 454 or 535, never a crash or a hang-up: {odd:?}\n{}", gw.logs());
    // 200 arrive at once; at most max_auth_checks (one per core) + max_auth_queue (64) are admitted.
    assert!(busy > 0, "past the queue the answer is 454 ({refused} got 535)");
    assert!(refused > 0 && refused <= sessions - busy);
    assert!(gw.logs().contains("smtp.max_auth_queue full; answering 454"), "the refusals are logged");

    // The gateway is still alive and a right password still logs in.
    let ok = guess(gw.smtp, "cms", PASSWORD, Arc::new(Barrier::new(1))).await;
    assert!(ok.starts_with("235"), "{ok}\n{}", gw.logs());

    let pushes = line.requests_to("/v2/bot/message/push");
    assert!(
        pushes.iter().any(|p| p.body.to_string().contains("nightly backup done")),
        "the normal mail reached LINE: {pushes:?}"
    );
    let logs = gw.logs();
    assert!(!logs.contains(PASSWORD) && !logs.contains("wrong-password"), "no password in the logs");

    let peak = peak_rss(gw.pid());
    report("auth-burst", "sessions", sessions);
    report("auth-burst", "answered_454", busy);
    report("auth-burst", "answered_535", refused);
    report("auth-burst", "peak_rss_mib", format!("{:.1}", peak as f64 / (1024.0 * 1024.0)));
    report("auth-burst", "normal_mail_latency_ms", normal_latency.as_millis());
    eprintln!(
        "auth burst: {sessions} sessions, {busy} answered 454, {refused} answered 535; gateway peak RSS (VmHWM) {:.1} MiB (budget {} MiB; {:.1} MiB before the burst)",
        peak as f64 / (1024.0 * 1024.0),
        BUDGET / (1024 * 1024),
        idle as f64 / (1024.0 * 1024.0)
    );
    assert!(peak < BUDGET, "peak RSS {peak} bytes is over the {BUDGET}-byte budget");
}
