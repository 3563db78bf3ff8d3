//! Channel access tokens: where the `Authorization: Bearer` of every LINE request comes from.
//!
//! Three kinds, chosen by `[line] token`:
//! * `long-lived` (default): the token issued once in the LINE Developers console. Fixed;
//!   there is nothing to renew, so a 401 stays a configuration error.
//! * `v2.1`: the gateway signs a JWT client assertion (RS256) with the channel's private key and
//!   trades it at `POST /oauth2/v2.1/token` for a token valid [`V21_TOKEN_LIFETIME_SECS`]
//!   (7 days; LINE allows up to 30). LINE keeps at most 30 valid v2.1 tokens per channel, and a
//!   gateway that issued a new one on every start would run into that cap after a bad day of
//!   restarts, so the issued token is also kept in `storage.dir/line-token.json` (mode 0600,
//!   never logged) and reused after a restart while it is valid. Seven days rather than 30
//!   keeps the number of valid tokens low (one per week plus one per forced renewal) and limits
//!   what a leaked copy of that file is worth.
//! * `stateless`: `POST /oauth2/v3/token` with the channel id and secret; valid 15 minutes.
//!   There is no cap on these, so nothing is stored.
//!
//! Renewal is lazy: the first request that needs a token after 90% of its life renews it (so an
//! idle gateway issues nothing), and a 401 from LINE renews it at once ([`TokenSource::renew_after_401`]),
//! after which the caller sends its request once more. One async mutex serialises issuing: a
//! burst of workers finds one fresh token instead of each asking for its own, and workers that
//! all got a 401 for the same token cause one renewal. A failed issue is remembered for a few
//! seconds so an outage of the token endpoint is not hammered by every waiting worker; while the
//! old token is still valid it keeps being used.
//!
//! Token endpoint failures never lose mail: they become [`Outcome::Retry`] (no connection:
//! `Unreachable`; any answer but a token: `NoAccessToken`), and the log says what to fix.
//!
//! Pure parts — key parsing, the assertion, the renewal schedule, reading the endpoint's
//! answer — are plain functions with unit tests; the HTTP parts are tested end to end against
//! the stand-in LINE server (`tests/tokens.rs`).

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use crate::clock::now_ms;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tracing::{error, info, warn};

use crate::secret::Secret;

use super::outcome::{Outcome, RetryReason};

/// The `aud` LINE requires in a v2.1 client assertion (also when talking to a stand-in).
pub const ASSERTION_AUDIENCE: &str = "https://api.line.me/";
/// How long a client assertion is valid. LINE accepts at most 30 minutes; 25 leaves room for a
/// clock running a few minutes ahead of LINE's.
pub const ASSERTION_LIFETIME_SECS: u64 = 25 * 60;
/// The lifetime asked for a v2.1 token (`token_exp`); see the module docs for why 7 days.
pub const V21_TOKEN_LIFETIME_SECS: u64 = 7 * 86400;
/// The file under `storage.dir` that keeps the current v2.1 token across restarts.
pub const TOKEN_FILE: &str = "line-token.json";
/// After a failed issue, requests within this many milliseconds get the same error.
const FAILURE_COOLDOWN_MS: i64 = 5_000;
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const V21_PATH: &str = "/oauth2/v2.1/token";
const STATELESS_PATH: &str = "/oauth2/v3/token";

