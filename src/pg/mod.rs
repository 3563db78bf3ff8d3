//! PostgreSQL as the shared store of several gateways (issue #21): the connection pool, the
//! promise that a commit is durable, versioned migrations ([`migrate`]) and the liveness rows
//! every node writes ([`nodes`]).
//!
//! `[storage] url` makes it the store of the spool, the follower registry, quota counts and
//! answers (`commands/stores.rs` opens them); media bytes still live in `storage.dir`.
//!
//! **Durability.** A 250 will mean "committed in PostgreSQL", so [`Database::connect`] reads
//! `synchronous_commit` and `fsync` as the server applies them to this user and database, and
//! refuses a server where a commit can return before its WAL is flushed: `fsync = off`, or
//! `synchronous_commit = off`. Every other `synchronous_commit` value (`local`, `remote_write`,
//! `on`, `remote_apply`) flushes the local WAL before the commit returns; `on` and the
//! `remote_*` values additionally wait for synchronous standbys where they are configured.
//! The check runs once, at connect: a setting changed for the database while the gateway runs
//! is seen at its next start.
//!
//! **TLS.** With `sslmode=require` in the URL (or `sslmode=verify-full`, accepted as the same),
//! the connection uses rustls and verifies the server's certificate and name against the
//! Mozilla roots (webpki-roots): what libpq calls `verify-full`. A server certificate from a
//! private CA cannot be verified yet (`sslrootcert` is not read). Without `sslmode=require` the
//! connection is plain TCP (fine on localhost or a private network); libpq's default `prefer`,
//! which falls back to plain text without telling, is not imitated.

mod error;
pub mod migrate;
pub mod nodes;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;

use crate::secret::Secret;

pub use error::PgError;
use error::{percent_decoded, url_password, Redactor};

/// Connections one gateway keeps at most. SMTP sessions, workers and the webhook share them;
/// PostgreSQL's default `max_connections` (100) then leaves room for several nodes.
pub const POOL_SIZE: usize = 16;

/// Connections kept apart for the heartbeat and the rate share (`nodes.rs`): with the main pool
/// busy with mail, a heartbeat waiting for a connection would come late, the other gateways
/// would stop counting this one, and it would have to drop to 1 request/s (`spool/share.rs`).
/// Two, so that one slow round does not hold up another channel's.
pub const CONTROL_POOL_SIZE: usize = 2;

/// How long a new connection may take (TCP, TLS and login), unless the URL sets
/// `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a free connection of the pool before giving up: past it the
/// database is as good as unreachable (the SMTP side answers 451).
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A pool of connections to one PostgreSQL database; cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: Pool,
    /// The heartbeat's own connections ([`Database::control_client`]).
    control: Pool,
    /// `host:port/db` as `user`, for messages; never the password.
    target: Arc<str>,
    /// The `application_name`, which also names this gateway's health row.
    app_name: Arc<str>,
    redactor: Arc<Redactor>,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("target", &self.target).field("app_name", &self.app_name).finish()
    }
}

/// A pooled connection, returned to the pool when dropped.
pub type Client = deadpool_postgres::Object;

