//! LINE's side of the gateway: the message objects and requests the Messaging API takes
//! (`message`, `request`: what `compose` produces and the spool stores), the HTTP client
//! (`client`: the only place that knows LINE's URLs, headers, status codes), what each answer
//! means (`outcome`: the [`Outcome`]s the delivery layer decides on), the channel access
//! token (`token`), why a call other than a message request failed (`error`), and what a
//! follower sent as a file (`content`: the bytes and why they could not be had), and the
//! webhook's JSON as LINE defines it (`events`: read by `http`'s webhook and by `replies`).

pub mod client;
pub mod content;
pub mod error;
pub mod events;
pub mod message;
pub mod outcome;
pub mod request;
pub mod token;
mod settings;

pub use client::LineClient;
pub use content::{Content, ContentError};
pub use error::Error;
pub use message::Message;
pub use outcome::Outcome;
pub use request::{Body, Endpoint, Request};
pub use settings::{string_or_number, Settings};
pub use token::{Credentials, TokenKind, TokenSource};
