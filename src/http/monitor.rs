//! `GET /metrics`, `/healthz` and `/readyz` on the `[http]` listener.
//!
//! * `/healthz`: 200 `ok` while the process answers at all (a liveness probe: restart if not).
//! * `/readyz`: 200 when the gateway can take mail and get it to LINE right now; otherwise 503
//!   with one line per check saying what failed and what to do. The checks: the store takes a
//!   durable write and has not refused a mail lately (the spool; the follower registry in direct
//!   and dry-run modes), the LINE
//!   token is usable (see [`LineClient::token_ready`]; always in a dry run), and deliveries are
//!   not paused for the monthly quota.
//! * `/metrics`: [`Metrics::render`] with the state read now (queue depth from the spool file).
//!
//! The verdict is a pure function of the check results ([`verdict`]), unit-tested here; the
//! checks themselves run against the real store and client in `tests/metrics.rs`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::warn;

use crate::followers::Registry;
use crate::line::LineClient;
use crate::metrics::{Metrics, Snapshot, CONTENT_TYPE};
use crate::spool::Spool;

/// Longest a readiness check may take before it counts as failed: a probe that hangs must not
/// hang the prober.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the monitoring endpoints look at.
pub struct Monitor {
    metrics: Arc<Metrics>,
    spool: Option<Spool>,
    /// `None` for the gateway's own monitor with `[[channels]]` ([`Monitor::of_channels`]):
    /// each channel has its registry, and the unnamed channel has none.
    registry: Option<Arc<Registry>>,
    /// `None` in a dry run.
    line: Option<LineClient>,
    /// `[[channels]]`: each channel's own monitor (its series, spool, registry and client),
    /// checked and exported beside this one's.
    channels: Vec<(String, Monitor)>,
}

impl Monitor {
    pub fn new(metrics: Arc<Metrics>, spool: Option<Spool>, registry: Arc<Registry>, line: Option<LineClient>) -> Monitor {
        Monitor { metrics, spool, registry: Some(registry), line, channels: Vec::new() }
    }

    /// The gateway's own monitor with `[[channels]]`: its series (SMTP, HTTP) only, no store or
    /// client of its own; the channels are added with [`Monitor::with_channel`] and are what
    /// `/readyz` checks.
    pub fn of_channels(metrics: Arc<Metrics>) -> Monitor {
        Monitor { metrics, spool: None, registry: None, line: None, channels: Vec::new() }
    }

    /// Adds a LINE channel of `[[channels]]`: `/readyz` checks it too (its problems named by
    /// the channel) and `/metrics` exports its series (`channel="<name>"`).
    pub fn with_channel(mut self, name: &str, channel: Monitor) -> Monitor {
        self.channels.push((name.to_owned(), channel));
        self
    }

    /// This monitor's state for `/metrics`.
    async fn snapshot(&self) -> Snapshot {
        let queue = match &self.spool {
            Some(spool) => match spool.counts().await {
                Ok(c) => Some(c),
                Err(e) => {
                    warn!("metrics: cannot count the spool's jobs: {e}");
                    None
                }
            },
            None => None,
        };
        Snapshot {
            queue,
            quota_paused: self.spool.as_ref().is_some_and(Spool::quota_paused),
            token_valid: self.line.as_ref().is_none_or(LineClient::token_ok),
        }
    }

    /// Each check's problem over this monitor and its channels, a channel's named by it.
    async fn checks(&self) -> [Check; 3] {
        // With channels, this monitor holds only the gateway's own series: the channels are
        // what can be unready.
        let (mut store, mut token, mut quota) = if self.channels.is_empty() {
            (bounded(self.store_check()).await, bounded(self.token_check()).await, self.quota_check())
        } else {
            (None, None, None)
        };
        for (name, ch) in &self.channels {
            let add = |slot: &mut Option<String>, problem: Option<String>| {
                if let Some(p) = problem {
                    let p = format!("channel {name}: {p}");
                    *slot = Some(match slot.take() {
                        Some(before) => format!("{before}; {p}"),
                        None => p,
                    });
                }
            };
            add(&mut store, bounded(ch.store_check()).await);
            add(&mut token, bounded(ch.token_check()).await);
            add(&mut quota, ch.quota_check());
        }
        [Check { name: "store", problem: store }, Check { name: "token", problem: token }, Check { name: "quota", problem: quota }]
    }

    async fn store_check(&self) -> Option<String> {
        let result = match &self.spool {
            Some(spool) => spool.store_ready().await.map_err(|e| format!("the spool cannot store mail ({e})")),
            // Inline on both backends: one short local statement on SQLite (as the webhook's
            // writes are), one pooled network round trip on PostgreSQL.
            None => self.registry.as_ref()?.probe_async().await.map_err(|e| format!("the follower registry cannot be written ({e})")),
        };
        let hint = if self.registry.as_ref().is_some_and(|r| r.is_postgres()) {
            "check that PostgreSQL (storage.url) is up and reachable from this host; mail is answered 451 meanwhile"
        } else {
            "free disk space on storage.dir or fix its permissions"
        };
        result.err().map(|e| format!("{e}; {hint}"))
    }

    async fn token_check(&self) -> Option<String> {
        let line = self.line.as_ref()?;
        line.token_ready().await.err().map(|e| e.to_string())
    }

    fn quota_check(&self) -> Option<String> {
        let paused = self.spool.as_ref().is_some_and(Spool::quota_paused);
        paused.then(|| {
            "LINE's monthly message quota is used up: deliveries are paused and new mail is answered 452 4.2.2 until LINE \
             reports room again (checked every delivery.quota_probe_secs); raise the message limit in LINE Official \
             Account Manager or wait for the next month"
                .to_owned()
        })
    }
}

/// One readiness check's name and, when it failed, what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub problem: Option<String>,
}

/// The answer to `/readyz`: 200 when every check passed, else 503; the body lists every check.
pub fn verdict(checks: &[Check]) -> (u16, String) {
    let ready = checks.iter().all(|c| c.problem.is_none());
    let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
    for c in checks {
        body.push_str(c.name);
        body.push_str(": ");
        body.push_str(c.problem.as_deref().unwrap_or("ok"));
        body.push('\n');
    }
    (if ready { 200 } else { 503 }, body)
}

/// Runs `check`, turning a timeout into a failure.
async fn bounded(check: impl std::future::Future<Output = Option<String>>) -> Option<String> {
    tokio::time::timeout(CHECK_TIMEOUT, check)
        .await
        .unwrap_or_else(|_| Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())))
}

pub async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n".to_owned())
}

pub async fn readyz(State(m): State<Arc<Monitor>>) -> Response {
    let checks = m.checks().await;
    let (status, body) = verdict(&checks);
    if status != 200 {
        warn!("readyz: {}", body.trim_end().replace('\n', "; "));
    }
    plain(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), body)
}

pub async fn metrics(State(m): State<Arc<Monitor>>) -> Response {
    let now = m.snapshot().await;
    let mut channels = Vec::with_capacity(m.channels.len());
    for (_, ch) in &m.channels {
        channels.push((ch.metrics.as_ref(), ch.snapshot().await));
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], m.metrics.render_with(&now, &channels)).into_response()
}

fn plain(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passed() {
        let ok = |name| Check { name, problem: None };
        assert_eq!(verdict(&[ok("store"), ok("token")]), (200, "ready\nstore: ok\ntoken: ok\n".to_owned()));
        let (status, body) = verdict(&[ok("store"), Check { name: "quota", problem: Some("used up; wait".into()) }]);
        assert_eq!(status, 503);
        assert_eq!(body, "not ready\nstore: ok\nquota: used up; wait\n");
    }
}
