//! A stand-in for the LINE Messaging API, for integration tests.
//!
//! Owns: an axum server on `127.0.0.1:0` (spawned on the caller's tokio
//! runtime, stopped when the [`StandIn`] is dropped) that
//! * records every request ([`Recorded`]),
//! * polices it the way LINE would — bearer token, JSON body checked against
//!   `messaging-api.yml` through [`super::spec`], retry-key format — answering
//!   401/400 like LINE and remembering each violation in `spec_errors` so a
//!   test can end with [`StandIn::assert_all_valid`],
//! * honours `X-Line-Retry-Key` like LINE: a key that was already accepted
//!   gets 409 with the original `sentMessages`, and is not a new delivery,
//! * answers with scripted [`Behaviour`]s (errors, delays, dropped
//!   connections) so retry and failure paths can be tested.
//!
//! Routes answered: `POST /v2/bot/message/{push,reply,multicast,broadcast}`,
//! `GET /v2/bot/profile/{userId}`, `GET /v2/bot/message/quota/consumption`;
//! anything else is 404 `{"message":"Not found"}` (and, when the spec does not
//! know the path either, a recorded spec error).
//!
//! Scripting: the [`StandIn::push_behaviour`] queue is consumed only by
//! *deliveries* (the message-sending POSTs above), one per delivery that got
//! past the auth/spec/retry-key checks, so a profile lookup in between does not
//! eat a scripted failure. When the queue is empty — and for every
//! non-delivery request — the [`StandIn::set_default`] behaviour applies
//! (initially [`Behaviour::Ok`]).
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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::spec::{Spec, Violation};

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
    /// Everything LINE would have objected to (empty = fine).
    pub spec_errors: Vec<String>,
    /// Status answered. An [`Behaviour::AcceptThenDrop`] request shows 200:
    /// LINE accepted it even though the client never saw the answer.
    pub status: u16,
    /// True when the connection was closed instead of answering.
    pub dropped: bool,
}

impl Recorded {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
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

/// A running stand-in server. Dropping it stops the server.
pub struct StandIn {
    shared: Arc<Shared>,
    base_url: String,
    server: JoinHandle<()>,
}

struct Shared {
    spec: Option<Spec>,
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
    /// Monthly quota: `None` = no limit (`{"type":"none"}`), and messages used so far.
    quota_limit: Option<i64>,
    quota_used: i64,
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
    Quota,
    QuotaLimit,
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
            ("GET", p) => match p.strip_prefix("/v2/bot/profile/") {
                Some(id) if !id.is_empty() && !id.contains('/') => Route::Profile,
                _ => Route::Unknown,
            },
            _ => Route::Unknown,
        }
    }

    fn is_delivery(self) -> bool {
        matches!(self, Route::Push | Route::Reply | Route::Multicast | Route::Broadcast)
    }
}

impl StandIn {
    /// Binds `127.0.0.1:0` and serves on the current tokio runtime.
    /// Loads `messaging-api.yml` for request checks (skipped, with a notice,
    /// when the spec is absent — see [`Spec::load`]).
    pub async fn start() -> StandIn {
        let shared = Arc::new(Shared {
            spec: Spec::load("messaging-api.yml"),
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
        StandIn { shared, base_url: format!("http://{addr}"), server }
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

    /// What `GET /v2/bot/message/quota` and `/quota/consumption` report.
    pub fn set_quota(&self, limit: Option<i64>, used: i64) {
        let mut state = self.shared.lock();
        state.quota_limit = limit;
        state.quota_used = used;
    }

    /// Behaviour for requests with nothing scripted (initially `Ok`).
    pub fn set_default(&self, behaviour: Behaviour) {
        self.shared.lock().default = behaviour;
    }

    /// All requests so far, in the order they were answered.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Requests whose path (query string excluded) equals `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
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
            .requests()
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
    Drop,
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let route = Route::of(&method, &path);
    let header_list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    let body: Value = if raw.is_empty() { Value::Null } else { serde_json::from_slice(&raw).unwrap_or(Value::Null) };

    let mut spec_errors: Vec<String> = Vec::new();
    let mut rejection: Option<(u16, Value)> = None;

    // 1. The path must exist (in the spec, when we have it): a typo in a URL
    // is a gateway bug even though the answer is just LINE's 404.
    if let Some(spec) = &shared.spec {
        if let Err(unknown) = spec.operation_template(method.as_str(), &path) {
            spec_errors.push(unknown);
        }
    }
    if route == Route::Unknown {
        rejection = Some((404, error_body("Not found")));
    }

    // 2. Authentication, checked first by LINE.
    if rejection.is_none() {
        let expected = shared.lock().expected_token.clone();
        let auth = header("authorization");
        let token = auth.as_deref().and_then(|a| a.strip_prefix("Bearer ")).map(str::trim);
        let problem = match (token, &expected) {
            (None, _) => Some(format!("missing `Authorization: Bearer <token>` header (got {auth:?})")),
            (Some(""), _) => Some("empty bearer token".to_string()),
            (Some(t), Some(want)) if t != want => Some(format!("wrong bearer token {t:?} (expected {want:?})")),
            _ => None,
        };
        if let Some(problem) = problem {
            spec_errors.push(problem);
            rejection = Some((
                401,
                error_body(
                    "Authentication failed. Confirm that the access token in the authorization header is valid.",
                ),
            ));
        }
    }

    // 3. The body, and the headers that describe it.
    if rejection.is_none() && method == Method::POST {
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

    // 5. Scripted behaviour.
    let decision = match rejection {
        Some((status, answer)) => Decision::Answer(status, answer),
        None => {
            let behaviour = {
                let mut state = shared.lock();
                let scripted = if route.is_delivery() { state.queue.pop_front() } else { None };
                scripted.unwrap_or_else(|| state.default.clone())
            };
            match behaviour {
                Behaviour::Ok => Decision::Ok,
                Behaviour::Status(status, answer) => Decision::Answer(status, answer),
                Behaviour::Delay(d) => Decision::DelayThenOk(d),
                Behaviour::AcceptThenDrop => Decision::Drop,
            }
        }
    };
    let (status, answer, dropped) = match decision {
        Decision::Ok => (200, success_body(&shared, route, &path, &body), false),
        Decision::Answer(status, answer) => (status, answer, false),
        Decision::DelayThenOk(d) => {
            tokio::time::sleep(d).await;
            (200, success_body(&shared, route, &path, &body), false)
        }
        Decision::Drop => (200, success_body(&shared, route, &path, &body), true),
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
            status,
            dropped,
        });
        request_id
    };
    shared.recorded.notify_waiters();

    if dropped {
        // See the module docs: ends this connection's task without a response.
        std::panic::resume_unwind(Box::new("stand-in LINE API: AcceptThenDrop"));
    }

    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(answer)).into_response();
    let h = response.headers_mut();
    h.insert("x-line-request-id", request_id.parse().expect("ascii request id"));
    for (name, value) in extra_headers {
        if let Ok(value) = value.parse() {
            h.insert(name, value);
        }
    }
    response
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
            json!({ "displayName": format!("User {short}"), "userId": user_id })
        }
        Route::Quota => json!({ "totalUsage": shared.lock().quota_used }),
        Route::QuotaLimit => match shared.lock().quota_limit {
            Some(limit) => json!({ "type": "limited", "value": limit }),
            None => json!({ "type": "none" }),
        },
        Route::Unknown => error_body("Not found"),
    }
}
