//! `mail2line serve [--dry-run]`: wires the gateway's parts together from the configuration and
//! runs them until SIGTERM: the SMTP listeners, the HTTP server (webhook, monitoring, images),
//! the spool's workers and the LINE client, with SIGHUP reloading the TLS certificate.
//!
//! It owns the order of start-up (storage first, the "SMTP listening on" line last: scripts and
//! tests take it to mean "ready") and of shutdown, and the built-in defaults a first
//! `serve --dry-run` runs on when there is no configuration file at all ([`BUILT_IN_DEFAULTS`]).
//! Exit status: 0 stopped, 1 could not start (the reason is logged), 78 configuration errors.

use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use super::output::{EX_CONFIG, EX_FAILURE};
use super::Error;
use crate::config::{self, Config, Purpose};
use crate::spool::settings::DeliveryMode;
use crate::delivery::{Gateway, Mode};
use crate::followers::Registry;
use crate::http::Monitor;
use crate::line::{Credentials, LineClient};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use crate::smtp::checks::AuthChecks;
use crate::smtp::peers::{MailGate, PeerLimits, Peers};
use crate::smtp::tls::Tls;
use crate::smtp::{server, Directory, Rules};
use crate::spool::{Settings as SpoolSettings, Spool};

/// The target of this file's log lines: the one they had when they were logged from `main.rs`,
/// so filters and log searches written for it keep working.
const LOG_TARGET: &str = "mail2line";

/// What `serve --dry-run` runs on when there is no configuration file anywhere it looks (no
/// `--config`, no `$MAIL2LINE_CONFIG`, no `./config.toml`, no `/etc/mail2line/config.toml`): a
/// fresh clone answers `cargo run --release -- serve --dry-run` with a working gateway that logs
/// what it would push. Parsed like any file, so every other key has its usual default.
pub const BUILT_IN_DEFAULTS: &str = "[smtp]\nlisten = \"127.0.0.1:2525\"\ndomain = \"text.line.localhost\"\n\n[storage]\ndir = \"./data\"\n";

/// Runs the command; returns the exit status.
pub fn main(config_flag: Option<PathBuf>, dry_run: bool) -> u8 {
    let env = std::env::var("MAIL2LINE_CONFIG").ok();
    let built_in = dry_run && no_config_file(config_flag.as_deref(), env.as_deref());
    let loaded = if built_in {
        Config::parse(BUILT_IN_DEFAULTS, "built-in defaults", Purpose::DryRun, &|_| None)
    } else {
        let purpose = if dry_run { Purpose::DryRun } else { Purpose::Serve };
        config::load_for_command(config_flag.as_deref(), purpose).1
    };
    let cfg = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mail2line: configuration errors (nothing started):\n{e}");
            return EX_CONFIG;
        }
    };
    crate::logging::init(&cfg.log);
    if built_in {
        // The first line a newcomer reads: where the gateway listens, and why there.
        info!(
            target: LOG_TARGET,
            "no config file found: running on built-in defaults ({}, domain {}, {}) in dry-run",
            cfg.smtp.listen,
            cfg.smtp.domain,
            cfg.storage.dir.display()
        );
    }
    bound_allocator_growth();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mail2line: cannot start the async runtime: {e}");
            return EX_FAILURE;
        }
    };
    match runtime.block_on(serve(cfg, dry_run)) {
        Ok(()) => 0,
        Err(e) => {
            error!(target: LOG_TARGET, "{e}");
            e.exit_code()
        }
    }
}

