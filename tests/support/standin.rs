//! A stand-in for the LINE Messaging API, for integration tests.
//!
//! Owns: an axum server on `127.0.0.1:0` (spawned on the caller's tokio
//! runtime, stopped when the [`StandIn`] is dropped) that
//! * records every request ([`Recorded`]),
//! * polices it the way LINE would — bearer token, JSON body checked against
//!   `messaging-api.yml` through [`super::spec`], retry-key format — answering
//!   401/400 like LINE and remembering each violation in `spec_errors` so a
//!   test can end with [`StandIn::assert_all_valid`],
//! * issues channel access tokens like LINE's token endpoints
//!   (`POST /oauth2/v2.1/token` and `/oauth2/v3/token`, see below),
//! * honours `X-Line-Retry-Key` like LINE: a key that was already accepted
//!   gets 409 with the original `sentMessages`, and is not a new delivery,
//! * counts messages like LINE and enforces the monthly quota (see "Counting"
//!   below),
//! * answers with scripted [`Behaviour`]s (errors, delays, dropped
//!   connections) so retry and failure paths can be tested, and, for fault
//!   campaigns, fails a seeded random share of deliveries ([`Faults`]).
//!
//! Routes answered: `POST /v2/bot/message/{push,reply,multicast,broadcast}`,
//! `GET /v2/bot/profile/{userId}`, `GET /v2/bot/message/quota`,
//! `GET /v2/bot/message/quota/consumption`,
//! `GET /v2/bot/group/{groupId}/members/count`,
//! `GET /v2/bot/room/{roomId}/members/count`,
//! `GET /v2/bot/group/{groupId}/member/{userId}` and
//! `GET /v2/bot/room/{roomId}/member/{userId}` (a member's name, see "Names" below),
//! `GET /v2/bot/message/{messageId}/content` (see "Content" below),
//! `POST /v2/bot/chat/markAsRead` (200 `{}`),
//! `GET /v2/bot/info` (the bot [`BOT_DISPLAY_NAME`] / [`BOT_BASIC_ID`]),
//! `POST /oauth2/v2.1/token`, `POST /oauth2/v3/token`; anything else is 404
//! `{"message":"Not found"}` (and, when the spec does not know the path either,
//! a recorded spec error).
//!
//! Names: [`StandIn::set_display_name`] gives a user a display name. The
//! profile route answers it, or `User <first 6 characters of the id>` for a
//! user without one (any user "follows" the stand-in); the group and room
//! member routes answer it and 404 for a user without one (not a member).
//!
//! Content (issue #20): LINE serves what followers sent from its content host
//! (`api-data.line.me`); the stand-in serves it on its one address, so tests
//! point both `api_base_url` and `api_data_base_url` at it. A test registers
//! content with [`StandIn::put_content`]; it is answered with its bytes and
//! `Content-Type`, an unknown id gets 404. Content requests consume a script of
//! their own ([`StandIn::push_content_behaviour`], e.g. five 500s, or LINE's
//! 202 while a video is prepared) and otherwise follow [`StandIn::set_default`].
//! The content path is checked against the spec like every path: LINE's
//! `messaging-api.yml` documents `getMessageContent` itself (tagged
//! `messaging-api-blob`, with `servers: https://api-data.line.me`), so no
//! separate `messaging-api-blob.yml` is needed and nothing is exempt.
//!
//! Counting (issue #17): LINE bills *recipients*, not message objects. An
//! accepted (2xx) push or multicast costs one message per recipient, whether it
//! carries 1 or 5 message objects: a push to a user (`U…`) costs 1, a push to a
//! group (`C…`) or room (`R…`) costs its member count ([`StandIn::set_member_count`],
//! else [`DEFAULT_MEMBER_COUNT`] — the members LINE counts exclude the bot, as
//! `members/count` does), a multicast costs the number of ids in `to`. The cost
//! is added to the month's usage (what `/quota/consumption` reports as
//! `totalUsage`), to [`StandIn::messages_counted`] and, per recipient, to
//! [`StandIn::messages_to`]. Replies are free at LINE and cost nothing here;
//! broadcasts cost the follower count at LINE, which the stand-in does not
//! model, so they are not counted either. With a limit ([`StandIn::set_quota`]),
//! a push or multicast whose cost exceeds what is left of it is refused whole —
//! nothing sent, nothing counted, its retry key not remembered — with LINE's
//! 429 `{"message":"You have reached your monthly limit."}` ([`MONTHLY_LIMIT_MESSAGE`],
//! which the gateway's `line::outcome` tells from a rate limit by its text).
//! The quota is checked when a request would be accepted, after the script,
//! the faults and the default chose the answer: a refusal they chose (a
//! scripted 429 or 500, a [`Fault::ServerError`]) is answered as chosen, an
//! acceptance becomes the monthly-limit 429 when the quota cannot pay for it
//! (the script entry or drawn fault is used up all the same; the fault stays
//! in [`Recorded::fault`]). A [`Behaviour::Delay`] is checked after its delay,
//! when it is decided. A retry answered 409 (its key already accepted) was paid
//! for by the request that was accepted and costs nothing; it is answered 409
//! even when the quota is spent meanwhile, since LINE recognises the key first.
//!
//! Tokens: after [`StandIn::set_channel`] the stand-in is a channel that
//! issues its own tokens. A token request must be
//! `application/x-www-form-urlencoded`, valid against
//! `channel-access-token.yml` (the form is decoded into a JSON object of
//! strings and checked with the same schema machinery), and pass what LINE
//! checks beyond the schema: the grant and assertion types, and either the
//! client assertion (RS256 JWT: header `kid` = the channel's key id,
//! signature verified with its public key, `iss` = `sub` = channel id,
//! `aud` = `https://api.line.me/`, `exp` at most 30 minutes ahead, for v2.1 a
//! `token_exp` of at most 30 days) or the channel id and secret. Failures are
//! answered 400 with LINE's OAuth error shape and recorded in `spec_errors`.
//! An issued token lives `expires_in` seconds ([`StandIn::set_token_expires_in`]
//! makes that short so tests see renewals), and from then on message requests
//! are accepted only with a currently valid issued token: an expired or
//! revoked ([`StandIn::revoke_tokens`]) one gets 401 (noted in `notes`, not a
//! spec error: using a token LINE later revoked is not the client's fault), a
//! token never issued gets 401 and a spec error. Token requests consume their
//! own script ([`StandIn::push_token_behaviour`]) and are otherwise answered
//! `Ok`, whatever [`StandIn::set_default`] says.
//!
//! Scripting: the [`StandIn::push_behaviour`] queue is consumed only by
//! *deliveries* (the message-sending POSTs above), one per delivery that got
//! past the auth/spec/retry-key checks, so a profile lookup in between does not
//! eat a scripted failure. When the queue is empty, a delivery gets a random
//! [`Fault`] if [`StandIn::set_faults`] asked for them (drawn from a seeded
//! generator, so a campaign's mix can be told by its seed); otherwise — and for
//! every non-delivery request — the [`StandIn::set_default`] behaviour applies
//! (initially [`Behaviour::Ok`]).
//!
//! A [`Fault::Late`] answer is accepted (recorded, retry key remembered) when it
//! arrives and answered only after its delay: LINE took the message and the
//! answer came after the client had given up. (A [`Behaviour::Delay`] instead
//! decides after the delay, and when the client gives up first, hyper drops the
//! handler and nothing is recorded: LINE never took it.)
//!
//! How [`Behaviour::AcceptThenDrop`] closes a connection without answering:
//! axum/hyper offer no "abort this connection" call to a handler, so the
//! handler records the request as accepted and then unwinds with
//! `std::panic::resume_unwind`. Nothing in axum or hyper catches it; the unwind
//! ends the per-connection task that axum spawned, which drops the socket, so
//! the client sees the connection close with no response — exactly a lost
//! answer to a request LINE did accept. `resume_unwind` (unlike `panic!`) does
//! not run the panic hook, so the test output stays clean, and tokio contains
//! the unwind in that one task; the server keeps accepting connections.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::spec::{decode_form, Spec, Violation};

