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

use serde::Deserialize;
use tracing_subscriber::EnvFilter;

/// `[log] format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines (default).
    #[default]
    Text,
    /// One JSON object a line, fields at the top level, for log shippers.
    Json,
}

/// `[log]`: the format and the level filter of `serve`'s log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub format: LogFormat,
    /// A tracing filter such as `"info"` or `"info,mail2line::spool=debug"`; `$RUST_LOG`, when
    /// set, wins over it.
    pub level: String,
}

impl Settings {
    /// Problems as `(key, message)`: an unusable `level`.
    pub fn validate(&self) -> Vec<(String, String)> {
        check_log_level(&self.level).err().map(|e| ("log.level".to_owned(), e.to_string())).into_iter().collect()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings { format: LogFormat::Text, level: "info".into() }
    }
}

/// Why a `[log] level` filter is unusable (the texts follow `log.level: ` in a configuration error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelError {
    #[error("is empty; use a level such as \"info\" or \"debug\"")]
    Empty,
    /// A directive (quoted) that is neither a level nor `target=level`.
    #[error("{0:?} is not a level or target=level; use trace, debug, info, warn, error or off, e.g. \"info,mail2line::spool=debug\"")]
    NotALevel(String),
    /// tracing's own parser refused the filter (quoted), for its reason.
    #[error("{filter:?}: {reason}")]
    Refused { filter: String, reason: String },
}

/// Checks a `[log] level` filter: comma-separated directives, each a level or `target=level`.
/// Stricter than tracing's own parser, which takes a bare word such as `inof` as a target name
/// and then silently logs nothing.
pub fn check_log_level(filter: &str) -> Result<(), LevelError> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let directives: Vec<&str> = filter.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        return Err(LevelError::Empty);
    }
    for d in directives {
        let level = d.rsplit_once('=').map_or(d, |(_, l)| l).trim();
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(LevelError::NotALevel(d.to_owned()));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(log_directives(filter))
        .map(|_| ())
        .map_err(|e| LevelError::Refused { filter: filter.to_owned(), reason: e.to_string() })
}

/// `filter` as tracing parses it: the directives without the spaces people put after commas.
pub fn log_directives(filter: &str) -> String {
    filter.split(',').map(str::trim).filter(|d| !d.is_empty()).collect::<Vec<_>>().join(",")
}

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
pub fn init(log: &Settings) {
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

    #[test]
    fn log_levels() {
        for ok in ["info", "DEBUG", "warn,mail2line=debug", "info, hyper=off", "mail2line::spool=trace"] {
            assert_eq!(check_log_level(ok), Ok(()), "{ok}");
        }
        for bad in ["", " , ", "verbose", "mail2line", "info,mail2line=loud"] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
    }
}
