-- +goose Up
-- The rules of target_roles and actions (notify.valid_role_list,
-- notify.valid_actions) were SQL functions with subqueries. PostgreSQL
-- cannot inline such a function into a CHECK, so every INSERT statement
-- parsed and planned their bodies again: 83 µs for valid_actions even when
-- actions is NULL, 28 µs for valid_role_list, about half of a born-published
-- notify.send() (pgbench, one client: 1.0 ms a call, 0.55 ms after). In
-- PL/pgSQL the plan is kept for the session and a NULL returns before any
-- query. The rules are the same expressions, word for word; nothing is
-- revalidated, since no row's answer changes.

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.valid_role_list(roles text[]) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF roles IS NULL THEN
        RETURN true;
    END IF;
    RETURN array_ndims(roles) = 1 AND array_lower(roles, 1) = 1
        AND cardinality(roles) BETWEEN 1 AND 64
        AND NOT EXISTS (SELECT 1 FROM unnest(roles) r
                        WHERE r IS NULL OR r !~ '[^[:space:]]' OR octet_length(r) > 200);
END;
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.valid_actions(actions jsonb) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF actions IS NULL THEN
        RETURN true;
    END IF;
    RETURN jsonb_typeof(actions) = 'array' AND jsonb_array_length(actions) <= 5
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
        AND (SELECT count(DISTINCT a ->> 'id') FROM jsonb_array_elements(actions) a) = jsonb_array_length(actions);
END;
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.valid_role_list(roles text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT roles IS NULL OR (
        array_ndims(roles) = 1 AND array_lower(roles, 1) = 1
        AND cardinality(roles) BETWEEN 1 AND 64
        AND NOT EXISTS (SELECT 1 FROM unnest(roles) r
                        WHERE r IS NULL OR r !~ '[^[:space:]]' OR octet_length(r) > 200))
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION notify.valid_actions(actions jsonb) RETURNS boolean
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
