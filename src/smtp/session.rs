//! The SMTP session as a sans-IO state machine: bytes in, replies and decisions out.
//!
//! Nothing here touches a socket or a clock. The driver (`server.rs`) pushes whatever bytes it
//! read with [`Session::push_input`] and then calls [`Session::step`] until it answers
//! [`Step::NeedInput`]; it writes each [`Step::Reply`], hands each [`Step::Deliver`] to the
//! delivery layer and reports the outcome with [`Session::data_done`].
//!
//! Why our own state machine rather than `mailin`: we need SIZE and PIPELINING advertised and
//! honoured, a bounded command line (a 1 GiB line must cost us nothing), a DATA phase that can
//! pause while the mail is delivered and then answer 250/4xx/5xx, and a session that is always
//! left in a defined state. Memory is bounded by construction: the input buffer never holds more
//! than one command line ([`MAX_COMMAND_LINE`]) plus one read, and message data stops growing at
//! `max_message_bytes`.
//!
//! STARTTLS and AUTH are decisions here too: the session answers [`Step::StartTls`] and the
//! driver performs the handshake, then calls [`Session::tls_started`]; it answers
//! [`Step::Authenticate`] and the driver checks the password, then calls [`Session::auth_done`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::envelope::Recipient;

use super::access::{canonical, AuthMode, RecipientAccess, SenderList};
use super::address::{parse_path_arg, resolve_local, Local, RcptError, Resolved};
use super::auth::{decode_login_field, decode_plain, Credentials};
use super::channels::{select, Lane, NoLane};
use super::peers::MailGate;
use super::rejection::{Reason, Rejection};
use super::reply::Reply;

/// Longest command line we read (RFC 5321 says 512; SMTPUTF8 addresses and parameters need
/// more, and nothing legitimate needs more than this).
pub const MAX_COMMAND_LINE: usize = 4096;

/// Failed commands tolerated before we hang up, unless `[smtp] max_failed_commands` says otherwise.
pub const DEFAULT_MAX_ERRORS: u32 = 20;

/// NOOP/RSET/VRFY/HELP tolerated between mails, unless `[smtp] max_junk_commands` says otherwise
/// (Postfix's `smtpd_junk_command_limit` default is 100; a gateway for machines needs far fewer).
pub const DEFAULT_MAX_JUNK_COMMANDS: u32 = 20;

pub use super::directory::{Directory, DirectoryError};

/// The facts a session decides by; built once from the configuration.
#[derive(Clone)]
pub struct Rules {
    /// Our name in the greeting and EHLO reply.
    pub hostname: String,
    /// Recipients must be `<LINE id>@domain`; stored lower case.
    pub domain: String,
    pub max_message_bytes: usize,
    /// RCPT commands accepted per mail (an alias counts once).
    pub max_recipients: usize,
    /// `[aliases]`: lower-case name → the ids it reaches.
    pub aliases: HashMap<String, Vec<Recipient>>,
    /// Local part that reaches every active follower (`[routing] followers_address`).
    pub followers_address: String,
    /// Who may send to `followers_address` (`[routing] followers_senders`, `followers_users`);
    /// nobody by default.
    pub followers_access: RecipientAccess,
    /// Aliases only some may send to (alias tables with `senders` or `users`); an alias not
    /// here is open to every sender the gateway accepts.
    pub alias_access: HashMap<String, RecipientAccess>,
    /// `[smtp] require_follower`: user ids must be active followers.
    pub require_follower: bool,
    pub directory: Option<Arc<dyn Directory>>,
    /// A certificate is configured, so STARTTLS is offered on plain connections.
    pub tls_available: bool,
    /// `[smtp] require_tls`: MAIL before TLS gets 530 5.7.0.
    pub require_tls: bool,
    /// `[smtp] auth`; AUTH is offered only when it is not `Off`.
    pub auth: AuthMode,
    /// `[smtp] allow_plaintext_auth_on_loopback`.
    pub allow_plaintext_auth_on_loopback: bool,
    /// `[smtp] allowed_senders`.
    pub allowed_senders: SenderList,
    /// `[smtp] max_failed_commands`: failed commands before the client is dropped.
    pub max_errors: u32,
    /// `[smtp] max_junk_commands`: NOOP, RSET, VRFY and HELP tolerated without a MAIL in
    /// between (Postfix's `smtpd_junk_command_limit`); past it the session is closed, so a
    /// client cannot hold a session slot forever by chattering.
    pub max_junk_commands: u32,
    /// Per-address mail rate (`[smtp] max_mails_per_minute_per_ip`).
    pub mail_gate: Option<Arc<dyn MailGate>>,
    /// Room in `storage.dir` (`[storage] min_free_bytes`, `max_bytes`), asked at MAIL.
    pub space_gate: Option<Arc<dyn crate::storage::SpaceGate>>,
    /// `[[channels]]`: when not empty, each recipient's domain and the AUTH login pick its
    /// channel ([`super::channels::select`]), whose aliases and followers answer for it;
    /// `domain`, `aliases`, `alias_access` and `directory` above are then unused.
    pub channels: Vec<Lane>,
}

impl Rules {
    /// Rules with every security feature off, except that `followers@` is closed as in the
    /// configuration's default; what unit tests and embedders start from.
    pub fn basic(hostname: &str, domain: &str) -> Rules {
        Rules {
            hostname: hostname.to_owned(),
            domain: domain.to_ascii_lowercase(),
            max_message_bytes: 10 * 1024 * 1024,
            max_recipients: 100,
            aliases: HashMap::new(),
            followers_address: "followers".into(),
            followers_access: RecipientAccess::default(),
            alias_access: HashMap::new(),
            require_follower: false,
            directory: None,
            tls_available: false,
            require_tls: false,
            auth: AuthMode::Off,
            allow_plaintext_auth_on_loopback: false,
            allowed_senders: SenderList::default(),
            max_errors: DEFAULT_MAX_ERRORS,
            max_junk_commands: DEFAULT_MAX_JUNK_COMMANDS,
            mail_gate: None,
            space_gate: None,
            channels: Vec::new(),
        }
    }
}

/// Facts about one connection, from the driver.
#[derive(Debug, Clone, Default)]
pub struct Conn {
    /// The client's address (none in unit tests that do not care).
    pub ip: Option<IpAddr>,
    /// The connection is already encrypted (implicit TLS, or after STARTTLS).
    pub tls: bool,
    /// MAIL needs a successful AUTH first (see `access::admit`).
    pub must_auth: bool,
}

/// A mail whose DATA is complete, ready for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// Reverse path (empty for the null sender `<>`).
    pub from: String,
    /// Resolved recipients, deduplicated, in RCPT order (`a+urgent@` and `a@` are one).
    pub rcpts: Vec<Recipient>,
    /// With `[[channels]]`: the channel of each of `rcpts`, by index (the same id on two
    /// channels is two recipients); empty without channels. See [`Mail::by_channel`].
    pub channels: Vec<String>,
    /// Some accepted RCPT used the `<id|alias|followers>+urgent@domain` form (issue #17): the
    /// sender asked for this mail to skip coalescing. What the headers say is the mail layer's
    /// own flag (`mail::Notice::urgent`).
    pub urgent: bool,
    /// The client's HELO/EHLO name, for logs.
    pub helo: String,
    /// The AUTH login the mail was sent under, if any.
    pub user: Option<String>,
    /// The message as received, dot-unstuffed, without the terminating `.` line.
    pub data: Vec<u8>,
}

impl Mail {
    /// The recipients grouped by channel, in the order each channel first appears: one group
    /// named `None` without `[[channels]]`.
    pub fn by_channel(&self) -> Vec<(Option<&str>, Vec<Recipient>)> {
        if self.channels.len() != self.rcpts.len() {
            return vec![(None, self.rcpts.clone())];
        }
        let mut groups: Vec<(Option<&str>, Vec<Recipient>)> = Vec::new();
        for (r, name) in self.rcpts.iter().zip(&self.channels) {
            match groups.iter_mut().find(|(n, _)| *n == Some(name.as_str())) {
                Some((_, group)) => group.push(r.clone()),
                None => groups.push((Some(name.as_str()), vec![r.clone()])),
            }
        }
        groups
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this reply, then call `step` again.
    Reply(Reply),
    /// No complete command is buffered: flush replies, read more bytes.
    NeedInput,
    /// DATA ended: deliver the mail, then call [`Session::data_done`] with the reply to send.
    Deliver(Mail),
    /// Send this reply and close the connection.
    Close(Reply),
    /// Send this reply (220), then perform the TLS handshake and call [`Session::tls_started`].
    StartTls(Reply),
    /// Check these credentials, then call [`Session::auth_done`] with the verdict.
    Authenticate(Credentials),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Before HELO/EHLO.
    Fresh,
    /// Greeted, no transaction.
    Ready,
    /// After a successful MAIL.
    Mail,
    /// Reading message data.
    Data,
    /// A mail was handed to the driver; waiting for `data_done`.
    Delivering,
    /// Reading the client's answers in an AUTH exchange.
    Auth,
    /// Credentials were handed to the driver; waiting for `auth_done`.
    Authenticating,
    Closed,
}

/// Where an AUTH exchange stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AuthStep {
    /// `AUTH PLAIN` without an initial response: the next line is the response.
    Plain,
    /// `AUTH LOGIN`: the next line is the user name.
    LoginUser,
    /// The next line is the password for this user.
    LoginPassword(String),
}

/// Where the data phase stands relative to line ends.
///
/// Only CRLF `.` CRLF ends the data (RFC 5321 §4.1.1.4). A line ended by a bare LF or a bare CR
/// is taken as a line end for the text (stored as CRLF, as Postfix 3.9's
/// `smtpd_forbid_bare_newline = normalize` does), but a `.` line after it is text, not the end:
/// a server that ends the data at `\n.\r\n` reads what follows as new commands while the
/// server in front of it (which saw one mail) did not, and a second, forged mail gets through
/// ("SMTP smuggling").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineStart {
    /// In the middle of a line.
    Mid,
    /// After CRLF (or at the start of the data, after `DATA` CRLF): `.` CRLF ends the data.
    Crlf,
    /// After a bare LF or CR: `.` only unstuffs; a lone `.` line is kept as text.
    Bare,
}

/// Sizes of what a [`Session`] buffers (see [`Session::footprint`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Unconsumed input bytes.
    pub input: usize,
    /// Message data collected so far.
    pub data: usize,
    /// HELO name, reverse path and login, in bytes.
    pub envelope: usize,
    /// Recipients of the current transaction.
    pub recipients: usize,
}

pub struct Session {
    rules: Arc<Rules>,
    conn: Conn,
    phase: Phase,
    auth_step: Option<AuthStep>,
    /// The login being checked by the driver.
    pending_user: Option<String>,
    /// The login after a successful AUTH.
    user: Option<String>,
    helo: String,
    from: String,
    rcpts: Vec<Recipient>,
    /// The channel of each of `rcpts` (with `[[channels]]` only).
    lanes: Vec<String>,
    /// Some RCPT accepted in this transaction had the `+urgent` suffix.
    urgent: bool,
    /// RCPT commands accepted in this transaction.
    rcpt_count: usize,
    data: Vec<u8>,
    /// Message bytes received in this DATA phase, including those the driver already took with
    /// [`Session::take_data`]: the size limit applies to the whole mail.
    received: usize,
    /// Data beyond `max_message_bytes` is dropped; we still read to the end to answer 552.
    oversize: bool,
    /// How the previous data line ended, which decides what a `.` at the start of this one means.
    line_start: LineStart,
    /// NOOP/RSET/VRFY/HELP since the last mail (see [`Rules::max_junk_commands`]).
    junk: u32,
    /// Discarding the rest of an over-long command line.
    discarding: bool,
    errors: u32,
    buf: Vec<u8>,
    /// The refusal decided by the last step, until the driver takes it.
    rejection: Option<Rejection>,
}

