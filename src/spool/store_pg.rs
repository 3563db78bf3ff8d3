//! The spool's store on PostgreSQL (issue #21): the same operations as the SQLite backend
//! (`store.rs`, `answers.rs`), on the shared schema of `src/pg/migrations/`, so that several
//! gateways can work on one database.
//!
//! What differs from SQLite, and why:
//! - **No writer thread, no batching.** Each call is one transaction on a pooled connection;
//!   PostgreSQL groups concurrent commits into one WAL flush on its own, and `pg::Database`
//!   refused at connect a server where a commit returns before it is flushed, so "returned"
//!   means durable, as the 250 needs.
//! - **Counts apart.** The usage and quota counts are summed in memory and written every
//!   quarter second (`counts_pg.rs`), not in each job's transaction: their few hot rows would
//!   otherwise hold every commit of every gateway in one queue.
//! - **Claims.** A job or answer is worked on by one node at a time: `due` and `due_answers`
//!   claim what they return in the same statement (`claimed_by`, `lease_until`, rows locked with
//!   `FOR UPDATE SKIP LOCKED` so that a second node passes over them instead of waiting), and a
//!   job this node inserts or seals is claimed by it at once (it goes to this node's workers
//!   directly). A claim whose lease ran out is due again: its node died, and another takes the
//!   job with the same retry key, so LINE's 409 keeps it exactly once. Recording an outcome
//!   clears the claim. Leases are compared with the caller's `now`, like `next_at`.
//! - **Sealing** locks the chat's held rows (`FOR UPDATE`): a second node sealing the same chat
//!   waits, then finds them gone and seals nothing.
//! - **Channels.** Every statement is about this store's channel (`channel`, '' for the unnamed
//!   `[line]` channel, else a `[[channels]]` name): two channels on one database share no job,
//!   retry key, quota, usage or answer. Purging by age is for every channel at once.
//!
//! Times are the node's unix milliseconds, as on SQLite; the health row is `pg::Database::probe`.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Transaction};

use super::answers::{Answer, AnswerState, AnswerUpdate, Findings, NewAnswer, Thread};
use super::store::{
    count_mail, multicast_recipients, plan_sealed, now_ms, sender_key, Job, JobId, NewJob, Packer, QuotaRow, State,
    StoreError, Update, Usage, UsageRow, COLUMNS, SENT_KEY_MS,
};
use super::counts_pg::Counts;
use crate::pg::{Database, PgError};
use crate::storage::from_columns;

/// The PostgreSQL backend of [`super::store::Store`]; cheap to clone.
#[derive(Clone)]
pub(super) struct PgStore {
    db: Database,
    /// This gateway's name in `claimed_by`.
    node: Arc<str>,
    /// The LINE channel of every row this store reads and writes ('' for the unnamed one).
    channel: Arc<str>,
    lease_ms: i64,
    /// When this process opened the store (unix ms): a claim under this node's name made before
    /// it is a previous process's, which nothing here has in hand ([`PgStore::due`]).
    opened_at: i64,
    /// Usage and quota counts not yet written (`counts_pg.rs`).
    counts: Arc<Counts>,
}

fn pg_err(e: PgError) -> StoreError {
    StoreError(e.to_string())
}

