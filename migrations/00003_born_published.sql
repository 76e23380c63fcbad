-- +goose Up
-- A notification born published (issue 15): notify.send() inserts it and
-- publishes it in the caller's transaction, so one commit makes it durable
-- and numbered, where an INSERT waits for a worker's second commit (and its
-- wake-up). The publish is the worker's (internal/postgres/queue.go,
-- stampAndRing), done for one row:
--   - the seq is taken under the publish turn, advisory lock
--     (1852797545, 3) held to commit, so seqs still become visible in
--     commit order (every publisher takes the same lock first);
--   - the connection enters the history before its first seq
--     (notify.enter_history(), once per session), as the workers' pool
--     does on each new connection, so a restored copy or a promoted replica
--     never reuses a seq;
--   - a row notify.undeliverable_reason() refuses gets no seq (the
--     constraints make one impossible to insert today; send raises rather
--     than leaving a failed item, since its caller is there to hear it);
--   - its roles go into notify.notification_roles (by the enqueue trigger),
--     and notify_published is rung with the seq at commit.
-- A caller that would rather not wait for the turn (the HTTP API) passes
-- queue_when_busy: while another publisher holds it, the notification is
-- inserted for the workers as an INSERT would be, so under load publishing
-- still goes in the workers' batches (one commit for many) instead of one
-- commit after another under the turn.
-- The row is inserted with its seq and published_at already set and the
-- enqueue trigger creates its queue item already sent (attempts 1,
-- sent_at): no pending item is written and rewritten, and nothing enters
-- the claim index. The worker's doorbell skips such rows. An INSERT still
-- may not set seq or published_at: the trigger lets a numbered row through
-- only from a session that holds the publish turn, with the seq it took
-- last (and notify.born_published set to it), and writes its roles.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.enqueue_notifications() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    born     text := current_setting('notify.born_published', true);
    has_turn boolean;
    last_seq bigint;
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE seq IS NOT NULL OR published_at IS NOT NULL) THEN
        -- A numbered row must be exactly what notify.send() does: under the
        -- publish turn, with the seq this session took last. The setting
        -- alone is no proof (any session may set it); the turn and the
        -- sequence are what keep seqs in commit order, whoever inserts.
        has_turn := EXISTS (SELECT 1 FROM pg_locks
                            WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
                              AND classid = 1852797545 AND objid = 3 AND objsubid = 2);
        BEGIN
            last_seq := currval('notify.notification_seq');
        EXCEPTION WHEN object_not_in_prerequisite_state THEN
            last_seq := NULL; -- no seq taken in this session
        END;
        IF NOT has_turn OR EXISTS (SELECT 1 FROM new_rows
                   WHERE (seq IS NOT NULL OR published_at IS NOT NULL)
                     AND (seq IS NULL OR published_at IS NULL OR seq IS DISTINCT FROM last_seq
                          OR born IS DISTINCT FROM seq::text)) THEN
            RAISE EXCEPTION 'new row for relation "notifications" violates check constraint "notifications_unpublished_on_insert"'
                USING ERRCODE = 'check_violation', SCHEMA = 'notify', TABLE = 'notifications',
                      CONSTRAINT = 'notifications_unpublished_on_insert',
                      DETAIL = 'seq and published_at are set by the worker when it publishes; insert them as NULL (or send with notify.send()).';
        END IF;
        -- Its roles, for the audience reads, as a worker's publish writes them.
        INSERT INTO notify.notification_roles (role, seq)
        SELECT DISTINCT r.role, n.seq FROM new_rows n, unnest(n.target_roles) AS r(role) WHERE n.seq IS NOT NULL;
    END IF;
    INSERT INTO notify.queue_items (notification_id, next_attempt_at, status, attempts, sent_at)
    SELECT id, statement_timestamp(),
           CASE WHEN seq IS NULL THEN 'pending' ELSE 'sent' END,
           CASE WHEN seq IS NULL THEN 0 ELSE 1 END,
           CASE WHEN seq IS NOT NULL THEN now() END
    FROM new_rows;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

-- The doorbell rings for rows a worker must publish only. (A constraint
-- trigger's WHEN is evaluated at the INSERT, not at commit.)
DROP TRIGGER notifications_wake_worker ON notify.notifications;
CREATE CONSTRAINT TRIGGER notifications_wake_worker
    AFTER INSERT ON notify.notifications
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.seq IS NULL) EXECUTE FUNCTION notify.wake_worker();