/// True when no configuration file was named (`--config`, `$MAIL2LINE_CONFIG`) and none exists
/// where one is looked for. A file that exists but cannot be read is not "none": it is reported.
fn no_config_file(flag: Option<&Path>, env: Option<&str>) -> bool {
    if flag.is_some() || env.is_some_and(|e| !e.is_empty()) {
        return false;
    }
    let missing = |p: &str| matches!(std::fs::metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
    missing(config::DEFAULT_PATH) && missing(config::SYSTEM_PATH)
}

/// A part that could not start, with its own message.
fn start(e: impl Display) -> Error {
    Error::Start(e.to_string())
}

async fn serve(cfg: Config, dry_run: bool) -> Result<(), Error> {
    // Before anything is created: storage.dir and all in it are owner-only whatever the umask
    // the gateway was started with (only the systemd unit sets one).
    crate::storage::restrict_umask();
    crate::storage::secure_dir(&cfg.storage.dir).map_err(start)?;
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!(target: LOG_TARGET, "{e}");
        Notifier::default()
    });
    let template = cfg.message.compiled.clone();
    let mut runner = None;
    let metrics = Arc::new(Metrics::new());
    // The webhook replies through the same client; none in a dry run. With `[[channels]]`
    // each channel has its own ([`start_channel`]) and `[line]` only gave them defaults.
    let line = if dry_run || !cfg.channels.is_empty() {
        None
    } else {
        let credentials = Credentials::from_config(&cfg.line).map_err(start)?;
        info!(target: LOG_TARGET, "LINE API at {} with {}", cfg.line.api_base_url, credentials.describe());
        let token_store = Some(cfg.storage.dir.join(crate::line::token::TOKEN_FILE));
        Some(
            LineClient::new(&cfg.line.api_base_url, credentials, cfg.line_timeout(), token_store)
                .map_err(start)?
                .with_data_base_url(&cfg.line.api_data_base_url)
                .with_metrics(metrics.clone()),
        )
    };
    // PostgreSQL (`[storage] url`): one pool for the spool, the registry and the heartbeat. A
    // database that cannot be reached at start is a failed start (exit 1, the reason logged):
    // systemd's Restart= tries again, and a gateway that never had its store cannot promise a 250.
    let node = cfg.storage.node_id();
    let db = super::stores::connect(&cfg, &node).await?;
    if let Some(db) = &db {
        info!(target: LOG_TARGET, "store: PostgreSQL at {} as node {node}", db.target());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut spool = None;
    let mode = match line.clone() {
        None => Mode::DryRun,
        Some(client) => match cfg.delivery.mode {
            // Direct mode keeps no jobs: on PostgreSQL only the follower registry lives there.
            DeliveryMode::Direct => Mode::Direct(client),
            DeliveryMode::Spool => {
                let mut settings = SpoolSettings::from_config(&cfg.delivery, &cfg.quota);
                // Answers from LINE find their mail by what the spool keeps of it.
                settings.keep_threads = cfg.replies.enabled();
                let store = super::stores::open_spool_store(&cfg, db.as_ref(), &node).await?;
                let (s, r) = Spool::start_with_store(store, client, settings, Arc::new(crate::delivery::HeldPacker), metrics.clone());
                match &db {
                    None => info!(target: LOG_TARGET, "spool at {} with {} workers", cfg.storage.dir.display(), cfg.delivery.worker_count()),
                    Some(_) => info!(
                        target: LOG_TARGET,
                        "spool in PostgreSQL with {} workers; claims last {} s",
                        cfg.delivery.worker_count(),
                        cfg.storage.lease_secs
                    ),
                }
                runner = Some(r);
                spool = Some(s.clone());
                Mode::Spool(s)
            }
        },
    };
    let registry = super::stores::open_registry(&cfg, db.as_ref()).await?;
    if let (Some(db), None) = (&db, &spool) {
        // The live-node count, written by the spool's rate share (`spool::share`) when there is
        // a spool; in direct mode by this task, so the node is still listed as live.
        tokio::spawn(db.clone().run_heartbeats(node.clone(), stop_rx.clone()));
    }
    let mut media = crate::media::Media::from_config(&cfg.media, &cfg.storage.dir).map_err(start)?;
    // LINE fetches an image through the load balancer from any gateway: the bytes are kept in
    // the database, not in this node's storage.dir. (`take` only with a database: a tuple
    // pattern would take the media away on SQLite too.)
    if let Some(db) = &db {
        if let Some(m) = media.take() {
            let store = crate::media::MediaStore::open_postgres(db.clone()).await.map_err(|e| start(format!("cannot open the image store in PostgreSQL: {e}")))?;
            media = Some(m.with_store(store));
        }
    }
    let mut lanes = Vec::with_capacity(cfg.channels.len());
    for ch in &cfg.channels {
        lanes.push(start_channel(&cfg, ch, db.as_ref(), &node, dry_run, &template, &media).await?);
    }
    let gateway = Arc::new(Gateway::new(template, mode, Some(registry.clone()), metrics.clone()).with_media(media.clone()));
    if let Some(media) = &media {
        info!(target: LOG_TARGET, "images served at {}/media/… from {}", media.base_url, media.store.location());
        tokio::spawn(media.clone().sweep_periodically(stop_rx.clone()));
    }
    let outbox = match (&spool, &line) {
        (Some(spool), Some(line)) if cfg.replies.enabled() => Some(start_outbox(&cfg, spool, line, &registry, &metrics, stop_rx.clone())?),
        _ => {
            if cfg.replies.enabled() {
                info!(target: LOG_TARGET, "dry run: answers from LINE are not stored or mailed");
            }
            None
        }
    };
    let answers = outbox.as_ref().and(spool.as_ref()).map(|s| s.store().clone());
    let mut monitor = Monitor::new(metrics.clone(), spool, registry.clone(), line.clone());
    for lane in &lanes {
        monitor = monitor.with_channel(&lane.name, Monitor::new(lane.metrics.clone(), lane.spool.clone(), lane.registry.clone(), lane.line.clone()));
    }
    let monitor = Arc::new(monitor);
    let http = start_http(&cfg, registry.clone(), line, answers, &lanes, monitor, media.map(Arc::new), stop_rx.clone()).await?;
    let security = security(&cfg);
    let tls = security.tls.clone();
    let mut listeners = Vec::new();
    let listener = listen(cfg.smtp.listen).await.map_err(|source| Error::Listen { addr: cfg.smtp.listen, key: "smtp.listen", source })?;
    let addr = listener.local_addr().map_err(|source| Error::System { what: "the SMTP listener's address", source })?;
    listeners.push(server::Listener { socket: listener, implicit_tls: false });
    if let Some(tls_listen) = cfg.smtp.tls_listen {
        let listener = listen(tls_listen).await.map_err(|source| Error::Listen { addr: tls_listen, key: "smtp.tls_listen", source })?;
        let tls_addr = listener.local_addr().map_err(|source| Error::System { what: "the SMTP TLS listener's address", source })?;
        info!(target: LOG_TARGET, "SMTP implicit TLS listening on {tls_addr}");
        listeners.push(server::Listener { socket: listener, implicit_tls: true });
    }
    // Handlers before "ready": a SIGHUP or SIGTERM sent the moment after would otherwise meet
    // the default action, which kills the process.
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup()).map_err(|source| Error::System { what: "cannot handle SIGHUP", source })?;
    let term = signal(SignalKind::terminate()).map_err(|source| Error::System { what: "cannot handle SIGTERM", source })?;
    // Logged last: scripts and tests take this line to mean "ready".
    let domains = match cfg.channels.is_empty() {
        true => cfg.smtp.domain.clone(),
        false => {
            let mut d: Vec<&str> = cfg.channels.iter().map(|c| c.domain.as_str()).collect();
            d.dedup();
            format!("{{{}}} ({} LINE channels)", d.join(","), cfg.channels.len())
        }
    };
    info!(target: LOG_TARGET, "SMTP listening on {addr} for <LINE id>@{domains}{}", if dry_run { " (dry run: nothing is sent to LINE)" } else { "" });
    for warning in cfg.warnings() {
        warn!(target: LOG_TARGET, "{warning}");
    }
    let status = format!("SMTP listening on {addr}{}", if dry_run { " (dry run)" } else { "" });
    notifier.ready(&status);
    let rules = Arc::new(Rules {
        hostname: cfg.hostname().to_owned(),
        domain: cfg.smtp.domain.clone(),
        max_message_bytes: cfg.smtp.max_message_bytes,
        max_recipients: cfg.smtp.max_recipients,
        aliases: crate::smtp::alias_recipients(&cfg.aliases),
        followers_address: cfg.routing.followers_address.clone(),
        followers_access: cfg.routing.followers_access.clone(),
        alias_access: cfg.alias_access.clone(),
        require_follower: cfg.smtp.require_follower,
        directory: Some(registry.clone() as Arc<dyn Directory>),
        tls_available: tls.is_some(),
        require_tls: cfg.smtp.require_tls,
        auth: cfg.smtp.auth,
        allow_plaintext_auth_on_loopback: cfg.smtp.allow_plaintext_auth_on_loopback,
        allowed_senders: cfg.smtp.senders.clone(),
        max_errors: cfg.smtp.max_failed_commands,
        max_junk_commands: cfg.smtp.max_junk_commands,
        mail_gate: Some(security.peers.clone() as Arc<dyn MailGate>),
        space_gate: Some(Arc::new(crate::storage::DiskSpace::new(
            &cfg.storage.dir,
            cfg.storage.limits(),
        ))),
        channels: lanes.iter().map(|l| l.rule.clone()).collect(),
    });
    let incoming = cfg.storage.dir.join(crate::storage::INCOMING_DIR);
    let inflight = server::Inflight::new(cfg.smtp.max_inflight_bytes, &incoming)
        .map_err(|e| start(format!("cannot prepare {} for mail data (storage.dir): {e}", incoming.display())))?;
    let limits = server::Limits {
        max_sessions: cfg.smtp.max_sessions,
        idle_timeout: cfg.idle_timeout(),
        data_timeout: Duration::from_secs(cfg.smtp.data_timeout_secs),
        shutdown_grace: std::time::Duration::from_secs(cfg.smtp.shutdown_grace_secs),
        inflight: Arc::new(inflight),
    };
    tokio::spawn(reload_on_sighup(hup, tls, notifier.clone(), status));
    let grace = limits.shutdown_grace;
    tokio::spawn(async move {
        wait_for_signal(term).await;
        info!(target: LOG_TARGET, "shutting down: no new SMTP sessions");
        // SMTP sessions, then HTTP requests, then pushes in flight: each may take `grace`.
        notifier.stopping("shutting down: finishing SMTP sessions and pushes in flight", grace * 3 + Duration::from_secs(5));
        let _ = stop_tx.send(true);
    });
    let mut runners: Vec<crate::spool::Runner> = runner.into_iter().collect();
    if lanes.is_empty() {
        server::serve(listeners, rules, limits, security, gateway, metrics, stop_rx).await;
    } else {
        let by_channel = Arc::new(crate::delivery::Lanes::new(lanes.iter().map(|l| (l.name.clone(), l.gateway.clone())).collect()));
        runners.extend(lanes.into_iter().filter_map(|l| l.runner));
        server::serve(listeners, rules, limits, security, by_channel, metrics, stop_rx).await;
    }
    // The stop signal already reached the HTTP server; wait for its requests in progress.
    if tokio::time::timeout(grace, http).await.is_err() {
        info!(target: LOG_TARGET, "HTTP requests still running after {grace:?}; stopping anyway");
    }
    if !runners.is_empty() {
        info!(target: LOG_TARGET, "SMTP stopped; letting pushes in flight finish, the rest stays in the spool");
    }
    for runner in runners {
        runner.shutdown(grace).await;
    }
    if let Some(outbox) = outbox {
        // It saw the stop signal; an answer being mailed finishes (the relay's own timeout
        // bounds it), the rest stays in the outbox for the next start.
        if tokio::time::timeout(grace, outbox).await.is_err() {
            info!(target: LOG_TARGET, "an answer was still being mailed after {grace:?}; it is mailed again at the next start");
        }
    }
    info!(target: LOG_TARGET, "stopped");
    Ok(())
}

