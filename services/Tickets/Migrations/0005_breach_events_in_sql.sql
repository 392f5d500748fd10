-- The SLA scheduler writes its SlaBreached events in the statement that breaches and escalates (SlaScheduler): the
-- payload is built with jsonb_build_object instead of being read out, serialized in C# and sent back. Two helpers
-- give it what Outbox gives a C# event.

-- An instant as System.Text.Json writes a UTC DateTimeOffset: ISO 8601, the fraction without trailing zeros, "+00:00".
CREATE FUNCTION json_instant(value timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT to_char(value AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || coalesce('.' || nullif(rtrim(to_char(value AT TIME ZONE 'UTC', 'US'), '0'), ''), '') || '+00:00'
$$;

-- A version 7 UUID (time-ordered, as Guid.CreateVersion7 makes outbox ids): the unix milliseconds in the first 48 bits
-- of a random UUID, version bits 0111.
CREATE FUNCTION uuid_v7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
        PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6), 52, 1), 53, 1), 'hex')::uuid
$$;
