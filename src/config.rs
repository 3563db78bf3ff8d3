//! The one typed configuration, loaded from TOML and validated once.
//!
//! Every problem is reported with the file, the line and the full key (`smtp.domain`), and all
//! problems are reported at once so an admin fixes the file in one pass. Secrets are kept in
//! [`Secret`] so no error or log line can print them; each comes from the environment, else the
//! file (the key or its `*_file`), else a systemd credential (`credentials.rs`), and the config
//! remembers which ([`SecretSource`]) for `check-config`.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::compose::quoting::{Quoted, Rules, Signature};
use crate::compose::template::Template;
use crate::credentials;
use crate::secret::Secret;
use crate::smtp::access::{AuthMode, ClientList, SenderList};

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
    pub quota: QuotaSection,
    #[serde(default)]
    pub webhook: Webhook,
    /// `[aliases]`: `ops = ["U…", "C…"]` makes `ops@<domain>` reach those ids; the table form
    /// `ops = { ids = [...], senders = [...], users = [...] }` can restrict who sends to it.
    #[serde(default, deserialize_with = "aliases_from")]
    pub aliases: std::collections::BTreeMap<String, Alias>,
    #[serde(default)]
    pub routing: Routing,
    #[serde(default)]
    pub sendmail: Sendmail,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub media: Media,
    /// Where each secret (and a TLS file given as a credential) came from, for `check-config`.
    #[serde(skip)]
    pub secret_sources: Vec<(String, SecretSource)>,
}

/// Where a secret came from; printed by `check-config`, so it never holds the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Written in the configuration file itself.
    Inline,
    /// An environment variable (its name).
    Env(String),
    /// A `*_file` key.
    File(PathBuf),
    /// A systemd credential of a well-known name (see `credentials.rs`).
    Credential { name: String, path: PathBuf },
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Inline => f.write_str("inline in the configuration file"),
            SecretSource::Env(var) => write!(f, "${var}"),
            SecretSource::File(path) => write!(f, "file {}", path.display()),
            SecretSource::Credential { name, path } => write!(f, "systemd credential {name} ({})", path.display()),
        }
    }
}

/// `[sendmail]`: how `mail2line sendmail` and `mail2line send` reach the gateway. Only those
/// client commands read it (and only they read `password_file`), so a host that merely submits
/// mail can have a configuration with just `[smtp] domain` and this table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Sendmail {
    /// `"host:port"` of the gateway; unset: `smtp.listen` (an unspecified address as loopback).
    pub server: Option<String>,
    /// Login for gateways with `smtp.auth`; empty: no AUTH.
    pub username: String,
    /// `$MAIL2LINE_SENDMAIL_PASSWORD` overrides it.
    pub password: Secret,
    pub password_file: Option<PathBuf>,
    pub tls: ClientTls,
    /// PEM certificates to trust instead of the public web roots (e.g. a self-signed gateway).
    pub tls_ca_file: Option<PathBuf>,
    /// Seconds to wait for the gateway to connect or answer one command.
    pub timeout_secs: u64,
}

impl Default for Sendmail {
    fn default() -> Self {
        Sendmail {
            server: None,
            username: String::new(),
            password: Secret::default(),
            password_file: None,
            tls: ClientTls::Off,
            tls_ca_file: None,
            timeout_secs: 60,
        }
    }
}

/// `[sendmail] tls`: how the client protects the connection to the gateway.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTls {
    /// Plain SMTP: fine on loopback, the default server.
    #[default]
    Off,
    /// Plain connect, then STARTTLS (refusing to go on without it).
    Starttls,
    /// TLS from the first byte (`smtp.tls_listen`, port 465 style).
    Tls,
}

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    pub format: LogFormat,
    /// A tracing filter such as `"info"` or `"info,mail2line::spool=debug"`; `$RUST_LOG`, when
    /// set, wins over it.
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log { format: LogFormat::Text, level: "info".into() }
    }
}

/// Checks a `[log] level` filter: comma-separated directives, each a level or `target=level`.
/// Stricter than tracing's own parser, which takes a bare word such as `inof` as a target name
/// and then silently logs nothing.
pub fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let directives: Vec<&str> = filter.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        return Err("is empty; use a level such as \"info\" or \"debug\"".into());
    }
    for d in directives {
        let level = d.rsplit_once('=').map_or(d, |(_, l)| l).trim();
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{d:?} is not a level or target=level; use trace, debug, info, warn, error or off, e.g. \"info,mail2line::spool=debug\""
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder().parse(log_directives(filter)).map(|_| ()).map_err(|e| format!("{filter:?}: {e}"))
}

/// `filter` as tracing parses it: the directives without the spaces people put after commas.
pub fn log_directives(filter: &str) -> String {
    filter.split(',').map(str::trim).filter(|d| !d.is_empty()).collect::<Vec<_>>().join(",")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhook {
    /// Where LINE posts events, on the `[http] listen` server.
    pub path: String,
    /// Greet each new follower (and each group/room joined) with their gateway address.
    pub welcome: bool,
    /// Placeholders: `{address}` (`<id>@<smtp.domain>`) and `{display_name}`.
    pub welcome_template: String,
    /// A text message containing one of these words is answered with the sender's address.
    pub address_keyword: Vec<String>,
}

impl Default for Webhook {
    fn default() -> Self {
        Webhook {
            path: "/webhook".into(),
            welcome: true,
            welcome_template: "Hello {display_name}! Mail sent to {address} reaches you here on LINE.".into(),
            address_keyword: vec!["address".into(), "アドレス".into()],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Routing {
    /// `<followers_address>@<domain>` reaches every active follower.
    pub followers_address: String,
    /// MAIL FROM patterns (`@example.com`, `cron@host.example`) that may send to the followers
    /// address. Both this and `followers_users` empty: nobody may (closed by default).
    pub followers_senders: Vec<String>,
    /// `[[smtp.users]]` logins that may send to the followers address, whatever their MAIL FROM.
    pub followers_users: Vec<String>,
}

impl Default for Routing {
    fn default() -> Self {
        Routing { followers_address: "followers".into(), followers_senders: Vec::new(), followers_users: Vec::new() }
    }
}

/// One `[aliases]` entry. Written as a list of ids (`ops = ["U…"]`: open to every sender the
/// gateway accepts, as before tables existed) or as a table
/// (`ops = { ids = ["U…"], senders = ["@example.com"], users = ["cms"] }`). A table with
/// `senders` or `users` is protected like `followers@`; a table with neither is open, exactly
/// as the list form, so that writing `ids =` around a list changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// The LINE ids the alias reaches.
    pub ids: Vec<String>,
    /// MAIL FROM patterns that may send to it (as `smtp.allowed_senders`).
    #[serde(default)]
    pub senders: Vec<String>,
    /// AUTH logins that may send to it.
    #[serde(default)]
    pub users: Vec<String>,
}

impl Alias {
    /// Whether only listed senders and users may send to the alias.
    pub fn is_protected(&self) -> bool {
        !self.senders.is_empty() || !self.users.is_empty()
    }
}

/// `[aliases]`, each entry a list or a table. By hand rather than `#[serde(untagged)]`:
/// untagged reports any mistake in a table as "did not match any variant", where the admin
/// needs "unknown field `sender`".
fn aliases_from<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::collections::BTreeMap<String, Alias>, D::Error> {
    struct ListOrTable(Alias);
    impl<'de> Deserialize<'de> for ListOrTable {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(AliasVisitor).map(ListOrTable)
        }
    }
    struct AliasVisitor;
    impl<'de> serde::de::Visitor<'de> for AliasVisitor {
        type Value = Alias;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a list of LINE ids, or a table { ids = [...], senders = [...], users = [...] }")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Alias, A::Error> {
            let ids = Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
            Ok(Alias { ids, ..Alias::default() })
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Alias, A::Error> {
            Alias::deserialize(serde::de::value::MapAccessDeserializer::new(map))
        }
    }
    let entries = std::collections::BTreeMap::<String, ListOrTable>::deserialize(d)?;
    Ok(entries.into_iter().map(|(name, ListOrTable(alias))| (name, alias)).collect())
}

/// `[delivery] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// 250 once the mail is durably stored; workers push it (default).
    Spool,
    /// 250 only after LINE answered 2xx, while the client waits.
    Direct,
}

/// A duration written as seconds (`3600`) or with a unit (`"90s"`, `"30m"`, `"72h"`, `"3d"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(u64),
    Text(String),
}

impl DurationValue {
    pub fn parse(&self) -> Result<Duration, String> {
        match self {
            DurationValue::Seconds(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(t) => {
                let t = t.trim();
                let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                let (num, unit) = t.split_at(split);
                let n: u64 = num.parse().map_err(|_| format!("{t:?} is not a duration such as \"3d\", \"72h\", \"30m\" or \"90s\""))?;
                let mult = match unit.trim() {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86400,
                    _ => return Err(format!("{t:?} has an unknown unit; use s, m, h or d")),
                };
                Ok(Duration::from_secs(n.saturating_mul(mult)))
            }
        }
    }
}

/// `[media]`: images (and optionally other attachments) stored under `storage.dir/media` and
/// served on the `[http]` listener at `/media/<id>.<ext>`, because LINE only shows images it can
/// fetch from a public HTTPS URL.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Media {
    /// The public HTTPS address under which `/media/…` on the `[http]` listener is reachable
    /// (e.g. through a reverse proxy). Unset: images are only listed by name and size.
    pub public_base_url: Option<String>,
    /// How long stored files are served before they are deleted.
    pub retention: DurationValue,
    /// Also store non-image attachments and list them with a download link.
    pub serve_attachments: bool,
    /// Largest attachment stored for download (`serve_attachments`); larger ones are only listed.
    pub max_attachment_bytes: u64,
    /// How often expired files are swept, in seconds (hourly by default).
    pub sweep_interval_secs: u64,
    /// Images declaring more pixels than this are neither decoded nor sent as images (a
    /// decompression bomb costs 4 bytes a pixel); they are listed as attachments.
    pub max_image_pixels: u64,
}

/// `media.max_image_pixels` above this lets one decode take 4 GB.
const MAX_IMAGE_PIXELS: u64 = 1_000_000_000;

impl Default for Media {
    fn default() -> Self {
        Media {
            public_base_url: None,
            retention: DurationValue::Text("7d".into()),
            serve_attachments: false,
            max_attachment_bytes: 10 * 1024 * 1024,
            sweep_interval_secs: 3600,
            max_image_pixels: 40_000_000,
        }
    }
}

impl Media {
    /// The base URL without a trailing slash, when media hosting is on.
    pub fn base_url(&self) -> Option<&str> {
        self.public_base_url.as_deref().map(|u| u.trim_end_matches('/'))
    }

    fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if let Some(url) = &self.public_base_url {
            let host = url.strip_prefix("https://").unwrap_or("");
            if host.is_empty() || host.starts_with('/') || url.contains(char::is_whitespace) || url.contains(['?', '#']) {
                p.push((
                    "media.public_base_url".to_owned(),
                    format!("{url:?} is not an https URL; LINE only fetches images over HTTPS, e.g. \"https://mail2line.example.com\""),
                ));
            }
        }
        if let Err(e) = self.retention.parse() {
            p.push(("media.retention".to_owned(), e));
        } else if self.retention.parse() == Ok(Duration::ZERO) {
            p.push(("media.retention".to_owned(), "must be at least 1s".into()));
        }
        if self.max_attachment_bytes == 0 {
            p.push(("media.max_attachment_bytes".to_owned(), "must be at least 1".into()));
        }
        if self.sweep_interval_secs == 0 {
            p.push(("media.sweep_interval_secs".to_owned(), "must be at least 1".into()));
        }
        if !(1..=MAX_IMAGE_PIXELS).contains(&self.max_image_pixels) {
            p.push((
                "media.max_image_pixels".to_owned(),
                format!("must be between 1 and {MAX_IMAGE_PIXELS} (each decode may hold 4 bytes a pixel)"),
            ));
        }
        p
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    pub mode: DeliveryMode,
    /// Concurrent pushes; 0 = sized for the machine.
    pub workers: usize,
    /// Give up (dead letter) on a mail not delivered after this long.
    pub max_age: DurationValue,
    /// Dead letters are deleted this long after they died.
    pub dead_retention: DurationValue,
    /// LINE's push limit per channel.
    pub max_requests_per_second: u32,
    /// LINE's multicast limit per channel.
    pub max_multicast_per_second: u32,
    /// First retry delay in milliseconds; doubles per attempt (with jitter).
    pub retry_base_ms: u64,
    /// Longest retry delay in seconds.
    pub retry_max_secs: u64,
    /// How often a paused spool asks LINE whether the monthly quota has room again.
    pub quota_probe_secs: u64,
    /// How often the spool looks for jobs whose retry time has come, in milliseconds.
    pub scan_interval_ms: u64,
    /// After a push to a chat, further mail to it is held this long and then goes out in one
    /// request (LINE bills requests, not bubbles); 0 turns coalescing off.
    pub coalesce_secs: u64,
}

/// `[quota]`: making LINE's monthly message quota last (see `spool::coalesce`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotaSection {
    /// 0: LINE's own limit; else a lower cap (other tools share the channel).
    pub monthly_budget: u64,
    /// The last messages of the month, kept for urgent mail.
    pub reserve: u64,
    /// Stretch the coalescing window when the month's forecast runs out early.
    pub pacing: bool,
    /// How far pacing may stretch the window, in seconds.
    pub max_coalesce_secs: u64,
    /// While the month runs over its pace, routine mail beyond today's share of what is left
    /// gets 452 until 00:00 JST.
    pub daily_share: bool,
}

impl Default for QuotaSection {
    fn default() -> Self {
        QuotaSection { monthly_budget: 0, reserve: 10, pacing: true, max_coalesce_secs: 3600, daily_share: true }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            mode: DeliveryMode::Spool,
            workers: 0,
            max_age: DurationValue::Text("3d".into()),
            dead_retention: DurationValue::Text("30d".into()),
            max_requests_per_second: 2000,
            max_multicast_per_second: 200,
            retry_base_ms: 1000,
            retry_max_secs: 3600,
            quota_probe_secs: 300,
            scan_interval_ms: 1000,
            coalesce_secs: 10,
        }
    }
}

impl Delivery {
    /// Workers to run: as configured, or 64 per core (pushes wait on the network, not the CPU).
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        64 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    pub listen: SocketAddr,
    /// Recipients must be `<LINE id>@domain`.
    pub domain: String,
    /// Name in the 220 greeting and EHLO reply; defaults to `domain`.
    pub hostname: Option<String>,
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    /// Simultaneous SMTP sessions; more are answered 421 and closed.
    pub max_sessions: usize,
    /// Seconds a client may stay silent before we hang up (RFC 5321 suggests 5 minutes).
    pub idle_timeout_secs: u64,
    /// Seconds the whole DATA phase may take, however steadily the client trickles
    /// (RFC 5321 suggests 10 minutes for the terminator).
    pub data_timeout_secs: u64,
    /// NOOP/RSET/VRFY/HELP tolerated between mails before `421 4.7.0` and hang-up.
    pub max_junk_commands: u32,
    /// Mail data held in memory across all sessions, in bytes; past it DATA is written to a
    /// file under `storage.dir` instead (see `smtp/inflight.rs`).
    pub max_inflight_bytes: usize,
    /// Seconds SIGTERM waits for sessions in the middle of a mail.
    pub shutdown_grace_secs: u64,
    /// Refuse (550 5.1.1) user ids that are not active followers of the bot.
    pub require_follower: bool,
    /// PEM certificate chain for STARTTLS and `tls_listen`; reloaded on SIGHUP.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// A second listener where clients speak TLS from the first byte (port 465 style).
    pub tls_listen: Option<SocketAddr>,
    /// Refuse MAIL before STARTTLS (530 5.7.0).
    pub require_tls: bool,
    /// "off" | "optional" | "required"; see `smtp/access.rs`.
    pub auth: AuthMode,
    /// Offer AUTH without TLS to clients on 127.0.0.0/8 and ::1.
    pub allow_plaintext_auth_on_loopback: bool,
    /// CIDRs or addresses that may connect; empty: everyone.
    pub allowed_clients: Vec<String>,
    /// `@domain` or address patterns MAIL FROM must match; empty: any sender.
    pub allowed_senders: Vec<String>,
    /// `[[smtp.users]]`: logins for AUTH.
    pub users: Vec<SmtpUser>,
    /// Sessions at once from one client address; 0: no limit.
    pub max_sessions_per_ip: usize,
    /// Mails (MAIL commands) a minute from one client address; 0: no limit.
    pub max_mails_per_minute_per_ip: u32,
    /// Failed commands (errors, refused recipients, failed AUTH) before the client is dropped.
    pub max_failed_commands: u32,
    /// Delay before answering the first failed AUTH from an address; it doubles with each
    /// further failure, up to 30 s.
    pub auth_failure_delay_ms: u64,
    /// Password checks (argon2, 19 MiB each) run at once; 0: one per core.
    pub max_auth_checks: usize,
    /// Sessions that may wait for a password check; past it AUTH gets 454 4.7.0.
    pub max_auth_queue: usize,
}

/// `smtp.max_auth_checks` above this would let AUTH alone take gigabytes (19 MiB a check).
const MAX_AUTH_CHECKS: usize = 256;
/// `smtp.max_auth_queue` above this only makes honest logins wait longer behind guesses.
const MAX_AUTH_QUEUE: usize = 100_000;

/// One `[[smtp.users]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpUser {
    pub name: String,
    /// argon2 PHC string from `mail2line hash-password`.
    #[serde(default)]
    pub password_hash: Secret,
    /// A file holding the hash; instead of the inline key.
    #[serde(default)]
    pub password_hash_file: Option<PathBuf>,
}

impl SmtpUser {
    /// The environment variable that overrides this user's hash:
    /// `MAIL2LINE_SMTP_USER_<NAME>_PASSWORD_HASH`, the name upper-cased with other characters as `_`.
    pub fn env_var(&self) -> String {
        let name: String = self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        format!("MAIL2LINE_SMTP_USER_{name}_PASSWORD_HASH")
    }
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            listen: "127.0.0.1:2525".parse().expect("valid literal"),
            domain: String::new(),
            hostname: None,
            max_message_bytes: 10 * 1024 * 1024,
            max_recipients: 100,
            max_sessions: 2000,
            idle_timeout_secs: 300,
            data_timeout_secs: 600,
            max_junk_commands: crate::smtp::session::DEFAULT_MAX_JUNK_COMMANDS,
            max_inflight_bytes: 128 * 1024 * 1024,
            shutdown_grace_secs: 30,
            require_follower: false,
            tls_cert_file: None,
            tls_key_file: None,
            tls_listen: None,
            require_tls: false,
            auth: AuthMode::Off,
            allow_plaintext_auth_on_loopback: false,
            allowed_clients: Vec::new(),
            allowed_senders: Vec::new(),
            users: Vec::new(),
            max_sessions_per_ip: 100,
            max_mails_per_minute_per_ip: 600,
            max_failed_commands: crate::smtp::session::DEFAULT_MAX_ERRORS,
            auth_failure_delay_ms: 1000,
            max_auth_checks: 0,
            max_auth_queue: 64,
        }
    }
}

/// `[line] token`: which kind of channel access token the gateway uses (see `line::token`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum TokenKind {
    /// A token issued once in the LINE Developers console: `channel_access_token`.
    #[default]
    #[serde(rename = "long-lived")]
    LongLived,
    /// Issued by the gateway with a JWT signed by the channel's private key (`private_key_file`, `kid`).
    #[serde(rename = "v2.1")]
    V21,
    /// Issued by the gateway every 15 minutes from `channel_id` and `channel_secret`.
    #[serde(rename = "stateless")]
    Stateless,
}

