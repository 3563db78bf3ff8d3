//! The job store: [`Store`], the one handle the spool, the webhook and the outbox use, over one
//! of two backends: SQLite in `storage.dir` (this file, the default) or PostgreSQL shared by
//! several gateways (`store_pg.rs`, issue #21). This file is the only place that knows the
//! spool's SQLite schema.
//!
//! One writer thread owns the write connection and applies commands in batches: every command
//! that arrives while a transaction commits joins the next one, so many SMTP sessions that accept
//! mail at once share one fsync (group commit). `synchronous = FULL` in WAL mode makes a commit
//! durable when it returns, which is what lets the SMTP side answer 250 afterwards.
//! Readers (the dispatcher's scans, `mail2line queue`) open their own connections; WAL lets them
//! read while the writer writes, also from another process.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use super::answers::{AnswerUpdate, NewAnswer};
use crate::storage::from_columns;
use tokio::sync::oneshot;

/// The database file inside `storage.dir`.
pub const FILE_NAME: &str = "spool.sqlite3";

/// How often the WAL is folded into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(500);

/// Commands applied per transaction at most; bounds the latency one batch adds.
const MAX_BATCH: usize = 2048;

pub type JobId = i64;

/// A request to store: where it goes and the exact JSON body to POST.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// The chat this request goes to (one id, or one set of multicast ids), for coalescing;
    /// empty when it is never coalesced.
    pub chat: String,
    /// What LINE counts for this request: the ids it goes to; 0 for a group or room, whose
    /// member count is asked when it is delivered.
    pub recipients: u32,
    /// Held for coalescing until this time (unix ms): stored as `held`, and sealed with the
    /// chat's other held requests into one request when the window ends (see [`Store::seal`]).
    pub hold_until: Option<i64>,
    /// What an answer from LINE needs to find this mail (`[replies]` on; None otherwise): kept
    /// once per mail, in the same commit (see [`super::answers`]).
    pub thread: Option<super::answers::Thread>,
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
    pub chat: String,
    pub recipients: u32,
    /// How many mails this request carries (more than one once coalesced).
    pub mails: u32,
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
            chat: new.chat,
            recipients: new.recipients,
            mails: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    /// Held for coalescing: not a request yet, sealed into one when its chat's window ends.
    Held,
    Dead,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Held => "held",
            State::Dead => "dead",
        }
    }

    pub(super) fn parse(s: &str) -> State {
        match s {
            "dead" => State::Dead,
            "held" => State::Held,
            _ => State::Pending,
        }
    }
}

/// Why the store could not do what was asked: the one database error of `storage.dir`.
pub use crate::storage::DbError as StoreError;

/// What happened to an attempt, to be recorded.
#[derive(Debug, Clone)]
pub enum Update {
    /// Delivered: the job is removed. `sent`: the ids of the LINE messages it became (a push's
    /// `sentMessages`), remembered for answers when the mail's thread is kept.
    Done { sent: Vec<String> },
    /// Try again at `next_at` (unix ms). `quota_exhausted`: LINE refused for the month's quota
    /// ([`RetryReason::QuotaExhausted`](crate::line::outcome::RetryReason::QuotaExhausted)), so
    /// the job is due again as soon as the quota is known to have room ([`make_quota_jobs_due`]).
    Retry { next_at: i64, error: String, ambiguous: bool, quota_exhausted: bool },
    /// Give up: kept as dead with the reason.
    Dead { error: String },
}

/// What LINE counted for a delivered request, recorded with its outcome (`mail2line quota`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The start of the month (Japan time, unix ms) it counts against.
    pub month: i64,
    pub target: String,
    pub sender: String,
    /// LINE messages: recipients of the request.
    pub messages: u64,
    /// What the same mails would have cost one request each: `messages` × mails carried.
    pub solo: u64,
}

/// A chat's held requests, sealed: one request body and the held rows (by position) it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub body: String,
    pub parts: Vec<usize>,
}

/// Packs the held request bodies of one chat (in arrival order) into as few requests as LINE's
/// limits allow. The spool does not know LINE's message objects; the composer does, and the
/// gateway hands it in (see `delivery`).
pub trait Packer: Send + Sync {
    fn pack(&self, bodies: &[&str]) -> Result<Vec<Sealed>, PackError>;
}

/// Held requests a [`Packer`] could not read back. The spool then sends each of them on its own,
/// as it was composed, so no mail waits on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot pack the held requests of one chat: {0}; each is sent on its own, so nothing is lost (a held request the gateway cannot read back is a bug: please report it)")]
pub struct PackError(pub String);

impl From<String> for PackError {
    fn from(text: String) -> Self {
        PackError(text)
    }
}

/// LINE's monthly quota as last read: `limit` None when LINE reports `type: none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRow {
    pub month: i64,
    pub limit: Option<u64>,
    pub used: u64,
    pub probed_at: i64,
}

enum Command {
    Insert(Vec<NewJob>, oneshot::Sender<Result<Vec<JobId>, StoreError>>),
    Update { id: JobId, attempted_at: i64, update: Update, usage: Option<Usage>, done: oneshot::Sender<Result<(), StoreError>> },
    Probe(oneshot::Sender<Result<(), StoreError>>),
    Seal { chat: String, packer: std::sync::Arc<dyn Packer>, done: oneshot::Sender<Result<Vec<Job>, StoreError>> },
    SetQuota(QuotaRow, oneshot::Sender<Result<(), StoreError>>),
    Answer(NewAnswer, oneshot::Sender<Result<bool, StoreError>>),
    AnswerUpdate { id: i64, at: i64, update: AnswerUpdate, done: oneshot::Sender<Result<(), StoreError>> },
}

/// The spool's store: a handle over one of two backends, cheap to clone. Every public async
/// method dispatches to the backend; the spool, the webhook and the outbox see only these.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    /// The embedded SQLite file in `storage.dir` (the default, one gateway).
    Sqlite(SqliteStore),
    /// A PostgreSQL database shared by several gateways (issue #21), see [`super::store_pg`].
    Postgres(super::store_pg::PgStore),
}

