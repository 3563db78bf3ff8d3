//! What the spool keeps for answers from LINE (`[replies]`, issue #20): the tables, and the
//! reads and writes on them. Mail goes out as LINE messages; a follower's answer comes back as a
//! webhook event and must find the mail it answers. Three tables, in the spool's own file, so
//! "stored" means the same durable commit as for a mail:
//!
//! - `mails`: for each spooled mail (only while `[replies]` is on), its Message-ID, the address
//!   answers go to (Reply-To, else From) and its subject. Written with the mail's jobs.
//! - `sent_messages`: each LINE message id a push returned, against the chat and the mail it
//!   carried; written in the same commit that records the push as delivered. Multicast returns no
//!   ids, so its mails get one row per recipient with an empty id: found by "last mail to this
//!   chat", never by a quote, and kept for the window only.
//! - `answers`: the outbox. One row per webhook event (its `webhookEventId` unique, so a
//!   redelivered event is stored once and never mailed twice), the event's JSON as LINE sent it,
//!   and where it stands: pending (with its next attempt), sent, dead (gave up after `max_age`,
//!   listed by `mail2line queue`) or dropped (nowhere to send it).
//!
//! The address an answer is mailed to only ever comes from `mails`, a mail the gateway itself
//! pushed to the same chat, or from `[replies] to`: a follower cannot choose it.

use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::clock::now_ms;
use crate::storage::DbError as StoreError;
use crate::storage::from_columns;

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mails (
    mail_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    reply_to TEXT NOT NULL,
    subject TEXT NOT NULL,
    at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sent_messages (
    line_id TEXT NOT NULL,
    chat TEXT NOT NULL,
    mail_id TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_by_id ON sent_messages(line_id) WHERE line_id != '';
CREATE INDEX IF NOT EXISTS sent_by_chat ON sent_messages(chat, at);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    chat TEXT NOT NULL,
    event TEXT NOT NULL,
    at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    next_at INTEGER NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    sent_to TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS answers_due ON answers(state, next_at);
CREATE INDEX IF NOT EXISTS answers_chat ON answers(chat, state, next_at);
";

/// What an answer to a mail needs to find its way back: kept with the mail while `[replies]` is on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Thread {
    /// The Message-ID without angle brackets; empty when the mail had none.
    pub message_id: String,
    /// Reply-To, else From: the bare address. Empty when the mail had neither.
    pub reply_to: String,
    pub subject: String,
}

/// A follower's message as the webhook stores it, before the 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAnswer {
    /// `webhookEventId`: the same for a redelivery, so it is stored once.
    pub event_id: String,
    /// The chat it was written in: a user (1:1), group or room id.
    pub chat: String,
    /// The event's JSON, as LINE sent it.
    pub event: String,
    /// The event's timestamp (unix ms): "the last mail within the window" counts back from it.
    pub at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerState {
    Pending,
    Sent,
    Dead,
    Dropped,
}

impl AnswerState {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerState::Pending => "pending",
            AnswerState::Sent => "sent",
            AnswerState::Dead => "dead",
            AnswerState::Dropped => "dropped",
        }
    }

    pub(super) fn parse(s: &str) -> AnswerState {
        match s {
            "sent" => AnswerState::Sent,
            "dead" => AnswerState::Dead,
            "dropped" => AnswerState::Dropped,
            _ => AnswerState::Pending,
        }
    }
}

/// A stored answer, as the outbox worker and `mail2line queue` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub id: i64,
    pub event_id: String,
    pub chat: String,
    pub event: String,
    pub at: i64,
    pub state: AnswerState,
    pub attempts: u32,
    pub created_at: i64,
    pub next_at: i64,
    pub last_error: String,
    /// Where it was mailed (sent), or was to be mailed (dead).
    pub sent_to: String,
}

/// What the store knows about an answer's chat ([`super::store::Store::answer_findings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    /// The mail the answer quotes, if it quotes one the gateway remembers.
    pub quoted: Option<Thread>,
    /// The last mail pushed to the chat within the window.
    pub last: Option<Thread>,
    /// Answers from the chat mailed within the hour.
    pub sent_since: u32,
}

/// What happened to an attempt to mail an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerUpdate {
    /// The relay took it.
    Sent { to: String },
    /// Try again at `next_at` (unix ms).
    Retry { next_at: i64, error: String },
    /// Given up: kept as dead, listed by `mail2line queue`.
    Dead { to: String, error: String },
    /// Nowhere to send it (no mail to answer, no `[replies] to`): logged, kept for the event id.
    Dropped { reason: String },
}

