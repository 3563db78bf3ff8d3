//! `mail2line serve [--dry-run]`: wires the gateway's parts together from the configuration and
//! runs them until SIGTERM: the SMTP listeners, the HTTP server (webhook, monitoring, images),
//! the spool's workers and the LINE client, with SIGHUP reloading the TLS certificate.
//!
//! Each LINE channel, the unnamed `[line]` one or each of `[[channels]]`, is started alike as a
//! lane of its own (`Starting::lane`: client, spool, registry, webhook, answers' outbox); only
//! what tells them apart is chosen per channel (`Plan`).
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
use crate::line::LineClient;
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
    let metrics = Arc::new(Metrics::new());
    // PostgreSQL (`[storage] url`): one pool for the spools, the registries and the heartbeat. A
    // database that cannot be reached at start is a failed start (exit 1, the reason logged):
    // systemd's Restart= tries again, and a gateway that never had its store cannot promise a 250.
    let node = cfg.storage.node_id();
    let db = super::stores::connect(&cfg, &node).await?;
    if let Some(db) = &db {
        info!(target: LOG_TARGET, "store: PostgreSQL at {} as node {node}", db.target());
    }
    let (stop_tx, stop_rx) = watch::channel(false);
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
    let relay = replies_relay(&cfg, dry_run)?;
    let starting = Starting { cfg: &cfg, db: db.as_ref(), node: &node, dry_run, template: &template, media: &media, relay: relay.as_ref(), stop: &stop_rx };
    // Without `[[channels]]`, `[line]` is the one unnamed channel, with the gateway's own series;
    // with them, each is a lane of its own and `[line]` only gave them defaults.
    let mut lanes = Vec::with_capacity(cfg.channels.len().max(1));
    let mut rules = Vec::with_capacity(cfg.channels.len());
    if cfg.channels.is_empty() {
        lanes.push(starting.lane(Plan::unnamed(&cfg, metrics.clone())).await?);
    }
    for ch in &cfg.channels {
        let lane = starting.lane(Plan::named(&cfg, ch)).await?;
        rules.push(channel_rule(ch, &lane.registry));
        let logins = match ch.users.is_empty() {
            true => String::new(),
            false => format!(" for logins {}", ch.users.join(", ")),
        };
        let answers = if lane.outbox.is_some() { "; answers mailed back" } else { "" };
        info!(target: LOG_TARGET, "channel {}: <LINE id>@{}, webhook POST {}{logins}{answers}", ch.name, ch.domain, lane.webhook_path);
        lanes.push(lane);
    }
    if let Some(db) = &db {
        // The live-node count, written by each spool's rate share (`spool::share`) when there
        // is a spool; without one (direct mode, a dry run) by this task, so the node is still
        // listed as live. After the lanes: they migrated the schema.
        if lanes.iter().all(|l| l.spool.is_none()) {
            tokio::spawn(db.clone().run_heartbeats(node.clone(), stop_rx.clone()));
        }
    }
    if let Some(media) = &media {
        info!(target: LOG_TARGET, "images served at {}/media/… from {}", media.base_url, media.store.location());
        tokio::spawn(media.clone().sweep_periodically(stop_rx.clone()));
    }
    // The unnamed channel's monitor is the gateway's; channels get one each under the gateway's.
    let monitor = match (cfg.channels.is_empty(), lanes.first()) {
        (true, Some(l)) => Monitor::new(metrics.clone(), l.spool.clone(), l.registry.clone(), l.line.clone()),
        _ => lanes.iter().fold(Monitor::of_channels(metrics.clone()), |m, l| {
            m.with_channel(&l.name, Monitor::new(l.metrics.clone(), l.spool.clone(), l.registry.clone(), l.line.clone()))
        }),
    };
    let hooks = lanes.iter().map(|l| (l.webhook_path.clone(), l.webhook.clone())).collect();
    let http = start_http(&cfg, hooks, Arc::new(monitor), media.map(Arc::new), stop_rx.clone()).await?;
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
    // The unnamed channel's followers answer for `<id>@smtp.domain`; with channels, each
    // channel's rule has its own.
    let directory = match cfg.channels.is_empty() {
        true => lanes.first().map(|l| l.registry.clone() as Arc<dyn Directory>),
        false => None,
    };
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
        directory,
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
        channels: rules,
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
    let (mut gateways, mut runners, mut outboxes) = (Vec::new(), Vec::new(), Vec::new());
    for lane in lanes {
        gateways.push((lane.name, lane.gateway));
        runners.extend(lane.runner);
        outboxes.extend(lane.outbox);
    }
    match (cfg.channels.is_empty(), gateways.pop()) {
        // The unnamed channel takes every recipient of smtp.domain.
        (true, Some((_, gateway))) => server::serve(listeners, rules, limits, security, gateway, metrics, stop_rx).await,
        // Each recipient goes to its channel's gateway.
        (_, last) => {
            gateways.extend(last);
            server::serve(listeners, rules, limits, security, Arc::new(crate::delivery::Lanes::new(gateways)), metrics, stop_rx).await
        }
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
    // Each outbox saw the stop signal; an answer being mailed finishes (the relay's own timeout
    // bounds it), the rest stays in its outbox for the next start. One grace for them all.
    let deadline = tokio::time::Instant::now() + grace;
    for outbox in outboxes {
        if tokio::time::timeout_at(deadline, outbox).await.is_err() {
            info!(target: LOG_TARGET, "an answer was still being mailed after {grace:?}; it is mailed again at the next start");
        }
    }
    info!(target: LOG_TARGET, "stopped");
    Ok(())
}