/// A u32 of ours as PostgreSQL's INTEGER.
fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn uint(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn row_to_job(r: &Row) -> Job {
    from_columns!(r, Job {
        id, mail_id, path, body, retry_key, target, sender,
        state => State::parse,
        attempts => uint,
        created_at, first_attempt_at, next_at, ambiguous, last_error, chat,
        recipients => uint,
        mails => uint,
    })
}

fn row_to_answer(r: &Row) -> Answer {
    from_columns!(r, Answer {
        id, event_id, chat, event, at,
        state => AnswerState::parse,
        attempts => uint,
        created_at, next_at, last_error, sent_to,
    })
}

fn row_to_thread(r: &Row) -> Thread {
    Thread { message_id: r.get(0), reply_to: r.get(1), subject: r.get(2) }
}

/// Stores one job with its claim (none for a held one); returns its id.
const INSERT_JOB: &str = "INSERT INTO jobs (mail_id, path, body, retry_key, target, sender, created_at, next_at, state, chat, recipients, claimed_by, lease_until, channel) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id";

impl PgStore {
    /// The database and this node's id.
    /// The database, this node's name and the channel, for the rate share (`share.rs`).
    pub(super) fn node(&self) -> (Database, Arc<str>, Arc<str>) {
        (self.db.clone(), self.node.clone(), self.channel.clone())
    }

    pub(super) async fn open(db: Database, node: &str, channel: &str, lease: Duration) -> Result<PgStore, StoreError> {
        db.migrate().await.map_err(pg_err)?;
        let store = PgStore {
            db,
            node: node.into(),
            channel: channel.into(),
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
            opened_at: now_ms(),
            counts: Arc::default(),
        };
        tokio::spawn(super::counts_pg::run(Arc::downgrade(&store.counts), store.db.clone(), store.channel.clone()));
        // Nothing of this node is in flight after a start: what it had claimed is due again now,
        // here or on another node (as SQLite makes unattempted jobs due after a restart).
        let client = store.client().await?;
        let what = "releasing this node's claims";
        for table in ["jobs", "answers"] {
            client
                .execute(&format!("UPDATE {table} SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = $1 AND channel = $2"), &[&store.node.as_ref(), &store.ch()])
                .await
                .map_err(|e| store.err(what, e))?;
        }
        Ok(store)
    }

    /// For the CLI (`mail2line queue`, `quota`): the store as it is, without migrating it or
    /// releasing anyone's claims (the gateways are running); refused when no gateway ever
    /// created the tables. `node` is only a name: the CLI claims nothing.
    pub(super) async fn attach(db: Database, node: &str, channel: &str) -> Result<PgStore, StoreError> {
        match db.schema_version().await.map_err(pg_err)? {
            // The CLI counts nothing, so nothing flushes its (empty) counts.
            Some(_) => Ok(PgStore { db, node: node.into(), channel: channel.into(), lease_ms: super::store::LEASE_MS, opened_at: i64::MIN, counts: Arc::default() }),
            None => Err(StoreError(format!(
                "no mail2line tables in the database {} yet: they are created when `mail2line serve` first starts with this storage.url",
                db.target()
            ))),
        }
    }

    /// `mail2line queue retry`: as [`super::store::retry_now`] on SQLite. A claim a node holds
    /// is left alone: the job is that node's until its lease ends, as any job it works on.
    pub(super) async fn retry_now(&self, id: JobId, new_key: String) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let now = now_ms();
        let stale = now - SENT_KEY_MS;
        let n = client
            .execute(
                "UPDATE jobs SET state = 'pending', next_at = $2, last_error = '', quota_exhausted = false, \
                   retry_key = CASE WHEN first_attempt_at IS NOT NULL AND first_attempt_at < $3 THEN $4 ELSE retry_key END, \
                   ambiguous = CASE WHEN first_attempt_at IS NOT NULL AND first_attempt_at < $3 THEN false ELSE ambiguous END, \
                   first_attempt_at = CASE WHEN first_attempt_at IS NOT NULL AND first_attempt_at < $3 THEN NULL ELSE first_attempt_at END \
                 WHERE id = $1 AND channel = $5",
                &[&id, &now, &stale, &new_key, &self.ch()],
            )
            .await
            .map_err(|e| self.err("making a job due again", e))?;
        Ok(n == 1)
    }

    /// `mail2line queue drop`: deletes one job.
    pub(super) async fn drop_job(&self, id: JobId) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client.execute("DELETE FROM jobs WHERE id = $1 AND channel = $2", &[&id, &self.ch()]).await.map_err(|e| self.err("dropping a job", e))?;
        Ok(n == 1)
    }

    async fn client(&self) -> Result<crate::pg::Client, StoreError> {
        self.db.client().await.map_err(pg_err)
    }

    fn err(&self, what: &str, e: tokio_postgres::Error) -> StoreError {
        pg_err(self.db.query_error(what, &e))
    }

    fn ch(&self) -> &str {
        &self.channel
    }

    fn lease_until(&self, now: i64) -> i64 {
        now.saturating_add(self.lease_ms)
    }

    /// One transaction per mail, committed (durable) on return: see [`insert_jobs`].
    /// Stores the jobs of one mail, claiming the first `claim` of those due now for this node.
    pub(super) async fn insert(&self, jobs: Vec<NewJob>, claim: usize) -> Result<Vec<JobId>, StoreError> {
        let what = "storing a mail";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(what, e))?;
        let ids = insert_jobs(self, &tx, &jobs, claim).await.map_err(|e| self.err(what, e))?;
        tx.commit().await.map_err(|e| self.err(what, e))?;
        // Counted once committed, written with the next flush (`counts_pg.rs`).
        let mut tally = std::collections::HashMap::new();
        count_mail(&mut tally, &jobs);
        let month = super::coalesce::month_bounds(now_ms()).0;
        for ((kind, key), n) in tally {
            self.counts.mails(month, kind, key, n);
        }
        Ok(ids)
    }

    /// See [`record_update`].
    pub(super) async fn update_counted(&self, id: JobId, at: i64, update: Update, usage: Option<Usage>) -> Result<(), StoreError> {
        let what = "recording a delivery attempt";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(what, e))?;
        record_update(&tx, self.ch(), id, at, &update).await.map_err(|e| self.err(what, e))?;
        tx.commit().await.map_err(|e| self.err(what, e))?;
        if let Some(u) = usage {
            // Counted once committed, written with the next flush (`counts_pg.rs`).
            let (messages, solo) = (i64::try_from(u.messages).unwrap_or(i64::MAX), i64::try_from(u.solo).unwrap_or(i64::MAX));
            for (kind, key) in [("sender", sender_key(&u.sender)), ("target", u.target.as_str())] {
                self.counts.messages(u.month, kind, key, messages, solo);
            }
            self.counts.quota(u.month, messages);
        }
        Ok(())
    }

    /// Writes the usage and quota counts not yet written (a clean stop, a read of them).
    pub(super) async fn flush_counts(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        self.counts.flush(&mut client, self.ch()).await.map_err(|e| self.err("writing the usage counts", e))
    }

    /// See [`seal_chat`].
    pub(super) async fn seal(&self, chat: &str, packer: Arc<dyn Packer>) -> Result<Vec<Job>, StoreError> {
        let what = "sealing held mail";
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(|e| self.err(what, e))?;
        let sealed = seal_chat(self, &tx, chat, packer.as_ref()).await.map_err(|e| self.err(what, e))?;
        tx.commit().await.map_err(|e| self.err(what, e))?;
        Ok(sealed)
    }

    pub(super) async fn set_quota(&self, row: QuotaRow) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO quota (channel, month, lim, used, probed_at) VALUES ($5, $1, $2, $3, $4) ON CONFLICT (channel) DO UPDATE SET \
                 month = excluded.month, lim = excluded.lim, used = excluded.used, probed_at = excluded.probed_at",
                &[&row.month, &row.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX)), &i64::try_from(row.used).unwrap_or(i64::MAX), &row.probed_at, &self.ch()],
            )
            .await
            .map_err(|e| self.err("recording the quota", e))?;
        Ok(())
    }

    pub(super) async fn probe(&self) -> Result<(), StoreError> {
        self.db.probe().await.map_err(pg_err)
    }

    /// Pending jobs due at `now`, claimed for this node (see the module doc); oldest first.
    /// The chain rule of [`super::store::due`] holds: a job waits while an earlier job of the
    /// same mail to the same target is pending, whoever has claimed it.
    /// Claims the pending jobs due at `now` whose lease has run out or that nobody claimed, and
    /// those claimed under this node's name before this process opened the store. Those are a
    /// previous process's: it released its claims at start ([`PgStore::open`]), but a commit of
    /// the process killed before it may land after that (the mail was on its way to the
    /// database at the kill), claimed under the same name; without this it would wait out the
    /// lease.
    ///
    /// The chain check (no earlier pending request of the same mail to the same target) is
    /// written as "the first pending of its chain", a correlated subquery ordered as
    /// `jobs_chain_pending` is: one probe of that index per candidate, whatever the statistics.
    /// As `NOT EXISTS`, or as `min(id)`, the planner, with a young table's statistics (every
    /// index looks as cheap), read every pending row of the channel per candidate (5.5 s for 500
    /// of 2,000 pending), and the claims held the rows the workers were finishing meanwhile.
    pub(super) async fn due(&self, now: i64, limit: usize) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let before_me = self.opened_at.saturating_add(self.lease_ms);
        let rows = client
            .query(
                &format!(
                    "UPDATE jobs SET claimed_by = $1, lease_until = $2 WHERE id IN ( \
                       SELECT id FROM jobs j WHERE channel = $5 AND state = 'pending' AND next_at <= $3 \
                       AND (lease_until IS NULL OR lease_until <= $3 OR (claimed_by = $1 AND lease_until < $6)) \
                       AND j.id = (SELECT e.id FROM jobs e WHERE e.channel = j.channel AND e.mail_id = j.mail_id \
                                   AND e.target = j.target AND e.state = 'pending' ORDER BY e.channel, e.mail_id, e.target, e.id LIMIT 1) \
                       ORDER BY next_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                     RETURNING {COLUMNS}"
                ),
                &[&self.node.as_ref(), &self.lease_until(now), &now, &(limit as i64), &self.ch(), &before_me],
            )
            .await
            .map_err(|e| self.err("claiming due jobs", e))?;
        let mut jobs: Vec<Job> = rows.iter().map(row_to_job).collect();
        jobs.sort_by_key(|j| (j.next_at, j.id));
        Ok(jobs)
    }

    pub(super) async fn counts(&self) -> Result<(i64, i64), StoreError> {
        let client = self.client().await?;
        let rows = client.query("SELECT state, COUNT(*) FROM jobs WHERE channel = $1 GROUP BY state", &[&self.ch()]).await.map_err(|e| self.err("counting jobs", e))?;
        let (mut pending, mut dead) = (0, 0);
        for r in rows {
            match State::parse(r.get(0)) {
                State::Pending | State::Held => pending += r.get::<_, i64>(1),
                State::Dead => dead += r.get::<_, i64>(1),
            }
        }
        Ok((pending, dead))
    }

    pub(super) async fn held_chats(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT chat, MIN(next_at) FROM jobs WHERE channel = $1 AND state = 'held' GROUP BY chat", &[&self.ch()])
            .await
            .map_err(|e| self.err("reading held chats", e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(super) async fn make_quota_jobs_due(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute("UPDATE jobs SET next_at = $1 WHERE channel = $2 AND state = 'pending' AND quota_exhausted", &[&now_ms(), &self.ch()])
            .await
            .map_err(|e| self.err("making quota-paused jobs due", e))?;
        Ok(())
    }

    pub(super) async fn purge_dead(&self, before: i64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let what = "purging dead letters";
        // LINE forgets a retry key after 24 hours; so can we.
        client.execute("DELETE FROM sent_keys WHERE at < $1", &[&(now_ms() - SENT_KEY_MS)]).await.map_err(|e| self.err(what, e))?;
        let n = client.execute("DELETE FROM jobs WHERE state = 'dead' AND next_at < $1", &[&before]).await.map_err(|e| self.err(what, e))?;
        Ok(n as usize)
    }

    pub(super) async fn store_answer(&self, answer: NewAnswer) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let n = client
            .execute(
                "INSERT INTO answers (event_id, chat, event, at, created_at, next_at, channel) VALUES ($1, $2, $3, $4, $5, $5, $6) \
                 ON CONFLICT (channel, event_id) DO NOTHING",
                &[&answer.event_id, &answer.chat, &answer.event, &answer.at, &now_ms(), &self.ch()],
            )
            .await
            .map_err(|e| self.err("storing an answer", e))?;
        Ok(n == 1)
    }

    /// As [`super::answers::update_answer`], and the claim is cleared.
    pub(super) async fn update_answer(&self, id: i64, at: i64, update: AnswerUpdate) -> Result<(), StoreError> {
        let client = self.client().await?;
        const FREE: &str = "claimed_by = NULL, lease_until = NULL";
        let (sql, params): (String, Vec<&(dyn ToSql + Sync)>) = match &update {
            AnswerUpdate::Sent { to } => (
                format!("UPDATE answers SET state = 'sent', attempts = attempts + 1, next_at = $2, sent_to = $3, last_error = '', {FREE} WHERE id = $1"),
                vec![&id as &(dyn ToSql + Sync), &at, to],
            ),
            AnswerUpdate::Retry { next_at, error } => {
                (format!("UPDATE answers SET attempts = attempts + 1, next_at = $2, last_error = $3, {FREE} WHERE id = $1"), vec![&id as &(dyn ToSql + Sync), next_at, error])
            }
            AnswerUpdate::Dead { to, error } => (
                format!("UPDATE answers SET state = 'dead', attempts = attempts + 1, next_at = $2, sent_to = $3, last_error = $4, {FREE} WHERE id = $1"),
                vec![&id as &(dyn ToSql + Sync), &at, to, error],
            ),
            AnswerUpdate::Dropped { reason } => {
                (format!("UPDATE answers SET state = 'dropped', next_at = $2, last_error = $3, {FREE} WHERE id = $1"), vec![&id as &(dyn ToSql + Sync), &at, reason])
            }
        };
        client.execute(&sql, &params).await.map_err(|e| self.err("recording an answer's outcome", e))?;
        Ok(())
    }

    /// Pending answers due at `now`, claimed for this node like jobs, so two nodes never mail
    /// one answer at once; oldest first. As [`PgStore::due`], the claims of this node's
    /// previous process are taken too.
    pub(super) async fn due_answers(&self, now: i64, limit: usize) -> Result<Vec<Answer>, StoreError> {
        let client = self.client().await?;
        let before_me = self.opened_at.saturating_add(self.lease_ms);
        let rows = client
            .query(
                &format!(
                    "UPDATE answers SET claimed_by = $1, lease_until = $2 WHERE id IN ( \
                       SELECT id FROM answers WHERE channel = $5 AND state = 'pending' AND next_at <= $3 \
                       AND (lease_until IS NULL OR lease_until <= $3 OR (claimed_by = $1 AND lease_until < $6)) \
                       ORDER BY next_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
                     RETURNING {}",
                    super::answers::COLUMNS
                ),
                &[&self.node.as_ref(), &self.lease_until(now), &now, &(limit as i64), &self.ch(), &before_me],
            )
            .await
            .map_err(|e| self.err("claiming due answers", e))?;
        let mut answers: Vec<Answer> = rows.iter().map(row_to_answer).collect();
        answers.sort_by_key(|a| (a.next_at, a.id));
        Ok(answers)
    }

    /// As [`super::store::Store::answer_findings`].
    pub(super) async fn answer_findings(
        &self,
        chat: String,
        quoted_id: Option<String>,
        quoted_since: i64,
        last_since: i64,
        until: i64,
        sent_since: i64,
    ) -> Result<Findings, StoreError> {
        let client = self.client().await?;
        let what = "reading what an answer needs";
        let quoted = match quoted_id.filter(|id| !id.is_empty()) {
            Some(id) => client
                .query_opt(
                    "SELECT m.message_id, m.reply_to, m.subject FROM sent_messages s JOIN mails m ON m.mail_id = s.mail_id \
                     WHERE s.channel = $4 AND s.line_id = $1 AND s.chat = $2 AND s.at >= $3 ORDER BY s.at DESC, s.id DESC LIMIT 1",
                    &[&id, &chat, &quoted_since, &self.ch()],
                )
                .await
                .map_err(|e| self.err(what, e))?
                .as_ref()
                .map(row_to_thread),
            None => None,
        };
        let last = client
            .query_opt(
                "SELECT m.message_id, m.reply_to, m.subject FROM sent_messages s JOIN mails m ON m.mail_id = s.mail_id \
                 WHERE s.channel = $4 AND s.chat = $1 AND s.at >= $2 AND s.at <= $3 ORDER BY s.at DESC, s.id DESC LIMIT 1",
                &[&chat, &last_since, &until, &self.ch()],
            )
            .await
            .map_err(|e| self.err(what, e))?
            .as_ref()
            .map(row_to_thread);
        let n: i64 = client
            .query_one("SELECT COUNT(*) FROM answers WHERE channel = $3 AND chat = $1 AND state = 'sent' AND next_at >= $2", &[&chat, &sent_since, &self.ch()])
            .await
            .map_err(|e| self.err(what, e))?
            .get(0);
        Ok(Findings { quoted, last, sent_since: u32::try_from(n).unwrap_or(u32::MAX) })
    }

    /// As [`super::answers::purge`].
    pub(super) async fn purge_answers(&self, window_ms: i64, keep_events_ms: i64, dead_before: i64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let what = "purging answers";
        let now = now_ms();
        let ids_before = now - window_ms.saturating_mul(7);
        let mut n = client
            .execute("DELETE FROM sent_messages WHERE at < $1 OR (line_id = '' AND at < $2)", &[&ids_before, &(now - window_ms)])
            .await
            .map_err(|e| self.err(what, e))?;
        n += client
            .execute(
                "DELETE FROM mails WHERE at < $1 AND NOT EXISTS (SELECT 1 FROM sent_messages s WHERE s.mail_id = mails.mail_id) \
                 AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.mail_id = mails.mail_id)",
                &[&ids_before],
            )
            .await
            .map_err(|e| self.err(what, e))?;
        n += client
            .execute(
                "DELETE FROM answers WHERE (state IN ('sent', 'dropped') AND next_at < $1) OR (state = 'dead' AND next_at < $2)",
                &[&(now - keep_events_ms), &dead_before],
            )
            .await
            .map_err(|e| self.err(what, e))?;
        Ok(n as usize)
    }

    pub(super) async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let client = self.client().await?;
        let row = client.query_opt(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"), &[&id]).await.map_err(|e| self.err("reading a job", e))?;
        Ok(row.as_ref().map(row_to_job))
    }

    pub(super) async fn list(&self, state: Option<State>) -> Result<Vec<Job>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT {COLUMNS} FROM jobs WHERE channel = $2 AND ($1::text IS NULL OR state = $1) ORDER BY id"), &[&state.map(State::as_str), &self.ch()])
            .await
            .map_err(|e| self.err("listing jobs", e))?;
        Ok(rows.iter().map(row_to_job).collect())
    }

    pub(super) async fn quota(&self) -> Result<Option<QuotaRow>, StoreError> {
        self.flush_counts().await?;
        let client = self.client().await?;
        let row = client
            .query_opt("SELECT month, lim, used, probed_at FROM quota WHERE channel = $1", &[&self.ch()])
            .await
            .map_err(|e| self.err("reading the quota", e))?;
        Ok(row.map(|r| QuotaRow {
            month: r.get(0),
            limit: r.get::<_, Option<i64>>(1).map(|l| l.max(0) as u64),
            used: r.get::<_, i64>(2).max(0) as u64,
            probed_at: r.get(3),
        }))
    }

    pub(super) async fn usage(&self, month: i64, kind: String) -> Result<Vec<UsageRow>, StoreError> {
        self.flush_counts().await?;
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT key, mails, messages, solo FROM usage WHERE channel = $3 AND month = $1 AND kind = $2 \
                 ORDER BY messages DESC, mails DESC, key COLLATE \"C\"",
                &[&month, &kind, &self.ch()],
            )
            .await
            .map_err(|e| self.err("reading usage", e))?;
        Ok(rows
            .iter()
            .map(|r| UsageRow {
                key: r.get(0),
                mails: r.get::<_, i64>(1).max(0) as u64,
                messages: r.get::<_, i64>(2).max(0) as u64,
                solo: r.get::<_, i64>(3).max(0) as u64,
            })
            .collect())
    }

    pub(super) async fn answers(&self, state: Option<AnswerState>) -> Result<Vec<Answer>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {} FROM answers WHERE channel = $2 AND ($1::text IS NULL OR state = $1) ORDER BY id", super::answers::COLUMNS),
                &[&state.map(AnswerState::as_str), &self.ch()],
            )
            .await
            .map_err(|e| self.err("listing answers", e))?;
        Ok(rows.iter().map(row_to_answer).collect())
    }
}