/// Remembers a spooled mail's thread (writer side, in the mail's own commit).
pub(super) fn remember_mail(tx: &Transaction<'_>, mail_id: &str, thread: &Thread, now: i64) -> Result<(), StoreError> {
    tx.prepare_cached("INSERT OR IGNORE INTO mails (mail_id, message_id, reply_to, subject, at) VALUES (?1, ?2, ?3, ?4, ?5)")?
        .execute(params![mail_id, thread.message_id, thread.reply_to, thread.subject, now])?;
    Ok(())
}

/// The mails among `mail_ids` (a job's comma-separated list: more than one once coalesced)
/// whose thread is kept, in order. With [replies] off there are none: one index probe each.
pub(super) fn threaded(tx: &Transaction<'_>, mail_ids: &str) -> Result<Vec<String>, StoreError> {
    let mut known = tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM mails WHERE mail_id = ?1)")?;
    let mut out = Vec::new();
    for m in mail_ids.split(',').filter(|m| !m.is_empty()) {
        if known.query_row(params![m], |r| r.get::<_, bool>(0))? {
            out.push(m.to_owned());
        }
    }
    Ok(out)
}

/// Records what a delivered request sent (writer side, in the commit that records it delivered):
/// each LINE message id against the chat and its mail. `threaded` are the mails it carried whose
/// thread is kept ([`threaded`]). With as many ids as mails, message i belongs to mail i (the
/// packer keeps mails in order, one bubble each); otherwise every id goes to the newest mail,
/// which is what a reader sees last. `chats` is the push's one recipient, or a multicast's
/// recipients, which get no ids: one row each with an empty id, found by chat only.
pub(super) fn remember_sent(tx: &Transaction<'_>, threaded: &[String], chats: &[String], sent: &[String], at: i64) -> Result<(), StoreError> {
    let rows = sent_rows(threaded, chats, sent);
    if rows.is_empty() {
        return Ok(());
    }
    let mut add = tx.prepare_cached("INSERT INTO sent_messages (line_id, chat, mail_id, at) VALUES (?1, ?2, ?3, ?4)")?;
    for (line_id, chat, mail) in rows {
        add.execute(params![line_id, chat, mail, at])?;
    }
    Ok(())
}

/// The `(line_id, chat, mail_id)` rows [`remember_sent`] writes (pure; both backends use it).
pub(super) fn sent_rows<'a>(threaded: &'a [String], chats: &'a [String], sent: &'a [String]) -> Vec<(&'a str, &'a str, &'a str)> {
    let Some(newest) = threaded.last() else { return Vec::new() };
    let mut rows = Vec::new();
    for chat in chats {
        if sent.is_empty() {
            rows.push(("", chat.as_str(), newest.as_str()));
        }
        for (i, id) in sent.iter().enumerate() {
            let mail = if sent.len() == threaded.len() { &threaded[i] } else { newest };
            rows.push((id.as_str(), chat.as_str(), mail.as_str()));
        }
    }
    rows
}

/// Stores an answer unless its event id is known; `true` when it is new (writer side).
pub(super) fn store_answer(tx: &Transaction<'_>, new: &NewAnswer, now: i64) -> Result<bool, StoreError> {
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO answers (event_id, chat, event, at, created_at, next_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        )?
        .execute(params![new.event_id, new.chat, new.event, new.at, now])?;
    Ok(n == 1)
}

/// Records an attempt's outcome (writer side). A sent answer keeps its send time in `next_at`,
/// which the per-chat hourly limit counts.
pub(super) fn update_answer(tx: &Transaction<'_>, id: i64, at: i64, update: &AnswerUpdate) -> Result<(), StoreError> {
    match update {
        AnswerUpdate::Sent { to } => tx
            .prepare_cached("UPDATE answers SET state = 'sent', attempts = attempts + 1, next_at = ?2, sent_to = ?3, last_error = '' WHERE id = ?1")?
            .execute(params![id, at, to])?,
        AnswerUpdate::Retry { next_at, error } => tx
            .prepare_cached("UPDATE answers SET attempts = attempts + 1, next_at = ?2, last_error = ?3 WHERE id = ?1")?
            .execute(params![id, next_at, error])?,
        AnswerUpdate::Dead { to, error } => tx
            .prepare_cached("UPDATE answers SET state = 'dead', attempts = attempts + 1, next_at = ?2, sent_to = ?3, last_error = ?4 WHERE id = ?1")?
            .execute(params![id, at, to, error])?,
        AnswerUpdate::Dropped { reason } => tx
            .prepare_cached("UPDATE answers SET state = 'dropped', next_at = ?2, last_error = ?3 WHERE id = ?1")?
            .execute(params![id, at, reason])?,
    };
    Ok(())
}

fn thread_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Thread> {
    Ok(Thread { message_id: r.get(0)?, reply_to: r.get(1)?, subject: r.get(2)? })
}