/// One LINE channel of `[[channels]]`, running: its client, spool, registry, gateway, webhook
/// and series, and what the SMTP session needs to know of it.
struct Lane {
    name: String,
    line: Option<LineClient>,
    spool: Option<Spool>,
    runner: Option<crate::spool::Runner>,
    registry: Arc<Registry>,
    gateway: Arc<Gateway>,
    webhook: Arc<crate::http::Webhook>,
    metrics: Arc<Metrics>,
    rule: crate::smtp::channels::Lane,
}

/// Where a channel keeps its SQLite files (spool, followers, token): `storage.dir/channels/<name>`.
pub fn channel_dir(cfg: &Config, name: &str) -> PathBuf {
    cfg.storage.dir.join("channels").join(name)
}

/// Starts one channel as a lane of its own: its LINE client (token renewal), spool (rate
/// limiter, quota, coalescing), follower registry and webhook, in `storage.dir/channels/<name>`
/// or in PostgreSQL under its name.
async fn start_channel(
    cfg: &Config,
    ch: &crate::config::Channel,
    db: Option<&crate::pg::Database>,
    node: &str,
    dry_run: bool,
    template: &crate::compose::template::Template,
    media: &Option<crate::media::Media>,
) -> Result<Lane, Error> {
    let name = ch.name.as_str();
    let dir = channel_dir(cfg, name);
    let dir_error = |reason: String| Error::StorageDir { reason, dir: dir.clone() };
    crate::storage::secure_dir(&dir).map_err(|e| dir_error(e.to_string()))?;
    let metrics = Arc::new(Metrics::for_channel(name));
    let line = if dry_run {
        None
    } else {
        let credentials = Credentials::from_config(&ch.line).map_err(|e| start(format!("channel {name}: {e}")))?;
        info!(target: LOG_TARGET, "channel {name}: LINE API at {} with {}", ch.line.api_base_url, credentials.describe());
        let token_store = Some(dir.join(crate::line::token::TOKEN_FILE));
        Some(
            LineClient::new(&ch.line.api_base_url, credentials, Duration::from_secs(ch.line.timeout_secs), token_store)
                .map_err(|e| start(format!("channel {name}: {e}")))?
                .with_data_base_url(&ch.line.api_data_base_url)
                .with_metrics(metrics.clone()),
        )
    };
    let (mut spool, mut runner) = (None, None);
    let mode = match line.clone() {
        None => Mode::DryRun,
        Some(client) => match cfg.delivery.mode {
            DeliveryMode::Direct => Mode::Direct(client),
            DeliveryMode::Spool => {
                let mut settings = SpoolSettings::from_config(&cfg.delivery, &ch.quota_settings);
                (settings.push_per_second, settings.multicast_per_second) = ch.rates;
                let store = match db {
                    None => crate::spool::store::Store::open(&dir).map_err(|e| dir_error(e.to_string()))?,
                    Some(db) => crate::spool::store::Store::open_postgres_with_lease_channel(db.clone(), node, name, cfg.storage.lease())
                        .await
                        .map_err(|e| start(format!("channel {name}: cannot open the spool in PostgreSQL ({}): {e}", db.target())))?,
                };
                let (s, r) = Spool::start_with_store(store, client, settings, Arc::new(crate::delivery::HeldPacker), metrics.clone());
                info!(target: LOG_TARGET, "channel {name}: spool with {} workers, {} pushes/s", cfg.delivery.worker_count(), ch.rates.0);
                spool = Some(s.clone());
                runner = Some(r);
                Mode::Spool(s)
            }
        },
    };
    let registry = Arc::new(match db {
        None => Registry::open(&dir).map_err(|e| dir_error(e.to_string()))?,
        Some(db) => Registry::open_postgres_channel(db.clone(), name)
            .await
            .map_err(|e| start(format!("channel {name}: cannot open the follower registry in PostgreSQL ({}): {e}", db.target())))?,
    });
    let gateway = Arc::new(Gateway::new(template.clone(), mode, Some(registry.clone()), metrics.clone()).with_media(media.clone()));
    let webhook = Arc::new(crate::http::Webhook::new(&cfg.webhook, &ch.domain, ch.line.channel_secret.clone(), registry.clone(), line.clone()));
    let rule = crate::smtp::channels::Lane {
        name: name.to_owned(),
        domain: ch.domain.clone(),
        users: ch.users.clone(),
        aliases: crate::smtp::alias_recipients(&ch.aliases),
        alias_access: ch.alias_access.clone(),
        directory: Some(registry.clone() as Arc<dyn Directory>),
    };
    info!(target: LOG_TARGET, "channel {name}: <LINE id>@{}{}, webhook POST /webhook/{name}", ch.domain, match ch.users.is_empty() {
        true => String::new(),
        false => format!(" for logins {}", ch.users.join(", ")),
    });
    Ok(Lane { name: name.to_owned(), line, spool, runner, registry, gateway, webhook, metrics, rule })
}

