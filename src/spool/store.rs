//! The job store: the only place that knows the spool's SQLite schema.
//!
//! One writer thread owns the write connection and applies commands in batches: every command
//! that arrives while a transaction commits joins the next one, so many SMTP sessions that accept
//! mail at once share one fsync (group commit). `synchronous = FULL` in WAL mode makes a commit
//! durable when it returns, which is what lets the SMTP side answer 250 afterwards.
//! Readers (the dispatcher's scans, `mail2line queue`) open their own connections; WAL lets them
//! read while the writer writes, also from another process.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

/// The database file inside `storage.dir`.
pub const FILE_NAME: &str = "spool.sqlite3";

/// How often the WAL is folded into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Commands applied per transaction at most; bounds the latency one batch adds.
const MAX_BATCH: usize = 2048;

pub type JobId = i64;

/// A request to store: where it goes and the exact JSON body to POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub mail_id: String,
    /// API path, e.g. `/v2/bot/message/push`.
    pub path: String,
    pub body: String,
    /// `X-Line-Retry-Key`: chosen once, before the first attempt, and never changed.
    pub retry_key: String,
    /// First recipient id, for listings.
    pub target: String,
    pub sender: String,
}

/// A stored job as the dispatcher and `queue` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub mail_id: String,
    pub path: String,
    pub body: String,
    pub retry_key: String,
    pub target: String,
    pub sender: String,
    pub state: State,
    pub attempts: u32,
    pub created_at: i64,
    pub first_attempt_at: Option<i64>,
    pub next_at: i64,
    /// An earlier attempt may have reached LINE without us learning the answer.
    pub ambiguous: bool,
    pub last_error: String,
}

impl Job {
    /// The job a just-stored [`NewJob`] became: never attempted, due at once.
    pub fn fresh(id: JobId, new: NewJob, now: i64) -> Job {
        Job {
            id,
            mail_id: new.mail_id,
            path: new.path,
            body: new.body,
            retry_key: new.retry_key,
            target: new.target,
            sender: new.sender,
            state: State::Pending,
            attempts: 0,
            created_at: now,
            first_attempt_at: None,
            next_at: now,
            ambiguous: false,
            last_error: String::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Dead,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Dead => "dead",
        }
    }

    fn parse(s: &str) -> State {
        if s == "dead" {
            State::Dead
        } else {
            State::Pending
        }
    }
}

/// Why the store could not do what was asked. The text is for logs; it never holds mail content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError(e.to_string())
    }
}

/// What happened to an attempt, to be recorded.
#[derive(Debug, Clone)]
pub enum Update {
    /// Delivered: the job is removed.
    Done,
    /// Try again at `next_at` (unix ms).
    Retry { next_at: i64, error: String, ambiguous: bool },
    /// Give up: kept as dead with the reason.
    Dead { error: String },
}

