//! `mail2line check-config [--online]`: loads the configuration exactly as `serve` would,
//! reports every problem (each with its file line and key, see `config`) and every risky
//! but valid setting, says where each secret comes from, and with `--online` proves that the
//! credentials and `line.api_base_url` work by asking LINE who the bot is (`GET /v2/bot/info`),
//! and, when `[replies] relay` is set, that the relay answers EHLO (and STARTTLS and AUTH as
//! configured), so answers from LINE can be mailed; with `[storage] url`, that PostgreSQL takes
//! the login and promises durable commits (the same connect `serve` does; nothing is written).
//!
//! Exit status, so scripts and `ExecStartPre=` can tell the cases apart (LINE's, when both
//! checks fail):
//! * 0 — fine (warnings do not count);
//! * 78 (EX_CONFIG) — the configuration has errors, LINE refused the credentials, or the relay
//!   refused the login, TLS or EHLO;
//! * 69 (EX_UNAVAILABLE) — LINE or the relay could not be reached, or LINE is rate-limiting or
//!   in trouble;
//! * 76 (EX_PROTOCOL) — something answered that is not the LINE Messaging API.
//!
//! No secret is printed: the configuration keeps them in `Secret`, LINE's error messages never
//! quote the token, the relay's never quote the password, and, in case a wrong `api_base_url`
//! points at a server that echoes requests, the configured secrets are removed from the answers
//! before they are shown.

use std::path::Path;

use super::output::{EX_CONFIG, EX_PROTOCOL, EX_UNAVAILABLE};
use crate::config::{self, Config, Purpose, SecretSource};
use crate::line::client::{BotInfo, ProbeError};
use crate::line::TokenKind;
use crate::line::outcome::RetryReason;
use crate::line::LineClient;
use crate::replies::{Relay, RelayError, RelayUrl};

/// The real API, the default `line.api_base_url`.
const LINE_API: &str = "https://api.line.me";

/// Runs the command; returns the exit status.
pub fn main(flag: Option<&Path>, online: bool) -> u8 {
    let (path, loaded) = config::load_for_command(flag, Purpose::Serve);
    let cfg = match loaded {
        Ok(cfg) => cfg,
        Err(e) => {
            println!("{e}");
            if online {
                println!("LINE: not checked: fix the configuration first");
            }
            return EX_CONFIG;
        }
    };
    println!("{}: ok", path.display());
    for line in summary(&cfg) {
        println!("  {line}");
    }
    for warning in warnings(&cfg, &path) {
        println!("warning: {warning}");
    }
    if !online {
        return 0;
    }
    let (code, message) = probe(&cfg);
    println!("{}", redact(&message, &cfg));
    // The database: reached, logged in, durable, and a commit goes through.
    let code = match probe_database(&cfg) {
        None => code,
        Some((db_code, message)) => {
            println!("{}", redact(&message, &cfg));
            if code != 0 { code } else { db_code }
        }
    };
    let Some(url) = &cfg.replies.relay_url else { return code };
    let (relay_code, message) = probe_relay(url, &cfg);
    println!("{}", redact(&message, &cfg));
    if code != 0 {
        code
    } else {
        relay_code
    }
}