/// TLS, the client allowlist, AUTH users and per-address limits from `[smtp]`.
fn security(cfg: &Config) -> server::Security {
    let smtp = &cfg.smtp;
    server::Security {
        tls: smtp.tls.clone(),
        clients: smtp.clients.clone(),
        auth: smtp.auth,
        users: smtp.logins.clone(),
        peers: Peers::new(PeerLimits {
            sessions: smtp.max_sessions_per_ip,
            mails_per_minute: smtp.max_mails_per_minute_per_ip,
            auth_failure_delay: Duration::from_millis(smtp.auth_failure_delay_ms),
        }),
        checks: AuthChecks::new(smtp.max_auth_checks, smtp.max_auth_queue),
    }
}

/// SIGHUP re-reads the TLS certificate and key (after a renewal); a bad file keeps the old one.
/// Installed even without TLS: SIGHUP's default action would kill the gateway. systemd hears
/// RELOADING=1 before and READY=1 after, with the outcome in STATUS=.
async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, tls: Option<Arc<Tls>>, notifier: Notifier, status: String) {
    while hup.recv().await.is_some() {
        notifier.reloading();
        let outcome = match tls.as_ref().map(|t| t.reload()) {
            Some(Ok(())) => {
                info!(target: LOG_TARGET, "SIGHUP: TLS certificate reloaded");
                "TLS certificate reloaded".to_owned()
            }
            Some(Err(e)) => {
                error!(target: LOG_TARGET, "SIGHUP: {e}; still serving the previous certificate");
                "TLS certificate reload failed, previous one in use (see the log)".to_owned()
            }
            None => {
                info!(target: LOG_TARGET, "SIGHUP: no TLS certificate configured; nothing to reload");
                "nothing to reload".to_owned()
            }
        };
        notifier.ready(&format!("{status}; last reload: {outcome}"));
    }
}

