//! A rate limiter for LINE requests: GCRA slots to space them, and a count of the last second's
//! sends so that no second holds more than the rate.
//!
//! LINE limits push to 2,000 requests/s and multicast to 200/s per channel; a burst of 50,000
//! mails must drain at that pace rather than as a storm of 429s. Each request first reserves the
//! next free time slot (GCRA); a small tolerance lets requests delayed by timer granularity
//! catch up. Slots alone bound the rate by the time of *reservation*, though, and a worker can
//! wake long after its slot: a process stalled for 100 ms (a busy machine, a page fault storm)
//! sends the slots of those 100 ms together with the next second's, and LINE, counting
//! arrivals, sees more than the rate in one second. So a request also passes the `Window`: the
//! sends of the last second counted when they are made, which admits one only while fewer than
//! the rate were made in the second before it. Several gateways sharing one channel's limit
//! (`spool/share.rs`) rely on this: each keeps to its share in every second, stalls included.
//!
//! The rate can change while the gateway runs ([`RateLimiter::set_rate`]): several gateways on
//! one PostgreSQL each take their share of the channel's limit (`spool/share.rs`), and the share
//! changes as nodes come and go. The state is two atomics, so the hot path (`reserve`, once per
//! request from every worker) takes no lock: the next free slot as nanoseconds since the
//! limiter's epoch, and the interval and tolerance packed into one word, so a reservation never
//! sees one rate's interval with another's tolerance.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
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
    /// The rate last set, for [`RateLimiter::rate`] and the [`Window`].
    per_second: AtomicU64,
    /// The last second's sends (a lock held for a few additions per request).
    window: Mutex<Window>,
}

/// The width of one [`Window`] bucket: sends are counted per 10 ms.
const BUCKET: Duration = Duration::from_millis(10);

/// Buckets in a [`Window`]: a second's worth and the one the second begins in, so every send
/// less than a second old is counted.
const BUCKETS: usize = 101;

/// The sends of the last second, in [`BUCKET`]s numbered from the limiter's epoch ("ticks").
/// A send is counted in its bucket until the bucket is more than a second old, so the count may
/// include up to one bucket's sends made just over a second ago: it errs towards waiting (at
/// most 1% of the rate), never towards a second with more than the rate.
struct Window {
    counts: [u32; BUCKETS],
    /// The tick of the newest bucket.
    head: u64,
    /// The sum of `counts`.
    sum: u64,
}

impl Window {
    fn new() -> Window {
        Window { counts: [0; BUCKETS], head: 0, sum: 0 }
    }

    /// Moves the newest bucket to `tick`, forgetting the buckets that fall out.
    fn advance(&mut self, tick: u64) {
        if tick <= self.head {
            return;
        }
        let steps = (tick - self.head).min(BUCKETS as u64);
        for k in 1..=steps {
            let i = ((self.head + k) % BUCKETS as u64) as usize;
            self.sum -= u64::from(self.counts[i]);
            self.counts[i] = 0;
        }
        self.head = tick;
    }

