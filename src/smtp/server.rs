//! The tokio driver: accepts connections and runs one [`Session`] per connection over the socket.
//!
//! All protocol decisions are in `session.rs`; this file owns only I/O: reading with an idle
//! timeout, writing replies (batched until the session needs input, which is what PIPELINING
//! asks for), the session limit, and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tracing::{debug, info, warn};

use crate::delivery::Gateway;

use super::reply::Reply;
use super::session::{Rules, Session, Step};

/// Socket-level limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_sessions: usize,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Accepts connections until `shutdown` turns true, then waits up to `shutdown_grace` for
/// sessions in the middle of a mail. Idle sessions are told 421 and closed at once.
pub async fn serve(
    listener: TcpListener,
    rules: Arc<Rules>,
    limits: Limits,
    gateway: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_sessions));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|&stop| stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse_busy(stream));
            continue;
        };
        let (rules, gateway, limits, shutdown) = (rules.clone(), gateway.clone(), limits.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = run_session(stream, peer, rules, &limits, gateway, shutdown).await {
                debug!(%peer, "session ended: {e}");
            }
            drop(permit);
        });
    }
    drop(listener);
    info!("SMTP listener closed; waiting for sessions to finish");
    let all = limits.max_sessions as u32;
    if tokio::time::timeout(limits.shutdown_grace, slots.acquire_many(all)).await.is_err() {
        warn!("shutdown grace period over; closing the remaining SMTP sessions");
    }
}

async fn refuse_busy(mut stream: TcpStream) {
    let reply = Reply::new(421, "4.3.2", "Too many connections, try again later");
    let _ = stream.write_all(&reply.to_wire()).await;
}

async fn run_session(
    mut stream: TcpStream,
    peer: SocketAddr,
    rules: Arc<Rules>,
    limits: &Limits,
    gateway: Arc<Gateway>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    debug!(%peer, "SMTP session opened");
    let mut session = Session::new(rules);
    let mut out = session.greeting().to_wire();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match session.step() {
            Step::Reply(reply) => out.extend_from_slice(&reply.to_wire()),
            Step::Close(reply) => {
                out.extend_from_slice(&reply.to_wire());
                stream.write_all(&out).await?;
                return Ok(());
            }
            Step::Deliver(mail) => {
                // Replies already produced (e.g. 354) must not wait for LINE.
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
                let reply = gateway.deliver(mail).await;
                out.extend_from_slice(&session.data_done(reply).to_wire());
            }
            Step::NeedInput => {
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    out.clear();
                }
                let busy = session.is_busy();
                // `None` means shutdown was requested while the session was idle.
                let read = tokio::select! {
                    r = tokio::time::timeout(limits.idle_timeout, stream.read(&mut buf)) => Some(r),
                    _ = async { let _ = shutdown.wait_for(|&stop| stop).await; }, if !busy => None,
                };
                let Some(read) = read else {
                    let reply = Reply::new(421, "4.3.2", "Server shutting down, try again later");
                    stream.write_all(&reply.to_wire()).await?;
                    return Ok(());
                };
                match read {
                    Err(_) => {
                        let reply = Reply::new(421, "4.4.2", "Idle timeout, closing connection");
                        stream.write_all(&reply.to_wire()).await?;
                        return Ok(());
                    }
                    Ok(Ok(0)) => return Ok(()),
                    Ok(Ok(n)) => session.push_input(&buf[..n]),
                    Ok(Err(e)) => return Err(e),
                }
            }
        }
    }
}