/// JWK members are base64url; browsers' `exportKey("jwk")` omits padding, other tools keep it.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What is wrong with the channel's private key (`line.private_key_file`, `$LINE_PRIVATE_KEY`)
/// and how to fix it; the messages follow the key's source and never quote its content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is an encrypted PEM key; store it unencrypted (openssl pkey -in key.pem -out plain.pem) and protect the file instead")]
    EncryptedPem,
    #[error("is PEM but not an RSA private key (expected \"BEGIN PRIVATE KEY\" or \"BEGIN RSA PRIVATE KEY\"; a public key will not do)")]
    NotRsaPem,
    #[error("is not a readable RSA private key in PEM (PKCS#8 \"BEGIN PRIVATE KEY\" or PKCS#1 \"BEGIN RSA PRIVATE KEY\")")]
    UnreadablePem,
    #[error("is neither a JWK (a JSON object with \"kty\": \"RSA\") nor a PEM private key")]
    NeitherJwkNorPem,
    #[error("is not a usable RSA private key (it must be a complete, consistent RSA key of 2048 bits or more)")]
    Unusable,
    #[error("is not valid JSON (line {line}, column {column})")]
    Json { line: usize, column: usize },
    #[error("is not a JWK: expected one JSON object")]
    NotAnObject,
    #[error("is a JWK set; put the one private key object (with \"d\") in the file")]
    JwkSet,
    #[error("is a {0:?} JWK; LINE's v2.1 assertion needs an RSA key (\"kty\": \"RSA\")")]
    NotRsa(String),
    #[error("is not a JWK: \"kty\" is missing")]
    NoKty,
    #[error("has an \"alg\" other than \"RS256\"; LINE's v2.1 assertion is signed with RS256")]
    NotRs256,
    #[error("has no \"d\": this is the public key; use the private key generated with it")]
    PublicKey,
    #[error("has no {0:?}: the private key must be complete (n, e, d, p, q, dp, dq, qi), as the console's key generation exports it")]
    Missing(&'static str),
    #[error("{0:?} is not a base64url number")]
    NotBase64(&'static str),
    #[error("{0:?} is not a valid number")]
    NotANumber(&'static str),
    #[error("cannot be encoded as an RSA key")]
    Encoding,
    #[error("cannot sign the client assertion with the configured private key")]
    CannotSign,
}

/// The channel's RSA private key, ready to sign assertions. Never printed.
#[derive(Clone)]
pub struct SigningKey {
    key: EncodingKey,
    jwk_kid: Option<String>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

impl SigningKey {
    /// Reads a private key given as a JWK (a JSON object, as LINE's console flow makes it) or as
    /// PEM (PKCS#8 `BEGIN PRIVATE KEY` or PKCS#1 `BEGIN RSA PRIVATE KEY`). Errors say what is
    /// wrong and never quote the key.
    pub fn parse(text: &str) -> Result<SigningKey, KeyError> {
        let text = text.trim();
        let (key, jwk_kid) = if text.starts_with('{') {
            let (der, kid) = jwk_to_pkcs1_der(text)?;
            (EncodingKey::from_rsa_der(&der), kid)
        } else if text.contains("-----BEGIN") {
            if text.contains("BEGIN ENCRYPTED PRIVATE KEY") {
                return Err(KeyError::EncryptedPem);
            }
            if !text.contains("BEGIN PRIVATE KEY") && !text.contains("BEGIN RSA PRIVATE KEY") {
                return Err(KeyError::NotRsaPem);
            }
            let key = EncodingKey::from_rsa_pem(text.as_bytes())
                .map_err(|_| KeyError::UnreadablePem)?;
            (key, None)
        } else {
            return Err(KeyError::NeitherJwkNorPem);
        };
        // ring checks a key's consistency and size only when it signs: sign once now, so a broken
        // key is a configuration error at start-up rather than a failed delivery later.
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &serde_json::json!({ "probe": 1 }), &key)
            .map_err(|_| KeyError::Unusable)?;
        Ok(SigningKey { key, jwk_kid })
    }

    /// The JWK's own `"kid"` member, if it had one.
    pub fn jwk_kid(&self) -> Option<&str> {
        self.jwk_kid.as_deref()
    }
}

/// A private RSA JWK → PKCS#1 DER (what `EncodingKey::from_rsa_der` and ring take), plus the
/// JWK's `kid`. The JSON is read as a plain value so that no serde message can quote a member.
fn jwk_to_pkcs1_der(text: &str) -> Result<(Vec<u8>, Option<String>), KeyError> {
    use pkcs1::der::Encode;
    use pkcs1::UintRef;

    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| KeyError::Json { line: e.line(), column: e.column() })?;
    let Some(jwk) = value.as_object() else {
        return Err(KeyError::NotAnObject);
    };
    if jwk.contains_key("keys") {
        return Err(KeyError::JwkSet);
    }
    let text_member = |name: &str| jwk.get(name).and_then(|v| v.as_str());
    match text_member("kty") {
        Some("RSA") => {}
        Some(other) => return Err(KeyError::NotRsa(other.to_owned())),
        None => return Err(KeyError::NoKty),
    }
    if let Some(alg) = jwk.get("alg") {
        if alg.as_str() != Some("RS256") {
            return Err(KeyError::NotRs256);
        }
    }
    if !jwk.contains_key("d") {
        return Err(KeyError::PublicKey);
    }
    let mut parts: Vec<Vec<u8>> = Vec::with_capacity(8);
    for name in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
        let Some(value) = jwk.get(name) else {
            return Err(KeyError::Missing(name));
        };
        let bytes = value
            .as_str()
            .and_then(|s| BASE64URL.decode(s.trim()).ok())
            .filter(|b| b.iter().any(|&x| x != 0))
            .ok_or(KeyError::NotBase64(name))?;
        parts.push(bytes);
    }
    let uint = |i: usize, name: &'static str| UintRef::new(&parts[i]).map_err(|_| KeyError::NotANumber(name));
    let key = pkcs1::RsaPrivateKey {
        modulus: uint(0, "n")?,
        public_exponent: uint(1, "e")?,
        private_exponent: uint(2, "d")?,
        prime1: uint(3, "p")?,
        prime2: uint(4, "q")?,
        exponent1: uint(5, "dp")?,
        exponent2: uint(6, "dq")?,
        coefficient: uint(7, "qi")?,
        other_prime_infos: None,
    };
    let der = key.to_der().map_err(|_| KeyError::Encoding)?;
    let kid = text_member("kid").map(str::trim).filter(|k| !k.is_empty()).map(str::to_owned);
    Ok((der, kid))
}

