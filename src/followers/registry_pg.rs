//! The follower registry on PostgreSQL (issue #21): the same operations as the SQLite backend
//! (`mod.rs`), on the shared schema of `src/pg/migrations/` (`followers`, `webhook_events`), so
//! that several gateways behind one webhook URL and one MX name share who follows the bot.
//!
//! What differs from SQLite, and why:
//! - **One statement, one transaction.** Each write is a single statement in autocommit, so it
//!   is its own transaction, and `pg::Database` refused at connect a server where a commit
//!   returns before it is flushed: `Ok` means durable, as the webhook's 200 needs.
//! - **The newer event wins, across nodes too.** `follow`/`unfollow` are one conditional upsert
//!   (`ON CONFLICT … DO UPDATE … WHERE followers.last_event_at <= excluded.last_event_at`).
//!   PostgreSQL locks the conflicting row and evaluates the `WHERE` on its newest committed
//!   version, so two nodes racing with events of different times end in the newer one's state,
//!   whatever order their statements arrive in; two inserts of a new id wait on the primary key
//!   and the second becomes the update.
//! - **A redelivery is seen on every node**: `first_delivery` is `ON CONFLICT DO NOTHING` on
//!   `webhook_events`' primary key, and `seen` reads the table.
//! - **The SMTP side's [`Mirror`].** `smtp::Directory` is synchronous (the session is sans-IO)
//!   and must not wait on the network, so the registry keeps the ids of active followers in
//!   memory: loaded at open, changed at once by this node's own follows and unfollows, and
//!   reloaded from the database every [`MIRROR_REFRESH`] by a background task. A follow recorded
//!   by another node is therefore seen by this node's RCPT checks within that time (its
//!   `is_active`, `active_users` and `followers@` read the database and see it at once). While
//!   the database is unreachable the mirror keeps its last state: RCPT decisions go on from it,
//!   and the mail itself is refused later by what cannot be stored.
//! - Every statement is about this registry's LINE channel (`channel`: '' for the unnamed `[line]`
//!   channel, else a `[[channels]]` name), so channels on one database share no follower and no
//!   webhook event id.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_postgres::Row;
use tracing::{info, warn};

use super::{Follower, Kind, RegistryError};
use crate::pg::{Database, PgError};

/// How often the mirror of active followers is reloaded: how late another node's follow or
/// unfollow may reach this node's RCPT decisions.
pub const MIRROR_REFRESH: Duration = Duration::from_secs(3);

const COLUMNS: &str = "id, kind, active, display_name, followed_at, unfollowed_at";

fn pg_err(e: PgError) -> RegistryError {
    RegistryError(e.to_string())
}

/// The PostgreSQL backend of [`super::Registry`].
pub(super) struct PgRegistry {
    db: Database,
    /// The LINE channel of every row ('' for the unnamed one).
    channel: Arc<str>,
    mirror: Arc<Mirror>,
    /// The mirror's refresh; stopped when the registry is dropped.
    refresher: tokio::task::JoinHandle<()>,
}

impl Drop for PgRegistry {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// The active followers as this node last knew them (see the module doc).
#[derive(Default)]
pub(super) struct Mirror {
    state: RwLock<Active>,
    /// Bumped (under the write lock) by every change this node makes, so that a reload whose
    /// query started before such a change does not undo it with an older picture.
    local_writes: AtomicU64,
}

#[derive(Default)]
struct Active {
    /// Users apart, as `active_follower_count` counts users only (as `active_users` lists them).
    users: HashSet<String>,
    /// Groups and rooms.
    chats: HashSet<String>,
}

impl Mirror {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Active> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Active> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn is_active(&self, id: &str) -> bool {
        let a = self.read();
        a.users.contains(id) || a.chats.contains(id)
    }

    pub(super) fn active_users(&self) -> usize {
        self.read().users.len()
    }

    /// This node's own applied follow (`active`) or unfollow.
    fn set(&self, id: &str, kind: Kind, active: bool) {
        let mut a = self.write();
        a.users.remove(id);
        a.chats.remove(id);
        if active {
            match kind {
                Kind::User => a.users.insert(id.to_owned()),
                Kind::Group | Kind::Room => a.chats.insert(id.to_owned()),
            };
        }
        self.local_writes.fetch_add(1, Ordering::SeqCst);
    }

