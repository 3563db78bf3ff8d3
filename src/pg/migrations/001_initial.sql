-- The schema every store needs, for several gateways on one database and several LINE channels
-- in one gateway. It mirrors the SQLite stores (src/spool/store.rs, src/spool/answers.rs,
-- src/followers/mod.rs, src/media/store.rs) and adds what several nodes need:
--   * `channel`: the LINE channel a row belongs to ('' for the single unnamed `[line]` channel);
--     retry keys, quota, followers and webhook events are per channel, as LINE's are.
--   * `claimed_by` / `lease_until` on the rows workers take (jobs, answers): a node claims due
--     rows with FOR UPDATE SKIP LOCKED and a lease; a node that dies leaves its leases to expire,
--     and another takes the row with the same retry key.
--   * `nodes`: heartbeats, so that the nodes can share a channel's rate limit.
-- Times are BIGINT unix milliseconds, as in the SQLite stores. Applied in one transaction by
-- src/pg/migrate.rs, which records it in schema_migrations.

-- One LINE request each: a mail's push, or a sealed batch of held (coalesced) mail.
CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel TEXT NOT NULL DEFAULT '',
    mail_id TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    -- X-Line-Retry-Key: chosen before the first attempt and never changed, on any node.
    retry_key TEXT NOT NULL,
    target TEXT NOT NULL,
    sender TEXT NOT NULL,
    -- The chat it goes to, for coalescing ('' when never coalesced).
    chat TEXT NOT NULL DEFAULT '',
    recipients INTEGER NOT NULL DEFAULT 1,
    mails INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'held', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    first_attempt_at BIGINT,
    -- Due (pending), the end of the coalescing window (held) or when it died (dead).
    next_at BIGINT NOT NULL,
    ambiguous BOOLEAN NOT NULL DEFAULT false,
    quota_exhausted BOOLEAN NOT NULL DEFAULT false,
    last_error TEXT NOT NULL DEFAULT '',
    -- The node working on it, until lease_until; NULL when nobody is.
    claimed_by TEXT,
    lease_until BIGINT
);
-- The dispatcher's scan: a channel's pending jobs by due time.
CREATE INDEX jobs_due ON jobs (channel, next_at, id) WHERE state = 'pending';
-- A mail's requests to one target go out in id order (the chain check of `due`), and the
-- answers' purge asks whether a mail still has jobs.
CREATE INDEX jobs_chain ON jobs (mail_id, target, id);
-- Held requests are sealed per chat.
CREATE INDEX jobs_held ON jobs (channel, chat, id) WHERE state = 'held';
-- Sealing skips a request whose key is already pending (or in sent_keys).
CREATE INDEX jobs_pending_key ON jobs (channel, retry_key) WHERE state = 'pending';
-- Refused for the month's quota: made due again as soon as there is room.
CREATE INDEX jobs_quota ON jobs (channel) WHERE state = 'pending' AND quota_exhausted;
-- Dead letters are purged by when they died.
CREATE INDEX jobs_dead ON jobs (next_at) WHERE state = 'dead';

-- What LINE counted this month, by recipient and by sender (`mail2line quota`); `solo` is what
-- the same mails would have cost without coalescing.
CREATE TABLE usage (
    channel TEXT NOT NULL DEFAULT '',
    month BIGINT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    mails BIGINT NOT NULL DEFAULT 0,
    messages BIGINT NOT NULL DEFAULT 0,
    solo BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, month, kind, key)
);

-- Retry keys of delivered requests, kept as long as LINE keeps them (24 h).
CREATE TABLE sent_keys (
    channel TEXT NOT NULL DEFAULT '',
    retry_key TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (channel, retry_key)
);
CREATE INDEX sent_keys_at ON sent_keys (at);

-- LINE's monthly quota as last read, plus what was counted since: one row per channel.
CREATE TABLE quota (
    channel TEXT PRIMARY KEY,
    month BIGINT NOT NULL,
    lim BIGINT,
    used BIGINT NOT NULL,
    probed_at BIGINT NOT NULL
);

-- One row per gateway (its application_name), rewritten by `Database::probe` for /readyz: one
-- row each, so that nodes probing at once do not wait on each other's row lock.
CREATE TABLE health (
    node TEXT PRIMARY KEY,
    checked_at BIGINT NOT NULL
);

-- What an answer from LINE needs to find its mail: kept once per mail while [replies] is on.
CREATE TABLE mails (
    mail_id TEXT PRIMARY KEY,
    channel TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL,
    reply_to TEXT NOT NULL,
    subject TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX mails_at ON mails (at);

-- The LINE message ids a delivered mail became ('' when LINE gave none), by chat.
CREATE TABLE sent_messages (
    -- Insertion order: the tie-break of "the chat's last mail" (SQLite's rowid).
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel TEXT NOT NULL DEFAULT '',
    line_id TEXT NOT NULL,
    chat TEXT NOT NULL,
    mail_id TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX sent_by_id ON sent_messages (channel, line_id) WHERE line_id <> '';
CREATE INDEX sent_by_chat ON sent_messages (channel, chat, at);
CREATE INDEX sent_by_mail ON sent_messages (mail_id);
CREATE INDEX sent_at ON sent_messages (at);

-- Followers' messages from the webhook, stored before LINE's 200: the answers outbox.
CREATE TABLE answers (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel TEXT NOT NULL DEFAULT '',
    -- webhookEventId: a redelivery is stored once.
    event_id TEXT NOT NULL,
    chat TEXT NOT NULL,
    event TEXT NOT NULL,
    at BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead', 'dropped')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    next_at BIGINT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    sent_to TEXT NOT NULL DEFAULT '',
    -- The outbox worker's claim, as for jobs.
    claimed_by TEXT,
    lease_until BIGINT,
    UNIQUE (channel, event_id)
);
CREATE INDEX answers_due ON answers (next_at, id) WHERE state = 'pending';
CREATE INDEX answers_chat ON answers (channel, chat, state, next_at);
CREATE INDEX answers_done ON answers (state, next_at) WHERE state <> 'pending';

-- The follower registry, per channel.
CREATE TABLE followers (
    channel TEXT NOT NULL DEFAULT '',
    id TEXT NOT NULL,
    -- Insertion order, which listings keep (SQLite's rowid).
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    kind TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    followed_at BIGINT NOT NULL,
    unfollowed_at BIGINT,
    -- The newest event applied: an older follow or unfollow replayed later changes nothing.
    last_event_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (channel, id)
);
CREATE INDEX followers_active ON followers (channel, seq) WHERE active;

-- Webhook event ids already handled, per channel (LINE redelivers).
CREATE TABLE webhook_events (
    channel TEXT NOT NULL DEFAULT '',
    id TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (channel, id)
);
CREATE INDEX webhook_events_seen ON webhook_events (seen_at);

-- Files LINE fetches from /media/<name>: in the database, so that any node behind the load
-- balancer can serve them. The name (128 random bits and the extension) decides the type.
CREATE TABLE media (
    name TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
-- Images and archives are already compressed: store them out of line without trying again.
ALTER TABLE media ALTER COLUMN bytes SET STORAGE EXTERNAL;
CREATE INDEX media_created ON media (created_at);

-- Heartbeats: the live node count by which the nodes share each channel's rate limit.
CREATE TABLE nodes (
    node_id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
CREATE INDEX nodes_seen ON nodes (last_seen);
