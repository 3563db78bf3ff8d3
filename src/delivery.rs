//! From an accepted SMTP transaction to LINE: parse, compose, send, and choose the reply.
//!
//! The orchestrator, and the only place that knows the whole path of a mail. [`Gateway`]
//! implements `smtp::Deliver`, the SMTP server's hand-over, and takes each mail through the
//! modules once, in order: `followers@` expanded (`followers`), `mail::parse`, `media::host`
//! (the attachments → image files and links, stored before the reply; the conversions off the
//! async threads), `compose::compose` (pure), then `spool` or straight to `line`. Also here: the
//! SMTP reply for every outcome, the mail's retry keys, and the adapter that lets the spool pack
//! held mail with `compose::pack_bodies` ([`HeldPacker`]).
//!
//! Three modes: `Spool` (the default) stores the composed requests durably and answers 250 once
//! they are on disk; workers in `spool/` push them. `Direct` pushes while the client waits and
//! answers 250 only after LINE's 2xx. `DryRun` only logs the JSON it would send.
//!
//! Every mail gets its id here, and one "mail accepted" or "mail rejected" line (and the
//! matching count in `/metrics`) with that id and the client's address; the id is in the 250
//! reply ("queued as …"), in the "mail delivered" lines (`spool::Delivered`, in both modes),
//! the spool's "mail dead" lines and in `mail2line queue list`, so one search follows a mail
//! from SMTP to LINE's request id.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::compose::template::Template;
use crate::compose::text::MAX_MESSAGES_PER_REQUEST;
use crate::compose::{self, Outbound};
use crate::envelope::Recipient;
use crate::followers::Registry;
use crate::line::outcome::RetryReason;
use crate::line::request::{path, Body, Endpoint};
use crate::line::{LineClient, Outcome};
use crate::mail;
use crate::media::{self, Media};
use crate::spool::coalesce::{self, Admission};
use crate::spool::answers::Thread;
use crate::metrics::Metrics;
use crate::smtp::rejection::Reason;
use crate::smtp::{Deliver, Mail, Reply};
use crate::spool::store::{NewJob, PackError, Packer, Sealed};
use crate::spool::{Delivered, Spool};

pub enum Mode {
    /// Store durably, answer 250, deliver in the background with retries.
    Spool(Spool),
    /// Push to LINE while the client waits; the reply reflects LINE's answer.
    Direct(LineClient),
    /// Log the exact JSON that would be sent and answer 250: for trying the gateway without a
    /// LINE channel.
    DryRun,
}

pub struct Gateway {
    template: Template,
    mode: Mode,
    /// Expands `followers@` when a mail is delivered.
    followers: Option<Arc<Registry>>,
    metrics: Arc<Metrics>,
    /// `[media]` with `public_base_url`: images become image messages served from here.
    media: Option<Media>,
}

/// A mail the gateway took responsibility for (250).
struct Accepted {
    reply: Reply,
    /// LINE requests the mail became (spool jobs, pushes made, or dry-run lines).
    requests: usize,
}

/// A mail refused after DATA, and why.
struct Refused {
    reason: Reason,
    reply: Reply,
    /// What went wrong on our side, for the log line only (never in the reply).
    detail: Option<String>,
}

impl Refused {
    fn new(reason: Reason, reply: Reply) -> Refused {
        Refused { reason, reply, detail: None }
    }
}

/// A composed mail, and the files stored in the media store for its requests.
struct Composed {
    outbound: Outbound,
    media: Vec<String>,
}

impl Gateway {
    /// Also exports every refusal reason's counter at 0 (see [`Metrics::expect_rejections`]):
    /// the reasons are smtp's, and this is where SMTP meets the metrics before serving.
    pub fn new(template: Template, mode: Mode, followers: Option<Arc<Registry>>, metrics: Arc<Metrics>) -> Gateway {
        metrics.expect_rejections(Reason::ALL.map(Reason::as_str));
        Gateway { template, mode, followers, metrics, media: None }
    }