/// The mail a quoted LINE message came from, if it was pushed to `chat` at or after `since`.
pub fn quoted(conn: &Connection, chat: &str, line_id: &str, since: i64) -> Result<Option<Thread>, StoreError> {
    if line_id.is_empty() {
        return Ok(None);
    }
    Ok(conn
        .prepare_cached(
            "SELECT m.message_id, m.reply_to, m.subject FROM sent_messages s JOIN mails m ON m.mail_id = s.mail_id \
             WHERE s.line_id = ?1 AND s.chat = ?2 AND s.at >= ?3 ORDER BY s.at DESC LIMIT 1",
        )?
        .query_row(params![line_id, chat, since], thread_row)
        .optional()?)
}

/// The last mail pushed to `chat` in `[since, until]`.
pub fn last_to_chat(conn: &Connection, chat: &str, since: i64, until: i64) -> Result<Option<Thread>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT m.message_id, m.reply_to, m.subject FROM sent_messages s JOIN mails m ON m.mail_id = s.mail_id \
             WHERE s.chat = ?1 AND s.at >= ?2 AND s.at <= ?3 ORDER BY s.at DESC, s.rowid DESC LIMIT 1",
        )?
        .query_row(params![chat, since, until], thread_row)
        .optional()?)
}

/// How many answers from `chat` were mailed at or after `since`.
pub fn sent_since(conn: &Connection, chat: &str, since: i64) -> Result<u32, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM answers WHERE chat = ?1 AND state = 'sent' AND next_at >= ?2")?
        .query_row(params![chat, since], |r| r.get(0))?)
}

pub(super) const COLUMNS: &str = "id, event_id, chat, event, at, state, attempts, created_at, next_at, last_error, sent_to";

fn row_to_answer(r: &rusqlite::Row<'_>) -> rusqlite::Result<Answer> {
    Ok(from_columns!(r?, Answer {
        id, event_id, chat, event, at,
        state => |s: String| AnswerState::parse(&s),
        attempts, created_at, next_at, last_error, sent_to,
    }))
}

/// Pending answers due at `now`, oldest first.
pub fn due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<Answer>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM answers WHERE state = 'pending' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![now, limit as i64], row_to_answer)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The answers in `state` (every one with None), by id; for `mail2line queue`. None at all in a
/// spool that a version without answers wrote (and no `serve` has opened since).
pub fn list(conn: &Connection, state: Option<AnswerState>) -> Result<Vec<Answer>, StoreError> {
    let exists: bool = conn.query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'answers')", [], |r| r.get(0))?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM answers WHERE ?1 IS NULL OR state = ?1 ORDER BY id"
    ))?;
    let rows = stmt.query_map(params![state.map(AnswerState::as_str)], row_to_answer)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forgets what no answer can need any more (`window_ms` is `[replies] window_hours`):
/// - sent ids after 7 windows, multicast rows after one (they are found by chat only);
/// - a mail's thread once no sent row and no job of its own is left for it, and it is older
///   than 7 windows (a job may wait in the spool for days before it is sent). A coalesced job
///   names several mails and is not matched here (that would scan every job for every mail):
///   one still waiting after 7 windows loses its threads, and answers to it go to `[replies] to`;
/// - sent and dropped answers once their event id cannot come again (`keep_events_ms`), dead
///   ones after `dead_before` like dead mail.
///
/// Returns how many rows went.
pub fn purge(conn: &Connection, window_ms: i64, keep_events_ms: i64, dead_before: i64) -> Result<usize, StoreError> {
    let now = now_ms();
    let ids_before = now - window_ms.saturating_mul(7);
    let mut n = conn.execute("DELETE FROM sent_messages WHERE at < ?1 OR (line_id = '' AND at < ?2)", params![ids_before, now - window_ms])?;
    n += conn.execute(
        "DELETE FROM mails WHERE at < ?1 AND NOT EXISTS (SELECT 1 FROM sent_messages s WHERE s.mail_id = mails.mail_id) \
         AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.mail_id = mails.mail_id)",
        params![ids_before],
    )?;
    n += conn.execute(
        "DELETE FROM answers WHERE (state IN ('sent', 'dropped') AND next_at < ?1) OR (state = 'dead' AND next_at < ?2)",
        params![now - keep_events_ms, dead_before],
    )?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The scenarios of this file's store functions run through `Store`'s API on both backends
    // in tests/store_pg.rs (SQLite there too); here is what only SQLite's own files can show.

    #[test]
    fn a_spool_from_before_answers_lists_none() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("old.sqlite3")).unwrap();
        conn.execute_batch("CREATE TABLE jobs (id INTEGER PRIMARY KEY)").unwrap();
        assert_eq!(list(&conn, None).unwrap(), Vec::new());
    }
}
