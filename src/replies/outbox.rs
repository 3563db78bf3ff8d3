//! The outbox worker: mails the followers' answers that the webhook stored (`spool::answers`).
//!
//! For each due answer, in order: the per-chat hourly limit (`[replies] max_per_hour`; over it,
//! the answer waits, it is not dropped), the destination ([`super::route`]), the follower's
//! display name, the files it carries (fetched from LINE's content API, retried until
//! `[replies] max_age`, then mailed without them and with a line saying so), the mail
//! ([`super::letter`]) and the relay ([`super::relay`]). Each outcome is one commit in the store:
//! sent, retry at, dead (listed by `mail2line queue`) or dropped.
//!
//! Exactly once: an event id is stored once (the webhook), and an answer is marked sent in the
//! commit after the relay took it. A crash between the relay's 250 and that commit mails it
//! again after the restart; the mail then has the same Message-ID (derived from the event id),
//! so mail clients and most MTAs' duplicate filters show it once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::clock::now_ms;
use crate::followers::Registry;
use crate::line::events::{ContentProvider, Event, EventKind, MessageContent, Provider, Source};
use crate::line::{ContentError, LineClient};
use crate::metrics::Metrics;
use crate::spool::answers::{Answer, AnswerUpdate};
use crate::spool::store::{Store, StoreError};

use super::letter::{attachment_name, build, Attachment, Letter};
use super::relay::{Relay, SendError};
use super::route::{backoff, expired, route, Destination};
use super::settings::Settings;

/// How often the store is asked for due answers. An answer is in the store before LINE gets its
/// 200, so one second here is at most one second more before the mail leaves.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// How often old rows are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// How long an answer waits when its chat has used its hour (`[replies] max_per_hour`).
const RATE_WAIT_MS: i64 = 5 * 60 * 1000;

/// Answers handled per scan.
const BATCH: usize = 32;

/// Everything the worker needs; built by `serve`.
pub struct Outbox {
    pub store: Store,
    pub line: LineClient,
    pub relay: Relay,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// `[delivery] dead_retention`: dead answers are kept as long as dead mail.
    pub dead_retention: Duration,
    /// How long a sent answer's event id is kept (LINE redelivers within a day or so).
    pub keep_events: Duration,
}

/// What the store says about an answer before it is mailed.
struct Findings {
    sent_this_hour: u32,
    destination: Destination,
}

impl Outbox {
    /// Runs until `stop` turns true.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(stop))
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut last_purge = None::<std::time::Instant>;
        loop {
            if *stop.borrow() {
                return;
            }
            if last_purge.is_none_or(|at| at.elapsed() >= PURGE_INTERVAL) {
                last_purge = Some(std::time::Instant::now());
                self.purge().await;
            }
            match self.store.due_answers(now_ms(), BATCH).await {
                Ok(due) => {
                    for answer in due {
                        if *stop.borrow() {
                            return;
                        }
                        self.attempt(answer).await;
                    }
                }
                Err(e) => error!("replies: cannot read the answers outbox: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(SCAN_INTERVAL) => {}
                _ = stop.changed() => {}
            }
        }
    }

    async fn purge(&self) {
        let keep = self.keep_events.as_millis() as i64;
        let dead_before = now_ms() - self.dead_retention.as_millis() as i64;
        match self.store.purge_answers(self.window_ms(), keep, dead_before).await {
            Ok(n) if n > 0 => info!("replies: purged {n} old row(s) of sent messages and answers"),
            Ok(_) => {}
            Err(e) => warn!("replies: cannot purge old answers: {e}"),
        }
    }

    fn window_ms(&self) -> i64 {
        self.settings.window_hours as i64 * 3_600_000
    }

    /// Reads what the store knows for this answer: the hour's count and where it goes.
    async fn findings(&self, answer: &Answer, quoted_id: Option<String>) -> Result<Findings, StoreError> {
        let (at, window, now) = (answer.at, self.window_ms(), now_ms());
        // A quoted message is found as long as its id is kept (7 windows); the chat's last mail
        // only within one window before the answer.
        let found = self
            .store
            .answer_findings(answer.chat.clone(), quoted_id, at - window.saturating_mul(7), at - window, at, now - 3_600_000)
            .await?;
        let destination = route(found.quoted, found.last, &self.settings.to, |a| a.parse::<lettre::Address>().is_ok());
        Ok(Findings { sent_this_hour: found.sent_since, destination })
    }

