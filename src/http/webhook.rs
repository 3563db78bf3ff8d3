//! The LINE webhook endpoint (`[webhook] path`): checks the signature, records follows, unfollows,
//! joins and leaves in the follower registry, and answers new followers and "address" questions
//! through the reply API.
//!
//! Order of work for one request, and why:
//! 1. No channel secret configured → 503: an unsigned webhook is never accepted.
//! 2. The signature is checked on the raw bytes before anything is parsed, so a forged request
//!    changes nothing and costs nothing (401).
//! 3. Content type (415) and JSON (400).
//! 4. Registry writes happen before the 200, so a 200 means "recorded"; each event id is
//!    remembered first, so a redelivered event changes nothing and is not answered twice.
//! 5. Profile lookups and replies go to a spawned task after the answer: LINE wants its 200
//!    quickly and does not wait for us to talk back to it.
//! 6. With `[replies]` on, a follower's message is an answer to be mailed back: it is stored in
//!    the spool's store (the outbox, `spool::answers`) before the event id is marked handled and
//!    before the 200, so a 200 means the answer is durable; `replies` mails it from there.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::{debug, error, info, warn};

use crate::clock::now_ms;
use crate::line::message::{Message, TextMessage};
use crate::followers::{Kind, Registry, RegistryError};
use crate::spool::answers::NewAnswer;
use crate::spool::store::{Store, StoreError};
use crate::line::{LineClient, Outcome};
use crate::secret::Secret;
use serde::Deserialize;

use crate::line::events::{type_name, CallbackRequest, Event, EventKind, MessageContent, Source};
use super::signature;

/// The header LINE puts its signature in.
pub const SIGNATURE_HEADER: &str = "x-line-signature";

/// LINE's longest text message, in characters.
const MAX_TEXT_CHARS: usize = 5000;

/// LINE redelivers an event within a day at most; ids are kept a bit longer than that. It is
/// also the oldest event accepted at all ([`too_old`]): past it, a replay's id is forgotten, so
/// its age is the only thing that still tells it apart.
pub const EVENT_ID_RETENTION_MS: i64 = 2 * 24 * 3600 * 1000;
const PRUNE_EVERY_MS: i64 = 3600 * 1000;

/// `[webhook]`: where LINE posts events, and how the gateway answers new followers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Where LINE posts events, on the `[http] listen` server.
    pub path: String,
    /// Greet each new follower (and each group/room joined) with their gateway address.
    pub welcome: bool,
    /// Placeholders: `{address}` (`<id>@<smtp.domain>`) and `{display_name}`.
    pub welcome_template: String,
    /// A text message containing one of these words is answered with the sender's address.
    pub address_keyword: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            path: "/webhook".into(),
            welcome: true,
            welcome_template: "Hello {display_name}! Mail sent to {address} reaches you here on LINE.".into(),
            address_keyword: vec!["address".into(), "アドレス".into()],
        }
    }
}

impl Settings {
    /// Problems as `(key, message)`: a path that is not one, or is taken by media or
    /// monitoring; an unknown placeholder in the welcome.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        if !self.path.starts_with('/') {
            p.push(("webhook.path".to_owned(), format!("{:?} must start with '/', e.g. \"/webhook\"", self.path)));
        }
        if let Some(bad) = unknown_placeholder(&self.welcome_template, &["address", "display_name"]) {
            p.push(("webhook.welcome_template".to_owned(), format!("unknown placeholder {{{bad}}}; allowed: {{address}}, {{display_name}}")));
        }
        if self.path.starts_with(crate::media::URL_PREFIX) {
            p.push(("webhook.path".to_owned(), format!("{:?} is taken by media files (/media/…); use e.g. \"/webhook\"", self.path)));
        }
        if crate::http::MONITOR_PATHS.contains(&self.path.as_str()) {
            p.push(("webhook.path".to_owned(), format!("{:?} is taken by monitoring (/metrics, /healthz, /readyz); use e.g. \"/webhook\"", self.path)));
        }
        p
    }
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