impl Session {
    pub fn new(rules: Arc<Rules>, conn: Conn) -> Session {
        Session {
            rules,
            conn,
            phase: Phase::Fresh,
            auth_step: None,
            pending_user: None,
            user: None,
            helo: String::new(),
            from: String::new(),
            rcpts: Vec::new(),
            lanes: Vec::new(),
            urgent: false,
            rcpt_count: 0,
            data: Vec::new(),
            received: 0,
            oversize: false,
            line_start: LineStart::Crlf,
            junk: 0,
            discarding: false,
            errors: 0,
            buf: Vec::new(),
            rejection: None,
        }
    }

    /// The mail or recipient the last [`Session::step`] refused, if it refused one (taken once).
    /// Protocol errors (commands out of order, unknown commands) are not refusals.
    pub fn take_rejection(&mut self) -> Option<Rejection> {
        self.rejection.take()
    }

    /// Notes a refusal of `rcpt`, or of the whole mail, in the current transaction; the caller
    /// still builds the reply.
    fn refuse(&mut self, reason: Reason, rcpt: Option<&str>) -> &mut Self {
        self.rejection = Some(Rejection { reason, from: self.from.clone(), rcpt: rcpt.map(str::to_owned) });
        self
    }

    /// Notes a refused MAIL FROM (`from` as the client gave it).
    fn refuse_sender(&mut self, reason: Reason, from: &str) -> &mut Self {
        self.rejection = Some(Rejection { reason, from: from.to_owned(), rcpt: None });
        self
    }

    /// The 220 banner sent when the connection opens.
    pub fn greeting(&self) -> Reply {
        Reply::plain(220, format!("{} ESMTP mail2line ready", self.rules.hostname))
    }

    /// Whether the session is in the middle of something a shutdown should let finish.
    pub fn is_busy(&self) -> bool {
        matches!(self.phase, Phase::Mail | Phase::Data | Phase::Delivering)
    }

    /// Whether the session is reading message data (the driver allows a longer timeout there).
    pub fn in_data(&self) -> bool {
        self.phase == Phase::Data
    }

    /// Appends bytes read from the client.
    pub fn push_input(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Advances the session by one decision.
    pub fn step(&mut self) -> Step {
        match self.phase {
            Phase::Closed | Phase::Delivering | Phase::Authenticating => Step::NeedInput,
            Phase::Data => self.step_data(),
            _ => self.step_command(),
        }
    }

    /// Reports the outcome of delivering the mail from [`Step::Deliver`]; the transaction ends
    /// either way (a 4xx tells the client to retry the whole transaction later).
    pub fn data_done(&mut self, reply: Reply) -> Reply {
        self.reset_transaction();
        self.phase = Phase::Ready;
        reply
    }

    /// The TLS handshake after [`Step::StartTls`] succeeded. RFC 3207: everything learnt before
    /// is forgotten, including any bytes the client sent after STARTTLS in the clear; keeping
    /// them would let an attacker inject commands into the encrypted session (CVE-2011-0411).
    pub fn tls_started(&mut self) {
        self.conn.tls = true;
        self.buf.clear();
        self.helo.clear();
        self.user = None;
        self.auth_step = None;
        self.reset_transaction();
        self.phase = Phase::Fresh;
    }

    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        self.conn.tls
    }

    /// The verdict on the credentials from [`Step::Authenticate`]. A failure counts as a failed
    /// command, so it may close the session.
    pub fn auth_done(&mut self, ok: bool) -> Step {
        self.phase = Phase::Ready;
        let user = self.pending_user.take();
        if ok {
            self.user = user;
            return Step::Reply(Reply::new(235, "2.7.0", "Authentication succeeded"));
        }
        self.error(Reply::new(535, "5.7.8", "Authentication credentials invalid"))
    }

    /// The credentials from [`Step::Authenticate`] could not be checked now: too many checks
    /// are running and waiting (`[smtp] max_auth_queue`). A transient 454 the client may retry;
    /// not counted as a failed command, since it is the gateway's load, not the client's fault.
    pub fn auth_busy(&mut self) -> Reply {
        self.phase = Phase::Ready;
        self.pending_user = None;
        Reply::new(454, "4.7.0", "Too many logins being checked; try again later")
    }

    /// The login of this session, after a successful AUTH.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// What the session holds right now, for the fuzz target's "memory stays bounded" check
    /// (`fuzzing::check_smtp`); not used by the gateway itself.
    #[doc(hidden)]
    pub fn footprint(&self) -> Footprint {
        Footprint {
            input: self.buf.len(),
            data: self.data.len(),
            envelope: self.helo.len() + self.from.len() + self.user.as_ref().map_or(0, String::len),
            recipients: self.rcpts.len(),
        }
    }

    /// AUTH is offered on this connection: enabled, and either encrypted or on loopback where
    /// the admin allowed plaintext.
    fn auth_offered(&self) -> bool {
        self.rules.auth != AuthMode::Off
            && (self.conn.tls
                || (self.rules.allow_plaintext_auth_on_loopback && self.conn.ip.is_some_and(|ip| canonical(ip).is_loopback())))
    }

    fn reset_transaction(&mut self) {
        self.from.clear();
        self.rcpts.clear();
        self.lanes.clear();
        self.urgent = false;
        self.rcpt_count = 0;
        self.data = Vec::new();
        self.received = 0;
        self.oversize = false;
        self.line_start = LineStart::Crlf;
        if !matches!(self.phase, Phase::Fresh | Phase::Closed) {
            self.phase = Phase::Ready;
        }
    }

    fn step_command(&mut self) -> Step {
        let newline = self.buf.iter().position(|&b| b == b'\n');
        let Some(nl) = newline else {
            if self.buf.len() > MAX_COMMAND_LINE {
                // Drop what we have and keep dropping until the line ends: memory stays bounded
                // however long the line is.
                self.buf.clear();
                if !self.discarding {
                    self.discarding = true;
                    return self.error(Reply::new(500, "5.5.6", "Line too long"));
                }
            } else if self.discarding {
                self.buf.clear();
            }
            return Step::NeedInput;
        };
        let line: Vec<u8> = self.buf.drain(..=nl).collect();
        if std::mem::take(&mut self.discarding) {
            return self.step_command();
        }
        let bare_lf = !line.ends_with(b"\r\n");
        let body = &line[..line.len() - if bare_lf { 1 } else { 2 }];
        if body.len() > MAX_COMMAND_LINE {
            return self.error(Reply::new(500, "5.5.6", "Line too long"));
        }
        let text = String::from_utf8_lossy(body).into_owned();
        if self.phase == Phase::Auth {
            return self.auth_continue(&text);
        }
        self.command(&text, bare_lf)
    }