impl TokenKind {
    /// The name used in `[line] token`.
    pub fn name(self) -> &'static str {
        match self {
            TokenKind::LongLived => "long-lived",
            TokenKind::V21 => "v2.1",
            TokenKind::Stateless => "stateless",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Line {
    pub api_base_url: String,
    /// Which channel access token to use; `long-lived` (default), `v2.1` or `stateless`.
    pub token: TokenKind,
    /// The channel id (Basic settings), for `v2.1` and `stateless`. Written as a string or a number.
    #[serde(deserialize_with = "string_or_number")]
    pub channel_id: String,
    /// The private key (JWK or PEM) that signs `v2.1` assertions; `$LINE_PRIVATE_KEY` overrides it.
    pub private_key: Secret,
    /// A file holding the private key: a JWK as LINE's console flow makes it, or PEM.
    pub private_key_file: Option<PathBuf>,
    /// The key id LINE gave the registered public key; `$LINE_KID` overrides it, and a JWK's
    /// own `kid` is used when both are empty. Not a secret.
    pub kid: String,
    pub channel_access_token: Secret,
    /// A file holding the token (e.g. systemd's `LoadCredential=`); instead of the inline key.
    pub channel_access_token_file: Option<PathBuf>,
    pub channel_secret: Secret,
    /// A file holding the channel secret; instead of the inline key.
    pub channel_secret_file: Option<PathBuf>,
    /// Seconds one API request may take.
    pub timeout_secs: u64,
}

impl Default for Line {
    fn default() -> Self {
        Line {
            api_base_url: "https://api.line.me".into(),
            token: TokenKind::LongLived,
            channel_id: String::new(),
            private_key: Secret::default(),
            private_key_file: None,
            kid: String::new(),
            channel_access_token: Secret::default(),
            channel_access_token_file: None,
            channel_secret: Secret::default(),
            channel_secret_file: None,
            timeout_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MessageSection {
    pub template: String,
    /// `"collapse"` (default): a run of more than 3 quoted (`>`) lines becomes `(N quoted lines)`.
    pub quoted: Quoted,
    /// `"drop"`: the body ends at its `-- ` signature separator (default `"keep"`).
    pub signature: Signature,
}

impl MessageSection {
    /// The body rules for [`Template::with_rules`].
    pub fn rules(&self) -> Rules {
        Rules { quoted: self.quoted, signature: self.signature }
    }
}

impl Default for MessageSection {
    fn default() -> Self {
        MessageSection {
            template: crate::compose::template::DEFAULT_TEMPLATE.into(),
            quoted: Quoted::default(),
            signature: Signature::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    pub listen: SocketAddr,
    /// A client must send its request headers within this many seconds.
    pub header_timeout_secs: u64,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout_secs: u64,
    /// Open connections; past it the one longest without a request is closed (see `http::limits`).
    pub max_connections: usize,
    /// Requests in progress for the webhook, and as many again for everything else.
    pub max_concurrent_requests: usize,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 512,
            max_concurrent_requests: 64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub dir: PathBuf,
    /// New mail is refused (452 4.3.1, at MAIL) while the file system of `dir` has less free.
    pub min_free_bytes: u64,
    /// Cap on the spool, registry and media together; 0 = only the `min_free_bytes` floor.
    pub max_bytes: u64,
}

impl Default for Storage {
    fn default() -> Self {
        Storage { dir: PathBuf::from("./data"), min_free_bytes: 1024 * 1024 * 1024, max_bytes: 0 }
    }
}

impl Config {
    /// `[storage]` limits, `[delivery] dead_retention` and the `[http]` listener limits (issue
    /// 16's "weaknesses"): kept together so they read as one set of numbers.
    fn validate_disk_and_http(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.storage.max_bytes != 0 && self.storage.max_bytes < 1024 * 1024 {
            p.push(("storage.max_bytes".to_owned(), "must be 0 (no cap) or at least 1048576 (1 MiB)".into()));
        }
        match self.delivery.dead_retention.parse() {
            Ok(d) if d < Duration::from_secs(1) => p.push(("delivery.dead_retention".to_owned(), "must be at least 1s".into())),
            Ok(_) => {}
            Err(e) => p.push(("delivery.dead_retention".to_owned(), e)),
        }
        for (key, value) in [
            ("http.header_timeout_secs", self.http.header_timeout_secs as usize),
            ("http.idle_timeout_secs", self.http.idle_timeout_secs as usize),
            ("http.max_connections", self.http.max_connections),
            ("http.max_concurrent_requests", self.http.max_concurrent_requests),
        ] {
            if value == 0 {
                p.push((key.to_owned(), "must be at least 1".into()));
            }
        }
        // A connection slot per request at least, or the budgets can never be used.
        if self.http.max_connections != 0 && self.http.max_connections < self.http.max_concurrent_requests {
            p.push(("http.max_connections".to_owned(), "must be at least http.max_concurrent_requests".into()));
        }
        p
    }
}

/// Everything wrong with a configuration file, one line per problem.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("\n"))
    }
}

impl std::error::Error for ConfigError {}

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
/// or use its configuration exits with it, so it is defined here, beside the loading, once.
pub const EX_CONFIG: u8 = 78;

/// [`load_for_command`] for a command that cannot go on without its configuration: on failure it
/// prints `{prog}: configuration errors:` and the problems to stderr and returns `Err(EX_CONFIG)`,
/// the status to exit with. Returns the path it used as well, for messages.
pub fn load_or_exit(flag: Option<&Path>, purpose: Purpose, prog: &str) -> Result<(PathBuf, Config), u8> {
    let (path, loaded) = load_for_command(flag, purpose);
    match loaded {
        Ok(cfg) => Ok((path, cfg)),
        Err(e) => {
            eprintln!("{prog}: configuration errors:\n{e}");
            Err(EX_CONFIG)
        }
    }
}

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
    /// Type errors are all reported (see [`deserialize_all`]); values are checked once the types
    /// are right.
    pub fn parse(text: &str, file: &str, purpose: Purpose, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut config = deserialize_all(text, file).map_err(|problems| ConfigError { problems })?;
        let mut problems = Vec::new();
        if purpose == Purpose::Client {
            let s = &mut config.sendmail;
            let var = "MAIL2LINE_SENDMAIL_PASSWORD";
            match resolve_secret(&mut s.password, s.password_file.as_deref(), var, env(var), None) {
                Ok(Some(source)) => config.secret_sources.push(("sendmail.password".to_owned(), source)),
                Ok(None) => {}
                Err(SecretProblem::File(msg) | SecretProblem::Credential(msg)) => {
                    problems.push(("sendmail.password_file".to_owned(), msg))
                }
            }
        } else {
            problems.extend(config.resolve_gateway_secrets(env));
        }
        problems.extend(config.validate(purpose));
        if problems.is_empty() {
            config.smtp.domain = config.smtp.domain.to_ascii_lowercase();
            return Ok(config);
        }
        let doc = toml_edit::ImDocument::parse(text.to_owned()).ok();
        let problems = problems
            .into_iter()
            .map(|(key, msg)| {
                let line = doc.as_ref().and_then(|d| key_line(d, text, &key));
                match line {
                    Some(l) => format!("{file}:{l}: {key}: {msg}"),
                    None => format!("{file}: {key}: {msg}"),
                }
            })
            .collect();
        Err(ConfigError { problems })
    }

    /// Reads the gateway's secrets from the environment and `*_file` keys.
    fn resolve_gateway_secrets(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let config = self;
        let mut problems = Vec::new();
        // Precedence: environment, then `*_file` or the inline key, then a systemd credential.
        let credentials_dir = env(credentials::DIRECTORY_ENV);
        let cred = |name: &str| credentials::find(credentials_dir.as_deref(), name).map(|path| (name.to_owned(), path));
        let line = &mut config.line;
        let sources = [
            (&mut line.channel_access_token, &line.channel_access_token_file, "LINE_CHANNEL_ACCESS_TOKEN", "line.channel_access_token", credentials::LINE_CHANNEL_ACCESS_TOKEN),
            (&mut line.channel_secret, &line.channel_secret_file, "LINE_CHANNEL_SECRET", "line.channel_secret", credentials::LINE_CHANNEL_SECRET),
            (&mut line.private_key, &line.private_key_file, "LINE_PRIVATE_KEY", "line.private_key", credentials::LINE_PRIVATE_KEY),
        ];
        for (secret, file, var, key, name) in sources {
            match resolve_secret(secret, file.as_deref(), var, env(var), cred(name)) {
                Ok(Some(source)) => config.secret_sources.push((key.to_owned(), source)),
                Ok(None) => {}
                Err(SecretProblem::File(msg)) => problems.push((format!("{key}_file"), msg)),
                Err(SecretProblem::Credential(msg)) => problems.push((key.to_owned(), msg)),
            }
        }
        for (i, user) in config.smtp.users.iter_mut().enumerate() {
            let var = user.env_var();
            let credential = credentials::smtp_user_password_hash(&user.name).and_then(|name| cred(&name));
            match resolve_secret(&mut user.password_hash, user.password_hash_file.as_deref(), &var, env(&var), credential) {
                Ok(Some(source)) => config.secret_sources.push((format!("smtp.users[{i}].password_hash"), source)),
                Ok(None) => {}
                Err(SecretProblem::File(msg)) => problems.push((format!("smtp.users[{i}].password_hash_file"), msg)),
                Err(SecretProblem::Credential(msg)) => problems.push((format!("smtp.users[{i}].password_hash"), msg)),
            }
        }
        // The certificate and key files, when the file names none, from credentials.
        let smtp = &mut config.smtp;
        for (slot, key, name) in [
            (&mut smtp.tls_cert_file, "smtp.tls_cert_file", credentials::SMTP_TLS_CERT),
            (&mut smtp.tls_key_file, "smtp.tls_key_file", credentials::SMTP_TLS_KEY),
        ] {
            if let (None, Some((name, path))) = (&slot, cred(name)) {
                *slot = Some(path.clone());
                config.secret_sources.push((key.to_owned(), SecretSource::Credential { name, path }));
            }
        }
        if config.line.token == TokenKind::V21 {
            problems.extend(resolve_signing_key(&mut config.line, env));
        }
        problems
    }

    /// Checks values that types alone cannot; returns `(key, message)` pairs.
    fn validate(&self, purpose: Purpose) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let domain = &self.smtp.domain;
        if domain.is_empty() {
            p.push(("smtp.domain".to_owned(), "is required: the mail domain recipients use, e.g. \"text.line.example.com\"".into()));
        } else if !is_domain(domain) {
            p.push(("smtp.domain".to_owned(), format!("{domain:?} is not a domain name (letters, digits, '-' and '.', no trailing dot)")));
        }
        if self.smtp.max_message_bytes < 1024 {
            p.push(("smtp.max_message_bytes".to_owned(), "must be at least 1024".into()));
        }
        if !(1..=1000).contains(&self.smtp.max_recipients) {
            p.push(("smtp.max_recipients".to_owned(), "must be between 1 and 1000".into()));
        }
        if self.smtp.max_sessions == 0 {
            p.push(("smtp.max_sessions".to_owned(), "must be at least 1".into()));
        }
        if self.smtp.idle_timeout_secs == 0 {
            p.push(("smtp.idle_timeout_secs".to_owned(), "must be at least 1".into()));
        }
        if self.smtp.data_timeout_secs == 0 {
            p.push(("smtp.data_timeout_secs".to_owned(), "must be at least 1".into()));
        }
        if self.smtp.max_junk_commands == 0 {
            p.push(("smtp.max_junk_commands".to_owned(), "must be at least 1".into()));
        }
        if self.smtp.max_inflight_bytes < 2 * self.smtp.max_message_bytes.max(1024 * 1024) {
            p.push((
                "smtp.max_inflight_bytes".to_owned(),
                format!(
                    "must be at least twice smtp.max_message_bytes ({} bytes) and 2 MiB: half is for mail being received, half for mail being parsed",
                    self.smtp.max_message_bytes
                ),
            ));
        }
        if purpose != Purpose::Client {
            p.extend(self.validate_smtp_security());
            p.extend(self.validate_recipient_access());
        }
        p.extend(self.validate_sendmail(purpose));
        let url = &self.line.api_base_url;
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
            p.push(("line.api_base_url".to_owned(), format!("{url:?} is not an http(s) URL, e.g. \"https://api.line.me\"")));
        }
        if self.line.timeout_secs == 0 {
            p.push(("line.timeout_secs".to_owned(), "must be at least 1".into()));
        }
        p.extend(self.line.validate_token(purpose));
        p.extend(self.validate_disk_and_http());
        match self.delivery.max_age.parse() {
            Ok(d) if d < Duration::from_secs(60) => p.push(("delivery.max_age".to_owned(), "must be at least one minute".into())),
            Ok(_) => {}
            Err(e) => p.push(("delivery.max_age".to_owned(), e)),
        }
        if self.delivery.max_requests_per_second == 0 {
            p.push(("delivery.max_requests_per_second".to_owned(), "must be at least 1".into()));
        }
        if self.delivery.max_multicast_per_second == 0 {
            p.push(("delivery.max_multicast_per_second".to_owned(), "must be at least 1".into()));
        }
        if self.delivery.retry_base_ms == 0 || self.delivery.retry_max_secs == 0 {
            p.push(("delivery.retry_base_ms".to_owned(), "retry delays must be at least 1".into()));
        }
        if self.delivery.scan_interval_ms == 0 || self.delivery.quota_probe_secs == 0 {
            p.push(("delivery.scan_interval_ms".to_owned(), "intervals must be at least 1".into()));
        }
        if self.quota.pacing && self.delivery.coalesce_secs > 0 && self.quota.max_coalesce_secs < self.delivery.coalesce_secs {
            p.push((
                "quota.max_coalesce_secs".to_owned(),
                format!("must be at least delivery.coalesce_secs ({}): pacing only ever stretches the window", self.delivery.coalesce_secs),
            ));
        }
        if self.quota.monthly_budget > 0 && self.quota.reserve >= self.quota.monthly_budget {
            p.push(("quota.reserve".to_owned(), format!("must be below quota.monthly_budget ({})", self.quota.monthly_budget)));
        }
        p.extend(self.media.validate());
        if !self.webhook.path.starts_with('/') {
            p.push(("webhook.path".to_owned(), format!("{:?} must start with '/', e.g. \"/webhook\"", self.webhook.path)));
        }
        if let Some(bad) = unknown_placeholder(&self.webhook.welcome_template, &["address", "display_name"]) {
            p.push(("webhook.welcome_template".to_owned(), format!("unknown placeholder {{{bad}}}; allowed: {{address}}, {{display_name}}")));
        }
        if !is_local_part(&self.routing.followers_address) {
            p.push(("routing.followers_address".to_owned(), format!("{:?} is not a usable local part (lowercase letters, digits, '.', '-', '_')", self.routing.followers_address)));
        }
        for (name, Alias { ids, .. }) in &self.aliases {
            if !is_local_part(name) || crate::envelope::Recipient::from_line_id(name).is_some() {
                p.push((format!("aliases.{name}"), format!("alias {name:?} is not a usable local part (lowercase letters, digits, '.', '-', '_'; not a LINE id)")));
            } else if *name == self.routing.followers_address {
                p.push((format!("aliases.{name}"), format!("alias {name:?} clashes with routing.followers_address")));
            }
            if ids.is_empty() {
                p.push((format!("aliases.{name}"), format!("alias {name:?} has no ids")));
            }
            for id in ids {
                if crate::envelope::Recipient::from_line_id(id).is_none() {
                    p.push((format!("aliases.{name}"), format!("alias {name:?}: {id:?} is not a LINE id (U, C or R + 32 lowercase hex)")));
                }
            }
        }
        if let Err(e) = Template::parse(&self.message.template) {
            p.push(("message.template".to_owned(), e.to_string()));
        }
        if self.webhook.path.starts_with(crate::media::URL_PREFIX) {
            p.push(("webhook.path".to_owned(), format!("{:?} is taken by media files (/media/…); use e.g. \"/webhook\"", self.webhook.path)));
        }
        if crate::http::MONITOR_PATHS.contains(&self.webhook.path.as_str()) {
            p.push(("webhook.path".to_owned(), format!("{:?} is taken by monitoring (/metrics, /healthz, /readyz); use e.g. \"/webhook\"", self.webhook.path)));
        }
        if let Err(e) = check_log_level(&self.log.level) {
            p.push(("log.level".to_owned(), e));
        }
        p
    }

    /// TLS, AUTH, allowlists and per-address limits.
    fn validate_smtp_security(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let smtp = &self.smtp;
        let key = |k: &str| format!("smtp.{k}");
        match (&smtp.tls_cert_file, &smtp.tls_key_file) {
            (Some(cert), Some(k)) => {
                if let Err(e) = crate::smtp::tls::Tls::load(cert, k) {
                    p.push((key("tls_cert_file"), e));
                }
            }
            (Some(_), None) => {
                p.push((key("tls_cert_file"), "needs smtp.tls_key_file too (the PEM private key of the certificate)".into()))
            }
            (None, Some(_)) => p.push((key("tls_key_file"), "needs smtp.tls_cert_file too (the PEM certificate chain)".into())),
            (None, None) => {}
        }
        let no_cert = smtp.tls_cert_file.is_none() || smtp.tls_key_file.is_none();
        if smtp.tls_listen.is_some() && no_cert {
            p.push((key("tls_listen"), "needs smtp.tls_cert_file and smtp.tls_key_file".into()));
        }
        if smtp.tls_listen.is_some_and(|t| t == smtp.listen && t.port() != 0) {
            p.push((key("tls_listen"), "must differ from smtp.listen".into()));
        }
        if smtp.require_tls && no_cert {
            p.push((key("require_tls"), "needs smtp.tls_cert_file and smtp.tls_key_file (there is no TLS to require)".into()));
        }
        if smtp.auth != AuthMode::Off {
            if smtp.users.is_empty() {
                p.push((
                    key("auth"),
                    "is on but there are no [[smtp.users]]; add one with name and password_hash (from `mail2line hash-password`)".into(),
                ));
            }
            if no_cert && !smtp.allow_plaintext_auth_on_loopback {
                p.push((
                    key("auth"),
                    "needs TLS (smtp.tls_cert_file and smtp.tls_key_file): passwords are never accepted in the clear, except on loopback with smtp.allow_plaintext_auth_on_loopback = true".into(),
                ));
            }
        }
        if let Err(e) = ClientList::parse(&smtp.allowed_clients) {
            p.push((key("allowed_clients"), e));
        }
        if let Err(e) = SenderList::parse(&smtp.allowed_senders) {
            p.push((key("allowed_senders"), e));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, user) in smtp.users.iter().enumerate() {
            if user.name.is_empty() || user.name.chars().any(|c| c.is_control() || c == ' ') {
                p.push((format!("smtp.users[{i}].name"), format!("{:?} is not a usable login (no spaces or control characters)", user.name)));
            } else if !seen.insert(user.name.as_str()) {
                p.push((format!("smtp.users[{i}].name"), format!("{:?} appears twice", user.name)));
            }
            if user.password_hash.is_empty() {
                p.push((
                    format!("smtp.users[{i}].password_hash"),
                    format!(
                        "is required (or password_hash_file, ${}, or the systemd credential {}); make one with: echo -n PASSWORD | mail2line hash-password",
                        user.env_var(),
                        credentials::smtp_user_password_hash(&user.name).unwrap_or_else(|| "smtp-user-<name>-password-hash".into())
                    ),
                ));
            } else if let Err(e) = crate::smtp::auth::check_hash(user.password_hash.expose()) {
                p.push((format!("smtp.users[{i}].password_hash"), e));
            }
        }
        if smtp.max_failed_commands == 0 {
            p.push((key("max_failed_commands"), "must be at least 1".into()));
        }
        if smtp.max_auth_checks > MAX_AUTH_CHECKS {
            p.push((
                key("max_auth_checks"),
                format!("must be at most {MAX_AUTH_CHECKS} (each check holds 19 MiB; 0 = one per core, the usual choice)"),
            ));
        }
        if smtp.max_auth_queue > MAX_AUTH_QUEUE {
            p.push((key("max_auth_queue"), format!("must be at most {MAX_AUTH_QUEUE}")));
        }
        p
    }

    /// Who may send to `followers@` and to protected aliases: sender patterns as
    /// `allowed_senders`, logins that exist and can log in.
    fn validate_recipient_access(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let r = &self.routing;
        self.check_access_lists(&mut p, ("routing.followers_senders", ""), &r.followers_senders, ("routing.followers_users", ""), &r.followers_users);
        for (name, alias) in &self.aliases {
            // An inline table has no line per field: the key is the alias, the field leads the message.
            let key = format!("aliases.{name}");
            self.check_access_lists(&mut p, (&key, "senders: "), &alias.senders, (&key, "users: "), &alias.users);
        }
        p
    }

    /// Problems with one pair of access lists; each key comes with a prefix for its messages.
    fn check_access_lists(&self, p: &mut Vec<(String, String)>, senders_key: (&str, &str), senders: &[String], users_key: (&str, &str), users: &[String]) {
        if let Err(e) = SenderList::parse(senders) {
            p.push((senders_key.0.to_owned(), format!("{}{e}", senders_key.1)));
        }
        let (key, field) = users_key;
        for user in users {
            if !self.smtp.users.iter().any(|u| u.name == *user) {
                p.push((key.to_owned(), format!("{field}{user:?} is not a login in [[smtp.users]]")));
            } else if self.smtp.auth == AuthMode::Off {
                p.push((key.to_owned(), format!("{field}{user:?} can never log in while smtp.auth is \"off\"; set it to \"optional\" or \"required\"")));
            }
        }
    }

    /// `[sendmail]`. Whether a login has its password is known only where it was resolved: for
    /// the client commands.
    fn validate_sendmail(&self, purpose: Purpose) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let s = &self.sendmail;
        if let Some(server) = &s.server {
            if let Err(e) = split_host_port(server) {
                p.push(("sendmail.server".to_owned(), e));
            }
        }
        if s.timeout_secs == 0 {
            p.push(("sendmail.timeout_secs".to_owned(), "must be at least 1".into()));
        }
        if s.tls_ca_file.is_some() && s.tls == ClientTls::Off {
            p.push(("sendmail.tls_ca_file".to_owned(), "is used only with tls = \"starttls\" or \"tls\"".into()));
        }
        if purpose == Purpose::Client {
            if !s.username.is_empty() && s.password.is_empty() {
                p.push((
                    "sendmail.password".to_owned(),
                    "is required with sendmail.username (or password_file, or $MAIL2LINE_SENDMAIL_PASSWORD)".into(),
                ));
            }
            if s.username.is_empty() && !s.password.is_empty() {
                p.push(("sendmail.username".to_owned(), "is required with a password: the login from [[smtp.users]] name".into()));
            }
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
        if self.line.channel_secret.is_empty() {
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

impl Line {
    /// What the chosen `token` kind needs. Missing credentials are a problem only for `serve`
    /// (`serve --dry-run` sends nothing); malformed ones always are.
    fn validate_token(&self, purpose: Purpose) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let serve = purpose == Purpose::Serve;
        let kind = self.token.name();
        if self.token != TokenKind::LongLived {
            if self.channel_id.is_empty() {
                if serve {
                    p.push((
                        "line.channel_id".to_owned(),
                        format!("is required with token = \"{kind}\": the channel's id (LINE Developers console > channel > Basic settings > Channel ID)"),
                    ));
                }
            } else if !self.channel_id.bytes().all(|b| b.is_ascii_digit()) || self.channel_id.len() > 20 {
                p.push(("line.channel_id".to_owned(), format!("{:?} is not a channel id (digits only, e.g. \"1234567890\")", self.channel_id)));
            }
        }
        match self.token {
            TokenKind::LongLived => {
                if serve && self.channel_access_token.is_empty() && self.channel_access_token_file.is_none() {
                    p.push((
                        "line.channel_access_token".to_owned(),
                        "is empty: set it in [line], in $LINE_CHANNEL_ACCESS_TOKEN or in the systemd credential line-channel-access-token (the LINE Developers console, channel > Messaging API > Channel access token), or use token = \"v2.1\" or \"stateless\"; `serve --dry-run` runs without one".into(),
                    ));
                }
            }
            TokenKind::V21 => {
                // A key that is present but unusable was reported by `resolve_signing_key`.
                if serve && self.private_key.is_empty() && self.private_key_file.is_none() {
                    p.push((
                        "line.private_key_file".to_owned(),
                        "is required with token = \"v2.1\": the private key (JWK or PEM) whose public key you registered in the LINE Developers console; or set $LINE_PRIVATE_KEY, or the systemd credential line-private-key".into(),
                    ));
                }
                if serve && self.kid.is_empty() {
                    p.push((
                        "line.kid".to_owned(),
                        "is required with token = \"v2.1\": the key id LINE showed when you registered the public key (console > channel > Basic settings > Assertion Signing Key); or set $LINE_KID, or put it in the JWK as \"kid\"".into(),
                    ));
                }
            }
            TokenKind::Stateless => {
                if serve && self.channel_secret.is_empty() && self.channel_secret_file.is_none() {
                    p.push((
                        "line.channel_secret".to_owned(),
                        "is required with token = \"stateless\": the channel secret (console > channel > Basic settings); or set $LINE_CHANNEL_SECRET, or the systemd credential line-channel-secret".into(),
                    ));
                }
            }
        }
        p
    }
}

/// For `token = "v2.1"`: checks that the private key (already read from `$LINE_PRIVATE_KEY`,
/// `private_key_file` or `private_key`) is a usable RSA key, and fills `kid` from `$LINE_KID` or
/// from the JWK when the file does not set it. Problems name where the key came from, never
/// its content.
fn resolve_signing_key(line: &mut Line, env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    if let Some(kid) = env("LINE_KID").filter(|k| !k.trim().is_empty()) {
        line.kid = kid.trim().to_owned();
    }
    if line.private_key.is_empty() {
        return Vec::new();
    }
    match crate::line::token::SigningKey::parse(line.private_key.expose()) {
        Ok(key) => {
            if line.kid.is_empty() {
                line.kid = key.jwk_kid().unwrap_or_default().to_owned();
            }
            Vec::new()
        }
        Err(msg) => {
            let from_env = env("LINE_PRIVATE_KEY").is_some_and(|v| !v.is_empty());
            let (key, msg) = match (&line.private_key_file, from_env) {
                (_, true) => ("line.private_key", format!("$LINE_PRIVATE_KEY: {msg}")),
                (Some(file), false) => ("line.private_key_file", format!("{}: {msg}", file.display())),
                (None, false) => ("line.private_key", msg),
            };
            vec![(key.to_owned(), msg)]
        }
    }
}

/// `channel_id = "1234567890"` or `channel_id = 1234567890`: the console shows a number, so
/// both spellings are accepted.
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(u64),
    }
    match Either::deserialize(d) {
        Ok(Either::Text(t)) => Ok(t.trim().to_owned()),
        Ok(Either::Number(n)) => Ok(n.to_string()),
        Err(_) => Err(serde::de::Error::custom("expected the channel id as a string of digits, e.g. \"1234567890\"")),
    }
}

/// Why a secret could not be read: from its `*_file`, or from its systemd credential.
enum SecretProblem {
    File(String),
    Credential(String),
}

/// Fills `secret` from the environment value, else from `file` (the inline value and the file
/// exclude each other), else from the systemd credential; says which one it used. Messages
/// name the file, never the content.
fn resolve_secret(
    secret: &mut Secret,
    file: Option<&Path>,
    var: &str,
    env_value: Option<String>,
    credential: Option<(String, PathBuf)>,
) -> Result<Option<SecretSource>, SecretProblem> {
    if let Some(v) = env_value.filter(|v| !v.is_empty()) {
        *secret = Secret::new(v);
        return Ok(Some(SecretSource::Env(var.to_owned())));
    }
    if let Some(file) = file {
        if !secret.is_empty() {
            return Err(SecretProblem::File("set either the key itself or its _file, not both".into()));
        }
        *secret = read_secret_file(file).map_err(SecretProblem::File)?;
        return Ok(Some(SecretSource::File(file.to_owned())));
    }
    if !secret.is_empty() {
        return Ok(Some(SecretSource::Inline));
    }
    let Some((name, path)) = credential else { return Ok(None) };
    *secret = read_secret_file(&path).map_err(|e| SecretProblem::Credential(format!("systemd credential {name}: {e}")))?;
    Ok(Some(SecretSource::Credential { name, path }))
}

/// A secret kept in a file, without the line break editors and `echo` add.
fn read_secret_file(file: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(format!("{} is empty", file.display()));
    }
    Ok(Secret::new(value))
}

/// `"host:port"` or `"[v6]:port"` (for `[sendmail] server`): the host (without brackets) and
/// the port.
pub fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("{s:?} is not host:port, e.g. \"127.0.0.1:2525\", \"mx.example.com:587\" or \"[::1]:2525\"");
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(bad)?,
        None if host.contains(':') => return Err(bad()),
        None => host,
    };
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

