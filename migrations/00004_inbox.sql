-- +goose Up
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

-- +goose Down
DROP TABLE notify.preferences;
DROP TABLE notify.read_marks;
DROP TABLE notify.read_cursors;