/// Everything the webhook handler needs; shared by all requests.
pub struct Webhook {
    registry: Arc<Registry>,
    /// `None` in `serve --dry-run`: replies and profile lookups are logged, not sent.
    line: Option<LineClient>,
    secret: Secret,
    domain: String,
    welcome: bool,
    welcome_template: String,
    /// Lowercased, empty ones dropped (an empty keyword would match every message).
    keywords: Vec<String>,
    warned_no_secret: AtomicBool,
    last_prune_ms: AtomicI64,
    /// Events ignored for their age: older than [`EVENT_ID_RETENTION_MS`], or older than the
    /// chat's latest recorded event.
    stale_events: AtomicU64,
    /// `[replies]` on: where followers' messages are stored to be mailed back.
    answers: Option<Store>,
}

impl Webhook {
    /// From `[webhook]`, `smtp.domain` (for the addresses it tells) and `line.channel_secret`
    /// (which signs LINE's requests; empty: every event is refused).
    pub fn new(settings: &Settings, domain: &str, secret: Secret, registry: Arc<Registry>, line: Option<LineClient>) -> Webhook {
        Webhook {
            registry,
            line,
            secret,
            domain: domain.to_owned(),
            welcome: settings.welcome,
            welcome_template: settings.welcome_template.clone(),
            keywords: settings
                .address_keyword
                .iter()
                .map(|k| k.trim().to_lowercase())
                .filter(|k| !k.is_empty())
                .collect(),
            warned_no_secret: AtomicBool::new(false),
            last_prune_ms: AtomicI64::new(0),
            stale_events: AtomicU64::new(0),
            answers: None,
        }
    }

    /// Stores followers' messages in `store` as answers to be mailed back (`[replies]` on).
    pub fn with_answers(mut self, store: Store) -> Webhook {
        self.answers = Some(store);
        self
    }

    /// The answer a message event is, when answers are kept: any message from a user, group or
    /// room, except a message that is nothing but an address keyword (a question to the bot,
    /// answered by it, not news for the mail's sender).
    fn answer_of(&self, event: &Event, raw: &serde_json::Value) -> Option<NewAnswer> {
        self.answers.as_ref()?;
        let EventKind::Message { message, .. } = &event.kind else {
            return None;
        };
        let chat = event.source.as_ref()?.chat_id()?;
        if let MessageContent::Text { text, .. } = message {
            if self.keywords.iter().any(|k| text.trim().to_lowercase() == *k) {
                return None;
            }
        }
        Some(NewAnswer { event_id: event.webhook_event_id.clone(), chat: chat.to_owned(), event: raw.to_string(), at: event.timestamp })
    }

    /// `<id>@<smtp.domain>`: the address that reaches `id` on LINE.
    pub fn address(&self, id: &str) -> String {
        format!("{id}@{}", self.domain)
    }

    /// The welcome text: `{address}` first, then `{display_name}`, so a display name that
    /// happens to contain "{address}" is left as the user wrote it.
    pub fn welcome_text(&self, id: &str, display_name: &str) -> String {
        self.welcome_template.replace("{address}", &self.address(id)).replace("{display_name}", display_name)
    }

    /// How many events were ignored for their age since the start.
    pub fn stale_events(&self) -> u64 {
        self.stale_events.load(Ordering::Relaxed)
    }

