//! The durable spool: a mail answered 250 is on disk and will reach LINE exactly once.
//!
//! `accept` stores a mail's requests (each with its `X-Line-Retry-Key`, chosen before the first
//! attempt) and returns only after the commit is durable. Freshly accepted jobs go straight to
//! the workers through a channel; a scanner picks up jobs whose retry time has come, and after a
//! restart every pending job. Workers send at LINE's pace (rate limiters), record each outcome
//! (done, retry at, dead) and, when the monthly quota is spent, pause until a probe says it has
//! room again. A mail's requests to one target (text, then follow-up image batches) form a
//! chain: a request waits for the one before it to be done or dead, so the chat shows them in
//! order. "Exactly once" rests on the retry key: a job re-sent after a crash (LINE accepted
//! it but we never recorded that) is answered 409 by LINE and counts as delivered.
//!
//! [`Delivered`] is the one "mail delivered" line and latency metric, here because the spool
//! writes most of them; direct mode (`delivery`) writes its own through it too.

pub mod answers;
pub mod coalesce;
pub mod limiter;
pub mod policy;
pub mod settings;
pub mod share;
pub mod store;
mod counts_pg;
mod store_pg;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, error, info, warn};

use crate::line::{LineClient, Outcome};
use crate::metrics::{Metrics, QueueCounts};

use limiter::RateLimiter;
use policy::{decide, RetryPolicy};
use store::{Job, JobId, NewJob, Packer, QuotaRow, Store, StoreError, Update, Usage};

/// Why the spool cannot take mail now ([`Spool::store_ready`], for `/readyz`, which adds what
/// to do: free disk space on `storage.dir` or fix its permissions).
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// A mail the store refused, within [`STORE_FAILURE_MEMORY`].
    #[error("a mail could not be stored {secs} s ago: {error}")]
    RecentFailure { secs: u64, error: String },
    /// The probe write failed.
    #[error("{0}")]
    Store(StoreError),
}

/// How the spool runs; built from `[delivery]` and `[quota]` ([`settings`]).
#[derive(Debug, Clone)]
pub struct Settings {
    pub workers: usize,
    pub push_per_second: u32,
    pub multicast_per_second: u32,
    pub retry: RetryPolicy,
    /// How often the store is scanned for jobs whose retry time has come.
    pub scan_interval: Duration,
    /// Dead letters are deleted this long after they died (`[delivery] dead_retention`).
    pub dead_retention: Duration,
    /// Coalescing and the month's quota (`[delivery] coalesce_secs`, `[quota]`).
    pub coalesce: coalesce::Settings,
    /// Keep each mail's thread (Message-ID, Reply-To, subject) and the LINE message ids it
    /// became, so answers from LINE can be mailed back: `[replies]` is on ([`answers`]).
    pub keep_threads: bool,
}

/// How long a group's or room's member count is trusted before it is asked again.
const MEMBER_COUNT_TTL: Duration = Duration::from_secs(3600);

/// One chat's coalescing state in memory. The held mail itself is in the store; after a restart
/// this is rebuilt from it (`store::held_chats`).
#[derive(Debug, Clone, Copy, Default)]
struct ChatState {
    chat: coalesce::Chat,
    /// When the held mail is sealed and sent.
    release_at: i64,
    /// What LINE will count for the sealed request: the chat's recipients.
    recipients: u64,
}

/// The month's quota as this gateway knows it: LINE's last reading plus what was sent since.
#[derive(Debug, Clone, Copy, Default)]
struct QuotaView {
    known: bool,
    month: i64,
    limit: Option<u64>,
    used: u64,
    /// The Japan-time day `used_at_day_start` belongs to (its 00:00, unix ms).
    day: i64,
    /// The month's use when that day began (or when the gateway started, if later): today's
    /// share (`coalesce::admit`) is counted from it.
    used_at_day_start: u64,
}

/// Shared "monthly quota spent" state: workers hold, SMTP answers 452 4.2.2.
#[derive(Default)]
pub struct Quota {
    paused: AtomicBool,
    resumed: Notify,
}

impl Quota {
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }
}