    /// Replaces the picture with one read from the database, unless this node changed it since
    /// `since` (the `local_writes` before the read): then the read may predate that change.
    fn replace(&self, since: u64, fresh: Active) -> bool {
        let mut a = self.write();
        if self.local_writes.load(Ordering::SeqCst) != since {
            return false;
        }
        *a = fresh;
        true
    }
}

impl PgRegistry {
    pub(super) async fn open(db: Database, channel: &str, refresh: Duration) -> Result<PgRegistry, RegistryError> {
        db.migrate().await.map_err(pg_err)?;
        let channel: Arc<str> = channel.into();
        let mirror = Arc::new(Mirror::default());
        let since = mirror.local_writes.load(Ordering::SeqCst);
        mirror.replace(since, load_active(&db, &channel).await?);
        let refresher = tokio::spawn(refresh_loop(db.clone(), channel.clone(), Arc::downgrade(&mirror), refresh));
        Ok(PgRegistry { db, channel, mirror, refresher })
    }

    pub(super) fn mirror(&self) -> &Mirror {
        &self.mirror
    }

    async fn client(&self) -> Result<crate::pg::Client, RegistryError> {
        self.db.client().await.map_err(pg_err)
    }

    fn err(&self, what: &str, e: tokio_postgres::Error) -> RegistryError {
        pg_err(self.db.query_error(what, &e))
    }

    /// One statement (its own transaction) that changes rows; their count.
    async fn execute(&self, what: &str, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<u64, RegistryError> {
        let client = self.client().await?;
        client.execute(sql, params).await.map_err(|e| self.err(what, e))
    }

    pub(super) async fn probe(&self) -> Result<(), RegistryError> {
        self.db.probe().await.map_err(pg_err)
    }

    pub(super) async fn follow(&self, id: &str, kind: Kind, display_name: Option<&str>, at: i64) -> Result<bool, RegistryError> {
        let n = self
            .execute(
                "recording a follow",
                "INSERT INTO followers (channel, id, kind, active, display_name, followed_at, unfollowed_at, last_event_at)
                 VALUES ($1, $2, $3, true, COALESCE($4::text, ''), $5, NULL, $5)
                 ON CONFLICT (channel, id) DO UPDATE SET active = true, kind = excluded.kind,
                     display_name = COALESCE($4::text, followers.display_name), followed_at = excluded.followed_at,
                     unfollowed_at = NULL, last_event_at = excluded.last_event_at
                 WHERE followers.last_event_at <= excluded.last_event_at",
                &[&self.channel.as_ref(), &id, &kind.as_str(), &display_name, &at],
            )
            .await?;
        if n == 1 {
            self.mirror.set(id, kind, true);
        }
        Ok(n == 1)
    }

    pub(super) async fn unfollow(&self, id: &str, kind: Kind, at: i64) -> Result<bool, RegistryError> {
        let n = self
            .execute(
                "recording an unfollow",
                "INSERT INTO followers (channel, id, kind, active, followed_at, unfollowed_at, last_event_at)
                 VALUES ($1, $2, $3, false, $4, $4, $4)
                 ON CONFLICT (channel, id) DO UPDATE SET active = false, unfollowed_at = excluded.unfollowed_at,
                     last_event_at = excluded.last_event_at
                 WHERE followers.last_event_at <= excluded.last_event_at",
                &[&self.channel.as_ref(), &id, &kind.as_str(), &at],
            )
            .await?;
        if n == 1 {
            self.mirror.set(id, kind, false);
        }
        Ok(n == 1)
    }

    pub(super) async fn set_display_name(&self, id: &str, name: &str) -> Result<(), RegistryError> {
        self.execute(
            "storing a display name",
            "UPDATE followers SET display_name = $3 WHERE channel = $1 AND id = $2",
            &[&self.channel.as_ref(), &id, &name],
        )
        .await?;
        Ok(())
    }

    pub(super) async fn get(&self, id: &str) -> Result<Option<Follower>, RegistryError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT {COLUMNS} FROM followers WHERE channel = $1 AND id = $2"), &[&self.channel.as_ref(), &id])
            .await
            .map_err(|e| self.err("reading a follower", e))?;
        Ok(row.as_ref().map(row_to_follower))
    }

