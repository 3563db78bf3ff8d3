//! The channel's rate limit shared across gateways (issue #21): LINE's limit is per channel, so
//! several spools on one PostgreSQL (each a gateway: `Spool::start_with_store` on
//! `Store::open_postgres`) each send at most their share of `max_requests_per_second`, the
//! limit divided by the live nodes of the heartbeat table (`spool/share.rs`).
//!
//! Measured where LINE would measure it: the stand-in (on a thread of its own at a raised
//! priority, so its stamps are not those of a busy machine) records when each push arrived,
//! and no sliding second of the nodes' pushes together holds more than the limit. One spool
//! alone takes the whole limit; a node joining the others waits until they have counted it; a
//! node that cannot reach the database drops to the floor before the others stop counting it.
//!
//! Without PostgreSQL these print "SKIPPED: …" and pass, unless `MAIL2LINE_REQUIRE_POSTGRES=1`.

mod support;

use std::sync::Arc;
use std::time::Duration;

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

/// The most pushes that arrived at the stand-in within any one second (sliding).
fn busiest_second(line: &StandIn) -> usize {
    support::chaos::max_in_one_second(&line.requests())
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
    let line = StandIn::start_prioritised().await;
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
    line.assert_all_valid();
    // Each node lets no more than its share into any second of its sends, stalls of this busy
    // process included (the limiter's window); the shares add up to 19/20 of the limit, the rest
    // is room for the way to the stand-in. Without the sharing each node would send up to the
    // whole limit, three times as much.
    let busiest = busiest_second(&line);
    assert!(busiest <= LIMIT as usize, "{busiest} pushes in one second at the stand-in; the channel allows {LIMIT}");
    assert_eq!(line.requests_to(PUSH).len(), nodes * per_node as usize, "each mail pushed once");
    for (_, runner, _) in spools {
        runner.shutdown(Duration::from_secs(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_alone_takes_the_whole_limit_and_shares_it_while_another_runs() {
    let Some(t) = database().await else { return };
    let line = StandIn::start_prioritised().await;
    let first = spools(&t, &line, 0..1).await;
    wait_for_share(&first, 1).await;
    let (spool, _, _) = &first[0];
    let multicast = Settings::from_config(&Delivery::default(), &Quota::default()).multicast_per_second;
    assert_eq!(spool.rates(), (LIMIT, multicast), "one node alone: the whole limit");
    spool.accept(jobs(0, LIMIT), false).await.unwrap();
    wait_for_pushes(&line, LIMIT as usize).await;
    let busiest = busiest_second(&line);
    assert!(busiest <= LIMIT as usize, "{busiest} pushes in one second");

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
async fn a_database_out_of_reach_drops_the_node_to_the_floor_before_the_others_stop_counting_it() {
    let Some(t) = database().await else { return };
    let line = StandIn::start_prioritised().await;
    let both = spools(&t, &line, 0..2).await;
    wait_for_share(&both, 2).await;
    let shared = both[0].0.rates();
    assert_eq!(shared.0, share(LIMIT, 2));
    // The database goes away under both nodes: no heartbeat can be written nor counted.
    let admin = database().await.unwrap().admin().await;
    admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", t.name)).await.unwrap();
    // A round or two later each still sends at its last share: a slow round is no reason to stop.
    tokio::time::sleep(mail2line::spool::share::HEARTBEAT).await;
    for (spool, _, _) in &both {
        assert_eq!(spool.rates(), shared);
    }
    // By the time the others would stop counting it (its heartbeat older than the live window)
    // and take its share, each has dropped to the floor: it cannot tell whether the others still
    // count it, so it must not keep a share they may have taken.
    tokio::time::sleep(mail2line::spool::share::LIVE_WITHIN).await;
    for (spool, _, _) in &both {
        assert_eq!(spool.rates(), (1, 1), "at the floor without a heartbeat");
    }
    for (_, runner, _) in both {
        runner.shutdown(Duration::from_secs(5)).await;
    }
}

/// A node joining waits until every other live node has counted it: a node whose heartbeat
/// rounds come late (here a stand-in row whose acknowledgement the test holds back) would
/// otherwise still send its old, larger share beside the joiner's.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_joining_gateway_waits_until_the_others_have_counted_it() {
    let Some(t) = database().await else { return };
    let line = StandIn::start_prioritised().await;
    let first = spools(&t, &line, 0..1).await;
    wait_for_share(&first, 1).await;
    // A "late" node: live (its heartbeat kept fresh by the test), sharing the channel, but its
    // acknowledged count stays at 1 until the test lets it catch up.
    let admin = t.admin().await;
    let channel: String = admin.query_one("SELECT channel FROM rate_shares WHERE node_id = 'node-0'", &[]).await.unwrap().get(0);
    let beat = "INSERT INTO nodes (node_id, started_at, last_seen) VALUES ('late', 0, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) \
                ON CONFLICT (node_id) DO UPDATE SET last_seen = excluded.last_seen";
    admin.execute(beat, &[]).await.unwrap();
    admin.execute("INSERT INTO rate_shares (channel, node_id, counted, updated_at) VALUES ($1, 'late', 1, 0)", &[&channel]).await.unwrap();
    let heart = {
        let admin = t.admin().await;
        tokio::spawn(async move {
            loop {
                admin.execute(beat, &[]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let second = spools(&t, &line, 1..2).await;
    // Well past JOIN_WAIT: the first node has counted three and acknowledged it, the late one
    // has not, so the joiner is still at the floor.
    tokio::time::sleep(mail2line::spool::share::JOIN_WAIT + 3 * mail2line::spool::share::HEARTBEAT).await;
    assert_eq!(first[0].0.rates().0, share(LIMIT, 3), "the first node counts the late one and the joiner");
    let acked: i32 = admin.query_one("SELECT counted FROM rate_shares WHERE node_id = 'node-0'", &[]).await.unwrap().get(0);
    assert_eq!(acked, 3, "the first node acknowledged the count its share is set for");
    assert_eq!(second[0].0.rates(), (1, 1), "the joiner waits at the floor for the late node");
    assert_eq!(second[0].0.rate_share_nodes(), 3);
    // The late node catches up: the joiner takes its share at its next round.
    admin.execute("UPDATE rate_shares SET counted = 3 WHERE node_id = 'late'", &[]).await.unwrap();
    let both: Vec<_> = first.into_iter().chain(second).collect();
    wait_for_share(&both, 3).await;
    heart.abort();
    for (_, runner, _) in both {
        runner.shutdown(Duration::from_secs(5)).await;
    }
}

/// Deliveries a spool recorded (its latency histogram's count).
fn delivered(metrics: &Metrics) -> usize {
    let text = metrics.render(&Default::default());
    let line = text.lines().find(|l| l.starts_with("mail2line_delivery_latency_seconds_count")).unwrap_or_else(|| panic!("no latency count in {text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// A backlog accepted by one gateway is sent by all of them: a scan claims only what its
/// gateway can send in the next two seconds (`policy::claim_budget`), so the others find jobs
/// to claim. Claiming the whole backlog, the first would send it alone at its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backlog_accepted_by_one_gateway_is_sent_by_all() {
    let Some(t) = database().await else { return };
    let line = StandIn::start_prioritised().await;
    let both = spools(&t, &line, 0..2).await;
    wait_for_share(&both, 2).await;
    let n = 4 * LIMIT; // about nine seconds at the two shares
    both[0].0.accept(jobs(0, n), false).await.unwrap();
    wait_for_pushes(&line, n as usize).await;
    line.assert_all_valid();
    let (first, second) = (delivered(&both[0].2), delivered(&both[1].2));
    assert_eq!(first + second, n as usize, "each job pushed once");
    assert!(second >= n as usize / 4, "the second gateway sent {second} of the {n} jobs the first accepted");
    assert!(busiest_second(&line) <= LIMIT as usize, "{} pushes in one second", busiest_second(&line));
    for (_, runner, _) in both {
        runner.shutdown(Duration::from_secs(5)).await;
    }
}