/// The SQLite backend: a handle to the writer thread.
#[derive(Clone)]
struct SqliteStore {
    tx: mpsc::Sender<Command>,
    path: PathBuf,
    /// The spool's own reader connection (WAL lets it read while the writer writes), opened on
    /// first use and kept: the scanner reads every `scan_interval_ms`.
    reader: std::sync::Arc<std::sync::Mutex<Option<Connection>>>,
}

pub use crate::clock::now_ms;

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
-- What LINE counted this month, by recipient and by sender (`mail2line quota`). `solo` is what the
-- same mails would have cost without coalescing.
CREATE TABLE IF NOT EXISTS usage (
    month INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    mails INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    solo INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (month, kind, key)
);
-- Retry keys of delivered requests, kept as long as LINE keeps them (24 h): a mail sent again
-- (same Message-ID, so the same keys) and held for coalescing is recognised here when sealed,
-- where LINE's 409 cannot help (the sealed request has a key of its own).
CREATE TABLE IF NOT EXISTS sent_keys (
    retry_key TEXT PRIMARY KEY,
    at INTEGER NOT NULL
) WITHOUT ROWID;
-- LINE's quota as last read, plus what was counted since; one row.
CREATE TABLE IF NOT EXISTS quota (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    month INTEGER NOT NULL,
    lim INTEGER,
    used INTEGER NOT NULL,
    probed_at INTEGER NOT NULL
);
-- A mail's requests to one target form a chain that goes out in id order (`due`).
CREATE INDEX IF NOT EXISTS jobs_chain ON jobs(mail_id, target, id);
-- One row, rewritten by `Store::probe` (`/readyz`): proof that a commit still reaches the disk.
CREATE TABLE IF NOT EXISTS health (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
";

/// Columns added after the first release, with their defaults: a spool written by an older
/// version opens as it was, its jobs neither held nor coalesced.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("chat", "TEXT NOT NULL DEFAULT ''"),
    ("recipients", "INTEGER NOT NULL DEFAULT 1"),
    ("mails", "INTEGER NOT NULL DEFAULT 1"),
    // 1 while the last attempt was refused for the month's quota (`Update::Retry`).
    ("quota_exhausted", "INTEGER NOT NULL DEFAULT 0"),
];

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let have: Vec<String> =
        conn.prepare("SELECT name FROM pragma_table_info('jobs')")?.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for (name, decl) in ADDED_COLUMNS {
        if !have.iter().any(|h| h == name) {
            conn.execute_batch(&format!("ALTER TABLE jobs ADD COLUMN {name} {decl}"))?;
            if name == "quota_exhausted" {
                // A spool from before the column told a quota refusal only by LINE's text in
                // `last_error`; that text is read here once, and never after.
                conn.execute_batch("UPDATE jobs SET quota_exhausted = 1 WHERE state = 'pending' AND last_error LIKE '%monthly limit%'")?;
            }
        }
    }
    // Held requests are sealed per chat.
    conn.execute_batch("CREATE INDEX IF NOT EXISTS jobs_held ON jobs(chat, id) WHERE state = 'held'")?;
    Ok(())
}

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

impl SqliteStore {
    /// Creates `dir` and the database if needed and starts the writer thread.
    fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        crate::storage::secure_dir(dir)?;
        let path = dir.join(FILE_NAME);
        let conn = connect(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(super::answers::SCHEMA)?;
        migrate(&conn)?;
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
        // (Held requests keep their time: the window they wait for survives a restart.)
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("spool-writer".into())
            .spawn(move || writer(conn, rx))
            .map_err(|e| StoreError(format!("cannot start the spool writer: {e}")))?;
        Ok(SqliteStore { tx, path, reader: Default::default() })
    }