    fn count_stale(&self) -> u64 {
        self.stale_events.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn asks_for_address(&self, text: &str) -> bool {
        let text = text.to_lowercase();
        self.keywords.iter().any(|k| text.contains(k.as_str()))
    }
}

/// What to do after answering LINE (needs the network, so it must not delay the 200).
#[derive(Debug)]
enum FollowUp {
    /// A new follower, group or room: learn a user's name, then greet if a token is given.
    Greet { id: String, kind: Kind, reply_token: Option<String> },
    /// Someone asked for their address.
    Address { id: String, reply_token: String },
}

fn text(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}

/// `POST [webhook] path`.
pub async fn handle(State(hook): State<Arc<Webhook>>, headers: HeaderMap, body: Bytes) -> Response {
    if hook.secret.is_empty() {
        if !hook.warned_no_secret.swap(true, Ordering::Relaxed) {
            error!(
                "webhook: refusing LINE webhooks because line.channel_secret is empty; set it in [line] or \
                 $LINE_CHANNEL_SECRET (LINE Developers console, channel > Basic settings > Channel secret)"
            );
        }
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "webhook disabled: set line.channel_secret (or $LINE_CHANNEL_SECRET) so signatures can be checked",
        );
    }
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if signature.is_empty() || !signature::verify(hook.secret.expose().as_bytes(), &body, signature) {
        // Neither the expected nor the received signature is logged: either would help a forger.
        warn!(
            "webhook: rejected a request with a {} X-Line-Signature ({} bytes); if this is LINE, check line.channel_secret",
            if signature.is_empty() { "missing" } else { "wrong" },
            body.len()
        );
        return text(StatusCode::UNAUTHORIZED, "invalid or missing X-Line-Signature");
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return text(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json");
    }
    let request: CallbackRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            warn!("webhook: signed body is not a LINE callback request: {e}");
            return text(StatusCode::BAD_REQUEST, &format!("body is not a LINE webhook callback request: {e}"));
        }
    };
    if request.events.is_empty() {
        info!("webhook: connectivity check from LINE (no events)");
        return text(StatusCode::OK, "OK");
    }
    debug!("webhook: {} event(s) for bot {}", request.events.len(), request.destination);
    let now = now_ms();
    let mut follow_ups = Vec::new();
    for raw in &request.events {
        match record(&hook, raw, now, &mut follow_ups).await {
            Ok(()) => {}
            Err(Failure::Registry(e)) => {
                // The event id may already be marked seen, so a redelivery would be skipped; say so.
                error!(
                    "webhook: follower registry error on a {} event: {e}; the event may be lost, check storage.dir \
                     (disk space, permissions) and have the user re-follow if needed",
                    type_name(raw)
                );
                return text(StatusCode::INTERNAL_SERVER_ERROR, "follower registry error; see the gateway log");
            }
            Err(Failure::Store(e)) => {
                // Not marked handled: LINE's redelivery gets another go, and the stored answer
                // is keyed by its event id, so a second try never stores it twice.
                error!("webhook: cannot store a follower's answer: {e}; LINE will redeliver it, check storage.dir (disk space, permissions)");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot store the answer; see the gateway log");
            }
        }
    }
    prune(&hook, now).await;
    if !follow_ups.is_empty() {
        let hook = hook.clone();
        tokio::spawn(async move {
            for f in follow_ups {
                follow_up(&hook, f).await;
            }
        });
    }
    text(StatusCode::OK, "OK")
}

/// Why an event could not be recorded (answered 500, so LINE redelivers it).
#[derive(Debug)]
enum Failure {
    Registry(RegistryError),
    Store(StoreError),
}

impl From<RegistryError> for Failure {
    fn from(e: RegistryError) -> Self {
        Failure::Registry(e)
    }
}