/// The spool as the SMTP side sees it.
#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    ready: mpsc::UnboundedSender<Job>,
    /// Jobs handed to workers and not yet finished: the scanner must not hand them out again.
    inflight: Mutex<HashSet<JobId>>,
    /// Jobs a scan claimed (PostgreSQL) while they were still in flight: handed to the workers
    /// again when their worker finishes ([`Inner::finish`]).
    requeue: Mutex<HashMap<JobId, Job>>,
    /// Fresh follow-up jobs, keyed by the job that must finish first (same mail and target).
    /// Only a fast path: the store's `due` query enforces the same order after a restart or
    /// when the predecessor went through a retry the scanner picked up.
    held: Mutex<HashMap<JobId, Job>>,
    quota: Quota,
    /// Turns true on shutdown; every waiting task also waits on it.
    stop: watch::Sender<bool>,
    /// Wakes the scanner early (quota resumed).
    wake: Notify,
    client: LineClient,
    settings: Settings,
    push_limit: RateLimiter,
    multicast_limit: RateLimiter,
    /// The gateways the rate limits are shared by (1 on SQLite; on PostgreSQL the live nodes,
    /// kept by `share::run`).
    share_nodes: AtomicU32,
    jitter_seed: AtomicU64,
    metrics: Arc<Metrics>,
    /// When and why the store last refused a mail; cleared by the next mail it stores.
    store_failure: Mutex<Option<(Instant, String)>>,
    /// Packs a chat's held requests into one (the composer's rules; see `delivery`).
    packer: Arc<dyn Packer>,
    chats: Mutex<HashMap<String, ChatState>>,
    /// Wakes the sealer: a chat's window was set or moved.
    sealer_wake: Notify,
    quota_view: Mutex<QuotaView>,
    /// Whether pacing stretches the window right now (logged when it starts and stops).
    pacing: AtomicBool,
    members: Mutex<HashMap<String, (u64, Instant)>>,
    /// What requests handed to the workers and not settled yet will cost, by job: counted as
    /// committed, so a burst to many quiet chats cannot run past the reserve before the first
    /// deliveries are counted. (Jobs pending from before a restart are not in it.)
    unsettled: Mutex<HashMap<JobId, u64>>,
}

/// How long a mail the store refused keeps `/readyz` failing (unless a mail is stored sooner).
pub const STORE_FAILURE_MEMORY: Duration = Duration::from_secs(60);

/// Running spool tasks; [`Runner::shutdown`] stops them.
pub struct Runner {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    spool: Spool,
}

impl Spool {
    /// Whether mails' threads are kept for answers from LINE (`[replies]` on).
    pub fn keeps_threads(&self) -> bool {
        self.inner.settings.keep_threads
    }

    /// The store: the webhook keeps followers' answers in it, in the spool's own file.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Opens the store under `dir` and starts the scanner and `settings.workers` workers.
    pub fn start(
        dir: &Path,
        client: LineClient,
        settings: Settings,
        packer: Arc<dyn Packer>,
        metrics: Arc<Metrics>,
    ) -> Result<(Spool, Runner), StoreError> {
        Ok(Spool::start_with_store(Store::open(dir)?, client, settings, packer, metrics))
    }