/// The claims of a v2.1 client assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    /// When the assertion expires (unix seconds).
    pub exp: u64,
    /// The lifetime asked for the channel access token, in seconds.
    pub token_exp: u64,
}

/// Claims for `channel_id` at `now_unix` (seconds).
pub fn assertion_claims(channel_id: &str, now_unix: u64) -> AssertionClaims {
    AssertionClaims {
        iss: channel_id.to_owned(),
        sub: channel_id.to_owned(),
        aud: ASSERTION_AUDIENCE.to_owned(),
        exp: now_unix + ASSERTION_LIFETIME_SECS,
        token_exp: V21_TOKEN_LIFETIME_SECS,
    }
}

/// `{"alg": "RS256", "typ": "JWT", "kid": kid}`.
pub fn assertion_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    header
}

/// The signed client assertion (RS256 signatures are deterministic, so this is pure).
pub fn assertion(channel_id: &str, kid: &str, key: &SigningKey, now_unix: u64) -> Result<String, KeyError> {
    jsonwebtoken::encode(&assertion_header(kid), &assertion_claims(channel_id, now_unix), &key.key)
        .map_err(|_| KeyError::CannotSign)
}

/// When a token, asked for at `sent_at_ms` (unix ms) and valid `expires_in` seconds, expires
/// and when to renew it: after 90% of its life. Counted from when the request was sent, not
/// answered, so our idea of the expiry is never later than LINE's.
pub fn schedule(sent_at_ms: i64, expires_in_secs: u64) -> (i64, i64) {
    let life_ms = i64::try_from(expires_in_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires_at = sent_at_ms.saturating_add(life_ms);
    (expires_at, expires_at.saturating_sub(life_ms / 10))
}

/// Why no token could be had. Always worth retrying: the request was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError {
    pub reason: RetryReason,
    pub message: String,
}

impl TokenError {
    fn answer(message: String) -> TokenError {
        TokenError { reason: RetryReason::NoAccessToken, message }
    }

    /// The outcome of a request that could not be sent for want of a token.
    pub fn outcome(&self) -> Outcome {
        Outcome::Retry { reason: self.reason, detail: self.message.clone(), after: None }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A token as the endpoint issued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub token: Secret,
    pub expires_in: u64,
    pub key_id: Option<String>,
}

/// Reads the token endpoint's answer: the token, or what the admin should do about the refusal.
pub fn read_token_answer(kind: TokenKind, status: u16, body: &[u8]) -> Result<Granted, TokenError> {
    #[derive(Deserialize)]
    struct Answer {
        access_token: String,
        expires_in: u64,
        #[serde(default)]
        token_type: Option<String>,
        #[serde(default)]
        key_id: Option<String>,
    }
    let name = kind.name();
    if (200..300).contains(&status) {
        let answer: Answer = serde_json::from_slice(body).map_err(|_| {
            TokenError::answer(format!("LINE's token endpoint answered {status} without a {name} channel access token (access_token, expires_in); deliveries are retried later"))
        })?;
        if answer.access_token.is_empty() || answer.token_type.as_deref().is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) {
            return Err(TokenError::answer(format!("LINE's token endpoint answered {status} with no usable bearer token; deliveries are retried later")));
        }
        return Ok(Granted { token: Secret::new(answer.access_token), expires_in: answer.expires_in, key_id: answer.key_id });
    }
    Err(TokenError::answer(refusal_message(kind, status, body)))
}