    /// Hosts images (and, with `serve_attachments`, other attachments) in `media`.
    pub fn with_media(mut self, media: Option<Media>) -> Gateway {
        self.media = media;
        self
    }

    /// Deletes the media files of a mail no LINE message will point at: the sender gets a
    /// refusal and a resent mail stores its own. Without this they would be served until
    /// `[media] retention` ends.
    async fn discard_media(&self, composed: &Composed) {
        if let (Some(m), false) = (&self.media, composed.media.is_empty()) {
            m.store.remove_all(composed.media.clone()).await;
        }
    }

    /// Replaces `followers@` by the users who follow right now.
    async fn expand_followers(&self, rcpts: &[Recipient]) -> Result<Vec<Recipient>, Refused> {
        if !rcpts.contains(&Recipient::Followers) {
            return Ok(rcpts.to_vec());
        }
        let users = match &self.followers {
            Some(reg) => reg.active_users_async().await.map_err(|e| Refused {
                reason: Reason::FollowersUnavailable,
                reply: Reply::new(451, "4.3.0", "Cannot read the follower list right now; try again later"),
                detail: Some(format!("cannot read the follower registry: {e}")),
            })?,
            None => Vec::new(),
        };
        let mut out: Vec<Recipient> = rcpts.iter().filter(|r| **r != Recipient::Followers).cloned().collect();
        // A set beside the list: with tens of thousands of followers, `out.contains` per user
        // made every followers@ mail quadratic.
        let mut seen: HashSet<Recipient> = out.iter().cloned().collect();
        for id in users {
            let r = Recipient::User(id);
            if seen.insert(r.clone()) {
                out.push(r);
            }
        }
        if out.is_empty() {
            return Err(Refused::new(
                Reason::NoFollowers,
                Reply::new(550, "5.1.1", "This LINE account has no active followers; nothing was sent"),
            ));
        }
        Ok(out)
    }

    /// Turns the mail into LINE requests: `mail::parse`, then `compose::compose`. With
    /// `[media]`, its images (and downloadable attachments) are stored durably in between, so
    /// the URLs in the requests work by the time the mail is answered.
    async fn compose(&self, mail: &Mail) -> Result<Composed, Refused> {
        let mut notice = mail::parse(&mail.data);
        let Some(m) = &self.media else {
            let outbound = compose::compose(&self.template, notice, &mail.rcpts, None);
            return Ok(Composed { outbound, media: Vec::new() });
        };
        let (hosted, stored) = media::host(m, std::mem::take(&mut notice.attachments)).await.map_err(|e| media_refusal(&e))?;
        Ok(Composed { outbound: compose::compose(&self.template, notice, &mail.rcpts, Some(hosted)), media: stored })
    }

    /// Delivers one mail from the client at `peer` and returns the SMTP reply for its DATA.
    async fn deliver_mail(&self, mut mail: Mail, peer: SocketAddr) -> Reply {
        let id = next_mail_id();
        let arrived = Instant::now();
        let user = mail.user.clone();
        let outcome = match self.expand_followers(&mail.rcpts).await {
            Ok(rcpts) => {
                mail.rcpts = rcpts;
                self.deliver_expanded(&id, &mail, arrived).await
            }
            Err(refused) => Err(refused),
        };
        let mode = match self.mode {
            Mode::Spool(_) => "spool",
            Mode::Direct(_) => "direct",
            Mode::DryRun => "dry_run",
        };
        let user = user.as_deref().unwrap_or("-");
        match outcome {
            Ok(accepted) => {
                self.metrics.mail_accepted();
                info!(mail = %id, %peer, from = mail.from.as_str(), user, recipients = mail.rcpts.len(), requests = accepted.requests, mode = %mode, "mail accepted");
                accepted.reply
            }
            Err(refused) => {
                self.metrics.mail_rejected(refused.reason.as_str());
                let reply = refused.reply.to_string();
                let error = refused.detail.as_deref().unwrap_or("-");
                warn!(mail = %id, %peer, from = mail.from.as_str(), user, reason = %refused.reason, reply = reply.as_str(), error, mode = %mode, "mail rejected");
                refused.reply
            }
        }
    }