    /// Starts the scanner and `settings.workers` workers on an open `store` (SQLite or
    /// PostgreSQL: see [`Store::open_postgres`]). On PostgreSQL it also heartbeats and takes
    /// this node's share of the channel's rate limits among the live nodes (`share`).
    pub fn start_with_store(
        store: Store,
        client: LineClient,
        settings: Settings,
        packer: Arc<dyn Packer>,
        metrics: Arc<Metrics>,
    ) -> (Spool, Runner) {
        let (ready, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            store,
            ready,
            inflight: Mutex::new(HashSet::new()),
            requeue: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
            quota: Quota::default(),
            stop: watch::channel(false).0,
            wake: Notify::new(),
            client,
            push_limit: RateLimiter::new(settings.push_per_second),
            multicast_limit: RateLimiter::new(settings.multicast_per_second),
            share_nodes: AtomicU32::new(1),
            settings,
            jitter_seed: AtomicU64::new(store::now_ms() as u64 | 1),
            metrics,
            store_failure: Mutex::new(None),
            packer,
            chats: Mutex::new(HashMap::new()),
            sealer_wake: Notify::new(),
            quota_view: Mutex::new(QuotaView::default()),
            pacing: AtomicBool::new(false),
            members: Mutex::new(HashMap::new()),
            unsettled: Mutex::new(HashMap::new()),
        });
        let spool = Spool { inner };
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let mut tasks = Vec::new();
        for _ in 0..spool.inner.settings.workers.max(1) {
            tasks.push(tokio::spawn(worker(spool.inner.clone(), rx.clone())));
        }
        tasks.push(tokio::spawn(scanner(spool.inner.clone())));
        tasks.push(tokio::spawn(sealer(spool.inner.clone())));
        tasks.push(tokio::spawn(quota_watch(spool.inner.clone())));
        if let Some((db, node, channel)) = spool.inner.store.postgres() {
            // Several gateways may share the database, and with it the channel's rate limit:
            // until the first round has counted them, this node sends at the floor, not at
            // the whole limit (`share::run` lifts it).
            share::hold_back(&spool.inner);
            tasks.push(tokio::spawn(share::run(spool.inner.clone(), db, node, channel)));
        }
        (spool.clone(), Runner { tasks, spool })
    }

    /// How many gateways the channel's rate limits are shared by right now (`share`): 1 on
    /// SQLite; on PostgreSQL the live nodes, so this one sends at most its share of
    /// `push_per_second` and `multicast_per_second`.
    pub fn rate_share_nodes(&self) -> u32 {
        self.inner.share_nodes.load(Ordering::Acquire)
    }

    /// The push and multicast rates this gateway sends at now (its share of the channel's).
    pub fn rates(&self) -> (u32, u32) {
        (self.inner.push_limit.rate(), self.inner.multicast_limit.rate())
    }

    pub fn quota_paused(&self) -> bool {
        self.inner.quota.is_paused()
    }

    /// Pending and dead jobs, read from the store (for `/metrics`).
    pub async fn counts(&self) -> Result<QueueCounts, StoreError> {
        let (pending, dead) = self.inner.store.counts().await?;
        Ok(QueueCounts { pending, dead })
    }

    /// Whether mail can be stored now (for `/readyz`). A one-row durable write proves the store
    /// takes writes; but a nearly full disk still takes a tiny write and refuses a real mail, so
    /// a mail the store refused keeps this failing for [`STORE_FAILURE_MEMORY`], or until a
    /// mail is stored again.
    pub async fn store_ready(&self) -> Result<(), NotReady> {
        let recent = self.inner.store_failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((at, error)) = recent.filter(|(at, _)| at.elapsed() < STORE_FAILURE_MEMORY) {
            return Err(NotReady::RecentFailure { secs: at.elapsed().as_secs(), error });
        }
        self.inner.store.probe().await.map_err(NotReady::Store)
    }

    /// Whether a mail of these `jobs` may be taken now, given the month's quota (see
    /// `coalesce::admit`): what is used, what held mail will cost, and what this mail adds
    /// (nothing for a chat it would join held mail in).
    pub fn admit(&self, jobs: &[NewJob], urgent: bool) -> coalesce::Admission {
        let now = store::now_ms();
        let q = self.inner.quota_now(now);
        if !q.known {
            return coalesce::Admission::Accept;
        }
        let mut quota = self.inner.planner_quota(&q);
        let chats = self.inner.chats.lock().unwrap_or_else(|e| e.into_inner());
        let mut counted: Vec<&str> = Vec::new();
        for j in jobs {
            let joins = !j.chat.is_empty() && chats.get(&j.chat).is_some_and(|c| c.chat.held);
            if joins || counted.contains(&j.chat.as_str()) {
                continue;
            }
            counted.push(&j.chat);
            quota.committed = quota.committed.saturating_add(self.inner.known_cost(j));
        }
        drop(chats);
        coalesce::admit(quota, &self.inner.settings.coalesce, urgent, now)
    }

    /// Stores a mail's jobs durably, then hands them to the workers. Jobs to a chat that had a
    /// push within its coalescing window are held instead, and go out with the chat's other
    /// held mail when the window ends; `urgent` mail is never held (and takes what is held for
    /// its chat along, at no extra cost).
    pub async fn accept(&self, mut jobs: Vec<NewJob>, urgent: bool) -> Result<Vec<JobId>, StoreError> {
        let now = store::now_ms();
        let seal_now = self.inner.hold(&mut jobs, urgent, now);
        // On PostgreSQL this gateway claims, and sends, only what fits its claim budget; the
        // rest waits in the store for any gateway's scan (see `Inner::claim_budget`).
        let claim = self.inner.claim_budget();
        let stored = self.inner.store.insert_claiming(jobs.clone(), claim).await;
        *self.inner.store_failure.lock().unwrap_or_else(|e| e.into_inner()) =
            stored.as_ref().err().map(|e| (Instant::now(), e.to_string()));
        let ids = stored?;
        let fresh: Vec<Job> =
            ids.iter().copied().zip(jobs).filter(|(_, j)| j.hold_until.is_none()).take(claim).map(|(id, j)| Job::fresh(id, j, now)).collect();
        if fresh.len() < ids.len() {
            self.inner.sealer_wake.notify_one();
        }
        self.inner.dispatch(fresh);
        for chat in seal_now {
            self.inner.seal_chat(&chat).await;
        }
        Ok(ids)
    }
}

impl Runner {
    /// Stops taking jobs, lets pushes in flight finish (up to `grace`); everything else stays
    /// pending in the store for the next start.
    pub async fn shutdown(self, grace: Duration) {
        self.spool.inner.stop.send_replace(true);
        let all = futures_join(self.tasks);
        if tokio::time::timeout(grace, all).await.is_err() {
            warn!("spool: pushes still in flight after the grace period; they stay pending");
        }
        // On PostgreSQL the last counts are still in memory (`counts_pg.rs`).
        if let Err(e) = self.spool.inner.store.flush_counts().await {
            warn!("spool: the last usage and quota counts were not written: {e}");
        }
    }
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for t in tasks {
        let _ = t.await;
    }
}