/// Applies one event to the registry (and stores an answer), and notes what to do after
/// answering.
async fn record(hook: &Webhook, raw: &serde_json::Value, now: i64, out: &mut Vec<FollowUp>) -> Result<(), Failure> {
    let kind_name = type_name(raw);
    let event: Event = match serde_json::from_value(raw.clone()) {
        Ok(e) => e,
        Err(e) => {
            warn!("webhook: skipping a {kind_name} event that does not match LINE's format: {e}");
            return Ok(());
        }
    };
    if matches!(event.kind, EventKind::Other) {
        debug!("webhook: ignoring a {kind_name} event");
        return Ok(());
    }
    if too_old(event.timestamp, now) {
        // Validly signed, so it was LINE's once: a replay of a captured request whose id we
        // no longer remember. Answered 200 with the rest (LINE must not retry), but not applied.
        let n = hook.count_stale();
        warn!(
            "webhook: refusing a {kind_name} event {} from {} h ago: older than the {} h event ids are remembered, \
             so possibly a replay ({n} old event(s) ignored since start)",
            event.webhook_event_id,
            now.saturating_sub(event.timestamp) / 3_600_000,
            EVENT_ID_RETENTION_MS / 3_600_000
        );
        return Ok(());
    }
    if hook.registry.seen_async(&event.webhook_event_id).await? {
        info!("webhook: {kind_name} event {} already handled; ignoring the redelivery", event.webhook_event_id);
        return Ok(());
    }
    // The event id is marked handled only after its registry change is written: if the write
    // fails we answer 500 and LINE's redelivery gets another go. Every change is idempotent, so
    // a crash between the two writes costs at most a repeated greeting.
    let before = out.len();
    let event_id = event.webhook_event_id.clone();
    let answer = hook.answer_of(&event, raw);
    apply(hook, event, kind_name, out).await?;
    if let (Some(answer), Some(store)) = (answer, &hook.answers) {
        let chat = answer.chat.clone();
        match store.store_answer(answer).await {
            Ok(true) => info!("webhook: stored an answer from {chat} (event {event_id}) to be mailed"),
            Ok(false) => info!("webhook: the answer of event {event_id} is stored already"),
            Err(e) => {
                out.truncate(before);
                return Err(Failure::Store(e));
            }
        }
    }
    if let Err(e) = hook.registry.first_delivery_async(&event_id, now).await {
        out.truncate(before);
        return Err(e.into());
    }
    Ok(())
}

/// The registry change one event makes, and the follow-ups it asks for.
async fn apply(hook: &Webhook, event: Event, kind_name: &str, out: &mut Vec<FollowUp>) -> Result<(), RegistryError> {
    let redelivery = event.delivery_context.as_ref().is_some_and(|d| d.is_redelivery);
    let Some(source) = &event.source else {
        warn!("webhook: skipping a {kind_name} event without a source");
        return Ok(());
    };
    let (chat, chat_kind) = match source {
        Source::User { user_id: Some(id) } => (id.as_str(), Kind::User),
        Source::User { user_id: None } => {
            warn!("webhook: skipping a {kind_name} event from a user without a userId");
            return Ok(());
        }
        Source::Group { group_id, .. } => (group_id.as_str(), Kind::Group),
        Source::Room { room_id, .. } => (room_id.as_str(), Kind::Room),
    };
    let at = event.timestamp;
    // `Ok(false)`: the chat has a newer event already; this one is logged, counted and dropped
    // (no greeting either), so an old unfollow replayed after a follow changes nothing.
    let reg = |r: Result<bool, RegistryError>| -> Result<bool, RegistryError> {
        let applied = r?;
        if !applied {
            let n = hook.count_stale();
            warn!(
                "webhook: ignoring a {kind_name} event {} for {chat} from {at}: {chat} has a newer event already \
                 ({n} old event(s) ignored since start)",
                event.webhook_event_id
            );
        }
        Ok(applied)
    };
    match event.kind {
        EventKind::Follow { reply_token, follow } if chat_kind == Kind::User => {
            let unblocked = follow.is_some_and(|f| f.is_unblocked);
            if !reg(hook.registry.follow_async(chat, Kind::User, None, at).await)? {
                return Ok(());
            }
            info!("webhook: {chat} {}", if unblocked { "unblocked the bot" } else { "followed the bot" });
            out.push(FollowUp::Greet { id: chat.to_owned(), kind: Kind::User, reply_token: hook.welcome.then_some(reply_token) });
        }
        EventKind::Unfollow if chat_kind == Kind::User => {
            if !reg(hook.registry.unfollow_async(chat, Kind::User, at).await)? {
                return Ok(());
            }
            info!("webhook: {chat} unfollowed (blocked) the bot");
        }
        EventKind::Join { reply_token } if chat_kind != Kind::User => {
            if !reg(hook.registry.follow_async(chat, chat_kind, None, at).await)? {
                return Ok(());
            }
            info!("webhook: joined {} {chat}", chat_kind.as_str());
            out.push(FollowUp::Greet { id: chat.to_owned(), kind: chat_kind, reply_token: hook.welcome.then_some(reply_token) });
        }
        EventKind::Leave if chat_kind != Kind::User => {
            if !reg(hook.registry.unfollow_async(chat, chat_kind, at).await)? {
                return Ok(());
            }
            info!("webhook: left {} {chat}", chat_kind.as_str());
        }
        EventKind::Message { reply_token: Some(reply_token), message: MessageContent::Text { text, .. } } => {
            if hook.asks_for_address(&text) {
                debug!("webhook: {chat} asked for its address");
                out.push(FollowUp::Address { id: chat.to_owned(), reply_token });
            }
        }
        EventKind::Message { .. } => {}
        _ => warn!("webhook: ignoring a {kind_name} event from a {} source", chat_kind.as_str()),
    }
    if redelivery {
        info!("webhook: handled redelivered event {} for the first time", event.webhook_event_id);
    }
    Ok(())
}