/// The bot the stand-in plays, as `GET /v2/bot/info` describes it.
pub const BOT_DISPLAY_NAME: &str = "Stand-in bot";
pub const BOT_BASIC_ID: &str = "@standin";
pub const BOT_USER_ID: &str = "U5ba7d0c1e2f3a4b5c6d7e8f9a0b1c2d3";

/// What a group or room has for members when [`StandIn::set_member_count`] did not say
/// (the count in LINE's own `members/count` example).
pub const DEFAULT_MEMBER_COUNT: i64 = 3;

/// LINE's 429 message when the month's quota is spent; `line::outcome` matches on its
/// "monthly limit" to tell it from a rate limit.
pub const MONTHLY_LIMIT_MESSAGE: &str = "You have reached your monthly limit.";

/// The `aud` LINE requires in client assertions.
const AUDIENCE: &str = "https://api.line.me/";
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// LINE's limits: an assertion lives at most 30 minutes, a v2.1 token at most 30 days.
const MAX_ASSERTION_SECS: u64 = 30 * 60;
const MAX_TOKEN_EXP_SECS: u64 = 30 * 86400;

/// The channel the stand-in plays for token requests.
#[derive(Clone)]
pub struct Channel {
    pub id: String,
    pub secret: String,
    /// The key id LINE assigned to the registered public key.
    pub kid: String,
    /// The registered public key; assertions must verify with it.
    pub public_key: jsonwebtoken::DecodingKey,
}

/// A token the stand-in issued.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub token: String,
    /// `"v2.1"` or `"stateless"`.
    pub kind: &'static str,
    pub key_id: Option<String>,
    pub expires_in: u64,
    pub expires_at: Instant,
    pub revoked: bool,
}

impl IssuedToken {
    pub fn is_valid(&self) -> bool {
        !self.revoked && Instant::now() < self.expires_at
    }
}

/// One request as the stand-in saw it, and what it answered.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// Parsed JSON body; `Value::Null` if empty or not JSON.
    pub body: Value,
    pub raw: Vec<u8>,
    /// Everything LINE would have objected to (empty = fine). For token
    /// requests `body` is the decoded form (a JSON object of strings).
    pub spec_errors: Vec<String>,
    /// Refusals that are not the client's fault (an expired or revoked token).
    pub notes: Vec<String>,
    /// Status answered. An [`Behaviour::AcceptThenDrop`] request shows 200:
    /// LINE accepted it even though the client never saw the answer.
    pub status: u16,
    /// True when the connection was closed instead of answering.
    pub dropped: bool,
    /// The `x-line-request-id` header of the answer (every answer has one, as at LINE).
    pub request_id: String,
    /// The random fault this request got ([`StandIn::set_faults`]), if any.
    pub fault: Option<Fault>,
    /// The JSON answered (a push's `sentMessages`, …); `Value::Null` for a dropped request.
    pub answer: Value,
    /// When the request arrived (before any delay the stand-in adds): what LINE's rate limit
    /// counts, so the fault campaign measures a channel's combined request rate from it.
    pub received: Instant,
}

impl Recorded {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The ids of the messages an accepted push sent (`sentMessages[].id`), as a follower's
    /// answer quotes them.
    pub fn sent_ids(&self) -> Vec<String> {
        let sent = self.answer.get("sentMessages").and_then(Value::as_array);
        sent.map(|a| a.iter().filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_owned)).collect()).unwrap_or_default()
    }

    /// Whether LINE would count this as accepted (2xx).
    pub fn is_accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// How to answer a request (see the module docs for which requests consume
/// the scripted queue).
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer like LINE does on success.
    Ok,
    /// Answer this status and JSON body, e.g. `Status(429, json!({"message":"Too Many Requests"}))`.
    /// A 2xx status counts as accepted.
    Status(u16, Value),
    /// Wait, then answer like `Ok`.
    Delay(Duration),
    /// Accept (recorded as a 200 delivery, retry key remembered) and then close
    /// the connection without any response.
    AcceptThenDrop,
}

/// A seeded random share of failing deliveries, for fault campaigns
/// ([`StandIn::set_faults`]). Each delivery with nothing scripted fails with
/// probability `rate`, the kind drawn evenly from [`Fault::ALL`].
#[derive(Clone, Debug)]
pub struct Faults {
    /// Share of deliveries that fail, 0.0 ..= 1.0.
    pub rate: f64,
    pub seed: u64,
    /// How long a [`Fault::Slow`] answer takes; meant to be shorter than the client's timeout.
    pub slow: Duration,
    /// How long a [`Fault::Late`] answer takes; meant to be longer than the client's timeout.
    pub late: Duration,
}

/// What a delivery picked for failure by [`Faults`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// 500 `{"message":"Internal server error"}`; not accepted.
    ServerError,
    /// 429 with `Retry-After: 1`, LINE's rate-limit message; not accepted.
    RateLimited,
    /// Answered like `Ok` after [`Faults::slow`].
    Slow,
    /// Accepted at once, answered like `Ok` after [`Faults::late`] (see the module docs).
    Late,
    /// Like [`Behaviour::AcceptThenDrop`].
    AcceptThenDrop,
}

impl Fault {
    pub const ALL: [Fault; 5] = [Fault::ServerError, Fault::RateLimited, Fault::Slow, Fault::Late, Fault::AcceptThenDrop];

