//! `[[channels]]`: several LINE channels in one gateway (issue #21, section 2), read and
//! checked here because a channel is made of other modules' settings (`[line]`'s keys, an
//! `[aliases]` table, `[quota]`, `[delivery]`'s rate limits) and only `config` sees them all.
//!
//! A channel is a lane: its own LINE credentials, token renewal, spool, rate limiter, quota,
//! follower registry, webhook (`/webhook/<name>`), aliases and `followers@`. Without
//! `[[channels]]` the `[line]` table is the one unnamed channel, exactly as before; with it,
//! every lane is named and `[line]` (when present) only gives defaults.
//!
//! What is inherited from `[line]`: `api_base_url`, `api_data_base_url`, `token` and
//! `timeout_secs`. The credentials (`channel_id`, `private_key(_file)`, `kid`,
//! `channel_access_token(_file)`, `channel_secret(_file)`) never are: a channel that forgot its
//! own would otherwise send its mail as another shop's LINE account.
//!
//! How a recipient picks its channel is decided by `smtp::channels` (pure); here the
//! configuration is refused when that choice could be ambiguous, naming both entries.
//!
//! `[replies]` stays one gateway-wide table (one relay, one `from` and `to`); what it needs of a
//! channel (its `channel_secret`, for the webhook its answers arrive on) is checked per entry.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Deserialize;

use crate::secret::Secret;
use crate::smtp::access::{AuthMode, RecipientAccess};
use crate::smtp::Alias;
use crate::spool::settings::Quota;

use super::{Config, Line, TokenKind};

/// One `[[channels]]` entry. The `[line]` keys are read as written and merged with `[line]`'s
/// into [`Channel::line`] when the file is loaded (`Config::build_channels`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// `[a-z0-9-]+`: in log lines, the metrics label `channel="<name>"`, the webhook path
    /// `/webhook/<name>`, the data directory `storage.dir/channels/<name>` and `--channel`.
    pub name: String,
    /// Recipients `<id>@<domain>` use this channel; empty: `smtp.domain`. Stored lower case.
    #[serde(default)]
    pub domain: String,
    /// `[[smtp.users]]` logins allowed to send through this channel; empty: every sender the
    /// gateway accepts. Required when several channels share a domain (it tells them apart).
    #[serde(default)]
    pub users: Vec<String>,
    /// The channel's own `[aliases]` (same forms); `followers@<domain>` reaches its followers.
    #[serde(default, deserialize_with = "crate::smtp::aliases_from")]
    pub aliases: BTreeMap<String, Alias>,
    // `[line]` keys; the inherited ones are `Option` so that "not written" can be told apart.
    #[serde(default)]
    api_base_url: Option<String>,
    #[serde(default)]
    api_data_base_url: Option<String>,
    #[serde(default)]
    token: Option<TokenKind>,
    #[serde(default, deserialize_with = "channel_id")]
    channel_id: String,
    #[serde(default)]
    pub private_key: Secret,
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    #[serde(default)]
    kid: String,
    #[serde(default)]
    pub channel_access_token: Secret,
    #[serde(default)]
    pub channel_access_token_file: Option<PathBuf>,
    #[serde(default)]
    pub channel_secret: Secret,
    #[serde(default)]
    pub channel_secret_file: Option<PathBuf>,
    #[serde(default)]
    timeout_secs: Option<u64>,
    /// `[delivery] max_requests_per_second` for this channel (LINE's limit is per channel).
    #[serde(default)]
    max_requests_per_second: Option<u32>,
    /// `[delivery] max_multicast_per_second` for this channel.
    #[serde(default)]
    max_multicast_per_second: Option<u32>,
    /// The channel's `[quota]` table, which replaces `[quota]` whole (a key left out takes the
    /// built-in default, not `[quota]`'s): `quota = { monthly_budget = 5000, reserve = 50 }`.
    #[serde(default)]
    quota: Option<Quota>,
    /// The channel's `[line]` settings: its own keys over `[line]`'s inherited ones, secrets
    /// resolved. Filled in by `Config::build_channels` and the secrets' resolution.
    #[serde(skip)]
    pub line: Line,
    /// The quota that applies: `Channel::quota` or `[quota]`. Filled in when loaded.
    #[serde(skip)]
    pub quota_settings: Quota,
    /// The push and multicast rates that apply. Filled in when loaded.
    #[serde(skip)]
    pub rates: (u32, u32),
    /// Who may send to each protected alias, parsed (as [`Config::alias_access`]).
    #[serde(skip)]
    pub alias_access: HashMap<String, RecipientAccess>,
}

