//! The SMTP front: a sans-IO session (`session`), address rules (`address`), replies (`reply`)
//! and the tokio listener that drives sessions over sockets (`server`).

pub mod address;
pub mod reply;
pub mod server;
pub mod session;

pub use reply::Reply;
pub use session::{Directory, Mail, Rules, Session, Step};