/// Starts the worker that mails followers' answers (`[replies]`): the relay client from the
/// settings, the answers kept in the spool's store.
fn start_outbox(
    cfg: &Config,
    spool: &Spool,
    line: &LineClient,
    registry: &Arc<Registry>,
    metrics: &Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let r = &cfg.replies;
    let url = r.relay_url.as_ref().ok_or_else(|| start("replies.relay was not checked (a bug: please report it)"))?;
    let password = (!r.password.is_empty()).then(|| r.password.clone());
    let relay = crate::replies::Relay::new(url, &r.username, password, &cfg.smtp.domain).map_err(start)?;
    info!(
        target: LOG_TARGET,
        "answers from LINE are mailed through {url} from {}{}",
        r.from,
        if r.to.is_empty() { String::new() } else { format!("; answers to no mail go to {}", r.to) }
    );
    let outbox = crate::replies::outbox::Outbox {
        store: spool.store().clone(),
        line: line.clone(),
        relay,
        registry: registry.clone(),
        metrics: metrics.clone(),
        settings: r.clone(),
        dead_retention: cfg.delivery.dead_retention_parsed,
        keep_events: Duration::from_millis(crate::http::webhook::EVENT_ID_RETENTION_MS as u64),
    };
    Ok(outbox.spawn(stop))
}

