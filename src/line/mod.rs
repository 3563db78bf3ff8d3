//! The LINE Messaging API client: the only place that knows LINE's URLs, headers, status
//! codes and token kinds. It turns HTTP outcomes into [`Outcome`]s the delivery layer decides on.

pub mod client;
pub mod outcome;
pub mod token;
mod settings;

pub use client::LineClient;
pub use outcome::Outcome;
pub use settings::{Settings, TokenKind};
pub use token::{Credentials, TokenSource};
