-- Issue #21, `spool/share.rs`: what each node has counted when it set its share of a channel's
-- rate limit. A node that joins the others sends at the floor until every other live node
-- sharing the channel has counted it (`counted` at least the joiner's count), i.e. has lowered
-- its own share: the heartbeat rounds of a busy node may come late, and a joiner that took its
-- share on a timer alone would then send beside the others' old, larger shares.
CREATE TABLE rate_shares (
    channel TEXT NOT NULL,
    node_id TEXT NOT NULL,
    counted INTEGER NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (channel, node_id)
);