enum Command {
    Insert(Vec<NewJob>, oneshot::Sender<Result<Vec<JobId>, StoreError>>),
    Update { id: JobId, attempted_at: i64, update: Update, done: oneshot::Sender<Result<(), StoreError>> },
    Probe(oneshot::Sender<Result<(), StoreError>>),
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Store {
    tx: mpsc::Sender<Command>,
    path: PathBuf,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    mail_id TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    retry_key TEXT NOT NULL,
    target TEXT NOT NULL,
    sender TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    first_attempt_at INTEGER,
    next_at INTEGER NOT NULL,
    ambiguous INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_due ON jobs(state, next_at);
-- A mail's requests to one target form a chain that goes out in id order (`due`).
CREATE INDEX IF NOT EXISTS jobs_chain ON jobs(mail_id, target, id);
-- One row, rewritten by `Store::probe` (`/readyz`): proof that a commit still reaches the disk.
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
";

/// Opens a connection with the settings every user of the file needs.
fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| StoreError(format!("cannot open the spool {}: {e}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

/// Opens a reader (or, for `queue retry/drop`, a writer) on an existing spool.
pub fn open_existing(dir: &Path, write: bool) -> Result<Connection, StoreError> {
    let path = dir.join(FILE_NAME);
    if !path.exists() {
        return Err(StoreError(format!("no spool at {} (has `mail2line serve` run with this storage.dir?)", path.display())));
    }
    let flags = if write { OpenFlags::SQLITE_OPEN_READ_WRITE } else { OpenFlags::SQLITE_OPEN_READ_ONLY };
    connect(&path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)
}

impl Store {
    /// Creates `dir` and the database if needed and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        crate::storage::secure_dir(dir).map_err(StoreError)?;
        let path = dir.join(FILE_NAME);
        let conn = connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
        conn.execute_batch(SCHEMA)?;
        // Checkpoints copy the WAL into the database and fsync it; done inside a commit they put
        // a spike into the SMTP reply time of whichever mail triggered them. So the writer never
        // checkpoints; a background thread does, from its own connection.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let checkpointer = connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        std::thread::Builder::new()
            .name("spool-checkpoint".into())
            .spawn(move || loop {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                if let Err(e) = checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!("spool checkpoint failed: {e}");
                }
            })
            .map_err(|e| StoreError(format!("cannot start the spool checkpointer: {e}")))?;
        // Jobs that were never attempted wear a lease (see `insert`); after a restart nothing is
        // in flight, so they are all due now.
        conn.execute("UPDATE jobs SET next_at = ?1 WHERE state = 'pending' AND attempts = 0", params![now_ms()])?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| StoreError(format!("cannot start the spool writer: {e}")))?;
        Ok(Store { tx, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stores the jobs of one mail; returns once they are durable (fsync'd).
    pub async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Insert(jobs, done)).map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// Records the outcome of an attempt; returns once it is committed.
    pub async fn update(&self, id: JobId, attempted_at: i64, update: Update) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Update { id, attempted_at, update, done })
            .map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// Commits a one-row write like any mail's (durable, fsync'd): `Ok` means the spool can
    /// take mail right now. Joins the current batch, so it costs no fsync of its own under load.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Probe(done)).map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }
}

/// How long a freshly accepted job is hidden from the due-job scan: it is handed to the workers
/// directly, and the scan must not hand it out a second time while it waits for a rate slot.
pub const LEASE_MS: i64 = 10 * 60 * 1000;

fn writer(mut conn: Connection, rx: mpsc::Receiver<Command>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(c) => batch.push(c),
                Err(_) => break,
            }
        }
        let result = apply(&mut conn, &batch);
        for (cmd, res) in batch.into_iter().zip(result) {
            match cmd {
                Command::Insert(_, done) => {
                    let _ = done.send(res.map(|r| r.unwrap_or_default()));
                }
                Command::Update { done, .. } | Command::Probe(done) => {
                    let _ = done.send(res.map(|_| ()));
                }
            }
        }
    }
}

/// Applies a batch in one transaction. If the transaction fails, every command fails: a mail
/// whose insert did not commit must not be answered 250.
fn apply(conn: &mut Connection, batch: &[Command]) -> Vec<Result<Option<Vec<JobId>>, StoreError>> {
    let run = |conn: &mut Connection| -> Result<Vec<Option<Vec<JobId>>>, StoreError> {
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO jobs (mail_id, path, body, retry_key, target, sender, created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let now = now_ms();
            for cmd in batch {
                match cmd {
                    Command::Insert(jobs, _) => {
                        let mut ids = Vec::with_capacity(jobs.len());
                        for j in jobs {
                            insert.execute(params![j.mail_id, j.path, j.body, j.retry_key, j.target, j.sender, now, now + LEASE_MS])?;
                            ids.push(tx.last_insert_rowid());
                        }
                        out.push(Some(ids));
                    }
                    Command::Update { id, attempted_at, update, .. } => {
                        apply_update(&tx, *id, *attempted_at, update)?;
                        out.push(None);
                    }
                    Command::Probe(_) => {
                        tx.prepare_cached("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, ?1)")?.execute(params![now])?;
                        out.push(None);
                    }
                }
            }
        }
        tx.commit()?;
        Ok(out)
    };
    match run(conn) {
        Ok(v) => v.into_iter().map(Ok).collect(),
        Err(e) => batch.iter().map(|_| Err(e.clone())).collect(),
    }
}

