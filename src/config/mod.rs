//! The one typed configuration: reads the TOML, resolves secrets and gathers the pieces.
//!
//! Each module owns its table's type and checks it (`smtp::Settings`, `line::Settings`,
//! `media::Settings`, `logging::Settings`, `http::webhook::Settings`); this module only reads
//! the file into them, resolves their secrets and calls their checks. What a check parses (the
//! message template, the TLS certificate, the client, sender and recipient lists, the v2.1
//! signing key) is kept in the configuration, so `serve` does not parse it again. The tables no
//! module owns yet (`[delivery]`, `[quota]`, `[routing]`, `[aliases]`, `[sendmail]`, `[http]`,
//! `[storage]`) are still defined and checked here.
//!
//! Every problem is reported with the file, the line and the full key (`smtp.domain`), and all
//! problems are reported at once so an admin fixes the file in one pass (`errors.rs`). Secrets
//! are kept in [`Secret`] so no error or log line can print them; each comes from the
//! environment, else the file (the key or its `*_file`), else a systemd credential
//! (`secrets.rs`), and the config remembers which ([`SecretSource`]) for `check-config`.

mod errors;
mod secrets;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::compose::quoting::{Quoted, Rules, Signature};
use crate::compose::template::Template;
use crate::secret::Secret;
use crate::smtp::access::{AuthMode, RecipientAccess};

// The modules' own settings under the names the sections had here, for the commands.
pub use crate::clock::DurationValue;
pub use crate::http::webhook::Settings as Webhook;
pub use crate::line::{Settings as Line, TokenKind};
pub use crate::logging::{LogFormat, Settings as Log};
pub use crate::media::Settings as Media;
pub use crate::smtp::{Settings as Smtp, User as SmtpUser};
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
    /// Who may send to each protected alias (one with `senders` or `users`), parsed; filled in
    /// by [`Config::parse`]. The other aliases are open.
    #[serde(skip)]
    pub alias_access: HashMap<String, RecipientAccess>,
}


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
    /// `followers_senders` and `followers_users` parsed; filled in by [`Config::parse`].
    #[serde(skip)]
    pub followers_access: RecipientAccess,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            followers_address: "followers".into(),
            followers_senders: Vec::new(),
            followers_users: Vec::new(),
            followers_access: RecipientAccess::default(),
        }
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
pub struct MessageSection {
    pub template: String,
    /// `"collapse"` (default): a run of more than 3 quoted (`>`) lines becomes `(N quoted lines)`.
    pub quoted: Quoted,
    /// `"drop"`: the body ends at its `-- ` signature separator (default `"keep"`).
    pub signature: Signature,
    /// `template` parsed, with `quoted` and `signature` as its body rules: filled in by
    /// [`Config::parse`], so that `serve` does not parse it again.
    #[serde(skip)]
    pub compiled: Template,
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
            compiled: Template::default(),
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
            Err(e) => p.push(("delivery.dead_retention".to_owned(), e.to_string())),
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
            p.extend(self.validate_recipient_access());
        }
        p.extend(self.validate_sendmail(purpose));
        p.extend(self.line.validate(purpose == Purpose::Serve));
        p.extend(self.validate_disk_and_http());
        match self.delivery.max_age.parse() {
            Ok(d) if d < Duration::from_secs(60) => p.push(("delivery.max_age".to_owned(), "must be at least one minute".into())),
            Ok(_) => {}
            Err(e) => p.push(("delivery.max_age".to_owned(), e.to_string())),
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
        p.extend(self.webhook.validate());
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
        match Template::parse(&self.message.template) {
            Ok(template) => self.message.compiled = template.with_rules(self.message.rules()),
            Err(e) => p.push(("message.template".to_owned(), e.to_string())),
        }
        p.extend(self.log.validate());
        p
    }

    /// Who may send to `followers@` and to protected aliases: sender patterns as
    /// `allowed_senders`, logins that exist and can log in.
    /// Keeps the lists parsed.
    fn validate_recipient_access(&mut self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        let r = &self.routing;
        let followers = self.check_access_lists(&mut p, ("routing.followers_senders", ""), &r.followers_senders, ("routing.followers_users", ""), &r.followers_users);
        let mut aliases = HashMap::new();
        for (name, alias) in self.aliases.iter().filter(|(_, alias)| alias.is_protected()) {
            // An inline table has no line per field: the key is the alias, the field leads the message.
            let key = format!("aliases.{name}");
            aliases.extend(self.check_access_lists(&mut p, (&key, "senders: "), &alias.senders, (&key, "users: "), &alias.users).map(|a| (name.clone(), a)));
        }
        (self.routing.followers_access, self.alias_access) = (followers.unwrap_or_default(), aliases);
        p
    }

    /// Problems with one pair of access lists; each key comes with a prefix for its messages.
    fn check_access_lists(&self, p: &mut Vec<(String, String)>, senders_key: (&str, &str), senders: &[String], users_key: (&str, &str), users: &[String]) -> Option<RecipientAccess> {
        let access = RecipientAccess::parse(senders, users).map_err(|e| p.push((senders_key.0.to_owned(), format!("{}{e}", senders_key.1)))).ok();
        let (key, field) = users_key;
        for user in users {
            if !self.smtp.users.iter().any(|u| u.name == *user) {
                p.push((key.to_owned(), format!("{field}{user:?} is not a login in [[smtp.users]]")));
            } else if self.smtp.auth == AuthMode::Off {
                p.push((key.to_owned(), format!("{field}{user:?} can never log in while smtp.auth is \"off\"; set it to \"optional\" or \"required\"")));
            }
        }
        access
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



#[cfg(test)]
mod tests;
