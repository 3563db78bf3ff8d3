//! How many password checks may run and wait at once (`[smtp] max_auth_checks`,
//! `max_auth_queue`).
//!
//! Each check is an argon2 hash that holds ~19 MiB for its duration. Left to tokio's blocking
//! pool (up to 512 threads), a burst of AUTH commands before any login is a memory bomb: 500
//! sessions took the gateway to 9.4 GiB. So checks run at most `running` at a time (about one
//! per core: more would not finish sooner, the work is CPU-bound), and at most `queue` more
//! sessions wait for a turn. A session past that is told `454 4.7.0` at once: waiting costs
//! only the session's own small state, but an unbounded line would let one attacker make every
//! honest login wait behind thousands of guesses.
//!
//! The checks run on `running` threads of their own, not on tokio's blocking pool: each check
//! thread keeps its 19 MiB of argon2 memory for the next check (see `auth.rs`: allocating it
//! afresh each time let the heap grow by a block per check), and on fixed threads that is
//! `running` blocks in all, where the blocking pool's changing threads would each keep one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use tokio::sync::Semaphore;

type Job = Box<dyn FnOnce() + Send>;

/// The running-and-waiting bound on password checks; shared by every session.
#[derive(Debug)]
pub struct AuthChecks {
    running: usize,
    queue: usize,
    permits: Arc<Semaphore>,
    /// Checks admitted and not finished: running plus waiting.
    admitted: AtomicUsize,
    /// To the `running` check threads; they end when this is dropped.
    jobs: Mutex<mpsc::Sender<Job>>,
}

/// A place among the admitted checks; holding it is what keeps the count up.
#[derive(Debug)]
pub struct Ticket {
    checks: Arc<AuthChecks>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.checks.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AuthChecks {
    /// `running` checks at once (0: one per core), and `queue` more waiting.
    pub fn new(running: usize, queue: usize) -> Arc<AuthChecks> {
        let running = if running == 0 { cores() } else { running };
        let (jobs, inbox) = mpsc::channel::<Job>();
        let inbox = Arc::new(Mutex::new(inbox));
        for i in 0..running {
            let inbox = inbox.clone();
            let worker = move || loop {
                // The lock is held only while taking a job, not while running it.
                let job = inbox.lock().unwrap_or_else(|e| e.into_inner()).recv();
                let Ok(job) = job else { return };
                // A panicking check must not take its thread with it; its caller sees `None`.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            };
            if let Err(e) = std::thread::Builder::new().name(format!("auth-check-{i}")).spawn(worker) {
                // Fewer threads only means fewer checks at once; none at all would hang AUTH.
                tracing::warn!("cannot start password check thread {i}: {e}");
                assert!(i > 0, "cannot start any password check thread: {e}");
            }
        }
        Arc::new(AuthChecks {
            running,
            queue,
            permits: Arc::new(Semaphore::new(running)),
            admitted: AtomicUsize::new(0),
            jobs: Mutex::new(jobs),
        })
    }

    /// How many checks run at once.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Admits one more check, or `None` when `running + queue` are already admitted (the
    /// session answers 454 4.7.0).
    pub fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let cap = self.running.saturating_add(self.queue);
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1))
            .ok()
            .map(|_| Ticket { checks: self.clone() })
    }

    /// Checks admitted and not yet finished, for tests.
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }
}

impl Ticket {
    /// Waits for a turn, then runs `check` on a check thread. The turn (and the ticket) are
    /// released when `check` returns, not when this future is dropped: a client that hangs up
    /// mid-check cannot free a slot while its hash still holds the memory. `None` when the
    /// check panicked.
    pub async fn run<T, F>(self, check: F) -> Option<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        // The semaphore is never closed, so acquiring cannot fail. With as many permits as
        // threads, a job never waits in the channel.
        let permit = self.checks.permits.clone().acquire_owned().await.ok()?;
        let (done, result) = tokio::sync::oneshot::channel();
        let checks = self.checks.clone();
        let job: Job = Box::new(move || {
            let out = check();
            drop((permit, self));
            let _ = done.send(out);
        });
        // Sending fails only when the threads are gone; the job (and its ticket) drop with it.
        checks.jobs.lock().unwrap_or_else(|e| e.into_inner()).send(job).ok()?;
        result.await.ok()
    }
}

/// The number of CPUs this process may use (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn zero_means_one_per_core() {
        assert_eq!(AuthChecks::new(0, 4).running(), cores());
        assert_eq!(AuthChecks::new(3, 4).running(), 3);
    }

    #[test]
    fn admits_running_plus_queue_then_refuses_until_one_finishes() {
        let checks = AuthChecks::new(2, 3);
        let tickets: Vec<Ticket> = (0..5).map(|i| checks.admit().unwrap_or_else(|| panic!("ticket {i}"))).collect();
        assert!(checks.admit().is_none(), "the sixth is past running + queue");
        assert_eq!(checks.admitted(), 5);
        drop(tickets);
        assert_eq!(checks.admitted(), 0);
        assert!(checks.admit().is_some());
        // No queue: only the running ones.
        let none = AuthChecks::new(1, 0);
        let _one = none.admit().unwrap();
        assert!(none.admit().is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_running_checks_at_once_and_slots_free_when_the_check_ends() {
        let checks = AuthChecks::new(2, 10);
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let ticket = checks.admit().unwrap();
            let (inside, most) = (inside.clone(), most.clone());
            tasks.push(tokio::spawn(ticket.run(move || {
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
                inside.fetch_sub(1, Ordering::SeqCst);
                7
            })));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(7));
        }
        assert_eq!(most.load(Ordering::SeqCst), 2, "never more than `running` at once");
        assert_eq!(checks.admitted(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_check_frees_its_slot_and_its_thread_goes_on() {
        let checks = AuthChecks::new(1, 0);
        let out: Option<u8> = checks.admit().unwrap().run(|| panic!("argon2 blew up")).await;
        assert_eq!(out, None);
        assert_eq!(checks.admitted(), 0);
        assert_eq!(checks.admit().unwrap().run(|| 5).await, Some(5), "the only thread still works");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_waiter_keeps_its_slot_until_its_check_ends() {
        let checks = AuthChecks::new(1, 0);
        let (release, wait) = mpsc::channel::<()>();
        let (started, is_started) = tokio::sync::oneshot::channel();
        let running = tokio::spawn(checks.admit().unwrap().run(move || {
            let _ = started.send(());
            let _ = wait.recv();
        }));
        is_started.await.unwrap();
        // The session gives up (its task is aborted) while the hash still runs.
        running.abort();
        let _ = running.await;
        assert!(checks.admit().is_none(), "the slot is still taken by the running check");
        release.send(()).unwrap();
        // The check thread lets go of the slot just after the job returns: wait for it (no
        // timing is asserted; the bound only keeps a broken build from hanging).
        for _ in 0..6000 {
            if checks.admitted() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(checks.admit().is_some());
    }
}
