//! The spool's store on both backends (issue #21): every scenario below runs once on SQLite
//! (`Store::open`) and once on PostgreSQL (`Store::open_postgres`, a database of the throwaway
//! cluster of `tests/support/postgres.rs`), through the public `Store` API. They are the
//! scenarios of `src/spool/store.rs` and `src/spool/answers.rs`, kept here only (their unit
//! tests keep what only SQLite's own files show); where a scenario changes a row behind the
//! store's back, it does so in SQL on either database ([`Raw`]).
//!
//! Then what only several nodes on one PostgreSQL can show: `due` never hands a job to two
//! nodes, a dead node's job goes to another after its lease with the same retry key, two nodes
//! sealing one chat at once make one request, an answer is never due on two nodes at once; and
//! two spools (two gateways) on one database deliver each mail to the LINE stand-in once.
//!
//! Without PostgreSQL the PostgreSQL runs print "SKIPPED: …" and pass (the SQLite runs still
//! run), unless `MAIL2LINE_REQUIRE_POSTGRES=1`.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mail2line::pg::Database;
use mail2line::spool::answers::{AnswerState, AnswerUpdate, NewAnswer, Thread};
use mail2line::spool::coalesce::month_bounds;
use mail2line::spool::store::{now_ms, NewJob, PackError, Packer, QuotaRow, Sealed, State, Store, Update, Usage, UsageRow, LEASE_MS};
use support::postgres::{database, TestDb};

// ---------------------------------------------------------------------------------------------
// The harness: a scenario takes a store and a way to reach its database directly.

/// The store's database, reached without the store: SQL written with `?1` for its one
/// parameter, which PostgreSQL spells `$1`.
enum Raw {
    Sqlite(PathBuf),
    Pg(tokio_postgres::Client),
}

impl Raw {
    async fn exec(&self, sql: &str, id: Option<i64>) {
        match self {
            Raw::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                match id {
                    Some(id) => conn.execute(sql, [id]).unwrap(),
                    None => conn.execute(sql, []).unwrap(),
                };
            }
            Raw::Pg(client) => {
                let sql = sql.replace("?1", "$1");
                match id {
                    Some(id) => client.execute(&sql, &[&id]).await.unwrap(),
                    None => client.execute(&sql, &[]).await.unwrap(),
                };
            }
        }
    }

    async fn strings(&self, sql: &str) -> Vec<String> {
        match self {
            Raw::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                let mut stmt = conn.prepare(sql).unwrap();
                stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
            }
            Raw::Pg(client) => client.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect(),
        }
    }

    async fn int(&self, sql: &str) -> i64 {
        match self {
            Raw::Sqlite(path) => rusqlite::Connection::open(path).unwrap().query_row(sql, [], |r| r.get(0)).unwrap(),
            Raw::Pg(client) => client.query_one(sql, &[]).await.unwrap().get(0),
        }
    }
}

