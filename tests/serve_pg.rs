//! `[storage] url`: the real binary on a real PostgreSQL (issue #21), with the LINE stand-in.
//!
//! One gateway delivers each mail once and keeps its durable state in the database (nothing
//! spool-like in `storage.dir`); two gateways on one database deliver every mail once and see
//! each other's followers; a gateway killed with a claimed job in flight delivers it once after
//! its restart (same retry key, LINE's 409); a database that goes away turns mail into
//! `451 4.3.0` and `/readyz` into 503 while `/healthz` stays 200, and the gateway recovers by
//! itself; `queue`, `quota` and `followers` read the database; the password comes from
//! `$MAIL2LINE_STORAGE_PASSWORD` or `password_file`, and a wrong one is never printed.
//!
//! The database is `support::postgres` (skipped with a notice without PostgreSQL, unless
//! `MAIL2LINE_REQUIRE_POSTGRES=1`); a database "going away" is a TCP proxy the test cuts, since
//! the shared test cluster cannot be stopped.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::cli::{self, Run};
use support::gateway::{addr, code, user, GatewayProcess, Options, TOKEN};
use support::postgres::{self, TestDb};
use support::numbered::{self, assert_only as assert_exactly_once, wait_accepted};
use support::standin::{Behaviour, StandIn};
use tokio::task::block_in_place;

/// Fast retries and scans, coalescing off: one request per mail.
const FAST: &str = "[delivery]\nretry_base_ms = 50\nretry_max_secs = 1\nscan_interval_ms = 50\nquota_probe_secs = 1\ncoalesce_secs = 0";

/// `[storage]` keys for `url` as node `node` (appended to the launcher's `[storage]` table),
/// then `FAST`.
fn pg_extra(url: &str, node: &str) -> String {
    format!("url = \"{url}\"\nnode = \"{node}\"\n\n{FAST}\n")
}

/// A gateway on `url` as `node`, the password in `$MAIL2LINE_STORAGE_PASSWORD`.
fn start(line: &StandIn, db: &TestDb, url: &str, node: &str, smtp_extra: &str) -> GatewayProcess {
    let base = line.base_url();
    let extra = pg_extra(url, node);
    let env = [("MAIL2LINE_STORAGE_PASSWORD", db.password.expose())];
    block_in_place(|| GatewayProcess::start(Options { api_base_url: &base, extra: &extra, smtp_extra, env: &env, ..Default::default() }))
}

fn mail(seq: usize) -> Vec<u8> {
    numbered::mail(seq, "pg.test")
}

/// Rows of one column of a query, as text.
async fn texts(db: &TestDb, sql: &str) -> Vec<String> {
    db.admin().await.query(sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")).iter().map(|r| r.get::<_, String>(0)).collect()
}

/// A follow event for `id`, as LINE sends it.
fn follow(id: &str, event_id: &str) -> Vec<u8> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    serde_json::to_vec(&json!({
        "destination": support::webhook::BOT,
        "events": [{
            "type": "follow", "mode": "active", "timestamp": now,
            "source": {"type": "user", "userId": id},
            "webhookEventId": event_id,
            "deliveryContext": {"isRedelivery": false},
            "replyToken": format!("rt{event_id}"),
            "follow": {"isUnblocked": false},
        }],
    }))
    .unwrap()
}

/// Runs `mail2line <args> --config <config>` with `env`; (exit code, stdout, stderr).
fn cli(config: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let run = Run::of(cli::mail2line(args, config).envs(env.iter().copied()));
    (run.code, run.stdout, run.stderr)
}

