//! Who is doing what: the last time each open session heard from its client, so that when
//! `[smtp] max_sessions` is reached the sessions that have sent nothing for a while are closed
//! to make room, instead of every new client being turned away.
//!
//! Why: with a fixed session cap, anyone who opens that many connections and sends nothing
//! locks every real sender out until the idle timeout (5 minutes) ends each one. Closing the
//! silent ones first keeps the cap a limit on work, not on connections anyone may hold.
//! A session waiting for us (delivering a mail) is never chosen: its client is not idle.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Sessions silent at least this long may be closed when the session cap is reached.
pub const EVICT_AFTER: Duration = Duration::from_secs(30);

/// `last` while the session is busy on our side.
const BUSY: u64 = u64::MAX;

struct Entry {
    last: Arc<AtomicU64>,
    kick: Arc<Notify>,
}

/// Every open session's last activity.
pub struct Activity {
    epoch: Instant,
    next: AtomicU64,
    sessions: Mutex<HashMap<u64, Entry>>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity { epoch: Instant::now(), next: AtomicU64::new(0), sessions: Mutex::new(HashMap::new()) }
    }
}

impl Activity {
    fn now_ms(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// Registers a session; it is forgotten when the returned tracker is dropped.
    pub fn register(self: &Arc<Self>, now: Instant) -> Tracker {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let last = Arc::new(AtomicU64::new(self.now_ms(now)));
        let kick = Arc::new(Notify::new());
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).insert(id, Entry { last: last.clone(), kick: kick.clone() });
        Tracker { id, last, kick, activity: self.clone() }
    }

    /// Asks the session that has been silent longest, if silent for `min_idle` or more, to
    /// close; true when one was asked.
    pub fn evict_idle(&self, min_idle: Duration, now: Instant) -> bool {
        let now = self.now_ms(now);
        let limit = min_idle.as_millis() as u64;
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = sessions
            .values()
            .map(|e| (e.last.load(Ordering::Relaxed), e))
            .filter(|(last, _)| *last != BUSY && now.saturating_sub(*last) >= limit)
            .min_by_key(|(last, _)| *last);
        match oldest {
            Some((_, entry)) => {
                // Marked busy so a second eviction picks another session.
                entry.last.store(BUSY, Ordering::Relaxed);
                // `notify_one` keeps the wake-up if the session is not waiting right now.
                entry.kick.notify_one();
                true
            }
            None => false,
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One session's entry in [`Activity`].
pub struct Tracker {
    id: u64,
    last: Arc<AtomicU64>,
    kick: Arc<Notify>,
    activity: Arc<Activity>,
}

impl Tracker {
    /// The client sent something.
    pub fn touch(&self, now: Instant) {
        if self.last.load(Ordering::Relaxed) != BUSY {
            self.last.store(self.activity.now_ms(now), Ordering::Relaxed);
        }
    }

    /// We are working for the client (delivering its mail, checking its password) until
    /// [`Tracker::idle_from`]; it cannot be chosen meanwhile.
    pub fn busy(&self) {
        self.last.store(BUSY, Ordering::Relaxed);
    }

    /// Our work is done; the client's silence counts from `now`.
    pub fn idle_from(&self, now: Instant) {
        self.last.store(self.activity.now_ms(now), Ordering::Relaxed);
    }

    /// Resolves when [`Activity::evict_idle`] chose this session.
    pub async fn kicked(&self) {
        self.kick.notified().await
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.activity.sessions.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_longest_silent_session_is_asked_to_close_and_busy_ones_never() {
        let a = Arc::new(Activity::default());
        let t0 = Instant::now();
        let old = a.register(t0);
        let newer = a.register(t0 + Duration::from_secs(10));
        let working = a.register(t0);
        working.busy();
        let later = t0 + Duration::from_secs(35);
        assert!(!a.evict_idle(EVICT_AFTER, t0 + Duration::from_secs(20)), "nobody silent for 30 s yet");
        assert!(a.evict_idle(EVICT_AFTER, later));
        tokio::time::timeout(Duration::from_secs(1), old.kicked()).await.expect("the oldest was asked");
        // `old` is now marked; `newer` has been silent 25 s; `working` is busy.
        assert!(!a.evict_idle(EVICT_AFTER, later));
        newer.touch(later);
        assert!(!a.evict_idle(EVICT_AFTER, later + Duration::from_secs(29)));
        assert!(a.evict_idle(EVICT_AFTER, later + Duration::from_secs(30)));
        assert_eq!(a.len(), 3);
        drop((old, newer, working));
        assert!(a.is_empty());
    }
}