/// `LINE did not issue a v2.1 channel access token (400 invalid_client: Invalid signature): check …`.
fn refusal_message(kind: TokenKind, status: u16, body: &[u8]) -> String {
    #[derive(Default, Deserialize)]
    struct ErrorAnswer {
        #[serde(default)]
        error: String,
        #[serde(default)]
        error_description: String,
        #[serde(default)]
        message: String,
    }
    let e: ErrorAnswer = serde_json::from_slice(body).unwrap_or_default();
    let mut detail: String = [e.error, e.error_description, e.message]
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    if detail.chars().count() > 200 {
        detail = detail.chars().take(200).collect::<String>() + "…";
    }
    let detail = if detail.is_empty() { String::new() } else { format!(" {detail}") };
    let fix = match (status, kind) {
        (400 | 401 | 403, TokenKind::V21) => {
            "check line.channel_id, line.kid (the key id LINE showed when you registered the public key) and that line.private_key_file holds the matching private key; LINE also refuses new v2.1 tokens when 30 are valid (revoke unused ones)"
        }
        (400 | 401 | 403, _) => "check line.channel_id and line.channel_secret (LINE Developers console > channel > Basic settings)",
        _ => "LINE's token endpoint is in trouble",
    };
    format!("LINE did not issue a {} channel access token ({status}{detail}): {fix}; deliveries are retried later", kind.name())
}

/// `[line] token`: which kind of channel access token the gateway uses (how each is issued and renewed: this file).
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

/// How the gateway authenticates to LINE, as configured.
#[derive(Debug, Clone)]
pub enum Credentials {
    LongLived(Secret),
    V21 { channel_id: String, kid: String, key: SigningKey },
    Stateless { channel_id: String, secret: Secret },
}

/// Why a `[line]` gives no usable credentials (each text starts with the key to fix).
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("line.private_key_file: the key {0}")]
    Key(KeyError),
    #[error("line.kid: is required with token = \"v2.1\"")]
    NoKid,
}

impl Credentials {
    pub fn kind(&self) -> TokenKind {
        match self {
            Credentials::LongLived(_) => TokenKind::LongLived,
            Credentials::V21 { .. } => TokenKind::V21,
            Credentials::Stateless { .. } => TokenKind::Stateless,
        }
    }

    /// One line for `check-config` and the start-up log; no secret in it.
    pub fn describe(&self) -> String {
        match self {
            Credentials::LongLived(_) => "long-lived channel access token".into(),
            Credentials::V21 { channel_id, kid, .. } => {
                format!("v2.1 channel access tokens for channel {channel_id}, signed with key id {kid}")
            }
            Credentials::Stateless { channel_id, .. } => format!("stateless channel access tokens for channel {channel_id}"),
        }
    }
}

/// A token in use.
#[derive(Clone)]
struct Issued {
    token: Secret,
    key_id: Option<String>,
    expires_at_ms: i64,
    renew_at_ms: i64,
}

/// What `line-token.json` holds; the identity fields make a token of another channel, key or
/// API server (tests!) unusable.
#[derive(Serialize, Deserialize)]
struct Stored {
    api_base_url: String,
    channel_id: String,
    kid: String,
    access_token: String,
    key_id: Option<String>,
    expires_at_ms: i64,
    renew_at_ms: i64,
}

#[derive(Default)]
struct State {
    current: Option<Issued>,
    /// The last failed issue and until when (unix ms) it is answered without asking again.
    failure: Option<(i64, TokenError)>,
    store_read: bool,
}

/// Hands out the current token, issuing and renewing it as needed. Shared by all workers.
pub struct TokenSource {
    credentials: Credentials,
    http: reqwest::Client,
    base_url: String,
    /// Where a v2.1 token is kept across restarts; `None` keeps it in memory only.
    store: Option<PathBuf>,
    state: Mutex<State>,
}