async fn http_get(gw: &GatewayProcess, path: &str) -> (u16, String) {
    let url = format!("http://{}{path}", gw.http.expect("HTTP address"));
    let r = reqwest::get(url).await.expect("HTTP request");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_on_postgres_delivers_once_and_keeps_its_state_in_the_database() {
    let Some(db) = postgres::database().await else { return };
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let gw = start(&line, &db, &db.url, "node-a", "");
    let logs = gw.logs();
    assert!(logs.contains(&format!("store: PostgreSQL at {}:{}/{} as {} as node node-a", db.host, db.port, db.name, db.user)), "{logs}");
    let to = user(1);
    block_in_place(|| gw.send_raw("a@example.com", &[&addr(&to)], &mail(1))).expect("250");
    let accepted = wait_accepted(&line, 1, Duration::from_secs(20)).await;
    assert_eq!(accepted[0].body["to"], to);
    assert_exactly_once(&line, &[1]);
    // The rows are in PostgreSQL: the delivered request's retry key, the month's count, this
    // node's heartbeat.
    let key = accepted[0].header("x-line-retry-key").unwrap().to_owned();
    let start = Instant::now();
    while texts(&db, "SELECT retry_key FROM sent_keys").await != [key.clone()] {
        assert!(start.elapsed() < Duration::from_secs(10), "sent_keys: {:?}", texts(&db, "SELECT retry_key FROM sent_keys").await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The counts are summed in memory and written every 250 ms (`spool/counts_pg.rs`): later
    // than the delivery's own commit, by up to a busy machine's delay.
    while texts(&db, "SELECT key FROM usage WHERE kind = 'target'").await.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "no usage row written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(texts(&db, "SELECT key FROM usage WHERE kind = 'target'").await, [to.clone()]);
    assert_eq!(texts(&db, "SELECT node_id FROM nodes").await, ["node-a"]);
    assert!(texts(&db, "SELECT state FROM jobs").await.is_empty(), "a delivered job is gone");
    // Nothing spool-like in storage.dir: no SQLite spool or registry there.
    let data = gw.dir.path().join("data");
    let files: Vec<String> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(files.iter().all(|f| !f.ends_with(".sqlite3") && !f.contains("sqlite3-")), "storage.dir holds {files:?}");
    assert!(!gw.logs().contains(db.password.expose()), "the password reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_on_one_database_deliver_each_mail_once_and_share_followers() {
    let Some(db) = postgres::database().await else { return };
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let a = start(&line, &db, &db.url, "node-a", "require_follower = true");
    let b = start(&line, &db, &db.url, "node-b", "require_follower = true");
    // A follow reaches node A's webhook; node B then takes mail for that user (its RCPT check
    // reads a mirror reloaded every few seconds, so it is polled, not timed).
    let u = user(7);
    let (status, body) = support::webhook::post(&a, follow(&u, "01HZFOLLOWPG0000000000000A")).await;
    assert_eq!(status, 200, "{body}");
    let start = Instant::now();
    let mut sent = Vec::new();
    loop {
        match block_in_place(|| b.send_raw("a@example.com", &[&addr(&u)], &mail(0))) {
            Ok(_) => break,
            Err(e) if code(&e) == Some(550) && start.elapsed() < Duration::from_secs(15) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("node B never took mail for the follower node A recorded: {e}\n{}", b.logs()),
        }
    }
    sent.push(0);
    // A stranger is still refused by both.
    let e = block_in_place(|| a.send_raw("a@example.com", &[&addr(&user(8))], &mail(99))).unwrap_err();
    assert_eq!(code(&e), Some(550));
    // Mail to both nodes, each delivered once.
    for seq in 1..=20 {
        let gw = if seq % 2 == 0 { &a } else { &b };
        block_in_place(|| gw.send_raw("a@example.com", &[&addr(&u)], &mail(seq))).expect("250");
        sent.push(seq);
    }
    wait_accepted(&line, sent.len(), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_exactly_once(&line, &sent);
    let mut nodes = texts(&db, "SELECT node_id FROM nodes ORDER BY node_id").await;
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);
    line.assert_all_valid();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_with_a_claimed_job_delivers_it_once_after_its_restart() {
    let Some(db) = postgres::database().await else { return };
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let mut a = start(&line, &db, &db.url, "node-a", "");
    let b = start(&line, &db, &db.url, "node-b", "");
    // LINE is slow to answer the first push: node A cannot finish it before it is killed, right
    // after the 250, with the job claimed (maybe on the wire; LINE never took it then).
    line.push_behaviour(Behaviour::Delay(Duration::from_secs(3)));
    block_in_place(|| a.send_raw("a@example.com", &[&addr(&user(2))], &mail(1))).expect("250");
    a.kill9();
    let claimed = texts(&db, "SELECT claimed_by FROM jobs WHERE state = 'pending'").await;
    assert_eq!(claimed, ["node-a"], "the job is node A's: it claimed what it inserted, and its lease runs");
    // Node B, alive all along, leaves the claimed job alone; node A, restarted, releases its
    // old claims and sends the job again under the same key.
    block_in_place(|| a.restart());
    wait_accepted(&line, 1, Duration::from_secs(30)).await;
    let start = Instant::now();
    while !texts(&db, "SELECT state FROM jobs").await.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "the job stayed: {}", a.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_exactly_once(&line, &[1]);
    assert!(a.logs().contains("---- restart ----"));
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_takes_over_a_dead_nodes_job_when_its_lease_ends() {
    let Some(db) = postgres::database().await else { return };
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    // The shortest lease allowed (60 s): this test waits for it to end.
    let lease = "lease_secs = 60\n";
    let base = line.base_url();
    let env = [("MAIL2LINE_STORAGE_PASSWORD", db.password.expose())];
    let launch = |node: &str| {
        let extra = format!("url = \"{}\"\nnode = \"{node}\"\n{lease}\n{FAST}\n", db.url);
        block_in_place(|| GatewayProcess::start(Options { api_base_url: &base, extra: &extra, env: &env, ..Default::default() }))
    };
    let mut a = launch("node-a");
    let b = launch("node-b");
    line.push_behaviour(Behaviour::Delay(Duration::from_secs(3)));
    block_in_place(|| a.send_raw("a@example.com", &[&addr(&user(6))], &mail(1))).expect("250");
    a.kill9();
    assert_eq!(texts(&db, "SELECT claimed_by FROM jobs WHERE state = 'pending'").await, ["node-a"]);
    // Node A stays dead: node B takes the job once the lease has run out, with its retry key.
    wait_accepted(&line, 1, Duration::from_secs(150)).await;
    let start = Instant::now();
    while !texts(&db, "SELECT state FROM jobs").await.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(20), "the job stayed: {}", b.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_exactly_once(&line, &[1]);
}

/// A TCP proxy to the database that the test can cut and restore: cut, it closes every
/// connection it carries and every new one at once, as a database host that went away.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(to: (String, u16)) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (up2, links2) = (up.clone(), links.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let to = to.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect((to.0.as_str(), to.1)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                links2.lock().unwrap().push(link);
            }
        });
        Proxy { port, up, links }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_database_mail_gets_451_and_readyz_503_and_the_gateway_recovers() {
    let Some(db) = postgres::database().await else { return };
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let proxy = Proxy::start((db.host.clone(), db.port)).await;
    let url = format!("postgres://{}@127.0.0.1:{}/{}", db.user, proxy.port, db.name);
    let gw = start(&line, &db, &url, "node-a", "");
    block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(1))], &mail(1))).expect("250 while the database is there");
    wait_accepted(&line, 1, Duration::from_secs(20)).await;
    assert_eq!(http_get(&gw, "/readyz").await.0, 200);

    proxy.cut();
    let e = block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(1))], &mail(2))).expect_err("no 250 without the database");
    assert_eq!(code(&e), Some(451), "{e}");
    assert!(e.to_string().contains("4.3.0") && e.to_string().contains("database"), "{e}");
    let (status, body) = http_get(&gw, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("store:") && body.contains("PostgreSQL"), "{body}");
    assert_eq!(http_get(&gw, "/healthz").await.0, 200, "the process itself is fine");
    // LINE's webhook is answered 500, so LINE delivers the event again later.
    let (status, _) = support::webhook::post(&gw, follow(&user(3), "01HZFOLLOWPG0000000000000B")).await;
    assert_eq!(status, 500);

    proxy.restore();
    // Back by itself: the pool opens new connections (polled, not timed).
    let start = Instant::now();
    loop {
        match block_in_place(|| gw.send_raw("a@example.com", &[&addr(&user(1))], &mail(3))) {
            Ok(_) => break,
            Err(e) if code(&e) == Some(451) && start.elapsed() < Duration::from_secs(30) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("the gateway did not recover: {e}\n{}", gw.logs()),
        }
    }
    wait_accepted(&line, 2, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_exactly_once(&line, &[1, 3]);
    let start = Instant::now();
    while http_get(&gw, "/readyz").await.0 != 200 {
        assert!(start.elapsed() < Duration::from_secs(70), "readyz stayed 503: {}", http_get(&gw, "/readyz").await.1);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(!gw.logs().contains(db.password.expose()), "the password reached the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_quota_and_followers_read_the_database_with_the_password_from_a_file() {
    let Some(db) = postgres::database().await else { return };
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let pw_dir = tempfile::tempdir().unwrap();
    let pw_file = pw_dir.path().join("pg-password");
    std::fs::write(&pw_file, format!("{}\n", db.password.expose())).unwrap();
    let base = line.base_url();
    let extra = format!("url = \"{}\"\nnode = \"node-a\"\npassword_file = \"{}\"\n\n{FAST}\n", db.url, pw_file.display());
    let gw = block_in_place(|| GatewayProcess::start(Options { api_base_url: &base, extra: &extra, ..Default::default() }));
    let u = user(4);
    assert_eq!(support::webhook::post(&gw, follow(&u, "01HZFOLLOWPG0000000000000C")).await.0, 200);
    // One mail delivered, one refused by LINE for good (dead).
    block_in_place(|| gw.send_raw("a@example.com", &[&addr(&u)], &mail(1))).expect("250");
    wait_accepted(&line, 1, Duration::from_secs(20)).await;
    line.push_behaviour(Behaviour::Status(400, json!({"message": "The request body has 1 error(s)"})));
    block_in_place(|| gw.send_raw("a@example.com", &[&addr(&u)], &mail(2))).expect("250");
    let start = Instant::now();
    while texts(&db, "SELECT state FROM jobs").await != ["dead"] {
        assert!(start.elapsed() < Duration::from_secs(20), "no dead job: {}", gw.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let config = gw.config_path.clone();
    let (code, out, err) = block_in_place(|| cli(&config, &["queue", "list", "--json"], &[]));
    assert_eq!(code, 0, "{err}");
    let jobs: Value = serde_json::from_str(&out).unwrap();
    let jobs = jobs.as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{out}");
    assert_eq!((jobs[0]["state"].as_str(), jobs[0]["target"].as_str()), (Some("dead"), Some(u.as_str())));
    let id = jobs[0]["id"].as_i64().unwrap().to_string();
    let (code, out, err) = block_in_place(|| cli(&config, &["queue", "show", &id], &[]));
    assert!(code == 0 && out.contains("The request body has 1 error(s)"), "{out}{err}");
    // retry makes it pending in the database, and the gateway sends it.
    let (code, out, err) = block_in_place(|| cli(&config, &["queue", "retry", &id], &[]));
    assert!(code == 0 && out.contains(&format!("job {id}: dead → pending")), "{out}{err}");
    wait_accepted(&line, 2, Duration::from_secs(20)).await;
    let (code, out, err) = block_in_place(|| cli(&config, &["quota", "--json"], &[]));
    assert_eq!(code, 0, "{err}");
    let quota: Value = serde_json::from_str(&out).unwrap();
    assert!(quota.to_string().contains(&u), "quota names the recipient: {out}");
    let (code, out, err) = block_in_place(|| cli(&config, &["followers", "list", "--json"], &[]));
    assert_eq!(code, 0, "{err}");
    let followers: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(followers[0]["id"].as_str(), Some(u.as_str()), "{out}");
    // drop of a job that is not there names the database.
    let (code, _, err) = block_in_place(|| cli(&config, &["queue", "drop", "999999"], &[]));
    assert!(code == 1 && err.contains("no job 999999 in the spool at PostgreSQL at"), "{err}");
    // The command with a wrong password in the environment (it wins over the file): refused,
    // without the password.
    let (code, _, err) = block_in_place(|| cli(&config, &["queue", "list"], &[("MAIL2LINE_STORAGE_PASSWORD", "wrong-pg-pw-5531")]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused the login") && !err.contains("wrong-pg-pw-5531"), "{err}");
    // check-config shows the store and, online, reaches it.
    let (_, out, _) = block_in_place(|| cli(&config, &["check-config"], &[]));
    assert!(out.contains(&format!("store: PostgreSQL at {}:{}/{} as {} as node node-a", db.host, db.port, db.name, db.user)), "{out}");
    assert!(out.contains("storage.password: file"), "{out}");
    assert!(!out.contains(db.password.expose()), "check-config printed the password: {out}");
    let (code, out, err) = block_in_place(|| cli(&config, &["check-config", "--online"], &[]));
    assert!(out.contains(&format!("database: ok: {}:{}/{} as {} (schema version", db.host, db.port, db.name, db.user)), "{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = block_in_place(|| cli(&config, &["check-config", "--online"], &[("MAIL2LINE_STORAGE_PASSWORD", "wrong-pg-pw-5532")]));
    assert!(code != 0 && out.contains("database: PostgreSQL at") && out.contains("refused the login"), "{out}");
    assert!(!out.contains("wrong-pg-pw-5532"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_mode_keeps_only_the_followers_in_the_database() {
    let Some(db) = postgres::database().await else { return };
    let line = StandIn::start().await;
    line.expected_token(TOKEN);
    let base = line.base_url();
    let extra = format!("url = \"{}\"\nnode = \"direct-a\"\n\n[delivery]\nmode = \"direct\"\n", db.url);
    let env = [("MAIL2LINE_STORAGE_PASSWORD", db.password.expose())];
    let gw = block_in_place(|| {
        GatewayProcess::start(Options { api_base_url: &base, extra: &extra, smtp_extra: "require_follower = true", env: &env, ..Default::default() })
    });
    let u = user(5);
    assert_eq!(support::webhook::post(&gw, follow(&u, "01HZFOLLOWPG0000000000000D")).await.0, 200);
    assert_eq!(texts(&db, "SELECT id FROM followers WHERE active").await, [u.clone()], "the follow is in PostgreSQL");
    // A 250 in direct mode means LINE took it: no job was stored anywhere.
    block_in_place(|| gw.send_raw("a@example.com", &[&addr(&u)], &mail(1))).expect("250");
    assert_exactly_once(&line, &[1]);
    assert!(texts(&db, "SELECT mail_id FROM jobs").await.is_empty());
    assert!(!gw.dir.path().join("data").join("spool.sqlite3").exists() && !gw.dir.path().join("data").join("followers.sqlite3").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_stops_the_start_without_printing_it() {
    let Some(db) = postgres::database().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[smtp]\nlisten = \"127.0.0.1:0\"\ndomain = \"{}\"\n\n[line]\napi_base_url = \"http://127.0.0.1:9\"\nchannel_access_token = \"{TOKEN}\"\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\n\n[storage]\ndir = \"{}\"\nurl = \"{}\"\n",
        support::gateway::DOMAIN,
        dir.path().join("data").display(),
        db.url
    );
    let env = [("MAIL2LINE_STORAGE_PASSWORD", "wrong-pg-pw-8812")];
    let err = block_in_place(|| GatewayProcess::launch(dir, &config, &Options { env: &env, ..Default::default() }))
        .err()
        .expect("no start with a wrong database password");
    assert!(err.contains("refused the login of user"), "{err}");
    assert!(!err.contains("wrong-pg-pw-8812"), "the wrong password was printed: {err}");
}

#[test]
fn a_database_that_cannot_be_reached_at_start_is_a_failed_start() {
    // Nothing listens on the port: the start fails at once (exit 1, the reason on stderr) and
    // systemd's Restart= tries again; no PostgreSQL needed for this one.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[smtp]\nlisten = \"127.0.0.1:0\"\ndomain = \"{}\"\n\n[line]\nchannel_access_token = \"{TOKEN}\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
             [storage]\ndir = \"{}\"\nurl = \"postgres://gw:closed-pg-pw-7@127.0.0.1:{port}/mail\"\n",
            support::gateway::DOMAIN,
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let (code, out, err) = cli(&config, &["serve"], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("cannot reach PostgreSQL at 127.0.0.1:{port}/mail as gw")), "{err}");
    assert!(!err.contains("closed-pg-pw-7") && !out.contains("closed-pg-pw-7"), "{err}");
    assert!(!err.contains("SMTP listening"), "nothing was served: {err}");
}