    /// A short name for summaries.
    pub fn name(self) -> &'static str {
        match self {
            Fault::ServerError => "500",
            Fault::RateLimited => "429+Retry-After",
            Fault::Slow => "slow",
            Fault::Late => "late(past timeout)",
            Fault::AcceptThenDrop => "accept-then-drop",
        }
    }
}

/// [`Faults`] with its generator state and what it drew.
struct FaultDraw {
    faults: Faults,
    state: u64,
    /// Deliveries that drew, and the faults they got.
    draws: u64,
    drawn: BTreeMap<Fault, u64>,
}

impl FaultDraw {
    fn new(faults: Faults) -> FaultDraw {
        // splitmix64 of the seed, so seeds 1, 2, 3 … give unrelated streams (and 0 works).
        let mut z = faults.seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        FaultDraw { faults, state: (z ^ (z >> 31)) | 1, draws: 0, drawn: BTreeMap::new() }
    }

    fn next(&mut self) -> u64 {
        // xorshift64*
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn draw(&mut self) -> Option<Fault> {
        self.draws += 1;
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        if unit >= self.faults.rate {
            return None;
        }
        let fault = Fault::ALL[(self.next() % Fault::ALL.len() as u64) as usize];
        *self.drawn.entry(fault).or_default() += 1;
        Some(fault)
    }
}

/// A running stand-in server. Dropping it stops the server.
pub struct StandIn {
    shared: Arc<Shared>,
    base_url: String,
    server: JoinHandle<()>,
    /// The stand-in's own runtime ([`StandIn::start_prioritised`]); None on the caller's.
    runtime: Option<tokio::runtime::Runtime>,
}

struct Shared {
    spec: Option<Spec>,
    /// `channel-access-token.yml`, for the token endpoints.
    token_spec: Option<Spec>,
    state: Mutex<StateData>,
    recorded: Notify,
}

struct StateData {
    requests: Vec<Recorded>,
    queue: VecDeque<Behaviour>,
    default: Behaviour,
    expected_token: Option<String>,
    /// Retry keys of accepted requests, for answering reuse with 409.
    accepted_keys: HashMap<String, AcceptedKey>,
    next_message_id: u64,
    next_request_id: u64,
    /// Monthly quota: `None` = no limit (`{"type":"none"}`), and messages used so far
    /// (what [`StandIn::set_quota`] said plus what accepted requests cost since).
    quota_limit: Option<i64>,
    quota_used: i64,
    /// Messages LINE counted for requests accepted by this stand-in (see the module docs),
    /// in all and by recipient id (the group or room id for a push to one).
    counted: i64,
    counted_to: HashMap<String, i64>,
    /// Members of groups and rooms, by id, as [`StandIn::set_member_count`] set them.
    member_counts: HashMap<String, i64>,
    /// Display names by user id ([`StandIn::set_display_name`]).
    display_names: HashMap<String, String>,
    /// Message content by message id: (content type, bytes) ([`StandIn::put_content`]).
    contents: HashMap<String, (String, Vec<u8>)>,
    /// The script for content requests ([`StandIn::push_content_behaviour`]).
    content_queue: VecDeque<Behaviour>,
    /// Set by [`StandIn::set_channel`]: token requests are checked against it and message
    /// requests need an issued token.
    channel: Option<Channel>,
    issued: Vec<IssuedToken>,
    token_expires_in: Option<u64>,
    token_queue: VecDeque<Behaviour>,
    faults: Option<FaultDraw>,
}

struct AcceptedKey {
    /// `x-line-request-id` of the accepted request; LINE names it in the 409's
    /// `X-Line-Accepted-Request-Id`.
    request_id: String,
    /// Its `sentMessages`, which LINE repeats in the 409 body.
    sent_messages: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Push,
    Reply,
    Multicast,
    Broadcast,
    Profile,
    BotInfo,
    Quota,
    QuotaLimit,
    GroupMemberCount,
    RoomMemberCount,
    GroupMember,
    RoomMember,
    Content,
    MarkAsRead,
    IssueV21,
    IssueStateless,
    Unknown,
}

impl Route {
    fn of(method: &Method, path: &str) -> Route {
        match (method.as_str(), path) {
            ("POST", "/v2/bot/message/push") => Route::Push,
            ("POST", "/v2/bot/message/reply") => Route::Reply,
            ("POST", "/v2/bot/message/multicast") => Route::Multicast,
            ("POST", "/v2/bot/message/broadcast") => Route::Broadcast,
            ("GET", "/v2/bot/message/quota/consumption") => Route::Quota,
            ("GET", "/v2/bot/message/quota") => Route::QuotaLimit,
            ("GET", "/v2/bot/info") => Route::BotInfo,
            ("POST", "/v2/bot/chat/markAsRead") => Route::MarkAsRead,
            ("POST", "/oauth2/v2.1/token") => Route::IssueV21,
            ("POST", "/oauth2/v3/token") => Route::IssueStateless,
            ("GET", p) => {
                if one_segment(p.strip_prefix("/v2/bot/profile/")).is_some() {
                    Route::Profile
                } else if member_count_id(p, Route::GroupMemberCount).is_some() {
                    Route::GroupMemberCount
                } else if member_count_id(p, Route::RoomMemberCount).is_some() {
                    Route::RoomMemberCount
                } else if member_ids(p, Route::GroupMember).is_some() {
                    Route::GroupMember
                } else if member_ids(p, Route::RoomMember).is_some() {
                    Route::RoomMember
                } else if content_id(p).is_some() {
                    Route::Content
                } else {
                    Route::Unknown
                }
            }
            _ => Route::Unknown,
        }
    }

    fn is_delivery(self) -> bool {
        matches!(self, Route::Push | Route::Reply | Route::Multicast | Route::Broadcast)
    }