    /// Runs `read` on the store's reader connection, on the blocking pool. Reads go through
    /// here and writes through the writer thread, so the spool and the outbox never hold a
    /// connection of their own: what they ask of the store is these methods, one seam for
    /// another database to fill (issue #21).
    async fn read<T: Send + 'static>(&self, read: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let (reader, dir) = (self.reader.clone(), self.dir());
        tokio::task::spawn_blocking(move || {
            let mut conn = reader.lock().unwrap_or_else(|e| e.into_inner());
            if conn.is_none() {
                *conn = Some(open_existing(&dir, false)?);
            }
            match conn.as_ref() {
                Some(c) => read(c),
                None => Err(StoreError("spool reader missing".into())),
            }
        })
        .await
        .map_err(|e| StoreError(format!("spool read task failed: {e}")))?
    }

    /// Runs `write` on a read-write connection of its own (maintenance outside the writer's
    /// batches: purges, making quota-paused jobs due).
    async fn maintain<T: Send + 'static>(&self, write: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static) -> Result<T, StoreError> {
        let dir = self.dir();
        tokio::task::spawn_blocking(move || write(&open_existing(&dir, true)?))
            .await
            .map_err(|e| StoreError(format!("spool maintenance task failed: {e}")))?
    }

    fn dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// Pending jobs due at `now` ([`due`]).
    pub async fn due(&self, now: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        self.read(move |c| due(c, now, limit)).await
    }

    async fn retry_now(&self, id: JobId, new_key: String) -> Result<bool, StoreError> {
        self.maintain(move |c| retry_now(c, id, &new_key)).await
    }

    async fn drop_job(&self, id: JobId) -> Result<bool, StoreError> {
        self.maintain(move |c| drop_job(c, id)).await
    }

    /// `(pending, dead)` ([`counts`]).
    pub async fn counts(&self) -> Result<(i64, i64), StoreError> {
        self.read(counts).await
    }

    /// The chats with held mail and when each is released ([`held_chats`]).
    pub async fn held_chats(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(held_chats).await
    }

    /// Jobs that waited for the month's quota are due now ([`make_quota_jobs_due`]).
    pub async fn make_quota_jobs_due(&self) -> Result<(), StoreError> {
        self.maintain(make_quota_jobs_due).await
    }

    /// Deletes dead letters that died before `before` ([`purge_dead`]).
    pub async fn purge_dead(&self, before: i64) -> Result<usize, StoreError> {
        self.maintain(move |c| purge_dead(c, before)).await
    }

    /// Pending answers due at `now` ([`super::answers::due`]).
    pub async fn due_answers(&self, now: i64, limit: usize) -> Result<Vec<super::answers::Answer>, StoreError> {
        self.read(move |c| super::answers::due(c, now, limit)).await
    }

    /// What routing an answer needs, read at once: the quoted mail (when `quoted_id` is given,
    /// pushed to `chat` at or after `quoted_since`), the chat's last mail in
    /// `[last_since, until]`, and how many answers from `chat` were mailed since `sent_since`.
    pub async fn answer_findings(
        &self,
        chat: String,
        quoted_id: Option<String>,
        quoted_since: i64,
        last_since: i64,
        until: i64,
        sent_since: i64,
    ) -> Result<super::answers::Findings, StoreError> {
        self.read(move |c| {
            Ok(super::answers::Findings {
                quoted: match &quoted_id {
                    Some(id) => super::answers::quoted(c, &chat, id, quoted_since)?,
                    None => None,
                },
                last: super::answers::last_to_chat(c, &chat, last_since, until)?,
                sent_since: super::answers::sent_since(c, &chat, sent_since)?,
            })
        })
        .await
    }

    /// Forgets what no answer can need any more ([`super::answers::purge`]).
    pub async fn purge_answers(&self, window_ms: i64, keep_events_ms: i64, dead_before: i64) -> Result<usize, StoreError> {
        self.maintain(move |c| super::answers::purge(c, window_ms, keep_events_ms, dead_before)).await
    }

    /// Stores the jobs of one mail; returns once they are durable (fsync'd).
    pub async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Insert(jobs, done)).map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// Records the outcome of an attempt and, in the same commit, what LINE counted for it.
    pub async fn update_counted(&self, id: JobId, attempted_at: i64, update: Update, usage: Option<Usage>) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Update { id, attempted_at, update, usage, done })
            .map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// Seals the held requests of `chat` into new pending requests (packed by `packer`), in one
    /// commit: the held rows go and the sealed ones, each with its retry key, come. From then on
    /// a sealed request never changes, so every attempt sends the same body under the same key.
    /// Returns the sealed jobs (none if nothing was held).
    pub async fn seal(&self, chat: &str, packer: std::sync::Arc<dyn Packer>) -> Result<Vec<Job>, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Command::Seal { chat: chat.to_owned(), packer, done })
            .map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// Records LINE's quota as just read.
    pub async fn set_quota(&self, row: QuotaRow) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::SetQuota(row, done)).map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// Stores a follower's answer for the outbox, durably; `false` when its event id is stored
    /// already (a redelivery), which changes nothing.
    pub async fn store_answer(&self, answer: NewAnswer) -> Result<bool, StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Answer(answer, done)).map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// Records what an attempt to mail an answer came to.
    pub async fn update_answer(&self, id: i64, at: i64, update: AnswerUpdate) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::AnswerUpdate { id, at, update, done }).map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// Commits a one-row write like any mail's (durable, fsync'd): `Ok` means the spool can
    /// take mail right now. Joins the current batch, so it costs no fsync of its own under load.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        self.tx.send(Command::Probe(done)).map_err(|_| StoreError("spool writer stopped".into()))?;
        wait.await.map_err(|_| StoreError("spool writer stopped".into()))?
    }

    /// One job, as `mail2line queue` reads it ([`get`]).
    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.read(move |c| get(c, id)).await
    }

    async fn list(&self, state: Option<State>) -> Result<Vec<Job>, StoreError> {
        self.read(move |c| list(c, state)).await
    }

    async fn quota(&self) -> Result<Option<QuotaRow>, StoreError> {
        self.read(quota).await
    }

    async fn usage(&self, month: i64, kind: String) -> Result<Vec<UsageRow>, StoreError> {
        self.read(move |c| usage(c, month, &kind)).await
    }

    async fn answers(&self, state: Option<super::answers::AnswerState>) -> Result<Vec<super::answers::Answer>, StoreError> {
        self.read(move |c| super::answers::list(c, state)).await
    }
}

