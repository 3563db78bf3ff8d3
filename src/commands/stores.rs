//! Opening the gateway's durable stores from a configuration, in one place for `serve` and for
//! the CLI commands (`queue`, `quota`, `followers`, `check-config --online`): the spool's store
//! and the follower registry, in SQLite files under `storage.dir` or, with `[storage] url`, in
//! PostgreSQL (issue #21). Whatever later changes how a store is chosen (one per LINE channel)
//! changes it here.
//!
//! On PostgreSQL, `serve` migrates the schema, opens the spool's store as this node (releasing
//! the claims it held before it stopped, see `spool::store_pg`) with `[storage] lease_secs`, and
//! writes a heartbeat. The CLI attaches to the database as it is: it migrates nothing, releases
//! nobody's claims (the gateways are running), and says so when no gateway created the tables.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Error;
use crate::config::Config;
use crate::followers::Registry;
use crate::pg::Database;
use crate::spool::store::Store;

/// Where a channel keeps its SQLite files (spool, followers, token): `storage.dir/channels/<name>`.
pub fn channel_dir(cfg: &Config, name: &str) -> PathBuf {
    cfg.storage.dir.join("channels").join(name)
}

/// The `application_name` a gateway connects with: names its health row and shows in
/// `pg_stat_activity`.
pub fn app_name(node: &str) -> String {
    format!("mail2line@{node}")
}

/// The database of `[storage] url`, connected and checked for durable commits; None without a
/// URL (SQLite). `node` names the connection. An error says what to fix (unreachable, login
/// refused, not durable…) and never holds the password.
pub async fn connect(cfg: &Config, node: &str) -> Result<Option<Database>, Error> {
    if !cfg.storage.is_postgres() {
        return Ok(None);
    }
    let password = (!cfg.storage_password.is_empty()).then(|| cfg.storage_password.clone());
    let db = Database::connect(cfg.storage.url.trim(), password, &app_name(node))
        .await
        .map_err(|e| Error::Start(format!("storage.url: {e}")))?;
    Ok(Some(db))
}

/// `serve`'s spool store of one LINE channel (`channel`: its name, `""` for the unnamed `[line]`
/// one): SQLite under `dir` (`storage.dir`, or the channel's own directory), or the channel's
/// rows in PostgreSQL as node `node` with claims of `[storage] lease_secs` (migrating the schema
/// first).
pub async fn open_spool_store(cfg: &Config, db: Option<&Database>, node: &str, channel: &str, dir: &Path) -> Result<Store, Error> {
    match db {
        None => Store::open(dir).map_err(|e| Error::StorageDir { reason: e.to_string(), dir: dir.to_owned() }),
        Some(db) => Store::open_postgres_with_lease_channel(db.clone(), node, channel, cfg.storage.lease())
            .await
            .map_err(|e| Error::Start(format!("{}cannot open the spool in PostgreSQL ({}): {e}", whose(channel), db.target()))),
    }
}

/// `serve`'s follower registry of one LINE channel, as [`open_spool_store`]: SQLite under `dir`,
/// or the channel's rows in PostgreSQL.
pub async fn open_registry(db: Option<&Database>, channel: &str, dir: &Path) -> Result<Arc<Registry>, Error> {
    let registry = match db {
        None => Registry::open(dir).map_err(|e| Error::StorageDir { reason: e.to_string(), dir: dir.to_owned() })?,
        Some(db) => Registry::open_postgres_channel(db.clone(), channel)
            .await
            .map_err(|e| Error::Start(format!("{}cannot open the follower registry in PostgreSQL ({}): {e}", whose(channel), db.target())))?,
    };
    Ok(Arc::new(registry))
}

/// What a message about a channel's store starts with: nothing for the unnamed channel (its
/// messages read as before channels existed), else `channel <name>: `.
pub fn whose(channel: &str) -> String {
    match channel {
        "" => String::new(),
        name => format!("channel {name}: "),
    }
}

/// `--channel NAME` for `queue`, `quota` and `followers`: points `cfg` at that channel's store
/// (its directory `storage.dir/channels/<name>`, or its rows in PostgreSQL). Without the flag:
/// the unnamed `[line]` channel, or the only channel when there is exactly one. A name the
/// configuration does not have, or none among several, is an error listing the names.
pub fn select_channel(cfg: &mut Config, name: Option<&str>) -> Result<(), Error> {
    let names: Vec<&str> = cfg.channels.iter().map(|c| c.name.as_str()).collect();
    let chosen = match (name, names.as_slice()) {
        (None, []) => return Ok(()),
        (Some(n), _) if names.contains(&n) => n.to_owned(),
        (None, [only]) => (*only).to_owned(),
        (Some(n), []) => {
            return Err(Error::NoSuchChannel(format!("--channel {n:?}: the configuration has no [[channels]]; leave --channel out for its one [line] channel")))
        }
        (given, _) => {
            let what = match given {
                Some(n) => format!("--channel {n:?} is not a channel of the configuration"),
                None => "the configuration has several channels: choose one with --channel NAME".to_owned(),
            };
            return Err(Error::NoSuchChannel(format!("{what}; its channels are: {}", names.join(", "))));
        }
    };
    cfg.storage.dir = channel_dir(cfg, &chosen);
    cfg.cli_channel = chosen;
    Ok(())
}

/// The name the CLI connects with: the node's own, marked, so `pg_stat_activity` tells a
/// command from the gateway it runs beside.
fn cli_node(cfg: &Config) -> String {
    format!("{}-cli", cfg.storage.node_id())
}

/// For the CLI on PostgreSQL: the connected database (None on SQLite). A database that cannot
/// be reached is [`Error::NoStore`], naming it.
pub async fn cli_connect(cfg: &Config) -> Result<Option<Database>, Error> {
    connect(cfg, &cli_node(cfg)).await.map_err(|e| Error::NoStore(e.to_string()))
}

/// The spool's store in PostgreSQL as it is, for `queue` and `quota` (see the module doc).
pub async fn cli_spool_store(cfg: &Config, db: &Database) -> Result<Store, Error> {
    Store::attach_postgres_channel(db.clone(), &cli_node(cfg), &cfg.cli_channel).await.map_err(|e| Error::NoStore(e.to_string()))
}

/// The follower registry in PostgreSQL, for `followers`; refused, as the spool is, when no
/// gateway created the tables yet (the command creates nothing).
pub async fn cli_registry(db: &Database, channel: &str) -> Result<Registry, Error> {
    let version = db.schema_version().await.map_err(|e| Error::NoStore(e.to_string()))?;
    if version.is_none() {
        return Err(Error::NoStore(format!(
            "no mail2line tables in the database {} yet: they are created when `mail2line serve` first starts with this storage.url",
            db.target()
        )));
    }
    Registry::open_postgres_channel(db.clone(), channel).await.map_err(|e| Error::NoStore(e.to_string()))
}

/// A current-thread runtime for a CLI command: one for the whole command, since the database's
/// pooled connections live on the runtime that opened them.
pub fn cli_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::NoStore(format!("cannot start the command's async runtime: {e}")))
}
