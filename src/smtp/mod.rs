//! The SMTP front: a sans-IO session (`session`), address rules (`address`), who may connect and
//! send (`access`), SMTP AUTH (`auth`), the bound on password checks (`checks`), per-address
//! limits (`peers`), TLS (`tls`), replies (`reply`), why a mail was refused (`rejection`), mail
//! data in flight (`inflight`), session activity for making room at the session cap
//! (`activity`), what RCPT asks about followers (`directory`), which `[[channels]]` lane a
//! recipient belongs to (`channels`) and the tokio listener that drives sessions over sockets (`server`), which
//! hands each finished transaction to a [`Deliver`] (the gateway's delivery layer implements
//! it; `smtp` does not import it). Its configuration tables are its own: `[smtp]`
//! (`settings`), `[routing]` and `[aliases]` (`routing`), each with its checks.

pub mod access;
pub mod activity;
pub mod address;
pub mod auth;
pub mod channels;
pub mod checks;
pub mod directory;
pub mod inflight;
pub mod peers;
pub mod rejection;
pub mod reply;
mod routing;
pub mod server;
pub mod session;
mod settings;
pub mod tls;

pub use reply::Reply;
pub use server::Deliver;
pub use routing::{alias_recipients, aliases_from, Alias, Routing};
pub use settings::{Settings, User};
pub use session::{Conn, Directory, Mail, Rules, Session, Step};
