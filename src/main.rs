//! Wiring only: parse the command line, load the configuration, start the parts.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use std::time::Duration;

use mail2line::config::{self, Config, DeliveryMode, Purpose};
use mail2line::spool::policy::RetryPolicy;
use mail2line::spool::{Settings as SpoolSettings, Spool};
use mail2line::delivery::{Gateway, Mode};
use mail2line::followers::Registry;
use mail2line::http::Monitor;
use mail2line::metrics::Metrics;
use mail2line::line::{Credentials, LineClient};
use mail2line::notify::Notifier;
use mail2line::envelope::Recipient;
use mail2line::smtp::auth::Users;
use mail2line::smtp::checks::AuthChecks;
use mail2line::smtp::peers::{MailGate, PeerLimits, Peers};
use mail2line::smtp::tls::Tls;
use mail2line::smtp::{server, Directory, Rules};
use std::collections::HashMap;

mod cli;

fn main() -> ExitCode {
    // Installed as /usr/sbin/sendmail (a symlink): sendmail's command line, not ours.
    let mut argv = std::env::args_os();
    if argv.next().is_some_and(|a| mail2line::submit::invoked_as_sendmail(&a)) {
        return ExitCode::from(mail2line::submit::sendmail_main(argv.collect()));
    }
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Sendmail { args } => ExitCode::from(mail2line::submit::sendmail_main(args)),
        cli::Command::Send { config, to, subject, text } => {
            ExitCode::from(mail2line::submit::send::main(mail2line::submit::send::SendArgs { config, to, subject, text }))
        }
        cli::Command::CheckConfig { config, online } => ExitCode::from(mail2line::check::main(config.as_deref(), online)),
        cli::Command::HashPassword => hash_password(),
        cli::Command::Quota { config, json } => ExitCode::from(mail2line::quota::main(config, json)),
        cli::Command::Queue { config, action } => ExitCode::from(mail2line::queue::main(config, action.into())),
        cli::Command::Followers { config, action } => ExitCode::from(mail2line::followers::cli::main(config, action.into())),
        cli::Command::Serve { config, dry_run } => {
            let purpose = if dry_run { Purpose::DryRun } else { Purpose::Serve };
            let cfg = match config::load_for_command(config.as_deref(), purpose).1 {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("mail2line: configuration errors (nothing started):\n{e}");
                    return ExitCode::from(config::EX_CONFIG);
                }
            };
            mail2line::logging::init(&cfg.log);
            bound_allocator_growth();
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("mail2line: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(serve(cfg, dry_run)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    error!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `mail2line hash-password`: the password from stdin (not echoed on a terminal), its argon2id
/// hash on stdout for `[[smtp.users]] password_hash`.
fn hash_password() -> ExitCode {
    use std::io::{IsTerminal, Read};
    let password = if std::io::stdin().is_terminal() {
        eprint!("Password (not shown): ");
        match rpassword::read_password() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("mail2line: cannot read the password: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        let mut raw = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut raw) {
            eprintln!("mail2line: cannot read the password from stdin (is it UTF-8?): {e}");
            return ExitCode::FAILURE;
        }
        // `echo PASSWORD |` adds a newline that is not part of the password.
        let trimmed = raw.strip_suffix('\n').unwrap_or(&raw);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_owned()
    };
    match mail2line::smtp::auth::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mail2line: {e}; give the password on stdin, e.g.: echo -n PASSWORD | mail2line hash-password");
            ExitCode::from(65) // EX_DATAERR
        }
    }
}

