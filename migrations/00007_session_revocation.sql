-- +goose Up
-- Deleting a row of notify.sessions signs that browser out everywhere, as the
-- table's comment says, however the row goes: POST /auth/logout, an admin's
-- DELETE, a script. A trigger announces the ended sessions on the channel
-- notify_session, and every node closes their streams. Before, only the
-- logout endpoint sent that NOTIFY, and a plain DELETE left the streams open
-- until the session expired.
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

-- +goose Down
DROP TRIGGER sessions_announce_end ON notify.sessions;
DROP FUNCTION notify.announce_ended_sessions();
