//! HTTP client for the Messaging API: push and multicast (mail delivery), reply and profile
//! (the webhook's welcome and address answers), the quota check, and for answers from LINE
//! (issue #20) the content a follower sent (`content`, from the content API's own host), the
//! name of a group or room member (`member_name`) and marking a chat read (`mark_as_read`). Every request carries the
//! bearer token the [`TokenSource`] hands out; a 401 to an issued (v2.1 or stateless) token gets
//! one new token and one more try.
//!
//! The client also keeps what `/metrics` and `/readyz` report about LINE: every message request
//! is counted by endpoint and status, and a refused token (401/403 after any renewal) is
//! remembered until a request goes through again.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::metrics::{Metrics, PushStatus};
use crate::secret::Secret;

use super::content::{self, is_message_id, Content, ContentError};
use super::error::Error;
use super::message::Message;
use super::outcome::{classify, Outcome, RetryReason};
use super::token::{Credentials, TokenSource};

/// LINE's content host, where [`LineClient::content`] goes unless told otherwise.
pub const DEFAULT_DATA_BASE_URL: &str = "https://api-data.line.me";

#[derive(Clone)]
pub struct LineClient {
    http: reqwest::Client,
    base_url: String,
    /// The content API (`https://api-data.line.me`): LINE serves what followers sent from a
    /// host of its own.
    data_base_url: String,
    tokens: Arc<TokenSource>,
    metrics: Option<Arc<Metrics>>,
    /// LINE refused the token on the last message request, or none could be issued.
    token_trouble: Arc<AtomicBool>,
}