/// [`PgStore::insert`]: the jobs (claimed by this node, or held) and the mail's thread, as in
/// the SQLite writer; the caller counts the mail once committed (`counts_pg.rs`).
async fn insert_jobs(store: &PgStore, tx: &Transaction<'_>, jobs: &[NewJob], mut claim: usize) -> Result<Vec<JobId>, tokio_postgres::Error> {
    let now = now_ms();
    let mut ids = Vec::with_capacity(jobs.len());
    for j in jobs {
        let (state, next_at, claimed_by, lease_until) = match j.hold_until {
            Some(at) => (State::Held, at, None, None),
            None if claim > 0 => {
                claim -= 1;
                (State::Pending, now, Some(store.node.as_ref()), Some(store.lease_until(now)))
            }
            None => (State::Pending, now, None, None),
        };
        let row = tx
            .query_one(
                INSERT_JOB,
                &[
                    &j.mail_id, &j.path, &j.body, &j.retry_key, &j.target, &j.sender, &now, &next_at, &state.as_str(), &j.chat,
                    &int(j.recipients), &claimed_by, &lease_until, &store.ch(),
                ],
            )
            .await?;
        ids.push(row.get(0));
        if let Some(thread) = &j.thread {
            tx.execute(
                "INSERT INTO mails (mail_id, message_id, reply_to, subject, at, channel) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (mail_id) DO NOTHING",
                &[&j.mail_id, &thread.message_id, &thread.reply_to, &thread.subject, &now, &store.ch()],
            )
            .await?;
        }
    }
    Ok(ids)
}