    pub(super) async fn active_users(&self) -> Result<Vec<String>, RegistryError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT id FROM followers WHERE channel = $1 AND active AND kind = 'user' ORDER BY seq", &[&self.channel.as_ref()])
            .await
            .map_err(|e| self.err("reading the active followers", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub(super) async fn list(&self, include_inactive: bool) -> Result<Vec<Follower>, RegistryError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {COLUMNS} FROM followers WHERE channel = $1 AND (active OR $2) ORDER BY seq"),
                &[&self.channel.as_ref(), &include_inactive],
            )
            .await
            .map_err(|e| self.err("listing the followers", e))?;
        Ok(rows.iter().map(row_to_follower).collect())
    }

    pub(super) async fn seen(&self, event_id: &str) -> Result<bool, RegistryError> {
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT 1 FROM webhook_events WHERE channel = $1 AND id = $2", &[&self.channel.as_ref(), &event_id])
            .await
            .map_err(|e| self.err("looking up a webhook event id", e))?;
        Ok(row.is_some())
    }

    pub(super) async fn first_delivery(&self, event_id: &str, at: i64) -> Result<bool, RegistryError> {
        let n = self
            .execute(
                "remembering a webhook event id",
                "INSERT INTO webhook_events (channel, id, seen_at) VALUES ($1, $2, $3) ON CONFLICT (channel, id) DO NOTHING",
                &[&self.channel.as_ref(), &event_id, &at],
            )
            .await?;
        Ok(n == 1)
    }

    pub(super) async fn prune_events(&self, before: i64) -> Result<usize, RegistryError> {
        let n = self
            .execute(
                "forgetting old webhook event ids",
                "DELETE FROM webhook_events WHERE channel = $1 AND seen_at < $2",
                &[&self.channel.as_ref(), &before],
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// Every active follower of the channel, for the mirror.
async fn load_active(db: &Database, channel: &str) -> Result<Active, RegistryError> {
    let what = "loading the active followers";
    let client = db.client().await.map_err(pg_err)?;
    let rows = client
        .query("SELECT id, kind FROM followers WHERE channel = $1 AND active", &[&channel])
        .await
        .map_err(|e| pg_err(db.query_error(what, &e)))?;
    let mut active = Active::default();
    for r in &rows {
        let id: String = r.get(0);
        match Kind::parse(r.get(1)) {
            Kind::User => active.users.insert(id),
            Kind::Group | Kind::Room => active.chats.insert(id),
        };
    }
    Ok(active)
}

/// Reloads the mirror every `every` until the registry is gone. A failed reload keeps the old
/// picture and is logged once until a reload succeeds again (not every few seconds).
async fn refresh_loop(db: Database, channel: Arc<str>, mirror: std::sync::Weak<Mirror>, every: Duration) {
    let mut failing = false;
    loop {
        tokio::time::sleep(every).await;
        // A few tries when this node's own writes keep overtaking the read; the next round
        // catches up otherwise.
        for _ in 0..3 {
            let Some(m) = mirror.upgrade() else { return };
            let since = m.local_writes.load(Ordering::SeqCst);
            drop(m);
            match load_active(&db, &channel).await {
                Ok(fresh) => {
                    if failing {
                        info!("followers: the mirror of active followers is reloaded from PostgreSQL again");
                        failing = false;
                    }
                    let Some(m) = mirror.upgrade() else { return };
                    if m.replace(since, fresh) {
                        break;
                    }
                }
                Err(e) => {
                    if !failing {
                        warn!(
                            "followers: cannot reload the active followers ({e}); RCPT checks use the list as last read \
                             until PostgreSQL answers again"
                        );
                        failing = true;
                    }
                    break;
                }
            }
        }
    }
}

fn row_to_follower(r: &Row) -> Follower {
    Follower {
        id: r.get(0),
        kind: Kind::parse(r.get(1)),
        active: r.get(2),
        display_name: r.get(3),
        followed_at: r.get(4),
        unfollowed_at: r.get(5),
    }
}