impl LineClient {
    /// `base_url` is e.g. `https://api.line.me` (no trailing slash needed). `token_store` is where
    /// a v2.1 token is kept across restarts (`storage.dir/line-token.json`); see `line::token`.
    pub fn new(base_url: &str, credentials: Credentials, timeout: Duration, token_store: Option<PathBuf>) -> Result<LineClient, Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("mail2line/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        let base_url = base_url.trim_end_matches('/').to_owned();
        let tokens = Arc::new(TokenSource::new(credentials, http.clone(), &base_url, token_store));
        Ok(LineClient {
            http,
            base_url,
            data_base_url: DEFAULT_DATA_BASE_URL.to_owned(),
            tokens,
            metrics: None,
            token_trouble: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Where [`LineClient::content`] fetches from (`[line] api_data_base_url`); LINE's own
    /// content host unless set. A builder step rather than a `new` parameter because only the
    /// webhook's answers need it; `check-config` and the tests of other calls leave it.
    pub fn with_data_base_url(mut self, url: &str) -> LineClient {
        self.data_base_url = url.trim_end_matches('/').to_owned();
        self
    }

    /// Counts every message request in `metrics` (set before the client is cloned).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> LineClient {
        self.metrics = Some(metrics);
        self
    }

    /// False once LINE refused the channel access token (or none could be issued), until a
    /// request goes through again.
    pub fn token_ok(&self) -> bool {
        !self.token_trouble.load(Ordering::Relaxed)
    }

    /// For `/readyz`: whether requests can carry a token LINE accepts, as far as we know without
    /// sending a message. A long-lived token counts as fine until LINE refuses it; an issued
    /// (v2.1/stateless) one must be current or obtainable now, which may issue one, exactly as
    /// the next mail would.
    pub async fn token_ready(&self) -> Result<(), Error> {
        if !self.token_ok() {
            return Err(Error::TokenRefused { kind: self.tokens.credentials().kind().name() });
        }
        if self.tokens.renewable() {
            self.tokens.get().await.map_err(Error::NoToken)?;
        }
        Ok(())
    }

    fn count(&self, api_path: &str, status: PushStatus) {
        if let Some(m) = &self.metrics {
            m.line_request(api_path, status);
        }
    }

    /// Where this client's bearer tokens come from.
    pub fn tokens(&self) -> &TokenSource {
        &self.tokens
    }

    /// POSTs an encoded JSON body (`Body::to_json`, or as stored by the spool) to an API path.
    /// `retry_key` (a UUID) makes the request idempotent at LINE for 24 h.
    pub async fn send_raw(&self, api_path: &str, body: String, retry_key: Option<&str>) -> Outcome {
        let token = match self.tokens.get().await {
            Ok(t) => t,
            Err(e) => {
                self.count(api_path, PushStatus::NoToken);
                self.token_trouble.store(true, Ordering::Relaxed);
                return e.outcome();
            }
        };
        let outcome = match self.post(api_path, body.clone(), retry_key, &token).await {
            // The token expired early or was revoked: one new token, one more try. LINE refused
            // the request, so sending it again (same retry key) cannot duplicate it.
            Outcome::Unauthorized { status: 401, .. } if self.tokens.renewable() => match self.tokens.renew_after_401(&token).await {
                Ok(fresh) => self.post(api_path, body, retry_key, &fresh).await,
                Err(e) => {
                    self.count(api_path, PushStatus::NoToken);
                    e.outcome()
                }
            },
            other => other,
        };
        match &outcome {
            Outcome::Unauthorized { .. } | Outcome::Retry { reason: RetryReason::NoAccessToken, .. } => {
                self.token_trouble.store(true, Ordering::Relaxed)
            }
            // LINE checks the token before anything else: any other answer means it took it.
            Outcome::Delivered { .. } | Outcome::Permanent { .. } => self.token_trouble.store(false, Ordering::Relaxed),
            Outcome::Retry { .. } => {}
        }
        outcome
    }

    async fn post(&self, api_path: &str, body: String, retry_key: Option<&str>, token: &Secret) -> Outcome {
        let url = format!("{}{}", self.base_url, api_path);
        let mut builder = self
            .http
            .post(&url)
            .bearer_auth(token.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = retry_key {
            builder = builder.header("X-Line-Retry-Key", key);
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                self.count(api_path, PushStatus::NetworkError);
                return transport_error(&e);
            }
        };
        let status = response.status().as_u16();
        self.count(api_path, PushStatus::Http(status));
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request_id = header("x-line-request-id");
        let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => return transport_error(&e),
        };
        classify(status, &body, retry_after, request_id)
    }

    /// Whether the monthly message quota has room again: `GET /v2/bot/message/quota` (limit) and
    /// `/v2/bot/message/quota/consumption` (used so far).
    pub async fn quota_available(&self) -> Result<bool, Error> {
        let q = self.quota().await?;
        Ok(q.limit.is_none_or(|limit| q.used < limit))
    }

    /// The month's quota as LINE reports it: `GET /v2/bot/message/quota` (`type` `none` or
    /// `limited`, `value`) and `/v2/bot/message/quota/consumption` (`totalUsage`).
    pub async fn quota(&self) -> Result<QuotaReading, Error> {
        #[derive(serde::Deserialize)]
        struct Quota {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            value: Option<i64>,
        }
        #[derive(serde::Deserialize)]
        struct Consumption {
            #[serde(rename = "totalUsage")]
            total_usage: i64,
        }
        let quota: Quota = self.get_json_passive("/v2/bot/message/quota").await?;
        let used: Consumption = self.get_json_passive("/v2/bot/message/quota/consumption").await?;
        let limit = if quota.kind == "none" { None } else { quota.value.map(|v| v.max(0) as u64) };
        Ok(QuotaReading { limit, used: used.total_usage.max(0) as u64 })
    }

    /// The members of a group (`C…`) or room (`R…`): what LINE counts for one push to it.
    /// `GET /v2/bot/group/{groupId}/members/count` or `/v2/bot/room/{roomId}/members/count`.
    pub async fn member_count(&self, chat: &str) -> Result<u64, Error> {
        #[derive(serde::Deserialize)]
        struct Count {
            count: i64,
        }
        let kind = match chat.as_bytes().first() {
            Some(b'C') => "group",
            Some(b'R') => "room",
            _ => return Ok(1),
        };
        // The id is ours (checked at RCPT: a letter and 32 hex digits), so it needs no escaping.
        let c: Count = self.get_json(&format!("/v2/bot/{kind}/{chat}/members/count")).await?;
        Ok(c.count.max(0) as u64)
    }

    /// Answers a webhook event: `POST /v2/bot/message/reply` with its one-time `replyToken`.
    /// No retry key: LINE does not take one for replies, and a reply token expires within
    /// about a minute, so a failed reply is reported rather than retried.
    pub async fn reply(&self, reply_token: &str, messages: &[Message]) -> Outcome {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct ReplyBody<'a> {
            reply_token: &'a str,
            messages: &'a [Message],
        }
        let body = match serde_json::to_string(&ReplyBody { reply_token, messages }) {
            Ok(b) => b,
            Err(e) => return Outcome::Permanent { status: 0, message: format!("cannot encode the reply: {e}") },
        };
        self.send_raw("/v2/bot/message/reply", body, None).await
    }