    async fn deliver_expanded(&self, id: &str, mail: &Mail, arrived: Instant) -> Result<Accepted, Refused> {
        // Refuse before composing, so a paused spool does not store a mail's images only to
        // delete them again.
        if matches!(&self.mode, Mode::Spool(spool) if spool.quota_paused()) {
            return Err(quota_refusal());
        }
        let composed = self.compose(mail).await?;
        if composed.outbound.truncated {
            self.metrics.text_cut();
            warn!(mail = %id, "text longer than {MAX_MESSAGES_PER_REQUEST} LINE messages; the rest was cut");
        }
        match &self.mode {
            Mode::DryRun => {
                for req in &composed.outbound.requests {
                    let body = Body::of(req).to_json();
                    // `body` last, so the JSON runs to the end of the log line.
                    info!(mail = %id, endpoint = path(&req.endpoint), body = %body, "dry run, not sent");
                }
                let reply = Reply::new(250, "2.0.0", format!("Ok: dry run, logged and not sent (mail {id})"));
                Ok(Accepted { reply, requests: composed.outbound.requests.len() })
            }
            Mode::Direct(client) => self.push_all(client, id, &composed, arrived).await,
            // Refused here means nothing was stored, so nothing will ever be sent.
            Mode::Spool(spool) => {
                // By its headers, or sent to `<id>+urgent@…`.
                let urgent = composed.outbound.urgent || mail.urgent;
                let queued = enqueue(spool, id, mail, &composed, urgent).await;
                if queued.is_err() {
                    self.discard_media(&composed).await;
                }
                queued
            }
        }
    }

    async fn push_all(&self, client: &LineClient, id: &str, composed: &Composed, arrived: Instant) -> Result<Accepted, Refused> {
        let mut sent = 0;
        let requests = &composed.outbound.requests;
        for (i, req) in requests.iter().enumerate() {
            // With a Message-ID, a sender that retries after a 4xx gets the same retry keys, so
            // LINE answers 409 for the requests that already went out instead of sending twice.
            let body = Body::of(req).to_json();
            let key = mail_retry_key(&composed.outbound.message_id, i, &body);
            let outcome = client.send_raw(path(&req.endpoint), body, key.as_deref()).await;
            match outcome {
                Outcome::Delivered { request_id, duplicate, .. } => {
                    sent += 1;
                    let endpoint = path(&req.endpoint);
                    let request_id = request_id.as_deref();
                    let d = Delivered { mail: id, job: None, endpoint, request_id, duplicate, attempts: 1, latency: arrived.elapsed() };
                    d.record(&self.metrics);
                }
                other => {
                    if sent == 0 && !other.may_have_been_sent() {
                        self.discard_media(composed).await;
                    }
                    // The reply carries LINE's answer; the log adds which request it was.
                    let detail = format!("LINE did not accept request {} of {} ({})", i + 1, requests.len(), path(&req.endpoint));
                    return Err(Refused { reason: refusal_reason(&other), reply: refusal(&other, sent), detail: Some(detail) });
                }
            }
        }
        Ok(Accepted { reply: Reply::new(250, "2.0.0", format!("Ok: delivered to LINE (mail {id})")), requests: sent })
    }
}

/// The SMTP server's hand-over: every mail it accepted comes through here.
impl Deliver for Gateway {
    fn deliver(&self, mail: Mail, peer: SocketAddr) -> impl std::future::Future<Output = Reply> + Send {
        self.deliver_mail(mail, peer)
    }
}

