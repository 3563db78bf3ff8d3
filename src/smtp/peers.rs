//! Per-client-address limits: concurrent sessions, mails a minute, and the growing delay after
//! failed AUTH. One set of tables shared by every listener (plain and implicit TLS).
//!
//! Clock-driven decisions take `now` as an argument so they are unit-tested without sleeping;
//! the server passes `Instant::now()`. State for an address is dropped once it has no sessions
//! and nothing left to remember, so the tables stay as small as the set of active clients.
//!
//! AUTH failures are kept apart from the session counts because they are keyed differently: an
//! IPv6 client gets a whole /64 from its provider and can pick a new address in it for every
//! guess, so the failure delay counts a /64 as one address (IPv4 stays /32; IPv4-mapped IPv6 is
//! IPv4).

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

/// User names whose failures an address's history attributes; failures on further names are
/// counted but belong to no name (see [`AuthHistory`]).
const NAMED_FAILURES: usize = 8;

#[derive(Debug, Default)]
struct Peer {
    sessions: usize,
    /// GCRA theoretical arrival time of the next mail.
    mail_tat: Option<Instant>,
}

impl Peer {
    fn forgettable(&self, now: Instant) -> bool {
        self.sessions == 0 && self.mail_tat.is_none_or(|t| t <= now)
    }
}

/// The failed AUTHs of one address (a /64 for IPv6).
///
/// The delay grows with `failures`, the address's total over every user name, so spraying
/// guesses over many names from one address is slowed as much as guessing one. A success
/// clears only the failures on the name that succeeded: someone who mistyped their own
/// password is let back in at once, but an attacker holding one valid login cannot reset the
/// delay they earned guessing another user's password. Per-name counts are kept for the first
/// [`NAMED_FAILURES`] names; failures on further names are never cleared by a success (they
/// expire after [`AUTH_FAILURE_MEMORY`] like the rest), so the list cannot be grown to wipe the
/// total.
#[derive(Debug, Default)]
struct AuthHistory {
    failures: u32,
    by_user: Vec<(String, u32)>,
    last_failure: Option<Instant>,
    /// No check for this address starts before then: a failure sets it to the failure time plus
    /// the delay, and each check admitted while failures are remembered pushes it one delay
    /// further, so parallel sessions from one address get no more checks than one session.
    not_before: Option<Instant>,
}

impl AuthHistory {
    fn expired(&self, now: Instant) -> bool {
        self.last_failure.is_none_or(|t| now.duration_since(t) >= AUTH_FAILURE_MEMORY)
    }
}

pub struct Peers {
    limits: PeerLimits,
    table: Mutex<HashMap<IpAddr, Peer>>,
    auth: Mutex<AuthTable>,
}

#[derive(Default)]
struct AuthTable {
    by_net: HashMap<IpAddr, AuthHistory>,
    /// Expired histories are swept when the table reaches this size (then doubled), so a flood
    /// of one-guess addresses costs amortised O(1) per failure and bounded memory.
    sweep_at: usize,
}

