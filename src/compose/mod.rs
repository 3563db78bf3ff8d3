//! Notice → LINE messages: template, `[emoji:…]` tokens, splitting within LINE's limits.
//! Pure functions, no I/O.

pub mod message;
pub mod text;

pub use message::{Emoji, Message, TextMessage};