/// [`PgStore::update_counted`]: as `apply_update` of the SQLite store (the caller counts the
/// usage once committed, `counts_pg.rs`); the claim goes with the outcome.
async fn record_update(tx: &Transaction<'_>, channel: &str, id: JobId, at: i64, update: &Update) -> Result<(), tokio_postgres::Error> {
    match update {
        Update::Done { sent } => {
            tx.execute("INSERT INTO sent_keys (channel, retry_key, at) SELECT channel, retry_key, $2 FROM jobs WHERE id = $1 ON CONFLICT DO NOTHING", &[&id, &at])
                .await?;
            remember_sent(tx, channel, id, sent, at).await?;
            tx.execute("DELETE FROM jobs WHERE id = $1", &[&id]).await?;
        }
        Update::Retry { next_at, error, ambiguous, quota_exhausted } => {
            tx.execute(
                "UPDATE jobs SET attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $2), next_at = $3, last_error = $4, \
                 ambiguous = ambiguous OR $5, quota_exhausted = $6, claimed_by = NULL, lease_until = NULL WHERE id = $1",
                &[&id, &at, next_at, error, ambiguous, quota_exhausted],
            )
            .await?;
        }
        Update::Dead { error } => {
            // `next_at` keeps when it died, which `purge_dead` counts from.
            tx.execute(
                "UPDATE jobs SET attempts = attempts + 1, first_attempt_at = COALESCE(first_attempt_at, $2), state = 'dead', last_error = $3, \
                 next_at = $2, quota_exhausted = false, claimed_by = NULL, lease_until = NULL WHERE id = $1",
                &[&id, &at, error],
            )
            .await?;
        }
    }
    Ok(())
}

