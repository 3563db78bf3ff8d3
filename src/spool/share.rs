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
//! How the nodes together stay under the limit:
//! - Each node's limiter admits no more than its share in any second, stalls included
//!   (`limiter.rs`, the window). In a steady state the shares add up to 19/20 of the limit: the
//!   last twentieth is room for arrivals that the network bunches, and for the floor sends of a
//!   node restarting.
//! - A node that joins sends at the floor (1/s) until every other live node sharing the channel
//!   has counted it: each node acknowledges, every round, the count its share is set for
//!   (`rate_shares`, [`Database::acknowledge_share`]), and the joiner waits until the others'
//!   acknowledgements reach its own count. On a busy machine a node's round can come seconds
//!   late; a timer alone would let the joiner send its share beside the others' old, larger ones.
//!   It also waits [`JOIN_WAIT`] from its start: a gateway restarted under the same name replaces
//!   a process that may have sent its whole share in the second before it was killed.
//! - A node that dies is counted until [`LIVE_WITHIN`] has passed, which only makes the others
//!   slower. A node that cannot write its heartbeat drops to the floor before the others stop
//!   counting it ([`STALE_AFTER`]): they take its share then, so it must have given it up.

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

/// How long a node that has just started beside others sends at the floor at least: longer than
/// the second a predecessor under its name (killed just before this start) may have sent its
/// share in. The others' acknowledgements are waited for besides.
pub const JOIN_WAIT: Duration = Duration::from_secs(2);

/// How long a round's database work may take before the round counts as failed: the loop must
/// go on, to notice a heartbeat gone stale ([`STALE_AFTER`]) while the database hangs.
const ROUND_TIMEOUT: Duration = HEARTBEAT;

/// A node whose last written heartbeat began this long ago drops to the floor. The others stop
/// counting it at [`LIVE_WITHIN`], measured on the database's clock from a stamp taken after the
/// heartbeat began, and take its share: it must have given it up first. Rounds begin every
/// [`HEARTBEAT`] and fail within `ROUND_TIMEOUT`, so the drop comes before that.
pub const STALE_AFTER: Duration = LIVE_WITHIN.saturating_sub(HEARTBEAT);

/// One node's share of a channel's `limit` requests a second among `nodes` live nodes, never
/// below 1/s (a limit lower than the node count would otherwise stop every node). Alone, a node
/// takes the whole limit, as on SQLite. Shared, the nodes together take 19/20 of it, rounded
/// down: room for arrivals bunched on the way to LINE and for a restarting node's floor sends
/// (see the module doc).
pub fn share(limit: u32, nodes: u32) -> u32 {
    match nodes {
        0 | 1 => limit.max(1),
        n => ((u64::from(limit) * 19 / (20 * u64::from(n))) as u32).max(1),
    }
}

/// Heartbeats and recomputes this node's share of `channel`'s limits until the spool stops,
/// then removes the node's rows.
pub(super) async fn run(inner: Arc<Inner>, db: Database, node: Arc<str>, channel: Arc<str>) {
    let mut every = tokio::time::interval(HEARTBEAT);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let within = i64::try_from(LIVE_WITHIN.as_millis()).unwrap_or(i64::MAX);
    let started = tokio::time::Instant::now();
    // At the floor (`hold_back`) until this node may take its share.
    let mut holding = true;
    // When the last heartbeat that was written began (see STALE_AFTER).
    let mut last_beat: Option<tokio::time::Instant> = None;
    let mut unreachable = false;
    let mut told_waiting = false;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = inner.stopped() => break,
        }
        let began = tokio::time::Instant::now();
        let round = tokio::time::timeout(ROUND_TIMEOUT, async {
            db.heartbeat(&node).await?;
            db.share_round(&node, &channel, within).await
        })
        .await;
        match round {
            Ok(Ok((n, acknowledged))) => {
                last_beat = Some(began);
                if unreachable {
                    info!(node = %node, "rate share: the database answers again");
                    unreachable = false;
                }
                // This node has just written its heartbeat, so it counts at least itself.
                let n = n.max(1);
                // Alone, it need not wait for anyone to make room.
                let may_take = n == 1 || (started.elapsed() >= JOIN_WAIT && acknowledged.is_none_or(|a| a >= n));
                if holding && !may_take {
                    inner.share_nodes.store(n, Ordering::Release);
                    inner.metrics.rate_share_nodes(n);
                    if !told_waiting && started.elapsed() >= 5 * JOIN_WAIT {
                        warn!(node = %node, nodes = n, "rate share: still at 1 request/s, waiting for the other gateways to count this one (their heartbeat rounds are late)");
                        told_waiting = true;
                    }
                } else {
                    apply(&inner, n, std::mem::take(&mut holding));
                }
                // At its share among n, or at the floor: either way no more than its share among
                // n, which is what a joiner waits to hear. A failed write is retried next round.
                let _ = tokio::time::timeout(ROUND_TIMEOUT, db.acknowledge_share(&node, &channel, n)).await;
            }
            failed => {
                if !unreachable {
                    let e = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {} ms", ROUND_TIMEOUT.as_millis()),
                    };
                    warn!(node = %node, nodes = inner.share_nodes.load(Ordering::Acquire), "rate share: cannot heartbeat or count the nodes, keeping the last share for now: {e}");
                    unreachable = true;
                }
                if !holding && last_beat.is_none_or(|b| b.elapsed() >= STALE_AFTER) {
                    warn!(node = %node, "rate share: no heartbeat written for {} s, so the other gateways will stop counting this one and take its share: sending at 1 request/s until the database answers", STALE_AFTER.as_secs());
                    hold_back(&inner);
                    holding = true;
                }
            }
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
        // Shared, the nodes' shares leave a twentieth of the limit free (where the limit
        // allows each node at least one request of room), and little more is wasted.
        for limit in [100u32, 200, 1999, 2000] {
            for nodes in 2..=limit.min(40) / 2 {
                let each = share(limit, nodes);
                if each >= 20 {
                    assert!(each * nodes * 20 <= limit * 19, "{limit} over {nodes}");
                }
                assert!(each * nodes * 20 > limit * 19 - 20 * nodes, "{limit} over {nodes}: not wasted either");
            }
        }
    }
}
