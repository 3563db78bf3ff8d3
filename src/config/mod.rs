//! The one typed configuration: reads the TOML, resolves secrets and gathers the pieces.
//!
//! Each module owns its table's type and checks it: `[message]` `compose::Settings`,
//! `[smtp]` `smtp::Settings`, `[routing]` and
//! `[aliases]` `smtp::{Routing, Alias}` (the session uses them and they are checked against
//! `[smtp]`'s users), `[line]` `line::Settings`, `[media]` `media::Settings`, `[log]`
//! `logging::Settings`, `[http]` `http::Settings`, `[webhook]` `http::webhook::Settings`,
//! `[delivery]` and `[quota]` `spool::settings::{Delivery, Quota}`, `[storage]`
//! `storage::Settings`, `[replies]` `replies::Settings`, `[sendmail]` `submit::Settings`. This module only reads the file into them, resolves their secrets and
//! calls their checks; users name the types by their owners' paths. What a check parses (the message template, the TLS certificate, the client,
//! sender and recipient lists, the AUTH users' hashes, the durations, the v2.1 signing key) is
//! kept in the configuration, so `serve` does not parse it again.
//!
//! Every problem is reported with the file, the line and the full key (`smtp.domain`), and all
//! problems are reported at once so an admin fixes the file in one pass (`errors.rs`). Secrets
//! are kept in [`Secret`] so no error or log line can print them; each comes from the
//! environment, else the file (the key or its `*_file`), else a systemd credential
//! (`secrets.rs`), and the config remembers which ([`SecretSource`]) for `check-config`.

mod channels;
mod errors;
mod secrets;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
use crate::smtp::access::{AuthMode, RecipientAccess};

// The modules' own settings, under the names of their tables.
use crate::compose::Settings as MessageSection;
use crate::http::webhook::Settings as Webhook;
use crate::line::{Settings as Line, TokenKind};
use crate::logging::Settings as Log;
use crate::http::Settings as Http;
use crate::media::Settings as Media;
use crate::replies::Settings as Replies;
use crate::smtp::{Alias, Routing, Settings as Smtp};
use crate::spool::settings::{Delivery, Quota};
use crate::storage::Settings as Storage;
use crate::submit::Settings as Sendmail;
pub use channels::Channel;
pub use errors::ConfigError;
use errors::{deserialize_all, locate};
pub use secrets::SecretSource;

/// Where the configuration is looked for first when neither `--config` nor `$MAIL2LINE_CONFIG`
/// is given.
pub const DEFAULT_PATH: &str = "./config.toml";

/// Where it is looked for when [`DEFAULT_PATH`] does not exist: callers such as PHP and cron run
/// `mail2line sendmail` in any working directory, and the systemd unit keeps its configuration
/// here (`ConfigurationDirectory=mail2line`).
pub const SYSTEM_PATH: &str = "/etc/mail2line/config.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub smtp: Smtp,
    #[serde(default)]
    pub line: Line,
    #[serde(default)]
    pub message: MessageSection,
    #[serde(default)]
    pub http: Http,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub delivery: Delivery,
    #[serde(default)]
    pub quota: Quota,
    #[serde(default)]
    pub webhook: Webhook,
    /// `[aliases]`: `ops = ["U…", "C…"]` makes `ops@<domain>` reach those ids; the table form
    /// `ops = { ids = [...], senders = [...], users = [...] }` can restrict who sends to it.
    #[serde(default, deserialize_with = "crate::smtp::aliases_from")]
    pub aliases: std::collections::BTreeMap<String, Alias>,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub sendmail: Sendmail,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub media: Media,
    /// `[replies]`: answers from LINE mailed back to the mail's sender (off while `relay` is empty).
    #[serde(default)]
    pub replies: Replies,
    /// `[[channels]]`: several LINE channels in one gateway (`channels.rs`); empty: `[line]` is
    /// the one unnamed channel.
    #[serde(default)]
    pub channels: Vec<Channel>,
    /// The PostgreSQL password of `[storage] url` when the URL has none (empty otherwise):
    /// `$MAIL2LINE_STORAGE_PASSWORD`, `[storage] password_file` or the credential
    /// `storage-password`. Kept here, not in `storage::Settings`, since `Secret` is of the
    /// same layer as `storage`.
    #[serde(skip)]
    pub storage_password: Secret,
    /// The LINE channel the CLI commands (`queue`, `quota`, `followers`) work on: '' for the
    /// unnamed `[line]` channel; set by `--channel` (`commands::stores::select_channel`).
    #[serde(skip)]
    pub cli_channel: String,
    /// Where each secret (and a TLS file given as a credential) came from, for `check-config`.
    #[serde(skip)]
    pub secret_sources: Vec<(String, SecretSource)>,
    /// Who may send to each protected alias (one with `senders` or `users`), parsed; filled in
    /// by [`Config::parse`] (`smtp::Routing::validate_access`). The other aliases are open.
    #[serde(skip)]
    pub alias_access: HashMap<String, RecipientAccess>,
}