fn is_local_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// The first `{name}` in `template` that is not in `allowed`.
fn unknown_placeholder(template: &str, allowed: &[&str]) -> Option<String> {
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let end = after.find('}')?;
        let name = &after[..end];
        if !allowed.contains(&name) {
            return Some(name.to_owned());
        }
        rest = &after[end + 1..];
    }
    None
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The line that defines `a.b`, or the line of table `[a]` when the key is absent.
fn key_line(doc: &toml_edit::ImDocument<String>, text: &str, key: &str) -> Option<usize> {
    let (table, field) = key.split_once('.').unwrap_or((key, ""));
    // `smtp.users[1].password_hash`: the key in the second `[[smtp.users]]`, or its header.
    if let Some((array, rest)) = field.split_once('[') {
        let (index, inner) = rest.split_once("].")?;
        let entry = doc.as_table().get(table)?.as_table_like()?.get(array)?.as_array_of_tables()?.get(index.parse().ok()?)?;
        let span = entry.get_key_value(inner).and_then(|(k, _)| k.span()).or_else(|| entry.span())?;
        return Some(line_of(text, span.start));
    }
    let table_item = doc.as_table().get(table)?;
    let span = table_item
        .as_table_like()
        .and_then(|t| t.get_key_value(field))
        .and_then(|(k, _)| k.span())
        .or_else(|| table_item.as_table().and_then(|t| t.span()))?;
    Some(line_of(text, span.start))
}

