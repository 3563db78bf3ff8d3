//! The wall clock in unix milliseconds, in one place; and durations as the configuration
//! writes them ([`DurationValue`]), read the same way by every section that has one.
//!
//! The spool's timestamps, the webhook's replay window, the token cache's expiry and the
//! registry's health probe all compare times with each other (and with what they stored on an
//! earlier run), so they must read the clock the same way: milliseconds since the epoch as `i64`,
//! and 0 if the clock stands before 1970 rather than a panic.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// Now, in milliseconds since the unix epoch (0 if the system clock is before the epoch).
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A duration written as seconds (`3600`) or with a unit (`"90s"`, `"30m"`, `"72h"`, `"3d"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DurationValue {
    Seconds(u64),
    Text(String),
}

impl DurationValue {
    pub fn parse(&self) -> Result<Duration, DurationError> {
        match self {
            DurationValue::Seconds(s) => Ok(Duration::from_secs(*s)),
            DurationValue::Text(t) => {
                let t = t.trim();
                let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
                let (num, unit) = t.split_at(split);
                let n: u64 = num.parse().map_err(|_| DurationError::NotADuration(t.to_owned()))?;
                let mult = match unit.trim() {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    "d" => 86400,
                    _ => return Err(DurationError::UnknownUnit(t.to_owned())),
                };
                Ok(Duration::from_secs(n.saturating_mul(mult)))
            }
        }
    }
}

/// Why a [`DurationValue`] could not be read; says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("{0:?} is not a duration such as \"3d\", \"72h\", \"30m\" or \"90s\"")]
    NotADuration(String),
    #[error("{0:?} has an unknown unit; use s, m, h or d")]
    UnknownUnit(String),
}
