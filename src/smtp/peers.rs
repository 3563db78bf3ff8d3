//! Per-client-address limits: concurrent sessions, mails a minute, and the growing delay after
//! failed AUTH. One table shared by every listener (plain and implicit TLS).
//!
//! Clock-driven decisions take `now` as an argument so they are unit-tested without sleeping;
//! the server passes `Instant::now()`. State for an address is dropped once it has no sessions
//! and nothing left to remember, so the table stays as small as the set of active clients.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::access::canonical;

/// The limits, from `[smtp]`; 0 turns a limit off.
#[derive(Debug, Clone)]
pub struct PeerLimits {
    /// `max_sessions_per_ip`.
    pub sessions: usize,
    /// `max_mails_per_minute_per_ip`.
    pub mails_per_minute: u32,
    /// `auth_failure_delay_ms`: the delay after the first failed AUTH; it doubles with each
    /// further failure from the same address, up to [`MAX_AUTH_DELAY`].
    pub auth_failure_delay: Duration,
}

/// The longest wait before a 535.
pub const MAX_AUTH_DELAY: Duration = Duration::from_secs(30);

/// Failed AUTHs are forgotten after this long without another.
pub const AUTH_FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
struct Peer {
    sessions: usize,
    /// GCRA theoretical arrival time of the next mail.
    mail_tat: Option<Instant>,
    auth_failures: u32,
    last_auth_failure: Option<Instant>,
}

impl Peer {
    fn forgettable(&self, now: Instant) -> bool {
        self.sessions == 0
            && self.mail_tat.is_none_or(|t| t <= now)
            && self.last_auth_failure.is_none_or(|t| now.duration_since(t) >= AUTH_FAILURE_MEMORY)
    }
}

pub struct Peers {
    limits: PeerLimits,
    table: Mutex<HashMap<IpAddr, Peer>>,
}

/// Holds one session slot of an address; released on drop.
pub struct SessionSlot {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut table = self.peers.lock();
        if let Some(p) = table.get_mut(&self.ip) {
            p.sessions = p.sessions.saturating_sub(1);
            if p.forgettable(now) {
                table.remove(&self.ip);
            }
        }
    }
}

