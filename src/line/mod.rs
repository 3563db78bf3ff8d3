//! The LINE Messaging API client: the only place that knows LINE's URLs, headers and status
//! codes. It turns HTTP outcomes into [`Outcome`]s the delivery layer decides on.

pub mod client;
pub mod outcome;

pub use client::LineClient;
pub use outcome::Outcome;
