-- The audit log: one row per accepted write, inserted in the write's own transaction. Append-only:
-- the trigger refuses UPDATE and DELETE.
CREATE TABLE IF NOT EXISTS audit_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT now(),
    subject         text NOT NULL,
    role            text NOT NULL,
    client_id       text NULL,
    rpc             text NOT NULL,
    target_id       text NULL,
    idempotency_key text NULL,
    outcome         text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_events_target ON audit_events (target_id, id);
CREATE INDEX IF NOT EXISTS audit_events_subject ON audit_events (subject, id);

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END $$;
DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