    fn is_token(self) -> bool {
        matches!(self, Route::IssueV21 | Route::IssueStateless)
    }
}

/// `rest` if it is one non-empty path segment.
fn one_segment(rest: Option<&str>) -> Option<&str> {
    rest.filter(|id| !id.is_empty() && !id.contains('/'))
}

/// The group or room id in a `members/count` path of that route.
fn member_count_id(path: &str, route: Route) -> Option<&str> {
    let prefix = match route {
        Route::GroupMemberCount => "/v2/bot/group/",
        Route::RoomMemberCount => "/v2/bot/room/",
        _ => return None,
    };
    one_segment(path.strip_prefix(prefix).and_then(|rest| rest.strip_suffix("/members/count")))
}

/// The chat and user ids in a `/v2/bot/{group,room}/{id}/member/{userId}` path of that route.
fn member_ids(path: &str, route: Route) -> Option<(&str, &str)> {
    let prefix = match route {
        Route::GroupMember => "/v2/bot/group/",
        Route::RoomMember => "/v2/bot/room/",
        _ => return None,
    };
    let (chat, user) = path.strip_prefix(prefix)?.split_once("/member/")?;
    Some((one_segment(Some(chat))?, one_segment(Some(user))?))
}

/// The message id in a `/v2/bot/message/{messageId}/content` path.
fn content_id(path: &str) -> Option<&str> {
    one_segment(path.strip_prefix("/v2/bot/message/").and_then(|rest| rest.strip_suffix("/content")))
}

/// Paths described by `channel-access-token.yml` rather than `messaging-api.yml`.
/// The gateway's background reads (see [`StandIn::requests`]).
fn is_quota_read(path: &str) -> bool {
    path.starts_with("/v2/bot/message/quota") || (path.ends_with("/members/count") && (path.starts_with("/v2/bot/group/") || path.starts_with("/v2/bot/room/")))
}

fn is_oauth_path(path: &str) -> bool {
    path.starts_with("/oauth2/") || path.starts_with("/v2/oauth/")
}

impl StandIn {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    /// Loads `messaging-api.yml` and `channel-access-token.yml` for request
    /// checks (skipped, with a notice, when the specs are absent — see [`Spec::load`]).
    pub async fn start() -> StandIn {
        let shared = Arc::new(Shared {
            spec: Spec::load("messaging-api.yml"),
            token_spec: Spec::load("channel-access-token.yml"),
            state: Mutex::new(StateData {
                requests: Vec::new(),
                queue: VecDeque::new(),
                default: Behaviour::Ok,
                expected_token: None,
                accepted_keys: HashMap::new(),
                next_message_id: 1,
                next_request_id: 1,
                quota_limit: None,
                quota_used: 0,
                counted: 0,
                counted_to: HashMap::new(),
                member_counts: HashMap::new(),
                display_names: HashMap::new(),
                contents: HashMap::new(),
                content_queue: VecDeque::new(),
                channel: None,
                issued: Vec::new(),
                token_expires_in: None,
                token_queue: VecDeque::new(),
                faults: None,
            }),
            recorded: Notify::new(),
        });
        let app = Router::new()
            .fallback(handle)
            // multicast bodies with 500 ids, or deliberately oversized test
            // bodies, must reach the recorder rather than axum's 2 MB limit
            .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind stand-in LINE API");
        let addr = listener.local_addr().expect("stand-in address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("stand-in LINE API server");
        });
        StandIn { shared, base_url: format!("http://{addr}"), server, runtime: None }
    }

    /// As [`StandIn::start`], but served by a runtime of its own whose two threads run at a
    /// raised scheduling priority (nice -10; as root, else with a notice). For measuring when
    /// requests arrive (the fault campaign's busiest second): on a machine that the gateways
    /// and their database saturate, a stand-in on the campaign's runtime, a thread among many,
    /// takes requests late and stamps them together; its stamps would then measure the
    /// machine's scheduler, not the gateways' rate.
    pub async fn start_prioritised() -> StandIn {
        fn raise_priority() {
            static NOTICE: std::sync::Once = std::sync::Once::new();
            // Linux keeps a nice value per thread; `who` 0 is the calling thread.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, -10) } != 0 {
                NOTICE.call_once(|| eprintln!("notice: the stand-in LINE API runs at normal priority (raising it needs root): its arrival times may bunch on a busy machine"));
            }
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("standin")
            .on_thread_start(raise_priority)
            .enable_all()
            .build()
            .expect("the stand-in's runtime");
        let mut standin = runtime.spawn(StandIn::start()).await.expect("stand-in start");
        standin.runtime = Some(runtime);
        // The spec's validators are compiled at their first use, which in a debug build takes
        // tens of milliseconds: the pushes arriving meanwhile would be stamped together after it.
        if let Some(spec) = &standin.shared.spec {
            let push = serde_json::json!({ "to": format!("U{}", "0".repeat(32)), "messages": [{ "type": "text", "text": "warm-up" }] });
            let _ = spec.validate_request("POST", "/v2/bot/message/push", &push);
        }
        standin
    }

    /// E.g. `"http://127.0.0.1:40123"`; no trailing slash.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Whether requests are being checked against the OpenAPI spec.
    pub fn spec_checked(&self) -> bool {
        self.shared.spec.is_some()
    }

    /// Require exactly `Authorization: Bearer <token>` (otherwise any
    /// non-empty bearer token is accepted).
    pub fn expected_token(&self, token: &str) {
        self.shared.lock().expected_token = Some(token.to_string());
    }

    /// Appends to the scripted queue for deliveries (see module docs).
    pub fn push_behaviour(&self, behaviour: Behaviour) {
        self.shared.lock().queue.push_back(behaviour);
    }

    /// The month's quota: the limit `GET /v2/bot/message/quota` reports (`None`: no limit)
    /// and the messages already used, which `/quota/consumption` reports as `totalUsage` and
    /// accepted pushes and multicasts add to. Past the limit they are refused with LINE's
    /// monthly-limit 429 (see the module docs). Does not touch [`StandIn::messages_counted`].
    pub fn set_quota(&self, limit: Option<i64>, used: i64) {
        let mut state = self.shared.lock();
        state.quota_limit = limit;
        state.quota_used = used;
    }

    /// The month's usage as `/quota/consumption` reports it (`totalUsage`).
    pub fn quota_used(&self) -> i64 {
        self.shared.lock().quota_used
    }

    /// Members of group (`C…`) or room (`R…`) `id`, as `members/count` answers and as a push
    /// to it costs; unset ids have [`DEFAULT_MEMBER_COUNT`].
    pub fn set_member_count(&self, id: &str, n: i64) {
        self.shared.lock().member_counts.insert(id.to_string(), n);
    }

    /// The display name of user `user_id`: what the profile route answers for it (instead of
    /// `User <id prefix>`) and what the group and room member routes answer, which 404 for a
    /// user without one (see the module docs).
    pub fn set_display_name(&self, user_id: &str, name: &str) {
        self.shared.lock().display_names.insert(user_id.to_string(), name.to_string());
    }

    /// What `GET /v2/bot/message/{message_id}/content` answers: `bytes` as `content_type`.
    pub fn put_content(&self, message_id: &str, content_type: &str, bytes: &[u8]) {
        self.shared.lock().contents.insert(message_id.to_string(), (content_type.to_string(), bytes.to_vec()));
    }

    /// Appends to the script for content requests (for a registered id): e.g.
    /// `Behaviour::Status(500, …)` three times makes the next three fail, `Status(202, json!({}))`
    /// is LINE still preparing a video. Deliveries and other requests do not touch it.
    pub fn push_content_behaviour(&self, behaviour: Behaviour) {
        self.shared.lock().content_queue.push_back(behaviour);
    }