/// Dispatches one call to the backend.
macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.backend {
            Backend::Sqlite(s) => s.$method($($arg),*).await,
            Backend::Postgres(p) => p.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// The SQLite store: creates `dir` and the database if needed and starts the writer thread.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Sqlite(SqliteStore::open(dir)?) })
    }

    /// The PostgreSQL store on `db`, for the gateway `node_id` (unique among the gateways that
    /// share the database, and the same across its restarts): applies the migrations, then
    /// releases the claims this node held before it stopped (nothing is in flight after a
    /// start, as on SQLite). Claims last [`LEASE_MS`].
    pub async fn open_postgres(db: crate::pg::Database, node_id: &str) -> Result<Store, StoreError> {
        Self::open_postgres_channel(db, node_id, "").await
    }

    /// [`Store::open_postgres`] for one LINE channel of `[[channels]]` (`""`: the unnamed
    /// `[line]` channel): every row it reads and writes is that channel's, so several channels
    /// share a database without seeing each other's jobs, retry keys, quota or answers.
    pub async fn open_postgres_channel(db: crate::pg::Database, node_id: &str, channel: &str) -> Result<Store, StoreError> {
        Self::open_postgres_with_lease_channel(db, node_id, channel, Duration::from_millis(LEASE_MS as u64)).await
    }

    /// [`Store::open_postgres`] with claims that last `lease` (the tests shorten it to see
    /// another node take over).
    pub async fn open_postgres_with_lease(db: crate::pg::Database, node_id: &str, lease: Duration) -> Result<Store, StoreError> {
        Self::open_postgres_with_lease_channel(db, node_id, "", lease).await
    }

    /// [`Store::open_postgres_with_lease`] for one channel (see [`Store::open_postgres_channel`]).
    pub async fn open_postgres_with_lease_channel(db: crate::pg::Database, node_id: &str, channel: &str, lease: Duration) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Postgres(super::store_pg::PgStore::open(db, node_id, channel, lease).await?) })
    }

    /// The PostgreSQL store as it is, for the CLI (`queue`, `quota`): no migration, nobody's
    /// claims released, refused when no gateway created the tables yet.
    pub async fn attach_postgres(db: crate::pg::Database, node_id: &str) -> Result<Store, StoreError> {
        Self::attach_postgres_channel(db, node_id, "").await
    }

    /// [`Store::attach_postgres`] for one LINE channel (see [`Store::open_postgres_channel`]).
    pub async fn attach_postgres_channel(db: crate::pg::Database, node_id: &str, channel: &str) -> Result<Store, StoreError> {
        Ok(Store { backend: Backend::Postgres(super::store_pg::PgStore::attach(db, node_id, channel).await?) })
    }

    /// Whether [`Store::due`] claims the jobs it returns (PostgreSQL: for the lease, from the
    /// other gateways) rather than only reading them (SQLite, one gateway).
    pub(super) fn claims(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The database, this gateway's node id and the channel's name ("" for the unnamed one), on
    /// PostgreSQL: the spool shares the channel's rate limit with the other nodes by them
    /// (`spool/share.rs`).
    pub(super) fn postgres(&self) -> Option<(crate::pg::Database, std::sync::Arc<str>, std::sync::Arc<str>)> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(p) => Some(p.node()),
        }
    }

    /// Writes the usage and quota counts the PostgreSQL store sums in memory
    /// (`spool/counts_pg.rs`); SQLite writes them with each commit, so there is nothing to do.
    pub async fn flush_counts(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(p) => p.flush_counts().await,
        }
    }

    /// The SQLite file; None on PostgreSQL, whose data lives in the database, not in a file.
    pub fn path(&self) -> Option<&Path> {
        match &self.backend {
            Backend::Sqlite(s) => Some(&s.path),
            Backend::Postgres(_) => None,
        }
    }

    /// Pending jobs due at `now` ([`due`]). On PostgreSQL they are also claimed for this node
    /// until `now` + the lease, so that no other node gets them meanwhile.
    pub async fn due(&self, now: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        dispatch!(self.due(now, limit))
    }

    /// `(pending, dead)` ([`counts`]).
    pub async fn counts(&self) -> Result<(i64, i64), StoreError> {
        dispatch!(self.counts())
    }

    /// The chats with held mail and when each is released ([`held_chats`]).
    pub async fn held_chats(&self) -> Result<Vec<(String, i64)>, StoreError> {
        dispatch!(self.held_chats())
    }

    /// Jobs that waited for the month's quota are due now ([`make_quota_jobs_due`]).
    pub async fn make_quota_jobs_due(&self) -> Result<(), StoreError> {
        dispatch!(self.make_quota_jobs_due())
    }

    /// Deletes dead letters that died before `before` ([`purge_dead`]).
    pub async fn purge_dead(&self, before: i64) -> Result<usize, StoreError> {
        dispatch!(self.purge_dead(before))
    }

    /// Pending answers due at `now` ([`super::answers::due`]); claimed on PostgreSQL, as jobs.
    pub async fn due_answers(&self, now: i64, limit: usize) -> Result<Vec<super::answers::Answer>, StoreError> {
        dispatch!(self.due_answers(now, limit))
    }

    /// What routing an answer needs, read at once: the quoted mail (when `quoted_id` is given,
    /// pushed to `chat` at or after `quoted_since`), the chat's last mail in
    /// `[last_since, until]`, and how many answers from `chat` were mailed since `sent_since`.
    pub async fn answer_findings(
        &self,
        chat: String,
        quoted_id: Option<String>,
        quoted_since: i64,
        last_since: i64,
        until: i64,
        sent_since: i64,
    ) -> Result<super::answers::Findings, StoreError> {
        dispatch!(self.answer_findings(chat, quoted_id, quoted_since, last_since, until, sent_since))
    }

    /// Forgets what no answer can need any more ([`super::answers::purge`]).
    pub async fn purge_answers(&self, window_ms: i64, keep_events_ms: i64, dead_before: i64) -> Result<usize, StoreError> {
        dispatch!(self.purge_answers(window_ms, keep_events_ms, dead_before))
    }

    /// Stores the jobs of one mail; returns once they are durable (fsync'd, or committed in
    /// PostgreSQL).
    pub async fn insert(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>, StoreError> {
        self.insert_claiming(jobs, usize::MAX).await
    }

    /// As [`Store::insert`]; on PostgreSQL this gateway claims only the first `claim` of the
    /// jobs due now, and leaves the rest to whichever gateway's scan claims them
    /// (`policy::claim_budget`). SQLite has no claims.
    pub async fn insert_claiming(&self, jobs: Vec<NewJob>, claim: usize) -> Result<Vec<JobId>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.insert(jobs).await,
            Backend::Postgres(p) => p.insert(jobs, claim).await,
        }
    }

    /// Records the outcome of an attempt; returns once it is committed.
    pub async fn update(&self, id: JobId, attempted_at: i64, update: Update) -> Result<(), StoreError> {
        self.update_counted(id, attempted_at, update, None).await
    }

    /// Records the outcome of an attempt and, in the same commit, what LINE counted for it.
    pub async fn update_counted(&self, id: JobId, attempted_at: i64, update: Update, usage: Option<Usage>) -> Result<(), StoreError> {
        dispatch!(self.update_counted(id, attempted_at, update, usage))
    }

    /// Seals the held requests of `chat` into new pending requests (packed by `packer`), in one
    /// commit: the held rows go and the sealed ones, each with its retry key, come. From then on
    /// a sealed request never changes, so every attempt sends the same body under the same key.
    /// Returns the sealed jobs (none if nothing was held, or another node sealed them first).
    pub async fn seal(&self, chat: &str, packer: std::sync::Arc<dyn Packer>) -> Result<Vec<Job>, StoreError> {
        dispatch!(self.seal(chat, packer))
    }

    /// Records LINE's quota as just read.
    pub async fn set_quota(&self, row: QuotaRow) -> Result<(), StoreError> {
        dispatch!(self.set_quota(row))
    }

    /// Stores a follower's answer for the outbox, durably; `false` when its event id is stored
    /// already (a redelivery), which changes nothing.
    pub async fn store_answer(&self, answer: NewAnswer) -> Result<bool, StoreError> {
        dispatch!(self.store_answer(answer))
    }

    /// Records what an attempt to mail an answer came to.
    pub async fn update_answer(&self, id: i64, at: i64, update: AnswerUpdate) -> Result<(), StoreError> {
        dispatch!(self.update_answer(id, at, update))
    }

    /// Commits a one-row write like any mail's (durable): `Ok` means the spool can take mail
    /// right now.
    pub async fn probe(&self) -> Result<(), StoreError> {
        dispatch!(self.probe())
    }

    /// One job by id, as stored ([`get`]).
    pub async fn job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        dispatch!(self.get(id))
    }

    /// Every job, or those in `state`, by id ([`list`]).
    pub async fn jobs(&self, state: Option<State>) -> Result<Vec<Job>, StoreError> {
        dispatch!(self.list(state))
    }

    /// LINE's quota as last read and counted on ([`quota`]).
    pub async fn quota(&self) -> Result<Option<QuotaRow>, StoreError> {
        dispatch!(self.quota())
    }

    /// The month's usage by `kind`, `target` or `sender` ([`usage`]).
    pub async fn usage(&self, month: i64, kind: &str) -> Result<Vec<UsageRow>, StoreError> {
        dispatch!(self.usage(month, kind.to_owned()))
    }

    /// Makes a job pending and due now, with `new_key` when LINE may have forgotten its own
    /// ([`retry_now`]); false when there is no such job.
    pub async fn retry_now(&self, id: JobId, new_key: &str) -> Result<bool, StoreError> {
        dispatch!(self.retry_now(id, new_key.to_owned()))
    }

    /// Deletes one job ([`drop_job`]); false when there is no such job.
    pub async fn drop_job(&self, id: JobId) -> Result<bool, StoreError> {
        dispatch!(self.drop_job(id))
    }

    /// The stored answers, or those in `state`, by id ([`super::answers::list`]).
    pub async fn answers(&self, state: Option<super::answers::AnswerState>) -> Result<Vec<super::answers::Answer>, StoreError> {
        dispatch!(self.answers(state))
    }
}