/// Binds `[http] listen` and serves the webhook and monitoring until `stop`; logs
/// `HTTP listening on ADDR`.
async fn start_http(
    cfg: &Config,
    registry: Arc<Registry>,
    line: Option<LineClient>,
    answers: Option<crate::spool::store::Store>,
    lanes: &[Lane],
    monitor: Arc<Monitor>,
    media: Option<Arc<crate::media::Media>>,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let listener = listen(cfg.http.listen).await.map_err(|source| Error::Listen { addr: cfg.http.listen, key: "http.listen", source })?;
    let addr = listener.local_addr().map_err(|source| Error::System { what: "the HTTP listener's address", source })?;
    let mut hook = crate::http::Webhook::new(&cfg.webhook, &cfg.smtp.domain, cfg.line.channel_secret.clone(), registry, line);
    if let Some(store) = answers {
        hook = hook.with_answers(store);
    }
    let hook = Arc::new(hook);
    // With `[[channels]]`: one webhook per channel, each with its secret, registry and client.
    let hooks = match lanes.is_empty() {
        true => vec![(cfg.webhook.path.clone(), hook)],
        false => lanes.iter().map(|l| (format!("/webhook/{}", l.name), l.webhook.clone())).collect(),
    };
    let paths: Vec<String> = hooks.iter().map(|(p, _)| p.clone()).collect();
    let app = crate::http::router_for_channels(hooks, monitor, media, cfg.http.max_concurrent_requests);
    let limits = cfg.http.limits();
    info!(target: LOG_TARGET, "LINE webhook at POST {}; monitoring at GET /metrics, /healthz, /readyz", paths.join(", POST "));
    info!(target: LOG_TARGET, "HTTP listening on {addr}");
    Ok(tokio::spawn(async move {
        if let Err(e) = crate::http::serve(listener, app, limits, stop).await {
            error!(target: LOG_TARGET, "HTTP server stopped: {e}");
        }
    }))
}