-- +goose StatementBegin
CREATE FUNCTION notify.send(
    message         text,
    target_user_id  text    DEFAULT NULL,
    target_roles    text[]  DEFAULT NULL,
    module          text    DEFAULT NULL,
    action_type     text    DEFAULT NULL,
    details         text    DEFAULT NULL,
    severity        text    DEFAULT 'medium',
    data            jsonb   DEFAULT '{}',
    idempotency_key text    DEFAULT NULL,
    queue_when_busy boolean DEFAULT false,
    OUT notification notify.notifications,
    OUT created boolean)
LANGUAGE plpgsql AS $$
-- A bare name is the column (ON CONFLICT (idempotency_key)); the
-- arguments are written send.<name>.
#variable_conflict use_column
DECLARE
    next_seq bigint;
    reason   text;
BEGIN
    IF send.idempotency_key IS NOT NULL THEN
        -- A repeat answers with the notification the key made, before
        -- taking the publish turn.
        SELECT n.* INTO notification FROM notify.notifications n WHERE n.idempotency_key = send.idempotency_key;
        IF FOUND THEN
            created := false;
            RETURN;
        END IF;
    END IF;
    IF current_setting('notify.history_entered', true) IS DISTINCT FROM 'on' THEN
        -- Rolled back with the transaction if it fails: then checked again.
        PERFORM notify.enter_history();
        PERFORM set_config('notify.history_entered', 'on', false);
    END IF;
    -- The publish turn, held to commit: no other publisher takes a seq
    -- until this one is visible. When another publisher holds it and the
    -- caller would rather not wait, the notification is queued for the
    -- workers instead (seq NULL): under load they publish in batches.
    IF NOT send.queue_when_busy THEN
        PERFORM pg_advisory_xact_lock(1852797545, 3);
        next_seq := nextval('notify.notification_seq');
    ELSIF pg_try_advisory_xact_lock(1852797545, 3) THEN
        next_seq := nextval('notify.notification_seq');
    END IF;
    PERFORM set_config('notify.born_published', COALESCE(next_seq::text, ''), true);
    INSERT INTO notify.notifications AS n
        (target_user_id, target_roles, module, action_type, details, message, severity, data, idempotency_key, seq, published_at)
    VALUES (send.target_user_id, send.target_roles, send.module, send.action_type, send.details, send.message,
            COALESCE(send.severity, 'medium'), COALESCE(send.data, '{}'), send.idempotency_key,
            next_seq, CASE WHEN next_seq IS NOT NULL THEN now() END)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING n.* INTO notification;
    PERFORM set_config('notify.born_published', '', true);
    IF notification.id IS NULL THEN
        -- The key was taken meanwhile (the seq is a gap, as after a
        -- rollback).
        SELECT n.* INTO STRICT notification FROM notify.notifications n WHERE n.idempotency_key = send.idempotency_key;
        created := false;
        RETURN;
    END IF;
    created := true;
    IF next_seq IS NULL THEN
        RETURN; -- queued: a worker publishes it
    END IF;
    reason := notify.undeliverable_reason(notification);
    IF reason IS NOT NULL THEN
        RAISE EXCEPTION 'notify.send(): the notification cannot be delivered: %', reason
            USING ERRCODE = 'check_violation';
    END IF;
    PERFORM pg_notify('notify_published', next_seq::text);
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.send(text, text, text[], text, text, text, text, jsonb, text, boolean) IS 'Sends a notification born published: inserts it and gives it its seq in the caller''s transaction (one commit, no worker), in commit order like a worker''s publish. Returns the notification as stored and whether this call created it (false: the idempotency key was used before, nothing new is published). queue_when_busy: when another publisher holds the publish turn, queue the notification for the workers (seq NULL; they batch under load) rather than wait. It holds the publish turn until the caller commits: call it last in a short transaction. SELECT (notification).id, (notification).seq FROM notify.send(''Order shipped'', target_user_id => ''alice'').';

-- +goose Down
DROP FUNCTION notify.send(text, text, text[], text, text, text, text, jsonb, text, boolean);
DROP TRIGGER notifications_wake_worker ON notify.notifications;
CREATE CONSTRAINT TRIGGER notifications_wake_worker
    AFTER INSERT ON notify.notifications
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notify.wake_worker();
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.enqueue_notifications() RETURNS trigger
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