fn channel_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    crate::line::string_or_number(d)
}

/// The longest channel name: it becomes a path segment, a credential name and a label.
const MAX_NAME: usize = 63;

/// Whether `name` may name a channel: `[a-z0-9-]+`, at most [`MAX_NAME`] bytes.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The environment variable that overrides a channel's secret: `[line]`'s variable with the
/// name upper-cased and `-` as `_` appended, e.g. `LINE_CHANNEL_SECRET_SHOP_A`.
pub fn env_var(base: &str, channel: &str) -> String {
    format!("{base}_{}", channel.to_ascii_uppercase().replace('-', "_"))
}

/// The systemd credential of a channel's secret: `<name>-` before `[line]`'s credential name,
/// e.g. `shop-a-line-channel-secret`.
pub fn credential_name(base: &str, channel: &str) -> String {
    format!("{channel}-{base}")
}

impl Config {
    /// Merges each channel's `[line]` keys over `[line]`'s inherited ones, and picks its quota
    /// and rates; before the secrets are resolved (they are resolved into [`Channel::line`]).
    pub(super) fn build_channels(&mut self) {
        let defaults = &self.line;
        for ch in &mut self.channels {
            ch.domain = if ch.domain.is_empty() { self.smtp.domain.to_ascii_lowercase() } else { ch.domain.trim().to_ascii_lowercase() };
            ch.line = Line {
                api_base_url: ch.api_base_url.clone().unwrap_or_else(|| defaults.api_base_url.clone()),
                api_data_base_url: ch.api_data_base_url.clone().unwrap_or_else(|| defaults.api_data_base_url.clone()),
                token: ch.token.unwrap_or(defaults.token),
                channel_id: ch.channel_id.clone(),
                private_key: std::mem::take(&mut ch.private_key),
                private_key_file: ch.private_key_file.clone(),
                kid: ch.kid.clone(),
                channel_access_token: std::mem::take(&mut ch.channel_access_token),
                channel_access_token_file: ch.channel_access_token_file.clone(),
                channel_secret: std::mem::take(&mut ch.channel_secret),
                channel_secret_file: ch.channel_secret_file.clone(),
                timeout_secs: ch.timeout_secs.unwrap_or(defaults.timeout_secs),
                signing_key: None,
            };
            ch.quota_settings = ch.quota.clone().unwrap_or_else(|| self.quota.clone());
            ch.rates = (
                ch.max_requests_per_second.unwrap_or(self.delivery.max_requests_per_second),
                ch.max_multicast_per_second.unwrap_or(self.delivery.max_multicast_per_second),
            );
        }
    }