/// What the configuration will be used for; `serve` needs a token, `serve --dry-run` does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Serve,
    DryRun,
    /// `sendmail` and `send`: they talk SMTP to the gateway, so they read none of the gateway's
    /// secrets or key files (which the calling user, e.g. www-data, usually cannot read) and
    /// resolve only `[sendmail]`'s password.
    Client,
}

/// Chooses the config path: `--config`, then `$MAIL2LINE_CONFIG`, then [`DEFAULT_PATH`] if it
/// exists, else [`SYSTEM_PATH`].
pub fn resolve_path(flag: Option<&Path>, env: Option<String>) -> PathBuf {
    match (flag, env) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(e)) if !e.is_empty() => PathBuf::from(e),
        _ => default_path(Path::new(DEFAULT_PATH).exists()),
    }
}

/// [`DEFAULT_PATH`] when it exists, else [`SYSTEM_PATH`].
fn default_path(local_exists: bool) -> PathBuf {
    PathBuf::from(if local_exists { DEFAULT_PATH } else { SYSTEM_PATH })
}

/// Exit status for a configuration problem (sysexits' EX_CONFIG): every command that cannot load
/// or use its configuration exits with it. Defined once, with sendmail's other sysexits.
pub use crate::submit::client::EX_CONFIG;

/// Finds and loads the configuration the way every subcommand does (`--config`, then
/// `$MAIL2LINE_CONFIG`, then `./config.toml`, then `/etc/mail2line/config.toml`); returns the path
/// it used either way, for messages.
pub fn load_for_command(flag: Option<&Path>, purpose: Purpose) -> (PathBuf, Result<Config, ConfigError>) {
    let path = resolve_path(flag, std::env::var("MAIL2LINE_CONFIG").ok());
    let loaded = Config::load(&path, purpose);
    (path, loaded)
}

impl Config {
    /// Reads and validates the file, applying `$LINE_CHANNEL_ACCESS_TOKEN`,
    /// `$LINE_CHANNEL_SECRET`, `$LINE_PRIVATE_KEY` and `$LINE_KID` overrides from the process
    /// environment.
    pub fn load(path: &Path, purpose: Purpose) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            problems: vec![format!(
                "{}: cannot read the configuration ({e}); copy config.toml.example there or pass --config PATH",
                path.display()
            )],
        })?;
        Config::parse(&text, &path.display().to_string(), purpose, &|k| std::env::var(k).ok())
    }

    /// Parses and validates `text`; `file` names the source in messages, `env` looks up
    /// environment overrides. Pure, so every error message is unit-tested.
    /// Type errors are all reported (see `deserialize_all`); values are checked once the types
    /// are right.
    pub fn parse(text: &str, file: &str, purpose: Purpose, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = deserialize_all(text, file).map_err(|problems| ConfigError { problems })?;
        config.build_channels();
        let problems = if purpose == Purpose::Client { config.resolve_client_secret(env) } else { config.resolve_gateway_secrets(env) };
        let problems: Vec<(String, String)> = problems.into_iter().chain(config.validate(purpose)).collect();
        if problems.is_empty() {
            config.smtp.domain = config.smtp.domain.to_ascii_lowercase();
            return Ok(config);
        }
        Err(locate(problems, text, file))
    }
}

impl Config {
    /// Checks values that types alone cannot; returns `(key, message)` pairs.
    fn validate(&mut self, purpose: Purpose) -> Vec<(String, String)> {
        let mut p = Vec::new();
        p.extend(self.smtp.validate(purpose != Purpose::Client));
        if purpose != Purpose::Client {
            let (problems, alias_access) = self.routing.validate_access(&self.aliases, &self.smtp);
            p.extend(problems);
            self.alias_access = alias_access;
        }
        p.extend(self.sendmail.validate(purpose == Purpose::Client));
        // With `[[channels]]`, `[line]` only gives defaults: its credentials are not needed.
        p.extend(self.line.validate(purpose == Purpose::Serve && self.channels.is_empty()));
        p.extend(self.storage.validate());
        if self.storage.is_postgres() {
            if let Err(e) = crate::pg::describe_url(self.storage.url.trim()) {
                p.push(("storage.url".to_owned(), e.to_string()));
            }
        }
        p.extend(self.delivery.validate_dead_retention());
        p.extend(self.http.validate());
        p.extend(self.delivery.validate(&self.quota));
        p.extend(self.media.validate());
        p.extend(self.webhook.validate());
        p.extend(self.routing.validate(&self.aliases));
        p.extend(self.message.validate());
        p.extend(self.log.validate());
        p.extend(self.replies.validate(purpose != Purpose::Client));
        if purpose != Purpose::Client {
            p.extend(self.validate_channels(purpose == Purpose::Serve));
        }
        if self.replies.enabled() && self.delivery.mode == crate::spool::settings::DeliveryMode::Direct {
            // The outbox and the map of what was sent live in the spool's database.
            p.push((
                "replies.relay".to_owned(),
                "answers from LINE need the spool (they are stored in it before LINE gets its 200): \
                 set [delivery] mode = \"spool\" (the default), or leave replies.relay empty"
                    .into(),
            ));
        }
        p
    }

