//! Notice → LINE messages: template, `[emoji:…]` tokens, splitting within LINE's limits, and
//! the requests that carry them to each recipient. Pure functions, no I/O.

pub mod message;
pub mod route;
pub mod template;
pub mod text;

pub use message::{Emoji, Message, TextMessage};