impl TokenSource {
    /// `store` is the file for v2.1 tokens (usually `storage.dir/`[`TOKEN_FILE`]); other kinds
    /// ignore it.
    pub fn new(credentials: Credentials, http: reqwest::Client, base_url: &str, store: Option<PathBuf>) -> TokenSource {
        let store = if matches!(credentials, Credentials::V21 { .. }) { store } else { None };
        TokenSource {
            credentials,
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            store,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether a refused token can be replaced by a new one (not for long-lived tokens).
    pub fn renewable(&self) -> bool {
        !matches!(self.credentials, Credentials::LongLived(_))
    }

    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The token to send now: the current one, or a new one when it is due for renewal.
    pub async fn get(&self) -> Result<Secret, TokenError> {
        if let Credentials::LongLived(token) = &self.credentials {
            return Ok(token.clone());
        }
        let mut state = self.state.lock().await;
        if !state.store_read {
            state.store_read = true;
            state.current = self.load();
        }
        if let Some(current) = &state.current {
            if now_ms() < current.renew_at_ms {
                return Ok(current.token.clone());
            }
        }
        self.refresh(&mut state).await
    }

    /// The token at hand, if any, without issuing one: for background reads (the quota) that
    /// must not take part in issuing or renewing, which the deliveries drive.
    pub async fn current(&self) -> Option<Secret> {
        if let Credentials::LongLived(token) = &self.credentials {
            return Some(token.clone());
        }
        let mut state = self.state.lock().await;
        if !state.store_read {
            state.store_read = true;
            state.current = self.load();
        }
        state.current.as_ref().filter(|c| now_ms() < c.renew_at_ms).map(|c| c.token.clone())
    }

    /// LINE answered 401 to `refused`: replaces it, once however many requests saw the 401. A
    /// caller that finds the token already replaced gets the new one without another issue.
    /// For a long-lived token there is nothing to renew; it is handed back as it is.
    pub async fn renew_after_401(&self, refused: &Secret) -> Result<Secret, TokenError> {
        if let Credentials::LongLived(token) = &self.credentials {
            return Ok(token.clone());
        }
        let mut state = self.state.lock().await;
        state.store_read = true;
        match &state.current {
            Some(current) if current.token != *refused && now_ms() < current.expires_at_ms => {
                return Ok(current.token.clone());
            }
            Some(current) if current.token == *refused => {
                warn!(
                    key_id = current.key_id.as_deref().unwrap_or("-"),
                    "LINE refused the {} channel access token (401): issuing a new one",
                    self.credentials.kind().name()
                );
                state.current = None;
                self.forget_stored();
            }
            _ => {}
        }
        self.refresh(&mut state).await
    }

    /// Issues a new token unless an issue failed moments ago. While the current token is still
    /// valid, a failure keeps it in use.
    async fn refresh(&self, state: &mut State) -> Result<Secret, TokenError> {
        let still_valid = |state: &State| state.current.as_ref().filter(|c| now_ms() < c.expires_at_ms).map(|c| c.token.clone());
        if let Some((until, e)) = &state.failure {
            if now_ms() < *until {
                return still_valid(state).ok_or_else(|| e.clone());
            }
        }
        match self.issue().await {
            Ok(issued) => {
                let token = issued.token.clone();
                self.save(&issued);
                state.current = Some(issued);
                state.failure = None;
                Ok(token)
            }
            Err(e) => {
                state.failure = Some((now_ms() + FAILURE_COOLDOWN_MS, e.clone()));
                match still_valid(state) {
                    Some(token) => {
                        warn!("{e} (the current token is still valid and stays in use)");
                        Ok(token)
                    }
                    None => {
                        error!("{e}");
                        Err(e)
                    }
                }
            }
        }
    }

    /// One request to the token endpoint.
    async fn issue(&self) -> Result<Issued, TokenError> {
        let sent_at = now_ms();
        let (path, form): (&str, Vec<(&str, String)>) = match &self.credentials {
            Credentials::V21 { channel_id, kid, key } => {
                let jwt = assertion(channel_id, kid, key, (sent_at / 1000).max(0) as u64).map_err(|e| TokenError::answer(e.to_string()))?;
                (
                    V21_PATH,
                    vec![
                        ("grant_type", "client_credentials".to_owned()),
                        ("client_assertion_type", CLIENT_ASSERTION_TYPE.to_owned()),
                        ("client_assertion", jwt),
                    ],
                )
            }
            Credentials::Stateless { channel_id, secret } => (
                STATELESS_PATH,
                vec![
                    ("grant_type", "client_credentials".to_owned()),
                    ("client_id", channel_id.clone()),
                    ("client_secret", secret.expose().to_owned()),
                ],
            ),
            Credentials::LongLived(_) => {
                return Err(TokenError::answer("a long-lived channel access token cannot be renewed; fix line.channel_access_token".into()))
            }
        };
        let transport = |e: reqwest::Error| TokenError {
            // The request this token was for never left, whatever happened here.
            reason: RetryReason::Unreachable,
            message: format!(
                "cannot get a {} channel access token: {} LINE's token endpoint ({path}); deliveries are retried later",
                self.credentials.kind().name(),
                if e.is_timeout() { "no answer in time from" } else { "cannot reach" }
            ),
        };
        let response = self.http.post(format!("{}{path}", self.base_url)).form(&form).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?;
        let granted = read_token_answer(self.credentials.kind(), status, &body)?;
        let (expires_at_ms, renew_at_ms) = schedule(sent_at, granted.expires_in);
        info!(
            key_id = granted.key_id.as_deref().unwrap_or("-"),
            expires_in_secs = granted.expires_in,
            "issued a {} channel access token",
            self.credentials.kind().name()
        );
        Ok(Issued { token: granted.token, key_id: granted.key_id, expires_at_ms, renew_at_ms })
    }

    /// The stored v2.1 token, if it belongs to this channel, key and API and is still valid.
    fn load(&self) -> Option<Issued> {
        let (path, Credentials::V21 { channel_id, kid, .. }) = (self.store.as_ref()?, &self.credentials) else { return None };
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn!("cannot read the stored channel access token {}: {e}; issuing a new one", path.display());
                return None;
            }
        };
        let Ok(stored) = serde_json::from_slice::<Stored>(&text) else {
            warn!("{} is not a stored channel access token; issuing a new one", path.display());
            return None;
        };
        let mine = stored.api_base_url == self.base_url && stored.channel_id == *channel_id && stored.kid == *kid;
        if !mine || now_ms() >= stored.expires_at_ms || stored.access_token.is_empty() {
            return None;
        }
        info!(
            key_id = stored.key_id.as_deref().unwrap_or("-"),
            "using the v2.1 channel access token stored in {}",
            path.display()
        );
        Some(Issued {
            token: Secret::new(stored.access_token),
            key_id: stored.key_id,
            expires_at_ms: stored.expires_at_ms,
            renew_at_ms: stored.renew_at_ms,
        })
    }

