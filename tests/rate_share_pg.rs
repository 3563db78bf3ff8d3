//! The channel's rate limit shared across gateways (issue #21): LINE's limit is per channel, so
//! several spools on one PostgreSQL (each a gateway: `Spool::start_with_store` on
//! `Store::open_postgres`) each send at most their share of `max_requests_per_second`, the
//! limit divided by the live nodes of the heartbeat table (`spool/share.rs`).
//!
//! Measured where LINE would measure it: the stand-in records when each push arrived, and no
//! 1-second bucket of the nodes' pushes together holds more than the limit plus what each node's
//! limiter lets through at once (see [`burst`]). One spool alone takes the whole limit; a node
//! that cannot reach the database keeps its last share.
//!
//! Without PostgreSQL these print "SKIPPED: …" and pass, unless `MAIL2LINE_REQUIRE_POSTGRES=1`.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use mail2line::line::{Credentials, LineClient};
use mail2line::metrics::Metrics;
use mail2line::pg::Database;
use mail2line::secret::Secret;
use mail2line::spool::settings::{Delivery, Quota};
use mail2line::spool::share::share;
use mail2line::spool::store::{NewJob, Store};
use mail2line::spool::{Runner, Settings, Spool};
use support::gateway::{user, TOKEN};
use support::postgres::{database, TestDb};
use support::standin::StandIn;

const PUSH: &str = "/v2/bot/message/push";

/// The channel's push limit in these tests: low enough that the nodes could exceed it many
/// times over without their shares even on a busy two-core machine (so the test can fail), and
/// each node's share is still several requests a second.
const LIMIT: u32 = 30;