/// What the gateway will do with this configuration, and where each secret comes from.
fn summary(cfg: &Config) -> Vec<String> {
    let mut lines = vec![format!("SMTP on {} for <LINE id>@{}", cfg.smtp.listen, cfg.smtp.domain)];
    if let Some(tls) = cfg.smtp.tls_listen {
        lines.push(format!("SMTP with implicit TLS on {tls}"));
    }
    lines.push(match crate::pg::describe_url(cfg.storage.url.trim()) {
        Ok(target) if cfg.storage.is_postgres() => format!(
            "store: PostgreSQL at {target} as node {} (claims last {} s); local files in {}",
            cfg.storage.node_id(),
            cfg.storage.lease_secs,
            cfg.storage.dir.display()
        ),
        _ => format!("store: SQLite in {}", cfg.storage.dir.display()),
    });
    if cfg.channels.is_empty() {
        let credentials = cfg.line.credentials().map(|c| c.describe()).unwrap_or_else(|e| e.to_string());
        lines.push(format!("LINE API at {} with {credentials}", cfg.line.api_base_url));
    }
    for ch in &cfg.channels {
        let credentials = ch.line.credentials().map(|c| c.describe()).unwrap_or_else(|e| e.to_string());
        let logins = if ch.users.is_empty() { String::new() } else { format!(" for logins {}", ch.users.join(", ")) };
        let store = match cfg.storage.is_postgres() {
            true => format!("PostgreSQL rows of channel {:?}", ch.name),
            false => super::stores::channel_dir(cfg, &ch.name).display().to_string(),
        };
        lines.push(format!(
            "channel {}: <LINE id>@{}{logins}; webhook POST /webhook/{}; LINE API at {} with {credentials}; {} pushes/s; store {store}",
            ch.name, ch.domain, ch.name, ch.line.api_base_url, ch.rates.0
        ));
    }
    if let Some(url) = &cfg.replies.relay_url {
        let login = if cfg.replies.username.is_empty() { String::new() } else { format!(", logging in as {:?}", cfg.replies.username) };
        lines.push(format!("answers from LINE mailed through {url} from {}{login}", cfg.replies.from_address()));
    }
    for (key, source) in &cfg.secret_sources {
        lines.push(format!("{key}: {source}"));
    }
    lines
}

/// The configuration's own warnings, and one about secrets written in a file everybody can read
/// (with `DynamicUser=` the file must be world-readable, which is why secrets belong in
/// credentials there).
fn warnings(cfg: &Config, path: &Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut warnings = cfg.warnings();
    let inline: Vec<&str> = cfg.secret_sources.iter().filter(|(_, s)| *s == SecretSource::Inline).map(|(k, _)| k.as_str()).collect();
    let world_readable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o004 != 0);
    if !inline.is_empty() && world_readable {
        warnings.push(format!(
            "{} is readable by every user of this machine and holds secrets ({}): move them to the environment, a *_file, or systemd credentials (README: \"Running as a service\"), or chmod o-r the file",
            path.display(),
            inline.join(", ")
        ));
    }
    warnings
}

/// Asks LINE for the bot's information with the configured credentials.
fn probe(cfg: &Config) -> (u8, String) {
    if cfg.channels.is_empty() {
        return probe_line(cfg, &cfg.line, &cfg.storage.dir, "line.channel_access_token");
    }
    // Each channel, one line each; the first failure's status.
    let mut code = 0;
    let mut out = Vec::new();
    for (i, ch) in cfg.channels.iter().enumerate() {
        let (c, message) = probe_line(cfg, &ch.line, &super::stores::channel_dir(cfg, &ch.name), &format!("channels[{i}].channel_access_token"));
        if code == 0 {
            code = c;
        }
        out.push(format!("channel {}: {message}", ch.name));
    }
    (code, out.join("\n"))
}

