//! The log output of `mail2line serve`: `tracing` events to stderr, as text or JSON (`[log]`).
//!
//! Which events pass: `$RUST_LOG` when it is set and valid, else `[log] level` (validated with
//! the configuration), else `info`. The environment wins so an admin can turn on debug output
//! for one run without editing the file.
//!
//! In JSON, each line is one object with `timestamp`, `level`, `target`, `message` and the
//! event's fields at the top level (`mail`, `peer`, `reason`, `line_request_id`, …), which is
//! what log shippers index without a parsing rule.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{log_directives, Log, LogFormat};

/// The filter directives to use and, when `$RUST_LOG` was set but unusable, why it was ignored.
pub fn choose_filter(rust_log: Option<&str>, configured: &str) -> (String, Option<String>) {
    match rust_log.map(str::trim).filter(|v| !v.is_empty()) {
        Some(env) => match EnvFilter::builder().parse(env) {
            Ok(_) => (env.to_owned(), None),
            Err(e) => (configured.to_owned(), Some(format!("RUST_LOG={env:?} is not a valid filter ({e}); using [log] level {configured:?}"))),
        },
        None => (configured.to_owned(), None),
    }
}

/// Installs the global subscriber for `serve`. Call once, after the configuration is loaded.
pub fn init(log: &Log) {
    let (directives, warning) = choose_filter(std::env::var("RUST_LOG").ok().as_deref(), &log_directives(&log.level));
    // The configured level was validated when the file was loaded; "info" is the last resort.
    let filter = EnvFilter::builder().parse(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match log.format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).with_span_list(false).init(),
    }
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_when_set_and_valid() {
        assert_eq!(choose_filter(None, "warn"), ("warn".to_owned(), None));
        assert_eq!(choose_filter(Some(""), "warn"), ("warn".to_owned(), None));
        assert_eq!(choose_filter(Some("debug,hyper=info"), "warn"), ("debug,hyper=info".to_owned(), None));
        let (used, warning) = choose_filter(Some("mail2line=[{"), "warn");
        assert_eq!(used, "warn");
        assert!(warning.unwrap().contains("RUST_LOG"));
    }
}
