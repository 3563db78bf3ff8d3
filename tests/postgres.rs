//! `mail2line::pg` against a real PostgreSQL (a throwaway cluster, `tests/support/postgres.rs`):
//! migrations applied once and recorded, also when two nodes start at the same moment; a schema
//! newer than the binary refused; a server where a commit is not durable refused; connection
//! errors that never show the password; probe, heartbeats and the live node count; and the
//! claim pattern the spool's port will rely on (`FOR UPDATE SKIP LOCKED` with a lease).
//!
//! Without PostgreSQL each test prints "SKIPPED: …" and passes, unless
//! `MAIL2LINE_REQUIRE_POSTGRES=1` (set by `.ci/run`).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use mail2line::pg::{migrate::MIGRATIONS, Database, PgError};
use mail2line::secret::Secret;
use support::postgres::{database, TestDb};

async fn connect(db: &TestDb, app: &str) -> Database {
    Database::connect(&db.url, Some(db.password.clone()), app).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

async fn ledger(db: &Database) -> Vec<(i64, String)> {
    let client = db.client().await.unwrap();
    let rows = client.query("SELECT version, name FROM schema_migrations ORDER BY version", &[]).await.unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

fn all_versions() -> Vec<i64> {
    MIGRATIONS.iter().map(|m| m.version).collect()
}

#[tokio::test]
async fn migrations_apply_once_and_record_their_version() {
    let Some(t) = database().await else { return };
    let db = connect(&t, "node-a").await;
    assert_eq!(db.schema_version().await.unwrap(), None, "a fresh database has no schema");
    assert_eq!(db.migrate().await.unwrap(), all_versions());
    let recorded = ledger(&db).await;
    assert_eq!(recorded, MIGRATIONS.iter().map(|m| (m.version, m.name.to_owned())).collect::<Vec<_>>());
    let client = db.client().await.unwrap();
    let applied_at: i64 = client.query_one("SELECT applied_at FROM schema_migrations WHERE version = 1", &[]).await.unwrap().get(0);
    assert!((applied_at - mail2line::clock::now_ms()).abs() < 60_000, "applied_at is unix ms: {applied_at}");
    // The tables every store will need are there.
    for table in ["jobs", "usage", "sent_keys", "quota", "health", "mails", "sent_messages", "answers", "followers", "webhook_events", "media", "nodes"] {
        let found: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.unwrap().get(0);
        assert!(found, "table {table} missing");
    }
    drop(client);

    // A second start (the same node again, or another one) finds nothing to do.
    assert!(db.migrate().await.unwrap().is_empty());
    let again = connect(&t, "node-b").await;
    assert!(again.migrate().await.unwrap().is_empty());
    assert_eq!(ledger(&again).await, recorded);
    assert_eq!(again.schema_version().await.unwrap(), Some(*all_versions().last().unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_migrating_at_the_same_moment_apply_the_schema_once() {
    let Some(t) = database().await else { return };
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(connect(&t, &format!("node-{i}")).await);
    }
    // All start at once; without the lock, two would CREATE TABLE jobs and one would fail.
    let tasks: Vec<_> = nodes.iter().cloned().map(|n| tokio::spawn(async move { n.migrate().await })).collect();
    let mut applied = Vec::new();
    for task in tasks {
        applied.extend(task.await.unwrap().unwrap_or_else(|e| panic!("a racing node failed: {e}")));
    }
    assert_eq!(applied, all_versions(), "each migration applied by exactly one node");
    assert_eq!(ledger(&nodes[0]).await.len(), MIGRATIONS.len());
    // The lock is released: a later start gets it at once.
    tokio::time::timeout(Duration::from_secs(10), nodes[1].migrate()).await.expect("the advisory lock was left held").unwrap();
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused_and_left_alone() {
    let Some(t) = database().await else { return };
    let db = connect(&t, "new").await;
    db.migrate().await.unwrap();
    let future = *all_versions().last().unwrap() + 1;
    let admin = t.admin().await;
    admin.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, 'from_the_future', 0)", &[&future]).await.unwrap();

    let old = connect(&t, "old").await;
    let e = old.migrate().await.unwrap_err();
    assert_eq!(e, PgError::SchemaTooNew { found: future, known: future - 1 });
    let text = e.to_string();
    assert!(text.contains(&format!("version {future}")) && text.contains("newer mail2line"), "{text}");
    assert_eq!(ledger(&old).await.len(), MIGRATIONS.len() + 1, "nothing written");
    // The refusal released the lock: the newer binary (here: the ledger as it is) is not blocked.
    // In this test's database only: the other tests of this binary migrate theirs meanwhile.
    let locked: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locked, 0);
}

#[tokio::test]
async fn a_server_whose_commits_are_not_durable_is_refused() {
    let Some(t) = database().await else { return };
    let admin = t.admin().await;
    admin.batch_execute(&format!("ALTER DATABASE {} SET synchronous_commit = off", t.name)).await.unwrap();
    let e = Database::connect(&t.url, Some(t.password.clone()), "gw").await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PgError::NotDurable { setting: "synchronous_commit", .. }), "{text}");
    assert!(text.contains("synchronous_commit = off") && text.contains("RESET synchronous_commit") && text.contains("250"), "{text}");
    assert!(text.contains(&t.name), "names the database: {text}");

    // `local` flushes the local WAL before the commit returns: durable, accepted.
    admin.batch_execute(&format!("ALTER DATABASE {} SET synchronous_commit = local", t.name)).await.unwrap();
    connect(&t, "gw").await;
    admin.batch_execute(&format!("ALTER DATABASE {} RESET synchronous_commit", t.name)).await.unwrap();
    connect(&t, "gw").await;
}

#[tokio::test]
async fn connection_errors_say_what_to_do_and_never_show_the_password() {
    let Some(t) = database().await else { return };
    let wrong = "Wr0ng-pa55word";
    let host_port = format!("{}:{}", t.host, t.port);

    // A wrong password, given separately and in the URL.
    for (url, password) in [
        (t.url.clone(), Some(Secret::new(wrong))),
        (format!("postgres://{}:{wrong}@{host_port}/{}", t.user, t.name), None),
    ] {
        let e = Database::connect(&url, password, "gw").await.unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(matches!(e, PgError::Login { .. }), "{text}");
        assert!(text.contains("password") && text.contains("check the user name"), "{text}");
        assert!(!text.contains(wrong), "the password leaked: {text}");
    }
    // The right password in the URL works (and may not be given twice).
    let url = format!("postgres://{}:{}@{host_port}/{}", t.user, t.password.expose(), t.name);
    Database::connect(&url, None, "gw").await.unwrap();
    assert_eq!(Database::connect(&url, Some(t.password.clone()), "gw").await.unwrap_err(), PgError::PasswordTwice);

    // Nobody listens: unreachable, quickly, without the password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://{}:{wrong}@127.0.0.1:{closed}/{}", t.user, t.name);
    let e = tokio::time::timeout(Duration::from_secs(30), Database::connect(&url, None, "gw")).await.expect("refused promptly").unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, PgError::Unreachable { .. }), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{closed}")) && text.contains("check that the server runs"), "{text}");
    assert!(!text.contains(wrong), "{text}");

    // A database that does not exist is named as such.
    let e = Database::connect(&format!("postgres://{}@{host_port}/no_such_db", t.user), Some(t.password.clone()), "gw").await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, PgError::Refused { .. }) && text.contains("no_such_db") && text.contains("database name"), "{text}");

    // sslmode=require (and its synonym verify-full) never falls back to plain text: this
    // server has no TLS, so the connection is refused rather than made in the clear.
    for mode in ["require", "verify-full"] {
        let url = format!("{}?sslmode={mode}", t.url);
        let e = Database::connect(&url, Some(t.password.clone()), "gw").await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PgError::TlsFailed { .. }) && text.contains("ssl = on"), "{mode}: {text}");
    }

    // A URL that cannot be read.
    let e = Database::connect(&format!("postgres://{}:{wrong}@{}:port/{}", t.user, t.host, t.name), None, "gw").await.unwrap_err();
    let text = format!("{e} {e:?}");
    assert!(matches!(e, PgError::Url { .. }) && !text.contains(wrong), "{text}");
}