impl Inner {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once shutdown has begun (at once if it already has).
    async fn stopped(&self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|&s| s).await;
    }

    /// How many more jobs this gateway may claim now: on PostgreSQL what it can send in the
    /// next two seconds at its push rate, less what it has in hand (`policy::claim_budget`;
    /// by the push rate: most jobs are pushes, and LINE allows multicasts a tenth of it).
    /// Unbounded on SQLite, which has no claims.
    fn claim_budget(&self) -> usize {
        if !self.store.claims() {
            return usize::MAX;
        }
        let in_flight = self.inflight.lock().unwrap_or_else(|e| e.into_inner()).len();
        policy::claim_budget(self.push_limit.rate(), in_flight)
    }

    fn finish(&self, id: JobId) {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        inflight.remove(&id);
        // Claimed again by a scan meanwhile (see `scanner`): it is due, and this node's.
        if let Some(job) = self.requeue.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) {
            if !self.stopping() && inflight.insert(id) {
                let _ = self.ready.send(job);
            }
        }
    }

    /// `id` is done or dead: the next request of its chain may go.
    fn release_after(&self, id: JobId) {
        let Some(next) = self.held.lock().unwrap_or_else(|e| e.into_inner()).remove(&id) else { return };
        // The scanner may have found it first (e.g. `queue drop` removed the predecessor).
        if self.inflight.lock().unwrap_or_else(|e| e.into_inner()).insert(next.id) {
            let _ = self.ready.send(next);
        }
    }

    /// Hands fresh jobs to the workers: the first request per mail and target now, the rest
    /// behind it (see [`chains`]).
    fn dispatch(&self, jobs: Vec<Job>) {
        if self.settings.coalesce.monthly_budget > 0 || self.quota_view.lock().unwrap_or_else(|e| e.into_inner()).limit.is_some() {
            let mut unsettled = self.unsettled.lock().unwrap_or_else(|e| e.into_inner());
            for j in &jobs {
                let cost = if j.recipients > 0 { u64::from(j.recipients) } else { self.member_count_known(&j.target) };
                unsettled.insert(j.id, cost);
            }
        }
        let (first, follow) = chains(jobs);
        self.held.lock().unwrap_or_else(|e| e.into_inner()).extend(follow);
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        for job in first {
            inflight.insert(job.id);
            let _ = self.ready.send(job);
        }
    }

    /// Decides which of a mail's jobs are held, marking them with their release time; returns
    /// the chats whose held mail must be sealed at once (urgent mail arrived for them).
    fn hold(&self, jobs: &mut [NewJob], urgent: bool, now: i64) -> Vec<String> {
        let s = &self.settings.coalesce;
        if s.coalesce.is_zero() || jobs.iter().all(|j| j.chat.is_empty()) {
            return Vec::new();
        }
        let base = self.base_window(now);
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        let mut decided: HashMap<String, Option<i64>> = HashMap::new();
        let mut seal_now = Vec::new();
        for job in jobs.iter_mut().filter(|j| !j.chat.is_empty()) {
            if let Some(d) = decided.get(&job.chat) {
                job.hold_until = *d;
                continue;
            }
            let st = chats.entry(job.chat.clone()).or_default();
            let decision = if urgent && st.chat.held {
                // Held mail is there: the urgent mail joins it and all of it goes now, in one
                // request (it was going to cost one anyway).
                st.chat.urgent_held = true;
                seal_now.push(job.chat.clone());
                Some(now)
            } else if st.chat.held {
                Some(st.release_at)
            } else {
                let window = coalesce::chat_window(base, &st.chat, s);
                match st.chat.last_push_ms {
                    Some(t) if !urgent && now < t.saturating_add(window.as_millis() as i64) => {
                        st.chat.held = true;
                        st.release_at = t.saturating_add(window.as_millis() as i64);
                        st.recipients = self.known_cost(job);
                        Some(st.release_at)
                    }
                    // Quiet for a window (or urgent): it goes at once.
                    _ => {
                        st.chat = coalesce::sent(st.chat, now, false);
                        None
                    }
                }
            };
            decided.insert(job.chat.clone(), decision);
            job.hold_until = decision;
        }
        seal_now
    }

    /// The coalescing window at `now`, stretched by pacing; logs when pacing starts and stops.
    fn base_window(&self, now: i64) -> Duration {
        let s = &self.settings.coalesce;
        let q = self.quota_now(now);
        if !q.known {
            return s.coalesce;
        }
        let quota = self.planner_quota(&q);
        let w = coalesce::window(s, quota, now);
        let stretched = w > s.coalesce;
        if stretched != self.pacing.swap(stretched, Ordering::AcqRel) {
            let budget = quota.budget(s);
            if stretched {
                info!(
                    used = q.used,
                    budget = budget.unwrap_or(0),
                    reserve = s.reserve,
                    window_secs = w.as_secs(),
                    "quota pacing on: at this month's rate the LINE quota would run out before the month ends; the coalescing window is stretched"
                );
            } else {
                info!(used = q.used, budget = budget.unwrap_or(0), window_secs = w.as_secs(), "quota pacing off: the coalescing window is back to delivery.coalesce_secs");
            }
        }
        w
    }

    /// The quota view, reset to zero use when a new month has begun since it was read, and with
    /// the day's starting point moved on when a new day has.
    fn quota_now(&self, now: i64) -> QuotaView {
        let mut q = self.quota_view.lock().unwrap_or_else(|e| e.into_inner());
        roll(&mut q, now);
        *q
    }

    /// The planner's view of the quota: what is used, and what held mail will still cost (a
    /// request to each chat with mail held, counted by its recipients).
    fn planner_quota(&self, q: &QuotaView) -> coalesce::Quota {
        let chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        let held: u64 = chats.values().filter(|c| c.chat.held).map(|c| c.recipients.max(1)).sum();
        let committed = held.saturating_add(self.unsettled.lock().unwrap_or_else(|e| e.into_inner()).values().sum::<u64>());
        coalesce::Quota { limit: q.limit, used: q.used, committed, used_at_day_start: q.used_at_day_start }
    }

    /// What LINE will count for one request of `job`, as far as known without asking: a group
    /// or room by its last known member count (1 before it was ever asked).
    fn known_cost(&self, job: &NewJob) -> u64 {
        if job.recipients > 0 {
            return u64::from(job.recipients);
        }
        self.member_count_known(job.chat.strip_prefix("push:").unwrap_or(&job.target))
    }

    /// A group's or room's last known member count; 1 before it was ever asked.
    fn member_count_known(&self, id: &str) -> u64 {
        self.members.lock().unwrap_or_else(|e| e.into_inner()).get(id).map_or(1, |(n, _)| *n)
    }

    /// Seals `chat`'s held mail into requests and hands them to the workers.
    async fn seal_chat(self: &Arc<Self>, chat: &str) {
        let now = store::now_ms();
        // The chat counts as pushed from now, before the seal is written: a mail that arrives
        // meanwhile is held for the next window, never left behind in this one.
        {
            let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
            let st = chats.entry(chat.to_owned()).or_default();
            st.chat = coalesce::sent(st.chat, now, true);
        }
        match self.store.seal(chat, self.packer.clone()).await {
            Ok(jobs) => {
                let mails: u64 = jobs.iter().map(|j| u64::from(j.mails)).sum();
                if !jobs.is_empty() {
                    self.metrics.mails_coalesced(mails);
                    info!(chat, mails, requests = jobs.len(), "held mail sealed and sent together");
                }
                self.dispatch(jobs);
            }
            Err(e) => {
                warn!(chat, "cannot seal held mail, trying again in a second: {e}");
                let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
                let st = chats.entry(chat.to_owned()).or_default();
                st.chat.held = true;
                st.release_at = now + 1000;
                drop(chats);
                self.sealer_wake.notify_one();
            }
        }
    }

    /// What LINE counts for one accepted request of `job`: its recipients, a group or room by
    /// its member count (asked once an hour; 1 if LINE cannot say).
    async fn cost(&self, job: &Job) -> u64 {
        if job.recipients > 0 {
            return u64::from(job.recipients);
        }
        let cached = self.members.lock().unwrap_or_else(|e| e.into_inner()).get(&job.target).copied();
        if let Some((n, _)) = cached.filter(|(_, at)| at.elapsed() < MEMBER_COUNT_TTL) {
            return n;
        }
        match self.client.member_count(&job.target).await {
            Ok(n) => {
                self.members.lock().unwrap_or_else(|e| e.into_inner()).insert(job.target.clone(), (n, Instant::now()));
                n
            }
            Err(e) => {
                warn!(chat = job.target.as_str(), "cannot read the member count, counting 1: {e}");
                cached.map_or(1, |(n, _)| n)
            }
        }
    }

    /// Counts a delivered request: `mail2line_line_messages_total`, the quota view, and the
    /// month's usage rows (written with the outcome).
    fn counted(&self, job: &Job, messages: u64, now: i64) -> Usage {
        self.metrics.line_messages(messages);
        let month = coalesce::month_bounds(now).0;
        {
            let mut q = self.quota_view.lock().unwrap_or_else(|e| e.into_inner());
            roll(&mut q, now);
            q.used = q.used.saturating_add(messages);
            self.metrics.quota(q.limit, q.used);
        }
        Usage {
            month,
            target: job.target.clone(),
            sender: job.sender.clone(),
            messages,
            solo: messages.saturating_mul(u64::from(job.mails.max(1))),
        }
    }

    /// A number in [0, 1) for backoff jitter (xorshift; quality is irrelevant here).
    fn jitter(&self) -> f64 {
        let mut x = self.jitter_seed.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.jitter_seed.store(x, Ordering::Relaxed);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Pauses deliveries until the quota probe finds room (one probe task at a time).
    fn pause_for_quota(self: &Arc<Self>) {
        if self.quota.paused.swap(true, Ordering::AcqRel) {
            return;
        }
        warn!("LINE monthly message quota exhausted: deliveries paused, new mail is answered 452 4.2.2");
        let inner = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(inner.settings.retry.quota_probe) => {}
                    _ = inner.stopped() => return,
                }
                if inner.stopping() {
                    return;
                }
                match inner.client.quota_available().await {
                    Ok(true) => break,
                    Ok(false) => debug!("quota probe: still exhausted"),
                    Err(e) => warn!("quota probe failed: {e}"),
                }
            }
            info!("LINE message quota available again: deliveries resumed");
            // Jobs that met the exhausted quota wait for the probe interval; make them due now.
            if let Err(e) = inner.store.make_quota_jobs_due().await {
                warn!("cannot reschedule jobs after the quota pause: {e}");
            }
            inner.quota.paused.store(false, Ordering::Release);
            inner.quota.resumed.notify_waiters();
            inner.wake.notify_waiters();
        });
    }
}


