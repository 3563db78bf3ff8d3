//! Wiring only: parse the command line, load the configuration, start the parts.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info};

use mail2line::compose::template::Template;
use mail2line::config::{self, Config, Purpose};
use mail2line::delivery::{Gateway, Mode};
use mail2line::line::LineClient;
use mail2line::smtp::{server, Rules};

mod cli;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::CheckConfig { config } => check_config(config),
        cli::Command::Serve { config, dry_run } => {
            init_logging();
            let path = config::resolve_path(config.as_deref(), std::env::var("MAIL2LINE_CONFIG").ok());
            let purpose = if dry_run { Purpose::DryRun } else { Purpose::Serve };
            let cfg = match Config::load(&path, purpose) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("mail2line: configuration errors (nothing started):\n{e}");
                    return ExitCode::from(78); // EX_CONFIG
                }
            };
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn check_config(flag: Option<std::path::PathBuf>) -> ExitCode {
    let path = config::resolve_path(flag.as_deref(), std::env::var("MAIL2LINE_CONFIG").ok());
    match Config::load(&path, Purpose::Serve) {
        Ok(cfg) => {
            println!("{}: ok", path.display());
            println!("  SMTP on {} for <LINE id>@{}", cfg.smtp.listen, cfg.smtp.domain);
            println!("  LINE API at {} (channel access token set)", cfg.line.api_base_url);
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{e}");
            ExitCode::from(78)
        }
    }
}

async fn serve(cfg: Config, dry_run: bool) -> Result<(), String> {
    let template = Template::parse(&cfg.message.template).map_err(|e| format!("message.template: {e}"))?;
    let mode = if dry_run {
        Mode::DryRun
    } else {
        Mode::Direct(LineClient::new(&cfg.line.api_base_url, cfg.line.channel_access_token.clone(), cfg.line_timeout())?)
    };
    let gateway = Arc::new(Gateway::new(template, mode));
    let listener = TcpListener::bind(cfg.smtp.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (smtp.listen): {e}", cfg.smtp.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    info!("SMTP listening on {addr} for <LINE id>@{}{}", cfg.smtp.domain, if dry_run { " (dry run: nothing is sent to LINE)" } else { "" });
    let rules = Arc::new(Rules {
        hostname: cfg.hostname().to_owned(),
        domain: cfg.smtp.domain.clone(),
        max_message_bytes: cfg.smtp.max_message_bytes,
        max_recipients: cfg.smtp.max_recipients,
    });
    let limits = server::Limits {
        max_sessions: cfg.smtp.max_sessions,
        idle_timeout: cfg.idle_timeout(),
        shutdown_grace: std::time::Duration::from_secs(cfg.smtp.shutdown_grace_secs),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down: no new SMTP sessions");
        let _ = stop_tx.send(true);
    });
    server::serve(listener, rules, limits, gateway, stop_rx).await;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}
