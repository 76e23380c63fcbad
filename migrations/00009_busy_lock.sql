-- +goose Up
-- A worker's busy mark is a session advisory lock instead of a row in
-- notify.worker_activity: it lives exactly as long as the worker's
-- connection, so a worker that dies while busy frees the insert doorbell at
-- once (its connection closes) instead of silencing it until a time-to-live
-- lapses, and marking busy writes nothing (no row updated over and over, no
-- dead tuples for vacuum).
--
-- Keys (two int4s): (1852797545, 1) is the in-flight lock producers hold
-- shared until commit, as before; (1852797545, 2) is held shared by every
-- busy worker. A producer rings only if it can take (1852797545, 2)
-- exclusively, i.e. no worker is busy. If it cannot (a worker is busy, one is
-- becoming busy, or another producer is ringing right now), a worker's busy
-- period is under way or about to start, and it ends with the worker
-- waiting for every producer holding the in-flight lock, then looking at the
-- queue once more: nothing waits for the poll.

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

DROP TABLE notify.worker_activity;

-- +goose Down
CREATE TABLE notify.worker_activity (
    worker_id  text        PRIMARY KEY,
    busy_until timestamptz NOT NULL
);
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.wake_worker() RETURNS trigger
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
