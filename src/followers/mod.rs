//! The follower registry: who may be reached, as the webhook learns it.
//!
//! Users who follow the bot (or unblock it), and groups and rooms it joins, are recorded as
//! active; unfollow and leave make them inactive (kept, not deleted, so `followers list --all`
//! still shows who was there). The registry also remembers webhook event ids, so a redelivered
//! event changes nothing twice, and each chat's latest event time, so an older event replayed
//! (or delivered late) never overrides a newer one: an old unfollow cannot undo a follow.
//!
//! Two backends behind one [`Registry`]: by default its own SQLite file under `storage.dir`,
//! readable by `mail2line followers` while the server runs (WAL); or, for several gateways on
//! one database, PostgreSQL ([`Registry::open_postgres`], `registry_pg.rs`, which says what
//! differs there). The server's code uses the async methods (`follow_async`, …), which work on
//! both; they are named apart from the synchronous ones because those stay as they were, for
//! the SQLite-only code and tests that call them (they refuse to run on PostgreSQL). On SQLite
//! the async methods run the same short local statements inline, as the handlers always did.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::smtp::session::DirectoryError;

mod registry_pg;

pub use registry_pg::MIRROR_REFRESH;

/// The registry's file inside `storage.dir`.
pub const FILE_NAME: &str = "followers.sqlite3";