    fn command(&mut self, line: &str, bare_lf: bool) -> Step {
        let (verb, arg) = match line.find(' ') {
            Some(i) => (&line[..i], line[i + 1..].trim_end()),
            None => (line.trim_end(), ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => self.helo(arg, true),
            "HELO" => self.helo(arg, false),
            "MAIL" => self.mail(arg),
            "RCPT" => self.rcpt(arg),
            "DATA" => self.data_cmd(arg, bare_lf),
            "STARTTLS" => self.starttls(arg),
            "AUTH" => self.auth(arg),
            "RSET" => {
                self.reset_transaction();
                self.junk(Reply::new(250, "2.0.0", "Ok"))
            }
            "NOOP" => self.junk(Reply::new(250, "2.0.0", "Ok")),
            "QUIT" => {
                self.phase = Phase::Closed;
                Step::Close(Reply::new(221, "2.0.0", "Bye"))
            }
            "VRFY" => self.junk(Reply::new(252, "2.5.0", "Cannot VRFY; send the mail and it will be tried")),
            "EXPN" => self.error(Reply::new(502, "5.5.1", "EXPN is not supported")),
            "HELP" => self.junk(Reply::new(
                214,
                "2.0.0",
                "mail2line: send mail to <LINE user, group or room id>@domain; commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA RSET NOOP QUIT VRFY",
            )),
            "" => self.error(Reply::new(500, "5.5.2", "Empty command")),
            _ => self.error(Reply::new(500, "5.5.2", "Command not recognized")),
        }
    }

    /// Counts a protocol error; past [`MAX_ERRORS`] the client is dropped.
    fn error(&mut self, reply: Reply) -> Step {
        self.errors += 1;
        if self.errors >= self.rules.max_errors.max(1) {
            self.phase = Phase::Closed;
            return Step::Close(Reply::new(421, "4.7.0", "Too many errors, closing connection"));
        }
        Step::Reply(reply)
    }

    fn helo(&mut self, arg: &str, extended: bool) -> Step {
        if arg.is_empty() {
            return self.error(Reply::new(501, "5.5.4", "Syntax: EHLO/HELO <your hostname>"));
        }
        self.helo = arg.to_owned();
        self.reset_transaction();
        self.phase = Phase::Ready;
        if !extended {
            return Step::Reply(Reply::plain(250, self.rules.hostname.clone()));
        }
        let mut lines = vec![
            format!("{} greets {}", self.rules.hostname, arg),
            "PIPELINING".into(),
            format!("SIZE {}", self.rules.max_message_bytes),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
        ];
        if self.rules.tls_available && !self.conn.tls {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() && self.user.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        Step::Reply(Reply::multi(250, lines))
    }

    fn starttls(&mut self, arg: &str) -> Step {
        if self.conn.tls {
            return self.error(Reply::new(503, "5.5.1", "TLS is already active"));
        }
        if !self.rules.tls_available {
            return self.error(Reply::new(502, "5.5.1", "STARTTLS is not available: no certificate is configured"));
        }
        if !arg.is_empty() {
            return self.error(Reply::new(501, "5.5.4", "STARTTLS takes no argument"));
        }
        if self.phase == Phase::Fresh {
            return self.error(Reply::new(503, "5.5.1", "Send EHLO first"));
        }
        Step::StartTls(Reply::new(220, "2.0.0", "Ready to start TLS"))
    }

    fn auth(&mut self, arg: &str) -> Step {
        if self.rules.auth == AuthMode::Off {
            return self.error(Reply::new(502, "5.5.1", "AUTH is not available on this gateway"));
        }
        match self.phase {
            Phase::Fresh => return self.error(Reply::new(503, "5.5.1", "Send EHLO first")),
            Phase::Mail => return self.error(Reply::new(503, "5.5.1", "AUTH is not allowed during a mail transaction")),
            _ => {}
        }
        if self.user.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Already authenticated"));
        }
        if self.rules.require_tls && !self.conn.tls {
            return self.error(Reply::new(530, "5.7.0", "Must issue a STARTTLS command first"));
        }
        if !self.auth_offered() {
            let hint = if self.rules.tls_available { "; use STARTTLS first" } else { "" };
            return self.error(Reply::new(538, "5.7.11", format!("Encryption required for authentication{hint}")));
        }
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, rest)) => (m, Some(rest.trim())),
            None => (arg, None),
        };
        match (mechanism.to_ascii_uppercase().as_str(), initial) {
            ("PLAIN", Some(response)) => self.finish_plain(response),
            ("PLAIN", None) => {
                self.phase = Phase::Auth;
                self.auth_step = Some(AuthStep::Plain);
                Step::Reply(Reply::plain(334, ""))
            }
            ("LOGIN", None) => {
                self.phase = Phase::Auth;
                self.auth_step = Some(AuthStep::LoginUser);
                Step::Reply(Reply::plain(334, "VXNlcm5hbWU6")) // "Username:"
            }
            ("LOGIN", Some(user)) => {
                self.phase = Phase::Auth;
                self.auth_step = Some(AuthStep::LoginUser);
                self.auth_continue(user)
            }
            _ => self.error(Reply::new(504, "5.5.4", "Unrecognized authentication type; use PLAIN or LOGIN")),
        }
    }

    /// One client line inside an AUTH exchange.
    fn auth_continue(&mut self, line: &str) -> Step {
        let line = line.trim();
        let step = self.auth_step.take();
        if line == "*" {
            self.phase = Phase::Ready;
            return self.error(Reply::new(501, "5.7.0", "Authentication cancelled"));
        }
        match step {
            Some(AuthStep::Plain) => self.finish_plain(line),
            Some(AuthStep::LoginUser) => match decode_login_field(line) {
                Ok(user) if !user.is_empty() => {
                    self.auth_step = Some(AuthStep::LoginPassword(user));
                    Step::Reply(Reply::plain(334, "UGFzc3dvcmQ6")) // "Password:"
                }
                Ok(_) => self.auth_syntax_error("Empty user name"),
                Err(e) => self.auth_syntax_error(e.message()),
            },
            Some(AuthStep::LoginPassword(user)) => match decode_login_field(line) {
                Ok(password) => self.authenticate(Credentials { user, password: crate::secret::Secret::new(password) }),
                Err(e) => self.auth_syntax_error(e.message()),
            },
            None => {
                self.phase = Phase::Ready;
                self.error(Reply::new(503, "5.5.1", "No authentication in progress"))
            }
        }
    }

    fn finish_plain(&mut self, response: &str) -> Step {
        match decode_plain(response) {
            Ok(creds) => self.authenticate(creds),
            Err(e) => self.auth_syntax_error(e.message()),
        }
    }

    fn auth_syntax_error(&mut self, message: &str) -> Step {
        self.phase = Phase::Ready;
        self.auth_step = None;
        self.error(Reply::new(501, "5.5.2", message.to_owned()))
    }

    fn authenticate(&mut self, creds: Credentials) -> Step {
        self.phase = Phase::Authenticating;
        self.auth_step = None;
        self.pending_user = Some(creds.user.clone());
        Step::Authenticate(creds)
    }

    fn mail(&mut self, arg: &str) -> Step {
        match self.phase {
            Phase::Fresh => return self.error(Reply::new(503, "5.5.1", "Send EHLO or HELO first")),
            Phase::Mail => return self.error(Reply::new(503, "5.5.1", "Nested MAIL command")),
            _ => {}
        }
        if self.rules.require_tls && !self.conn.tls {
            return self.refuse_sender(Reason::TlsRequired, "").error(Reply::new(530, "5.7.0", "Must issue a STARTTLS command first"));
        }
        if self.conn.must_auth && self.user.is_none() {
            let how = if self.auth_offered() {
                "use AUTH first"
            } else if self.rules.tls_available {
                "use STARTTLS, then AUTH"
            } else {
                "this address may not send here"
            };
            return self.refuse_sender(Reason::AuthRequired, "").error(Reply::new(530, "5.7.0", format!("Authentication required; {how}")));
        }
        let Some(rest) = strip_prefix_ci(arg, "FROM:") else {
            return self.refuse_sender(Reason::Syntax, "").error(Reply::new(501, "5.5.4", "Syntax: MAIL FROM:<address>"));
        };
        let path = match parse_path_arg(rest) {
            Ok(p) => p,
            Err(reply) => return self.refuse_sender(Reason::Syntax, rest.trim()).error(reply),
        };
        for (key, value) in &path.params {
            match (key.as_str(), value.as_deref()) {
                ("SIZE", Some(v)) => match v.parse::<u64>() {
                    Ok(n) if n > self.rules.max_message_bytes as u64 => {
                        self.refuse_sender(Reason::Size, &path.path);
                        return Step::Reply(Reply::new(
                            552,
                            "5.3.4",
                            format!("Message size {n} exceeds the limit of {} bytes", self.rules.max_message_bytes),
                        ))
                    }
                    Ok(_) => {}
                    Err(_) => {
                        return self.refuse_sender(Reason::Syntax, &path.path).error(Reply::new(501, "5.5.4", "Syntax: SIZE=<number of bytes>"))
                    }
                },
                ("BODY", Some(v)) if v.eq_ignore_ascii_case("7BIT") || v.eq_ignore_ascii_case("8BITMIME") => {}
                ("SMTPUTF8", None) => {}
                // AUTH=<> is sent by some MTAs even to servers that do not offer AUTH.
                ("AUTH", Some(_)) => {}
                _ => {
                    return self
                        .refuse_sender(Reason::Syntax, &path.path)
                        .error(Reply::new(555, "5.5.4", format!("Parameter {key} not recognized")));
                }
            }
        }
        if !self.rules.allowed_senders.allows(&path.path) {
            return self.refuse_sender(Reason::SenderNotAllowed, &path.path).error(Reply::new(
                550,
                "5.7.1",
                format!("Sender <{}> is not allowed to send through this gateway", path.path),
            ));
        }
        // Before DATA, so a full disk costs the sender a retry, not a mail sent for nothing;
        // before the rate gate, so a refused MAIL does not use up the address's budget.
        if let Some(Err(_)) = self.rules.space_gate.as_ref().map(|g| g.check()) {
            self.refuse_sender(Reason::Storage, &path.path);
            return Step::Reply(Reply::new(452, "4.3.1", "Not enough free disk space on the gateway; try again later"));
        }
        if let (Some(gate), Some(ip)) = (&self.rules.mail_gate, self.conn.ip) {
            if let Err(wait) = gate.try_mail(ip) {
                self.refuse_sender(Reason::RateLimited, &path.path);
                return Step::Reply(Reply::new(
                    450,
                    "4.7.1",
                    format!("Too many mails from {ip}; try again in {} s", wait.as_secs().max(1)),
                ));
            }
        }
        self.from = path.path;
        self.rcpts.clear();
        self.lanes.clear();
        self.urgent = false;
        self.rcpt_count = 0;
        self.phase = Phase::Mail;
        // A client that starts mails is working, not chattering: a recipient check
        // (MAIL, RCPT, RSET, again and again) is bounded by the per-address mail rate instead.
        self.junk = 0;
        Step::Reply(Reply::new(250, "2.1.0", "Sender ok"))
    }

    fn rcpt(&mut self, arg: &str) -> Step {
        if self.phase != Phase::Mail {
            return self.error(Reply::new(503, "5.5.1", "Send MAIL first"));
        }
        let Some(rest) = strip_prefix_ci(arg, "TO:") else {
            return self.refuse(Reason::Syntax, Some(arg.trim())).error(Reply::new(501, "5.5.4", "Syntax: RCPT TO:<address>"));
        };
        let path = match parse_path_arg(rest) {
            Ok(p) => p,
            Err(reply) => return self.refuse(Reason::Syntax, Some(rest.trim())).error(reply),
        };
        if let Some((key, _)) = path.params.first() {
            let reply = Reply::new(555, "5.5.4", format!("Parameter {key} not recognized"));
            return self.refuse(Reason::Syntax, Some(&path.path)).error(reply);
        }
        let (targets, urgent, lane) = match self.targets(&path.path) {
            Ok(t) => t,
            // A refused recipient is a failed command: a client guessing addresses or probing
            // for a relay is cut off like any other misbehaving client.
            Err((reason, reply)) if reply.code >= 500 => return self.refuse(reason, Some(&path.path)).error(reply),
            Err((reason, reply)) => {
                self.refuse(reason, Some(&path.path));
                return Step::Reply(reply);
            }
        };
        if self.rcpt_count >= self.rules.max_recipients {
            self.refuse(Reason::TooManyRecipients, Some(&path.path));
            return Step::Reply(Reply::new(
                452,
                "4.5.3",
                format!("Too many recipients (at most {} a mail); send the rest in another mail", self.rules.max_recipients),
            ));
        }
        self.rcpt_count += 1;
        self.urgent |= urgent;
        let lane = lane.map(|i| self.rules.channels[i].name.clone());
        for t in targets {
            let known = self.rcpts.iter().enumerate().any(|(k, r)| *r == t && self.lanes.get(k) == lane.as_ref());
            if !known {
                self.rcpts.push(t);
                self.lanes.extend(lane.clone());
            }
        }
        Step::Reply(Reply::new(250, "2.1.5", format!("<{}> ok", path.path)))
    }

    /// What a recipient address reaches, whether it had the `+urgent` suffix, and its channel
    /// (an index in [`Rules::channels`]; `None` without channels).
    fn targets(&self, addr: &str) -> Result<(Vec<Recipient>, bool, Option<usize>), (Reason, Reply)> {
        let lane = self.lane_for(addr)?;
        let domain = lane.map_or(&self.rules.domain, |i| &self.rules.channels[i].domain);
        let Resolved { local, urgent } = resolve_local(addr, domain).map_err(|e| {
            let reason = match e {
                RcptError::NotOurDomain => Reason::RelayDenied,
                RcptError::BadId => Reason::UnknownRecipient,
                RcptError::Empty => Reason::Syntax,
            };
            (reason, e.reply(addr))
        })?;
        // `+urgent` changes nothing about who is reached or who may send there: the same
        // follower, alias and followers checks apply to the local part without it.
        Ok((self.reach(addr, local, lane)?, urgent, lane))
    }

    /// With `[[channels]]`, the channel the recipient's domain and our AUTH login pick; a
    /// domain served only to other logins is 550 5.7.1 (the bounce names no channel: a
    /// stranger learns nothing about who else the gateway serves). An address without a
    /// domain is left to [`resolve_local`]'s own refusal.
    fn lane_for(&self, addr: &str) -> Result<Option<usize>, (Reason, Reply)> {
        let (false, Some((_, domain))) = (self.rules.channels.is_empty(), addr.rsplit_once('@')) else { return Ok(None) };
        match select(&self.rules.channels, domain, self.user.as_deref()) {
            Ok(i) => Ok(Some(i)),
            Err(NoLane::NotOurDomain) => Err((Reason::RelayDenied, RcptError::NotOurDomain.reply(addr))),
            Err(NoLane::NotAllowed { .. }) => {
                let who = match &self.user {
                    Some(user) => format!("login {user:?} is"),
                    None => "a client without AUTH is".to_owned(),
                };
                Err((
                    Reason::ChannelNotAllowed,
                    Reply::new(550, "5.7.1", format!("<{addr}>: {who} not allowed to send through this domain's LINE channel; log in as one of the channel's users ([[channels]] users)")),
                ))
            }
        }
    }

    /// What a local part of ours reaches: a LINE id, an alias's ids, or every follower.
    /// `addr` is the address as given, for the replies.
    fn reach(&self, addr: &str, local: Local, lane: Option<usize>) -> Result<Vec<Recipient>, (Reason, Reply)> {
        // The channel's own aliases and followers, or the unnamed channel's.
        let (aliases, alias_access, directory) = match lane.map(|i| &self.rules.channels[i]) {
            Some(l) => (&l.aliases, &l.alias_access, &l.directory),
            None => (&self.rules.aliases, &self.rules.alias_access, &self.rules.directory),
        };
        let unavailable =
            |_| (Reason::FollowersUnavailable, Reply::new(451, "4.3.0", "Cannot read the follower list right now; try again later"));
        match local {
            Local::Id(r) => {
                if self.rules.require_follower && matches!(r, Recipient::User(_)) {
                    let active = match directory {
                        Some(d) => d.is_active_follower(r.id()).map_err(unavailable)?,
                        None => false,
                    };
                    if !active {
                        return Err((
                            Reason::NotFollower,
                            Reply::new(
                                550,
                                "5.1.1",
                                format!("<{addr}>: not a follower of this LINE account; they must add the bot as a friend first"),
                            ),
                        ));
                    }
                }
                Ok(vec![r])
            }
            Local::Name(name) if name == self.rules.followers_address => {
                // Before the count: a stranger learns nothing about the followers, and costs
                // no registry read.
                self.check_access(&self.rules.followers_access, addr, || {
                    format!("{name}@ (every follower); the admin lists senders in [routing] followers_senders and AUTH logins in followers_users")
                })?;
                let count = match directory {
                    Some(d) => d.active_follower_count().map_err(unavailable)?,
                    None => 0,
                };
                if count == 0 {
                    return Err((
                        Reason::NoFollowers,
                        Reply::new(550, "5.1.1", format!("<{addr}>: this LINE account has no active followers yet")),
                    ));
                }
                Ok(vec![Recipient::Followers])
            }
            Local::Name(name) => match aliases.get(&name) {
                Some(ids) => {
                    if let Some(access) = alias_access.get(&name) {
                        self.check_access(access, addr, || {
                            format!("alias {name}@; the admin lists senders in [aliases] {name}.senders and AUTH logins in {name}.users")
                        })?;
                    }
                    Ok(ids.clone())
                }
                None => Err((
                    Reason::UnknownRecipient,
                    Reply::new(
                        550,
                        "5.1.1",
                        format!("<{addr}>: no such alias; use a LINE id (U|C|R + 32 lowercase hex) or an alias from [aliases]"),
                    ),
                )),
            },
        }
    }

    /// Refuses a protected recipient to a sender `access` does not list; `what` names the
    /// recipient and the keys that would open it, for the admin reading the bounce.
    fn check_access(&self, access: &RecipientAccess, addr: &str, what: impl FnOnce() -> String) -> Result<(), (Reason, Reply)> {
        if access.allows(&self.from, self.user.as_deref()) {
            return Ok(());
        }
        let who = match &self.user {
            Some(user) => format!("Sender <{}> (login {user:?})", self.from),
            None => format!("Sender <{}>", self.from),
        };
        Err((Reason::BroadcastNotAllowed, Reply::new(550, "5.7.1", format!("<{addr}>: {who} is not allowed to send to {}", what()))))
    }

    fn data_cmd(&mut self, arg: &str, bare_lf: bool) -> Step {
        if self.phase != Phase::Mail {
            return self.error(Reply::new(503, "5.5.1", "Send MAIL first"));
        }
        if !arg.is_empty() {
            return self.error(Reply::new(501, "5.5.4", "DATA takes no argument"));
        }
        if self.rcpts.is_empty() {
            // With PIPELINING the client sends DATA before seeing RCPT's refusals (RFC 2920).
            self.refuse(Reason::NoRecipients, None);
            return Step::Reply(Reply::new(554, "5.5.1", "No valid recipients"));
        }
        self.phase = Phase::Data;
        self.data = Vec::new();
        self.received = 0;
        self.oversize = false;
        // The data starts at a line start; a `DATA` ended by a bare LF counts as a bare line end.
        self.line_start = if bare_lf { LineStart::Bare } else { LineStart::Crlf };
        Step::Reply(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"))
    }

    /// Consumes buffered message data up to the end-of-data line or the end of the buffer.
    fn step_data(&mut self) -> Step {
        let mut pos = 0;
        let buf = std::mem::take(&mut self.buf);
        let mut finished = false;
        while pos < buf.len() {
            let rest = &buf[pos..];
            if self.line_start != LineStart::Mid && rest[0] == b'.' {
                // Decide between the terminator, a lone `.` line and a dot-stuffed line; that
                // may need 3 bytes.
                if rest.len() < 3 && (rest == b"." || rest == b".\r") {
                    break; // wait for more bytes
                }
                if self.line_start == LineStart::Crlf && rest.starts_with(b".\r\n") {
                    pos += 3;
                    finished = true;
                    break;
                }
                // A lone `.` line that is not the terminator (after a bare line end, or ended by
                // a bare LF or CR) is text and keeps its dot: unstuffed it would be an empty
                // line, which ends the headers early. Any other leading dot is stuffing.
                let lone = rest[1] == b'\n' || rest[1] == b'\r';
                if !lone {
                    pos += 1;
                }
                self.line_start = LineStart::Mid;
                continue;
            }
            match memchr::memchr2(b'\r', b'\n', rest) {
                None => {
                    self.append_data(rest);
                    pos = buf.len();
                    self.line_start = LineStart::Mid;
                }
                Some(i) if rest[i] == b'\n' => {
                    // A bare LF: the line ends here, stored as CRLF.
                    self.append_data(&rest[..i]);
                    self.append_data(b"\r\n");
                    pos += i + 1;
                    self.line_start = LineStart::Bare;
                }
                Some(i) if i + 1 == rest.len() => {
                    // A CR at the end of what we have: CRLF or bare CR is decided by the next byte.
                    self.append_data(&rest[..i]);
                    pos += i;
                    self.line_start = LineStart::Mid;
                    break;
                }
                Some(i) if rest[i + 1] == b'\n' => {
                    self.append_data(&rest[..i + 2]);
                    pos += i + 2;
                    self.line_start = LineStart::Crlf;
                }
                Some(i) => {
                    // A bare CR: a line end too, stored as CRLF.
                    self.append_data(&rest[..i]);
                    self.append_data(b"\r\n");
                    pos += i + 1;
                    self.line_start = LineStart::Bare;
                }
            }
        }
        self.buf = buf[pos..].to_vec();
        if !finished {
            return Step::NeedInput;
        }
        if self.oversize {
            self.refuse(Reason::Size, None);
            self.reset_transaction();
            return Step::Reply(Reply::new(
                552,
                "5.3.4",
                format!("Message exceeds the size limit of {} bytes", self.rules.max_message_bytes),
            ));
        }
        self.phase = Phase::Delivering;
        Step::Deliver(Mail {
            from: std::mem::take(&mut self.from),
            rcpts: std::mem::take(&mut self.rcpts),
            channels: std::mem::take(&mut self.lanes),
            urgent: std::mem::take(&mut self.urgent),
            helo: self.helo.clone(),
            user: self.user.clone(),
            data: std::mem::take(&mut self.data),
        })
    }

    fn append_data(&mut self, chunk: &[u8]) {
        if self.oversize || chunk.is_empty() {
            return;
        }
        self.received += chunk.len();
        if self.received > self.rules.max_message_bytes {
            self.oversize = true;
            self.data = Vec::new();
            return;
        }
        self.data.extend_from_slice(chunk);
    }

    /// Message data collected and not yet taken, in bytes.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Hands the message data collected so far to the driver, which keeps it in memory or
    /// spills it to a file (`server.rs`, [`super::inflight`]); [`Step::Deliver`] then carries
    /// only the rest. This is what keeps a session's own memory small whatever the mail's size.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    /// A NOOP, RSET, VRFY or HELP: answered with `reply` until the client has sent too many
    /// without a mail in between.
    fn junk(&mut self, reply: Reply) -> Step {
        self.junk += 1;
        if self.junk > self.rules.max_junk_commands {
            self.phase = Phase::Closed;
            return Step::Close(Reply::new(421, "4.7.0", "Too many commands without a mail, closing connection"));
        }
        Step::Reply(reply)
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "U0123456789abcdef0123456789abcdef";

    fn rules() -> Arc<Rules> {
        Arc::new(base_rules())
    }

    fn base_rules() -> Rules {
        Rules { max_message_bytes: 1000, max_recipients: 3, ..Rules::basic("gw.example", "text.line.example.com") }
    }

    /// Who may send to a protected recipient, from string literals.
    fn access(senders: &[&str], users: &[&str]) -> RecipientAccess {
        let strings = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        RecipientAccess::parse(&strings(senders), &strings(users)).unwrap()
    }

    /// A fixed follower table for unit tests (the server uses the SQLite registry).
    struct Table(Vec<&'static str>);

    impl Directory for Table {
        fn is_active_follower(&self, id: &str) -> Result<bool, DirectoryError> {
            Ok(self.0.contains(&id))
        }
        fn active_follower_count(&self) -> Result<usize, DirectoryError> {
            Ok(self.0.len())
        }
    }

    /// Feeds `input` and collects every step until the session needs input or closes,
    /// answering deliveries with `deliver`.
    fn run(s: &mut Session, input: &[u8], deliver: &mut dyn FnMut(Mail) -> Reply) -> Vec<Step> {
        s.push_input(input);
        let mut out = Vec::new();
        loop {
            match s.step() {
                Step::NeedInput => return out,
                Step::Deliver(mail) => {
                    let reply = deliver(mail.clone());
                    out.push(Step::Deliver(mail));
                    out.push(Step::Reply(s.data_done(reply)));
                }
                step @ Step::Close(_) => {
                    out.push(step);
                    return out;
                }
                // As the driver does: the handshake happens here, and whatever the client
                // pipelined after STARTTLS in the clear is dropped by `tls_started`.
                step @ Step::StartTls(_) => {
                    out.push(step);
                    s.tls_started();
                    return out;
                }
                step => out.push(step),
            }
        }
    }

    fn codes(steps: &[Step]) -> Vec<u16> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Reply(r) | Step::Close(r) | Step::StartTls(r) => Some(r.code),
                _ => None,
            })
            .collect()
    }

    fn ok(_: Mail) -> Reply {
        Reply::new(250, "2.0.0", "Ok")
    }

    #[test]
    fn a_whole_pipelined_transaction() {
        let mut s = Session::new(rules(), Conn::default());
        let input = format!(
            "EHLO client.example\r\nMAIL FROM:<a@b.c> SIZE=100\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n"
        );
        let mut mails = Vec::new();
        let steps = run(&mut s, input.as_bytes(), &mut |m| {
            mails.push(m);
            Reply::new(250, "2.0.0", "Ok")
        });
        assert_eq!(codes(&steps), vec![250, 250, 250, 354, 250, 221]);
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].from, "a@b.c");
        assert_eq!(mails[0].helo, "client.example");
        assert_eq!(mails[0].rcpts, vec![Recipient::User(ID.into())]);
        assert_eq!(mails[0].data, b"Subject: hi\r\n\r\n.dot\r\nbody\r\n");
    }

    #[test]
    fn ehlo_advertises_extensions() {
        let mut s = Session::new(rules(), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\n", &mut ok);
        let Step::Reply(r) = &steps[0] else { panic!("{steps:?}") };
        assert_eq!(
            r.to_wire(),
            b"250-gw.example greets x\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n"
        );
    }

    #[test]
    fn byte_by_byte_input_gives_the_same_mail() {
        let input = format!(
            "HELO x\r\nMAIL FROM:<>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\nA\r\n..\r\n.x\r\n\r\n.\r\n"
        );
        let mut s = Session::new(rules(), Conn::default());
        let mut mails = Vec::new();
        let mut all = Vec::new();
        for b in input.as_bytes() {
            all.extend(run(&mut s, &[*b], &mut |m| {
                mails.push(m);
                Reply::new(250, "2.0.0", "Ok")
            }));
        }
        assert_eq!(codes(&all), vec![250, 250, 250, 354, 250]);
        assert_eq!(mails[0].data, b"A\r\n.\r\nx\r\n\r\n");
        assert_eq!(mails[0].from, "");
    }

    #[test]
    fn order_of_commands_is_enforced() {
        let mut s = Session::new(rules(), Conn::default());
        let steps = run(
            &mut s,
            format!("MAIL FROM:<a@b>\r\nHELO x\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nDATA\r\n").as_bytes(),
            &mut ok,
        );
        // MAIL before HELO; RCPT before MAIL; DATA before MAIL; ok MAIL; nested MAIL; DATA with no rcpt.
        assert_eq!(codes(&steps), vec![503, 250, 503, 503, 250, 503, 554]);
    }

    #[test]
    fn recipients_are_checked_and_counted() {
        let mut s = Session::new(rules(), Conn::default());
        let ids: Vec<String> = (0..4).map(|i| format!("U{i}123456789abcdef0123456789abcdef")).collect();
        let mut input = String::from("EHLO x\r\nMAIL FROM:<a@b>\r\n");
        input += "RCPT TO:<someone@gmail.com>\r\n";
        input += "RCPT TO:<bogus@text.line.example.com>\r\n";
        for id in &ids {
            input += &format!("RCPT TO:<{id}@text.line.example.com>\r\n");
        }
        input += &format!("RCPT TO:<{}@TEXT.LINE.EXAMPLE.COM>\r\n", ids[0]); // past the limit, even a duplicate
        input += &format!("RCPT TO:<{}@text.line.example.com> NOTIFY=NEVER\r\n", ids[0]);
        let steps = run(&mut s, input.as_bytes(), &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 550, 550, 250, 250, 250, 452, 452, 555]);
        let Step::Reply(relay) = &steps[2] else { panic!() };
        assert_eq!(relay.status, "5.7.1");
        let Step::Reply(bad) = &steps[3] else { panic!() };
        assert_eq!(bad.status, "5.1.1");
    }

    #[test]
    fn aliases_followers_and_require_follower() {
        const OTHER: &str = "U1111111111111111111111111111111f";
        let group = format!("C{}", &ID[1..]);
        let mut r = base_rules();
        r.aliases.insert("ops".into(), vec![Recipient::User(ID.into()), Recipient::Group(group.clone())]);
        r.require_follower = true;
        r.directory = Some(Arc::new(Table(vec![ID])));
        r.followers_access = access(&["a@b"], &[]);
        let mut s = Session::new(Arc::new(r), Conn::default());
        let input = format!(
            "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<OPS@text.line.example.com>\r\nRCPT TO:<nope@text.line.example.com>\r\nRCPT TO:<{OTHER}@text.line.example.com>\r\nRCPT TO:<{group}@text.line.example.com>\r\nRCPT TO:<followers@text.line.example.com>\r\nDATA\r\nx\r\n.\r\n"
        );
        let mut mails = Vec::new();
        let steps = run(&mut s, input.as_bytes(), &mut |m| {
            mails.push(m);
            Reply::new(250, "2.0.0", "Ok")
        });
        // ops (2 ids), nope (unknown alias), OTHER (not a follower), the group again (already in
        // via ops: one delivery), followers: 3 RCPTs accepted = the limit.
        assert_eq!(codes(&steps), vec![250, 250, 250, 550, 550, 250, 250, 354, 250]);
        let Step::Reply(unknown) = &steps[3] else { panic!() };
        assert!(unknown.to_string().contains("no such alias"), "{unknown}");
        let Step::Reply(not_follower) = &steps[4] else { panic!() };
        assert!(not_follower.to_string().contains("not a follower"), "{not_follower}");
        assert_eq!(mails[0].rcpts, vec![Recipient::User(ID.into()), Recipient::Group(group), Recipient::Followers]);

        // followers@ with followers, and with none.
        let mut r = base_rules();
        r.directory = Some(Arc::new(Table(vec![ID])));
        r.followers_access = access(&["a@b"], &[]);
        let mut s = Session::new(Arc::new(r), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<followers@text.line.example.com>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 250]);
        assert_eq!(s.rcpts, vec![Recipient::Followers]);
        let mut r = base_rules();
        r.directory = Some(Arc::new(Table(vec![])));
        r.followers_access = access(&["a@b"], &[]);
        let mut s = Session::new(Arc::new(r), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<followers@text.line.example.com>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 550]);
        // Without require_follower any well-formed id is accepted.
        let mut s = Session::new(rules(), Conn::default());
        let steps = run(&mut s, format!("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<{OTHER}@text.line.example.com>\r\n").as_bytes(), &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 250]);
    }

    #[test]
    fn size_is_enforced_before_and_after_data() {
        let mut s = Session::new(rules(), Conn::default());
        let big = "x".repeat(600);
        let input = format!(
            "EHLO x\r\nMAIL FROM:<a@b> SIZE=5000\r\nMAIL FROM:<a@b>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\n{big}\r\n{big}\r\n.\r\nNOOP\r\n"
        );
        let mut delivered = 0;
        let steps = run(&mut s, input.as_bytes(), &mut |_| {
            delivered += 1;
            Reply::new(250, "2.0.0", "Ok")
        });
        assert_eq!(codes(&steps), vec![250, 552, 250, 250, 354, 552, 250]);
        assert_eq!(delivered, 0);
        // The session is usable again after the refusal.
        let steps = run(&mut s, b"MAIL FROM:<a@b>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250]);
    }

    #[test]
    fn huge_command_line_is_bounded_and_answered_once() {
        let mut s = Session::new(rules(), Conn::default());
        let chunk = vec![b'A'; 64 * 1024];
        let mut replies = Vec::new();
        for _ in 0..64 {
            replies.extend(run(&mut s, &chunk, &mut ok));
            assert!(s.buf.len() <= MAX_COMMAND_LINE + chunk.len());
        }
        replies.extend(run(&mut s, b"\r\nNOOP\r\n", &mut ok));
        assert_eq!(codes(&replies), vec![500, 250]);
    }

    #[test]
    fn huge_data_line_is_bounded() {
        let mut s = Session::new(rules(), Conn::default());
        run(&mut s, format!("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\n").as_bytes(), &mut ok);
        let chunk = vec![b'B'; 64 * 1024];
        for _ in 0..64 {
            run(&mut s, &chunk, &mut ok);
            assert!(s.data.len() <= 1000 && s.buf.len() <= 3);
        }
        let steps = run(&mut s, b"\r\n.\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![552]);
    }

    /// Every bare line end before and after the dot that a smuggling attack could use.
    const BARE_FORMS: &[&str] = &["\n.\r\n", "\n.\n", "\r.\n", "\r\n.\n", "\r.\r\n", "\n.\r", "\r.\r", "\n.\r\r\n"];

    /// Feeds `input` `chunk` bytes at a time (1: a client trickling; usize::MAX: pipelined).
    fn run_chunked(s: &mut Session, input: &[u8], chunk: usize) -> (Vec<Step>, Vec<Mail>) {
        let mut mails = Vec::new();
        let mut steps = Vec::new();
        for piece in input.chunks(chunk.min(input.len()).max(1)) {
            steps.extend(run(s, piece, &mut |m| {
                mails.push(m);
                Reply::new(250, "2.0.0", "Ok")
            }));
        }
        (steps, mails)
    }

    /// No stored line end is bare: the text is normalised to CRLF.
    fn all_crlf(data: &[u8]) -> bool {
        data.iter().enumerate().all(|(i, &b)| match b {
            b'\r' => data.get(i + 1) == Some(&b'\n'),
            b'\n' => i > 0 && data[i - 1] == b'\r',
            _ => true,
        })
    }

    #[test]
    fn no_bare_form_ends_the_data_so_nothing_is_smuggled() {
        for form in BARE_FORMS {
            for chunk in [usize::MAX, 1, 7] {
                for data_end in ["\r\n", "\n"] {
                    let mut s = Session::new(rules(), Conn::default());
                    let input = format!(
                        "EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA{data_end}Subject: hi\r\n\r\nA{form}MAIL FROM:<ceo@bank.example>\r\nRCPT TO:<U1111111111111111111111111111111f@text.line.example.com>\r\nDATA\r\nforged\r\n.\r\nQUIT\r\n"
                    );
                    let (steps, mails) = run_chunked(&mut s, input.as_bytes(), chunk);
                    let case = format!("form {form:?}, chunks of {chunk}, DATA ended by {data_end:?}");
                    // The whole rest is the first mail's text: it ends at the one CRLF.CRLF.
                    assert_eq!(mails.len(), 1, "{case}: {steps:?}");
                    assert_eq!(codes(&steps), vec![250, 250, 250, 354, 250, 221], "{case}");
                    let data = String::from_utf8_lossy(&mails[0].data).into_owned();
                    assert_eq!(mails[0].rcpts.len(), 1, "{case}");
                    assert!(data.contains("MAIL FROM:<ceo@bank.example>\r\n") && data.contains("forged\r\n"), "{case}: {data:?}");
                    assert!(all_crlf(&mails[0].data), "{case}: bare line end kept in {data:?}");
                }
            }
        }
    }

    #[test]
    fn bare_line_ends_are_stored_as_crlf_and_dots_unstuffed() {
        let mut s = Session::new(rules(), Conn::default());
        let input = format!(
            "EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<{ID}@text.line.example.com>\nDATA\nSubject: s\n\nline1\rline2\n..stuffed\r\n..crlf stuffed\r\n.\n.\r\n.\r\n"
        );
        let (steps, mails) = run_chunked(&mut s, input.as_bytes(), usize::MAX);
        assert_eq!(codes(&steps), vec![250, 250, 250, 354, 250]);
        assert_eq!(mails[0].data, b"Subject: s\r\n\r\nline1\r\nline2\r\n.stuffed\r\n.crlf stuffed\r\n.\r\n.\r\n");
        // A client that speaks only bare LF never ends its data: as with Postfix's `normalize`,
        // it times out rather than ending a mail where a server behind us would not.
        let mut s = Session::new(rules(), Conn::default());
        let input = format!("EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<{ID}@text.line.example.com>\nDATA\nA\n.\nQUIT\n");
        let (steps, mails) = run_chunked(&mut s, input.as_bytes(), usize::MAX);
        assert_eq!((codes(&steps), mails.len()), (vec![250, 250, 250, 354], 0));
        assert!(s.in_data());
    }

    #[test]
    fn the_size_limit_counts_data_the_driver_took() {
        let mut s = Session::new(rules(), Conn::default());
        run(&mut s, format!("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\n").as_bytes(), &mut ok);
        let mut taken = 0;
        for n in [400, 400, 200] {
            run(&mut s, &vec![b'x'; n], &mut ok);
            taken += s.take_data().len();
        }
        assert_eq!((taken, s.data_len()), (1000, 0), "the rules allow 1000 bytes");
        // One byte more than the rules allow, though the session itself holds none of the rest.
        let steps = run(&mut s, b"y\r\n.\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![552]);
    }

    #[test]
    fn junk_commands_close_the_session_and_a_mail_resets_the_count() {
        let r = Rules { max_junk_commands: 3, ..base_rules() };
        let mut s = Session::new(Arc::new(r), Conn::default());
        let mail = format!("MAIL FROM:<a@b>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\nx\r\n.\r\n");
        let steps = run(&mut s, format!("EHLO x\r\nNOOP\r\nRSET\r\nVRFY u\r\n{mail}NOOP\r\nNOOP\r\nHELP\r\nNOOP\r\nNOOP\r\n").as_bytes(), &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 250, 252, 250, 250, 354, 250, 250, 250, 214, 421]);
    }

    #[test]
    fn rset_noop_vrfy_help_and_unknown() {
        let mut s = Session::new(rules(), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRSET\r\nRCPT TO:<x@y>\r\nNOOP\r\nVRFY u\r\nHELP\r\nFOO\r\nEXPN x\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 250, 503, 250, 252, 214, 500, 502]);
    }

    #[test]
    fn delivery_refusals_are_passed_through_and_reset_the_transaction() {
        let mut s = Session::new(rules(), Conn::default());
        let input = format!("EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\nx\r\n.\r\nRCPT TO:<{ID}@text.line.example.com>\r\n");
        let steps = run(&mut s, input.as_bytes(), &mut |_| Reply::new(451, "4.4.1", "LINE unreachable"));
        assert_eq!(codes(&steps), vec![250, 250, 250, 354, 451, 503]);
    }

    #[test]
    fn too_many_errors_close_the_session() {
        let mut s = Session::new(rules(), Conn::default());
        let steps = run(&mut s, "BAD\r\n".repeat(25).as_bytes(), &mut ok);
        assert_eq!(steps.len(), DEFAULT_MAX_ERRORS as usize);
        assert!(matches!(steps.last(), Some(Step::Close(r)) if r.code == 421));
    }

    #[test]
    fn bad_mail_parameters() {
        let mut s = Session::new(rules(), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b> SIZE=abc\r\nMAIL FROM:<a@b> RET=FULL\r\nMAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8 AUTH=<>\r\nMAIL TO:<a@b>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 501, 555, 250, 503]);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_never_accept_foreign_recipients() {
        // A small deterministic fuzz loop; the cargo-fuzz target does this at scale.
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let words: &[&[u8]] = &[b"EHLO x\r\n", b"MAIL FROM:<a@b>\r\n", b"RCPT TO:<u@gmail.com>\r\n", b"DATA\r\n", b".\r\n", b"\r\n", b"\n", b".", b"RSET\r\n", b"\xff\xfe", b"RCPT TO:<U0123456789abcdef0123456789abcdef@evil.com>\r\n"];
        for _ in 0..2000 {
            let mut s = Session::new(rules(), Conn::default());
            let mut input = Vec::new();
            for _ in 0..20 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                input.extend_from_slice(words[(seed % words.len() as u64) as usize]);
            }
            run(&mut s, &input, &mut |m| {
                assert!(m.rcpts.is_empty() || m.rcpts.iter().all(|r| r.id().len() == 33));
                Reply::new(250, "2.0.0", "Ok")
            });
            assert!(s.rcpts.is_empty(), "foreign recipient accepted from {input:?}");
        }
    }

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn ehlo_lines(steps: &[Step]) -> Vec<String> {
        match steps.last() {
            Some(Step::Reply(r)) => r.lines.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn secure_rules(auth: AuthMode) -> Rules {
        Rules { tls_available: true, auth, ..base_rules() }
    }

    #[test]
    fn starttls_is_offered_resets_the_session_and_drops_injected_commands() {
        let mut s = Session::new(Arc::new(secure_rules(AuthMode::Optional)), Conn::default());
        let lines = ehlo_lines(&run(&mut s, b"EHLO x\r\n", &mut ok));
        assert!(lines.contains(&"STARTTLS".to_owned()));
        assert!(!lines.iter().any(|l| l.starts_with("AUTH")), "no AUTH in the clear: {lines:?}");
        // A command pipelined after STARTTLS in the clear must not run inside TLS.
        let steps = run(&mut s, b"STARTTLS\r\nMAIL FROM:<evil@x>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![220]);
        assert!(s.is_tls());
        // After the handshake the client starts again with EHLO.
        assert_eq!(codes(&run(&mut s, b"MAIL FROM:<a@b>\r\n", &mut ok)), vec![503]);
        let lines = ehlo_lines(&run(&mut s, b"EHLO x\r\n", &mut ok));
        assert!(!lines.contains(&"STARTTLS".to_owned()));
        assert!(lines.contains(&"AUTH PLAIN LOGIN".to_owned()));
        assert_eq!(codes(&run(&mut s, b"STARTTLS\r\n", &mut ok)), vec![503]);
    }

    #[test]
    fn starttls_without_a_certificate_and_with_an_argument() {
        let mut s = Session::new(rules(), Conn::default());
        assert_eq!(codes(&run(&mut s, b"EHLO x\r\nSTARTTLS\r\n", &mut ok)), vec![250, 502]);
        let mut s = Session::new(Arc::new(secure_rules(AuthMode::Off)), Conn::default());
        assert_eq!(codes(&run(&mut s, b"STARTTLS\r\n", &mut ok)), vec![503]);
        assert_eq!(codes(&run(&mut s, b"EHLO x\r\nSTARTTLS now\r\n", &mut ok)), vec![250, 501]);
    }

    #[test]
    fn require_tls_refuses_mail_in_the_clear() {
        let r = Rules { require_tls: true, ..secure_rules(AuthMode::Off) };
        let mut s = Session::new(Arc::new(r), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 530]);
        let Step::Reply(r) = &steps[1] else { panic!() };
        assert_eq!(r.status, "5.7.0");
        run(&mut s, b"STARTTLS\r\n", &mut ok);
        assert_eq!(codes(&run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\n", &mut ok)), vec![250, 250]);
    }

    #[test]
    fn auth_plain_with_and_without_initial_response() {
        let conn = Conn { tls: true, must_auth: true, ip: None };
        let mut s = Session::new(Arc::new(secure_rules(AuthMode::Required)), conn.clone());
        // Before AUTH, MAIL is refused.
        assert_eq!(codes(&run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\n", &mut ok)), vec![250, 530]);
        let steps = run(&mut s, format!("AUTH PLAIN {}\r\n", b64("\0cms\0pw")).as_bytes(), &mut ok);
        let Some(Step::Authenticate(c)) = steps.last() else { panic!("{steps:?}") };
        assert_eq!((c.user.as_str(), c.password.expose()), ("cms", "pw"));
        assert_eq!(codes(&[s.auth_done(true)]), vec![235]);
        assert_eq!(s.user(), Some("cms"));
        let steps = run(&mut s, b"AUTH PLAIN\r\nMAIL FROM:<a@b>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![503, 250], "already authenticated; mail goes on");
        // Logging in never buys relaying: foreign recipients are refused as before.
        let steps = run(&mut s, b"RCPT TO:<victim@gmail.com>\r\nRCPT TO:<victim%gmail.com@text.line.example.com>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![550, 550]);

        let mut s = Session::new(Arc::new(secure_rules(AuthMode::Required)), conn);
        let steps = run(&mut s, b"EHLO x\r\nAUTH PLAIN\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 334]);
        let steps = run(&mut s, format!("{}\r\n", b64("\0cms\0bad")).as_bytes(), &mut ok);
        assert!(matches!(steps.last(), Some(Step::Authenticate(_))));
        let failed = s.auth_done(false);
        assert!(matches!(&failed, Step::Reply(r) if r.code == 535 && r.status == "5.7.8"), "{failed:?}");
        assert_eq!(s.user(), None);
        assert_eq!(codes(&run(&mut s, b"MAIL FROM:<a@b>\r\n", &mut ok)), vec![530]);
    }

    #[test]
    fn busy_auth_is_a_transient_454_and_the_session_goes_on() {
        let conn = Conn { tls: true, must_auth: false, ip: None };
        let mut s = Session::new(Arc::new(secure_rules(AuthMode::Optional)), conn);
        let steps = run(&mut s, format!("EHLO x\r\nAUTH PLAIN {}\r\n", b64("\0cms\0pw")).as_bytes(), &mut ok);
        assert!(matches!(steps.last(), Some(Step::Authenticate(_))));
        let busy = s.auth_busy();
        assert_eq!(busy.to_string(), "454 4.7.0 Too many logins being checked; try again later");
        assert_eq!(s.user(), None);
        // Not a failed command: many of them do not close the session, and AUTH may be retried.
        for _ in 0..30 {
            let steps = run(&mut s, format!("AUTH PLAIN {}\r\n", b64("\0cms\0pw")).as_bytes(), &mut ok);
            assert!(matches!(steps.last(), Some(Step::Authenticate(_))), "{steps:?}");
            s.auth_busy();
        }
        assert_eq!(codes(&run(&mut s, b"MAIL FROM:<a@b>\r\n", &mut ok)), vec![250]);
    }

    #[test]
    fn auth_login_cancel_and_garbage() {
        let conn = Conn { tls: true, must_auth: false, ip: None };
        let mut s = Session::new(Arc::new(secure_rules(AuthMode::Optional)), conn);
        let steps = run(&mut s, b"EHLO x\r\nAUTH LOGIN\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 334]);
        let steps = run(&mut s, format!("{}\r\n{}\r\n", b64("cms"), b64("pw")).as_bytes(), &mut ok);
        assert_eq!(codes(&steps), vec![334]);
        let Some(Step::Authenticate(c)) = steps.last() else { panic!("{steps:?}") };
        assert_eq!((c.user.as_str(), c.password.expose()), ("cms", "pw"));
        s.auth_done(false);
        // Initial response carries the user name.
        let steps = run(&mut s, format!("AUTH LOGIN {}\r\n*\r\n", b64("cms")).as_bytes(), &mut ok);
        assert_eq!(codes(&steps), vec![334, 501]);
        let steps = run(&mut s, b"AUTH PLAIN !!!\r\nAUTH CRAM-MD5\r\nNOOP\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![501, 504, 250]);
        // Optional: no AUTH needed for mail.
        assert_eq!(codes(&run(&mut s, b"MAIL FROM:<a@b>\r\nAUTH PLAIN =\r\n", &mut ok)), vec![250, 503]);
    }

    #[test]
    fn auth_is_refused_in_the_clear_except_on_loopback_when_allowed() {
        let mut s = Session::new(Arc::new(secure_rules(AuthMode::Required)), Conn { must_auth: true, ..Conn::default() });
        let steps = run(&mut s, b"EHLO x\r\nAUTH PLAIN\r\nMAIL FROM:<a@b>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 538, 530]);
        let loopback = Conn { ip: Some("127.0.0.1".parse().unwrap()), must_auth: true, tls: false };
        let r = Rules { allow_plaintext_auth_on_loopback: true, ..secure_rules(AuthMode::Required) };
        let mut s = Session::new(Arc::new(r), loopback);
        let lines = ehlo_lines(&run(&mut s, b"EHLO x\r\n", &mut ok));
        assert!(lines.contains(&"AUTH PLAIN LOGIN".to_owned()), "{lines:?}");
        let remote = Conn { ip: Some("192.0.2.1".parse().unwrap()), must_auth: true, tls: false };
        let r = Rules { allow_plaintext_auth_on_loopback: true, ..secure_rules(AuthMode::Required) };
        let mut s = Session::new(Arc::new(r), remote);
        assert_eq!(codes(&run(&mut s, b"EHLO x\r\nAUTH LOGIN\r\n", &mut ok)), vec![250, 538]);
        let mut s = Session::new(rules(), Conn::default());
        assert_eq!(codes(&run(&mut s, b"EHLO x\r\nAUTH LOGIN\r\n", &mut ok)), vec![250, 502]);
    }

    #[test]
    fn allowed_senders_are_enforced() {
        let senders = SenderList::parse(&["@example.com".into(), "cron@host.example".into()]).unwrap();
        let r = Rules { allowed_senders: senders, ..base_rules() };
        let mut s = Session::new(Arc::new(r), Conn::default());
        let steps = run(
            &mut s,
            b"EHLO x\r\nMAIL FROM:<web@example.com>\r\nRSET\r\nMAIL FROM:<spam@evil.org>\r\nMAIL FROM:<>\r\nMAIL FROM:<cron@host.example>\r\n",
            &mut ok,
        );
        assert_eq!(codes(&steps), vec![250, 250, 250, 550, 550, 250]);
    }

    struct Budget(std::sync::Mutex<u32>);

    impl MailGate for Budget {
        fn try_mail(&self, _: IpAddr) -> Result<(), std::time::Duration> {
            let mut left = self.0.lock().unwrap();
            if *left == 0 {
                return Err(std::time::Duration::from_secs(7));
            }
            *left -= 1;
            Ok(())
        }
    }

    #[test]
    fn mail_rate_gate_answers_450() {
        let r = Rules { mail_gate: Some(Arc::new(Budget(std::sync::Mutex::new(1)))), ..base_rules() };
        let conn = Conn { ip: Some("192.0.2.9".parse().unwrap()), ..Conn::default() };
        let mut s = Session::new(Arc::new(r), conn);
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRSET\r\nMAIL FROM:<a@b>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 250, 450]);
        let Some(Step::Reply(r)) = steps.last() else { panic!() };
        assert!(r.status == "4.7.1" && r.lines[0].contains("7 s"), "{r:?}");
    }

    struct Full(std::sync::atomic::AtomicBool);

    impl crate::storage::SpaceGate for Full {
        fn check(&self) -> Result<(), crate::storage::Shortage> {
            if self.0.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(crate::storage::Shortage::Floor { free: 1, min: 2 });
            }
            Ok(())
        }
    }

    #[test]
    fn a_full_disk_answers_452_at_mail_and_recovers() {
        let full = Arc::new(Full(std::sync::atomic::AtomicBool::new(true)));
        let r = Rules { space_gate: Some(full.clone()), ..base_rules() };
        let mut s = Session::new(Arc::new(r), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 452]);
        let Some(Step::Reply(r)) = steps.last() else { panic!() };
        assert_eq!(r.status, "4.3.1");
        full.0.store(false, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(codes(&run(&mut s, b"MAIL FROM:<a@b>\r\n", &mut ok)), vec![250]);
    }

    #[test]
    fn refused_recipients_count_as_failed_commands() {
        let r = Rules { max_errors: 3, max_recipients: 100, ..base_rules() };
        let mut s = Session::new(Arc::new(r), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@gmail.com>\r\nRCPT TO:<b@gmail.com>\r\nRCPT TO:<c@gmail.com>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 550, 550, 421]);
    }

    /// Feeds one command line at a time; the refusal each one produced, if any.
    fn refusals(s: &mut Session, lines: &[&str]) -> Vec<Option<(Reason, String, Option<String>)>> {
        lines
            .iter()
            .map(|l| {
                run(s, format!("{l}\r\n").as_bytes(), &mut ok);
                s.take_rejection().map(|r| (r.reason, r.from, r.rcpt))
            })
            .collect()
    }

    #[test]
    fn every_refused_mail_and_recipient_has_a_reason() {
        let r = Rules {
            allowed_senders: SenderList::parse(&["@ok.example".to_owned()]).unwrap(),
            max_recipients: 1,
            ..base_rules()
        };
        let mut s = Session::new(Arc::new(r), Conn::default());
        let rcpt = |id: &str| format!("RCPT TO:<{id}@text.line.example.com>");
        let got = refusals(
            &mut s,
            &[
                "EHLO x",
                "RCPT TO:<a@b>", // out of order: a protocol error, not a refusal
                "MAIL FROM:<a@evil.example>",
                "MAIL FROM:<a@ok.example> SIZE=5000",
                "MAIL FROM:<a@ok.example> FOO=1",
                "MAIL FROM:a@ok.example",
                "RCPT TO:<x@gmail.com>",
                "RCPT TO:<nobody@text.line.example.com>",
                "RCPT TO:<>",
                &rcpt(ID),
                &rcpt("U1111111111111111111111111111111f"),
                "NOOP",
            ],
        );
        let from = || "a@ok.example".to_owned();
        assert_eq!(
            got,
            vec![
                None,
                None,
                Some((Reason::SenderNotAllowed, "a@evil.example".into(), None)),
                Some((Reason::Size, from(), None)),
                Some((Reason::Syntax, from(), None)),
                None,
                Some((Reason::RelayDenied, from(), Some("x@gmail.com".into()))),
                Some((Reason::UnknownRecipient, from(), Some("nobody@text.line.example.com".into()))),
                Some((Reason::Syntax, from(), Some("".into()))),
                None,
                Some((Reason::TooManyRecipients, from(), Some("U1111111111111111111111111111111f@text.line.example.com".into()))),
                None,
            ]
        );
        // The data phase: too big, and DATA after every recipient was refused.
        run(&mut s, format!("DATA\r\n{}\r\n.\r\n", "x".repeat(2000)).as_bytes(), &mut ok);
        assert_eq!(s.take_rejection().map(|r| (r.reason, r.from)), Some((Reason::Size, from())));
        let got = refusals(&mut s, &["MAIL FROM:<b@ok.example>", "RCPT TO:<y@gmail.com>", "DATA"]);
        assert_eq!(got[2], Some((Reason::NoRecipients, "b@ok.example".into(), None)));
    }

    #[test]
    fn tls_auth_rate_and_follower_refusals_have_reasons() {
        let tls = Rules { require_tls: true, ..base_rules() };
        let mut s = Session::new(Arc::new(tls), Conn::default());
        assert_eq!(refusals(&mut s, &["EHLO x", "MAIL FROM:<a@b>"])[1].as_ref().map(|r| r.0), Some(Reason::TlsRequired));
        let mut s = Session::new(Arc::new(secure_rules(AuthMode::Required)), Conn { tls: true, must_auth: true, ip: None });
        assert_eq!(refusals(&mut s, &["EHLO x", "MAIL FROM:<a@b>"])[1].as_ref().map(|r| r.0), Some(Reason::AuthRequired));
        let gate = Rules { mail_gate: Some(Arc::new(Budget(std::sync::Mutex::new(0)))), ..base_rules() };
        let mut s = Session::new(Arc::new(gate), Conn { ip: Some("192.0.2.9".parse().unwrap()), ..Conn::default() });
        assert_eq!(refusals(&mut s, &["EHLO x", "MAIL FROM:<a@b>"])[1], Some((Reason::RateLimited, "a@b".into(), None)));
        let mut r = base_rules();
        r.require_follower = true;
        r.directory = Some(Arc::new(Table(vec![])));
        r.followers_access = access(&["a@b"], &[]);
        let mut s = Session::new(Arc::new(r), Conn::default());
        let got = refusals(&mut s, &["EHLO x", "MAIL FROM:<a@b>", &format!("RCPT TO:<{ID}@text.line.example.com>"), "RCPT TO:<followers@text.line.example.com>"]);
        assert_eq!(got[2].as_ref().map(|r| r.0), Some(Reason::NotFollower));
        assert_eq!(got[3].as_ref().map(|r| r.0), Some(Reason::NoFollowers));
    }

    #[test]
    fn the_refusal_that_ends_the_session_is_still_reported() {
        let r = Rules { max_errors: 1, ..base_rules() };
        let mut s = Session::new(Arc::new(r), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<a@gmail.com>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 421]);
        assert_eq!(s.take_rejection().map(|r| r.reason), Some(Reason::RelayDenied));
        assert_eq!(s.take_rejection(), None, "taken once");
    }

    /// Rules with two followers, `followers@` open to `followers_senders`/`followers_users`
    /// as given, and two aliases: `ops` (a table limited to `@corp.example` and login `deploy`)
    /// and `team` (a plain list, open).
    fn broadcast_rules(senders: &[&str], users: &[&str]) -> Rules {
        let mut r = secure_rules(AuthMode::Optional);
        r.directory = Some(Arc::new(Table(vec![ID, "U1111111111111111111111111111111f"])));
        r.followers_access = access(senders, users);
        for name in ["ops", "team"] {
            r.aliases.insert(name.into(), vec![Recipient::User(ID.into())]);
        }
        r.alias_access.insert("ops".into(), access(&["@corp.example"], &["deploy"]));
        r
    }

    /// One transaction from `from`, logged in as `login` if given: the reply to each RCPT and
    /// the refusal it produced.
    fn rcpt_replies(r: Rules, login: Option<&str>, from: &str, rcpts: &[&str]) -> Vec<(Reply, Option<Reason>)> {
        let mut s = Session::new(Arc::new(r), Conn { tls: true, must_auth: false, ip: None });
        assert_eq!(codes(&run(&mut s, b"EHLO x\r\n", &mut ok)), vec![250]);
        if let Some(user) = login {
            let steps = run(&mut s, format!("AUTH PLAIN {}\r\n", b64(&format!("\0{user}\0pw"))).as_bytes(), &mut ok);
            assert!(matches!(steps.last(), Some(Step::Authenticate(_))), "{steps:?}");
            assert_eq!(codes(&[s.auth_done(true)]), vec![235]);
        }
        assert_eq!(codes(&run(&mut s, format!("MAIL FROM:<{from}>\r\n").as_bytes(), &mut ok)), vec![250]);
        rcpts
            .iter()
            .map(|to| {
                let steps = run(&mut s, format!("RCPT TO:<{to}@text.line.example.com>\r\n").as_bytes(), &mut ok);
                let [Step::Reply(reply)] = &steps[..] else { panic!("{steps:?}") };
                (reply.clone(), s.take_rejection().map(|r| r.reason))
            })
            .collect()
    }

    /// `[[channels]]`: shop-a on its own domain (open, one follower, alias `ops`), site-1 and
    /// site-2 sharing one domain told apart by login; a mail as `login` to each address.
    fn channel_transaction(login: Option<&str>, rcpts: &[&str]) -> (Vec<(u16, Option<Reason>, String)>, Option<Mail>) {
        let mut shop = Lane::new("shop-a", "text.line.shop-a.example", &[]);
        shop.directory = Some(Arc::new(Table(vec![ID])));
        shop.aliases.insert("ops".into(), vec![Recipient::User(ID.into())]);
        let mut r = secure_rules(AuthMode::Optional);
        r.require_follower = true;
        let mut site2 = Lane::new("site-2", "cms.example", &["site-2"]);
        site2.directory = Some(Arc::new(Table(vec!["U1111111111111111111111111111111f"])));
        r.channels = vec![shop, Lane::new("site-1", "cms.example", &["site-1"]), site2];
        let mut s = Session::new(Arc::new(r), Conn { tls: true, must_auth: false, ip: None });
        run(&mut s, b"EHLO x\r\n", &mut ok);
        if let Some(user) = login {
            run(&mut s, format!("AUTH PLAIN {}\r\n", b64(&format!("\0{user}\0pw"))).as_bytes(), &mut ok);
            assert_eq!(codes(&[s.auth_done(true)]), vec![235]);
        }
        run(&mut s, b"MAIL FROM:<a@b.example>\r\n", &mut ok);
        let got = rcpts
            .iter()
            .map(|to| {
                let steps = run(&mut s, format!("RCPT TO:<{to}>\r\n").as_bytes(), &mut ok);
                let [Step::Reply(reply)] = &steps[..] else { panic!("{steps:?}") };
                (reply.code, s.take_rejection().map(|r| r.reason), reply.to_string())
            })
            .collect();
        let mut mail = None;
        run(&mut s, b"DATA\r\n", &mut ok);
        run(&mut s, b"Subject: x\r\n\r\nhi\r\n.\r\n", &mut |m| {
            mail = Some(m);
            Reply::new(250, "2.0.0", "ok")
        });
        (got, mail)
    }

    #[test]
    fn channels_are_picked_by_domain_and_on_a_shared_domain_by_login() {
        const OTHER: &str = "U1111111111111111111111111111111f";
        let (got, mail) = channel_transaction(
            Some("site-2"),
            &[
                &format!("{ID}@text.line.shop-a.example"),
                &format!("{OTHER}@text.line.shop-a.example"),
                "ops@text.line.shop-a.example",
                &format!("{OTHER}@CMS.example"),
                &format!("{ID}@cms.example"),
                &format!("{ID}@elsewhere.example"),
                "ops@cms.example",
            ],
        );
        let codes: Vec<_> = got.iter().map(|(c, r, _)| (*c, *r)).collect();
        assert_eq!(
            codes,
            vec![
                (250, None),
                // require_follower asks shop-a's own followers.
                (550, Some(Reason::NotFollower)),
                (250, None),
                // site-2's followers are its own: OTHER follows it, ID only follows shop-a.
                (250, None),
                (550, Some(Reason::NotFollower)),
                (550, Some(Reason::RelayDenied)),
                // shop-a's alias is not site-2's.
                (550, Some(Reason::UnknownRecipient)),
            ]
        );
        let mail = mail.expect("delivered");
        // ops@ reached the same id as ID@ on shop-a: one recipient; OTHER is site-2's.
        assert_eq!(mail.rcpts, vec![Recipient::User(ID.into()), Recipient::User(OTHER.into())]);
        assert_eq!(
            mail.by_channel(),
            vec![(Some("shop-a"), vec![Recipient::User(ID.into())]), (Some("site-2"), vec![Recipient::User(OTHER.into())])]
        );
    }

    #[test]
    fn a_login_not_allowed_on_a_shared_domain_gets_550_5_7_1_and_groups_follow_channels() {
        for login in [Some("stranger"), None] {
            let (got, _) = channel_transaction(login, &[&format!("{ID}@cms.example")]);
            assert_eq!((got[0].0, got[0].1), (550, Some(Reason::ChannelNotAllowed)), "{login:?}");
            assert!(got[0].2.starts_with("550 5.7.1 "), "{}", got[0].2);
            assert!(!got[0].2.contains("site-"), "the bounce names no channel: {}", got[0].2);
        }
        // Groups and channels beyond RCPT: one id on two channels is two recipients.
        let mail = Mail {
            from: String::new(),
            rcpts: vec![Recipient::User(ID.into()), Recipient::User(ID.into()), Recipient::Group(format!("C{}", &ID[1..]))],
            channels: vec!["b".into(), "a".into(), "b".into()],
            urgent: false,
            helo: String::new(),
            user: None,
            data: Vec::new(),
        };
        let groups = mail.by_channel();
        assert_eq!(groups.iter().map(|(n, g)| (*n, g.len())).collect::<Vec<_>>(), vec![(Some("b"), 2), (Some("a"), 1)]);
        let plain = Mail { channels: Vec::new(), ..mail };
        assert_eq!(plain.by_channel(), vec![(None, plain.rcpts.clone())]);
    }

    fn code_and_reason(got: &[(Reply, Option<Reason>)]) -> Vec<(u16, Option<Reason>)> {
        got.iter().map(|(r, reason)| (r.code, *reason)).collect()
    }

    #[test]
    fn followers_is_closed_to_a_stranger_at_rcpt_with_a_message_for_the_admin() {
        let got = rcpt_replies(broadcast_rules(&["@example.com"], &["cms"]), None, "spam@evil.example", &["followers", ID]);
        assert_eq!(code_and_reason(&got), vec![(550, Some(Reason::BroadcastNotAllowed)), (250, None)]);
        let text = got[0].0.to_string();
        assert_eq!(got[0].0.status, "5.7.1");
        assert!(text.contains("<spam@evil.example>") && text.contains("[routing] followers_senders"), "{text}");
        // Closed by default: nothing configured lets nobody in, not even a sender from our domain.
        let got = rcpt_replies(broadcast_rules(&[], &[]), None, "cron@text.line.example.com", &["followers"]);
        assert_eq!(code_and_reason(&got), vec![(550, Some(Reason::BroadcastNotAllowed))]);
    }

    #[test]
    fn followers_is_open_to_listed_senders_addresses_and_domains() {
        let r = || broadcast_rules(&["@example.com", "cron@host.example"], &[]);
        for from in ["web@example.com", "Web@EXAMPLE.COM", "cron@host.example"] {
            let got = rcpt_replies(r(), None, from, &["followers"]);
            assert_eq!(code_and_reason(&got), vec![(250, None)], "{from}");
        }
        for from in ["web@sub.example.com", "root@host.example", "web@example.com.evil.org"] {
            let got = rcpt_replies(r(), None, from, &["followers"]);
            assert_eq!(code_and_reason(&got), vec![(550, Some(Reason::BroadcastNotAllowed))], "{from}");
        }
    }

    #[test]
    fn followers_is_open_to_listed_logins_only() {
        let got = rcpt_replies(broadcast_rules(&["@example.com"], &["cms"]), Some("cms"), "anyone@elsewhere.example", &["followers"]);
        assert_eq!(code_and_reason(&got), vec![(250, None)]);
        let got = rcpt_replies(broadcast_rules(&["@example.com"], &["cms"]), Some("printer"), "anyone@elsewhere.example", &["followers", ID]);
        assert_eq!(code_and_reason(&got), vec![(550, Some(Reason::BroadcastNotAllowed)), (250, None)]);
        assert!(got[0].0.to_string().contains("login \"printer\""), "{}", got[0].0);
    }

    #[test]
    fn the_null_sender_never_reaches_followers() {
        for login in [None, Some("cms")] {
            let r = broadcast_rules(&["@example.com"], &["cms"]);
            let mut s = Session::new(Arc::new(r), Conn { tls: true, must_auth: false, ip: None });
            run(&mut s, b"EHLO x\r\n", &mut ok);
            if let Some(user) = login {
                run(&mut s, format!("AUTH PLAIN {}\r\n", b64(&format!("\0{user}\0pw"))).as_bytes(), &mut ok);
                s.auth_done(true);
            }
            let steps = run(&mut s, b"MAIL FROM:<>\r\nRCPT TO:<followers@text.line.example.com>\r\n", &mut ok);
            assert_eq!(codes(&steps), vec![250, 550], "{login:?}");
            assert_eq!(s.take_rejection().map(|r| (r.reason, r.from)), Some((Reason::BroadcastNotAllowed, String::new())));
        }
    }

    #[test]
    fn alias_tables_are_protected_and_plain_lists_stay_open() {
        let stranger = rcpt_replies(broadcast_rules(&[], &[]), None, "spam@evil.example", &["ops", "OPS", "team", ID]);
        assert_eq!(
            code_and_reason(&stranger),
            vec![(550, Some(Reason::BroadcastNotAllowed)), (550, Some(Reason::BroadcastNotAllowed)), (250, None), (250, None)]
        );
        assert!(stranger[0].0.to_string().contains("[aliases] ops.senders"), "{}", stranger[0].0);
        let listed = rcpt_replies(broadcast_rules(&[], &[]), None, "dev@corp.example", &["ops", "team"]);
        assert_eq!(code_and_reason(&listed), vec![(250, None), (250, None)]);
        let login = rcpt_replies(broadcast_rules(&[], &[]), Some("deploy"), "x@elsewhere.example", &["ops", "followers"]);
        // The alias's login opens the alias, not followers@.
        assert_eq!(code_and_reason(&login), vec![(250, None), (550, Some(Reason::BroadcastNotAllowed))]);
    }

    #[test]
    fn a_refused_broadcast_counts_as_a_failed_command() {
        let r = Rules { max_errors: 2, ..broadcast_rules(&[], &[]) };
        let mut s = Session::new(Arc::new(r), Conn::default());
        let steps = run(&mut s, b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<followers@text.line.example.com>\r\nRCPT TO:<ops@text.line.example.com>\r\n", &mut ok);
        assert_eq!(codes(&steps), vec![250, 250, 550, 421]);
        assert_eq!(s.take_rejection().map(|r| r.reason), Some(Reason::BroadcastNotAllowed));
    }

    /// The mails a session hands over for `input` (after `EHLO x`), with `rules`.
    fn mails_for(rules: Rules, input: &str) -> Vec<Mail> {
        let mut s = Session::new(Arc::new(rules), Conn::default());
        let mut mails = Vec::new();
        run(&mut s, format!("EHLO x\r\n{input}").as_bytes(), &mut |m| {
            mails.push(m);
            Reply::new(250, "2.0.0", "Ok")
        });
        mails
    }

    /// Rules with `ops` → the test id and a group, one follower, and followers@ open to `a@b`.
    fn urgent_rules() -> Rules {
        let mut r = base_rules();
        r.max_recipients = 10;
        r.aliases.insert("ops".into(), vec![Recipient::User(ID.into()), Recipient::Group(format!("C{}", &ID[1..]))]);
        r.directory = Some(Arc::new(Table(vec![ID])));
        r.followers_access = access(&["a@b"], &[]);
        r
    }

    #[test]
    fn an_urgent_rcpt_marks_the_mail_and_reaches_the_same_recipients() {
        let group = format!("C{}", &ID[1..]);
        for (to, want) in [
            (format!("{ID}+urgent"), vec![Recipient::User(ID.into())]),
            (format!("{ID}+URGENT"), vec![Recipient::User(ID.into())]),
            ("ops+urgent".into(), vec![Recipient::User(ID.into()), Recipient::Group(group.clone())]),
            ("Ops+Urgent".into(), vec![Recipient::User(ID.into()), Recipient::Group(group.clone())]),
            ("followers+urgent".into(), vec![Recipient::Followers]),
        ] {
            let mails = mails_for(urgent_rules(), &format!("MAIL FROM:<a@b>\r\nRCPT TO:<{to}@text.line.example.com>\r\nDATA\r\nx\r\n.\r\n"));
            assert_eq!(mails.len(), 1, "{to}");
            assert!(mails[0].urgent, "{to}");
            assert_eq!(mails[0].rcpts, want, "{to}");
        }
    }

    #[test]
    fn one_urgent_rcpt_among_plain_ones_makes_the_mail_urgent_and_dedup_is_unchanged() {
        let group = format!("C{}", &ID[1..]);
        let input = format!(
            "MAIL FROM:<a@b>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nRCPT TO:<{ID}+urgent@text.line.example.com>\r\nRCPT TO:<ops@text.line.example.com>\r\nDATA\r\nx\r\n.\r\n"
        );
        let mails = mails_for(urgent_rules(), &input);
        assert!(mails[0].urgent);
        assert_eq!(mails[0].rcpts, vec![Recipient::User(ID.into()), Recipient::Group(group)]);
    }

    #[test]
    fn plain_mail_is_not_urgent_and_urgency_ends_with_the_transaction() {
        let plain = format!("MAIL FROM:<a@b>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nDATA\r\nx\r\n.\r\n");
        let urgent = format!("MAIL FROM:<a@b>\r\nRCPT TO:<{ID}+urgent@text.line.example.com>\r\nDATA\r\nx\r\n.\r\n");
        let mails = mails_for(urgent_rules(), &format!("{plain}{urgent}{plain}"));
        assert_eq!(mails.iter().map(|m| m.urgent).collect::<Vec<_>>(), vec![false, true, false]);
        // An urgent RCPT before RSET, or in a transaction MAIL restarts, is forgotten.
        let rset = format!("MAIL FROM:<a@b>\r\nRCPT TO:<{ID}+urgent@text.line.example.com>\r\nRSET\r\n{plain}");
        assert_eq!(mails_for(urgent_rules(), &rset).iter().map(|m| m.urgent).collect::<Vec<_>>(), vec![false]);
    }

    #[test]
    fn a_refused_urgent_rcpt_does_not_make_the_mail_urgent() {
        let mut r = urgent_rules();
        r.max_recipients = 1;
        r.require_follower = true;
        const STRANGER: &str = "U1111111111111111111111111111111f";
        let input = format!(
            "MAIL FROM:<a@b>\r\nRCPT TO:<nope+urgent@text.line.example.com>\r\nRCPT TO:<{STRANGER}+urgent@text.line.example.com>\r\nRCPT TO:<ops+other@text.line.example.com>\r\nRCPT TO:<{ID}+urgent@gmail.com>\r\nRCPT TO:<{ID}@text.line.example.com>\r\nRCPT TO:<ops+urgent@text.line.example.com>\r\nDATA\r\nx\r\n.\r\n"
        );
        let mut s = Session::new(Arc::new(r), Conn::default());
        let mut mails = Vec::new();
        let steps = run(&mut s, format!("EHLO x\r\n{input}").as_bytes(), &mut |m| {
            mails.push(m);
            Reply::new(250, "2.0.0", "Ok")
        });
        // Unknown alias, not a follower, another tag, foreign domain; the id; then over the
        // recipient limit (452), so that last +urgent is not accepted either.
        assert_eq!(codes(&steps), vec![250, 250, 550, 550, 550, 550, 250, 452, 354, 250]);
        assert_eq!(mails[0].rcpts, vec![Recipient::User(ID.into())]);
        assert!(!mails[0].urgent);
    }

    #[test]
    fn urgent_opens_no_protected_recipient() {
        let stranger = rcpt_replies(broadcast_rules(&[], &[]), None, "spam@evil.example", &["followers+urgent", "ops+urgent", "OPS+URGENT", "team+urgent"]);
        assert_eq!(
            code_and_reason(&stranger),
            vec![
                (550, Some(Reason::BroadcastNotAllowed)),
                (550, Some(Reason::BroadcastNotAllowed)),
                (550, Some(Reason::BroadcastNotAllowed)),
                (250, None)
            ]
        );
        let listed = rcpt_replies(broadcast_rules(&["@example.com"], &[]), None, "web@example.com", &["followers+urgent"]);
        assert_eq!(code_and_reason(&listed), vec![(250, None)]);
    }
}
