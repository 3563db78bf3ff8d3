//! Attacks on the real binary, as someone on the open internet would try them (issue 16).
//!
//! Each module is one kind of attack; in every one a normal mail sent during the attack must
//! get a 250 and reach the LINE stand-in, or a 4xx the sender retries: never a 5xx, never a
//! lost mail. The full-size versions, with figures, are in `bench/hostile.sh`.

mod support;

#[path = "hostile/common.rs"]
mod common;

#[path = "hostile/smuggling.rs"]
mod smuggling;
#[path = "hostile/memory.rs"]
mod memory;
#[path = "hostile/slow.rs"]
mod slow;
#[path = "hostile/broadcast.rs"]
mod broadcast;
#[path = "hostile/auth.rs"]
mod auth;
#[path = "hostile/images.rs"]
mod images;
#[path = "hostile/http.rs"]
mod http;
#[path = "hostile/disk.rs"]
mod disk;
#[path = "hostile/webhook.rs"]
mod webhook;
#[path = "hostile/output.rs"]
mod output;
#[path = "hostile/files.rs"]
mod files;