    /// Counts a send at `tick` if fewer than `limit` were made in the second before; otherwise
    /// the tick at which the oldest counted bucket leaves the window (ask again then).
    fn admit(&mut self, tick: u64, limit: u64) -> Result<(), u64> {
        // A caller that read the clock just before another one took the lock is counted in the
        // newer bucket: later, never in a bucket already forgotten.
        let tick = tick.max(self.head);
        self.advance(tick);
        if self.sum < limit {
            self.counts[(tick % BUCKETS as u64) as usize] += 1;
            self.sum += 1;
            return Ok(());
        }
        let oldest = (0..BUCKETS as u64).rev().filter(|age| *age <= tick).map(|age| tick - age).find(|t| self.counts[(t % BUCKETS as u64) as usize] > 0);
        Err(oldest.unwrap_or(tick) + BUCKETS as u64)
    }
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
            window: Mutex::new(Window::new()),
        }
    }

    /// The [`Window`] tick of `at`.
    fn tick(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.epoch).as_nanos() / BUCKET.as_nanos()).min(u128::from(u64::MAX)) as u64
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
    ///
    /// Then the caller passes the `Window`: it returns when fewer than the rate were sent in
    /// the second before, and counts the caller's send.
    pub async fn acquire(&self) {
        loop {
            let now = Instant::now();
            if let Some(slot) = self.reserve_within(now, Some(HORIZON)) {
                tokio::time::sleep_until(slot).await;
                break;
            }
            // The next free slot is beyond the horizon: come back when it may be within it.
            let next = self.epoch + Duration::from_nanos(self.next.load(Ordering::Relaxed));
            tokio::time::sleep_until(next.checked_sub(HORIZON).unwrap_or(now).max(now + Duration::from_millis(1))).await;
        }
        while let Err(later) = self.pass(Instant::now()) {
            tokio::time::sleep_until(later).await;
        }
    }

    /// Counts a send at `now` in the [`Window`] if the last second leaves room for it at the
    /// current rate; otherwise the instant to ask again.
    fn pass(&self, now: Instant) -> Result<(), Instant> {
        let limit = self.per_second.load(Ordering::Acquire);
        let admitted = self.window.lock().unwrap_or_else(|e| e.into_inner()).admit(self.tick(now), limit);
        admitted.map_err(|tick| (self.epoch + Duration::from_nanos(tick.saturating_mul(BUCKET.as_nanos() as u64))).max(now + Duration::from_millis(1)))
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
    fn the_window_admits_the_rate_in_any_second() {
        let mut w = Window::new();
        for _ in 0..10 {
            assert_eq!(w.admit(3, 10), Ok(()));
        }
        // The eleventh waits for tick 3's bucket to be more than a second old: tick 104.
        assert_eq!(w.admit(50, 10), Err(104));
        assert_eq!(w.admit(103, 10), Err(104));
        assert_eq!(w.admit(104, 10), Ok(()));
        // A clock read before another caller's (a lower tick) counts in the newer bucket.
        assert_eq!(w.admit(90, 10), Ok(()));
        assert_eq!(w.sum, 2);
        // Long idle: everything is forgotten at once.
        for _ in 0..10 {
            assert_eq!(w.admit(10_000, 10), Ok(()));
        }
        assert_eq!(w.admit(10_000, 10), Err(10_101));
    }

    /// Sends in the busiest sliding second of `sends` (ms, sorted).
    fn busiest_second(sends: &[u64]) -> usize {
        sends.iter().enumerate().map(|(i, t)| sends[i..].iter().take_while(|u| **u < t + 1000).count()).max().unwrap_or(0)
    }

    /// Workers that reserve a slot, wait for it and send, at 1 ms steps for 3 s, with the whole
    /// process stalled from 1.0 to 1.15 s; `window` says whether a send must pass the window.
    /// The send times (ms) at the receiver.
    fn stalled_run(l: &RateLimiter, window: bool) -> Vec<u64> {
        let at = |ms: u64| l.epoch + Duration::from_millis(ms);
        let mut slots: Vec<Option<Instant>> = vec![None; 20];
        let mut sends = Vec::new();
        for ms in (0..3000).filter(|ms| !(1000..1150).contains(ms)) {
            let now = at(ms);
            for slot in slots.iter_mut() {
                if slot.is_none() {
                    *slot = l.reserve_within(now, Some(HORIZON));
                }
                if slot.is_some_and(|s| s <= now) && (!window || l.pass(now).is_ok()) {
                    sends.push(ms);
                    *slot = None;
                }
            }
        }
        sends
    }

    /// A stall sends the slots it held back together with the next second's: by slots alone,
    /// that second holds more than the rate; the window keeps it to the rate.
    #[test]
    fn a_stall_does_not_put_more_than_the_rate_into_a_second() {
        let slots_alone = busiest_second(&stalled_run(&RateLimiter::new(100), false));
        assert!(slots_alone > 105, "by slots alone the stall bunches sends: {slots_alone}");
        let l = RateLimiter::new(100);
        let sends = stalled_run(&l, true);
        assert!(busiest_second(&sends) <= 100, "{}", busiest_second(&sends));
        // And the window costs no throughput outside the stall: ~100/s over the 3 s.
        assert!(sends.len() >= 280, "{}", sends.len());
        // A lowered rate applies to the window at once.
        l.set_rate(10);
        let at = l.epoch + Duration::from_millis(3000);
        let passed = (0..50).filter(|_| l.pass(at).is_ok()).count();
        assert_eq!(passed, 0, "the last second already holds more than 10");
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
