-- +goose Up
-- notifyd's schema as it stands before the first release: every table, view,
-- function and trigger in schema notify. Nothing has been released, so the
-- history of how the schema got here is not kept as migrations (it is in the
-- git history, migrations/00001_core.sql to 00012_session_refresh.sql before
-- issue 16); changes from now on are new migrations that only go forward.
--
-- Contents, in order: notifications and their queue items (the insert path
-- and its doorbell), the stream's position (seqs, retention, histories),
-- reads by audience, browser sessions and sign-ins, the inbox, admin views.
--
-- Advisory lock keys (two int4s, class 1852797545): (…, 1) producers hold
-- shared until commit; (…, 2) every busy worker holds shared on its own
-- connection; (…, 3) the publish turn, held while seqs are handed out.

CREATE SCHEMA IF NOT EXISTS notify;
COMMENT ON SCHEMA notify IS 'notifyd: real-time notifications. Insert into notify.notifications to send one; see notify.queue_items for delivery state.';

-- ---------------------------------------------------------------------------
-- Notifications
--
-- What the database accepts, notifyd delivers, the same way on every path.
-- Constraints refuse rows that cannot be delivered consistently: targets
-- that are empty rather than NULL, roles that are NULL, blank, nested or too
-- many, and sizes past the HTTP API's limits. A producer may not preset seq
-- or published_at: only the worker numbers notifications (checked by the
-- enqueue trigger below).
--
-- The limits (bytes): message 4,096; details 16,384; module, action_type,
-- target_user_id, idempotency_key and each role 200; at most 64 roles; data
-- 32,768 as jsonb text. The HTTP API checks the same numbers
-- (internal/notify/validate.go).