fn apply_update(tx: &rusqlite::Transaction<'_>, id: JobId, at: i64, update: &Update) -> Result<(), StoreError> {
    match update {
        Update::Done => {
            tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute(params![id])?;
        }
        Update::Retry { next_at, error, ambiguous } => {
            tx.prepare_cached(
                "UPDATE jobs SET attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?2), next_at = ?3, last_error = ?4, ambiguous = MAX(ambiguous, ?5) WHERE id = ?1",
            )?
            .execute(params![id, at, next_at, error, *ambiguous as i64])?;
        }
        Update::Dead { error } => {
            tx.prepare_cached(
                // `next_at` means nothing for a dead job; it keeps when it died, which
                // `purge_dead` (`[delivery] dead_retention`) counts from.
                "UPDATE jobs SET attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?2), state = 'dead', last_error = ?3, next_at = ?2 WHERE id = ?1",
            )?
            .execute(params![id, at, error])?;
        }
    }
    Ok(())
}

const COLUMNS: &str = "id, mail_id, path, body, retry_key, target, sender, state, attempts, created_at, first_attempt_at, next_at, ambiguous, last_error";

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(Job {
        id: r.get(0)?,
        mail_id: r.get(1)?,
        path: r.get(2)?,
        body: r.get(3)?,
        retry_key: r.get(4)?,
        target: r.get(5)?,
        sender: r.get(6)?,
        state: State::parse(&r.get::<_, String>(7)?),
        attempts: r.get(8)?,
        created_at: r.get(9)?,
        first_attempt_at: r.get(10)?,
        next_at: r.get(11)?,
        ambiguous: r.get::<_, i64>(12)? != 0,
        last_error: r.get(13)?,
    })
}

/// Pending jobs due at `now`, oldest first.
///
/// A job waits while an earlier job of the same mail to the same target is still pending: a
/// mail's follow-up requests (more images) must reach the chat after its text, in order. A dead
/// predecessor no longer holds the chain; the rest of the mail is still worth delivering.
pub fn due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs j WHERE state = 'pending' AND next_at <= ?1 \
         AND NOT EXISTS (SELECT 1 FROM jobs e WHERE e.mail_id = j.mail_id AND e.target = j.target \
                         AND e.id < j.id AND e.state = 'pending') \
         ORDER BY next_at, id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![now, limit as i64], row_to_job)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every job, or only those in `state`, by id.
pub fn list(conn: &Connection, state: Option<State>) -> Result<Vec<Job>, StoreError> {
    let jobs = match state {
        Some(st) => {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM jobs WHERE state = ?1 ORDER BY id"))?;
            let rows = stmt.query_map(params![st.as_str()], row_to_job)?;
            rows.collect::<Result<_, _>>()?
        }
        None => {
            let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM jobs ORDER BY id"))?;
            let rows = stmt.query_map([], row_to_job)?;
            rows.collect::<Result<_, _>>()?
        }
    };
    Ok(jobs)
}

/// Deletes dead letters that died before `before` (unix ms); returns how many.
pub fn purge_dead(conn: &Connection, before: i64) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM jobs WHERE state = 'dead' AND next_at < ?1", params![before])?)
}

/// How many jobs are pending and how many dead: `(pending, dead)`.
pub fn counts(conn: &Connection) -> Result<(i64, i64), StoreError> {
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
    let mut rows = stmt.query([])?;
    let (mut pending, mut dead) = (0, 0);
    while let Some(row) = rows.next()? {
        match State::parse(&row.get::<_, String>(0)?) {
            State::Pending => pending += row.get::<_, i64>(1)?,
            State::Dead => dead += row.get::<_, i64>(1)?,
        }
    }
    Ok((pending, dead))
}