/// How many wrong keys one run reports at most (each costs a parse of the file).
const MAX_TYPE_PROBLEMS: usize = 50;

/// Deserializes the file, reporting every key of the wrong type or unknown name rather than the
/// first only: serde stops at the first error, so the offending `key = value` is blanked out
/// (spaces, line breaks kept so that later line numbers still hold) and the text is read again.
/// An error about a whole table (an unknown `[section]`, a missing field) blanks the table; when
/// the missing field is one blanked before, that error is not reported, being our own doing.
/// A syntax error ends the search: what follows it cannot be read reliably.
fn deserialize_all(text: &str, file: &str) -> Result<Config, Vec<String>> {
    let mut current = text.to_owned();
    let mut problems = Vec::new();
    // The keys blanked so far: a table's later complaint about one of them is our doing.
    let mut blanked: Vec<String> = Vec::new();
    for _ in 0..MAX_TYPE_PROBLEMS {
        let e = match toml::from_str::<Config>(&current) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let found = e.span().and_then(|span| entry_around(&current, span.start));
        let ours = found.as_ref().is_some_and(|f| f.table && blanked.iter().any(|k| k.starts_with(&format!("{}.", f.key))));
        if !ours {
            problems.push(describe_toml_error(&current, file, &e, found.as_ref().map(|f| f.key.as_str())));
        }
        let Some(found) = found else { break };
        let mut progress = false;
        for range in found.ranges {
            let spaces: String = current[range.clone()].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
            progress |= spaces != current[range.clone()];
            current.replace_range(range, &spaces);
        }
        blanked.push(found.key);
        if !progress {
            break;
        }
    }
    Err(problems)
}

/// What holds a deserialization error: a `key = value`, or a whole table.
struct Found {
    /// The full key, e.g. `smtp.users[1].name`.
    key: String,
    /// Byte ranges to blank: the entry, or the table's header and each of its entries (not the
    /// text between them, which may belong to other tables).
    ranges: Vec<Range<usize>>,
    table: bool,
}