-- +goose StatementBegin
CREATE FUNCTION notify.valid_role_list(roles text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT roles IS NULL OR (
        array_ndims(roles) = 1 AND array_lower(roles, 1) = 1
        AND cardinality(roles) BETWEEN 1 AND 64
        AND NOT EXISTS (SELECT 1 FROM unnest(roles) r
                        WHERE r IS NULL OR r !~ '[^[:space:]]' OR octet_length(r) > 200))
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.valid_role_list(text[]) IS 'target_roles rule: NULL, or a one-dimensional list of 1 to 64 roles, none NULL, blank or over 200 bytes.';

CREATE TABLE notify.notifications (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    seq             bigint      UNIQUE,
    target_user_id  text,
    target_roles    text[],
    module          text,
    action_type     text,
    details         text,
    message         text        NOT NULL,
    severity        text        NOT NULL DEFAULT 'medium',
    data            jsonb       NOT NULL DEFAULT '{}',
    idempotency_key text        UNIQUE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    CONSTRAINT notifications_severity_check CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    CONSTRAINT notifications_message_check CHECK (message <> ''),
    CONSTRAINT notifications_data_check CHECK (jsonb_typeof(data) = 'object'),
    CONSTRAINT notifications_published_check CHECK ((seq IS NULL) = (published_at IS NULL)),
    CONSTRAINT notifications_target_user_id_check
        CHECK (target_user_id IS NULL OR (target_user_id ~ '[^[:space:]]' AND octet_length(target_user_id) <= 200)),
    CONSTRAINT notifications_target_roles_check CHECK (notify.valid_role_list(target_roles)),
    CONSTRAINT notifications_message_size_check CHECK (octet_length(message) <= 4096),
    CONSTRAINT notifications_details_size_check CHECK (octet_length(details) <= 16384),
    CONSTRAINT notifications_module_check CHECK (module IS NULL OR (module <> '' AND octet_length(module) <= 200)),
    CONSTRAINT notifications_action_type_check
        CHECK (action_type IS NULL OR (action_type <> '' AND octet_length(action_type) <= 200)),
    CONSTRAINT notifications_idempotency_key_check
        CHECK (idempotency_key IS NULL OR (idempotency_key <> '' AND octet_length(idempotency_key) <= 200)),
    CONSTRAINT notifications_data_size_check CHECK (octet_length(data::text) <= 32768)
);

COMMENT ON TABLE notify.notifications IS 'Every notification ever sent (within the retention period). INSERT a row here to send one: a trigger creates its queue item in the same transaction.';
COMMENT ON COLUMN notify.notifications.id IS 'The notificationId that clients de-duplicate on.';
COMMENT ON COLUMN notify.notifications.seq IS 'Position in the stream and the SSE event id; assigned in commit order when the worker publishes the notification, NULL until then (an INSERT may not set it).';
COMMENT ON COLUMN notify.notifications.target_user_id IS 'Deliver to this user (the token''s sub): NULL, or a non-blank id of at most 200 bytes. NULL together with target_roles: every signed-in user.';
COMMENT ON COLUMN notify.notifications.target_roles IS 'Deliver to users holding any of these roles: NULL, or a one-dimensional list of 1 to 64 non-blank roles of at most 200 bytes each (never ''{}'': NULL means no role). Both targets set: the user, and everyone holding a role.';
COMMENT ON COLUMN notify.notifications.module IS 'The application area the notification comes from (e.g. orders): NULL or 1 to 200 bytes.';
COMMENT ON COLUMN notify.notifications.action_type IS 'What happened (e.g. new_order): NULL or 1 to 200 bytes.';
COMMENT ON COLUMN notify.notifications.details IS 'Longer text shown with the message; at most 16,384 bytes.';
COMMENT ON COLUMN notify.notifications.message IS 'The text shown to the user; required, not empty, at most 4,096 bytes.';
COMMENT ON COLUMN notify.notifications.severity IS 'One of low, medium (default), high, critical.';
COMMENT ON COLUMN notify.notifications.data IS 'Free JSON object delivered to the client as is; at most 32,768 bytes as jsonb text.';
COMMENT ON COLUMN notify.notifications.idempotency_key IS 'A repeated insert or POST with the same key creates nothing new (use INSERT ... ON CONFLICT (idempotency_key) DO NOTHING); NULL or 1 to 200 bytes.';
COMMENT ON COLUMN notify.notifications.created_at IS 'When the notification was inserted.';
COMMENT ON COLUMN notify.notifications.published_at IS 'When the worker published it (assigned its seq); NULL until then (an INSERT may not set it).';

-- Targeting: the replay of one user's history filters on these.
CREATE INDEX notifications_target_user_idx ON notify.notifications (target_user_id, seq) WHERE target_user_id IS NOT NULL;
CREATE INDEX notifications_target_roles_idx ON notify.notifications USING gin (target_roles) WHERE target_roles IS NOT NULL;
-- Broadcasts, read in seq order (see reads by audience below).
CREATE INDEX notifications_broadcast_idx ON notify.notifications (seq)
    WHERE target_user_id IS NULL AND target_roles IS NULL;
-- Publish order follows the heap, so a BRIN (a few bytes per range of
-- pages, cheap for every publish to maintain) still finds "published in the
-- last hour" for admin queries; retention walks notifications by seq.
CREATE INDEX notifications_published_at_idx ON notify.notifications USING brin (published_at) WITH (autosummarize = on);

-- notify.undeliverable_reason(n) and notify.visible_to(n, user, roles) are
-- the one definition of "who may see this" that replay, history, unread
-- counts and the admin SQL share (the live fan-out is the same rule in Go,
-- notify.Target.Matches, and a property test holds the two together). A row
-- that slipped past the constraints (written while one was dropped) is
-- visible to nobody, and the worker and the feed set it aside (its queue
-- item failed, with the reason) instead of stopping on it.
-- +goose StatementBegin
CREATE FUNCTION notify.undeliverable_reason(n notify.notifications) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN n.message IS NULL THEN 'message is NULL'
        WHEN n.severity IS NULL OR n.severity NOT IN ('low', 'medium', 'high', 'critical')
            THEN 'severity is not one of low, medium, high, critical'
        WHEN n.data IS NULL OR jsonb_typeof(n.data) <> 'object' THEN 'data is not a JSON object'
        WHEN n.created_at IS NULL THEN 'created_at is NULL'
        WHEN n.target_user_id = '' THEN 'target_user_id is empty (NULL means no user)'
        WHEN n.target_roles IS NULL THEN NULL
        WHEN cardinality(n.target_roles) = 0 THEN 'target_roles is empty (NULL means no role)'
        WHEN array_ndims(n.target_roles) <> 1 THEN 'target_roles is not a one-dimensional list'
        WHEN array_position(n.target_roles, NULL) IS NOT NULL THEN 'target_roles holds a NULL role'
        WHEN array_position(n.target_roles, '') IS NOT NULL THEN 'target_roles holds an empty role'
    END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.undeliverable_reason(notify.notifications) IS 'Why a row cannot be delivered consistently (it slipped past the constraints), or NULL when it can. Such a row is visible to nobody and its queue item is failed with this reason.';

-- +goose StatementBegin
CREATE FUNCTION notify.visible_to(n notify.notifications, user_id text, roles text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT notify.undeliverable_reason(n) IS NULL
       AND ((n.target_user_id IS NULL AND n.target_roles IS NULL)
            OR n.target_user_id = user_id
            OR n.target_roles && roles)
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.visible_to(notify.notifications, text, text[]) IS 'Who may see a notification: both targets NULL (everyone signed in), or target_user_id is the user, or target_roles names one of the user''s roles; never a row that notify.undeliverable_reason refuses. The one rule replay, history, counts and the admin queries share; inlined by the planner, so indexes still apply.';

-- The targets of a published notification are what it was delivered by;
-- changing them afterwards would make history disagree with what was sent.
-- (Un-number it first: set seq and published_at to NULL, then retry it.)
-- +goose StatementBegin
CREATE FUNCTION notify.forbid_retargeting() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the targets of a published notification cannot change'
        USING ERRCODE = 'check_violation', SCHEMA = 'notify', TABLE = 'notifications',
              CONSTRAINT = 'notifications_published_targets_fixed',
              HINT = 'To send it again to other targets, set seq and published_at to NULL in the same UPDATE, then retry its queue item.';
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER notifications_published_targets_fixed
    BEFORE UPDATE OF target_user_id, target_roles ON notify.notifications
    FOR EACH ROW
    WHEN (OLD.seq IS NOT NULL AND NEW.seq IS NOT NULL
          AND (OLD.target_user_id IS DISTINCT FROM NEW.target_user_id OR OLD.target_roles IS DISTINCT FROM NEW.target_roles))
    EXECUTE FUNCTION notify.forbid_retargeting();

-- ---------------------------------------------------------------------------
-- The queue
--
-- A queue item's due time is the moment it was queued (the INSERT
-- statement's start) rather than its producer's transaction start, and an
-- item that becomes pending again (an admin's repair, a release) is due no
-- earlier than that moment. Workers look for new work among items due in the
-- last moments only (an index range that holds few dead entries, however
-- many there are before it), and sweep the whole queue now and then for what
-- that missed.

CREATE TABLE notify.queue_items (
    id              bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id uuid        NOT NULL UNIQUE REFERENCES notify.notifications (id) ON DELETE CASCADE,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL DEFAULT 3,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_by       text,
    locked_at       timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz,
    CONSTRAINT queue_items_status_check CHECK (status IN ('pending', 'processing', 'sent', 'failed')),
    CONSTRAINT queue_items_attempts_check CHECK (attempts >= 0 AND max_attempts >= 1),
    CONSTRAINT queue_items_lock_check CHECK ((status = 'processing') = (locked_by IS NOT NULL AND locked_at IS NOT NULL))
)
-- Every item is updated once or twice and then left sent: vacuum by a fixed
-- number of dead rows, not by 20% of a table that keeps growing, so the
-- claim's partial index stays small.
WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
      autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 20000);

COMMENT ON TABLE notify.queue_items IS 'Delivery state of each notification: pending until a worker claims it, processing while claimed (leased), then sent, or failed after max_attempts. Repair with UPDATE (see sql/ in the repository).';
COMMENT ON COLUMN notify.queue_items.id IS 'Queue item id, in insertion order.';
COMMENT ON COLUMN notify.queue_items.notification_id IS 'The notification this item delivers (one item per notification).';
COMMENT ON COLUMN notify.queue_items.status IS 'pending: waiting for a worker; processing: claimed by locked_by since locked_at; sent: published; failed: gave up after max_attempts, see last_error.';
COMMENT ON COLUMN notify.queue_items.attempts IS 'Tries so far; a claim counts as a try.';
COMMENT ON COLUMN notify.queue_items.max_attempts IS 'Tries before the item is failed; its default is set from notifyd''s NOTIFY_MAX_ATTEMPTS at start.';
COMMENT ON COLUMN notify.queue_items.next_attempt_at IS 'Not claimed before this time (exponential back-off with jitter after a failure).';
COMMENT ON COLUMN notify.queue_items.locked_by IS 'The worker holding the item while processing (host/pid/worker).';
COMMENT ON COLUMN notify.queue_items.locked_at IS 'When the worker claimed it; past the lease another worker takes it up again.';
COMMENT ON COLUMN notify.queue_items.last_error IS 'Why the last attempt failed.';
COMMENT ON COLUMN notify.queue_items.created_at IS 'When the item was created (with its notification).';
COMMENT ON COLUMN notify.queue_items.updated_at IS 'Last change of status, attempts or lock.';
COMMENT ON COLUMN notify.queue_items.sent_at IS 'When the item was published.';

-- The claim: due pending items in order.
CREATE INDEX queue_items_claim_idx ON notify.queue_items (next_attempt_at, id) WHERE status = 'pending';
-- The lease sweep: items held past their lease.
CREATE INDEX queue_items_processing_idx ON notify.queue_items (locked_at) WHERE status = 'processing';
-- Admin queries on failures.
CREATE INDEX queue_items_failed_idx ON notify.queue_items (updated_at) WHERE status = 'failed';

-- Queue items are created in the inserting transaction, one statement for the
-- whole insert (a transition table), so bulk inserts stay bulk; the item's
-- max_attempts is the column's default. Producers insert; only the worker
-- numbers: checked once per statement, on the same transition table.
-- +goose StatementBegin
CREATE FUNCTION notify.enqueue_notifications() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE seq IS NOT NULL OR published_at IS NOT NULL) THEN
        RAISE EXCEPTION 'new row for relation "notifications" violates check constraint "notifications_unpublished_on_insert"'
            USING ERRCODE = 'check_violation', SCHEMA = 'notify', TABLE = 'notifications',
                  CONSTRAINT = 'notifications_unpublished_on_insert',
                  DETAIL = 'seq and published_at are set by the worker when it publishes; insert them as NULL.';
    END IF;
    INSERT INTO notify.queue_items (notification_id, next_attempt_at) SELECT id, statement_timestamp() FROM new_rows;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.enqueue_notifications() IS 'Creates the queue items of the notifications one INSERT statement added.';

CREATE TRIGGER notifications_enqueue
    AFTER INSERT ON notify.notifications
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION notify.enqueue_notifications();

-- The worker's doorbell. It runs at commit (deferred), once per transaction,
-- and rings only when no worker is busy: a NOTIFY takes a database-wide lock
-- at commit and would cost producers most of their insert rate.
--
-- A worker's busy mark is a session advisory lock, (1852797545, 2) held
-- shared, so it lives exactly as long as the worker's connection: a worker
-- that dies while busy frees the doorbell at once, and marking busy writes
-- nothing. Producers hold (1852797545, 1) shared until commit and ring only
-- if they can take (1852797545, 2) exclusively, i.e. no worker is busy. If
-- they cannot (a worker is busy, one is becoming busy, or another producer
-- is ringing right now), a worker's busy period is under way or about to
-- start, and it ends with the worker waiting for every producer holding the
-- in-flight lock, then looking at the queue once more: nothing waits for the
-- poll.
-- +goose StatementBegin
CREATE FUNCTION notify.wake_worker() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('notify.wake_checked', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('notify.wake_checked', 'on', true);
    PERFORM pg_advisory_xact_lock_shared(1852797545, 1);
    IF pg_try_advisory_xact_lock(1852797545, 2) THEN
        PERFORM pg_notify('notify_queue', '');
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.wake_worker() IS 'Wakes an idle worker when a transaction that inserted notifications commits; skipped while a worker is busy (holds advisory lock 1852797545/2 shared on its connection).';

CREATE CONSTRAINT TRIGGER notifications_wake_worker
    AFTER INSERT ON notify.notifications
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notify.wake_worker();

-- +goose StatementBegin
CREATE FUNCTION notify.queue_item_due_when_pending() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.next_attempt_at := GREATEST(NEW.next_attempt_at, statement_timestamp());
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.queue_item_due_when_pending() IS 'An item that becomes pending again is due no earlier than now: workers look for new work among recently due items, so an admin''s repair is picked up at once.';
CREATE TRIGGER queue_items_due_when_pending BEFORE UPDATE OF status ON notify.queue_items
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status <> 'pending')
    EXECUTE FUNCTION notify.queue_item_due_when_pending();

-- ---------------------------------------------------------------------------
-- The stream's position
--
-- Nothing on the path of every batch rewrites a row, and nothing the workers
-- scan grows with dead tuples: a held snapshot (a forgotten psql session, a
-- long report, pg_dump) keeps vacuum from removing any row version newer
-- than it, and a one-row counter updated by every publish would grow a
-- version chain every reader and publisher walks. So seqs come from a
-- sequence, taken while holding the transaction advisory lock
-- (1852797545, 3) until commit: publishers take seqs one after the other and
-- commit in that order, so seqs become visible in commit order. A publish
-- that rolls back leaves a gap in the seqs, which resumes and the feed read
-- by range do not mind. notify.stream_head is a view: last_seq is the
-- highest committed seq (the seq index's last entry), truncated_before the
-- newest retention mark, a row inserted per retention batch.

CREATE SEQUENCE notify.notification_seq AS bigint;
COMMENT ON SEQUENCE notify.notification_seq IS 'Seqs handed out to published notifications; taken only while holding advisory lock (1852797545, 3) until commit, so they become visible in commit order.';

CREATE TABLE notify.retention_marks (
    seq       bigint      PRIMARY KEY,
    floor     bigint      NOT NULL DEFAULT 0,
    marked_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT retention_marks_floor_check CHECK (floor BETWEEN 0 AND seq)
);
COMMENT ON TABLE notify.retention_marks IS 'How far retention has gone: a row per retention batch that moved it (older ones are removed as new ones come), so no row is rewritten over and over. The newest row counts.';
COMMENT ON COLUMN notify.retention_marks.seq IS 'Retention has deleted notifications with seqs up to this one (some below may remain, if they were locked when their batch ran): a resume from below it is answered with replay "truncated".';
COMMENT ON COLUMN notify.retention_marks.floor IS 'Every notification with a seq up to this one is gone: the next batch starts above it.';
COMMENT ON COLUMN notify.retention_marks.marked_at IS 'When the batch ran.';

CREATE VIEW notify.stream_head AS
SELECT true AS id,
       GREATEST(COALESCE((SELECT max(seq) FROM notify.notifications), 0), t.truncated_before) AS last_seq,
       t.truncated_before,
       (SELECT n.published_at FROM notify.notifications n WHERE n.seq = (SELECT max(seq) FROM notify.notifications)) AS published_at
FROM (SELECT COALESCE((SELECT max(seq) FROM notify.retention_marks), 0) AS truncated_before) t;
COMMENT ON VIEW notify.stream_head IS 'The stream''s position: the highest committed seq and the retention point. Updating last_seq moves the seq sequence (after a restore); updating truncated_before records a retention mark.';
COMMENT ON COLUMN notify.stream_head.id IS 'Always true: there is exactly one row.';
COMMENT ON COLUMN notify.stream_head.last_seq IS 'The highest committed seq (or the retention point when everything was deleted).';
COMMENT ON COLUMN notify.stream_head.truncated_before IS 'Retention has deleted notifications with seq up to this value; a resume from below it is answered with replay "truncated".';
COMMENT ON COLUMN notify.stream_head.published_at IS 'When the notification with the highest seq was published.';

-- ---------------------------------------------------------------------------
-- Histories
--
-- Nothing is skipped silently after a restore or a failover (CONTRACT.md,
-- guarantee 5). A seq is only an SSE event id if it names one notification
-- for good, but a database can go back in time under notifyd: a pg_dump of a
-- live database restored elsewhere, a backup restored over it, an
-- asynchronous replica promoted after its primary died with commits it had
-- not received, a point-in-time recovery. The copy's head is then below
-- seqs that clients have already seen, and it would number new
-- notifications 40, 41, ... which those clients saw as other ones: a client
-- resuming from 46 would get 47 onwards of the copy and silently miss the
-- copy's 40-46.
--
-- So notifyd records each history it numbers on (notify.histories): the
-- cluster's system identifier, the timeline, the database and this table's
-- own oid. Before a connection hands out seqs, notify.enter_history()
-- compares what it runs on with the newest history recorded; when they
-- differ, it moves the seq sequence far past anything a client may have seen
-- on the lost history and records the new history with its first seq. The
-- seqs between the head the copy had (resumed_after) and that first seq
-- were never numbered here: a resume point among them is "lost" (the client
-- saw notifications this database does not have, and may have missed
-- others), which notify.resume_point_state() and the stream's head reads
-- report, so the client is told before it gets what follows.
--
-- Identity, and what a change of each part means:
--   system identifier  set by initdb: another cluster (pg_dump restored
--                      elsewhere, pg_upgrade)
--   database oid       another database of the same cluster (restored into
--                      a new database, CREATE DATABASE ... TEMPLATE)
--   table oid          notify.histories itself was created again: a dump
--                      restored over this database (pg_restore --clean)
--   timeline           a promoted replica or a point-in-time recovery. The
--                      timeline new WAL is written on (from
--                      pg_walfile_name), not pg_control_checkpoint()'s,
--                      which names the old one until the first checkpoint
--                      after a promotion completes.
-- The database's name is kept for the operator only: a rename changes no
-- history.

CREATE TABLE notify.histories (
    id                bigint      GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    system_identifier bigint      NOT NULL,
    timeline          integer     NOT NULL,
    database_oid      oid         NOT NULL,
    database_name     text        NOT NULL,
    table_oid         oid         NOT NULL,
    reason            text        NOT NULL,
    resumed_after     bigint      NOT NULL,
    first_seq         bigint      NOT NULL,
    entered_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT histories_reason_check CHECK (reason IN ('first', 'cluster', 'database', 'restored', 'timeline', 'operator')),
    CONSTRAINT histories_seqs_check CHECK (resumed_after >= 0 AND first_seq > resumed_after)
);
COMMENT ON TABLE notify.histories IS 'Each history notifyd numbered seqs on, newest last: a new one after a restore, a copy or a failover (notify.enter_history()). Seqs above resumed_after and below first_seq were never numbered on this database.';
COMMENT ON COLUMN notify.histories.system_identifier IS 'pg_control_system().system_identifier: the cluster (set by initdb).';
COMMENT ON COLUMN notify.histories.timeline IS 'The timeline WAL was written on: it changes when a replica is promoted or after a point-in-time recovery.';
COMMENT ON COLUMN notify.histories.database_oid IS 'The database''s oid: another one for a copy restored into a new database.';
COMMENT ON COLUMN notify.histories.database_name IS 'The database''s name when the history was entered, for the operator (a rename changes no history).';
COMMENT ON COLUMN notify.histories.table_oid IS 'notify.histories''s own oid: another one when a dump was restored over the database.';
COMMENT ON COLUMN notify.histories.reason IS 'first (nothing recorded before), cluster, database, restored, timeline (what differed from the history before), operator (notify.enter_history(''why'')).';
COMMENT ON COLUMN notify.histories.resumed_after IS 'The stream head (highest committed seq) when the history was entered: where the history before ends on this database.';
COMMENT ON COLUMN notify.histories.first_seq IS 'The first seq this history may hand out. A resume point above resumed_after and below it is lost.';
COMMENT ON COLUMN notify.histories.entered_at IS 'When notifyd entered the history.';

-- +goose StatementBegin
CREATE FUNCTION notify.enter_history(
    operator_reason text DEFAULT NULL,
    OUT entered text, OUT reason text, OUT resumed_after bigint, OUT first_seq bigint)
LANGUAGE plpgsql AS $$
DECLARE
    sys       bigint;
    tli       integer;
    db_oid    oid := (SELECT d.oid FROM pg_database d WHERE d.datname = current_database());
    tbl       oid := 'notify.histories'::regclass;
    newest    notify.histories;
    locked    boolean := false;
    head      bigint;
    numbered  bigint;
BEGIN
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION 'notify.enter_history(): this server is a standby; seqs are handed out on the primary only'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    BEGIN
        SELECT s.system_identifier INTO sys FROM pg_control_system() s;
        tli := ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::integer;
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'notify.enter_history(): role % may not read the cluster''s identity (%)', current_user, SQLERRM
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'notifyd compares the cluster, timeline and database it runs on with the ones it numbered seqs on, so that after a restore or a failover it never reuses a seq.',
                  HINT = format('As a superuser: GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system(), pg_catalog.pg_current_wal_lsn(), pg_catalog.pg_walfile_name(pg_lsn) TO %I;', current_user);
    END;
    LOOP
        SELECT * INTO newest FROM notify.histories h ORDER BY h.id DESC LIMIT 1;
        reason := CASE
            WHEN operator_reason IS NOT NULL THEN 'operator'
            WHEN newest.id IS NULL THEN 'first'
            WHEN newest.system_identifier <> sys THEN 'cluster'
            WHEN newest.database_oid <> db_oid THEN 'database'
            WHEN newest.table_oid <> tbl THEN 'restored'
            WHEN newest.timeline <> tli THEN 'timeline'
        END;
        IF reason IS NULL THEN
            entered := 'same';
            resumed_after := newest.resumed_after;
            first_seq := newest.first_seq;
            RETURN;
        END IF;
        EXIT WHEN locked;
        -- The publish turn: no seq is being handed out or is uncommitted
        -- while we look at the head and move the sequence. Then look again:
        -- another connection may have entered the history meanwhile.
        PERFORM pg_advisory_xact_lock(1852797545, 3);
        locked := true;
    END LOOP;
    SELECT h.last_seq INTO head FROM notify.stream_head h;
    SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END INTO numbered FROM notify.notification_seq s;
    resumed_after := head;
    IF reason = 'first' THEN
        -- Nothing to compare with: this is the history seqs were numbered on.
        first_seq := head + 1;
        entered := 'first';
    ELSE
        -- The lost history may have numbered past this head: by how much is
        -- unknown (a dump's age, a replica's lag), so jump a billion seqs
        -- clear of anything numbered here, on a round number. 2^53 (the
        -- largest integer a JavaScript client holds exactly) leaves room for
        -- millions of such jumps.
        first_seq := (GREATEST(head, numbered, 0) / 1000000000 + 2) * 1000000000;
        IF first_seq > 9007199254740991 THEN
            RAISE EXCEPTION 'notify.enter_history(): the next seq % would pass 2^53', first_seq;
        END IF;
        PERFORM setval('notify.notification_seq', first_seq, false);
        entered := 'new';
    END IF;
    INSERT INTO notify.histories (system_identifier, timeline, database_oid, database_name, table_oid, reason, resumed_after, first_seq)
    VALUES (sys, tli, db_oid, current_database(), tbl, reason, resumed_after, first_seq);
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.enter_history(text) IS 'Run by notifyd on each connection before it hands out seqs: records the first history, or on a restored copy, a promoted replica or after a point-in-time recovery moves the seq sequence past anything a client may have seen and records the new history. entered: same, first or new. SELECT notify.enter_history(''why'') makes an operator''s new history (after restoring data into the existing tables, say).';

-- +goose StatementBegin
CREATE FUNCTION notify.resume_point_state(resume_after bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM notify.histories h WHERE resume_after > h.resumed_after AND resume_after < h.first_seq) THEN 'lost'
        WHEN resume_after > (SELECT h.last_seq FROM notify.stream_head h) THEN 'ahead'
        ELSE 'ok'
    END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.resume_point_state(bigint) IS 'What a client resuming after this seq should be told: ok; lost (the seq was numbered on a history this database lost, after a restore or a failover: the client saw notifications it does not have and may have missed others); ahead (above the stream head).';

-- Updating notify.stream_head still works for admins and restores: last_seq
-- moves the sequence, truncated_before records a mark. last_seq moves the
-- sequence forward only: after a new history the sequence stands far above
-- the highest committed seq, and setting it back would number seqs in the
-- hole that resumes are told is lost, and reuse seqs clients saw on the lost
-- history.
-- +goose StatementBegin
CREATE FUNCTION notify.stream_head_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    next_seq bigint;
BEGIN
    IF NEW.last_seq IS DISTINCT FROM OLD.last_seq THEN
        IF NEW.last_seq IS NULL OR NEW.last_seq < 0 THEN
            RAISE EXCEPTION 'stream_head.last_seq must be a seq (0 or more), not %', NEW.last_seq;
        END IF;
        -- Never below a seq already given or a history's first seq.
        PERFORM pg_advisory_xact_lock(1852797545, 3);
        next_seq := GREATEST(NEW.last_seq, COALESCE((SELECT max(seq) FROM notify.notifications), 0),
                             (SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END FROM notify.notification_seq s));
        PERFORM setval('notify.notification_seq', GREATEST(next_seq, 1), next_seq > 0);
    END IF;
    IF NEW.truncated_before IS DISTINCT FROM OLD.truncated_before THEN
        IF NEW.truncated_before IS NULL OR NEW.truncated_before < 0 THEN
            RAISE EXCEPTION 'stream_head.truncated_before must be a seq (0 or more), not %', NEW.truncated_before;
        END IF;
        -- floor 0: retention's next batch looks from the first seq again.
        DELETE FROM notify.retention_marks;
        INSERT INTO notify.retention_marks (seq) SELECT NEW.truncated_before WHERE NEW.truncated_before > 0;
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.stream_head_update() IS 'UPDATE notify.stream_head: last_seq moves the seq sequence (so new notifications are numbered after it), truncated_before replaces the retention marks.';
CREATE TRIGGER stream_head_update INSTEAD OF UPDATE ON notify.stream_head
    FOR EACH ROW EXECUTE FUNCTION notify.stream_head_update();

-- ---------------------------------------------------------------------------
-- Reads by audience
--
-- Reads by audience: a user's resume, history and unread count read only
-- what the user may see, each kind as an index range in seq order (see
-- internal/postgres/audience.go), whatever else the table holds.
--
-- - The notifications that name a user: notifications_target_user_idx
--   (target_user_id, seq), already there.
-- - Broadcasts: a partial index on seq, written only for broadcasts.
-- - Roles: a btree cannot index the elements of an array, and the GIN index
--   finds rows but not in seq order, so publishing writes one row per role
--   of a notification into notify.notification_roles: once per notification
--   and role, never once per recipient.

CREATE TABLE notify.notification_roles (
    role text   NOT NULL,
    seq  bigint NOT NULL,
    PRIMARY KEY (role, seq)
);
COMMENT ON TABLE notify.notification_roles IS 'One row per role of each published notification, written when it is published: the index by which a user''s role notifications are read in seq order. Rows of deleted notifications are removed by retention and are harmless meanwhile (reads join notify.notifications).';
COMMENT ON COLUMN notify.notification_roles.role IS 'A role named in the notification''s target_roles.';
COMMENT ON COLUMN notify.notification_roles.seq IS 'The notification''s seq.';
-- Retention removes rows by seq range; seqs arrive in order, so a BRIN is enough.
CREATE INDEX notification_roles_seq_idx ON notify.notification_roles USING brin (seq);

-- ---------------------------------------------------------------------------
-- Browser sessions and sign-ins
--
-- Browser sign-in: sessions live in the database so that logout and expiry
-- take effect on every node at once.

CREATE TABLE notify.sessions (
    id           uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    token_hash   bytea       NOT NULL UNIQUE,
    user_id      text        NOT NULL,
    roles        text[]      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    refresh_token         text,
    refreshed_at          timestamptz NOT NULL DEFAULT now(),
    refresh_claimed_until timestamptz,
    CONSTRAINT sessions_expiry_check CHECK (expires_at > created_at)
);
COMMENT ON TABLE notify.sessions IS 'Signed-in browser sessions. The cookie holds a random secret; only its SHA-256 is stored. DELETE a row to sign that browser out everywhere.';
COMMENT ON COLUMN notify.sessions.id IS 'Public id of the session (logs, the logout broadcast).';
COMMENT ON COLUMN notify.sessions.token_hash IS 'SHA-256 of the secret in the session cookie.';
COMMENT ON COLUMN notify.sessions.user_id IS 'The signed-in user (the ID token''s sub).';
COMMENT ON COLUMN notify.sessions.created_at IS 'When the user signed in.';
COMMENT ON COLUMN notify.sessions.expires_at IS 'The session ends at this time; its streams are closed then.';
COMMENT ON COLUMN notify.sessions.roles IS 'The user''s roles (from OIDC_ROLES_CLAIM), as of refreshed_at: read at sign-in, and again at each refresh.';
COMMENT ON COLUMN notify.sessions.refresh_token IS 'The issuer''s refresh token for this session, replaced when the issuer rotates it; null when the issuer gave none (then the roles stay those of the sign-in). Bound to notifyd''s client: useless without OIDC_CLIENT_SECRET for a confidential client.';
COMMENT ON COLUMN notify.sessions.refreshed_at IS 'When user and roles were last read from an ID token: the sign-in, then each refresh. A session with a refresh token is refreshed once this is older than NOTIFY_SESSION_REFRESH.';
COMMENT ON COLUMN notify.sessions.refresh_claimed_until IS 'A node is refreshing this session, or its last attempt failed for want of the issuer; no other attempt before this time, so a rotating refresh token is never sent twice.';
CREATE INDEX sessions_user_idx ON notify.sessions (user_id);
CREATE INDEX sessions_expires_idx ON notify.sessions (expires_at);

CREATE TABLE notify.login_attempts (
    state         text        PRIMARY KEY,
    nonce         text        NOT NULL,
    code_verifier text        NOT NULL,
    redirect_path text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
COMMENT ON TABLE notify.login_attempts IS 'Sign-ins in progress (between /auth/login and /auth/callback); each is used once.';
COMMENT ON COLUMN notify.login_attempts.state IS 'The OAuth2 state sent to the issuer, also in the browser''s login cookie.';
COMMENT ON COLUMN notify.login_attempts.nonce IS 'The OpenID Connect nonce the ID token must carry.';
COMMENT ON COLUMN notify.login_attempts.code_verifier IS 'The PKCE code verifier for the code exchange.';
COMMENT ON COLUMN notify.login_attempts.redirect_path IS 'The local path to return to after sign-in.';
COMMENT ON COLUMN notify.login_attempts.created_at IS 'When the sign-in started.';
COMMENT ON COLUMN notify.login_attempts.expires_at IS 'The sign-in must finish before this time.';
CREATE INDEX login_attempts_expires_idx ON notify.login_attempts (expires_at);

-- Deleting a row of notify.sessions signs that browser out everywhere, as the
-- table's comment says, however the row goes: POST /auth/logout, an admin's
-- DELETE, a script. A trigger announces the ended sessions on the channel
-- notify_session, and every node closes their streams.
--
-- One NOTIFY per chunk of 200 ids per statement, not one per row: deleting
-- 100,000 sessions in one statement sends 500, each payload ids separated by
-- commas, 200 * 37 - 1 = 7,399 bytes, under the 8,000-byte NOTIFY limit.
-- Sessions that had already expired are not announced: their streams closed
-- at expiry on their own, and notifyd's own purge of expired sessions then
-- sends nothing.

-- +goose StatementBegin
CREATE FUNCTION notify.announce_ended_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    FOR ids IN
        SELECT string_agg(id::text, ',')
        FROM (SELECT id, (row_number() OVER () - 1) / 200 AS chunk
              FROM ended WHERE expires_at > now()) live
        GROUP BY chunk
    LOOP
        PERFORM pg_notify('notify_session', ids);
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.announce_ended_sessions() IS 'Announces deleted, unexpired sessions on channel notify_session (ids separated by commas, at most 200 per NOTIFY) so every node closes their streams.';

CREATE TRIGGER sessions_announce_end
    AFTER DELETE ON notify.sessions
    REFERENCING OLD TABLE AS ended
    FOR EACH STATEMENT EXECUTE FUNCTION notify.announce_ended_sessions();

-- A browser session's roles are re-read from the issuer while it lives,
-- not fixed at sign-in for the whole NOTIFY_SESSION_TTL. When the issuer
-- gives a refresh token at sign-in (Hydra and Dex do when
-- OIDC_SCOPES has offline_access), the session keeps it, and once its roles
-- are older than NOTIFY_SESSION_REFRESH a node uses it (the refresh token
-- grant) for a new ID token, verified as at sign-in, whose roles replace the
-- session's. An issuer that refuses the grant (the user was removed, the
-- grant revoked) ends the session: the row is deleted and the trigger above
-- (sessions_announce_end) closes its streams everywhere.
--
-- A session whose roles change must not keep streams opened with the old
-- ones (a removed role would still receive its notifications). A trigger
-- announces every session whose user or roles an UPDATE changed, whoever
-- runs it (notifyd's refresh, an admin's UPDATE), on the channel
-- notify_session_changed; every node closes those sessions' streams, and the
-- browsers reconnect with the same cookie and the new roles. Payload and
-- chunking as for notify_session: ids separated by commas, at most 200 per
-- NOTIFY. Roles are compared as sets: a reordering changes nothing.

-- +goose StatementBegin
CREATE FUNCTION notify.announce_changed_sessions() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    FOR ids IN
        SELECT string_agg(id::text, ',')
        FROM (SELECT a.id, (row_number() OVER () - 1) / 200 AS chunk
              FROM after_update a JOIN before_update b USING (id)
              WHERE a.expires_at > now()
                AND (a.user_id IS DISTINCT FROM b.user_id
                     OR NOT (a.roles @> b.roles AND b.roles @> a.roles))) changed
        GROUP BY chunk
    LOOP
        PERFORM pg_notify('notify_session_changed', ids);
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.announce_changed_sessions() IS 'Announces live sessions whose user or roles an UPDATE changed on channel notify_session_changed (ids separated by commas, at most 200 per NOTIFY) so every node closes their streams, which reconnect with the new roles.';

CREATE TRIGGER sessions_announce_change
    AFTER UPDATE ON notify.sessions
    REFERENCING OLD TABLE AS before_update NEW TABLE AS after_update
    FOR EACH STATEMENT EXECUTE FUNCTION notify.announce_changed_sessions();

-- ---------------------------------------------------------------------------
-- The inbox
--
-- The user's inbox: read state and mutes. Read state scales with what users
-- do, not with the audience: a broadcast to 100,000 users writes nothing
-- per user. Each user has a watermark (everything at or below it is read)
-- plus the exceptions: notifications read above it, unread at or below it.

CREATE TABLE notify.read_cursors (
    user_id    text        PRIMARY KEY,
    read_up_to bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE notify.read_cursors IS 'Per-user read watermark: every notification with seq <= read_up_to is read, except the unread marks in notify.read_marks. "Mark all read" moves it.';
COMMENT ON COLUMN notify.read_cursors.user_id IS 'The user (the token''s sub).';
COMMENT ON COLUMN notify.read_cursors.read_up_to IS 'Seq up to which everything is read (0: nothing).';
COMMENT ON COLUMN notify.read_cursors.updated_at IS 'When the watermark last moved (the readAt of what it covers).';

CREATE TABLE notify.read_marks (
    user_id   text        NOT NULL,
    seq       bigint      NOT NULL REFERENCES notify.notifications (seq) ON DELETE CASCADE,
    is_read   boolean     NOT NULL,
    marked_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seq)
);
COMMENT ON TABLE notify.read_marks IS 'Exceptions to the watermark: is_read true for a notification read above read_up_to, false for one marked unread at or below it.';
COMMENT ON COLUMN notify.read_marks.user_id IS 'The user.';
COMMENT ON COLUMN notify.read_marks.seq IS 'The notification''s seq.';
COMMENT ON COLUMN notify.read_marks.is_read IS 'true: read (above the watermark); false: unread (at or below it).';
COMMENT ON COLUMN notify.read_marks.marked_at IS 'When the user marked it.';

CREATE TABLE notify.preferences (
    user_id       text        PRIMARY KEY,
    muted_modules text[]      NOT NULL DEFAULT '{}',
    updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE notify.preferences IS 'Per-user preferences. Notifications from a muted module stay in the history but are not pushed live and do not count as unread, unless their severity is critical.';
COMMENT ON COLUMN notify.preferences.user_id IS 'The user.';
COMMENT ON COLUMN notify.preferences.muted_modules IS 'Modules the user muted.';
COMMENT ON COLUMN notify.preferences.updated_at IS 'When the user last changed them.';

-- ---------------------------------------------------------------------------
-- Admin views
--
-- Views for admins in psql (and for the files in sql/ that read them): the
-- queue at a glance, failures grouped by error, and where the stream stands.
-- They read only through the partial indexes above, except where a comment
-- says a full scan cannot be avoided.

-- One branch per status, each with its own WHERE status = ..., so pending,
-- processing and failed are read through their partial indexes. The sent
-- branch has no index to use: it scans the table (sent items are most of it).
CREATE VIEW notify.queue_state AS
SELECT s.status, s.items, s.oldest_created_at,
       date_trunc('second', now() - s.oldest_created_at) AS oldest_age,
       s.due, s.next_due
FROM (
    SELECT 'pending'::text AS status, count(*) AS items, min(created_at) AS oldest_created_at,
           count(*) FILTER (WHERE next_attempt_at <= now()) AS due, min(next_attempt_at) AS next_due
    FROM notify.queue_items WHERE status = 'pending'
    UNION ALL
    SELECT 'processing', count(*), min(created_at), NULL::bigint, NULL::timestamptz
    FROM notify.queue_items WHERE status = 'processing'
    UNION ALL
    SELECT 'failed', count(*), min(created_at), NULL::bigint, NULL::timestamptz
    FROM notify.queue_items WHERE status = 'failed'
    UNION ALL
    SELECT 'sent', count(*), min(created_at), NULL::bigint, NULL::timestamptz
    FROM notify.queue_items WHERE status = 'sent'
) s;

COMMENT ON VIEW notify.queue_state IS 'The queue at a glance: one row per status (pending, processing, failed, sent), also when no item has it. The sent row counts by a full scan of notify.queue_items; the others use the partial indexes.';
COMMENT ON COLUMN notify.queue_state.status IS 'pending, processing, failed or sent.';
COMMENT ON COLUMN notify.queue_state.items IS 'How many queue items have this status.';
COMMENT ON COLUMN notify.queue_state.oldest_created_at IS 'created_at of the oldest item with this status; NULL when there is none.';
COMMENT ON COLUMN notify.queue_state.oldest_age IS 'How old that oldest item is (now() - oldest_created_at, whole seconds).';
COMMENT ON COLUMN notify.queue_state.due IS 'pending only: items a worker may claim now (next_attempt_at <= now()); NULL for the other statuses.';
COMMENT ON COLUMN notify.queue_state.next_due IS 'pending only: the earliest next_attempt_at (in the past when items are overdue); NULL for the other statuses or when nothing is pending.';

-- Failed items are few; the join to notifications goes by primary key.
CREATE VIEW notify.queue_failures AS
SELECT q.last_error, count(*) AS items,
       min(q.updated_at) AS first_seen, max(q.updated_at) AS last_seen,
       (array_agg(q.id ORDER BY q.updated_at DESC, q.id DESC))[1:5] AS sample_ids,
       COALESCE(array_agg(DISTINCT n.module ORDER BY n.module) FILTER (WHERE n.module IS NOT NULL), '{}') AS modules
FROM notify.queue_items q
JOIN notify.notifications n ON n.id = q.notification_id
WHERE q.status = 'failed'
GROUP BY q.last_error;

COMMENT ON VIEW notify.queue_failures IS 'Failed queue items grouped by their exact last_error (admin cancellations show as ''cancelled by admin''). Reads only the failed items, through their partial index.';
COMMENT ON COLUMN notify.queue_failures.last_error IS 'The error text the items share.';
COMMENT ON COLUMN notify.queue_failures.items IS 'How many failed items have this last_error.';
COMMENT ON COLUMN notify.queue_failures.first_seen IS 'When the first of them was marked failed (the earliest updated_at).';
COMMENT ON COLUMN notify.queue_failures.last_seen IS 'When the latest of them was marked failed (the latest updated_at).';
COMMENT ON COLUMN notify.queue_failures.sample_ids IS 'Up to five queue item ids (queue_items.id), latest failure first: look at them, or retry one with sql/retry_failed_item.sql.';
COMMENT ON COLUMN notify.queue_failures.modules IS 'The distinct modules of their notifications (empty when none has a module).';

-- The unpublished notifications are the ones whose seq is NULL: the unique
-- index on seq holds the NULLs too, so they are counted without a table scan.
CREATE VIEW notify.stream_state AS
SELECT h.last_seq, h.published_at AS last_published_at,
       date_trunc('second', now() - h.published_at) AS last_published_age,
       h.truncated_before, u.unpublished, u.oldest_unpublished_at
FROM notify.stream_head h
CROSS JOIN (
    SELECT count(*) AS unpublished, min(created_at) AS oldest_unpublished_at
    FROM notify.notifications WHERE seq IS NULL
) u;

COMMENT ON VIEW notify.stream_state IS 'Where the stream stands: the stream head and the notifications still waiting for a seq.';
COMMENT ON COLUMN notify.stream_state.last_seq IS 'The last seq handed out: the newest SSE event id.';
COMMENT ON COLUMN notify.stream_state.last_published_at IS 'When the last batch was published; NULL before the first.';
COMMENT ON COLUMN notify.stream_state.last_published_age IS 'How long ago that was (whole seconds).';
COMMENT ON COLUMN notify.stream_state.truncated_before IS 'Retention deleted notifications with seq up to this value; resuming from below it replays "truncated".';
COMMENT ON COLUMN notify.stream_state.unpublished IS 'Notifications without a seq yet: pending, processing or failed.';
COMMENT ON COLUMN notify.stream_state.oldest_unpublished_at IS 'created_at of the oldest of them; NULL when every notification is published.';

-- +goose Down
DROP SCHEMA notify CASCADE;