    /// Settings that are valid but risky, one sentence each: `serve` logs them at every start
    /// and `check-config` prints them.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let s = &self.smtp;
        // Without AUTH or an allowlist, a public listener lets anyone message the followers.
        if s.auth == AuthMode::Off && s.allowed_clients.is_empty() {
            for (key, addr) in [("smtp.listen", Some(s.listen)), ("smtp.tls_listen", s.tls_listen)] {
                if let Some(addr) = addr.filter(|a| !a.ip().is_loopback()) {
                    w.push(format!(
                        "{key} {addr} is not loopback and neither smtp.auth nor smtp.allowed_clients is set: anyone who can reach this port can send LINE messages to your followers"
                    ));
                }
            }
        }
        // Answers arrive by the webhook, which refuses every event without the channel secret.
        // (With `[[channels]]`, a channel without its secret is a configuration error instead.)
        if self.replies.enabled() && self.line.channel_secret.is_empty() && self.channels.is_empty() {
            w.push(
                "replies.relay is set but line.channel_secret is not: the webhook refuses every LINE event, so no answer can arrive; \
                 set line.channel_secret (or $LINE_CHANNEL_SECRET)"
                    .to_owned(),
            );
        }
        // AUTH PLAIN/LOGIN send the password as is: over smtp:// only the local machine may see it.
        if let Some(url) = &self.replies.relay_url {
            let local = matches!(url.host.as_str(), "localhost" | "127.0.0.1" | "::1") || url.host.starts_with("127.");
            if url.security == crate::replies::Security::Plain && !self.replies.username.is_empty() && !local {
                w.push(format!(
                    "replies.relay {url} is smtp:// (no TLS) to another machine and replies.username is set: the relay password crosses the network in clear; use smtp+starttls:// or smtps://"
                ));
            }
        }
        for ch in self.channels.iter().filter(|ch| ch.line.channel_secret.is_empty()) {
            w.push(format!(
                "channel {:?} has no channel_secret: its webhook /webhook/{} will refuse every LINE event, so its followers are not learned; set channel_secret(_file), ${} or the systemd credential {}",
                ch.name,
                ch.name,
                channels::env_var("LINE_CHANNEL_SECRET", &ch.name),
                channels::credential_name(crate::credentials::LINE_CHANNEL_SECRET, &ch.name)
            ));
        }
        // The database login and every mail's text would cross the network readable.
        if let Some(host) = remote_plain_database(&self.storage.url) {
            w.push(format!(
                "storage.url connects to {host} without sslmode=require: the database password and every mail stored cross the network in clear; \
                 add ?sslmode=require (the server needs ssl = on), or keep the database on this host or a private network"
            ));
        }
        if self.line.channel_secret.is_empty() && self.channels.is_empty() {
            w.push(
                "line.channel_secret is not set: the webhook will refuse every LINE event, so followers are not learned and nobody gets a welcome; set it, $LINE_CHANNEL_SECRET or the systemd credential line-channel-secret (console > channel > Basic settings > Channel secret)".into(),
            );
        }
        w
    }

    pub fn hostname(&self) -> &str {
        self.smtp.hostname.as_deref().unwrap_or(&self.smtp.domain)
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.smtp.idle_timeout_secs)
    }

    pub fn line_timeout(&self) -> Duration {
        Duration::from_secs(self.line.timeout_secs)
    }
}


/// The host of a `storage.url` that is neither loopback nor protected by `sslmode=require`.
fn remote_plain_database(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"))?;
    if url.contains("sslmode=require") || url.contains("sslmode=verify-full") {
        return None;
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let hostport = authority.rsplit('@').next().unwrap_or(authority);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.split(':').next().unwrap_or(""),
    };
    let local = host.is_empty() || host == "localhost" || host == "::1" || host.starts_with("127.") || host.starts_with('/');
    (!local).then(|| host.to_owned())
}

#[cfg(test)]
mod tests;
