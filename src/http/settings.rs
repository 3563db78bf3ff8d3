//! `[http]`, as written in the configuration file and checked when it is loaded: the listener
//! of the webhook, monitoring and images, and its limits (see `limits`).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[http]`: where the HTTP side listens and how much it takes at once.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub listen: SocketAddr,
    /// A client must send its request headers within this many seconds.
    pub header_timeout_secs: u64,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout_secs: u64,
    /// Open connections; past it the one longest without a request is closed (see `http::limits`).
    pub max_connections: usize,
    /// Requests in progress for the webhook, and as many again for everything else.
    pub max_concurrent_requests: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".parse().expect("valid literal"),
            header_timeout_secs: 10,
            idle_timeout_secs: 60,
            max_connections: 512,
            max_concurrent_requests: 64,
        }
    }
}

impl Settings {
    /// Problems as `(key, message)`.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p = Vec::new();
        for (key, value) in [
            ("http.header_timeout_secs", self.header_timeout_secs as usize),
            ("http.idle_timeout_secs", self.idle_timeout_secs as usize),
            ("http.max_connections", self.max_connections),
            ("http.max_concurrent_requests", self.max_concurrent_requests),
        ] {
            if value == 0 {
                p.push((key.to_owned(), "must be at least 1".into()));
            }
        }
        // A connection slot per request at least, or the budgets can never be used.
        if self.max_connections != 0 && self.max_connections < self.max_concurrent_requests {
            p.push(("http.max_connections".to_owned(), "must be at least http.max_concurrent_requests".into()));
        }
        p
    }

    /// The listener's limits as [`super::serve`] takes them.
    pub fn limits(&self) -> super::limits::Limits {
        super::limits::Limits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs),
            max_connections: self.max_connections,
            max_concurrent_requests: self.max_concurrent_requests,
        }
    }
}