/// One LINE channel as `serve` starts it: the unnamed `[line]` channel, or one of `[[channels]]`.
/// Everything that differs between the two is here; [`Starting::lane`] starts either alike.
struct Plan<'a> {
    /// `""` for the unnamed channel; its rows in PostgreSQL carry this name.
    name: &'a str,
    line: &'a crate::line::Settings,
    /// Its SQLite files and token: `storage.dir`, or `stores::channel_dir`.
    dir: PathBuf,
    quota: &'a crate::spool::settings::Quota,
    /// Pushes and multicasts per second (LINE's limits are per channel).
    rates: (u32, u32),
    /// `<id>@<domain>` reaches its followers: the addresses its webhook tells them.
    domain: &'a str,
    /// Where LINE posts its events: `[webhook] path`, or `/webhook/<name>`.
    webhook_path: String,
    /// Its series: the gateway's own for the unnamed channel, else labelled `channel="<name>"`.
    metrics: Arc<Metrics>,
}

impl<'a> Plan<'a> {
    fn unnamed(cfg: &'a Config, metrics: Arc<Metrics>) -> Plan<'a> {
        Plan {
            name: "",
            line: &cfg.line,
            dir: cfg.storage.dir.clone(),
            quota: &cfg.quota,
            rates: (cfg.delivery.max_requests_per_second, cfg.delivery.max_multicast_per_second),
            domain: &cfg.smtp.domain,
            webhook_path: cfg.webhook.path.clone(),
            metrics,
        }
    }

    fn named(cfg: &'a Config, ch: &'a crate::config::Channel) -> Plan<'a> {
        Plan {
            name: &ch.name,
            line: &ch.line,
            dir: super::stores::channel_dir(cfg, &ch.name),
            quota: &ch.quota_settings,
            rates: ch.rates,
            domain: &ch.domain,
            webhook_path: format!("/webhook/{}", ch.name),
            metrics: Arc::new(Metrics::for_channel(&ch.name)),
        }
    }

    /// What its log lines and start errors begin with: nothing, or `channel <name>: `.
    fn who(&self) -> String {
        super::stores::whose(self.name)
    }
}

/// One LINE channel, running: its client, spool, registry, gateway, webhook, outbox and series.
struct Lane {
    name: String,
    line: Option<LineClient>,
    spool: Option<Spool>,
    runner: Option<crate::spool::Runner>,
    registry: Arc<Registry>,
    gateway: Arc<Gateway>,
    webhook_path: String,
    webhook: Arc<crate::http::Webhook>,
    metrics: Arc<Metrics>,
    /// The worker mailing its followers' answers (`[replies]`); `None` when off or in a dry run.
    outbox: Option<tokio::task::JoinHandle<()>>,
}