    /// Messages LINE counted for the pushes and multicasts this stand-in accepted (one per
    /// recipient per request, see the module docs). Unlike `totalUsage` it leaves out the
    /// usage [`StandIn::set_quota`] started from.
    pub fn messages_counted(&self) -> i64 {
        self.shared.lock().counted
    }

    /// Of [`StandIn::messages_counted`], those for recipient `id`: 1 per accepted push to a
    /// user or multicast naming it, the member count per accepted push to a group or room.
    pub fn messages_to(&self, id: &str) -> i64 {
        self.shared.lock().counted_to.get(id).copied().unwrap_or(0)
    }

    /// Makes the stand-in the channel that issues tokens (see module docs);
    /// from then on message requests need a valid issued token.
    pub fn set_channel(&self, channel: Channel) {
        self.shared.lock().channel = Some(channel);
    }

    /// The `expires_in` of tokens issued from now on (default: the asked
    /// `token_exp` for v2.1, 899 s for stateless, as LINE answers).
    pub fn set_token_expires_in(&self, secs: u64) {
        self.shared.lock().token_expires_in = Some(secs);
    }

    /// Appends to the script for token requests (that passed the checks).
    pub fn push_token_behaviour(&self, behaviour: Behaviour) {
        self.shared.lock().token_queue.push_back(behaviour);
    }

    /// Every token issued so far, oldest first.
    pub fn issued_tokens(&self) -> Vec<IssuedToken> {
        self.shared.lock().issued.clone()
    }

    /// Revokes every token issued so far: requests using them get 401.
    pub fn revoke_tokens(&self) {
        self.shared.lock().issued.iter_mut().for_each(|t| t.revoked = true);
    }

    /// Requests to the token endpoints, in order.
    pub fn token_requests(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| is_oauth_path(&r.path)).collect()
    }

    /// Behaviour for requests with nothing scripted (initially `Ok`).
    pub fn set_default(&self, behaviour: Behaviour) {
        self.shared.lock().default = behaviour;
    }

    /// Fails a random share of deliveries from now on (`None`: stop); see [`Faults`].
    /// Scripted behaviours still come first. Each request's fault is in [`Recorded::fault`].
    pub fn set_faults(&self, faults: Option<Faults>) {
        self.shared.lock().faults = faults.map(FaultDraw::new);
    }

    /// Deliveries that drew from [`StandIn::set_faults`] since it was called, and the faults
    /// drawn, by kind. Counted when drawn: a slow answer whose client went away before it was
    /// due is never recorded (see the module docs), but its fault was injected.
    pub fn faults_drawn(&self) -> (u64, BTreeMap<Fault, u64>) {
        self.shared.lock().faults.as_ref().map(|d| (d.draws, d.drawn.clone())).unwrap_or_default()
    }

    /// All requests so far, in the order they were answered, except the gateway's reads of its
    /// quota and of member counts (see [`StandIn::quota_reads`]): a spooling gateway makes
    /// them in the background, at start and on a timer, and tests about deliveries count and
    /// order requests without them.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.iter().filter(|r| !is_quota_read(&r.path)).cloned().collect()
    }

    /// The quota and member-count reads (`GET /v2/bot/message/quota[/consumption]`,
    /// `GET /v2/bot/{group,room}/{id}/members/count`), in order.
    pub fn quota_reads(&self) -> Vec<Recorded> {
        self.shared.lock().requests.iter().filter(|r| is_quota_read(&r.path)).cloned().collect()
    }

    /// Waits until the gateway has read the quota (`GET /v2/bot/message/quota/consumption`)
    /// `n` times; a spooling gateway does so at start. Panics after `timeout`.
    pub async fn wait_for_quota_reads(&self, n: usize, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.requests_to("/v2/bot/message/quota/consumption").len() < n {
            assert!(tokio::time::Instant::now() < deadline, "stand-in LINE API: the gateway did not read its quota {n} time(s) within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Requests whose path (query string excluded) equals `path` (quota reads included).
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.shared.lock().requests.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Requests LINE would have accepted (2xx, including accepted-then-dropped).
    /// A retry answered 409 is not here: it is not a new delivery.
    pub fn accepted(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(Recorded::is_accepted).collect()
    }

    /// Waits until at least `n` requests were recorded and returns them all.
    /// Panics after `timeout`, listing what did arrive.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before looking, so a request recorded between
            // the look and the wait still wakes us.
            let notified = self.shared.recorded.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let seen: Vec<String> =
                    requests.iter().map(|r| format!("{} {} -> {}", r.method, r.path, r.status)).collect();
                panic!("stand-in LINE API: waited {timeout:?} for {n} request(s), got {}: {seen:#?}", requests.len());
            }
        }
    }

    /// Panics listing every violation seen so far (spec, auth, retry key).
    pub fn assert_all_valid(&self) {
        let problems: Vec<String> = self
            .shared
            .lock()
            .requests
            .iter()
            .flat_map(|r| r.spec_errors.iter().map(move |e| format!("{} {}: {e}", r.method, r.path)))
            .collect();
        if !problems.is_empty() {
            panic!("stand-in LINE API saw {} invalid request part(s):\n  {}", problems.len(), problems.join("\n  "));
        }
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
        // Not a plain drop: dropping a runtime waits for its threads, which an async caller
        // must not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, StateData> {
        // A test that panics while holding the lock must not turn every later
        // call into a PoisonError that hides the original failure.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn error_body(message: &str) -> Value {
    json!({ "message": message })
}

/// LINE's 400 shape: `{"message":"The request body has N error(s)","details":[…]}`.
fn bad_request_body(violations: &[Violation]) -> Value {
    let details: Vec<Value> = violations
        .iter()
        .map(|v| {
            let mut d = json!({ "message": v.message });
            let property = v.property();
            if !property.is_empty() {
                d["property"] = json!(property);
            }
            d
        })
        .collect();
    json!({ "message": format!("The request body has {} error(s)", violations.len()), "details": details })
}