/// The key of an address in the AUTH failure table: IPv4 as is, IPv6 as its /64.
pub fn auth_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
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
        Arc::new(Peers { limits, table: Mutex::new(HashMap::new()), auth: Mutex::new(AuthTable::default()) })
    }

    fn lock_auth(&self) -> std::sync::MutexGuard<'_, AuthTable> {
        self.auth.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The delay after `failures` failures: the configured one, doubled per further failure.
    fn delay_after(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let doublings = (failures - 1).min(16);
        (self.limits.auth_failure_delay * 2u32.pow(doublings)).min(MAX_AUTH_DELAY)
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

    /// Asked before a password check from `ip` is even queued. `Err` carries how long the
    /// address must still wait (the delay its last failure earned, or the turn another of its
    /// sessions took); ask again after it. `Ok` takes the address's turn.
    pub fn auth_turn_at(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut table = self.lock_auth();
        let key = auth_key(ip);
        let Some(h) = table.by_net.get_mut(&key) else { return Ok(()) };
        if h.expired(now) {
            table.by_net.remove(&key);
            return Ok(());
        }
        if let Some(t) = h.not_before.filter(|&t| t > now) {
            return Err(t - now);
        }
        h.not_before = Some(now + self.delay_after(h.failures));
        Ok(())
    }

    /// Records a failed AUTH for `user` from `ip` and returns how long to wait before answering
    /// it; the address's next check waits as long (see [`Peers::auth_turn_at`]).
    pub fn auth_failed_at(&self, ip: IpAddr, user: &str, now: Instant) -> Duration {
        let mut table = self.lock_auth();
        let key = auth_key(ip);
        if !table.by_net.contains_key(&key) && table.by_net.len() >= table.sweep_at {
            table.by_net.retain(|_, h| !h.expired(now));
            table.sweep_at = (table.by_net.len() * 2).max(1024);
        }
        let h = table.by_net.entry(key).or_default();
        if h.expired(now) {
            *h = AuthHistory::default();
        }
        h.failures = h.failures.saturating_add(1);
        h.last_failure = Some(now);
        if let Some(named) = h.by_user.iter_mut().find(|(name, _)| name == user) {
            named.1 = named.1.saturating_add(1);
        } else if h.by_user.len() < NAMED_FAILURES {
            h.by_user.push((user.to_owned(), 1));
        }
        let delay = self.delay_after(h.failures);
        h.not_before = Some(h.not_before.map_or(now + delay, |t| t.max(now + delay)));
        delay
    }

    /// A successful AUTH for `user` from `ip` clears that user's failures from the address's
    /// history, and only those (see `AuthHistory`).
    pub fn auth_succeeded(&self, ip: IpAddr, user: &str) {
        let mut table = self.lock_auth();
        let key = auth_key(ip);
        let Some(h) = table.by_net.get_mut(&key) else { return };
        if let Some(i) = h.by_user.iter().position(|(name, _)| name == user) {
            let (_, n) = h.by_user.swap_remove(i);
            h.failures = h.failures.saturating_sub(n);
        }
        if h.failures == 0 {
            table.by_net.remove(&key);
        }
    }

    /// Addresses with session or mail state, for tests and metrics.
    pub fn tracked(&self) -> usize {
        self.lock().len()
    }

    /// Addresses (IPv6: /64s) with AUTH failures remembered, for tests.
    pub fn auth_tracked(&self) -> usize {
        self.lock_auth().by_net.len()
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
        let delays: Vec<u64> = (0..8).map(|_| p.auth_failed_at(ip, "cms", t0).as_secs()).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        // Other addresses are not punished.
        assert_eq!(p.auth_failed_at("203.0.113.6".parse().unwrap(), "cms", t0), Duration::from_secs(1));
        p.auth_succeeded(ip, "cms");
        assert_eq!(p.auth_failed_at(ip, "cms", t0), Duration::from_secs(1));
        assert_eq!(p.auth_failed_at(ip, "cms", t0), Duration::from_secs(2));
        assert_eq!(p.auth_failed_at(ip, "cms", t0 + AUTH_FAILURE_MEMORY), Duration::from_secs(1));
    }

    #[test]
    fn the_delay_comes_before_the_next_check_and_spaces_parallel_sessions() {
        let p = peers(0, 0);
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        let t0 = Instant::now();
        // A fresh address checks at once, as often as it likes.
        assert!((0..5).all(|_| p.auth_turn_at(ip, t0).is_ok()));
        assert_eq!(p.auth_tracked(), 0, "no state for an address that never failed");
        assert_eq!(p.auth_failed_at(ip, "cms", t0), Duration::from_secs(1));
        // Its next check waits out the delay…
        assert_eq!(p.auth_turn_at(ip, t0), Err(Duration::from_secs(1)));
        assert_eq!(p.auth_turn_at(ip, t0 + Duration::from_millis(400)), Err(Duration::from_millis(600)));
        // …and then one session takes the turn; a second one in parallel waits another delay.
        let t1 = t0 + Duration::from_secs(1);
        assert!(p.auth_turn_at(ip, t1).is_ok());
        assert_eq!(p.auth_turn_at(ip, t1), Err(Duration::from_secs(1)));
        assert!(p.auth_turn_at(ip, t1 + Duration::from_secs(1)).is_ok());
        // Another address is not held up.
        assert!(p.auth_turn_at("203.0.113.10".parse().unwrap(), t1).is_ok());
        // Forgotten after the memory window.
        assert!(p.auth_turn_at(ip, t0 + AUTH_FAILURE_MEMORY).is_ok());
        assert_eq!(p.auth_tracked(), 0);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address_and_mapped_ipv4_is_ipv4() {
        let p = peers(0, 0);
        let t0 = Instant::now();
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:eeee:dddd:cccc".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(p.auth_failed_at(a, "cms", t0), Duration::from_secs(1));
        assert_eq!(p.auth_failed_at(b, "cms", t0), Duration::from_secs(2), "same /64");
        assert!(p.auth_turn_at(b, t0).is_err());
        assert_eq!(p.auth_failed_at(other, "cms", t0), Duration::from_secs(1), "next /64");
        let v4: IpAddr = "192.0.2.77".parse().unwrap();
        assert_eq!(p.auth_failed_at(v4, "cms", t0), Duration::from_secs(1));
        assert_eq!(p.auth_failed_at("::ffff:192.0.2.77".parse().unwrap(), "cms", t0), Duration::from_secs(2));
        assert_eq!(p.auth_failed_at("192.0.2.78".parse().unwrap(), "cms", t0), Duration::from_secs(1), "IPv4 stays /32");
        assert_eq!(auth_key(b), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_success_clears_only_its_own_user_name() {
        let p = peers(0, 0);
        let ip: IpAddr = "198.51.100.20".parse().unwrap();
        let t0 = Instant::now();
        // Guessing the victim's password three times, then logging in as oneself.
        for _ in 0..3 {
            p.auth_failed_at(ip, "victim", t0);
        }
        p.auth_succeeded(ip, "attacker");
        assert_eq!(p.auth_failed_at(ip, "victim", t0), Duration::from_secs(8), "the delay was not reset");
        // Failing on one's own name first and then succeeding clears just those.
        p.auth_failed_at(ip, "attacker", t0);
        p.auth_succeeded(ip, "attacker");
        assert_eq!(p.auth_failed_at(ip, "victim", t0), Duration::from_secs(16), "4 victim failures + this one");
        // A user who mistyped their own password is let back in at once.
        let typo: IpAddr = "198.51.100.21".parse().unwrap();
        p.auth_failed_at(typo, "cms", t0);
        p.auth_succeeded(typo, "cms");
        assert!(p.auth_turn_at(typo, t0).is_ok());
        assert_eq!(p.auth_failed_at(typo, "cms", t0), Duration::from_secs(1));
        // Spraying more names than are tracked: the untracked ones are never cleared.
        let spray: IpAddr = "198.51.100.22".parse().unwrap();
        for i in 0..NAMED_FAILURES + 2 {
            p.auth_failed_at(spray, &format!("user{i}"), t0);
        }
        for i in 0..NAMED_FAILURES + 2 {
            p.auth_succeeded(spray, &format!("user{i}"));
        }
        assert_eq!(p.auth_failed_at(spray, "x", t0), Duration::from_secs(4), "two untracked failures + this one");
    }

    #[test]
    fn the_failure_table_sweeps_what_it_forgot() {
        let p = peers(0, 0);
        let t0 = Instant::now();
        for i in 0..1024u32 {
            p.auth_failed_at(IpAddr::V4(i.into()), "x", t0);
        }
        assert_eq!(p.auth_tracked(), 1024);
        let later = t0 + AUTH_FAILURE_MEMORY;
        p.auth_failed_at("192.0.2.1".parse().unwrap(), "x", later);
        assert_eq!(p.auth_tracked(), 1, "expired histories were swept");
    }
}
