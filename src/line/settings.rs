//! `[line]`: the Messaging API's address, the kind of channel access token and the secrets it
//! needs. The loader (`config`) reads the table and fills the secrets; what each token kind
//! needs is checked here, where the kinds are defined.

use std::path::PathBuf;

use serde::Deserialize;

use super::token::{Credentials, CredentialsError, SigningKey, TokenKind};
use crate::secret::Secret;

/// `[line]`: how the gateway reaches the Messaging API and authenticates to it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub api_base_url: String,
    /// Where LINE serves what followers sent (photos, videos, audio, files): the content API
    /// lives on a host of its own, so tests that point `api_base_url` at a stand-in point this
    /// there too.
    pub api_data_base_url: String,
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
    /// For `v2.1`: `private_key` read as a signing key; filled in by the loader, which checks it.
    #[serde(skip)]
    pub signing_key: Option<SigningKey>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            api_base_url: "https://api.line.me".into(),
            api_data_base_url: "https://api-data.line.me".into(),
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
            signing_key: None,
        }
    }
}

impl Settings {
    /// Problems as `(key, message)`: the API addresses, the timeout, and what the chosen `token`
    /// kind needs. Missing credentials are a problem only when `serve` is true (`serve
    /// --dry-run` sends nothing); malformed ones always are.
    pub fn validate(&self, serve: bool) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (key, url, example) in [
            ("line.api_base_url", &self.api_base_url, "https://api.line.me"),
            ("line.api_data_base_url", &self.api_data_base_url, "https://api-data.line.me"),
        ] {
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
                p.push((key.to_owned(), format!("{url:?} is not an http(s) URL, e.g. \"{example}\"")));
            }
        }
        if self.timeout_secs == 0 {
            p.push(("line.timeout_secs".to_owned(), "must be at least 1".into()));
        }
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

/// `channel_id = "1234567890"` or `channel_id = 1234567890`: the console shows a number, so
/// both spellings are accepted.
pub fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
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

impl Settings {
    /// How the gateway authenticates, from this validated `[line]` (see `config/secrets.rs`:
    /// the key parsed, `kid` filled in).
    pub fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let line = self;
        Ok(match line.token {
            TokenKind::LongLived => Credentials::LongLived(line.channel_access_token.clone()),
            TokenKind::V21 => {
                let key = match &line.signing_key {
                    Some(key) => key.clone(),
                    None => SigningKey::parse(line.private_key.expose()).map_err(CredentialsError::Key)?,
                };
                let kid = if line.kid.is_empty() { key.jwk_kid().unwrap_or_default().to_owned() } else { line.kid.clone() };
                if kid.is_empty() {
                    return Err(CredentialsError::NoKid);
                }
                Credentials::V21 { channel_id: line.channel_id.clone(), kid, key }
            }
            TokenKind::Stateless => {
                Credentials::Stateless { channel_id: line.channel_id.clone(), secret: line.channel_secret.clone() }
            }
        })
    }
}