/// What every channel is started with: the gateway-wide parts its lane shares.
struct Starting<'a> {
    cfg: &'a Config,
    db: Option<&'a crate::pg::Database>,
    node: &'a str,
    dry_run: bool,
    template: &'a crate::compose::template::Template,
    media: &'a Option<crate::media::Media>,
    /// `[replies]`' relay; `None` when answers are not mailed (off, or a dry run).
    relay: Option<&'a crate::replies::Relay>,
    stop: &'a watch::Receiver<bool>,
}

impl Starting<'_> {
    /// Starts one channel as a lane of its own: its LINE client (token renewal), spool (rate
    /// limiter, quota, coalescing), follower registry, webhook and, with `[replies]`, the outbox
    /// that mails its followers' answers (their photos fetched with its token), all in its
    /// directory or in its rows in PostgreSQL.
    async fn lane(&self, plan: Plan<'_>) -> Result<Lane, Error> {
        let cfg = self.cfg;
        if !plan.name.is_empty() {
            // storage.dir itself was secured first thing.
            crate::storage::secure_dir(&plan.dir).map_err(|e| Error::StorageDir { reason: e.to_string(), dir: plan.dir.clone() })?;
        }
        let line = match self.dry_run {
            true => None,
            false => Some(line_client(&plan)?),
        };
        let (mode, spool, runner) = self.delivery(&plan, line.clone()).await?;
        let registry = super::stores::open_registry(self.db, plan.name, &plan.dir).await?;
        let gateway = Arc::new(Gateway::new(self.template.clone(), mode, Some(registry.clone()), plan.metrics.clone()).with_media(self.media.clone()));
        let mut webhook = crate::http::Webhook::new(&cfg.webhook, plan.domain, plan.line.channel_secret.clone(), registry.clone(), line.clone());
        let outbox = match (self.relay, &spool, &line) {
            (Some(relay), Some(spool), Some(line)) => {
                // Its followers' answers go into its own store, mailed by its own worker.
                webhook = webhook.with_answers(spool.store().clone());
                Some(start_outbox(cfg, relay, spool, line, &registry, &plan.metrics, self.stop.clone()))
            }
            _ => None,
        };
        let name = plan.name.to_owned();
        Ok(Lane { name, line, spool, runner, registry, gateway, webhook_path: plan.webhook_path, webhook: Arc::new(webhook), metrics: plan.metrics, outbox })
    }

    /// How the channel's mail reaches LINE: logged only in a dry run, pushed at once in direct
    /// mode, else through its own spool, whose runner is returned for the shutdown. The one
    /// place a spool is started, for the unnamed channel and each of `[[channels]]`.
    async fn delivery(&self, plan: &Plan<'_>, line: Option<LineClient>) -> Result<(Mode, Option<Spool>, Option<crate::spool::Runner>), Error> {
        let cfg = self.cfg;
        let Some(client) = line else { return Ok((Mode::DryRun, None, None)) };
        if cfg.delivery.mode == DeliveryMode::Direct {
            // Direct mode keeps no jobs: on PostgreSQL only the follower registry lives there.
            return Ok((Mode::Direct(client), None, None));
        }
        let mut settings = SpoolSettings::from_config(&cfg.delivery, plan.quota);
        (settings.push_per_second, settings.multicast_per_second) = plan.rates;
        // Answers from LINE find their mail by what the spool keeps of it.
        settings.keep_threads = cfg.replies.enabled();
        let store = super::stores::open_spool_store(cfg, self.db, self.node, plan.name, &plan.dir).await?;
        let (spool, runner) = Spool::start_with_store(store, client, settings, Arc::new(crate::delivery::HeldPacker), plan.metrics.clone());
        let (who, workers, rate) = (plan.who(), cfg.delivery.worker_count(), plan.rates.0);
        match self.db {
            None => info!(target: LOG_TARGET, "{who}spool at {} with {workers} workers, {rate} pushes/s", plan.dir.display()),
            Some(_) => info!(target: LOG_TARGET, "{who}spool in PostgreSQL with {workers} workers, {rate} pushes/s; claims last {} s", cfg.storage.lease_secs),
        }
        Ok((Mode::Spool(spool.clone()), Some(spool), Some(runner)))
    }
}