pub fn get(conn: &Connection, id: JobId) -> Result<Option<Job>, StoreError> {
    Ok(conn
        .query_row(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"), params![id], row_to_job)
        .optional()?)
}

/// Makes a job pending and due now. A dead job gets a fresh retry key when LINE may already
/// have forgotten the old one (older than 24 h); `new_key` is used then.
pub fn retry_now(conn: &Connection, id: JobId, new_key: &str) -> Result<bool, StoreError> {
    let now = now_ms();
    let stale = now - 24 * 3600 * 1000;
    let n = conn.execute(
        "UPDATE jobs SET state = 'pending', next_at = ?2, last_error = '',
             retry_key = CASE WHEN first_attempt_at IS NOT NULL AND first_attempt_at < ?3 THEN ?4 ELSE retry_key END,
             first_attempt_at = CASE WHEN first_attempt_at IS NOT NULL AND first_attempt_at < ?3 THEN NULL ELSE first_attempt_at END,
             ambiguous = CASE WHEN first_attempt_at IS NOT NULL AND first_attempt_at < ?3 THEN 0 ELSE ambiguous END
         WHERE id = ?1",
        params![id, now, stale, new_key],
    )?;
    Ok(n == 1)
}

pub fn drop_job(conn: &Connection, id: JobId) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM jobs WHERE id = ?1", params![id])? == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u32) -> NewJob {
        NewJob {
            mail_id: format!("m{n}"),
            path: "/v2/bot/message/push".into(),
            body: format!("{{\"n\":{n}}}"),
            retry_key: format!("00000000-0000-4000-8000-{n:012}"),
            target: "U1".into(),
            sender: "a@b".into(),
        }
    }

    #[tokio::test]
    async fn a_mails_later_requests_wait_for_the_earlier_ones_to_the_same_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let part = |target: &str, n: u32| NewJob { mail_id: "m1".into(), target: target.into(), ..job(n) };
        let ids = store.insert(vec![part("U1", 1), part("U2", 2), part("U1", 3), part("U1", 4), job(5)]).await.unwrap();
        let conn = open_existing(dir.path(), false).unwrap();
        let later = now_ms() + LEASE_MS + 1;
        let due_ids = |conn: &Connection| due(conn, later, 10).unwrap().iter().map(|j| j.id).collect::<Vec<_>>();
        // The first of each chain (m1→U1, m1→U2) and the other mail.
        assert_eq!(due_ids(&conn), [ids[0], ids[1], ids[4]]);
        // Retrying does not let the next one pass; dead or done does.
        store.update(ids[0], 1000, Update::Retry { next_at: 5, error: "500".into(), ambiguous: false }).await.unwrap();
        assert_eq!(due_ids(&conn), [ids[0], ids[1], ids[4]]);
        store.update(ids[0], 2000, Update::Dead { error: "400".into() }).await.unwrap();
        assert_eq!(due_ids(&conn), [ids[1], ids[2], ids[4]]);
        store.update(ids[2], 3000, Update::Done).await.unwrap();
        assert_eq!(due_ids(&conn), [ids[1], ids[3], ids[4]]);
        // A predecessor dropped from the CLI releases its chain too.
        let w = open_existing(dir.path(), true).unwrap();
        store.update(ids[3], 4000, Update::Retry { next_at: 5, error: "500".into(), ambiguous: false }).await.unwrap();
        assert!(retry_now(&w, ids[0], "00000000-0000-4000-8000-000000000099").unwrap(), "revive the dead head");
        assert_eq!(due_ids(&conn), [ids[0], ids[1], ids[4]], "a revived earlier job holds the chain again");
        assert!(drop_job(&w, ids[0]).unwrap());
        assert_eq!(due_ids(&conn), [ids[3], ids[1], ids[4]]);
    }

    #[tokio::test]
    async fn insert_update_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store.insert(vec![job(1), job(2)]).await.unwrap();
        assert_eq!(ids.len(), 2);
        let conn = open_existing(dir.path(), false).unwrap();
        // Fresh jobs are leased: not due for the scan yet.
        assert!(due(&conn, now_ms(), 10).unwrap().is_empty());
        assert_eq!(due(&conn, now_ms() + LEASE_MS + 1, 10).unwrap().len(), 2);

        store.update(ids[0], 1000, Update::Retry { next_at: 5, error: "500".into(), ambiguous: true }).await.unwrap();
        let j = get(&conn, ids[0]).unwrap().unwrap();
        assert_eq!((j.attempts, j.first_attempt_at, j.next_at, j.ambiguous, j.last_error.as_str()), (1, Some(1000), 5, true, "500"));
        store.update(ids[0], 2000, Update::Retry { next_at: 6, error: "429".into(), ambiguous: false }).await.unwrap();
        let j = get(&conn, ids[0]).unwrap().unwrap();
        assert_eq!((j.attempts, j.first_attempt_at, j.ambiguous), (2, Some(1000), true), "first attempt and ambiguity stick");

        store.update(ids[1], 3000, Update::Dead { error: "400 bad".into() }).await.unwrap();
        assert_eq!(list(&conn, Some(State::Dead)).unwrap().len(), 1);
        assert_eq!(counts(&conn).unwrap(), (1, 1));
        store.update(ids[0], 4000, Update::Done).await.unwrap();
        assert!(get(&conn, ids[0]).unwrap().is_none());
        assert_eq!(list(&conn, None).unwrap().len(), 1);
        assert_eq!(counts(&conn).unwrap(), (0, 1));
    }

    #[tokio::test]
    async fn dead_letters_are_purged_by_when_they_died_and_pending_jobs_never() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store.insert(vec![job(1), job(2), job(3)]).await.unwrap();
        store.update(ids[0], 1000, Update::Dead { error: "400".into() }).await.unwrap();
        store.update(ids[1], 5000, Update::Dead { error: "400".into() }).await.unwrap();
        store.update(ids[2], 500, Update::Retry { next_at: 600, error: "500".into(), ambiguous: false }).await.unwrap();
        let w = open_existing(dir.path(), true).unwrap();
        assert_eq!(purge_dead(&w, 1000).unwrap(), 0, "died exactly at the cut-off: kept");
        assert_eq!(purge_dead(&w, 1001).unwrap(), 1);
        assert_eq!(list(&w, None).unwrap().iter().map(|j| j.id).collect::<Vec<_>>(), [ids[1], ids[2]]);
        assert_eq!(purge_dead(&w, i64::MAX).unwrap(), 1, "a pending job is never purged");
        assert_eq!(counts(&w).unwrap(), (1, 0));
    }

    #[tokio::test]
    async fn the_probe_commits_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.probe().await.unwrap();
        let conn = open_existing(dir.path(), false).unwrap();
        let at: i64 = conn.query_row("SELECT checked_at FROM health WHERE id = 1", [], |r| r.get(0)).unwrap();
        assert!(at > 0);
        store.probe().await.unwrap();
        let rows: i64 = conn.query_row("SELECT COUNT(*) FROM health", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 1, "one row, rewritten");
        assert_eq!(counts(&conn).unwrap(), (0, 0));
    }

    #[tokio::test]
    async fn restart_makes_unattempted_jobs_due() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.insert(vec![job(1)]).await.unwrap();
        }
        let _store = Store::open(dir.path()).unwrap();
        let conn = open_existing(dir.path(), false).unwrap();
        assert_eq!(due(&conn, now_ms() + 1, 10).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn retry_and_drop_from_the_cli_side() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store.insert(vec![job(1), job(2)]).await.unwrap();
        // An old, dead job: its key may be forgotten by LINE, so it gets a new one.
        store.update(ids[0], 1, Update::Dead { error: "expired".into() }).await.unwrap();
        let conn = open_existing(dir.path(), true).unwrap();
        assert!(retry_now(&conn, ids[0], "11111111-1111-4111-8111-111111111111").unwrap());
        let j = get(&conn, ids[0]).unwrap().unwrap();
        assert_eq!((j.state, j.retry_key.as_str(), j.first_attempt_at), (State::Pending, "11111111-1111-4111-8111-111111111111", None));
        // A recent one keeps its key.
        store.update(ids[1], now_ms(), Update::Dead { error: "400".into() }).await.unwrap();
        assert!(retry_now(&conn, ids[1], "22222222-2222-4222-8222-222222222222").unwrap());
        assert_eq!(get(&conn, ids[1]).unwrap().unwrap().retry_key, job(2).retry_key);
        assert!(drop_job(&conn, ids[1]).unwrap());
        assert!(!drop_job(&conn, ids[1]).unwrap());
        assert!(!retry_now(&conn, 999, "x").unwrap());
    }

    #[tokio::test]
    async fn many_concurrent_inserts_share_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut tasks = Vec::new();
        for n in 0..200 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move { s.insert(vec![job(n)]).await.unwrap() }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let conn = open_existing(dir.path(), false).unwrap();
        assert_eq!(list(&conn, None).unwrap().len(), 200);
    }
}