/// `8-4-4-4-12` hex digits: the UUID form LINE requires for retry keys.
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts.iter().zip([8, 4, 4, 4, 12]).all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// How a request will be answered, once the checks and the script had their say.
enum Decision {
    Answer(u16, Value),
    Ok,
    DelayThenOk(Duration),
    /// Accepted now, answered like `Ok` after the delay.
    OkLate(Duration),
    Drop,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let received = Instant::now();
    let path = uri.path().to_string();
    let route = Route::of(&method, &path);
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let mut spec_errors: Vec<String> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut rejection: Option<(u16, Value)> = None;
    // Token requests are forms: their body is recorded as the decoded form.
    let body: Value = if route.is_token() {
        match decode_form(&raw) {
            Ok(form) => form,
            Err(e) => {
                spec_errors.push(format!("body is not a valid form: {e}"));
                rejection = Some((400, json!({ "error": "invalid_request", "error_description": e })));
                Value::Null
            }
        }
    } else if raw.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&raw).unwrap_or(Value::Null)
    };

    // 1. The path must exist (in the spec, when we have it): a typo in a URL
    // is a gateway bug even though the answer is just LINE's 404.
    let spec_for_path = if is_oauth_path(&path) { &shared.token_spec } else { &shared.spec };
    if let Some(spec) = spec_for_path {
        if let Err(unknown) = spec.operation_template(method.as_str(), &path) {
            spec_errors.push(unknown);
        }
    }
    if route == Route::Unknown {
        rejection = Some((404, error_body("Not found")));
    }

    // 2. Authentication, checked first by LINE (token requests authenticate in
    // their body instead).
    if rejection.is_none() && !route.is_token() {
        let (expected, issuing) = {
            let state = shared.lock();
            (state.expected_token.clone(), state.channel.is_some())
        };
        let auth = header("authorization");
        let token = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
        // (problem, whether it is the client's fault)
        let problem = match (token, &expected) {
            (None, _) => Some((format!("missing `Authorization: Bearer <token>` header (got {auth:?})"), true)),
            (Some(""), _) => Some(("empty bearer token".to_string(), true)),
            (Some(t), Some(want)) if t != want => Some((format!("wrong bearer token {t:?} (expected {want:?})"), true)),
            (Some(t), None) if issuing => {
                let state = shared.lock();
                match state.issued.iter().find(|i| i.token == t) {
                    None => Some((format!("bearer token {t:?} was never issued by the token endpoint"), true)),
                    Some(i) if i.revoked => Some((format!("bearer token {t:?} was revoked"), false)),
                    Some(i) if !i.is_valid() => Some((format!("bearer token {t:?} has expired"), false)),
                    Some(_) => None,
                }
            }
            _ => None,
        };
        if let Some((problem, clients_fault)) = problem {
            if clients_fault {
                spec_errors.push(problem);
            } else {
                notes.push(problem);
            }
            rejection = Some((
                401,
                error_body(
                    "Authentication failed. Confirm that the access token in the authorization header is valid.",
                ),
            ));
        }
    }

    // 2b. What the test did not register is not there, as at LINE: an unknown content id
    // or a user who is not a member. Not the client's fault, so no spec error.
    if rejection.is_none() {
        let state = shared.lock();
        let missing = match route {
            Route::Content => content_id(&path).is_some_and(|id| !state.contents.contains_key(id)),
            Route::GroupMember | Route::RoomMember => member_ids(&path, route).is_some_and(|(_, user)| !state.display_names.contains_key(user)),
            _ => false,
        };
        if missing {
            rejection = Some((404, error_body("Not found")));
        }
    }

    // 3. The body, and the headers that describe it.
    if rejection.is_none() && route.is_token() {
        let content_type = header("content-type").unwrap_or_default();
        let problems = check_token_request(&shared, route, &path, &content_type, &body);
        if let Some((code, _)) = problems.first() {
            let description: Vec<&str> = problems.iter().map(|(_, p)| p.as_str()).collect();
            rejection = Some((400, json!({ "error": code, "error_description": description.join("; ") })));
            spec_errors.extend(problems.into_iter().map(|(_, p)| p));
        }
    } else if rejection.is_none() && method == Method::POST {
        let mut violations: Vec<Violation> = Vec::new();
        let content_type = header("content-type").unwrap_or_default();
        if !content_type.to_ascii_lowercase().starts_with("application/json") {
            violations.push(Violation {
                pointer: String::new(),
                message: format!("Content-Type must be application/json, got {content_type:?}"),
            });
        }
        if !raw.is_empty() && body.is_null() {
            violations.push(Violation { pointer: String::new(), message: "body is not valid JSON".to_string() });
        } else if let Some(spec) = &shared.spec {
            if let Err(v) = spec.check_request(method.as_str(), &path, &body) {
                violations.extend(v);
            }
        }
        if !violations.is_empty() {
            spec_errors.extend(violations.iter().map(|v| v.to_string()));
            rejection = Some((400, bad_request_body(&violations)));
        }
    }
    let retry_key = header("x-line-retry-key");
    if rejection.is_none() {
        if let Some(key) = &retry_key {
            if !is_uuid(key) {
                spec_errors.push(format!("X-Line-Retry-Key {key:?} is not a UUID"));
                rejection = Some((400, error_body("The value for the 'X-Line-Retry-Key' header is invalid")));
            }
        }
    }

    // 4. Retry key already accepted → 409, not a new delivery.
    let mut extra_headers: Vec<(&'static str, String)> = Vec::new();
    if rejection.is_none() {
        if let Some(key) = &retry_key {
            if let Some(original) = shared.lock().accepted_keys.get(key) {
                let mut answer = error_body("The retry key is already accepted");
                if let Some(sent) = &original.sent_messages {
                    answer["sentMessages"] = sent.clone();
                }
                extra_headers.push(("x-line-accepted-request-id", original.request_id.clone()));
                rejection = Some((409, answer));
            }
        }
    }

    // 5. Scripted behaviour, else a random fault, else the default (then, for an
    // acceptance, the quota: see below).
    let mut fault = None;
    let decision = match rejection {
        Some((status, answer)) => Decision::Answer(status, answer),
        None => {
            let (behaviour, drawn) = {
                let mut state = shared.lock();
                let scripted = if route.is_token() {
                    Some(state.token_queue.pop_front().unwrap_or(Behaviour::Ok))
                } else if route == Route::Content {
                    state.content_queue.pop_front()
                } else if route.is_delivery() {
                    state.queue.pop_front()
                } else {
                    None
                };
                let drawn = match (&scripted, state.faults.as_mut()) {
                    (None, Some(draw)) if route.is_delivery() => draw.draw().map(|f| (f, draw.faults.clone())),
                    _ => None,
                };
                (scripted.unwrap_or_else(|| state.default.clone()), drawn)
            };
            match (drawn, behaviour) {
                (Some((f, faults)), _) => {
                    fault = Some(f);
                    match f {
                        Fault::ServerError => Decision::Answer(500, error_body("Internal server error")),
                        Fault::RateLimited => {
                            extra_headers.push(("retry-after", "1".to_string()));
                            Decision::Answer(429, error_body("The API rate limit has been exceeded. Try again later."))
                        }
                        Fault::Slow => Decision::DelayThenOk(faults.slow),
                        Fault::Late => Decision::OkLate(faults.late),
                        Fault::AcceptThenDrop => Decision::Drop,
                    }
                }
                (None, Behaviour::Ok) => Decision::Ok,
                (None, Behaviour::Status(status, answer)) => Decision::Answer(status, answer),
                (None, Behaviour::Delay(d)) => Decision::DelayThenOk(d),
                (None, Behaviour::AcceptThenDrop) => Decision::Drop,
            }
        }
    };
    // An acceptance is charged to the quota when it is decided (a delay's after the
    // delay), or becomes LINE's monthly-limit 429 when the quota cannot pay for it.
    let accept = |status: u16, answer: Option<Value>, dropped: bool| match charge(&shared, route, &body) {
        Ok(()) => (status, answer.unwrap_or_else(|| success_body(&shared, route, &path, &body)), dropped),
        Err(refusal) => (429, refusal, false),
    };
    let mut answer_after = None;
    let (status, answer, dropped) = match decision {
        Decision::Ok => accept(200, None, false),
        Decision::Answer(status, answer) if (200..300).contains(&status) => accept(status, Some(answer), false),
        Decision::Answer(status, answer) => (status, answer, false),
        Decision::DelayThenOk(d) => {
            tokio::time::sleep(d).await;
            accept(200, None, false)
        }
        Decision::OkLate(d) => {
            let answered = accept(200, None, false);
            if answered.0 == 200 {
                answer_after = Some(d);
            }
            answered
        }
        Decision::Drop => accept(200, None, true),
    };

    // 6. Record, remember accepted retry keys, wake waiters — all before a
    // drop, so the test sees the delivery LINE "made".
    let request_id = {
        let mut state = shared.lock();
        let request_id = format!("standin-{:04}", state.next_request_id);
        state.next_request_id += 1;
        if (200..300).contains(&status) {
            if let Some(key) = &retry_key {
                let sent_messages = answer.get("sentMessages").cloned();
                state.accepted_keys.insert(key.clone(), AcceptedKey { request_id: request_id.clone(), sent_messages });
            }
        }
        state.requests.push(Recorded {
            method: method.as_str().to_string(),
            path: path.clone(),
            headers: header_list,
            body,
            raw: raw.to_vec(),
            spec_errors,
            notes,
            status,
            dropped,
            request_id: request_id.clone(),
            fault,
            answer: if dropped { Value::Null } else { answer.clone() },
            received,
        });
        request_id
    };
    shared.recorded.notify_waiters();

    if dropped {
        // See the module docs: ends this connection's task without a response.
        std::panic::resume_unwind(Box::new("stand-in LINE API: AcceptThenDrop"));
    }
    if let Some(d) = answer_after {
        // Already recorded as accepted: if the client gives up meanwhile, hyper drops this
        // future and the answer is lost, as with LINE answering after the client's timeout.
        tokio::time::sleep(d).await;
    }

    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // Content is answered as its bytes; everything else (content refusals included) as JSON.
    let content = (route == Route::Content && status == StatusCode::OK)
        .then(|| content_id(&path).and_then(|id| shared.lock().contents.get(id).cloned()))
        .flatten();
    let mut response = match content {
        Some((content_type, bytes)) => (status, [(axum::http::header::CONTENT_TYPE, content_type)], bytes).into_response(),
        None => (status, Json(answer)).into_response(),
    };
    let h = response.headers_mut();
    h.insert("x-line-request-id", request_id.parse().expect("ascii request id"));
    for (name, value) in extra_headers {
        if let Ok(value) = value.parse() {
            h.insert(name, value);
        }
    }
    response
}

