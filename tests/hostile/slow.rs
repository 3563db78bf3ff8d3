//! Slow and idle clients: a client that trickles its mail a byte at a time is cut at
//! `[smtp] data_timeout_secs` however steadily it trickles; one that only chatters (NOOP, RSET)
//! is closed after `max_junk_commands`; and when `max_sessions` is reached, sessions that have
//! sent nothing for 30 s are closed to make room for a new client. A normal mail gets through
//! in each case.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::block_in_place;

use crate::common::{normal_mail, Normal};
use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::raw::Raw;
use crate::support::standin::StandIn;

async fn gateway(smtp_extra: &str) -> (StandIn, GatewayProcess) {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, smtp_extra, ..Default::default() }));
    (line, gw)
}

fn delivered(n: Normal) {
    assert!(matches!(n, Normal::Delivered { .. }), "the normal mail was not delivered: {n:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_client_is_cut_at_the_data_deadline() {
    // The idle timeout is far away; only the DATA deadline can end this session.
    let (line, gw) = gateway("data_timeout_secs = 2\nidle_timeout_secs = 60").await;
    let at = gw.smtp;
    let trickler = std::thread::spawn(move || {
        let mut c = Raw::greeted(at);
        c.send(format!("EHLO slow.example\r\nMAIL FROM:<a@slow.example>\r\nRCPT TO:<{}>\r\nDATA\r\n", addr(&user(1))).as_bytes());
        for _ in 0..4 {
            c.reply();
        }
        // One byte every 100 ms from another thread: never idle, never done.
        let mut writer = c.stream().try_clone().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_writer = stop.clone();
        let drip = std::thread::spawn(move || {
            let started = Instant::now();
            while !stop_writer.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(30) {
                if writer.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let reply = c.reply();
        stop.store(true, Ordering::Relaxed);
        drip.join().unwrap();
        reply
    });
    delivered(normal_mail(&gw, &line, &user(2), "while one trickles").await);
    let reply = block_in_place(|| trickler.join().unwrap());
    assert!(reply.starts_with("421 4.4.2"), "the trickler was cut with 421 4.4.2: {reply:?}");
    assert!(gw.logs().contains("DATA took longer than smtp.data_timeout_secs"));
    assert!(line.requests_to("/v2/bot/message/push").iter().all(|r| r.body["to"] != user(1).as_str()), "the cut mail was not delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_only_chatters_is_closed() {
    let (line, gw) = gateway("max_junk_commands = 5").await;
    let mut c = block_in_place(|| Raw::greeted(gw.smtp));
    let codes: Vec<u16> = block_in_place(|| {
        assert_eq!(c.cmd("EHLO chatty.example").as_bytes()[0], b'2');
        (0..6).map(|i| if i % 2 == 0 { c.cmd("NOOP") } else { c.cmd("RSET") }).map(|r| r[..3].parse().unwrap()).collect()
    });
    assert_eq!(codes, vec![250, 250, 250, 250, 250, 421]);
    assert!(block_in_place(|| c.closed()));
    delivered(normal_mail(&gw, &line, &user(3), "after the chatter").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sessions_make_room_when_the_gateway_is_full() {
    let (line, gw) = gateway("max_sessions = 4\nmax_sessions_per_ip = 0").await;
    let at = gw.smtp;
    // Four sessions that say nothing after the greeting fill the gateway.
    let mut silent: Vec<Raw> = block_in_place(|| (0..4).map(|_| Raw::greeted(at)).collect());
    // Not silent for 30 s yet: a fifth client is turned away, as before.
    let mut fifth = block_in_place(|| Raw::connect(at));
    assert_eq!(block_in_place(|| fifth.code()), 421);
    tokio::time::sleep(Duration::from_secs(31)).await;
    // Now the longest silent one is closed and the new client gets its slot.
    delivered(normal_mail(&gw, &line, &user(4), "after the silent ones").await);
    let closed: Vec<String> = block_in_place(|| {
        silent
            .iter_mut()
            .filter_map(|s| {
                let mut buf = [0u8; 256];
                let stream = s.stream();
                stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
                match stream.read(&mut buf) {
                    Ok(n) if n > 0 => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    _ => None,
                }
            })
            .collect()
    });
    assert_eq!(closed.len(), 1, "one silent session made room: {closed:?}");
    assert!(closed[0].starts_with("421 4.4.2"), "{closed:?}");
    for s in &mut silent {
        let _ = s.stream().write_all(b"QUIT\r\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_one_log_line_a_second_and_recovers() {
    let (line, gw) = gateway("max_sessions_per_ip = 0").await;
    let pid = gw.pid();
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    // Room for a few more descriptors only, as when LimitNOFILE is too low for the load.
    let limit = open_fds + 4;
    let set = |soft: usize| {
        let ok = std::process::Command::new("prlimit").arg(format!("--nofile={soft}:")).arg(format!("--pid={pid}")).status().unwrap().success();
        assert!(ok, "prlimit failed");
    };
    block_in_place(|| set(limit));
    let at = gw.smtp;
    // Connections past the limit wait in the listen backlog while accept fails with EMFILE.
    let clients: Vec<_> = block_in_place(|| (0..30).filter_map(|_| std::net::TcpStream::connect(at).ok()).collect());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lines = gw.logs().lines().filter(|l| l.contains("accept failed")).count();
    assert!((1..=5).contains(&lines), "{lines} 'accept failed' lines in 3 s of EMFILE:\n{}", gw.logs());
    // Descriptors back: the waiting clients are served and a normal mail goes through.
    block_in_place(|| set(4096));
    drop(clients);
    delivered(normal_mail(&gw, &line, &user(5), "after EMFILE").await);
}