/// How long a freshly accepted job is hidden from the due-job scan: it is handed to the workers
/// directly, and the scan must not hand it out a second time while it waits for a rate slot.
pub const LEASE_MS: i64 = 10 * 60 * 1000;

/// How long a delivered request's retry key is remembered: as long as LINE remembers it.
pub(super) const SENT_KEY_MS: i64 = 24 * 3600 * 1000;

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
                    let _ = done.send(res.map(|r| match r {
                        Out::Ids(ids) => ids,
                        _ => Vec::new(),
                    }));
                }
                Command::Seal { done, .. } => {
                    let _ = done.send(res.map(|r| match r {
                        Out::Jobs(jobs) => jobs,
                        _ => Vec::new(),
                    }));
                }
                Command::Answer(_, done) => {
                    let _ = done.send(res.map(|r| matches!(r, Out::New(true))));
                }
                Command::Update { done, .. } | Command::Probe(done) | Command::SetQuota(_, done) | Command::AnswerUpdate { done, .. } => {
                    let _ = done.send(res.map(|_| ()));
                }
            }
        }
    }
}

/// What one command of a batch produced.
enum Out {
    Ids(Vec<JobId>),
    Jobs(Vec<Job>),
    New(bool),
    Unit,
}

/// Applies a batch in one transaction. If the transaction fails, every command fails: a mail
/// whose insert did not commit must not be answered 250.
fn apply(conn: &mut Connection, batch: &[Command]) -> Vec<Result<Out, StoreError>> {
    let run = |conn: &mut Connection| -> Result<Vec<Out>, StoreError> {
        let tx = conn.transaction()?;
        let mut out = Vec::with_capacity(batch.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO jobs (mail_id, path, body, retry_key, target, sender, created_at, next_at, state, chat, recipients) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let now = now_ms();
            // What LINE counted, summed over the batch: under load a batch holds thousands of
            // outcomes, mostly for a few chats and senders, and one upsert each beats thousands.
            let mut counted: std::collections::HashMap<(i64, &str, &str), Usage> = std::collections::HashMap::new();
            let mut mails_counted: std::collections::HashMap<(&str, &str), i64> = std::collections::HashMap::new();
            for cmd in batch {
                match cmd {
                    Command::Insert(jobs, _) => {
                        let mut ids = Vec::with_capacity(jobs.len());
                        for j in jobs {
                            let (state, next_at) = match j.hold_until {
                                Some(at) => (State::Held, at),
                                None => (State::Pending, now + LEASE_MS),
                            };
                            insert.execute(params![
                                j.mail_id, j.path, j.body, j.retry_key, j.target, j.sender, now, next_at, state.as_str(), j.chat, j.recipients
                            ])?;
                            ids.push(tx.last_insert_rowid());
                            if let Some(thread) = &j.thread {
                                super::answers::remember_mail(&tx, &j.mail_id, thread, now)?;
                            }
                        }
                        count_mail(&mut mails_counted, jobs);
                        out.push(Out::Ids(ids));
                    }
                    Command::Update { id, attempted_at, update, usage, .. } => {
                        apply_update(&tx, *id, *attempted_at, update)?;
                        if let Some(u) = usage {
                            let c = counted.entry((u.month, &u.target, &u.sender)).or_insert_with(|| Usage { messages: 0, solo: 0, ..u.clone() });
                            c.messages += u.messages;
                            c.solo += u.solo;
                        }
                        out.push(Out::Unit);
                    }
                    Command::Probe(_) => {
                        tx.prepare_cached("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, ?1)")?.execute(params![now])?;
                        out.push(Out::Unit);
                    }
                    Command::Seal { chat, packer, .. } => out.push(Out::Jobs(seal(&tx, &mut insert, chat, packer.as_ref(), now)?)),
                    Command::Answer(answer, _) => out.push(Out::New(super::answers::store_answer(&tx, answer, now)?)),
                    Command::AnswerUpdate { id, at, update, .. } => {
                        super::answers::update_answer(&tx, *id, *at, update)?;
                        out.push(Out::Unit);
                    }
                    Command::SetQuota(row, _) => {
                        tx.prepare_cached("INSERT OR REPLACE INTO quota (id, month, lim, used, probed_at) VALUES (1, ?1, ?2, ?3, ?4)")?
                            .execute(params![row.month, row.limit.map(|l| l as i64), row.used as i64, row.probed_at])?;
                        out.push(Out::Unit);
                    }
                }
            }
            for u in counted.values() {
                count_usage(&tx, u)?;
            }
            if !mails_counted.is_empty() {
                let month = super::coalesce::month_bounds(now).0;
                let mut add = tx.prepare_cached(
                    "INSERT INTO usage (month, kind, key, mails) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (month, kind, key) DO UPDATE SET mails = mails + excluded.mails",
                )?;
                for ((kind, key), n) in &mails_counted {
                    add.execute(params![month, kind, key, n])?;
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

/// Counts one accepted mail (its jobs) for `mail2line quota`: once for its sender, once for each
/// chat it goes to. Summed over the batch, written once per key (see `apply`).
pub(super) fn count_mail<'a>(tally: &mut std::collections::HashMap<(&'static str, &'a str), i64>, jobs: &'a [NewJob]) {
    let Some(first) = jobs.first() else { return };
    *tally.entry(("sender", sender_key(&first.sender))).or_default() += 1;
    let mut seen: Vec<&str> = Vec::new();
    for j in jobs {
        if !seen.contains(&j.target.as_str()) {
            seen.push(&j.target);
            *tally.entry(("target", &j.target)).or_default() += 1;
        }
    }
}

/// The null sender `<>` is shown as such, not as an empty name.
pub(super) fn sender_key(sender: &str) -> &str {
    if sender.is_empty() { "<>" } else { sender }
}

fn count_usage(tx: &rusqlite::Transaction<'_>, u: &Usage) -> Result<(), StoreError> {
    let mut add = tx.prepare_cached(
        "INSERT INTO usage (month, kind, key, messages, solo) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (month, kind, key) DO UPDATE SET messages = messages + excluded.messages, solo = solo + excluded.solo",
    )?;
    add.execute(params![u.month, "target", u.target, u.messages as i64, u.solo as i64])?;
    add.execute(params![u.month, "sender", sender_key(&u.sender), u.messages as i64, u.solo as i64])?;
    // The month's use as LINE counts it: LINE's last figure plus what was sent since. A new
    // month starts from zero until the next probe says otherwise.
    tx.prepare_cached(
        "INSERT INTO quota (id, month, lim, used, probed_at) VALUES (1, ?1, NULL, ?2, 0) ON CONFLICT (id) DO UPDATE SET \
         used = CASE WHEN month = excluded.month THEN used + excluded.used ELSE excluded.used END, month = excluded.month",
    )?
    .execute(params![u.month, u.messages as i64])?;
    Ok(())
}

/// Seals `chat`'s held rows (see [`Store::seal`]). If the packer cannot read them (it always
/// can: the bodies are ours), each held request goes out as it is, under its own key.
fn seal(
    tx: &rusqlite::Transaction<'_>,
    insert: &mut rusqlite::CachedStatement<'_>,
    chat: &str,
    packer: &dyn Packer,
    now: i64,
) -> Result<Vec<Job>, StoreError> {
    let held: Vec<Job> = tx
        .prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE state = 'held' AND chat = ?1 ORDER BY id"))?
        .query_map(params![chat], row_to_job)?
        .collect::<Result<_, _>>()?;
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let mut delete = tx.prepare_cached("DELETE FROM jobs WHERE id = ?1 AND state = 'held'")?;
    // A mail sent again (its sender missed our 250) has the same retry keys as the first time;
    // if that one was delivered, is still pending, or is held here too, this copy goes nowhere.
    let mut seen = std::collections::HashSet::new();
    let mut known = tx.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM sent_keys WHERE retry_key = ?1) OR EXISTS (SELECT 1 FROM jobs WHERE retry_key = ?1 AND state = 'pending')",
    )?;
    let mut unique = Vec::with_capacity(held.len());
    for j in held {
        if !seen.insert(j.retry_key.clone()) || known.query_row(params![j.retry_key], |r| r.get::<_, bool>(0))? {
            tracing::info!(mail = %j.mail_id, job = j.id, "held request already taken (the same mail was sent again); not sent twice");
            delete.execute(params![j.id])?;
            continue;
        }
        unique.push(j);
    }
    let held = unique;
    if held.is_empty() {
        return Ok(Vec::new());
    }
    if held.len() == 1 {
        // One mail held: it goes as it was composed, under its own key.
        let j = &held[0];
        tx.prepare_cached("UPDATE jobs SET state = 'pending', next_at = ?2 WHERE id = ?1")?.execute(params![j.id, now + LEASE_MS])?;
        let mut job = j.clone();
        job.state = State::Pending;
        job.next_at = now;
        return Ok(vec![job]);
    }
    let mut out = Vec::new();
    let mut set_mails = tx.prepare_cached("UPDATE jobs SET mails = ?2 WHERE id = ?1")?;
    for planned in plan_sealed(chat, &held, packer) {
        let new = planned.job;
        insert.execute(params![
            new.mail_id, new.path, new.body, new.retry_key, new.target, new.sender, now, now + LEASE_MS,
            State::Pending.as_str(), new.chat, new.recipients
        ])?;
        let id = tx.last_insert_rowid();
        set_mails.execute(params![id, planned.mails as i64])?;
        let mut job = Job::fresh(id, new, now);
        job.created_at = planned.created_at.unwrap_or(now);
        job.mails = planned.mails;
        out.push(job);
    }
    for j in &held {
        delete.execute(params![j.id])?;
    }
    Ok(out)
}

/// One request that sealing makes ([`plan_sealed`]).
pub(super) struct Planned {
    pub job: NewJob,
    /// How many mails it carries.
    pub mails: u32,
    /// The earliest arrival among its parts.
    pub created_at: Option<i64>,
}

/// What sealing a chat's held jobs (deduplicated, at least two) makes: the packer's requests,
/// each with its mails, main sender and a new retry key. Pure; both backends insert what it
/// returns in their own transaction. If the packer cannot read the held bodies (it always can:
/// they are ours), each goes out as it was composed.
pub(super) fn plan_sealed(chat: &str, held: &[Job], packer: &dyn Packer) -> Vec<Planned> {
    let bodies: Vec<&str> = held.iter().map(|j| j.body.as_str()).collect();
    let sealed = match packer.pack(&bodies) {
        Ok(s) if !s.is_empty() => s,
        Ok(_) | Err(_) => {
            tracing::warn!(chat, "cannot pack held requests; each goes out on its own");
            held.iter().enumerate().map(|(i, j)| Sealed { body: j.body.clone(), parts: vec![i] }).collect()
        }
    };
    let mut out = Vec::with_capacity(sealed.len());
    for s in sealed {
        let parts: Vec<&Job> = s.parts.iter().filter_map(|&i| held.get(i)).collect();
        let Some(first) = parts.first() else { continue };
        let mut mail_ids: Vec<&str> = Vec::new();
        for p in &parts {
            for m in p.mail_id.split(',') {
                if !mail_ids.contains(&m) {
                    mail_ids.push(m);
                }
            }
        }
        let job = NewJob {
            mail_id: mail_ids.join(","),
            path: first.path.clone(),
            body: s.body,
            retry_key: uuid::Uuid::new_v4().to_string(),
            target: first.target.clone(),
            sender: main_sender(&parts),
            chat: chat.to_owned(),
            recipients: first.recipients,
            hold_until: None,
            thread: None,
        };
        let mails = u32::try_from(mail_ids.len()).unwrap_or(u32::MAX);
        out.push(Planned { job, mails, created_at: parts.iter().map(|p| p.created_at).min() });
    }
    out
}

/// The sender a coalesced request is listed and counted under: the one with most mails in it
/// (the first of them on a tie).
pub(super) fn main_sender(parts: &[&Job]) -> String {
    let mut tally: Vec<(&str, usize)> = Vec::new();
    for p in parts {
        match tally.iter_mut().find(|(s, _)| *s == p.sender) {
            Some(t) => t.1 += 1,
            None => tally.push((&p.sender, 1)),
        }
    }
    let best = tally.iter().map(|t| t.1).max().unwrap_or(0);
    tally.into_iter().find(|t| t.1 == best).map(|t| t.0.to_owned()).unwrap_or_default()
}

fn apply_update(tx: &rusqlite::Transaction<'_>, id: JobId, at: i64, update: &Update) -> Result<(), StoreError> {
    match update {
        Update::Done { sent } => {
            tx.prepare_cached("INSERT OR IGNORE INTO sent_keys (retry_key, at) SELECT retry_key, ?2 FROM jobs WHERE id = ?1")?
                .execute(params![id, at])?;
            remember_sent(tx, id, sent, at)?;
            tx.prepare_cached("DELETE FROM jobs WHERE id = ?1")?.execute(params![id])?;
        }
        Update::Retry { next_at, error, ambiguous, quota_exhausted } => {
            tx.prepare_cached(
                "UPDATE jobs SET attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?2), next_at = ?3, last_error = ?4, ambiguous = MAX(ambiguous, ?5), quota_exhausted = ?6 WHERE id = ?1",
            )?
            .execute(params![id, at, next_at, error, *ambiguous as i64, *quota_exhausted as i64])?;
        }
        Update::Dead { error } => {
            tx.prepare_cached(
                // `next_at` means nothing for a dead job; it keeps when it died, which
                // `purge_dead` (`[delivery] dead_retention`) counts from.
                "UPDATE jobs SET attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, ?2), state = 'dead', last_error = ?3, next_at = ?2, quota_exhausted = 0 WHERE id = ?1",
            )?
            .execute(params![id, at, error])?;
        }
    }
    Ok(())
}

/// Hands a delivered job's sent message ids to [`super::answers::remember_sent`], with the chats
/// it went to: the push's one id, or the multicast's `to` list, read back from the stored body
/// (only for mails whose thread is kept; with [replies] off this is one index probe).
fn remember_sent(tx: &rusqlite::Transaction<'_>, id: JobId, sent: &[String], at: i64) -> Result<(), StoreError> {
    let row: Option<(String, String, String)> = tx
        .prepare_cached("SELECT mail_id, target, path FROM jobs WHERE id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((mail_ids, target, path)) = row else { return Ok(()) };
    let threaded = super::answers::threaded(tx, &mail_ids)?;
    if threaded.is_empty() {
        return Ok(());
    }
    let chats = if path.ends_with("/multicast") {
        let body: String = tx.prepare_cached("SELECT body FROM jobs WHERE id = ?1")?.query_row(params![id], |r| r.get(0))?;
        multicast_recipients(&body)
    } else {
        vec![target]
    };
    super::answers::remember_sent(tx, &threaded, &chats, sent, at)
}

/// The `to` list of a multicast request's body (none if it cannot be read).
pub(super) fn multicast_recipients(body: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("to").and_then(|t| t.as_array()).map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()))
        .unwrap_or_default()
}

pub(super) const COLUMNS: &str = "id, mail_id, path, body, retry_key, target, sender, state, attempts, created_at, first_attempt_at, next_at, ambiguous, last_error, chat, recipients, mails";

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    Ok(from_columns!(r?, Job {
        id, mail_id, path, body, retry_key, target, sender,
        state => |s: String| State::parse(&s),
        attempts, created_at, first_attempt_at, next_at,
        ambiguous => |n: i64| n != 0,
        last_error, chat, recipients, mails,
    }))
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
    // LINE forgets a retry key after 24 hours; so can we.
    conn.execute("DELETE FROM sent_keys WHERE at < ?1", params![now_ms() - SENT_KEY_MS])?;
    Ok(conn.execute("DELETE FROM jobs WHERE state = 'dead' AND next_at < ?1", params![before])?)
}