/// The channel's LINE client, its token kept (and renewed) in its directory; it pushes, replies
/// on the webhook, and fetches answers' photos, all with the channel's own token.
fn line_client(plan: &Plan<'_>) -> Result<LineClient, Error> {
    let who = plan.who();
    let credentials = plan.line.credentials().map_err(|e| start(format!("{who}{e}")))?;
    info!(target: LOG_TARGET, "{who}LINE API at {} with {}", plan.line.api_base_url, credentials.describe());
    let token_store = Some(plan.dir.join(crate::line::token::TOKEN_FILE));
    Ok(LineClient::new(&plan.line.api_base_url, credentials, Duration::from_secs(plan.line.timeout_secs), token_store)
        .map_err(|e| start(format!("{who}{e}")))?
        .with_data_base_url(&plan.line.api_data_base_url)
        .with_metrics(plan.metrics.clone()))
}

/// What the SMTP session needs to know of a channel of `[[channels]]` to pick it for a recipient.
fn channel_rule(ch: &crate::config::Channel, registry: &Arc<Registry>) -> crate::smtp::channels::Lane {
    crate::smtp::channels::Lane {
        name: ch.name.clone(),
        domain: ch.domain.clone(),
        users: ch.users.clone(),
        aliases: crate::smtp::alias_recipients(&ch.aliases),
        alias_access: ch.alias_access.clone(),
        directory: Some(registry.clone() as Arc<dyn Directory>),
    }
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

/// `[replies]`' relay, one for the gateway (every channel's answers are mailed through it, from
/// the same address); `None` when answers are off, or in a dry run (then nothing is stored).
fn replies_relay(cfg: &Config, dry_run: bool) -> Result<Option<crate::replies::Relay>, Error> {
    let r = &cfg.replies;
    if !r.enabled() {
        return Ok(None);
    }
    if dry_run {
        info!(target: LOG_TARGET, "dry run: answers from LINE are not stored or mailed");
        return Ok(None);
    }
    let url = r.relay_url.as_ref().ok_or_else(|| start("replies.relay was not checked (a bug: please report it)"))?;
    let password = (!r.password.is_empty()).then(|| r.password.clone());
    let relay = crate::replies::Relay::new(url, &r.username, password, &cfg.smtp.domain).map_err(start)?;
    info!(
        target: LOG_TARGET,
        "answers from LINE are mailed through {url} from {}{}",
        r.from,
        if r.to.is_empty() { String::new() } else { format!("; answers to no mail go to {}", r.to) }
    );
    Ok(Some(relay))
}

/// Starts the worker that mails one channel's followers' answers (`[replies]`): the answers
/// its webhook keeps in its spool's store, the files fetched with its client, its series.
fn start_outbox(
    cfg: &Config,
    relay: &crate::replies::Relay,
    spool: &Spool,
    line: &LineClient,
    registry: &Arc<Registry>,
    metrics: &Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let outbox = crate::replies::outbox::Outbox {
        store: spool.store().clone(),
        line: line.clone(),
        relay: relay.clone(),
        registry: registry.clone(),
        metrics: metrics.clone(),
        settings: cfg.replies.clone(),
        dead_retention: cfg.delivery.dead_retention_parsed,
        keep_events: Duration::from_millis(crate::http::webhook::EVENT_ID_RETENTION_MS as u64),
    };
    outbox.spawn(stop)
}

/// Binds `[http] listen` and serves the webhooks (one per channel: path and handler) and
/// monitoring until `stop`; logs `HTTP listening on ADDR`.
async fn start_http(
    cfg: &Config,
    hooks: Vec<(String, Arc<crate::http::Webhook>)>,
    monitor: Arc<Monitor>,
    media: Option<Arc<crate::media::Media>>,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, Error> {
    let listener = listen(cfg.http.listen).await.map_err(|source| Error::Listen { addr: cfg.http.listen, key: "http.listen", source })?;
    let addr = listener.local_addr().map_err(|source| Error::System { what: "the HTTP listener's address", source })?;
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
