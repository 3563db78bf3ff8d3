//! A rate limiter for LINE requests (GCRA: each request reserves the next free time slot).
//!
//! LINE limits push to 2,000 requests/s and multicast to 200/s per channel; a burst of 50,000
//! mails must drain at that pace rather than as a storm of 429s. A small tolerance lets requests
//! that were delayed by timer granularity catch up without exceeding the rate over a second.
//!
//! The rate can change while the gateway runs ([`RateLimiter::set_rate`]): several gateways on
//! one PostgreSQL each take their share of the channel's limit (`spool/share.rs`), and the share
//! changes as nodes come and go. The state is two atomics, so the hot path (`reserve`, once per
//! request from every worker) takes no lock: the next free slot as nanoseconds since the
//! limiter's epoch, and the interval and tolerance packed into one word, so a reservation never
//! sees one rate's interval with another's tolerance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// How far ahead [`RateLimiter::acquire`] reserves a slot: at LINE's 2,000/s, a hundred
/// workers' slots fit well within it, so at full rate no worker waits twice.
pub const HORIZON: Duration = Duration::from_millis(100);

pub struct RateLimiter {
    /// The origin of `next`; slots are nanoseconds after it.
    epoch: Instant,
    /// The next free slot, in ns after `epoch`.
    next: AtomicU64,
    /// `interval_ns << 32 | tolerance_ns` (see [`pace`]); both are at most 1 s, so each fits.
    pace: AtomicU64,
    /// The rate last set, for [`RateLimiter::rate`].
    per_second: AtomicU64,
}

/// The interval between slots and the tolerance (how far behind a caller may be and still
/// catch up) for `per_second` requests a second, packed into one word: both are at most 1 s
/// (10⁹ ns < 2³²). The tolerance is about 1/20 s worth of slots (at least one): what lets
/// requests delayed by timer granularity catch up.
fn pace(per_second: u32) -> u64 {
    let per_second = per_second.max(1);
    let interval = Duration::from_secs(1) / per_second;
    let tolerance = interval * (per_second / 20).max(1);
    let (i, t) = (interval.as_nanos() as u64, tolerance.as_nanos().min(u32::MAX as u128) as u64);
    (i << 32) | t
}

