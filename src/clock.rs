//! The wall clock in unix milliseconds, in one place.
//!
//! The spool's timestamps, the webhook's replay window, the token cache's expiry and the
//! registry's health probe all compare times with each other (and with what they stored on an
//! earlier run), so they must read the clock the same way: milliseconds since the epoch as `i64`,
//! and 0 if the clock stands before 1970 rather than a panic.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the unix epoch (0 if the system clock is before the epoch).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
