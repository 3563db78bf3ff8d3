//! Many big mails at once: every session sends a mail near `max_message_bytes` at the same
//! time. The gateway holds at most `[smtp] max_inflight_bytes` of mail data in memory and
//! writes the rest to `storage.dir/incoming`, so its peak memory stays within the stated budget
//! (256 MiB with the default 128 MiB); every mail still gets a 250 (or a 4xx to retry), and a
//! normal mail sent meanwhile reaches LINE. CI runs 200 sessions × 4 MiB; `bench/hostile.sh`
//! runs the 1,000 × 10 MiB.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::block_in_place;

use crate::common::{disk_used, normal_mail, peak_rss, report, scale, Normal, MIB};
use crate::support::mime::multipart;
use crate::support::raw::Raw;
use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::standin::StandIn;

/// The peak memory the README promises for the default `max_inflight_bytes` (128 MiB).
const BUDGET: u64 = 256 * MIB;

/// A mail with one attachment of about `size` bytes on the wire (base64 of a pseudo-random
/// file, so nothing along the way can compress it away).
fn big_mail(to: &str, size: usize) -> Vec<u8> {
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    // base64 is 4 bytes for 3, and each 76-character line gets a CRLF.
    let raw: Vec<u8> = (0..size / 4 * 3 / 78 * 76)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    let head = format!("From: nas@example.com\r\nTo: {to}\r\nSubject: nightly archive\r\n");
    multipart(&head, "The archive is attached.", &[("archive.bin", "application/octet-stream", &raw)])
}

/// One session sending `mail` to `to`; the code DATA's end got (0: the connection failed).
fn send_big(at: SocketAddr, to: &str, mail: &[u8]) -> u16 {
    let Ok(mut c) = Raw::try_connect(at, Duration::from_secs(600)) else { return 0 };
    if c.try_code() != 220 {
        return 0;
    }
    let envelope = format!("EHLO nas.example.com\r\nMAIL FROM:<nas@example.com>\r\nRCPT TO:<{to}>\r\nDATA\r\n");
    if !c.try_send(envelope.as_bytes()) {
        return 0;
    }
    for expected in [250, 250, 250, 354] {
        let got = c.try_code();
        if got != expected {
            return got;
        }
    }
    for chunk in mail.chunks(64 * 1024) {
        if !c.try_send(chunk) {
            return 0;
        }
    }
    c.try_send(b".\r\nQUIT\r\n");
    c.try_code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_big_mails_at_once_stay_within_the_memory_budget() {
    let sessions = scale(200, 1000);
    let size = scale(4, 10) * MIB as usize - 64 * 1024;
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    // Loopback stands in for many addresses: the per-address caps are lifted.
    let gw = block_in_place(|| {
        GatewayProcess::start(Options {
            api_base_url: &url,
            smtp_extra: "max_sessions_per_ip = 0\nmax_mails_per_minute_per_ip = 0",
            // One request per mail: the test counts them (coalescing has its own tests).
            extra: "[delivery]\ncoalesce_secs = 0\n",
            env: &[("RUST_LOG", "info")],
            ..Default::default()
        })
    });
    let mail = Arc::new(big_mail(&addr(&user(1)), size));
    let started = Instant::now();
    let senders: Vec<_> = (0..sessions)
        .map(|_| {
            let (mail, at) = (mail.clone(), gw.smtp);
            std::thread::spawn(move || send_big(at, &addr(&user(1)), &mail))
        })
        .collect();
    // A normal mail in the middle of the attack.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let normal = normal_mail(&gw, &line, &user(2), "during the flood").await;
    let incoming = gw.dir.path().join("data").join("incoming");
    let spilled_mid_attack = disk_used(&incoming);
    let codes: Vec<u16> = block_in_place(|| senders.into_iter().map(|t| t.join().unwrap()).collect());
    let elapsed = started.elapsed();
    let peak = peak_rss(gw.pid());
    let accepted = codes.iter().filter(|&&c| c == 250).count();
    let deferred = codes.iter().filter(|&&c| (400..500).contains(&c)).count();
    report("big-mails", "sessions", sessions);
    report("big-mails", "mail_mib", format!("{:.2}", mail.len() as f64 / MIB as f64));
    report("big-mails", "peak_rss_mib", peak / MIB);
    report("big-mails", "spill_dir_mib_mid_attack", spilled_mid_attack / MIB);
    report("big-mails", "accepted", accepted);
    report("big-mails", "deferred_4xx", deferred);
    report("big-mails", "seconds", elapsed.as_secs_f64());
    report("big-mails", "normal_mail", format!("{normal:?}"));
    assert!(codes.iter().all(|&c| c == 250 || (400..500).contains(&c)), "only 250 or 4xx: {codes:?}");
    assert!(accepted > 0, "some big mails got through: {codes:?}");
    assert!(peak < BUDGET, "peak RSS {} MiB is over the {} MiB budget", peak / MIB, BUDGET / MIB);
    assert!(matches!(normal, Normal::Delivered { .. } | Normal::Deferred(_)));
    // Every accepted mail reaches LINE; the spill folder is empty again.
    let want = accepted + matches!(normal, Normal::Delivered { .. }) as usize;
    let pushes = line.wait_for(want, Duration::from_secs(120)).await;
    assert!(pushes.len() >= want, "{} of {want} accepted mails reached LINE", pushes.len());
    assert_eq!(disk_used(&incoming), 0, "spill files are removed once their mail is spooled");
    line.assert_all_valid();
}