async fn worker(inner: Arc<Inner>, rx: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Job>>>) {
    loop {
        let job = tokio::select! {
            biased;
            _ = inner.stopped() => None,
            j = async { rx.lock().await.recv().await } => j,
        };
        let Some(job) = job else { return };
        // While the quota is spent, hold the job (it stays in flight, so the scanner leaves it).
        while inner.quota.is_paused() {
            let resumed = inner.quota.resumed.notified();
            tokio::pin!(resumed);
            resumed.as_mut().enable();
            if !inner.quota.is_paused() {
                break;
            }
            tokio::select! {
                _ = resumed => {}
                _ = inner.stopped() => break,
            }
        }
        if inner.stopping() {
            // Not attempted: it stays pending in the store for the next start.
            inner.finish(job.id);
            return;
        }
        attempt(&inner, job).await;
    }
}

/// One delivery attempt and its bookkeeping.
async fn attempt(inner: &Arc<Inner>, job: Job) {
    if job.path.ends_with("/multicast") {
        inner.multicast_limit.acquire().await;
    } else {
        inner.push_limit.acquire().await;
    }
    let started = store::now_ms();
    let outcome = inner.client.send_raw(&job.path, job.body.clone(), Some(&job.retry_key)).await;
    let update = decide(&job, &outcome, store::now_ms(), inner.jitter(), &inner.settings.retry);
    // The line shapes are shared with `delivery.rs` ("mail accepted", "mail rejected") and
    // documented in README's monitoring section; log shippers key on them.
    match (&outcome, &update) {
        (Outcome::Delivered { request_id, duplicate, .. }, _) => {
            let latency = Duration::from_millis((store::now_ms() - job.created_at).max(0) as u64);
            let (mail, endpoint, request_id) = (job.mail_id.as_str(), job.path.as_str(), request_id.as_deref());
            let d = Delivered { mail, job: Some(job.id), endpoint, request_id, duplicate: *duplicate, attempts: job.attempts + 1, latency };
            d.record(&inner.metrics);
        }
        (_, Update::Retry { next_at, error, .. }) => {
            inner.metrics.delivery_retried();
            warn!(mail = %job.mail_id, job = job.id, attempts = job.attempts + 1, retry_in_ms = next_at - store::now_ms(), error = error.as_str(), "mail delivery failed, will retry");
        }
        (_, Update::Dead { error }) => {
            error!(mail = %job.mail_id, job = job.id, from = job.sender.as_str(), to = job.target.as_str(), attempts = job.attempts + 1, error = error.as_str(), "mail dead: kept as a dead letter, see `mail2line queue list --dead`");
        }
        _ => {}
    }
    if matches!(outcome, Outcome::Retry { reason: crate::line::outcome::RetryReason::QuotaExhausted, .. }) {
        inner.pause_for_quota();
    }
    let settled = matches!(update, Update::Done { .. } | Update::Dead { .. });
    let usage = match outcome {
        Outcome::Delivered { .. } => {
            let messages = inner.cost(&job).await;
            Some(inner.counted(&job, messages, store::now_ms()))
        }
        _ => None,
    };
    match inner.store.update_counted(job.id, started, update, usage).await {
        Ok(()) if settled => {
            inner.unsettled.lock().unwrap_or_else(|e| e.into_inner()).remove(&job.id);
            inner.release_after(job.id)
        }
        Ok(()) => {}
        // The job stays pending as it was: it will be tried again (same retry key), which is
        // safe; losing it would not be. Its chain waits for it.
        Err(e) => error!(job = job.id, "cannot record the delivery outcome: {e}"),
    }
    inner.finish(job.id);
}