async fn follow_up(hook: &Webhook, f: FollowUp) {
    match f {
        FollowUp::Greet { id, kind, reply_token } => {
            let mut name = None;
            if kind == Kind::User {
                name = lookup_name(hook, &id).await;
            }
            if let Some(token) = reply_token {
                let display_name = match (kind, &name) {
                    (Kind::User, Some(n)) => n.as_str(),
                    (Kind::User, None) => "there",
                    _ => "",
                };
                let text = hook.welcome_text(&id, display_name);
                send_reply(hook, &token, text, "welcome", &id).await;
            }
        }
        FollowUp::Address { id, reply_token } => {
            let text = format!("Your mail2line address: {}", hook.address(&id));
            send_reply(hook, &reply_token, text, "address", &id).await;
        }
    }
}

/// Best effort: a follower without a known name is still a follower.
async fn lookup_name(hook: &Webhook, user_id: &str) -> Option<String> {
    let line = hook.line.as_ref()?;
    match line.profile(user_id).await {
        Ok(name) => {
            if let Err(e) = hook.registry.set_display_name_async(user_id, &name).await {
                warn!("webhook: cannot store the display name of {user_id}: {e}");
            }
            Some(name)
        }
        Err(e) => {
            warn!("webhook: no display name for {user_id}: {e}");
            None
        }
    }
}

async fn send_reply(hook: &Webhook, reply_token: &str, mut text: String, what: &str, to: &str) {
    if text.chars().count() > MAX_TEXT_CHARS {
        text = text.chars().take(MAX_TEXT_CHARS).collect();
    }
    let Some(line) = &hook.line else {
        info!("webhook: dry run, not sending the {what} reply to {to}: {text:?}");
        return;
    };
    match line.reply(reply_token, &[Message::Text(TextMessage { text, emojis: Vec::new() })]).await {
        Outcome::Delivered { .. } => info!("webhook: sent the {what} reply to {to}"),
        other => warn!("webhook: the {what} reply to {to} failed (reply tokens expire quickly; not retried): {other:?}"),
    }
}

/// Forgets old event ids at most once an hour, so the table stays small.
async fn prune(hook: &Webhook, now: i64) {
    let last = hook.last_prune_ms.load(Ordering::Relaxed);
    if now - last < PRUNE_EVERY_MS || hook.last_prune_ms.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_err() {
        return;
    }
    match hook.registry.prune_events_async(now - EVENT_ID_RETENTION_MS).await {
        Ok(n) if n > 0 => debug!("webhook: forgot {n} old event id(s)"),
        Ok(_) => {}
        Err(e) => warn!("webhook: cannot prune old event ids: {e}"),
    }
}

