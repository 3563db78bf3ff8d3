//! Notice → LINE messages: template, `[emoji:…]` and `[sticker:…]` tokens, splitting within
//! LINE's limits, the attachment list, the request batches of one mail, the requests that
//! carry them to each recipient, and held mails packed into shared requests. Pure functions,
//! no I/O. One entry point for a mail, [`compose`] (`outbound.rs`); it produces `line`'s types
//! (`line::message`, `line::request`), which the client and the spool send as they are.
//! `[message]`, the table it is configured by, is its own (`settings`).

pub mod attachments;
pub mod batch;
pub mod body;
mod emoji;
pub mod outbound;
pub mod pack;
pub mod quoting;
#[cfg(test)]
mod reference;
pub mod route;
mod settings;
mod split;
mod sticker;
pub mod template;
pub mod text;

pub use attachments::{attachment_list, human_size, with_attachment_list};
pub use batch::batches;
pub use body::{body_messages, body_messages_with_list};
pub use outbound::{compose, Hosted, Outbound};
pub use pack::{pack, pack_bodies, HeldBodyError, PackedRequest};
pub use settings::Settings;
pub use template::{Template, TemplateError, DEFAULT_TEMPLATE};
pub use text::{to_messages, TextMessages};
