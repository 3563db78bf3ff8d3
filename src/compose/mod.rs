//! Notice → LINE messages: template, `[emoji:…]` and `[sticker:…]` tokens, splitting within
//! LINE's limits, the attachment list, the request batches of one mail, the requests that
//! carry them to each recipient, and held mails packed into shared requests. Pure functions,
//! no I/O.

pub mod attachments;
pub mod batch;
pub mod body;
mod emoji;
pub mod message;
pub mod pack;
pub mod quoting;
#[cfg(test)]
mod reference;
pub mod route;
mod split;
mod sticker;
pub mod template;
pub mod text;

pub use attachments::{attachment_list, human_size, with_attachment_list};
pub use batch::batches;
pub use body::{body_messages, body_messages_with_list};
pub use message::{Emoji, ImageMessage, Message, StickerMessage, TextMessage};
pub use pack::{pack, PackedRequest};
pub use template::{Template, TemplateError, DEFAULT_TEMPLATE};
pub use text::{to_messages, TextMessages};