/// How many jobs are pending and how many dead: `(pending, dead)`.
pub fn counts(conn: &Connection) -> Result<(i64, i64), StoreError> {
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM jobs GROUP BY state")?;
    let mut rows = stmt.query([])?;
    let (mut pending, mut dead) = (0, 0);
    while let Some(row) = rows.next()? {
        match State::parse(&row.get::<_, String>(0)?) {
            State::Pending | State::Held => pending += row.get::<_, i64>(1)?,
            State::Dead => dead += row.get::<_, i64>(1)?,
        }
    }
    Ok((pending, dead))
}

/// Chats with held requests, and when the earliest of them was to be sealed.
pub fn held_chats(conn: &Connection) -> Result<Vec<(String, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT chat, MIN(next_at) FROM jobs WHERE state = 'held' GROUP BY chat")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// LINE's quota as last read and counted on, if it ever was.
pub fn quota(conn: &Connection) -> Result<Option<QuotaRow>, StoreError> {
    Ok(conn
        .query_row("SELECT month, lim, used, probed_at FROM quota WHERE id = 1", [], |r| {
            Ok(QuotaRow {
                month: r.get(0)?,
                limit: r.get::<_, Option<i64>>(1)?.map(|l| l.max(0) as u64),
                used: r.get::<_, i64>(2)?.max(0) as u64,
                probed_at: r.get(3)?,
            })
        })
        .optional()?)
}

/// One line of `mail2line quota`'s tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub key: String,
    pub mails: u64,
    pub messages: u64,
    pub solo: u64,
}

