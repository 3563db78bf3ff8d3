//! A rate limiter for LINE requests (GCRA: each request reserves the next free time slot).
//!
//! LINE limits push to 2,000 requests/s and multicast to 200/s per channel; a burst of 50,000
//! mails must drain at that pace rather than as a storm of 429s. A small tolerance lets requests
//! that were delayed by timer granularity catch up without exceeding the rate over a second.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// `per_second` requests a second (at least 1).
    pub fn new(per_second: u32) -> RateLimiter {
        let interval = Duration::from_secs(1) / per_second.max(1);
        RateLimiter { interval, tolerance: interval * (per_second.max(1) / 20).max(1), next: Mutex::new(Instant::now()) }
    }

    /// The instant at which the caller may send; reserves that slot.
    pub fn reserve(&self, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        let earliest = now.checked_sub(self.tolerance).unwrap_or(now);
        let slot = (*next).max(earliest);
        *next = slot + self.interval;
        slot.max(now)
    }

    /// Waits for a slot.
    pub async fn acquire(&self) {
        let slot = self.reserve(Instant::now());
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_spaced_by_the_rate() {
        let l = RateLimiter::new(100); // 10 ms apart, 5 slots of tolerance
        let t0 = Instant::now();
        let slots: Vec<Instant> = (0..20).map(|_| l.reserve(t0)).collect();
        // 20 requests at once at 100/s: the last may go ~190 ms after the first's slot, less the
        // tolerance the limiter had banked (none yet: it was created at about t0).
        let span = slots[19] - slots[0];
        assert!(span >= Duration::from_millis(140) && span <= Duration::from_millis(200), "{span:?}");
        // Over 1 s of reservations no more than rate + tolerance slots fall into any second.
        let l = RateLimiter::new(100);
        let start = Instant::now();
        let slots: Vec<Instant> = (0..300).map(|_| l.reserve(start)).collect();
        let in_first_second = slots.iter().filter(|s| **s < start + Duration::from_secs(1)).count();
        assert!(in_first_second <= 105, "{in_first_second}");
    }
}