/// Whether an event that happened at `timestamp` (unix ms) is too old to act on at `now`.
/// Future timestamps (LINE's clock a little ahead of ours) are not refused.
pub fn too_old(timestamp: i64, now: i64) -> bool {
    now.saturating_sub(timestamp) > EVENT_ID_RETENTION_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A webhook for `mail.example.com` with `secret` and `[webhook]` as `settings` (TOML).
    fn hook(secret: &str, settings: &str) -> Webhook {
        let settings: Settings = toml::from_str(settings).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(dir.path()).unwrap());
        Webhook::new(&settings, "mail.example.com", Secret::new(secret), registry, None)
    }

    #[test]
    fn events_older_than_the_event_id_memory_are_too_old() {
        let now = 10 * EVENT_ID_RETENTION_MS;
        assert!(!too_old(now, now));
        assert!(!too_old(now - EVENT_ID_RETENTION_MS, now), "the edge of the window is still in it");
        assert!(too_old(now - EVENT_ID_RETENTION_MS - 1, now));
        assert!(too_old(i64::MIN, now) && !too_old(i64::MAX, now) && !too_old(0, i64::MIN));
    }

    fn signed_post(h: &Arc<Webhook>, events: serde_json::Value) -> StatusCode {
        let body = serde_json::json!({"destination": "Ubot", "events": events}).to_string();
        let mut headers = HeaderMap::new();
        let sig = crate::http::signature::sign(b"s", body.as_bytes());
        headers.insert(SIGNATURE_HEADER, sig.parse().unwrap());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(handle(State(h.clone()), headers, Bytes::from(body))).status()
    }

    fn ev(kind: &str, id: &str, ts: i64) -> serde_json::Value {
        serde_json::json!({"type": kind, "mode": "active", "timestamp": ts, "webhookEventId": id,
            "deliveryContext": {"isRedelivery": false}, "replyToken": "rt", "source": {"type": "user", "userId": "U1"}})
    }

    #[test]
    fn replays_past_the_window_and_events_older_than_the_last_are_ignored() {
        let h = Arc::new(hook("s", ""));
        let now = now_ms();
        // A follow from three days ago: refused, nothing recorded.
        assert_eq!(signed_post(&h, serde_json::json!([ev("follow", "E1", now - 3 * 86_400_000)])), StatusCode::OK);
        assert!(h.registry.get("U1").unwrap().is_none());
        assert_eq!(h.stale_events(), 1);
        // Follow now, then the unfollow from a minute before arrives: the follow stands.
        assert_eq!(signed_post(&h, serde_json::json!([ev("follow", "E2", now)])), StatusCode::OK);
        assert_eq!(signed_post(&h, serde_json::json!([ev("unfollow", "E3", now - 60_000)])), StatusCode::OK);
        assert!(h.registry.is_active("U1").unwrap());
        assert_eq!(h.stale_events(), 2);
        assert_eq!(signed_post(&h, serde_json::json!([ev("unfollow", "E4", now + 1)])), StatusCode::OK);
        assert!(!h.registry.is_active("U1").unwrap());
    }

    #[test]
    fn welcome_text_fills_both_placeholders_once() {
        let h = hook("", "welcome_template = \"{display_name}: {address}\"\n");
        assert_eq!(h.welcome_text("U1", "Ann"), "Ann: U1@mail.example.com");
        // A name that looks like a placeholder stays as written.
        assert_eq!(h.welcome_text("U1", "{address}"), "{address}: U1@mail.example.com");
    }

    #[test]
    fn keywords_match_case_insensitively_and_empty_ones_are_ignored() {
        let h = hook("", "");
        assert!(h.asks_for_address("what's my ADDRESS?"));
        assert!(h.asks_for_address("メールアドレスを教えて"));
        assert!(!h.asks_for_address("hello"));
        let h = hook("", "address_keyword = [\"\", \"  \", \"Mail\"]\n");
        assert!(!h.asks_for_address("hello"), "an empty keyword must not match everything");
        assert!(h.asks_for_address("my e-MAIL please"));
    }
}