/// The innermost `key = value`, or else table, whose text contains `offset`.
fn entry_around(text: &str, offset: usize) -> Option<Found> {
    fn entry_range(table: &dyn toml_edit::TableLike, name: &str, value: &toml_edit::Value) -> Option<Range<usize>> {
        Some(table.key(name)?.span()?.start..value.span()?.end)
    }
    /// A table's header and entries, subtables included.
    fn table_ranges(table: &toml_edit::Table) -> Vec<Range<usize>> {
        let mut ranges: Vec<Range<usize>> = table.span().into_iter().collect();
        for (name, item) in table.iter() {
            match item {
                toml_edit::Item::Value(value) => ranges.extend(entry_range(table, name, value)),
                toml_edit::Item::Table(t) => ranges.extend(table_ranges(t)),
                toml_edit::Item::ArrayOfTables(array) => array.iter().for_each(|t| ranges.extend(table_ranges(t))),
                toml_edit::Item::None => {}
            }
        }
        ranges
    }
    fn in_table(table: &toml_edit::Table, path: String, offset: usize) -> Option<Found> {
        if let Some(found) = search(table, &path, offset) {
            return Some(found);
        }
        let ranges = table_ranges(table);
        ranges.iter().any(|r| r.contains(&offset)).then_some(Found { key: path, ranges, table: true })
    }
    fn search(table: &toml_edit::Table, prefix: &str, offset: usize) -> Option<Found> {
        for (name, item) in table.iter() {
            let path = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
            let found = match item {
                toml_edit::Item::Value(value) => entry_range(table, name, value)
                    .filter(|r| r.contains(&offset))
                    .map(|r| Found { key: path, ranges: vec![r], table: false }),
                toml_edit::Item::Table(t) => in_table(t, path, offset),
                toml_edit::Item::ArrayOfTables(array) => {
                    array.iter().enumerate().find_map(|(i, t)| in_table(t, format!("{path}[{i}]"), offset))
                }
                toml_edit::Item::None => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let doc = toml_edit::ImDocument::parse(text.to_owned()).ok()?;
    search(doc.as_table(), "", offset)
}

/// Turns a TOML/serde error into `file:line: key: message`, naming the full key: `key` when
/// the document says which entry holds the error, else the key written on that line.
fn describe_toml_error(text: &str, file: &str, e: &toml::de::Error, key: Option<&str>) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return format!("{file}: {message}");
    };
    let line = line_of(text, span.start);
    match key.map(str::to_owned).or_else(|| key_at(text, line)) {
        Some(key) => format!("{file}:{line}: {key}: {message}"),
        None => format!("{file}:{line}: {message}"),
    }
}

/// The dotted key defined on `line` (1-based), from the nearest `[table]` header above it.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    if here.starts_with('[') {
        return Some(here.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    }
    let key = here.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return None;
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const GOOD: &str = r#"
[smtp]
listen = "127.0.0.1:2525"
domain = "Text.Line.Example.com"

[line]
channel_access_token = "tok"
"#;

    #[test]
    fn a_good_file_with_defaults() {
        let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!(c.smtp.domain, "text.line.example.com");
        assert_eq!(c.smtp.max_message_bytes, 10_485_760);
        assert_eq!(c.line.api_base_url, "https://api.line.me");
        assert_eq!(c.message.template, "{subject}\n\n{body}");
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.storage.dir, PathBuf::from("./data"));
        assert_eq!(c.line.channel_access_token.expose(), "tok");
        assert_eq!(c.delivery.mode, DeliveryMode::Spool);
        assert_eq!(c.delivery.max_age.parse(), Ok(Duration::from_secs(3 * 86400)));
        assert_eq!(c.delivery.max_requests_per_second, 2000);
        assert_eq!(c.delivery.max_multicast_per_second, 200);
    }

    #[test]
    fn webhook_aliases_and_routing() {
        let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert_eq!((c.webhook.path.as_str(), c.webhook.welcome, c.routing.followers_address.as_str()), ("/webhook", true, "followers"));
        assert_eq!(c.webhook.address_keyword, vec!["address", "アドレス"]);
        assert!(!c.smtp.require_follower);
        let text = "[smtp]\ndomain = \"a.b\"\nrequire_follower = true\n\n[aliases]\nops = [\"U0123456789abcdef0123456789abcdef\", \"C0123456789abcdef0123456789abcdef\"]\n";
        let c = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert!(c.smtp.require_follower);
        assert_eq!(c.aliases["ops"].ids.len(), 2);
        let text = "[smtp]\ndomain = \"a.b\"\n\n[aliases]\nops = [\"bob\"]\nfollowers = [\"U0123456789abcdef0123456789abcdef\"]\n\n[webhook]\npath = \"hook\"\nwelcome_template = \"hi {name}\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:5: aliases.ops: alias \"ops\": \"bob\" is not a LINE id"), "{e}");
        assert!(e.contains("alias \"followers\" clashes with routing.followers_address"), "{e}");
        assert!(e.contains("c.toml:9: webhook.path:"), "{e}");
        assert!(e.contains("webhook.welcome_template: unknown placeholder {name}"), "{e}");
    }

    #[test]
    fn followers_access_and_alias_tables() {
        let hash = crate::smtp::auth::hash_password("pw").unwrap();
        let head = format!("[smtp]\ndomain = \"a.b\"\nauth = \"optional\"\nallow_plaintext_auth_on_loopback = true\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"{hash}\"\n");
        const U: &str = "U0123456789abcdef0123456789abcdef";
        // Closed by default: both lists empty.
        let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert!(c.routing.followers_senders.is_empty() && c.routing.followers_users.is_empty());
        // Every form of alias: a plain list, an inline table, a table of its own; tables with
        // neither senders nor users are open like a list.
        let text = format!(
            "{head}[routing]\nfollowers_senders = [\"@example.com\", \"cron@host.example\"]\nfollowers_users = [\"cms\"]\n[aliases]\nteam = [\"{U}\"]\nops = {{ ids = [\"{U}\"], senders = [\"@corp.example\"], users = [\"cms\"] }}\nopen = {{ ids = [\"{U}\"] }}\n[aliases.deploy]\nids = [\"{U}\"]\nusers = [\"cms\"]\n"
        );
        let c = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert_eq!(c.routing.followers_senders, vec!["@example.com", "cron@host.example"]);
        assert_eq!(c.routing.followers_users, vec!["cms"]);
        assert_eq!(c.aliases["team"], Alias { ids: vec![U.into()], ..Alias::default() });
        assert!(!c.aliases["team"].is_protected() && !c.aliases["open"].is_protected());
        assert_eq!(c.aliases["ops"], Alias { ids: vec![U.into()], senders: vec!["@corp.example".into()], users: vec!["cms".into()] });
        assert!(c.aliases["ops"].is_protected() && c.aliases["deploy"].is_protected());

        // Each mistake names its key and line. Types first (a field misspelt, a table without
        // ids, a value that is neither list nor table): values are checked once types are right.
        let bad_types = format!(
            "{head}[aliases]\nops = {{ ids = [\"{U}\"], sender = [\"@corp.example\"] }}\nnoids = {{ senders = [\"@corp.example\"] }}\nnum = 5\n"
        );
        let e = Config::parse(&bad_types, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:9: aliases.ops: unknown field `sender`, expected one of `ids`, `senders`, `users`"), "{e}");
        assert!(e.contains("c.toml:10: aliases.noids: missing field `ids`"), "{e}");
        assert!(e.contains("c.toml:11: aliases.num: invalid type: integer `5`, expected a list of LINE ids, or a table"), "{e}");
        // Then values: a bad id, a bad sender entry, an unknown login.
        let bad_values = format!(
            "{head}[routing]\nfollowers_senders = [\"example.com\"]\nfollowers_users = [\"nobody\"]\n[aliases]\nteam = {{ ids = [\"bob\"], senders = [\"@corp..example\"], users = [\"root\"] }}\n"
        );
        let e = Config::parse(&bad_values, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:12: aliases.team: alias \"team\": \"bob\" is not a LINE id"), "{e}");
        assert!(e.contains("c.toml:12: aliases.team: senders: \"@corp..example\" is not a domain pattern"), "{e}");
        assert!(e.contains("c.toml:12: aliases.team: users: \"root\" is not a login in [[smtp.users]]"), "{e}");
        assert!(e.contains("c.toml:9: routing.followers_senders: \"example.com\" is neither an address"), "{e}");
        assert!(e.contains("c.toml:10: routing.followers_users: \"nobody\" is not a login in [[smtp.users]]"), "{e}");
        // The table form of its own, `[aliases.team]`, is located too.
        let own_table = format!("{head}[aliases.team]\nids = [\"{U}\"]\nsenders = [\"nobody\"]\n");
        let e = Config::parse(&own_table, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:8: aliases.team: senders: \"nobody\" is neither"), "{e}");
        // A login that exists but can never log in.
        let off = format!("[smtp]\ndomain = \"a.b\"\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"{hash}\"\n[routing]\nfollowers_users = [\"cms\"]\n");
        let e = Config::parse(&off, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:7: routing.followers_users: \"cms\" can never log in while smtp.auth is \"off\""), "{e}");
    }

    #[test]
    fn media_section() {
        let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert_eq!(c.media.base_url(), None);
        assert_eq!(c.media.retention.parse(), Ok(Duration::from_secs(7 * 86400)));
        assert!(!c.media.serve_attachments);
        assert_eq!(c.media.max_attachment_bytes, 10 * 1024 * 1024);
        let text = "[smtp]\ndomain = \"a.b\"\n[media]\npublic_base_url = \"https://m.example.com/\"\nretention = \"2h\"\nserve_attachments = true\nmax_attachment_bytes = 5\n";
        let c = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert_eq!(c.media.base_url(), Some("https://m.example.com"));
        assert_eq!(c.media.retention.parse(), Ok(Duration::from_secs(7200)));
        assert_eq!((c.media.serve_attachments, c.media.max_attachment_bytes), (true, 5));
        for bad in ["http://m.example.com", "https://", "m.example.com", "https://a b"] {
            let text = format!("[smtp]\ndomain = \"a.b\"\n[media]\n\npublic_base_url = {bad:?}\n");
            let e = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
            assert!(e.problems[0].starts_with("c.toml:5: media.public_base_url:"), "{e}");
            assert!(e.problems[0].contains("https"), "{e}");
        }
        let text = "[smtp]\ndomain = \"a.b\"\n[media]\nretention = \"a week\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:4: media.retention:"), "{e}");
    }

    #[test]
    fn delivery_section() {
        let text = "[smtp]\ndomain = \"a.b\"\n[delivery]\nmode = \"direct\"\nmax_age = \"72h\"\nworkers = 3\n";
        let c = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert_eq!((c.delivery.mode, c.delivery.worker_count()), (DeliveryMode::Direct, 3));
        assert_eq!(c.delivery.max_age.parse(), Ok(Duration::from_secs(72 * 3600)));
        let text = "[smtp]\ndomain = \"a.b\"\n[delivery]\nmax_age = 7200\n";
        assert_eq!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap().delivery.max_age.parse(), Ok(Duration::from_secs(7200)));
        let text = "[smtp]\ndomain = \"a.b\"\n[delivery]\nmode = \"later\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:4: delivery.mode: unknown variant `later`"), "{e}");
        let text = "[smtp]\ndomain = \"a.b\"\n[delivery]\n\nmax_age = \"3 weeks\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:5: delivery.max_age: \"3 weeks\" has an unknown unit"), "{e}");
    }

    #[test]
    fn environment_overrides_secrets() {
        let env = |k: &str| match k {
            "LINE_CHANNEL_ACCESS_TOKEN" => Some("from-env".to_owned()),
            "LINE_CHANNEL_SECRET" => Some("sec-env".to_owned()),
            _ => None,
        };
        let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &env).unwrap();
        assert_eq!(c.line.channel_access_token.expose(), "from-env");
        assert_eq!(c.line.channel_secret.expose(), "sec-env");
    }

    #[test]
    fn secrets_from_files_and_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        let tok = dir.path().join("token");
        std::fs::write(&tok, "file-token-value\n").unwrap();
        let sec = dir.path().join("secret");
        std::fs::write(&sec, "file-secret-value").unwrap();
        let text = format!(
            "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token_file = \"{}\"\nchannel_secret_file = \"{}\"\n",
            tok.display(),
            sec.display()
        );
        let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!(c.line.channel_access_token.expose(), "file-token-value");
        assert_eq!(c.line.channel_secret.expose(), "file-secret-value");
        // The environment still wins.
        let env = |k: &str| (k == "LINE_CHANNEL_ACCESS_TOKEN").then(|| "env-token".to_owned());
        assert_eq!(Config::parse(&text, "c.toml", Purpose::Serve, &env).unwrap().line.channel_access_token.expose(), "env-token");
        // Both inline and file; a missing file; an empty file: each named by key and line.
        std::fs::write(&sec, "\n").unwrap();
        let text = format!(
            "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token = \"inline-token\"\nchannel_access_token_file = \"{}\"\nchannel_secret_file = \"{}\"\n",
            tok.display(),
            sec.display()
        );
        let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:5: line.channel_access_token_file: set either the key itself or its _file, not both"), "{e}");
        assert!(e.contains("c.toml:6: line.channel_secret_file:") && e.contains("is empty"), "{e}");
        let text = "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token_file = \"/nonexistent/tok\"\n";
        let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:4: line.channel_access_token_file: cannot read /nonexistent/tok: No such file or directory"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        assert!(!e.contains("file-token-value") && !e.contains("inline-token"));
    }

    #[test]
    fn every_wrong_key_is_reported_at_once() {
        let text = "[smtp]\ndomain = \"a.b\"\nmax_mesage_bytes = 5\nmax_recipients = \"ten\"\nallowed_clients = [\n  1,\n  2,\n]\n\n[line]\ntimeout_secs = -1\ntoken = \"v3\"\n\n[delivery]\nmode = \"later\"\n\n[[smtp.users]]\nname = \"a\"\n[[smtp.users]]\nname = [\"b\"]\n\n[smtpp]\nlisten = 1\n\n[webhook]\nwelcome = \"yes\"\n";
        let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err();
        let all = e.to_string();
        for want in [
            "c.toml:3: smtp.max_mesage_bytes: unknown field",
            "c.toml:4: smtp.max_recipients: invalid type: string \"ten\"",
            "c.toml:6: smtp.allowed_clients: invalid type: integer `1`",
            "c.toml:11: line.timeout_secs: invalid value: integer `-1`",
            "c.toml:12: line.token: unknown variant `v3`",
            "c.toml:15: delivery.mode: unknown variant `later`",
            "c.toml:20: smtp.users[1].name: invalid type: sequence",
            "c.toml:22: smtpp: unknown field `smtpp`",
            "c.toml:26: webhook.welcome: invalid type: string",
        ] {
            assert!(all.contains(want), "missing {want:?} in:\n{all}");
        }
        assert_eq!(e.problems.len(), 9, "{all}");
        // A syntax error stops the search: nothing after it can be read.
        let e = Config::parse("[smtp]\ndomain = \n[line]\ntimeout_secs = \"x\"\n", "c.toml", Purpose::Serve, &no_env).unwrap_err();
        assert_eq!(e.problems.len(), 1, "{e}");
    }

    #[test]
    fn systemd_credentials_fill_what_nothing_else_sets() {
        let creds = tempfile::tempdir().unwrap();
        let put = |name: &str, value: &str| std::fs::write(creds.path().join(name), value).unwrap();
        put("line-channel-access-token", "cred-token\n");
        put("line-channel-secret", "cred-secret");
        put("smtp-user-cms-password-hash", &crate::smtp::auth::hash_password("pw").unwrap());
        let dir = creds.path().to_str().unwrap().to_owned();
        let env = |k: &str| (k == "CREDENTIALS_DIRECTORY").then(|| dir.clone());
        let text = "[smtp]\ndomain = \"a.b\"\n[[smtp.users]]\nname = \"cms\"\n";
        let c = Config::parse(text, "c.toml", Purpose::DryRun, &env).unwrap();
        assert_eq!(c.line.channel_access_token.expose(), "cred-token");
        assert_eq!(c.line.channel_secret.expose(), "cred-secret");
        assert!(c.smtp.users[0].password_hash.expose().starts_with("$argon2id$"));
        let source = |key: &str| c.secret_sources.iter().find(|(k, _)| k == key).map(|(_, s)| s.to_string());
        assert_eq!(source("line.channel_access_token"), Some(format!("systemd credential line-channel-access-token ({dir}/line-channel-access-token)")));
        assert!(source("smtp.users[0].password_hash").unwrap().starts_with("systemd credential smtp-user-cms-password-hash"));
        // A TLS certificate credential fills in smtp.tls_cert_file; alone, it lacks its key.
        put("smtp-tls-cert", "not read: the key is missing");
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &env).unwrap_err().to_string();
        assert!(e.contains("smtp.tls_cert_file: needs smtp.tls_key_file too"), "{e}");
        std::fs::remove_file(creds.path().join("smtp-tls-cert")).unwrap();
        // The file and the environment win over a credential, and say so.
        let env2 = |k: &str| match k {
            "CREDENTIALS_DIRECTORY" => Some(dir.clone()),
            "LINE_CHANNEL_SECRET" => Some("env-secret".to_owned()),
            _ => None,
        };
        let text = "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token = \"inline-token\"\n";
        let c = Config::parse(text, "c.toml", Purpose::Serve, &env2).unwrap();
        assert_eq!((c.line.channel_access_token.expose(), c.line.channel_secret.expose()), ("inline-token", "env-secret"));
        assert_eq!(c.secret_sources[0], ("line.channel_access_token".to_owned(), SecretSource::Inline));
        assert_eq!(c.secret_sources[1], ("line.channel_secret".to_owned(), SecretSource::Env("LINE_CHANNEL_SECRET".into())));
        // An empty credential is named by key, credential and path; the value never shows.
        put("line-channel-access-token", "\n");
        let e = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::Serve, &env).unwrap_err().to_string();
        assert!(e.contains(&format!("c.toml: line.channel_access_token: systemd credential line-channel-access-token: {dir}/line-channel-access-token is empty")), "{e}");
        // Without $CREDENTIALS_DIRECTORY nothing is looked up, and the message says where a token may come from.
        let e = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.contains("the systemd credential line-channel-access-token"), "{e}");
    }

    #[test]
    fn risky_settings_are_warned_about() {
        let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
        let w = c.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].starts_with("line.channel_secret is not set: the webhook will refuse every LINE event"), "{w:?}");
        let text = "[smtp]\ndomain = \"a.b\"\nlisten = \"0.0.0.0:25\"\n[line]\nchannel_secret = \"s\"\n";
        let w = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap().warnings();
        assert_eq!(w, vec!["smtp.listen 0.0.0.0:25 is not loopback and neither smtp.auth nor smtp.allowed_clients is set: anyone who can reach this port can send LINE messages to your followers".to_owned()]);
        let text = "[smtp]\ndomain = \"a.b\"\nlisten = \"0.0.0.0:25\"\nallowed_clients = [\"10.0.0.0/8\"]\n[line]\nchannel_secret = \"s\"\n";
        assert!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap().warnings().is_empty());
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let text = "[smtp]\ndomain = \"a.b\"\nmax_mesage_bytes = 5\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(e.problems[0].starts_with("c.toml:3: smtp.max_mesage_bytes: unknown field `max_mesage_bytes`"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntimeout_secs = \"ten\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:5: line.timeout_secs: invalid type: string \"ten\""), "{e}");
        let text = "[smtp]\nlisten = \"nope\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:2: smtp.listen: invalid socket address"), "{e}");
    }

    #[test]
    fn syntax_error_names_the_line() {
        let e = Config::parse("[smtp]\ndomain = \n", "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:2:"), "{e}");
    }

    #[test]
    fn validation_lists_every_problem_with_lines_and_no_secret() {
        let text = "[smtp]\ndomain = \"bad domain\"\nmax_recipients = 0\n\n[line]\napi_base_url = \"ftp://x\"\nchannel_secret = \"s3cret-value\"\n\n[message]\ntemplate = \"{subjekt}\"\n";
        let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err();
        let all = e.to_string();
        assert!(all.contains("c.toml:2: smtp.domain: \"bad domain\" is not a domain name"), "{all}");
        assert!(all.contains("c.toml:3: smtp.max_recipients: must be between 1 and 1000"), "{all}");
        assert!(all.contains("c.toml:6: line.api_base_url:"), "{all}");
        assert!(all.contains("c.toml:5: line.channel_access_token: is empty"), "{all}");
        assert!(all.contains("c.toml:10: message.template:"), "{all}");
        assert!(all.contains("subjekt"), "{all}");
        assert!(!all.contains("s3cret-value"));
        assert_eq!(e.problems.len(), 5, "{all}");
    }

    #[test]
    fn message_quoted_and_signature() {
        let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!((c.message.quoted, c.message.signature), (Quoted::Collapse, Signature::Keep));
        let text = format!("{GOOD}\n[message]\nquoted = \"keep\"\nsignature = \"drop\"\n");
        let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!(c.message.rules(), Rules { quoted: Quoted::Keep, signature: Signature::Drop });
        // A wrong word names the key and the words allowed.
        let text = format!("{GOOD}\n[message]\nquoted = \"hide\"\n");
        let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.contains("message.quoted: unknown variant `hide`, expected `keep` or `collapse`"), "{e}");
        let text = format!("{GOOD}\n[message]\nsignature = true\n");
        let e = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.contains("message.signature:"), "{e}");
    }

    #[test]
    fn missing_domain_points_at_the_table_or_the_file() {
        let e = Config::parse("[smtp]\nlisten = \"127.0.0.1:25\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(e.problems[0].starts_with("c.toml:1: smtp.domain: is required"), "{e}");
        let e = Config::parse("", "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml: smtp.domain: is required"), "{e}");
    }

    #[test]
    fn dry_run_needs_no_token() {
        let text = "[smtp]\ndomain = \"a.b\"\n";
        assert!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).is_ok());
        assert!(Config::parse(text, "c.toml", Purpose::Serve, &no_env).is_err());
    }

    #[test]
    fn config_path_precedence() {
        assert_eq!(resolve_path(Some(Path::new("/a")), Some("/b".into())), PathBuf::from("/a"));
        assert_eq!(resolve_path(None, Some("/b".into())), PathBuf::from("/b"));
        // Without either: ./config.toml when it is there, else the system path.
        assert_eq!(default_path(true), PathBuf::from("./config.toml"));
        assert_eq!(default_path(false), PathBuf::from("/etc/mail2line/config.toml"));
        let expected = default_path(Path::new(DEFAULT_PATH).exists());
        assert_eq!(resolve_path(None, None), expected);
        assert_eq!(resolve_path(None, Some(String::new())), expected);
    }

    #[test]
    fn sendmail_section_and_client_purpose() {
        // The client reads no gateway secret file (www-data cannot read them) and needs no token.
        let text = "[smtp]\ndomain = \"a.b\"\ntls_cert_file = \"/nonexistent/c.pem\"\ntls_key_file = \"/nonexistent/k.pem\"\n[line]\nchannel_access_token_file = \"/nonexistent/tok\"\n[sendmail]\nserver = \"[::1]:2525\"\ntls = \"starttls\"\n";
        let c = Config::parse(text, "c.toml", Purpose::Client, &no_env).unwrap();
        assert_eq!((c.sendmail.server.as_deref(), c.sendmail.tls, c.sendmail.timeout_secs), (Some("[::1]:2525"), ClientTls::Starttls, 60));
        assert!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).is_err());
        assert_eq!(Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::Client, &no_env).unwrap().sendmail.tls, ClientTls::Off);
        // Password: environment, then file, then inline; only the client resolves it.
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "file-pass\n").unwrap();
        let text = format!("[smtp]\ndomain = \"a.b\"\n[sendmail]\nusername = \"cms\"\npassword_file = \"{}\"\n", pw.display());
        assert_eq!(Config::parse(&text, "c.toml", Purpose::Client, &no_env).unwrap().sendmail.password.expose(), "file-pass");
        let env = |k: &str| (k == "MAIL2LINE_SENDMAIL_PASSWORD").then(|| "env-pass".to_owned());
        assert_eq!(Config::parse(&text, "c.toml", Purpose::Client, &env).unwrap().sendmail.password.expose(), "env-pass");
        let gone = "[smtp]\ndomain = \"a.b\"\n[sendmail]\nusername = \"cms\"\npassword_file = \"/nonexistent/pw\"\n";
        assert!(Config::parse(gone, "c.toml", Purpose::DryRun, &no_env).is_ok());
        let e = Config::parse(gone, "c.toml", Purpose::Client, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:5: sendmail.password_file: cannot read /nonexistent/pw"), "{e}");
        // Every problem named by key and line, the password never shown.
        let text = "[smtp]\ndomain = \"a.b\"\n[sendmail]\nserver = \"gateway\"\npassword = \"s3cret-pw\"\ntls_ca_file = \"/ca.pem\"\ntimeout_secs = 0\n";
        let e = Config::parse(text, "c.toml", Purpose::Client, &no_env).unwrap_err().to_string();
        for want in [
            "c.toml:4: sendmail.server: \"gateway\" is not host:port",
            "c.toml:7: sendmail.timeout_secs: must be at least 1",
            "c.toml:6: sendmail.tls_ca_file: is used only with tls",
            "c.toml:3: sendmail.username: is required with a password",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        assert!(!e.contains("s3cret-pw"), "{e}");
        let e = Config::parse("[smtp]\ndomain = \"a.b\"\n[sendmail]\nusername = \"cms\"\n", "c.toml", Purpose::Client, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:3: sendmail.password: is required with sendmail.username"), "{e}");
        let e = Config::parse("[smtp]\ndomain = \"a.b\"\n[sendmail]\ntls = \"yes\"\n", "c.toml", Purpose::Client, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:4: sendmail.tls: unknown variant `yes`, expected one of `off`, `starttls`, `tls`"), "{e}");
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("127.0.0.1:2525"), Ok(("127.0.0.1".into(), 2525)));
        assert_eq!(split_host_port("mx.example.com:587"), Ok(("mx.example.com".into(), 587)));
        assert_eq!(split_host_port("[::1]:25"), Ok(("::1".into(), 25)));
        for bad in ["", "host", "host:", ":25", "host:0", "host:99999", "::1:25", "[::1:25", "a b:25"] {
            assert!(split_host_port(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn token_kinds_and_what_each_needs() {
        let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!(c.line.token, TokenKind::LongLived);
        // v2.1 with nothing: channel id, key and kid are each named with the [line] line.
        let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"v2.1\"\n";
        let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err();
        let all = e.to_string();
        assert!(all.contains("c.toml:4: line.channel_id: is required with token = \"v2.1\""), "{all}");
        assert!(all.contains("c.toml:4: line.private_key_file: is required with token = \"v2.1\""), "{all}");
        assert!(all.contains("c.toml:4: line.kid: is required with token = \"v2.1\""), "{all}");
        assert!(!all.contains("channel_access_token"), "{all}");
        assert_eq!(e.problems.len(), 3, "{all}");
        // ...but `serve --dry-run` needs no credentials.
        assert!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).is_ok());
        // stateless: channel id and secret.
        let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"stateless\"\nchannel_id = \"12ab\"\n";
        let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err();
        let all = e.to_string();
        assert!(all.contains("c.toml:6: line.channel_id: \"12ab\" is not a channel id"), "{all}");
        assert!(all.contains("c.toml:4: line.channel_secret: is required with token = \"stateless\""), "{all}");
        let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"stateless\"\nchannel_id = 1234567890\nchannel_secret = \"s\"\n";
        let c = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!((c.line.token, c.line.channel_id.as_str()), (TokenKind::Stateless, "1234567890"));
        let env = |k: &str| (k == "LINE_CHANNEL_SECRET").then(|| "env-secret".to_owned());
        let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"stateless\"\nchannel_id = \"1\"\n";
        assert_eq!(Config::parse(text, "c.toml", Purpose::Serve, &env).unwrap().line.channel_secret.expose(), "env-secret");
        // An unknown kind lists the three.
        let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"short-lived\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:5: line.token: unknown variant `short-lived`, expected one of `long-lived`, `v2.1`, `stateless`"), "{e}");
        let text = "[smtp]\ndomain = \"a.b\"\n\n[line]\nchannel_id = [1]\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err();
        assert!(e.problems[0].starts_with("c.toml:5: line.channel_id: expected the channel id"), "{e}");
    }

    #[test]
    fn v21_private_key_sources_kid_and_errors() {
        use crate::line::token::test_key::jwk;
        let dir = tempfile::tempdir().unwrap();
        let d = jwk()["d"].as_str().unwrap().to_owned();
        let key_file = dir.path().join("key.json");
        let mut with_kid = jwk();
        with_kid["kid"] = "kid-in-jwk".into();
        std::fs::write(&key_file, with_kid.to_string()).unwrap();
        let text = |file: &Path| {
            format!("[smtp]\ndomain = \"a.b\"\n\n[line]\ntoken = \"v2.1\"\nchannel_id = \"1234567890\"\nprivate_key_file = \"{}\"\n", file.display())
        };
        // kid from the JWK, then from the file, then from $LINE_KID.
        let c = Config::parse(&text(&key_file), "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!((c.line.token, c.line.kid.as_str()), (TokenKind::V21, "kid-in-jwk"));
        let creds = crate::line::token::Credentials::from_config(&c.line).unwrap();
        assert_eq!(creds.describe(), "v2.1 channel access tokens for channel 1234567890, signed with key id kid-in-jwk");
        let c = Config::parse(&format!("{}kid = \"kid-in-file\"\n", text(&key_file)), "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!(c.line.kid, "kid-in-file");
        let env = |k: &str| (k == "LINE_KID").then(|| "kid-in-env".to_owned());
        assert_eq!(Config::parse(&text(&key_file), "c.toml", Purpose::Serve, &env).unwrap().line.kid, "kid-in-env");
        // No kid anywhere.
        std::fs::write(&key_file, jwk().to_string()).unwrap();
        let e = Config::parse(&text(&key_file), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:4: line.kid: is required"), "{e}");
        // A key in $LINE_PRIVATE_KEY, no file at all.
        let env = |k: &str| match k {
            "LINE_PRIVATE_KEY" => Some(jwk().to_string()),
            "LINE_KID" => Some("k".to_owned()),
            _ => None,
        };
        let inline = "[smtp]\ndomain = \"a.b\"\n[line]\ntoken = \"v2.1\"\nchannel_id = \"1\"\n";
        assert!(Config::parse(inline, "c.toml", Purpose::Serve, &env).is_ok());
        // Unreadable and unparsable keys: named by key and line, content never shown.
        let e = Config::parse(&text(Path::new("/nonexistent/key.json")), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:7: line.private_key_file: cannot read /nonexistent/key.json"), "{e}");
        let mut public = jwk();
        public.as_object_mut().unwrap().remove("d");
        public["p"] = format!("{d}!").into();
        std::fs::write(&key_file, public.to_string()).unwrap();
        let e = Config::parse(&format!("{}kid = \"k\"\n", text(&key_file)), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.contains(&format!("c.toml:7: line.private_key_file: {}: has no \"d\": this is the public key", key_file.display())), "{e}");
        assert!(!e.contains(&d[..16]), "{e}");
        let bad_env = |k: &str| (k == "LINE_PRIVATE_KEY").then(|| format!("-----BEGIN RSA PRIVATE KEY-----\n{d}\n-----END RSA PRIVATE KEY-----"));
        let e = Config::parse(&format!("{inline}kid = \"k\"\n"), "c.toml", Purpose::Serve, &bad_env).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:3: line.private_key: $LINE_PRIVATE_KEY: is not a readable RSA private key"), "{e}");
        assert!(!e.contains(&d[..16]), "{e}");
        let e = Config::parse(&format!("{inline}private_key = \"{d}\"\nkid = \"k\"\n"), "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:6: line.private_key: is neither a JWK"), "{e}");
        assert!(!e.contains(&d[..16]), "{e}");
        // A long-lived configuration does not look at the key.
        let text = "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token = \"t\"\nprivate_key = \"junk\"\n";
        assert!(Config::parse(text, "c.toml", Purpose::Serve, &no_env).is_ok());
    }

    #[test]
    fn log_section() {
        let c = Config::parse(GOOD, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!((c.log.format, c.log.level.as_str()), (LogFormat::Text, "info"));
        let json = format!("{GOOD}\n[log]\nformat = \"json\"\nlevel = \"warn,mail2line::spool=debug\"\n");
        let c = Config::parse(&json, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!((c.log.format, c.log.level.as_str()), (LogFormat::Json, "warn,mail2line::spool=debug"));
        let bad = format!("{GOOD}\n[log]\nformat = \"xml\"\n");
        let e = Config::parse(&bad, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:10: log.format: ") && e.contains("text") && e.contains("json"), "{e}");
        let bad = format!("{GOOD}\n[log]\nlevel = \"inof\"\n");
        let e = Config::parse(&bad, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:10: log.level: \"inof\" is not a level"), "{e}");
        let bad = format!("{GOOD}\n[webhook]\npath = \"/metrics\"\n");
        let e = Config::parse(&bad, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        assert!(e.starts_with("c.toml:10: webhook.path: \"/metrics\" is taken by monitoring"), "{e}");
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

    #[test]
    fn example_file_is_valid() {
        let text = include_str!("../config.toml.example");
        let c = Config::parse(text, "config.toml.example", Purpose::DryRun, &no_env).unwrap();
        assert_eq!(c.smtp.domain, "text.line.example.com");
    }

    #[test]
    fn example_sendmail_keys_parse_when_uncommented() {
        // The [sendmail] keys are commented out in the example; their names and values must
        // still be right for whoever uncomments them.
        let text = include_str!("../config.toml.example");
        let start = text.find("\n[sendmail]\n").expect("the example has a [sendmail] table");
        let mut uncommented = text[..start].to_owned();
        for line in text[start..].lines() {
            let key = line.strip_prefix("# ").filter(|l| l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')));
            uncommented.push_str(key.unwrap_or(line));
            uncommented.push('\n');
        }
        // password and password_file are exclusive; keep the file one commented.
        let uncommented = uncommented.replace("\npassword_file = ", "\n# password_file = ").replace("tls = \"off\"", "tls = \"starttls\"");
        let c = Config::parse(&uncommented, "config.toml.example", Purpose::DryRun, &no_env).unwrap();
        assert_eq!(c.sendmail.server.as_deref(), Some("127.0.0.1:2525"));
        assert_eq!((c.sendmail.username.as_str(), c.sendmail.tls, c.sendmail.timeout_secs), ("cron", ClientTls::Starttls, 60));
        assert!(c.sendmail.tls_ca_file.is_some());
    }

    #[test]
    fn max_image_pixels_has_a_default_and_named_errors() {
        let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert_eq!(c.media.max_image_pixels, 40_000_000);
        let text = "[smtp]\ndomain = \"a.b\"\n[media]\nmax_image_pixels = 12000000\n";
        assert_eq!(Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap().media.max_image_pixels, 12_000_000);
        for bad in ["0", "2000000000"] {
            let text = format!("[smtp]\ndomain = \"a.b\"\n[media]\nmax_image_pixels = {bad}\n");
            let e = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
            assert!(e.contains("c.toml:4: media.max_image_pixels: must be between 1 and 1000000000"), "{e}");
        }
    }

    #[test]
    fn auth_check_bounds_have_defaults_and_named_errors() {
        let c = Config::parse("[smtp]\ndomain = \"a.b\"\n", "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert_eq!((c.smtp.max_auth_checks, c.smtp.max_auth_queue), (0, 64));
        let text = "[smtp]\ndomain = \"a.b\"\nmax_auth_checks = 4\nmax_auth_queue = 0\n";
        let c = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap();
        assert_eq!((c.smtp.max_auth_checks, c.smtp.max_auth_queue), (4, 0));
        let text = "[smtp]\ndomain = \"a.b\"\nmax_auth_checks = 1000\nmax_auth_queue = 1000000\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:3: smtp.max_auth_checks: must be at most 256"), "{e}");
        assert!(e.contains("c.toml:4: smtp.max_auth_queue: must be at most 100000"), "{e}");
        let text = "[smtp]\ndomain = \"a.b\"\nmax_auth_queue = -1\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:3: smtp.max_auth_queue:"), "{e}");
    }

    #[test]
    fn smtp_security_keys_and_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["gw.example".to_owned()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.key_pair.serialize_pem()).unwrap();
        let hash = crate::smtp::auth::hash_password("pw").unwrap();
        let text = format!(
            "[smtp]\ndomain = \"a.b\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_listen = \"127.0.0.1:4650\"\nrequire_tls = true\nauth = \"optional\"\nallowed_clients = [\"10.0.0.0/8\"]\nallowed_senders = [\"@example.com\"]\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"{hash}\"\n[line]\nchannel_access_token = \"t\"\n",
            cert.display(),
            key.display()
        );
        let c = Config::parse(&text, "c.toml", Purpose::Serve, &no_env).unwrap();
        assert_eq!(c.smtp.auth, AuthMode::Optional);
        assert_eq!(c.smtp.users[0].password_hash.expose(), hash);
        // The environment overrides a user's hash.
        let other = crate::smtp::auth::hash_password("pw2").unwrap();
        let env = |k: &str| (k == "MAIL2LINE_SMTP_USER_CMS_PASSWORD_HASH").then(|| other.clone());
        assert_eq!(Config::parse(&text, "c.toml", Purpose::Serve, &env).unwrap().smtp.users[0].password_hash.expose(), other);

        let text = "[smtp]\ndomain = \"a.b\"\ntls_listen = \"127.0.0.1:4650\"\nrequire_tls = true\nauth = \"required\"\nallowed_clients = [\"10.0.0.0/33\"]\nallowed_senders = [\"nobody\"]\nmax_failed_commands = 0\n[[smtp.users]]\nname = \"cms\"\npassword_hash = \"not-a-hash-s3cret\"\n[[smtp.users]]\nname = \"cms\"\n[line]\nchannel_access_token = \"t\"\n";
        let e = Config::parse(text, "c.toml", Purpose::Serve, &no_env).unwrap_err().to_string();
        for want in [
            "c.toml:3: smtp.tls_listen: needs smtp.tls_cert_file and smtp.tls_key_file",
            "c.toml:4: smtp.require_tls: needs",
            "c.toml:5: smtp.auth: needs TLS",
            "c.toml:6: smtp.allowed_clients: \"10.0.0.0/33\"",
            "c.toml:7: smtp.allowed_senders: \"nobody\"",
            "c.toml:8: smtp.max_failed_commands: must be at least 1",
            "c.toml:11: smtp.users[0].password_hash: is not a password hash; make one with: echo -n PASSWORD | mail2line hash-password",
            "c.toml:13: smtp.users[1].name: \"cms\" appears twice",
            "c.toml:12: smtp.users[1].password_hash: is required",
        ] {
            assert!(e.contains(want), "missing {want:?} in:\n{e}");
        }
        assert!(!e.contains("s3cret"), "{e}");
        let text = "[smtp]\ndomain = \"a.b\"\nauth = \"sometimes\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:3: smtp.auth:") && e.contains("off"), "{e}");
        let text = "[smtp]\ndomain = \"a.b\"\nauth = \"optional\"\n";
        let e = Config::parse(text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("no [[smtp.users]]"), "{e}");
        let text = format!("[smtp]\ndomain = \"a.b\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n", key.display(), key.display());
        let e = Config::parse(&text, "c.toml", Purpose::DryRun, &no_env).unwrap_err().to_string();
        assert!(e.contains("c.toml:3: smtp.tls_cert_file:"), "{e}");
    }
}