/// A request of a mail LINE accepted: the one "mail delivered" line and the latency metric,
/// written by the spool's workers and by direct mode (`delivery`) alike, so both paths log the
/// same text and fields (README's monitoring section shows the line).
pub struct Delivered<'a> {
    /// The mail's id (`delivery` gives every mail one).
    pub mail: &'a str,
    /// The spool job; None in direct mode (no field then).
    pub job: Option<JobId>,
    /// The API path, e.g. `/v2/bot/message/push`.
    pub endpoint: &'a str,
    /// LINE's `X-Line-Request-Id`, if it sent one.
    pub request_id: Option<&'a str>,
    /// LINE answered 409: it already had this retry key.
    pub duplicate: bool,
    pub attempts: u32,
    /// Since the mail was accepted.
    pub latency: Duration,
}

impl Delivered<'_> {
    pub fn record(&self, metrics: &Metrics) {
        metrics.delivered(self.latency);
        info!(
            mail = %self.mail,
            job = self.job,
            endpoint = %self.endpoint,
            line_request_id = self.request_id.unwrap_or("-"),
            duplicate = self.duplicate,
            attempts = self.attempts,
            latency_ms = self.latency.as_millis() as u64,
            "mail delivered"
        );
    }
}

/// Splits a mail's fresh jobs into those that may go now (the first per target) and the rest,
/// each keyed by the job it must wait for. Jobs come in request order, so a chain is id order.
fn chains(jobs: Vec<Job>) -> (Vec<Job>, Vec<(JobId, Job)>) {
    let mut last: HashMap<(String, String), JobId> = HashMap::new();
    let (mut first, mut follow) = (Vec::new(), Vec::new());
    for job in jobs {
        match last.insert((job.mail_id.clone(), job.target.clone()), job.id) {
            None => first.push(job),
            Some(before) => follow.push((before, job)),
        }
    }
    (first, follow)
}

