//! The usage and quota counts of the spool's store on PostgreSQL, summed in memory and written
//! in one transaction every [`FLUSH_EVERY`], instead of in each mail's and each outcome's own.
//!
//! Why: every mail from one sender adds to the same `usage` row, and every push to the
//! channel's single `quota` row. Written in the job's transaction, each commit held those rows'
//! locks until its WAL flush, so all commits of all gateways queued behind one another: one
//! gateway on PostgreSQL took about 470 mails/s where SQLite takes 8,000 (`bench/e2e.sh
//! --store postgres`), and more gateways could not add to it. Summed here, the hot rows are
//! locked once per flush, briefly, and the jobs' own commits no longer meet.
//!
//! What it costs: the counts are not in the job's commit. A gateway killed with counts not yet
//! written loses them (at most [`FLUSH_EVERY`] of them); the counts are statistics for
//! `mail2line quota` and the estimate quota pacing works from, which LINE's own figure
//! replaces at the next probe. A clean stop writes them (`Store::flush_counts`), and a read of
//! the counts on this gateway writes them first, so it sees its own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_postgres::Transaction;

/// How often the summed counts are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// Counts not yet written. Keys are sorted, so every flush locks the rows in one order (and
/// cannot deadlock with another gateway's flush).
#[derive(Debug, Default)]
pub(super) struct Pending {
    /// `(month, kind, key)` → (mails, messages, solo).
    usage: BTreeMap<(i64, &'static str, String), (i64, i64, i64)>,
    /// month → messages pushed.
    quota: BTreeMap<i64, i64>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.usage.is_empty() && self.quota.is_empty()
    }

    /// Adds `other` (a flush that failed goes back to be tried again).
    fn merge(&mut self, other: Pending) {
        for (k, (a, b, c)) in other.usage {
            let e = self.usage.entry(k).or_default();
            *e = (e.0 + a, e.1 + b, e.2 + c);
        }
        for (month, n) in other.quota {
            *self.quota.entry(month).or_default() += n;
        }
    }
}

/// The counts of one store (one channel of one gateway); shared by its clones.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pending: Mutex<Pending>,
    /// One flush at a time, so a failed one is merged back before the next takes its turn.
    flushing: tokio::sync::Mutex<()>,
}

impl Counts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A mail stored: `n` mails for `(kind, key)` in `month`.
    pub(super) fn mails(&self, month: i64, kind: &'static str, key: &str, n: i64) {
        let mut p = self.lock();
        p.usage.entry((month, kind, key.to_owned())).or_default().0 += n;
    }

    /// A request answered: its messages and solo count for `(kind, key)` in `month`.
    pub(super) fn messages(&self, month: i64, kind: &'static str, key: &str, messages: i64, solo: i64) {
        let mut p = self.lock();
        let e = p.usage.entry((month, kind, key.to_owned())).or_default();
        e.1 += messages;
        e.2 += solo;
    }

    /// `messages` more pushed in `month`, towards the quota's `used`.
    pub(super) fn quota(&self, month: i64, messages: i64) {
        *self.lock().quota.entry(month).or_default() += messages;
    }

    /// Writes what is pending in one transaction on `client`; on failure it stays pending.
    pub(super) async fn flush(&self, client: &mut crate::pg::Client, channel: &str) -> Result<(), tokio_postgres::Error> {
        let _turn = self.flushing.lock().await;
        let taken = std::mem::take(&mut *self.lock());
        if taken.is_empty() {
            return Ok(());
        }
        let written = async {
            let tx = client.transaction().await?;
            write(&tx, channel, &taken).await?;
            tx.commit().await
        }
        .await;
        if written.is_err() {
            self.lock().merge(taken);
        }
        written
    }
}

/// The statements of one flush: usage rows first, then the quota row, each in key order.
async fn write(tx: &Transaction<'_>, channel: &str, p: &Pending) -> Result<(), tokio_postgres::Error> {
    for ((month, kind, key), (mails, messages, solo)) in &p.usage {
        tx.execute(
            "INSERT INTO usage (month, kind, key, mails, messages, solo, channel) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (channel, month, kind, key) DO UPDATE SET mails = usage.mails + excluded.mails, \
             messages = usage.messages + excluded.messages, solo = usage.solo + excluded.solo",
            &[month, kind, key, mails, messages, solo, &channel],
        )
        .await?;
    }
    for (month, used) in &p.quota {
        // LINE's last figure plus what was sent since; a new month starts from zero.
        tx.execute(
            "INSERT INTO quota (channel, month, lim, used, probed_at) VALUES ($3, $1, NULL, $2, 0) ON CONFLICT (channel) DO UPDATE SET \
             used = CASE WHEN quota.month = excluded.month THEN quota.used + excluded.used \
                         WHEN quota.month > excluded.month THEN quota.used ELSE excluded.used END, \
             month = GREATEST(quota.month, excluded.month)",
            &[month, used, &channel],
        )
        .await?;
    }
    Ok(())
}

/// Flushes `counts` every [`FLUSH_EVERY`] until the store is dropped. A failed flush (the
/// database away) is logged once and tried again.
pub(super) async fn run(counts: Weak<Counts>, db: crate::pg::Database, channel: Arc<str>) {
    let mut failing = false;
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(counts) = counts.upgrade() else { return };
        let flushed = match db.client().await {
            Ok(mut client) => counts.flush(&mut client, &channel).await.map_err(|e| db.query_error("writing the usage counts", &e).to_string()),
            Err(e) => Err(e.to_string()),
        };
        match flushed {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                tracing::warn!("cannot write the usage and quota counts yet (kept and tried again): {e}");
                failing = true;
            }
            Err(_) => {}
        }
    }
}
