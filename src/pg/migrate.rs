//! Versioned schema migrations, applied at start by whichever node gets there first.
//!
//! Each migration is SQL embedded in the binary (`src/pg/migrations/NNN_name.sql`), applied in
//! its own transaction together with its row in `schema_migrations(version, name, applied_at)`:
//! a migration is either wholly applied and recorded, or not at all. Nodes starting at the same
//! time serialise on a session advisory lock ([`LOCK_KEY`]), so the second finds the work done.
//! A database whose recorded version is newer than this binary knows is refused before anything
//! is written: a rollback to an older binary must not write to a newer schema.

use super::{Database, PgError};

/// One step of the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// 1, 2, 3…: applied in this order, each once.
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration this binary knows, oldest first. Append only: a released migration is never
/// edited (databases that applied it would not see the change).
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial", sql: include_str!("migrations/001_initial.sql") },
    Migration { version: 2, name: "rate_shares", sql: include_str!("migrations/002_rate_shares.sql") },
    Migration { version: 3, name: "jobs_chain_pending", sql: include_str!("migrations/003_jobs_chain_pending.sql") },
];

/// The `pg_advisory_lock` key the migrating node holds: "m2l_migr" in ASCII, so that it does
/// not collide with another application's lock on a shared server by accident.
pub const LOCK_KEY: i64 = 0x6d32_6c5f_6d69_6772;

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

impl Database {
    /// Applies the migrations the database lacks, under the advisory lock; returns the versions
    /// this call applied (none when another node, or an earlier start, did).
    pub async fn migrate(&self) -> Result<Vec<i64>, PgError> {
        self.migrate_to(MIGRATIONS).await
    }

    /// The highest applied version; None before the first migration.
    pub async fn schema_version(&self) -> Result<Option<i64>, PgError> {
        let client = self.client().await?;
        let what = "reading the schema version";
        let exists: bool = client
            .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
            .await
            .map_err(|e| self.query_error(what, &e))?
            .get(0);
        if !exists {
            return Ok(None);
        }
        let row = client.query_one("SELECT max(version) FROM schema_migrations", &[]).await.map_err(|e| self.query_error(what, &e))?;
        Ok(row.get(0))
    }

    async fn migrate_to(&self, migrations: &[Migration]) -> Result<Vec<i64>, PgError> {
        let mut client = self.client().await?;
        client.execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY]).await.map_err(|e| self.query_error("waiting for the migration lock", &e))?;
        let result = self.apply(&mut client, migrations).await;
        let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await;
        if result.is_err() || unlocked.is_err() {
            // Whatever state the session is in, ending it releases the lock: the connection is
            // taken out of the pool and closed rather than handed to someone else still locked.
            drop(deadpool_postgres::Object::take(client));
        }
        result
    }

    async fn apply(&self, client: &mut super::Client, migrations: &[Migration]) -> Result<Vec<i64>, PgError> {
        client.batch_execute(LEDGER).await.map_err(|e| self.query_error("creating schema_migrations", &e))?;
        let row = client
            .query_one("SELECT max(version) FROM schema_migrations", &[])
            .await
            .map_err(|e| self.query_error("reading the schema version", &e))?;
        let current: i64 = row.get::<_, Option<i64>>(0).unwrap_or(0);
        let known = migrations.last().map_or(0, |m| m.version);
        if current > known {
            return Err(PgError::SchemaTooNew { found: current, known });
        }
        let mut applied = Vec::new();
        for m in migrations.iter().filter(|m| m.version > current) {
            let what = format!("applying migration {} ({})", m.version, m.name);
            let tx = client.transaction().await.map_err(|e| self.query_error(&what, &e))?;
            tx.batch_execute(m.sql).await.map_err(|e| self.query_error(&what, &e))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &crate::clock::now_ms()],
            )
            .await
            .map_err(|e| self.query_error(&what, &e))?;
            tx.commit().await.map_err(|e| self.query_error(&what, &e))?;
            tracing::info!(version = m.version, name = m.name, database = %self.target(), "database schema migrated");
            applied.push(m.version);
        }
        Ok(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1, "{}", m.name);
            assert!(!m.name.is_empty() && m.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", m.name);
        }
    }

    #[test]
    fn migrations_leave_the_transaction_to_the_runner() {
        // A COMMIT inside a migration would record nothing yet keep half of it applied.
        for m in MIGRATIONS {
            let code: String = m.sql.lines().map(|l| l.split("--").next().unwrap_or("")).collect::<Vec<_>>().join("\n").to_uppercase();
            for word in ["BEGIN", "COMMIT", "ROLLBACK", "CONCURRENTLY"] {
                assert!(!code.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').any(|w| w == word), "migration {} says {word}", m.version);
            }
        }
    }

    #[test]
    fn every_migration_file_is_listed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pg/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|m| format!("{:03}_{}.sql", m.version, m.name)).collect();
        assert_eq!(files, listed);
    }
}
