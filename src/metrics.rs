//! Every Prometheus series the gateway exports, in one registry this module owns.
//!
//! Counters and the latency histogram move where things happen (the SMTP driver, the delivery
//! layer, the spool workers, the LINE client), through the methods here so label names and
//! values stay in one place. State that lives elsewhere — queue depth and dead jobs in the
//! spool's SQLite file, the quota pause, the token's health — is read when Prometheus scrapes
//! ([`Metrics::render`] with a [`Snapshot`]) rather than mirrored in counters: `mail2line queue
//! retry/drop` change the spool from another process, and a mirrored gauge would drift from
//! what is on disk.
//!
//! Labels that name another module's concepts come in as plain `&'static str` values that
//! module owns (the refusal reasons are `smtp::rejection::Reason::as_str`), so this foundation
//! module imports no one.
//!
//! Why the `prometheus` crate: it has a registry object (so this is an `Arc<Metrics>` passed to
//! whoever counts, not a process-wide recorder as with `metrics` + exporter), typed counters,
//! gauges and histograms with mandatory HELP text, and the text encoder; with default features
//! off it pulls in no protobuf and no HTTP server of its own (axum serves `/metrics`).

use std::time::Duration;

use prometheus::{Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Why a connection was turned away before the SMTP session started (the `reason` label of
/// `mail2line_smtp_sessions_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// Not in `[smtp] allowed_clients` (554 5.7.1).
    NotAllowed,
    /// `[smtp] max_sessions_per_ip` reached (421 4.7.0).
    TooManyFromAddress,
    /// `[smtp] max_sessions` reached (421 4.3.2).
    TooMany,
}

impl SessionRefusal {
    pub const ALL: [SessionRefusal; 3] = [SessionRefusal::NotAllowed, SessionRefusal::TooManyFromAddress, SessionRefusal::TooMany];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionRefusal::NotAllowed => "not_allowed",
            SessionRefusal::TooManyFromAddress => "too_many_per_ip",
            SessionRefusal::TooMany => "too_many_sessions",
        }
    }
}

/// How a request to LINE ended, for the `status` label of `mail2line_line_pushes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStatus {
    /// LINE answered with this HTTP status.
    Http(u16),
    /// No answer: connection refused, timeout, connection lost.
    NetworkError,
    /// Not sent: no channel access token could be had (v2.1/stateless issue failed).
    NoToken,
}

impl PushStatus {
    pub fn label(self) -> String {
        match self {
            PushStatus::Http(code) => code.to_string(),
            PushStatus::NetworkError => "error".into(),
            PushStatus::NoToken => "no_token".into(),
        }
    }
}

/// The `endpoint` label for an API path: its last segment (`/v2/bot/message/push` → `push`).
pub fn endpoint_label(api_path: &str) -> &str {
    api_path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("unknown")
}

/// Delivery latency buckets, in seconds: from a fast push (tens of ms) to a mail that waited out
/// a LINE outage or a quota pause (hours to a day).
const LATENCY_BUCKETS: [f64; 17] =
    [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 21600.0, 86400.0];

/// State read at scrape time (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Pending and dead jobs in the spool; `None` without a spool (direct and dry-run modes)
    /// or when the spool could not be read (the gauges keep their last value).
    pub queue: Option<QueueCounts>,
    pub quota_paused: bool,
    pub token_valid: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub pending: i64,
    pub dead: i64,
}

/// The outcomes `mail2line_answers_total` counts, each shown from the start (at 0).
pub const ANSWER_OUTCOMES: [&str; 4] = ["sent", "retried", "dead", "dropped"];

