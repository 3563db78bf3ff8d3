//! Notice → LINE messages: template, `[emoji:…]` tokens, splitting within LINE's limits, and
//! the requests that carry them to each recipient. Pure functions, no I/O.

mod emoji;
pub mod message;
pub mod route;
mod split;
pub mod template;
pub mod text;

pub use message::{Emoji, Message, TextMessage};
pub use template::{Template, TemplateError, DEFAULT_TEMPLATE};
pub use text::{to_messages, TextMessages};