impl Database {
    /// Connects to `url` (`postgres://user@host:port/db`, or libpq's `key=value` form), with
    /// `password` when the URL has none, and checks that a commit is durable (see the module
    /// doc). `app_name` is sent as `application_name` (it shows in `pg_stat_activity`) and
    /// names this gateway's row of [`Database::probe`].
    pub async fn connect(url: &str, password: Option<Secret>, app_name: &str) -> Result<Database, PgError> {
        let mut redactor = Redactor::default();
        if let Some(raw) = url_password(url) {
            redactor.add(raw);
            redactor.add(&percent_decoded(raw));
        }
        if let Some(p) = &password {
            redactor.add(p.expose());
        }
        // tokio-postgres knows disable/prefer/require; libpq's verify-full is what our
        // `require` does anyway (see the module doc), so it is accepted as its synonym.
        let url = url.replace("sslmode=verify-full", "sslmode=require");
        let mut config = tokio_postgres::Config::from_str(&url).map_err(|e| PgError::Url { reason: redactor.text(e) })?;
        if let Some(p) = config.get_password() {
            redactor.add(&String::from_utf8_lossy(p));
        }
        match (config.get_password().is_some(), &password) {
            (true, Some(_)) => return Err(PgError::PasswordTwice),
            (false, Some(p)) => {
                config.password(p.expose());
            }
            _ => {}
        }
        if config.get_hosts().is_empty() {
            return Err(PgError::Url { reason: "it names no host".into() });
        }
        let Some(user) = config.get_user().map(str::to_owned) else {
            return Err(PgError::Url { reason: "it names no user".into() });
        };
        config.application_name(app_name);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let target: Arc<str> = describe(&config, &user).into();
        if config.get_ssl_mode() != SslMode::Require {
            config.ssl_mode(SslMode::Disable);
        }
        let pool_of = |size: usize| -> Result<Pool, PgError> {
            let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
            let manager = match config.get_ssl_mode() {
                SslMode::Require => Manager::from_config(config.clone(), tls()?, manager_config),
                _ => Manager::from_config(config.clone(), tokio_postgres::NoTls, manager_config),
            };
            Pool::builder(manager)
                .max_size(size)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(WAIT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT + Duration::from_secs(1)))
                .recycle_timeout(Some(Duration::from_secs(5)))
                .build()
                .map_err(|e| PgError::Url { reason: redactor.text(e) })
        };
        let (pool, control) = (pool_of(POOL_SIZE)?, pool_of(CONTROL_POOL_SIZE)?);
        let db = Database { pool, control, target, app_name: app_name.into(), redactor: Arc::new(redactor) };
        // The first connection: proves the URL, the login and the database, then the promise.
        let client = db.client().await.map_err(|e| match e {
            // The pool's Unreachable and Refused already say it; a login refused gets its user.
            PgError::Login { target, reason, .. } => PgError::Login { target, user: user.clone(), reason },
            other => other,
        })?;
        db.check_durable(&client).await?;
        Ok(db)
    }

    /// A connection from the pool: waits at most [`WAIT_TIMEOUT`] for one to be free, and
    /// opens a new one (at most [`CONNECT_TIMEOUT`]) when the pool is not full.
    pub async fn client(&self) -> Result<Client, PgError> {
        use deadpool_postgres::PoolError;
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.driver_error(&e, None),
            PoolError::Timeout(kind) => PgError::Unreachable {
                target: self.target.to_string(),
                reason: format!("no connection within the time allowed ({kind:?}: all {POOL_SIZE} in use, or the server does not answer)"),
            },
            other => PgError::Unreachable { target: self.target.to_string(), reason: self.redactor.text(other) },
        })
    }

    /// A connection for the heartbeat and the rate share, from a small pool of its own
    /// ([`CONTROL_POOL_SIZE`]): never queued behind the mail's statements.
    pub async fn control_client(&self) -> Result<Client, PgError> {
        use deadpool_postgres::PoolError;
        self.control.get().await.map_err(|e| match e {
            PoolError::Backend(e) => self.driver_error(&e, None),
            other => PgError::Unreachable { target: self.target.to_string(), reason: self.redactor.text(other) },
        })
    }

    /// `host:port/db as user`, for messages and `/readyz`.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// This gateway's `application_name`.
    pub fn app_name(&self) -> &str {
        &self.app_name
    }

    /// The error of one statement, redacted; `what` says what was being done.
    pub fn query_error(&self, what: &str, e: &tokio_postgres::Error) -> PgError {
        self.driver_error(e, Some(what))
    }

    /// Sorts a driver error: a refused login, a server that is not there, a server that refused
    /// the session, or (with `what`) a statement that failed.
    fn driver_error(&self, e: &tokio_postgres::Error, what: Option<&str>) -> PgError {
        let target = self.target.to_string();
        let reason = self.redactor.text(driver_text(e));
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                let user = self.target.rsplit(" as ").next().unwrap_or_default().to_owned();
                return PgError::Login { target, user, reason };
            }
            return match what {
                Some(what) => PgError::Query { what: what.to_owned(), reason },
                None => PgError::Refused { target, reason },
            };
        }
        if reason.contains("TLS handshake") {
            return PgError::TlsFailed { target, reason };
        }
        match what {
            // A statement whose connection broke: the server went away under it.
            Some(what) if !e.is_closed() => PgError::Query { what: what.to_owned(), reason },
            _ => PgError::Unreachable { target, reason },
        }
    }

    /// Refuses a server where a commit may return before it is durable (see the module doc).
    async fn check_durable(&self, client: &Client) -> Result<(), PgError> {
        let show = |setting: &'static str| async move {
            let row = client.query_one(&format!("SHOW {setting}"), &[]).await.map_err(|e| self.query_error(&format!("reading {setting}"), &e))?;
            Ok::<String, PgError>(row.get(0))
        };
        let target = self.target.to_string();
        let value = show("fsync").await?;
        if value != "on" {
            return Err(PgError::NotDurable { target, setting: "fsync", value, hint: "" });
        }
        let value = show("synchronous_commit").await?;
        if !DURABLE_COMMIT.contains(&value.as_str()) {
            return Err(PgError::NotDurable {
                target,
                setting: "synchronous_commit",
                value,
                hint: "; any value but off (local, remote_write, on, remote_apply) is durable",
            });
        }
        Ok(())
    }
}