/// The registry and every series in it.
pub struct Metrics {
    registry: Registry,
    smtp_sessions: IntCounter,
    smtp_sessions_active: IntGauge,
    smtp_sessions_refused: IntCounterVec,
    smtp_auth_failures: IntCounter,
    mails_accepted: IntCounter,
    mails_rejected: IntCounterVec,
    line_pushes: IntCounterVec,
    delivery_retries: IntCounter,
    delivery_latency: Histogram,
    queue_depth: IntGauge,
    dead_jobs: IntGauge,
    quota_paused: IntGauge,
    token_valid: IntGauge,
    line_messages: IntCounter,
    mails_coalesced: IntCounter,
    text_cut: IntCounter,
    quota_limit: IntGauge,
    quota_used: IntGauge,
    answers: IntCounterVec,
    rate_share_nodes: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::with_registry(Registry::new())
    }

    /// The series of one LINE channel of `[[channels]]`: every one carries `channel="<name>"`
    /// (a constant label of its own registry), and [`Metrics::render_with`] exports them beside
    /// the gateway's. The unnamed `[line]` channel uses [`Metrics::new`]'s series, unlabelled,
    /// as before.
    pub fn for_channel(name: &str) -> Metrics {
        let labels = std::collections::HashMap::from([("channel".to_owned(), name.to_owned())]);
        // A label value is any string; the registry refuses only a bad label name, and
        // `channel` is a good one. Should it ever refuse, the series go unlabelled.
        let m = Metrics::with_registry(Registry::new_custom(None, Some(labels)).unwrap_or_default());
        // Sessions and logins belong to the listener, which all channels share: only the
        // gateway's own series count them.
        for series in [
            Box::new(m.smtp_sessions.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.smtp_sessions_active.clone()),
            Box::new(m.smtp_sessions_refused.clone()),
            Box::new(m.smtp_auth_failures.clone()),
        ] {
            let _ = m.registry.unregister(series);
        }
        m
    }

    fn with_registry(registry: Registry) -> Metrics {
        // Names, help texts and label names below are fixed and distinct; registering them can
        // only fail on a programming error, which the unit tests would show at once.
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone())).expect("series names are fixed and distinct");
            c
        }
        let counter = |name: &str, help: &str| reg(&registry, IntCounter::new(name, help).expect("valid series"));
        let gauge = |name: &str, help: &str| reg(&registry, IntGauge::new(name, help).expect("valid series"));
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| reg(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid series"));
        let m = Metrics {
            smtp_sessions: counter("mail2line_smtp_sessions_total", "SMTP sessions started (connections admitted)."),
            smtp_sessions_active: gauge("mail2line_smtp_sessions_active", "SMTP sessions open right now."),
            smtp_sessions_refused: counter_vec(
                "mail2line_smtp_sessions_refused_total",
                "Connections turned away before the SMTP session, by reason (not_allowed, too_many_per_ip, too_many_sessions).",
                &["reason"],
            ),
            smtp_auth_failures: counter("mail2line_smtp_auth_failures_total", "Failed SMTP AUTH attempts (wrong user or password)."),
            mails_accepted: counter(
                "mail2line_mails_accepted_total",
                "Mails answered 250 after DATA (spool: stored on disk; direct: LINE accepted; dry run: logged).",
            ),
            mails_rejected: counter_vec(
                "mail2line_mails_rejected_total",
                "Mails or single recipients refused with a 4xx/5xx reply, by reason.",
                &["reason"],
            ),
            line_pushes: counter_vec(
                "mail2line_line_pushes_total",
                "Message requests sent to LINE, by endpoint (push, multicast, reply) and status (HTTP status code; error = no answer; no_token = not sent for want of a token).",
                &["endpoint", "status"],
            ),
            delivery_retries: counter(
                "mail2line_delivery_retries_total",
                "Spool deliveries that failed and were scheduled to be tried again.",
            ),
            delivery_latency: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "mail2line_delivery_latency_seconds",
                        "Time from a mail's acceptance by SMTP to LINE's 2xx for each of its requests, retries included.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("valid series"),
            ),
            queue_depth: gauge("mail2line_queue_depth", "Spool jobs waiting to be delivered (pending, including those waiting for a retry)."),
            dead_jobs: gauge("mail2line_dead_jobs", "Spool jobs given up on (dead letters); see `mail2line queue list --dead`."),
            quota_paused: gauge(
                "mail2line_quota_paused",
                "1 while deliveries are paused because LINE's monthly message quota is used up, else 0.",
            ),
            token_valid: gauge(
                "mail2line_line_token_valid",
                "0 when LINE refused the channel access token or none could be issued on the last try, else 1.",
            ),
            line_messages: counter(
                "mail2line_line_messages_total",
                "LINE messages this gateway sent, counted as LINE bills them: one per recipient of each accepted push or multicast (a group or room by its members), whatever the bubbles in it.",
            ),
            mails_coalesced: counter(
                "mail2line_mails_coalesced_total",
                "Mails that were held for a chat's coalescing window and went out in one request with the chat's other held mail.",
            ),
            text_cut: counter(
                "mail2line_text_cut_total",
                "Mails whose text was longer than one LINE request holds (5 bubbles of 5,000 UTF-16 units); the rest was cut and marked.",
            ),
            quota_limit: gauge(
                "mail2line_quota_limit",
                "LINE's monthly message limit as last read (GET /v2/bot/message/quota); -1 when LINE sets none, or before the first read.",
            ),
            quota_used: gauge(
                "mail2line_quota_used",
                "LINE messages used this month: LINE's figure at the last read plus what this gateway sent since.",
            ),
            answers: counter_vec(
                "mail2line_answers_total",
                "Followers' answers from LINE ([replies]), by outcome: sent (the relay took the mail), retried, dead (given up after max_age), dropped (no mail to answer and no [replies] to).",
                &["outcome"],
            ),
            rate_share_nodes: gauge(
                "mail2line_rate_share_nodes",
                "The gateways sharing the LINE channel's rate limits (live nodes on PostgreSQL; 1 on SQLite): this one sends at most push_per_second and multicast_per_second divided by it.",
            ),
            registry,
        };
        for outcome in ANSWER_OUTCOMES {
            m.answers.with_label_values(&[outcome]);
        }
        m.quota_limit.set(-1);
        let info = IntGaugeVec::new(Opts::new("mail2line_build_info", "Always 1; the version label says which mail2line runs."), &["version"])
            .expect("valid series");
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        reg(&m.registry, info);
        for r in SessionRefusal::ALL {
            m.smtp_sessions_refused.with_label_values(&[r.as_str()]);
        }
        m.token_valid.set(1);
        m.rate_share_nodes.set(1);
        m
    }

    /// An admitted SMTP connection; the active gauge goes down when the guard is dropped.
    pub fn session_opened(&self) -> SessionGuard {
        self.smtp_sessions.inc();
        self.smtp_sessions_active.inc();
        SessionGuard(self.smtp_sessions_active.clone())
    }

    pub fn session_refused(&self, why: SessionRefusal) {
        self.smtp_sessions_refused.with_label_values(&[why.as_str()]).inc();
    }

    pub fn auth_failed(&self) {
        self.smtp_auth_failures.inc();
    }

    pub fn mail_accepted(&self) {
        self.mails_accepted.inc();
    }

    /// Exports `mail2line_mails_rejected_total` for each of these `reason` labels at 0, so
    /// `rate()` and alerts see the first refusal instead of a series appearing out of nowhere.
    /// Called once at start with every reason there is (by `delivery::Gateway::new`).
    pub fn expect_rejections(&self, reasons: impl IntoIterator<Item = &'static str>) {
        for reason in reasons {
            self.mails_rejected.with_label_values(&[reason]);
        }
    }

    /// A mail or recipient refused; `reason` is the stable label (`Reason::as_str`).
    pub fn mail_rejected(&self, reason: &'static str) {
        self.mails_rejected.with_label_values(&[reason]).inc();
    }

    /// One request to LINE at `api_path`, and how it ended.
    pub fn line_request(&self, api_path: &str, status: PushStatus) {
        self.line_pushes.with_label_values(&[endpoint_label(api_path), &status.label()]).inc();
    }

    pub fn delivery_retried(&self) {
        self.delivery_retries.inc();
    }

    /// A request LINE accepted, and what LINE counted for it.
    pub fn line_messages(&self, n: u64) {
        self.line_messages.inc_by(n);
    }

    pub fn mails_coalesced(&self, n: u64) {
        self.mails_coalesced.inc_by(n);
    }

    pub fn text_cut(&self) {
        self.text_cut.inc();
    }

    /// The month's quota as the spool knows it (limit None: LINE sets none).
    pub fn quota(&self, limit: Option<u64>, used: u64) {
        self.quota_limit.set(limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64));
        self.quota_used.set(used.min(i64::MAX as u64) as i64);
    }

    /// A request of a mail reached LINE `latency` after the mail was accepted.
    /// The rate limits are now shared by `nodes` gateways (`spool/share.rs`).
    pub fn rate_share_nodes(&self, nodes: u32) {
        self.rate_share_nodes.set(i64::from(nodes));
    }

    /// A follower's answer came to `outcome` (one of [`ANSWER_OUTCOMES`]).
    pub fn answer(&self, outcome: &'static str) {
        self.answers.with_label_values(&[outcome]).inc();
    }

    pub fn delivered(&self, latency: Duration) {
        self.delivery_latency.observe(latency.as_secs_f64());
    }

    /// The registry in Prometheus' text format, with the scrape-time state of `now`.
    pub fn render(&self, now: &Snapshot) -> String {
        self.render_with(now, &[])
    }

    /// [`Metrics::render`] and the series of each channel (see [`Metrics::for_channel`]) with
    /// its own state, as one exposition: a series name appears once, with every channel's
    /// samples under it.
    pub fn render_with(&self, now: &Snapshot, channels: &[(&Metrics, Snapshot)]) -> String {
        let mut families = self.gather(now);
        for (metrics, snapshot) in channels {
            for family in metrics.gather(snapshot) {
                match families.iter_mut().find(|f| f.name() == family.name()) {
                    Some(f) => f.mut_metric().extend(family.get_metric().iter().cloned()),
                    None => families.push(family),
                }
            }
        }
        let mut out = Vec::new();
        // Encoding into a Vec fails only on an I/O error of the Vec, which cannot happen.
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            return format!("# cannot encode the metrics: {e}\n");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn gather(&self, now: &Snapshot) -> Vec<prometheus::proto::MetricFamily> {
        if let Some(q) = now.queue {
            self.queue_depth.set(q.pending);
            self.dead_jobs.set(q.dead);
        }
        self.quota_paused.set(now.quota_paused as i64);
        self.token_valid.set(now.token_valid as i64);
        self.registry.gather()
    }
}

