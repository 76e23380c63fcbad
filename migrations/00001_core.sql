-- +goose Up
-- The core of notifyd: notifications, their queue items, and the small amount
-- of shared state the workers and the publishers coordinate through.

CREATE SCHEMA IF NOT EXISTS notify;
COMMENT ON SCHEMA notify IS 'notifyd: real-time notifications. Insert into notify.notifications to send one; see notify.queue_items for delivery state.';

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
    CONSTRAINT notifications_published_check CHECK ((seq IS NULL) = (published_at IS NULL))
);

COMMENT ON TABLE notify.notifications IS 'Every notification ever sent (within the retention period). INSERT a row here to send one: a trigger creates its queue item in the same transaction.';
COMMENT ON COLUMN notify.notifications.id IS 'The notificationId that clients de-duplicate on.';
COMMENT ON COLUMN notify.notifications.seq IS 'Position in the stream and the SSE event id; assigned in commit order when the worker publishes the notification, NULL until then.';
COMMENT ON COLUMN notify.notifications.target_user_id IS 'Deliver to this user (the token''s sub). NULL together with target_roles: every signed-in user.';
COMMENT ON COLUMN notify.notifications.target_roles IS 'Deliver to users holding any of these roles. Both targets set: the user, and everyone holding a role.';
COMMENT ON COLUMN notify.notifications.module IS 'The application area the notification comes from (free text, e.g. orders).';
COMMENT ON COLUMN notify.notifications.action_type IS 'What happened (free text, e.g. new_order).';
COMMENT ON COLUMN notify.notifications.details IS 'Longer text shown with the message.';
COMMENT ON COLUMN notify.notifications.message IS 'The text shown to the user; required and not empty.';
COMMENT ON COLUMN notify.notifications.severity IS 'One of low, medium (default), high, critical.';
COMMENT ON COLUMN notify.notifications.data IS 'Free JSON object delivered to the client as is.';
COMMENT ON COLUMN notify.notifications.idempotency_key IS 'A repeated insert or POST with the same key creates nothing new (use INSERT ... ON CONFLICT (idempotency_key) DO NOTHING).';
COMMENT ON COLUMN notify.notifications.created_at IS 'When the notification was inserted.';
COMMENT ON COLUMN notify.notifications.published_at IS 'When the worker published it (assigned its seq); NULL until then.';

-- Targeting: the replay of one user's history filters on these.
CREATE INDEX notifications_target_user_idx ON notify.notifications (target_user_id, seq) WHERE target_user_id IS NOT NULL;
CREATE INDEX notifications_target_roles_idx ON notify.notifications USING gin (target_roles) WHERE target_roles IS NOT NULL;
-- Retention walks published notifications oldest first.
CREATE INDEX notifications_published_at_idx ON notify.notifications (published_at) WHERE published_at IS NOT NULL;

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
);

COMMENT ON TABLE notify.queue_items IS 'Delivery state of each notification: pending until a worker claims it, processing while claimed (leased), then sent, or failed after max_attempts. Repair with UPDATE (see sql/ in the repository).';
COMMENT ON COLUMN notify.queue_items.id IS 'Queue item id, in insertion order.';
COMMENT ON COLUMN notify.queue_items.notification_id IS 'The notification this item delivers (one item per notification).';
COMMENT ON COLUMN notify.queue_items.status IS 'pending: waiting for a worker; processing: claimed by locked_by since locked_at; sent: published; failed: gave up after max_attempts, see last_error.';
COMMENT ON COLUMN notify.queue_items.attempts IS 'Tries so far; a claim counts as a try.';
COMMENT ON COLUMN notify.queue_items.max_attempts IS 'Tries before the item is failed; from notifyd''s NOTIFY_MAX_ATTEMPTS when the item was created.';
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

CREATE TABLE notify.settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
COMMENT ON TABLE notify.settings IS 'Settings notifyd writes at start so the database itself can apply them (max_attempts for new queue items).';
COMMENT ON COLUMN notify.settings.name IS 'Setting name.';
COMMENT ON COLUMN notify.settings.value IS 'Setting value, as text.';
INSERT INTO notify.settings (name, value) VALUES ('max_attempts', '3');

CREATE TABLE notify.stream_head (
    id               boolean     PRIMARY KEY DEFAULT true CHECK (id),
    last_seq         bigint      NOT NULL DEFAULT 0,
    truncated_before bigint      NOT NULL DEFAULT 0,
    published_at     timestamptz
);
COMMENT ON TABLE notify.stream_head IS 'The one row that orders publishing: a publisher locks it to take the next seqs and holds the lock until commit, so seqs are visible in commit order.';
COMMENT ON COLUMN notify.stream_head.id IS 'Always true: there is exactly one row.';
COMMENT ON COLUMN notify.stream_head.last_seq IS 'The last seq handed out (and committed).';
COMMENT ON COLUMN notify.stream_head.truncated_before IS 'Retention has deleted notifications with seq up to this value; a resume from below it is answered with replay "truncated".';
COMMENT ON COLUMN notify.stream_head.published_at IS 'When the last batch was published.';
INSERT INTO notify.stream_head DEFAULT VALUES;

CREATE TABLE notify.worker_activity (
    worker_id  text        PRIMARY KEY,
    busy_until timestamptz NOT NULL
);
COMMENT ON TABLE notify.worker_activity IS 'Workers that are draining the queue right now. While one is busy, inserts skip their NOTIFY wake-up (a NOTIFY serializes commits); a worker re-checks the queue before it leaves this table.';
COMMENT ON COLUMN notify.worker_activity.worker_id IS 'The worker (host/pid/worker).';
COMMENT ON COLUMN notify.worker_activity.busy_until IS 'The worker promises to look at the queue again before this time; past it the row is ignored (a crashed worker).';

-- Queue items are created in the inserting transaction, one statement for the
-- whole insert (a transition table), so bulk inserts stay bulk.
-- +goose StatementBegin
CREATE FUNCTION notify.enqueue_notifications() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notify.queue_items (notification_id, max_attempts)
    SELECT n.id, COALESCE((SELECT s.value::integer FROM notify.settings s WHERE s.name = 'max_attempts'), 3)
    FROM new_rows n;
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
-- and rings only when no worker is busy: a NOTIFY takes a database-wide lock at
-- commit and would cost producers most of their insert rate. The shared
-- advisory lock, held until commit, lets a worker that is about to go idle wait
-- for the commits that saw it busy before it looks at the queue one last time.
-- +goose StatementBegin
CREATE FUNCTION notify.wake_worker() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('notify.wake_checked', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM set_config('notify.wake_checked', 'on', true);
    PERFORM pg_advisory_xact_lock_shared(1852797545, 1);
    IF NOT EXISTS (SELECT 1 FROM notify.worker_activity WHERE busy_until > clock_timestamp()) THEN
        PERFORM pg_notify('notify_queue', '');
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.wake_worker() IS 'Wakes an idle worker when a transaction that inserted notifications commits; skipped while a worker is busy.';

CREATE CONSTRAINT TRIGGER notifications_wake_worker
    AFTER INSERT ON notify.notifications
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION notify.wake_worker();

-- +goose Down
DROP SCHEMA notify CASCADE;