/// The month's usage by `kind` (`target` or `sender`), most LINE messages first.
pub fn usage(conn: &Connection, month: i64, kind: &str) -> Result<Vec<UsageRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, mails, messages, solo FROM usage WHERE month = ?1 AND kind = ?2 ORDER BY messages DESC, mails DESC, key",
    )?;
    let rows = stmt.query_map(params![month, kind], |r| {
        Ok(UsageRow {
            key: r.get(0)?,
            mails: r.get::<_, i64>(1)?.max(0) as u64,
            messages: r.get::<_, i64>(2)?.max(0) as u64,
            solo: r.get::<_, i64>(3)?.max(0) as u64,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn get(conn: &Connection, id: JobId) -> Result<Option<Job>, StoreError> {
    Ok(conn
        .query_row(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"), params![id], row_to_job)
        .optional()?)
}

/// Makes every pending job that was refused for the month's quota due now: the quota has room
/// again. Jobs refused for any other reason keep their back-off.
pub fn make_quota_jobs_due(conn: &Connection) -> Result<(), StoreError> {
    conn.execute("UPDATE jobs SET next_at = ?1 WHERE state = 'pending' AND quota_exhausted = 1", params![now_ms()])?;
    Ok(())
}

/// Makes a job pending and due now. A dead job gets a fresh retry key when LINE may already
/// have forgotten the old one (older than 24 h); `new_key` is used then.
pub fn retry_now(conn: &Connection, id: JobId, new_key: &str) -> Result<bool, StoreError> {
    let now = now_ms();
    let stale = now - 24 * 3600 * 1000;
    let n = conn.execute(
        "UPDATE jobs SET state = 'pending', next_at = ?2, last_error = '', quota_exhausted = 0,
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

    // The store's scenarios run through `Store`'s API on both backends in tests/store_pg.rs
    // (SQLite there too). Here is what only SQLite's own files and the CLI's direct writes show.

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
        store.update(ids[0], 1000, Update::Retry { next_at: 5, error: "500".into(), ambiguous: false, quota_exhausted: false }).await.unwrap();
        assert_eq!(due_ids(&conn), [ids[0], ids[1], ids[4]]);
        store.update(ids[0], 2000, Update::Dead { error: "400".into() }).await.unwrap();
        assert_eq!(due_ids(&conn), [ids[1], ids[2], ids[4]]);
        store.update(ids[2], 3000, Update::Done { sent: vec![] }).await.unwrap();
        assert_eq!(due_ids(&conn), [ids[1], ids[3], ids[4]]);
        // A predecessor dropped from the CLI releases its chain too.
        let w = open_existing(dir.path(), true).unwrap();
        store.update(ids[3], 4000, Update::Retry { next_at: 5, error: "500".into(), ambiguous: false, quota_exhausted: false }).await.unwrap();
        assert!(retry_now(&w, ids[0], "00000000-0000-4000-8000-000000000099").unwrap(), "revive the dead head");
        assert_eq!(due_ids(&conn), [ids[0], ids[1], ids[4]], "a revived earlier job holds the chain again");
        assert!(drop_job(&w, ids[0]).unwrap());
        assert_eq!(due_ids(&conn), [ids[3], ids[1], ids[4]]);
    }

    /// Runs [`make_quota_jobs_due`]: `refused` (refused for the quota) is due now, `other` (an
    /// ordinary retry) still waits until `far`.
    fn assert_only_the_quota_refused_made_due(w: &Connection, refused: JobId, other: JobId, far: i64) {
        make_quota_jobs_due(w).unwrap();
        let next = |id| get(w, id).unwrap().unwrap().next_at;
        assert!(next(refused) <= now_ms(), "the quota-refused job is due now");
        assert_eq!(next(other), far, "another retry keeps its back-off");
    }

    #[tokio::test]
    async fn only_jobs_refused_for_the_quota_are_made_due_when_it_has_room() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids = store.insert(vec![job(1), job(2)]).await.unwrap();
        let far = now_ms() + 3_600_000;
        let retry = |quota_exhausted| Update::Retry { next_at: far, error: "429".into(), ambiguous: false, quota_exhausted };
        store.update(ids[0], 1000, retry(true)).await.unwrap();
        store.update(ids[1], 1000, retry(false)).await.unwrap();
        let w = open_existing(dir.path(), true).unwrap();
        assert_only_the_quota_refused_made_due(&w, ids[0], ids[1], far);
    }

    #[tokio::test]
    async fn a_spool_from_before_the_quota_column_keeps_its_quota_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let far = now_ms() + 3_600_000;
        let ids = {
            let store = Store::open(dir.path()).unwrap();
            store.insert(vec![job(1), job(2)]).await.unwrap()
        };
        // As an older version left it: no column, the refusal only in LINE's text.
        let w = open_existing(dir.path(), true).unwrap();
        w.execute_batch("ALTER TABLE jobs DROP COLUMN quota_exhausted").unwrap();
        let set = |id, error: &str| w.execute("UPDATE jobs SET next_at = ?2, last_error = ?3 WHERE id = ?1", params![id, far, error]).unwrap();
        set(ids[0], "429: You have reached your monthly limit.");
        set(ids[1], "500");
        migrate(&w).unwrap();
        assert_only_the_quota_refused_made_due(&w, ids[0], ids[1], far);
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
