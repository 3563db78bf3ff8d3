//! The media files on PostgreSQL (issue #21): the same names and kinds as the file backend
//! (`store.rs`), kept as rows of the `media` table (`src/pg/migrations/001_initial.sql`), so
//! that whichever gateway behind the load balancer LINE asks for `/media/<name>` can serve it.
//!
//! What differs from the files, and why:
//! - **One transaction per mail.** A mail's files are inserted together and committed once;
//!   `pg::Database` refused at connect a server where a commit returns before it is flushed, so
//!   `Ok` means durable, as the 250 needs (the files are fsync'd for the same reason). A failure
//!   leaves no row behind, so there is nothing to clean up.
//! - **Age is `created_at`**, the storing node's clock in unix ms (as the spool's times are),
//!   where the file backend reads the file's mtime. Retention is days, so clocks a few seconds
//!   apart do not matter.
//! - The bytes are stored out of line and uncompressed (`STORAGE EXTERNAL`: images and archives
//!   are compressed already).

use crate::pg::{Database, PgError};

/// The PostgreSQL backend of [`super::MediaStore`]; cheap to clone.
#[derive(Debug, Clone)]
pub(super) struct PgMedia {
    pub(super) db: Database,
}

impl PgMedia {
    /// Stores `files` under the names given, in one transaction.
    pub(super) async fn insert(&self, files: &[(String, Vec<u8>)], now_ms: i64) -> Result<(), PgError> {
        let what = "storing media files";
        let mut client = self.db.client().await?;
        let tx = client.transaction().await.map_err(|e| self.db.query_error(what, &e))?;
        let insert = tx.prepare("INSERT INTO media (name, bytes, created_at) VALUES ($1, $2, $3)").await.map_err(|e| self.db.query_error(what, &e))?;
        for (name, bytes) in files {
            tx.execute(&insert, &[name, bytes, &now_ms]).await.map_err(|e| self.db.query_error(what, &e))?;
        }
        tx.commit().await.map_err(|e| self.db.query_error(what, &e))
    }

    /// The bytes of `name` when it was stored at or after `since_ms` (older rows are expired,
    /// even before the sweep deletes them).
    pub(super) async fn load(&self, name: &str, since_ms: i64) -> Result<Option<Vec<u8>>, PgError> {
        let client = self.db.client().await?;
        let row = client
            .query_opt("SELECT bytes FROM media WHERE name = $1 AND created_at >= $2", &[&name, &since_ms])
            .await
            .map_err(|e| self.db.query_error("reading a media file", &e))?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Deletes the named rows (a refused mail's files).
    pub(super) async fn remove(&self, names: &[String]) -> Result<(), PgError> {
        let client = self.db.client().await?;
        client
            .execute("DELETE FROM media WHERE name = ANY($1)", &[&names])
            .await
            .map_err(|e| self.db.query_error("deleting media files", &e))?;
        Ok(())
    }

    /// Deletes the rows stored before `before_ms`; returns how many. Several nodes may sweep
    /// at once: each row is deleted by one of them.
    pub(super) async fn sweep(&self, before_ms: i64) -> Result<usize, PgError> {
        let client = self.db.client().await?;
        let n = client
            .execute("DELETE FROM media WHERE created_at < $1", &[&before_ms])
            .await
            .map_err(|e| self.db.query_error("deleting expired media files", &e))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// The bytes of every row.
    pub(super) async fn stored_bytes(&self) -> Result<u64, PgError> {
        let client = self.db.client().await?;
        let row = client
            .query_one("SELECT coalesce(sum(octet_length(bytes)), 0)::bigint FROM media", &[])
            .await
            .map_err(|e| self.db.query_error("measuring the media files", &e))?;
        Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
    }
}
