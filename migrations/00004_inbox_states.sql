-- +goose Up
-- The inbox of issue 17: what a user does with a notification besides
-- reading it, and what a producer may say about how it lives.
--
-- Producers get three optional columns on notify.notifications:
--   - collapse_key: a newer notification with the same key and the same
--     targets supersedes the older ones in history and counts (the stream
--     still delivers each once): "3 new orders" becomes "4 new orders";
--   - expires_at: after it, not delivered, replayed, listed or counted;
--   - actions: buttons, a JSON array of {"id", "label", "url"?}.
-- notify.current(n) and notify.superseded(n) say the first two for one row;
-- with notify.visible_to they are what every inbox read shares (the admin
-- queries in sql/ call them too).
--
-- Users get state that costs one row per user and notification they act
-- on, never one per recipient: a broadcast to a million users writes
-- nothing per user until one of them archives it.
--   - seen: a second watermark beside read_up_to (notify.read_cursors);
--     opening the inbox moves it, the badge's "unseen" counts what is above
--     it and unread;
--   - archive, snooze and action clicks: notify.inbox_states. A snoozed
--     notification is hidden until snoozed_until and marked unread when it
--     is snoozed, so it comes back unread whether or not a server is running
--     at that moment; the servers push it to the user's open streams then.
-- The new columns' constraints are added NOT VALID and validated after, so
-- the migration holds only a SHARE UPDATE EXCLUSIVE lock while it reads a
-- long history (the columns are NULL in every existing row).

-- +goose StatementBegin
CREATE FUNCTION notify.valid_actions(actions jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT actions IS NULL OR (
        jsonb_typeof(actions) = 'array' AND jsonb_array_length(actions) <= 5
        AND octet_length(actions::text) <= 8192
        AND NOT EXISTS (
            SELECT 1 FROM jsonb_array_elements(actions) a
            WHERE jsonb_typeof(a) <> 'object'
               OR jsonb_typeof(a -> 'id') IS DISTINCT FROM 'string'
               OR NOT (a ->> 'id') ~ '^[A-Za-z0-9_.:-]{1,64}$'
               OR jsonb_typeof(a -> 'label') IS DISTINCT FROM 'string'
               OR btrim(a ->> 'label') = '' OR octet_length(a ->> 'label') > 200
               OR (a ? 'url' AND NOT (jsonb_typeof(a -> 'url') = 'string' AND octet_length(a ->> 'url') <= 2048
                                      AND ((a ->> 'url') ~* '^https?://[^[:space:]]+$' OR (a ->> 'url') ~ '^/([^/\\[:space:]][^[:space:]]*)?$')))
               OR EXISTS (SELECT 1 FROM jsonb_object_keys(a) k WHERE k NOT IN ('id', 'label', 'url')))
        AND (SELECT count(DISTINCT a ->> 'id') FROM jsonb_array_elements(actions) a) = jsonb_array_length(actions))
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.valid_actions(jsonb) IS 'Whether actions is NULL or a JSON array of at most 5 objects {"id", "label", "url"?}: ids unique, 1 to 64 of A-Z a-z 0-9 _ . : -; labels not blank, at most 200 bytes; url an http(s) URL or a path on this site (never javascript: or another scheme), at most 2,048 bytes; no other keys.';

ALTER TABLE notify.notifications
    ADD COLUMN collapse_key text,
    ADD COLUMN expires_at   timestamptz,
    ADD COLUMN actions      jsonb,
    ADD CONSTRAINT notifications_collapse_key_check
        CHECK (collapse_key IS NULL OR (collapse_key <> '' AND octet_length(collapse_key) <= 200)) NOT VALID,
    ADD CONSTRAINT notifications_actions_check CHECK (notify.valid_actions(actions)) NOT VALID;
ALTER TABLE notify.notifications VALIDATE CONSTRAINT notifications_collapse_key_check;
ALTER TABLE notify.notifications VALIDATE CONSTRAINT notifications_actions_check;
COMMENT ON COLUMN notify.notifications.collapse_key IS 'Replace by key: a newer notification with the same key and the same targets supersedes this one in history and counts (the stream still delivers each). NULL or 1 to 200 bytes.';
COMMENT ON COLUMN notify.notifications.expires_at IS 'After this moment the notification is not delivered, replayed, listed or counted. NULL: never expires.';
COMMENT ON COLUMN notify.notifications.actions IS 'Buttons shown with the notification: NULL or a JSON array of at most 5 {"id", "label", "url"?} (notify.valid_actions). A click is recorded by POST /api/notifications/{id}/interact.';

-- Supersession is looked up per row the inbox reads: the newest rows with
-- the same key and target user, in seq order.
CREATE INDEX notifications_collapse_idx ON notify.notifications (collapse_key, COALESCE(target_user_id, ''), seq)
    WHERE collapse_key IS NOT NULL;

-- +goose StatementBegin
CREATE FUNCTION notify.current(n notify.notifications) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT n.expires_at IS NULL OR n.expires_at > now()
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.current(notify.notifications) IS 'Whether the notification has not expired (expires_at NULL or later than now()): only current notifications are delivered, replayed, listed and counted.';

-- +goose StatementBegin
CREATE FUNCTION notify.superseded(n notify.notifications) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT n.collapse_key IS NOT NULL AND EXISTS (
        SELECT 1 FROM notify.notifications m
        WHERE m.collapse_key = n.collapse_key
          AND COALESCE(m.target_user_id, '') = COALESCE(n.target_user_id, '')
          AND m.seq > n.seq
          AND m.target_roles IS NOT DISTINCT FROM n.target_roles
          AND notify.undeliverable_reason(m) IS NULL)
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.superseded(notify.notifications) IS 'Whether a newer published notification with the same collapse_key and the same targets replaces this one in history and counts.';

ALTER TABLE notify.read_cursors ADD COLUMN seen_up_to bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN notify.read_cursors.seen_up_to IS 'Seq up to which the user has seen the inbox (opened it): the badge''s unseen count is what is unread above it. POST /api/notifications/seen moves it.';

CREATE TABLE notify.inbox_states (
    user_id       text        NOT NULL,
    seq           bigint      NOT NULL REFERENCES notify.notifications (seq) ON DELETE CASCADE,
    archived_at   timestamptz,
    snoozed_until timestamptz,
    interaction   text,
    interacted_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, seq),
    CONSTRAINT inbox_states_interaction_check CHECK ((interaction IS NULL) = (interacted_at IS NULL))
);
CREATE INDEX inbox_states_snoozed_idx ON notify.inbox_states (snoozed_until) WHERE snoozed_until IS NOT NULL;
-- Retention deletes notifications by seq and the foreign keys cascade to
-- the users' rows: without an index on seq alone each deleted notification
-- would scan the whole table. notify.read_marks had the same hole.
CREATE INDEX inbox_states_seq_idx ON notify.inbox_states (seq);
CREATE INDEX read_marks_seq_idx ON notify.read_marks (seq);
COMMENT ON TABLE notify.inbox_states IS 'What one user did to one notification besides reading it: archived, snoozed, an action clicked. Only notifications a user acted on have a row.';
COMMENT ON COLUMN notify.inbox_states.user_id IS 'The user.';
COMMENT ON COLUMN notify.inbox_states.seq IS 'The notification''s seq.';
COMMENT ON COLUMN notify.inbox_states.archived_at IS 'When the user archived it (NULL: not archived). Archived ones leave history (unless asked for) and are never unread or unseen.';
COMMENT ON COLUMN notify.inbox_states.snoozed_until IS 'Hidden from history and counts until then; it was marked unread when snoozed. The servers clear it once passed and push the notification to the user''s streams.';
COMMENT ON COLUMN notify.inbox_states.interaction IS 'The id of the action (notifications.actions) the user clicked last.';
COMMENT ON COLUMN notify.inbox_states.interacted_at IS 'When the user clicked it.';

