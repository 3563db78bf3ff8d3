//! The follower registry on both backends (issue #21): every scenario below runs once on SQLite
//! (`Registry::open`) and once on PostgreSQL (`Registry::open_postgres`, a database of the
//! throwaway cluster of `tests/support/postgres.rs`), through the public API the server uses
//! (the async methods and `smtp::Directory`). They are the unit tests of
//! `src/followers/mod.rs` that do not look at SQLite's own files (those stay there).
//!
//! Then what only several nodes on one PostgreSQL can show: a follow on one node is seen by the
//! other's `is_active_async` at once and by its Directory mirror after a refresh (and not before:
//! the mirror is what the SMTP side reads); a redelivered event is `seen` on the other node;
//! follows and unfollows racing on two nodes end in the newer event's state, on both nodes'
//! mirrors too.
//!
//! Without PostgreSQL the PostgreSQL runs print "SKIPPED: …" and pass (the SQLite runs still
//! run), unless `MAIL2LINE_REQUIRE_POSTGRES=1`.

mod support;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mail2line::followers::{Kind, Registry};
use mail2line::pg::Database;
use mail2line::smtp::Directory;
use support::postgres::{database, TestDb};

async fn connect(t: &TestDb, app: &str) -> Database {
    Database::connect(&t.url, Some(t.password.clone()), app).await.unwrap_or_else(|e| panic!("connect: {e}"))
}

/// Runs `scenario` on a fresh SQLite registry, then on a fresh PostgreSQL one (when there is a
/// PostgreSQL).
async fn on_both<F, Fut>(scenario: F)
where
    F: Fn(Registry) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::open(dir.path()).unwrap();
    assert!(!reg.is_postgres());
    scenario(reg).await;
    let Some(t) = database().await else { return };
    let reg = Registry::open_postgres(connect(&t, "node-a").await).await.unwrap();
    assert!(reg.is_postgres());
    scenario(reg).await;
}

/// Two registries (nodes) on one fresh database, whose mirrors refresh every `refresh`.
async fn two_nodes(refresh: [Duration; 2]) -> Option<(TestDb, Registry, Registry)> {
    let t = database().await?;
    let a = Registry::open_postgres_with_refresh(connect(&t, "node-a").await, refresh[0]).await.unwrap();
    let b = Registry::open_postgres_with_refresh(connect(&t, "node-b").await, refresh[1]).await.unwrap();
    Some((t, a, b))
}

/// Waits (at most 10 s) until `cond` holds; false if it never did.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

const HOUR: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------------------------------
// The scenarios of src/followers/mod.rs, on both backends.

