-- +goose Up
-- An INSERT published by its own commit (issue 15). A notification inserted
-- into notify.notifications used to wait, after the producer's commit, for
-- a worker: its wake-up, its claim and a second durable commit, about a
-- millisecond on these machines before any node could read it. Now the
-- doorbell (notifications_wake_worker, a constraint trigger deferred to the
-- commit, which already ran there for every queued row) first tries to
-- publish the transaction's rows itself, just before the commit, exactly as a
-- worker's claim-and-publish would (internal/postgres/queue.go): the seq
-- under the publish turn (advisory lock 1852797545/3, held to commit, so
-- seqs still become visible in commit order), published_at, the queue item
-- sent, the roles into notify.notification_roles, notify_published rung with
-- the seq. One durable commit makes the notification numbered; the nodes'
-- feeds read it when the ring arrives.
--
-- It never waits and never makes the producer's commit fail; it leaves the
-- rows to the workers (ringing them as before) whenever any of these holds:
--   - a worker is marked busy (the doorbell's own check, made first, so a
--     commit under load costs what it did), or another publisher holds the
--     publish turn: under load the workers' batches (one commit for many)
--     publish, as before;
--   - a committed item is pending and due within the last two seconds (the
--     workers' claim lookback), other than this transaction's own: it was
--     committed first, and publishing ahead of it would number a later commit
--     first (the probe reads the claim index's recent end only, so a held
--     snapshot's dead entries cost it what they cost a recent claim);
--   - the transaction is not READ COMMITTED (the probe must see the latest
--     commits, and a SERIALIZABLE producer must not get new read conflicts);
--   - max_prepared_transactions is not 0: a PREPARE TRANSACTION runs the
--     deferred triggers too, and a prepared transaction would hold the publish
--     turn until someone commits it;
--   - the setting notify.publish_at_commit is off (for the session, the
--     role or the database: ALTER DATABASE … SET notify.publish_at_commit =
--     off keeps every INSERT queued for the workers);
--   - the row is one that notify.undeliverable_reason() refuses (the worker
--     sets it aside with its reason), or more than four rows came before it
--     in the transaction (a batch goes to the workers' set-based publish:
--     every row published here holds the turn a little longer);
--   - anything fails (a role that may not read the cluster's identity for
--     notify.enter_history(), say): the error is logged and the rows stay
--     queued. A row left queued leaves every later row of the transaction
--     queued too, so a transaction's rows keep their order.

-- +goose StatementBegin
CREATE FUNCTION notify.publish_inserted(notification_id uuid) RETURNS boolean
LANGUAGE plpgsql AS $$
-- Publishes one notification this transaction inserted and still holds
-- queued, as a worker would; false when it is not to be published here.
-- The caller holds the publish turn.
#variable_conflict use_column
DECLARE
    item_id  bigint;
    new_seq  bigint;
    roles    text[];
BEGIN
    UPDATE notify.queue_items q
    SET status = 'sent', attempts = q.attempts + 1, sent_at = clock_timestamp(), updated_at = clock_timestamp()
    WHERE q.notification_id = publish_inserted.notification_id
      AND q.status = 'pending' AND q.locked_by IS NULL
      AND EXISTS (SELECT 1 FROM notify.notifications n
                  WHERE n.id = publish_inserted.notification_id AND n.seq IS NULL
                    AND notify.undeliverable_reason(n) IS NULL)
    RETURNING q.id INTO item_id;
    IF item_id IS NULL THEN
        RETURN false;
    END IF;
    UPDATE notify.notifications n
    SET seq = nextval('notify.notification_seq'), published_at = clock_timestamp()
    WHERE n.id = publish_inserted.notification_id
    RETURNING n.seq, n.target_roles INTO new_seq, roles;
    INSERT INTO notify.notification_roles (role, seq)
    SELECT DISTINCT r.role, new_seq FROM unnest(roles) AS r(role);
    PERFORM pg_notify('notify_published', new_seq::text);
    RETURN true;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.publish_inserted(uuid) IS 'Used by notify.wake_worker() at commit: publishes one notification the transaction inserted (seq, published_at, its queue item sent, its roles, the ring), as a worker would. Needs the publish turn.';

-- +goose StatementBegin
CREATE FUNCTION notify.may_publish_at_commit() RETURNS boolean
LANGUAGE plpgsql AS $$
-- Whether this transaction's queued rows may be published by its own
-- commit, once notify.wake_worker() has checked the settings; takes the
-- publish turn (held to commit) when they may.
DECLARE
    since timestamptz := clock_timestamp() - interval '2 seconds';
BEGIN
    -- An item committed before this transaction and still waiting for the
    -- workers (pending and due, or held by a worker's leased claim) is
    -- published first, by them: this transaction's rows wait behind it.
    -- (This transaction's own items are told apart by their xmin; one
    -- inserted under a savepoint has its subtransaction's, and counts as
    -- another's: the rows then stay queued, which is always safe.)
    IF EXISTS (SELECT 1 FROM notify.queue_items q
               WHERE q.status = 'pending' AND q.next_attempt_at >= since AND q.next_attempt_at <= clock_timestamp()
                 AND q.xmin <> pg_current_xact_id()::xid)
       OR EXISTS (SELECT 1 FROM notify.queue_items q WHERE q.status = 'processing') THEN
        RETURN false;
    END IF;
    IF NOT pg_try_advisory_xact_lock(1852797545, 3) THEN
        RETURN false;
    END IF;
    -- Before the session's first seq, the history check the workers'
    -- connections make (notify.send makes it too). The mark names the
    -- table the check was made for, so a session that outlives a restore
    -- of the schema checks again.
    IF current_setting('notify.history_entered_for', true) IS DISTINCT FROM 'notify.notifications'::regclass::oid::text THEN
        PERFORM notify.enter_history();
        PERFORM set_config('notify.history_entered_for', 'notify.notifications'::regclass::oid::text, false);
    END IF;
    RETURN true;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.may_publish_at_commit() IS 'Used by notify.wake_worker() at commit: whether the transaction''s queued notifications may be published by its own commit (see migration 00007); takes the publish turn when they may.';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.wake_worker() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    -- '': not decided yet in this transaction; 'n' (n >= 0): publishing, n
    -- rows so far; 'queue': the rows from here on are the workers';
    -- 'rung': they are, and the workers know (or are busy and will find them).
    state     text := COALESCE(current_setting('notify.at_commit', true), '');
    published integer;
BEGIN
    IF state = 'rung' THEN
        RETURN NULL;
    END IF;
    IF state = '' THEN
        -- The doorbell's check comes first. A worker marked busy (it holds
        -- 1852797545/2 shared) is at work on the queue and will find these
        -- rows: no ring, and no publishing here (under load the workers'
        -- batches publish, and the commit stays as cheap as before). Else
        -- this transaction now holds the lock, so no worker takes the mark
        -- before it commits, and it rings if it leaves rows queued.
        PERFORM pg_advisory_xact_lock_shared(1852797545, 1);
        IF NOT pg_try_advisory_xact_lock(1852797545, 2) THEN
            PERFORM set_config('notify.at_commit', 'rung', true);
            RETURN NULL;
        END IF;
        IF COALESCE(current_setting('notify.publish_at_commit', true), '') = 'off'
           OR current_setting('transaction_isolation') <> 'read committed'
           OR current_setting('max_prepared_transactions') <> '0' THEN
            state := 'queue'; -- decided without the block below (a subtransaction)
        END IF;
    END IF;
    IF state <> 'queue' THEN
        BEGIN
            IF state = '' THEN
                state := CASE WHEN notify.may_publish_at_commit() THEN '0' ELSE 'queue' END;
            END IF;
            -- Each condition in its own IF: SQL does not stop at a false or
            -- NULL operand of AND, and publish_inserted() acts.
            IF state <> 'queue' THEN
                published := state::integer;
                IF published < 4 THEN
                    IF notify.publish_inserted(NEW.id) THEN
                        PERFORM set_config('notify.at_commit', (published + 1)::text, true);
                        RETURN NULL;
                    END IF;
                END IF;
            END IF;
        EXCEPTION
            WHEN insufficient_privilege THEN
                -- The producer's role may insert but not publish: it stays
                -- on the workers' path for the rest of the session.
                PERFORM set_config('notify.publish_at_commit', 'off', false);
                RAISE LOG 'notify: notifications inserted by role % are left to the workers for the rest of this session: it may not publish them at commit: %',
                    current_user, SQLERRM;
            WHEN OTHERS THEN
                RAISE LOG 'notify: notification % left to the workers: publishing it at commit failed: % (%)', NEW.id, SQLERRM, SQLSTATE;
        END;
    END IF;
    -- A row left queued, the worker idle: wake it, once per transaction.
    PERFORM pg_notify('notify_queue', '');
    PERFORM set_config('notify.at_commit', 'rung', true);
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION notify.wake_worker() IS 'At the commit of a transaction that inserted notifications: while no worker is busy (holds advisory lock 1852797545/2 shared on its connection), publishes them itself when it may (notify.may_publish_at_commit(), at most four a transaction) and wakes a worker for the rest; while one is busy, does nothing (the worker finds them).';

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.wake_worker() RETURNS trigger
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
DROP FUNCTION notify.may_publish_at_commit();
DROP FUNCTION notify.publish_inserted(uuid);
