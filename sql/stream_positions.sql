-- stream_positions.sql: where does the stream stand? The last seq handed
-- out and when, how far back a client can resume, and how many
-- notifications are still waiting to be published.
--
-- Run:
--   psql "$DATABASE_URL" -f sql/stream_positions.sql
--
-- Parameters: none.
--
-- Output, one row (from the view notify.stream_state):
--   last_seq               the last seq handed out: the newest SSE event id
--   last_published_at      when the last batch was published (empty before
--                          the first)
--   last_published_age     how long ago that was, whole seconds
--   truncated_before       retention deleted notifications with seq up to
--                          this value; a client resuming from below it gets
--                          a "truncated" replay status
--   unpublished            notifications without a seq yet (pending,
--                          processing or failed; queue_counts.sql splits them)
--   oldest_unpublished_at  created_at of the oldest of them (empty when none)
--
-- A last_published_age that grows while unpublished > 0 means nothing is
-- publishing: see queue_counts.sql and stuck_processing.sql.
--
-- Cost: the unpublished notifications are found through the unique index on
-- seq, which holds the NULLs too; no table scan.

\set ON_ERROR_STOP on

SELECT last_seq, last_published_at, last_published_age, truncated_before,
       unpublished, oldest_unpublished_at
FROM notify.stream_state;