impl RateLimiter {
    /// `per_second` requests a second (at least 1).
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            epoch: Instant::now(),
            next: AtomicU64::new(0),
            pace: AtomicU64::new(pace(per_second)),
            per_second: AtomicU64::new(u64::from(per_second.max(1))),
        }
    }

    /// Changes the rate to `per_second` (at least 1) from the next reservation on. Slots
    /// already reserved stay where they are.
    pub fn set_rate(&self, per_second: u32) {
        self.pace.store(pace(per_second), Ordering::Release);
        self.per_second.store(u64::from(per_second.max(1)), Ordering::Release);
    }

    /// The rate in requests a second, as last set.
    pub fn rate(&self) -> u32 {
        self.per_second.load(Ordering::Acquire) as u32
    }

    /// The instant at which the caller may send; reserves that slot.
    pub fn reserve(&self, now: Instant) -> Instant {
        self.reserve_within(now, None).unwrap_or(now)
    }

    /// As [`RateLimiter::reserve`], but only a slot no later than `now + horizon`; None (and
    /// nothing reserved) when the next free slot is later.
    fn reserve_within(&self, now: Instant, horizon: Option<Duration>) -> Option<Instant> {
        let packed = self.pace.load(Ordering::Acquire);
        let (interval, tolerance) = (packed >> 32, packed & u64::from(u32::MAX));
        let now_ns = now.saturating_duration_since(self.epoch).as_nanos().min(u64::MAX as u128) as u64;
        let earliest = now_ns.saturating_sub(tolerance);
        let latest = horizon.map(|h| now_ns.saturating_add(h.as_nanos().min(u64::MAX as u128) as u64));
        let mut next = self.next.load(Ordering::Relaxed);
        let slot = loop {
            let slot = next.max(earliest);
            if latest.is_some_and(|latest| slot > latest) {
                return None;
            }
            match self.next.compare_exchange_weak(next, slot + interval, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break slot,
                Err(seen) => next = seen,
            }
        };
        Some((self.epoch + Duration::from_nanos(slot)).max(now))
    }

    /// Waits for a slot. Only a slot within [`HORIZON`] is reserved; a caller that would wait
    /// longer sleeps and asks again. Reserving far ahead would fix every waiting worker's slot at
    /// the rate of the moment: a gateway held at 1/s while it joins others (`spool/share.rs`),
    /// with a hundred workers waiting, would have queued slots two minutes out, and its share,
    /// when it came, would have waited behind them.
    pub async fn acquire(&self) {
        loop {
            let now = Instant::now();
            if let Some(slot) = self.reserve_within(now, Some(HORIZON)) {
                tokio::time::sleep_until(slot).await;
                return;
            }
            // The next free slot is beyond the horizon: come back when it may be within it.
            let next = self.epoch + Duration::from_nanos(self.next.load(Ordering::Relaxed));
            tokio::time::sleep_until(next.checked_sub(HORIZON).unwrap_or(now).max(now + Duration::from_millis(1))).await;
        }
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

    /// Slots reserved at `now` within one second after it.
    fn within_a_second(l: &RateLimiter, now: Instant, n: usize) -> usize {
        (0..n).map(|_| l.reserve(now)).filter(|s| *s < now + Duration::from_secs(1)).count()
    }

    #[test]
    fn a_new_rate_applies_from_the_next_reservation() {
        let l = RateLimiter::new(1000);
        assert_eq!(l.rate(), 1000);
        l.set_rate(100);
        assert_eq!(l.rate(), 100);
        let start = Instant::now() + Duration::from_secs(5);
        let n = within_a_second(&l, start, 400);
        // 100/s, its tolerance of 5 slots, and the slot at the second's very start.
        assert!((95..=106).contains(&n), "{n}");
        l.set_rate(400);
        let later = start + Duration::from_secs(10);
        let n = within_a_second(&l, later, 1000);
        assert!((390..=421).contains(&n), "{n}");
        // Never below 1/s.
        l.set_rate(0);
        assert_eq!(l.rate(), 1);
        let n = within_a_second(&l, later + Duration::from_secs(10), 10);
        assert!(n <= 2, "{n}");
    }

    /// A slow rate does not queue slots far ahead: waiting callers reserve only near slots, so
    /// a rate raised meanwhile applies to them at once.
    #[tokio::test]
    async fn waiting_callers_take_a_raised_rate_at_once() {
        let l = std::sync::Arc::new(RateLimiter::new(1));
        let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..50 {
            let (l, done) = (l.clone(), done.clone());
            tokio::spawn(async move {
                l.acquire().await;
                done.fetch_add(1, Ordering::Relaxed);
            });
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        // At 1/s: the slot at the start (and its tolerance) and a couple more, not 50.
        let at_one_per_second = done.load(Ordering::Relaxed);
        assert!(at_one_per_second <= 4, "{at_one_per_second}");
        l.set_rate(1000);
        // Every other caller goes within a fraction of a second of the new rate (reserved far
        // ahead at 1/s, the last would have waited 50 s); 10 s is room for a busy machine.
        let deadline = Instant::now() + Duration::from_secs(10);
        while done.load(Ordering::Relaxed) < 50 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(done.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn reservations_from_many_threads_never_share_a_slot() {
        let l = std::sync::Arc::new(RateLimiter::new(1000));
        let now = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || (0..250).map(|_| l.reserve(now)).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<Instant> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort();
        // Every slot (past the tolerance) is one interval after the previous: no two callers got
        // one slot, whatever the interleaving.
        let distinct = all.windows(2).filter(|w| w[1] > w[0]).count();
        assert!(distinct >= 1000 - 1 - 50, "{distinct}");
        assert!(*all.last().unwrap() - now >= Duration::from_millis(900), "1000 slots at 1000/s span ~1 s");
    }
}