impl Peers {
    pub fn new(limits: PeerLimits) -> Arc<Peers> {
        Arc::new(Peers { limits, table: Mutex::new(HashMap::new()) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Peer>> {
        // A panic elsewhere while holding the lock leaves plain counters behind: still usable.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a session slot for `ip`, or `None` when it already has `max_sessions_per_ip`.
    pub fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<SessionSlot> {
        let ip = canonical(ip);
        let mut table = self.lock();
        let peer = table.entry(ip).or_default();
        if self.limits.sessions > 0 && peer.sessions >= self.limits.sessions {
            return None;
        }
        peer.sessions += 1;
        Some(SessionSlot { peers: self.clone(), ip })
    }

    /// Counts a mail (a MAIL command) from `ip`. `Err` carries how long until the next one
    /// would be allowed. A full minute's worth may come at once; then they are spaced evenly.
    pub fn try_mail_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let per_minute = self.limits.mails_per_minute;
        if per_minute == 0 {
            return Ok(());
        }
        let interval = Duration::from_secs(60) / per_minute;
        let tolerance = Duration::from_secs(60).saturating_sub(interval);
        let mut table = self.lock();
        let peer = table.entry(canonical(ip)).or_default();
        let tat = peer.mail_tat.map_or(now, |t| t.max(now));
        let ahead = tat.duration_since(now);
        if ahead > tolerance {
            return Err(ahead - tolerance);
        }
        peer.mail_tat = Some(tat + interval);
        Ok(())
    }

    /// Records a failed AUTH from `ip` and returns how long to wait before answering it.
    pub fn auth_failed_at(&self, ip: IpAddr, now: Instant) -> Duration {
        let mut table = self.lock();
        let peer = table.entry(canonical(ip)).or_default();
        if peer.last_auth_failure.is_some_and(|t| now.duration_since(t) >= AUTH_FAILURE_MEMORY) {
            peer.auth_failures = 0;
        }
        peer.auth_failures = peer.auth_failures.saturating_add(1);
        peer.last_auth_failure = Some(now);
        let doublings = (peer.auth_failures - 1).min(16);
        (self.limits.auth_failure_delay * 2u32.pow(doublings)).min(MAX_AUTH_DELAY)
    }

    /// A successful AUTH clears the address's failures.
    pub fn auth_succeeded(&self, ip: IpAddr) {
        if let Some(p) = self.lock().get_mut(&canonical(ip)) {
            p.auth_failures = 0;
            p.last_auth_failure = None;
        }
    }

    /// Addresses with state, for tests and metrics.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }
}

/// The session asks this before accepting MAIL (kept as a trait so the sans-IO session needs
/// no clock).
pub trait MailGate: Send + Sync {
    fn try_mail(&self, ip: IpAddr) -> Result<(), Duration>;
}

impl MailGate for Peers {
    fn try_mail(&self, ip: IpAddr) -> Result<(), Duration> {
        self.try_mail_at(ip, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peers(sessions: usize, mails: u32) -> Arc<Peers> {
        Peers::new(PeerLimits { sessions, mails_per_minute: mails, auth_failure_delay: Duration::from_secs(1) })
    }

    #[test]
    fn sessions_per_address_are_capped_and_released() {
        let p = peers(2, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let s1 = p.enter(a).unwrap();
        let _s2 = p.enter(a).unwrap();
        assert!(p.enter(a).is_none());
        // The mapped form of the same address shares the count.
        assert!(p.enter("::ffff:192.0.2.1".parse().unwrap()).is_none());
        assert!(p.enter(b).is_some());
        drop(s1);
        assert!(p.enter(a).is_some());
        let unlimited = peers(0, 0);
        let slots: Vec<_> = (0..1000).map(|_| unlimited.enter(a).unwrap()).collect();
        drop(slots);
        assert_eq!(unlimited.tracked(), 0, "state is dropped with the last session");
    }

    #[test]
    fn mails_per_minute_allow_a_burst_then_space_out() {
        let p = peers(0, 60); // one a second, a burst of 60
        let ip: IpAddr = "198.51.100.7".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..60 {
            assert!(p.try_mail_at(ip, t0).is_ok(), "mail {i}");
        }
        let wait = p.try_mail_at(ip, t0).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(p.try_mail_at(ip, t0 + Duration::from_millis(500)).is_err());
        assert!(p.try_mail_at(ip, t0 + Duration::from_secs(1)).is_ok());
        // Another address has its own budget.
        assert!(p.try_mail_at("198.51.100.8".parse().unwrap(), t0).is_ok());
        // A quiet minute restores the whole burst.
        let later = t0 + Duration::from_secs(120);
        assert!((0..60).all(|_| p.try_mail_at(ip, later).is_ok()));
        assert!(peers(0, 0).try_mail_at(ip, t0).is_ok());
    }

    #[test]
    fn auth_delay_doubles_caps_resets_and_is_forgotten() {
        let p = peers(0, 0);
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let t0 = Instant::now();
        let delays: Vec<u64> = (0..8).map(|_| p.auth_failed_at(ip, t0).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        // Other addresses are not punished.
        assert_eq!(p.auth_failed_at("203.0.113.6".parse().unwrap(), t0), Duration::from_secs(1));
        p.auth_succeeded(ip);
        assert_eq!(p.auth_failed_at(ip, t0), Duration::from_secs(1));
        assert_eq!(p.auth_failed_at(ip, t0), Duration::from_secs(2));
        assert_eq!(p.auth_failed_at(ip, t0 + AUTH_FAILURE_MEMORY), Duration::from_secs(1));
    }
}