#[tokio::test]
async fn follow_unfollow_refollow() {
    on_both(|reg| async move {
        reg.follow_async("U1", Kind::User, Some("Alice"), 100).await.unwrap();
        reg.follow_async("U2", Kind::User, None, 200).await.unwrap();
        reg.follow_async("C1", Kind::Group, None, 300).await.unwrap();
        assert_eq!(reg.active_users_async().await.unwrap(), vec!["U1", "U2"]);
        reg.unfollow_async("U1", Kind::User, 400).await.unwrap();
        assert!(!reg.is_active_async("U1").await.unwrap());
        assert_eq!(reg.active_users_async().await.unwrap(), vec!["U2"]);
        let u1 = reg.get_async("U1").await.unwrap().unwrap();
        assert_eq!((u1.kind, u1.display_name.as_str(), u1.followed_at, u1.unfollowed_at), (Kind::User, "Alice", 100, Some(400)));
        assert_eq!(reg.list_async(false).await.unwrap().len(), 2);
        let everyone = reg.list_async(true).await.unwrap();
        assert_eq!(everyone.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["U1", "U2", "C1"], "in first-seen order");
        assert_eq!(everyone[2].kind, Kind::Group);
        // Following again keeps the known name when none is given.
        reg.follow_async("U1", Kind::User, None, 500).await.unwrap();
        let u1 = reg.get_async("U1").await.unwrap().unwrap();
        assert_eq!((u1.active, u1.display_name.as_str(), u1.unfollowed_at), (true, "Alice", None));
        assert_eq!(reg.active_users_async().await.unwrap(), vec!["U1", "U2"], "original order kept");
        // Unfollow of someone never seen is recorded as inactive.
        reg.unfollow_async("U9", Kind::User, 600).await.unwrap();
        assert!(!reg.get_async("U9").await.unwrap().unwrap().active);
        assert!(reg.get_async("U8").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn an_older_event_never_overrides_a_newer_one() {
    on_both(|reg| async move {
        assert!(reg.unfollow_async("U1", Kind::User, 100).await.unwrap());
        assert!(reg.follow_async("U1", Kind::User, None, 300).await.unwrap());
        // The unfollow from 200, replayed or late, changes nothing.
        assert!(!reg.unfollow_async("U1", Kind::User, 200).await.unwrap());
        assert!(reg.is_active_async("U1").await.unwrap());
        assert!(reg.is_active_follower("U1").unwrap(), "the Directory too");
        assert!(reg.unfollow_async("U1", Kind::User, 400).await.unwrap());
        assert!(!reg.follow_async("U1", Kind::User, Some("Old"), 350).await.unwrap());
        assert!(!reg.is_active_follower("U1").unwrap(), "an ignored follow does not reach the Directory");
        let u1 = reg.get_async("U1").await.unwrap().unwrap();
        assert_eq!((u1.active, u1.display_name.as_str(), u1.followed_at), (false, "", 300));
        // The same instant is applied: the later arrival wins.
        assert!(reg.follow_async("U1", Kind::User, None, 400).await.unwrap());
        assert!(reg.is_active_async("U1").await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn event_ids_are_remembered() {
    on_both(|reg| async move {
        assert!(!reg.seen_async("E1").await.unwrap());
        assert!(reg.first_delivery_async("E1", 10).await.unwrap());
        assert!(reg.seen_async("E1").await.unwrap());
        assert!(!reg.first_delivery_async("E1", 20).await.unwrap());
        assert!(reg.first_delivery_async("E2", 15).await.unwrap());
        assert_eq!(reg.prune_events_async(15).await.unwrap(), 1, "only the one seen before the cut-off");
        assert!(reg.seen_async("E2").await.unwrap());
        assert!(reg.first_delivery_async("E1", 30).await.unwrap());
    })
    .await;
}

#[tokio::test]
async fn the_directory_counts_active_users_and_knows_every_active_chat() {
    on_both(|reg| async move {
        assert_eq!(reg.active_follower_count().unwrap(), 0);
        reg.follow_async("U1", Kind::User, None, 1).await.unwrap();
        reg.follow_async("U2", Kind::User, None, 2).await.unwrap();
        reg.follow_async("C1", Kind::Group, None, 3).await.unwrap();
        reg.follow_async("R1", Kind::Room, None, 4).await.unwrap();
        reg.unfollow_async("U2", Kind::User, 5).await.unwrap();
        assert_eq!(reg.active_follower_count().unwrap(), 1, "users only, active only");
        for (id, active) in [("U1", true), ("U2", false), ("C1", true), ("R1", true), ("U3", false)] {
            assert_eq!(reg.is_active_follower(id).unwrap(), active, "{id}");
        }
        reg.unfollow_async("C1", Kind::Group, 6).await.unwrap();
        assert!(!reg.is_active_follower("C1").unwrap());
    })
    .await;
}

#[tokio::test]
async fn display_names_are_kept_and_the_probe_writes() {
    on_both(|reg| async move {
        reg.follow_async("U1", Kind::User, Some("Alice"), 1).await.unwrap();
        reg.set_display_name_async("U1", "Alice B.").await.unwrap();
        assert_eq!(reg.get_async("U1").await.unwrap().unwrap().display_name, "Alice B.");
        // Naming someone unknown creates nobody.
        reg.set_display_name_async("U2", "Bob").await.unwrap();
        assert!(reg.get_async("U2").await.unwrap().is_none());
        reg.probe_async().await.unwrap();
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only.

#[tokio::test]
async fn the_synchronous_methods_refuse_postgres_with_an_error_not_a_panic() {
    let Some(t) = database().await else { return };
    let reg = Registry::open_postgres(connect(&t, "node-a").await).await.unwrap();
    let e = reg.follow("U1", Kind::User, None, 1).unwrap_err();
    assert!(e.0.contains("async") && e.0.contains("bug"), "{e}");
    assert!(reg.list(true).is_err());
    assert!(reg.get_async("U1").await.unwrap().is_none(), "nothing was written");
}

#[tokio::test]
async fn the_mirror_is_loaded_at_open() {
    let Some(t) = database().await else { return };
    let a = Registry::open_postgres(connect(&t, "node-a").await).await.unwrap();
    a.follow_async("U1", Kind::User, None, 1).await.unwrap();
    a.follow_async("C1", Kind::Group, None, 2).await.unwrap();
    let b = Registry::open_postgres_with_refresh(connect(&t, "node-b").await, HOUR).await.unwrap();
    assert!(b.is_active_follower("U1").unwrap() && b.is_active_follower("C1").unwrap());
    assert_eq!(b.active_follower_count().unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_on_one_node_is_seen_by_the_other_at_once_and_by_its_mirror_after_the_refresh() {
    // b's mirror never refreshes within the test; c's every 100 ms.
    let Some((t, a, b)) = two_nodes([HOUR, HOUR]).await else { return };
    let c = Registry::open_postgres_with_refresh(connect(&t, "node-c").await, Duration::from_millis(100)).await.unwrap();
    assert!(a.follow_async("U1", Kind::User, Some("Alice"), 100).await.unwrap());
    // The database is read at once on every node.
    assert!(b.is_active_async("U1").await.unwrap());
    assert_eq!(b.active_users_async().await.unwrap(), ["U1"]);
    assert_eq!(b.get_async("U1").await.unwrap().unwrap().display_name, "Alice");
    // The Directory reads the mirror: a's own at once, b's not before a refresh, c's after one.
    assert!(a.is_active_follower("U1").unwrap());
    assert!(!b.is_active_follower("U1").unwrap(), "b's mirror has not been refreshed");
    assert!(eventually(|| c.is_active_follower("U1").unwrap()).await, "c's mirror never saw the follow");
    assert!(eventually(|| c.active_follower_count().unwrap() == 1).await);
    // And the unfollow, the same way.
    assert!(a.unfollow_async("U1", Kind::User, 200).await.unwrap());
    assert!(!b.is_active_async("U1").await.unwrap());
    assert!(eventually(|| !c.is_active_follower("U1").unwrap()).await, "c's mirror never saw the unfollow");
    assert_eq!(c.active_follower_count().unwrap(), 0);
}

#[tokio::test]
async fn a_redelivered_event_is_seen_on_the_other_node() {
    let Some((_t, a, b)) = two_nodes([HOUR, HOUR]).await else { return };
    assert!(a.first_delivery_async("E1", 10).await.unwrap());
    assert!(b.seen_async("E1").await.unwrap());
    assert!(!b.first_delivery_async("E1", 20).await.unwrap(), "the redelivery to b is not a first delivery");
    // Both at once: exactly one of them is first.
    let (x, y) = tokio::join!(a.first_delivery_async("E2", 30), b.first_delivery_async("E2", 30));
    assert!(x.unwrap() ^ y.unwrap(), "exactly one node handles E2 first");
    assert_eq!(b.prune_events_async(25).await.unwrap(), 1);
    assert!(!a.seen_async("E1").await.unwrap() && a.seen_async("E2").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follows_and_unfollows_racing_on_two_nodes_end_in_the_newer_ones_state() {
    let Some((_t, a, b)) = two_nodes([Duration::from_millis(100); 2]).await else { return };
    let (a, b) = (Arc::new(a), Arc::new(b));
    const N: i64 = 60;
    // Chat i: a follows at one time, b unfollows at another; every third starts known.
    // Even i: the follow is newer; odd i: the unfollow is newer.
    let id = |i: i64| format!("U{i:032x}");
    for i in (0..N).step_by(3) {
        a.follow_async(&id(i), Kind::User, None, 1).await.unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..N {
        let (follow_at, unfollow_at) = if i % 2 == 0 { (1000 + i, 500 + i) } else { (500 + i, 1000 + i) };
        let (a, b) = (a.clone(), b.clone());
        // Which of the two starts first alternates too, so arrival order does not decide.
        let first_follow = i % 4 < 2;
        tasks.push(tokio::spawn(async move {
            let follow = async { a.follow_async(&id(i), Kind::User, None, follow_at).await.unwrap() };
            let unfollow = async { b.unfollow_async(&id(i), Kind::User, unfollow_at).await.unwrap() };
            let (f, u) = if first_follow {
                tokio::join!(follow, unfollow)
            } else {
                let (u, f) = tokio::join!(unfollow, follow);
                (f, u)
            };
            // The newer one is always applied; the older only if it came first.
            if i % 2 == 0 {
                assert!(f, "chat {i}: the newer follow was not applied");
            } else {
                assert!(u, "chat {i}: the newer unfollow was not applied");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut expected = Vec::new();
    for i in 0..N {
        let f = a.get_async(&id(i)).await.unwrap().unwrap();
        let follow_newer = i % 2 == 0;
        assert_eq!(f.active, follow_newer, "chat {i}");
        if follow_newer {
            assert_eq!((f.followed_at, f.unfollowed_at), (1000 + i, None), "chat {i}");
            expected.push(id(i));
        } else {
            assert_eq!(f.unfollowed_at, Some(1000 + i), "chat {i}");
        }
    }
    let active: std::collections::BTreeSet<String> = b.active_users_async().await.unwrap().into_iter().collect();
    assert_eq!(active, expected.iter().cloned().collect());
    // Both mirrors agree with the database after a refresh, whatever order they saw the writes in.
    for (name, reg) in [("a", &a), ("b", &b)] {
        let agrees = || (0..N).all(|i| reg.is_active_follower(&id(i)).unwrap() == (i % 2 == 0));
        assert!(eventually(agrees).await, "node {name}'s mirror disagrees with the database");
        assert_eq!(reg.active_follower_count().unwrap(), expected.len());
    }
}

#[tokio::test]
async fn two_channels_on_one_database_share_no_follower_and_no_webhook_event() {
    let Some(t) = database().await else { return };
    let a = Registry::open_postgres_channel(connect(&t, "node-a").await, "shop-a").await.unwrap();
    let b = Registry::open_postgres_channel_with_refresh(connect(&t, "node-a").await, "shop-b", HOUR).await.unwrap();
    assert!(a.follow_async("U1", Kind::User, Some("Alice"), 1).await.unwrap());
    assert!(b.follow_async("U2", Kind::User, None, 1).await.unwrap());
    assert_eq!(a.active_users_async().await.unwrap(), ["U1"]);
    assert_eq!(b.active_users_async().await.unwrap(), ["U2"]);
    assert!(a.is_active_follower("U1").unwrap() && !a.is_active_follower("U2").unwrap());
    assert!(!b.is_active_async("U1").await.unwrap() && b.get_async("U1").await.unwrap().is_none());
    // An unfollow in b of a's follower changes nothing in a.
    b.unfollow_async("U1", Kind::User, 5).await.unwrap();
    assert!(a.is_active_async("U1").await.unwrap());
    assert_eq!(b.list_async(true).await.unwrap().len(), 2);
    // The same webhook event id is new in each channel once.
    assert!(a.first_delivery_async("E1", 1).await.unwrap());
    assert!(b.first_delivery_async("E1", 1).await.unwrap());
    assert!(!a.first_delivery_async("E1", 1).await.unwrap());
    assert!(a.seen_async("E1").await.unwrap());
    // The unnamed channel sees none of it; a mirror opened later loads its channel only.
    let unnamed = Registry::open_postgres(connect(&t, "node-b").await).await.unwrap();
    assert!(unnamed.list_async(true).await.unwrap().is_empty() && !unnamed.seen_async("E1").await.unwrap());
    let a2 = Registry::open_postgres_channel_with_refresh(connect(&t, "node-b").await, "shop-a", HOUR).await.unwrap();
    assert!(a2.is_active_follower("U1").unwrap() && !a2.is_active_follower("U2").unwrap());
    assert_eq!(a2.active_follower_count().unwrap(), 1);
}