    async fn attempt(&self, answer: Answer) {
        let now = now_ms();
        let event: Event = match serde_json::from_str(&answer.event) {
            Ok(e) => e,
            Err(e) => return self.record(&answer, AnswerUpdate::Dropped { reason: format!("the stored event cannot be read: {e}") }).await,
        };
        let EventKind::Message { message, .. } = event.kind else {
            return self.record(&answer, AnswerUpdate::Dropped { reason: "not a message event".into() }).await;
        };
        // A text or a sticker may quote one of our messages.
        let quoted_id = message.quoted_message_id().map(str::to_owned);
        let mark_as_read_token = message.mark_as_read_token().map(str::to_owned);
        let findings = match self.findings(&answer, quoted_id).await {
            Ok(f) => f,
            Err(e) => {
                // Nothing was decided: the answer stays as it is and the next scan tries again.
                error!(answer = answer.id, "replies: cannot read the outbox: {e}");
                return;
            }
        };
        let Some(to) = findings.destination.address().map(str::to_owned) else {
            info!(
                answer = answer.id, chat = %answer.chat, event = %answer.event_id,
                "answer from LINE not mailed: it answers no mail the gateway pushed to this chat within [replies] window_hours, and [replies] to is not set"
            );
            return self.record(&answer, AnswerUpdate::Dropped { reason: "no mail to answer and no [replies] to".into() }).await;
        };
        if findings.sent_this_hour >= self.settings.max_per_hour {
            let error = format!("[replies] max_per_hour reached: {} answer(s) from this chat mailed in the last hour; waiting", findings.sent_this_hour);
            warn!(answer = answer.id, chat = %answer.chat, "replies: {error}");
            return self.record(&answer, AnswerUpdate::Retry { next_at: now + RATE_WAIT_MS, error }).await;
        }
        let expired = expired(answer.created_at, now, self.settings.max_age_parsed);
        let body = match self.body(&message, expired).await {
            Ok(body) => body,
            Err(not_yet) => {
                let next_at = now + backoff(answer.attempts).as_millis() as i64;
                warn!(answer = answer.id, "replies: {not_yet}; will try again");
                self.metrics.answer("retried");
                return self.record(&answer, AnswerUpdate::Retry { next_at, error: not_yet.to_string() }).await;
            }
        };
        let display_name = self.display_name(event.source.as_ref(), &answer.chat).await;
        let (subject, in_reply_to) = match &findings.destination {
            Destination::Thread(t) => (t.subject.clone(), (!t.message_id.is_empty()).then(|| t.message_id.clone())),
            _ => (String::new(), None),
        };
        let letter = Letter {
            display_name,
            from: self.settings.from.clone(),
            to: to.clone(),
            subject,
            in_reply_to,
            chat: answer.chat.clone(),
            event_id: answer.event_id.clone(),
            at_ms: answer.at,
            text: body.text,
            attachments: body.attachments,
        };
        let (envelope, bytes) = match build(&letter) {
            Ok(built) => built,
            Err(e) => {
                error!(answer = answer.id, "replies: cannot build the mail: {e}");
                self.metrics.answer("dead");
                return self.record(&answer, AnswerUpdate::Dead { to, error: e.to_string() }).await;
            }
        };
        match self.relay.send(envelope, bytes).await {
            Ok(()) => {
                info!(answer = answer.id, chat = %answer.chat, event = %answer.event_id, to = %to, threaded = letter.in_reply_to.is_some(), "answer from LINE mailed");
                self.metrics.answer("sent");
                self.record(&answer, AnswerUpdate::Sent { to }).await;
                if self.settings.acknowledge {
                    if let Some(token) = mark_as_read_token {
                        self.acknowledge(&token, &answer).await;
                    }
                }
            }
            Err(SendError::Temporary(e)) if !expired => {
                let next_at = now + backoff(answer.attempts).as_millis() as i64;
                warn!(answer = answer.id, to = %to, retry_in_s = (next_at - now) / 1000, "replies: the relay did not take the answer: {e}; will try again");
                self.metrics.answer("retried");
                self.record(&answer, AnswerUpdate::Retry { next_at, error: e }).await;
            }
            Err(SendError::Temporary(e) | SendError::Permanent(e)) => {
                error!(answer = answer.id, to = %to, attempts = answer.attempts + 1, "answer dead: kept as a dead answer, see `mail2line queue list --dead`: {e}");
                self.metrics.answer("dead");
                self.record(&answer, AnswerUpdate::Dead { to, error: e }).await;
            }
        }
    }

    async fn record(&self, answer: &Answer, update: AnswerUpdate) {
        if matches!(update, AnswerUpdate::Dropped { .. }) {
            self.metrics.answer("dropped");
        }
        if let Err(e) = self.store.update_answer(answer.id, now_ms(), update).await {
            // It stays as it was and is tried again: a mail sent twice beats one lost.
            error!(answer = answer.id, "replies: cannot record the answer's outcome: {e}");
        }
    }