    /// Everything about `[[channels]]` that types cannot say; `(key, message)` problems, each
    /// ambiguity reported on both entries (so each gets its own line).
    pub(super) fn validate_channels(&mut self, serve: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if self.channels.is_empty() {
            return p;
        }
        if !self.aliases.is_empty() {
            p.push((
                "aliases".to_owned(),
                "with [[channels]], aliases belong to a channel (LINE ids differ between channels): move them into that channel's `aliases` table".into(),
            ));
        }
        let key = |i: usize, field: &str| format!("channels[{i}].{field}");
        for (i, ch) in self.channels.iter_mut().enumerate() {
            if !valid_name(&ch.name) {
                p.push((key(i, "name"), format!("{:?} is not a channel name: lowercase letters, digits and '-' (at most {MAX_NAME}), e.g. \"shop-a\"", ch.name)));
            }
            if ch.domain.is_empty() || !ch.domain.contains('.') || ch.domain.chars().any(|c| c == '@' || c.is_whitespace() || c.is_control()) {
                p.push((key(i, "domain"), format!("{:?} is not a mail domain; set domain (or [smtp] domain, its default), e.g. \"text.line.shop-a.example\"", ch.domain)));
            }
            for user in &ch.users {
                if !self.smtp.users.iter().any(|u| u.name == *user) {
                    p.push((key(i, "users"), format!("{user:?} is not a login in [[smtp.users]]")));
                } else if self.smtp.auth == AuthMode::Off {
                    p.push((key(i, "users"), format!("{user:?} can never log in while smtp.auth is \"off\"; set it to \"optional\" or \"required\"")));
                }
            }
            let prefix = format!("channels[{i}].");
            p.extend(ch.line.validate(serve).into_iter().map(|(k, m)| (k.replacen("line.", &prefix, 1), m)));
            // `[replies]` is gateway-wide, so every channel's followers may answer: each answer
            // arrives on its channel's webhook, which refuses every event without the secret.
            // An error here, not a warning as for the unnamed channel: among several channels
            // one without its secret is a forgotten line, and its answers would be lost unseen.
            if serve && self.replies.enabled() && ch.line.channel_secret.is_empty() {
                p.push((
                    key(i, "channel_secret"),
                    format!(
                        "is required with replies.relay: answers from channel {:?} arrive on its webhook /webhook/{}, which refuses every event without it; \
                         set channel_secret(_file), ${} or the systemd credential {}",
                        ch.name,
                        ch.name,
                        env_var("LINE_CHANNEL_SECRET", &ch.name),
                        credential_name(crate::credentials::LINE_CHANNEL_SECRET, &ch.name)
                    ),
                ));
            }
            if ch.rates.0 == 0 {
                p.push((key(i, "max_requests_per_second"), "must be at least 1".into()));
            }
            if ch.rates.1 == 0 {
                p.push((key(i, "max_multicast_per_second"), "must be at least 1".into()));
            }
            let q = &ch.quota_settings;
            if q.monthly_budget > 0 && q.reserve >= q.monthly_budget {
                p.push((key(i, "quota"), format!("reserve must be below monthly_budget ({})", q.monthly_budget)));
            }
            if q.pacing && self.delivery.coalesce_secs > 0 && q.max_coalesce_secs < self.delivery.coalesce_secs {
                p.push((key(i, "quota"), format!("max_coalesce_secs must be at least delivery.coalesce_secs ({})", self.delivery.coalesce_secs)));
            }
            // The aliases: the same checks as `[aliases]`, under this channel's key.
            let rename = |(k, m): (String, String)| (k.replacen("aliases.", &format!("{prefix}aliases."), 1), m);
            let (access_problems, access) = self.routing.validate_access(&ch.aliases, &self.smtp);
            p.extend(access_problems.into_iter().filter(|(k, _)| k.starts_with("aliases.")).map(rename));
            p.extend(self.routing.validate(&ch.aliases).into_iter().filter(|(k, _)| k.starts_with("aliases.")).map(rename));
            ch.alias_access = access;
        }
        p.extend(ambiguities(&self.channels));
        p
    }
}

/// Two channels one recipient could belong to: equal names, a shared domain where one of them
/// has no `users`, one login on two channels of a domain. Reported on both entries.
fn ambiguities(channels: &[Channel]) -> Vec<(String, String)> {
    let mut p = Vec::new();
    for (i, a) in channels.iter().enumerate() {
        for (j, b) in channels.iter().enumerate().skip(i + 1) {
            let both = |field: &str, msg: String| {
                [(format!("channels[{i}].{field}"), format!("{msg} (also channels[{j}])")), (format!("channels[{j}].{field}"), format!("{msg} (also channels[{i}])"))]
            };
            if a.name == b.name {
                p.extend(both("name", format!("two channels are named {:?}; each needs its own name", a.name)));
            }
            if a.domain != b.domain {
                continue;
            }
            if a.users.is_empty() || b.users.is_empty() {
                p.extend(both(
                    "users",
                    format!(
                        "channels {:?} and {:?} share the domain {:?}, so each needs `users` (the AUTH logins that pick it); or give each its own domain",
                        a.name, b.name, a.domain
                    ),
                ));
            }
            for user in a.users.iter().filter(|u| b.users.contains(u)) {
                p.extend(both("users", format!("login {user:?} is allowed on both {:?} and {:?} on the domain {:?}: which channel would its mail use?", a.name, b.name, a.domain)));
            }
        }
    }
    p
}