/// SIGTERM (systemd's stop) or Ctrl-C.
async fn wait_for_signal(mut term: tokio::signal::unix::Signal) {
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// Binds a listening socket with a backlog of [`LISTEN_BACKLOG`] (the kernel caps it at
/// `net.core.somaxconn`). The default of the standard library and mio is 128: a burst of more
/// connections than that overflows the accept queue, and Linux then drops the handshake's last
/// ACK, so the client believes it is connected and waits for a greeting that never comes.
async fn listen(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As `std::net::TcpListener::bind` does: a restart may bind while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Connections the kernel may hold for us between `accept` calls: a burst of new sessions as
/// large as `smtp.max_sessions`' default waits there instead of being half-dropped.
const LISTEN_BACKLOG: u32 = 4096;

/// glibc's allocator raises its mmap threshold each time a large block is freed (up to 32 MiB),
/// so after the first big mail every buffer below that size comes from the heap, and a heap
/// fragmented by a thousand sessions is never given back: the big-mail attack of
/// `tests/hostile.rs` left the gateway 100 MiB above its budget that way. A fixed threshold
/// keeps mail-sized buffers in their own mappings, returned to the system when freed.
fn bound_allocator_growth() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before any other thread runs.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_defaults_are_a_valid_dry_run_configuration() {
        let cfg = Config::parse(BUILT_IN_DEFAULTS, "built-in defaults", Purpose::DryRun, &|_| None).unwrap();
        assert_eq!(cfg.smtp.listen.to_string(), "127.0.0.1:2525");
        assert_eq!(cfg.smtp.domain, "text.line.localhost");
        assert_eq!(cfg.storage.dir, PathBuf::from("./data"));
        // Not enough to serve for real: that needs a channel access token, from a file.
        assert!(Config::parse(BUILT_IN_DEFAULTS, "built-in defaults", Purpose::Serve, &|_| None).is_err());
    }

    #[test]
    fn a_named_configuration_is_never_replaced_by_the_defaults() {
        assert!(!no_config_file(Some(Path::new("/nonexistent/config.toml")), None));
        assert!(!no_config_file(None, Some("/nonexistent/config.toml")));
    }
}
