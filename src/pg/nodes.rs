//! What each gateway writes about itself: its health row (`/readyz`: a commit still goes
//! through) and its heartbeat, from which every node counts the live nodes it shares a LINE
//! channel's rate limit with.
//!
//! Heartbeats are stamped and compared with the database's clock, not the nodes': two machines'
//! clocks may disagree by seconds, and one clock for all makes "seen within the last N ms" mean
//! the same on every node.

use std::time::Duration;

use super::{Database, PgError};

/// How often a gateway writes its heartbeat: the spool's rate share (`spool::share`) each
/// round, or [`Database::run_heartbeats`] in direct mode. Often, so the others adjust their
/// share of the rate limit within a second or two of a change.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// A node counts as live ([`Database::live_nodes`]) while its last heartbeat is younger than
/// this: five beats, so a slow or lost write does not make anyone double its share.
pub const LIVE_WITHIN_MS: i64 = 5 * HEARTBEAT_EVERY.as_millis() as i64;

/// The database's time in unix ms, in SQL (`clock_timestamp`, not the transaction's start).
const DB_NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

impl Database {
    /// A cheap durable write: rewrites this gateway's row of `health` (named by its
    /// `application_name`) and returns once it is committed, i.e. flushed (see the module doc
    /// of [`super`]). An error means a mail could not be committed either.
    pub async fn probe(&self) -> Result<(), PgError> {
        let what = "writing the health row";
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO health (node, checked_at) VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET checked_at = excluded.checked_at",
                &[&self.app_name(), &crate::clock::now_ms()],
            )
            .await
            .map_err(|e| self.query_error(what, &e))?;
        Ok(())
    }

    /// Records that `node_id` is alive now (the database's clock).
    pub async fn heartbeat(&self, node_id: &str) -> Result<(), PgError> {
        let client = self.control_client().await?;
        client
            .execute(
                &format!(
                    "INSERT INTO nodes (node_id, started_at, last_seen) VALUES ($1, {DB_NOW_MS}, {DB_NOW_MS}) \
                     ON CONFLICT (node_id) DO UPDATE SET last_seen = excluded.last_seen"
                ),
                &[&node_id],
            )
            .await
            .map_err(|e| self.query_error("writing the heartbeat", &e))?;
        Ok(())
    }

    /// How many nodes sent a heartbeat within the last `within_ms`: the share of a channel's
    /// rate limit a node may take is the limit divided by this. 0 before any heartbeat (the
    /// caller counts at least itself).
    pub async fn live_nodes(&self, within_ms: i64) -> Result<u32, PgError> {
        let client = self.control_client().await?;
        let row = client
            .query_one(&format!("SELECT count(*) FROM nodes WHERE last_seen >= {DB_NOW_MS} - $1"), &[&within_ms])
            .await
            .map_err(|e| self.query_error("counting the live nodes", &e))?;
        let n: i64 = row.get(0);
        Ok(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// One round of a channel's rate share (`spool::share`): how many nodes sent a heartbeat
    /// within the last `within_ms` (as [`Database::live_nodes`]), and the lowest count the
    /// *other* live nodes sharing `channel` acknowledged ([`Database::acknowledge_share`]);
    /// None when no other live node shares it.
    pub async fn share_round(&self, node_id: &str, channel: &str, within_ms: i64) -> Result<(u32, Option<u32>), PgError> {
        let client = self.control_client().await?;
        let row = client
            .query_one(
                &format!(
                    "SELECT (SELECT count(*) FROM nodes WHERE last_seen >= {DB_NOW_MS} - $1),                      (SELECT min(s.counted) FROM rate_shares s JOIN nodes n ON n.node_id = s.node_id                       WHERE s.channel = $2 AND s.node_id <> $3 AND n.last_seen >= {DB_NOW_MS} - $1)"
                ),
                &[&within_ms, &channel, &node_id],
            )
            .await
            .map_err(|e| self.query_error("counting the live nodes", &e))?;
        let (n, acked): (i64, Option<i32>) = (row.get(0), row.get(1));
        Ok((u32::try_from(n).unwrap_or(u32::MAX), acked.map(|a| u32::try_from(a).unwrap_or(0))))
    }

    /// Records that `node_id` now sends no more than its share of `channel`'s limit among
    /// `counted` nodes: a node joining them waits for this from every other one.
    pub async fn acknowledge_share(&self, node_id: &str, channel: &str, counted: u32) -> Result<(), PgError> {
        let client = self.control_client().await?;
        let counted = i32::try_from(counted).unwrap_or(i32::MAX);
        client
            .execute(
                &format!(
                    "INSERT INTO rate_shares (channel, node_id, counted, updated_at) VALUES ($1, $2, $3, {DB_NOW_MS})                      ON CONFLICT (channel, node_id) DO UPDATE SET counted = excluded.counted, updated_at = excluded.updated_at"
                ),
                &[&channel, &node_id, &counted],
            )
            .await
            .map_err(|e| self.query_error("acknowledging the rate share", &e))?;
        Ok(())
    }

    /// Writes `node_id`'s heartbeat every [`HEARTBEAT_EVERY`] until `stop` turns true. A failed
    /// write is logged once when the failures start and once when they end (the database being
    /// unreachable is already told by every mail refused meanwhile).
    pub async fn run_heartbeats(self, node_id: String, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut failing = false;
        loop {
            match self.heartbeat(&node_id).await {
                Ok(()) if failing => {
                    tracing::info!(node = %node_id, "heartbeat written again: the database is back");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(node = %node_id, "cannot write this gateway's heartbeat: {e}");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT_EVERY) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// Removes `node_id`'s heartbeat: a gateway that stops cleanly is no longer counted, so the
    /// others take its share of the rate limit at once instead of after the live window.
    pub async fn leave(&self, node_id: &str) -> Result<(), PgError> {
        let client = self.control_client().await?;
        client
            // One statement, so the node's acknowledgements go with its heartbeat.
            .execute("WITH shares AS (DELETE FROM rate_shares WHERE node_id = $1) DELETE FROM nodes WHERE node_id = $1", &[&node_id])
            .await
            .map_err(|e| self.query_error("removing the heartbeat", &e))?;
        Ok(())
    }
}
