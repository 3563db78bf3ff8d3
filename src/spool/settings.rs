//! `[delivery]` and `[quota]`, as written in the configuration file and checked when it is
//! loaded; [`super::Settings`] is what a running spool makes of them
//! ([`super::Settings::from_config`]). The durations are parsed by the check and kept, so
//! nothing parses them again.

use std::time::Duration;

use serde::Deserialize;

use super::coalesce;
use super::policy::RetryPolicy;
use crate::clock::DurationValue;

/// `[delivery] mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// 250 once the mail is durably stored; workers push it (default).
    Spool,
    /// 250 only after LINE answered 2xx, while the client waits.
    Direct,
}

/// `[delivery]`: how mail reaches LINE, and the spool's pace and patience.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    pub mode: DeliveryMode,
    /// Concurrent pushes; 0 = sized for the machine.
    pub workers: usize,
    /// Give up (dead letter) on a mail not delivered after this long.
    pub max_age: DurationValue,
    /// Dead letters are deleted this long after they died.
    pub dead_retention: DurationValue,
    /// LINE's push limit per channel.
    pub max_requests_per_second: u32,
    /// LINE's multicast limit per channel.
    pub max_multicast_per_second: u32,
    /// First retry delay in milliseconds; doubles per attempt (with jitter).
    pub retry_base_ms: u64,
    /// Longest retry delay in seconds.
    pub retry_max_secs: u64,
    /// How often a paused spool asks LINE whether the monthly quota has room again.
    pub quota_probe_secs: u64,
    /// How often the spool looks for jobs whose retry time has come, in milliseconds.
    pub scan_interval_ms: u64,
    /// After a push to a chat, further mail to it is held this long and then goes out in one
    /// request (LINE bills requests, not bubbles); 0 turns coalescing off.
    pub coalesce_secs: u64,
    /// `max_age` parsed; filled in by [`Delivery::validate`].
    #[serde(skip)]
    pub max_age_parsed: Duration,
    /// `dead_retention` parsed; filled in by [`Delivery::validate`].
    #[serde(skip)]
    pub dead_retention_parsed: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery {
            mode: DeliveryMode::Spool,
            workers: 0,
            max_age: DurationValue::Text("3d".into()),
            dead_retention: DurationValue::Text("30d".into()),
            max_requests_per_second: 2000,
            max_multicast_per_second: 200,
            retry_base_ms: 1000,
            retry_max_secs: 3600,
            quota_probe_secs: 300,
            scan_interval_ms: 1000,
            coalesce_secs: 10,
            max_age_parsed: Duration::from_secs(3 * 86400),
            dead_retention_parsed: Duration::from_secs(30 * 86400),
        }
    }
}

impl Delivery {
    /// Workers to run: as configured, or 64 per core (pushes wait on the network, not the CPU).
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        64 * std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
    }

    /// `dead_retention`, kept parsed; `(key, message)` problems.
    pub fn validate_dead_retention(&mut self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        match self.dead_retention.parse() {
            Ok(d) if d < Duration::from_secs(1) => p.push(("delivery.dead_retention".to_owned(), "must be at least 1s".into())),
            Ok(d) => self.dead_retention_parsed = d,
            Err(e) => p.push(("delivery.dead_retention".to_owned(), e.to_string())),
        }
        p
    }

    /// The rest of `[delivery]` (`max_age` kept parsed) and `[quota]`, which is checked against
    /// it; `(key, message)` problems.
    pub fn validate(&mut self, quota: &Quota) -> Vec<(String, String)> {
        let mut p = Vec::new();
        match self.max_age.parse() {
            Ok(d) if d < Duration::from_secs(60) => p.push(("delivery.max_age".to_owned(), "must be at least one minute".into())),
            Ok(d) => self.max_age_parsed = d,
            Err(e) => p.push(("delivery.max_age".to_owned(), e.to_string())),
        }
        if self.max_requests_per_second == 0 {
            p.push(("delivery.max_requests_per_second".to_owned(), "must be at least 1".into()));
        }
        if self.max_multicast_per_second == 0 {
            p.push(("delivery.max_multicast_per_second".to_owned(), "must be at least 1".into()));
        }
        if self.retry_base_ms == 0 || self.retry_max_secs == 0 {
            p.push(("delivery.retry_base_ms".to_owned(), "retry delays must be at least 1".into()));
        }
        if self.scan_interval_ms == 0 || self.quota_probe_secs == 0 {
            p.push(("delivery.scan_interval_ms".to_owned(), "intervals must be at least 1".into()));
        }
        if quota.pacing && self.coalesce_secs > 0 && quota.max_coalesce_secs < self.coalesce_secs {
            p.push((
                "quota.max_coalesce_secs".to_owned(),
                format!("must be at least delivery.coalesce_secs ({}): pacing only ever stretches the window", self.coalesce_secs),
            ));
        }
        if quota.monthly_budget > 0 && quota.reserve >= quota.monthly_budget {
            p.push(("quota.reserve".to_owned(), format!("must be below quota.monthly_budget ({})", quota.monthly_budget)));
        }
        p
    }
}

/// `[quota]`: making LINE's monthly message quota last (see `spool::coalesce`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// 0: LINE's own limit; else a lower cap (other tools share the channel).
    pub monthly_budget: u64,
    /// The last messages of the month, kept for urgent mail.
    pub reserve: u64,
    /// Stretch the coalescing window when the month's forecast runs out early.
    pub pacing: bool,
    /// How far pacing may stretch the window, in seconds.
    pub max_coalesce_secs: u64,
    /// While the month runs over its pace, routine mail beyond today's share of what is left
    /// gets 452 until 00:00 JST.
    pub daily_share: bool,
}

impl Default for Quota {
    fn default() -> Self {
        Quota { monthly_budget: 0, reserve: 10, pacing: true, max_coalesce_secs: 3600, daily_share: true }
    }
}

impl super::Settings {
    /// `[delivery]` and `[quota]` as the spool takes them (checked and parsed when the
    /// configuration was loaded).
    pub fn from_config(d: &Delivery, quota: &Quota) -> Self {
        super::Settings {
            workers: d.worker_count(),
            push_per_second: d.max_requests_per_second,
            multicast_per_second: d.max_multicast_per_second,
            retry: RetryPolicy {
                base: Duration::from_millis(d.retry_base_ms),
                max: Duration::from_secs(d.retry_max_secs),
                max_age: d.max_age_parsed,
                quota_probe: Duration::from_secs(d.quota_probe_secs),
            },
            scan_interval: Duration::from_millis(d.scan_interval_ms),
            dead_retention: d.dead_retention_parsed,
            coalesce: coalesce::Settings {
                coalesce: Duration::from_secs(d.coalesce_secs),
                pacing: quota.pacing,
                max_coalesce: Duration::from_secs(quota.max_coalesce_secs),
                reserve: quota.reserve,
                monthly_budget: quota.monthly_budget,
                daily_share: quota.daily_share,
            },
            // `[replies]` is not the spool's table; `serve` turns this on when it is set.
            keep_threads: false,
        }
    }
}
