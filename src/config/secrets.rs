//! Where each secret comes from: the environment, else the key or its `*_file` in the file,
//! else a systemd credential (`credentials.rs`), and [`SecretSource`] to say which for
//! `check-config`. Messages name the file or variable, never the content. The v2.1 signing key
//! is checked here too, since it is read like the other secrets.

use std::path::{Path, PathBuf};

use crate::credentials;
use crate::secret::Secret;

use super::{Config, Line, TokenKind};

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

impl Config {
    /// For `sendmail` and `send`: only `[sendmail]`'s password, from
    /// `$MAIL2LINE_SENDMAIL_PASSWORD`, `password_file` or the inline key.
    pub(super) fn resolve_client_secret(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
        let s = &mut self.sendmail;
        let var = "MAIL2LINE_SENDMAIL_PASSWORD";
        match resolve_secret(&mut s.password, s.password_file.as_deref(), var, env(var), None) {
            Ok(Some(source)) => {
                self.secret_sources.push(("sendmail.password".to_owned(), source));
                Vec::new()
            }
            Ok(None) => Vec::new(),
            Err(SecretProblem::File(msg) | SecretProblem::Credential(msg)) => vec![("sendmail.password_file".to_owned(), msg)],
        }
    }

    /// Reads the gateway's secrets from the environment and `*_file` keys.
    pub(super) fn resolve_gateway_secrets(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
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
        // Each channel's own secrets: `$LINE_CHANNEL_SECRET_SHOP_A`, its keys, the credential
        // `shop-a-line-channel-secret`. Never `[line]`'s (see `channels.rs`).
        for (i, ch) in config.channels.iter_mut().enumerate() {
            let line = &mut ch.line;
            let sources = [
                (&mut line.channel_access_token, &line.channel_access_token_file, "LINE_CHANNEL_ACCESS_TOKEN", "channel_access_token", credentials::LINE_CHANNEL_ACCESS_TOKEN),
                (&mut line.channel_secret, &line.channel_secret_file, "LINE_CHANNEL_SECRET", "channel_secret", credentials::LINE_CHANNEL_SECRET),
                (&mut line.private_key, &line.private_key_file, "LINE_PRIVATE_KEY", "private_key", credentials::LINE_PRIVATE_KEY),
            ];
            for (secret, file, base, field, base_name) in sources {
                let var = super::channels::env_var(base, &ch.name);
                let key = format!("channels[{i}].{field}");
                match resolve_secret(secret, file.as_deref(), &var, env(&var), cred(&super::channels::credential_name(base_name, &ch.name))) {
                    Ok(Some(source)) => config.secret_sources.push((key, source)),
                    Ok(None) => {}
                    Err(SecretProblem::File(msg)) => problems.push((format!("{key}_file"), msg)),
                    Err(SecretProblem::Credential(msg)) => problems.push((key, msg)),
                }
            }
            if ch.line.token == TokenKind::V21 {
                // `resolve_signing_key` reads `[line]`'s variables; this channel's stand in for them.
                let name = ch.name.clone();
                let channel_env = |k: &str| env(&super::channels::env_var(k, &name));
                let prefix = format!("channels[{i}].");
                problems.extend(resolve_signing_key(&mut ch.line, &channel_env).into_iter().map(|(k, m)| (k.replacen("line.", &prefix, 1), m)));
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
        let replies = &mut config.replies;
        let (var, key) = ("MAIL2LINE_REPLIES_PASSWORD", "replies.password");
        match resolve_secret(&mut replies.password, replies.password_file.as_deref(), var, env(var), cred(credentials::REPLIES_PASSWORD)) {
            Ok(Some(source)) => config.secret_sources.push((key.to_owned(), source)),
            Ok(None) => {}
            Err(SecretProblem::File(msg)) => problems.push(("replies.password_file".to_owned(), msg)),
            Err(SecretProblem::Credential(msg)) => problems.push((key.to_owned(), msg)),
        }
        problems.extend(resolve_storage_password(config, env, cred(credentials::STORAGE_PASSWORD)));
        if config.line.token == TokenKind::V21 {
            problems.extend(resolve_signing_key(&mut config.line, env));
        }
        problems
    }
}

/// `[storage] url`'s password when the URL has none: `$MAIL2LINE_STORAGE_PASSWORD`, else
/// `password_file`, else the credential `storage-password`. A password in the URL and another
/// one as well is refused (which one would win is a guess an admin should not have to make).
fn resolve_storage_password(config: &mut Config, env: &dyn Fn(&str) -> Option<String>, credential: Option<(String, PathBuf)>) -> Vec<(String, String)> {
    let var = "MAIL2LINE_STORAGE_PASSWORD";
    let storage = &config.storage;
    if !storage.is_postgres() {
        return Vec::new();
    }
    if crate::pg::url_has_password(&storage.url) {
        let mut p = Vec::new();
        if storage.password_file.is_some() {
            p.push(("storage.password_file".to_owned(), "storage.url has a password already; keep only one of them".into()));
        }
        if env(var).is_some_and(|v| !v.is_empty()) {
            p.push(("storage.url".to_owned(), format!("has a password, and ${var} is set too; keep only one of them")));
        }
        if p.is_empty() {
            config.secret_sources.push(("storage.password".to_owned(), SecretSource::Inline));
        }
        return p;
    }
    match resolve_secret(&mut config.storage_password, storage.password_file.as_deref(), var, env(var), credential) {
        Ok(Some(source)) => {
            config.secret_sources.push(("storage.password".to_owned(), source));
            Vec::new()
        }
        // No password at all: fine for `trust` or peer logins on a private network.
        Ok(None) => Vec::new(),
        Err(SecretProblem::File(msg)) => vec![("storage.password_file".to_owned(), msg)],
        Err(SecretProblem::Credential(msg)) => vec![("storage.url".to_owned(), msg)],
    }
}

/// For `token = "v2.1"`: checks that the private key (already read from `$LINE_PRIVATE_KEY`,
/// `private_key_file` or `private_key`) is a usable RSA key, and fills `kid` from `$LINE_KID` or
/// from the JWK when the file does not set it; keeps the key read ([`Line::signing_key`]).
/// Problems name where the key came from, never its content.
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
            line.signing_key = Some(key);
            Vec::new()
        }
        Err(msg) => {
            let from_env = env("LINE_PRIVATE_KEY").is_some_and(|v| !v.is_empty());
            let (key, msg) = match (&line.private_key_file, from_env) {
                (_, true) => ("line.private_key", format!("$LINE_PRIVATE_KEY: {msg}")),
                (Some(file), false) => ("line.private_key_file", format!("{}: {msg}", file.display())),
                (None, false) => ("line.private_key", msg.to_string()),
            };
            vec![(key.to_owned(), msg)]
        }
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
        *secret = read_secret_file(file).map_err(|e| SecretProblem::File(e.to_string()))?;
        return Ok(Some(SecretSource::File(file.to_owned())));
    }
    if !secret.is_empty() {
        return Ok(Some(SecretSource::Inline));
    }
    let Some((name, path)) = credential else { return Ok(None) };
    *secret = read_secret_file(&path).map_err(|e| SecretProblem::Credential(format!("systemd credential {name}: {e}")))?;
    Ok(Some(SecretSource::Credential { name, path }))
}

/// Why a secret's file (or credential) gave no secret; names the file, never the content.
#[derive(Debug, thiserror::Error)]
enum SecretFileError {
    #[error("cannot read {}: {error}", file.display())]
    Unreadable { file: PathBuf, error: std::io::Error },
    #[error("{} is empty", .0.display())]
    Empty(PathBuf),
}

/// A secret kept in a file, without the line break editors and `echo` add.
fn read_secret_file(file: &Path) -> Result<Secret, SecretFileError> {
    let text = std::fs::read_to_string(file).map_err(|error| SecretFileError::Unreadable { file: file.to_owned(), error })?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(SecretFileError::Empty(file.to_owned()));
    }
    Ok(Secret::new(value))
}
