-- +goose Up
-- The column default of queue_items.max_attempts is the attempt limit of new
-- items for the whole cluster. notifyd serve used to set it from its own
-- NOTIFY_MAX_ATTEMPTS at every start, so nodes configured differently
-- overwrote each other; now only an explicit command changes it (issue 16),
-- and the comment says which.
COMMENT ON COLUMN notify.queue_items.max_attempts IS 'Tries before the item is failed. The column default is the limit new items get on every node: NOTIFY_MAX_ATTEMPTS=N notifyd migrate up changes it, as does ALTER TABLE notify.queue_items ALTER COLUMN max_attempts SET DEFAULT N. A starting node never does.';

-- +goose Down
COMMENT ON COLUMN notify.queue_items.max_attempts IS 'Tries before the item is failed; its default is set from notifyd''s NOTIFY_MAX_ATTEMPTS at start.';