async fn serve(cfg: Config, dry_run: bool) -> Result<(), String> {
    // Before anything is created: storage.dir and all in it are owner-only whatever the umask
    // the gateway was started with (only the systemd unit sets one).
    mail2line::storage::restrict_umask();
    mail2line::storage::secure_dir(&cfg.storage.dir)?;
    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        warn!("{e}");
        Notifier::default()
    });
    let template = cfg.message.compiled.clone();
    let mut runner = None;
    let metrics = Arc::new(Metrics::new());
    // The webhook replies through the same client; none in a dry run.
    let line = if dry_run {
        None
    } else {
        let credentials = Credentials::from_config(&cfg.line)?;
        info!("LINE API at {} with {}", cfg.line.api_base_url, credentials.describe());
        let token_store = Some(cfg.storage.dir.join(mail2line::line::token::TOKEN_FILE));
        Some(LineClient::new(&cfg.line.api_base_url, credentials, cfg.line_timeout(), token_store)?.with_metrics(metrics.clone()))
    };
    let mut spool = None;
    let mode = match line.clone() {
        None => Mode::DryRun,
        Some(client) => match cfg.delivery.mode {
            DeliveryMode::Direct => Mode::Direct(client),
            DeliveryMode::Spool => {
                let (s, r) = Spool::start(&cfg.storage.dir, client, spool_settings(&cfg)?, Arc::new(mail2line::delivery::HeldPacker), metrics.clone())
                    .map_err(|e| format!("{e} (storage.dir = {})", cfg.storage.dir.display()))?;
                info!("spool at {} with {} workers", cfg.storage.dir.display(), cfg.delivery.worker_count());
                runner = Some(r);
                spool = Some(s.clone());
                Mode::Spool(s)
            }
        },
    };
    let registry = Arc::new(
        Registry::open(&cfg.storage.dir).map_err(|e| format!("{e} (storage.dir = {})", cfg.storage.dir.display()))?,
    );
    let media = mail2line::media::Media::from_config(&cfg.media, &cfg.storage.dir).map_err(|e| e.to_string())?;
    let gateway = Arc::new(Gateway::new(template, mode, Some(registry.clone()), metrics.clone()).with_media(media.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    if let Some(media) = &media {
        info!("images served at {}/media/… from {}", media.base_url, media.store.dir().display());
        tokio::spawn(media.clone().sweep_periodically(stop_rx.clone()));
    }
    let monitor = Arc::new(Monitor::new(metrics.clone(), spool, registry.clone(), line.clone()));
    let http = start_http(&cfg, registry.clone(), line, monitor, media.map(Arc::new), stop_rx.clone()).await?;
    let security = security(&cfg)?;
    let tls = security.tls.clone();
    let mut listeners = Vec::new();
    let listener = listen(cfg.smtp.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (smtp.listen): {e}", cfg.smtp.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    listeners.push(server::Listener { socket: listener, implicit_tls: false });
    if let Some(tls_listen) = cfg.smtp.tls_listen {
        let listener = listen(tls_listen)
            .await
            .map_err(|e| format!("cannot listen on {tls_listen} (smtp.tls_listen): {e}"))?;
        let tls_addr = listener.local_addr().map_err(|e| e.to_string())?;
        info!("SMTP implicit TLS listening on {tls_addr}");
        listeners.push(server::Listener { socket: listener, implicit_tls: true });
    }
    // Handlers before "ready": a SIGHUP or SIGTERM sent the moment after would otherwise meet
    // the default action, which kills the process.
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    let term = signal(SignalKind::terminate()).map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    // Logged last: scripts and tests take this line to mean "ready".
    info!("SMTP listening on {addr} for <LINE id>@{}{}", cfg.smtp.domain, if dry_run { " (dry run: nothing is sent to LINE)" } else { "" });
    for warning in cfg.warnings() {
        warn!("{warning}");
    }
    let status = format!("SMTP listening on {addr}{}", if dry_run { " (dry run)" } else { "" });
    notifier.ready(&status);
    let rules = Arc::new(Rules {
        hostname: cfg.hostname().to_owned(),
        domain: cfg.smtp.domain.clone(),
        max_message_bytes: cfg.smtp.max_message_bytes,
        max_recipients: cfg.smtp.max_recipients,
        aliases: aliases(&cfg),
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
        space_gate: Some(Arc::new(mail2line::storage::DiskSpace::new(
            &cfg.storage.dir,
            mail2line::storage::Limits { min_free_bytes: cfg.storage.min_free_bytes, max_bytes: cfg.storage.max_bytes },
        ))),
    });
    let incoming = cfg.storage.dir.join(mail2line::storage::INCOMING_DIR);
    let inflight = server::Inflight::new(cfg.smtp.max_inflight_bytes, &incoming)
        .map_err(|e| format!("cannot prepare {} for mail data (storage.dir): {e}", incoming.display()))?;
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
        info!("shutting down: no new SMTP sessions");
        // SMTP sessions, then HTTP requests, then pushes in flight: each may take `grace`.
        notifier.stopping("shutting down: finishing SMTP sessions and pushes in flight", grace * 3 + Duration::from_secs(5));
        let _ = stop_tx.send(true);
    });
    server::serve(listeners, rules, limits, security, gateway, metrics, stop_rx).await;
    // The stop signal already reached the HTTP server; wait for its requests in progress.
    if tokio::time::timeout(grace, http).await.is_err() {
        info!("HTTP requests still running after {grace:?}; stopping anyway");
    }
    if let Some(runner) = runner {
        info!("SMTP stopped; letting pushes in flight finish, the rest stays in the spool");
        runner.shutdown(grace).await;
    }
    info!("stopped");
    Ok(())
}