    /// Keeps a v2.1 token for the next start. Failing to is not fatal: a restart then issues a
    /// new token, which LINE allows up to its cap.
    fn save(&self, issued: &Issued) {
        let (Some(path), Credentials::V21 { channel_id, kid, .. }) = (&self.store, &self.credentials) else { return };
        let stored = Stored {
            api_base_url: self.base_url.clone(),
            channel_id: channel_id.clone(),
            kid: kid.clone(),
            access_token: issued.token.expose().to_owned(),
            key_id: issued.key_id.clone(),
            expires_at_ms: issued.expires_at_ms,
            renew_at_ms: issued.renew_at_ms,
        };
        if let Err(e) = write_private(path, &serde_json::to_vec(&stored).unwrap_or_default()) {
            warn!(
                "cannot store the v2.1 channel access token in {}: {e}; a restart will issue a new one (LINE allows 30 valid v2.1 tokens per channel)",
                path.display()
            );
        }
    }

    fn forget_stored(&self) {
        if let Some(path) = &self.store {
            if let Err(e) = std::fs::remove_file(path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!("cannot remove the refused channel access token {}: {e}", path.display());
                }
            }
        }
    }
}

/// Writes `data` to `path` readable by the owner only (0600), atomically (temporary file, fsync,
/// rename), creating the directory if needed.
fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
    // The mode above is filtered by the umask; make sure it is exactly 0600.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(data)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