    /// A user's display name: `GET /v2/bot/profile/{userId}`. Works only for users who follow
    /// the bot; the error says why the name is unknown.
    pub async fn profile(&self, user_id: &str) -> Result<String, Error> {
        #[derive(serde::Deserialize)]
        struct Profile {
            #[serde(rename = "displayName")]
            display_name: String,
        }
        check_id(user_id)?;
        let profile: Profile = self.get_json(&format!("/v2/bot/profile/{user_id}")).await?;
        Ok(profile.display_name)
    }

    /// The display name of `user_id` as a member of chat `chat_id`: `GET
    /// /v2/bot/group/{groupId}/member/{userId}` for a group (`C…`), `/v2/bot/room/{roomId}/member/
    /// {userId}` for a room (`R…`), and the user's [`profile`](LineClient::profile) for a 1:1
    /// chat (`U…`). LINE answers these for members who do not follow the bot too.
    pub async fn member_name(&self, chat_id: &str, user_id: &str) -> Result<String, Error> {
        #[derive(serde::Deserialize)]
        struct Member {
            #[serde(rename = "displayName")]
            display_name: String,
        }
        check_id(user_id)?;
        let kind = match chat_id.as_bytes().first() {
            Some(b'U') => return self.profile(user_id).await,
            Some(b'C') => "group",
            Some(b'R') => "room",
            _ => return Err(Error::NotAChatId(chat_id.to_owned())),
        };
        if !chat_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Error::NotAChatId(chat_id.to_owned()));
        }
        let member: Member = self.get_json(&format!("/v2/bot/{kind}/{chat_id}/member/{user_id}")).await?;
        Ok(member.display_name)
    }

    /// Marks the chat an answer came from as read, up to that message: `POST
    /// /v2/bot/chat/markAsRead` with the `markAsReadToken` of its webhook event. It costs no
    /// quota; the follower sees "Read" when the answer was taken. No retry key (LINE takes none
    /// here), and marking twice does no harm.
    pub async fn mark_as_read(&self, token: &str) -> Outcome {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct MarkAsRead<'a> {
            mark_as_read_token: &'a str,
        }
        let body = match serde_json::to_string(&MarkAsRead { mark_as_read_token: token }) {
            Ok(b) => b,
            Err(e) => return Outcome::Permanent { status: 0, message: format!("cannot encode the request: {e}") },
        };
        self.send_raw("/v2/bot/chat/markAsRead", body, None).await
    }

    /// What a follower sent as a photo, video, audio or file: `GET
    /// {api_data_base_url}/v2/bot/message/{messageId}/content`, with the bearer token. The body
    /// is read chunk by chunk and reading stops as soon as it would pass `max_bytes` (or at once
    /// when `Content-Length` says it will), so at most `max_bytes` and one chunk are held.
    pub async fn content(&self, message_id: &str, max_bytes: u64) -> Result<Content, ContentError> {
        if !is_message_id(message_id) {
            return Err(ContentError::Permanent(format!("{message_id:?} is not a LINE message id (digits only)")));
        }
        let url = format!("{}/v2/bot/message/{message_id}/content", self.data_base_url);
        let token = self.tokens.get().await.map_err(|e| ContentError::Retry(format!("no channel access token: {e}")))?;
        let mut response = self.get_content(&url, &token).await?;
        if response.status().as_u16() == 401 && self.tokens.renewable() {
            // As for the other GETs: an issued token expired early or was revoked.
            let fresh = self.tokens.renew_after_401(&token).await.map_err(|e| ContentError::Retry(format!("no channel access token: {e}")))?;
            response = self.get_content(&url, &fresh).await?;
        }
        let status = response.status().as_u16();
        if status != 200 {
            // LINE's error text, read no further than a few KiB: the bound holds for refusals too.
            let mut body = Vec::new();
            while body.len() < 4096 {
                match response.chunk().await {
                    Ok(Some(chunk)) => body.extend_from_slice(&chunk[..chunk.len().min(4096 - body.len())]),
                    _ => break,
                }
            }
            let message = super::outcome::error_message(&body);
            return Err(content::refusal(status, &message).unwrap_or_else(|| ContentError::Retry(format!("unexpected answer {status}"))));
        }
        if response.content_length().is_some_and(|n| n > max_bytes) {
            return Err(ContentError::TooLarge { limit: max_bytes });
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .unwrap_or(content::UNKNOWN_TYPE)
            .to_owned();
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
                        return Err(ContentError::TooLarge { limit: max_bytes });
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(ContentError::Retry(format!("the download broke off: {}", describe_transport(&e)))),
            }
        }
        Ok(Content { bytes, content_type })
    }

    async fn get_content(&self, url: &str, token: &Secret) -> Result<reqwest::Response, ContentError> {
        self.http
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| ContentError::Retry(format!("no answer from LINE's content API: {}", describe_transport(&e))))
    }

    /// The bot behind the credentials: `GET /v2/bot/info`. `check-config --online` uses it to
    /// prove the token (or the key or secret that issues one) and `api_base_url` work; every
    /// failure keeps what is needed to explain it.
    pub async fn bot_info(&self) -> Result<BotInfo, ProbeError> {
        const PATH: &str = "/v2/bot/info";
        let token = self.tokens.get().await.map_err(ProbeError::Token)?;
        let mut response = self.probe_get(PATH, &token).await?;
        if response.status().as_u16() == 401 && self.tokens.renewable() {
            let fresh = self.tokens.renew_after_401(&token).await.map_err(ProbeError::Token)?;
            response = self.probe_get(PATH, &fresh).await?;
        }
        let status = response.status().as_u16();
        let request_id = response.headers().get("x-line-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = response.bytes().await.map_err(|e| ProbeError::Transport(describe_transport(&e)))?;
        if !(200..300).contains(&status) {
            return Err(ProbeError::Status { status, message: super::outcome::error_message(&body), request_id });
        }
        serde_json::from_slice(&body).map_err(|e| ProbeError::Body(e.to_string()))
    }

    async fn probe_get(&self, api_path: &str, token: &Secret) -> Result<reqwest::Response, ProbeError> {
        self.http
            .get(format!("{}{}", self.base_url, api_path))
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| ProbeError::Transport(describe_transport(&e)))
    }

    /// A GET with the token at hand only: no token is issued for it and a 401 renews nothing.
    /// The quota is read in the background, and with v2.1 and stateless tokens a read that
    /// issued or renewed the token would race the deliveries that own that (a push that meets
    /// a revoked token must be the one to renew it, and retry with the same key).
    async fn get_json_passive<T: serde::de::DeserializeOwned>(&self, api_path: &str) -> Result<T, Error> {
        let token = self.tokens.current().await.ok_or_else(|| Error::NoTokenYet { path: api_path.to_owned() })?;
        let response = self.get(api_path, &token).await?;
        read_json(api_path, response).await
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, api_path: &str) -> Result<T, Error> {
        let no_token = |why| Error::Token { path: api_path.to_owned(), why };
        let token = self.tokens.get().await.map_err(no_token)?;
        let mut response = self.get(api_path, &token).await?;
        if response.status().as_u16() == 401 && self.tokens.renewable() {
            let fresh = self.tokens.renew_after_401(&token).await.map_err(no_token)?;
            response = self.get(api_path, &fresh).await?;
        }
        read_json(api_path, response).await
    }

    async fn get(&self, api_path: &str, token: &Secret) -> Result<reqwest::Response, Error> {
        self.http
            .get(format!("{}{}", self.base_url, api_path))
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| Error::Transport { path: api_path.to_owned(), timed_out: e.is_timeout() })
    }
}