/// Keeps `mail2line_smtp_sessions_active` up while a session runs.
pub struct SessionGuard(IntGauge);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channels_series_carry_its_label_beside_the_gateways_unlabelled_ones() {
        let gateway = Metrics::new();
        let shop = Metrics::for_channel("shop-a");
        gateway.session_opened();
        shop.line_request("/v2/bot/message/push", PushStatus::Http(200));
        gateway.line_request("/v2/bot/message/push", PushStatus::Http(500));
        let now = Snapshot { queue: None, quota_paused: false, token_valid: true };
        let paused = Snapshot { queue: Some(QueueCounts { pending: 3, dead: 1 }), quota_paused: true, token_valid: true };
        let text = gateway.render_with(&now, &[(&shop, paused)]);
        assert!(text.contains("mail2line_line_pushes_total{endpoint=\"push\",status=\"500\"} 1"), "{text}");
        assert!(text.contains("mail2line_line_pushes_total{endpoint=\"push\",status=\"200\",channel=\"shop-a\"} 1"), "{text}");
        assert!(text.contains("mail2line_quota_paused{channel=\"shop-a\"} 1") && text.contains("mail2line_queue_depth{channel=\"shop-a\"} 3"), "{text}");
        // One family each: one HELP line, the channel's samples under the gateway's.
        assert_eq!(text.matches("# HELP mail2line_line_pushes_total").count(), 1, "{text}");
        // The listener's series are the gateway's only.
        assert!(text.contains("mail2line_smtp_sessions_total 1") && !text.contains("mail2line_smtp_sessions_total{channel"), "{text}");
    }

    /// The value of the sample line `name{labels} value` in `text`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn every_series_has_help_and_starts_at_zero() {
        let m = Metrics::new();
        m.expect_rejections(["relay_denied", "quota"]);
        let text = m.render(&Snapshot { token_valid: true, ..Snapshot::default() });
        for name in [
            "mail2line_smtp_sessions_total",
            "mail2line_smtp_sessions_active",
            "mail2line_smtp_sessions_refused_total",
            "mail2line_smtp_auth_failures_total",
            "mail2line_mails_accepted_total",
            "mail2line_mails_rejected_total",
            "mail2line_delivery_retries_total",
            "mail2line_delivery_latency_seconds",
            "mail2line_queue_depth",
            "mail2line_dead_jobs",
            "mail2line_quota_paused",
            "mail2line_line_token_valid",
            "mail2line_build_info",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} has no HELP:\n{text}");
        }
        assert_eq!(sample(&text, "mail2line_mails_rejected_total{reason=\"relay_denied\"}"), Some(0.0));
        assert_eq!(sample(&text, "mail2line_smtp_sessions_refused_total{reason=\"too_many_per_ip\"}"), Some(0.0));
        assert_eq!(sample(&text, "mail2line_delivery_latency_seconds_count"), Some(0.0));
        assert_eq!(sample(&text, "mail2line_line_token_valid"), Some(1.0));
    }

    #[test]
    fn counters_gauges_and_the_histogram_move() {
        let m = Metrics::new();
        {
            let _a = m.session_opened();
            let _b = m.session_opened();
            let text = m.render(&Snapshot::default());
            assert_eq!(sample(&text, "mail2line_smtp_sessions_active"), Some(2.0));
        }
        m.mail_accepted();
        m.mail_rejected("quota");
        m.mail_rejected("quota");
        m.line_request("/v2/bot/message/push", PushStatus::Http(200));
        m.line_request("/v2/bot/message/multicast", PushStatus::NetworkError);
        m.line_request("/v2/bot/message/push", PushStatus::NoToken);
        m.delivered(Duration::from_millis(30));
        m.delivered(Duration::from_secs(7200));
        m.delivery_retried();
        let text = m.render(&Snapshot { queue: Some(QueueCounts { pending: 5, dead: 2 }), quota_paused: true, token_valid: false });
        assert_eq!(sample(&text, "mail2line_smtp_sessions_total"), Some(2.0));
        assert_eq!(sample(&text, "mail2line_smtp_sessions_active"), Some(0.0));
        assert_eq!(sample(&text, "mail2line_mails_accepted_total"), Some(1.0));
        assert_eq!(sample(&text, "mail2line_mails_rejected_total{reason=\"quota\"}"), Some(2.0));
        assert_eq!(sample(&text, "mail2line_line_pushes_total{endpoint=\"push\",status=\"200\"}"), Some(1.0));
        assert_eq!(sample(&text, "mail2line_line_pushes_total{endpoint=\"multicast\",status=\"error\"}"), Some(1.0));
        assert_eq!(sample(&text, "mail2line_line_pushes_total{endpoint=\"push\",status=\"no_token\"}"), Some(1.0));
        assert_eq!(sample(&text, "mail2line_delivery_latency_seconds_count"), Some(2.0));
        assert_eq!(sample(&text, "mail2line_delivery_latency_seconds_bucket{le=\"0.05\"}"), Some(1.0));
        assert_eq!(sample(&text, "mail2line_delivery_latency_seconds_bucket{le=\"3600\"}"), Some(1.0));
        assert_eq!(sample(&text, "mail2line_delivery_latency_seconds_bucket{le=\"21600\"}"), Some(2.0));
        assert_eq!(sample(&text, "mail2line_delivery_retries_total"), Some(1.0));
        assert_eq!(sample(&text, "mail2line_queue_depth"), Some(5.0));
        assert_eq!(sample(&text, "mail2line_dead_jobs"), Some(2.0));
        assert_eq!(sample(&text, "mail2line_quota_paused"), Some(1.0));
        assert_eq!(sample(&text, "mail2line_line_token_valid"), Some(0.0));
        // Without a spool reading the queue gauges keep their last value.
        let text = m.render(&Snapshot::default());
        assert_eq!(sample(&text, "mail2line_queue_depth"), Some(5.0));
    }

    #[test]
    fn labels() {
        assert_eq!(endpoint_label("/v2/bot/message/push"), "push");
        assert_eq!(endpoint_label("/v2/bot/message/reply/"), "reply");
        assert_eq!(endpoint_label(""), "unknown");
        assert_eq!(PushStatus::Http(429).label(), "429");
        let names: std::collections::HashSet<_> = SessionRefusal::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), SessionRefusal::ALL.len());
    }
}
