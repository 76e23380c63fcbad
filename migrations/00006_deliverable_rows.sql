-- +goose Up
-- What the database accepts, notifyd delivers, the same way on every path.
--
-- 1. Constraints refuse rows that cannot be delivered consistently: targets
--    that are empty rather than NULL (the live fan-out read "" and '{}' as
--    "everyone" while SQL read them as "nobody"), roles that are NULL, blank,
--    nested or too many, and sizes past the HTTP API's limits. A producer may
--    not preset seq or published_at: only the worker numbers notifications.
-- 2. notify.undeliverable_reason(n) and notify.visible_to(n, user, roles) are
--    the one definition of "who may see this" that replay, history, unread
--    counts and the admin SQL share (the live fan-out is the same rule in Go,
--    notify.Target.Matches, and a property test holds the two together). A
--    row that slipped past the constraints (written while one was dropped,
--    or before this migration) is visible to nobody, and the worker and the
--    feed set it aside (its queue item failed, with the reason) instead of
--    stopping on it.
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

ALTER TABLE notify.notifications
    ADD CONSTRAINT notifications_target_user_id_check
        CHECK (target_user_id IS NULL OR (target_user_id ~ '[^[:space:]]' AND octet_length(target_user_id) <= 200)) NOT VALID,
    ADD CONSTRAINT notifications_target_roles_check
        CHECK (notify.valid_role_list(target_roles)) NOT VALID,
    ADD CONSTRAINT notifications_message_size_check
        CHECK (octet_length(message) <= 4096) NOT VALID,
    ADD CONSTRAINT notifications_details_size_check
        CHECK (octet_length(details) <= 16384) NOT VALID,
    ADD CONSTRAINT notifications_module_check
        CHECK (module IS NULL OR (module <> '' AND octet_length(module) <= 200)) NOT VALID,
    ADD CONSTRAINT notifications_action_type_check
        CHECK (action_type IS NULL OR (action_type <> '' AND octet_length(action_type) <= 200)) NOT VALID,
    ADD CONSTRAINT notifications_idempotency_key_check
        CHECK (idempotency_key IS NULL OR (idempotency_key <> '' AND octet_length(idempotency_key) <= 200)) NOT VALID,
    ADD CONSTRAINT notifications_data_size_check
        CHECK (octet_length(data::text) <= 32768) NOT VALID;

-- Rows from before this migration are checked now; if some break a rule the
-- constraints still hold for every new or changed row, the old rows stay
-- (visible to nobody, see notify.visible_to) and a notice says which rule.
-- +goose StatementBegin
DO $$
DECLARE
    c text;
BEGIN
    FOREACH c IN ARRAY ARRAY['notifications_target_user_id_check', 'notifications_target_roles_check',
        'notifications_message_size_check', 'notifications_details_size_check', 'notifications_module_check',
        'notifications_action_type_check', 'notifications_idempotency_key_check', 'notifications_data_size_check']
    LOOP
        BEGIN
            EXECUTE format('ALTER TABLE notify.notifications VALIDATE CONSTRAINT %I', c);
        EXCEPTION WHEN check_violation THEN
            RAISE NOTICE 'notify.notifications has rows that break %; new rows are checked, old ones are left as they are', c;
        END;
    END LOOP;
END;
$$;
-- +goose StatementEnd

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

-- Producers insert; only the worker numbers. Checked once per statement,
-- on the transition table the enqueue trigger already has.
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
    INSERT INTO notify.queue_items (notification_id) SELECT id FROM new_rows;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd

COMMENT ON COLUMN notify.notifications.target_user_id IS 'Deliver to this user (the token''s sub): NULL, or a non-blank id of at most 200 bytes. NULL together with target_roles: every signed-in user.';
COMMENT ON COLUMN notify.notifications.target_roles IS 'Deliver to users holding any of these roles: NULL, or a one-dimensional list of 1 to 64 non-blank roles of at most 200 bytes each (never ''{}'': NULL means no role). Both targets set: the user, and everyone holding a role.';
COMMENT ON COLUMN notify.notifications.message IS 'The text shown to the user; required, not empty, at most 4,096 bytes.';
COMMENT ON COLUMN notify.notifications.details IS 'Longer text shown with the message; at most 16,384 bytes.';
COMMENT ON COLUMN notify.notifications.module IS 'The application area the notification comes from (e.g. orders): NULL or 1 to 200 bytes.';
COMMENT ON COLUMN notify.notifications.action_type IS 'What happened (e.g. new_order): NULL or 1 to 200 bytes.';
COMMENT ON COLUMN notify.notifications.idempotency_key IS 'A repeated insert or POST with the same key creates nothing new (use INSERT ... ON CONFLICT (idempotency_key) DO NOTHING); NULL or 1 to 200 bytes.';
COMMENT ON COLUMN notify.notifications.data IS 'Free JSON object delivered to the client as is; at most 32,768 bytes as jsonb text.';
COMMENT ON COLUMN notify.notifications.seq IS 'Position in the stream and the SSE event id; assigned in commit order when the worker publishes the notification, NULL until then (an INSERT may not set it).';
COMMENT ON COLUMN notify.notifications.published_at IS 'When the worker published it (assigned its seq); NULL until then (an INSERT may not set it).';

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.enqueue_notifications() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO notify.queue_items (notification_id) SELECT id FROM new_rows;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
DROP FUNCTION notify.visible_to(notify.notifications, text, text[]);
DROP FUNCTION notify.undeliverable_reason(notify.notifications);
ALTER TABLE notify.notifications
    DROP CONSTRAINT notifications_target_user_id_check,
    DROP CONSTRAINT notifications_target_roles_check,
    DROP CONSTRAINT notifications_message_size_check,
    DROP CONSTRAINT notifications_details_size_check,
    DROP CONSTRAINT notifications_module_check,
    DROP CONSTRAINT notifications_action_type_check,
    DROP CONSTRAINT notifications_idempotency_key_check,
    DROP CONSTRAINT notifications_data_size_check;
DROP FUNCTION notify.valid_role_list(text[]);