/// LINE ids (users, groups, rooms) are ASCII letters and digits; anything else would change
/// the URL path it goes into.
fn check_id(user_id: &str) -> Result<(), Error> {
    if user_id.is_empty() || !user_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Error::NotAUserId(user_id.to_owned()));
    }
    Ok(())
}

/// A GET's answer read as JSON: a 2xx that parses, or why not.
async fn read_json<T: serde::de::DeserializeOwned>(api_path: &str, response: reqwest::Response) -> Result<T, Error> {
    let status = response.status();
    if !status.is_success() {
        return Err(Error::Status { path: api_path.to_owned(), status: status.as_u16() });
    }
    response.json::<T>().await.map_err(|e| Error::Answer { path: api_path.to_owned(), detail: e.to_string() })
}

/// The month's quota as LINE reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaReading {
    /// None when LINE reports no limit (`type: none`).
    pub limit: Option<u64>,
    pub used: u64,
}

/// `GET /v2/bot/info`'s answer (the fields `check-config` shows).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BotInfo {
    pub user_id: String,
    pub basic_id: String,
    pub display_name: String,
    #[serde(default)]
    pub premium_id: Option<String>,
}

/// Why [`LineClient::bot_info`] got no bot.
#[derive(Debug, Clone)]
pub enum ProbeError {
    /// No channel access token: the token endpoint refused (v2.1, stateless) or was unreachable.
    Token(super::token::TokenError),
    /// No HTTP answer: what went wrong, e.g. `timed out` or `connection refused`.
    Transport(String),
    /// An HTTP error status, with LINE's own message.
    Status { status: u16, message: String, request_id: Option<String> },
    /// 2xx, but not bot information.
    Body(String),
}

/// What stopped a request from getting an answer, down to the root cause (`dns error: …`,
/// `Connection refused`), which is what an admin needs to fix the network. The cause chain
/// holds the URL at most; the token travels only in a header.
fn describe_transport(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer in time".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let what = if e.is_connect() { "cannot connect" } else { "the connection failed" };
    format!("{what}: {cause}")
}

/// A request that got no HTTP answer. The error is described without its source chain's
/// internals; it never contains the token (which travels only in a header).
fn transport_error(e: &reqwest::Error) -> Outcome {
    let reason = if e.is_timeout() {
        RetryReason::Timeout
    } else if e.is_connect() {
        RetryReason::Unreachable
    } else {
        RetryReason::ConnectionLost
    };
    let detail = if e.is_timeout() {
        "LINE API did not answer in time".to_owned()
    } else if e.is_connect() {
        "cannot connect to the LINE API".to_owned()
    } else {
        "the connection to the LINE API failed".to_owned()
    };
    Outcome::Retry { reason, detail, after: None }
}