async fn connect(t: &TestDb, app: &str) -> Database {
    Database::connect(&t.url, Some(t.password.clone()), app).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Runs `scenario` on a fresh SQLite store, then on a fresh PostgreSQL one (when there is a
/// PostgreSQL).
async fn on_both<F, Fut>(scenario: F)
where
    F: Fn(Store, Raw) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    scenario(store, Raw::Sqlite(dir.path().join("spool.sqlite3"))).await;
    let Some(t) = database().await else { return };
    let store = Store::open_postgres(connect(&t, "node-a").await, "node-a").await.unwrap();
    assert!(store.path().is_none(), "no file on PostgreSQL");
    scenario(store, Raw::Pg(t.admin().await)).await;
}

/// Several PostgreSQL stores (nodes) on one fresh database, with claims of `lease`.
async fn nodes(n: usize, lease: Duration) -> Option<(TestDb, Vec<Store>)> {
    let t = database().await?;
    let mut stores = Vec::new();
    for i in 0..n {
        let name = format!("node-{i}");
        stores.push(Store::open_postgres_with_lease(connect(&t, &name).await, &name, lease).await.unwrap());
    }
    Some((t, stores))
}

fn job(n: u32) -> NewJob {
    NewJob {
        mail_id: format!("m{n}"),
        path: "/v2/bot/message/push".into(),
        body: format!("{{\"n\":{n}}}"),
        retry_key: format!("00000000-0000-4000-8000-{n:012}"),
        target: "U1".into(),
        sender: "a@b".into(),
        ..NewJob::default()
    }
}

fn held(n: u32, chat: &str, until: i64) -> NewJob {
    NewJob { chat: chat.into(), hold_until: Some(until), ..job(n) }
}

fn retry(next_at: i64) -> Update {
    Update::Retry { next_at, error: "500".into(), ambiguous: false, quota_exhausted: false }
}

/// Joins the held bodies with "+" into one request naming every part.
struct Joiner;

impl Packer for Joiner {
    fn pack(&self, bodies: &[&str]) -> Result<Vec<Sealed>, PackError> {
        Ok(vec![Sealed { body: bodies.join("+"), parts: (0..bodies.len()).collect() }])
    }
}

/// A clock for `due` that moves past every lease between two scans: on PostgreSQL `due` claims
/// what it returns, and a scan after the lease sees the same as SQLite's scan.
struct ScanClock(i64);

impl ScanClock {
    fn new() -> ScanClock {
        ScanClock(now_ms())
    }

    async fn due_ids(&mut self, store: &Store) -> Vec<i64> {
        self.0 += LEASE_MS + 1;
        store.due(self.0, 10).await.unwrap().iter().map(|j| j.id).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The scenarios of src/spool/store.rs, on both backends.

#[tokio::test]
async fn a_mails_later_requests_wait_for_the_earlier_ones_to_the_same_target() {
    on_both(|store, raw| async move {
        let part = |target: &str, n: u32| NewJob { mail_id: "m1".into(), target: target.into(), ..job(n) };
        let ids = store.insert(vec![part("U1", 1), part("U2", 2), part("U1", 3), part("U1", 4), job(5)]).await.unwrap();
        let mut clock = ScanClock::new();
        // The first of each chain (m1→U1, m1→U2) and the other mail.
        assert_eq!(clock.due_ids(&store).await, [ids[0], ids[1], ids[4]]);
        // Retrying does not let the next one pass; dead or done does.
        store.update(ids[0], 1000, retry(5)).await.unwrap();
        assert_eq!(clock.due_ids(&store).await, [ids[0], ids[1], ids[4]]);
        store.update(ids[0], 2000, Update::Dead { error: "400".into() }).await.unwrap();
        assert_eq!(clock.due_ids(&store).await, [ids[1], ids[2], ids[4]]);
        store.update(ids[2], 3000, Update::Done { sent: vec![] }).await.unwrap();
        assert_eq!(clock.due_ids(&store).await, [ids[1], ids[3], ids[4]]);
        // A predecessor revived or dropped behind the store's back holds or releases its chain.
        store.update(ids[3], 4000, retry(5)).await.unwrap();
        raw.exec("UPDATE jobs SET state = 'pending', next_at = 5 WHERE id = ?1", Some(ids[0])).await;
        assert_eq!(clock.due_ids(&store).await, [ids[0], ids[1], ids[4]], "a revived earlier job holds the chain again");
        raw.exec("DELETE FROM jobs WHERE id = ?1", Some(ids[0])).await;
        assert_eq!(clock.due_ids(&store).await, [ids[3], ids[1], ids[4]]);
    })
    .await;
}

#[tokio::test]
async fn only_jobs_refused_for_the_quota_are_made_due_when_it_has_room() {
    on_both(|store, _| async move {
        let ids = store.insert(vec![job(1), job(2)]).await.unwrap();
        let far = now_ms() + 3_600_000;
        let retry = |quota_exhausted| Update::Retry { next_at: far, error: "429".into(), ambiguous: false, quota_exhausted };
        store.update(ids[0], 1000, retry(true)).await.unwrap();
        store.update(ids[1], 1000, retry(false)).await.unwrap();
        store.make_quota_jobs_due().await.unwrap();
        let next = |id| {
            let store = store.clone();
            async move { store.job(id).await.unwrap().unwrap().next_at }
        };
        assert!(next(ids[0]).await <= now_ms(), "the quota-refused job is due now");
        assert_eq!(next(ids[1]).await, far, "another retry keeps its back-off");
    })
    .await;
}

#[tokio::test]
async fn insert_update_and_read_back() {
    on_both(|store, _| async move {
        let ids = store.insert(vec![job(1), job(2)]).await.unwrap();
        assert_eq!(ids.len(), 2);
        // Fresh jobs are leased (claimed): not due for the scan yet.
        assert!(store.due(now_ms(), 10).await.unwrap().is_empty());
        assert_eq!(store.due(now_ms() + LEASE_MS + 1, 10).await.unwrap().len(), 2);

        store.update(ids[0], 1000, Update::Retry { next_at: 5, error: "500".into(), ambiguous: true, quota_exhausted: false }).await.unwrap();
        let j = store.job(ids[0]).await.unwrap().unwrap();
        assert_eq!((j.attempts, j.first_attempt_at, j.next_at, j.ambiguous, j.last_error.as_str()), (1, Some(1000), 5, true, "500"));
        store.update(ids[0], 2000, Update::Retry { next_at: 6, error: "429".into(), ambiguous: false, quota_exhausted: false }).await.unwrap();
        let j = store.job(ids[0]).await.unwrap().unwrap();
        assert_eq!((j.attempts, j.first_attempt_at, j.ambiguous), (2, Some(1000), true), "first attempt and ambiguity stick");

        store.update(ids[1], 3000, Update::Dead { error: "400 bad".into() }).await.unwrap();
        assert_eq!(store.jobs(Some(State::Dead)).await.unwrap().len(), 1);
        assert_eq!(store.counts().await.unwrap(), (1, 1));
        store.update(ids[0], 4000, Update::Done { sent: vec![] }).await.unwrap();
        assert!(store.job(ids[0]).await.unwrap().is_none());
        assert_eq!(store.jobs(None).await.unwrap().len(), 1);
        assert_eq!(store.counts().await.unwrap(), (0, 1));
    })
    .await;
}

#[tokio::test]
async fn dead_letters_are_purged_by_when_they_died_and_pending_jobs_never() {
    on_both(|store, _| async move {
        let ids = store.insert(vec![job(1), job(2), job(3)]).await.unwrap();
        store.update(ids[0], 1000, Update::Dead { error: "400".into() }).await.unwrap();
        store.update(ids[1], 5000, Update::Dead { error: "400".into() }).await.unwrap();
        store.update(ids[2], 500, retry(600)).await.unwrap();
        assert_eq!(store.purge_dead(1000).await.unwrap(), 0, "died exactly at the cut-off: kept");
        assert_eq!(store.purge_dead(1001).await.unwrap(), 1);
        assert_eq!(store.jobs(None).await.unwrap().iter().map(|j| j.id).collect::<Vec<_>>(), [ids[1], ids[2]]);
        assert_eq!(store.purge_dead(i64::MAX).await.unwrap(), 1, "a pending job is never purged");
        assert_eq!(store.counts().await.unwrap(), (1, 0));
    })
    .await;
}

#[tokio::test]
async fn the_probe_commits_a_write() {
    on_both(|store, raw| async move {
        store.probe().await.unwrap();
        assert!(raw.int("SELECT MAX(checked_at) FROM health").await > 0);
        store.probe().await.unwrap();
        assert_eq!(raw.int("SELECT COUNT(*) FROM health").await, 1, "one row, rewritten");
        assert_eq!(store.counts().await.unwrap(), (0, 0));
    })
    .await;
}

#[tokio::test]
async fn held_requests_are_sealed_per_chat_into_one_with_a_key_of_its_own() {
    on_both(|store, _| async move {
        store.insert(vec![held(1, "push:U1", 5000)]).await.unwrap();
        store.insert(vec![held(2, "push:U1", 5000)]).await.unwrap();
        store.insert(vec![held(3, "push:U2", 7000)]).await.unwrap();
        assert_eq!(store.counts().await.unwrap(), (3, 0), "held mail counts as pending");
        assert!(store.due(i64::MAX, 10).await.unwrap().is_empty(), "held requests are never due on their own");
        let mut chats = store.held_chats().await.unwrap();
        chats.sort();
        assert_eq!(chats, [("push:U1".to_owned(), 5000), ("push:U2".to_owned(), 7000)]);

        let sealed = store.seal("push:U1", Arc::new(Joiner)).await.unwrap();
        assert_eq!(sealed.len(), 1);
        let s = &sealed[0];
        assert_eq!((s.body.as_str(), s.mail_id.as_str(), s.mails, s.state), (r#"{"n":1}+{"n":2}"#, "m1,m2", 2, State::Pending));
        assert!(![job(1).retry_key, job(2).retry_key].contains(&s.retry_key), "a key of its own");
        assert_eq!(s.retry_key.len(), 36);
        // Stored: the sealed request replaced the held ones, with the same key and body.
        let stored = store.job(s.id).await.unwrap().unwrap();
        assert_eq!((stored.body, stored.retry_key, stored.mails), (s.body.clone(), s.retry_key.clone(), 2));
        assert_eq!(store.jobs(Some(State::Held)).await.unwrap().len(), 1, "only U2's is still held");
        assert!(store.seal("push:U1", Arc::new(Joiner)).await.unwrap().is_empty(), "sealed once");
    })
    .await;
}

#[tokio::test]
async fn one_held_mail_goes_as_it_was_and_a_mail_sent_again_goes_once() {
    on_both(|store, _| async move {
        // Alone: its own body and key.
        let ids = store.insert(vec![held(1, "push:U1", 0)]).await.unwrap();
        let sealed = store.seal("push:U1", Arc::new(Joiner)).await.unwrap();
        assert_eq!((sealed[0].id, sealed[0].retry_key.as_str(), sealed[0].body.as_str()), (ids[0], job(1).retry_key.as_str(), r#"{"n":1}"#));
        // Delivered; the same mail comes again (same retry key) and is held with a new one:
        // only the new one goes.
        store.update(ids[0], 1, Update::Done { sent: vec![] }).await.unwrap();
        store.insert(vec![held(1, "push:U1", 0)]).await.unwrap();
        store.insert(vec![held(2, "push:U1", 0)]).await.unwrap();
        store.insert(vec![held(2, "push:U1", 0)]).await.unwrap();
        let sealed = store.seal("push:U1", Arc::new(Joiner)).await.unwrap();
        assert_eq!(sealed.len(), 1);
        assert_eq!((sealed[0].body.as_str(), sealed[0].retry_key.as_str()), (r#"{"n":2}"#, job(2).retry_key.as_str()));
        assert_eq!(store.counts().await.unwrap(), (1, 0), "the copies are gone");
    })
    .await;
}

#[tokio::test]
async fn what_line_counted_is_recorded_with_the_outcome() {
    on_both(|store, _| async move {
        let month = month_bounds(now_ms()).0;
        let ids = store.insert(vec![NewJob { target: "C1".into(), ..job(1) }]).await.unwrap();
        store.insert(vec![job(2)]).await.unwrap();
        store.set_quota(QuotaRow { month, limit: Some(200), used: 50, probed_at: 7 }).await.unwrap();
        let counted = Usage { month, target: "C1".into(), sender: "a@b".into(), messages: 4, solo: 8 };
        store.update_counted(ids[0], 1, Update::Done { sent: vec![] }, Some(counted)).await.unwrap();
        assert_eq!(store.quota().await.unwrap(), Some(QuotaRow { month, limit: Some(200), used: 54, probed_at: 7 }));
        let by_target = store.usage(month, "target").await.unwrap();
        assert_eq!(by_target[0], UsageRow { key: "C1".into(), mails: 1, messages: 4, solo: 8 });
        assert_eq!(by_target[1], UsageRow { key: "U1".into(), mails: 1, messages: 0, solo: 0 });
        assert_eq!(store.usage(month, "sender").await.unwrap(), [UsageRow { key: "a@b".into(), mails: 2, messages: 4, solo: 8 }]);
        // A new month starts the count from what was sent in it.
        let next = month_bounds(month + 40 * 86_400_000).0;
        let ids = store.insert(vec![job(3)]).await.unwrap();
        let counted = Usage { month: next, target: "U1".into(), sender: "a@b".into(), messages: 1, solo: 1 };
        store.update_counted(ids[0], 2, Update::Done { sent: vec![] }, Some(counted)).await.unwrap();
        assert_eq!(store.quota().await.unwrap().map(|q| (q.month, q.used)), Some((next, 1)));
        // The null sender is counted as `<>`.
        store.insert(vec![NewJob { sender: String::new(), ..job(4) }]).await.unwrap();
        assert!(store.usage(month, "sender").await.unwrap().iter().any(|u| u.key == "<>" && u.mails == 1));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_inserts_are_all_stored() {
    on_both(|store, _| async move {
        let mut tasks = Vec::new();
        for n in 0..200 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move { s.insert(vec![job(n)]).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(store.jobs(None).await.unwrap().len(), 200);
        let month = month_bounds(now_ms()).0;
        assert_eq!(store.usage(month, "sender").await.unwrap()[0].mails, 200, "every mail counted once");
    })
    .await;
}

#[tokio::test]
async fn restart_makes_unattempted_jobs_due() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        store.insert(vec![job(1)]).await.unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.due(now_ms() + 1, 10).await.unwrap().len(), 1);

    // On PostgreSQL: the node's claims are released when it starts again (same node id).
    let Some(t) = database().await else { return };
    let store = Store::open_postgres(connect(&t, "node-a").await, "node-a").await.unwrap();
    store.insert(vec![job(1)]).await.unwrap();
    assert!(store.due(now_ms() + 1, 10).await.unwrap().is_empty(), "claimed by node-a");
    drop(store);
    let store = Store::open_postgres(connect(&t, "node-a").await, "node-a").await.unwrap();
    assert_eq!(store.due(now_ms() + 1, 10).await.unwrap().len(), 1);
}

/// A claim under this node's name made before this process opened the store is a previous
/// process's (its commit landed after the restart released the claims): the scan takes it at
/// once instead of after the lease. A claim this process made, or another node's, it leaves.
#[tokio::test]
async fn a_scan_takes_the_claims_of_this_nodes_previous_process() {
    let Some(t) = database().await else { return };
    let before = Store::open_postgres(connect(&t, "node-a").await, "node-a").await.unwrap();
    let now = Store::open_postgres(connect(&t, "node-a").await, "node-a").await.unwrap();
    let b = Store::open_postgres(connect(&t, "node-b").await, "node-b").await.unwrap();
    // The previous process's commit, landing now: claimed under node-a a moment before the
    // restart (its lease counted from then).
    let old = before.insert(vec![job(1)]).await.unwrap();
    let admin = t.admin().await;
    admin.execute("UPDATE jobs SET lease_until = lease_until - 60000 WHERE id = $1", &[&old[0]]).await.unwrap();
    let mine = now.insert(vec![job(2)]).await.unwrap();
    let others = b.insert(vec![job(3)]).await.unwrap();
    let taken: Vec<_> = now.due(now_ms() + 1, 10).await.unwrap().iter().map(|j| j.id).collect();
    assert_eq!(taken, old, "the previous process's claim, not this one's ({mine:?}) nor node-b's ({others:?})");
    assert!(b.due(now_ms() + 1, 10).await.unwrap().is_empty(), "node-a's claims stay node-a's until their lease");
    // Answers alike: one claimed by node-a's previous process a minute ago, one by this one.
    assert!(before.store_answer(answer("E-old", "U1")).await.unwrap());
    assert!(now.store_answer(answer("E-new", "U2")).await.unwrap());
    assert_eq!(before.due_answers(now_ms(), 10).await.unwrap().len(), 2, "both claimed under node-a");
    admin.execute("UPDATE answers SET lease_until = lease_until - 60000 WHERE event_id = 'E-old'", &[]).await.unwrap();
    let taken: Vec<String> = now.due_answers(now_ms(), 10).await.unwrap().into_iter().map(|a| a.event_id).collect();
    assert_eq!(taken, vec!["E-old".to_owned()], "the previous process's claim only");
    assert!(b.due_answers(now_ms(), 10).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// The scenarios of src/spool/answers.rs, on both backends.

const PUSH: &str = "/v2/bot/message/push";

fn thread(n: u32) -> Thread {
    Thread { message_id: format!("m{n}@example.com"), reply_to: format!("ops{n}@example.com"), subject: format!("alert {n}") }
}

fn threaded_job(mail: &str, to: &str, n: u32, kept: bool) -> NewJob {
    NewJob {
        mail_id: mail.into(),
        path: PUSH.into(),
        body: format!("{{\"to\":\"{to}\",\"n\":{n}}}"),
        retry_key: format!("00000000-0000-4000-8000-{n:012}"),
        target: to.into(),
        thread: kept.then(|| thread(n)),
        ..NewJob::default()
    }
}

fn done(ids: &[&str]) -> Update {
    Update::Done { sent: ids.iter().map(|s| s.to_string()).collect() }
}

/// `answers::quoted` through the store.
async fn quoted(store: &Store, chat: &str, line_id: &str, since: i64) -> Option<Thread> {
    store.answer_findings(chat.into(), Some(line_id.into()), since, 0, 0, 0).await.unwrap().quoted
}

/// `answers::last_to_chat` through the store.
async fn last_to_chat(store: &Store, chat: &str, since: i64, until: i64) -> Option<Thread> {
    store.answer_findings(chat.into(), None, 0, since, until, 0).await.unwrap().last
}

async fn sent_since(store: &Store, chat: &str, since: i64) -> u32 {
    store.answer_findings(chat.into(), None, 0, 0, 0, since).await.unwrap().sent_since
}

#[tokio::test]
async fn a_pushed_mail_is_found_by_its_quoted_message_and_as_the_chats_last_mail() {
    on_both(|store, _| async move {
        let ids = store
            .insert(vec![threaded_job("a", "U1", 1, true), threaded_job("b", "U1", 2, true), threaded_job("c", "U2", 3, false)])
            .await
            .unwrap();
        store.update(ids[0], 1000, done(&["111", "112"])).await.unwrap();
        store.update(ids[1], 2000, done(&["221"])).await.unwrap();
        store.update(ids[2], 3000, done(&["331"])).await.unwrap();
        // Both ids of mail a lead to it (two ids, one mail: the newest, which is a).
        assert_eq!(quoted(&store, "U1", "112", 0).await, Some(thread(1)));
        assert_eq!(quoted(&store, "U1", "221", 0).await, Some(thread(2)));
        // Only in the chat it was pushed to, and only within the window.
        assert_eq!(quoted(&store, "U2", "111", 0).await, None);
        assert_eq!(quoted(&store, "U1", "111", 1001).await, None);
        assert_eq!(quoted(&store, "U1", "", 0).await, None);
        // The last mail to U1 up to a time; U2's mail kept no thread ([replies] was off).
        assert_eq!(last_to_chat(&store, "U1", 0, 5000).await, Some(thread(2)));
        assert_eq!(last_to_chat(&store, "U1", 0, 1500).await, Some(thread(1)));
        assert_eq!(last_to_chat(&store, "U1", 2001, 5000).await, None);
        assert_eq!(last_to_chat(&store, "U2", 0, 5000).await, None);
        assert_eq!(quoted(&store, "U2", "331", 0).await, None);
    })
    .await;
}

#[tokio::test]
async fn a_multicast_is_remembered_per_recipient_without_ids() {
    on_both(|store, _| async move {
        let multicast = NewJob {
            path: "/v2/bot/message/multicast".into(),
            body: r#"{"to":["U1","U2"],"messages":[]}"#.into(),
            ..threaded_job("a", "U1", 1, true)
        };
        let ids = store.insert(vec![multicast]).await.unwrap();
        store.update(ids[0], 1000, done(&[])).await.unwrap();
        assert_eq!(last_to_chat(&store, "U1", 0, 5000).await, Some(thread(1)));
        assert_eq!(last_to_chat(&store, "U2", 0, 5000).await, Some(thread(1)));
        assert_eq!(last_to_chat(&store, "U3", 0, 5000).await, None);
    })
    .await;
}

#[tokio::test]
async fn a_coalesced_request_maps_its_ids_to_its_mails_in_order() {
    on_both(|store, raw| async move {
        // Two mails held and sealed into one request (the job carries both mail ids).
        let ids = store.insert(vec![threaded_job("a", "U1", 1, true), threaded_job("b", "U1", 2, true)]).await.unwrap();
        raw.exec("UPDATE jobs SET mail_id = 'a,b' WHERE id = ?1", Some(ids[1])).await;
        store.update(ids[1], 1000, done(&["1", "2"])).await.unwrap();
        assert_eq!(quoted(&store, "U1", "1", 0).await, Some(thread(1)));
        assert_eq!(quoted(&store, "U1", "2", 0).await, Some(thread(2)));
        // Ids that do not pair up with the mails all go to the newest.
        raw.exec("UPDATE jobs SET mail_id = 'a,b' WHERE id = ?1", Some(ids[0])).await;
        store.update(ids[0], 2000, done(&["9"])).await.unwrap();
        assert_eq!(quoted(&store, "U1", "9", 0).await, Some(thread(2)));
    })
    .await;
}

fn answer(event: &str, chat: &str) -> NewAnswer {
    NewAnswer { event_id: event.into(), chat: chat.into(), event: format!("{{\"webhookEventId\":\"{event}\"}}"), at: 1000 }
}

#[tokio::test]
async fn an_answer_is_stored_once_and_goes_through_its_states() {
    on_both(|store, _| async move {
        assert!(store.store_answer(answer("E1", "U1")).await.unwrap());
        assert!(!store.store_answer(answer("E1", "U1")).await.unwrap(), "a redelivery is not stored twice");
        assert!(store.store_answer(answer("E2", "U1")).await.unwrap());
        assert!(store.store_answer(answer("E3", "C1")).await.unwrap());
        let now = now_ms();
        let due_now = store.due_answers(now, 10).await.unwrap();
        assert_eq!(due_now.iter().map(|a| a.event_id.as_str()).collect::<Vec<_>>(), ["E1", "E2", "E3"]);
        assert_eq!(due_now[0].event, r#"{"webhookEventId":"E1"}"#);
        let (e1, e2, e3) = (due_now[0].id, due_now[1].id, due_now[2].id);
        store.update_answer(e1, now, AnswerUpdate::Sent { to: "ops@example.com".into() }).await.unwrap();
        store.update_answer(e2, now, AnswerUpdate::Retry { next_at: now + 60_000, error: "relay down".into() }).await.unwrap();
        store.update_answer(e3, now, AnswerUpdate::Dead { to: "x@example.com".into(), error: "550 no such user".into() }).await.unwrap();
        assert!(store.due_answers(now, 10).await.unwrap().is_empty());
        assert_eq!(store.due_answers(now + 60_000, 10).await.unwrap()[0].last_error, "relay down");
        assert_eq!(sent_since(&store, "U1", now - 3_600_000).await, 1);
        assert_eq!(sent_since(&store, "U1", now + 1).await, 0);
        assert_eq!(sent_since(&store, "C1", 0).await, 0, "dead is not sent");
        let dead = store.answers(Some(AnswerState::Dead)).await.unwrap();
        assert_eq!((dead.len(), dead[0].sent_to.as_str(), dead[0].attempts), (1, "x@example.com", 1));
        assert_eq!(store.answers(None).await.unwrap().len(), 3);
        // The sent answer's event id is kept while LINE may redeliver it.
        assert_eq!(store.purge_answers(3_600_000, 3_600_000, 0).await.unwrap(), 0);
        assert!(!store.store_answer(answer("E1", "U1")).await.unwrap());
        // Past that, it goes; the dead one stays until its retention.
        assert_eq!(store.purge_answers(3_600_000, -3_600_000, 0).await.unwrap(), 1);
        assert_eq!(store.answers(None).await.unwrap().len(), 2);
        assert_eq!(store.purge_answers(3_600_000, -3_600_000, now + 1).await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn purge_forgets_ids_after_seven_windows_and_threads_no_one_needs() {
    on_both(|store, raw| async move {
        let ids = store.insert(vec![threaded_job("a", "U1", 1, true), threaded_job("b", "U1", 2, true)]).await.unwrap();
        let now = now_ms();
        store.update(ids[0], now - 8 * 1000, done(&["1"])).await.unwrap();
        raw.exec("UPDATE mails SET at = 0", None).await;
        // Window 1 s: mail a's id is 8 windows old and goes, and then its thread; mail b is
        // still in the spool (its job is pending), so its thread stays.
        assert_eq!(store.purge_answers(1000, 0, 0).await.unwrap(), 2);
        assert_eq!(quoted(&store, "U1", "1", 0).await, None);
        assert_eq!(raw.strings("SELECT mail_id FROM mails").await, ["b"]);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Several nodes on one PostgreSQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn due_never_hands_one_job_to_two_nodes() {
    let Some((_t, stores)) = nodes(3, Duration::from_secs(60)).await else { return };
    let jobs: Vec<NewJob> = (0..300).map(job).collect();
    let ids: BTreeSet<i64> = stores[0].insert(jobs).await.unwrap().into_iter().collect();
    // Past node-0's claims on what it inserted: everything is due, for every node at once.
    let at = now_ms() + 61_000;
    let mut tasks = Vec::new();
    for store in stores.clone() {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..1000 {
                let batch = store.due(at, 7).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|j| j.id));
            }
            panic!("due never ran dry: claimed jobs are handed out again");
        }));
    }
    let mut seen = BTreeSet::new();
    let mut per_node = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        per_node.push(got.len());
        for id in got {
            assert!(seen.insert(id), "job {id} handed to two nodes");
        }
    }
    assert_eq!(seen, ids, "every job handed out once");
    assert!(per_node.iter().filter(|&&n| n > 0).count() >= 2, "the nodes shared the work: {per_node:?}");
}

#[tokio::test]
async fn a_dead_nodes_job_goes_to_another_after_its_lease_with_the_same_retry_key() {
    let lease = Duration::from_millis(300);
    let Some((_t, stores)) = nodes(2, lease).await else { return };
    let (a, b) = (&stores[0], &stores[1]);
    let ids = a.insert(vec![job(1)]).await.unwrap();
    assert!(b.due(now_ms(), 10).await.unwrap().is_empty(), "node-0 claimed what it took");
    // node-0 dies here (it never records an outcome).
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    let taken = b.due(now_ms(), 10).await.unwrap();
    assert_eq!(taken.iter().map(|j| (j.id, j.retry_key.as_str())).collect::<Vec<_>>(), [(ids[0], job(1).retry_key.as_str())]);
    assert!(a.due(now_ms(), 10).await.unwrap().is_empty(), "now node-1's");
    // A retry frees it for whoever scans when it is due.
    b.update(ids[0], now_ms(), retry(0)).await.unwrap();
    let again = a.due(now_ms(), 10).await.unwrap();
    assert_eq!((again[0].retry_key.as_str(), again[0].attempts), (job(1).retry_key.as_str(), 1));
    a.update(ids[0], now_ms(), Update::Done { sent: vec![] }).await.unwrap();
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert!(b.due(now_ms(), 10).await.unwrap().is_empty(), "delivered: gone for everyone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_sealing_one_chat_at_once_make_one_request() {
    let Some((_t, stores)) = nodes(2, Duration::from_secs(60)).await else { return };
    for round in 0..20u32 {
        let chat = format!("push:U{round}");
        for n in 0..5 {
            stores[round as usize % 2].insert(vec![held(round * 10 + n, &chat, 0)]).await.unwrap();
        }
        let seals: Vec<_> = stores
            .iter()
            .cloned()
            .map(|s| {
                let chat = chat.clone();
                tokio::spawn(async move { s.seal(&chat, Arc::new(Joiner)).await.unwrap() })
            })
            .collect();
        let mut sealed = Vec::new();
        for s in seals {
            sealed.extend(s.await.unwrap());
        }
        assert_eq!(sealed.len(), 1, "round {round}: one request for the chat");
        assert_eq!(sealed[0].mails, 5);
    }
    let jobs = stores[0].jobs(None).await.unwrap();
    assert_eq!(jobs.len(), 20);
    assert!(jobs.iter().all(|j| j.state == State::Pending && j.mails == 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_answer_is_never_due_on_two_nodes_at_once() {
    let lease = Duration::from_millis(500);
    let Some((_t, stores)) = nodes(2, lease).await else { return };
    for n in 0..60 {
        assert!(stores[0].store_answer(answer(&format!("E{n}"), "U1")).await.unwrap());
    }
    let at = now_ms();
    let tasks: Vec<_> = stores
        .iter()
        .cloned()
        .map(|s| {
            tokio::spawn(async move {
                let mut got = Vec::new();
                for _ in 0..1000 {
                    let batch = s.due_answers(at, 4).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|a| a.id));
                }
                panic!("due_answers never ran dry: claimed answers are handed out again");
            })
        })
        .collect();
    let mut seen = BTreeSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "answer {id} due on two nodes");
        }
    }
    assert_eq!(seen.len(), 60);
    // A node that died with an answer claimed: the other mails it after the lease.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert_eq!(stores[1].due_answers(now_ms(), 100).await.unwrap().len(), 60);
    assert!(stores[0].due_answers(now_ms(), 100).await.unwrap().is_empty());
}

/// On PostgreSQL the counts are summed in memory and written every quarter second
/// (`spool/counts_pg.rs`): another node sees them without this one reading or stopping, and the
/// hot quota row is one row for both nodes' counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_reach_the_database_without_a_read_and_add_up_across_nodes() {
    let Some((t, stores)) = nodes(2, Duration::from_secs(60)).await else { return };
    let month = month_bounds(now_ms()).0;
    for (i, store) in stores.iter().enumerate() {
        let n = i as u32 * 10;
        let ids = store.insert(vec![job(n + 1), job(n + 2)]).await.unwrap();
        for id in ids {
            let counted = Usage { month, target: "C1".into(), sender: "a@b".into(), messages: 2, solo: 1 };
            store.update_counted(id, 1, Update::Done { sent: vec![] }, Some(counted)).await.unwrap();
        }
    }
    // Looked at from behind both stores: the flusher writes within a second, polled for 10 s.
    let admin = t.admin().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let (mails, messages, used) = loop {
        let row = admin
            .query_one(
                "SELECT (SELECT COALESCE(SUM(mails), 0)::bigint FROM usage WHERE kind = 'sender'),                         (SELECT COALESCE(SUM(messages), 0)::bigint FROM usage WHERE kind = 'target' AND key = 'C1'),                         (SELECT COALESCE(MAX(used), 0) FROM quota)",
                &[],
            )
            .await
            .unwrap();
        let got: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if got == (2, 8, 8) || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // One mail (of two requests) per node; four requests of two messages each.
    assert_eq!((mails, messages, used), (2, 8, 8), "each node's mail and its requests' messages, counted by two nodes");
    assert_eq!(stores[1].quota().await.unwrap().map(|q| q.used), Some(8));
}

// ---------------------------------------------------------------------------------------------
// The spool itself on PostgreSQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_spools_on_one_database_deliver_each_mail_once() {
    use mail2line::line::{Credentials, LineClient};
    use mail2line::metrics::Metrics;
    use mail2line::secret::Secret;
    use mail2line::spool::settings::{Delivery, Quota};
    use mail2line::spool::{Settings, Spool};
    use support::gateway::{user, TOKEN};
    use support::standin::StandIn;

    let Some((_t, stores)) = nodes(2, Duration::from_secs(60)).await else { return };
    let line = StandIn::start().await;
    let mut spools = Vec::new();
    for store in stores {
        let client = LineClient::new(&line.base_url(), Credentials::LongLived(Secret::new(TOKEN)), Duration::from_secs(10), None).unwrap();
        let quota = Quota::default();
        let mut delivery = Delivery { coalesce_secs: 0, scan_interval_ms: 50, ..Delivery::default() };
        assert!(delivery.validate(&quota).is_empty());
        let settings = Settings::from_config(&delivery, &quota);
        spools.push(Spool::start_with_store(store, client, settings, Arc::new(mail2line::delivery::HeldPacker), Arc::new(Metrics::new())));
    }
    let mut keys = BTreeSet::new();
    for n in 0..10u32 {
        let key = uuid::Uuid::new_v4().to_string();
        keys.insert(key.clone());
        let body = serde_json::json!({ "to": user(n), "messages": [{ "type": "text", "text": format!("mail {n}") }] }).to_string();
        let new = NewJob {
            mail_id: format!("mail-{n}"),
            path: PUSH.into(),
            body,
            retry_key: key,
            target: user(n),
            sender: "ops@example.com".into(),
            recipients: 1,
            ..NewJob::default()
        };
        spools[n as usize % 2].0.accept(vec![new], false).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while line.requests_to(PUSH).len() < 10 {
        assert!(tokio::time::Instant::now() < deadline, "pushed only {:?}", line.requests_to(PUSH).len());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Time for a second delivery, were there one: several scans of both spools.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pushed: Vec<String> = line.requests_to(PUSH).iter().filter_map(|r| r.header("x-line-retry-key").map(str::to_owned)).collect();
    assert_eq!(pushed.len(), 10, "each mail pushed once: {pushed:?}");
    assert_eq!(pushed.into_iter().collect::<BTreeSet<_>>(), keys);
    line.assert_all_valid();
    for (spool, _) in &spools {
        assert_eq!(spool.counts().await.unwrap().pending, 0);
    }
    for (_, runner) in spools {
        runner.shutdown(Duration::from_secs(5)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Two LINE channels (`[[channels]]`) on one database: each store sees only its channel's rows.

#[tokio::test]
async fn two_channels_on_one_database_share_no_job_key_quota_usage_or_answer() {
    let Some(t) = database().await else { return };
    let a = Store::open_postgres_channel(connect(&t, "node-a").await, "node-a", "shop-a").await.unwrap();
    let b = Store::open_postgres_channel(connect(&t, "node-a").await, "node-a", "shop-b").await.unwrap();
    let month = month_bounds(now_ms()).0;
    // The same mail (same retry key) in both channels: each is a job of its own channel.
    let ids_a = a.insert(vec![job(1)]).await.unwrap();
    let ids_b = b.insert(vec![job(1), job(2)]).await.unwrap();
    let mut clock = ScanClock::new();
    assert_eq!(clock.due_ids(&a).await, ids_a);
    assert_eq!(clock.due_ids(&b).await, ids_b);
    assert_eq!((a.counts().await.unwrap(), b.counts().await.unwrap()), ((1, 0), (2, 0)));
    assert_eq!(a.jobs(None).await.unwrap().len(), 1);
    // Delivered in a: a held copy of that request is known in a and dropped; a held copy of
    // b's pending request is not a's concern (LINE keeps retry keys per channel), so a sends it.
    let counted = Usage { month, target: "U1".into(), sender: "a@b".into(), messages: 3, solo: 3 };
    a.update_counted(ids_a[0], 1, Update::Done { sent: vec![] }, Some(counted)).await.unwrap();
    let until = now_ms() - 1;
    a.insert(vec![held(1, "U9", until), held(2, "U8", until)]).await.unwrap();
    assert!(a.seal("U9", Arc::new(Joiner)).await.unwrap().is_empty(), "a's own key was sent in a");
    assert_eq!(a.seal("U8", Arc::new(Joiner)).await.unwrap().len(), 1, "b's pending key does not stop a");
    // Quota and usage.
    b.set_quota(QuotaRow { month, limit: Some(1000), used: 10, probed_at: 5 }).await.unwrap();
    assert_eq!(a.quota().await.unwrap().map(|q| (q.limit, q.used)), Some((None, 3)));
    assert_eq!(b.quota().await.unwrap().map(|q| (q.limit, q.used)), Some((Some(1000), 10)));
    assert_eq!(a.usage(month, "target").await.unwrap().iter().map(|u| u.messages).sum::<u64>(), 3);
    assert_eq!(b.usage(month, "target").await.unwrap().iter().map(|u| u.messages).sum::<u64>(), 0);
    // A mail is one insert: two in a, one in b.
    assert_eq!(a.usage(month, "sender").await.unwrap()[0].mails, 2);
    assert_eq!(b.usage(month, "sender").await.unwrap()[0].mails, 1, "b counted its mail and none of a's");
    // Answers: one webhook event id may be stored in each channel once.
    assert!(a.store_answer(answer("E1", "U1")).await.unwrap());
    assert!(b.store_answer(answer("E1", "U1")).await.unwrap());
    assert!(!b.store_answer(answer("E1", "U1")).await.unwrap());
    assert_eq!(a.due_answers(now_ms(), 10).await.unwrap().len(), 1);
    assert_eq!(b.answers(None).await.unwrap().len(), 1);
    // The unnamed channel ('') sees none of it.
    let unnamed = Store::open_postgres(connect(&t, "node-a").await, "node-a").await.unwrap();
    assert_eq!(unnamed.counts().await.unwrap(), (0, 0));
    assert!(unnamed.quota().await.unwrap().is_none() && unnamed.answers(None).await.unwrap().is_empty());
}