/// A test key pair shared by the unit tests here and in `config/`.
#[cfg(test)]
pub(crate) mod test_key {
    use super::BASE64URL;
    use base64::Engine;
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};
    use std::sync::OnceLock;

    /// One 2048-bit key for all tests (generating one takes a moment).
    pub fn key() -> &'static rsa::RsaPrivateKey {
        static KEY: OnceLock<rsa::RsaPrivateKey> = OnceLock::new();
        KEY.get_or_init(|| rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).expect("generate an RSA key"))
    }

    pub fn b64(n: &rsa::BigUint) -> String {
        BASE64URL.encode(n.to_bytes_be())
    }

    /// The private JWK as the browser's `crypto.subtle.exportKey("jwk")` in LINE's guide makes it.
    pub fn jwk() -> serde_json::Value {
        let k = key();
        let (p, q) = (&k.primes()[0], &k.primes()[1]);
        let one = rsa::BigUint::from(1u8);
        serde_json::json!({
            "alg": "RS256", "ext": true, "key_ops": ["sign"], "kty": "RSA",
            "n": b64(k.n()), "e": b64(k.e()), "d": b64(k.d()), "p": b64(p), "q": b64(q),
            "dp": b64(&(k.d() % (p - &one))), "dq": b64(&(k.d() % (q - &one))),
            "qi": b64(&k.crt_coefficient().expect("qi")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::test_key::{b64, jwk, key};
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    use rsa::traits::PublicKeyParts;

    fn decoding_key() -> DecodingKey {
        DecodingKey::from_rsa_components(&b64(key().n()), &b64(key().e())).unwrap()
    }

    #[test]
    fn assertion_has_lines_header_and_claims_and_verifies() {
        let signing = SigningKey::parse(&jwk().to_string()).unwrap();
        assert_eq!(signing.jwk_kid(), None);
        let now = 1_700_000_000;
        let jwt = assertion("1234567890", "kid-1", &signing, now).unwrap();
        let header = jsonwebtoken::decode_header(&jwt).unwrap();
        assert_eq!((header.alg, header.typ.as_deref(), header.kid.as_deref()), (Algorithm::RS256, Some("JWT"), Some("kid-1")));
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.set_audience(&[ASSERTION_AUDIENCE]);
        let claims = jsonwebtoken::decode::<AssertionClaims>(&jwt, &decoding_key(), &validation).unwrap().claims;
        assert_eq!(claims, assertion_claims("1234567890", now));
        assert_eq!((claims.iss.as_str(), claims.sub.as_str(), claims.aud.as_str()), ("1234567890", "1234567890", "https://api.line.me/"));
        assert!(claims.exp > now && claims.exp - now <= 30 * 60);
        assert!(claims.token_exp > 0 && claims.token_exp <= 30 * 86400);
        // Pure: the same inputs give the same assertion.
        assert_eq!(assertion("1234567890", "kid-1", &signing, now).unwrap(), jwt);
    }

    #[test]
    fn pem_keys_sign_the_same_as_the_jwk() {
        let from_jwk = SigningKey::parse(&jwk().to_string()).unwrap();
        let pkcs8 = key().to_pkcs8_pem(LineEnding::LF).unwrap();
        let pkcs1 = key().to_pkcs1_pem(LineEnding::LF).unwrap();
        let jwt = assertion("1", "k", &from_jwk, 5).unwrap();
        for pem in [pkcs8.as_str(), pkcs1.as_str()] {
            assert!(pem.contains("PRIVATE KEY"));
            let from_pem = SigningKey::parse(pem).unwrap();
            assert_eq!(assertion("1", "k", &from_pem, 5).unwrap(), jwt);
        }
    }

    #[test]
    fn jwk_kid_and_padding_are_read() {
        let mut j = jwk();
        j["kid"] = "from-jwk".into();
        // Some tools keep base64 padding; both spellings are accepted.
        let n = j["n"].as_str().unwrap().to_owned();
        j["n"] = format!("{n}{}", "=".repeat((4 - n.len() % 4) % 4)).into();
        assert_eq!(SigningKey::parse(&j.to_string()).unwrap().jwk_kid(), Some("from-jwk"));
    }

    #[test]
    fn bad_keys_are_explained_without_their_content() {
        let d = jwk()["d"].as_str().unwrap().to_owned();
        let with = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut j = jwk();
            f(&mut j);
            SigningKey::parse(&j.to_string()).unwrap_err()
        };
        let cases = [
            (with(&|j| drop(j.as_object_mut().unwrap().remove("d"))), "this is the public key"),
            (with(&|j| drop(j.as_object_mut().unwrap().remove("qi"))), "has no \"qi\""),
            (with(&|j| j["kty"] = "EC".into()), "\"EC\" JWK"),
            (with(&|j| j["alg"] = "RS512".into()), "RS256"),
            (with(&|j| j["p"] = "not base64!".into()), "\"p\" is not a base64url number"),
            (with(&|j| j["e"] = 65537.into()), "\"e\" is not a base64url number"),
            // A well-formed but inconsistent key: ring refuses it when signing.
            (with(&|j| j["p"] = j["q"].clone()), "not a usable RSA private key"),
            (SigningKey::parse(&serde_json::json!({ "keys": [jwk()] }).to_string()).unwrap_err(), "JWK set"),
            (SigningKey::parse("{\"kty\": \"RSA\", ").unwrap_err(), "not valid JSON"),
            (SigningKey::parse("[1]").unwrap_err(), "neither a JWK"),
            (SigningKey::parse("hello").unwrap_err(), "neither a JWK"),
            (SigningKey::parse("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").unwrap_err(), "not an RSA private key"),
            (SigningKey::parse("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n").unwrap_err(), "encrypted"),
            (SigningKey::parse("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap_err(), "not a readable RSA private key"),
        ];
        for (err, want) in cases {
            let err = err.to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
            assert!(!err.contains(&d[..20]), "{err}");
        }
    }

    #[test]
    fn small_keys_are_refused() {
        let small = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let pem = small.to_pkcs1_pem(LineEnding::LF).unwrap();
        assert!(SigningKey::parse(&pem).unwrap_err().to_string().contains("2048 bits"));
    }

    #[test]
    fn renewal_after_ninety_percent_of_the_life() {
        assert_eq!(schedule(1_000_000, 900), (1_900_000, 1_810_000));
        assert_eq!(schedule(0, 7 * 86400), (604_800_000, 544_320_000));
        assert_eq!(schedule(5, 0), (5, 5));
        assert_eq!(schedule(i64::MAX - 1, u64::MAX).0, i64::MAX);
    }

    #[test]
    fn token_answers() {
        let ok = br#"{"access_token":"tok-1","expires_in":2592000,"token_type":"Bearer","key_id":"kid9"}"#;
        let g = read_token_answer(TokenKind::V21, 200, ok).unwrap();
        assert_eq!((g.token.expose(), g.expires_in, g.key_id.as_deref()), ("tok-1", 2_592_000, Some("kid9")));
        let stateless = br#"{"token_type":"Bearer","access_token":"s-1","expires_in":899}"#;
        assert_eq!(read_token_answer(TokenKind::Stateless, 200, stateless).unwrap().expires_in, 899);

        let e = read_token_answer(TokenKind::V21, 400, br#"{"error":"invalid_client","error_description":"Invalid signature"}"#).unwrap_err();
        assert_eq!(e.reason, RetryReason::NoAccessToken);
        assert!(e.message.starts_with("LINE did not issue a v2.1 channel access token (400 invalid_client: Invalid signature): check line.channel_id, line.kid"), "{}", e.message);
        assert!(e.message.ends_with("deliveries are retried later"), "{}", e.message);
        let e = read_token_answer(TokenKind::Stateless, 400, br#"{"error":"invalid_client"}"#).unwrap_err();
        assert!(e.message.contains("(400 invalid_client): check line.channel_id and line.channel_secret"), "{}", e.message);
        let e = read_token_answer(TokenKind::Stateless, 503, b"<html>").unwrap_err();
        assert!(e.message.contains("(503): LINE's token endpoint is in trouble"), "{}", e.message);
        assert!(matches!(e.outcome(), Outcome::Retry { reason: RetryReason::NoAccessToken, .. }));
        let e = read_token_answer(TokenKind::V21, 200, b"{}").unwrap_err();
        assert!(e.message.contains("without a v2.1 channel access token"), "{}", e.message);
        let e = read_token_answer(TokenKind::V21, 200, br#"{"access_token":"x","expires_in":1,"token_type":"mac"}"#).unwrap_err();
        assert!(e.message.contains("no usable bearer token"), "{}", e.message);
    }

    #[test]
    fn credentials_never_print_their_secrets() {
        let key = SigningKey::parse(&jwk().to_string()).unwrap();
        let creds = [
            Credentials::V21 { channel_id: "1".into(), kid: "k".into(), key },
            Credentials::Stateless { channel_id: "1".into(), secret: Secret::new("sec-xyz") },
            Credentials::LongLived(Secret::new("tok-xyz")),
        ];
        let d = jwk()["d"].as_str().unwrap().to_owned();
        for c in &creds {
            let shown = format!("{c:?} {}", c.describe());
            assert!(!shown.contains("sec-xyz") && !shown.contains("tok-xyz") && !shown.contains(&d[..20]), "{shown}");
        }
        assert_eq!(creds[0].describe(), "v2.1 channel access tokens for channel 1, signed with key id k");
    }

    #[test]
    fn stored_tokens_are_private_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join(TOKEN_FILE);
        write_private(&path, b"{}").unwrap();
        write_private(&path, b"{\"a\":1}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