/// What LINE counts for `body` on `route`, by recipient (see the module docs); empty for
/// requests it does not count.
fn bill(state: &StateData, route: Route, body: &Value) -> Vec<(String, i64)> {
    match route {
        Route::Push => body
            .get("to")
            .and_then(Value::as_str)
            .map(|to| {
                let cost = if to.starts_with('C') || to.starts_with('R') {
                    state.member_counts.get(to).copied().unwrap_or(DEFAULT_MEMBER_COUNT)
                } else {
                    1
                };
                vec![(to.to_string(), cost)]
            })
            .unwrap_or_default(),
        Route::Multicast => body
            .get("to")
            .and_then(Value::as_array)
            .map(|to| to.iter().filter_map(Value::as_str).map(|id| (id.to_string(), 1)).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Charges an accepted push or multicast to the month's quota and the counts, or refuses
/// it whole with the monthly-limit body when its cost exceeds what is left. One lock
/// holds the check and the charge, so concurrent requests cannot overspend.
fn charge(shared: &Shared, route: Route, body: &Value) -> Result<(), Value> {
    if !matches!(route, Route::Push | Route::Multicast) {
        return Ok(());
    }
    let mut state = shared.lock();
    let bill = bill(&state, route, body);
    let cost: i64 = bill.iter().map(|(_, n)| n).sum();
    if state.quota_limit.is_some_and(|limit| state.quota_used + cost > limit) {
        return Err(error_body(MONTHLY_LIMIT_MESSAGE));
    }
    state.quota_used += cost;
    state.counted += cost;
    for (id, n) in bill {
        *state.counted_to.entry(id).or_default() += n;
    }
    Ok(())
}

/// LINE's success answer for a route.
fn success_body(shared: &Shared, route: Route, path: &str, body: &Value) -> Value {
    match route {
        Route::Push | Route::Reply => {
            let count = body.get("messages").and_then(Value::as_array).map_or(1, |m| m.len().max(1));
            let mut state = shared.lock();
            let sent: Vec<Value> = (0..count)
                .map(|_| {
                    let n = state.next_message_id;
                    state.next_message_id += 1;
                    json!({ "id": n.to_string(), "quoteToken": format!("q{n}") })
                })
                .collect();
            json!({ "sentMessages": sent })
        }
        Route::Multicast | Route::Broadcast => json!({}),
        Route::Profile => {
            let user_id = path.trim_start_matches("/v2/bot/profile/");
            let short: String = user_id.chars().take(6).collect();
            let name = shared.lock().display_names.get(user_id).cloned().unwrap_or_else(|| format!("User {short}"));
            json!({ "displayName": name, "userId": user_id })
        }
        Route::GroupMember | Route::RoomMember => {
            // Registered (else 404 before the answer was chosen).
            let user_id = member_ids(path, route).map(|(_, user)| user).unwrap_or_default();
            let name = shared.lock().display_names.get(user_id).cloned().unwrap_or_default();
            json!({ "displayName": name, "userId": user_id })
        }
        // The bytes are sent instead (see the end of `handle`); this is what is recorded.
        Route::Content => json!({}),
        Route::MarkAsRead => json!({}),
        Route::BotInfo => json!({
            "userId": BOT_USER_ID,
            "basicId": BOT_BASIC_ID,
            "displayName": BOT_DISPLAY_NAME,
            "chatMode": "bot",
            "markAsReadMode": "auto",
        }),
        Route::Quota => json!({ "totalUsage": shared.lock().quota_used }),
        Route::QuotaLimit => match shared.lock().quota_limit {
            Some(limit) => json!({ "type": "limited", "value": limit }),
            None => json!({ "type": "none" }),
        },
        Route::GroupMemberCount | Route::RoomMemberCount => {
            let id = member_count_id(path, route).unwrap_or_default();
            let count = shared.lock().member_counts.get(id).copied().unwrap_or(DEFAULT_MEMBER_COUNT);
            json!({ "count": count })
        }
        Route::IssueV21 | Route::IssueStateless => issue_token(shared, route, body),
        Route::Unknown => error_body("Not found"),
    }
}

/// Issues a token for a request that passed [`check_token_request`].
fn issue_token(shared: &Shared, route: Route, form: &Value) -> Value {
    let mut state = shared.lock();
    let n = state.issued.len() + 1;
    let kind = if route == Route::IssueV21 { "v2.1" } else { "stateless" };
    // What LINE answers: the asked lifetime for v2.1, 15 minutes (less a second) for stateless.
    let asked = form
        .get("client_assertion")
        .and_then(Value::as_str)
        .and_then(jwt_claims)
        .and_then(|claims| claims.get("token_exp").and_then(Value::as_u64));
    let default = if route == Route::IssueV21 { asked.unwrap_or(MAX_TOKEN_EXP_SECS) } else { 899 };
    let expires_in = state.token_expires_in.unwrap_or(default);
    let token = format!("standin-{kind}-token-{n}-{}", uuid::Uuid::new_v4().simple());
    let key_id = (route == Route::IssueV21).then(|| format!("standin-key-{n}"));
    state.issued.push(IssuedToken {
        token: token.clone(),
        kind,
        key_id: key_id.clone(),
        expires_in,
        expires_at: Instant::now() + Duration::from_secs(expires_in),
        revoked: false,
    });
    match key_id {
        Some(key_id) => json!({ "access_token": token, "expires_in": expires_in, "token_type": "Bearer", "key_id": key_id }),
        None => json!({ "token_type": "Bearer", "access_token": token, "expires_in": expires_in }),
    }
}

/// The claims of a JWT, unverified (already checked by [`check_assertion`]).
pub fn jwt_claims(jwt: &str) -> Option<Value> {
    use base64::Engine;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// What LINE would object to in a token request, each with the OAuth error
/// code it answers: the media type, the spec's form schema, then the checks
/// the schema cannot express (see the module docs).
fn check_token_request(shared: &Shared, route: Route, path: &str, content_type: &str, form: &Value) -> Vec<(&'static str, String)> {
    let mut problems = Vec::new();
    if !content_type.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        problems.push(("invalid_request", format!("Content-Type must be application/x-www-form-urlencoded, got {content_type:?}")));
    }
    if let Some(spec) = &shared.token_spec {
        if let Err(violations) = spec.check_form_request("POST", path, form) {
            problems.extend(violations.into_iter().map(|v| ("invalid_request", v.to_string())));
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    let field = |name: &str| form.get(name).and_then(Value::as_str);
    if field("grant_type") != Some("client_credentials") {
        problems.push(("unsupported_grant_type", format!("grant_type must be client_credentials, got {:?}", field("grant_type"))));
    }
    let Some(channel) = shared.lock().channel.clone() else {
        problems.push(("invalid_client", "the stand-in has no channel (StandIn::set_channel)".to_string()));
        return problems;
    };
    match field("client_assertion") {
        Some(jwt) => {
            if field("client_assertion_type") != Some(ASSERTION_TYPE) {
                problems.push(("invalid_request", format!("client_assertion_type must be {ASSERTION_TYPE}, got {:?}", field("client_assertion_type"))));
            }
            let v21 = route == Route::IssueV21;
            problems.extend(check_assertion(jwt, &channel, v21).into_iter().map(|p| ("invalid_client", p)));
        }
        // The v2.1 endpoint takes only an assertion. The spec's form schema says so too; this
        // answers the same without `../shared`, where that check does not run.
        None if route == Route::IssueV21 => {
            problems.push(("invalid_request", "client_assertion is required".to_string()));
        }
        None => {
            if field("client_id") != Some(channel.id.as_str()) || field("client_secret") != Some(channel.secret.as_str()) {
                problems.push(("invalid_client", format!("client_id {:?} and client_secret do not match the channel", field("client_id"))));
            }
        }
    }
    problems
}

/// Checks a client assertion as LINE does: RS256, `typ` JWT, the channel's
/// `kid`, a signature by its key, the claims, and (v2.1) `token_exp`.
fn check_assertion(jwt: &str, channel: &Channel, v21: bool) -> Vec<String> {
    use jsonwebtoken::{Algorithm, Validation};
    let header = match jsonwebtoken::decode_header(jwt) {
        Ok(h) => h,
        Err(e) => return vec![format!("client_assertion is not a JWT: {e}")],
    };
    let mut problems = Vec::new();
    if header.alg != Algorithm::RS256 {
        problems.push(format!("client_assertion alg is {:?}; LINE requires RS256", header.alg));
    }
    if header.typ.as_deref() != Some("JWT") {
        problems.push(format!("client_assertion typ is {:?}; LINE requires \"JWT\"", header.typ));
    }
    if header.kid.as_deref() != Some(channel.kid.as_str()) {
        problems.push(format!("client_assertion kid is {:?}, not the channel's key id {:?}", header.kid, channel.kid));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[&channel.id]);
    validation.sub = Some(channel.id.clone());
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    match jsonwebtoken::decode::<Value>(jwt, &channel.public_key, &validation) {
        Ok(data) => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            match data.claims.get("exp").and_then(Value::as_u64) {
                Some(exp) if exp > now && exp - now <= MAX_ASSERTION_SECS => {}
                exp => problems.push(format!("client_assertion exp {exp:?} must be at most 30 minutes after now ({now})")),
            }
            if v21 {
                match data.claims.get("token_exp").and_then(Value::as_u64) {
                    Some(t) if (1..=MAX_TOKEN_EXP_SECS).contains(&t) => {}
                    t => problems.push(format!("client_assertion token_exp {t:?} must be 1..={MAX_TOKEN_EXP_SECS} seconds")),
                }
            }
        }
        Err(e) => problems.push(format!("client_assertion refused: {e:?}")),
    }
    problems
}