DROP FUNCTION notify.send(text, text, text[], text, text, text, text, jsonb, text, boolean);
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
    collapse_key    text    DEFAULT NULL,
    expires_at      timestamptz DEFAULT NULL,
    actions         jsonb   DEFAULT NULL,
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
    -- A caller that lets it queue also queues it behind notifications
    -- that fell due for the workers in the last moments (the claim's own
    -- bounded walk of queue_items_claim_idx, so a held snapshot's dead
    -- entries are not read): taking the turn now would number it before
    -- them, and a producer's "3 new orders" queued a moment ago would come
    -- after its "4 new orders".
    IF NOT send.queue_when_busy THEN
        PERFORM pg_advisory_xact_lock(1852797545, 3);
        next_seq := nextval('notify.notification_seq');
    ELSIF NOT EXISTS (SELECT 1 FROM notify.queue_items q
                      WHERE q.status = 'pending' AND q.next_attempt_at <= now()
                        AND q.next_attempt_at > now() - interval '10 seconds')
          AND NOT EXISTS (SELECT 1 FROM notify.queue_items q WHERE q.status = 'processing')
          AND pg_try_advisory_xact_lock(1852797545, 3) THEN
        next_seq := nextval('notify.notification_seq');
    END IF;
    PERFORM set_config('notify.born_published', COALESCE(next_seq::text, ''), true);
    INSERT INTO notify.notifications AS n
        (target_user_id, target_roles, module, action_type, details, message, severity, data, idempotency_key,
         collapse_key, expires_at, actions, seq, published_at)
    VALUES (send.target_user_id, send.target_roles, send.module, send.action_type, send.details, send.message,
            COALESCE(send.severity, 'medium'), COALESCE(send.data, '{}'), send.idempotency_key,
            send.collapse_key, send.expires_at, send.actions,
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
COMMENT ON FUNCTION notify.send(text, text, text[], text, text, text, text, jsonb, text, boolean, text, timestamptz, jsonb) IS 'Sends a notification born published: inserts it and gives it its seq in the caller''s transaction (one commit, no worker), in commit order like a worker''s publish. Returns the notification as stored and whether this call created it (false: the idempotency key was used before, nothing new is published). queue_when_busy: when another publisher holds the publish turn, or notifications queued in the last seconds wait for the workers, queue the notification for the workers behind them (seq NULL; they batch under load) rather than wait. collapse_key, expires_at, actions: the inbox columns of notify.notifications. It holds the publish turn until the caller commits: call it last in a short transaction. SELECT (notification).id, (notification).seq FROM notify.send(''Order shipped'', target_user_id => ''alice'').';

-- +goose Down
DROP FUNCTION notify.send(text, text, text[], text, text, text, text, jsonb, text, boolean, text, timestamptz, jsonb);
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
DROP INDEX notify.read_marks_seq_idx;
DROP TABLE notify.inbox_states;
ALTER TABLE notify.read_cursors DROP COLUMN seen_up_to;
DROP FUNCTION notify.superseded(notify.notifications);
DROP FUNCTION notify.current(notify.notifications);
DROP INDEX notify.notifications_collapse_idx;
ALTER TABLE notify.notifications DROP COLUMN collapse_key, DROP COLUMN expires_at, DROP COLUMN actions;
DROP FUNCTION notify.valid_actions(jsonb);