#[tokio::test]
async fn probe_heartbeats_and_live_nodes() {
    let Some(t) = database().await else { return };
    let a = connect(&t, "gw-a").await;
    a.migrate().await.unwrap();
    let b = connect(&t, "gw-b").await;
    let admin = t.admin().await;

    a.probe().await.unwrap();
    b.probe().await.unwrap();
    a.probe().await.unwrap();
    let rows = admin.query("SELECT node, checked_at FROM health ORDER BY node", &[]).await.unwrap();
    let nodes: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(nodes, ["gw-a", "gw-b"], "one row per gateway, rewritten");
    let at: i64 = rows[0].get(1);
    assert!((at - mail2line::clock::now_ms()).abs() < 60_000);

    assert_eq!(a.live_nodes(10_000).await.unwrap(), 0, "no heartbeat yet");
    a.heartbeat("node-a").await.unwrap();
    b.heartbeat("node-b").await.unwrap();
    a.heartbeat("node-a").await.unwrap();
    assert_eq!(a.live_nodes(10_000).await.unwrap(), 2);
    assert_eq!(b.live_nodes(10_000).await.unwrap(), 2);
    // node-b falls silent for a minute: no longer counted; its next heartbeat brings it back.
    admin.execute("UPDATE nodes SET last_seen = last_seen - 60000 WHERE node_id = 'node-b'", &[]).await.unwrap();
    assert_eq!(a.live_nodes(10_000).await.unwrap(), 1);
    assert_eq!(a.live_nodes(120_000).await.unwrap(), 2);
    b.heartbeat("node-b").await.unwrap();
    assert_eq!(a.live_nodes(10_000).await.unwrap(), 2);
    let started: Vec<(i64, i64)> = admin
        .query("SELECT started_at, last_seen FROM nodes ORDER BY node_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(started.iter().all(|(s, l)| s <= l), "a heartbeat keeps started_at: {started:?}");

    // Probes fail, with a message, when the database refuses writes.
    admin.batch_execute(&format!("ALTER DATABASE {} SET default_transaction_read_only = on", t.name)).await.unwrap();
    let ro = connect(&t, "gw-ro").await;
    let e = ro.probe().await.unwrap_err();
    assert!(matches!(e, PgError::Query { .. }) && e.to_string().contains("read-only"), "{e}");
}

/// The claim the spool's port will use: due, unclaimed (or lease expired) jobs, locked with
/// SKIP LOCKED so that a second node passes over them instead of waiting, and leased.
const CLAIM: &str = "UPDATE jobs SET claimed_by = $1, lease_until = $2::bigint + $3::bigint WHERE id IN (
    SELECT id FROM jobs
    WHERE channel = '' AND state = 'pending' AND next_at <= $2 AND (lease_until IS NULL OR lease_until < $2)
    ORDER BY next_at, id LIMIT $4
    FOR UPDATE SKIP LOCKED)
    RETURNING id, retry_key";

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn skip_locked_claims_never_hand_one_job_to_two_nodes() {
    let Some(t) = database().await else { return };
    let db = connect(&t, "setup").await;
    db.migrate().await.unwrap();
    let now = mail2line::clock::now_ms();
    {
        let client = db.client().await.unwrap();
        client
            .execute(
                "INSERT INTO jobs (mail_id, path, body, retry_key, target, sender, created_at, next_at)
                 SELECT 'm' || i, '/v2/bot/message/push', '{}', 'key-' || i, 'U1', 's', $1::bigint, $1::bigint FROM generate_series(1, 300) AS i",
                &[&now],
            )
            .await
            .unwrap();
    }
    let lease: i64 = 60_000;
    // Three nodes claim in batches of 7, each holding its transaction open a moment so that
    // they overlap; every job must go to exactly one of them.
    let mut tasks = Vec::new();
    for node in ["n1", "n2", "n3"] {
        let db = connect(&t, node).await;
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut client = db.client().await.unwrap();
                let tx = client.transaction().await.unwrap();
                let rows = tx.query(CLAIM, &[&node, &now, &lease, &7i64]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
                tx.commit().await.unwrap();
                if rows.is_empty() {
                    return mine;
                }
                mine.extend(rows.iter().map(|r| r.get::<_, i64>(0)));
            }
        }));
    }
    let mut seen = BTreeSet::new();
    let mut counts = Vec::new();
    for task in tasks {
        let mine = task.await.unwrap();
        counts.push(mine.len());
        for id in mine {
            assert!(seen.insert(id), "job {id} was handed to two nodes");
        }
    }
    assert_eq!(seen.len(), 300, "every job claimed: {counts:?}");
    assert!(counts.iter().all(|&c| c > 0), "the claims overlapped and all nodes got work: {counts:?}");
    let client = db.client().await.unwrap();
    let unclaimed: i64 = client.query_one("SELECT count(*) FROM jobs WHERE claimed_by IS NULL", &[]).await.unwrap().get(0);
    assert_eq!(unclaimed, 0);

    // While the leases run nobody else gets them; once one expires (its node died), another
    // node takes the job, with the same retry key, so LINE's 409 keeps the push to one.
    let tx_rows = client.query(CLAIM, &[&"n4", &now, &lease, &1000i64]).await.unwrap();
    assert!(tx_rows.is_empty(), "leased jobs are not claimed again");
    client.execute("UPDATE jobs SET lease_until = $1::bigint - 1 WHERE mail_id = 'm42'", &[&now]).await.unwrap();
    let rows = client.query(CLAIM, &[&"n4", &now, &lease, &1000i64]).await.unwrap();
    let taken: Vec<(i64, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].1, "key-42");
    let owner: String = client.query_one("SELECT claimed_by FROM jobs WHERE id = $1", &[&taken[0].0]).await.unwrap().get(0);
    assert_eq!(owner, "n4");
}