/// Seals each chat's held mail when its window ends. After a restart it first finds the chats
/// with mail held in the store; their windows survive the restart.
async fn sealer(inner: Arc<Inner>) {
    match inner.store.held_chats().await {
        Ok(held) => {
            let mut chats = inner.chats.lock().unwrap_or_else(|e| e.into_inner());
            for (chat, at) in held {
                let st = chats.entry(chat).or_default();
                st.chat.held = true;
                st.release_at = at;
            }
        }
        Err(e) => warn!("cannot read held mail from the spool: {e}"),
    }
    loop {
        if inner.stopping() {
            return;
        }
        let now = store::now_ms();
        let (due, next): (Vec<String>, Option<i64>) = {
            let chats = inner.chats.lock().unwrap_or_else(|e| e.into_inner());
            let held = chats.iter().filter(|(_, c)| c.chat.held);
            let due = held.clone().filter(|(_, c)| c.release_at <= now).map(|(k, _)| k.clone()).collect();
            (due, held.filter(|(_, c)| c.release_at > now).map(|(_, c)| c.release_at).min())
        };
        for chat in due {
            inner.seal_chat(&chat).await;
        }
        if !inner.quota.is_paused() {
            // Chats quiet for a long time need no memory of their last push.
            let horizon = now - inner.settings.coalesce.max_coalesce.max(inner.settings.coalesce.coalesce).as_millis() as i64 * 2;
            let mut chats = inner.chats.lock().unwrap_or_else(|e| e.into_inner());
            if chats.len() > 10_000 {
                chats.retain(|_, c| c.chat.held || c.chat.last_push_ms.is_some_and(|t| t > horizon));
            }
        }
        let wait = next.map_or(Duration::from_secs(3600), |at| Duration::from_millis((at - store::now_ms()).clamp(1, 3_600_000) as u64));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = inner.sealer_wake.notified() => {}
            _ = inner.stopped() => return,
        }
    }
}

/// Moves `q` on to the month and day holding `now`: a new month starts from zero use, a new day
/// from the use so far.
fn roll(q: &mut QuotaView, now: i64) {
    let month = coalesce::month_bounds(now).0;
    if q.month != month {
        q.month = month;
        q.used = 0;
        q.used_at_day_start = 0;
    }
    let day = coalesce::day_bounds(now).0;
    if q.day != day {
        q.day = day;
        q.used_at_day_start = q.used;
    }
}