    /// The display name of the follower who wrote: a group's or room's member name, or the
    /// user's profile; else the name the registry keeps; else "LINE user".
    async fn display_name(&self, source: Option<&Source>, chat: &str) -> String {
        let user = match source {
            Some(Source::User { user_id } | Source::Group { user_id, .. } | Source::Room { user_id, .. }) => user_id.clone(),
            None => None,
        };
        let Some(user) = user else { return "LINE user".into() };
        match self.line.member_name(chat, &user).await {
            Ok(name) if !name.trim().is_empty() => return name,
            Ok(_) => {}
            Err(e) => warn!(chat, user = %user, "replies: no display name from LINE: {e}"),
        }
        match self.registry.get_async(&user).await {
            Ok(Some(f)) => if f.display_name.trim().is_empty() { "LINE user".into() } else { f.display_name },
            _ => "LINE user".into(),
        }
    }

    async fn acknowledge(&self, token: &str, answer: &Answer) {
        let outcome = self.line.mark_as_read(token).await;
        if !matches!(outcome, crate::line::Outcome::Delivered { .. }) {
            warn!(answer = answer.id, "replies: could not mark the chat read ([replies] acknowledge): {outcome:?}");
        }
    }

    /// The mail's text and files. `Err` when a file could not be fetched yet and the answer is
    /// not past `max_age`: the whole answer waits and is tried again. Past it, the mail goes
    /// without the file and says so.
    async fn body(&self, message: &MessageContent, expired: bool) -> Result<Body, NotFetchedYet> {
        // `kind` names the file for `attachment_name`; `what` is the word in the text.
        let (kind, what, id, provider, file_name) = match message {
            MessageContent::Text { text, .. } => return Ok(Body { text: text.clone(), attachments: Vec::new() }),
            MessageContent::Image { id, content_provider, .. } => ("image", "photo", id, Some(content_provider), None),
            MessageContent::Video { id, content_provider, .. } => ("video", "video", id, Some(content_provider), None),
            MessageContent::Audio { id, content_provider, .. } => ("audio", "audio", id, Some(content_provider), None),
            MessageContent::File { id, file_name, .. } => ("file", "file", id, None, Some(file_name.as_str())),
            MessageContent::Sticker { .. } | MessageContent::Location { .. } => {
                return Ok(Body { text: crate::line::events::describe(message), attachments: Vec::new() })
            }
            MessageContent::Other => {
                return Ok(Body { text: "[a LINE message of a kind mail2line cannot show; open LINE to see it]".into(), attachments: Vec::new() })
            }
        };
        if let Some(ContentProvider { kind: provider_kind, original_content_url, .. }) = provider {
            if *provider_kind == Provider::External {
                // Not fetched: the URL is the sender's own server, and the gateway fetches from
                // LINE only.
                let url = original_content_url.as_deref().unwrap_or("(no URL given)");
                return Ok(Body { text: format!("[{what}, hosted outside LINE: {url}]"), attachments: Vec::new() });
            }
        }
        match self.line.content(id, self.settings.max_attachment_bytes).await {
            Ok(content) => {
                let name = attachment_name(kind, id, file_name, &content.content_type);
                Ok(Body {
                    text: format!("[{what} attached: {name}]"),
                    attachments: vec![Attachment { name, content_type: content.content_type, bytes: content.bytes }],
                })
            }
            Err(ContentError::TooLarge { limit }) => Ok(Body {
                text: format!("[{what} not attached: larger than [replies] max_attachment_bytes ({limit} bytes); open LINE to see it]"),
                attachments: Vec::new(),
            }),
            Err(ContentError::Permanent(e)) => Ok(Body {
                text: format!("[{what} not attached: LINE did not give it ({e}); open LINE to see it]"),
                attachments: Vec::new(),
            }),
            Err(ContentError::Retry(e)) if expired => Ok(Body {
                text: format!("[{what} not attached: it could not be fetched from LINE within [replies] max_age ({e}); open LINE to see it]"),
                attachments: Vec::new(),
            }),
            Err(ContentError::Retry(e)) => Err(NotFetchedYet { what, reason: e.to_string() }),
        }
    }
}

/// A file of the answer that LINE could not give yet (a network error, 5xx, 429): the whole
/// answer waits and is tried again, until `max_age`.
#[derive(Debug, thiserror::Error)]
#[error("cannot fetch the {what} from LINE: {reason}")]
struct NotFetchedYet {
    what: &'static str,
    reason: String,
}

/// A mail's text and files.
struct Body {
    text: String,
    attachments: Vec<Attachment>,
}