async fn connect(t: &TestDb, app: &str) -> Database {
    Database::connect(&t.url, Some(t.password.clone()), app).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Spools (gateways) `node-<i>` for each `i` of `ids` on the database of `t`, each configured
/// with the channel's full limit.
async fn spools(t: &TestDb, line: &StandIn, ids: std::ops::Range<usize>) -> Vec<(Spool, Runner, Arc<Metrics>)> {
    let mut out = Vec::new();
    for i in ids {
        let node = format!("node-{i}");
        let store = Store::open_postgres(connect(t, &node).await, &node).await.unwrap();
        let client = LineClient::new(&line.base_url(), Credentials::LongLived(Secret::new(TOKEN)), Duration::from_secs(10), None).unwrap();
        let quota = Quota::default();
        let mut delivery = Delivery { coalesce_secs: 0, scan_interval_ms: 50, max_requests_per_second: LIMIT, ..Delivery::default() };
        assert!(delivery.validate(&quota).is_empty());
        let metrics = Arc::new(Metrics::new());
        let (spool, runner) =
            Spool::start_with_store(store, client, Settings::from_config(&delivery, &quota), Arc::new(mail2line::delivery::HeldPacker), metrics.clone());
        out.push((spool, runner, metrics));
    }
    out
}

/// Waits until every spool counts `n` live nodes (the first heartbeats take one round).
async fn wait_for_share(spools: &[(Spool, Runner, Arc<Metrics>)], n: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Settled: each counts `n` nodes and sends at its share (a node that has just joined sends
    // at the floor for `share::JOIN_WAIT` first, while the others make room).
    while spools.iter().any(|(s, _, _)| s.rate_share_nodes() != n || s.rates().0 != share(LIMIT, n)) {
        let seen: Vec<(u32, u32)> = spools.iter().map(|(s, _, _)| (s.rate_share_nodes(), s.rates().0)).collect();
        assert!(tokio::time::Instant::now() < deadline, "the spools count (nodes, push rate) {seen:?}, not {n} nodes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `count` push jobs, each to its own user, from node `node`.
fn jobs(node: usize, count: u32) -> Vec<NewJob> {
    (0..count)
        .map(|n| {
            let to = user(node as u32 * 10_000 + n);
            let body = serde_json::json!({ "to": to, "messages": [{ "type": "text", "text": format!("node {node} mail {n}") }] }).to_string();
            NewJob {
                mail_id: format!("node-{node}-mail-{n}"),
                path: PUSH.into(),
                body,
                retry_key: uuid::Uuid::new_v4().to_string(),
                target: to,
                sender: "ops@example.com".into(),
                recipients: 1,
                ..NewJob::default()
            }
        })
        .collect()
}

/// What one node's limiter at `rate` lets into any one second beyond the rate itself: its
/// tolerance (about 1/20 s of slots, at least one: requests that timers delayed may catch up,
/// see `spool/limiter.rs`) and the slot at the very start of the second (a second of slots
/// spaced 1/rate apart holds rate + 1 of them when the first falls on its start).
fn burst(rate: u32) -> usize {
    (rate / 20).max(1) as usize + 1
}

/// The longest a 5 ms timer of this process fired late while it ran: how long the process (its
/// spools and the stand-in, which share it) was stalled, e.g. by other processes on the
/// machine. Sends that a stall held back arrive at the stand-in together when it ends.
struct StallProbe {
    worst: Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl StallProbe {
    fn start() -> StallProbe {
        let worst = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let w = worst.clone();
        let task = tokio::spawn(async move {
            loop {
                let due = Instant::now() + Duration::from_millis(5);
                tokio::time::sleep(Duration::from_millis(5)).await;
                let late = Instant::now().saturating_duration_since(due).as_micros() as u64;
                w.fetch_max(late, std::sync::atomic::Ordering::Relaxed);
            }
        });
        StallProbe { worst, task }
    }

    fn stop(self) -> Duration {
        self.task.abort();
        Duration::from_micros(self.worst.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// The pushes a stall of `stall` can bunch up at `rate`: what would have arrived spread over
/// the stall arrives at its end, in the same second as what follows.
fn bunched(rate: u32, stall: Duration) -> usize {
    (rate as f64 * stall.as_secs_f64()).ceil() as usize
}

/// The most pushes that arrived at the stand-in within one 1-second bucket, the buckets counted
/// from the first push.
fn busiest_second(line: &StandIn) -> usize {
    let times: Vec<Instant> = line.requests_to(PUSH).iter().map(|r| r.received).collect();
    let Some(first) = times.iter().min().copied() else { return 0 };
    let mut buckets = std::collections::BTreeMap::<u128, usize>::new();
    for t in times {
        *buckets.entry((t - first).as_millis() / 1000).or_default() += 1;
    }
    buckets.into_values().max().unwrap_or(0)
}

async fn wait_for_pushes(line: &StandIn, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while line.requests_to(PUSH).len() < n {
        assert!(tokio::time::Instant::now() < deadline, "pushed only {} of {n}", line.requests_to(PUSH).len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_gateways_together_stay_within_the_channels_limit() {
    let Some(t) = database().await else { return };
    let line = StandIn::start().await;
    let nodes = 3;
    let spools = spools(&t, &line, 0..nodes).await;
    wait_for_share(&spools, nodes as u32).await;
    let each = share(LIMIT, nodes as u32);
    for (spool, _, metrics) in &spools {
        assert_eq!(spool.rates().0, each, "each node takes its share of the push limit");
        let text = metrics.render(&Default::default());
        assert!(text.contains(&format!("mail2line_rate_share_nodes {nodes}")), "{text}");
    }
    // Enough mail for several seconds at the shared limit, handed to every node at once.
    let per_node = 2 * LIMIT; // three nodes: about six seconds of pushes
    let probe = StallProbe::start(); // three nodes: about three seconds of pushes
    let accepted: Vec<_> = spools
        .iter()
        .enumerate()
        .map(|(i, (spool, _, _))| {
            let spool = spool.clone();
            tokio::spawn(async move { spool.accept(jobs(i, per_node), false).await })
        })
        .collect();
    for a in accepted {
        a.await.unwrap().unwrap();
    }
    wait_for_pushes(&line, nodes * per_node as usize).await;
    let stall = probe.stop();
    line.assert_all_valid();
    // Each node sends at most `each` a second plus its limiter's burst; the shares add up to no
    // more than the limit (they are rounded down), so together: the limit plus each node's
    // burst. Without the sharing each node would send up to the whole limit, three times as
    // much. The limiter spaces the sends; the stand-in sees arrivals, and a stall of this
    // process (a busy machine) delivers what it held back at once, so the bound for one second
    // of arrivals adds what the longest stall measured could bunch up.
    let bursts = nodes * burst(each);
    let bound = LIMIT as usize + bursts + bunched(LIMIT, stall);
    let busiest = busiest_second(&line);
    assert!(busiest <= bound, "{busiest} pushes in one second at the stand-in; the channel allows {LIMIT} (+ {bursts} of burst, + {} for a stall of {stall:?})", bound - LIMIT as usize - bursts);
    // Over the whole run stalls only stretch the time: from the first arrival to the last, the
    // nodes together sent no faster than the limit, bursts aside.
    let times: Vec<Instant> = line.requests_to(PUSH).iter().map(|r| r.received).collect();
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    let allowed = (LIMIT as f64 * span.as_secs_f64()).floor() as usize + bursts + 1;
    assert!(times.len() <= allowed, "{} pushes in {span:?}: more than {LIMIT}/s (+ {bursts} of burst)", times.len());
    assert_eq!(line.requests_to(PUSH).len(), nodes * per_node as usize, "each mail pushed once");
    for (_, runner, _) in spools {
        runner.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_alone_takes_the_whole_limit_and_shares_it_while_another_runs() {
    let Some(t) = database().await else { return };
    let line = StandIn::start().await;
    let first = spools(&t, &line, 0..1).await;
    wait_for_share(&first, 1).await;
    let (spool, _, _) = &first[0];
    let multicast = Settings::from_config(&Delivery::default(), &Quota::default()).multicast_per_second;
    assert_eq!(spool.rates(), (LIMIT, multicast), "one node alone: the whole limit");
    spool.accept(jobs(0, LIMIT), false).await.unwrap();
    wait_for_pushes(&line, LIMIT as usize).await;
    let busiest = busiest_second(&line);
    assert!(busiest <= LIMIT as usize + burst(LIMIT), "{busiest} pushes in one second");

    // A second gateway on the same database: both count two nodes and take half each.
    let second = spools(&t, &line, 1..2).await;
    let both: Vec<_> = first.into_iter().chain(second).collect();
    wait_for_share(&both, 2).await;
    for (spool, _, _) in &both {
        assert_eq!(spool.rates(), (share(LIMIT, 2), share(multicast, 2)));
    }
    // The second stops cleanly and removes its heartbeat: the first takes the whole limit again
    // at its next round, not only once the heartbeat is too old to count.
    let mut both = both.into_iter();
    let (first, second) = (both.next().unwrap(), both.next().unwrap());
    second.1.shutdown(Duration::from_secs(5)).await;
    let rows: i64 = t.admin().await.query_one("SELECT count(*) FROM nodes", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1, "the stopped node's heartbeat is gone");
    let first = vec![first];
    wait_for_share(&first, 1).await;
    assert_eq!(first[0].0.rates(), (LIMIT, multicast));
    for (_, runner, _) in first {
        runner.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_out_of_reach_leaves_the_last_share_in_place() {
    let Some(t) = database().await else { return };
    let line = StandIn::start().await;
    let both = spools(&t, &line, 0..2).await;
    wait_for_share(&both, 2).await;
    let shared = both[0].0.rates();
    assert_eq!(shared.0, share(LIMIT, 2));
    // The database goes away under both nodes: no heartbeat can be written nor counted.
    let admin = database().await.unwrap().admin().await;
    admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", t.name)).await.unwrap();
    // Several rounds later, and past the live window (after which the other node would no
    // longer be counted), each still sends at its last share, not at the whole limit.
    tokio::time::sleep(mail2line::spool::share::LIVE_WITHIN + 2 * mail2line::spool::share::HEARTBEAT).await;
    for (spool, _, _) in &both {
        assert_eq!(spool.rates(), shared);
        assert_eq!(spool.rate_share_nodes(), 2);
    }
    for (_, runner, _) in both {
        runner.shutdown(Duration::from_secs(5)).await;
    }
}