/// Reads LINE's quota at start and every `quota_probe`, for pacing, admission, `/metrics` and
/// `mail2line quota`. Between reads the spool counts what it sends (see `Inner::counted`).
async fn quota_watch(inner: Arc<Inner>) {
    loop {
        match inner.client.quota().await {
            Ok(r) => {
                let now = store::now_ms();
                let month = coalesce::month_bounds(now).0;
                {
                    let mut q = inner.quota_view.lock().unwrap_or_else(|e| e.into_inner());
                    let day = coalesce::day_bounds(now).0;
                    // The day's starting point survives later readings of the same day; the first
                    // reading (at start) begins it.
                    let used_at_day_start = if q.known && q.day == day && q.month == month { q.used_at_day_start.min(r.used) } else { r.used };
                    *q = QuotaView { known: true, month, limit: r.limit, used: r.used, day, used_at_day_start };
                }
                inner.metrics.quota(r.limit, r.used);
                if let Err(e) = inner.store.set_quota(QuotaRow { month, limit: r.limit, used: r.used, probed_at: now }).await {
                    warn!("cannot record the quota: {e}");
                }
                debug!(limit = ?r.limit, used = r.used, "LINE quota read");
            }
            Err(e) => {
                if inner.quota_view.lock().unwrap_or_else(|e| e.into_inner()).known {
                    warn!("cannot read LINE's message quota: {e}");
                } else {
                    // Before the first reading (e.g. no v2.1 token until the first push), ask
                    // again soon rather than a probe interval later.
                    debug!("cannot read LINE's message quota yet: {e}");
                    tokio::select! {
                        _ = tokio::time::sleep(inner.settings.retry.quota_probe.min(Duration::from_secs(5))) => {}
                        _ = inner.stopped() => return,
                    }
                    continue;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.settings.retry.quota_probe) => {}
            _ = inner.stopped() => return,
        }
    }
}

/// Hands out jobs whose time has come: retries, and everything pending after a restart.
async fn scanner(inner: Arc<Inner>) {
    let mut last_purge: Option<Instant> = None;
    loop {
        if inner.stopping() {
            return;
        }
        let every = policy::purge_interval(inner.settings.dead_retention, inner.settings.scan_interval);
        if last_purge.is_none_or(|t| t.elapsed() >= every) {
            last_purge = Some(Instant::now());
            purge_dead_letters(&inner).await;
        }
        // On SQLite a scan only reads (the jobs in flight come back and are skipped below). On
        // PostgreSQL it claims, up to the claim budget.
        let limit = match inner.store.claims() {
            true => inner.claim_budget().min(policy::CLAIM_BATCH),
            false => policy::MAX_SCAN,
        };
        let mut full = false;
        if !inner.quota.is_paused() && limit > 0 {
            match inner.store.due(store::now_ms(), limit).await {
                Ok(jobs) => {
                    // A full batch of claims: there may be more, and room for them.
                    full = inner.store.claims() && jobs.len() == limit && limit == policy::CLAIM_BATCH;
                    let mut inflight = inner.inflight.lock().unwrap_or_else(|e| e.into_inner());
                    let mut sent = HashSet::new();
                    let claims = inner.store.claims();
                    for job in jobs {
                        if inflight.insert(job.id) {
                            sent.insert(job.id);
                            let _ = inner.ready.send(job);
                        } else if claims {
                            // Claimed again while its last attempt was finishing: the attempt
                            // recorded a retry that is due already, and its worker has not let go
                            // yet. This claim is now the job's; it goes when the worker lets go
                            // (`Inner::finish`), rather than after the lease.
                            inner.requeue.lock().unwrap_or_else(|e| e.into_inner()).insert(job.id, job);
                        }
                    }
                    drop(inflight);
                    // A held job the store found due on its own (its predecessor was dropped
                    // with `mail2line queue drop`) must not wait in memory forever.
                    let mut held = inner.held.lock().unwrap_or_else(|e| e.into_inner());
                    if !held.is_empty() && !sent.is_empty() {
                        held.retain(|_, j| !sent.contains(&j.id));
                    }
                }
                Err(e) => warn!("spool scan failed: {e}"),
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.settings.scan_interval) => {}
            _ = inner.wake.notified() => {}
            _ = inner.stopped() => return,
        }
    }
}

/// Deletes dead letters older than `dead_retention`, from a connection of its own (the scanner's
/// is read-only); logs how many.
async fn purge_dead_letters(inner: &Arc<Inner>) {
    let before = store::now_ms().saturating_sub(inner.settings.dead_retention.as_millis().min(i64::MAX as u128) as i64);
    match inner.store.purge_dead(before).await {
        Ok(0) => {}
        Ok(n) => info!(purged = n, "dead letters older than delivery.dead_retention deleted"),
        Err(e) => warn!("cannot delete old dead letters: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: JobId, mail: &str, target: &str) -> Job {
        let new = NewJob {
            mail_id: mail.into(),
            path: "/v2/bot/message/push".into(),
            body: "{}".into(),
            retry_key: format!("key-{id}"),
            target: target.into(),
            sender: "a@b".into(),
            ..NewJob::default()
        };
        Job::fresh(id, new, 0)
    }

    #[test]
    fn chains_send_the_first_request_per_target_and_hold_each_later_one_behind_its_predecessor() {
        let (first, follow) =
            chains(vec![job(1, "m", "U1"), job(2, "m", "U2"), job(3, "m", "U1"), job(4, "m", "U2"), job(5, "m", "U1")]);
        assert_eq!(first.iter().map(|j| j.id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(follow.iter().map(|(before, j)| (*before, j.id)).collect::<Vec<_>>(), [(1, 3), (2, 4), (3, 5)]);
    }
}