/// Whether `url` carries a password (`postgres://user:password@…`), which then must not be
/// given another way as well.
pub fn url_has_password(url: &str) -> bool {
    url_password(url).is_some_and(|p| !p.is_empty())
}

/// Reads `url` as [`Database::connect`] will, without connecting: `host:port/db as user`, for
/// messages and `check-config` (never the password), or why the URL cannot be used.
pub fn describe_url(url: &str) -> Result<String, PgError> {
    let mut redactor = Redactor::default();
    if let Some(raw) = url_password(url) {
        redactor.add(raw);
        redactor.add(&percent_decoded(raw));
    }
    let url = url.replace("sslmode=verify-full", "sslmode=require");
    let config = tokio_postgres::Config::from_str(&url).map_err(|e| PgError::Url { reason: redactor.text(e) })?;
    if config.get_hosts().is_empty() {
        return Err(PgError::Url { reason: "it names no host".into() });
    }
    let Some(user) = config.get_user() else {
        return Err(PgError::Url { reason: "it names no user".into() });
    };
    Ok(describe(&config, user))
}

/// The `synchronous_commit` values under which a commit returns only after its WAL is flushed
/// to the local disk (and, for `on` and `remote_*`, to synchronous standbys where configured).
pub const DURABLE_COMMIT: [&str; 4] = ["local", "remote_write", "on", "remote_apply"];

/// `host:port/db as user` (the first host, the one tried first).
fn describe(config: &tokio_postgres::Config, user: &str) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or(user);
    format!("{host}:{port}/{db} as {user}")
}

/// The driver's text with its cause: tokio-postgres says "error connecting to server" and keeps
/// the useful part ("Connection refused", the server's message) in the source.
fn driver_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

/// The rustls connector for `sslmode=require`: ring (the provider the rest of the gateway
/// uses) and the Mozilla roots; rustls verifies the certificate chain and the host name.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, PgError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| PgError::Tls { reason: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(url: &str, password: Option<&str>) -> PgError {
        Database::connect(url, password.map(Secret::new), "test").await.unwrap_err()
    }

    #[tokio::test]
    async fn a_bad_url_is_refused_without_its_password() {
        for url in [
            "postgres://u:s3cr%65t-pw@h:notaport/db",
            "postgres://u:s3cret-pw@h/db?sslmode=sometimes",
            "postgres://u:s3cret-pw@h/db?nonsense=1",
            "mysql://u:s3cret-pw@h/db",
        ] {
            let e = refused(url, None).await;
            let text = format!("{e} {e:?}");
            assert!(matches!(e, PgError::Url { .. }), "{url}: {text}");
            assert!(!text.contains("s3cret") && !text.contains("s3cr%65t"), "{url}: {text}");
            assert!(text.contains("postgres://user@host:5432/dbname"), "says how to write it: {text}");
        }
    }

    #[tokio::test]
    async fn a_password_given_twice_is_refused() {
        let e = refused("postgres://u:one@127.0.0.1/db", Some("two")).await;
        assert_eq!(e, PgError::PasswordTwice);
    }

    #[tokio::test]
    async fn no_user_or_no_host_is_named() {
        let e = refused("postgres:///db", None).await;
        assert!(e.to_string().contains("no host") || e.to_string().contains("no user"), "{e}");
    }

    #[test]
    fn the_target_names_host_port_db_and_user_but_no_password() {
        let c = tokio_postgres::Config::from_str("postgres://gw:pw@db.example:6543/mail").unwrap();
        assert_eq!(describe(&c, "gw"), "db.example:6543/mail as gw");
        let c = tokio_postgres::Config::from_str("postgres://gw@db.example").unwrap();
        assert_eq!(describe(&c, "gw"), "db.example:5432/gw as gw");
    }

    #[test]
    fn a_url_is_described_without_its_password() {
        assert_eq!(describe_url("postgres://gw:s3cret@db.example:6543/mail?sslmode=require").unwrap(), "db.example:6543/mail as gw");
        assert!(url_has_password("postgres://gw:s3cret@db/mail") && !url_has_password("postgres://gw@db/mail"));
        let e = describe_url("postgres://gw:s3cret@db:notaport/mail").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(describe_url("postgres://db/mail").is_err_and(|e| e.to_string().contains("no user")));
    }

    #[test]
    fn the_tls_connector_builds() {
        tls().unwrap();
    }
}
