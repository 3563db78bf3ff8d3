//! The HTTP listener under a slow-client flood (issue 16, "Slow and idle clients"): connections
//! that trickle their headers are cut after `[http] header_timeout_secs`, an idle keep-alive
//! connection after `idle_timeout_secs`, and while more slow connections than
//! `max_connections` are open, LINE's signed webhook call is still answered 200 and registers the
//! follower, and a normal mail still reaches LINE.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mail2line::followers::Registry;
use serde_json::json;
use tokio::task::block_in_place;

use crate::support::gateway::{addr, user, GatewayProcess, Options, TOKEN};
use crate::support::standin::StandIn;
use crate::support::webhook::{post_to, sign};

/// Generous: only the gateway's limits can close a trickling connection, however long we wait.
const PATIENCE: Duration = Duration::from_secs(60);

/// A client that sends a request line and then one header line now and then, never finishing.
struct Slow {
    stream: TcpStream,
    closed: bool,
}

impl Slow {
    fn open(at: SocketAddr) -> Slow {
        let mut stream = TcpStream::connect(at).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
        let _ = stream.write_all(b"POST /webhook HTTP/1.1\r\nHost: gateway\r\n");
        Slow { stream, closed: false }
    }

    /// One more header line; notes whether the server has closed the connection.
    fn trickle(&mut self) {
        if self.closed {
            return;
        }
        let mut buf = [0u8; 512];
        match self.stream.read(&mut buf) {
            Ok(0) => self.closed = true,
            // A 408 or similar before the close: the close follows.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => self.closed = true,
        }
        if !self.closed && self.stream.write_all(b"X-Slow: 1\r\n").is_err() {
            self.closed = true;
        }
    }
}

/// Keeps trickling on every connection until `done` says stop or `PATIENCE` runs out; returns
/// whether `done` was reached.
fn trickle_until(flood: &mut [Slow], done: impl Fn(&[Slow]) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        flood.iter_mut().for_each(Slow::trickle);
        if done(flood) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

fn follow(id: &str) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    serde_json::to_vec(&json!({
        "destination": "U0000000000000000000000000000b0t0",
        "events": [{
            "type": "follow", "mode": "active", "timestamp": now, "webhookEventId": "01HFLOODFOLLOW000000000001",
            "deliveryContext": {"isRedelivery": false}, "source": {"type": "user", "userId": id},
            "replyToken": "rt-flood", "follow": {"isUnblocked": false},
        }]
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_and_do_not_starve_the_webhook() {
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let url = line.base_url();
    let mut gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &url, ..Default::default() }));
    // The generated config has its own [http] table: add the limits to it and start again.
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    let limits = "[http]\nheader_timeout_secs = 2\nidle_timeout_secs = 2\nmax_connections = 40\nmax_concurrent_requests = 8\n";
    std::fs::write(&gw.config_path, config.replacen("[http]\n", limits, 1)).unwrap();
    block_in_place(|| gw.restart());
    let http = gw.http.expect("http listener");

    // 1. Fewer than max_connections: only the header timeout can close them.
    let mut flood: Vec<Slow> = (0..20).map(|_| Slow::open(http)).collect();
    let all_closed = block_in_place(|| trickle_until(&mut flood, |f| f.iter().all(|s| s.closed)));
    let open = flood.iter().filter(|s| !s.closed).count();
    assert!(all_closed, "{open} of 20 connections still trickling headers were never cut");

    // 2. An idle keep-alive connection after a complete request.
    block_in_place(|| {
        let mut c = TcpStream::connect(http).unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n").unwrap();
        c.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut all = Vec::new();
        // Reads the response, then waits for the close; a timeout here means it was never closed.
        c.read_to_end(&mut all).expect("the idle connection was closed");
        assert!(all.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&all));
    });

    // 3. More slow connections than max_connections; LINE calls during the flood.
    let mut flood: Vec<Slow> = (0..100).map(|_| Slow::open(http)).collect();
    block_in_place(|| flood.iter_mut().for_each(Slow::trickle));
    let follower = user(77);
    let body = follow(&follower);
    let signature = sign(&body);
    let (status, _) = post_to(&gw, "/webhook", body, Some(signature), "application/json").await;
    assert_eq!(status, 200, "the webhook call did not get through the flood");
    let registry = Registry::open_existing(&gw.dir.path().join("data")).unwrap();
    assert!(registry.is_active(&follower).unwrap(), "the follow was not registered");
    // A normal mail during the flood reaches LINE.
    block_in_place(|| gw.send_raw("normal@example.com", &[&addr(&follower)], b"Subject: during the flood\r\n\r\nhello\r\n")).unwrap();
    let start = Instant::now();
    while !line.requests_to("/v2/bot/message/push").iter().any(|r| r.body.to_string().contains("during the flood")) {
        assert!(start.elapsed() < PATIENCE, "the mail never reached LINE: {}", gw.logs());
        block_in_place(|| flood.iter_mut().for_each(Slow::trickle));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And the flood itself is cut in the end.
    assert!(block_in_place(|| trickle_until(&mut flood, |f| f.iter().all(|s| s.closed))), "the flood was never cut");
}
