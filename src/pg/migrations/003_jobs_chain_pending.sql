-- The chain check of a scan (`spool/store_pg.rs`, `due`: a job goes only as the first pending
-- request of its mail to its target, a correlated min(id)) as one index probe per candidate.
-- Before, the planner, misled by a young table's statistics, answered the check from
-- `jobs_pending_key` (channel only) by reading every pending row for each candidate: 4.4 s for
-- a scan of 500 among 2,000 pending jobs, its claims holding the rows the workers finished.
CREATE INDEX jobs_chain_pending ON jobs (channel, mail_id, target, id) WHERE state = 'pending';
