//! The channel's rate limit shared across gateways (issue #21). LINE's limits (2,000 pushes/s,
//! 200 multicasts/s) are per channel, not per gateway; several gateways on one PostgreSQL would
//! each send at the full rate and together exceed it. So each node takes its share: the limit
//! divided by the live nodes, counted from the heartbeat table (`pg/nodes.rs`, stamped and
//! compared on the database's clock).
//!
//! A task per spool on PostgreSQL heartbeats every [`HEARTBEAT`], counts the nodes heard from
//! within [`LIVE_WITHIN`], and sets both limiters to their share ([`share`], never below 1/s).
//! While the database cannot be reached it keeps the last share: a node that cannot heartbeat
//! is soon no longer counted by the others, who then take more, so this errs towards going
//! over; but a node that cannot reach the database also cannot claim new jobs, and what it has
//! in flight is bounded by its workers. When the spool stops cleanly its row is removed, so the
//! others take its share at their next round instead of after [`LIVE_WITHIN`].
//!
//! How close the nodes stay to the limit: in a steady state the shares add up to at most the
//! limit (the division rounds down). A node that joins is seen by the others only at their next
//! round, so it makes room first: it sends at the floor (1/s) from its start until [`JOIN_WAIT`]
//! has passed, by which time every other node has counted it and lowered its own share; only
//! then does it take its share. A node that dies is counted until [`LIVE_WITHIN`] has passed,
//! which only makes the others slower.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::Inner;
use crate::pg::Database;

/// How often a node heartbeats and recomputes its share (the one heartbeat period of `pg`).
pub const HEARTBEAT: Duration = crate::pg::nodes::HEARTBEAT_EVERY;

/// A node not heard from for this long is no longer counted: a few missed heartbeats (a slow
/// database round, a pause) do not make the others double their rate.
pub const LIVE_WITHIN: Duration = Duration::from_millis(crate::pg::nodes::LIVE_WITHIN_MS as u64);

/// How long a node that has just started sends at the floor: two of the others' rounds, so each
/// of them has heartbeat-counted it (a round is [`HEARTBEAT`] plus a database round trip).
pub const JOIN_WAIT: Duration = Duration::from_secs(2);

/// One node's share of a channel's `limit` requests a second among `nodes` live nodes, never
/// below 1/s (a limit lower than the node count would otherwise stop every node). Alone, a node
/// takes the whole limit, as on SQLite. Shared, the nodes together take 19/20 of it, rounded
/// down: each node's limiter lets it run up to 1/20 of its share ahead to catch up with timer
/// lateness (`limiter.rs`), and the channel's limit is the nodes' sum, so the shares leave that
/// room and the nodes together stay under the limit, catching up included.
pub fn share(limit: u32, nodes: u32) -> u32 {
    match nodes {
        0 | 1 => limit.max(1),
        n => ((u64::from(limit) * 19 / (20 * u64::from(n))) as u32).max(1),
    }
}

/// Heartbeats and recomputes this node's share until the spool stops, then removes the row.
pub(super) async fn run(inner: Arc<Inner>, db: Database, node: Arc<str>) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let within = i64::try_from(LIVE_WITHIN.as_millis()).unwrap_or(i64::MAX);
    let mut unreachable = false;
    let joined = tokio::time::Instant::now();
    let mut holding = true;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = inner.stopped() => break,
        }
        let counted = match db.heartbeat(&node).await {
            Ok(()) => db.live_nodes(within).await,
            Err(e) => Err(e),
        };
        match counted {
            Ok(n) => {
                if unreachable {
                    info!(node = %node, "rate share: the database answers again");
                    unreachable = false;
                }
                // This node has just written its heartbeat, so it counts at least itself. Alone, it
                // need not wait for anyone to make room.
                let n = n.max(1);
                if n > 1 && joined.elapsed() < JOIN_WAIT {
                    inner.share_nodes.store(n, Ordering::Release);
                    inner.metrics.rate_share_nodes(n);
                } else {
                    apply(&inner, n, std::mem::take(&mut holding));
                }
            }
            Err(e) if !unreachable => {
                warn!(node = %node, nodes = inner.share_nodes.load(Ordering::Acquire), "rate share: cannot heartbeat or count the nodes, keeping the last share: {e}");
                unreachable = true;
            }
            Err(_) => {}
        }
    }
    if let Err(e) = db.leave(&node).await {
        warn!(node = %node, "rate share: cannot remove this node's heartbeat; the others count it until it is {} s old: {e}", LIVE_WITHIN.as_secs());
    }
}

/// Until the first round: the floor, so a node starting beside others never adds its whole
/// limit to theirs.
pub(super) fn hold_back(inner: &Inner) {
    inner.push_limit.set_rate(1);
    inner.multicast_limit.set_rate(1);
}

/// Sets the limiters to this node's share among `nodes`; logs when it changes.
fn apply(inner: &Inner, nodes: u32, was_holding_back: bool) {
    let before = inner.share_nodes.swap(nodes, Ordering::AcqRel);
    let (push, multicast) = (share(inner.settings.push_per_second, nodes), share(inner.settings.multicast_per_second, nodes));
    inner.push_limit.set_rate(push);
    inner.multicast_limit.set_rate(multicast);
    inner.metrics.rate_share_nodes(nodes);
    if before != nodes || was_holding_back {
        info!(nodes, push_per_second = push, multicast_per_second = multicast, "rate limit shared with the live gateways");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_down_and_never_go_below_one() {
        assert_eq!(share(2000, 1), 2000);
        assert_eq!(share(2000, 0), 2000, "no row yet still counts this node");
        assert_eq!(share(2000, 2), 950);
        assert_eq!(share(2000, 3), 633);
        assert_eq!(share(200, 3), 63);
        assert_eq!(share(2, 3), 1);
        assert_eq!(share(0, 1), 1);
        // Shared, the nodes' shares plus each limiter's catch-up (1/20 of its share, at least
        // one request) never add up to more than the limit (where the limit allows each node
        // its catch-up slot), and little is wasted.
        for limit in [100u32, 200, 1999, 2000] {
            for nodes in 2..=limit.min(40) / 2 {
                let each = share(limit, nodes);
                let catch_up = (each / 20).max(1);
                if each >= 20 {
                    assert!((each + catch_up) * nodes <= limit, "{limit} over {nodes}");
                }
                assert!(each * nodes * 20 > limit * 19 - 20 * nodes, "{limit} over {nodes}: not wasted either");
            }
        }
    }
}