/// What kind of chat an id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
    Room,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Group => "group",
            Kind::Room => "room",
        }
    }

    fn parse(s: &str) -> Kind {
        match s {
            "group" => Kind::Group,
            "room" => Kind::Room,
            _ => Kind::User,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follower {
    pub id: String,
    pub kind: Kind,
    pub active: bool,
    pub display_name: String,
    /// Unix ms of the latest follow/join.
    pub followed_at: i64,
    /// Unix ms of the latest unfollow/leave, if the follower is inactive.
    pub unfollowed_at: Option<i64>,
}

/// Why the registry could not do what was asked: the one database error of `storage.dir`.
pub use crate::storage::DbError as RegistryError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS followers (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    active INTEGER NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    followed_at INTEGER NOT NULL,
    unfollowed_at INTEGER
);
CREATE TABLE IF NOT EXISTS webhook_events (
    id TEXT PRIMARY KEY,
    seen_at INTEGER NOT NULL
);
-- One row, rewritten by `Registry::probe` (`/readyz`).
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
";

/// A handle on the registry, over SQLite or PostgreSQL.
pub struct Registry {
    backend: Backend,
}

enum Backend {
    /// Calls are short, synchronous SQLite statements.
    Sqlite(Mutex<Connection>),
    Postgres(registry_pg::PgRegistry),
}

/// Runs the PostgreSQL form of a method, or the synchronous SQLite one.
macro_rules! dispatch {
    ($self:ident, $method:ident($($arg:expr),*)) => {
        match &$self.backend {
            Backend::Sqlite(_) => $self.$method($($arg),*),
            Backend::Postgres(p) => p.$method($($arg),*).await,
        }
    };
}

impl Registry {
    /// Opens (creating if needed) the registry under `dir`.
    pub fn open(dir: &Path) -> Result<Registry, RegistryError> {
        crate::storage::secure_dir(dir)?;
        let conn = connect(&dir.join(FILE_NAME), OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Registry { backend: Backend::Sqlite(Mutex::new(conn)) })
    }

    /// Opens an existing registry (for the CLI); an error names the file when there is none.
    pub fn open_existing(dir: &Path) -> Result<Registry, RegistryError> {
        let path = dir.join(FILE_NAME);
        if !path.exists() {
            return Err(RegistryError(format!(
                "no follower registry at {} (it is created when `mail2line serve` starts with this storage.dir)",
                path.display()
            )));
        }
        let conn = connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Registry { backend: Backend::Sqlite(Mutex::new(conn)) })
    }

    /// The registry on PostgreSQL (the schema migrated if needed), with the mirror of active
    /// followers that `smtp::Directory` reads refreshed every [`MIRROR_REFRESH`]. Needs a tokio
    /// runtime (the refresh is a task on it, stopped when the registry is dropped).
    pub async fn open_postgres(db: crate::pg::Database) -> Result<Registry, RegistryError> {
        Self::open_postgres_with_refresh(db, MIRROR_REFRESH).await
    }

    /// [`Registry::open_postgres`] with the mirror refreshed every `refresh` (the tests shorten
    /// it to see another node's follow arrive).
    pub async fn open_postgres_with_refresh(db: crate::pg::Database, refresh: Duration) -> Result<Registry, RegistryError> {
        Self::open_postgres_channel_with_refresh(db, "", refresh).await
    }

    /// [`Registry::open_postgres`] for one LINE channel of `[[channels]]` (`""`: the unnamed
    /// `[line]` channel): its followers and webhook event ids only.
    pub async fn open_postgres_channel(db: crate::pg::Database, channel: &str) -> Result<Registry, RegistryError> {
        Self::open_postgres_channel_with_refresh(db, channel, MIRROR_REFRESH).await
    }

    /// [`Registry::open_postgres_channel`] with the mirror refreshed every `refresh`.
    pub async fn open_postgres_channel_with_refresh(db: crate::pg::Database, channel: &str, refresh: Duration) -> Result<Registry, RegistryError> {
        Ok(Registry { backend: Backend::Postgres(registry_pg::PgRegistry::open(db, channel, refresh).await?) })
    }

    /// Whether the registry is on PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The SQLite connection, for the synchronous methods; on PostgreSQL they are a bug of the
    /// caller, told as an error rather than a panic or a blocked runtime thread.
    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, RegistryError> {
        match &self.backend {
            Backend::Sqlite(conn) => Ok(conn.lock().unwrap_or_else(|e| e.into_inner())),
            Backend::Postgres(_) => Err(RegistryError(
                "a synchronous follower-registry call reached the PostgreSQL registry, which only has async methods; \
                 this is a bug in mail2line, please report it"
                    .into(),
            )),
        }
    }

    // -----------------------------------------------------------------------------------------
    // The async methods: the same operations on either backend (see the module doc).

    /// [`Registry::probe`] on either backend (PostgreSQL: this node's health row).
    pub async fn probe_async(&self) -> Result<(), RegistryError> {
        dispatch!(self, probe())
    }

    /// [`Registry::follow`] on either backend.
    pub async fn follow_async(&self, id: &str, kind: Kind, display_name: Option<&str>, at: i64) -> Result<bool, RegistryError> {
        dispatch!(self, follow(id, kind, display_name, at))
    }

    /// [`Registry::unfollow`] on either backend.
    pub async fn unfollow_async(&self, id: &str, kind: Kind, at: i64) -> Result<bool, RegistryError> {
        dispatch!(self, unfollow(id, kind, at))
    }

    pub async fn set_display_name_async(&self, id: &str, name: &str) -> Result<(), RegistryError> {
        dispatch!(self, set_display_name(id, name))
    }

    pub async fn get_async(&self, id: &str) -> Result<Option<Follower>, RegistryError> {
        dispatch!(self, get(id))
    }

    /// Reads the database on both backends (not the PostgreSQL mirror): another node's follow
    /// is seen at once.
    pub async fn is_active_async(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.get_async(id).await?.is_some_and(|f| f.active))
    }

    pub async fn active_users_async(&self) -> Result<Vec<String>, RegistryError> {
        dispatch!(self, active_users())
    }

    pub async fn list_async(&self, include_inactive: bool) -> Result<Vec<Follower>, RegistryError> {
        dispatch!(self, list(include_inactive))
    }

    pub async fn seen_async(&self, event_id: &str) -> Result<bool, RegistryError> {
        dispatch!(self, seen(event_id))
    }

    pub async fn first_delivery_async(&self, event_id: &str, at: i64) -> Result<bool, RegistryError> {
        dispatch!(self, first_delivery(event_id, at))
    }

    pub async fn prune_events_async(&self, before: i64) -> Result<usize, RegistryError> {
        dispatch!(self, prune_events(before))
    }

    // -----------------------------------------------------------------------------------------
    // The synchronous methods: SQLite only.

    /// Commits a one-row write: `Ok` means the registry (and so storage.dir) takes writes now.
    pub fn probe(&self) -> Result<(), RegistryError> {
        let now = crate::clock::now_ms();
        self.conn()?.execute("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, ?1)", params![now])?;
        Ok(())
    }

    /// Records a follow (or unblock, or join): active from `at` (unix ms, the event's time). A
    /// display name that is `None` keeps the one already known. `false` when the chat already
    /// has a newer event: nothing changes (an old follow must not undo a later unfollow).
    pub fn follow(&self, id: &str, kind: Kind, display_name: Option<&str>, at: i64) -> Result<bool, RegistryError> {
        let n = self.conn()?.execute(
            "INSERT INTO followers (id, kind, active, display_name, followed_at, unfollowed_at, last_event_at)
             VALUES (?1, ?2, 1, COALESCE(?3, ''), ?4, NULL, ?4)
             ON CONFLICT(id) DO UPDATE SET active = 1, kind = ?2,
                 display_name = COALESCE(?3, display_name), followed_at = ?4, unfollowed_at = NULL, last_event_at = ?4
             WHERE last_event_at <= ?4",
            params![id, kind.as_str(), display_name, at],
        )?;
        Ok(n == 1)
    }

    /// Records an unfollow (or leave): inactive from `at`, kept in the registry. `false` when
    /// the chat already has a newer event (an old unfollow replayed after a follow).
    pub fn unfollow(&self, id: &str, kind: Kind, at: i64) -> Result<bool, RegistryError> {
        let n = self.conn()?.execute(
            "INSERT INTO followers (id, kind, active, followed_at, unfollowed_at, last_event_at) VALUES (?1, ?2, 0, ?3, ?3, ?3)
             ON CONFLICT(id) DO UPDATE SET active = 0, unfollowed_at = ?3, last_event_at = ?3
             WHERE last_event_at <= ?3",
            params![id, kind.as_str(), at],
        )?;
        Ok(n == 1)
    }

    pub fn set_display_name(&self, id: &str, name: &str) -> Result<(), RegistryError> {
        self.conn()?.execute("UPDATE followers SET display_name = ?2 WHERE id = ?1", params![id, name])?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Follower>, RegistryError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT id, kind, active, display_name, followed_at, unfollowed_at FROM followers WHERE id = ?1",
                params![id],
                row_to_follower,
            )
            .optional()?)
    }

    pub fn is_active(&self, id: &str) -> Result<bool, RegistryError> {
        Ok(self.get(id)?.is_some_and(|f| f.active))
    }

    /// Ids of active users (not groups or rooms), in the order they first followed.
    pub fn active_users(&self) -> Result<Vec<String>, RegistryError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached("SELECT id FROM followers WHERE active = 1 AND kind = 'user' ORDER BY rowid")?;
        let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Every follower (or only active ones), in the order they first appeared.
    pub fn list(&self, include_inactive: bool) -> Result<Vec<Follower>, RegistryError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT id, kind, active, display_name, followed_at, unfollowed_at FROM followers WHERE active = 1 OR ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![include_inactive], row_to_follower)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Whether a webhook event id was already handled.
    pub fn seen(&self, event_id: &str) -> Result<bool, RegistryError> {
        Ok(self
            .conn()?
            .query_row("SELECT 1 FROM webhook_events WHERE id = ?1", params![event_id], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Remembers a webhook event id; false if it was seen before (a redelivery to ignore).
    pub fn first_delivery(&self, event_id: &str, at: i64) -> Result<bool, RegistryError> {
        let n = self
            .conn()?
            .execute("INSERT OR IGNORE INTO webhook_events (id, seen_at) VALUES (?1, ?2)", params![event_id, at])?;
        Ok(n == 1)
    }

    /// Forgets event ids older than `before` (LINE redelivers within a day at most).
    pub fn prune_events(&self, before: i64) -> Result<usize, RegistryError> {
        Ok(self.conn()?.execute("DELETE FROM webhook_events WHERE seen_at < ?1", params![before])?)
    }
}

impl crate::smtp::Directory for Registry {
    /// SQLite: the database, as always. PostgreSQL: the mirror (see `registry_pg.rs`), which
    /// sees another node's follow within [`MIRROR_REFRESH`].
    fn is_active_follower(&self, id: &str) -> Result<bool, DirectoryError> {
        if let Backend::Postgres(p) = &self.backend {
            return Ok(p.mirror().is_active(id));
        }
        self.is_active(id).map_err(|e| DirectoryError(e.0))
    }

    fn active_follower_count(&self) -> Result<usize, DirectoryError> {
        if let Backend::Postgres(p) = &self.backend {
            return Ok(p.mirror().active_users());
        }
        let n: i64 = self
            .conn()
            .map_err(|e| DirectoryError(e.0))?
            .query_row("SELECT COUNT(*) FROM followers WHERE active = 1 AND kind = 'user'", [], |r| r.get(0))
            .map_err(|e| DirectoryError(e.to_string()))?;
        Ok(n as usize)
    }
}

/// Brings a registry made by an older version up to date: `followers.last_event_at` (the time of
/// the chat's latest applied event) is added and filled from the follow/unfollow times, which
/// are event times too. Checked and done in one write transaction, so a `mail2line followers`
/// and the server opening the same old file at once cannot both add the column.
fn migrate(conn: &Connection) -> Result<(), RegistryError> {
    let has = |c: &Connection| -> rusqlite::Result<bool> {
        c.prepare("SELECT 1 FROM pragma_table_info('followers') WHERE name = 'last_event_at'")?.exists([])
    };
    if has(conn)? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> rusqlite::Result<()> {
        if !has(conn)? {
            conn.execute_batch(
                "ALTER TABLE followers ADD COLUMN last_event_at INTEGER NOT NULL DEFAULT 0;
                 UPDATE followers SET last_event_at = MAX(followed_at, COALESCE(unfollowed_at, 0));",
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
    }
    Ok(())
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, RegistryError> {
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| RegistryError(format!("cannot open the follower registry {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

fn row_to_follower(r: &rusqlite::Row<'_>) -> rusqlite::Result<Follower> {
    Ok(Follower {
        id: r.get(0)?,
        kind: Kind::parse(&r.get::<_, String>(1)?),
        active: r.get::<_, i64>(2)? != 0,
        display_name: r.get(3)?,
        followed_at: r.get(4)?,
        unfollowed_at: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follow_unfollow_refollow() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        reg.follow("U1", Kind::User, Some("Alice"), 100).unwrap();
        reg.follow("U2", Kind::User, None, 200).unwrap();
        reg.follow("C1", Kind::Group, None, 300).unwrap();
        assert_eq!(reg.active_users().unwrap(), vec!["U1", "U2"]);
        reg.unfollow("U1", Kind::User, 400).unwrap();
        assert!(!reg.is_active("U1").unwrap());
        assert_eq!(reg.active_users().unwrap(), vec!["U2"]);
        let u1 = reg.get("U1").unwrap().unwrap();
        assert_eq!((u1.display_name.as_str(), u1.followed_at, u1.unfollowed_at), ("Alice", 100, Some(400)));
        assert_eq!(reg.list(false).unwrap().len(), 2);
        assert_eq!(reg.list(true).unwrap().len(), 3);
        // Following again keeps the known name when none is given.
        reg.follow("U1", Kind::User, None, 500).unwrap();
        let u1 = reg.get("U1").unwrap().unwrap();
        assert_eq!((u1.active, u1.display_name.as_str(), u1.unfollowed_at), (true, "Alice", None));
        assert_eq!(reg.active_users().unwrap(), vec!["U1", "U2"], "original order kept");
        // Unfollow of someone never seen is recorded as inactive.
        reg.unfollow("U9", Kind::User, 600).unwrap();
        assert!(!reg.get("U9").unwrap().unwrap().active);
    }

    #[test]
    fn an_older_event_never_overrides_a_newer_one() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        assert!(reg.unfollow("U1", Kind::User, 100).unwrap());
        assert!(reg.follow("U1", Kind::User, None, 300).unwrap());
        // The unfollow from 200, replayed or late, changes nothing.
        assert!(!reg.unfollow("U1", Kind::User, 200).unwrap());
        assert!(reg.is_active("U1").unwrap());
        assert!(reg.unfollow("U1", Kind::User, 400).unwrap());
        assert!(!reg.follow("U1", Kind::User, Some("Old"), 350).unwrap());
        let u1 = reg.get("U1").unwrap().unwrap();
        assert_eq!((u1.active, u1.display_name.as_str(), u1.followed_at), (false, "", 300));
        // The same instant is applied: the later arrival wins.
        assert!(reg.follow("U1", Kind::User, None, 400).unwrap());
        assert!(reg.is_active("U1").unwrap());
    }

    #[test]
    fn an_old_registry_gets_last_event_at_from_its_follow_times() {
        let dir = tempfile::tempdir().unwrap();
        {
            let old = Connection::open(dir.path().join(FILE_NAME)).unwrap();
            old.execute_batch(
                "CREATE TABLE followers (id TEXT PRIMARY KEY, kind TEXT NOT NULL, active INTEGER NOT NULL,
                     display_name TEXT NOT NULL DEFAULT '', followed_at INTEGER NOT NULL, unfollowed_at INTEGER);
                 INSERT INTO followers VALUES ('U1', 'user', 0, 'A', 100, 500), ('U2', 'user', 1, 'B', 300, NULL);",
            )
            .unwrap();
        }
        let reg = Registry::open_existing(dir.path()).unwrap();
        assert!(!reg.follow("U1", Kind::User, None, 400).unwrap(), "U1 left at 500");
        assert!(!reg.unfollow("U2", Kind::User, 200).unwrap(), "U2 followed at 300");
        assert!(reg.unfollow("U2", Kind::User, 301).unwrap());
        drop(reg);
        // Opening again (the server after the CLI) finds the column and changes nothing.
        let reg = Registry::open(dir.path()).unwrap();
        assert_eq!(reg.list(true).unwrap().len(), 2);
    }

    #[test]
    fn event_ids_are_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(dir.path()).unwrap();
        assert!(!reg.seen("E1").unwrap());
        assert!(reg.first_delivery("E1", 10).unwrap());
        assert!(reg.seen("E1").unwrap());
        assert!(!reg.first_delivery("E1", 20).unwrap());
        assert_eq!(reg.prune_events(15).unwrap(), 1);
        assert!(reg.first_delivery("E1", 30).unwrap());
    }

    #[test]
    fn cli_side_needs_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = Registry::open_existing(dir.path()).err().unwrap();
        assert!(err.0.contains("no follower registry"), "{err}");
        Registry::open(dir.path()).unwrap().follow("U1", Kind::User, None, 1).unwrap();
        assert_eq!(Registry::open_existing(dir.path()).unwrap().active_users().unwrap(), vec!["U1"]);
    }
}