/// As the SQLite store's `remember_sent`: the LINE ids a delivered job became, for the mails
/// it carried whose thread is kept.
async fn remember_sent(tx: &Transaction<'_>, channel: &str, id: JobId, sent: &[String], at: i64) -> Result<(), tokio_postgres::Error> {
    let Some(row) = tx.query_opt("SELECT mail_id, target, path, body FROM jobs WHERE id = $1", &[&id]).await? else { return Ok(()) };
    let (mail_ids, target, path, body): (String, String, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let mut threaded = Vec::new();
    for m in mail_ids.split(',').filter(|m| !m.is_empty()) {
        if tx.query_opt("SELECT 1 FROM mails WHERE mail_id = $1", &[&m]).await?.is_some() {
            threaded.push(m.to_owned());
        }
    }
    if threaded.is_empty() {
        return Ok(());
    }
    let chats = if path.ends_with("/multicast") { multicast_recipients(&body) } else { vec![target] };
    for (line_id, chat, mail) in super::answers::sent_rows(&threaded, &chats, sent) {
        tx.execute("INSERT INTO sent_messages (line_id, chat, mail_id, at, channel) VALUES ($1, $2, $3, $4, $5)", &[&line_id, &chat, &mail, &at, &channel]).await?;
    }
    Ok(())
}

/// [`PgStore::seal`]: the SQLite store's `seal`, with the chat's held rows locked.
async fn seal_chat(store: &PgStore, tx: &Transaction<'_>, chat: &str, packer: &dyn Packer) -> Result<Vec<Job>, tokio_postgres::Error> {
    let now = now_ms();
    // Locked: a node sealing the same chat at the same time waits here, then finds the rows
    // gone (or no longer held) and seals nothing.
    let held: Vec<Job> = tx
        .query(&format!("SELECT {COLUMNS} FROM jobs WHERE channel = $2 AND state = 'held' AND chat = $1 ORDER BY id FOR UPDATE"), &[&chat, &store.ch()])
        .await?
        .iter()
        .map(row_to_job)
        .collect();
    if held.is_empty() {
        return Ok(Vec::new());
    }
    // A mail sent again (its sender missed our 250) has the same retry keys as the first
    // time; if that one was delivered, is still pending, or is held here too, this copy goes
    // nowhere.
    let mut seen = std::collections::HashSet::new();
    let mut unique = Vec::with_capacity(held.len());
    for j in held {
        let known: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM sent_keys WHERE channel = $2 AND retry_key = $1) \
                 OR EXISTS (SELECT 1 FROM jobs WHERE channel = $2 AND retry_key = $1 AND state = 'pending')",
                &[&j.retry_key, &store.ch()],
            )
            .await?
            .get(0);
        if !seen.insert(j.retry_key.clone()) || known {
            tracing::info!(mail = %j.mail_id, job = j.id, "held request already taken (the same mail was sent again); not sent twice");
            tx.execute("DELETE FROM jobs WHERE id = $1 AND state = 'held'", &[&j.id]).await?;
            continue;
        }
        unique.push(j);
    }
    let held = unique;
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let lease_until = store.lease_until(now);
    let node = store.node.as_ref();
    if held.len() == 1 {
        // One mail held: it goes as it was composed, under its own key, to this node.
        let j = &held[0];
        tx.execute(
            "UPDATE jobs SET state = 'pending', next_at = $2, claimed_by = $3, lease_until = $4 WHERE id = $1",
            &[&j.id, &now, &node, &lease_until],
        )
        .await?;
        let mut job = j.clone();
        job.state = State::Pending;
        job.next_at = now;
        return Ok(vec![job]);
    }
    let mut out = Vec::new();
    for planned in plan_sealed(chat, &held, packer) {
        let (new, mails) = (planned.job, planned.mails);
        let row = tx
            .query_one(
                INSERT_JOB,
                &[
                    &new.mail_id, &new.path, &new.body, &new.retry_key, &new.target, &new.sender, &now, &now, &State::Pending.as_str(),
                    &new.chat, &int(new.recipients), &Some(node), &Some(lease_until), &store.ch(),
                ],
            )
            .await?;
        let id: JobId = row.get(0);
        tx.execute("UPDATE jobs SET mails = $2 WHERE id = $1", &[&id, &int(mails)]).await?;
        let mut job = Job::fresh(id, new, now);
        job.created_at = planned.created_at.unwrap_or(now);
        job.mails = mails;
        out.push(job);
    }
    for j in &held {
        tx.execute("DELETE FROM jobs WHERE id = $1 AND state = 'held'", &[&j.id]).await?;
    }
    Ok(out)
}
