//! The tokio driver: accepts connections on the plain and implicit-TLS listeners and runs one
//! [`Session`] per connection over the socket.
//!
//! All protocol decisions are in `session.rs` and who may connect in `access.rs`; this file owns
//! only I/O: admission at connect, TLS handshakes (implicit, or after STARTTLS), reading with an
//! idle timeout, writing replies (batched until the session needs input, which is what
//! PIPELINING asks for), checking passwords off the async threads with the per-address delay
//! after a failure, the session limits (making room at the cap by closing silent sessions, see
//! `activity.rs`), the DATA deadline, keeping big mail data within `[smtp] max_inflight_bytes`
//! (`inflight.rs`), and graceful shutdown. It also logs and counts what the
//! session decided: one "recipient rejected" or "mail rejected" line per refusal, with the
//! client's address and the reason.
//!
//! A finished transaction is handed to a [`Deliver`] (in the gateway, `delivery::Gateway`),
//! whose reply ends the DATA phase; this module does not know what delivering means.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use crate::metrics::{Metrics, SessionRefusal};

use super::access::{admit, Admission, AuthMode, ClientList};
use super::activity::{Activity, Tracker, EVICT_AFTER};
pub use super::inflight::Inflight;
use super::inflight::{Body, DRAIN_AT};
use super::auth::Users;
use super::checks::AuthChecks;
use super::peers::Peers;
use super::rejection::Rejection;
use super::reply::Reply;
use super::session::{Conn, Mail, Rules, Session, Step};
use super::tls::Tls;

/// Where a finished transaction goes: the mail the session accepted (its data in hand), from
/// the client at `peer`; the answer is the reply to its DATA. Generic rather than a trait
/// object, so the hand-over costs no allocation on a path that carries thousands of mails a
/// second.
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, mail: Mail, peer: SocketAddr) -> impl Future<Output = Reply> + Send;
}

/// Socket-level limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Sessions at once over all listeners.
    pub max_sessions: usize,
    pub idle_timeout: Duration,
    /// The whole DATA phase, from 354 to the terminator.
    pub data_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Mail data held across sessions, and where the rest spills.
    pub inflight: Arc<Inflight>,
}

/// Who may connect and how they prove it.
pub struct Security {
    /// The certificate for STARTTLS and the implicit-TLS listener.
    pub tls: Option<Arc<Tls>>,
    pub clients: ClientList,
    pub auth: AuthMode,
    pub users: Arc<Users>,
    pub peers: Arc<Peers>,
    /// The bound on password checks running and waiting (`max_auth_checks`, `max_auth_queue`).
    pub checks: Arc<AuthChecks>,
}

/// A listening socket and whether clients speak TLS from the first byte (port 465 style).
pub struct Listener {
    pub socket: TcpListener,
    pub implicit_tls: bool,
}

/// Everything a connection needs, shared by all of them.
struct Shared<D> {
    rules: Arc<Rules>,
    limits: Limits,
    security: Security,
    gateway: Arc<D>,
    slots: Arc<Semaphore>,
    activity: Arc<Activity>,
    metrics: Arc<Metrics>,
}

/// Accepts connections on every listener until `shutdown` turns true, then waits up to
/// `shutdown_grace` for sessions in the middle of a mail. Idle sessions are told 421 and closed
/// at once.
pub async fn serve<D: Deliver>(
    listeners: Vec<Listener>,
    rules: Arc<Rules>,
    limits: Limits,
    security: Security,
    gateway: Arc<D>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_sessions));
    let activity = Arc::new(Activity::default());
    let shared = Arc::new(Shared { rules, limits, security, gateway, slots: slots.clone(), activity, metrics });
    let mut loops = Vec::new();
    for listener in listeners {
        loops.push(tokio::spawn(accept_loop(listener, shared.clone(), shutdown.clone())));
    }
    let _ = shutdown.wait_for(|&stop| stop).await;
    for l in loops {
        let _ = l.await;
    }
    info!("SMTP listener closed; waiting for sessions to finish");
    let all = shared.limits.max_sessions as u32;
    if tokio::time::timeout(shared.limits.shutdown_grace, slots.acquire_many(all)).await.is_err() {
        warn!("shutdown grace period over; closing the remaining SMTP sessions");
    }
}