/// `[[channels]]`: one [`Gateway`] per LINE channel (its template is shared, its mode, spool,
/// registry and metrics are the channel's), and the hand-over that splits a mail by channel.
///
/// A mail whose recipients span channels is delivered once per channel, in the order the
/// channels first appear among its recipients, each a commit of its own. The first refusal is
/// the reply, and the channels after it are not tried; the channels before it already took
/// their part. The sender's MTA then sends the whole mail again: with its Message-ID the
/// retry keys are the same, so LINE answers 409 for the part it already has and no follower
/// gets it twice (a mail without a Message-ID may then reach the earlier channels twice; the
/// gateway's own `sendmail` always sets one).
pub struct Lanes {
    lanes: Vec<(String, Arc<Gateway>)>,
}

impl Lanes {
    pub fn new(lanes: Vec<(String, Arc<Gateway>)>) -> Lanes {
        Lanes { lanes }
    }

    async fn deliver_mail(&self, mut mail: Mail, peer: SocketAddr) -> Reply {
        let groups: Vec<(Option<String>, Vec<Recipient>)> =
            mail.by_channel().into_iter().map(|(name, rcpts)| (name.map(str::to_owned), rcpts)).collect();
        mail.channels.clear();
        let count = groups.len();
        let mut last = None;
        for (i, (name, rcpts)) in groups.into_iter().enumerate() {
            let gateway = match name.as_deref().and_then(|n| self.lanes.iter().find(|(lane, _)| lane == n)) {
                Some((_, g)) => g,
                // The session only names channels it was given, and serve gives it these.
                None => {
                    warn!(%peer, channel = name.as_deref().unwrap_or("-"), "a recipient of a channel that is not served (a bug: please report it)");
                    return Reply::new(451, "4.3.0", "Internal error choosing the LINE channel; try again later");
                }
            };
            // The data is moved into the last group's mail, copied for the others.
            let part = if i + 1 == count {
                Mail { rcpts, data: std::mem::take(&mut mail.data), ..mail.clone() }
            } else {
                Mail { rcpts, ..mail.clone() }
            };
            let reply = gateway.deliver_mail(part, peer).await;
            if reply.code >= 300 {
                return reply;
            }
            last = Some(reply);
        }
        last.unwrap_or_else(|| Reply::new(554, "5.5.1", "No valid recipients"))
    }
}

impl Deliver for Lanes {
    fn deliver(&self, mail: Mail, peer: SocketAddr) -> impl std::future::Future<Output = Reply> + Send {
        self.deliver_mail(mail, peer)
    }
}

/// The transient reply while the spool is paused for the monthly quota.
fn quota_refusal() -> Refused {
    Refused::new(
        Reason::Quota,
        Reply::new(452, "4.2.2", "LINE monthly message quota is used up; deliveries are paused, try again later"),
    )
}


/// The transient reply when the month's quota does not allow this mail (see `coalesce::admit`).
fn budget_refusal(admission: Admission) -> Option<Refused> {
    let (text, until_ms) = match admission {
        Admission::Accept => return None,
        Admission::Reserved { until_ms } => (
            "Only the LINE messages kept for urgent mail are left this month ([quota] reserve); routine mail is deferred",
            until_ms,
        ),
        Admission::Spent { until_ms } => ("The LINE message budget of this month is used up ([quota] monthly_budget)", until_ms),
        Admission::Rationed { until_ms } => (
            "This month's LINE messages are being used too fast and today's share is used up ([quota] daily_share); routine mail is deferred",
            until_ms,
        ),
    };
    Some(Refused::new(Reason::Quota, Reply::new(452, "4.2.2", format!("{text} until {}; try again later", jst(until_ms)))))
}