/// Asks LINE who the bot of `line` is; `dir` is where `serve` keeps its token, `token_key` the
/// key its token came from.
fn probe_line(cfg: &Config, line: &crate::line::Settings, dir: &Path, token_key: &str) -> (u8, String) {
    let credentials = match line.credentials() {
        Ok(c) => c,
        Err(e) => return (EX_CONFIG, format!("LINE: not checked: {e}")),
    };
    // A v2.1 token issued here is kept where `serve` looks for it, so checking does not spend
    // one of the channel's 30 valid v2.1 tokens each time; only if the directory already exists
    // (a check on another machine must not create it).
    let store = dir.is_dir().then(|| dir.join(crate::line::token::TOKEN_FILE));
    let client = match LineClient::new(&line.api_base_url, credentials, std::time::Duration::from_secs(line.timeout_secs), store.clone()) {
        Ok(c) => c,
        Err(e) => return (EX_UNAVAILABLE, format!("LINE: not checked: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return (EX_UNAVAILABLE, format!("LINE: not checked: cannot start the async runtime: {e}")),
    };
    let answer = runtime.block_on(client.bot_info());
    if let Some(file) = &store {
        give_to_directory_owner(file);
    }
    let token_source = cfg.secret_sources.iter().find(|(k, _)| k == token_key).map(|(_, s)| s);
    explain(&answer, &Context { kind: line.token, api_base_url: &line.api_base_url, timeout_secs: line.timeout_secs, token_source })
}

/// With `[storage] url`: connects as `serve` would (login, the durability check) and reads the
/// schema version, changing nothing; None without a URL. A database that cannot be reached is
/// EX_UNAVAILABLE, one that refuses the login or is not durable EX_CONFIG.
fn probe_database(cfg: &Config) -> Option<(u8, String)> {
    if !cfg.storage.is_postgres() {
        return None;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return Some((EX_UNAVAILABLE, format!("database: not checked: cannot start the async runtime: {e}"))),
    };
    let password = (!cfg.storage_password.is_empty()).then(|| cfg.storage_password.clone());
    let node = cfg.storage.node_id();
    Some(runtime.block_on(async {
        let db = match crate::pg::Database::connect(cfg.storage.url.trim(), password, &super::stores::app_name(&format!("{node}-check"))).await {
            Ok(db) => db,
            Err(e @ (crate::pg::PgError::Unreachable { .. } | crate::pg::PgError::TlsFailed { .. })) => return (EX_UNAVAILABLE, format!("database: {e}")),
            Err(e) => return (EX_CONFIG, format!("database: {e}")),
        };
        match db.schema_version().await {
            Ok(Some(v)) => (0, format!("database: ok: {} (schema version {v}, commits are durable)", db.target())),
            Ok(None) => (0, format!("database: ok: {} (empty: `mail2line serve` creates the tables at its first start)", db.target())),
            Err(e) => (EX_UNAVAILABLE, format!("database: {e}")),
        }
    }))
}

/// Connects to `[replies] relay` as the gateway will (EHLO, STARTTLS, AUTH) and says QUIT.
fn probe_relay(url: &RelayUrl, cfg: &Config) -> (u8, String) {
    let r = &cfg.replies;
    let relay = match Relay::new(url, &r.username, Some(r.password.clone()), cfg.hostname()) {
        Ok(relay) => relay,
        Err(e) => return (EX_CONFIG, format!("relay: not checked: {e}")),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return (EX_UNAVAILABLE, format!("relay: not checked: cannot start the async runtime: {e}")),
    };
    explain_relay(&runtime.block_on(relay.probe()))
}

/// The exit status and the message for the relay's answer.
fn explain_relay(answer: &Result<String, RelayError>) -> (u8, String) {
    match answer {
        Ok(saw) => (0, format!("relay: ok, {saw}")),
        Err(e) if e.is_unreachable() => (EX_UNAVAILABLE, format!("relay: {e}")),
        Err(e) => (EX_CONFIG, format!("relay: {e}")),
    }
}

/// Root checking the configuration of a service that runs as another user (systemd's
/// `DynamicUser=`) must not leave it a token file it cannot read: the file gets the owner of
/// the storage directory. Nothing happens when the file is absent or already theirs, and a
/// failure only costs the service one token issue.
fn give_to_directory_owner(file: &Path) {
    use std::os::unix::fs::MetadataExt;
    let (Some(dir), Ok(meta)) = (file.parent(), std::fs::symlink_metadata(file)) else { return };
    let Ok(dir_meta) = std::fs::metadata(dir) else { return };
    if (meta.uid(), meta.gid()) != (dir_meta.uid(), dir_meta.gid()) {
        let _ = std::os::unix::fs::chown(file, Some(dir_meta.uid()), Some(dir_meta.gid()));
    }
}

/// What [`explain`] needs to know about the configuration.
struct Context<'a> {
    kind: TokenKind,
    api_base_url: &'a str,
    timeout_secs: u64,
    token_source: Option<&'a SecretSource>,
}

/// The exit status and the message for the probe's answer: what happened and what to do.
fn explain(answer: &Result<BotInfo, ProbeError>, cx: &Context) -> (u8, String) {
    let url = cx.api_base_url.trim_end_matches('/');
    let check_base = if url == LINE_API {
        "line.api_base_url is LINE's".to_owned()
    } else {
        format!("line.api_base_url is {url:?}; for LINE it is \"{LINE_API}\"")
    };
    match answer {
        Ok(bot) => (0, format!("LINE: ok, bot {} ({})", bot.display_name, bot.basic_id)),
        Err(ProbeError::Token(e)) => {
            let what = e.message.trim_end_matches("; deliveries are retried later");
            match e.reason {
                RetryReason::Unreachable => (
                    EX_UNAVAILABLE,
                    format!("LINE: unreachable: {what}. Check that this machine reaches {url} (DNS, firewall, $HTTPS_PROXY) and that {check_base}"),
                ),
                _ => (EX_CONFIG, format!("LINE: credentials refused: {what}")),
            }
        }
        Err(ProbeError::Transport(why)) => {
            let why = if why == "no answer in time" { format!("no answer within line.timeout_secs = {} s", cx.timeout_secs) } else { why.clone() };
            (
                EX_UNAVAILABLE,
                format!("LINE: unreachable: GET {url}/v2/bot/info: {why}. Check that this machine reaches {url} (DNS, firewall, $HTTPS_PROXY) and that {check_base}"),
            )
        }
        Err(ProbeError::Status { status, message, request_id }) => {
            let said = match (message.is_empty(), request_id) {
                (true, None) => format!("{status}"),
                (true, Some(id)) => format!("{status}, x-line-request-id {id}"),
                (false, None) => format!("{status} {message}"),
                (false, Some(id)) => format!("{status} {message}, x-line-request-id {id}"),
            };
            match (status, cx.kind) {
                (401, TokenKind::LongLived) => {
                    let from = cx.token_source.map(|s| format!(" ({s})")).unwrap_or_default();
                    (
                        EX_CONFIG,
                        format!(
                            "LINE: the long-lived channel access token{from} was refused ({said}): it is mistyped, or was reissued or revoked. Issue a new one in the LINE Developers console (your channel > Messaging API > Channel access token (long-lived)), put it where this one came from, and restart the gateway"
                        ),
                    )
                }
                (401, kind) => (
                    EX_CONFIG,
                    format!(
                        "LINE: refused a {} channel access token it had just issued ({said}): check that line.channel_id is the Messaging API channel of this bot and that {check_base}",
                        kind.name()
                    ),
                ),
                (403, _) => (
                    EX_CONFIG,
                    format!(
                        "LINE: the channel access token may not use the Messaging API ({said}): use a token of a Messaging API channel (not a LINE Login channel) whose LINE Official Account is active"
                    ),
                ),
                (429, _) => (EX_UNAVAILABLE, format!("LINE: rate-limiting this channel ({said}); try again in a minute")),
                (500.., _) => (EX_UNAVAILABLE, format!("LINE: in trouble ({said}); try again later")),
                _ => (EX_PROTOCOL, format!("LINE: GET {url}/v2/bot/info answered {said}: this is not the LINE Messaging API; {check_base}")),
            }
        }
        Err(ProbeError::Body(e)) => (
            EX_PROTOCOL,
            format!("LINE: GET {url}/v2/bot/info answered without bot information ({e}): this is not the LINE Messaging API; {check_base}"),
        ),
    }
}

/// `text` with every configured secret cut out.
fn redact(text: &str, cfg: &Config) -> String {
    let mut out = text.to_owned();
    let line = &cfg.line;
    let channels = cfg.channels.iter().flat_map(|c| [&c.line.channel_access_token, &c.line.channel_secret, &c.line.private_key]);
    for secret in [&line.channel_access_token, &line.channel_secret, &line.private_key, &cfg.replies.password, &cfg.storage_password].into_iter().chain(channels) {
        if secret.expose().len() >= 4 {
            out = out.replace(secret.expose(), "<redacted>");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::token::TokenError;

    fn cx(kind: TokenKind) -> Context<'static> {
        Context { kind, api_base_url: "https://api.line.me/", timeout_secs: 10, token_source: None }
    }

    fn status(status: u16, message: &str) -> Result<BotInfo, ProbeError> {
        Err(ProbeError::Status { status, message: message.into(), request_id: Some("req-1".into()) })
    }

    #[test]
    fn each_answer_gets_its_code_and_advice() {
        let bot = BotInfo { user_id: "U1".into(), basic_id: "@abc".into(), display_name: "Ops bot".into(), premium_id: None };
        assert_eq!(explain(&Ok(bot), &cx(TokenKind::LongLived)), (0, "LINE: ok, bot Ops bot (@abc)".to_owned()));

        let source = SecretSource::Env("LINE_CHANNEL_ACCESS_TOKEN".into());
        let with_source = Context { token_source: Some(&source), ..cx(TokenKind::LongLived) };
        let (code, text) = explain(&status(401, "Authentication failed."), &with_source);
        assert_eq!(code, EX_CONFIG);
        assert!(text.contains("long-lived channel access token ($LINE_CHANNEL_ACCESS_TOKEN) was refused (401 Authentication failed., x-line-request-id req-1)"), "{text}");
        assert!(text.contains("Issue a new one"), "{text}");
        let (code, text) = explain(&status(401, ""), &cx(TokenKind::Stateless));
        assert_eq!(code, EX_CONFIG);
        assert!(text.contains("refused a stateless channel access token it had just issued (401, x-line-request-id req-1)"), "{text}");
        assert_eq!(explain(&status(403, "x"), &cx(TokenKind::LongLived)).0, EX_CONFIG);
        assert_eq!(explain(&status(429, "x"), &cx(TokenKind::LongLived)).0, EX_UNAVAILABLE);
        assert_eq!(explain(&status(503, "x"), &cx(TokenKind::LongLived)).0, EX_UNAVAILABLE);
        let (code, text) = explain(&status(404, "Not found"), &cx(TokenKind::LongLived));
        assert_eq!(code, EX_PROTOCOL);
        assert!(text.contains("GET https://api.line.me/v2/bot/info answered 404 Not found") && text.contains("not the LINE Messaging API"), "{text}");
        assert_eq!(explain(&Err(ProbeError::Body("missing field `basicId`".into())), &cx(TokenKind::LongLived)).0, EX_PROTOCOL);

        let (code, text) = explain(&Err(ProbeError::Transport("no answer in time".into())), &cx(TokenKind::LongLived));
        assert_eq!(code, EX_UNAVAILABLE);
        assert!(text.contains("no answer within line.timeout_secs = 10 s"), "{text}");

        let refused = TokenError { reason: RetryReason::NoAccessToken, message: "LINE did not issue a v2.1 channel access token (400 invalid_client): check line.kid; deliveries are retried later".into() };
        let (code, text) = explain(&Err(ProbeError::Token(refused)), &cx(TokenKind::V21));
        assert_eq!((code, text.as_str()), (EX_CONFIG, "LINE: credentials refused: LINE did not issue a v2.1 channel access token (400 invalid_client): check line.kid"));
        let unreachable = TokenError { reason: RetryReason::Unreachable, message: "cannot get a v2.1 channel access token: cannot reach LINE's token endpoint".into() };
        assert_eq!(explain(&Err(ProbeError::Token(unreachable)), &cx(TokenKind::V21)).0, EX_UNAVAILABLE);
    }

    #[test]
    fn relay_answers_get_their_code() {
        assert_eq!(explain_relay(&Ok("smtp://mx:25 answered EHLO as mx".into())), (0, "relay: ok, smtp://mx:25 answered EHLO as mx".to_owned()));
        let down = RelayError::Unreachable { relay: "smtp://mx:25".into(), why: "Connection refused".into() };
        assert_eq!(explain_relay(&Err(down)).0, EX_UNAVAILABLE);
        let refused = RelayError::AuthRefused { relay: "smtp://mx:25".into(), username: "gw".into(), answer: "535 no".into() };
        let (code, text) = explain_relay(&Err(refused));
        assert_eq!(code, EX_CONFIG);
        assert!(text.starts_with("relay: smtp://mx:25 refused the login \"gw\": 535 no; check replies.username"), "{text}");
        assert_eq!(explain_relay(&Err(RelayError::NoStartTls { relay: "smtp+starttls://mx:587".into() })).0, EX_CONFIG);
    }

    #[test]
    fn configured_secrets_are_cut_out() {
        let text = "[smtp]\ndomain = \"a.b\"\n[line]\nchannel_access_token = \"tok-123456\"\nchannel_secret = \"sec-abcdef\"\n[replies]\npassword = \"relay-pw-99\"\nusername = \"gw\"\n";
        let cfg = Config::parse(text, "c.toml", Purpose::Serve, &|_| None).unwrap();
        assert_eq!(redact("echo: Bearer tok-123456 sec-abcdef relay-pw-99", &cfg), "echo: Bearer <redacted> <redacted> <redacted>");
    }
}