async fn accept_loop<D: Deliver>(listener: Listener, shared: Arc<Shared<D>>, mut shutdown: watch::Receiver<bool>) {
    let mut trouble = AcceptTrouble::default();
    loop {
        let accepted = tokio::select! {
            a = listener.socket.accept() => a,
            _ = shutdown.wait_for(|&stop| stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => {
                trouble.recovered();
                pair
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning, and log one line a second
                // at most, so running out of descriptors does not also fill the disk.
                let pause = trouble.failed(&e, Instant::now());
                tokio::time::sleep(pause).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // At the cap: close the session silent longest, if one has been silent for EVICT_AFTER,
        // and give its slot to this client; else refuse as before.
        let permit = shared.slots.clone().try_acquire_owned().ok();
        let evicted = permit.is_none() && shared.activity.evict_idle(EVICT_AFTER, Instant::now());
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        let implicit_tls = listener.implicit_tls;
        tokio::spawn(async move {
            let permit = match permit {
                Some(p) => p,
                None if evicted => match tokio::time::timeout(Duration::from_secs(2), shared.slots.clone().acquire_owned()).await {
                    Ok(Ok(p)) => {
                        info!(%peer, "smtp.max_sessions reached; closed a session silent for 30 s or more to make room");
                        p
                    }
                    _ => return too_many(stream, peer, &shared).await,
                },
                None => return too_many(stream, peer, &shared).await,
            };
            if let Err(e) = connection(stream, peer, implicit_tls, &shared, shutdown).await {
                debug!(%peer, "session ended: {e}");
            }
            drop(permit);
        });
    }
}

async fn too_many<D>(stream: TcpStream, peer: SocketAddr, shared: &Shared<D>) {
    shared.metrics.session_refused(SessionRefusal::TooMany);
    info!(%peer, "connection refused: smtp.max_sessions reached");
    refuse(stream, Reply::new(421, "4.3.2", "Too many connections, try again later")).await;
}

/// Failed `accept` calls: how long to pause, and at most one log line a second.
#[derive(Default)]
struct AcceptTrouble {
    pause: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl AcceptTrouble {
    fn failed(&mut self, e: &std::io::Error, now: Instant) -> Duration {
        self.pause = (self.pause * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
        if self.last_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            let more = std::mem::take(&mut self.suppressed);
            warn!("accept failed: {e} ({more} more since the last line); pausing new connections for {} ms (raise LimitNOFILE or lower smtp.max_sessions)", self.pause.as_millis());
            self.last_log = Some(now);
        } else {
            self.suppressed += 1;
        }
        self.pause
    }

    fn recovered(&mut self) {
        self.pause = Duration::ZERO;
    }
}

/// Writes one reply in the clear and closes. (On the implicit-TLS listener a refusal is sent
/// after the handshake instead, so the client can read it.)
async fn refuse(mut stream: TcpStream, reply: Reply) {
    let _ = stream.write_all(&reply.to_wire()).await;
    let _ = stream.shutdown().await;
}

/// How a run of the session loop ended.
enum Ended {
    Closed,
    /// The 220 for STARTTLS is written: hand the socket to the TLS handshake.
    StartTls,
}

async fn connection<D: Deliver>(
    stream: TcpStream,
    peer: SocketAddr,
    implicit_tls: bool,
    shared: &Shared<D>,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let sec = &shared.security;
    let admitted = match admit(&sec.clients, sec.auth, peer.ip()) {
        Admission::Refuse => {
            shared.metrics.session_refused(SessionRefusal::NotAllowed);
            info!(%peer, "connection refused: not in smtp.allowed_clients");
            Err(Reply::new(554, "5.7.1", format!("{} is not allowed to use this gateway", peer.ip())))
        }
        Admission::Admit { must_auth } => match sec.peers.enter(peer.ip()) {
            Some(slot) => Ok((slot, must_auth)),
            None => {
                shared.metrics.session_refused(SessionRefusal::TooManyFromAddress);
                info!(%peer, "connection refused: smtp.max_sessions_per_ip reached");
                Err(Reply::new(421, "4.7.0", "Too many connections from your address, try again later"))
            }
        },
    };
    // `_slot` holds the address's session count until the connection ends.
    let (_slot, must_auth) = match admitted {
        Ok(a) => a,
        Err(reply) => {
            if implicit_tls {
                if let Some(mut tls) = handshake(stream, peer, shared).await {
                    let _ = tls.write_all(&reply.to_wire()).await;
                    let _ = tls.shutdown().await;
                }
            } else {
                refuse(stream, reply).await;
            }
            return Ok(());
        }
    };
    debug!(%peer, implicit_tls, "SMTP session opened");
    let _active = shared.metrics.session_opened();
    let tracker = shared.activity.register(Instant::now());
    let mut session = Session::new(shared.rules.clone(), Conn { ip: Some(peer.ip()), tls: implicit_tls, must_auth });
    if implicit_tls {
        let Some(mut tls) = handshake(stream, peer, shared).await else { return Ok(()) };
        let greeting = session.greeting().to_wire();
        run(&mut tls, &mut session, greeting, peer, shared, &tracker, shutdown).await?;
        let _ = tls.shutdown().await;
        return Ok(());
    }
    let mut plain = stream;
    let greeting = session.greeting().to_wire();
    match run(&mut plain, &mut session, greeting, peer, shared, &tracker, shutdown.clone()).await? {
        Ended::Closed => Ok(()),
        Ended::StartTls => {
            let Some(mut tls) = handshake(plain, peer, shared).await else { return Ok(()) };
            session.tls_started();
            run(&mut tls, &mut session, Vec::new(), peer, shared, &tracker, shutdown).await?;
            let _ = tls.shutdown().await;
            Ok(())
        }
    }
}

/// The server side of a TLS handshake, bounded by the idle timeout. `None` when it failed
/// (logged: a client that cannot do TLS is worth a line for the admin).
async fn handshake<D>(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared<D>,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let tls = shared.security.tls.as_ref()?;
    match tokio::time::timeout(shared.limits.idle_timeout, tls.acceptor().accept(stream)).await {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            info!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            info!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// The one log line and count for a refusal the session decided (refusals after DATA are logged
/// by the delivery layer, which knows the mail id).
fn note_rejection<D>(shared: &Shared<D>, peer: SocketAddr, r: Rejection, reply: &Reply) {
    shared.metrics.mail_rejected(r.reason.as_str());
    let reply = reply.to_string();
    let (from, reason, reply) = (r.from.as_str(), r.reason, reply.as_str());
    match &r.rcpt {
        Some(rcpt) => info!(%peer, from, rcpt = rcpt.as_str(), %reason, reply, "recipient rejected"),
        None => info!(%peer, from, %reason, reply, "mail rejected"),
    }
}

/// Writes the replies batched in `out`, if any.
async fn flush<S: AsyncWrite + Unpin>(stream: &mut S, out: &mut Vec<u8>) -> std::io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out).await?;
        out.clear();
    }
    Ok(())
}

/// Runs the session over `stream` until it closes or asks for STARTTLS. `out` holds replies
/// not yet written (the greeting).
async fn run<S: AsyncRead + AsyncWrite + Unpin, D: Deliver>(
    stream: &mut S,
    session: &mut Session,
    mut out: Vec<u8>,
    peer: SocketAddr,
    shared: &Shared<D>,
    tracker: &Tracker,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<Ended> {
    let mut buf = vec![0u8; 16 * 1024];
    // Mail data the session handed over (see `inflight.rs`), and when its DATA phase began.
    let mut body = Body::new(shared.limits.inflight.clone());
    let mut data_since: Option<Instant> = None;
    loop {
        let step = session.step();
        if let (Some(rejection), Step::Reply(reply) | Step::Close(reply)) = (session.take_rejection(), &step) {
            note_rejection(shared, peer, rejection, reply);
        }
        match step {
            Step::Reply(reply) => out.extend_from_slice(&reply.to_wire()),
            Step::Close(reply) => {
                out.extend_from_slice(&reply.to_wire());
                stream.write_all(&out).await?;
                return Ok(Ended::Closed);
            }
            Step::StartTls(reply) => {
                out.extend_from_slice(&reply.to_wire());
                stream.write_all(&out).await?;
                stream.flush().await?;
                return Ok(Ended::StartTls);
            }
            Step::Authenticate(creds) => {
                flush(stream, &mut out).await?;
                let peers = &shared.security.peers;
                // An address that failed recently waits out its delay before its check is even
                // queued, so a burst of sessions from it cannot buy checks faster than one.
                while let Err(wait) = peers.auth_turn_at(peer.ip(), Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                let user = creds.user.clone();
                let Some(ticket) = shared.security.checks.admit() else {
                    warn!(%peer, user, "AUTH not checked: smtp.max_auth_checks busy and smtp.max_auth_queue full; answering 454");
                    out.extend_from_slice(&session.auth_busy().to_wire());
                    continue;
                };
                let users = shared.security.users.clone();
                // argon2 is ~20 ms of CPU and 19 MiB by design: off the async worker threads,
                // and only `max_auth_checks` at a time.
                let ok = ticket.run(move || users.verify(&creds)).await.unwrap_or(false);
                if ok {
                    peers.auth_succeeded(peer.ip(), &user);
                    info!(%peer, user, "AUTH succeeded");
                } else {
                    shared.metrics.auth_failed();
                    let delay = peers.auth_failed_at(peer.ip(), &user, Instant::now());
                    warn!(%peer, user, "AUTH failed; answering 535 after {} ms", delay.as_millis());
                    tokio::time::sleep(delay).await;
                }
                match session.auth_done(ok) {
                    Step::Close(reply) => {
                        stream.write_all(&reply.to_wire()).await?;
                        return Ok(Ended::Closed);
                    }
                    Step::Reply(reply) => out.extend_from_slice(&reply.to_wire()),
                    _ => {}
                }
            }
            Step::Deliver(mut mail) => {
                // Replies already produced (e.g. 354) must not wait for LINE.
                flush(stream, &mut out).await?;
                data_since = None;
                tracker.busy();
                let taken = std::mem::replace(&mut body, Body::new(shared.limits.inflight.clone()));
                let reply = match taken.finish(std::mem::take(&mut mail.data)).await {
                    Ok((data, _parsing)) => {
                        // `_parsing` holds this mail's share of the budget until it is spooled.
                        mail.data = data;
                        shared.gateway.deliver(mail, peer).await
                    }
                    Err(not_ready) => {
                        warn!(%peer, from = mail.from.as_str(), reply = %not_ready.reply, error = not_ready.detail.as_str(), "mail not accepted: no room for its data");
                        not_ready.reply
                    }
                };
                tracker.idle_from(Instant::now());
                out.extend_from_slice(&session.data_done(reply).to_wire());
            }
            Step::NeedInput => {
                flush(stream, &mut out).await?;
                if session.in_data() {
                    if session.data_len() >= DRAIN_AT {
                        body.push(session.take_data()).await;
                    }
                } else if !body.is_empty() {
                    // The DATA phase ended without a mail (552): forget what it held.
                    body = Body::new(shared.limits.inflight.clone());
                }
                let timeout = match (session.in_data(), data_since) {
                    (true, None) => {
                        data_since = Some(Instant::now());
                        shared.limits.idle_timeout.min(shared.limits.data_timeout)
                    }
                    (true, Some(since)) => shared.limits.idle_timeout.min(shared.limits.data_timeout.saturating_sub(since.elapsed())),
                    (false, _) => {
                        data_since = None;
                        shared.limits.idle_timeout
                    }
                };
                let busy = session.is_busy();
                // `None` means shutdown was requested while the session was idle, or the
                // session was closed to make room for a new one.
                let read = tokio::select! {
                    r = tokio::time::timeout(timeout, stream.read(&mut buf)) => Some(r),
                    _ = async { let _ = shutdown.wait_for(|&stop| stop).await; }, if !busy => None,
                    _ = tracker.kicked() => {
                        let reply = Reply::new(421, "4.4.2", "Idle too long while the gateway is full, closing connection");
                        stream.write_all(&reply.to_wire()).await?;
                        return Ok(Ended::Closed);
                    }
                };
                let Some(read) = read else {
                    let reply = Reply::new(421, "4.3.2", "Server shutting down, try again later");
                    stream.write_all(&reply.to_wire()).await?;
                    return Ok(Ended::Closed);
                };
                if matches!(read, Err(_)) && data_since.is_some_and(|since| since.elapsed() >= shared.limits.data_timeout) {
                    info!(%peer, "DATA took longer than smtp.data_timeout_secs; closing");
                    let reply = Reply::new(421, "4.4.2", "Message data took too long, closing connection");
                    stream.write_all(&reply.to_wire()).await?;
                    return Ok(Ended::Closed);
                }
                if let Ok(Ok(n)) = read {
                    if n > 0 {
                        tracker.touch(Instant::now());
                    }
                }
                match read {
                    Err(_) => {
                        let reply = Reply::new(421, "4.4.2", "Idle timeout, closing connection");
                        stream.write_all(&reply.to_wire()).await?;
                        return Ok(Ended::Closed);
                    }
                    Ok(Ok(0)) => return Ok(Ended::Closed),
                    Ok(Ok(n)) => session.push_input(&buf[..n]),
                    Ok(Err(e)) => return Err(e),
                }
            }
        }
    }
}