/// TLS, the client allowlist, AUTH users and per-address limits from `[smtp]`.
fn security(cfg: &Config) -> Result<server::Security, String> {
    let smtp = &cfg.smtp;
    let mut users = Users::new();
    for (i, u) in smtp.users.iter().enumerate() {
        users.add(&u.name, &u.password_hash).map_err(|e| format!("smtp.users[{i}].password_hash: {e}"))?;
    }
    Ok(server::Security {
        tls: smtp.tls.clone(),
        clients: smtp.clients.clone(),
        auth: smtp.auth,
        users: Arc::new(users),
        peers: Peers::new(PeerLimits {
            sessions: smtp.max_sessions_per_ip,
            mails_per_minute: smtp.max_mails_per_minute_per_ip,
            auth_failure_delay: Duration::from_millis(smtp.auth_failure_delay_ms),
        }),
        checks: AuthChecks::new(smtp.max_auth_checks, smtp.max_auth_queue),
    })
}

/// SIGHUP re-reads the TLS certificate and key (after a renewal); a bad file keeps the old one.
/// Installed even without TLS: SIGHUP's default action would kill the gateway. systemd hears
/// RELOADING=1 before and READY=1 after, with the outcome in STATUS=.
async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, tls: Option<Arc<Tls>>, notifier: Notifier, status: String) {
    while hup.recv().await.is_some() {
        notifier.reloading();
        let outcome = match tls.as_ref().map(|t| t.reload()) {
            Some(Ok(())) => {
                info!("SIGHUP: TLS certificate reloaded");
                "TLS certificate reloaded".to_owned()
            }
            Some(Err(e)) => {
                error!("SIGHUP: {e}; still serving the previous certificate");
                "TLS certificate reload failed, previous one in use (see the log)".to_owned()
            }
            None => {
                info!("SIGHUP: no TLS certificate configured; nothing to reload");
                "nothing to reload".to_owned()
            }
        };
        notifier.ready(&format!("{status}; last reload: {outcome}"));
    }
}

/// `[aliases]` as recipients (the ids were validated when the config was loaded).
fn aliases(cfg: &Config) -> HashMap<String, Vec<Recipient>> {
    cfg.aliases
        .iter()
        .map(|(name, alias)| (name.clone(), alias.ids.iter().filter_map(|id| Recipient::from_line_id(id)).collect()))
        .collect()
}

/// Binds `[http] listen` and serves the webhook and monitoring until `stop`; logs
/// `HTTP listening on ADDR`.
async fn start_http(
    cfg: &Config,
    registry: Arc<Registry>,
    line: Option<LineClient>,
    monitor: Arc<Monitor>,
    media: Option<Arc<mail2line::media::Media>>,
    stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    let listener = listen(cfg.http.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (http.listen): {e}", cfg.http.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let hook = Arc::new(mail2line::http::Webhook::new(&cfg.webhook, &cfg.smtp.domain, cfg.line.channel_secret.clone(), registry, line));
    let app = mail2line::http::router(hook, &cfg.webhook.path, monitor, media, cfg.http.max_concurrent_requests);
    let limits = mail2line::http::limits::Limits {
        header_timeout: Duration::from_secs(cfg.http.header_timeout_secs),
        idle_timeout: Duration::from_secs(cfg.http.idle_timeout_secs),
        max_connections: cfg.http.max_connections,
        max_concurrent_requests: cfg.http.max_concurrent_requests,
    };
    info!("LINE webhook at POST {}; monitoring at GET /metrics, /healthz, /readyz", cfg.webhook.path);
    info!("HTTP listening on {addr}");
    Ok(tokio::spawn(async move {
        if let Err(e) = mail2line::http::serve(listener, app, limits, stop).await {
            error!("HTTP server stopped: {e}");
        }
    }))
}

fn spool_settings(cfg: &Config) -> Result<SpoolSettings, String> {
    let d = &cfg.delivery;
    Ok(SpoolSettings {
        workers: d.worker_count(),
        push_per_second: d.max_requests_per_second,
        multicast_per_second: d.max_multicast_per_second,
        retry: RetryPolicy {
            base: Duration::from_millis(d.retry_base_ms),
            max: Duration::from_secs(d.retry_max_secs),
            max_age: d.max_age.parse().map_err(|e| format!("delivery.max_age: {e}"))?,
            quota_probe: Duration::from_secs(d.quota_probe_secs),
        },
        scan_interval: Duration::from_millis(d.scan_interval_ms),
        dead_retention: d.dead_retention.parse().map_err(|e| format!("delivery.dead_retention: {e}"))?,
        coalesce: mail2line::spool::coalesce::Settings {
            coalesce: Duration::from_secs(d.coalesce_secs),
            pacing: cfg.quota.pacing,
            max_coalesce: Duration::from_secs(cfg.quota.max_coalesce_secs),
            reserve: cfg.quota.reserve,
            monthly_budget: cfg.quota.monthly_budget,
            daily_share: cfg.quota.daily_share,
        },
    })
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