/// `2027-01-01 00:00 JST`: when LINE's month (Japan time) turns.
fn jst(ms: i64) -> String {
    let offset = time::UtcOffset::from_hms(9, 0, 0).unwrap_or(time::UtcOffset::UTC);
    match time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)) {
        Ok(t) => {
            let t = t.to_offset(offset);
            format!("{:04}-{:02}-{:02} {:02}:{:02} JST", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        Err(_) => "the start of next month (JST)".into(),
    }
}

/// Stores the mail's requests; 250 only once they are durable.
async fn enqueue(spool: &Spool, id: &str, mail: &Mail, composed: &Composed, urgent: bool) -> Result<Accepted, Refused> {
    // Checked again: the quota may have run out while the mail was composed.
    if spool.quota_paused() {
        return Err(quota_refusal());
    }
    let mut jobs = Vec::with_capacity(composed.outbound.requests.len());
    for (i, req) in composed.outbound.requests.iter().enumerate() {
        let body = Body::of(req).to_json();
        // Chosen now and stored with the job, so every attempt, also after a restart, carries
        // the same key and LINE can answer 409 instead of sending twice. From the Message-ID
        // when there is one: a sender that did not see our 250 (a crash between storing the
        // mail and answering) sends the same mail again, and its requests get the same keys.
        let retry_key = mail_retry_key(&composed.outbound.message_id, i, &body).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let target = match &req.endpoint {
            Endpoint::Push { to } => to.clone(),
            Endpoint::Multicast { to } => format!("{} (+{} more)", to[0], to.len() - 1),
        };
        jobs.push(NewJob {
            mail_id: id.to_owned(),
            path: path(&req.endpoint).to_owned(),
            body,
            retry_key,
            target,
            sender: mail.from.clone(),
            chat: coalesce::chat_key(&req.endpoint),
            recipients: coalesce::recipients(&req.endpoint),
            hold_until: None,
            thread: spool.keeps_threads().then(|| Thread {
                message_id: composed.outbound.message_id.clone(),
                reply_to: composed.outbound.reply_to.clone(),
                subject: composed.outbound.subject.clone(),
            }),
        });
    }
    if let Some(refused) = budget_refusal(spool.admit(&jobs, urgent)) {
        return Err(refused);
    }
    match spool.accept(jobs, urgent).await {
        Ok(job_ids) => Ok(Accepted { reply: Reply::new(250, "2.0.0", format!("Ok: queued as {id}")), requests: job_ids.len() }),
        // On PostgreSQL (no spool file) a failed commit is the database out of reach, not a
        // full disk here: 451, a local problem that passes, as RFC 3463's 4.3.0 says.
        Err(e) if spool.store().path().is_none() => Err(Refused {
            reason: Reason::Storage,
            reply: Reply::new(451, "4.3.0", "Cannot commit the mail to the database right now; try again later"),
            detail: Some(format!("cannot store the mail: {e}")),
        }),
        Err(e) => Err(Refused {
            reason: Reason::Storage,
            reply: Reply::new(452, "4.3.1", "Cannot store the mail right now (spool not writable, e.g. disk full); try again later"),
            detail: Some(format!("cannot store the mail: {e}")),
        }),
    }
}

/// Packs a chat's held requests into as few as LINE's limits allow: the spool's
/// `spool::store::Packer` (a trait, so that the store's sealing is tested with plain packers),
/// done by `compose::pack_bodies`.
pub struct HeldPacker;

impl Packer for HeldPacker {
    fn pack(&self, bodies: &[&str]) -> Result<Vec<Sealed>, PackError> {
        let packed = compose::pack_bodies(bodies).map_err(|e| PackError(e.to_string()))?;
        Ok(packed.into_iter().map(|(body, parts)| Sealed { body, parts }).collect())
    }
}

/// The transient reply when the media files of a mail cannot be stored.
/// On PostgreSQL the cause is the database, not this machine's disk: the reply says so, as a
/// 451 like every refusal for a database out of reach.
fn media_refusal(error: &media::MediaError) -> Refused {
    let reply = match error {
        media::MediaError::Database(_) => Reply::new(451, "4.3.0", "Cannot reach the database to store the mail's images right now; try again later"),
        _ => Reply::new(452, "4.3.1", "Cannot store the mail's images right now (storage.dir/media not writable, e.g. disk full); try again later"),
    };
    Refused { reason: Reason::Storage, reply, detail: Some(format!("cannot store media files: {error}")) }
}

/// The `reason` for a mail LINE did not accept in direct mode.
pub fn refusal_reason(outcome: &Outcome) -> Reason {
    match outcome {
        Outcome::Delivered { .. } => Reason::Internal,
        Outcome::Retry { reason: RetryReason::QuotaExhausted, .. } => Reason::Quota,
        Outcome::Retry { reason: RetryReason::NoAccessToken, .. } | Outcome::Unauthorized { .. } => Reason::LineTokenRefused,
        Outcome::Retry { .. } => Reason::LineUnavailable,
        Outcome::Permanent { .. } => Reason::LineRejected,
    }
}

/// The SMTP reply for a request LINE did not accept (ARCHITECTURE.md's error table).
pub fn refusal(outcome: &Outcome, already_sent: usize) -> Reply {
    let partial = if already_sent > 0 {
        format!(" ({already_sent} of the mail's LINE requests had already been delivered)")
    } else {
        String::new()
    };
    match outcome {
        Outcome::Delivered { .. } => Reply::new(250, "2.0.0", "Ok"),
        Outcome::Retry { reason, detail, .. } => {
            let (code, status) = match reason {
                RetryReason::Unreachable => (451, "4.4.1"),
                RetryReason::Timeout => (451, "4.4.2"),
                RetryReason::ConnectionLost => (451, "4.4.2"),
                RetryReason::ServerError => (451, "4.3.0"),
                RetryReason::RateLimited => (451, "4.4.5"),
                RetryReason::QuotaExhausted => (452, "4.2.2"),
                RetryReason::NoAccessToken => (451, "4.3.5"),
            };
            Reply::new(code, status, format!("{detail}; try again later{partial}"))
        }
        Outcome::Unauthorized { status, .. } => Reply::new(
            451,
            "4.3.5",
            format!("Gateway misconfigured: LINE refused the channel access token ({status}); try again later{partial}"),
        ),
        Outcome::Permanent { status, message } => {
            Reply::new(550, "5.6.0", format!("LINE rejected the message ({status}): {message}{partial}"))
        }
    }
}

/// The retry key of request `index` (JSON `body`) of a mail: derived from its Message-ID, or
/// None without one (the caller then picks a random key). LINE keeps a key for 24 hours and
/// answers 409 to its reuse, so the same mail sent again is not delivered again.
fn mail_retry_key(message_id: &str, index: usize, body: &str) -> Option<String> {
    (!message_id.is_empty()).then(|| retry_key(message_id, index, body))
}

/// A UUID-formatted retry key that is the same for the same mail and request every time. The
/// body (recipients and messages) is part of it: a sender that reuses a Message-ID for a
/// different mail (some devices use a fixed one) must not have that mail taken for a resend.
fn retry_key(message_id: &str, index: usize, body: &str) -> String {
    let mut h = Sha256::new();
    h.update(message_id.as_bytes());
    h.update(index.to_le_bytes());
    h.update(body.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40; // version 4 layout, as LINE asks for
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

/// A short id that ties the log lines of one mail together.
fn next_mail_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!("{:08x}{:05x}", secs as u32, COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_follow_the_error_table() {
        let retry = |reason| Outcome::Retry { reason, detail: "x".into(), after: None };
        assert_eq!((refusal(&retry(RetryReason::Unreachable), 0).code, refusal(&retry(RetryReason::Unreachable), 0).status), (451, "4.4.1"));
        assert_eq!(refusal(&retry(RetryReason::Timeout), 0).status, "4.4.2");
        assert_eq!(refusal(&retry(RetryReason::RateLimited), 0).code, 451);
        assert_eq!((refusal(&retry(RetryReason::QuotaExhausted), 0).code, refusal(&retry(RetryReason::QuotaExhausted), 0).status), (452, "4.2.2"));
        let perm = Outcome::Permanent { status: 400, message: "bad text".into() };
        assert_eq!(refusal(&perm, 0).to_string(), "550 5.6.0 LINE rejected the message (400): bad text");
        assert!(refusal(&perm, 2).to_string().contains("2 of the mail's LINE requests"));
        assert_eq!(refusal(&Outcome::Unauthorized { status: 401, message: String::new() }, 0).code, 451);
    }

    #[test]
    fn direct_mode_refusals_have_reasons() {
        let retry = |reason| Outcome::Retry { reason, detail: "x".into(), after: None };
        assert_eq!(refusal_reason(&retry(RetryReason::QuotaExhausted)), Reason::Quota);
        assert_eq!(refusal_reason(&retry(RetryReason::Timeout)), Reason::LineUnavailable);
        assert_eq!(refusal_reason(&retry(RetryReason::RateLimited)), Reason::LineUnavailable);
        assert_eq!(refusal_reason(&retry(RetryReason::NoAccessToken)), Reason::LineTokenRefused);
        assert_eq!(refusal_reason(&Outcome::Unauthorized { status: 403, message: String::new() }), Reason::LineTokenRefused);
        assert_eq!(refusal_reason(&Outcome::Permanent { status: 400, message: String::new() }), Reason::LineRejected);
    }

    #[test]
    fn retry_keys_are_stable_uuids() {
        let body = r#"{"to":"U1","messages":[{"type":"text","text":"hi"}]}"#;
        let a = retry_key("<m1@x>", 0, body);
        assert_eq!(a, retry_key("<m1@x>", 0, body));
        assert_ne!(a, retry_key("<m1@x>", 1, body));
        assert_ne!(a, retry_key("<m2@x>", 0, body));
        // Another mail under a reused Message-ID, or the same mail to someone else.
        assert_ne!(a, retry_key("<m1@x>", 0, &body.replace("hi", "ho")));
        assert_ne!(a, retry_key("<m1@x>", 0, &body.replace("U1", "U2")));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert_eq!(mail_retry_key("", 0, body), None);
        assert_eq!(mail_retry_key("<m1@x>", 0, body), Some(a));
    }

    /// Found while fuzzing (see `compose::route`'s test of the same name): expanding
    /// followers@ deduplicated with `contains`, quadratic in the followers. Many followers,
    /// some also named directly, come out once each in order: named first, then by follow order.
    #[tokio::test]
    async fn many_followers_expand_once_each_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let registry = Arc::new(Registry::open(dir.path()).unwrap());
        let id = |i: usize| format!("U{i:032x}");
        for i in 0..3000 {
            registry.follow(&id(i), crate::followers::Kind::User, None, i as i64).unwrap();
        }
        let template = Template::parse(crate::compose::DEFAULT_TEMPLATE).unwrap();
        let gw = Gateway::new(template, Mode::DryRun, Some(registry), Arc::new(Metrics::new()));
        let rcpts = vec![Recipient::User(id(2999)), Recipient::Followers, Recipient::User(id(5))];
        let Ok(out) = gw.expand_followers(&rcpts).await else { panic!("expansion failed") };
        let expected: Vec<Recipient> =
            [2999, 5].into_iter().chain((0..3000).filter(|i| ![5, 2999].contains(i))).map(|i| Recipient::User(id(i))).collect();
        assert_eq!(out, expected);
    }

    /// Moved here from `metrics` with the list of reasons: a gateway exports every refusal
    /// reason's counter at 0 before the first mail.
    #[test]
    fn every_refusal_reason_is_exported_from_the_start() {
        let metrics = Arc::new(Metrics::new());
        let _gateway = Gateway::new(Template::default(), Mode::DryRun, None, metrics.clone());
        let text = metrics.render(&Default::default());
        for r in Reason::ALL {
            let series = format!("mail2line_mails_rejected_total{{reason=\"{}\"}} 0\n", r.as_str());
            assert!(text.contains(&series), "{series} missing:\n{text}");
        }
    }

}
